// Command bench measures Butakero against what a person runs by hand, on
// this machine, and prints a report (make bench). It is a benchmark, not a
// test: it asserts nothing and only reports numbers and their targets.
//
//  1. Request to stored DCA for a 3-minute song, against yt-dlp then ffmpeg
//     to Opus at the same bitrate (complexity 10, 20 ms frames) on the same
//     file, interleaved; medians and their ratio (target ≤ 1.25).
//  2. The service's peak resident memory (VmHWM) after a 30-second song and
//     after a 60-minute song (target: at most 64 MiB more).
//  3. Request to success for a song already stored: the median over
//     -stored requests (target ≤ 50 ms). Nothing is fetched or encoded.
//  4. Twelve different songs (3-minute, none stored) submitted at once,
//     until all are stored, against the hand-run pipeline of each spread
//     perfectly over the machine's cores: the sum of the twelve hand-run
//     times divided by the number of CPUs (target: ratio ≤ 1.3).
//  5. A 3-minute WebM/Opus song (20 ms frames, which the encoder copies),
//     request to stored DCA, interleaved against the hand-run pipeline that
//     encodes again (target ratio ≤ 0.35) and against a hand-run copy:
//     yt-dlp, then ffmpeg -c:a copy (target ≤ 1.3).
//  6. Twelve different 30-second AAC songs at once against the hand-run
//     pipeline of each spread over the cores (target ≤ 1.10), and the CPU
//     time per song of both (target: within 10 %).
//  7. Projections that keep up (throughput.go): -tp-requests requests for
//     a stored song, -tp-inflight at once, each polling its status every
//     20 ms and then every 250 ms: operations a second, p50/p99 from POST
//     to final status and the projection lag's p99, in the embedded
//     profile, the AWS profile (DynamoDB Local, versitygw) with DynamoDB
//     Local's own conditional-write rate and the recorder draining a
//     backlog, -drain-rounds times, each between two runs of its own
//     writes applied with no stream (the recorder's share of them,
//     target ≥ 70 %), and two processes on a three-node cluster with each
//     one's share of the events applied.
//  8. Play before it is stored: request (POST /v1/operations) to the
//     first DCA frame a client of GET /v1/operations/{id}/dca reads, for a
//     3-minute AAC song (target ≤ 1 s), the long AAC song (≤ 1.5 s) and a
//     3-minute song served at twice its audio bitrate (≤ 3 s); and the
//     peak RSS of a fresh service after a 30-second song and after the
//     long song, each followed to its end by -followers clients (target:
//     at most 32 MiB more).
//
// BENCH_LOG_LEVEL sets the services' LOG_LEVEL (warn when unset).
//
// -only opus runs sections 5 and 6 alone; -only throughput section 7;
// -only drain the recorder's drain and DynamoDB Local's rate of section 7;
// -only play section 8.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/butakero/butakero/platform/runtime/config"
)

func main() {
	rounds := flag.Int("rounds", 5, "interleaved rounds of the 3-minute comparison")
	long := flag.Duration("long", 60*time.Minute, "length of the long song of the memory run")
	stored := flag.Int("stored", 20, "requests for a stored song")
	burst := flag.Int("burst", 12, "different songs submitted at once")
	prebuilt := flag.String("butakero", "", "a butakero binary to measure instead of building ./cmd/butakero (another version, for comparison)")
	only := flag.String("only", "", `"opus": only the Opus passthrough and 30-second burst sections; "throughput": only the projection throughput measure; "drain": only the recorder draining into DynamoDB Local against its own rate; "play": only play before it is stored`)
	followers := flag.Int("followers", 4, "clients following each song in the play section")
	tp := throughputOpts{polls: []time.Duration{20 * time.Millisecond, 250 * time.Millisecond}}
	flag.IntVar(&tp.requests, "tp-requests", 2000, "requests for a stored song per throughput run")
	flag.IntVar(&tp.inflight, "tp-inflight", 50, "requests in flight in a throughput run")
	flag.StringVar(&tp.drainProfile, "drain-cpuprofile", "", "write a CPU profile of the bench process (the recorder and its embedded JetStream) while the recorder drains")
	flag.IntVar(&tp.drainRounds, "drain-rounds", 3, "how many times the recorder drains its backlog into DynamoDB Local, each between two runs of its writes alone")
	flag.IntVar(&tp.lanes, "tp-lanes", config.DefaultRecorderPartitions, "the recorder's lanes (RECORDER_PARTITIONS) in the throughput runs, and DynamoDB Local's writers")
	flag.BoolVar(&tp.pollLater, "tp-poll-later", false, "in the throughput runs, make the first status read one interval after the POST answers (a bot polling on a timer), not at once")
	profiles := flag.String("tp-profiles", "embedded,aws,cluster", "the deployments the throughput measure runs, comma-separated: embedded, aws, cluster")
	flag.Parse()
	tp.profiles = map[string]bool{}
	for _, p := range strings.Split(*profiles, ",") {
		tp.profiles[strings.TrimSpace(p)] = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *rounds, *long, *stored, *burst, *only, *prebuilt, tp, *followers); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, rounds int, long time.Duration, storedN, burstN int, only, prebuilt string, tp throughputOpts, followers int) error {
	work, err := os.MkdirTemp("", "butakero-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if only == "drain" {
		fmt.Printf("Butakero benchmark — %s, %d cores, %s/%s, %s\n", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02"))
		return drainOnly(ctx, work, tp)
	}
	media := filepath.Join(work, "media")
	must(os.MkdirAll(media, 0o755))

	step("building butakero")
	bin := filepath.Join(work, "butakero")
	if prebuilt != "" {
		bin = prebuilt
	} else if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/butakero").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	if only == "throughput" {
		step("making the fixture with ffmpeg (30 s)")
	} else {
		step("making fixtures with ffmpeg (3 min, 30 s, %s)", long)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"song3m.m4a", 3 * time.Minute}, {"song30s.m4a", 30 * time.Second}, {"songlong.m4a", long}} {
		if (only == "opus" || only == "throughput") && f.name != "song30s.m4a" {
			continue
		}
		if err := makeM4A(ctx, filepath.Join(media, f.name), f.d); err != nil {
			return err
		}
	}
	if only != "play" && only != "throughput" {
		if err := makeWebMOpus(ctx, filepath.Join(media, "song3m.webm"), 3*time.Minute); err != nil {
			return err
		}
	}
	if only == "play" {
		play, err := benchPlay(ctx, bin, work, media, long, followers)
		if err != nil {
			return err
		}
		fmt.Printf("\nButakero benchmark — %s, %d cores, %s/%s, %s\n", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02"))
		fmt.Print(play)
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mediaSrv := &http.Server{Handler: http.FileServer(http.Dir(media))}
	go mediaSrv.Serve(ln)
	defer mediaSrv.Close()
	mediaURL := "http://" + ln.Addr().String()
	if only == "throughput" {
		fmt.Printf("Butakero benchmark — %s, %d cores, %s/%s, %s\n", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02"))
		return throughput(ctx, work, bin, mediaURL, tp)
	}

	svc, err := startServiceEnv(ctx, bin, filepath.Join(work, "data"), nil)
	if err != nil {
		return err
	}
	defer svc.stop()

	head := func() {
		fmt.Printf("\nButakero benchmark — %s, %d cores, %s/%s, %s\n", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02"))
	}
	if only == "opus" {
		opus, err := benchOpus(ctx, svc, work, mediaURL, rounds, burstN)
		if err != nil {
			return err
		}
		head()
		fmt.Print(opus)
		return nil
	}

	// 1. Latency against the hand-run pipeline, interleaved.
	var hand, service []time.Duration
	for i := range rounds {
		step("round %d/%d: by hand", i+1, rounds)
		d, _, err := byHand(ctx, work, mediaURL+"/song3m.m4a")
		if err != nil {
			return fmt.Errorf("by hand: %w", err)
		}
		hand = append(hand, d)
		step("round %d/%d: butakero", i+1, rounds)
		// A distinct query string makes a distinct song, so nothing is cached.
		d, err = svc.request(ctx, fmt.Sprintf("%s/song3m.m4a?round=%d", mediaURL, i), 10*time.Millisecond)
		if err != nil {
			return fmt.Errorf("butakero: %w", err)
		}
		service = append(service, d)
	}

	// 2. Memory: peak RSS after a short song, then after a long one.
	step("memory: 30-second song")
	if _, err := svc.request(ctx, mediaURL+"/song30s.m4a", 10*time.Millisecond); err != nil {
		return err
	}
	peakShort, err := svc.peakRSS()
	if err != nil {
		return err
	}
	step("memory: %s song", long)
	dLong, err := svc.request(ctx, mediaURL+"/songlong.m4a", 10*time.Millisecond)
	if err != nil {
		return err
	}
	peakLong, err := svc.peakRSS()
	if err != nil {
		return err
	}

	// 3. A stored song (the first round's): nothing to fetch or encode.
	// The status is polled every millisecond so the poll adds little.
	var storedTimes []time.Duration
	step("stored song: %d requests", storedN)
	for range storedN {
		d, err := svc.request(ctx, mediaURL+"/song3m.m4a?round=0", time.Millisecond)
		if err != nil {
			return fmt.Errorf("stored song: %w", err)
		}
		storedTimes = append(storedTimes, d)
	}

	// 4. Twelve new songs at once against twelve hand runs spread over
	// the cores.
	var handSum, handCPU time.Duration
	for i := range burstN {
		step("burst: by hand %d/%d", i+1, burstN)
		d, cpu, err := byHand(ctx, work, fmt.Sprintf("%s/song3m.m4a?hand=%d", mediaURL, i))
		if err != nil {
			return fmt.Errorf("by hand: %w", err)
		}
		handSum += d
		handCPU += cpu
	}
	step("burst: %d songs at once", burstN)
	cpuBefore, err := svc.cpuTime()
	if err != nil {
		return err
	}
	burstStart := time.Now()
	errs := make(chan error, burstN)
	for i := range burstN {
		go func() {
			// Twelve clients polling every 10 ms would cost the service
			// more CPU than the songs; 200 ms is still fine against ~20 s.
			_, err := svc.request(ctx, fmt.Sprintf("%s/song3m.m4a?burst=%d", mediaURL, i), 200*time.Millisecond)
			errs <- err
		}()
	}
	for range burstN {
		if err := <-errs; err != nil {
			return fmt.Errorf("burst: %w", err)
		}
	}
	burstTook := time.Since(burstStart)
	cpuAfter, err := svc.cpuTime()
	if err != nil {
		return err
	}
	burstCPU := cpuAfter - cpuBefore
	spread := handSum / time.Duration(runtime.NumCPU())
	burstRatio := float64(burstTook) / float64(spread)

	opus, err := benchOpus(ctx, svc, work, mediaURL, rounds, burstN)
	if err != nil {
		return err
	}

	mh, ms := median(hand), median(service)
	ratio := float64(ms) / float64(mh)
	extra := float64(peakLong-peakShort) / (1 << 20)
	head()
	fmt.Printf("\n3-minute song, request to stored DCA (%d interleaved rounds)\n", rounds)
	fmt.Printf("  by hand (yt-dlp, then ffmpeg libopus %d kb/s, complexity 10, 20 ms): median %s  %s\n", 96, round(mh), list(hand))
	fmt.Printf("  butakero (POST to status success):                                   median %s  %s\n", round(ms), list(service))
	fmt.Printf("  ratio %.2f (target ≤ 1.25): %s\n", ratio, verdict(ratio <= 1.25))
	fmt.Printf("\nPeak resident memory of the service (VmHWM)\n")
	fmt.Printf("  after a 30-second song: %.1f MiB\n", float64(peakShort)/(1<<20))
	fmt.Printf("  after a %s song:     %.1f MiB (took %s)\n", long, float64(peakLong)/(1<<20), round(dLong))
	fmt.Printf("  difference %.1f MiB (target ≤ 64 MiB): %s\n", extra, verdict(extra <= 64))
	ms3 := median(storedTimes)
	fmt.Printf("\nStored song, request to success (%d requests)\n", storedN)
	fmt.Printf("  median %s (target ≤ 50 ms): %s  min %s max %s\n", ms3.Round(100*time.Microsecond),
		verdict(ms3 <= 50*time.Millisecond), slices.Min(storedTimes).Round(100*time.Microsecond), slices.Max(storedTimes).Round(100*time.Microsecond))
	fmt.Printf("\n%d different 3-minute songs submitted at once, until all are stored\n", burstN)
	fmt.Printf("  by hand, one after another: sum %s; spread over %d cores: %s\n", round(handSum), runtime.NumCPU(), round(spread))
	fmt.Printf("  butakero: %s\n", round(burstTook))
	fmt.Printf("  CPU time per song (user+system, children included): by hand %s, butakero %s\n",
		round(handCPU/time.Duration(burstN)), round(burstCPU/time.Duration(burstN)))
	fmt.Printf("  ratio %.2f (target ≤ 1.3): %s\n", burstRatio, verdict(burstRatio <= 1.3))
	fmt.Print(opus)
	svc.stop()
	play, err := benchPlay(ctx, bin, work, media, long, followers)
	if err != nil {
		return err
	}
	fmt.Print(play)
	return throughput(ctx, work, bin, mediaURL, tp)
}

// benchOpus runs sections 5 and 6 and returns their report.
func benchOpus(ctx context.Context, svc *service, work, mediaURL string, rounds, burstN int) (string, error) {
	var encode, copied, service, measured []time.Duration
	for i := range rounds {
		step("opus round %d/%d: by hand, encoding again", i+1, rounds)
		d, _, err := byHandAs(ctx, work, mediaURL+"/song3m.webm", false)
		if err != nil {
			return "", fmt.Errorf("by hand: %w", err)
		}
		encode = append(encode, d)
		step("opus round %d/%d: by hand, copying", i+1, rounds)
		if d, _, err = byHandAs(ctx, work, mediaURL+"/song3m.webm", true); err != nil {
			return "", fmt.Errorf("by hand: %w", err)
		}
		copied = append(copied, d)
		step("opus round %d/%d: butakero", i+1, rounds)
		// The round ends once the loudness, measured after success, is
		// in the catalog: the next hand run does not share the CPUs with
		// that measure.
		d, m, err := svc.requestMeasured(ctx, fmt.Sprintf("%s/song3m.webm?opus=%d", mediaURL, i), 10*time.Millisecond)
		if err != nil {
			return "", fmt.Errorf("butakero: %w", err)
		}
		service = append(service, d)
		measured = append(measured, m)
	}

	var handSum, handCPU time.Duration
	for i := range burstN {
		step("30-second burst: by hand %d/%d", i+1, burstN)
		d, cpu, err := byHand(ctx, work, fmt.Sprintf("%s/song30s.m4a?hand=%d", mediaURL, i))
		if err != nil {
			return "", fmt.Errorf("by hand: %w", err)
		}
		handSum += d
		handCPU += cpu
	}
	step("30-second burst: %d songs at once", burstN)
	selfBefore, childBefore, err := svc.cpuSplit()
	if err != nil {
		return "", err
	}
	start := time.Now()
	errs := make(chan error, burstN)
	for i := range burstN {
		go func() {
			_, err := svc.request(ctx, fmt.Sprintf("%s/song30s.m4a?burst30=%d", mediaURL, i), 100*time.Millisecond)
			errs <- err
		}()
	}
	for range burstN {
		if err := <-errs; err != nil {
			return "", fmt.Errorf("burst: %w", err)
		}
	}
	took := time.Since(start)
	selfAfter, childAfter, err := svc.cpuSplit()
	if err != nil {
		return "", err
	}
	spread := handSum / time.Duration(runtime.NumCPU())
	burstRatio := float64(took) / float64(spread)
	perSelf, perChild := (selfAfter-selfBefore)/time.Duration(burstN), (childAfter-childBefore)/time.Duration(burstN)
	perHand, perSvc := handCPU/time.Duration(burstN), perSelf+perChild
	cpuRatio := float64(perSvc) / float64(perHand)

	me, mc, ms := median(encode), median(copied), median(service)
	re, rc := float64(ms)/float64(me), float64(ms)/float64(mc)
	var b strings.Builder
	fmt.Fprintf(&b, "\n3-minute WebM/Opus song (20 ms frames), request to stored DCA (%d interleaved rounds)\n", rounds)
	fmt.Fprintf(&b, "  by hand, encoding again (yt-dlp, then ffmpeg libopus 96 kb/s): median %s  %s\n", round(me), list(encode))
	fmt.Fprintf(&b, "  by hand, copying (yt-dlp, then ffmpeg -c:a copy):              median %s  %s\n", round(mc), list(copied))
	fmt.Fprintf(&b, "  butakero (passthrough):                                        median %s  %s\n", round(ms), list(service))
	fmt.Fprintf(&b, "  butakero, POST to the loudness in the catalog (after success): median %s  %s\n", round(median(measured)), list(measured))
	fmt.Fprintf(&b, "  ratio to encoding again %.2f (target ≤ 0.35): %s\n", re, verdict(re <= 0.35))
	fmt.Fprintf(&b, "  ratio to copying %.2f (target ≤ 1.3): %s\n", rc, verdict(rc <= 1.3))
	fmt.Fprintf(&b, "\n%d different 30-second AAC songs submitted at once, until all are stored\n", burstN)
	fmt.Fprintf(&b, "  by hand, one after another: sum %s; spread over %d cores: %s\n", round(handSum), runtime.NumCPU(), round(spread))
	fmt.Fprintf(&b, "  butakero: %s; ratio %.2f (target ≤ 1.10): %s\n", round(took), burstRatio, verdict(burstRatio <= 1.10))
	fmt.Fprintf(&b, "  CPU time per song: by hand %s, butakero %s; ratio %.2f (target ≤ 1.10): %s\n",
		round(perHand), round(perSvc), cpuRatio, verdict(cpuRatio <= 1.10))
	fmt.Fprintf(&b, "    butakero's: its own process %s, its ffprobe and ffmpeg %s\n", round(perSelf), round(perChild))
	return b.String(), nil
}

// makeWebMOpus makes a WebM/Opus song as YouTube serves it (itag 251:
// 48 kHz stereo, 20 ms frames, about 160 kb/s).
func makeWebMOpus(ctx context.Context, path string, d time.Duration) error {
	secs := strconv.FormatFloat(d.Seconds(), 'f', 0, 64)
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration="+secs,
		"-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.1:sample_rate=48000:duration="+secs,
		"-filter_complex", "amix=inputs=2,aformat=channel_layouts=stereo",
		"-c:a", "libopus", "-b:a", "160k", "-frame_duration", "20", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ffmpeg %s: %v\n%s", path, err, out)
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func step(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func makeM4A(ctx context.Context, path string, d time.Duration) error {
	secs := strconv.FormatFloat(d.Seconds(), 'f', 0, 64)
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration="+secs,
		"-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.1:sample_rate=44100:duration="+secs,
		"-filter_complex", "amix=inputs=2,aformat=channel_layouts=stereo",
		"-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ffmpeg %s: %v\n%s", path, err, out)
	}
	return nil
}

// byHand is what a person runs: yt-dlp to a file, then ffmpeg to Opus. It
// returns the wall time and the CPU time the two used.
func byHand(ctx context.Context, work, src string) (time.Duration, time.Duration, error) {
	return byHandAs(ctx, work, src, false)
}

// byHandAs is byHand, or with copy the hand-run copy: yt-dlp, then ffmpeg
// -c:a copy into Ogg.
func byHandAs(ctx context.Context, work, src string, copy bool) (time.Duration, time.Duration, error) {
	dir, err := os.MkdirTemp(work, "hand-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	dl := exec.CommandContext(ctx, "yt-dlp", "--ignore-config", "-q", "-f", "bestaudio/best", "-o", filepath.Join(dir, "in.%(ext)s"), "--", src)
	if out, err := dl.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("yt-dlp: %v\n%s", err, out)
	}
	in, _ := filepath.Glob(filepath.Join(dir, "in.*"))
	if len(in) != 1 {
		return 0, 0, fmt.Errorf("yt-dlp wrote %v", in)
	}
	enc := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", in[0],
		"-map", "0:a", "-c:a", "libopus", "-b:a", "96k", "-vbr", "on", "-compression_level", "10",
		"-frame_duration", "20", "-application", "audio", "-ar", "48000", "-ac", "2", filepath.Join(dir, "out.ogg"))
	if copy {
		enc = exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", in[0],
			"-map", "0:a", "-c:a", "copy", filepath.Join(dir, "out.ogg"))
	}
	if out, err := enc.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("ffmpeg: %v\n%s", err, out)
	}
	took := time.Since(start)
	cpu := func(p *os.ProcessState) time.Duration { return p.UserTime() + p.SystemTime() }
	return took, cpu(dl.ProcessState) + cpu(enc.ProcessState), nil
}

type service struct {
	cmd  *exec.Cmd
	base string
	done chan error
}

// startServiceEnv starts butakero on dataDir with the bench's settings and
// extra (KEY=value) on top.
func startServiceEnv(ctx context.Context, bin, dataDir string, extra []string) (*service, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	level := cmp.Or(os.Getenv("BENCH_LOG_LEVEL"), "warn") // the service's LOG_LEVEL
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "DATA_DIR="+dataDir, "HTTP_ADDR="+addr, "ALLOWED_MEDIA_HOSTS=127.0.0.1:*", "LOG_LEVEL="+level, "STAGE_TIMEOUT=30m",
		"RATE_LIMIT=0", "READ_RATE_LIMIT=0") // the bench polls status far faster than a user
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &service{cmd: cmd, base: "http://" + addr, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("butakero exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("butakero not ready within 90s")
		}
	}
}

func (s *service) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
	}
}

// request asks for song and waits until its status is final, polling it
// every poll, with http.DefaultClient.
func (s *service) request(ctx context.Context, song string, poll time.Duration) (time.Duration, error) {
	d, _, _, err := s.requestWith(ctx, http.DefaultClient, song, poll, false)
	return d, err
}

// requestMeasured asks for song (POST /v1/operations), polls its status
// every poll until it ends, then its song (GET /v1/songs/{id}) until the
// catalog has the song's loudness, and returns the time from the POST to
// success and to the loudness.
func (s *service) requestMeasured(ctx context.Context, song string, poll time.Duration) (done, measured time.Duration, err error) {
	start := time.Now()
	body, _ := json.Marshal(map[string]string{"query": song})
	resp, err := http.Post(s.base+"/v1/operations", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	var op struct {
		OperationID string `json:"operation_id"`
		SongID      string `json:"song_id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&op)
	resp.Body.Close()
	if err != nil || op.OperationID == "" || op.SongID == "" {
		return 0, 0, fmt.Errorf("POST /v1/operations: %d %v", resp.StatusCode, err)
	}
	get := func(path string, v any) error {
		resp, err := http.Get(s.base + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(v)
	}
	for done == 0 {
		var st struct{ Status, Message string }
		if err := get("/v1/operations/"+op.OperationID, &st); err != nil {
			return 0, 0, err
		}
		switch st.Status {
		case "success":
			done = time.Since(start)
			continue
		case "failed", "cancelled":
			return 0, 0, fmt.Errorf("operation %s: %s", st.Status, st.Message)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(poll):
		}
	}
	for deadline := time.Now().Add(time.Minute); ; {
		var sg struct {
			LoudnessLUFS *float64 `json:"loudness_lufs"`
		}
		if err := get("/v1/songs/"+op.SongID, &sg); err != nil {
			return 0, 0, err
		}
		if sg.LoudnessLUFS != nil {
			return done, time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("song %s: no loudness in the catalog a minute after success", op.SongID)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// cpuTime is the CPU time the service process has used, with that of its
// children it has waited for (yt-dlp, ffmpeg): /proc/<pid>/stat's utime,
// stime, cutime and cstime, in clock ticks of 1/100 s (Linux's USER_HZ).
func (s *service) cpuTime() (time.Duration, error) {
	self, children, err := s.cpuSplit()
	return self + children, err
}

// cpuSplit is cpuTime in two: the process's own (utime, stime) and its
// waited-for children's (cutime, cstime).
func (s *service) cpuSplit() (self, children time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces; fields after it do not.
	rest := string(b[bytes.LastIndexByte(b, ')')+1:])
	f := strings.Fields(rest)
	// f[0] is field 3 (state); utime..cstime are fields 14..17.
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", s.cmd.Process.Pid)
	}
	var ticks [4]int64
	for i, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/stat: %w", s.cmd.Process.Pid, err)
		}
		ticks[i] = n
	}
	tick := 10 * time.Millisecond
	return time.Duration(ticks[0]+ticks[1]) * tick, time.Duration(ticks[2]+ticks[3]) * tick, nil
}

// peakRSS is the service process's VmHWM in bytes.
func (s *service) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", s.cmd.Process.Pid)
}

// median is the median of xs: the mean of the two in the middle for an
// even count, 0 for none.
func median[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

func list(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = round(d).String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
