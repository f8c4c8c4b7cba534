package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/gofiber/fiber/v2"
)

// createRequest is POST /v1/operations' body.
type createRequest struct {
	// Query is a title, a YouTube URL or id, or a URL on an allowed host.
	Query string `json:"query"`
	// Playlist expands the playlist a watch URL's list= names.
	Playlist bool `json:"playlist"`
}

// createResponse is POST /v1/operations' answer. SongID is the song's id
// when the resolver named it within the short wait, else "". The URLs are
// paths on this gateway.
type createResponse struct {
	OperationID string `json:"operation_id"`
	SongID      string `json:"song_id"`
	StatusURL   string `json:"status_url"`
	EventsURL   string `json:"events_url"`
}

func statusURL(opID string) string { return "/v1/operations/" + opID }
func eventsURL(opID string) string { return "/v1/operations/" + opID + "/events" }
func dcaURL(songID string) string  { return "/v1/songs/" + songID + "/dca" }

// createOperation handles POST /v1/operations {"query"}: 202 with the new
// operation, or with the earlier one an Idempotency-Key names (then with
// Idempotent-Replayed: true).
func (s *server) createOperation(c *fiber.Ctx) error {
	if ct := c.Get(fiber.HeaderContentType); ct != "" {
		mt, _, _ := strings.Cut(ct, ";")
		if !strings.EqualFold(strings.TrimSpace(mt), fiber.MIMEApplicationJSON) {
			return errorf(CodeUnsupportedMedia, "the body must be JSON (Content-Type: application/json)")
		}
	}
	// encoding/json turns invalid UTF-8 into U+FFFD without an error; a
	// body that is not UTF-8 is not JSON (RFC 8259), so it is refused here
	// as ?song=%ff is.
	body := c.Body()
	if !utf8.Valid(body) {
		return errorf(CodeBadRequest, "the body must be UTF-8 JSON")
	}
	var req createRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return errorf(CodeBadRequest, `the body must be a JSON object such as {"query":"rick astley"}`)
	}
	if dec.More() {
		return errorf(CodeBadRequest, "the body must hold one JSON object")
	}
	query, err := checkQuery("query", req.Query)
	if err != nil {
		return err
	}
	sub, err := s.submit(c, "POST /v1/operations", query, req.Playlist)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderLocation, statusURL(sub.opID))
	return c.Status(fiber.StatusAccepted).JSON(createResponse{
		OperationID: sub.opID, SongID: sub.songID,
		StatusURL: statusURL(sub.opID), EventsURL: eventsURL(sub.opID),
	})
}

// Operation statuses of the v1 API.
const (
	v1InProgress = "in_progress"
	v1Success    = "success"
	v1Failed     = "failed"
	v1Cancelled  = "cancelled"
)

// operationResponse is GET /v1/operations/{id}: the operation's state and
// its history. Status is in_progress, success, failed or cancelled; Stage is the last
// step reached (requested, resolved, downloaded, encoded, stored, failed).
// ErrorCode and Message say why a failed operation failed. DCAURL is set
// once the DCA is stored.
type operationResponse struct {
	ID        string       `json:"id"`
	SongID    string       `json:"song_id"`
	Query     string       `json:"query"`
	Status    string       `json:"status"`
	Stage     string       `json:"stage"`
	Message   string       `json:"message"`
	ErrorCode string       `json:"error_code"`
	Attempts  int          `json:"attempts"`
	Failures  int          `json:"failures"`
	CreatedAt string       `json:"created_at"`
	UpdatedAt string       `json:"updated_at"`
	DCAURL    string       `json:"dca_url"`
	EventsURL string       `json:"events_url"`
	Events    []eventFrame `json:"events"`
	// Playlist, Children and Counts are set for a parent operation (a
	// playlist): its children in the playlist's order and how many are
	// queued, in_progress, success, failed and cancelled.
	Playlist *playlistInfo   `json:"playlist,omitempty"`
	Children []childResponse `json:"children,omitempty"`
	Counts   map[string]int  `json:"counts,omitempty"`
}

// operationID is the route's {id}, an operation's, noted for the access
// log; a malformed one is a 400.
func operationID(c *fiber.Ctx) (string, error) {
	opID := c.Params("id")
	if events.ValidOperationID(opID) != nil {
		return "", errorf(CodeBadRequest, "operation id must be 1 to 64 letters, digits, '-' or '_'")
	}
	c.Locals(localOperationID, opID)
	return opID, nil
}

// operationView is operation (its song noted for the access log) with
// its playlist's view when it is a playlist's parent.
func (s *server) operationView(ctx context.Context, c *fiber.Ctx, opID string, full bool) (projection.Operation, []eventFrame, *parentView, error) {
	op, hist, err := s.operation(ctx, opID, full)
	if err != nil {
		return op, nil, nil, err
	}
	if op.SongID != "" {
		c.Locals(localSongID, op.SongID)
	}
	op, parent, err := s.parent(ctx, op)
	if err != nil {
		return op, nil, nil, internal(err)
	}
	return op, hist, parent, nil
}

// getOperation handles GET /v1/operations/{id}.
func (s *server) getOperation(c *fiber.Ctx) error {
	opID, err := operationID(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), storeTimeout)
	defer cancel()
	op, hist, parent, err := s.operationView(ctx, c, opID, true)
	if err != nil {
		return err
	}
	res := operationResponse{
		ID: op.ID, SongID: op.SongID, Query: op.Query, Stage: op.Stage, Message: op.Message,
		ErrorCode: op.ErrorCode, Attempts: op.Attempts, Failures: op.Failures,
		CreatedAt: op.CreatedAt, UpdatedAt: op.UpdatedAt, EventsURL: eventsURL(op.ID),
		Events: hist,
	}
	if res.Events == nil {
		res.Events = []eventFrame{}
	}
	res.Status = v1StatusOf(op.Status)
	if parent != nil {
		pl := parent.playlist
		res.Playlist = &playlistInfo{Source: pl.Source, ID: pl.ID, Total: pl.Total, Truncated: pl.Truncated}
		res.Children, res.Counts = parent.children, parent.counts
	}
	if op.Success && op.SongID != "" {
		res.DCAURL = dcaURL(op.SongID)
	}
	if res.CreatedAt == "" {
		res.CreatedAt = op.ProcessingDate
	}
	if res.UpdatedAt == "" {
		res.UpdatedAt = op.ProcessingDate
	}
	return c.JSON(res)
}

// songResponse is a catalog entry in the v1 API. Stored is true once the
// DCA is stored; then DCASize, DCAFrames, DCALocation (a URL of the blob
// in its store) and DCAURL (where this gateway serves it) are set.
type songResponse struct {
	ID           string `json:"id"`
	Title        string `json:"title"`
	DurationMs   int64  `json:"duration_ms"`
	URL          string `json:"url"`
	ThumbnailURL string `json:"thumbnail_url"`
	Channel      string `json:"channel"`
	Source       string `json:"source"`
	Stored       bool   `json:"stored"`
	DCASize      int64  `json:"dca_size"`
	DCAFrames    int64  `json:"dca_frames"`
	DCALocation  string `json:"dca_location"`
	DCAURL       string `json:"dca_url"`
	// OggURL is where this gateway serves the song as Ogg Opus.
	OggURL string `json:"ogg_url,omitempty"`
	// Mode, ModeReason, LoudnessLUFS and TruePeakDB: how the DCA was
	// made and how loud it is (absent when not known).
	Mode         string   `json:"mode,omitempty"`
	ModeReason   string   `json:"mode_reason,omitempty"`
	LoudnessLUFS *float64 `json:"loudness_lufs,omitempty"`
	TruePeakDB   *float64 `json:"true_peak_db,omitempty"`
	UpdatedAt    string   `json:"updated_at"`
}

func songOf(p projection.Song) songResponse {
	r := songResponse{
		ID: p.ID, Title: p.Title, DurationMs: p.DurationMs, URL: p.URL, ThumbnailURL: p.ThumbnailURL,
		Channel: p.Channel, Source: p.Source, UpdatedAt: p.UpdatedAt,
	}
	if p.DCAKey != "" {
		r.Stored = true
		r.DCASize, r.DCAFrames, r.DCALocation, r.DCAURL = p.DCASize, p.DCAFrames, p.DCALocation, dcaURL(p.ID)
		r.OggURL = "/v1/songs/" + p.ID + "/ogg"
	}
	if p.DCAFrames > 0 {
		r.Mode, r.ModeReason, r.LoudnessLUFS, r.TruePeakDB = p.Mode, p.ModeReason, p.LoudnessLUFS, p.TruePeakDB
	}
	return r
}

// songsResponse is one page of GET /v1/songs. NextCursor is "" on the last
// page; NextURL is the path of the next page ("" on the last).
type songsResponse struct {
	Songs      []songResponse `json:"songs"`
	NextCursor string         `json:"next_cursor"`
	NextURL    string         `json:"next_url"`
}

// Page sizes of GET /v1/songs.
const (
	defaultSongsLimit = 20
	maxSongsLimit     = 100
	maxCursorBytes    = 1024
)

// searchSongs handles GET /v1/songs?q=&limit=&cursor=.
func (s *server) searchSongs(c *fiber.Ctx) error {
	q := strings.TrimSpace(c.Query("q"))
	if len(q) > maxQueryBytes {
		return errorf(CodeBadRequest, fmt.Sprintf("q must be at most %d bytes", maxQueryBytes))
	}
	limit := defaultSongsLimit
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxSongsLimit {
			return errorf(CodeBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d", maxSongsLimit))
		}
		limit = n
	}
	cursor := c.Query("cursor")
	if len(cursor) > maxCursorBytes {
		return errorf(CodeBadRequest, "malformed cursor")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), storeTimeout)
	defer cancel()
	songs, next, err := s.store.SearchSongs(ctx, q, limit, cursor)
	if err != nil {
		var bad *projection.BadCursorError
		if errors.As(err, &bad) {
			return errorf(CodeBadRequest, "malformed cursor: use next_cursor from the previous page")
		}
		return internal(fmt.Errorf("search songs: %w", err))
	}
	res := songsResponse{Songs: make([]songResponse, 0, len(songs)), NextCursor: next}
	for _, p := range songs {
		res.Songs = append(res.Songs, songOf(p))
	}
	if next != "" {
		v := url.Values{}
		if q != "" {
			v.Set("q", q)
		}
		v.Set("limit", strconv.Itoa(limit))
		v.Set("cursor", next)
		res.NextURL = "/v1/songs?" + v.Encode()
	}
	return c.JSON(res)
}

// getSong handles GET /v1/songs/{id}.
func (s *server) getSong(c *fiber.Ctx) error {
	id, err := songParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), storeTimeout)
	defer cancel()
	song, err := s.store.Song(ctx, id)
	if errors.Is(err, projection.ErrNotFound) {
		return errorf(CodeNotFound, "unknown song")
	}
	if err != nil {
		return internal(fmt.Errorf("read song: %w", err))
	}
	return c.JSON(songOf(song))
}
