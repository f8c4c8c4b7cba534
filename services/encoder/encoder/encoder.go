// Package encoder is the encode stage: it takes audio.downloaded events,
// encodes the staged audio to DCA1 with ffmpeg (jonas747/dca), streams the
// DCA into the blob store at "audio/<song_id>.dca", checks that the frames
// cover the source's duration, and publishes dca.encoded then upload.done.
//
// Ack semantics are platform/stage's: a handled event is acked after both
// events are published; an unreadable or empty source fails the operation at
// once (permanent events.CodeInvalidAudio / CodeEmptyAudio); store and
// stream errors are retried up to MAX_ATTEMPTS.
//
// The encoder finishes the work of the song's claim (platform/claims) that
// the fetcher took: it keeps the claim alive while it encodes, releases it
// once upload.done is published (the waiting requests then find the DCA
// stored), records a permanent failure in it (they fail the same way), and
// releases it when the last attempt fails (one of them takes over).
package encoder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/claims"
	"github.com/butakero/butakero/platform/config"
	"github.com/butakero/butakero/platform/metrics"
	"github.com/butakero/butakero/platform/objstore"
	"github.com/butakero/butakero/platform/stage"
	"github.com/butakero/butakero/services/encoder/dcafile"
	"github.com/butakero/butakero/services/encoder/internal/transcode"
	"github.com/jonas747/dca"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StageName names this stage in logs, progress and operation.failed events.
const StageName = "encode"

// ContentType is the content type DCA blobs are stored with.
const ContentType = "audio/x-dca"

// DefaultConcurrency is how many encodes one process runs at once when
// neither Deps.Concurrency nor Config.EncodeConcurrency says. Each one is
// an ffmpeg process on about one core.
const DefaultConcurrency = 2

// progressEvery bounds how often progress is published for one encode.
const progressEvery = 500 * time.Millisecond

// Blobs is the blob store the encoder reads staged audio from and writes
// DCA files to. *objstore.Store satisfies it.
type Blobs interface {
	// Open returns a reader of blob key, which the caller closes, and its
	// Info. A missing key is an error wrapping objstore.ErrNotFound.
	Open(ctx context.Context, key string) (io.ReadCloser, objstore.Info, error)
	// Put streams r into blob key. The blob becomes visible only once r is
	// read to its end without error: a reader that fails leaves any
	// previous blob at key as it was.
	Put(ctx context.Context, key, contentType string, meta map[string]string, r io.Reader) (objstore.Info, error)
	// Delete removes blob key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Location is the URL of blob key in the store.
	Location(key string) string
}

var _ Blobs = (*objstore.Store)(nil)

// Deps is what Run needs.
type Deps struct {
	// NC carries progress messages (core NATS).
	NC *nats.Conn
	// JS holds the event stream and the encoder's consumer.
	JS    jetstream.JetStream
	Blobs Blobs
	// Config gives MaxAttempts, StageTimeout, ShutdownGrace and
	// DCABitrateKbps.
	Config config.Config
	Log    *slog.Logger
	// Metrics records stage attempts, durations and failures; nil records
	// nothing.
	Metrics *metrics.Metrics
	// Concurrency is how many events this process encodes at once; 0
	// means Config.EncodeConcurrency (default: the CPUs), else
	// DefaultConcurrency. More events wait in the consumer, as its pending
	// count, rather than oversubscribing the CPUs.
	Concurrency int
	// Claims is where the songs' claims live; nil means the claims bucket
	// on JS (claims.Open, Config.StreamReplicas, claims.DefaultTTL).
	Claims Claims
}

// Claims is the part of the claims store the encoder needs
// (*claims.Store).
type Claims interface {
	// Acquire takes the claim on song for the operation owner (again, for
	// the owner that took it to fetch), or returns its holder's Record.
	Acquire(ctx context.Context, song, owner string) (*claims.Claim, claims.Record, error)
}

var _ Claims = (*claims.Store)(nil)

// Run consumes audio.downloaded events from the encoder's durable consumer
// (created if missing; the stream must exist) until ctx is cancelled. It
// then stops taking events, lets in-flight encodes finish within
// Config.ShutdownGrace (after which their ffmpeg is killed and the event is
// left for redelivery), and returns nil. Several processes may run it
// against one cluster: each event goes to one of them.
func Run(ctx context.Context, d Deps) error {
	if d.NC == nil || d.JS == nil || d.Blobs == nil || d.Log == nil {
		return errors.New("encoder: Deps needs NC, JS, Blobs and Log")
	}
	routeDCALog()
	cons, err := events.EnsureConsumer(ctx, d.JS, events.ConsumerEncoder, d.Config.MaxAttempts)
	if err != nil {
		return fmt.Errorf("encoder: %w", err)
	}
	cl := d.Claims
	if cl == nil {
		store, err := claims.Open(ctx, d.JS, d.Config.StreamReplicas, claims.DefaultTTL)
		if err != nil {
			return fmt.Errorf("encoder: %w", err)
		}
		cl = store
	}
	n := d.Concurrency
	if n <= 0 {
		n = d.Config.EncodeConcurrency
	}
	if n <= 0 {
		n = DefaultConcurrency
	}
	pub := events.NewPublisher(d.JS)
	h := &handler{nc: d.NC, pub: pub, blobs: d.Blobs, bitrate: d.Config.DCABitrateKbps, claims: cl, maxAttempts: d.Config.MaxAttempts}
	w := &stage.Worker{
		Stage:       StageName,
		Consumer:    cons,
		Publish:     pub,
		Handle:      h.handle,
		Log:         d.Log,
		MaxAttempts: d.Config.MaxAttempts,
		Timeout:     d.Config.StageTimeout,
		Concurrency: n,
		Grace:       d.Config.ShutdownGrace,
		Metrics:     d.Metrics,
	}
	d.Log.Info("encoder: running", "concurrency", n, "bitrate_kbps", h.bitrate)
	return w.Run(ctx)
}

var dcaLogOnce sync.Once

// routeDCALog sends jonas747/dca's package-global log lines (ffmpeg stats
// it fails to parse, read errors it only logs) to slog's default logger at
// debug level, instead of the standard logger's stderr. What matters of
// them reaches the handler through the session's error and messages.
func routeDCALog() {
	dcaLogOnce.Do(func() { dca.Logger = log.New(slogDebugWriter{}, "", 0) })
}

// slogDebugWriter writes each line to slog.Default() at debug level,
// looked up at write time.
type slogDebugWriter struct{}

func (slogDebugWriter) Write(p []byte) (int, error) {
	slog.Default().Debug(strings.TrimRight(string(p), "\n"), "component", "dca")
	return len(p), nil
}

// Key is the blob key of a song's DCA.
func Key(songID string) string { return "audio/" + songID + ".dca" }

// Publisher is the part of events.Publisher the handler needs.
type Publisher interface {
	Publish(ctx context.Context, env events.Envelope) (*jetstream.PubAck, error)
}

type handler struct {
	nc          *nats.Conn
	pub         Publisher
	blobs       Blobs
	bitrate     int
	claims      Claims // nil: no claims (tests of the encode alone)
	maxAttempts int
}

// claimTimeout bounds the claim writes made after an attempt, whose own
// context may have expired.
const claimTimeout = 10 * time.Second

// handle encodes one audio.downloaded event. It is safe to run twice for
// the same event: the DCA is replaced by an identical one and the events it
// publishes have ids derived from the delivery, which the stream dedupes.
//
// It holds the song's claim while it works, taking it again if it expired
// since the download; a claim another operation holds by now (it took an
// expired claim over) is left alone, and the encode goes on regardless:
// storing the same song's DCA twice is harmless.
func (h *handler) handle(ctx context.Context, d stage.Delivery) error {
	claim := h.claim(ctx, d)
	var stop func() error
	if claim != nil {
		stop = claim.Keep(ctx)
	}
	err := h.encodeEvent(ctx, d)
	if stop != nil {
		if kerr := stop(); kerr != nil {
			d.Log.Warn("encoder: the song's claim was lost during the encode", "error", kerr)
		}
		h.settle(ctx, d, claim, err)
	}
	var f *events.Failure
	if ev, ok := d.Event.(events.AudioDownloaded); ok && errors.As(err, &f) && f.Code.Permanent() && ctx.Err() == nil {
		// The operation ends here: the staged audio will never be read again.
		if derr := h.blobs.Delete(context.WithoutCancel(ctx), ev.Key); derr != nil {
			d.Log.Warn("encoder: delete staged audio", "key", ev.Key, "error", derr)
		}
	}
	return err
}

// claim takes the claim on the event's song for its operation, or returns
// nil when there is none to take (another operation holds it, the claims
// store fails: the encode does not depend on it).
func (h *handler) claim(ctx context.Context, d stage.Delivery) *claims.Claim {
	ev, ok := d.Event.(events.AudioDownloaded)
	if h.claims == nil || !ok {
		return nil
	}
	songID := ev.Song.ID
	if songID == "" {
		songID = d.Envelope.SongID
	}
	if !validID(songID) {
		return nil
	}
	c, held, err := h.claims.Acquire(ctx, songID, d.Envelope.OperationID)
	if err != nil {
		d.Log.Warn("encoder: the song's claim could not be taken; encoding without it", "error", err)
		return nil
	}
	if c == nil {
		d.Log.Info("encoder: another operation took this song's claim over; encoding anyway", "owner", held.Owner)
	}
	return c
}

// settle ends the claim's part in an attempt: released once the DCA is
// stored and upload.done published (the waiters find it), marked failed
// for a permanent failure (the waiters end with it), released after the
// last attempt (a waiter takes over); kept for this operation's next
// attempt otherwise.
func (h *handler) settle(ctx context.Context, d stage.Delivery, claim *claims.Claim, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	f := events.AsFailure(err)
	var cerr error
	switch {
	case err == nil:
		cerr = claim.Release(ctx)
	case f.Code.Permanent():
		cerr = claim.Fail(ctx, string(f.Code), f.Message)
	case d.Attempt >= h.maxAttempts:
		cerr = claim.Release(ctx)
	}
	if cerr != nil && !errors.Is(cerr, claims.ErrLost) {
		d.Log.Warn("encoder: settle the song's claim", "error", cerr)
	}
}

func (h *handler) encodeEvent(ctx context.Context, d stage.Delivery) error {
	ev, ok := d.Event.(events.AudioDownloaded)
	if !ok {
		return events.Fail(events.CodeInvalidInput, "the encoder got a %s event", d.Envelope.Type)
	}
	song := ev.Song
	if song.ID == "" {
		song.ID = d.Envelope.SongID
	}
	if !validID(song.ID) {
		return events.Fail(events.CodeInvalidInput, "the downloaded audio names no valid song id")
	}
	log := d.Log
	if song.ID != d.Envelope.SongID {
		log = log.With("song_id", song.ID)
	}
	key := Key(song.ID)

	src, srcInfo, err := h.blobs.Open(ctx, ev.Key)
	if errors.Is(err, objstore.ErrNotFound) {
		// The staging blob is deleted after upload.done: this is probably a
		// redelivery of an event already handled whose ack was lost.
		return h.republish(ctx, d, song, key, log)
	}
	if err != nil {
		return events.Wrap(events.CodeInternal, err, "the downloaded audio could not be read")
	}
	path, size, err := stageFile(ctx, src, ev.Ext)
	src.Close()
	if path != "" {
		defer os.Remove(path)
	}
	if err != nil {
		return events.Wrap(events.CodeInternal, err, "the downloaded audio could not be staged for encoding")
	}
	if size == 0 {
		return events.Fail(events.CodeEmptyAudio, "the downloaded audio is empty")
	}

	srcDur, err := transcode.Probe(ctx, path)
	if err != nil {
		return audioFailure(err)
	}
	log.Info("encoder: encoding", "key", ev.Key, "size", size, "source_duration", srcDur, "stored_size", srcInfo.Size)

	res, info, err := h.encode(ctx, path, d.Envelope.OperationID, song, srcDur, key)
	if err != nil {
		return audioFailure(err)
	}
	events.PublishProgress(h.nc, d.Envelope.OperationID, StageName, 100)
	log.Info("encoder: stored DCA", "dca_key", key, "frames", res.Frames, "dca_size", info.Size, "dca_duration", res.Duration())

	if err := h.publishDone(ctx, d.Envelope, song, key, info.Size, events.DCAEncoded{
		Frames:           res.Frames,
		DurationMs:       res.Duration().Milliseconds(),
		SourceDurationMs: srcDur.Milliseconds(),
		BitrateKbps:      h.bitrate,
	}); err != nil {
		return err
	}
	if err := h.blobs.Delete(context.WithoutCancel(ctx), ev.Key); err != nil {
		log.Warn("encoder: delete staged audio", "key", ev.Key, "error", err)
	}
	return nil
}

// encode streams the DCA of the file at path into the blob store. The frame
// check runs before the upload is committed: a DCA that fails it is never
// stored, and a previous good DCA at key stays.
func (h *handler) encode(ctx context.Context, path, opID string, song events.Song, srcDur time.Duration, key string) (transcode.Result, objstore.Info, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	type put struct {
		info objstore.Info
		err  error
	}
	done := make(chan put, 1)
	go func() {
		// The frame count is not known before the upload starts (it is
		// streamed), so the blob's metadata carries the source's duration;
		// dca.encoded carries the frames.
		meta := map[string]string{
			"title":       song.Title,
			"duration_ms": strconv.FormatInt(srcDur.Milliseconds(), 10),
			"song_id":     song.ID,
		}
		info, err := h.blobs.Put(ctx, key, ContentType, meta, pr)
		// Unblock the encoder if Put gave up before the end.
		pr.CloseWithError(errors.Join(err, io.ErrClosedPipe))
		done <- put{info, err}
	}()

	var last time.Time
	res, err := transcode.Encode(ctx, path, transcode.Options{
		BitrateKbps: h.bitrate,
		Title:       song.Title,
		Progress: func(frames int64) {
			if now := time.Now(); now.Sub(last) >= progressEvery {
				last = now
				pct := 100 * float64(time.Duration(frames)*transcode.FrameDuration) / float64(srcDur)
				events.PublishProgress(h.nc, opID, StageName, min(pct, 99.9))
			}
		},
	}, pw)
	if err == nil {
		err = checkCoverage(res, srcDur)
	}
	if err != nil {
		// Fail the upload so nothing is committed, then wait for Put.
		pw.CloseWithError(err)
		p := <-done
		var unreadable *transcode.Unreadable
		var f *events.Failure
		if p.err != nil && ctx.Err() == nil && !errors.As(err, &unreadable) && !errors.As(err, &f) {
			// The store gave up first; the encode only saw the pipe close.
			return res, objstore.Info{}, events.Wrap(events.CodeInternal, p.err, "the DCA could not be stored")
		}
		return res, objstore.Info{}, err
	}
	pw.Close()
	p := <-done
	if p.err != nil {
		return res, objstore.Info{}, events.Wrap(events.CodeInternal, p.err, "the DCA could not be stored")
	}
	if p.info.Size != res.Size {
		return res, objstore.Info{}, events.Fail(events.CodeInternal, "the DCA was stored with %d bytes, %d written", p.info.Size, res.Size)
	}
	return res, p.info, nil
}

// checkCoverage fails an encode whose frames fall short of the source's
// duration by more than 1% and one frame: ffmpeg stopped early. Frames past
// the source's end are not checked: ffprobe's duration is an estimate for
// some containers, and a longer encode has lost nothing.
func checkCoverage(res transcode.Result, src time.Duration) error {
	if got := res.Duration(); got < src-src/100-transcode.FrameDuration {
		return events.Fail(events.CodeInvalidAudio,
			"the encoded audio lasts %s but the source lasts %s", got.Round(time.Millisecond), src.Round(time.Millisecond))
	}
	return nil
}

// publishDone publishes dca.encoded then upload.done, both as consequences
// of parent, so that a second run publishes the same ids.
func (h *handler) publishDone(ctx context.Context, parent events.Envelope, song events.Song, key string, size int64, enc events.DCAEncoded) error {
	first, err := events.Next(parent, song.ID, enc)
	if err != nil {
		return events.Wrap(events.CodeInternal, err, "the dca.encoded event could not be made")
	}
	second, err := events.Next(parent, song.ID, events.UploadDone{
		Song: song, Key: key, Location: h.blobs.Location(key), Size: size,
	})
	if err != nil {
		return events.Wrap(events.CodeInternal, err, "the upload.done event could not be made")
	}
	for _, env := range []events.Envelope{first, second} {
		if _, err := h.pub.Publish(ctx, env); err != nil {
			return events.Wrap(events.CodeInternal, err, "the %s event could not be published", env.Type)
		}
	}
	return nil
}

// republish handles an event whose staged audio is gone. If the song's DCA
// is stored, a previous run got as far as deleting the staging blob, so it
// published both events; they are published again (same ids: the stream
// keeps one copy within its duplicate window). Otherwise the audio is lost
// and the error is transient, so the operation fails after MAX_ATTEMPTS.
func (h *handler) republish(ctx context.Context, d stage.Delivery, song events.Song, key string, log *slog.Logger) error {
	r, info, err := h.blobs.Open(ctx, key)
	if err != nil {
		return events.Wrap(events.CodeInternal, err, "the downloaded audio is no longer stored")
	}
	defer r.Close()
	dcaInfo, err := dcafile.Parse(r)
	if err != nil || dcaInfo.Frames == 0 {
		return events.Wrap(events.CodeInternal, errors.Join(err, errors.New("empty DCA")), "the downloaded audio is no longer stored")
	}
	bitrate := h.bitrate
	if dcaInfo.Metadata.Opus != nil {
		bitrate = dcaInfo.Metadata.Opus.Bitrate / 1000
	}
	srcMs := song.DurationMs
	if srcMs == 0 {
		srcMs = dcaInfo.Duration.Milliseconds()
	}
	log.Info("encoder: staged audio gone but DCA stored: republishing", "dca_key", key, "frames", dcaInfo.Frames)
	return h.publishDone(ctx, d.Envelope, song, key, info.Size, events.DCAEncoded{
		Frames:           dcaInfo.Frames,
		DurationMs:       dcaInfo.Duration.Milliseconds(),
		SourceDurationMs: srcMs,
		BitrateKbps:      bitrate,
	})
}

// audioFailure maps a transcode error to the failure the stage reports.
func audioFailure(err error) error {
	var unreadable *transcode.Unreadable
	if errors.As(err, &unreadable) {
		msg := "the downloaded file is not audio ffmpeg can read"
		if unreadable.Message != "" {
			msg += " (" + unreadable.Message + ")"
		}
		return events.Wrap(events.CodeInvalidAudio, err, "%s", msg)
	}
	var f *events.Failure
	if errors.As(err, &f) {
		return f
	}
	return events.Wrap(events.CodeInternal, err, "the audio could not be encoded")
}

// stageFile copies src to a new temporary file and returns its path and
// size. ffmpeg needs a file, not a pipe, to read MP4s without faststart.
// The caller removes the file; on error the path may still need removing.
func stageFile(ctx context.Context, src io.Reader, ext string) (string, int64, error) {
	f, err := os.CreateTemp(os.TempDir(), "butakero-encode-*"+safeExt(ext))
	if err != nil {
		return "", 0, fmt.Errorf("encoder: temp file: %w", err)
	}
	n, err := io.Copy(f, ctxReader{ctx, src})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return f.Name(), n, fmt.Errorf("encoder: stage audio: %w", err)
	}
	return f.Name(), n, nil
}

// ctxReader stops a copy once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// safeExt returns ".ext" for a short alphanumeric extension, else "". The
// extension only helps ffmpeg guess the container.
func safeExt(ext string) string {
	if ext == "" || len(ext) > 8 {
		return ""
	}
	for _, r := range ext {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return ""
		}
	}
	return "." + ext
}

// validID accepts ids safe in a blob key: 1 to 128 letters, digits, '-'
// and '_'.
func validID(id string) bool {
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
