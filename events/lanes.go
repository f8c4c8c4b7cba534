package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// The recorder's lanes. The recorder applies events of one operation in
// stream order and events of different operations at once, in Partitions
// lanes: every event of an operation falls in the lane its operation id
// hashes to, and each lane is one durable consumer that hands out one
// event at a time (MaxAckPending 1) to whichever recorder process pulls
// it, so no two processes ever apply one operation at once and several
// share the lanes.
//
// The partition is computed by JetStream itself, by a deterministic
// subject transform (partition()), in a second stream, LanesStreamName,
// that sources every event of StreamName: the event stream keeps its
// subjects (<kind>.<operation_id>, as every reader and the contract know
// them) and a lane's event is lanes.<lane>.<kind>.<operation_id>. The
// lanes stream is a work queue: an event is deleted from it once its lane
// has acked it, so it holds only the recorder's backlog. A lane message's
// Nats-Stream-Source header names the event's sequence in StreamName
// (SourceSeq), the sequence every projection records.

// LanesStreamName is the stream the recorder's lanes consume.
const LanesStreamName = "BUTAKERO_LANES"

// lanesPrefix starts every subject of the lanes stream.
const lanesPrefix = "lanes"

// MaxPartitions bounds RECORDER_PARTITIONS.
const MaxPartitions = 256

// LaneConsumer is the durable consumer of lane i on LanesStreamName.
func LaneConsumer(i int) string { return ConsumerRecorder + "-" + strconv.Itoa(i) }

// LaneConsumers names the consumers of n lanes, in lane order.
func LaneConsumers(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = LaneConsumer(i)
	}
	return names
}

// LanesStreamConfig is the definition of the lanes stream for n lanes,
// sourcing StreamName from sequence start (0 or 1: from the first event).
// A stream transform is fixed by n: every recorder process must use the
// same n, and n changes only with the lanes drained (every lane's pending
// count 0), since an operation's later events would otherwise go to
// another lane than its earlier ones while those wait.
func LanesStreamConfig(n, replicas int, start uint64) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	src := &jetstream.StreamSource{
		Name: StreamName,
		SubjectTransforms: []jetstream.SubjectTransformConfig{{
			Source:      "*.*.*",
			Destination: fmt.Sprintf("%s.{{partition(%d,3)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}", lanesPrefix, n),
		}},
	}
	if start > 1 {
		src.OptStartSeq = start
	}
	return jetstream.StreamConfig{
		Name:        LanesStreamName,
		Description: "Butakero recorder lanes: the events of " + StreamName + " partitioned by operation id, until projected",
		Sources:     []*jetstream.StreamSource{src},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Discard:     jetstream.DiscardOld,
	}
}

// LaneConsumerConfig is the definition of lane i's durable consumer: its
// lane's events only, one at a time, redelivered forever.
func LaneConsumerConfig(i int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       LaneConsumer(i),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
		MaxAckPending: 1,
		FilterSubject: fmt.Sprintf("%s.%d.>", lanesPrefix, i),
	}
}

// EnsureLanes creates the lanes stream for n lanes (or updates it to n) and
// their consumers, and returns the consumers in lane order. Several
// processes may call it at once; like EnsureStream it creates first.
//
// A stream that had a recorder before lanes (the durable consumer
// ConsumerRecorder on StreamName) is sourced from the first event that
// consumer has not acknowledged, and that consumer is deleted: the events
// before were projected already.
func EnsureLanes(ctx context.Context, js jetstream.JetStream, n, replicas int) ([]jetstream.Consumer, error) {
	if n < 1 || n > MaxPartitions {
		return nil, fmt.Errorf("events: %d recorder lanes: want 1 to %d", n, MaxPartitions)
	}
	var start uint64
	legacy, err := js.Consumer(ctx, StreamName, ConsumerRecorder)
	if err == nil {
		if info, ierr := legacy.Info(ctx); ierr == nil {
			start = info.AckFloor.Stream + 1
		}
	}
	cfg := LanesStreamConfig(n, replicas, start)
	s, err := js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = js.Stream(ctx, LanesStreamName)
		if err == nil && !sameLanes(s.CachedInfo().Config, cfg) {
			// Keep the sourcing position: an update names the same source.
			cur := s.CachedInfo().Config
			if len(cur.Sources) == 1 && cur.Sources[0].OptStartSeq > 0 {
				cfg.Sources[0].OptStartSeq = cur.Sources[0].OptStartSeq
			}
			s, err = js.UpdateStream(ctx, cfg)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("events: ensure stream %s: %w", LanesStreamName, err)
	}
	if legacy != nil {
		// Best effort: another process may have deleted it first.
		_ = js.DeleteConsumer(ctx, StreamName, ConsumerRecorder)
	}
	cons := make([]jetstream.Consumer, n)
	for i := range cons {
		c, err := s.CreateOrUpdateConsumer(ctx, LaneConsumerConfig(i))
		if err != nil {
			return nil, fmt.Errorf("events: ensure consumer %s: %w", LaneConsumer(i), err)
		}
		cons[i] = c
	}
	return cons, nil
}

// sameLanes reports whether the stream has want's transform and replicas.
func sameLanes(have, want jetstream.StreamConfig) bool {
	if have.Replicas != want.Replicas || len(have.Sources) != 1 || len(want.Sources) != 1 {
		return false
	}
	h, w := have.Sources[0], want.Sources[0]
	if h.Name != w.Name || len(h.SubjectTransforms) != 1 || len(w.SubjectTransforms) != 1 {
		return false
	}
	return h.SubjectTransforms[0] == w.SubjectTransforms[0]
}

// SourceHeader is the header JetStream sets on a sourced message: the
// origin stream's name and the message's sequence there, first.
const SourceHeader = "Nats-Stream-Source"

// SourceSeq returns the sequence in StreamName of a message that the lanes
// stream sourced from it, read from its SourceHeader value, and false for
// a value that names another stream or none.
func SourceSeq(header string) (uint64, bool) {
	fields := strings.Fields(header)
	if len(fields) < 2 || fields[0] != StreamName {
		return 0, false
	}
	seq, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil || seq == 0 {
		return 0, false
	}
	return seq, true
}
