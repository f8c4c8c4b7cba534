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
	item, err := s.get(ctx, s.ops, id)
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
	if events.ValidSongID(op.ID) != nil {
		return fmt.Errorf("dynamostore: invalid operation id %q", op.ID)
	}
	item := encodeOperation(op)
	if op.Final() {
		end := s.now()
		if t, err := time.Parse(time.RFC3339Nano, op.UpdatedAt); err == nil {
			end = t
		}
		item[ExpiresAttr] = number(end.Add(s.opsTTL).Unix())
	}
	return s.putIfNewer(ctx, s.ops, op.ID, op.LastSeq, item)
}

// Song returns the song with id, or projection.ErrNotFound. The read is
// strongly consistent.
func (s *Store) Song(ctx context.Context, id string) (projection.Song, error) {
	item, err := s.get(ctx, s.songs, id)
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

// get reads the item with key id from table, or projection.ErrNotFound
// when it is missing or expired.
func (s *Store) get(ctx context.Context, table, id string) (map[string]types.AttributeValue, error) {
	if events.ValidSongID(id) != nil {
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
