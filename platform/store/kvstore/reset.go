package kvstore

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Reset empties both projection buckets, for `butakero replay`, which
// rebuilds them from the event stream. Readers see every operation and song
// as unknown until the replay has put them back.
func Reset(ctx context.Context, js jetstream.JetStream) error {
	for _, b := range []string{OperationsBucket, SongsBucket} {
		// A KV bucket is the stream KV_<bucket>; purging it drops every key.
		s, err := js.Stream(ctx, "KV_"+b)
		if err != nil {
			return fmt.Errorf("kvstore: reset %s: %w", b, err)
		}
		if err := s.Purge(ctx); err != nil {
			return fmt.Errorf("kvstore: reset %s: %w", b, err)
		}
	}
	return nil
}
