// Package dynamostore keeps the operation and song projections in two
// DynamoDB tables: the AWS profile's counterpart of kvstore, behind the same
// methods and projection.ErrNotFound.
//
// Every write is conditional on the record's last applied stream sequence
// (attribute_not_exists(id) OR last_seq < :seq): a record is only ever
// replaced by one built from a later event, so a redelivered event, a
// replay, or a slow writer that lost a race changes nothing, and the write
// that loses the condition returns nil (a no-op, as if it had been
// applied). The schema is in the README ("The AWS profile") and in the
// constants below.
package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/store/awsconfig"
)

// Schema names: the tables' key, the indexes and their keys, and the TTL
// attribute.
const (
	// KeyAttr is the partition key of both tables (a string).
	KeyAttr = "id"
	// SeqAttr is the stream sequence of the last event applied (a number).
	SeqAttr = "last_seq"
	// ExpiresAttr is the tables' TTL attribute (epoch seconds): set on
	// finished operations and on cache entries, never on songs.
	ExpiresAttr = "expires_at"

	// BySongIndex is the operations table's GSI of a song's operations:
	// partition key song_id, sort key created_at (RFC 3339), all
	// attributes. Operations without a song yet are not in it.
	BySongIndex = "by-song"
	// ByTitleIndex is the songs table's GSI of the catalog in title order:
	// partition key catalog (always "song"), sort key title_key (the
	// normalized title, NUL, the id), all attributes. Only stored songs
	// have those attributes: songs without a DCA and cache entries are not
	// in it.
	ByTitleIndex = "by-title"

	songIDAttr    = "song_id"
	createdAttr   = "created_at"
	catalogAttr   = "catalog"
	titleKeyAttr  = "title_key"
	catalogValue  = "song"
	defaultOpsTTL = 30 * 24 * time.Hour
)

// createWait bounds the wait for a created table to become active.
const createWait = 2 * time.Minute

// Options configure a Store.
type Options struct {
	// OperationsTable and SongsTable are the tables' names
	// (DYNAMODB_TABLE_NAME_OPERATION, DYNAMODB_TABLE_NAME_SONGS). Required.
	OperationsTable string
	SongsTable      string
	// Endpoint, when set, replaces the SDK's endpoint resolution (tests and
	// tools that name the server themselves).
	Endpoint string
	// OperationTTL is how long a finished operation is kept after its last
	// event (OPERATION_TTL); zero means 30 days.
	OperationTTL time.Duration
	// AutoCreate creates missing tables, with their indexes and TTL, at New
	// and waits until they are active (AWS_AUTO_CREATE).
	AutoCreate bool
	// Now is the clock for TTLs; nil means time.Now.
	Now func() time.Time
}

// Store reads and writes the projections. It is safe for concurrent use.
type Store struct {
	aws    aws.Config
	client *dynamodb.Client
	ops    string
	songs  string
	opsTTL time.Duration
	now    func() time.Time
}

// Open returns the Store that cfg names: the tables
// DYNAMODB_TABLE_NAME_OPERATION and DYNAMODB_TABLE_NAME_SONGS with the
// credentials, region and endpoint of awsconfig.Load (the endpoint from
// AWS_ENDPOINT_URL_DYNAMODB), created when missing if AWS_AUTO_CREATE is set.
func Open(ctx context.Context, cfg config.Config) (*Store, error) {
	ac, err := awsconfig.Load(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamostore: %w", err)
	}
	return New(ctx, ac, Options{
		OperationsTable: cfg.OperationsTable,
		SongsTable:      cfg.SongsTable,
		OperationTTL:    cfg.OperationTTL,
		AutoCreate:      cfg.AWSAutoCreate,
	})
}

// New returns a Store on o's tables through ac. Without AutoCreate it sends
// no request: missing tables or wrong credentials show in Ping, so a
// process starts and reports them on /readyz. With AutoCreate it creates
// what is missing and fails when it cannot.
func New(ctx context.Context, ac aws.Config, o Options) (*Store, error) {
	if o.OperationsTable == "" || o.SongsTable == "" {
		return nil, errors.New("dynamostore: both table names are required (DYNAMODB_TABLE_NAME_OPERATION, DYNAMODB_TABLE_NAME_SONGS)")
	}
	if o.OperationsTable == o.SongsTable {
		return nil, fmt.Errorf("dynamostore: the operations and songs tables must differ (both %q)", o.SongsTable)
	}
	if o.OperationTTL <= 0 {
		o.OperationTTL = defaultOpsTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{
		aws: ac,
		client: dynamodb.NewFromConfig(ac, func(do *dynamodb.Options) {
			if o.Endpoint != "" {
				do.BaseEndpoint = aws.String(o.Endpoint)
			}
		}),
		ops:    o.OperationsTable,
		songs:  o.SongsTable,
		opsTTL: o.OperationTTL,
		now:    o.Now,
	}
	if o.AutoCreate {
		for _, t := range s.tables() {
			if err := s.create(ctx, t); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Client is the underlying DynamoDB client, for tools and tests that check
// what the store wrote through the plain DynamoDB API.
func (s *Store) Client() *dynamodb.Client { return s.client }

// Tables returns the operations and songs tables' names.
func (s *Store) Tables() (operations, songs string) { return s.ops, s.songs }

// Operation returns the operation with id, or projection.ErrNotFound (also
// for a finished operation past its TTL that DynamoDB has not deleted yet).
// The read is strongly consistent.
func (s *Store) Operation(ctx context.Context, id string) (projection.Operation, error) {
	item, err := s.get(ctx, s.ops, id, events.ValidOperationID)
	if err != nil {
		return projection.Operation{}, err
	}
	return decodeOperation(item)
}

// PutOperation stores op under op.ID unless the stored operation's LastSeq
// is op.LastSeq or later, in which case it changes nothing and returns nil.
// A finished operation gets expires_at = its last event's time (UpdatedAt)
// plus the operation TTL.
func (s *Store) PutOperation(ctx context.Context, op projection.Operation) error {
	if events.ValidOperationID(op.ID) != nil {
		return fmt.Errorf("dynamostore: invalid operation id %q", op.ID)
	}
	return s.putIfNewer(ctx, s.ops, op.ID, op.LastSeq, s.operationItem(op))
}

// Song returns the song with id, or projection.ErrNotFound. The read is
// strongly consistent.
func (s *Store) Song(ctx context.Context, id string) (projection.Song, error) {
	item, err := s.get(ctx, s.songs, id, events.ValidSongID)
	if err != nil {
		return projection.Song{}, err
	}
	return decodeSong(item)
}

// PutSong stores song under song.ID unless the stored song's LastSeq is
// song.LastSeq or later, in which case it changes nothing and returns nil.
func (s *Store) PutSong(ctx context.Context, song projection.Song) error {
	if events.ValidSongID(song.ID) != nil {
		return fmt.Errorf("dynamostore: invalid song id %q", song.ID)
	}
	return s.putIfNewer(ctx, s.songs, song.ID, song.LastSeq, encodeSong(song))
}

// PutOperationIf stores op as PutOperation does, but only if the stored
// operation is still prev (by last_seq; a zero prev: none is stored, or
// only one past its TTL), in one conditional write: over a stored
// operation an UpdateItem that sets the attributes that changed from prev
// and removes those op no longer has, on the condition last_seq = prev's;
// over none a PutItem. It reports whether it stored op; false means
// another writer got there first, and the caller reads again.
func (s *Store) PutOperationIf(ctx context.Context, op, prev projection.Operation) (bool, error) {
	if events.ValidOperationID(op.ID) != nil {
		return false, fmt.Errorf("dynamostore: invalid operation id %q", op.ID)
	}
	item := s.operationItem(op)
	if prev.LastSeq == 0 {
		return s.putNew(ctx, s.ops, op.ID, op.LastSeq, item, "attribute_not_exists(#id) OR #exp <= :now",
			map[string]string{"#id": KeyAttr, "#exp": ExpiresAttr},
			map[string]types.AttributeValue{":now": number(s.now().Unix())})
	}
	was := s.operationItem(prev)
	return s.updateIf(ctx, s.ops, op.ID, op.LastSeq, item, was, "#seq = :prev",
		map[string]string{"#seq": SeqAttr},
		map[string]types.AttributeValue{":prev": number(int64(prev.LastSeq))})
}

// operationItem is op's item as PutOperation writes it (without its key
// and last_seq): a finished operation expires its TTL after its last
// event.
func (s *Store) operationItem(op projection.Operation) map[string]types.AttributeValue {
	item := encodeOperation(op)
	if op.Final() {
		end := s.now()
		if t, err := time.Parse(time.RFC3339Nano, op.UpdatedAt); err == nil {
			end = t
		}
		item[ExpiresAttr] = number(end.Add(s.opsTTL).Unix())
	}
	return item
}

// PutSongIf stores song only if the stored song is still prev, attribute
// for attribute (a zero prev: none is stored), in one conditional write:
// over a stored song an UpdateItem of the attributes that changed, over
// none a PutItem. It reports whether it stored song; false means another
// writer got there first. Songs are written by the recorder's lanes of
// all their operations, so two may race on one song; the check keeps
// either from losing the other's fields.
func (s *Store) PutSongIf(ctx context.Context, song, prev projection.Song) (bool, error) {
	if events.ValidSongID(song.ID) != nil {
		return false, fmt.Errorf("dynamostore: invalid song id %q", song.ID)
	}
	item := encodeSong(song)
	if prev.Equal(projection.Song{}) {
		return s.putNew(ctx, s.songs, song.ID, song.LastSeq, item, "attribute_not_exists(#id)",
			map[string]string{"#id": KeyAttr}, nil)
	}
	// The condition names every attribute prev has, and the absence of
	// every other one a song may have: the stored song is prev exactly.
	was := encodeSong(prev)
	was[SeqAttr] = number(int64(prev.LastSeq))
	names := map[string]string{"#id": KeyAttr}
	values := map[string]types.AttributeValue{}
	parts := []string{"attribute_exists(#id)"}
	seen := map[string]bool{}
	for i, a := range slices.Sorted(maps.Keys(was)) {
		seen[a] = true
		n, v := fmt.Sprintf("#w%d", i), fmt.Sprintf(":w%d", i)
		names[n], values[v] = a, was[a]
		parts = append(parts, n+" = "+v)
	}
	for i, a := range songAttrs {
		if !seen[a] {
			n := fmt.Sprintf("#n%d", i)
			names[n] = a
			parts = append(parts, "attribute_not_exists("+n+")")
		}
	}
	delete(was, SeqAttr)
	return s.updateIf(ctx, s.songs, song.ID, song.LastSeq, item, was, strings.Join(parts, " AND "), names, values)
}

// songAttrs are the attributes a song item may have besides its key and
// last_seq (encodeSong).
var songAttrs = []string{"title", "duration_ms", "url", "thumbnail_url", "channel", "source",
	"dca_key", "dca_location", "dca_size", "dca_frames", "mode", "mode_reason", "loudness_lufs",
	"true_peak_db", "updated_at", catalogAttr, titleKeyAttr, "title_norm", "channel_norm"}

// putNew writes item under id with last_seq seq if cond holds (a record
// new or gone), replacing any item there whole, and reports whether it
// did.
func (s *Store) putNew(ctx context.Context, table, id string, seq uint64, item map[string]types.AttributeValue,
	cond string, names map[string]string, values map[string]types.AttributeValue) (bool, error) {
	item[KeyAttr] = str(id)
	item[SeqAttr] = number(int64(seq))
	in := &dynamodb.PutItemInput{
		TableName:                &table,
		Item:                     item,
		ConditionExpression:      aws.String(cond),
		ExpressionAttributeNames: names,
	}
	if len(values) > 0 {
		in.ExpressionAttributeValues = values
	}
	_, err := s.client.PutItem(ctx, in)
	return written(table, id, err)
}

// updateIf turns the item was into item (neither with key nor last_seq)
// under id, setting last_seq to seq, in one UpdateItem on condition cond:
// it sets the attributes item has that differ from was's and removes
// those only was has. It reports whether cond held.
func (s *Store) updateIf(ctx context.Context, table, id string, seq uint64, item, was map[string]types.AttributeValue,
	cond string, names map[string]string, values map[string]types.AttributeValue) (bool, error) {
	names["#u_seq"] = SeqAttr
	values[":u_seq"] = number(int64(seq))
	set := []string{"#u_seq = :u_seq"}
	var remove []string
	for i, a := range slices.Sorted(maps.Keys(item)) {
		if sameAttr(item[a], was[a]) {
			continue
		}
		n, v := fmt.Sprintf("#u%d", i), fmt.Sprintf(":u%d", i)
		names[n], values[v] = a, item[a]
		set = append(set, n+" = "+v)
	}
	for i, a := range slices.Sorted(maps.Keys(was)) {
		if _, ok := item[a]; !ok {
			n := fmt.Sprintf("#r%d", i)
			names[n] = a
			remove = append(remove, n)
		}
	}
	update := "SET " + strings.Join(set, ", ")
	if len(remove) > 0 {
		update += " REMOVE " + strings.Join(remove, ", ")
	}
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &table,
		Key:                       map[string]types.AttributeValue{KeyAttr: str(id)},
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	return written(table, id, err)
}

// written is a conditional write's outcome: true when it was written,
// false when its condition failed.
func written(table, id string, err error) (bool, error) {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dynamostore: write %s/%s: %s: %w", table, id, awsconfig.Reason(err), err)
	}
	return true, nil
}

// sameAttr reports whether a and b are the same value of the kinds the
// items hold (strings, numbers, booleans); any other kind counts as
// changed.
func sameAttr(a, b types.AttributeValue) bool {
	switch a := a.(type) {
	case *types.AttributeValueMemberS:
		b, ok := b.(*types.AttributeValueMemberS)
		return ok && a.Value == b.Value
	case *types.AttributeValueMemberN:
		b, ok := b.(*types.AttributeValueMemberN)
		return ok && a.Value == b.Value
	case *types.AttributeValueMemberBOOL:
		b, ok := b.(*types.AttributeValueMemberBOOL)
		return ok && a.Value == b.Value
	}
	return false
}

// get reads the item with key id from table, or projection.ErrNotFound
// when it is missing or expired (or an id valid rejects).
func (s *Store) get(ctx context.Context, table, id string, valid func(string) error) (map[string]types.AttributeValue, error) {
	if valid(id) != nil {
		return nil, projection.ErrNotFound
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &table,
		Key:            map[string]types.AttributeValue{KeyAttr: str(id)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("dynamostore: get %s/%s: %s: %w", table, id, awsconfig.Reason(err), err)
	}
	if out.Item == nil || s.expired(out.Item) {
		return nil, projection.ErrNotFound
	}
	return out.Item, nil
}

// putIfNewer writes item unless the stored item's last_seq is seq or more.
func (s *Store) putIfNewer(ctx context.Context, table, id string, seq uint64, item map[string]types.AttributeValue) error {
	item[KeyAttr] = str(id)
	item[SeqAttr] = number(int64(seq))
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 &table,
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(#id) OR #seq < :seq"),
		ExpressionAttributeNames:  map[string]string{"#id": KeyAttr, "#seq": SeqAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":seq": number(int64(seq))},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil // a later (or the same) event is stored already
	}
	if err != nil {
		return fmt.Errorf("dynamostore: put %s/%s: %s: %w", table, id, awsconfig.Reason(err), err)
	}
	return nil
}

// expired reports whether item's TTL has passed: DynamoDB deletes such
// items only eventually (within days), so reads hide them.
func (s *Store) expired(item map[string]types.AttributeValue) bool {
	exp, ok := intAttr(item, ExpiresAttr)
	return ok && exp <= s.now().Unix()
}
