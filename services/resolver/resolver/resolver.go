// Package resolver is the resolve stage: it turns a song.requested query
// into the song it names and publishes video.resolved.
//
// YouTube URLs and video ids, and URLs on ALLOWED_MEDIA_HOSTS, are resolved
// without any network access (see Parse); free text is searched for through
// a Searcher (yt-dlp by default). Any other URL fails the operation with
// invalid_input.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/config"
	"github.com/butakero/butakero/platform/stage"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StageName names the stage in logs and in operation.failed events.
const StageName = "resolve"

// Concurrency is how many queries one process resolves at once. A search
// runs one yt-dlp process; everything else is cheap.
const Concurrency = 4

// Deps is what the resolver needs. JS, Config and Log are required.
type Deps struct {
	// NC is the core connection. Unused for now; kept so that every stage
	// is wired the same way.
	NC *nats.Conn
	// JS holds the event stream (created beforehand, events.EnsureStream).
	JS jetstream.JetStream
	// Publisher publishes video.resolved; nil means events.NewPublisher(JS).
	Publisher stage.Publisher
	// Search finds free-text queries; nil means a YTDLPSearcher configured
	// from Config.
	Search Searcher
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
	cons, err := events.EnsureConsumer(ctx, d.JS, events.ConsumerResolver, d.Config.MaxAttempts)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("resolver: %w", err)
	}
	pub := d.Publisher
	if pub == nil {
		pub = events.NewPublisher(d.JS)
	}
	h := &handler{
		pub:     pub,
		search:  d.Search,
		allowed: d.Config.AllowedMediaHosts,
	}
	if h.search == nil {
		h.search = &YTDLPSearcher{Proxy: d.Config.YTDLPProxy, Cookies: d.Config.YTDLPCookiesFile}
	}
	w := &stage.Worker{
		Stage:       StageName,
		Consumer:    cons,
		Publish:     pub,
		Handle:      h.handle,
		Log:         d.Log,
		MaxAttempts: d.Config.MaxAttempts,
		Timeout:     d.Config.StageTimeout,
		Concurrency: Concurrency,
		Grace:       d.Config.ShutdownGrace,
	}
	d.Log.Info("resolver running", "allowed_media_hosts", d.Config.AllowedMediaHosts)
	return w.Run(ctx)
}

type handler struct {
	pub     stage.Publisher
	search  Searcher
	allowed []string
}

// handle resolves one song.requested. It is safe to run twice: the
// video.resolved id derives from the request's, so the stream keeps one.
func (h *handler) handle(ctx context.Context, d stage.Delivery) error {
	req, ok := d.Event.(events.SongRequested)
	if !ok {
		return events.Fail(events.CodeInvalidInput, "the resolver cannot handle %s", d.Envelope.Type)
	}
	q, err := Parse(req.Query, h.allowed)
	if err != nil {
		return err
	}
	song := q.Song
	if q.Kind == KindSearch {
		d.Log.Info("resolver: searching", "query", q.Text)
		song, err = h.search.Search(ctx, q.Text)
		if err != nil {
			return err
		}
		if !videoID.MatchString(song.ID) {
			return events.Fail(events.CodeInternal, "the search returned an invalid video id %q", song.ID)
		}
	}
	env, err := events.Next(d.Envelope, song.ID, events.VideoResolved{Song: song})
	if err != nil {
		return events.Wrap(events.CodeInternal, err, "the resolved song could not be recorded")
	}
	if _, err := h.pub.Publish(ctx, env); err != nil {
		return events.Wrap(events.CodeInternal, err, "the resolved song could not be recorded")
	}
	d.Log.Info("resolver: resolved", "song_id", song.ID, "kind", q.Kind.String(), "source", song.Source)
	return nil
}
