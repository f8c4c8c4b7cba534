package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// benchPlay is section 8, play before it is stored: the time from the
// request (POST /v1/operations) to the first DCA frame read by a client of
// GET /v1/operations/{id}/dca, for a 3-minute and a long AAC song on
// loopback and for a 3-minute song served at twice its audio bitrate (a
// source slower than the encoder); then the peak RSS of a fresh service
// after a 30-second song and after the long song, each read to its end by
// followers clients. It measures the embedded profile, then the AWS one
// (DynamoDB Local and versitygw) when they are there. It returns the report.
func benchPlay(ctx context.Context, bin, work, media string, long time.Duration, followers int) (string, error) {
	// The throttled source: song3m.m4a at twice its bitrate.
	path := filepath.Join(media, "song3m.m4a")
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	rate := 2 * float64(st.Size()) / (3 * time.Minute).Seconds() // bytes a second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	files := http.FileServer(http.Dir(media))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/slow/") {
			files.ServeHTTP(w, r)
			return
		}
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "audio/mp4")
		w.Header().Set("Content-Length", fmt.Sprint(st.Size()))
		start := time.Now()
		buf := make([]byte, 16<<10)
		var sent int64
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				w.(http.Flusher).Flush()
				sent += int64(n)
				due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
				select {
				case <-r.Context().Done():
					return
				case <-time.After(time.Until(due)):
				}
			}
			if err != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	var b strings.Builder
	fmt.Fprintf(&b, "\nPlay before it is stored: POST /v1/operations to the first DCA frame read from /v1/operations/{id}/dca\n")
	type profile struct {
		name string
		env  func(name string) []string // a service's variables, by a name of its own
	}
	profiles := []profile{{name: "embedded", env: func(string) []string { return nil }}}
	if why := awsUnavailable(); why != "" {
		fmt.Fprintf(&b, "  (AWS profile not measured: %s)\n", why)
	} else {
		ddb, err := startDynamoDBLocal(ctx, work)
		if err != nil {
			return "", err
		}
		defer ddb.stop()
		s3, err := startVersityGW(ctx, work)
		if err != nil {
			return "", err
		}
		defer s3.stop()
		// Each service gets a bucket and tables of its own, so that no
		// song is found stored by an earlier one.
		profiles = append(profiles, profile{name: "AWS", env: func(name string) []string { return awsServiceEnv(s3, ddb, name) }})
	}
	for _, p := range profiles {
		if err := playProfile(ctx, &b, p.name, p.env, bin, work, base, long, followers); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// playProfile measures section 8 in one profile (env gives a service's
// variables by a name of its own) and writes its lines to b.
func playProfile(ctx context.Context, b *strings.Builder, profile string, env func(name string) []string, bin, work, base string, long time.Duration, followers int) error {
	name := strings.ToLower(profile)
	svc, err := startServiceEnv(ctx, bin, filepath.Join(work, "play-"+name), env("play-"+name))
	if err != nil {
		return err
	}
	defer svc.stop()
	type measure struct {
		name   string
		target time.Duration
		took   time.Duration
		err    error
	}
	cases := []measure{
		{name: "3-minute AAC", target: time.Second},
		{name: long.String() + " AAC", target: 1500 * time.Millisecond},
		{name: "3-minute AAC at twice its bitrate", target: 3 * time.Second},
	}
	urls := []string{base + "/song3m.m4a?play=" + name, base + "/songlong.m4a?play=" + name, base + "/slow/song3m.m4a?play=" + name}
	for i := range cases {
		step("play, %s: %s, request to first frame", profile, cases[i].name)
		cases[i].took, err = svc.firstFrame(ctx, urls[i], 1)
		if err != nil {
			cases[i].err = err
		}
	}
	svc.stop()

	// Memory, on a fresh service: a 30-second song, then the long one,
	// each followed to its end by several clients.
	mem, err := startServiceEnv(ctx, bin, filepath.Join(work, "play-mem-"+name), env("mem-"+name))
	if err != nil {
		return err
	}
	defer mem.stop()
	step("play, %s: memory, 30-second song, %d followers", profile, followers)
	if _, err := mem.firstFrame(ctx, base+"/song30s.m4a?mem="+name, followers); err != nil {
		return err
	}
	peakShort, err := mem.peakRSS()
	if err != nil {
		return err
	}
	step("play, %s: memory, %s song, %d followers", profile, long, followers)
	if _, err := mem.firstFrame(ctx, base+"/songlong.m4a?mem="+name, followers); err != nil {
		return err
	}
	peakLong, err := mem.peakRSS()
	if err != nil {
		return err
	}

	fmt.Fprintf(b, "  %s profile\n", profile)
	for _, c := range cases {
		if c.err != nil {
			fmt.Fprintf(b, "    %-36s failed: %v\n", c.name, c.err)
			continue
		}
		fmt.Fprintf(b, "    %-36s %s (target ≤ %s): %s\n", c.name, c.took.Round(10*time.Millisecond), c.target, verdict(c.took <= c.target))
	}
	extra := float64(peakLong-peakShort) / (1 << 20)
	fmt.Fprintf(b, "    peak RSS, %d followers each: after a 30-second song %.1f MiB, after a %s song %.1f MiB\n", followers, float64(peakShort)/(1<<20), long, float64(peakLong)/(1<<20))
	fmt.Fprintf(b, "    difference %.1f MiB (target ≤ 32 MiB): %s\n", extra, verdict(extra <= 32))
	return nil
}

// firstFrame requests song and has n clients follow
// /v1/operations/{id}/dca from the start: it returns the time from the
// request to the first client's first whole frame, once every client has
// read the DCA to its end.
func (s *service) firstFrame(ctx context.Context, song string, n int) (time.Duration, error) {
	start := time.Now()
	body, _ := json.Marshal(map[string]string{"query": song})
	resp, err := http.Post(s.base+"/v1/operations", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return 0, err
	}
	var op struct {
		OperationID string `json:"operation_id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&op)
	resp.Body.Close()
	if err != nil || op.OperationID == "" {
		return 0, fmt.Errorf("POST /v1/operations: %d %v", resp.StatusCode, err)
	}
	type result struct {
		first time.Duration
		err   error
	}
	results := make(chan result, n)
	for range n {
		go func() {
			first, err := s.follow(ctx, op.OperationID, start)
			results <- result{first, err}
		}()
	}
	var first time.Duration
	for i := range n {
		r := <-results
		if r.err != nil {
			return 0, r.err
		}
		if i == 0 || r.first < first {
			first = r.first
		}
	}
	return first, nil
}

// follow reads the operation's DCA to its end and returns when, since
// start, its first frame was whole.
func (s *service) follow(ctx context.Context, opID string, start time.Time) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/v1/operations/"+opID+"/dca", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("GET /v1/operations/%s/dca: %d %s", opID, resp.StatusCode, b)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(resp.Body, hdr[:]); err != nil {
		return 0, err
	}
	if _, err := io.CopyN(io.Discard, resp.Body, int64(binary.LittleEndian.Uint32(hdr[4:]))); err != nil {
		return 0, err
	}
	var l [2]byte
	if _, err := io.ReadFull(resp.Body, l[:]); err != nil {
		return 0, err
	}
	if _, err := io.CopyN(io.Discard, resp.Body, int64(binary.LittleEndian.Uint16(l[:]))); err != nil {
		return 0, err
	}
	first := time.Since(start)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, fmt.Errorf("the DCA broke off: %w", err)
	}
	return first, nil
}
