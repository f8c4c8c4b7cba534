package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/butakero/butakero/platform/media/songquery"
	"github.com/butakero/butakero/platform/searchcache"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"
	ytapi "google.golang.org/api/youtube/v3"
)

// VideoAPI is what the resolver asks of the YouTube Data API v3.
// Implementations must be safe for concurrent use and stop when ctx ends.
//
// Any error other than ErrNoResult is a failure of the API itself (quota,
// key, server, network; see FallbackReason): the resolver then falls back
// to yt-dlp.
type VideoAPI interface {
	// SearchVideo returns the id of the video that best matches text
	// (search.list, type video, one result: 100 quota units), or
	// ErrNoResult when there is none.
	SearchVideo(ctx context.Context, text string) (string, error)
	// Video returns what the API says of video id (videos.list with
	// snippet, contentDetails and status: 1 quota unit). A video the API
	// does not return (removed, or never existed) is a Video with Removed
	// set, not an error.
	Video(ctx context.Context, id string) (searchcache.Video, error)
}

// ErrNoResult is VideoAPI.SearchVideo's answer when nothing matches.
var ErrNoResult = errors.New("resolver: the search has no result")

// DefaultAPITimeout bounds one Data API call, connection included.
const DefaultAPITimeout = 10 * time.Second

// YouTubeAPI is VideoAPI on google.golang.org/api/youtube/v3 with an API
// key. It is safe for concurrent use.
type YouTubeAPI struct {
	svc *ytapi.Service
}

var _ VideoAPI = (*YouTubeAPI)(nil)

// NewYouTubeAPI returns a client of the Data API with key. baseURL, when
// not empty, replaces Google's endpoint (YOUTUBE_API_BASE_URL: a proxy, or
// a fake in tests); it is the root under which "youtube/v3/..." lives, and
// a trailing "youtube/v3" is accepted too. client, when nil, is a client
// with DefaultAPITimeout per call.
func NewYouTubeAPI(ctx context.Context, key, baseURL string, client *http.Client) (*YouTubeAPI, error) {
	if key == "" {
		return nil, errors.New("resolver: the Data API needs a key")
	}
	if client == nil {
		client = newAPIClient()
	}
	// NewService ignores option.WithAPIKey once option.WithHTTPClient is
	// given: the key goes in through the client's transport instead, the
	// library's own, wrapped around client's.
	keyed := *client
	base := keyed.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	rt, err := htransport.NewTransport(ctx, base, option.WithAPIKey(key))
	if err != nil {
		return nil, fmt.Errorf("resolver: Data API transport: %w", err)
	}
	keyed.Transport = rt
	opts := []option.ClientOption{option.WithHTTPClient(&keyed)}
	if baseURL != "" {
		opts = append(opts, option.WithEndpoint(endpoint(baseURL)))
	}
	svc, err := ytapi.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("resolver: Data API client: %w", err)
	}
	return &YouTubeAPI{svc: svc}, nil
}

// newAPIClient is an HTTP client whose every step is bounded.
func newAPIClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ResponseHeaderTimeout = DefaultAPITimeout
	t.MaxIdleConnsPerHost = 8
	return &http.Client{Transport: t, Timeout: DefaultAPITimeout}
}

// endpoint turns YOUTUBE_API_BASE_URL into the client library's endpoint:
// the root, ending in "/".
func endpoint(base string) string {
	base = strings.TrimRight(base, "/")
	base = strings.TrimSuffix(base, "/youtube/v3")
	return base + "/"
}

// SearchVideo implements VideoAPI with search.list.
func (a *YouTubeAPI) SearchVideo(ctx context.Context, text string) (string, error) {
	resp, err := a.svc.Search.List([]string{"id"}).Q(text).Type("video").MaxResults(1).Context(ctx).Do()
	if err != nil {
		return "", fmt.Errorf("resolver: search.list: %w", err)
	}
	for _, it := range resp.Items {
		if it.Id != nil && songquery.IsVideoID(it.Id.VideoId) {
			return it.Id.VideoId, nil
		}
	}
	return "", ErrNoResult
}

// Video implements VideoAPI with videos.list.
func (a *YouTubeAPI) Video(ctx context.Context, id string) (searchcache.Video, error) {
	resp, err := a.svc.Videos.List([]string{"snippet", "contentDetails", "status"}).Id(id).Context(ctx).Do()
	if err != nil {
		return searchcache.Video{}, fmt.Errorf("resolver: videos.list: %w", err)
	}
	for _, it := range resp.Items {
		if it.Id == id {
			return videoFromAPI(it)
		}
	}
	return searchcache.Video{ID: id, URL: songquery.WatchURL(id), Removed: true}, nil
}

// videoFromAPI maps a videos.list item.
func videoFromAPI(it *ytapi.Video) (searchcache.Video, error) {
	v := searchcache.Video{ID: it.Id, URL: songquery.WatchURL(it.Id)}
	if s := it.Snippet; s != nil {
		v.Title = s.Title
		v.Channel = s.ChannelTitle
		v.Live = s.LiveBroadcastContent
		v.ThumbnailURL = bestThumbnail(s.Thumbnails)
	}
	if c := it.ContentDetails; c != nil && c.Duration != "" {
		d, err := ParseISODuration(c.Duration)
		if err != nil {
			return searchcache.Video{}, fmt.Errorf("resolver: video %s: %w", it.Id, err)
		}
		v.DurationMs = d.Milliseconds()
	}
	if st := it.Status; st != nil {
		v.Privacy = st.PrivacyStatus
		// A video whose upload was deleted, rejected or failed cannot be
		// played even though the API still returns it.
		switch st.UploadStatus {
		case "deleted", "rejected", "failed":
			v.Removed = true
		}
	}
	return v, nil
}

// bestThumbnail is the largest thumbnail the API names.
func bestThumbnail(t *ytapi.ThumbnailDetails) string {
	if t == nil {
		return ""
	}
	for _, th := range []*ytapi.Thumbnail{t.Maxres, t.Standard, t.High, t.Medium, t.Default} {
		if th != nil && th.Url != "" {
			return th.Url
		}
	}
	return ""
}

// isoDuration is the ISO 8601 duration form the Data API uses
// (contentDetails.duration): PnW, or PnDTnHnMnS with any part left out;
// seconds may have a fraction.
var isoDuration = regexp.MustCompile(`^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:[.,]\d+)?)S)?)?$`)

// ParseISODuration parses an ISO 8601 duration as the Data API gives it:
// "PT4M13S", "PT1H2M3S", "P1DT2H", "PT0S", "P0D" (a live stream), "P2W".
// Years and months, which have no fixed length, are refused.
func ParseISODuration(s string) (time.Duration, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	m := isoDuration.FindStringSubmatch(u)
	if m == nil || u == "P" || strings.HasSuffix(u, "T") {
		return 0, fmt.Errorf("resolver: %q is not an ISO 8601 duration", s)
	}
	units := []time.Duration{7 * 24 * time.Hour, 24 * time.Hour, time.Hour, time.Minute}
	var d time.Duration
	for i, u := range units {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.ParseInt(m[i+1], 10, 64)
		if err != nil || n > int64(100*365*24*time.Hour/u) {
			return 0, fmt.Errorf("resolver: duration %q is out of range", s)
		}
		d += time.Duration(n) * u
	}
	if m[5] != "" {
		sec, err := strconv.ParseFloat(strings.ReplaceAll(m[5], ",", "."), 64)
		if err != nil || sec > 100*365*24*3600 {
			return 0, fmt.Errorf("resolver: duration %q is out of range", s)
		}
		d += time.Duration(sec * float64(time.Second))
	}
	return d, nil
}

// Fallback reasons, the values of resolver_fallbacks_total's label.
const (
	ReasonNoKey         = "no_key"
	ReasonQuotaExceeded = "quota_exceeded"
	ReasonKeyInvalid    = "key_invalid"
	ReasonServerError   = "server_error"
	ReasonRateLimited   = "rate_limited"
	ReasonUnreachable   = "unreachable"
	ReasonAPIError      = "api_error"
)

// FallbackReason names why a Data API call failed, from the error's HTTP
// status and the reason in its body ({"error":{"errors":[{"reason":…}]}}):
// quota_exceeded, key_invalid, rate_limited, server_error (5xx),
// unreachable (no HTTP answer) or api_error (anything else).
func FallbackReason(err error) string {
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		return ReasonUnreachable
	}
	reasons := make([]string, 0, len(gerr.Errors)+1)
	for _, e := range gerr.Errors {
		reasons = append(reasons, e.Reason)
	}
	if gerr.Details != nil {
		// Newer answers also carry google.rpc.ErrorInfo (API_KEY_INVALID…).
		reasons = append(reasons, fmt.Sprint(gerr.Details))
	}
	all := strings.ToLower(strings.Join(reasons, " "))
	switch {
	case strings.Contains(all, "quotaexceeded") || strings.Contains(all, "dailylimitexceeded"):
		return ReasonQuotaExceeded
	case strings.Contains(all, "keyinvalid") || strings.Contains(all, "keyexpired") || strings.Contains(all, "api_key_invalid"):
		return ReasonKeyInvalid
	case strings.Contains(all, "ratelimitexceeded") || gerr.Code == http.StatusTooManyRequests:
		return ReasonRateLimited
	case gerr.Code >= 500:
		return ReasonServerError
	}
	return ReasonAPIError
}
