package dynamostore_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/searchcache"
	"github.com/butakero/butakero/platform/store/dynamostore"
	"github.com/butakero/butakero/platform/testkit/awstest"
	"github.com/butakero/butakero/platform/testkit/projectiontest"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// newStore returns a store on fresh tables of the test's DynamoDB Local.
func newStore(t *testing.T) *dynamostore.Store {
	t.Helper()
	return newStoreAt(t, time.Now)
}

func newStoreAt(t *testing.T, now func() time.Time) *dynamostore.Store {
	t.Helper()
	srv := awstest.DynamoDB(t)
	s, err := dynamostore.New(t.Context(), srv.AWS(), dynamostore.Options{
		OperationsTable: awstest.Name("operations"),
		SongsTable:      awstest.Name("songs"),
		Endpoint:        srv.Endpoint,
		OperationTTL:    30 * 24 * time.Hour,
		AutoCreate:      true,
		Now:             now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	projectiontest.Run(t, func(t *testing.T) projectiontest.Store { return newStore(t) },
		projectiontest.Options{ConditionalBySeq: true})
}

func TestCatalog(t *testing.T) {
	projectiontest.RunCatalog(t, func(t *testing.T) projectiontest.Catalog { return newStore(t) })
}

func TestCache(t *testing.T) {
	projectiontest.RunCache(t, func(t *testing.T) searchcache.Cache {
		c, err := newStore(t).Cache(time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

// TestSchema checks through the plain DynamoDB API what AutoCreate made
// and what a write stored: keys, indexes, TTL and attributes as the README
// documents them.
func TestSchema(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	ops, songs := s.Tables()
	c := s.Client()
	cases := []struct {
		table, index, hash, sort string
	}{
		{ops, dynamostore.BySongIndex, "song_id", "created_at"},
		{songs, dynamostore.ByTitleIndex, "catalog", "title_key"},
	}
	for _, tc := range cases {
		t.Run(tc.table, func(t *testing.T) {
			out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &tc.table})
			if err != nil {
				t.Fatal(err)
			}
			d := out.Table
			if len(d.KeySchema) != 1 || aws.ToString(d.KeySchema[0].AttributeName) != "id" || d.KeySchema[0].KeyType != types.KeyTypeHash {
				t.Errorf("key schema %+v, want id (HASH)", d.KeySchema)
			}
			if d.BillingModeSummary == nil || d.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
				t.Errorf("billing %+v, want PAY_PER_REQUEST", d.BillingModeSummary)
			}
			if len(d.GlobalSecondaryIndexes) != 1 {
				t.Fatalf("indexes %+v, want one", d.GlobalSecondaryIndexes)
			}
			gsi := d.GlobalSecondaryIndexes[0]
			if aws.ToString(gsi.IndexName) != tc.index || len(gsi.KeySchema) != 2 ||
				aws.ToString(gsi.KeySchema[0].AttributeName) != tc.hash || aws.ToString(gsi.KeySchema[1].AttributeName) != tc.sort {
				t.Errorf("index %s %+v, want %s on %s, %s", aws.ToString(gsi.IndexName), gsi.KeySchema, tc.index, tc.hash, tc.sort)
			}
			ttl, err := c.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &tc.table})
			if err != nil {
				t.Fatal(err)
			}
			if d := ttl.TimeToLiveDescription; d == nil || d.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != "expires_at" {
				t.Errorf("TTL %+v, want enabled on expires_at", ttl.TimeToLiveDescription)
			}
		})
	}

	t.Run("items", func(t *testing.T) {
		op := projectiontest.Operation("op-schema", 12)
		if err := s.PutOperation(ctx, op); err != nil {
			t.Fatal(err)
		}
		song := projectiontest.Song("song-schema", 12)
		if err := s.PutSong(ctx, song); err != nil {
			t.Fatal(err)
		}
		item := awstest.Item(t, s.Client(), ops, "op-schema")
		for k, want := range map[string]string{"id": "op-schema", "song_id": op.SongID, "status": "success", "stage": "stored", "last_seq": "12", "attempts": "2"} {
			if got := awstest.Text(item[k]); got != want {
				t.Errorf("operation %s = %q, want %q", k, got, want)
			}
		}
		updated, _ := time.Parse(time.RFC3339Nano, op.UpdatedAt)
		if got, want := awstest.Text(item["expires_at"]), updated.Add(30*24*time.Hour).Unix(); got != itoa(want) {
			t.Errorf("expires_at = %s, want %d (last event + OPERATION_TTL)", got, want)
		}
		item = awstest.Item(t, s.Client(), songs, "song-schema")
		for k, want := range map[string]string{"id": "song-schema", "title": song.Title, "dca_key": song.DCAKey, "dca_size": "1234567",
			"catalog": "song", "title_key": "titulo con acentos\x00song-schema", "last_seq": "12"} {
			if got := awstest.Text(item[k]); got != want {
				t.Errorf("song %s = %q, want %q", k, got, want)
			}
		}
		if _, ok := item["expires_at"]; ok {
			t.Error("a song has a TTL")
		}
	})
}

// TestCatalogIndexHoldsStoredSongsOnly checks the songs table's side of
// the catalog rule (stored songs only): a song without a DCA is written
// without the by-title index's keys, and an item that has them but no DCA
// (written before the rule) is still left out of SearchSongs.
func TestCatalogIndexHoldsStoredSongsOnly(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	_, songs := s.Tables()
	if err := s.PutSong(ctx, projection.Song{ID: "failed-only", Title: "Failed Song", URL: "https://youtu.be/x", LastSeq: 4}); err != nil {
		t.Fatal(err)
	}
	item := awstest.Item(t, s.Client(), songs, "failed-only")
	for _, k := range []string{"catalog", "title_key", "title_norm", "channel_norm"} {
		if v, ok := item[k]; ok {
			t.Errorf("a song without a DCA has %s = %q", k, awstest.Text(v))
		}
	}
	legacy := map[string]types.AttributeValue{
		"id": &types.AttributeValueMemberS{Value: "legacy-failed"}, "title": &types.AttributeValueMemberS{Value: "Failed Song Of Old"},
		"catalog": &types.AttributeValueMemberS{Value: "song"}, "title_key": &types.AttributeValueMemberS{Value: "failed song of old\x00legacy-failed"},
		"title_norm": &types.AttributeValueMemberS{Value: "failed song of old"}, "last_seq": &types.AttributeValueMemberN{Value: "2"},
	}
	if _, err := s.Client().PutItem(ctx, &dynamodb.PutItemInput{TableName: &songs, Item: legacy}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"", "failed", "legacy-failed"} {
		got, _, err := s.SearchSongs(ctx, q, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Errorf("SearchSongs(%q) = %+v, want no song (none is stored)", q, got)
		}
	}
}

// TestOperationTTL checks that a finished operation past OPERATION_TTL is
// gone for readers even before DynamoDB deletes it, and that one in
// progress never expires.
func TestOperationTTL(t *testing.T) {
	now := time.Now()
	s := newStoreAt(t, func() time.Time { return now })
	ctx := t.Context()
	old := now.Add(-31 * 24 * time.Hour).UTC().Format(time.RFC3339)
	cases := []struct {
		name  string
		op    projection.Operation
		found bool
	}{
		{"finished 31 days ago", projection.Operation{ID: "op-old", Status: projection.StatusSuccess, UpdatedAt: old, LastSeq: 3}, false},
		{"failed 31 days ago", projection.Operation{ID: "op-old-failed", Status: projection.StatusFailed, UpdatedAt: old, LastSeq: 3}, false},
		{"finished a day ago", projection.Operation{ID: "op-recent", Status: projection.StatusSuccess, UpdatedAt: now.Add(-24 * time.Hour).UTC().Format(time.RFC3339), LastSeq: 3}, true},
		{"in progress since 31 days", projection.Operation{ID: "op-stuck", Status: projection.StatusInProgress, UpdatedAt: old, LastSeq: 3}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutOperation(ctx, tc.op); err != nil {
				t.Fatal(err)
			}
			_, err := s.Operation(ctx, tc.op.ID)
			if tc.found && err != nil {
				t.Errorf("Operation: %v, want it found", err)
			}
			if !tc.found && !errors.Is(err, projection.ErrNotFound) {
				t.Errorf("Operation: %v, want projection.ErrNotFound", err)
			}
		})
	}
}

func TestSongOperations(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for i, created := range []string{"2026-11-26T18:00:00Z", "2026-11-26T19:00:00Z", "2026-11-26T17:00:00Z"} {
		op := projection.Operation{ID: "op-" + itoa(int64(i)), SongID: "song-a", Status: projection.StatusInProgress, CreatedAt: created, LastSeq: 1}
		if err := s.PutOperation(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutOperation(ctx, projection.Operation{ID: "op-other", SongID: "song-b", CreatedAt: "2026-11-26T18:30:00Z", LastSeq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOperation(ctx, projection.Operation{ID: "op-nosong", CreatedAt: "2026-11-26T18:30:00Z", LastSeq: 1}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		song  string
		limit int
		want  []string
	}{
		{"song-a", 0, []string{"op-1", "op-0", "op-2"}},
		{"song-a", 2, []string{"op-1", "op-0"}},
		{"song-b", 0, []string{"op-other"}},
		{"song-none", 0, nil},
	}
	for _, tc := range cases {
		ops, err := s.SongOperations(ctx, tc.song, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, op := range ops {
			got = append(got, op.ID)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("SongOperations(%s, %d) = %v, want %v", tc.song, tc.limit, got, tc.want)
		}
	}
}

// TestPing checks that Ping names the missing table, the variable that
// names it and the credential problem.
func TestPing(t *testing.T) {
	srv := awstest.DynamoDB(t)
	ctx := t.Context()
	ops, songs := newStore(t).Tables()
	missing := awstest.Name("missing")
	cases := []struct {
		name       string
		aws        aws.Config
		ops, songs string
		want       []string // in the error; none means no error
	}{
		{"both tables", srv.AWS(), ops, songs, nil},
		{"missing operations table", srv.AWS(), missing, songs, []string{missing, "DYNAMODB_TABLE_NAME_OPERATION", "does not exist"}},
		{"missing songs table", srv.AWS(), ops, missing, []string{missing, "DYNAMODB_TABLE_NAME_SONGS", "does not exist"}},
		{"no credentials", aws.Config{Region: awstest.Region}, ops, songs, []string{"no AWS credentials"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := dynamostore.New(ctx, tc.aws, dynamostore.Options{OperationsTable: tc.ops, SongsTable: tc.songs, Endpoint: srv.Endpoint})
			if err != nil {
				t.Fatalf("New without AutoCreate sends nothing, yet: %v", err)
			}
			err = s.Ping(ctx)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Ping: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Ping succeeded, want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Ping: %v: does not say %q", err, w)
				}
			}
		})
	}
}

// TestOpenFromConfig opens the store as the services do, from the seed's
// variables plus the SDK's AWS_ENDPOINT_URL_DYNAMODB, creating the tables
// and finding them there the second time.
func TestOpenFromConfig(t *testing.T) {
	srv := awstest.DynamoDB(t)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", srv.Endpoint)
	cfg, err := config.Load(config.FromMap(map[string]string{
		"DYNAMODB_TABLE_NAME_OPERATION": awstest.Name("operations"),
		"DYNAMODB_TABLE_NAME_SONGS":     awstest.Name("songs"),
		"REGION":                        awstest.Region,
		"ACCESS_KEY":                    awstest.AccessKey,
		"SECRET_KEY":                    awstest.SecretKey,
		"AWS_AUTO_CREATE":               "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		s, err := dynamostore.Open(t.Context(), cfg)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping #%d: %v", i+1, err)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
