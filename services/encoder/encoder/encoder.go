// Package encoder is the encode stage: it takes audio.downloaded events,
// turns the staged audio into DCA1 with ffmpeg (copying the source's Opus
// packets when they are 48 kHz 20 ms frames, else encoding with libopus;
// see package transcode), streams the DCA into the blob store at "audio/<song_id>.dca", checks that the frames
// cover the source's duration, and answers dca.encoded then upload.done,
// which the stage runtime publishes. A second worker (loudness.go) measures
// a stored DCA whose dca.encoded has no loudness (a passthrough's) and
// answers loudness.measured, after the operation's end.
//
// Ack semantics are platform/runtime/stage's: a handled event is acked after both
// events are stored; an unreadable or empty source fails the operation at
// once (permanent events.CodeInvalidAudio / CodeEmptyAudio); store and
// stream errors are retried up to MAX_ATTEMPTS. The staged source is deleted
// once the operation ends here, whichever way.
//
// The encoder finishes the work of the song's claim (platform/runtime/claims) that
// the fetcher took: it keeps the claim alive while it encodes, releases it
// once upload.done is stored (the waiting requests then find the DCA
// stored), records a permanent failure in it (they fail the same way), and
// releases it when the last attempt fails (one of them takes over).
package encoder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/framestream"
	"github.com/butakero/butakero/platform/runtime/claims"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/membudget"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/butakero/butakero/services/encoder/dcafile"
	"github.com/butakero/butakero/services/encoder/internal/transcode"
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
	// Info. A missing key is an error wrapping blob.ErrNotFound.
	Open(ctx context.Context, key string) (io.ReadCloser, blob.Info, error)
	// Put streams r into blob key. The blob becomes visible only once r is
	// read to its end without error: a reader that fails leaves any
	// previous blob at key as it was.
	Put(ctx context.Context, key, contentType string, meta map[string]string, r io.Reader) (blob.Info, error)
	// Stat returns blob key's Info, or an error wrapping blob.ErrNotFound.
	Stat(ctx context.Context, key string) (blob.Info, error)
	// Delete removes blob key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Location is the URL of blob key in the store.
	Location(key string) string
}

var _ Blobs = blob.Store(nil)

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
	// Memory, when set, is held while a song is moved (membudget.Budget,
	// which the all-in-one passes): its Hold sets a soft memory limit,
	// its release lets it go. nil holds nothing (a service run alone).
	Memory *membudget.Budget
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
	// Stopped while it sets up: a clean stop, as any other.
	setupErr := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("encoder: %w", err)
	}
	cons, err := events.EnsureConsumer(ctx, d.JS, events.ConsumerEncoder, d.Config.MaxAttempts)
	if err != nil {
		return setupErr(err)
	}
	loudCons, err := events.EnsureConsumer(ctx, d.JS, events.ConsumerEncoderLoudness, 0)
	if err != nil {
		return setupErr(err)
	}
	if _, err := framestream.Ensure(ctx, d.JS, d.Config.StreamReplicas); err != nil {
		return setupErr(err)
	}
	cl := d.Claims
	if cl == nil {
		store, err := claims.Open(ctx, d.JS, d.Config.StreamReplicas, claims.DefaultTTL)
		if err != nil {
			return setupErr(err)
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
	h := &handler{nc: d.NC, js: d.JS, blobs: d.Blobs, bitrate: d.Config.DCABitrateKbps, claims: cl, memory: d.Memory,
		passthrough: d.Config.OpusPassthrough, maxKbps: d.Config.PassthroughMaxKbps, target: d.Config.LoudnessTarget}
	// Early encodes have slots of their own, as many as the late ones: a
	// late encode that waits for an early one holds its slot but no CPU.
	earlyCtx, stopEarly := context.WithCancel(ctx)
	earlyDone := make(chan struct{})
	go func() {
		defer close(earlyDone)
		if d.Config.EarlyEncode {
			h.startEarly(earlyCtx, d.Config.StreamReplicas, d.Config.MaxAttempts, n, d.Log)
		}
	}()
	defer func() { stopEarly(); <-earlyDone }()
	// The loudness of what is stored unmeasured (see measurer), beside
	// the encodes and stopped with them.
	loud := &stage.Worker{
		Stage:       LoudnessStage,
		JS:          d.JS,
		Consumer:    loudCons,
		Handle:      (&measurer{blobs: d.Blobs}).handle,
		Log:         d.Log,
		Timeout:     d.Config.StageTimeout,
		Concurrency: LoudnessConcurrency,
		Grace:       d.Config.ShutdownGrace,
		Metrics:     d.Metrics,
	}
	loudCtx, stopLoud := context.WithCancel(ctx)
	loudDone := make(chan struct{})
	go func() {
		defer close(loudDone)
		if err := loud.Run(loudCtx); err != nil {
			d.Log.Error("encoder: the loudness worker stopped; passthroughs are not measured until a restart", "error", err)
		}
	}()
	defer func() { stopLoud(); <-loudDone }()
	w := &stage.Worker{
		Stage:       StageName,
		JS:          d.JS,
		Consumer:    cons,
		Handle:      h.handle,
		Ended:       h.ended,
		Log:         d.Log,
		MaxAttempts: d.Config.MaxAttempts,
		Timeout:     d.Config.StageTimeout,
		Concurrency: n,
		Grace:       d.Config.ShutdownGrace,
		Metrics:     d.Metrics,
		Cancellable: true,
	}
	d.Log.Info("encoder: running", "concurrency", n, "bitrate_kbps", h.bitrate, "opus_passthrough", h.passthrough, "passthrough_max_kbps", h.maxKbps)
	return w.Run(ctx)
}

type handler struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	blobs   Blobs
	bitrate int
	claims  Claims
	// passthrough, maxKbps and target are OPUS_PASSTHROUGH,
	// PASSTHROUGH_MAX_KBPS and LOUDNESS_TARGET.
	passthrough bool
	maxKbps     int
	target      *float64
	// earlyKV holds the early encodes' states (early.go) once they are
	// set up; until then none are made or awaited.
	earlyKV atomic.Pointer[jetstream.KeyValue]
	memory  *membudget.Budget
}

// handle encodes one audio.downloaded event. It is safe to run twice for
// the same event: a song whose DCA is stored already (a previous run got as
// far as storing it) is described, not encoded again, and the runtime
// publishes only the events the stream lacks.
//
// It keeps the song's claim alive while it works, taking it again if it
// expired since the download; a claim another operation holds by now (it
// took an expired claim over) is left alone, and the encode goes on
// regardless: storing the same song's DCA twice is harmless. What becomes
// of the claim is decided once the message ends (ended).
func (h *handler) handle(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
	songID, _ := songOf(d)
	defer h.memory.Hold(songID)()
	if claim := h.claim(ctx, d); claim != nil {
		stop := claim.Keep(ctx)
		defer func() {
			if err := stop(); err != nil {
				d.Log.Warn("encoder: the song's claim was lost during the encode", "error", err)
			}
		}()
	}
	return h.encodeEvent(ctx, d)
}

// claim takes the claim on the event's song for its operation, or returns
// nil when there is none to take (another operation holds it, the claims
// store fails: the encode does not depend on it).
func (h *handler) claim(ctx context.Context, d stage.Delivery) *claims.Claim {
	songID, ok := songOf(d)
	if !ok {
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

// songOf is the id of the song the delivery's audio is of.
func songOf(d stage.Delivery) (string, bool) {
	ev, ok := d.Event.(events.AudioDownloaded)
	if !ok {
		return "", false
	}
	songID := ev.Song.ID
	if songID == "" {
		songID = d.Envelope.SongID
	}
	return songID, events.ValidSongID(songID) == nil
}

// ended lets go of what an audio.downloaded held once its operation ends
// here: the staged source is deleted, and the song's claim, if this
// operation holds it, is released after a success (the waiters find the
// DCA stored) or after the last attempt failed (a waiter takes over), or
// marked failed for a permanent failure (the waiters end with it). It is
// safe to run twice.
func (h *handler) ended(ctx context.Context, d stage.Delivery, o stage.Outcome) {
	ev, ok := d.Event.(events.AudioDownloaded)
	if !ok {
		return
	}
	songID, ok := songOf(d)
	defer h.memory.Hold(songID)()
	if err := h.blobs.Delete(ctx, ev.Key); err != nil {
		d.Log.Warn("encoder: delete staged audio", "key", ev.Key, "error", err)
	}
	h.endEarly(ctx, d.Envelope.OperationID, d.Log)
	if !ok {
		return
	}
	claim, _, err := h.claims.Acquire(ctx, songID, d.Envelope.OperationID)
	if err != nil {
		d.Log.Warn("encoder: settle the song's claim", "error", err)
		return
	}
	if claim == nil {
		return // another operation's now
	}
	if f := events.AsFailure(o.Err); o.Err != nil && f.Code.Permanent() {
		err = claim.Fail(ctx, string(f.Code), f.Message)
	} else {
		err = claim.Release(ctx)
	}
	if err != nil && !errors.Is(err, claims.ErrLost) {
		d.Log.Warn("encoder: settle the song's claim", "error", err)
	}
}

func (h *handler) encodeEvent(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
	ev, ok := d.Event.(events.AudioDownloaded)
	if !ok {
		return nil, events.Fail(events.CodeInvalidInput, "the encoder got a %s event", d.Envelope.Type)
	}
	song := ev.Song
	if song.ID == "" {
		song.ID = d.Envelope.SongID
	}
	if events.ValidSongID(song.ID) != nil {
		return nil, events.Fail(events.CodeInvalidInput, "the downloaded audio names no valid song id")
	}
	log := d.Log
	if song.ID != d.Envelope.SongID {
		log = log.With("song_id", song.ID)
	}
	key := blob.DCAKey(song.ID)

	if d.Attempt > 1 {
		// A previous attempt may have stored the DCA and lost what came
		// after (a publish, the ack).
		if emits, err := h.describe(ctx, song, key, log); err == nil {
			return emits, nil
		}
	}
	// An early encode of this download may have made the DCA, or be
	// making it: wait for it and hand its result on.
	if st, ok, err := h.awaitEarly(ctx, d.Envelope.OperationID, ev.Run, log); err != nil {
		log.Warn("encoder: the early encode's state is unreadable; encoding the staged source", "error", err)
	} else if ok {
		if info, err := h.blobs.Stat(ctx, key); err == nil && info.Size == st.Size {
			log.Info("encoder: the DCA was made while the song downloaded", "dca_key", key, "frames", st.Encoded.Frames, "dca_size", st.Size)
			events.PublishProgress(h.nc, d.Envelope.OperationID, StageName, 100)
			return h.done(song, key, st.Size, *st.Encoded), nil
		}
		log.Warn("encoder: the early encode's DCA is not stored as it said; encoding the staged source")
	}
	src, srcInfo, err := h.blobs.Open(ctx, ev.Key)
	if errors.Is(err, blob.ErrNotFound) {
		// The staged audio is deleted once the operation ends here: this
		// is a redelivery of an event already handled, if its DCA is
		// stored.
		emits, derr := h.describe(ctx, song, key, log)
		if derr != nil {
			return nil, events.Wrap(events.CodeInternal, errors.Join(err, derr), "the downloaded audio is no longer stored")
		}
		return emits, nil
	}
	if err != nil {
		return nil, events.Wrap(events.CodeInternal, err, "the downloaded audio could not be read")
	}
	path, size, err := stageFile(ctx, src, ev.Ext)
	src.Close()
	if path != "" {
		defer os.Remove(path)
	}
	if err != nil {
		return nil, events.Wrap(events.CodeInternal, err, "the downloaded audio could not be staged for encoding")
	}
	if size == 0 {
		return nil, events.Fail(events.CodeEmptyAudio, "the downloaded audio is empty")
	}

	source, err := transcode.Inspect(ctx, path)
	if err != nil {
		return nil, audioFailure(err)
	}
	srcDur := source.Duration
	log.Info("encoder: encoding", "key", ev.Key, "size", size, "source_duration", srcDur, "stored_size", srcInfo.Size,
		"codec", source.Codec, "sample_rate", source.SampleRate, "source_kbps", source.BitrateKbps)

	res, info, err := h.encode(ctx, path, nil, nil, d.Envelope.OperationID, song, source, key, log)
	if err != nil {
		return nil, audioFailure(err)
	}
	events.PublishProgress(h.nc, d.Envelope.OperationID, StageName, 100)
	log.Info("encoder: stored DCA", "dca_key", key, "frames", res.Frames, "dca_size", info.Size, "dca_duration", res.Duration(),
		"mode", res.Mode, "mode_reason", res.Reason)
	return h.done(song, key, info.Size, h.encoded(res, source)), nil
}

// encode streams the DCA of the file at path (or, when input is set, of
// the source input reads as it arrives: transcode.Options.Input) into the
// blob store and, as it is made, onto the song's subject of
// BUTAKERO_FRAMES (see output). The frame check, then gate when set, run
// before the upload is committed: a DCA that fails either is never stored,
// and a previous good DCA at key stays.
func (h *handler) encode(ctx context.Context, path string, input func() (io.ReadCloser, error), gate func() error,
	opID string, song events.Song, src transcode.Source, key string, log *slog.Logger) (transcode.Result, blob.Info, error) {
	srcDur := src.Duration
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The frame count is not known before the upload starts (it is
	// streamed), so the blob's metadata carries the source's duration;
	// dca.encoded carries the frames.
	out := &output{ctx: ctx, blobs: h.blobs, js: h.js, key: key, songID: song.ID, log: log, meta: map[string]string{
		"title":       song.Title,
		"duration_ms": strconv.FormatInt(srcDur.Milliseconds(), 10),
		"song_id":     song.ID,
	}}
	var last time.Time
	res, err := transcode.Encode(ctx, path, transcode.Options{
		BitrateKbps:        h.bitrate,
		Title:              song.Title,
		Source:             src,
		Passthrough:        h.passthrough,
		MaxPassthroughKbps: h.maxKbps,
		LoudnessTarget:     h.target,
		Input:              input,
		Progress: func(frames int64) {
			if now := time.Now(); now.Sub(last) >= progressEvery {
				last = now
				pct := 100 * float64(time.Duration(frames)*transcode.FrameDuration) / float64(srcDur)
				events.PublishProgress(h.nc, opID, StageName, min(pct, 99.9))
			}
		},
	}, out)
	if err == nil {
		err = checkCoverage(res, srcDur)
	}
	if err == nil && gate != nil {
		err = gate()
	}
	if err != nil {
		if gate != nil && out.begun {
			// Only the early encode has a gate. Its frames went out:
			// every follower's body breaks off, and the song is encoded
			// again. (res is empty when ffmpeg's run failed: no count.)
			log.Warn("encoder: the early encode failed after its first frames; the song is encoded again once downloaded",
				"reason", err)
		}
		// Fail the upload so nothing is committed, then wait for Put.
		perr := out.fail(err)
		var unreadable *transcode.Unreadable
		var f *events.Failure
		if perr != nil && ctx.Err() == nil && !errors.As(err, &unreadable) && !errors.As(err, &f) {
			// The store gave up first; the encode only saw the pipe close.
			err = events.Wrap(events.CodeInternal, perr, "the DCA could not be stored")
			out.ended(err)
		}
		return res, blob.Info{}, err
	}
	info, err := out.commit(res.Size)
	if err != nil {
		return res, blob.Info{}, err
	}
	return res, info, nil
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

// encoded is the dca.encoded of res, the DCA encoded from src: its
// bitrate is the source's for a passthrough, else the configured one, and
// a loudness not measured is left pending. The late and the early encode
// both tell it so.
func (h *handler) encoded(res transcode.Result, src transcode.Source) events.DCAEncoded {
	bitrate := h.bitrate
	if res.Mode == transcode.ModePassthrough {
		bitrate = src.BitrateKbps
	}
	return events.DCAEncoded{
		Frames:           res.Frames,
		DurationMs:       res.Duration().Milliseconds(),
		SourceDurationMs: src.Duration.Milliseconds(),
		BitrateKbps:      bitrate,
		Mode:             res.Mode,
		ModeReason:       res.Reason,
		LoudnessLUFS:     res.Loudness.LUFS,
		TruePeakDB:       res.Loudness.TruePeakDB,
		LoudnessPending:  !res.Measured,
	}
}

// done is what a stored DCA causes: dca.encoded, then upload.done.
func (h *handler) done(song events.Song, key string, size int64, enc events.DCAEncoded) []stage.Emit {
	return []stage.Emit{
		{SongID: song.ID, Event: enc},
		{SongID: song.ID, Event: events.UploadDone{Song: song, Key: key, Location: h.blobs.Location(key), Size: size}},
	}
}

// describe answers the events of a song whose DCA is stored already, read
// from the DCA itself, for an attempt that finds the work done. A DCA whose
// header has no loudness (every streamed one) gets a dca.encoded without
// it, and its measure follows as loudness.measured (measurer).
func (h *handler) describe(ctx context.Context, song events.Song, key string, log *slog.Logger) ([]stage.Emit, error) {
	r, info, err := h.blobs.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	dcaInfo, err := dcafile.Parse(r)
	if err != nil {
		return nil, err
	}
	if dcaInfo.Frames == 0 {
		return nil, errors.New("encoder: the stored DCA has no frames")
	}
	bitrate := h.bitrate
	if dcaInfo.Metadata.Opus != nil {
		bitrate = dcaInfo.Metadata.Opus.Bitrate / 1000
	}
	srcMs := song.DurationMs
	if srcMs == 0 {
		srcMs = dcaInfo.Duration.Milliseconds()
	}
	log.Info("encoder: the song's DCA is stored already; not encoding again", "dca_key", key, "frames", dcaInfo.Frames)
	enc := events.DCAEncoded{
		Frames:           dcaInfo.Frames,
		DurationMs:       dcaInfo.Duration.Milliseconds(),
		SourceDurationMs: srcMs,
		BitrateKbps:      bitrate,
	}
	if b := dcaInfo.Metadata.Butakero; b != nil {
		enc.Mode, enc.ModeReason, enc.LoudnessLUFS, enc.TruePeakDB = b.Mode, b.Reason, b.LoudnessLUFS, b.TruePeakDB
	}
	// A streamed DCA's header is written before the song is measured.
	enc.LoudnessPending = enc.LoudnessLUFS == nil && enc.TruePeakDB == nil
	return h.done(song, key, info.Size, enc), nil
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
	n, err := io.Copy(f, blob.ContextReader(ctx, src))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return f.Name(), n, fmt.Errorf("encoder: stage audio: %w", err)
	}
	return f.Name(), n, nil
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
