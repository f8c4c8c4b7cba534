// Package client is a small Go client for Butakero's HTTP API, for Discord
// bots and other programs: request a song, follow it live until its DCA is
// stored, read the catalog and download the DCA.
//
// A Client is a plain struct; the zero HTTPClient means http.DefaultClient.
// Every call takes a context first and stops when it is cancelled. Errors
// the server answers in its JSON error shape are *APIError: switch on its
// Code, never on its Message.
//
//	c := &client.Client{BaseURL: "http://localhost:8080", APIKey: os.Getenv("BUTAKERO_API_KEY")}
//	op, err := c.Start(ctx, "never gonna give you up", "")
//	if err != nil {
//		return err
//	}
//	op, err = c.Follow(ctx, op.ID, func(e client.Event) {
//		if e.IsProgress() {
//			log.Printf("%s %.0f%%", e.Stage, e.Percent)
//		}
//	})
//	if err != nil {
//		return err // could not follow: network, API key…
//	}
//	if err := op.Err(); err != nil {
//		return err // the operation failed: *client.OperationError says why
//	}
//	f, _ := os.Create(op.SongID + ".dca")
//	defer f.Close()
//	_, err = c.DownloadDCA(ctx, op.SongID, f)
//
// The API key, when the server needs one, is sent as Authorization: Bearer,
// which net/http drops on a redirect to another host, so a DCA served from
// a presigned S3 URL never sees it.
//
// A Client is safe for concurrent use once its fields are set.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one Butakero gateway. Set its fields before the first
// call and do not change them afterwards.
type Client struct {
	// BaseURL is the gateway's root, such as "http://localhost:8080"
	// (a path prefix is kept: "https://example.com/butakero").
	BaseURL string
	// APIKey is sent as Authorization: Bearer when not empty (the
	// gateway's API_KEYS).
	APIKey string
	// HTTPClient makes every request, the WebSocket handshake included;
	// nil means http.DefaultClient. Give it no Timeout when downloading
	// long DCA files or following long operations: bound calls with
	// their context instead.
	HTTPClient *http.Client
}

// Operation statuses.
const (
	StatusInProgress = "in_progress"
	StatusSuccess    = "success"
	StatusFailed     = "failed"
	// StatusCancelled: cancelled (DELETE /v1/operations/{id});
	// StatusPartial: a playlist's parent some of whose songs failed.
	StatusCancelled = "cancelled"
	StatusPartial   = "partial"
)

// Operation is one song request's state, as GET /v1/operations/{id}
// answers it.
type Operation struct {
	ID     string `json:"id"`
	SongID string `json:"song_id"` // "" until the song is resolved
	Query  string `json:"query"`
	// Status is StatusInProgress, StatusSuccess or StatusFailed.
	Status string `json:"status"`
	// Stage is the last step reached: requested, resolved, downloaded,
	// encoded, stored or failed.
	Stage string `json:"stage"`
	// Message is a human-readable note; for a failed operation, why.
	Message string `json:"message"`
	// ErrorCode is the failure's code (such as "invalid_audio") when
	// Status is StatusFailed.
	ErrorCode string `json:"error_code"`
	Attempts  int    `json:"attempts"`
	Failures  int    `json:"failures"`
	// CreatedAt and UpdatedAt are RFC 3339 times, "" while unknown.
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	// DCAURL is the path of the stored DCA once Status is StatusSuccess.
	DCAURL    string `json:"dca_url"`
	EventsURL string `json:"events_url"`
	// Events is the operation's history; Start and Follow leave it empty.
	Events []Event `json:"events"`
	// Replayed is set by Start when the server answered an earlier request
	// made with the same idempotency key (Idempotent-Replayed: true).
	Replayed bool `json:"-"`
}

// Done reports whether the operation has ended, in success or failure.
func (o Operation) Done() bool {
	return o.Status == StatusSuccess || o.Status == StatusFailed || o.Status == StatusCancelled || o.Status == StatusPartial
}

// Err is nil unless the operation failed; then it is an *OperationError
// with the failure's code and message.
func (o Operation) Err() error {
	if o.Status != StatusFailed {
		return nil
	}
	return &OperationError{OperationID: o.ID, Code: o.ErrorCode, Message: o.Message}
}

// OperationError is why an operation failed. Code is one of the failure
// codes in the README (invalid_input, not_found, unavailable,
// sign_in_required, empty_audio, invalid_audio, rate_limited,
// network_error, download_failed, timeout, internal); Message says why in
// words a user can act on.
type OperationError struct {
	OperationID string
	Code        string
	Message     string
	// Stage is the stage that failed (resolve, fetch, encode) when known.
	Stage string
}

func (e *OperationError) Error() string {
	return fmt.Sprintf("butakero: operation %s failed (%s): %s", e.OperationID, e.Code, e.Message)
}

// Song is a catalog entry. Stored is true once the DCA is stored; then the
// DCA fields are set.
type Song struct {
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
	// OggURL is the path of the song as Ogg Opus (DownloadOgg).
	OggURL string `json:"ogg_url,omitempty"`
	// Mode is how the DCA's packets were made: "passthrough" (the
	// source's Opus copied) or "transcode"; ModeReason says why.
	Mode       string `json:"mode,omitempty"`
	ModeReason string `json:"mode_reason,omitempty"`
	// LoudnessLUFS is the song's integrated loudness (EBU R128) and
	// TruePeakDB its true peak (dBTP), nil when not measured (silence) or
	// not yet (a passthrough is measured once stored, about a second after
	// its operation's success: ask again): a bot can set its volume per
	// song, e.g. gain = target - LoudnessLUFS.
	LoudnessLUFS *float64 `json:"loudness_lufs,omitempty"`
	TruePeakDB   *float64 `json:"true_peak_db,omitempty"`
	UpdatedAt    string   `json:"updated_at"`
}

// Duration is the song's length.
func (s Song) Duration() time.Duration { return time.Duration(s.DurationMs) * time.Millisecond }

// SongPage is one page of a catalog search. NextCursor is "" on the last
// page; pass it to Songs for the next one.
type SongPage struct {
	Songs      []Song `json:"songs"`
	NextCursor string `json:"next_cursor"`
}

// Start requests a song: query is a title, a YouTube URL or id, or a URL
// on a host the server allows. idempotencyKey, when not "", makes a retry
// of the same request (after a timeout, say) return the first request's
// operation instead of starting another: use one per user request, up to
// 255 printable ASCII characters. The operation returned has ID and, when
// the server named the song at once, SongID; its Status is
// StatusInProgress even when Replayed (the earlier operation may have
// ended since: Operation or Follow tell).
func (c *Client) Start(ctx context.Context, query, idempotencyKey string) (Operation, error) {
	body, err := json.Marshal(struct {
		Query string `json:"query"`
	}{query})
	if err != nil {
		return Operation{}, fmt.Errorf("butakero: encode request: %w", err)
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/operations", nil, bytes.NewReader(body))
	if err != nil {
		return Operation{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	var created struct {
		OperationID string `json:"operation_id"`
		SongID      string `json:"song_id"`
		EventsURL   string `json:"events_url"`
	}
	res, err := c.doJSON(req, http.StatusAccepted, &created)
	if err != nil {
		return Operation{}, fmt.Errorf("butakero: start %q: %w", query, err)
	}
	return Operation{
		ID: created.OperationID, SongID: created.SongID, Query: query,
		Status: StatusInProgress, Stage: "requested", EventsURL: created.EventsURL,
		Replayed: res.Header.Get("Idempotent-Replayed") == "true",
	}, nil
}

// Operation reads an operation's state and history. An unknown id is an
// *APIError with Code "not_found".
func (c *Client) Operation(ctx context.Context, id string) (Operation, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/operations/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return Operation{}, err
	}
	var op Operation
	if _, err := c.doJSON(req, http.StatusOK, &op); err != nil {
		return Operation{}, fmt.Errorf("butakero: operation %s: %w", id, err)
	}
	for i := range op.Events {
		op.Events[i].normalize()
	}
	return op, nil
}

// Song reads one catalog entry. An unknown id is an *APIError with Code
// "not_found".
func (c *Client) Song(ctx context.Context, id string) (Song, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/songs/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return Song{}, err
	}
	var s Song
	if _, err := c.doJSON(req, http.StatusOK, &s); err != nil {
		return Song{}, fmt.Errorf("butakero: song %s: %w", id, err)
	}
	return s, nil
}

// Songs searches the catalog: songs whose title or channel contains q
// ("" for all), or whose id is q, in title order. limit is 1 to 100, 0
// for the server's default (20); cursor is "" for the first page, else
// the previous page's NextCursor.
func (c *Client) Songs(ctx context.Context, q string, limit int, cursor string) (SongPage, error) {
	v := url.Values{}
	if q != "" {
		v.Set("q", q)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/songs", v, nil)
	if err != nil {
		return SongPage{}, err
	}
	var p SongPage
	if _, err := c.doJSON(req, http.StatusOK, &p); err != nil {
		return SongPage{}, fmt.Errorf("butakero: search songs: %w", err)
	}
	return p, nil
}

// APIError is an error answer of the server: Status is the HTTP status,
// Code the machine-readable code of the README's error table
// ("not_found", "unauthorized", "rate_limited"…), Message the server's
// words. An answer that is not in the API's JSON shape (a proxy's error
// page) has Code "" and the status text as Message.
type APIError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the server's Retry-After (429 and 503), else 0.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Error codes the server answers (APIError.Code); the README lists them
// all.
const (
	CodeBadRequest          = "bad_request"
	CodeUnauthorized        = "unauthorized"
	CodeForbidden           = "forbidden"
	CodeNotFound            = "not_found"
	CodeRangeNotSatisfiable = "range_not_satisfiable"
	CodeIdempotencyReused   = "idempotency_key_reused"
	CodeRateLimited         = "rate_limited"
	CodeTooManyConnections  = "too_many_connections"
	CodeInternal            = "internal"
)

// IsCode reports whether err is, or wraps, an *APIError with this code.
func IsCode(err error, code string) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == code
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// apiError reads an error answer into an *APIError and closes its body.
func apiError(res *http.Response) *APIError {
	defer res.Body.Close()
	e := &APIError{Status: res.StatusCode}
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		return e
	}
	e.Message = http.StatusText(res.StatusCode)
	if e.Message == "" {
		e.Message = "unexpected answer"
	}
	return e
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// endpoint is BaseURL joined with path (already escaped) and query.
func (c *Client) endpoint(path string, query url.Values) (*url.URL, error) {
	base, err := url.Parse(c.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("butakero: Client.BaseURL %q is not an http(s) URL", c.BaseURL)
	}
	u, err := url.Parse(strings.TrimRight(c.BaseURL, "/") + path)
	if err != nil {
		return nil, fmt.Errorf("butakero: %w", err)
	}
	u.RawQuery = query.Encode()
	return u, nil
}

// newRequest builds a request on BaseURL with the API key.
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Request, error) {
	u, err := c.endpoint(path, query)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("butakero: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	c.authorize(req.Header)
	return req, nil
}

func (c *Client) authorize(h http.Header) {
	if c.APIKey != "" {
		h.Set("Authorization", "Bearer "+c.APIKey)
	}
}

// doJSON sends req and decodes a want-status answer into out; any other
// status is an *APIError.
func (c *Client) doJSON(req *http.Request, want int, out any) (*http.Response, error) {
	res, err := c.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != want {
		return nil, apiError(res)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("decode the answer: %w", err)
	}
	return res, nil
}
