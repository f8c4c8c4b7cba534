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
// differs.
package jsbucket

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KeyValue creates the bucket cfg defines, or updates an existing one to it.
func KeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.UpdateKeyValue(ctx, cfg)
	}
	return kv, err
}

// ObjectStore creates the object store cfg defines, or updates an existing
// one to it.
func ObjectStore(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	obs, err := js.CreateObjectStore(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		obs, err = js.UpdateObjectStore(ctx, cfg)
	}
	return obs, err
}

// Stream creates the stream cfg defines, or updates an existing one to it,
// create first for the same reason as the buckets.
func Stream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = js.UpdateStream(ctx, cfg)
	}
	return s, err
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
