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
	return drainResult{events: 3 * ops, writes: counted.writes.Load(), took: end.Sub(*first)}, nil
}

// countingStore counts the recorder's writes that stored something and
// notes when the first began.
type countingStore struct {
	*dynamostore.Store
	writes atomic.Int64
	first  atomic.Pointer[time.Time]
}

func (c *countingStore) began() {
	if c.first.Load() == nil {
		now := time.Now()
		c.first.CompareAndSwap(nil, &now)
	}
}

func (c *countingStore) PutOperationIf(ctx context.Context, op, prev projection.Operation) (bool, error) {
	c.began()
	ok, err := c.Store.PutOperationIf(ctx, op, prev)
	if ok {
		c.writes.Add(1)
	}
	return ok, err
}

func (c *countingStore) PutSongIf(ctx context.Context, song, prev projection.Song) (bool, error) {
	c.began()
	ok, err := c.Store.PutSongIf(ctx, song, prev)
	if ok {
		c.writes.Add(1)
	}
	return ok, err
}

var _ recorder.Store = (*countingStore)(nil)
