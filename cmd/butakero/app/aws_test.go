package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/butakero/butakero/platform/store/awsconfig"
	"github.com/butakero/butakero/platform/store/dynamostore"
	"github.com/butakero/butakero/platform/store/s3blob"
	"github.com/butakero/butakero/platform/testkit/awstest"
	"github.com/butakero/butakero/platform/testkit/wait"
	"github.com/butakero/butakero/services/encoder/dcafile"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// profile is one way to run the all-in-one: env returns its variables
// (and sets, with t.Setenv, the SDK's own ones); verify, when set, checks
// what the end-to-end test stored.
type profile struct {
	name   string
	env    func(t *testing.T) map[string]string
	verify func(t *testing.T, env map[string]string, songs []storedSong)
	// object, when set, reads a stored song's DCA from the profile's
	// store with that store's own client, not through the gateway.
	object func(t *testing.T, env map[string]string, songID string) []byte
}

// storedSong is one song the end-to-end test stored, as the gateway served it.
type storedSong struct {
	OperationID, SongID string
	Size, Frames        int64
}

var profiles = []profile{
	{name: "embedded", env: func(*testing.T) map[string]string { return nil }},
	{name: "aws", env: awsEnv, verify: verifyAWS, object: s3Object},
}

// inEachProfile runs test as a subtest in each of profiles, named for it.
func inEachProfile(t *testing.T, test func(t *testing.T, p profile)) {
	for _, p := range profiles {
		t.Run(p.name, func(t *testing.T) { test(t, p) })
	}
}

// awsEnv is the AWS profile on the test's versitygw and DynamoDB Local:
// the seed's names, fresh bucket and tables created at start, and the
// endpoints in the SDK's own variables, as a deployment would set them.
func awsEnv(t *testing.T) map[string]string {
	s3srv, ddb := awstest.S3(t), awstest.DynamoDB(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", s3srv.Endpoint)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ddb.Endpoint)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return map[string]string{
		"BUCKET_NAME":                   awstest.Name("butakero"),
		"DYNAMODB_TABLE_NAME_OPERATION": awstest.Name("operations"),
		"DYNAMODB_TABLE_NAME_SONGS":     awstest.Name("songs"),
		"REGION":                        awstest.Region,
		"ACCESS_KEY":                    awstest.AccessKey,
		"SECRET_KEY":                    awstest.SecretKey,
		"AWS_AUTO_CREATE":               "true",
	}
}

// s3Client is a plain S3 client of the test's versitygw.
func s3Client(t *testing.T, env map[string]string) *s3.Client {
	ac := awsconfig.Static(env["REGION"], env["ACCESS_KEY"], env["SECRET_KEY"])
	return s3.NewFromConfig(ac, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(awstest.S3(t).Endpoint)
		o.UsePathStyle = true
	})
}

// s3Object reads the song's DCA object, audio/<song_id>.dca, whole.
func s3Object(t *testing.T, env map[string]string, songID string) []byte {
	obj, err := s3Client(t, env).GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(env["BUCKET_NAME"]), Key: aws.String("audio/" + songID + ".dca")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	defer obj.Body.Close()
	b, err := io.ReadAll(obj.Body)
	if err != nil {
		t.Fatalf("reading the object: %v", err)
	}
	return b
}

// verifyAWS reads, with plain S3 and DynamoDB clients, the DCA objects
// and the items the run left: each DCA at audio/<song_id>.dca with the size
// and frames the gateway served, no staged audio left, each song and
// operation item naming them.
func verifyAWS(t *testing.T, env map[string]string, songs []storedSong) {
	ctx := t.Context()
	s3c := s3Client(t, env)
	ac := awsconfig.Static(env["REGION"], env["ACCESS_KEY"], env["SECRET_KEY"])
	ddb := dynamodb.NewFromConfig(ac, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(awstest.DynamoDB(t).Endpoint) })
	bucket := env["BUCKET_NAME"]

	staged, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("staging/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(staged.Contents) != 0 {
		t.Errorf("%d staged audio files left in the bucket, want none", len(staged.Contents))
	}
	for _, s := range songs {
		t.Run(s.SongID, func(t *testing.T) {
			key := "audio/" + s.SongID + ".dca"
			obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
			if err != nil {
				t.Fatalf("GetObject %s: %v", key, err)
			}
			info, err := dcafile.Parse(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatalf("the object %s is no DCA: %v", key, err)
			}
			if aws.ToInt64(obj.ContentLength) != s.Size || info.Frames != s.Frames || aws.ToString(obj.ContentType) != "audio/x-dca" {
				t.Errorf("object %s: %d bytes, %d frames, %q; the gateway served %d bytes, %d frames",
					key, aws.ToInt64(obj.ContentLength), info.Frames, aws.ToString(obj.ContentType), s.Size, s.Frames)
			}

			song := awstest.Item(t, ddb, env["DYNAMODB_TABLE_NAME_SONGS"], s.SongID)
			for k, want := range map[string]string{"dca_key": key, "dca_location": "s3://" + bucket + "/" + key, "dca_size": strconv.FormatInt(s.Size, 10)} {
				if got := awstest.Text(song[k]); got != want {
					t.Errorf("song item %s = %q, want %q", k, got, want)
				}
			}
			op := awstest.Item(t, ddb, env["DYNAMODB_TABLE_NAME_OPERATION"], s.OperationID)
			for k, want := range map[string]string{"song_id": s.SongID, "status": "success", "stage": "stored", "data": "s3://" + bucket + "/" + key} {
				if got := awstest.Text(op[k]); got != want {
					t.Errorf("operation item %s = %q, want %q", k, got, want)
				}
			}
			if awstest.Text(op["last_seq"]) == "" || awstest.Text(op["expires_at"]) == "" {
				t.Errorf("operation item lacks last_seq or expires_at: %v", op)
			}
		})
	}
}

// TestReadyzAWS checks that what would fail every request in the AWS
// profile, wrong credentials or a missing table, shows on /readyz as 503
// with what failed, and in the log with the reason, from the start.
func TestReadyzAWS(t *testing.T) {
	base := awsEnv(t)
	base["AWS_AUTO_CREATE"] = "false"
	// The bucket and tables exist, made with the right credentials.
	ctx := t.Context()
	ac := awsconfig.Static(awstest.Region, awstest.AccessKey, awstest.SecretKey)
	if _, err := s3blob.New(ctx, ac, s3blob.Options{Bucket: base["BUCKET_NAME"], Endpoint: awstest.S3(t).Endpoint, AutoCreate: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := dynamostore.New(ctx, ac, dynamostore.Options{OperationsTable: base["DYNAMODB_TABLE_NAME_OPERATION"],
		SongsTable: base["DYNAMODB_TABLE_NAME_SONGS"], Endpoint: awstest.DynamoDB(t).Endpoint, AutoCreate: true}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		change  map[string]string
		status  int
		failed  string // named in the body
		reasons []string
	}{
		{"everything there", nil, http.StatusOK, "", nil},
		{"wrong secret key", map[string]string{"SECRET_KEY": "not-the-secret"}, http.StatusServiceUnavailable, "blobs",
			[]string{`s3 bucket \"` + base["BUCKET_NAME"] + `\": credentials rejected`}},
		{"unknown access key", map[string]string{"ACCESS_KEY": "nosuchkey"}, http.StatusServiceUnavailable, "blobs",
			[]string{"credentials rejected"}},
		{"missing bucket", map[string]string{"BUCKET_NAME": awstest.Name("missing")}, http.StatusServiceUnavailable, "blobs",
			[]string{"the bucket does not exist"}},
		{"missing tables", map[string]string{"DYNAMODB_TABLE_NAME_OPERATION": "no-such-ops", "DYNAMODB_TABLE_NAME_SONGS": "no-such-songs"},
			http.StatusServiceUnavailable, "projections",
			[]string{`dynamodb table \"no-such-ops\" (DYNAMODB_TABLE_NAME_OPERATION): the table does not exist`,
				`dynamodb table \"no-such-songs\" (DYNAMODB_TABLE_NAME_SONGS): the table does not exist`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.change {
				env[k] = v
			}
			logs := &wait.Output{}
			env["LOG_LEVEL"] = "warn"
			in := launchLogged(t, t.TempDir(), env, logs)
			resp, err := http.Get(in.base + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("/readyz: HTTP %d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.failed == "" {
				return
			}
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error.Message, tc.failed) {
				t.Errorf("/readyz body %s does not name %q", body, tc.failed)
			}
			for _, r := range tc.reasons {
				if !strings.Contains(string(body), r) {
					t.Errorf("/readyz body %s does not give the reason %q", body, r)
				}
				if !strings.Contains(logs.String(), r) {
					t.Errorf("the log does not give the reason %q:\n%s", r, logs.String())
				}
			}
			if strings.Contains(string(body), "127.0.0.1") || strings.Contains(logs.String(), awstest.SecretKey) {
				t.Errorf("an address or the secret leaked: body %s", body)
			}
		})
	}
}
