package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/coder/websocket"
)

// Event kinds: what happened to an operation, in the order they happen.
// KindProgress is not stored history but a live measure of the running
// stage.
const (
	KindSongRequested   = "song.requested"
	KindVideoResolved   = "video.resolved"
	KindAudioDownloaded = "audio.downloaded"
	KindDCAEncoded      = "dca.encoded"
	KindUploadDone      = "upload.done"
	KindOperationFailed = "operation.failed"
	// KindOperationCancelled ends a cancelled operation (DELETE
	// /v1/operations/{id}), KindPlaylistEnded a playlist's parent.
	KindOperationCancelled = "operation.cancelled"
	KindPlaylistEnded      = "playlist.ended"
	KindProgress           = "progress"
)

// Stages that report progress (Event.Stage).
const (
	StageFetch  = "fetch"
	StageEncode = "encode"
)

// Event is one message about an operation: a stored event of its history
// (Kind one of the Kind constants but KindProgress, with its Data), or a
// progress measure (Kind KindProgress, with Stage and Percent). Progress
// comes at least once a second while the fetch or the encode runs.
type Event struct {
	// Type is the event's versioned type ("butakero.upload.done.v1"), or
	// "progress".
	Type string `json:"type"`
	// Kind is the unversioned name ("upload.done"), or KindProgress.
	Kind        string    `json:"kind"`
	ID          string    `json:"id"`
	OperationID string    `json:"operation_id"`
	SongID      string    `json:"song_id"`
	Time        time.Time `json:"time"`
	// Seq is the event's position in the server's stream.
	Seq uint64 `json:"seq"`
	// Data is the event's payload, as the README's event table shows it.
	Data json.RawMessage `json:"data"`

	// Stage ("fetch" or "encode") and Percent (0 to 100) of a progress
	// measure.
	Stage   string  `json:"stage"`
	Percent float64 `json:"percent"`
}

func (e *Event) normalize() {
	if e.Type == KindProgress && e.Kind == "" {
		e.Kind = KindProgress
	}
}

// IsProgress reports whether e is a progress measure rather than history.
func (e Event) IsProgress() bool { return e.Kind == KindProgress }

// Final reports whether e ends its operation (upload.done or
// operation.failed).
func (e Event) Final() bool {
	switch e.Kind {
	case KindUploadDone, KindOperationFailed, KindOperationCancelled, KindPlaylistEnded:
		return true
	}
	return false
}

// Failure is the reason of an operation.failed event, nil for any other.
func (e Event) Failure() *OperationError {
	if e.Kind != KindOperationFailed {
		return nil
	}
	var d struct {
		Stage   string `json:"stage"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(e.Data, &d)
	return &OperationError{OperationID: e.OperationID, Code: d.Code, Message: d.Message, Stage: d.Stage}
}

// Follow watches an operation over the gateway's WebSocket until it ends:
// fn (which may be nil) gets every event of its history in order, then
// every live event and progress measure, from this goroutine, one at a
// time. Follow returns the final state once upload.done or
// operation.failed arrived and the server's state shows it (so a
// successful song's DCA can be downloaded at once): check its Err for a
// failure. A failed
// operation is not an error of Follow; an error is returned when the
// operation cannot be followed (unknown: an *APIError "not_found"; a
// refused key; ctx ended).
//
// When the connection drops before the end (a network failure, the
// gateway restarting), Follow reconnects with backoff a few times; events
// already delivered are not delivered again.
func (c *Client) Follow(ctx context.Context, id string, fn func(Event)) (Operation, error) {
	seen := map[string]bool{}
	var final *Event
	backoff := 250 * time.Millisecond
	for attempt := 0; ; attempt++ {
		ev, err := c.followOnce(ctx, id, seen, fn)
		if err == nil {
			final = ev
			break
		}
		if ctx.Err() != nil || attempt >= maxReconnects || !retryable(err) {
			return Operation{}, fmt.Errorf("butakero: follow %s: %w", id, err)
		}
		wait := backoff
		var ae *APIError
		if errors.As(err, &ae) && ae.RetryAfter > wait {
			wait = ae.RetryAfter
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Operation{}, fmt.Errorf("butakero: follow %s: %w", id, ctx.Err())
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	op, err := c.caughtUp(ctx, id)
	if err != nil {
		return Operation{}, err
	}
	op.Events = nil
	return settle(op, *final), nil
}

// projectionWait bounds how long Follow waits, after the final event, for
// the server's state to show it.
const projectionWait = 10 * time.Second

// caughtUp reads the operation until the server's state shows it ended.
// The state is a projection of the stream that lags by a moment; a song
// is recorded stored before its operation ends, so once the operation
// reads ended its DCA can be downloaded. After projectionWait it returns
// the state as it is.
func (c *Client) caughtUp(ctx context.Context, id string) (Operation, error) {
	deadline := time.Now().Add(projectionWait)
	pause := 20 * time.Millisecond
	for {
		op, err := c.Operation(ctx, id)
		if err != nil || op.Done() || time.Now().After(deadline) {
			return op, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return Operation{}, fmt.Errorf("butakero: operation %s: %w", id, ctx.Err())
		case <-t.C:
		}
		pause = min(pause*2, 500*time.Millisecond)
	}
}

// Wait is Follow without a callback: it blocks until the operation ends
// and returns its final state.
func (c *Client) Wait(ctx context.Context, id string) (Operation, error) {
	return c.Follow(ctx, id, nil)
}

// maxReconnects bounds Follow's reconnections after a dropped socket.
const maxReconnects = 5

// maxMessage bounds one WebSocket message (an event is well under 64 KiB).
const maxMessage = 1 << 20

// errEndedEarly is a socket the server closed before the final event.
var errEndedEarly = errors.New("the server closed the socket before the operation ended")

// retryable reports whether Follow reconnects after err: not for an
// answer that will not change (unknown operation, refused key).
func retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == 429 || ae.Status >= 500
	}
	return true
}

// followOnce reads one socket until the final event, which it returns.
// It returns an error when the socket could not be opened or ended early.
func (c *Client) followOnce(ctx context.Context, id string, seen map[string]bool, fn func(Event)) (*Event, error) {
	u, err := c.endpoint("/v1/operations/"+url.PathEscape(id)+"/events", nil)
	if err != nil {
		return nil, err
	}
	// The context bounds the socket; a client Timeout would cut a long
	// operation short.
	hc := *c.httpClient()
	hc.Timeout = 0
	opts := &websocket.DialOptions{HTTPClient: &hc, HTTPHeader: map[string][]string{}}
	c.authorize(opts.HTTPHeader)
	conn, res, err := websocket.Dial(ctx, u.String(), opts)
	if err != nil {
		if res != nil && res.StatusCode >= 400 {
			return nil, apiError(res)
		}
		return nil, err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxMessage)
	for {
		_, body, err := conn.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				return nil, errEndedEarly
			}
			return nil, err
		}
		var ev Event
		if err := json.Unmarshal(body, &ev); err != nil {
			return nil, fmt.Errorf("decode a message: %w", err)
		}
		ev.normalize()
		if !ev.IsProgress() {
			if seen[ev.ID] {
				continue
			}
			seen[ev.ID] = true
		}
		if fn != nil {
			fn(ev)
		}
		// A parent's socket also carries its children's events: only
		// the operation's own end is final.
		if ev.Final() && (ev.OperationID == "" || ev.OperationID == id) {
			_ = conn.Close(websocket.StatusNormalClosure, "")
			return &ev, nil
		}
	}
}

// settle completes op with its final event when the server's state has
// not caught up with the stream yet (its projection lags by a moment).
func settle(op Operation, final Event) Operation {
	if op.Done() {
		return op
	}
	if op.SongID == "" {
		op.SongID = final.SongID
	}
	if f := final.Failure(); f != nil {
		op.Status, op.Stage, op.ErrorCode, op.Message = StatusFailed, "failed", f.Code, f.Message
		return op
	}
	if final.Kind == KindOperationCancelled {
		op.Status, op.Stage = StatusCancelled, "cancelled"
		return op
	}
	if final.Kind == KindPlaylistEnded {
		return op // the server's state says how it ended
	}
	op.Status, op.Stage = StatusSuccess, "stored"
	if op.SongID != "" {
		op.DCAURL = "/v1/songs/" + url.PathEscape(op.SongID) + "/dca"
	}
	return op
}
