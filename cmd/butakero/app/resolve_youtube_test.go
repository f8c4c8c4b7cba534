package app_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/services/resolver/youtubetest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestResolveYouTube runs the all-in-one with a Data API key against the
// fake Data API on 127.0.0.1: every input form names the right video, with
// its metadata, at start; a repeated query costs no API call; every refusal
// ends the operation failed at the first attempt, saying why. YouTube
// itself cannot be reached from here, so the fetch of an accepted video
// then fails (MAX_ATTEMPTS=1); that is not what this test checks.
func TestResolveYouTube(t *testing.T) {
	const rick = "dQw4w9WgXcQ"
	yt := youtubetest.Start(t)
	for _, v := range []youtubetest.Video{
		{ID: rick, Title: "Rick Astley - Never Gonna Give You Up (Official Music Video)", Channel: "Rick Astley", Duration: "PT3M33S",
			Thumbnails: map[string]string{"high": "https://i.ytimg.com/vi/" + rick + "/hqdefault.jpg",
				"maxres": "https://i.ytimg.com/vi/" + rick + "/maxresdefault.jpg"}},
		{ID: "liveliveliv", Title: "lofi hip hop radio", Channel: "Lofi Girl", Duration: "P0D", Live: "live"},
		{ID: "upcomingupc", Title: "Premiere", Channel: "Band", Duration: "P0D", Live: "upcoming"},
		{ID: "privateprvt", Title: "Private", Channel: "Someone", Duration: "PT2M", Privacy: "private"},
		{ID: "toolongtool", Title: "10 hours of rain", Channel: "Rain", Duration: "PT10H"},
	} {
		yt.AddVideo(v)
	}
	yt.AddSearch("never gonna give you up", rick)
	yt.AddSearch("rain for ten hours", "toolongtool")

	natsAddr := loopback.Addr(t)
	in := start(t, t.TempDir(), map[string]string{
		"YOUTUBE_API_KEY":      youtubetest.Key,
		"YOUTUBE_API_BASE_URL": yt.URL,
		"MAX_ATTEMPTS":         "1",
		"MAX_DURATION":         "3h",
		"NATS_LISTEN":          natsAddr,
		"NATS_TOKEN":           natsToken,
		"RATE_LIMIT":           "0", // the test polls faster than a user
	})
	stream := openStream(t, natsAddr)

	wantSong := events.Song{ID: rick, URL: "https://www.youtube.com/watch?v=" + rick, Source: "youtube",
		Title: "Rick Astley - Never Gonna Give You Up (Official Music Video)", Channel: "Rick Astley", DurationMs: 213000,
		ThumbnailURL: "https://i.ytimg.com/vi/" + rick + "/maxresdefault.jpg"}

	t.Run("every input form", func(t *testing.T) {
		forms := []struct{ name, query string }{
			{"text", "never gonna give you up"},
			{"watch", "https://www.youtube.com/watch?v=" + rick},
			{"watch with t, list, si", "https://www.youtube.com/watch?v=" + rick + "&t=43s&list=RDdQw4w9WgXcQ&si=Ab12"},
			{"youtu.be", "https://youtu.be/" + rick + "?si=Ab12&t=10"},
			{"m.", "https://m.youtube.com/watch?v=" + rick},
			{"music.", "https://music.youtube.com/watch?v=" + rick + "&feature=share"},
			{"shorts", "https://www.youtube.com/shorts/" + rick},
			{"embed", "https://www.youtube.com/embed/" + rick + "?start=5"},
			{"live", "https://www.youtube.com/live/" + rick + "?feature=shared"},
			{"no scheme", "youtube.com/watch?v=" + rick},
			{"bare id", rick},
		}
		for _, f := range forms {
			t.Run(f.name, func(t *testing.T) {
				op := in.startSong(t, f.query)
				if op.SongID != rick {
					t.Fatalf("start %q: song_id %q; want %q", f.query, op.SongID, rick)
				}
				if got := resolvedSong(t, stream, op.OperationID); got != wantSong {
					t.Fatalf("video.resolved song\n got %+v\nwant %+v", got, wantSong)
				}
			})
		}
	})

	t.Run("a repeated query is free", func(t *testing.T) {
		calls := yt.TotalCalls()
		for _, q := range []string{"never gonna give you up", "Never Gonna  Give You Up", "NEVER GONNA GIVE YOU UP"} {
			op := in.startSong(t, q)
			if op.SongID != rick {
				t.Fatalf("start %q: song_id %q; want %q", q, op.SongID, rick)
			}
		}
		if got := yt.TotalCalls() - calls; got != 0 {
			t.Fatalf("repeated queries made %d Data API calls; want 0", got)
		}
	})

	t.Run("refusals are final and explained", func(t *testing.T) {
		cases := []struct {
			name, query, code, message string
		}{
			{"live", "https://www.youtube.com/watch?v=liveliveliv", "unavailable", "the video is a live stream: live streams cannot be fetched"},
			{"upcoming", "upcomingupc", "unavailable", "the video is a live stream or premiere that has not started yet"},
			{"private", "https://youtu.be/privateprvt", "unavailable", "the video is private"},
			{"removed", "https://youtu.be/removedremo", "not_found", "the video does not exist or was removed from YouTube"},
			{"too long", "rain for ten hours", "unavailable", "the song lasts 10h0m0s, longer than the 3h0m0s limit"},
			{"no result", "a song nobody ever wrote", "not_found", `no video found for "a song nobody ever wrote"`},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				op := in.startSong(t, tc.query)
				st := in.waitFinal(t, op.OperationID, 30*time.Second)
				if st.Status != "failed" || st.Success || st.Attempts != 1 || st.Message != tc.message {
					t.Fatalf("operation ended %+v; want failed at attempt 1 with %q", st, tc.message)
				}
				if code := failureCode(t, stream, op.OperationID); code != tc.code {
					t.Errorf("failure code %q; want %q", code, tc.code)
				}
			})
		}
	})
}

// openStream connects to the all-in-one's embedded server at addr.
func openStream(t *testing.T, addr string) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := connectJS(t, addr).Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lastEvent returns the operation's last event of kind k, waiting for it:
// the gateway can learn a song id from its subscription a moment before
// the stream's copy of the event can be read.
func lastEvent(t *testing.T, s jetstream.Stream, k events.Kind, opID string) events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var msg *jetstream.RawStreamMsg
	var err error
	for {
		msg, err = s.GetLastMsgForSubject(ctx, events.Subject(k, opID))
		if !errors.Is(err, jetstream.ErrMsgNotFound) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatalf("%s of %s: %v", k, opID, err)
	}
	_, ev, err := events.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func resolvedSong(t *testing.T, s jetstream.Stream, opID string) events.Song {
	t.Helper()
	ev, ok := lastEvent(t, s, events.KindVideoResolved, opID).(events.VideoResolved)
	if !ok {
		t.Fatal("not a video.resolved")
	}
	return ev.Song
}

func failureCode(t *testing.T, s jetstream.Stream, opID string) string {
	t.Helper()
	ev, ok := lastEvent(t, s, events.KindOperationFailed, opID).(events.OperationFailed)
	if !ok {
		t.Fatal("not an operation.failed")
	}
	if !strings.EqualFold(ev.Stage, "resolve") {
		t.Errorf("failed at stage %q; want resolve", ev.Stage)
	}
	return string(ev.Code)
}
