// Package sourcestream carries a song's source audio from the fetcher to
// the encoder while it downloads, so that the encode can begin on its first
// bytes instead of waiting for the whole download (events.AudioArriving).
//
// The source travels through the JetStream stream BUTAKERO_SOURCES, on the
// subject "sources.<operation_id>": one run per fetch attempt (Writer), each
// message holding the next bytes of the source with the run's id and the
// chunk's byte offset in headers (framestream's headers), and a last message
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
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/butakero/butakero/platform/media/framestream"
	"github.com/butakero/butakero/platform/runtime/jsbucket"
	"github.com/nats-io/nats.go"
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

// How a run ended (framestream.HeaderEnd).
const (
	// EndWhole: the source is staged, framestream.HeaderSize bytes.
	EndWhole = "whole"
	// EndFailed: the download failed; the run will not go on.
	EndFailed = framestream.EndFailed
)

// StreamConfig is the definition of BUTAKERO_SOURCES: the subjects
// "sources.*", file storage, replicas as the event stream's, MaxAge and
// direct gets (a reader's get is answered with the message itself). Its
// limit of messages per subject is one no source reaches (a 60-minute
// source is about a thousand 64 KiB chunks); as for BUTAKERO_FRAMES (see
// framestream.StreamConfig) it is there because nats-server gives a stream
// with a per-subject limit 4 MiB file-store blocks instead of 8 MiB, and
// holds the block being written in memory, the process's in the all-in-one.
// A block's size is fixed when the stream is created: a stream created
// before keeps its blocks until it is deleted and created again.
func StreamConfig(replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Butakero: source audio as it downloads, for encodes that begin before the download ends",
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

// Ensure creates BUTAKERO_SOURCES or updates it to StreamConfig (create
// first, as events.EnsureStream does).
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	s, err := jsbucket.Stream(ctx, js, StreamConfig(replicas))
	if err != nil {
		return nil, fmt.Errorf("sourcestream: ensure stream %s: %w", StreamName, err)
	}
	return s, nil
}

// Purge drops every run of operation opID's source.
func Purge(ctx context.Context, js jetstream.JetStream, opID string) error {
	s, err := js.Stream(ctx, StreamName)
	if err != nil {
		return fmt.Errorf("sourcestream: %w", err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(Subject(opID))); err != nil {
		return fmt.Errorf("sourcestream: purge %s: %w", Subject(opID), err)
	}
	return nil
}

// Last returns the last message of operation opID's subject, as a chunk:
// which run is current and whether it ended. ok is false when the subject
// holds nothing.
func Last(ctx context.Context, js jetstream.JetStream, opID string) (_ framestream.Chunk, ok bool, err error) {
	s, err := js.Stream(ctx, StreamName)
	if err != nil {
		return framestream.Chunk{}, false, fmt.Errorf("sourcestream: %w", err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, Subject(opID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return framestream.Chunk{}, false, nil
	}
	if err != nil {
		return framestream.Chunk{}, false, fmt.Errorf("sourcestream: last of %s: %w", Subject(opID), err)
	}
	c, err := chunkOf(msg)
	return c, err == nil, err
}

// message is chunk c of operation opID's source as a message to publish;
// its id makes a publish made again one message.
func message(opID string, c framestream.Chunk) *nats.Msg {
	m := nats.NewMsg(Subject(opID))
	m.Header.Set(framestream.HeaderRun, c.Run)
	m.Header.Set(framestream.HeaderOffset, strconv.FormatInt(c.Offset, 10))
	id := opID + "." + c.Run + "." + strconv.FormatInt(c.Offset, 10)
	if c.End != "" {
		m.Header.Set(framestream.HeaderEnd, c.End)
		m.Header.Set(framestream.HeaderSize, strconv.FormatInt(c.Size, 10))
		if c.Code != "" {
			m.Header.Set(framestream.HeaderCode, c.Code)
		}
		if c.Message != "" {
			m.Header.Set(framestream.HeaderMessage, c.Message)
		}
		id += ".end"
	}
	m.Header.Set(nats.MsgIdHdr, id)
	m.Data = c.Data
	return m
}

func chunkOf(msg *jetstream.RawStreamMsg) (framestream.Chunk, error) {
	h := msg.Header
	c := framestream.Chunk{Run: h.Get(framestream.HeaderRun), End: h.Get(framestream.HeaderEnd), Data: msg.Data,
		Code: h.Get(framestream.HeaderCode), Message: h.Get(framestream.HeaderMessage)}
	off, err := strconv.ParseInt(h.Get(framestream.HeaderOffset), 10, 64)
	if err != nil || c.Run == "" || off < 0 {
		return framestream.Chunk{}, fmt.Errorf("sourcestream: malformed chunk on %s", msg.Subject)
	}
	c.Offset = off
	if s := h.Get(framestream.HeaderSize); s != "" {
		c.Size, _ = strconv.ParseInt(s, 10, 64)
	}
	return c, nil
}
