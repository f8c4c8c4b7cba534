package resolver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/media/mediahosts"
	"github.com/butakero/butakero/platform/media/songquery"
	"github.com/butakero/butakero/platform/media/ytdlp"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/butakero/butakero/platform/searchcache"
	"github.com/wader/goutubedl"
)

// A playlist query makes its operation a parent: the resolver lists the
// playlist's items (up to PLAYLIST_MAX_ITEMS), starts one ordinary
// operation per item (a song.requested naming the parent, whose id is
// derived from the parent's event and the item's position, so a resolve
// done twice starts the same children once) and answers
// playlist.resolved naming them. The children's song.requested are the one
// thing a handler publishes itself, before the event the runtime
// publishes: a child is never named before it exists.
//
// Playlists are what songquery.PlaylistOf finds:
//   - a YouTube playlist URL (youtube.com/playlist?list=…), or a watch
//     URL with list= when the request asks for it ("playlist": true):
//     listed with the Data API's playlistItems.list (50 items a page, one
//     quota unit each) with a key, else with yt-dlp --flat-playlist;
//   - an M3U file (#EXTM3U, #EXTINF titles, one media URL a line; not an
//     HLS stream) whose URL ends in .m3u or .m3u8 on an allowed media
//     host; each entry becomes a child that resolves like any URL, so an
//     entry on a host ALLOWED_MEDIA_HOSTS does not allow fails that child.

// item is one listed entry.
type item struct {
	query string
	song  events.Song
}

// PlaylistAPI is the Data API's playlistItems.list (*YouTubeAPI).
type PlaylistAPI interface {
	// PlaylistItems lists up to max items of playlist id, in order, and
	// how many it has.
	PlaylistItems(ctx context.Context, id string, max int) ([]events.Song, int, error)
}

var _ PlaylistAPI = (*YouTubeAPI)(nil)

// PlaylistItems implements PlaylistAPI with playlistItems.list, 50 items
// a page.
func (a *YouTubeAPI) PlaylistItems(ctx context.Context, id string, max int) ([]events.Song, int, error) {
	var out []events.Song
	total, token := 0, ""
	for len(out) < max {
		call := a.svc.PlaylistItems.List([]string{"snippet", "contentDetails"}).PlaylistId(id).MaxResults(50).Context(ctx)
		if token != "" {
			call = call.PageToken(token)
		}
		resp, err := call.Do()
		if err != nil {
			return nil, 0, fmt.Errorf("resolver: playlistItems.list: %w", err)
		}
		if resp.PageInfo != nil {
			total = int(resp.PageInfo.TotalResults)
		}
		for _, it := range resp.Items {
			vid := ""
			if it.ContentDetails != nil {
				vid = it.ContentDetails.VideoId
			}
			if it.Snippet != nil && vid == "" && it.Snippet.ResourceId != nil {
				vid = it.Snippet.ResourceId.VideoId
			}
			if !songquery.IsVideoID(vid) {
				continue
			}
			s := events.Song{ID: vid, URL: songquery.WatchURL(vid), Source: "youtube"}
			if it.Snippet != nil {
				s.Title, s.Channel = it.Snippet.Title, it.Snippet.VideoOwnerChannelTitle
				s.ThumbnailURL = bestThumbnail(it.Snippet.Thumbnails)
			}
			out = append(out, s)
			if len(out) == max {
				break
			}
		}
		if resp.NextPageToken == "" {
			break
		}
		token = resp.NextPageToken
	}
	return out, total, nil
}

// listYouTube lists a YouTube playlist: from the cache, else the Data API
// with a key, else yt-dlp --flat-playlist. A listing made is cached, as a
// search is, for SEARCH_CACHE_TTL.
func (r *Resolver) listYouTube(ctx context.Context, id string, max int, log *slog.Logger) ([]item, int, error) {
	if p, ok := r.cachedPlaylist(ctx, id, max, log); ok {
		log.Info("resolver: playlist listed from the cache", "playlist", id, "items", len(p.Items))
		return itemsOf(p.Items[:min(len(p.Items), max)]), p.Total, nil
	}
	songs, total, err := r.listYouTubeUncached(ctx, id, max, log)
	if err != nil {
		return nil, 0, err
	}
	r.putPlaylist(ctx, searchcache.Playlist{ID: id, Items: songs, Total: total, Max: max}, log)
	return itemsOf(songs), total, nil
}

// itemsOf are the children's queries and songs of listed videos.
func itemsOf(songs []events.Song) []item {
	out := make([]item, 0, len(songs))
	for _, s := range songs {
		out = append(out, item{query: s.URL, song: s})
	}
	return out
}

// cachedPlaylist returns the cached listing of playlist id when it answers
// max items.
func (r *Resolver) cachedPlaylist(ctx context.Context, id string, max int, log *slog.Logger) (searchcache.Playlist, bool) {
	if r.Cache == nil {
		return searchcache.Playlist{}, false
	}
	p, err := r.Cache.Playlist(ctx, id)
	switch {
	case err == nil && p.ID == id && len(p.Items) > 0 && p.Answers(max):
		r.metrics.CacheLookup(CachePlaylists, true)
		return p, true
	case err != nil && !errors.Is(err, searchcache.ErrNotFound):
		log.Warn("resolver: cache lookup failed; going on without it", "playlist", id, "error", err)
	}
	r.metrics.CacheLookup(CachePlaylists, false)
	return searchcache.Playlist{}, false
}

// putPlaylist caches a listing; a failure is logged, not returned.
func (r *Resolver) putPlaylist(ctx context.Context, p searchcache.Playlist, log *slog.Logger) {
	if r.Cache == nil || len(p.Items) == 0 {
		return
	}
	if err := r.Cache.PutPlaylist(ctx, p); err != nil {
		log.Warn("resolver: cache write failed", "playlist", p.ID, "error", err)
	}
}

// listYouTubeUncached lists a YouTube playlist with the Data API, else
// yt-dlp --flat-playlist.
func (r *Resolver) listYouTubeUncached(ctx context.Context, id string, max int, log *slog.Logger) ([]events.Song, int, error) {
	if r.Playlists != nil {
		songs, total, err := r.Playlists.PlaylistItems(ctx, id, max)
		r.metrics.APICall("playlistItems.list")
		if err == nil {
			return songs, total, nil
		}
		if strings.Contains(err.Error(), "playlistNotFound") || strings.Contains(err.Error(), "404") {
			return nil, 0, events.Wrap(events.CodeNotFound, err, "the YouTube playlist does not exist or is private")
		}
		log.Warn("resolver: playlistItems.list failed; listing with yt-dlp", "error", err)
	}
	return r.flatPlaylist(ctx, id, max)
}

// flatPlaylist lists a YouTube playlist with yt-dlp --flat-playlist: one
// run, no video page fetched. The URL is built from the list id.
func (r *Resolver) flatPlaylist(ctx context.Context, id string, max int) ([]events.Song, int, error) {
	stderr := &ytdlp.Tail{Max: 4 << 10}
	opts := goutubedl.Options{Type: goutubedl.TypePlaylist, FlatPlaylist: true, PlaylistEnd: uint(max),
		StderrFn: func(cmd *exec.Cmd) io.Writer { ytdlp.Harden(cmd); return stderr }}
	opts.ProxyUrl, opts.Cookies = r.YTDLPProxy, r.YTDLPCookies
	res, err := goutubedl.New(ctx, "https://www.youtube.com/playlist?list="+id, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("playlist: %w", ctx.Err())
		}
		return nil, 0, events.Wrap(events.CodeDownloadFailed, fmt.Errorf("%w; stderr: %s", err, stderr.String()), "the playlist could not be listed; it will be tried again")
	}
	var out []events.Song
	for _, e := range res.Info.Entries {
		if !songquery.IsVideoID(e.ID) || len(out) >= max {
			continue
		}
		out = append(out, events.Song{ID: e.ID, URL: songquery.WatchURL(e.ID), Source: "youtube", Title: e.Title,
			Channel: firstNonEmpty(e.Channel, e.Uploader), DurationMs: int64(e.Duration * 1000)})
	}
	return out, len(res.Info.Entries), nil
}

// m3uMaxBytes bounds an M3U file.
const m3uMaxBytes = 1 << 20

// listM3U fetches and parses an M3U file within the allowed hosts.
func (r *Resolver) listM3U(ctx context.Context, raw string, max int) ([]item, int, error) {
	client := m3uClient(r.Allowed)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, 0, events.Wrap(events.CodeInvalidInput, err, "the playlist's URL cannot be requested")
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, errM3URefused) {
			return nil, 0, events.Wrap(events.CodeInvalidInput, err, "the playlist redirected to, or resolves to, an address ALLOWED_MEDIA_HOSTS does not allow")
		}
		return nil, 0, events.Wrap(events.CodeNetwork, err, "the playlist could not be fetched")
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, 0, events.Fail(events.CodeNotFound, "the playlist file does not exist (HTTP %d)", resp.StatusCode)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, 0, events.Fail(events.CodeDownloadFailed, "the playlist's host answered HTTP %d", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, 0, events.Fail(events.CodeUnavailable, "the playlist's host answered HTTP %d", resp.StatusCode)
	}
	items, total, err := ParseM3U(io.LimitReader(resp.Body, m3uMaxBytes), resp.Request.URL, max)
	if err != nil {
		return nil, 0, err
	}
	return items, total, nil
}

// ParseM3U reads an M3U playlist: "#EXTM3U", then for each entry an
// optional "#EXTINF:<seconds>,<title>" and its URL (relative ones against
// base). An HLS stream (#EXT-X- tags) is refused. It returns up to max
// entries and how many the file has.
func ParseM3U(r io.Reader, base *url.URL, max int) ([]item, int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	var items []item
	total, title, first := 0, "", true
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
		if first {
			first = false
			if line != "#EXTM3U" {
				return nil, 0, events.Fail(events.CodeInvalidInput, "the file is not an M3U playlist: it does not start with #EXTM3U")
			}
			continue
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-"):
			return nil, 0, events.Fail(events.CodeInvalidInput, "the file is an HLS stream, not a playlist of songs")
		case strings.HasPrefix(line, "#EXTINF:"):
			if _, t, ok := strings.Cut(line, ","); ok {
				title = strings.TrimSpace(t)
			}
		case strings.HasPrefix(line, "#"):
		default:
			total++
			u, err := base.Parse(line)
			if err != nil || len(items) >= max {
				title = ""
				continue
			}
			items = append(items, item{query: u.String(), song: events.Song{URL: u.String(), Title: title, Source: "direct"}})
			title = ""
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, events.Wrap(events.CodeInvalidInput, err, "the playlist file could not be read")
	}
	return items, total, nil
}

// errM3URefused marks an address or redirect the allow-list refuses.
var errM3URefused = errors.New("resolver: refused by ALLOWED_MEDIA_HOSTS")

// m3uClient fetches an M3U file within allowed, checked on every redirect
// and every address, as the fetcher fetches media.
func m3uClient(allowed []string) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           mediahosts.DialContext(allowed, net.Dialer{Timeout: 10 * time.Second}, errM3URefused),
		ResponseHeaderTimeout: 15 * time.Second,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > 5 || !mediahosts.AllowsURL(allowed, req.URL) {
			return fmt.Errorf("%w: redirect to %s", errM3URefused, req.URL.Redacted())
		}
		return nil
	}}
}

// expand lists the playlist, starts its children and returns the parent's
// playlist.resolved.
func (r *Resolver) expand(ctx context.Context, d stage.Delivery, ref songquery.Playlist) ([]stage.Emit, error) {
	max := r.PlaylistMaxItems
	if max <= 0 {
		max = 200
	}
	var items []item
	var total int
	var err error
	switch ref.Source {
	case songquery.SourceYouTubePlaylist:
		items, total, err = r.listYouTube(ctx, ref.ID, max, d.Log)
	default:
		items, total, err = r.listM3U(ctx, ref.ID, max)
	}
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, events.Fail(events.CodeNotFound, "the playlist has no items")
	}
	if r.Publisher == nil {
		return nil, events.Fail(events.CodeInternal, "the resolver cannot start a playlist's children")
	}
	parent := d.Envelope.OperationID
	ev := events.PlaylistResolved{Source: ref.Source, ID: ref.ID, Total: total, Truncated: total > len(items)}
	for i, it := range items {
		child := events.ChildOperationID(d.Envelope.ID, i)
		env, err := events.NewWithID(events.DeriveID(child, events.TypeSongRequested), child, "",
			events.SongRequested{Query: it.query, Parent: parent})
		if err != nil {
			return nil, events.Wrap(events.CodeInternal, err, "a playlist item could not be requested")
		}
		if _, err := r.Publisher.Publish(ctx, env); err != nil {
			return nil, events.Wrap(events.CodeInternal, err, "a playlist item could not be requested")
		}
		ev.Children = append(ev.Children, events.PlaylistChild{OperationID: child, Position: i, Query: it.query, Song: it.song})
	}
	d.Log.Info("resolver: playlist expanded", "source", ref.Source, "children", len(items), "total", total)
	return []stage.Emit{{Event: ev}}, nil
}
