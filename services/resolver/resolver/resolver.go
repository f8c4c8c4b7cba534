// Package resolver is the resolve stage: it turns a song.requested query
// into the song it names and publishes video.resolved.
//
// songquery.Parse decides, without any network access, what a query names:
// a YouTube video (any URL form, or a bare id), a URL on
// ALLOWED_MEDIA_HOSTS, or free text; any other URL fails the operation with
// invalid_input. songquery.PlaylistOf decides whether it names a playlist,
// which the resolver lists and expands (playlist.go). The resolver is the
// network side: the Data API, yt-dlp, the cache.
//
// With a Data API key (YOUTUBE_API_KEY) free text is searched with
// search.list, and every YouTube video's metadata comes from videos.list:
// live and upcoming streams, private or removed videos and videos longer
// than MAX_DURATION then fail the operation at once (permanent, one
// attempt). Without a key, or when the API fails (quota, key, server,
// network), free text is searched through yt-dlp ("ytsearch1:") and a URL
// or id is passed on as it is: the fetcher's own yt-dlp run applies the
// same limits. Every fallback is logged and counted.
//
// A Cache keeps a normalized query's video id and each video's metadata
// (SEARCH_CACHE_TTL), so a repeated query costs no Data API call.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/media/songquery"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/nats-io/nats.go/jetstream"
)

// StageName names the stage in logs and in operation.failed events.
const StageName = "resolve"

// Concurrency is how many queries one process resolves at once with a
// call beyond its cache: a Data API call, or a search without it, which
// runs one yt-dlp process.
const Concurrency = 4

// QuickConcurrency is how many queries one process answers at once from
// what it knows without such a call (a direct URL, a cached video or
// search): they do not wait behind a search for one of the Concurrency
// slots.
const QuickConcurrency = 16

// Deps is what the resolver needs. JS, Config and Log are required.
type Deps struct {
	// JS holds the event stream (created beforehand, events.EnsureStream).
	JS jetstream.JetStream
	// Publisher publishes video.resolved; nil means events.NewPublisher(JS).
	Publisher stage.Publisher
	// API is the YouTube Data API; nil means a YouTubeAPI on
	// Config.YouTubeAPIKey and Config.YouTubeAPIBaseURL, or none when there
	// is no key.
	API VideoAPI
	// Playlists lists playlists with the Data API; nil means the
	// YouTubeAPI Run builds when API is nil and there is a key, or none
	// (yt-dlp lists them).
	Playlists PlaylistAPI
	// Search finds free-text queries without the Data API; nil means a
	// YTDLPSearcher configured from Config.
	Search Searcher
	// Cache keeps searches and metadata (kvstore.OpenCache with
	// Config.SearchCacheTTL); nil means nothing is cached.
	Cache Cache
	// Metrics records stage attempts, Data API calls, fallbacks and cache
	// lookups; nil records nothing.
	Metrics *metrics.Metrics
	// Config gives AllowedMediaHosts, MaxDuration, YouTubeAPIKey,
	// YouTubeAPIBaseURL, YTDLPProxy, YTDLPCookiesFile and the stage
	// settings (MaxAttempts, StageTimeout, ShutdownGrace).
	Config config.Config
	Log    *slog.Logger
}

// Run ensures the resolver's durable consumer and handles song.requested
// events until ctx is cancelled. Each message is acked once video.resolved
// is stored, or ended by the stage runtime with operation.failed (see
// package stage). After cancellation, in-flight queries get
// Config.ShutdownGrace to finish, else they are left for redelivery. Run
// returns nil after a clean stop.
func Run(ctx context.Context, d Deps) error {
	if d.JS == nil || d.Log == nil {
		return errors.New("resolver: Deps.JS and Deps.Log are required")
	}
	api, playlists := d.API, d.Playlists
	if api == nil && d.Config.YouTubeAPIKey != "" {
		yt, err := NewYouTubeAPI(ctx, d.Config.YouTubeAPIKey, d.Config.YouTubeAPIBaseURL, nil)
		if err != nil {
			return err
		}
		api = yt
		if playlists == nil {
			playlists = yt
		}
	}
	cons, err := events.EnsureConsumer(ctx, d.JS, events.ConsumerResolver, d.Config.MaxAttempts)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("resolver: %w", err)
	}
	r := &Resolver{
		API:          api,
		Playlists:    playlists,
		YTDLPProxy:   d.Config.YTDLPProxy,
		YTDLPCookies: d.Config.YTDLPCookiesFile,
		Search:       d.Search,
		Cache:        d.Cache,
		Allowed:      d.Config.AllowedMediaHosts,
		MaxDuration:  d.Config.MaxDuration,
		metrics:      newResolverMetrics(d.Metrics),

		PlaylistMaxItems: d.Config.PlaylistMaxItems,
		Publisher:        d.Publisher,
	}
	if r.Publisher == nil {
		r.Publisher = events.NewPublisher(d.JS)
	}
	if r.Search == nil {
		r.Search = &YTDLPSearcher{Proxy: r.YTDLPProxy, Cookies: r.YTDLPCookies}
	}
	w := &stage.Worker{
		Stage:       StageName,
		JS:          d.JS,
		Consumer:    cons,
		Publish:     d.Publisher,
		Quick:       quickHandler(r),
		Handle:      handler(r),
		Log:         d.Log,
		MaxAttempts: d.Config.MaxAttempts,
		Timeout:     d.Config.StageTimeout,
		Concurrency: Concurrency + QuickConcurrency,
		Slots:       Concurrency,
		Grace:       d.Config.ShutdownGrace,
		Metrics:     d.Metrics,
		Cancellable: true,
	}
	ends, err := parentEndsWorker(ctx, d, r.Publisher)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// The two workers stop together: the first to return ends the other.
	both, stopBoth := context.WithCancel(ctx)
	defer stopBoth()
	endsDone := make(chan error, 1)
	go func() { endsDone <- ends.Run(both); stopBoth() }()
	d.Log.Info("resolver running", "allowed_media_hosts", d.Config.AllowedMediaHosts,
		"data_api", api != nil, "cache", d.Cache != nil, "max_duration", d.Config.MaxDuration.String())
	if api == nil {
		d.Log.Info("resolver: no YOUTUBE_API_KEY: searches go through yt-dlp")
	}
	err = w.Run(both)
	stopBoth()
	return errors.Join(err, <-endsDone)
}

// parentEndsWorker is the worker that ends parent operations (ended.go):
// every retry is a Nak with backoff, never an operation.failed of the
// child it reads.
func parentEndsWorker(ctx context.Context, d Deps, pub stage.Publisher) (*stage.Worker, error) {
	cons, err := events.EnsureConsumer(ctx, d.JS, events.ConsumerPlaylists, 0)
	if err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	stream, err := d.JS.Stream(ctx, events.StreamName)
	if err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	p := &parentEnds{stream: stream, pub: pub}
	return &stage.Worker{
		Stage:       "playlist",
		JS:          d.JS,
		Consumer:    cons,
		Publish:     d.Publisher,
		Handle:      p.handle,
		Log:         d.Log,
		Timeout:     d.Config.StageTimeout,
		Concurrency: 2,
		Grace:       d.Config.ShutdownGrace,
	}, nil
}

// quickHandler answers the requests Resolver.quick resolves, beside the
// slots; a playlist, or a query that needs the Data API or a search, is
// stage.ErrNotQuick and goes to handler.
func quickHandler(r *Resolver) stage.Handler {
	return func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
		req, playlist, err := r.request(d)
		if err != nil {
			return nil, err
		}
		if playlist {
			return nil, stage.ErrNotQuick
		}
		song, ok, err := r.quick(ctx, req.Query, d.Log)
		switch {
		case !ok:
			return nil, stage.ErrNotQuick
		case err != nil:
			return nil, err
		}
		return resolvedTo(d, song), nil
	}
}

// handler resolves each request into its video.resolved. It is safe to
// run twice: the runtime derives the event's id from the request's.
func handler(r *Resolver) stage.Handler {
	return func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
		req, playlist, err := r.request(d)
		if err != nil {
			return nil, err
		}
		if playlist {
			ref, _ := songquery.PlaylistOf(req.Query, req.Playlist, r.Allowed)
			return r.expand(ctx, d, ref)
		}
		song, err := r.Resolve(ctx, req.Query, d.Log)
		if err != nil {
			return nil, err
		}
		return resolvedTo(d, song), nil
	}
}

// request is d's song.requested, and whether it asks for a playlist to
// expand (a child of a playlist never does).
func (r *Resolver) request(d stage.Delivery) (events.SongRequested, bool, error) {
	req, ok := d.Event.(events.SongRequested)
	if !ok {
		return req, false, events.Fail(events.CodeInvalidInput, "the resolver cannot handle %s", d.Envelope.Type)
	}
	_, playlist := songquery.PlaylistOf(req.Query, req.Playlist, r.Allowed)
	return req, playlist && req.Parent == "", nil
}

// resolvedTo is the video.resolved of d's song, logged.
func resolvedTo(d stage.Delivery, song events.Song) []stage.Emit {
	d.Log.Info("resolver: resolved", "song_id", song.ID, "source", song.Source, "title", song.Title)
	return []stage.Emit{{SongID: song.ID, Event: events.VideoResolved{Song: song}}}
}
