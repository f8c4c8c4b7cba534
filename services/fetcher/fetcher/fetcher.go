// Package fetcher is the fetch stage: for each video.resolved it downloads
// the song's audio, a YouTube video with yt-dlp (through goutubedl), a
// direct media URL with net/http (direct.go), streams it into the blob store
// at "staging/<operation_id>.<ext>", then publishes audio.downloaded.
//
// A YouTube fetch is one yt-dlp run (its start-up alone costs most of a second):
// yt-dlp itself refuses live streams and songs longer than MAX_DURATION
// before downloading (--match-filter), and writes the song's metadata to a
// file just before the download starts (--print-to-file), which is where
// audio.downloaded's title, duration and container come from.
//
// yt-dlp always runs with --ignore-config, gets its URL on standard input
// (so no URL can become an option), and writes the media to its standard
// output, which goes straight into the store: a download is never held in
// memory or on disk. Download progress goes out on core NATS
// (events.PublishProgress), a few times per second at most. yt-dlp may use
// its YouTube extractor only (--use-extractors youtube), so its generic
// extractor, which follows any page to any host, is off. A direct media URL
// never reaches yt-dlp: it is fetched over HTTP, with ALLOWED_MEDIA_HOSTS
// checked on every redirect and every connection (see direct.go).
//
// One song, one download (see singleflight.go): a song whose DCA is
// already stored is answered with upload.done at once, without running
// yt-dlp; of simultaneous requests for one new song, one downloads (it holds
// the song's claim, package platform/runtime/claims) and the others wait for its
// DCA.
package fetcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/sourcestream"
	"github.com/butakero/butakero/platform/media/ytdlp"
	"github.com/butakero/butakero/platform/runtime/claims"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/membudget"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/butakero/butakero/platform/runtime/tracing"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/wader/goutubedl"
	"go.opentelemetry.io/otel/attribute"
)

// StageName names the stage in logs, progress and operation.failed events.
const StageName = "fetch"

// DefaultConcurrency is how many downloads one process runs at once when
// neither Deps.Concurrency nor Config.FetchConcurrency says.
const DefaultConcurrency = 2

// QuickConcurrency is how many songs already stored one process answers at
// once beside its downloads: a stored song costs one blob stat, and does
// not wait behind a download for one of the Concurrency slots.
const QuickConcurrency = 16

// Format is the yt-dlp format selector: the best Opus audio-only format
// (YouTube's itag 251, WebM/Opus at 48 kHz, which the encoder copies
// without encoding again), else the best audio-only format, else the best
// format with audio and video in one file.
const Format = "bestaudio[acodec=opus]/bestaudio/best"

// Blobs is the part of the blob store the fetcher needs (*objstore.Store,
// *s3blob.Store).
type Blobs interface {
	// Put streams r into key. The blob must become visible only once r is
	// read to its end without error: a failed Put leaves nothing new.
	Put(ctx context.Context, key, contentType string, meta map[string]string, r io.Reader) (blob.Info, error)
	// Stat returns blob key's Info, or an error wrapping
	// blob.ErrNotFound: whether a song's DCA is stored.
	Stat(ctx context.Context, key string) (blob.Info, error)
	// List and Delete sweep staged downloads left behind (Sweeper).
	StagingBlobs
}

var _ Blobs = blob.Store(nil)

// Deps is what the fetcher needs. JS, Blobs and Log are required.
type Deps struct {
	// NC carries progress messages; nil means none are sent.
	NC *nats.Conn
	// JS holds the event stream (created beforehand, events.EnsureStream).
	JS jetstream.JetStream
	// Publisher publishes audio.downloaded; nil means events.NewPublisher(JS).
	Publisher stage.Publisher
	Blobs     Blobs
	// Config gives MaxAttempts, StageTimeout, ShutdownGrace, MaxDuration,
	// YTDLPProxy, YTDLPCookiesFile, YTDLPJSRuntimes and YTDLPRemoteComps.
	Config config.Config
	Log    *slog.Logger
	// Metrics records stage attempts, durations and failures, and the
	// requests that joined another's download; nil records nothing.
	Metrics *metrics.Metrics
	// Claims shares one download among simultaneous requests for one song;
	// nil means the claims bucket on JS (claims.Open, Config.StreamReplicas,
	// claims.DefaultTTL), which the encoder opens too.
	Claims Claims
	// Concurrency is how many downloads this process runs at once; 0 means
	// Config.FetchConcurrency, else DefaultConcurrency. More deliveries wait
	// in the consumer (visible as its pending count). Songs already stored
	// are answered beside them, QuickConcurrency at once.
	Concurrency int
	// Memory, when set, is held while a song is moved (membudget.Budget,
	// which the all-in-one passes): its Hold sets a soft memory limit,
	// its release lets it go. nil holds nothing (a service run alone).
	Memory *membudget.Budget
}

// Run ensures the fetcher's durable consumer and handles video.resolved
// events until ctx is cancelled. Each message is acked once the audio is
// stored and audio.downloaded published, or ended by the stage runtime
// with operation.failed (see package stage). After cancellation, in-flight
// downloads get Config.ShutdownGrace to finish; after that yt-dlp is killed,
// nothing is stored and the message is left for redelivery. Run returns
// nil after a clean stop.
func Run(ctx context.Context, d Deps) error {
	if d.JS == nil || d.Blobs == nil || d.Log == nil {
		return errors.New("fetcher: Deps.JS, Deps.Blobs and Deps.Log are required")
	}
	cons, err := events.EnsureConsumer(ctx, d.JS, events.ConsumerFetcher, d.Config.MaxAttempts)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("fetcher: %w", err)
	}
	cl := d.Claims
	if cl == nil {
		store, err := claims.Open(ctx, d.JS, d.Config.StreamReplicas, claims.DefaultTTL)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetcher: %w", err)
		}
		cl = store
	}
	n := d.Concurrency
	if n <= 0 {
		n = d.Config.FetchConcurrency
	}
	if n <= 0 {
		n = DefaultConcurrency
	}
	if !d.Config.EarlyEncode {
		// EARLY_ENCODE=off: nothing is published as it arrives.
	} else if _, err := sourcestream.Ensure(ctx, d.JS, d.Config.StreamReplicas); err != nil {
		// Not fatal: without the stream a download is not published as it
		// arrives (Arrivals.begin), and its song is encoded once downloaded.
		if ctx.Err() != nil {
			return nil
		}
		d.Log.Warn("fetcher: BUTAKERO_SOURCES could not be set up; downloads are encoded once whole until it is", "error", err)
	}
	pub := d.Publisher
	if pub == nil {
		pub = events.NewPublisher(d.JS)
	}
	var arrivals *Arrivals
	if d.Config.EarlyEncode {
		arrivals = &Arrivals{JS: d.JS, Publish: func(ctx context.Context, env events.Envelope) error {
			_, err := pub.Publish(ctx, env)
			return err
		}}
	}
	h := &handler{
		fetcher:     &Fetcher{NC: d.NC, Blobs: d.Blobs, Config: d.Config, Arrivals: arrivals},
		blobs:       d.Blobs,
		claims:      cl,
		metrics:     newFetcherMetrics(d.Metrics),
		maxAttempts: d.Config.MaxAttempts,
		memory:      d.Memory,
	}
	w := &stage.Worker{
		Stage:       StageName,
		JS:          d.JS,
		Consumer:    cons,
		Publish:     d.Publisher,
		Quick:       h.quick,
		Handle:      h.handle,
		Ended:       h.ended,
		Log:         d.Log,
		MaxAttempts: d.Config.MaxAttempts,
		Timeout:     d.Config.StageTimeout,
		Concurrency: n + QuickConcurrency,
		Slots:       n,
		Grace:       d.Config.ShutdownGrace,
		Metrics:     d.Metrics,
		Cancellable: true,
	}
	stream, err := d.JS.Stream(ctx, events.StreamName)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("fetcher: %w", err)
	}
	sweeper := &Sweeper{Blobs: d.Blobs, Stream: stream, MaxAge: d.Config.StagingMaxAge, Log: d.Log}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() { defer close(swept); sweeper.Run(sweepCtx) }()
	defer func() { stopSweep(); <-swept }()

	d.Log.Info("fetcher running", "concurrency", n, "max_duration", d.Config.MaxDuration.String(),
		"staging_max_age", d.Config.StagingMaxAge.String())
	return w.Run(ctx)
}

// Fetcher downloads songs into the blob store. It is safe for concurrent
// use: every Fetch runs its own yt-dlp process or HTTP client.
type Fetcher struct {
	// NC carries progress messages; nil means none are sent.
	NC     *nats.Conn
	Blobs  Blobs
	Config config.Config
	// Arrivals publishes each download as it arrives, for the encoder's
	// early encode; nil publishes nothing (the encode then waits for
	// audio.downloaded).
	Arrivals *Arrivals
}

// Fetch downloads song.URL into the blob store at
// "staging/<opID>.<ext>" and returns the audio.downloaded event to publish.
// A direct song (Source SourceDirect) is fetched over HTTP within
// ALLOWED_MEDIA_HOSTS (see direct.go); any other goes to yt-dlp's YouTube
// extractor.
//
// It fails with a permanent *events.Failure for what no retry would fix
// (the source is missing, private, live, too long or empty), and with a
// transient error otherwise. When ctx ends, yt-dlp (and any child) is
// killed and the partial upload discarded; the error then wraps ctx.Err().
func (f *Fetcher) Fetch(ctx context.Context, opID string, song events.Song, log *slog.Logger) (_ events.AudioDownloaded, err error) {
	if err := events.ValidSongID(song.ID); err != nil {
		return events.AudioDownloaded{}, events.Fail(events.CodeInvalidInput, "the song has no valid id")
	}
	if u, err := url.Parse(song.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return events.AudioDownloaded{}, events.Fail(events.CodeInvalidInput, "the song has no http(s) URL to fetch")
	}
	progress := func(float64) {}
	if f.NC != nil {
		progress = func(pct float64) { events.PublishProgress(f.NC, opID, StageName, pct) }
	}
	if song.Source == SourceDirect {
		return f.fetchDirect(ctx, opID, song, progress, log)
	}
	// The yt-dlp run, from its start until the audio is stored, is a span
	// of its own under the fetch attempt's.
	ctx, span := tracing.StartProcess(ctx, "yt-dlp", attribute.String("butakero.purpose", "download"))
	defer func() { tracing.EndProcess(span, err) }()
	dir, err := os.MkdirTemp("", "butakero-fetch-")
	if err != nil {
		return events.AudioDownloaded{}, events.Wrap(events.CodeInternal, err, "the download could not be prepared")
	}
	defer os.RemoveAll(dir)
	proc := newProcess(progress, append(fetchArgs(dir, f.Config.MaxDuration), jsArgs(f.Config)...)...)
	started := time.Now()

	// One yt-dlp run: goutubedl.Download passes the URL on stdin, selects
	// Format and returns once yt-dlp has started downloading (or failed).
	// stop kills it (and its process group) when the fetch gives up early.
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	dl, err := goutubedl.Download(dctx, song.URL, goutubedl.Options{
		Type:     goutubedl.TypeSingle,
		ProxyUrl: f.Config.YTDLPProxy,
		Cookies:  f.Config.YTDLPCookiesFile,
		StderrFn: proc.attach,
	}, Format)
	if err != nil {
		if dl != nil {
			closeDownload(dl, log)
		}
		_, _, lastErr, tail := proc.state()
		log.Warn("fetcher: yt-dlp failed", "error", err, "stderr", tail)
		return events.AudioDownloaded{}, classify(ctx, err, lastErr)
	}
	if _, playlist := proc.refusal(); playlist {
		stop()
		closeDownload(dl, log)
		return events.AudioDownloaded{}, events.Fail(events.CodeUnavailable, "the URL names a playlist, not one song")
	}
	info, ok, err := readInfo(filepath.Join(dir, infoFile))
	if err != nil || !ok {
		// yt-dlp never reached the download: its match filter refused the
		// video, or it failed. Either way it writes no media; let it end
		// so that its exit status and last words are known.
		closeDownload(dl, log)
		return events.AudioDownloaded{}, f.notDownloaded(ctx, dir, proc, err, log)
	}
	_, parsedFormat, _, _ := proc.state()
	formatID := firstNonEmpty(info.FormatID, parsedFormat)
	ext := extension(info)
	key := blob.StagingKey(opID, ext)
	body := &audioReader{ctx: ctx, r: dl, proc: proc}
	meta := map[string]string{"operation_id": opID, "song_id": song.ID, "format_id": formatID}
	known := song.Merge(events.Song{Title: info.Title, DurationMs: int64(info.Duration * 1000)})
	arr := f.Arrivals.begin(ctx, opID, known, ext, info.FileSize, log)
	// The store gets a context that outlives ctx so that, when ctx ends, it
	// can still discard the chunks already written: cancellation reaches
	// it through body, which then fails.
	stored, err := f.Blobs.Put(context.WithoutCancel(ctx), key, contentType(ext), meta, arr.tee(body))
	closeDownload(dl, log)
	arr.end(stored.Size, err)
	if err != nil {
		if body.err != nil {
			if _, _, _, tail := proc.state(); !errors.Is(body.err, context.Canceled) {
				log.Warn("fetcher: yt-dlp failed mid-download", "error", body.err, "stderr", tail)
			}
			return events.AudioDownloaded{}, body.err
		}
		return events.AudioDownloaded{}, events.Wrap(events.CodeInternal, err, "the audio could not be stored")
	}
	progress(100)

	learnt := events.Song{
		Title:        info.Title,
		DurationMs:   int64(info.Duration * 1000),
		ThumbnailURL: info.Thumbnail,
		Channel:      firstNonEmpty(info.Channel, info.Uploader),
	}
	log.Info("fetcher: downloaded", "key", key, "size", stored.Size, "format_id", formatID, "took", time.Since(started).Round(time.Millisecond))
	return events.AudioDownloaded{Song: song.Merge(learnt), Key: key, Size: stored.Size, Ext: ext, Run: arr.run()}, nil
}

// notDownloaded explains a yt-dlp run that ended without downloading,
// once it has exited: a video its match filter refused (live, too long),
// else the failure its exit status and last error tell. readErr is the
// failure to read the info file, if any.
func (f *Fetcher) notDownloaded(ctx context.Context, dir string, proc *process, readErr error, log *slog.Logger) error {
	if ctx.Err() != nil {
		return fmt.Errorf("fetcher: yt-dlp stopped: %w", ctx.Err())
	}
	cmd, _, lastErr, tail := proc.state()
	if filtered, _ := proc.refusal(); filtered {
		adm, _, err := readInfo(filepath.Join(dir, admissionFile))
		if err != nil {
			log.Warn("fetcher: yt-dlp's admission info is unreadable", "error", err)
		}
		return refused(adm, f.Config.MaxDuration)
	}
	if readErr != nil {
		log.Warn("fetcher: yt-dlp's info is unreadable", "error", readErr, "stderr", tail)
		return events.Wrap(events.CodeInternal, readErr, "the download could not be prepared")
	}
	status := errors.New("yt-dlp ended without downloading")
	if cmd != nil && cmd.ProcessState != nil && !cmd.ProcessState.Success() {
		status = fmt.Errorf("yt-dlp exited: %s", cmd.ProcessState)
	}
	log.Warn("fetcher: yt-dlp did not download", "error", status, "stderr", tail)
	return classify(ctx, status, lastErr)
}

// audioReader reads yt-dlp's standard output for the store. It turns the
// end of a failed or cancelled download into an error, so that the store
// never keeps a truncated or empty file: goutubedl itself reports such an
// end as a plain EOF.
type audioReader struct {
	ctx  context.Context
	r    io.Reader
	proc *process
	n    int64
	// err is the failure Read returned, if any.
	err error
}

func (a *audioReader) Read(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	if err := a.ctx.Err(); err != nil {
		a.err = fmt.Errorf("fetcher: download stopped: %w", err)
		return 0, a.err
	}
	n, err := a.r.Read(p)
	a.n += int64(n)
	switch {
	case err == io.EOF:
		// goutubedl closes stdout only after yt-dlp has exited and been
		// waited for, so its exit status is known here.
		cmd, _, lastErr, _ := a.proc.state()
		if cmd == nil || cmd.ProcessState == nil || !cmd.ProcessState.Success() {
			status := "unknown"
			if cmd != nil && cmd.ProcessState != nil {
				status = cmd.ProcessState.String()
			}
			a.err = classify(a.ctx, fmt.Errorf("yt-dlp exited: %s", status), lastErr)
			return n, a.err
		}
		if a.n == 0 {
			a.err = errEmpty()
			return n, a.err
		}
		return n, io.EOF
	case err != nil:
		a.err = classify(a.ctx, err, "")
		return n, a.err
	}
	return n, nil
}

// closeDownload stops yt-dlp's output and waits for the process to end.
// goutubedl's Close waits without a limit; the process is killed by ctx or
// ends on the closed pipe, and ytdlp.WaitDelay bounds exec's own wait, so a
// Close that still does not return is logged and left behind rather than
// holding the worker.
func closeDownload(dl *goutubedl.DownloadResult, log *slog.Logger) {
	done := make(chan struct{})
	go func() {
		_ = dl.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * ytdlp.WaitDelay):
		log.Error("fetcher: yt-dlp did not end after its output was closed")
	}
}

// extension is the container's extension as yt-dlp names it for the
// format it downloads, restricted to [a-z0-9] ("bin" when unknown).
func extension(info videoInfo) string {
	var b strings.Builder
	for _, r := range strings.ToLower(info.Ext) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 || b.Len() > 10 {
		return "bin"
	}
	return b.String()
}

// contentType is the media type stored with the blob.
func contentType(ext string) string {
	switch ext {
	case "m4a":
		return "audio/mp4"
	case "webm", "weba":
		return "audio/webm"
	case "mp3":
		return "audio/mpeg"
	case "ogg", "opus", "oga":
		return "audio/ogg"
	case "wav":
		return "audio/wav"
	case "mp4":
		return "video/mp4"
	}
	if t := mime.TypeByExtension("." + ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
