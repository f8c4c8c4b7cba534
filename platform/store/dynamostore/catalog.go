package dynamostore

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/store/awsconfig"
)

// MaxSearchLimit caps the page size of SearchSongs.
const MaxSearchLimit = 100

// searchScan is how many index entries one Query of SearchSongs reads
// before its filter: the catalog is read in pages of this many until a page
// of matches is full.
const searchScan = 200

// maxTitleKey bounds the title part of title_key, below DynamoDB's 1024
// bytes for a sort key.
const maxTitleKey = 768

// SearchSongs returns one page of the catalog with kvstore.SearchSongs'
// semantics: the stored songs (projection.Song.Stored) whose normalized
// title (or channel) contains the
// normalized q (projection.NormalizeTitle), or whose id is q, ordered by normalized
// title then id, songs without a title last; an empty q matches every
// song. limit is clamped to 1..MaxSearchLimit (0 means 20); cursor is "" or
// the next cursor of a previous call (the two stores' cursors are alike);
// next is "" after the last page.
//
// It queries the songs table's by-title index from the cursor on, in
// order, filtering server-side, until it has a page: a common word costs
// little, a rare one a pass over the index. The index is eventually
// consistent, so a song written a moment ago may be missing.
func (s *Store) SearchSongs(ctx context.Context, q string, limit int, cursor string) ([]projection.Song, string, error) {
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, MaxSearchLimit)
	names := map[string]string{"#c": catalogAttr}
	values := map[string]types.AttributeValue{":c": str(catalogValue)}
	cond := "#c = :c"
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !strings.Contains(string(raw), "\x00") || !utf8.Valid(raw) {
			return nil, "", &projection.BadCursorError{Cursor: cursor}
		}
		cond += " AND #tk > :after"
		names["#tk"] = titleKeyAttr
		values[":after"] = str(string(raw))
	}
	in := &dynamodb.QueryInput{
		TableName:                 &s.songs,
		IndexName:                 aws.String(ByTitleIndex),
		KeyConditionExpression:    &cond,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		Limit:                     aws.Int32(searchScan),
	}
	// Only songs with a stored DCA are written into the index, but items
	// written before that rule may be in it without one: the filter hides
	// them.
	filter := "attribute_exists(#dk)"
	names["#dk"] = "dca_key"
	if needle := projection.NormalizeTitle(q); needle != "" {
		filter += " AND (contains(#tn, :q) OR contains(#cn, :q) OR #id = :raw)"
		names["#tn"], names["#cn"], names["#id"] = "title_norm", "channel_norm", KeyAttr
		values[":q"], values[":raw"] = str(needle), str(q)
	}
	in.FilterExpression = &filter

	var songs []projection.Song
	var keys []string
	for len(songs) <= limit {
		out, err := s.client.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("dynamostore: search %s: %s: %w", s.songs, awsconfig.Reason(err), err)
		}
		for _, item := range out.Items {
			song, err := decodeSong(item)
			if err != nil {
				return nil, "", err
			}
			songs = append(songs, song)
			keys = append(keys, (&decoder{m: item}).str(titleKeyAttr))
		}
		if out.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	next := ""
	if len(songs) > limit {
		songs = songs[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(keys[limit-1]))
	}
	return songs, next, nil
}

// titleKey is a song's sort key in the catalog: its normalized title
// (U+10FFFF when it has none, so untitled songs sort last), NUL, its id.
// It is the order and the cursor of kvstore.SearchSongs.
func titleKey(title, id string) string {
	t := projection.NormalizeTitle(title)
	if t == "" {
		t = "\U0010FFFF"
	}
	for len(t) > maxTitleKey {
		_, size := utf8.DecodeLastRuneInString(t)
		t = t[:len(t)-size]
	}
	return t + "\x00" + id
}

// SongOperations returns up to limit (1 to 100; 0 means 20) operations of
// song songID, newest first, from the operations table's by-song index
// (eventually consistent). Expired operations are left out.
func (s *Store) SongOperations(ctx context.Context, songID string, limit int) ([]projection.Operation, error) {
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, 100)
	if events.ValidSongID(songID) != nil {
		return nil, nil
	}
	in := &dynamodb.QueryInput{
		TableName:                 &s.ops,
		IndexName:                 aws.String(BySongIndex),
		KeyConditionExpression:    aws.String("#s = :s"),
		ExpressionAttributeNames:  map[string]string{"#s": songIDAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":s": str(songID)},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(limit)),
	}
	var ops []projection.Operation
	for len(ops) < limit {
		out, err := s.client.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("dynamostore: operations of song %s: %s: %w", songID, awsconfig.Reason(err), err)
		}
		for _, item := range out.Items {
			if s.expired(item) || len(ops) == limit {
				continue
			}
			op, err := decodeOperation(item)
			if err != nil {
				return nil, err
			}
			ops = append(ops, op)
		}
		if out.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return ops, nil
}
