package youtubetest

import (
	"net/http"
	"strconv"
)

// PlaylistItems is the method name of playlistItems.list, for Calls.
const PlaylistItems = "playlistItems.list"

// pageSize is what playlistItems.list answers per page at most.
const pageSize = 50

// AddPlaylist makes playlistItems.list answer playlist id with the videos
// ids, in order. A video also added with AddVideo gets its title and
// channel; a private one is listed as YouTube lists it ("Private video").
func (s *Server) AddPlaylist(id string, ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists[id] = ids
}

// playlistItems answers playlistItems.list (part=snippet,contentDetails,
// maxResults up to 50, pageToken the index of the page's first item).
func (s *Server) playlistItems(w http.ResponseWriter, r *http.Request) {
	if !s.begin(w, r, PlaylistItems) {
		return
	}
	q := r.URL.Query()
	max, err := strconv.Atoi(q.Get("maxResults"))
	if err != nil || max < 1 || max > pageSize {
		badRequest(w, "maxResults must be 1 to 50")
		return
	}
	s.mu.Lock()
	ids, ok := s.lists[q.Get("playlistId")]
	videos := make([]Video, len(ids))
	for i, id := range ids {
		videos[i] = s.videos[id]
		videos[i].ID = id
	}
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{"code": 404, "message": "playlist not found",
			"errors": []map[string]string{{"domain": "youtube.playlistItem", "reason": "playlistNotFound"}}}})
		return
	}
	from := 0
	if t := q.Get("pageToken"); t != "" {
		if from, err = strconv.Atoi(t); err != nil || from < 0 || from > len(videos) {
			badRequest(w, "bad pageToken")
			return
		}
	}
	to := min(from+max, len(videos))
	items := []any{}
	for i := from; i < to; i++ {
		v := videos[i]
		title, channel := v.Title, v.Channel
		if v.Privacy == "private" {
			title, channel = "Private video", ""
		}
		items = append(items, map[string]any{
			"kind": "youtube#playlistItem", "etag": "e-" + v.ID, "id": "pi-" + v.ID,
			"snippet": map[string]any{"title": title, "position": i, "videoOwnerChannelTitle": channel,
				"resourceId": map[string]string{"kind": "youtube#video", "videoId": v.ID}},
			"contentDetails": map[string]string{"videoId": v.ID},
		})
	}
	res := map[string]any{"kind": "youtube#playlistItemListResponse", "etag": "etag", "items": items,
		"pageInfo": map[string]int{"totalResults": len(videos), "resultsPerPage": max}}
	if to < len(videos) {
		res["nextPageToken"] = strconv.Itoa(to)
	}
	writeJSON(w, http.StatusOK, res)
}
