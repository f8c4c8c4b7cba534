// Package framestream carries a song's DCA from the encoder to the
// gateways while it is being made, so that a client can play it from its
// first frames, before it is stored.
//
// The DCA travels through the JetStream stream BUTAKERO_FRAMES, on the
// subject "frames.<song_id>": a run of messages per encode (Writer), each
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
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/butakero/butakero/platform/runtime/jsbucket"
	"github.com/nats-io/nats.go"
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

// Headers of a run's messages.
const (
	// HeaderRun is the run's id, on every message.
	HeaderRun = "Butakero-Run"
	// HeaderOffset is the byte offset in the DCA of a chunk's first byte.
	HeaderOffset = "Butakero-Offset"
	// HeaderEnd marks a run's last message: EndStored or EndFailed.
	HeaderEnd = "Butakero-End"
	// HeaderSize is, on the end message, the DCA's size in bytes.
	HeaderSize = "Butakero-Size"
	// HeaderCode and HeaderMessage are a failed run's failure.
	HeaderCode    = "Butakero-Code"
	HeaderMessage = "Butakero-Message"
)

// How a run ended (HeaderEnd).
const (
	EndStored = "stored"
	EndFailed = "failed"
)

// StreamConfig is the definition of BUTAKERO_FRAMES: the subjects
// "frames.*", file storage (the embedded server's memory is the process's),
// replicas as the event stream's, MaxAge, and direct gets: a follower's read
// is answered with the message itself, not a JSON document holding it in
// base64, which the server and the follower would encode and decode for
// every chunk (half of what a followed song allocated). Its limit of
// messages per subject is one no song reaches (a song's runs hold a
// message per second of audio or so); it is there because a stream with a
// per-subject limit gets 4 MiB blocks from nats-server, not 8 MiB, and the
// server holds the block being written, which followers read, in memory
// (see objstore.StreamConfig). A block's size is fixed when the stream is
// created.
func StreamConfig(replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Butakero: DCAs in the making, for clients that play them before they are stored",
		Subjects:    []string{Subject("*")},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxAge:      MaxAge,
		Discard:     jetstream.DiscardOld,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
		// 4 MiB blocks, as said above.
		MaxMsgsPerSubject: math.MaxUint32,
	}
}

// Ensure creates BUTAKERO_FRAMES or updates it to StreamConfig, creating
// first as events.EnsureStream does (an update racing another process's
// create goes unanswered by a cluster).
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	s, err := jsbucket.Stream(ctx, js, StreamConfig(replicas))
	if err != nil {
		return nil, fmt.Errorf("framestream: ensure stream %s: %w", StreamName, err)
	}
	return s, nil
}

// Purge drops every message of song songID's subject: once its DCA is
// stored, readers read that.
func Purge(ctx context.Context, js jetstream.JetStream, songID string) error {
	s, err := js.Stream(ctx, StreamName)
	if err != nil {
		return fmt.Errorf("framestream: %w", err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(Subject(songID))); err != nil {
		return fmt.Errorf("framestream: purge %s: %w", Subject(songID), err)
	}
	return nil
}

// Chunk is one message of a run.
type Chunk struct {
	// Run is the run's id.
	Run string
	// Offset is where Data starts in the DCA.
	Offset int64
	// Data is the DCA's bytes from Offset; empty on the end message.
	Data []byte
	// End is "" for a chunk of data, else EndStored or EndFailed.
	End string
	// Size is, on the end message, the DCA's size.
	Size int64
	// Code and Message are a failed run's failure.
	Code, Message string
}

// message is chunk c of the song as a message to publish; its id makes a
// publish made again (a lost answer) one message.
func message(songID string, c Chunk) *nats.Msg {
	m := nats.NewMsg(Subject(songID))
	m.Header.Set(HeaderRun, c.Run)
	m.Header.Set(HeaderOffset, strconv.FormatInt(c.Offset, 10))
	id := c.Run + "." + strconv.FormatInt(c.Offset, 10)
	if c.End != "" {
		m.Header.Set(HeaderEnd, c.End)
		m.Header.Set(HeaderSize, strconv.FormatInt(c.Size, 10))
		if c.Code != "" {
			m.Header.Set(HeaderCode, c.Code)
		}
		if c.Message != "" {
			m.Header.Set(HeaderMessage, c.Message)
		}
		id += ".end"
	}
	m.Header.Set(nats.MsgIdHdr, id)
	m.Data = c.Data
	return m
}
