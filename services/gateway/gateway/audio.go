package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxQueryBytes bounds what a user may type as a song: a title or a URL.
const maxQueryBytes = 512

type startResponse struct {
	OperationID string `json:"operation_id"`
	SongID      string `json:"song_id"`
}

// start handles POST /api/audio/start?song=…: it publishes song.requested
// for a new operation and waits up to startWait for the resolver to name the
// song, answering with an empty song_id when it does not in time.
func (s *server) start(c *fiber.Ctx) error {
	query, err := songQuery(c.Query("song"))
	if err != nil {
		return err
	}
	opID := events.NewID()
	c.Locals(localOperationID, opID)
	env, err := events.New(opID, "", events.SongRequested{Query: query})
	if err != nil {
		return internal(fmt.Errorf("build song.requested: %w", err))
	}
	songID, err := s.request(c.UserContext(), env)
	if err != nil {
		return internal(err)
	}
	if songID != "" {
		c.Locals(localSongID, songID)
	}
	return c.JSON(startResponse{OperationID: opID, SongID: songID})
}

// songQuery validates the song parameter and returns it trimmed, as a copy
// that does not alias fasthttp's request buffer.
func songQuery(raw string) (string, error) {
	q := strings.TrimSpace(raw)
	switch {
	case q == "":
		return "", errorf(CodeBadRequest, "song is required")
	case len(q) > maxQueryBytes:
		return "", errorf(CodeBadRequest, fmt.Sprintf("song must be at most %d bytes", maxQueryBytes))
	case !utf8.ValidString(q):
		return "", errorf(CodeBadRequest, "song must be valid UTF-8")
	case strings.IndexFunc(q, unicode.IsControl) >= 0:
		return "", errorf(CodeBadRequest, "song must not contain control characters")
	}
	return strings.Clone(q), nil
}

// request publishes env (a song.requested) and returns the song id of the
// operation's video.resolved when it arrives within startWait, else "".
// It subscribes before publishing, so a resolver faster than this function
// cannot be missed; operation.failed ends the wait early. Only a failure to
// subscribe or publish is an error: then nothing, or possibly an unacked
// copy, is in the stream.
func (s *server) request(ctx context.Context, env events.Envelope) (string, error) {
	found := make(chan *nats.Msg, 8)
	for _, k := range []events.Kind{events.KindVideoResolved, events.KindOperationFailed} {
		sub, err := s.nc.ChanSubscribe(events.Subject(k, env.OperationID), found)
		if err != nil {
			return "", fmt.Errorf("subscribe to %s: %w", k, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	// JS may sit on another connection than NC: make sure the server has
	// the subscriptions before anything can answer.
	fctx, cancel := context.WithTimeout(ctx, publishTimeout)
	err := s.nc.FlushWithContext(fctx)
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

	wait := time.NewTimer(s.startWait)
	defer wait.Stop()
	for {
		select {
		case m := <-found:
			got, ev, err := events.Decode(m.Data)
			if err != nil {
				s.log.Warn("undecodable event while waiting for the song id",
					"operation_id", env.OperationID, "subject", m.Subject, "error", err)
				continue
			}
			switch ev := ev.(type) {
			case events.VideoResolved:
				if got.SongID != "" {
					return got.SongID, nil
				}
				return ev.Song.ID, nil
			case events.OperationFailed:
				return "", nil
			}
		case <-wait.C:
			return "", nil
		case <-ctx.Done():
			return "", nil
		}
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
	opID = strings.Clone(opID)
	c.Locals(localOperationID, opID)
	songID := c.Query("song_id")
	if songID != "" && !validSongID(songID) {
		return errorf(CodeBadRequest, "song_id must be 1 to 128 letters, digits, '-' or '_'")
	}

	ctx, cancel := context.WithTimeout(c.UserContext(), storeTimeout)
	defer cancel()
	op, err := s.store.Operation(ctx, opID)
	if errors.Is(err, projection.ErrNotFound) {
		op, err = s.requested(ctx, opID)
	}
	if errors.Is(err, projection.ErrNotFound) {
		return errorf(CodeNotFound, "unknown operation")
	}
	if err != nil {
		return internal(fmt.Errorf("read operation: %w", err))
	}
	if songID != "" && op.SongID != "" && songID != op.SongID {
		return errorf(CodeNotFound, "the operation is not for this song")
	}
	if op.SongID != "" {
		c.Locals(localSongID, op.SongID)
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

// requested is the state of an operation the projection does not hold yet:
// if its song.requested is in the stream, the recorder merely lags and the
// operation has just started. It returns projection.ErrNotFound otherwise.
func (s *server) requested(ctx context.Context, opID string) (projection.Operation, error) {
	stream, err := s.js.Stream(ctx, events.StreamName)
	if err != nil {
		return projection.Operation{}, fmt.Errorf("open stream %s: %w", events.StreamName, err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, events.Subject(events.KindSongRequested, opID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return projection.Operation{}, projection.ErrNotFound
	}
	if err != nil {
		return projection.Operation{}, fmt.Errorf("read song.requested: %w", err)
	}
	env, _, err := events.Decode(msg.Data)
	if err != nil {
		return projection.Operation{}, fmt.Errorf("decode song.requested: %w", err)
	}
	return projection.Operation{
		ID:             opID,
		Status:         projection.StatusInProgress,
		Stage:          projection.StageRequested,
		Attempts:       1,
		ProcessingDate: env.Time.UTC().Format(time.RFC3339),
	}, nil
}

// validSongID accepts what can name a song: the YouTube video id or the
// "url-…" id of a direct URL, both made of [A-Za-z0-9_-].
func validSongID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
