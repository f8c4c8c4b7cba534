package app_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/store/objstore"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/nats-io/nats.go/jetstream"
)

// maxStreamBytesPerSuccess bounds what one successful operation of a
// direct URL adds to the event stream (its six events with their headers).
// The README's "What grows" section quotes the measure; this keeps it
// honest when events grow.
const maxStreamBytesPerSuccess = 6 << 10

// TestGrowthPerOperation measures what one operation leaves behind in each
// JetStream store that outlives it (the README's "What grows"): a new song
// stored, the same song again (answered from the stored DCA) and a song
// that fails. It checks that the staged download is gone afterwards and
// that the stream's share stays under maxStreamBytesPerSuccess; the sizes
// are in the test's log (go test -v -run TestGrowthPerOperation).
func TestGrowthPerOperation(t *testing.T) {
	media := t.TempDir()
	const songLen = 30 * time.Second
	audiofixture.Make(t, media, audiofixture.M4A("growth.m4a", songLen))
	audiofixture.Write(t, media, "growth-bad.mp3", bytes.Repeat([]byte("not audio "), 300))
	files := audiofixture.Serve(t, media)
	natsAddr := loopback.Addr(t)
	in := start(t, t.TempDir(), map[string]string{"NATS_LISTEN": natsAddr, "NATS_TOKEN": natsToken})

	js := connectJS(t, natsAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	obs, err := js.ObjectStore(ctx, objstore.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	streams := []string{events.StreamName, "KV_" + kvstore.OperationsBucket, "KV_" + kvstore.SongsBucket, "OBJ_" + objstore.Bucket}
	type size struct{ bytes, msgs uint64 }
	sizes := func(t *testing.T) map[string]size {
		t.Helper()
		m := map[string]size{}
		for _, name := range streams {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m[name] = size{info.State.Bytes, info.State.Msgs}
		}
		return m
	}
	// stagingGone waits until the operation's staged download is deleted
	// (the encoder deletes it after upload.done or operation.failed).
	stagingGone := func(t *testing.T, opID string) {
		t.Helper()
		w, err := obs.Watch(ctx, jetstream.IncludeHistory())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = w.Stop() }()
		for {
			select {
			case info := <-w.Updates():
				if info != nil && strings.HasPrefix(info.Name, "staging/"+opID+".") && info.Deleted {
					return
				}
			case <-ctx.Done():
				t.Fatalf("staging/%s.* never deleted", opID)
			}
		}
	}

	cases := []struct {
		name    string
		file    string
		status  string
		staging bool // a download is staged (not for a song already stored)
	}{
		{"a new song stored", "growth.m4a", "success", true},
		{"the same song again, answered from the stored DCA", "growth.m4a", "success", false},
		{"a song that fails", "growth-bad.mp3", "failed", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := sizes(t)
			op := in.startSong(t, files.URL(tc.file))
			if st := in.waitFinal(t, op.OperationID, 2*time.Minute); st.Status != tc.status {
				t.Fatalf("operation ended %q (%s), want %s", st.Status, st.Message, tc.status)
			}
			if tc.staging {
				stagingGone(t, op.OperationID)
			}
			after := sizes(t)
			var report []string
			for _, name := range streams {
				report = append(report, fmt.Sprintf("%s +%d bytes in +%d messages", name, after[name].bytes-before[name].bytes, after[name].msgs-before[name].msgs))
			}
			t.Logf("%s (%s of audio): %s", tc.name, songLen, strings.Join(report, "; "))
			if d := after[events.StreamName].bytes - before[events.StreamName].bytes; tc.status == "success" && d > maxStreamBytesPerSuccess {
				t.Errorf("the stream grew %d bytes for one success, more than %d", d, maxStreamBytesPerSuccess)
			}
			list, err := obs.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range list {
				if strings.HasPrefix(o.Name, "staging/") {
					t.Errorf("staged download %s left behind", o.Name)
				}
			}
		})
	}
}
