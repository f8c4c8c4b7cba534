package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/nats-io/nats.go/jetstream"
)

// eventFrame is one event as the v1 API shows it, in GET
// /v1/operations/{id} and on the WebSocket: the envelope with its kind and
// stream sequence. Type is the versioned type ("butakero.upload.done.v1");
// Kind is its unversioned name ("upload.done"). Unknown (newer) types are
// passed through as they are.
type eventFrame struct {
	Type        string          `json:"type"`
	Kind        string          `json:"kind"`
	ID          string          `json:"id"`
	OperationID string          `json:"operation_id"`
	SongID      string          `json:"song_id"`
	Time        time.Time       `json:"time"`
	Seq         uint64          `json:"seq"`
	Data        json.RawMessage `json:"data"`
}

// final reports whether the event ends its operation.
func (f eventFrame) final() bool {
	return f.Kind == string(events.KindUploadDone) || f.Kind == string(events.KindOperationFailed)
}

// frameOf builds the frame of a stream message.
func frameOf(subject string, data []byte, seq uint64) (eventFrame, error) {
	kind, _, ok := events.KindOf(subject)
	if !ok {
		return eventFrame{}, fmt.Errorf("subject %q is not an event subject", subject)
	}
	var env events.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return eventFrame{}, fmt.Errorf("decode envelope on %s: %w", subject, err)
	}
	if env.ID == "" || env.Type == "" || env.OperationID == "" {
		return eventFrame{}, fmt.Errorf("envelope on %s lacks id, type or operation id", subject)
	}
	if len(env.Data) == 0 {
		env.Data = json.RawMessage("{}")
	}
	return eventFrame{
		Type: env.Type, Kind: string(kind), ID: env.ID, OperationID: env.OperationID,
		SongID: env.SongID, Time: env.Time, Seq: seq, Data: env.Data,
	}, nil
}

// maxHistory bounds the events read for one operation; a pipeline run has
// about six.
const maxHistory = 256

// errNoHistory is history's answer for an operation the stream does not
// know.
var errNoHistory = errors.New("no such operation in the stream")

// history reads an operation's events from the stream in order. It starts
// at the operation's song.requested (found by its exact subject) and then
// asks for the next message on "*.*.<id>" after each, one direct read per
// event and no consumer. An operation without song.requested is
// errNoHistory. Undecodable messages are skipped and logged.
func (s *server) history(ctx context.Context, opID string) ([]eventFrame, error) {
	stream, err := s.js.Stream(ctx, events.StreamName)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", events.StreamName, err)
	}
	first, err := stream.GetLastMsgForSubject(ctx, events.Subject(events.KindSongRequested, opID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, errNoHistory
	}
	if err != nil {
		return nil, fmt.Errorf("read song.requested: %w", err)
	}
	filter := events.OperationSubjects(opID)
	var out []eventFrame
	for msg := first; len(out) < maxHistory; {
		f, err := frameOf(msg.Subject, msg.Data, msg.Sequence)
		if err != nil {
			s.log.Warn("skipping an undecodable event in the history", "operation_id", opID, "seq", msg.Sequence, "error", err)
		} else {
			out = append(out, f)
		}
		msg, err = stream.GetMsg(ctx, msg.Sequence+1, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the history of %s: %w", opID, err)
		}
	}
	return out, nil
}
