// Package youtubetest is a stand-in for the YouTube Data API v3, which
// cannot be reached from tests: an HTTP server on 127.0.0.1 that answers
// search.list and videos.list in the API's shapes (youtube#searchListResponse,
// youtube#videoListResponse, and the API's error bodies), from videos and
// searches a test declares, and counts the calls it gets.
package youtubetest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Key is the API key the server accepts; any other gets keyInvalid.
const Key = "test-api-key"

// Video is one video the server knows.
type Video struct {
	ID      string
	Title   string
	Channel string
	// Duration is contentDetails.duration, ISO 8601 ("PT3M33S").
	Duration string
	// Live is snippet.liveBroadcastContent: "none" (default), "live" or
	// "upcoming".
	Live string
	// Privacy is status.privacyStatus: "public" (default), "unlisted" or
	// "private".
	Privacy string
	// Thumbnails maps a size (default, medium, high, standard, maxres) to
	// its URL; empty means the usual default, medium and high.
	Thumbnails map[string]string
}

// Server is the fake API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to give as YOUTUBE_API_BASE_URL.
	URL string

	mu       sync.Mutex
	videos   map[string]Video
	searches map[string]string // q → video id; absent: no result
	failures map[string][]apiError
	calls    map[string]int
	lists    map[string][]string // playlist id → video ids
}

// Methods, as Calls and Fail name them.
const (
	Search = "search.list"
	Videos = "videos.list"
)

type apiError struct {
	status          int
	reason, message string
	domain          string
}

// Start serves the fake API on 127.0.0.1 until t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		videos:   map[string]Video{},
		searches: map[string]string{},
		failures: map[string][]apiError{},
		calls:    map[string]int{},
		lists:    map[string][]string{},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /youtube/v3/search", s.search)
	mux.HandleFunc("GET /youtube/v3/videos", s.videosList)
	mux.HandleFunc("GET /youtube/v3/playlistItems", s.playlistItems)
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	s.URL = "http://" + ln.Addr().String() + "/"
	return s
}

// AddVideo makes v known to videos.list.
func (s *Server) AddVideo(v Video) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.videos[v.ID] = v
}

// AddSearch makes search.list answer q (exactly as sent) with video id.
func (s *Server) AddSearch(q, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.searches[q] = id
}

// FailNext makes the next call of method fail as the API does with reason:
// "quotaExceeded" (403), "keyInvalid" (400), "rateLimitExceeded" (403) or
// "backendError" (500, 503 for "serviceUnavailable").
func (s *Server) FailNext(method, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[method] = append(s.failures[method], errorFor(reason))
}

// Calls returns how many calls of method the server has answered.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// TotalCalls returns how many calls the server has answered.
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

func errorFor(reason string) apiError {
	switch reason {
	case "quotaExceeded":
		return apiError{status: 403, reason: reason, domain: "youtube.quota",
			message: `The request cannot be completed because you have exceeded your <a href="/youtube/v3/getting-started#quota">quota</a>.`}
	case "keyInvalid":
		return apiError{status: 400, reason: reason, domain: "usageLimits",
			message: "API key not valid. Please pass a valid API key."}
	case "rateLimitExceeded":
		return apiError{status: 403, reason: reason, domain: "usageLimits", message: "Rate Limit Exceeded"}
	case "serviceUnavailable":
		return apiError{status: 503, reason: reason, domain: "global", message: "The service is currently unavailable."}
	}
	return apiError{status: 500, reason: reason, domain: "global", message: "Backend Error"}
}

// begin counts a call and answers a scripted failure or a bad key. It
// reports whether the call may go on.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, method string) bool {
	s.mu.Lock()
	s.calls[method]++
	var fail *apiError
	if f := s.failures[method]; len(f) > 0 {
		fail = &f[0]
		s.failures[method] = f[1:]
	}
	s.mu.Unlock()
	if fail == nil && r.URL.Query().Get("key") != Key {
		e := errorFor("keyInvalid")
		fail = &e
	}
	if fail != nil {
		writeJSON(w, fail.status, map[string]any{"error": map[string]any{
			"code":    fail.status,
			"message": fail.message,
			"errors":  []map[string]string{{"message": fail.message, "domain": fail.domain, "reason": fail.reason}},
		}})
		return false
	}
	return true
}

// search answers search.list (part=id, type=video, maxResults=1).
func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	if !s.begin(w, r, Search) {
		return
	}
	q := r.URL.Query()
	if q.Get("part") != "id" || q.Get("type") != "video" || q.Get("maxResults") != "1" {
		badRequest(w, fmt.Sprintf("unexpected search.list parameters %q", r.URL.RawQuery))
		return
	}
	s.mu.Lock()
	id, ok := s.searches[q.Get("q")]
	s.mu.Unlock()
	items := []any{}
	if ok {
		items = append(items, map[string]any{
			"kind": "youtube#searchResult", "etag": "e-" + id,
			"id": map[string]string{"kind": "youtube#video", "videoId": id},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"kind": "youtube#searchListResponse", "etag": "etag", "regionCode": "US",
		"pageInfo": map[string]int{"totalResults": len(items), "resultsPerPage": 1},
		"items":    items,
	})
}

// videosList answers videos.list (part=snippet,contentDetails,status).
func (s *Server) videosList(w http.ResponseWriter, r *http.Request) {
	if !s.begin(w, r, Videos) {
		return
	}
	q := r.URL.Query()
	parts := strings.Join(q["part"], ",")
	for _, p := range []string{"snippet", "contentDetails", "status"} {
		if !strings.Contains(parts, p) {
			badRequest(w, "videos.list without part "+p)
			return
		}
	}
	items := []any{}
	s.mu.Lock()
	for _, id := range strings.Split(strings.Join(q["id"], ","), ",") {
		if v, ok := s.videos[id]; ok {
			items = append(items, item(v))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"kind": "youtube#videoListResponse", "etag": "etag",
		"pageInfo": map[string]int{"totalResults": len(items), "resultsPerPage": len(items)},
		"items":    items,
	})
}

func item(v Video) map[string]any {
	live, privacy := v.Live, v.Privacy
	if live == "" {
		live = "none"
	}
	if privacy == "" {
		privacy = "public"
	}
	thumbs := v.Thumbnails
	if len(thumbs) == 0 {
		thumbs = map[string]string{
			"default": "https://i.ytimg.com/vi/" + v.ID + "/default.jpg",
			"medium":  "https://i.ytimg.com/vi/" + v.ID + "/mqdefault.jpg",
			"high":    "https://i.ytimg.com/vi/" + v.ID + "/hqdefault.jpg",
		}
	}
	sizes := map[string][2]int{"default": {120, 90}, "medium": {320, 180}, "high": {480, 360}, "standard": {640, 480}, "maxres": {1280, 720}}
	th := map[string]any{}
	for k, u := range thumbs {
		th[k] = map[string]any{"url": u, "width": sizes[k][0], "height": sizes[k][1]}
	}
	return map[string]any{
		"kind": "youtube#video", "etag": "e-" + v.ID, "id": v.ID,
		"snippet": map[string]any{
			"publishedAt": "2009-10-25T06:57:33Z", "channelId": "UCuAXFkgsw1L7xaCfnd5JJOw",
			"title": v.Title, "description": "", "thumbnails": th, "channelTitle": v.Channel,
			"categoryId": "10", "liveBroadcastContent": live,
		},
		"contentDetails": map[string]any{
			"duration": v.Duration, "dimension": "2d", "definition": "hd", "caption": "false",
			"licensedContent": true, "contentRating": map[string]any{}, "projection": "rectangular",
		},
		"status": map[string]any{
			"uploadStatus": "processed", "privacyStatus": privacy, "license": "youtube",
			"embeddable": true, "publicStatsViewable": true, "madeForKids": false,
		},
	}
}

func badRequest(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
		"code": 400, "message": msg,
		"errors": []map[string]string{{"message": msg, "domain": "global", "reason": "badRequest"}},
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
