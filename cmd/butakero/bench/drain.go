package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/natsembed"
	"github.com/butakero/butakero/platform/store/awsconfig"
	"github.com/butakero/butakero/platform/store/dynamostore"
	"github.com/butakero/butakero/services/recorder/recorder"
	"github.com/nats-io/nats.go/jetstream"
)

// drainResult is the recorder draining a backlog into DynamoDB Local.
type drainResult struct {
	events int
	writes int64
	took   time.Duration
	// inStore is the time the lanes spent in the store's calls, summed;
	// over lanes×took it is the share of the lanes' time that waited on
	// DynamoDB Local, the rest being the recorder's own (the delivery,
	// the ack, applying the event).
	inStore time.Duration
	lanes   int
}

// storeShare is the share of the lanes' time spent in store calls.
func (d drainResult) storeShare() float64 {
	return d.inStore.Seconds() / (float64(d.lanes) * d.took.Seconds())
}

func (d drainResult) writesPerSec() float64 { return float64(d.writes) / d.took.Seconds() }

// recorderDrain measures the recorder alone against DynamoDB Local: ops
// operations of a stored song (song.requested, video.resolved, upload.done
// cached: what the load's requests make) are in the stream before the
// recorder starts, on an embedded JetStream server in this process, and
// it applies them in lanes lanes; the rate is its conditional
// writes a second from its first write until the lanes are drained. No
// client polls meanwhile, so this is the recorder's own ceiling against
// the store, to set beside the store's rate alone (dynamoRate).
func recorderDrain(ctx context.Context, work, endpoint, tables string, ops, lanes int, profile string) (drainResult, error) {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(work, "tp-drain-"+tables)})
	if err != nil {
		return drainResult{}, err
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("bench-drain")
	if err != nil {
		return drainResult{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return drainResult{}, err
	}
	if _, err := events.EnsureStream(ctx, js, 1, events.StreamLimits{}); err != nil {
		return drainResult{}, err
	}
	pub := events.NewPublisher(js)
	var last uint64
	for range ops {
		for _, env := range drainOperation() {
			ack, err := pub.Publish(ctx, env)
			if err != nil {
				return drainResult{}, err
			}
			last = ack.Sequence
		}
	}
	counted, err := drainStore(ctx, endpoint, "drain-"+tables)
	if err != nil {
		return drainResult{}, err
	}
	cfg, err := config.Load(config.FromMap(nil))
	if err != nil {
		return drainResult{}, err
	}
	cfg.RecorderPartitions = lanes
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return drainResult{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return drainResult{}, err
		}
		defer pprof.StopCPUProfile()
	}
	run, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- recorder.Run(run, recorder.Deps{JS: js, Store: counted, Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	defer func() { stop(); <-done }()
	for {
		if s, err := js.Stream(ctx, events.LanesStreamName); err == nil {
			if st := s.CachedInfo().State; st.LastSeq >= last && st.Msgs == 0 {
				break
			}
		}
		select {
		case err := <-done:
			return drainResult{}, fmt.Errorf("the recorder stopped: %v", err)
		case <-ctx.Done():
			return drainResult{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	end := time.Now()
	first := counted.first.Load()
	if first == nil {
		return drainResult{}, errors.New("the recorder wrote nothing")
	}
	return drainResult{events: 3 * ops, writes: counted.writes.Load(), took: end.Sub(*first),
		inStore: time.Duration(counted.busy.Load()), lanes: lanes}, nil
}

// drainSong is the stored song every operation of a drain asks for.
var drainSong = events.Song{ID: "drain-song", Title: "Drain", URL: "http://127.0.0.1/drain.m4a", Source: "direct"}

// drainOperation is the events of one operation of a drain, in order:
// what a request for a stored song makes (song.requested, video.resolved,
// upload.done cached).
func drainOperation() []events.Envelope {
	id := events.NewID()
	var envs []events.Envelope
	for _, ev := range []events.Event{events.SongRequested{Query: drainSong.URL}, events.VideoResolved{Song: drainSong},
		events.UploadDone{Song: drainSong, Key: "audio/drain-song.dca", Location: "s3://bench/audio/drain-song.dca", Size: 1234, Cached: true}} {
		env, err := events.New(id, drainSong.ID, ev)
		must(err)
		envs = append(envs, env)
	}
	return envs
}

// drainStore is a DynamoDB store in DynamoDB Local on new tables named
// after prefix, counting its writes.
func drainStore(ctx context.Context, endpoint, prefix string) (*countingStore, error) {
	store, err := dynamostore.New(ctx, awsconfig.Static(benchRegion, benchAccess, benchSecret), dynamostore.Options{
		OperationsTable: prefix + "-ops", SongsTable: prefix + "-songs", Endpoint: endpoint, AutoCreate: true})
	if err != nil {
		return nil, err
	}
	return &countingStore{Store: store}, nil
}

// storeAlone is the recorder's writes without the recorder: writers
// goroutines apply the events of ops operations of a drain
// (drainOperation) to DynamoDB Local on new tables, each the operations
// of one lane (laneOf) in order, through recorder.Applier, the code the
// lanes run, with no stream, delivery or acknowledgement. Its rate is what
// DynamoDB Local sustains of the recorder's own writes (an operation's
// item created, then updated twice, on the tables and indexes the
// recorder uses) from as many writers as the recorder has lanes.
func storeAlone(ctx context.Context, endpoint, tables string, ops, writers int) (drainResult, error) {
	counted, err := drainStore(ctx, endpoint, "alone-"+tables)
	if err != nil {
		return drainResult{}, err
	}
	// Each writer takes the operations of one lane, as the lanes split
	// them: the drain ends with its busiest lane, and so does this.
	backlog := make([][][]events.Envelope, writers)
	for range ops {
		op := drainOperation()
		w := laneOf(op[0].OperationID, writers)
		backlog[w] = append(backlog[w], op)
	}
	apply := recorder.NewApplier(counted, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var seq atomic.Uint64
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for _, op := range backlog[w] {
				for _, env := range op {
					ev, err := env.Event()
					if err == nil {
						_, err = apply.Apply(ctx, env, ev, seq.Add(1), time.Now())
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	var all []error
	for range writers {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	if err := errors.Join(all...); err != nil {
		return drainResult{}, err
	}
	first := counted.first.Load()
	if first == nil {
		return drainResult{}, errors.New("nothing was written")
	}
	return drainResult{events: 3 * ops, writes: counted.writes.Load(), took: time.Since(*first),
		inStore: time.Duration(counted.busy.Load()), lanes: writers}, nil
}

// laneOf is the recorder's lane of operation opID among lanes, as
// nats-server's partition() subject transform computes it for the lanes
// stream (events.LanesStreamConfig): FNV-1a of the token, modulo lanes.
func laneOf(opID string, lanes int) int {
	h := fnv.New32a()
	h.Write([]byte(opID))
	return int(h.Sum32() % uint32(lanes))
}

// countingStore counts the recorder's writes that stored something,
// notes when the first began and sums the time spent in store calls.
type countingStore struct {
	*dynamostore.Store
	writes atomic.Int64
	first  atomic.Pointer[time.Time]
	busy   atomic.Int64 // nanoseconds in store calls
}

// began notes a call's start; the returned func notes its end.
func (c *countingStore) began() func() {
	now := time.Now()
	if c.first.Load() == nil {
		c.first.CompareAndSwap(nil, &now)
	}
	return func() { c.busy.Add(int64(time.Since(now))) }
}

func (c *countingStore) Operation(ctx context.Context, id string) (projection.Operation, error) {
	defer c.began()()
	return c.Store.Operation(ctx, id)
}

func (c *countingStore) Song(ctx context.Context, id string) (projection.Song, error) {
	defer c.began()()
	return c.Store.Song(ctx, id)
}

func (c *countingStore) PutOperationIf(ctx context.Context, op, prev projection.Operation) (bool, error) {
	defer c.began()()
	ok, err := c.Store.PutOperationIf(ctx, op, prev)
	if ok {
		c.writes.Add(1)
	}
	return ok, err
}

func (c *countingStore) PutSongIf(ctx context.Context, song, prev projection.Song) (bool, error) {
	defer c.began()()
	ok, err := c.Store.PutSongIf(ctx, song, prev)
	if ok {
		c.writes.Add(1)
	}
	return ok, err
}

var _ recorder.Store = (*countingStore)(nil)
