package dynamostore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/searchcache"
	"github.com/butakero/butakero/platform/store/awsconfig"
)

// Cache key prefixes in the songs table. '#' is in no id, so a cache
// entry can never be read as a song, and entries have no catalog
// attribute, so they are not in the by-title index.
const (
	queryPrefix    = "query#"
	videoPrefix    = "video#"
	playlistPrefix = "playlist#"
)

// Cache is the resolver's search cache (searchcache.Cache, as
// kvstore.Cache is) kept in the songs table, so the profile needs no third
// table: "query#<hex SHA-256 of the normalized query>" holds the query and
// its video_id, "video#<video id>" holds the searchcache.Video as JSON in
// doc, and "playlist#<list id>" the searchcache.Playlist as JSON in doc (200
// items are some 60 KB, well within an item's 400 KB). Every entry has expires_at = write time + the cache's TTL; reads
// hide expired entries until DynamoDB's TTL deletes them. It is safe for
// concurrent use.
type Cache struct {
	s   *Store
	ttl time.Duration
}

// Cache returns the store's cache with entries kept for ttl
// (SEARCH_CACHE_TTL), which must be positive.
func (s *Store) Cache(ttl time.Duration) (*Cache, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("dynamostore: cache TTL %s: want a positive duration", ttl)
	}
	return &Cache{s: s, ttl: ttl}, nil
}

// QueryVideo returns the video id cached for normalized query q, or
// searchcache.ErrNotFound.
func (c *Cache) QueryVideo(ctx context.Context, q string) (string, error) {
	item, err := c.get(ctx, queryPrefix+searchcache.QueryKey(q))
	if err != nil {
		return "", err
	}
	d := decoder{m: item}
	query, id := d.str("query"), d.str("video_id")
	if d.err != nil || query != q || id == "" {
		return "", searchcache.ErrNotFound
	}
	return id, nil
}

// PutQueryVideo caches id as the answer to normalized query q.
func (c *Cache) PutQueryVideo(ctx context.Context, q, id string) error {
	if q == "" || events.ValidSongID(id) != nil {
		return errors.New("dynamostore: a cached search needs a query and a valid video id")
	}
	return c.put(ctx, queryPrefix+searchcache.QueryKey(q), map[string]types.AttributeValue{
		"query": str(q), "video_id": str(id),
	})
}

// Video returns the cached metadata of video id, or searchcache.ErrNotFound.
func (c *Cache) Video(ctx context.Context, id string) (searchcache.Video, error) {
	if events.ValidSongID(id) != nil {
		return searchcache.Video{}, searchcache.ErrNotFound
	}
	var v searchcache.Video
	if err := c.getDoc(ctx, videoPrefix, "video", id, &v); err != nil {
		return searchcache.Video{}, err
	}
	return v, nil
}

// PutVideo caches v under v.ID, stamping CachedAt when it is empty.
func (c *Cache) PutVideo(ctx context.Context, v searchcache.Video) error {
	if events.ValidSongID(v.ID) != nil {
		return fmt.Errorf("dynamostore: invalid video id %q", v.ID)
	}
	if v.CachedAt == "" {
		v.CachedAt = c.s.now().UTC().Format(time.RFC3339)
	}
	return c.putDoc(ctx, videoPrefix, "video", v.ID, v)
}

// Playlist returns the cached listing of playlist id, or
// searchcache.ErrNotFound.
func (c *Cache) Playlist(ctx context.Context, id string) (searchcache.Playlist, error) {
	if events.ValidSongID(id) != nil {
		return searchcache.Playlist{}, searchcache.ErrNotFound
	}
	var p searchcache.Playlist
	if err := c.getDoc(ctx, playlistPrefix, "playlist", id, &p); err != nil {
		return searchcache.Playlist{}, err
	}
	if p.ID != id {
		return searchcache.Playlist{}, searchcache.ErrNotFound
	}
	return p, nil
}

// PutPlaylist caches p under p.ID, stamping CachedAt when it is empty.
func (c *Cache) PutPlaylist(ctx context.Context, p searchcache.Playlist) error {
	if events.ValidSongID(p.ID) != nil {
		return fmt.Errorf("dynamostore: invalid playlist id %q", p.ID)
	}
	if p.CachedAt == "" {
		p.CachedAt = c.s.now().UTC().Format(time.RFC3339)
	}
	return c.putDoc(ctx, playlistPrefix, "playlist", p.ID, p)
}

// Ping checks the songs table, which holds the cache.
func (c *Cache) Ping(ctx context.Context) error {
	if err := awsconfig.CheckCredentials(ctx, c.s.aws); err != nil {
		return awsconfig.NotReady("dynamodb", err)
	}
	return c.s.check(ctx, c.s.tables()[1])
}

// getDoc decodes into v the JSON doc of the entry prefix+id, or returns
// searchcache.ErrNotFound; kind ("video", "playlist") names the entry in
// the error of a doc that does not decode.
func (c *Cache) getDoc(ctx context.Context, prefix, kind, id string, v any) error {
	item, err := c.get(ctx, prefix+id)
	if err != nil {
		return err
	}
	d := decoder{m: item}
	doc := d.str("doc")
	if d.err != nil || json.Unmarshal([]byte(doc), v) != nil {
		return fmt.Errorf("dynamostore: cached %s %s does not decode", kind, id)
	}
	return nil
}

// putDoc writes v as the JSON doc of the entry prefix+id; kind names the
// entry in the error of a v that does not encode.
func (c *Cache) putDoc(ctx context.Context, prefix, kind, id string, v any) error {
	doc, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("dynamostore: encode %s %s: %w", kind, id, err)
	}
	return c.put(ctx, prefix+id, map[string]types.AttributeValue{"doc": str(string(doc))})
}

func (c *Cache) get(ctx context.Context, key string) (map[string]types.AttributeValue, error) {
	out, err := c.s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &c.s.songs,
		Key:       map[string]types.AttributeValue{KeyAttr: str(key)},
	})
	if err != nil {
		return nil, fmt.Errorf("dynamostore: cache get %s: %s: %w", key, awsconfig.Reason(err), err)
	}
	if out.Item == nil || c.s.expired(out.Item) {
		return nil, searchcache.ErrNotFound
	}
	return out.Item, nil
}

func (c *Cache) put(ctx context.Context, key string, item map[string]types.AttributeValue) error {
	item[KeyAttr] = str(key)
	item[ExpiresAttr] = number(c.s.now().Add(c.ttl).Unix())
	if _, err := c.s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: &c.s.songs, Item: item}); err != nil {
		return fmt.Errorf("dynamostore: cache put %s: %s: %w", key, awsconfig.Reason(err), err)
	}
	return nil
}
