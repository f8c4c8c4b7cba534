package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream that holds every event.
const StreamName = "BUTAKERO"

// ProgressPrefix starts the core NATS subject of progress messages:
// "progress.<operation_id>". Progress is ephemeral and never in the stream.
const ProgressPrefix = "progress"

// Subject is where an event of kind k for operation opID is published.
func Subject(k Kind, opID string) string { return string(k) + "." + opID }

// OperationSubjects is the filter that matches one operation's history.
func OperationSubjects(opID string) string { return "*.*." + opID }

// ProgressSubject is where progress for operation opID is published.
func ProgressSubject(opID string) string { return ProgressPrefix + "." + opID }

// KindOf returns the kind of a stream subject ("video.resolved.<id>").
func KindOf(subject string) (Kind, string, bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 3 {
		return "", "", false
	}
	return Kind(parts[0] + "." + parts[1]), parts[2], true
}

// DuplicateWindow is how long the stream remembers message ids. A handler
// that republishes within it is deduplicated by the server; after it,
// handlers rely on their own idempotency.
const DuplicateWindow = 30 * time.Minute

// StreamLimits bound the history the stream keeps. The zero value, the
// default, keeps every event forever: the stream is then the whole history
// and a replay rebuilds every projection from it. With a limit, JetStream
// drops the oldest events (DiscardOld) once they pass it, and the stream
// holds only a recent part of the history: projections of operations
// whose events are gone stay as they are, and a replay rebuilds only what
// the stream still holds (see recorder.Replay).
//
// A limit must leave far more than the work in flight: an event dropped
// before every consumer has taken it (a stage message waiting for a
// worker, the recorder's backlog while its store is down) is lost to them.
type StreamLimits struct {
	// MaxAge drops events older than this (STREAM_MAX_AGE); 0 means no
	// limit. JetStream requires at least DuplicateWindow.
	MaxAge time.Duration
	// MaxBytes drops the oldest events once the stream holds more than
	// this many bytes (STREAM_MAX_BYTES); 0 means no limit.
	MaxBytes int64
}

// StreamConfig is the definition of the event stream: every event kind's
// subjects, file storage, replicas, the duplicate window, and the limits
// (none by default: events are the history every projection is rebuilt
// from).
func StreamConfig(replicas int, limits StreamLimits) jetstream.StreamConfig {
	subjects := make([]string, 0, len(Kinds))
	for _, k := range Kinds {
		subjects = append(subjects, string(k)+".*")
	}
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Butakero event history: the source of truth",
		Subjects:    subjects,
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  DuplicateWindow,
		// Zero is what the stream had before limits existed, so that an
		// unlimited stream's definition is unchanged (a create of it
		// succeeds and no update is sent).
		MaxAge:   limits.MaxAge,
		MaxBytes: limits.MaxBytes,
		Discard:  jetstream.DiscardOld,
	}
}

// EnsureStream creates the stream or updates it to StreamConfig. Several
// processes may call it at once against a cluster; they must agree on
// replicas and limits, or each start updates the stream to its own.
//
// It creates first and updates only a stream whose definition differs:
// nats.go's CreateOrUpdateStream updates first, and against a nats-server
// 2.15 cluster an update that arrives while another process's create of
// the same stream is in flight gets no answer, nor does that create, so
// two processes starting together would both time out.
func EnsureStream(ctx context.Context, js jetstream.JetStream, replicas int, limits StreamLimits) (jetstream.Stream, error) {
	cfg := StreamConfig(replicas, limits)
	s, err := js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("events: ensure stream %s: %w", StreamName, err)
	}
	return s, nil
}

// Durable consumer names, one per service that consumes. All processes of
// a service share its consumer, so each event is worked on by one of them.
const (
	ConsumerResolver = "resolver"
	ConsumerFetcher  = "fetcher"
	ConsumerEncoder  = "encoder"
	ConsumerRecorder = "recorder"
	// ConsumerPlaylists ends parent operations: it takes every
	// operation's end and, for a playlist's last child, publishes the
	// parent's playlist.ended (services/resolver).
	ConsumerPlaylists = "playlists"
	// ConsumerEncoderEarly takes audio.arriving: the encoder's early
	// encodes, begun on the source as it arrives (services/encoder).
	ConsumerEncoderEarly = "encoder_early"
	// ConsumerEncoderLoudness takes dca.encoded: the encoder measures a
	// stored DCA whose dca.encoded has no loudness and publishes
	// loudness.measured (services/encoder).
	ConsumerEncoderLoudness = "encoder_loudness"
)

// AckWait is how long a delivered message may go without an ack or an
// InProgress heartbeat before the server delivers it again.
const AckWait = 30 * time.Second

// ConsumerConfig is the definition of a service's durable consumer.
// maxAttempts is MAX_ATTEMPTS; 0 or less means no bound, which the recorder
// uses because a projection must never skip an event.
//
// The server may deliver a message once more than maxAttempts: an attempt
// cut short by a shutdown or a crash ends in no error, and the spare
// delivery lets the next one end the operation (the stage worker fails it
// once the count reaches maxAttempts) instead of leaving it in progress.
// So at most maxAttempts attempts end in an error; a message whose every
// delivery, the spare included, dies without an answer is announced on
// MaxDeliveriesAdvisorySubject, and the stage worker turns that into
// operation.failed with maxAttempts+1 attempts.
func ConsumerConfig(name string, maxAttempts int) (jetstream.ConsumerConfig, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    maxAttempts + 1,
		MaxAckPending: 256,
	}
	if maxAttempts <= 0 {
		cfg.MaxDeliver = -1
	}
	switch name {
	case ConsumerResolver:
		cfg.FilterSubject = Subject(KindSongRequested, "*")
	case ConsumerFetcher:
		cfg.FilterSubject = Subject(KindVideoResolved, "*")
	case ConsumerEncoder:
		cfg.FilterSubject = Subject(KindAudioDownloaded, "*")
	case ConsumerEncoderEarly:
		// An early encode is an attempt to save time, never the only
		// one: audio.downloaded encodes the staged source when it did
		// not happen. So one delivery, acked when taken.
		cfg.FilterSubject = Subject(KindAudioArriving, "*")
		cfg.MaxDeliver = 1
	case ConsumerEncoderLoudness:
		// The operation has usually ended by then: a measure that fails
		// fails nothing, and one the store keeps from is tried again.
		cfg.FilterSubject = Subject(KindDCAEncoded, "*")
	case ConsumerRecorder:
		// Every event, one at a time, in stream order.
		cfg.MaxAckPending = 1
	case ConsumerPlaylists:
		cfg.FilterSubjects = []string{Subject(KindUploadDone, "*"), Subject(KindOperationFailed, "*"), Subject(KindOperationCancelled, "*")}
	default:
		return jetstream.ConsumerConfig{}, fmt.Errorf("events: unknown consumer %q", name)
	}
	return cfg, nil
}

// MaxDeliveriesAdvisorySubject is the core NATS subject on which the server
// announces that a message of the durable consumer called name has had all
// its deliveries (MaxDeliver) without an ack or a term. The server sends it
// once, to the subscribers present at that moment, as the JSON of
// MaxDeliveriesAdvisory.
func MaxDeliveriesAdvisorySubject(name string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + StreamName + "." + name
}

// MaxDeliveriesAdvisory is the part of the server's max-deliveries advisory
// (type io.nats.jetstream.advisory.v1.max_deliver) Butakero reads.
type MaxDeliveriesAdvisory struct {
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	// StreamSeq is the stream sequence of the message that ran out.
	StreamSeq uint64 `json:"stream_seq"`
	// Deliveries is the server's count; it may say one more than MaxDeliver.
	Deliveries uint64 `json:"deliveries"`
}

// EnsureConsumer creates or updates the durable consumer called name.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, name string, maxAttempts int) (jetstream.Consumer, error) {
	cfg, err := ConsumerConfig(name, maxAttempts)
	if err != nil {
		return nil, err
	}
	c, err := js.CreateOrUpdateConsumer(ctx, StreamName, cfg)
	if err != nil {
		return nil, fmt.Errorf("events: ensure consumer %s: %w", name, err)
	}
	return c, nil
}
