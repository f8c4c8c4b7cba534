// Package config reads Butakero's environment once, in main, into a Config
// with defaults and validation. Nothing below main reads the environment.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/media/mediahosts"
)

// Config is every setting of the README's "Configuration" table.
type Config struct {
	HTTPAddr       string // HTTP_ADDR
	DataDir        string // DATA_DIR
	NATSURL        string // NATS_URL; empty means embedded
	NATSListen     string // NATS_LISTEN: embedded server's client listener; empty means none
	NATSToken      string // NATS_TOKEN: token to present to NATS (and that the embedded server requires)
	NATSUser       string // NATS_USER: user to present to NATS (and that the embedded server requires), with NATSPassword
	NATSPassword   string // NATS_PASSWORD
	NATSCreds      string // NATS_CREDS: a credentials file (user JWT and NKey seed), instead of a token or a user
	NATSTLSCA      string // NATS_TLS_CA: PEM file of the CAs the servers' certificates are checked against
	NATSTLSCert    string // NATS_TLS_CERT: PEM client certificate, with NATS_TLS_KEY
	NATSTLSKey     string // NATS_TLS_KEY: PEM key of NATS_TLS_CERT
	StreamReplicas int    // STREAM_REPLICAS
	// RecorderPartitions is RECORDER_PARTITIONS: the recorder's lanes
	// (events.EnsureLanes). Every process must have the same value.
	RecorderPartitions int
	StreamMaxAge       time.Duration // STREAM_MAX_AGE: events older than this are dropped from the stream; 0 keeps them forever
	StreamMaxBytes     int64         // STREAM_MAX_BYTES: the oldest events are dropped past this size; 0 means no limit
	AllowedMediaHosts  []string      // ALLOWED_MEDIA_HOSTS, canonical entries (package mediahosts)
	YouTubeAPIKey      string        // YOUTUBE_API_KEY
	YouTubeAPIBaseURL  string        // YOUTUBE_API_BASE_URL
	MaxAttempts        int           // MAX_ATTEMPTS
	StageTimeout       time.Duration // STAGE_TIMEOUT
	MaxDuration        time.Duration // MAX_DURATION
	DCABitrateKbps     int           // DCA_BITRATE_KBPS
	OpusPassthrough    bool          // OPUS_PASSTHROUGH: auto (true) copies 48 kHz Opus in 20 ms frames; off (false) always transcodes
	EarlyEncode        bool          // EARLY_ENCODE: auto (true) encodes a streamable source as it downloads; off (false) once it is whole
	PassthroughMaxKbps int           // PASSTHROUGH_MAX_KBPS: above this source bitrate, transcode
	LoudnessTarget     *float64      // LOUDNESS_TARGET: LUFS transcodes are normalised to; nil leaves loudness as it is
	APIKeys            []string      // API_KEYS
	YTDLPCookiesFile   string        // YTDLP_COOKIES_FILE
	YTDLPProxy         string        // YTDLP_PROXY
	YTDLPJSRuntimes    []string      // YTDLP_JS_RUNTIMES: yt-dlp's --js-runtimes for YouTube downloads (quickjs, node, deno, bun[:path])
	YTDLPRemoteComps   []string      // YTDLP_REMOTE_COMPONENTS: yt-dlp's --remote-components (ejs:github, ejs:npm)
	ShutdownGrace      time.Duration // SHUTDOWN_GRACE
	SearchCacheTTL     time.Duration // SEARCH_CACHE_TTL: how long a query's video and a video's metadata are cached
	OperationTTL       time.Duration // OPERATION_TTL: how long a finished operation is kept (DynamoDB and JetStream KV)
	AllowedOrigins     []string      // ALLOWED_ORIGINS: WebSocket and CORS origins; empty means the gateway's own only
	PublicURL          string        // PUBLIC_URL: the URL users reach the gateway at, its own origin; empty means the listen address
	RateLimit          int           // RATE_LIMIT: operations created per minute per API key (or per IP without keys); 0 disables
	ReadRateLimit      int           // READ_RATE_LIMIT: reads (every other /api and /v1 request) per minute per API key or IP; 0 disables
	AuthFailureLimit   int           // AUTH_FAILURE_LIMIT: failed authentications per minute per IP before it is refused; 0 disables
	MaxSockets         int           // MAX_SOCKETS: open WebSocket connections per gateway
	MetricsAddr        string        // METRICS_ADDR: a service run alone serves /metrics here; empty means not at all
	MetricsEMF         bool          // METRICS_EMF: a stage service run alone logs its consumer's backlog as CloudWatch Embedded Metric Format
	MetricsDeployment  string        // METRICS_DEPLOYMENT: the Deployment dimension of those metrics (dev, prod)
	FetchConcurrency   int           // FETCH_CONCURRENCY: downloads one process runs at once
	EncodeConcurrency  int           // ENCODE_CONCURRENCY: encodes one process runs at once (default: the CPUs)
	// EncodeMemoryBudget is ENCODE_MEMORY_BUDGET: the soft memory limit
	// the all-in-one sets while it moves a song (package membudget); 0
	// (off) sets none.
	EncodeMemoryBudget int64
	DirectMaxBytes     int64         // DIRECT_MAX_BYTES: largest file a direct media URL may deliver
	StagingMaxAge      time.Duration // STAGING_MAX_AGE: a staged download this old whose operation has ended is swept
	PlaylistMaxItems   int           // PLAYLIST_MAX_ITEMS: children of one playlist

	// Webhooks (webhook.go): signed notifications of final outcomes.
	Webhooks Webhooks

	// The AWS profile. BucketName set means blobs in S3; both table names set
	// mean projections in DynamoDB. Region, AccessKey and SecretKey are the
	// original service's names; when empty the AWS SDK's own chain applies
	// (AWS_REGION, AWS_ACCESS_KEY_ID, profiles, roles). Endpoints come from
	// the SDK's AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_DYNAMODB.
	BucketName      string // BUCKET_NAME
	Region          string // REGION
	AccessKey       string // ACCESS_KEY
	SecretKey       string // SECRET_KEY
	SongsTable      string // DYNAMODB_TABLE_NAME_SONGS
	OperationsTable string // DYNAMODB_TABLE_NAME_OPERATION
	AWSAutoCreate   bool   // AWS_AUTO_CREATE: create a missing bucket and tables at start
	LogLevel        string // LOG_LEVEL (GIN_MODE=debug means debug)
	LogFormat       string // LOG_FORMAT (GIN_MODE=debug means text)

	// Tracing is the OpenTelemetry trace export (the standard OTEL_*
	// variables); off unless an OTLP endpoint is set.
	Tracing Tracing
}

// DefaultRecorderPartitions is RECORDER_PARTITIONS' default: enough lanes
// to keep a store of a few milliseconds per write busy at hundreds of
// events a second.
const DefaultRecorderPartitions = 16

// DefaultDirectMaxBytes is DIRECT_MAX_BYTES when unset: 1 GiB, about 9
// hours of 256 kbit/s audio.
const DefaultDirectMaxBytes = 1 << 30

// DefaultReadRateLimit is READ_RATE_LIMIT's default: twice what a bot
// polling 20 operations 5 times a second asks (6 000 a minute), so such a
// bot never meets it.
const DefaultReadRateLimit = 12_000

// Lookup is os.LookupEnv's shape, so tests can pass a map.
type Lookup func(key string) (string, bool)

// FromMap adapts a map to Lookup.
func FromMap(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Load reads the configuration through lookup, applies defaults and
// validates it. The error lists every bad variable at once.
func Load(lookup Lookup) (Config, error) {
	get := func(k, def string) string {
		if v, ok := lookup(k); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	var errs []error
	intVar := func(k string, def, min, max int) int {
		s := get(k, strconv.Itoa(def))
		n, err := strconv.Atoi(s)
		if err != nil || n < min || n > max {
			errs = append(errs, fmt.Errorf("%s=%q: want a whole number from %d to %d", k, s, min, max))
			return def
		}
		return n
	}
	durVar := func(k string, def time.Duration) time.Duration {
		s := get(k, def.String())
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive Go duration such as 4m", k, s))
			return def
		}
		return d
	}

	// optionalDurVar is a duration that may be off: empty or "0" is 0.
	optionalDurVar := func(k string, min time.Duration) time.Duration {
		s := get(k, "0")
		if s == "0" {
			return 0
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < min {
			errs = append(errs, fmt.Errorf("%s=%q: want a Go duration of at least %s, or 0 for no limit", k, s, min))
			return 0
		}
		return d
	}
	// optionalBytesVar is a size that may be off: empty or "0" is 0.
	optionalBytesVar := func(k string, min int64) int64 {
		s := get(k, "0")
		n, err := parseBytes(s)
		if err != nil || (n != 0 && n < min) {
			errs = append(errs, fmt.Errorf("%s=%q: want a size of at least %d bytes (a number with an optional unit: 512MiB, 20GiB, 1TiB), or 0 for no limit", k, s, min))
			return 0
		}
		return n
	}

	boolVar := func(k string, def bool) bool {
		s := get(k, strconv.FormatBool(def))
		b, err := strconv.ParseBool(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", k, s))
			return def
		}
		return b
	}

	c := Config{
		HTTPAddr:           get("HTTP_ADDR", ":8080"),
		DataDir:            get("DATA_DIR", "./data"),
		NATSURL:            get("NATS_URL", ""),
		NATSListen:         get("NATS_LISTEN", ""),
		NATSToken:          get("NATS_TOKEN", ""),
		NATSUser:           get("NATS_USER", ""),
		NATSPassword:       get("NATS_PASSWORD", ""),
		NATSCreds:          get("NATS_CREDS", ""),
		NATSTLSCA:          get("NATS_TLS_CA", ""),
		NATSTLSCert:        get("NATS_TLS_CERT", ""),
		NATSTLSKey:         get("NATS_TLS_KEY", ""),
		StreamReplicas:     intVar("STREAM_REPLICAS", 1, 1, 5),
		RecorderPartitions: intVar("RECORDER_PARTITIONS", DefaultRecorderPartitions, 1, events.MaxPartitions),
		StreamMaxAge:       optionalDurVar("STREAM_MAX_AGE", events.DuplicateWindow),
		StreamMaxBytes:     optionalBytesVar("STREAM_MAX_BYTES", 1<<20),
		YouTubeAPIKey:      get("YOUTUBE_API_KEY", ""),
		YouTubeAPIBaseURL:  get("YOUTUBE_API_BASE_URL", ""),
		MaxAttempts:        intVar("MAX_ATTEMPTS", 3, 1, 100),
		StageTimeout:       durVar("STAGE_TIMEOUT", 4*time.Minute),
		MaxDuration:        durVar("MAX_DURATION", 3*time.Hour),
		DCABitrateKbps:     intVar("DCA_BITRATE_KBPS", 96, 8, 128),
		APIKeys:            list(get("API_KEYS", "")),
		YTDLPCookiesFile:   get("YTDLP_COOKIES_FILE", ""),
		YTDLPProxy:         get("YTDLP_PROXY", ""),
		YTDLPJSRuntimes:    list(get("YTDLP_JS_RUNTIMES", "")),
		YTDLPRemoteComps:   list(get("YTDLP_REMOTE_COMPONENTS", "")),
		ShutdownGrace:      durVar("SHUTDOWN_GRACE", 20*time.Second),
		SearchCacheTTL:     durVar("SEARCH_CACHE_TTL", 7*24*time.Hour),
		OperationTTL:       durVar("OPERATION_TTL", 30*24*time.Hour),
		StagingMaxAge:      durVar("STAGING_MAX_AGE", time.Hour),
		AllowedOrigins:     list(get("ALLOWED_ORIGINS", "")),
		PublicURL:          get("PUBLIC_URL", ""),
		RateLimit:          intVar("RATE_LIMIT", 120, 0, 1_000_000),
		ReadRateLimit:      intVar("READ_RATE_LIMIT", DefaultReadRateLimit, 0, 100_000_000),
		AuthFailureLimit:   intVar("AUTH_FAILURE_LIMIT", 20, 0, 1_000_000),
		MaxSockets:         intVar("MAX_SOCKETS", 1000, 1, 1_000_000),
		MetricsAddr:        get("METRICS_ADDR", ""),
		MetricsEMF:         boolVar("METRICS_EMF", false),
		MetricsDeployment:  get("METRICS_DEPLOYMENT", "default"),
		FetchConcurrency:   intVar("FETCH_CONCURRENCY", 2, 1, 256),
		EncodeConcurrency:  intVar("ENCODE_CONCURRENCY", runtime.NumCPU(), 1, 256),
		DirectMaxBytes:     int64(intVar("DIRECT_MAX_BYTES", DefaultDirectMaxBytes, 1, math.MaxInt)),
		BucketName:         get("BUCKET_NAME", ""),
		Region:             get("REGION", ""),
		AccessKey:          get("ACCESS_KEY", ""),
		SecretKey:          get("SECRET_KEY", ""),
		SongsTable:         get("DYNAMODB_TABLE_NAME_SONGS", ""),
		OperationsTable:    get("DYNAMODB_TABLE_NAME_OPERATION", ""),
		AWSAutoCreate:      boolVar("AWS_AUTO_CREATE", false),
		LogLevel:           strings.ToLower(get("LOG_LEVEL", "info")),
		LogFormat:          strings.ToLower(get("LOG_FORMAT", "json")),
	}
	switch v := strings.ToLower(get("OPUS_PASSTHROUGH", "auto")); v {
	case "auto":
		c.OpusPassthrough = true
	case "off":
	default:
		errs = append(errs, fmt.Errorf("OPUS_PASSTHROUGH=%q: want auto or off", v))
	}
	switch v := get("ENCODE_MEMORY_BUDGET", "24MiB"); strings.ToLower(v) {
	case "off":
	default:
		n, err := parseBytes(v)
		if err != nil || n < 1<<20 {
			errs = append(errs, fmt.Errorf("ENCODE_MEMORY_BUDGET=%q: want a size of at least 1MiB (24MiB, 64MiB), or off", v))
		}
		c.EncodeMemoryBudget = n
	}
	switch v := strings.ToLower(get("EARLY_ENCODE", "auto")); v {
	case "auto":
		c.EarlyEncode = true
	case "off":
	default:
		errs = append(errs, fmt.Errorf("EARLY_ENCODE=%q: want auto or off", v))
	}
	c.PassthroughMaxKbps = intVar("PASSTHROUGH_MAX_KBPS", 192, 1, 10_000)
	if v := get("LOUDNESS_TARGET", ""); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < -70 || f > 0 {
			errs = append(errs, fmt.Errorf("LOUDNESS_TARGET=%q: want LUFS between -70 and 0, such as -14", v))
		} else {
			c.LoudnessTarget = &f
		}
	}
	hosts, err := mediahosts.Parse(get("ALLOWED_MEDIA_HOSTS", ""))
	if err != nil {
		errs = append(errs, fmt.Errorf("ALLOWED_MEDIA_HOSTS: %w", err))
	}
	c.AllowedMediaHosts = hosts
	tracing, tracingErrs := loadTracing(get)
	c.Tracing, errs = tracing, append(errs, tracingErrs...)
	c.PlaylistMaxItems = intVar("PLAYLIST_MAX_ITEMS", DefaultPlaylistMaxItems, 1, 5000)
	c.Webhooks = loadWebhooks(get, durVar, &errs)
	if strings.EqualFold(get("GIN_MODE", ""), "debug") {
		if _, ok := lookup("LOG_LEVEL"); !ok {
			c.LogLevel = "debug"
		}
		if _, ok := lookup("LOG_FORMAT"); !ok {
			c.LogFormat = "text"
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("LOG_FORMAT=%q: want json or text", c.LogFormat))
	}
	if c.NATSListen != "" {
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			errs = append(errs, fmt.Errorf("NATS_LISTEN=%q: want host:port", c.NATSListen))
		}
	}
	if c.StagingMaxAge < time.Minute {
		errs = append(errs, fmt.Errorf("STAGING_MAX_AGE=%s: want at least 1m", c.StagingMaxAge))
	}
	if (c.NATSUser == "") != (c.NATSPassword == "") {
		errs = append(errs, errors.New("NATS_USER and NATS_PASSWORD: set both or neither"))
	}
	if n := nonEmpty(c.NATSCreds, c.NATSToken, c.NATSUser); n > 1 {
		errs = append(errs, errors.New("NATS_CREDS, NATS_TOKEN and NATS_USER: set one way to authenticate to NATS, not several (not both)"))
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		errs = append(errs, errors.New("NATS_TLS_CERT and NATS_TLS_KEY: set both or neither"))
	}
	for _, v := range []struct {
		env  string
		vals []string
	}{{"YTDLP_JS_RUNTIMES", c.YTDLPJSRuntimes}, {"YTDLP_REMOTE_COMPONENTS", c.YTDLPRemoteComps}} {
		for _, s := range v.vals {
			if strings.HasPrefix(s, "-") || strings.ContainsAny(s, " \t") {
				errs = append(errs, fmt.Errorf("%s: %q is not a yt-dlp value (comma-separated names such as quickjs or ejs:github)", v.env, s))
			}
		}
	}
	// A listener opens the embedded server, the stream and every bucket to
	// whoever reaches the address: never without credentials.
	if c.Embedded() && c.NATSListen != "" && c.NATSToken == "" && (c.NATSUser == "" || c.NATSPassword == "") {
		errs = append(errs, fmt.Errorf("NATS_LISTEN=%q opens the embedded NATS server to the network: set NATS_TOKEN, or NATS_USER and NATS_PASSWORD, which every client (this process's own included) must then present", c.NATSListen))
	}
	if (c.SongsTable == "") != (c.OperationsTable == "") {
		errs = append(errs, errors.New("DYNAMODB_TABLE_NAME_SONGS and DYNAMODB_TABLE_NAME_OPERATION: set both (projections in DynamoDB) or neither"))
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		errs = append(errs, errors.New("ACCESS_KEY and SECRET_KEY: set both or neither"))
	}
	return c, errors.Join(errs...)
}

// StreamLimits are the event stream's limits (STREAM_MAX_AGE,
// STREAM_MAX_BYTES), for events.EnsureStream.
func (c Config) StreamLimits() events.StreamLimits {
	return events.StreamLimits{MaxAge: c.StreamMaxAge, MaxBytes: c.StreamMaxBytes}
}

// BlobsInS3 reports whether audio lives in S3 (BUCKET_NAME set) rather
// than in the JetStream Object Store.
func (c Config) BlobsInS3() bool { return c.BucketName != "" }

// ProjectionsInDynamoDB reports whether the projections live in DynamoDB
// (both table names set) rather than in JetStream KV.
func (c Config) ProjectionsInDynamoDB() bool { return c.SongsTable != "" && c.OperationsTable != "" }

// Embedded reports whether the process runs its own JetStream server.
func (c Config) Embedded() bool { return c.NATSURL == "" }

// parseBytes reads a size: a whole number of bytes with an optional binary
// unit (B, KiB, MiB, GiB, TiB; K, M, G, T alike).
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		size   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.size
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("not a size: %q", s)
	}
	return n * mult, nil
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// nonEmpty counts the non-empty strings of s.
func nonEmpty(s ...string) int {
	n := 0
	for _, v := range s {
		if v != "" {
			n++
		}
	}
	return n
}
