package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/media/songquery"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/butakero/butakero/platform/searchcache"
)

// Resolver turns queries into songs. It is safe for concurrent use.
type Resolver struct {
	// API is the Data API; nil means none (searches through Search, no
	// metadata for URLs and ids).
	API VideoAPI
	// Playlists lists YouTube playlists with the Data API; nil lists
	// them with yt-dlp --flat-playlist.
	Playlists PlaylistAPI
	// YTDLPProxy and YTDLPCookies are how yt-dlp lists a playlist
	// (YTDLP_PROXY, YTDLP_COOKIES_FILE); "" means none.
	YTDLPProxy, YTDLPCookies string
	// Search is the fallback search (yt-dlp). Required.
	Search Searcher
	// Cache keeps searches and metadata; nil means none.
	Cache Cache
	// Allowed are the direct media hosts (Config.AllowedMediaHosts).
	Allowed []string
	// MaxDuration is the longest song accepted; 0 means no limit.
	MaxDuration time.Duration
	// PlaylistMaxItems bounds a playlist's children (PLAYLIST_MAX_ITEMS);
	// 0 means 200.
	PlaylistMaxItems int
	// Publisher starts a playlist's children (playlist.go).
	Publisher stage.Publisher

	metrics *resolverMetrics // nil: counted nowhere (a Resolver built by hand)
}

// Resolve returns the song query names, with what is known of it.
//
// Its failures are *events.Failure: invalid_input for a query that cannot
// be a song (see songquery.Parse); not_found for a search with no result or a video
// that does not exist; unavailable for a live or upcoming stream, a private
// video or one longer than MaxDuration. Those are permanent. Any other
// error (the search could not run) is transient. When ctx ends the error
// wraps ctx.Err().
func (r *Resolver) Resolve(ctx context.Context, query string, log *slog.Logger) (events.Song, error) {
	q, err := songquery.Parse(query, r.Allowed)
	if err != nil {
		return events.Song{}, err
	}
	switch q.Kind {
	case songquery.KindDirect:
		return q.Song, nil
	case songquery.KindYouTube:
		v, err := r.video(ctx, q.Song.ID, log)
		if err != nil {
			return events.Song{}, err
		}
		return q.Song.Merge(songOf(v)), nil
	}
	v, err := r.search(ctx, q.Text, log)
	if err != nil {
		return events.Song{}, err
	}
	return songOf(v), nil
}

// quick resolves query with no call beyond the cache: a direct URL, a
// YouTube id whose video is cached (or any id when there is no Data API
// key, which the fetcher's yt-dlp run then checks), or free text whose
// search and video are both cached. ok is false for a query that needs
// the Data API or a search; what it returns otherwise is what Resolve
// would.
func (r *Resolver) quick(ctx context.Context, query string, log *slog.Logger) (_ events.Song, ok bool, _ error) {
	q, err := songquery.Parse(query, r.Allowed)
	if err != nil {
		return events.Song{}, true, err
	}
	switch q.Kind {
	case songquery.KindDirect:
		return q.Song, true, nil
	case songquery.KindYouTube:
		v, ok := r.quickVideo(ctx, q.Song.ID, log)
		if !ok {
			return events.Song{}, false, nil
		}
		return q.Song.Merge(songOf(v)), true, admit(v, r.MaxDuration)
	}
	id, ok := r.lookupQuery(ctx, projection.NormalizeQuery(q.Text), false, log)
	if !ok {
		return events.Song{}, false, nil
	}
	v, ok := r.quickVideo(ctx, id, log)
	if !ok {
		return events.Song{}, false, nil
	}
	log.Info("resolver: search answered from the cache", "query", q.Text, "video_id", id)
	return songOf(v), true, admit(v, r.MaxDuration)
}

// quickVideo is video with no Data API call: the cached video, or the id
// alone when there is no API; ok is false when only the API would tell.
func (r *Resolver) quickVideo(ctx context.Context, id string, log *slog.Logger) (searchcache.Video, bool) {
	if v, ok := r.lookupVideo(ctx, id, false, log); ok {
		return v, true
	}
	if r.API == nil {
		return searchcache.Video{ID: id, URL: songquery.WatchURL(id)}, true
	}
	return searchcache.Video{}, false
}

// search finds the video for free text: from the cache, else the Data
// API, else yt-dlp. The video found is then checked like any other.
func (r *Resolver) search(ctx context.Context, text string, log *slog.Logger) (searchcache.Video, error) {
	nq := projection.NormalizeQuery(text)
	if id, ok := r.cachedQuery(ctx, nq, log); ok {
		log.Info("resolver: search answered from the cache", "query", text, "video_id", id)
		return r.video(ctx, id, log)
	}
	if r.API != nil {
		r.metrics.APICall("search.list")
		id, err := r.API.SearchVideo(ctx, text)
		switch {
		case err == nil:
			if !songquery.IsVideoID(id) {
				return searchcache.Video{}, events.Fail(events.CodeInternal, "the search returned an invalid video id %q", id)
			}
			r.putQuery(ctx, nq, id, log)
			return r.video(ctx, id, log)
		case errors.Is(err, ErrNoResult):
			return searchcache.Video{}, events.Fail(events.CodeNotFound, "no video found for %q", text)
		case ctx.Err() != nil:
			return searchcache.Video{}, fmt.Errorf("resolver: search stopped: %w", ctx.Err())
		}
		reason := FallbackReason(err)
		r.metrics.Fallback(reason)
		log.Warn("resolver: the Data API failed; searching through yt-dlp", "reason", reason, "error", err)
	} else {
		r.metrics.Fallback(ReasonNoKey)
		log.Info("resolver: searching through yt-dlp", "query", text)
	}
	v, err := r.Search.Search(ctx, text)
	if err != nil {
		return searchcache.Video{}, err
	}
	if !songquery.IsVideoID(v.ID) {
		return searchcache.Video{}, events.Fail(events.CodeInternal, "the search returned an invalid video id %q", v.ID)
	}
	// The query is cached with its video only: without the API a cached id
	// alone would let a live video through to the fetcher.
	if cacheable(v) {
		r.putQuery(ctx, nq, v.ID, log)
		r.putVideo(ctx, v, log)
	}
	return v, admit(v, r.MaxDuration)
}

// video returns what is known of video id and refuses what cannot be
// fetched: from the cache, else the Data API. Without the API (no key, or
// it failed) it returns only the id: the fetcher's yt-dlp run then applies
// the same limits.
func (r *Resolver) video(ctx context.Context, id string, log *slog.Logger) (searchcache.Video, error) {
	if v, ok := r.cachedVideo(ctx, id, log); ok {
		return v, admit(v, r.MaxDuration)
	}
	unknown := searchcache.Video{ID: id, URL: songquery.WatchURL(id)}
	if r.API == nil {
		return unknown, nil
	}
	r.metrics.APICall("videos.list")
	v, err := r.API.Video(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return searchcache.Video{}, fmt.Errorf("resolver: video lookup stopped: %w", ctx.Err())
		}
		reason := FallbackReason(err)
		r.metrics.Fallback(reason)
		log.Warn("resolver: the Data API failed; the video goes on unchecked, the fetcher applies the limits",
			"song_id", id, "reason", reason, "error", err)
		return unknown, nil
	}
	r.putVideo(ctx, v, log)
	return v, admit(v, r.MaxDuration)
}

// admit refuses what the pipeline must not take, saying which limit.
func admit(v searchcache.Video, max time.Duration) error {
	d := time.Duration(v.DurationMs) * time.Millisecond
	switch {
	case v.Removed:
		return events.Fail(events.CodeNotFound, "the video does not exist or was removed from YouTube")
	case v.Privacy == "private":
		return events.Fail(events.CodeUnavailable, "the video is private")
	case v.Live == "live":
		return events.Fail(events.CodeUnavailable, "the video is a live stream: live streams cannot be fetched")
	case v.Live == "upcoming":
		return events.Fail(events.CodeUnavailable, "the video is a live stream or premiere that has not started yet")
	case max > 0 && d > max:
		return events.Fail(events.CodeUnavailable, "the song lasts %s, longer than the %s limit", d.Round(time.Second), max)
	}
	return nil
}

// cacheable reports whether v may be cached for the whole TTL: not what
// can change soon (a live or upcoming stream ends or starts; a private
// video may be made public) nor a video the API does not know.
func cacheable(v searchcache.Video) bool {
	return !v.Removed && v.Privacy != "private" && v.Live != "live" && v.Live != "upcoming"
}

// Cache names, the "cache" label of the cache lookup metrics.
const (
	CacheQueries   = "resolver_queries"
	CacheVideos    = "resolver_videos"
	CachePlaylists = "resolver_playlists"
)

func (r *Resolver) cachedQuery(ctx context.Context, nq string, log *slog.Logger) (string, bool) {
	return r.lookupQuery(ctx, nq, true, log)
}

func (r *Resolver) cachedVideo(ctx context.Context, id string, log *slog.Logger) (searchcache.Video, bool) {
	return r.lookupVideo(ctx, id, true, log)
}

// lookupQuery and lookupVideo read the cache and count a hit; a miss is
// counted only when countMiss says so (quick's misses are looked up and
// counted again by Resolve).
func (r *Resolver) lookupQuery(ctx context.Context, nq string, countMiss bool, log *slog.Logger) (string, bool) {
	if r.Cache == nil {
		return "", false
	}
	id, err := r.Cache.QueryVideo(ctx, nq)
	switch {
	case err == nil && songquery.IsVideoID(id):
		r.metrics.CacheLookup(CacheQueries, true)
		return id, true
	case err != nil && !errors.Is(err, searchcache.ErrNotFound):
		log.Warn("resolver: cache lookup failed; going on without it", "error", err)
	}
	if countMiss {
		r.metrics.CacheLookup(CacheQueries, false)
	}
	return "", false
}

func (r *Resolver) lookupVideo(ctx context.Context, id string, countMiss bool, log *slog.Logger) (searchcache.Video, bool) {
	if r.Cache == nil {
		return searchcache.Video{}, false
	}
	v, err := r.Cache.Video(ctx, id)
	switch {
	case err == nil && v.ID == id:
		r.metrics.CacheLookup(CacheVideos, true)
		return v, true
	case err != nil && !errors.Is(err, searchcache.ErrNotFound):
		log.Warn("resolver: cache lookup failed; going on without it", "song_id", id, "error", err)
	}
	if countMiss {
		r.metrics.CacheLookup(CacheVideos, false)
	}
	return searchcache.Video{}, false
}

// putQuery and putVideo fill the cache. A failure costs only a later
// lookup, so it is logged, not returned.
func (r *Resolver) putQuery(ctx context.Context, nq, id string, log *slog.Logger) {
	if r.Cache == nil {
		return
	}
	if err := r.Cache.PutQueryVideo(ctx, nq, id); err != nil {
		log.Warn("resolver: cache write failed", "song_id", id, "error", err)
	}
}

func (r *Resolver) putVideo(ctx context.Context, v searchcache.Video, log *slog.Logger) {
	if r.Cache == nil || !cacheable(v) {
		return
	}
	if v.CachedAt == "" {
		v.CachedAt = time.Now().UTC().Format(time.RFC3339)
	}
	if err := r.Cache.PutVideo(ctx, v); err != nil {
		log.Warn("resolver: cache write failed", "song_id", v.ID, "error", err)
	}
}

// songOf is the event's song for v.
func songOf(v searchcache.Video) events.Song {
	return events.Song{
		ID:           v.ID,
		URL:          firstNonEmpty(v.URL, songquery.WatchURL(v.ID)),
		Source:       "youtube",
		Title:        v.Title,
		DurationMs:   v.DurationMs,
		ThumbnailURL: v.ThumbnailURL,
		Channel:      v.Channel,
	}
}
