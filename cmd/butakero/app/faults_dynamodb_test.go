package app_test

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/awstest"
	"github.com/butakero/butakero/platform/testkit/loopback"
)

// faultDynamoDBPaused runs the AWS profile and pauses DynamoDB Local
// (SIGSTOP) while operations run: the pipeline goes on (the stream, S3),
// the recorder retries, and once DynamoDB is back every operation ends in
// success with nothing lost. Then `butakero replay` into fresh tables
// rebuilds items equal to the live ones.
func faultDynamoDBPaused(t *testing.T, bin string) {
	s3srv, ddb := awstest.S3(t), awstest.DynamoDB(t)
	media := t.TempDir()
	specs := []audiofixture.Spec{
		audiofixture.M4A("paused-a.m4a", 2*time.Second),
		audiofixture.MP3("paused-b.mp3", 3*time.Second),
		audiofixture.OggVorbis("paused-c.ogg", 4*time.Second),
	}
	for _, s := range specs {
		audiofixture.Make(t, media, s)
	}
	files := audiofixture.Serve(t, media)

	awsVars := map[string]string{
		"AWS_ENDPOINT_URL_S3":       s3srv.Endpoint,
		"AWS_ENDPOINT_URL_DYNAMODB": ddb.Endpoint,
		"AWS_EC2_METADATA_DISABLED": "true",
		"BUCKET_NAME":               awstest.Name("butakero"),
		"REGION":                    awstest.Region,
		"ACCESS_KEY":                awstest.AccessKey,
		"SECRET_KEY":                awstest.SecretKey,
		"AWS_AUTO_CREATE":           "true",
	}
	vars := map[string]string{
		"DATA_DIR":                      t.TempDir(),
		"NATS_LISTEN":                   loopback.Addr(t),
		"NATS_TOKEN":                    natsToken,
		"DYNAMODB_TABLE_NAME_OPERATION": awstest.Name("operations"),
		"DYNAMODB_TABLE_NAME_SONGS":     awstest.Name("songs"),
		"STAGE_TIMEOUT":                 "1m",
		"SHUTDOWN_GRACE":                "5s",
	}
	for k, v := range awsVars {
		vars[k] = v
	}
	p := startProc(t, bin, "butakero", vars)
	obs := observe(t, "nats://"+vars["NATS_LISTEN"])

	ddb.Pause(t)
	var ops []string
	for _, s := range specs {
		ops = append(ops, p.start(t, files.URL(s.Name)))
	}
	// Every song is stored while the projections cannot be written.
	obs.waitEvents(t, events.KindUploadDone, ops, 2*time.Minute)
	ddb.Resume(t)

	for i, id := range ops {
		op := p.waitFinal(t, id, 2*time.Minute)
		if op.Status != "success" {
			t.Fatalf("%s: operation ended %q (%s: %s), want success", specs[i].Name, op.Status, op.ErrorCode, op.Message)
		}
		checkCovers(t, specs[i].Name, p.dca(t, op.SongID), specs[i].Duration)
	}

	// butakero replay, beside the running process, into fresh tables.
	fresh := map[string]string{
		"NATS_URL":                      "nats://" + vars["NATS_LISTEN"],
		"NATS_TOKEN":                    natsToken,
		"DYNAMODB_TABLE_NAME_OPERATION": awstest.Name("operations-replay"),
		"DYNAMODB_TABLE_NAME_SONGS":     awstest.Name("songs-replay"),
	}
	for k, v := range awsVars {
		fresh[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	replay := exec.CommandContext(ctx, bin, "replay")
	replay.Env = processEnv(fresh)
	out, err := replay.CombinedOutput()
	if err != nil {
		t.Fatalf("butakero replay: %v\n%s", err, out)
	}
	t.Logf("butakero replay: %s", strings.TrimSpace(lastLine(string(out))))

	client := dynamodb.NewFromConfig(ddb.AWS(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(ddb.Endpoint) })
	for _, table := range []struct{ name, live, rebuilt string }{
		{"operations", vars["DYNAMODB_TABLE_NAME_OPERATION"], fresh["DYNAMODB_TABLE_NAME_OPERATION"]},
		{"songs", vars["DYNAMODB_TABLE_NAME_SONGS"], fresh["DYNAMODB_TABLE_NAME_SONGS"]},
	} {
		live, rebuilt := scanItems(ctx, t, client, table.live), scanItems(ctx, t, client, table.rebuilt)
		if len(live) == 0 {
			t.Errorf("the live %s table is empty", table.name)
		}
		if table.name == "operations" && len(live) != len(ops) {
			t.Errorf("the live operations table holds %d items, want %d", len(live), len(ops))
		}
		for id, item := range live {
			if got, ok := rebuilt[id]; !ok {
				t.Errorf("%s item %s is missing from the replay", table.name, id)
			} else if got != item {
				t.Errorf("%s item %s differs:\n live:   %s\n replay: %s", table.name, id, item, got)
			}
		}
		for id := range rebuilt {
			if _, ok := live[id]; !ok {
				t.Errorf("the replay made a %s item %s the live table does not have", table.name, id)
			}
		}
	}
}

// scanItems reads every projection item of table, each as one sorted
// "name=type:value" line, by id. The resolver's cache entries (ids
// "query#…" and "video#…") are left out: a replay does not rebuild them.
func scanItems(ctx context.Context, t *testing.T, c *dynamodb.Client, table string) map[string]string {
	t.Helper()
	items := map[string]string{}
	p := dynamodb.NewScanPaginator(c, &dynamodb.ScanInput{TableName: &table, ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		for _, it := range page.Items {
			id := attrString(it["id"])
			if strings.HasPrefix(id, "S:query#") || strings.HasPrefix(id, "S:video#") {
				continue
			}
			var fields []string
			for k, v := range it {
				fields = append(fields, k+"="+attrString(v))
			}
			sort.Strings(fields)
			items[id] = strings.Join(fields, " ")
		}
	}
	return items
}

// attrString renders the attribute types the stores write.
func attrString(v ddbtypes.AttributeValue) string {
	switch v := v.(type) {
	case *ddbtypes.AttributeValueMemberS:
		return "S:" + v.Value
	case *ddbtypes.AttributeValueMemberN:
		return "N:" + v.Value
	case *ddbtypes.AttributeValueMemberBOOL:
		return fmt.Sprintf("BOOL:%v", v.Value)
	}
	return fmt.Sprintf("%T", v)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
