// Package sourcestream carries a song's source audio from the fetcher to
// the encoder while it downloads, so that the encode can begin on its first
// bytes instead of waiting for the whole download (events.AudioArriving).
//
// The source travels through the JetStream stream BUTAKERO_SOURCES, on the
// subject "sources.<operation_id>": one run per fetch attempt (Writer), each
// message holding the next bytes of the source with the run's id and the
// chunk's byte offset in headers (a chunkstream run), and a last message
// saying how the run ended: "whole" (the source is staged in the blob store,
// byte for byte what the run carried, and its size) or "failed". A new run
// purges the operation's subject first, so that a reader of an earlier run
// finds its run gone (Reader: ErrRunGone) and stops. The encoder purges the
// subject once the operation ends there, and MaxAge drops what a crashed
// fetcher or encoder left.
//
// The fetcher and the encoder share nothing else: the staged blob and
// audio.downloaded stay what they were, and the encoder falls back to them
// whenever the run cannot be read to its end.
package sourcestream

import (
	"context"
	"time"

	"github.com/butakero/butakero/platform/media/chunkstream"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream of the sources being downloaded.
const StreamName = "BUTAKERO_SOURCES"

// MaxAge is how long a chunk is kept at most: the runs of a fetcher or
// encoder that died (an operation's are purged once it ends at the
// encoder). It is far above a stage's STAGE_TIMEOUT.
const MaxAge = time.Hour

// Subject is where the runs of operation opID's source are published.
func Subject(opID string) string { return "sources." + opID }

// How a run ended (chunkstream.HeaderEnd).
const (
	// EndWhole: the source is staged, chunkstream.HeaderSize bytes.
	EndWhole = "whole"
	// EndFailed: the download failed; the run will not go on.
	EndFailed = chunkstream.EndFailed
)

// StreamConfig is the definition of BUTAKERO_SOURCES, a stream of runs
// (chunkstream.StreamConfig) on the subjects "sources.*", with replicas as
// the event stream's and MaxAge. Its limit of messages per subject, there
// for 4 MiB blocks, is one no source reaches (a 60-minute source is about
// a thousand 64 KiB chunks).
func StreamConfig(replicas int) jetstream.StreamConfig {
	return chunkstream.StreamConfig(StreamName,
		"Butakero: source audio as it downloads, for encodes that begin before the download ends",
		Subject("*"), MaxAge, replicas)
}

// Ensure creates BUTAKERO_SOURCES or updates it to StreamConfig
// (chunkstream.Ensure: create first).
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	return chunkstream.Ensure(ctx, js, StreamConfig(replicas))
}

// Purge drops every run of operation opID's source.
func Purge(ctx context.Context, js jetstream.JetStream, opID string) error {
	return chunkstream.Purge(ctx, js, StreamName, Subject(opID))
}

// Last returns the last message of operation opID's subject, as a chunk:
// which run is current and whether it ended. ok is false when the subject
// holds nothing.
func Last(ctx context.Context, js jetstream.JetStream, opID string) (_ chunkstream.Chunk, ok bool, err error) {
	return chunkstream.Last(ctx, js, StreamName, Subject(opID))
}
