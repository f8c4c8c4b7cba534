package fetcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/runtime/claims"
	"github.com/butakero/butakero/platform/runtime/membudget"
	"github.com/butakero/butakero/platform/runtime/stage"
)

// Claims is the part of the claims store the fetcher needs
// (*claims.Store): one operation at a time downloads a song.
type Claims interface {
	// Acquire takes the claim on song for the operation owner, or returns
	// the current holder's Record (see claims.Store.Acquire).
	Acquire(ctx context.Context, song, owner string) (*claims.Claim, claims.Record, error)
	// Wait blocks until the claim is no longer held as held, or ctx ends.
	Wait(ctx context.Context, song string, held claims.Record) error
}

var _ Claims = (*claims.Store)(nil)

// JoinedWhat labels butakero_singleflight_joins_total for a request that
// waited for another request's download of the same song.
const JoinedWhat = "fetch"

// settleTimeout bounds the claim writes made after an attempt, whose own
// context may have expired.
const settleTimeout = 10 * time.Second

// handler handles video.resolved deliveries.
type handler struct {
	fetcher     *Fetcher
	blobs       Blobs
	claims      Claims
	metrics     *fetcherMetrics
	maxAttempts int
	memory      *membudget.Budget
}

// handle answers one video.resolved. In order:
//
//  1. The song's DCA is stored (Stat is the truth, whether or not an
//     upload.done was ever published for it): answer upload.done with
//     Cached set, fetch nothing.
//  2. Take the song's claim. Got it (or already had it: a redelivery of
//     this operation): download, answer audio.downloaded, and leave the
//     claim to the encoder, which releases it once the DCA is stored.
//  3. Another operation holds it: wait until it is released, expires or
//     fails, then go back to 1. A failed claim ends this operation with the
//     owner's permanent failure.
//
// The wait runs inside the attempt: the stage runtime keeps the message
// alive with InProgress heartbeats, and STAGE_TIMEOUT bounds it like any
// attempt. An attempt that times out while the owner still works is
// retried like any timeout (Nak with backoff), so a waiter fails only if
// one song's claim stays held for about MAX_ATTEMPTS × STAGE_TIMEOUT, by
// which time the owner itself has run out of attempts. A waiter holds one
// of the fetch slots (Config.FetchConcurrency) while it waits, using no
// CPU.
//
// It is safe to run twice: the runtime derives the ids of the events it
// returns from the delivery, and a second download replaces the first.
func (h *handler) handle(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
	song, err := songOf(d)
	if err != nil {
		return nil, err
	}
	opID := d.Envelope.OperationID
	log := d.Log
	joined := false
	for {
		if info, ok, err := h.stored(ctx, song.ID); err != nil {
			return nil, err
		} else if ok {
			return h.cached(d, song, info), nil
		}
		claim, held, err := h.claims.Acquire(ctx, song.ID, opID)
		if err != nil {
			return nil, events.Wrap(events.CodeInternal, err, "the download could not be coordinated")
		}
		if claim != nil {
			// The owner may have stored the DCA and released the claim
			// between the check above and Acquire.
			if info, ok, err := h.stored(ctx, song.ID); err == nil && ok {
				h.release(ctx, claim, log)
				return h.cached(d, song, info), nil
			}
			return h.fetch(ctx, d, song, claim)
		}
		if held.State == claims.StateFailed {
			if code := events.Code(held.Code); code.Permanent() {
				log.Info("fetcher: the same song failed for another operation", "owner", held.Owner, "code", code)
				return nil, events.Fail(code, "%s", held.Message)
			}
		}
		if !joined {
			joined = true
			h.metrics.SingleFlightJoined(JoinedWhat)
			log.Info("fetcher: another operation is fetching this song; waiting for its DCA", "owner", held.Owner)
		}
		if err := h.claims.Wait(ctx, song.ID, held); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("fetcher: waiting for operation %s's download of the same song: %w", held.Owner, err)
			}
			return nil, events.Wrap(events.CodeInternal, err, "the download could not be coordinated")
		}
	}
}

// quick answers a song whose DCA is stored with its upload.done, beside
// the download slots (stage.Worker.Quick): one blob stat, no claim.
// Anything else is stage.ErrNotQuick and waits for a slot, where handle
// looks again.
func (h *handler) quick(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
	song, err := songOf(d)
	if err != nil {
		return nil, err
	}
	info, ok, err := h.stored(ctx, song.ID)
	switch {
	case err != nil:
		return nil, err
	case ok:
		return h.cached(d, song, info), nil
	}
	return nil, stage.ErrNotQuick
}

// songOf is the song of d's video.resolved, with a valid id.
func songOf(d stage.Delivery) (events.Song, error) {
	ev, ok := d.Event.(events.VideoResolved)
	if !ok {
		return events.Song{}, events.Fail(events.CodeInvalidInput, "the fetcher cannot handle %s", d.Envelope.Type)
	}
	song := ev.Song
	if song.ID == "" {
		song.ID = d.Envelope.SongID
	}
	if err := events.ValidSongID(song.ID); err != nil {
		return events.Song{}, events.Fail(events.CodeInvalidInput, "the song has no valid id")
	}
	return song, nil
}

// stored reports whether song's DCA is in the blob store, with its Info.
// A zero-byte blob does not count (the encoder never stores one).
func (h *handler) stored(ctx context.Context, songID string) (blob.Info, bool, error) {
	info, err := h.blobs.Stat(ctx, blob.DCAKey(songID))
	if errors.Is(err, blob.ErrNotFound) {
		return blob.Info{}, false, nil
	}
	if err != nil {
		return blob.Info{}, false, events.Wrap(events.CodeInternal, err, "the blob store could not be read")
	}
	return info, info.Size > 0, nil
}

// cached ends the operation with upload.done for the stored DCA.
func (h *handler) cached(d stage.Delivery, song events.Song, info blob.Info) []stage.Emit {
	d.Log.Info("fetcher: song already stored; nothing fetched", "dca_key", blob.DCAKey(song.ID), "dca_size", info.Size)
	return []stage.Emit{{SongID: song.ID, Event: events.UploadDone{
		Song: song, Key: blob.DCAKey(song.ID), Location: info.Location, Size: info.Size, Cached: true,
	}}}
}

// fetch downloads song as the holder of its claim, which it keeps alive
// meanwhile, and answers audio.downloaded. On success the claim stays for
// the encoder. On failure: a permanent one is recorded in the claim (the
// waiters end with it); on the last attempt the claim is released (a
// waiter takes over with attempts of its own); otherwise the claim is kept
// for this operation's next attempt.
func (h *handler) fetch(ctx context.Context, d stage.Delivery, song events.Song, claim *claims.Claim) ([]stage.Emit, error) {
	stop := claim.Keep(ctx)
	release := h.memory.Hold(song.ID)
	done, err := h.fetcher.Fetch(ctx, d.Envelope.OperationID, song, d.Log)
	release()
	if kerr := stop(); kerr != nil {
		d.Log.Warn("fetcher: the song's claim was lost during the download", "error", kerr)
	}
	if err != nil {
		settle(ctx, claim, err, d.Attempt >= h.maxAttempts, d.Log)
		return nil, err
	}
	return []stage.Emit{{SongID: done.Song.ID, Event: done}}, nil
}

// settle records a failed attempt of the claim's owner: a permanent
// failure is written to the claim, a final transient one releases it, any
// other leaves it for the owner's next attempt (or its expiry).
func settle(ctx context.Context, claim *claims.Claim, err error, last bool, log *slog.Logger) {
	f := events.AsFailure(err)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	switch {
	case f.Code.Permanent():
		if cerr := claim.Fail(ctx, string(f.Code), f.Message); cerr != nil {
			log.Warn("fetcher: record the failure in the song's claim", "error", cerr)
		}
	case last:
		if cerr := claim.Release(ctx); cerr != nil && !errors.Is(cerr, claims.ErrLost) {
			log.Warn("fetcher: release the song's claim", "error", cerr)
		}
	}
}

// release gives a claim up, logging a failure (the claim then expires).
func (h *handler) release(ctx context.Context, claim *claims.Claim, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if err := claim.Release(ctx); err != nil && !errors.Is(err, claims.ErrLost) {
		log.Warn("fetcher: release the song's claim", "error", err)
	}
}
