package encoder

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/jsbucket"
	"github.com/butakero/butakero/platform/media/sourcestream"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/butakero/butakero/services/encoder/internal/transcode"
	"github.com/nats-io/nats.go/jetstream"
)

// The early encode: the download and the encode overlap.
//
// The fetcher announces each download with audio.arriving and publishes the
// source as it arrives on BUTAKERO_SOURCES (package sourcestream). The
// encoder takes the announcement from its own consumer (encoder_early, one
// delivery, acked when taken) and, when the source can be decoded from a
// pipe (a faststart MP4, Matroska/WebM: sourcestream.Streamable) and one of
// its encode slots is free, encodes it as it comes: the DCA streams into
// the blob store and onto BUTAKERO_FRAMES exactly as a late encode's does.
//
// Which encode makes an operation's DCA is decided in the KV bucket
// early_encodes, one key per operation holding an earlyState: the early
// encode creates it ("running", refreshed every earlyBeat); the
// audio.downloaded delivery of the same run reads it and
//   - "stored": answers dca.encoded and upload.done from it, encoding
//     nothing (the hand-over);
//   - "running" or "committing": waits for it to change; one unchanged for
//     earlyStale (its encoder died) is taken over: written "late";
//   - absent, "failed", "late", or another run's: writes "late" and
//     encodes the staged blob as before.
//
// Every write is a compare-and-set, so one of the two wins: an early
// encode that finds the key "late", deleted (the operation ended or was
// cancelled) or another run's stops at once (its watch cancels it: ffmpeg
// is killed, the upload abandoned, its frames run ends failed), and one
// that cannot write "committing" before its upload completes never stores.
// An early encode whose run is no longer the operation's current one (a
// retried download purged it) fails on its source (sourcestream.ErrRunGone)
// and is abandoned too.
const (
	// EarlyBucket is the KV bucket of the early encodes' states.
	EarlyBucket = "early_encodes"
	// earlyBeat is how often an early encode refreshes its state.
	earlyBeat = 2 * time.Second
	// earlyStale is how long a state may go unchanged before the
	// audio.downloaded delivery takes the encode over.
	earlyStale = 10 * time.Second
	// earlyIdle is how long an early encode waits for the next chunk of a
	// source before it gives up (the fetcher died).
	earlyIdle = 30 * time.Second
	// earlyTTL bounds how long a state is kept.
	earlyTTL = time.Hour
)

// The states of an early encode.
const (
	earlyRunning    = "running"
	earlyCommitting = "committing"
	earlyStored     = "stored"
	earlyFailed     = "failed"
	earlyLate       = "late"
)

// earlyState is the value of an operation's key in EarlyBucket.
type earlyState struct {
	// Run is the source's run (AudioArriving.Run).
	Run   string `json:"run"`
	State string `json:"state"`
	// Reason says why an early encode failed or did not start.
	Reason string `json:"reason,omitempty"`
	// Size and Encoded are a stored DCA's size and its dca.encoded.
	Size    int64              `json:"size,omitempty"`
	Encoded *events.DCAEncoded `json:"encoded,omitempty"`
}

func decodeState(e jetstream.KeyValueEntry) (earlyState, bool) {
	if e == nil || e.Operation() != jetstream.KeyValuePut {
		return earlyState{}, false
	}
	var s earlyState
	if json.Unmarshal(e.Value(), &s) != nil {
		return earlyState{}, false
	}
	return s, true
}

func encodeState(s earlyState) []byte {
	b, _ := json.Marshal(s)
	return b
}

// openEarly opens (creating) EarlyBucket.
func openEarly(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := jsbucket.KeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      EarlyBucket,
		Description: "Butakero: which encode, early or late, makes each operation's DCA",
		History:     1,
		TTL:         earlyTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("encoder: open bucket %s: %w", EarlyBucket, err)
	}
	return kv, nil
}

// earlyStates is EarlyBucket, nil until startEarly has opened it.
func (h *handler) earlyStates() jetstream.KeyValue {
	if kv := h.earlyKV.Load(); kv != nil {
		return *kv
	}
	return nil
}

// startEarly sets up the early encodes (BUTAKERO_SOURCES, the
// encoder_early consumer, EarlyBucket), trying again every second while
// JetStream does not answer, then takes audio.arriving until ctx ends
// (runEarly). The late encodes never wait for it: until it is set up, or
// if it never is, every song is encoded once downloaded.
func (h *handler) startEarly(ctx context.Context, replicas, maxAttempts, slots int, log *slog.Logger) {
	for {
		err := func() error {
			if _, err := sourcestream.Ensure(ctx, h.js, replicas); err != nil {
				return err
			}
			cons, err := events.EnsureConsumer(ctx, h.js, events.ConsumerEncoderEarly, maxAttempts)
			if err != nil {
				return err
			}
			kv, err := openEarly(ctx, h.js, replicas)
			if err != nil {
				return err
			}
			h.earlyKV.Store(&kv)
			h.runEarly(ctx, cons, make(chan struct{}, slots), log)
			return nil
		}()
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("encoder: early encodes not set up yet; songs are encoded once downloaded", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// runEarly takes audio.arriving events from cons until ctx ends, and
// starts an early encode for each while one of slots is free; none is
// waited for on return (each ends with ctx).
func (h *handler) runEarly(ctx context.Context, cons jetstream.Consumer, slots chan struct{}, log *slog.Logger) {
	for ctx.Err() == nil {
		msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("encoder: early encodes: fetch", "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		for msg := range msgs.Messages() {
			_ = msg.Ack()
			env, ev, err := events.Decode(msg.Data())
			arr, ok := ev.(events.AudioArriving)
			if err != nil || !ok || arr.Run == "" {
				continue
			}
			l := log.With("operation_id", env.OperationID, "song_id", env.SongID, "run", arr.Run)
			select {
			case slots <- struct{}{}:
			default:
				l.Info("encoder: no encode slot free; the song is encoded once downloaded")
				continue
			}
			subject, header := msg.Subject(), msg.Headers()
			go func() {
				defer func() { <-slots }()
				// Its own span, the child of the fetch that announced the
				// download: the ffprobe and ffmpeg runs are under it.
				sctx, span := stage.StartWork(ctx, "early_encode", subject, header, env)
				stage.EndWork(span, h.early(sctx, env, arr, l))
			}()
		}
	}
}

// early runs the early encode of one announced download, if its source
// allows it and no other encode has the operation. It returns why it
// stored nothing (nil once stored and handed over).
func (h *handler) early(ctx context.Context, env events.Envelope, arr events.AudioArriving, log *slog.Logger) error {
	defer h.memory.Hold(cmp.Or(arr.Song.ID, env.SongID))()
	opID := env.OperationID
	song := arr.Song
	if song.ID == "" {
		song.ID = env.SongID
	}
	if err := events.ValidSongID(song.ID); err != nil {
		return err
	}
	rev, ok := h.takeEarly(ctx, opID, arr.Run, log)
	if !ok {
		return errors.New("another encode has the operation")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	st := &earlyKeeper{kv: h.earlyStates(), key: opID, run: arr.Run, rev: rev,
		cancelled: func(ctx context.Context) bool { return h.cancelled(ctx, opID) }}
	stop := st.keep(ctx, cancel)
	defer stop()

	res, info, enc, err := h.earlyEncode(ctx, opID, song, arr, st, log)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		log.Info("encoder: no early encode; the song is encoded once downloaded", "reason", err)
		st.set(earlyState{Run: arr.Run, State: earlyFailed, Reason: err.Error()})
		return err
	}
	var handed error
	if !st.set(earlyState{Run: arr.Run, State: earlyStored, Size: info.Size, Encoded: &enc}) {
		log.Warn("encoder: the early encode's result could not be handed over; it is encoded again once downloaded")
		handed = errors.New("the result could not be handed over")
	}
	log.Info("encoder: early encode stored", "frames", res.Frames, "dca_size", info.Size, "mode", res.Mode)
	pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), liveTimeout)
	defer pcancel()
	if err := sourcestream.Purge(pctx, h.js, opID); err != nil {
		log.Warn("encoder: purge the source's chunks", "error", err)
	}
	return handed
}

// takeEarly writes the operation's state "running" for run, unless an
// encode of that run holds it already (the late one, or another early
// one). It returns the state's revision.
func (h *handler) takeEarly(ctx context.Context, opID, run string, log *slog.Logger) (uint64, bool) {
	val := encodeState(earlyState{Run: run, State: earlyRunning})
	for range 3 {
		e, err := jsbucket.Get(ctx, h.earlyStates(), opID)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			rev, err := h.earlyStates().Create(ctx, opID, val)
			if err == nil {
				return rev, true
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				log.Warn("encoder: early encode: state", "error", err)
				return 0, false
			}
			continue
		case err != nil:
			log.Warn("encoder: early encode: state", "error", err)
			return 0, false
		}
		if s, ok := decodeState(e); ok && s.Run == run {
			return 0, false // the late encode (or another) has it
		}
		// An earlier run's: this run replaces it.
		rev, err := h.earlyStates().Update(ctx, opID, val, e.Revision())
		if err == nil {
			return rev, true
		}
	}
	return 0, false
}

// earlyKeeper holds an early encode's state: refreshed every earlyBeat,
// watched so that another writer (the late encode taking over, the
// operation's end deleting it, a newer run) cancels the encode at once.
type earlyKeeper struct {
	kv  jetstream.KeyValue
	key string
	run string

	// cancelled reports whether the operation was cancelled since; nil
	// never.
	cancelled func(context.Context) bool

	mu  sync.Mutex
	rev uint64
	cur string // the state last written
}

// errCancelled is an early encode's cause of cancellation when its
// operation was cancelled (DELETE /v1/operations/{id}).
var errCancelled = errors.New("encoder: the operation was cancelled")

// cancelled reports whether operation opID has an operation.cancelled in
// the event stream: the early encode runs outside the stage runtime,
// which stops the stage's own attempts, so it looks for itself, every
// earlyBeat and before it stores anything.
func (h *handler) cancelled(ctx context.Context, opID string) bool {
	ctx, cancel := context.WithTimeout(ctx, liveTimeout)
	defer cancel()
	s, err := h.js.Stream(ctx, events.StreamName)
	if err != nil {
		return false
	}
	_, err = s.GetLastMsgForSubject(ctx, events.Subject(events.KindOperationCancelled, opID))
	return err == nil
}

// errTakenOver is an early encode's cause of cancellation when its state
// is no longer its own.
var errTakenOver = errors.New("encoder: the operation's encode is no longer the early one")

func (k *earlyKeeper) keep(ctx context.Context, cancel context.CancelCauseFunc) (stop func()) {
	ctx, stopCtx := context.WithCancel(ctx)
	done := make(chan struct{})
	k.mu.Lock()
	k.cur = earlyRunning
	k.mu.Unlock()
	w, err := k.kv.Watch(ctx, k.key, jetstream.UpdatesOnly())
	go func() {
		defer close(done)
		var updates <-chan jetstream.KeyValueEntry
		if err == nil {
			updates = w.Updates()
			defer w.Stop()
		}
		t := time.NewTicker(earlyBeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-updates:
				if !ok {
					updates = nil
					continue
				}
				if s, ok := decodeState(e); !ok || s.Run != k.run || s.State == earlyLate || s.State == earlyFailed {
					cancel(errTakenOver)
					return
				}
			case <-t.C:
				if k.cancelled != nil && k.cancelled(ctx) {
					cancel(errCancelled)
					return
				}
				k.mu.Lock()
				cur := k.cur
				k.mu.Unlock()
				if !k.set(earlyState{Run: k.run, State: cur}) {
					cancel(errTakenOver)
					return
				}
			}
		}
	}()
	return func() { stopCtx(); <-done }
}

// set writes s over the keeper's own revision; false when the state is
// no longer its own.
func (k *earlyKeeper) set(s earlyState) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
	defer cancel()
	rev, err := k.kv.Update(ctx, k.key, encodeState(s), k.rev)
	if err != nil {
		return false
	}
	k.rev, k.cur = rev, s.State
	return true
}

// earlyEncode reads the run's first bytes, decides whether ffmpeg can
// decode the source from a pipe and probes them, then encodes the source
// as it arrives, committing only if the state can be written "committing"
// and the run is still the operation's and whole.
func (h *handler) earlyEncode(ctx context.Context, opID string, song events.Song, arr events.AudioArriving, st *earlyKeeper, log *slog.Logger) (transcode.Result, blob.Info, events.DCAEncoded, error) {
	var none events.DCAEncoded
	if h.target != nil {
		return transcode.Result{}, blob.Info{}, none, errors.New("LOUDNESS_TARGET measures the whole source before encoding")
	}
	r, err := sourcestream.NewReader(ctx, h.js, opID, arr.Run, earlyIdle)
	if err != nil {
		return transcode.Result{}, blob.Info{}, none, err
	}
	prefix, reason, err := readPrefix(r)
	if err != nil {
		return transcode.Result{}, blob.Info{}, none, err
	}
	if reason != "" {
		return transcode.Result{}, blob.Info{}, none, errors.New(reason)
	}
	src, err := probePrefix(ctx, prefix, arr.Ext)
	if err != nil {
		return transcode.Result{}, blob.Info{}, none, err
	}
	if string(prefix[4:8]) != "ftyp" {
		// Matroska states no bitrate: ffprobe's is the file's size over
		// its duration, which a prefix makes too small. (An MP4's index
		// gives the stream's.)
		if arr.Size <= 0 || src.Duration <= 0 {
			return transcode.Result{}, blob.Info{}, none, errors.New("the source's size is not known before it arrives")
		}
		bps := arr.Size * 8 * 1000 / src.Duration.Milliseconds()
		src.BitrateKbps = int((bps + 999) / 1000)
	}
	log.Info("encoder: early encode", "codec", src.Codec, "source_duration", src.Duration, "source_kbps", src.BitrateKbps)
	first := true
	input := func() (io.ReadCloser, error) {
		if first {
			first = false
			return io.NopCloser(io.MultiReader(bytes.NewReader(prefix), r)), nil
		}
		// A second ffmpeg run (a passthrough turned transcode) reads the
		// run again from its first byte.
		again, err := sourcestream.NewReader(ctx, h.js, opID, arr.Run, earlyIdle)
		return io.NopCloser(again), err
	}
	gate := func() error {
		if err := h.awaitDownloaded(ctx, opID, arr.Run); err != nil {
			return err
		}
		if h.cancelled(ctx, opID) {
			return errCancelled
		}
		if !st.set(earlyState{Run: arr.Run, State: earlyCommitting}) {
			return errTakenOver
		}
		return nil
	}
	key := blob.DCAKey(song.ID)
	res, info, err := h.encode(ctx, "", input, gate, opID, song, src, key, log)
	if err != nil {
		return res, info, none, err
	}
	return res, info, h.encoded(res, src), nil
}

// downloadedWait bounds how long a finished early encode waits for its
// run's audio.downloaded: a fetcher that died between staging the source
// and publishing it is retried after events.AckWait, as a new run.
const downloadedWait = 2 * events.AckWait

// awaitDownloaded waits until the operation's audio.downloaded names run:
// the fetch of that run is recorded, so that its DCA is stored only for a
// download the pipeline goes on with. It fails once the operation's source
// subject no longer ends with run whole (a retry's new run, a cancel's
// purge), or after downloadedWait.
func (h *handler) awaitDownloaded(ctx context.Context, opID, run string) error {
	ctx, cancel := context.WithTimeout(ctx, downloadedWait)
	defer cancel()
	s, err := h.js.Stream(ctx, events.StreamName)
	if err != nil {
		return err
	}
	for pause := 20 * time.Millisecond; ; pause = min(2*pause, 500*time.Millisecond) {
		last, ok, err := sourcestream.Last(ctx, h.js, opID)
		if err == nil && (!ok || last.Run != run || last.End != sourcestream.EndWhole) {
			return fmt.Errorf("%w: the source's run is not the operation's whole one", sourcestream.ErrRunGone)
		}
		if msg, err := s.GetLastMsgForSubject(ctx, events.Subject(events.KindAudioDownloaded, opID)); err == nil {
			if _, ev, err := events.Decode(msg.Data); err == nil {
				if d, ok := ev.(events.AudioDownloaded); ok && d.Run == run {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("encoder: no audio.downloaded of run %s: %w", run, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// readPrefix reads the source's first bytes until sourcestream.Streamable
// decides; reason is why it cannot be decoded as it arrives ("" when it
// can). The prefix returned is every byte read.
func readPrefix(r io.Reader) (prefix []byte, reason string, err error) {
	buf := make([]byte, 0, 64<<10)
	for {
		decided, ok, need, why := sourcestream.Streamable(buf)
		if decided {
			if !ok {
				return nil, why, nil
			}
			if len(buf) >= need {
				return buf, "", nil
			}
		}
		if need > sourcestream.MaxPrefix {
			return nil, "the source's header is too large", nil
		}
		for len(buf) < need {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				// The whole source is shorter than its header says, or
				// than a Matroska prefix: decide on what there is.
				if decided && ok {
					return buf, "", nil
				}
				return nil, "the source ended before its header", nil
			}
			if err != nil {
				return nil, "", err
			}
		}
	}
}

// probePrefix runs ffprobe on the source's first bytes, written to a
// temporary file: the container's header says the duration.
func probePrefix(ctx context.Context, prefix []byte, ext string) (transcode.Source, error) {
	f, err := os.CreateTemp(os.TempDir(), "butakero-early-*"+safeExt(ext))
	if err != nil {
		return transcode.Source{}, err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(prefix)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return transcode.Source{}, err
	}
	return transcode.Inspect(ctx, f.Name())
}

// awaitEarly is the audio.downloaded delivery's side of the hand-over
// (see the top of this file): it returns the early encode's stored
// result, or ok false when this delivery is to encode the staged blob
// itself, having written the state "late" so that no early encode of the
// run stores anything after it.
func (h *handler) awaitEarly(ctx context.Context, opID, run string, log *slog.Logger) (st earlyState, ok bool, err error) {
	kv := h.earlyStates()
	if kv == nil || run == "" {
		return earlyState{}, false, nil
	}
	late := encodeState(earlyState{Run: run, State: earlyLate})
	waiting := false
	for {
		e, err := jsbucket.Get(ctx, kv, opID)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if _, err := kv.Create(ctx, opID, late); errors.Is(err, jetstream.ErrKeyExists) {
				continue
			} else if err != nil {
				return earlyState{}, false, err
			}
			return earlyState{}, false, nil
		}
		if err != nil {
			return earlyState{}, false, err
		}
		s, _ := decodeState(e)
		switch {
		case s.Run == run && s.State == earlyStored && s.Encoded != nil:
			return s, true, nil
		case s.Run == run && (s.State == earlyLate || s.State == earlyFailed):
			if s.State == earlyFailed {
				log.Info("encoder: the early encode failed; encoding the staged source", "reason", s.Reason)
			}
			return earlyState{}, false, nil
		case s.Run == run && (s.State == earlyRunning || s.State == earlyCommitting):
			if !waiting {
				// Once: the state changes every earlyBeat while it runs.
				waiting = true
				log.Info("encoder: waiting for the early encode of this download")
			}
			if err := waitChange(ctx, kv, opID, e.Revision()); err == nil {
				continue
			} else if ctx.Err() != nil {
				return earlyState{}, false, ctx.Err()
			}
			log.Warn("encoder: the early encode stopped answering; encoding the staged source")
		}
		// Another run's, stale, or unreadable: this delivery takes it.
		if _, err := kv.Update(ctx, opID, late, e.Revision()); err == nil {
			return earlyState{}, false, nil
		}
	}
}

// errStale: an early encode's state went unchanged for earlyStale.
var errStale = errors.New("encoder: the early encode's state went stale")

// waitChange waits until key's revision is no longer rev (nil), or for
// earlyStale without a change (errStale), or for ctx.
func waitChange(ctx context.Context, kv jetstream.KeyValue, key string, rev uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := kv.Watch(ctx, key)
	if err != nil {
		return err
	}
	defer w.Stop()
	stale := time.NewTimer(earlyStale)
	defer stale.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stale.C:
			return errStale
		case e, ok := <-w.Updates():
			if !ok {
				return errStale
			}
			if e == nil {
				continue // the initial values are all in
			}
			if e.Revision() != rev {
				return nil
			}
		}
	}
}

// endEarly lets go of an operation's early state and source chunks once it
// ends at the encoder: an early encode still running stops (its watch sees
// the key deleted).
func (h *handler) endEarly(ctx context.Context, opID string, log *slog.Logger) {
	kv := h.earlyStates()
	if kv == nil {
		return
	}
	if err := kv.Delete(ctx, opID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		log.Warn("encoder: delete the early encode's state", "error", err)
	}
	if err := sourcestream.Purge(ctx, h.js, opID); err != nil {
		log.Warn("encoder: purge the source's chunks", "error", err)
	}
}
