// Package jsbucket creates JetStream streams, key-value buckets and object stores so
// that several processes may start at once against a fresh cluster, and
// reads keys through the moment a cluster's bucket has no responder.
//
// nats.go's CreateOrUpdateKeyValue and CreateOrUpdateObjectStore send an
// update first. Against a nats-server 2.15 cluster, an update that arrives
// while another client's create of the same stream is in progress is never
// answered, and neither is that create: processes starting together hang.
// Here the create goes first (a create of an identical definition succeeds),
// and an update is sent only for an existing bucket whose definition
// differs; each request has a bound of its own and one never answered is
// made again (AttemptTimeout).
package jsbucket

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AttemptTimeout bounds each attempt (a create, and the update it may lead
// to). The cluster's meta leader sometimes loses a request (a leader
// change on a busy machine), and a lost request is never answered: each
// attempt gets a bound of its own within the caller's ctx, and one that is
// not answered is made again. A create that was applied though its answer
// was lost succeeds the second time: a create of an identical definition
// succeeds. An attempt that finds no JetStream responder (a cluster still
// starting) is made again for up to NoResponderSetupWait; after that its
// error is returned (no server of the account runs JetStream).
const AttemptTimeout = 10 * time.Second

// NoResponderSetupWait bounds how long a create or update is tried again
// while it finds no responder.
const NoResponderSetupWait = 30 * time.Second

// retryPause is how long a request that found no responder waits before
// it is made again.
const retryPause = 250 * time.Millisecond

// ensure runs createOrUpdate, each attempt bounded by AttemptTimeout, until
// it is answered or ctx ends (see AttemptTimeout).
func ensure[T any](ctx context.Context, createOrUpdate func(context.Context) (T, error)) (T, error) {
	noResponders := time.Now().Add(NoResponderSetupWait)
	for {
		attempt, cancel := context.WithTimeout(ctx, AttemptTimeout)
		v, err := createOrUpdate(attempt)
		cancel()
		switch {
		case err == nil || ctx.Err() != nil:
			return v, err
		case errors.Is(err, context.DeadlineExceeded):
			continue // not answered: made again at once
		case !errors.Is(err, nats.ErrNoResponders) || time.Now().After(noResponders):
			return v, err
		}
		t := time.NewTimer(retryPause)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, fmt.Errorf("%w (%w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// KeyValue creates the bucket cfg defines, or updates an existing one to it.
func KeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return ensure(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		kv, err := js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.UpdateKeyValue(ctx, cfg)
		}
		return kv, err
	})
}

// ObjectStore creates the object store cfg defines, or updates an existing
// one to it.
func ObjectStore(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	return ensure(ctx, func(ctx context.Context) (jetstream.ObjectStore, error) {
		obs, err := js.CreateObjectStore(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			obs, err = js.UpdateObjectStore(ctx, cfg)
		}
		return obs, err
	})
}

// Stream creates the stream cfg defines, or updates an existing one to it,
// create first for the same reason as the buckets.
func Stream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		s, err := js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.UpdateStream(ctx, cfg)
		}
		return s, err
	})
}

// NoResponderWait bounds how long Get tries a key again while its bucket
// has no responder.
const NoResponderWait = 2 * time.Second

// Get reads key from kv. Key-value reads are direct gets, answered by
// whichever replica holds the bucket; in a cluster, for a moment after the
// bucket is created (its replicas have not subscribed yet) or while they
// elect a leader, the read finds no responder at all. Get tries again then,
// at growing intervals, for up to NoResponderWait, and returns
// nats.ErrNoResponders after that; when ctx ends first, ctx's error
// wrapped with it. Any other error is returned at once. A bucket that does
// not exist has no responder either: its reads fail after NoResponderWait
// (every bucket is created at start, so that is an operator's mistake).
func Get(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	deadline := time.Now().Add(NoResponderWait)
	wait := 10 * time.Millisecond
	for {
		e, err := kv.Get(ctx, key)
		if !errors.Is(err, nats.ErrNoResponders) || time.Now().Add(wait).After(deadline) {
			return e, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}
