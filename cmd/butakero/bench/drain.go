package main

import (
	"context"
	"errors"
	"fmt"
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
func recorderDrain(ctx context.Context, work, endpoint string, ops, lanes int, profile string) (drainResult, error) {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(work, "tp-drain")})
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
	song := events.Song{ID: "drain-song", Title: "Drain", URL: "http://127.0.0.1/drain.m4a", Source: "direct"}
	history := []events.Event{events.SongRequested{Query: song.URL}, events.VideoResolved{Song: song},
		events.UploadDone{Song: song, Key: "audio/drain-song.dca", Location: "s3://bench/audio/drain-song.dca", Size: 1234, Cached: true}}
	pub := events.NewPublisher(js)
	var last uint64
	for range ops {
		id := events.NewID()
		for _, ev := range history {
			env, err := events.New(id, song.ID, ev)
			if err != nil {
				return drainResult{}, err
			}
			ack, err := pub.Publish(ctx, env)
			if err != nil {
				return drainResult{}, err
			}
			last = ack.Sequence
		}
	}
	store, err := dynamostore.New(ctx, awsconfig.Static(benchRegion, benchAccess, benchSecret), dynamostore.Options{
		OperationsTable: "drain-ops", SongsTable: "drain-songs", Endpoint: endpoint, AutoCreate: true})
	if err != nil {
		return drainResult{}, err
	}
	counted := &countingStore{Store: store}
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
