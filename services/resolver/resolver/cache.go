package resolver

import (
	"context"
	"strings"

	"github.com/butakero/butakero/platform/kvstore"
	"github.com/butakero/butakero/platform/projection"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Cache keeps what searches and the Data API answered, so that a repeated
// query costs no quota: a normalized query's video id, and each video's
// metadata. Entries expire after SEARCH_CACHE_TTL. Implementations must be
// safe for concurrent use; kvstore.Cache is the JetStream KV one.
//
// A lookup of what the cache does not hold returns projection.ErrNotFound.
// Any other error is the store's failure: the resolver logs it and goes on
// without the cache.
type Cache interface {
	// QueryVideo returns the video id cached for q, a query as
	// NormalizeQuery returns it.
	QueryVideo(ctx context.Context, q string) (string, error)
	// PutQueryVideo caches id as the answer to q.
	PutQueryVideo(ctx context.Context, q, id string) error
	// Video returns the cached metadata of video id.
	Video(ctx context.Context, id string) (projection.Video, error)
	// PutVideo caches v under v.ID.
	PutVideo(ctx context.Context, v projection.Video) error
}

var _ Cache = (*kvstore.Cache)(nil)

// fold is Unicode case folding; a cases.Caser is not safe for concurrent
// use, so each call makes its own (they are cheap).
func fold() cases.Caser { return cases.Fold() }

// NormalizeQuery is the form of free text under which its answer is
// cached: Unicode NFKC (so full-width and compatibility characters match
// their plain forms), case folded, with runs of white space collapsed to
// one space and none at either end. "  Never Gonna  GIVE you up " and
// "never gonna give you up" are one query.
func NormalizeQuery(text string) string {
	s := norm.NFKC.String(text)
	s = fold().String(s)
	// Folding may produce characters NFKC would change again.
	s = norm.NFKC.String(s)
	return strings.Join(strings.Fields(s), " ")
}
