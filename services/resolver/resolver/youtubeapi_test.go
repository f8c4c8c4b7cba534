package resolver

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/media/songquery"
	"github.com/butakero/butakero/platform/searchcache"
	"github.com/butakero/butakero/services/resolver/youtubetest"
)

func TestParseISODuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "PT4M13S", want: 4*time.Minute + 13*time.Second},
		{in: "PT1H2M3S", want: time.Hour + 2*time.Minute + 3*time.Second},
		{in: "P1DT2H", want: 26 * time.Hour},
		{in: "PT0S", want: 0},
		{in: "P0D", want: 0},
		{in: "PT15S", want: 15 * time.Second},
		{in: "PT3H", want: 3 * time.Hour},
		{in: "PT10M", want: 10 * time.Minute},
		{in: "P1W", want: 7 * 24 * time.Hour},
		{in: "P1DT0H0M1S", want: 24*time.Hour + time.Second},
		{in: "PT1.5S", want: 1500 * time.Millisecond},
		{in: "pt2m", want: 2 * time.Minute},
		{in: "", wantErr: true},
		{in: "P", wantErr: true},
		{in: "PT", wantErr: true},
		{in: "P1DT", wantErr: true},
		{in: "P1Y", wantErr: true},
		{in: "P1M", wantErr: true},
		{in: "4:13", wantErr: true},
		{in: "PT-1S", wantErr: true},
		{in: "PT1S2M", wantErr: true},
		{in: "PT99999999999999999999H", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseISODuration(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseISODuration(%q) = %s; want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseISODuration(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestYouTubeAPI(t *testing.T) {
	srv := youtubetest.Start(t)
	srv.AddVideo(youtubetest.Video{ID: rick, Title: "Rick Astley - Never Gonna Give You Up", Channel: "Rick Astley",
		Duration: "PT3M33S", Thumbnails: map[string]string{
			"default": "https://i.ytimg.com/vi/x/default.jpg", "high": "https://i.ytimg.com/vi/x/hqdefault.jpg",
			"maxres": "https://i.ytimg.com/vi/x/maxresdefault.jpg", "standard": "https://i.ytimg.com/vi/x/sddefault.jpg"}})
	srv.AddVideo(youtubetest.Video{ID: "liveliveliv", Title: "Live", Channel: "C", Duration: "P0D", Live: "live"})
	srv.AddVideo(youtubetest.Video{ID: "privateprvt", Title: "Private", Channel: "C", Duration: "PT1M", Privacy: "private"})
	srv.AddSearch("never gonna give you up", rick)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A base URL that names the API's own path is accepted too.
	api, err := NewYouTubeAPI(ctx, youtubetest.Key, srv.URL+"youtube/v3", nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("search", func(t *testing.T) {
		id, err := api.SearchVideo(ctx, "never gonna give you up")
		if err != nil || id != rick {
			t.Fatalf("SearchVideo = %q, %v; want %q", id, err, rick)
		}
		if _, err := api.SearchVideo(ctx, "nothing like this"); !errors.Is(err, ErrNoResult) {
			t.Fatalf("SearchVideo without a result = %v; want ErrNoResult", err)
		}
	})

	t.Run("videos", func(t *testing.T) {
		tests := []struct {
			name string
			id   string
			want searchcache.Video
		}{
			{name: "public, best thumbnail", id: rick, want: searchcache.Video{ID: rick, URL: songquery.WatchURL(rick),
				Title: "Rick Astley - Never Gonna Give You Up", Channel: "Rick Astley", DurationMs: 213000,
				ThumbnailURL: "https://i.ytimg.com/vi/x/maxresdefault.jpg", Live: "none", Privacy: "public"}},
			{name: "live", id: "liveliveliv", want: searchcache.Video{ID: "liveliveliv", URL: songquery.WatchURL("liveliveliv"),
				Title: "Live", Channel: "C", ThumbnailURL: "https://i.ytimg.com/vi/liveliveliv/hqdefault.jpg", Live: "live", Privacy: "public"}},
			{name: "private", id: "privateprvt", want: searchcache.Video{ID: "privateprvt", URL: songquery.WatchURL("privateprvt"),
				Title: "Private", Channel: "C", DurationMs: 60000, ThumbnailURL: "https://i.ytimg.com/vi/privateprvt/hqdefault.jpg",
				Live: "none", Privacy: "private"}},
			{name: "absent is removed", id: "removedremo", want: searchcache.Video{ID: "removedremo", URL: songquery.WatchURL("removedremo"), Removed: true}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := api.Video(ctx, tc.id)
				if err != nil || got != tc.want {
					t.Fatalf("Video(%s) = %+v, %v\nwant %+v", tc.id, got, err, tc.want)
				}
			})
		}
	})

	t.Run("failures name their reason", func(t *testing.T) {
		tests := []struct {
			name, reason, want string
		}{
			{name: "quota", reason: "quotaExceeded", want: ReasonQuotaExceeded},
			{name: "key", reason: "keyInvalid", want: ReasonKeyInvalid},
			{name: "rate", reason: "rateLimitExceeded", want: ReasonRateLimited},
			{name: "backend", reason: "backendError", want: ReasonServerError},
			{name: "unavailable", reason: "serviceUnavailable", want: ReasonServerError},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				srv.FailNext(youtubetest.Search, tc.reason)
				_, err := api.SearchVideo(ctx, "never gonna give you up")
				if err == nil || errors.Is(err, ErrNoResult) {
					t.Fatalf("SearchVideo = %v; want an API failure", err)
				}
				if got := FallbackReason(err); got != tc.want {
					t.Fatalf("FallbackReason(%v) = %q; want %q", err, got, tc.want)
				}
			})
		}
		t.Run("wrong key", func(t *testing.T) {
			bad, err := NewYouTubeAPI(ctx, "not-the-key", srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = bad.Video(ctx, rick)
			if got := FallbackReason(err); got != ReasonKeyInvalid {
				t.Fatalf("FallbackReason(%v) = %q; want %q", err, got, ReasonKeyInvalid)
			}
		})
		t.Run("unreachable", func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close() // nothing listens there now
			gone, err := NewYouTubeAPI(ctx, youtubetest.Key, "http://"+addr+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = gone.SearchVideo(ctx, "x")
			if got := FallbackReason(err); err == nil || got != ReasonUnreachable {
				t.Fatalf("FallbackReason(%v) = %q; want %q", err, got, ReasonUnreachable)
			}
		})
	})

	if _, err := NewYouTubeAPI(ctx, "", srv.URL, nil); err == nil {
		t.Error("NewYouTubeAPI without a key succeeded")
	}
}
