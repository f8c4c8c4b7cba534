package fetcher

import (
	"context"
	"errors"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/sourcestream"
	"github.com/butakero/butakero/platform/runtime/claims"
	"github.com/butakero/butakero/platform/runtime/stage"
)

// ended lets go of what a cancelled operation's video.resolved held (the
// stage runtime runs it for every message that ends; only a cancel leaves
// anything behind here): its staged download, if one was stored before the
// cancel stopped it, is deleted, and the song's claim, if the operation
// holds it, is released, so that another operation of the same song takes
// the download over at once, and the source's chunks on BUTAKERO_SOURCES
// are purged. The other ends keep their own rules (see
// settle: the encoder releases the claim after a success). It is safe to
// run twice.
func (h *handler) ended(ctx context.Context, d stage.Delivery, o stage.Outcome) {
	if !o.Cancelled {
		return
	}
	opID := d.Envelope.OperationID
	staged, err := h.blobs.List(ctx, blob.StagingPrefix+opID+".")
	if err != nil {
		d.Log.Warn("fetcher: list the cancelled operation's staged audio", "error", err)
	}
	for _, b := range staged {
		if err := h.blobs.Delete(ctx, b.Key); err != nil {
			d.Log.Warn("fetcher: delete the cancelled operation's staged audio", "key", b.Key, "error", err)
		}
	}
	// The source published as it arrived: an early encode reading it
	// stops (its run is gone).
	if h.fetcher != nil && h.fetcher.Arrivals != nil {
		if err := sourcestream.Purge(ctx, h.fetcher.Arrivals.JS, opID); err != nil {
			d.Log.Warn("fetcher: purge the cancelled operation's source chunks", "error", err)
		}
	}
	songID := d.Envelope.SongID
	if ev, ok := d.Event.(events.VideoResolved); ok && ev.Song.ID != "" {
		songID = ev.Song.ID
	}
	if events.ValidSongID(songID) != nil {
		return
	}
	// Acquire answers the claim only to its owner: a claim another
	// operation holds (this one was waiting for it) is left alone.
	claim, _, err := h.claims.Acquire(ctx, songID, opID)
	if err != nil {
		d.Log.Warn("fetcher: release the cancelled operation's claim", "error", err)
		return
	}
	if claim == nil {
		return
	}
	if err := claim.Release(ctx); err != nil && !errors.Is(err, claims.ErrLost) {
		d.Log.Warn("fetcher: release the cancelled operation's claim", "error", err)
	}
}
