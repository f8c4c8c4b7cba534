package framestream

import (
	"context"

	"github.com/butakero/butakero/platform/media/chunkstream"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrIdle is Follower.Next's answer when no message came in the time it
// was given.
var ErrIdle = chunkstream.ErrIdle

// Follower reads the messages of one song's subject, every run, from the
// oldest the stream holds, one message per request, so that it holds one
// chunk at most whatever the song's length and however many followers
// there are, and needs no consumer on the server (chunkstream.Follower).
// It is not safe for concurrent use.
type Follower = chunkstream.Follower

// Follow starts reading song songID's subject from its start.
func Follow(ctx context.Context, js jetstream.JetStream, songID string) (*Follower, error) {
	return chunkstream.Follow(ctx, js, StreamName, Subject(songID))
}
