package fetcher

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/store/objstore"
	"github.com/butakero/butakero/platform/testkit/natstest"
)

// TestSweep stages downloads for operations in every state and sweeps as
// if later: only what is older than MaxAge and whose operation is over
// goes; a song in progress keeps its source however old it is.
func TestSweep(t *testing.T) {
	env, ctx := natstest.StartWithin(t, 30*time.Second)
	blobs := natstest.Open(ctx, t, objstore.Open, env.JS, 1)
	cases := []struct {
		name    string
		history []events.Event // after song.requested
		later   time.Duration  // how long after staging the sweep runs
		swept   bool
	}{
		{"succeeded, old", []events.Event{events.VideoResolved{}, events.AudioDownloaded{}, events.DCAEncoded{}, events.UploadDone{}}, 2 * time.Hour, true},
		{"succeeded, its loudness measured after, old", []events.Event{events.VideoResolved{}, events.AudioDownloaded{}, events.DCAEncoded{}, events.UploadDone{}, events.LoudnessMeasured{Key: "audio/song1.dca"}}, 2 * time.Hour, true},
		{"cancelled, old", []events.Event{events.VideoResolved{}, events.OperationCancelled{Reason: "user"}}, 2 * time.Hour, true},
		{"half encoded, its loudness measured, old", []events.Event{events.VideoResolved{}, events.AudioDownloaded{}, events.DCAEncoded{}, events.LoudnessMeasured{Key: "audio/song1.dca"}}, 2 * time.Hour, false},
		{"failed, old", []events.Event{events.VideoResolved{}, events.OperationFailed{Stage: "encode", Code: events.CodeTimeout}}, 2 * time.Hour, true},
		{"still in the encoder's backlog, old", []events.Event{events.VideoResolved{}, events.AudioDownloaded{}}, 2 * time.Hour, false},
		{"half encoded, old", []events.Event{events.VideoResolved{}, events.AudioDownloaded{}, events.DCAEncoded{}}, 2 * time.Hour, false},
		{"succeeded, recent", []events.Event{events.VideoResolved{}, events.UploadDone{}}, time.Minute, false},
		{"no history, old", nil, 2 * time.Hour, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opID := events.NewID()
			prev, err := events.New(opID, "", events.SongRequested{Query: "q"})
			if err != nil {
				t.Fatal(err)
			}
			if tc.history != nil {
				env.Publish(t, prev)
			}
			for _, ev := range tc.history {
				next, err := events.Next(prev, "song1", ev)
				if err != nil {
					t.Fatal(err)
				}
				env.Publish(t, next)
				prev = next
			}
			key := blob.StagingPrefix + opID + ".m4a"
			info, err := blobs.Put(ctx, key, "audio/mp4", nil, strings.NewReader("staged audio"))
			if err != nil {
				t.Fatal(err)
			}
			s := &Sweeper{Blobs: blobs, Stream: env.Stream, MaxAge: time.Hour, Log: quietLog()}
			if _, err := s.Sweep(ctx, info.Modified.Add(tc.later)); err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			_, err = blobs.Stat(ctx, key)
			if gone := errors.Is(err, blob.ErrNotFound); gone != tc.swept {
				t.Errorf("staged download swept: %v (Stat: %v), want %v", gone, err, tc.swept)
			}
		})
	}
}
