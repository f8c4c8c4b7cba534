package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/nats-io/nats.go/jetstream"
)

// Counts of a parent's children, by state.
const (
	childQueued     = "queued"
	childInProgress = "in_progress"
)

// childResponse is one child of a parent operation.
type childResponse struct {
	OperationID string `json:"operation_id"`
	Position    int    `json:"position"`
	Query       string `json:"query"`
	SongID      string `json:"song_id"`
	Title       string `json:"title"`
	// Status is queued (not resolved yet), in_progress, success, failed
	// or cancelled.
	Status    string `json:"status"`
	Stage     string `json:"stage"`
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

// playlistInfo says what playlist a parent expanded.
type playlistInfo struct {
	Source    string `json:"source"`
	ID        string `json:"id"`
	Total     int    `json:"total"`
	Truncated bool   `json:"truncated"`
}

// parentView is a parent operation's children and their counts.
type parentView struct {
	playlist events.PlaylistResolved
	children []childResponse
	counts   map[string]int
}

// playlistOf is the playlist.resolved of operation opID, or nil when it
// is not a parent.
func (s *server) playlistOf(ctx context.Context, opID string) (*events.PlaylistResolved, error) {
	stream, err := s.eventStream(ctx)
	if err != nil {
		return nil, err
	}
	msg, err := stream.GetLastMsgForSubject(ctx, events.Subject(events.KindPlaylistResolved, opID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the playlist of %s: %w", opID, err)
	}
	_, ev, err := events.Decode(msg.Data)
	if err != nil {
		return nil, err
	}
	pl, ok := ev.(events.PlaylistResolved)
	if !ok {
		return nil, fmt.Errorf("playlist.resolved of %s holds %T", opID, ev)
	}
	return &pl, nil
}

// parent returns op as its children make it, when it is a parent: in
// progress while a child is, then success when every child succeeded,
// failed when none did, partial otherwise (cancelled when every child was
// cancelled). A parent that ended itself (cancelled, or its listing
// failed) keeps its own status. The view is nil for an operation that is
// not a parent.
func (s *server) parent(ctx context.Context, op projection.Operation) (projection.Operation, *parentView, error) {
	pl, err := s.playlistOf(ctx, op.ID)
	if err != nil || pl == nil {
		return op, nil, err
	}
	v := &parentView{playlist: *pl, counts: map[string]int{childQueued: 0, childInProgress: 0,
		v1Success: 0, v1Failed: 0, v1Cancelled: 0}}
	for _, ch := range pl.Children {
		c := childResponse{OperationID: ch.OperationID, Position: ch.Position, Query: ch.Query, SongID: ch.Song.ID, Title: ch.Song.Title, Status: childQueued}
		cop, _, err := s.current(ctx, ch.OperationID, false)
		switch {
		case errors.Is(err, projection.ErrNotFound):
		case err != nil:
			return op, nil, err
		default:
			c.Status = v1StatusOf(cop.Status)
			if c.Status == v1InProgress && (cop.Stage == projection.StageRequested || cop.Stage == "") {
				c.Status = childQueued
			}
			c.Stage, c.ErrorCode, c.Message = cop.Stage, cop.ErrorCode, cop.Message
			if cop.SongID != "" {
				c.SongID = cop.SongID
			}
		}
		v.counts[c.Status]++
		v.children = append(v.children, c)
	}
	if op.Final() {
		return op, v, nil
	}
	n := len(v.children)
	switch {
	case v.counts[childQueued]+v.counts[childInProgress] > 0:
		op.Status, op.Message = projection.StatusInProgress, fmt.Sprintf("%d of %d songs done", n-v.counts[childQueued]-v.counts[childInProgress], n)
	case v.counts[v1Success] == n:
		op.Status, op.Success, op.Message = projection.StatusSuccess, true, fmt.Sprintf("all %d songs stored", n)
	case v.counts[v1Cancelled] == n:
		op.Status, op.Message = projection.StatusCancelled, "every song was cancelled"
	case v.counts[v1Success] == 0:
		op.Status, op.Message = projection.StatusFailed, fmt.Sprintf("none of the %d songs could be stored", n)
	default:
		op.Status, op.Message = projection.StatusPartial, fmt.Sprintf("%d of %d songs stored", v.counts[v1Success], n)
	}
	return op, v, nil
}

// cancelChildren publishes operation.cancelled for every unfinished child
// of v, and returns how many.
func (s *server) cancelChildren(ctx context.Context, parentID string, v *parentView) (int, error) {
	n := 0
	for _, c := range v.children {
		if c.Status != childQueued && c.Status != childInProgress {
			continue
		}
		if err := s.publishCancel(ctx, c.OperationID, c.SongID, "its playlist "+parentID+" was cancelled"); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
