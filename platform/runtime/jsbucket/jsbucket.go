// Package jsbucket creates JetStream streams, key-value buckets and object stores so
// that several processes may start at once against a fresh cluster.
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
