package encoder_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/framestream"
	"github.com/butakero/butakero/platform/runtime/claims"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/store/objstore"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/childproc"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/platform/testkit/wait"
	"github.com/butakero/butakero/services/encoder/dcafile"
	"github.com/butakero/butakero/services/encoder/encoder"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type rig struct {
	env   *natstest.Env
	blobs *objstore.Store
	dir   string
}

// start runs the encoder on a fresh JetStream server until the test ends.
// stop cancels Run and returns what it returned, once it has.
func start(t *testing.T, grace time.Duration) (r *rig, stop func() error) {
	t.Helper()
	return startWith(t, grace, "1m")
}

// startWith is start with a STAGE_TIMEOUT of its own.
func startWith(t *testing.T, grace time.Duration, stageTimeout string) (r *rig, stop func() error) {
	t.Helper()
	env := natstest.Start(t)
	blobs := natstest.Open(context.Background(), t, objstore.Open, env.JS, 1)
	cfg, err := config.Load(config.FromMap(map[string]string{"MAX_ATTEMPTS": "2", "STAGE_TIMEOUT": stageTimeout}))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownGrace = grace
	stop = wait.Go(t, 30*time.Second, func(ctx context.Context) error {
		return encoder.Run(ctx, encoder.Deps{
			NC: env.NC, JS: env.JS, Blobs: blobs, Config: cfg, Concurrency: 4,
			Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
	})
	return &rig{env: env, blobs: blobs, dir: t.TempDir()}, stop
}

// gone waits until blob key is deleted (or was never there).
func (r *rig) gone(ctx context.Context, t *testing.T, key string) {
	t.Helper()
	obs, err := r.env.JS.ObjectStore(ctx, objstore.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := obs.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// The watcher sends every current object, then nil, then changes.
	present := false
	for {
		select {
		case info := <-w.Updates():
			switch {
			case info == nil:
				if !present {
					return
				}
			case info.Name == key && info.Deleted:
				return
			case info.Name == key:
				present = true
			}
		case <-ctx.Done():
			t.Fatalf("blob %s still stored: %v", key, ctx.Err())
		}
	}
}

// settledClaim waits until the song's claim is no longer held by a working
// owner and reports what is left: free, or a failure recorded in it.
func (r *rig) settledClaim(ctx context.Context, t *testing.T, songID string) (rec claims.Record, free bool) {
	t.Helper()
	s, err := claims.Open(ctx, r.env.JS, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, held, err := s.Acquire(ctx, songID, "observer")
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			if err := c.Release(ctx); err != nil {
				t.Fatal(err)
			}
			return claims.Record{}, true
		}
		if held.State == claims.StateFailed {
			return held, false
		}
		if err := s.Wait(ctx, songID, held); err != nil {
			t.Fatalf("claim on %s still held by %+v: %v", songID, held, err)
		}
	}
}

// stage puts body into the blob store as the fetcher would and publishes
// audio.downloaded for a new operation.
func (r *rig) stage(t *testing.T, songID, title, ext string, body io.Reader) events.Envelope {
	t.Helper()
	opID := events.NewID()
	key := "staging/" + opID + "." + ext
	info, err := r.blobs.Put(context.Background(), key, "", nil, body)
	if err != nil {
		t.Fatal(err)
	}
	env, err := events.New(opID, songID, events.AudioDownloaded{
		Song: events.Song{ID: songID, Title: title, URL: "https://example.test/" + songID, Source: "direct"},
		Key:  key, Size: info.Size, Ext: ext,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.env.Publish(t, env)
	return env
}

// end waits for the operation's upload.done or operation.failed.
func (r *rig) end(ctx context.Context, t *testing.T, opID string) (events.Envelope, events.Event) {
	t.Helper()
	c, err := r.env.JS.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.Subject(events.KindUploadDone, opID), events.Subject(events.KindOperationFailed, opID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := c.Next(jetstream.FetchContext(ctx))
	if err != nil {
		t.Fatalf("waiting for the end of %s: %v", opID, err)
	}
	env, ev, err := events.Decode(msg.Data())
	if err != nil {
		t.Fatal(err)
	}
	return env, ev
}

func TestEncode(t *testing.T) {
	r, _ := start(t, 10*time.Second)
	random := make([]byte, 256<<10)
	rand.New(rand.NewSource(7)).Read(random)

	cases := []struct {
		name string
		spec audiofixture.Spec // a fixture made with ffmpeg, or
		body []byte            // raw bytes
		ext  string
		code events.Code // empty for success
	}{
		{name: "m4a faststart", spec: audiofixture.M4A("a.m4a", 3*time.Second), ext: "m4a"},
		{name: "m4a with the index at the end", spec: audiofixture.Spec{Name: "late.m4a", Duration: 2 * time.Second, Args: []string{"-c:a", "aac"}}, ext: "m4a"},
		{name: "mp3", spec: audiofixture.MP3("a.mp3", 2*time.Second), ext: "mp3"},
		{name: "webm opus", spec: audiofixture.WebMOpus("a.webm", 2*time.Second), ext: "webm"},
		{name: "ogg vorbis", spec: audiofixture.OggVorbis("a.ogg", 2*time.Second), ext: "ogg"},
		{name: "wav", spec: audiofixture.WAV("a.wav", 2*time.Second), ext: "wav"},
		{name: "mono 22 kHz mp3", spec: audiofixture.Mono22k("m.mp3", 2*time.Second), ext: "mp3"},
		{name: "mp4 with video", spec: audiofixture.MP4Video("v.mp4", 2*time.Second), ext: "mp4"},
		{name: "no extension", spec: audiofixture.OggVorbis("noext.ogg", 2*time.Second), ext: ""},
		{name: "random bytes", body: random, ext: "m4a", code: events.CodeInvalidAudio},
		{name: "empty file", body: []byte{}, ext: "webm", code: events.CodeEmptyAudio},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			body := tc.body
			if body == nil {
				var err error
				if body, err = os.ReadFile(audiofixture.Make(t, r.dir, tc.spec)); err != nil {
					t.Fatal(err)
				}
			}
			songID := "song-" + string(rune('a'+i))
			title := "Título " + tc.name
			progress := make(chan *nats.Msg, 64)
			sub, err := r.env.NC.ChanSubscribe(events.ProgressPrefix+".>", progress)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()

			// The DCA also goes out on the song's frame subject as it is
			// made: a core subscription sees the run's chunks.
			chunks := make(chan *nats.Msg, 4096)
			fsub, err := r.env.NC.ChanSubscribe(framestream.Subject(songID), chunks)
			if err != nil {
				t.Fatal(err)
			}
			defer fsub.Unsubscribe()

			req := r.stage(t, songID, title, tc.ext, bytes.NewReader(body))
			env, ev := r.end(ctx, t, req.OperationID)
			if env.SongID != songID {
				t.Errorf("song id = %q, want %q", env.SongID, songID)
			}
			// The staged audio is deleted once the operation ends.
			r.gone(ctx, t, "staging/"+req.OperationID+"."+tc.ext)
			// The song's claim is released after a success (the requests
			// waiting for it find the DCA), and carries a permanent
			// failure to them.
			rec, free := r.settledClaim(ctx, t, songID)
			if tc.code == "" && !free {
				t.Errorf("claim after a success: %+v, want it released", rec)
			}
			if tc.code != "" && (free || rec.Owner != req.OperationID || rec.Code != string(tc.code) || rec.Message == "") {
				t.Errorf("claim after a failure: %+v (free %v), want owner %s failed with %s", rec, free, req.OperationID, tc.code)
			}

			if tc.code != "" {
				failed, ok := ev.(events.OperationFailed)
				if !ok {
					t.Fatalf("got %s, want operation.failed", env.Type)
				}
				if failed.Code != tc.code || failed.Stage != "encode" {
					t.Fatalf("failed = %+v, want code %s in stage encode", failed, tc.code)
				}
				if strings.Contains(failed.Message, os.TempDir()) || strings.Contains(failed.Message, "butakero-encode") {
					t.Fatalf("message shows a temp path: %q", failed.Message)
				}
				if _, err := r.blobs.Stat(ctx, blob.DCAKey(songID)); !errors.Is(err, blob.ErrNotFound) {
					t.Fatalf("a DCA was stored for a failed encode: %v", err)
				}
				t.Logf("message: %s", failed.Message)
				return
			}

			done, ok := ev.(events.UploadDone)
			if !ok {
				t.Fatalf("got %s %s, want upload.done", env.Type, env.Data)
			}
			_, encEv := r.env.Next(ctx, t, events.KindDCAEncoded, req.OperationID)
			enc := encEv.(events.DCAEncoded)
			key := blob.DCAKey(songID)
			if done.Key != key || done.Location != r.blobs.Location(key) || done.Song.Title != title {
				t.Fatalf("upload.done = %+v", done)
			}
			rd, info, err := r.blobs.Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			if info.ContentType != encoder.ContentType || info.Size != done.Size {
				t.Fatalf("stored %+v, upload.done says size %d", info, done.Size)
			}
			dca, err := dcafile.Parse(rd)
			if err != nil {
				t.Fatalf("stored DCA: %v", err)
			}
			if dca.Frames != enc.Frames || dca.Duration.Milliseconds() != enc.DurationMs || dca.Size != done.Size {
				t.Fatalf("DCA has %d frames (%s, %d bytes); dca.encoded %+v, upload.done size %d", dca.Frames, dca.Duration, dca.Size, enc, done.Size)
			}
			if dca.Metadata.SongInfo.Title != title || dca.Metadata.Opus.SampleRate != 48000 {
				t.Fatalf("metadata %+v %+v", dca.Metadata.SongInfo, dca.Metadata.Opus)
			}
			// The fixture's WebM/Opus (mono, 20 ms frames) is copied;
			// everything else is encoded at DCA_BITRATE_KBPS in stereo.
			wantMode := "transcode"
			if tc.ext == "webm" {
				wantMode = "passthrough"
			}
			b := dca.Metadata.Butakero
			if enc.Mode != wantMode || enc.ModeReason == "" || b == nil || b.Mode != enc.Mode || b.Reason != enc.ModeReason {
				t.Fatalf("dca.encoded mode %q (%s), DCA metadata %+v; want %s", enc.Mode, enc.ModeReason, b, wantMode)
			}
			// A transcode measures in its own run; a passthrough's
			// loudness follows, measured on the stored DCA.
			r.checkLoudness(ctx, t, req.OperationID, key, enc, wantMode == "passthrough")
			stored, err := io.ReadAll(must(r.blobs.Open(ctx, key)))
			if err != nil {
				t.Fatal(err)
			}
			live, end := runOf(t, chunks, b.Run)
			if end.Header.Get(framestream.HeaderEnd) != framestream.EndStored || !bytes.Equal(live, stored) {
				t.Fatalf("run %s: %d bytes ending %q; stored DCA %d bytes (equal: %v)", b.Run, len(live), end.Header.Get(framestream.HeaderEnd), len(stored), bytes.Equal(live, stored))
			}
			// Once stored, the song's frames are purged.
			if n := framesHeld(ctx, t, r.env.JS, songID); n != 0 {
				t.Fatalf("%d frame messages kept after the DCA was stored", n)
			}
			if wantMode == "transcode" && (dca.Metadata.Opus.Channels != 2 || enc.BitrateKbps != 96) {
				t.Fatalf("transcode: %+v, bitrate %d", dca.Metadata.Opus, enc.BitrateKbps)
			}
			want := tc.spec.Duration
			if diff := (dca.Duration - want).Abs(); diff > want/100+20*time.Millisecond {
				t.Fatalf("frames cover %s, the fixture lasts %s", dca.Duration, want)
			}
			if diff := time.Duration(enc.SourceDurationMs)*time.Millisecond - want; diff.Abs() > 30*time.Millisecond {
				t.Fatalf("source duration %d ms, the fixture lasts %s", enc.SourceDurationMs, want)
			}
			var last events.Progress
			for len(progress) > 0 {
				var p events.Progress
				if err := json.Unmarshal((<-progress).Data, &p); err == nil && p.OperationID == req.OperationID {
					last = p
				}
			}
			if last.Stage != "encode" || last.Percent != 100 {
				t.Fatalf("last progress = %+v, want encode at 100%%", last)
			}
		})
	}
}

// TestRedelivery runs the same audio.downloaded twice under different
// operations of one song, then republishes the first after its staging blob
// is gone (an ack lost after success): every run ends in upload.done and the
// stream keeps one copy of each derived event. The dca.encoded rebuilt from
// the stored DCA (whose streamed header has no loudness) has none, and the
// loudness.measured that follows it, measured on the stored packets, is
// within 0.5 LU and 1 dB of what the encode measured.
func TestRedelivery(t *testing.T) {
	r, _ := start(t, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := audiofixture.Make(t, r.dir, audiofixture.MP3("r.mp3", 2*time.Second))
	open := func() io.Reader {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	first := r.stage(t, "same", "Same", "mp3", open())
	if _, ev := r.end(ctx, t, first.OperationID); ev.Kind() != events.KindUploadDone {
		t.Fatalf("first run: %+v", ev)
	}
	second := r.stage(t, "same", "Same", "mp3", open())
	if _, ev := r.end(ctx, t, second.OperationID); ev.Kind() != events.KindUploadDone {
		t.Fatalf("second run: %+v", ev)
	}

	// Redeliver the first event: same envelope, new message id so the
	// stream takes it, staging blob already deleted.
	again := first
	again.ID = events.NewID()
	r.env.Publish(t, again)
	wantID := events.DeriveID(again.ID, events.TypeUploadDone)
	c, err := r.env.JS.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.Subject(events.KindUploadDone, first.OperationID), events.Subject(events.KindOperationFailed, first.OperationID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := c.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("waiting for the republished upload.done: %v", err)
		}
		env, ev, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind() == events.KindOperationFailed {
			t.Fatalf("redelivery failed the operation: %+v", ev)
		}
		if env.ID == wantID {
			if done := ev.(events.UploadDone); done.Key != blob.DCAKey("same") || done.Size == 0 {
				t.Fatalf("republished upload.done = %+v", done)
			}
			break
		}
	}
	encoded := r.encoded(ctx, t, first.OperationID, 2)
	was, rebuilt := encoded[0], encoded[1]
	if was.LoudnessLUFS == nil || was.TruePeakDB == nil {
		t.Fatalf("the encode measured no loudness: %+v", was)
	}
	if rebuilt.LoudnessLUFS != nil || rebuilt.TruePeakDB != nil || !rebuilt.LoudnessPending || rebuilt.Frames != was.Frames {
		t.Fatalf("the rebuilt dca.encoded %+v, the encode's %+v", rebuilt, was)
	}
	_, ev := r.env.Next(ctx, t, events.KindLoudnessMeasured, first.OperationID)
	m := ev.(events.LoudnessMeasured)
	if m.LoudnessLUFS == nil || m.TruePeakDB == nil {
		t.Fatalf("loudness.measured of the stored DCA: %+v", m)
	}
	t.Logf("encoded %.2f LUFS %.2f dBTP; measured on the stored DCA %.2f LUFS %.2f dBTP",
		*was.LoudnessLUFS, *was.TruePeakDB, *m.LoudnessLUFS, *m.TruePeakDB)
	if d := *m.LoudnessLUFS - *was.LoudnessLUFS; d < -0.5 || d > 0.5 {
		t.Errorf("stored DCA's loudness %.2f LUFS, the encode measured %.2f", *m.LoudnessLUFS, *was.LoudnessLUFS)
	}
	if d := *m.TruePeakDB - *was.TruePeakDB; d < -1 || d > 1 {
		t.Errorf("stored DCA's true peak %.2f dBTP, the encode measured %.2f", *m.TruePeakDB, *was.TruePeakDB)
	}
}

// checkLoudness checks where operation opID's loudness is: in its
// dca.encoded enc for a transcode, with no loudness.measured after it
// once the loudness worker has taken enc; in a loudness.measured of the
// DCA at key for a passthrough (later), and not in enc.
func (r *rig) checkLoudness(ctx context.Context, t *testing.T, opID, key string, enc events.DCAEncoded, later bool) {
	t.Helper()
	measured := enc.LoudnessLUFS != nil && enc.TruePeakDB != nil
	if later {
		if enc.LoudnessLUFS != nil || enc.TruePeakDB != nil || !enc.LoudnessPending {
			t.Fatalf("a passthrough's dca.encoded: %+v, want no loudness and loudness_pending", enc)
		}
		env, ev := r.env.Next(ctx, t, events.KindLoudnessMeasured, opID)
		m := ev.(events.LoudnessMeasured)
		if m.Key != key || m.LoudnessLUFS == nil || m.TruePeakDB == nil || env.SongID == "" {
			t.Fatalf("loudness.measured = %+v (song %q), want both measures of %s", m, env.SongID, key)
		}
		t.Logf("loudness.measured: %.1f LUFS, %.1f dBTP", *m.LoudnessLUFS, *m.TruePeakDB)
		return
	}
	if !measured || enc.LoudnessPending {
		t.Fatalf("a transcode's dca.encoded: %+v, want its loudness and nothing pending", enc)
	}
	stream, err := r.env.JS.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, events.Subject(events.KindDCAEncoded, opID))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.Consumer(ctx, events.ConsumerEncoderLoudness)
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 30*time.Second, "the loudness worker takes the transcode's dca.encoded", func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream < msg.Sequence {
			return fmt.Errorf("acked up to %d, dca.encoded is %d", info.AckFloor.Stream, msg.Sequence)
		}
		return nil
	})
	if _, err := stream.GetLastMsgForSubject(ctx, events.Subject(events.KindLoudnessMeasured, opID)); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("a transcode's loudness was measured again: %v", err)
	}
}

// encoded returns the first n dca.encoded events of operation opID, in
// stream order, waiting for them.
func (r *rig) encoded(ctx context.Context, t *testing.T, opID string, n int) []events.DCAEncoded {
	t.Helper()
	c, err := r.env.JS.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.Subject(events.KindDCAEncoded, opID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.DCAEncoded
	for len(out) < n {
		msg, err := c.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("waiting for dca.encoded %d of %s: %v", len(out)+1, opID, err)
		}
		_, ev, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.(events.DCAEncoded))
	}
	return out
}

// TestShutdownMidEncode cancels Run while an encode is under way with a
// short grace: ffmpeg is killed, no DCA and no temp file are left, no
// failure is published, and the staged audio stays for the redelivery.
func TestShutdownMidEncode(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r, stop := start(t, 50*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec := audiofixture.WAV("long.wav", 120*time.Second)
	f, err := os.Open(audiofixture.Make(t, r.dir, spec))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	sub, err := r.env.NC.SubscribeSync(events.ProgressPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	req := r.stage(t, "long", "Long", "wav", f)
	if _, err := sub.NextMsgWithContext(ctx); err != nil {
		t.Fatalf("no progress: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := r.blobs.Stat(ctx, blob.DCAKey("long")); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("a DCA was stored by a cancelled encode: %v", err)
	}
	if _, err := r.blobs.Stat(ctx, "staging/"+req.OperationID+".wav"); err != nil {
		t.Fatalf("staged audio gone after a cancelled encode: %v", err)
	}
	if kids := childproc.Named("ffmpeg"); len(kids) > 0 {
		t.Fatalf("ffmpeg left running: %v", kids)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "*"))
	if len(left) > 0 {
		t.Fatalf("temp files left: %v", left)
	}
	info, err := r.env.Stream.Info(ctx, jetstream.WithSubjectFilter(events.Subject(events.KindOperationFailed, ">")))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(info.State.Subjects); n != 0 {
		t.Fatalf("a cancelled encode published %d failures", n)
	}
}

// TestTimeoutOnTheLastAttempt: an encode that runs out of STAGE_TIMEOUT on
// every attempt ends the operation with code timeout, and what it held is
// let go all the same: the staged source is deleted and the song's claim
// is free for another operation.
func TestTimeoutOnTheLastAttempt(t *testing.T) {
	r, _ := startWith(t, time.Second, "300ms")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := os.Open(audiofixture.Make(t, r.dir, audiofixture.Spec{
		Name: "slow.wav", Duration: 4 * time.Minute, Args: []string{"-c:a", "pcm_s16le", "-ar", "16000"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	req := r.stage(t, "slow", "Slow", "wav", f)
	env, ev := r.end(ctx, t, req.OperationID)
	failed, ok := ev.(events.OperationFailed)
	if !ok || failed.Code != events.CodeTimeout || failed.Attempts != 2 {
		t.Fatalf("operation ended with %s %+v, want operation.failed timeout after 2 attempts", env.Type, ev)
	}
	r.gone(ctx, t, "staging/"+req.OperationID+".wav")
	if rec, free := r.settledClaim(ctx, t, "slow"); !free {
		t.Errorf("claim after the last attempt timed out: %+v, want it free", rec)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// must is the reader of an Open that must work.
func must(rc io.ReadCloser, _ blob.Info, err error) io.Reader {
	if err != nil {
		panic(err)
	}
	return rc
}

// runOf gathers the chunks of run from the song's frame messages, in
// order, up to the run's end message, which it returns.
func runOf(t *testing.T, chunks <-chan *nats.Msg, run string) ([]byte, *nats.Msg) {
	t.Helper()
	var data []byte
	for {
		select {
		case m := <-chunks:
			if m.Header.Get(framestream.HeaderRun) != run {
				continue
			}
			if off := m.Header.Get(framestream.HeaderOffset); off != strconv.Itoa(len(data)) {
				t.Fatalf("chunk at offset %s after %d bytes", off, len(data))
			}
			if m.Header.Get(framestream.HeaderEnd) != "" {
				return data, m
			}
			data = append(data, m.Data...)
		case <-time.After(10 * time.Second):
			t.Fatalf("run %s: no end after %d bytes", run, len(data))
		}
	}
}

// framesHeld is how many messages BUTAKERO_FRAMES holds for the song.
func framesHeld(ctx context.Context, t *testing.T, js jetstream.JetStream, songID string) uint64 {
	t.Helper()
	s, err := js.Stream(ctx, framestream.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(framestream.Subject(songID)))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[framestream.Subject(songID)]
}
