package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/media/songquery"
	"github.com/butakero/butakero/platform/projection"
	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
)

// maxQueryBytes bounds what a user may type as a song, a title or a URL,
// and a catalog search: the resolver's limit (songquery.MaxBytes), so a
// query the gateway publishes is never refused for its length.
const maxQueryBytes = songquery.MaxBytes

type startResponse struct {
	OperationID string `json:"operation_id"`
	SongID      string `json:"song_id"`
}

// start handles POST /api/audio/start?song=…: it publishes song.requested
// for a new operation and waits up to startWait for the resolver to name the
// song, answering with an empty song_id when it does not in time. A
// playlist (songquery.PlaylistOf) is answered at once with its parent's id and an
// empty song_id: a parent has no song. An Idempotency-Key header makes a
// retry answer with the first operation.
func (s *server) start(c *fiber.Ctx) error {
	query, err := songQuery(c.Query("song"))
	if err != nil {
		return err
	}
	sub, err := s.submit(c, "POST /api/audio/start", query, false)
	if err != nil {
		return err
	}
	return c.JSON(startResponse{OperationID: sub.opID, SongID: sub.songID})
}

// submission is the outcome of a song request.
type submission struct {
	opID, songID string
	// replayed is true when an Idempotency-Key named an earlier request,
	// whose operation this is; HeaderReplayed is then set on the answer.
	replayed bool
}

// submit starts an operation for query, or, with an Idempotency-Key the
// caller used before for the same route, query and playlist flag, returns
// that operation. route names the endpoint in the key's fingerprint. A new
// operation's song id is what the resolver says within startWait (none
// for a playlist, which is not waited for); a replay's is what the
// projection or the stream knows now.
func (s *server) submit(c *fiber.Ctx, route, query string, playlist bool) (submission, error) {
	ctx := c.UserContext()
	key := c.Get(HeaderIdempotencyKey)
	// Whether the query names a playlist is the resolver's rule, asked of
	// the same package: a parent has no song id to wait for. A query the
	// resolver then takes otherwise only gets its song id later, from the
	// status.
	_, atOnce := songquery.PlaylistOf(query, playlist, s.cfg.AllowedMediaHosts)
	if key == "" {
		opID := events.NewID()
		c.Locals(localOperationID, opID)
		env, err := events.New(opID, "", events.SongRequested{Query: query, Playlist: playlist})
		if err != nil {
			return submission{}, internal(fmt.Errorf("build song.requested: %w", err))
		}
		return s.publishNew(c, env, atOnce)
	}
	if !validIdempotencyKey(key) {
		return submission{}, errorf(CodeBadRequest, "Idempotency-Key must be 1 to 255 printable ASCII characters")
	}
	kctx, cancel := context.WithTimeout(ctx, storeTimeout)
	rec, fresh, err := s.claim(kctx, idempotencyScope(clientOf(c)), key, route, query, playlist)
	cancel()
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return submission{}, e
		}
		return submission{}, internal(err)
	}
	c.Locals(localOperationID, rec.OperationID)
	// The request is the record's: a replay publishes what the first
	// request asked, playlist flag included.
	env, err := events.NewWithID(events.DeriveID(rec.OperationID, events.TypeSongRequested),
		rec.OperationID, "", events.SongRequested{Query: rec.Query, Playlist: rec.Playlist})
	if err != nil {
		return submission{}, internal(fmt.Errorf("build song.requested: %w", err))
	}
	if fresh {
		return s.publishNew(c, env, atOnce)
	}

	// A replay: make sure the operation was published (the owner may still
	// be at it, or have died before), then answer with what is known.
	c.Set(HeaderReplayed, "true")
	rctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	op, _, err := s.current(rctx, rec.OperationID, false)
	if errors.Is(err, projection.ErrNotFound) {
		pctx, pcancel := context.WithTimeout(ctx, publishTimeout)
		_, err = s.pub.Publish(pctx, env)
		pcancel()
		if err != nil {
			return submission{}, internal(fmt.Errorf("republish song.requested: %w", err))
		}
	} else if err != nil {
		return submission{}, internal(err)
	}
	songID := op.SongID
	if songID != "" {
		c.Locals(localSongID, songID)
	}
	return submission{opID: rec.OperationID, songID: songID, replayed: true}, nil
}

// publishNew publishes a new operation's song.requested and, unless
// atOnce, waits for its song id (see request).
func (s *server) publishNew(c *fiber.Ctx, env events.Envelope, atOnce bool) (submission, error) {
	if atOnce {
		pctx, cancel := context.WithTimeout(c.UserContext(), publishTimeout)
		_, err := s.pub.Publish(pctx, env)
		cancel()
		if err != nil {
			return submission{}, internal(fmt.Errorf("publish song.requested: %w", err))
		}
		return submission{opID: env.OperationID}, nil
	}
	songID, err := s.request(c.UserContext(), env)
	if err != nil {
		return submission{}, internal(err)
	}
	if songID != "" {
		c.Locals(localSongID, songID)
	}
	return submission{opID: env.OperationID, songID: songID}, nil
}

// songQuery validates the song parameter and returns it trimmed.
func songQuery(raw string) (string, error) { return checkQuery("song", raw) }

// checkQuery validates what a user typed as a song, named name in the
// error messages.
func checkQuery(name, raw string) (string, error) {
	q := strings.TrimSpace(raw)
	switch {
	case q == "":
		return "", errorf(CodeBadRequest, name+" is required")
	case len(q) > maxQueryBytes:
		return "", errorf(CodeBadRequest, fmt.Sprintf("%s must be at most %d bytes", name, maxQueryBytes))
	case !utf8.ValidString(q):
		return "", errorf(CodeBadRequest, name+" must be valid UTF-8")
	case strings.ContainsRune(q, utf8.RuneError):
		// U+FFFD stands for text lost in decoding, e.g. a JSON escape of a
		// lone surrogate ("\ud800"), which encoding/json decodes to it:
		// nothing to search for.
		return "", errorf(CodeBadRequest, name+" must not contain U+FFFD, the mark of undecodable text")
	case strings.IndexFunc(q, unicode.IsControl) >= 0:
		return "", errorf(CodeBadRequest, name+" must not contain control characters")
	}
	return q, nil
}

// request publishes env (a song.requested) and returns the song id of the
// operation's video.resolved when it arrives within startWait, else "".
// It subscribes before publishing, so a resolver faster than this function
// cannot be missed; operation.failed ends the wait early. For a song the
// hub saw stored, it then waits up to storedWait more (within startWait)
// for the operation's end, which the fetcher answers from the stored DCA:
// the client's first status read is then final. An end it sees (a stored
// song's, or a failure or cancellation at any point) returns once the
// hub has folded it too, or after foldWait (awaitFold), which may take
// the answer up to foldWait past startWait. Only a failure to
// subscribe or publish is an error: then nothing, or possibly an unacked
// copy, is in the stream.
func (s *server) request(ctx context.Context, env events.Envelope) (string, error) {
	found := make(chan *nats.Msg, 16)
	sub, err := s.nc.ChanSubscribe(events.OperationSubjects(env.OperationID), found)
	if err != nil {
		return "", fmt.Errorf("subscribe to the operation's events: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// JS may sit on another connection than NC: make sure the server has
	// the subscription before anything can answer.
	fctx, cancel := context.WithTimeout(ctx, publishTimeout)
	err = s.nc.FlushWithContext(fctx)
	cancel()
	if err != nil {
		return "", fmt.Errorf("flush subscriptions: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	_, err = s.pub.Publish(pctx, env)
	cancel()
	if err != nil {
		return "", fmt.Errorf("publish song.requested: %w", err)
	}

	begin := time.Now()
	wait := time.NewTimer(s.startWait)
	defer wait.Stop()
	songID := ""
	for {
		select {
		case m := <-found:
			kind, _, _ := events.KindOf(m.Subject)
			if kind != events.KindVideoResolved && !slices.Contains(events.FinalKinds, kind) {
				continue
			}
			got, ev, err := events.Decode(m.Data)
			if err != nil {
				s.log.Warn("undecodable event while waiting for the song id",
					"operation_id", env.OperationID, "subject", m.Subject, "error", err)
				continue
			}
			resolved, ok := ev.(events.VideoResolved)
			if !ok {
				// The operation ended (stored, failed or cancelled).
				s.awaitFold(ctx, env.OperationID)
				return songID, nil
			}
			songID = cmp.Or(got.SongID, resolved.Song.ID)
			left := s.startWait - time.Since(begin)
			if s.storedWait <= 0 || left <= 0 || !s.hub.live.isStored(songID) {
				return songID, nil
			}
			wait.Reset(min(s.storedWait, left))
		case <-wait.C:
			return songID, nil
		case <-ctx.Done():
			return songID, nil
		}
	}
}

// foldWait bounds how long a POST that saw its operation end waits for
// the hub to fold that end (awaitFold).
const foldWait = 250 * time.Millisecond

// awaitFold waits, up to foldWait, until the hub has folded the end of
// operation opID, which request saw on its own subscription: a status
// read is answered from that fold (current), and the end reaches the
// subscription as it is published, before the stream has stored it and
// delivered it to the hub. On one server the two come together; on a
// three-node cluster the stream's replication comes between them, and
// without this wait a quarter of the first status reads after a stored
// song's POST found the operation not ended yet (bench section 7, two
// processes: 70-75 % final at the first read, 100 % with it; see the
// README's Projections that keep up).
func (s *server) awaitFold(ctx context.Context, opID string) {
	folded, stop := s.hub.live.awaitEnd(opID)
	defer stop()
	bound := time.NewTimer(foldWait)
	defer bound.Stop()
	select {
	case <-folded:
	case <-bound.C:
	case <-ctx.Done():
	}
}

// statusBody is the seed's status object. Its fields are always present;
// error_code is an addition, present when the operation failed with one.
type statusBody struct {
	ID             string `json:"id"`
	SongID         string `json:"song_id"`
	Status         string `json:"status"`
	Message        string `json:"message"`
	Data           string `json:"data"`
	ProcessingDate string `json:"processing_date"`
	Success        bool   `json:"success"`
	Attempts       int    `json:"attempts"`
	Failures       int    `json:"failures"`
	Stage          string `json:"stage"`
	ErrorCode      string `json:"error_code,omitempty"`
}

type statusResponse struct {
	Status statusBody `json:"status"`
}

// status handles GET /api/audio/status?operation_id=…[&song_id=…].
func (s *server) status(c *fiber.Ctx) error {
	opID := c.Query("operation_id")
	if opID == "" {
		return errorf(CodeBadRequest, "operation_id is required")
	}
	if events.ValidOperationID(opID) != nil {
		return errorf(CodeBadRequest, "operation_id must be 1 to 64 letters, digits, '-' or '_'")
	}
	c.Locals(localOperationID, opID)
	songID := c.Query("song_id")
	if songID != "" && events.ValidSongID(songID) != nil {
		return errorf(CodeBadRequest, "song_id must be 1 to 128 letters, digits, '-' or '_'")
	}

	ctx, cancel := context.WithTimeout(c.UserContext(), storeTimeout)
	defer cancel()
	op, _, err := s.operation(ctx, opID, false)
	if err != nil {
		return err
	}
	if songID != "" && op.SongID != "" && songID != op.SongID {
		return errorf(CodeNotFound, "the operation is not for this song")
	}
	if op.SongID != "" {
		c.Locals(localSongID, op.SongID)
	}
	// Only a parent in progress takes its status from its children: a
	// finished operation keeps its own (see parent), and one past
	// song.requested's stage resolved a single song (a parent's stage
	// stays requested until it ends). Neither needs the playlist read.
	if !op.Final() && (op.Stage == "" || op.Stage == projection.StageRequested) {
		if op, _, err = s.parent(ctx, op); err != nil {
			return internal(err)
		}
	}
	return c.JSON(statusResponse{Status: statusBody{
		ID:             op.ID,
		SongID:         op.SongID,
		Status:         op.Status,
		Message:        op.Message,
		Data:           op.Data,
		ProcessingDate: op.ProcessingDate,
		Success:        op.Success,
		Attempts:       op.Attempts,
		Failures:       op.Failures,
		Stage:          op.Stage,
		ErrorCode:      op.ErrorCode,
	}})
}
