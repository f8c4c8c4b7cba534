package main

// The projection throughput measure (part 5, and -only=throughput): many
// clients request an already-stored song and poll its status until final,
// in the embedded profile, in the AWS profile (DynamoDB Local and
// versitygw on loopback), and with two butakero processes on a three-node
// nats-server cluster; with DynamoDB Local's own rate of conditional
// writes from as many writers as the recorder has lanes, for scale.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/butakero/butakero/platform/store/awsconfig"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The AWS servers' credentials; versitygw enforces them.
const (
	benchRegion = "us-east-1"
	benchAccess = "butakerobench"
	benchSecret = "butakerobenchsecret"
)

type throughputOpts struct {
	requests, inflight int
	polls              []time.Duration
	// lanes is RECORDER_PARTITIONS for the services and the drain, and
	// the writers of DynamoDB Local's own rate.
	lanes int
	// drainProfile, when set, is where the first drain's CPU profile
	// goes.
	drainProfile string
	// drainRounds is how many times the recorder drains its backlog,
	// each between two runs of its writes alone.
	drainRounds int
	// profiles are the deployments measured: "embedded", "aws",
	// "cluster".
	profiles map[string]bool
	// pollLater makes a client's first poll come one interval after its
	// POST answers, as a bot polling on a timer does; by default it polls
	// at once, then every interval (a loop of read, check, sleep), as
	// every run reported so far did.
	pollLater bool
}

// loadResult is one load run against one deployment.
type loadResult struct {
	label    string
	took     time.Duration
	lat      []time.Duration
	lagP99   float64   // seconds; NaN when unknown
	applied  []float64 // events applied by each process's recorder
	failures int
	polls    int // status reads of the finished operations
	// readErrors counts the status reads answered with an error (not
	// 200), which the client polled again after.
	readErrors int
	first      int // operations final at their first status read
	poll       time.Duration
	inflight   int
	// backlog is the largest pending count (messages not yet delivered
	// plus delivered and not acked) seen of each durable consumer during
	// the load, in the first process.
	backlog map[string]float64
}

func (r loadResult) opsPerSec() float64 { return float64(len(r.lat)) / r.took.Seconds() }

func (r loadResult) String() string {
	s := slices.Clone(r.lat)
	slices.Sort(s)
	pct := func(p float64) time.Duration {
		if len(s) == 0 {
			return 0
		}
		return s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)]
	}
	line := fmt.Sprintf("  %-44s %7.1f ops/s  p50 %6s  p99 %7s  projection lag p99 %s",
		r.label, r.opsPerSec(), pct(.50).Round(100*time.Microsecond), pct(.99).Round(100*time.Microsecond), lagString(r.lagP99))
	if len(r.applied) > 1 {
		var sum float64
		for _, a := range r.applied {
			sum += a
		}
		parts := make([]string, len(r.applied))
		for i, a := range r.applied {
			parts[i] = fmt.Sprintf("%.0f%%", 100*a/max(sum, 1))
		}
		line += "  events applied per process " + strings.Join(parts, " / ")
	}
	if r.failures > 0 {
		line += fmt.Sprintf("  (%d failed)", r.failures)
	}
	if r.readErrors > 0 {
		line += fmt.Sprintf("  (%d status reads answered an error)", r.readErrors)
	}
	// An operation not final at its first read waits one more interval
	// (with the first read one interval after the POST, every operation
	// does): inflight/poll bounds the rate of those.
	if len(r.lat) > 0 {
		line += fmt.Sprintf("\n  %-44s %.2f status reads per operation, %.0f%% final at the first; %d in flight finish at most %.0f ops/s not final at the first",
			"", float64(r.polls)/float64(len(r.lat)), 100*float64(r.first)/float64(len(r.lat)), r.inflight, float64(r.inflight)/r.poll.Seconds())
	}
	if len(r.backlog) > 0 {
		names := make([]string, 0, len(r.backlog))
		for n := range r.backlog {
			names = append(names, n)
		}
		slices.Sort(names)
		parts := make([]string, 0, len(names))
		lanes := 0.0
		for _, n := range names {
			if strings.HasPrefix(n, "recorder-") {
				lanes = max(lanes, r.backlog[n])
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %.0f", n, r.backlog[n]))
		}
		parts = append(parts, fmt.Sprintf("recorder lanes (largest) %.0f", lanes))
		line += fmt.Sprintf("\n  %-44s largest backlog: %s", "", strings.Join(parts, ", "))
	}
	return line
}

func lagString(s float64) string {
	if math.IsNaN(s) {
		return "n/a"
	}
	return "≤ " + (time.Duration(s * float64(time.Second))).String()
}

// drainOps is the backlog of operations the recorder drains alone.
const drainOps = 3000

// drainMeasure is the drain part of section 7: DynamoDB Local's own rate
// of two-attribute conditional UpdateItems before and after (rates), and
// rounds of the recorder's own writes alone (alone, one more than the
// drains) interleaved with the recorder draining the same backlog
// (drains): alone[i] and alone[i+1] come just before and just after
// drains[i].
type drainMeasure struct {
	rates  [2]float64
	alone  []drainResult
	drains []drainResult
}

// rate is DynamoDB Local's two-attribute rate, the mean of before and
// after.
func (m drainMeasure) rate() float64 { return (m.rates[0] + m.rates[1]) / 2 }

// shares are each drain's writes a second over the mean of the store's
// rates of the same writes alone just before and just after it.
func (m drainMeasure) shares() []float64 {
	var out []float64
	for i, d := range m.drains {
		out = append(out, d.writesPerSec()/((m.alone[i].writesPerSec()+m.alone[i+1].writesPerSec())/2))
	}
	return out
}

// drainAndRate measures the recorder draining drainOps operations with
// o.lanes lanes, o.drainRounds times, each between two runs of the same
// writes applied by as many writers with no stream (storeAlone), and
// DynamoDB Local's rate of two-attribute conditional UpdateItems from as
// many writers before and after all of them. Set against its neighbours,
// a drain meets the same DynamoDB Local, load from elsewhere on the
// machine and growth of its tables as they do: DynamoDB Local's rate of
// one kind of write moves by up to 2× from one 10-second window to the
// next, and a single drain against one window says more about that than
// about the recorder.
//
// DynamoDB Local is a JVM: a freshly started one is several times slower
// until its JIT has warmed up (seen: 221 writes/s ten seconds in, 1,237 a
// minute later), so the measures come after writes that count for
// nothing, until two windows in a row agree (warmDynamoDB).
func drainAndRate(ctx context.Context, work, endpoint string, o throughputOpts) (drainMeasure, error) {
	var m drainMeasure
	if err := warmDynamoDB(ctx, endpoint, o.lanes); err != nil {
		return m, err
	}
	step("throughput: DynamoDB Local alone, %d writers", o.lanes)
	var err error
	if m.rates[0], err = dynamoRate(ctx, endpoint, "bench-rate-before", o.lanes, 10*time.Second); err != nil {
		return m, err
	}
	// The JIT warms the paths of the recorder's own writes (an item
	// created on a table with an index) apart: one run of them first,
	// counted for nothing (seen: 1,123 writes/s in the first counted run,
	// then 1,599, 1,674 and 1,865).
	step("throughput: the recorder's writes of %d operations alone, %d writers, to warm DynamoDB Local up", drainOps, o.lanes)
	if _, err := storeAlone(ctx, endpoint, "warm", drainOps, o.lanes); err != nil {
		return m, fmt.Errorf("the recorder's writes alone: %w", err)
	}
	rounds := max(o.drainRounds, 1)
	for i := 0; i <= rounds; i++ {
		step("throughput: the recorder's writes of %d operations alone, %d writers (%d of %d)", drainOps, o.lanes, i+1, rounds+1)
		alone, err := storeAlone(ctx, endpoint, strconv.Itoa(i), drainOps, o.lanes)
		if err != nil {
			return m, fmt.Errorf("the recorder's writes alone: %w", err)
		}
		m.alone = append(m.alone, alone)
		if i == rounds {
			break
		}
		step("throughput: the recorder draining %d operations into DynamoDB Local, %d lanes (%d of %d)", drainOps, o.lanes, i+1, rounds)
		profile := ""
		if i == 0 {
			profile = o.drainProfile
		}
		drain, err := recorderDrain(ctx, work, endpoint, strconv.Itoa(i), drainOps, o.lanes, profile)
		if err != nil {
			return m, fmt.Errorf("recorder drain: %w", err)
		}
		m.drains = append(m.drains, drain)
	}
	step("throughput: DynamoDB Local alone again, %d writers", o.lanes)
	m.rates[1], err = dynamoRate(ctx, endpoint, "bench-rate-after", o.lanes, 10*time.Second)
	return m, err
}

func printDrain(m drainMeasure, lanes int) {
	rate := m.rate()
	fmt.Printf("\nDynamoDB Local alone: %.0f conditional UpdateItem/s of two attributes from %d writers (%.0f before the drains, %.0f after)\n", rate, lanes, m.rates[0], m.rates[1])
	fmt.Printf("The recorder draining %d operations (%d events), against its own writes applied alone by %d writers just before and after (recorder.Applier, no stream):\n", drainOps, 3*drainOps, lanes)
	shares := m.shares()
	for i, d := range m.drains {
		fmt.Printf("  drain %d: %.0f writes/s (%d in %s, the lanes %.0f%% of their time in DynamoDB calls); alone %.0f before, %.0f after: %.0f%% of them, %.0f%% of the two-attribute rate\n",
			i+1, d.writesPerSec(), d.writes, d.took.Round(time.Millisecond), 100*d.storeShare(),
			m.alone[i].writesPerSec(), m.alone[i+1].writesPerSec(), 100*shares[i], 100*d.writesPerSec()/rate)
	}
	fmt.Printf("  median share of its own writes alone: %.0f%% (target ≥ 70 %%)\n", 100*median(shares))
}

// drainOnly is -only=drain: DynamoDB Local, the recorder's drain and
// DynamoDB Local's own rate, nothing else.
func drainOnly(ctx context.Context, work string, o throughputOpts) error {
	if why := awsUnavailable(); why != "" {
		return fmt.Errorf("drain: %s", why)
	}
	ddb, err := startDynamoDBLocal(ctx, work)
	if err != nil {
		return err
	}
	defer ddb.stop()
	m, err := drainAndRate(ctx, work, ddb.endpoint, o)
	if err != nil {
		return err
	}
	printDrain(m, o.lanes)
	return nil
}

// throughput runs every profile and prints its report.
func throughput(ctx context.Context, work, bin, mediaURL string, o throughputOpts) error {
	song := mediaURL + "/song30s.m4a?stored=throughput"
	var results []loadResult
	report := func() {
		fmt.Printf("\nProjections: %d requests for a stored song, %d in flight, POST to final status\n", o.requests, o.inflight)
		for _, r := range results {
			fmt.Println(r.String())
		}
	}
	defer report()

	// Embedded.
	lanesEnv := fmt.Sprintf("RECORDER_PARTITIONS=%d", o.lanes)
	if o.profiles["embedded"] {
		step("throughput: embedded profile")
		svc, err := startServiceEnv(ctx, bin, filepath.Join(work, "tp-embedded"), []string{lanesEnv})
		if err != nil {
			return err
		}
		rs, err := loadProfile(ctx, "embedded", []*service{svc}, song, o)
		svc.stop()
		results = append(results, rs...)
		if err != nil {
			return err
		}
	}

	// AWS.
	if why := awsUnavailable(); !o.profiles["aws"] {
		// not asked for
	} else if why != "" {
		fmt.Printf("\n(AWS profile not measured: %s)\n", why)
	} else {
		ddb, err := startDynamoDBLocal(ctx, work)
		if err != nil {
			return err
		}
		defer ddb.stop()
		s3, err := startVersityGW(ctx, work)
		if err != nil {
			return err
		}
		defer s3.stop()
		env := append(awsServiceEnv(s3, ddb, "bench"), lanesEnv)
		step("throughput: AWS profile")
		svc, err := startServiceEnv(ctx, bin, filepath.Join(work, "tp-aws"), env)
		if err != nil {
			return err
		}
		rs, err := loadProfile(ctx, "AWS", []*service{svc}, song, o)
		svc.stop()
		results = append(results, rs...)
		if err != nil {
			return err
		}
		m, err := drainAndRate(ctx, work, ddb.endpoint, o)
		if err != nil {
			return err
		}
		rate := m.rate()
		defer func() {
			printDrain(m, o.lanes)
			for _, r := range results {
				if strings.HasPrefix(r.label, "AWS") {
					var applied float64
					for _, a := range r.applied {
						applied += a
					}
					w := applied / r.took.Seconds()
					fmt.Printf("  %-44s recorder %.0f writes/s = %.0f%% of it\n", r.label, w, 100*w/rate)
				}
			}
		}()
	}

	// Two processes on a three-node cluster.
	natsBin := os.Getenv("BUTAKERO_NATS_SERVER")
	if !o.profiles["cluster"] {
		return nil
	}
	if natsBin == "" {
		fmt.Printf("\n(cluster not measured: BUTAKERO_NATS_SERVER is not set)\n")
		return nil
	}
	step("throughput: two processes on a three-node cluster")
	cl, err := startCluster(ctx, work, natsBin, 3)
	if err != nil {
		return err
	}
	defer cl.stop()
	env := []string{"NATS_URL=" + cl.urls(), "STREAM_REPLICAS=3", lanesEnv}
	var procs []*service
	for i := range 2 {
		p, err := startServiceEnv(ctx, bin, filepath.Join(work, fmt.Sprintf("tp-cluster-%d", i)), env)
		if err != nil {
			return err
		}
		defer p.stop()
		procs = append(procs, p)
	}
	rs, err := loadProfile(ctx, "cluster, 2 processes", procs, song, o)
	results = append(results, rs...)
	return err
}

// awsServiceEnv is the AWS profile of a service on the bench's versitygw
// and DynamoDB Local, its bucket and tables named after name (created at
// start).
func awsServiceEnv(s3, ddb *proc, name string) []string {
	return []string{
		"BUCKET_NAME=butakero-" + name, "DYNAMODB_TABLE_NAME_OPERATION=" + name + "-ops", "DYNAMODB_TABLE_NAME_SONGS=" + name + "-songs",
		"AWS_ENDPOINT_URL_S3=" + s3.endpoint, "AWS_ENDPOINT_URL_DYNAMODB=" + ddb.endpoint, "AWS_AUTO_CREATE=true",
		"REGION=" + benchRegion, "ACCESS_KEY=" + benchAccess, "SECRET_KEY=" + benchSecret,
	}
}

// awsUnavailable says why the AWS profile cannot run here, or "".
func awsUnavailable() string {
	for _, v := range []string{"BUTAKERO_DYNAMODB_LOCAL_JAR", "BUTAKERO_VERSITYGW"} {
		if os.Getenv(v) == "" {
			return v + " is not set (see the README's Speed and memory for the command)"
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return err.Error()
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return "DynamoDB Local listens on every interface: run the bench in a private network namespace (see the README's Speed and memory)"
		}
	}
	return ""
}

// loadProfile stores the song once, then runs the load once per poll
// interval, spreading the requests over the processes.
func loadProfile(ctx context.Context, name string, procs []*service, song string, o throughputOpts) ([]loadResult, error) {
	if _, err := procs[0].request(ctx, song, 5*time.Millisecond); err != nil {
		return nil, fmt.Errorf("%s: store the song: %w", name, err)
	}
	var out []loadResult
	for _, poll := range o.polls {
		r, err := runLoad(ctx, fmt.Sprintf("%s, polled every %s", name, poll), procs, song, o.requests, o.inflight, poll, o.pollLater)
		if err != nil {
			return out, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: time.Minute}

func runLoad(ctx context.Context, label string, procs []*service, song string, n, inflight int, poll time.Duration, later bool) (loadResult, error) {
	before := make([]lagHistogram, len(procs))
	for i, p := range procs {
		before[i] = scrapeLag(p.base)
	}
	var next atomic.Int64
	var mu sync.Mutex
	r := loadResult{label: label, poll: poll, inflight: inflight, backlog: map[string]float64{}}
	// Where the operations wait: the consumers' backlogs, sampled.
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			for c, v := range scrapeBacklog(procs[0].base) {
				r.backlog[c] = max(r.backlog[c], v)
			}
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range inflight {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				p := procs[(i+w)%len(procs)]
				d, polls, errored, err := p.requestWith(ctx, benchClient, song, poll, later)
				mu.Lock()
				r.readErrors += errored
				if err != nil {
					r.failures++
				} else {
					r.lat = append(r.lat, d)
					r.polls += polls
					if polls == 1 {
						r.first++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.took = time.Since(start)
	close(stopSampling)
	<-sampled
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	// The recorder may still be applying the last events: the lag is read
	// once it has nothing left in hand (or after a few seconds).
	var total lagHistogram
	deadline := time.Now().Add(10 * time.Second)
	for {
		total = lagHistogram{}
		r.applied = r.applied[:0]
		for i, p := range procs {
			h := scrapeLag(p.base).minus(before[i])
			r.applied = append(r.applied, h.count)
			total = total.plus(h)
		}
		// Three events per request for a stored song.
		if total.count >= float64(3*len(r.lat)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.lagP99 = total.quantile(.99)
	return r, nil
}

// lagHistogram is butakero_projection_lag_seconds summed over the lanes.
type lagHistogram struct {
	buckets map[float64]float64 // upper bound: cumulative count
	count   float64
}

func scrapeLag(base string) lagHistogram {
	h := lagHistogram{buckets: map[float64]float64{}}
	resp, err := benchClient.Get(base + "/metrics")
	if err != nil {
		return h
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "butakero_projection_lag_seconds_bucket{"):
			i := strings.Index(line, `le="`)
			j := strings.Index(line[i+4:], `"`)
			if i < 0 || j < 0 {
				continue
			}
			le, err1 := strconv.ParseFloat(line[i+4:i+4+j], 64)
			v, err2 := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err1 == nil && err2 == nil {
				h.buckets[le] += v
			}
		case strings.HasPrefix(line, "butakero_projection_lag_seconds_count{"):
			if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
				h.count += v
			}
		}
	}
	return h
}

func (h lagHistogram) minus(o lagHistogram) lagHistogram {
	out := lagHistogram{buckets: map[float64]float64{}, count: h.count - o.count}
	for le, v := range h.buckets {
		out.buckets[le] = v - o.buckets[le]
	}
	return out
}

func (h lagHistogram) plus(o lagHistogram) lagHistogram {
	out := lagHistogram{buckets: map[float64]float64{}, count: h.count + o.count}
	for le, v := range h.buckets {
		out.buckets[le] += v
	}
	for le, v := range o.buckets {
		out.buckets[le] += v
	}
	return out
}

// quantile is the upper bound of the bucket that holds quantile q.
func (h lagHistogram) quantile(q float64) float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	les := make([]float64, 0, len(h.buckets))
	for le := range h.buckets {
		les = append(les, le)
	}
	slices.Sort(les)
	for _, le := range les {
		if h.buckets[le] >= q*h.count {
			return le
		}
	}
	return math.Inf(1)
}

// scrapeBacklog is each durable consumer's pending plus ack-pending
// count (butakero_consumer_pending_messages and _ack_pending_messages).
func scrapeBacklog(base string) map[string]float64 {
	out := map[string]float64{}
	resp, err := benchClient.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "butakero_consumer_pending_messages{") && !strings.HasPrefix(line, "butakero_consumer_ack_pending_messages{") {
			continue
		}
		i := strings.Index(line, `consumer="`)
		if i < 0 {
			continue
		}
		name, _, _ := strings.Cut(line[i+len(`consumer="`):], `"`)
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			out[name] += v
		}
	}
	return out
}

// requestWith asks for song with c and waits until its status is final,
// polling it every poll: the first time at once, or one poll after the
// POST answers with later. It returns the time from the POST to the final
// status, the status reads it took and how many of them answered an error
// (read again after an interval, as a bot would).
func (s *service) requestWith(ctx context.Context, c *http.Client, song string, poll time.Duration, later bool) (_ time.Duration, polls, errored int, _ error) {
	start := time.Now()
	resp, err := c.Post(s.base+"/api/audio/start?song="+url.QueryEscape(song), "", nil)
	if err != nil {
		return 0, 0, 0, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var sr struct {
		OperationID string `json:"operation_id"`
	}
	if err := json.Unmarshal(body, &sr); err != nil || sr.OperationID == "" {
		return 0, 0, 0, fmt.Errorf("start: %d %s", resp.StatusCode, body)
	}
	wait := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
			return nil
		}
	}
	if later {
		if err := wait(); err != nil {
			return 0, 0, 0, err
		}
	}
	for polls = 1; ; polls++ {
		resp, err := c.Get(s.base + "/api/audio/status?operation_id=" + sr.OperationID)
		if err != nil {
			return 0, polls, errored, err
		}
		if resp.StatusCode != http.StatusOK {
			errored++
		}
		var st struct {
			Status struct{ Status, Message string } `json:"status"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch st.Status.Status {
		case "success":
			return time.Since(start), polls, errored, nil
		case "failed":
			return 0, polls, errored, fmt.Errorf("operation failed: %s", st.Status.Message)
		}
		if err := wait(); err != nil {
			return 0, polls, errored, err
		}
	}
}

// warmDynamoDB writes to DynamoDB Local from writers writers in windows of
// 5 s, for at least 45 s and then until one window's rate is within 10 %
// of the one before, or for at most 90 s: then its JIT has warmed up. (A
// plateau comes first: 718 then 712 writes/s 20 s in, 1,139 a minute
// later.)
func warmDynamoDB(ctx context.Context, endpoint string, writers int) error {
	step("throughput: warming DynamoDB Local up")
	prev := 0.0
	for i := 0; i < 18; i++ {
		rate, err := dynamoRate(ctx, endpoint, fmt.Sprintf("bench-warmup-%d", i), writers, 5*time.Second)
		if err != nil {
			return err
		}
		if i >= 8 && prev > 0 && math.Abs(rate-prev) <= 0.1*prev {
			step("throughput: DynamoDB Local warm after %d s (%.0f, then %.0f writes/s)", 5*(i+1), prev, rate)
			return nil
		}
		prev = rate
	}
	step("throughput: DynamoDB Local's rate still moving after 90 s of writes (last %.0f writes/s)", prev)
	return nil
}

// dynamoRate is how many conditional UpdateItems a second DynamoDB Local
// takes from writers concurrent writers, each on its own items, for d, in
// a new table.
func dynamoRate(ctx context.Context, endpoint, table string, writers int, d time.Duration) (float64, error) {
	client := dynamodb.NewFromConfig(awsconfig.Static(benchRegion, benchAccess, benchSecret), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            &table,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		return 0, fmt.Errorf("create table: %w", err)
	}
	var done atomic.Int64
	var firstErr atomic.Value
	run, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for seq := 1; run.Err() == nil; seq++ {
				_, err := client.UpdateItem(run, &dynamodb.UpdateItemInput{
					TableName:                 &table,
					Key:                       map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: fmt.Sprintf("w%d-%d", w, seq%64)}},
					UpdateExpression:          aws.String("SET #s = :s, #v = :v"),
					ConditionExpression:       aws.String("attribute_not_exists(#s) OR #s < :s"),
					ExpressionAttributeNames:  map[string]string{"#s": "last_seq", "#v": "status"},
					ExpressionAttributeValues: map[string]types.AttributeValue{":s": &types.AttributeValueMemberN{Value: strconv.Itoa(seq)}, ":v": &types.AttributeValueMemberS{Value: "iniciando"}},
				})
				if err != nil {
					if run.Err() == nil {
						firstErr.CompareAndSwap(nil, err)
					}
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

// proc is a server the bench runs.
type proc struct {
	cmd      *exec.Cmd
	endpoint string
	done     chan struct{}
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// freeAddr is a loopback address for a server the bench starts, never one
// it handed out before (see package loopback).
func freeAddr() (string, error) {
	p, err := loopback.Port()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// startProc starts cmd and waits until addr takes connections.
func startProc(ctx context.Context, name string, cmd *exec.Cmd, addr string) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, endpoint: "http://" + addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited", name)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not listen within 90s", name)
		}
	}
}

func startDynamoDBLocal(ctx context.Context, work string) (*proc, error) {
	jar := os.Getenv("BUTAKERO_DYNAMODB_LOCAL_JAR")
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.CommandContext(ctx, "java", "-Xms64m", "-Xmx512m", "-Djava.library.path="+filepath.Join(filepath.Dir(jar), "DynamoDBLocal_lib"),
		"-jar", jar, "-inMemory", "-port", port)
	cmd.Dir = filepath.Dir(jar)
	return startProc(ctx, "DynamoDB Local", cmd, addr)
}

func startVersityGW(ctx context.Context, work string) (*proc, error) {
	dir := filepath.Join(work, "versitygw")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, os.Getenv("BUTAKERO_VERSITYGW"), "--access", benchAccess, "--secret", benchSecret,
		"--region", benchRegion, "--port", addr, "--quiet", "posix", dir)
	return startProc(ctx, "versitygw", cmd, addr)
}

// cluster is nats-server processes routed to each other on loopback.
type cluster struct {
	nodes   []*proc
	clients []string
}

func (c *cluster) urls() string {
	u := make([]string, len(c.clients))
	for i, a := range c.clients {
		u[i] = "nats://" + a
	}
	return strings.Join(u, ",")
}

func (c *cluster) stop() {
	for _, n := range c.nodes {
		n.stop()
	}
}

func startCluster(ctx context.Context, work, bin string, n int) (*cluster, error) {
	c := &cluster{}
	routes := make([]string, n)
	for i := range routes {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		routes[i] = a
	}
	var urls []string
	for _, r := range routes {
		urls = append(urls, "nats-route://"+r)
	}
	for i := range n {
		dir := filepath.Join(work, fmt.Sprintf("nats-%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		client, err := freeAddr()
		if err != nil {
			return nil, err
		}
		conf := fmt.Sprintf("server_name: n%d\nlisten: %s\njetstream { store_dir: %q }\ncluster {\n  name: bench\n  listen: %s\n  routes: [%s]\n}\n",
			i+1, client, filepath.Join(dir, "js"), routes[i], strings.Join(urls, ", "))
		path := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		p, err := startProc(ctx, "nats-server", exec.CommandContext(ctx, bin, "-c", path), client)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.nodes = append(c.nodes, p)
		c.clients = append(c.clients, client)
	}
	// Ready once the cluster has a meta leader: JetStream answers.
	nc, err := nats.Connect(c.urls())
	if err != nil {
		c.stop()
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.stop()
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("the cluster's JetStream did not answer within a minute: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
