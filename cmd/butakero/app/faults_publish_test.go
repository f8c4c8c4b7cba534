package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/platform/testkit/wait"
)

// faultLostPublish runs the all-in-one against a nats-server process
// through a proxy that cuts the connection at a chosen publish, before the
// server sees it. In turn, the first publish of each event a stage
// publishes is lost; every operation still ends as it should, with one
// copy of each event. Last, the process is killed (SIGKILL) between the
// encoder's two publishes, dca.encoded stored and upload.done not yet
// sent, and started again: the operation ends success. Then killed again
// as it publishes dca.encoded, the DCA stored: the redelivery rebuilds
// dca.encoded from the stored DCA, whose streamed header has no loudness,
// and the encoder measures the stored DCA (loudness.measured), so the
// catalog still gets the song's loudness.
func faultLostPublish(t *testing.T, bin string) {
	srv := startNATSCluster(t, 1)
	proxy := natstest.StartFaultProxy(t, srv.nodes[0].client)
	obs := observe(t, srv.urls())
	media := t.TempDir()
	const d = 2 * time.Second
	for i := range 6 {
		audiofixture.Make(t, media, audiofixture.M4A(fmt.Sprintf("tone%d.m4a", i), d))
	}
	audiofixture.WriteNotAudio(t, media, "corrupt.mp3")
	files := audiofixture.Serve(t, media)
	vars := map[string]string{"NATS_URL": proxy.URL(), "DATA_DIR": t.TempDir()}
	p := startProc(t, bin, "butakero", vars)

	success := []events.Kind{events.KindVideoResolved, events.KindAudioDownloaded, events.KindDCAEncoded, events.KindUploadDone}
	cases := []struct {
		lost       events.Kind
		file       string
		wantStatus string
		want       []events.Kind // each stored once
	}{
		{events.KindVideoResolved, "tone0.m4a", "success", success},
		{events.KindAudioDownloaded, "tone1.m4a", "success", success},
		{events.KindDCAEncoded, "tone2.m4a", "success", success},
		{events.KindUploadDone, "tone3.m4a", "success", success},
		{events.KindOperationFailed, "corrupt.mp3", "failed",
			[]events.Kind{events.KindVideoResolved, events.KindAudioDownloaded, events.KindOperationFailed}},
	}
	for _, tc := range cases {
		t.Run(string(tc.lost)+" lost", func(t *testing.T) {
			before := proxy.Fired()
			proxy.Arm(string(tc.lost)+".", nil)
			opID := p.start(t, files.URL(tc.file))
			op := p.waitFinal(t, opID, 2*time.Minute)
			if proxy.Fired() != before+1 {
				t.Fatalf("the proxy cut no publish of %s: the fault never happened", tc.lost)
			}
			if op.Status != tc.wantStatus {
				t.Errorf("operation ended %q (%s: %s), want %s", op.Status, op.ErrorCode, op.Message, tc.wantStatus)
			}
			checkOnce(t, obs, opID, tc.want)
			if tc.wantStatus == "success" {
				checkCovers(t, tc.file, p.dca(t, op.SongID), d)
			}
		})
	}

	// killedOn kills p as the proxy cuts its first publish of kind, for
	// the song at file: it checks that the stream then holds encoded
	// dca.encoded events (the kill fell where the case means it to), and
	// starts butakero again as name, whose run must end the operation
	// success with each event stored once: the events of success, and
	// then those of after (waited for).
	killedOn := func(t *testing.T, p *proc, kind events.Kind, file string, encoded int, name string, after ...events.Kind) (again *proc, opID string, op v1Op) {
		t.Helper()
		before := proxy.Fired()
		proxy.Arm(string(kind)+".", func() {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
		})
		opID = p.start(t, files.URL(file))
		select {
		case <-p.exited:
		case <-time.After(2 * time.Minute):
			t.Fatalf("the process was never killed: %s was not published", kind)
		}
		if proxy.Fired() != before+1 {
			t.Fatalf("the proxy cut no publish of %s", kind)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if n, err := obs.count(ctx, events.KindDCAEncoded, opID); err != nil || n != encoded {
			t.Fatalf("%d dca.encoded stored when the process died (%v), want %d: the kill was meant to come as %s is published", n, err, encoded, kind)
		}
		again = startProc(t, bin, name, vars)
		op = again.waitFinal(t, opID, 2*time.Minute)
		if op.Status != "success" {
			t.Fatalf("operation ended %q (%s: %s), want success", op.Status, op.ErrorCode, op.Message)
		}
		for _, k := range after {
			obs.waitEvents(t, k, []string{opID}, time.Minute)
		}
		checkOnce(t, obs, opID, append(slices.Clip(success), after...))
		return again, opID, op
	}

	t.Run("SIGKILL between dca.encoded and upload.done", func(t *testing.T) {
		again, _, op := killedOn(t, p, events.KindUploadDone, "tone4.m4a", 1, "butakero (after the crash)")
		checkCovers(t, "after the crash", again.dca(t, op.SongID), d)
	})

	t.Run("SIGKILL as dca.encoded is published, the DCA stored", func(t *testing.T) {
		p := p
		if p.done() {
			// The case before killed it and ended the one it started.
			p = startProc(t, bin, "butakero (again)", vars)
		}
		again, opID, op := killedOn(t, p, events.KindDCAEncoded, "tone5.m4a", 0, "butakero (after the second crash)", events.KindLoudnessMeasured)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		env := obs.last(ctx, t, events.KindDCAEncoded, opID)
		var enc events.DCAEncoded
		if err := json.Unmarshal(env.Data, &enc); err != nil {
			t.Fatal(err)
		}
		if env.Attempt < 2 {
			t.Fatalf("dca.encoded published by attempt %d: not the redelivery", env.Attempt)
		}
		if enc.LoudnessLUFS != nil || enc.TruePeakDB != nil || !enc.LoudnessPending {
			t.Fatalf("the rebuilt dca.encoded: %+v, want no loudness (its DCA's header has none) and loudness_pending", enc)
		}
		var m events.LoudnessMeasured
		if err := json.Unmarshal(obs.last(ctx, t, events.KindLoudnessMeasured, opID).Data, &m); err != nil {
			t.Fatal(err)
		}
		want := measureStereo(t, filepath.Join(media, "tone5.m4a"))
		if m.LoudnessLUFS == nil || m.TruePeakDB == nil {
			t.Fatalf("loudness.measured of the stored DCA: %+v", m)
		}
		t.Logf("loudness.measured: %.1f LUFS %.1f dBTP; the source, as libopus gets it: %.1f LUFS %.1f dBTP", *m.LoudnessLUFS, *m.TruePeakDB, want[0], want[1])
		if math.Abs(*m.LoudnessLUFS-want[0]) > 0.5 || math.Abs(*m.TruePeakDB-want[1]) > 1 {
			t.Fatalf("measured loudness %.1f LUFS %.1f dBTP, the source %.1f LUFS %.1f dBTP", *m.LoudnessLUFS, *m.TruePeakDB, want[0], want[1])
		}
		enc.LoudnessLUFS, enc.TruePeakDB = m.LoudnessLUFS, m.TruePeakDB
		wait.Until(t, 30*time.Second, "the catalog shows the measured loudness", func() error {
			resp, err := http.Get(again.base + "/v1/songs/" + url.PathEscape(op.SongID))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var s catalogSong
			if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
				return err
			}
			if !s.Stored || s.LoudnessLUFS == nil || *s.LoudnessLUFS != *enc.LoudnessLUFS || s.TruePeakDB == nil || *s.TruePeakDB != *enc.TruePeakDB {
				return fmt.Errorf("GET /v1/songs/%s: %d %+v", op.SongID, resp.StatusCode, s)
			}
			return nil
		})
	})
}

// measureStereo is ffmpeg's ebur128 (integrated loudness, true peak) of the
// file at path converted to 48 kHz stereo, as the encoder's libopus gets it.
func measureStereo(t *testing.T, path string) [2]float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", path,
		"-af", "aformat=sample_rates=48000:channel_layouts=stereo,ebur128=peak=true:framelog=verbose", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	s := string(out)
	if i := strings.LastIndex(s, "Summary:"); i >= 0 {
		s = s[i:]
	}
	var got [2]float64
	for i, re := range []*regexp.Regexp{regexp.MustCompile(`I:\s*(-?[0-9.]+) LUFS`), regexp.MustCompile(`Peak:\s*(-?[0-9.]+) dBFS`)} {
		m := re.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("no ebur128 summary:\n%s", out)
		}
		got[i], _ = strconv.ParseFloat(m[1], 64)
	}
	return got
}

// checkOnce fails t unless the stream holds exactly one event of each of
// want for opID, and none of the other pipeline kinds.
func checkOnce(t *testing.T, obs *observer, opID string, want []events.Kind) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wanted := map[events.Kind]bool{events.KindSongRequested: true}
	for _, k := range want {
		wanted[k] = true
	}
	for _, k := range events.Kinds {
		if events.IsAnnouncement(k) {
			continue // one per fetch attempt
		}
		n, err := obs.count(ctx, k, opID)
		if err != nil {
			t.Fatalf("count %s: %v", k, err)
		}
		if w := map[bool]int{true: 1, false: 0}[wanted[k]]; n != w {
			t.Errorf("%d %s events in the stream, want %d", n, k, w)
		}
	}
}
