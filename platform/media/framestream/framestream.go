// Package framestream carries a song's DCA from the encoder to the
// gateways while it is being made, so that a client can play it from its
// first frames, before it is stored.
//
// The DCA travels through the JetStream stream BUTAKERO_FRAMES, on the
// subject "frames.<song_id>", as chunkstream runs: a run of messages per
// encode (Writer), each
// holding the next bytes of the DCA (the first one the header and the first
// frame, then about a second of audio each) with the run's id and the
// chunk's byte offset in headers, and a last message saying how the run
// ended: "stored" (the DCA is in the blob store, byte for byte what the run
// carried) or "failed" (with the failure's code and message). The stream is
// file-backed and replicated like the event stream, so any gateway of a
// cluster follows any song and a gateway restart loses nothing; a song's
// subject is purged once its DCA is stored, and MaxAge drops what a crashed
// encoder left.
//
// A DCA's header names the run (the metadata's butakero.run), so a
// follower that loses the run's messages (purged once stored) goes on from
// the stored DCA at its offset only when that DCA is the run's.
package framestream

import (
	"context"
	"time"

	"github.com/butakero/butakero/platform/media/chunkstream"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream of the DCAs in the making.
const StreamName = "BUTAKERO_FRAMES"

// MaxAge is how long a chunk is kept at most: the chunks of a run whose
// encoder died before storing its DCA (a stored run's are purged at once).
// It is far above an encode's STAGE_TIMEOUT.
const MaxAge = time.Hour

// Subject is where the runs of song songID's DCA are published.
func Subject(songID string) string { return "frames." + songID }

// Headers of a run's messages (chunkstream's).
const (
	// HeaderRun is the run's id, on every message.
	HeaderRun = chunkstream.HeaderRun
	// HeaderOffset is the byte offset in the DCA of a chunk's first byte.
	HeaderOffset = chunkstream.HeaderOffset
	// HeaderEnd marks a run's last message: EndStored or EndFailed.
	HeaderEnd = chunkstream.HeaderEnd
	// HeaderSize is, on the end message, the DCA's size in bytes.
	HeaderSize = chunkstream.HeaderSize
	// HeaderCode and HeaderMessage are a failed run's failure.
	HeaderCode    = chunkstream.HeaderCode
	HeaderMessage = chunkstream.HeaderMessage
)

// How a run ended (HeaderEnd).
const (
	EndStored = "stored"
	EndFailed = chunkstream.EndFailed
)

// StreamConfig is the definition of BUTAKERO_FRAMES, a stream of runs
// (chunkstream.StreamConfig) on the subjects "frames.*", with replicas as
// the event stream's and MaxAge. Its direct gets spare the server and a
// follower encoding and decoding every chunk in base64 (half of what a
// followed song allocated); its limit of messages per subject, there for
// 4 MiB blocks, is one no song reaches (a song's runs hold a message per
// second of audio or so).
func StreamConfig(replicas int) jetstream.StreamConfig {
	return chunkstream.StreamConfig(StreamName,
		"Butakero: DCAs in the making, for clients that play them before they are stored",
		Subject("*"), MaxAge, replicas)
}

// Ensure creates BUTAKERO_FRAMES or updates it to StreamConfig
// (chunkstream.Ensure: create first).
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	return chunkstream.Ensure(ctx, js, StreamConfig(replicas))
}

// Purge drops every message of song songID's subject: once its DCA is
// stored, readers read that.
func Purge(ctx context.Context, js jetstream.JetStream, songID string) error {
	return chunkstream.Purge(ctx, js, StreamName, Subject(songID))
}

// Chunk is one message of a run: Offset is where Data starts in the DCA,
// End is "" for a chunk of data, else EndStored or EndFailed, and Size is,
// on the end message, the DCA's size.
type Chunk = chunkstream.Chunk
