// Package chunkstream carries a run of bytes through a JetStream subject
// while the bytes are being made, so that a reader can use the first ones
// before the last exist.
//
// A run is a sequence of messages on one subject (Writer): each holds the
// next bytes of the run with the run's id and the chunk's byte offset in
// headers, and a last message (the end message) says how the run ended. A
// subject may hold several runs one after the other; a Follower reads a
// subject's messages in order from the oldest the stream holds, one get at
// a time, so that it holds one chunk at most and needs no consumer on the
// server, and waits for the next at the live edge.
//
// framestream (a song's DCA, encoder to gateways) and sourcestream (an
// operation's source, fetcher to encoder) are its two uses: each names its
// stream and subjects, how a run is cut into chunks, and what its ends
// mean.
package chunkstream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/butakero/butakero/platform/jsbucket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of a run's messages.
const (
	// HeaderRun is the run's id, on every message.
	HeaderRun = "Butakero-Run"
	// HeaderOffset is the byte offset in the run of a chunk's first byte;
	// on the end message, the run's length.
	HeaderOffset = "Butakero-Offset"
	// HeaderEnd marks a run's last message; its value says how the run
	// ended (EndFailed, or one of the user's own).
	HeaderEnd = "Butakero-End"
	// HeaderSize is, on the end message, a size the run's user gives it
	// (what was made, in bytes).
	HeaderSize = "Butakero-Size"
	// HeaderCode and HeaderMessage are a failed run's failure.
	HeaderCode    = "Butakero-Code"
	HeaderMessage = "Butakero-Message"
)

// EndFailed is the end of a run that failed: its readers stop, and Code
// and Message say why.
const EndFailed = "failed"

// Chunk is one message of a run.
type Chunk struct {
	// Run is the run's id.
	Run string
	// Offset is where Data starts in the run.
	Offset int64
	// Data is the run's bytes from Offset; empty on the end message.
	Data []byte
	// End is "" for a chunk of data, else how the run ended.
	End string
	// Size is, on the end message, the size the run's writer gave it.
	Size int64
	// Code and Message are a failed run's failure.
	Code, Message string
}

// StreamConfig is the definition of a stream of runs named name, on the
// subjects subjects: limits retention, file storage (the embedded server's
// memory is the process's), replicas (at least 1), maxAge (what a writer
// that died left is dropped then; a finished run's user purges it), a
// two-minute window of message ids (a publish made again is one message),
// and direct gets: a follower's read is answered with the message itself,
// not a JSON document holding it in base64, which the server and the
// follower would encode and decode for every chunk.
//
// Its limit of messages per subject is one no run reaches; it is there
// because a stream with a per-subject limit gets 4 MiB blocks from
// nats-server, not 8 MiB, and the server holds the block being written,
// which followers read, in memory (see objstore.StreamConfig). A block's
// size is fixed when the stream is created: a stream created before keeps
// its blocks until it is deleted and created again.
func StreamConfig(name, description, subjects string, maxAge time.Duration, replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:        name,
		Description: description,
		Subjects:    []string{subjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxAge:      maxAge,
		Discard:     jetstream.DiscardOld,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
		// 4 MiB blocks, as said above.
		MaxMsgsPerSubject: math.MaxUint32,
	}
}

// Ensure creates the stream cfg defines (StreamConfig) or updates it to
// cfg, creating first as jsbucket.Stream does (an update racing another
// process's create goes unanswered by a cluster).
func Ensure(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := jsbucket.Stream(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("chunkstream: ensure stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// Purge drops every message of subject in stream stream: every run it
// holds.
func Purge(ctx context.Context, js jetstream.JetStream, stream, subject string) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("chunkstream: purge %s: %w", subject, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("chunkstream: purge %s: %w", subject, err)
	}
	return nil
}

// Last returns the last message of subject in stream stream, as a chunk:
// which run is the latest and whether it ended. ok is false when the
// subject holds nothing.
func Last(ctx context.Context, js jetstream.JetStream, stream, subject string) (_ Chunk, ok bool, err error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return Chunk{}, false, fmt.Errorf("chunkstream: last of %s: %w", subject, err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Chunk{}, false, nil
	}
	if err != nil {
		return Chunk{}, false, fmt.Errorf("chunkstream: last of %s: %w", subject, err)
	}
	c, err := chunkOf(msg)
	return c, err == nil, err
}

// message is chunk c as a message to publish on subject. Its id,
// idPrefix then "<run>.<offset>" (and ".end" on the end message), makes a
// publish made again (a lost answer) one message.
func message(subject, idPrefix string, c Chunk) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(HeaderRun, c.Run)
	m.Header.Set(HeaderOffset, strconv.FormatInt(c.Offset, 10))
	id := idPrefix + c.Run + "." + strconv.FormatInt(c.Offset, 10)
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

// chunkOf reads a run's stored message.
func chunkOf(msg *jetstream.RawStreamMsg) (Chunk, error) {
	h := msg.Header
	c := Chunk{Run: h.Get(HeaderRun), End: h.Get(HeaderEnd), Data: msg.Data, Code: h.Get(HeaderCode), Message: h.Get(HeaderMessage)}
	off, err := strconv.ParseInt(h.Get(HeaderOffset), 10, 64)
	if err != nil || c.Run == "" || off < 0 {
		return Chunk{}, fmt.Errorf("chunkstream: malformed chunk on %s", msg.Subject)
	}
	c.Offset = off
	if s := h.Get(HeaderSize); s != "" {
		c.Size, _ = strconv.ParseInt(s, 10, 64)
	}
	return c, nil
}
