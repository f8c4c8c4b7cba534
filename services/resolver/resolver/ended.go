package resolver

import (
	"context"
	"errors"
	"fmt"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/nats-io/nats.go/jetstream"
)

// parentEnds ends parent operations: its worker (consumer
// events.ConsumerPlaylists) takes every operation's end, and when the
// operation is a playlist's child whose siblings have all ended too, it
// publishes the parent's playlist.ended with the children's counts. Of
// two children ending at once, the one handled last sees both ends; when
// both see them, the derived id (events.PlaylistEndedID) stores one.
//
// It reads the stream only: the child's song.requested (its parent), the
// parent's playlist.resolved (its children) and each child's first final
// event, each by its exact subject.
type parentEnds struct {
	stream jetstream.Stream
	pub    stage.Publisher
}

// errNotListed: a child ended before its parent's playlist.resolved was
// stored (the resolver stores the children first); tried again.
var errNotListed = errors.New("resolver: the parent's playlist.resolved is not stored yet")

func (p *parentEnds) handle(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
	req, ok, err := p.last(ctx, events.KindSongRequested, d.Envelope.OperationID)
	if err != nil || !ok {
		return nil, err
	}
	sr, isReq := req.(events.SongRequested)
	if !isReq || sr.Parent == "" {
		return nil, nil
	}
	parent := sr.Parent
	plEv, ok, err := p.last(ctx, events.KindPlaylistResolved, parent)
	if err != nil {
		return nil, err
	}
	if !ok {
		// The parent's own end (its listing failed, it was cancelled)
		// leaves nothing to do.
		if end, _, err := p.firstFinal(ctx, parent); err != nil || end != "" {
			return nil, err
		}
		return nil, errNotListed
	}
	pl := plEv.(events.PlaylistResolved)
	if end, _, err := p.firstFinal(ctx, parent); err != nil || end != "" {
		return nil, err
	}
	counts := map[string]int{events.PlaylistSuccess: 0, events.PlaylistFailed: 0, events.PlaylistCancelled: 0}
	for _, c := range pl.Children {
		end, _, err := p.firstFinal(ctx, c.OperationID)
		if err != nil {
			return nil, err
		}
		switch end {
		case "":
			return nil, nil // a sibling is still at work
		case events.KindUploadDone:
			counts[events.PlaylistSuccess]++
		case events.KindOperationCancelled:
			counts[events.PlaylistCancelled]++
		default:
			counts[events.PlaylistFailed]++
		}
	}
	ev := events.PlaylistEnded{Status: events.PlaylistOutcome(counts, len(pl.Children)), Counts: counts}
	env, err := events.NewWithID(events.PlaylistEndedID(parent), parent, "", ev)
	if err != nil {
		return nil, events.Wrap(events.CodeInternal, err, "playlist.ended could not be made")
	}
	if _, err := p.pub.Publish(ctx, env); err != nil {
		return nil, fmt.Errorf("resolver: publish playlist.ended of %s: %w", parent, err)
	}
	d.Log.Info("resolver: playlist ended", "parent", parent, "status", ev.Status, "counts", counts)
	return nil, nil
}

// last is the decoded last event of kind k of operation opID, if any.
func (p *parentEnds) last(ctx context.Context, k events.Kind, opID string) (events.Event, bool, error) {
	msg, err := p.stream.GetLastMsgForSubject(ctx, events.Subject(k, opID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("resolver: read %s of %s: %w", k, opID, err)
	}
	_, ev, err := events.Decode(msg.Data)
	if err != nil {
		return nil, false, nil
	}
	return ev, true, nil
}

// firstFinal is the kind of operation opID's first final event ("" when
// it has not ended) and its sequence.
func (p *parentEnds) firstFinal(ctx context.Context, opID string) (events.Kind, uint64, error) {
	var kind events.Kind
	var seq uint64
	for _, k := range events.FinalKinds {
		m, err := p.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(events.Subject(k, opID)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return "", 0, fmt.Errorf("resolver: read the end of %s: %w", opID, err)
		}
		if kind == "" || m.Sequence < seq {
			kind, seq = k, m.Sequence
		}
	}
	return kind, seq, nil
}
