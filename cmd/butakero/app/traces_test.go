package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/jaegertest"
)

// TestTraces points the standard OTEL_* environment at a real Jaeger v2
// and asks for songs as a client that sends its own traceparent would
// (after a song through an all-in-one without OTEL_*, of which Jaeger,
// listening on the SDK's default ports, must receive nothing): once through the all-in-one (OTLP over HTTP) and once through the five
// components run as separate processes (OTLP over gRPC). Each song is one
// trace in Jaeger's query API with a span from every component, each
// stage attempt the child of the span that published its event, and the
// ffprobe and ffmpeg runs under the encode. A YouTube song, which cannot
// be downloaded from here, shows its failed fetch as an error span with
// the operation's failure code, the yt-dlp run under it.
func TestTraces(t *testing.T) {
	bin := buildButakero(t)
	// On the SDK's default ports, so that the first case shows that a
	// process without OTEL_* sends nothing even there.
	jaeger := jaegertest.StartOnDefaultPorts(t)
	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.M4A("traced.m4a", 2*time.Second))
	files := audiofixture.Serve(t, media)

	otel := func(protocol, endpoint string) map[string]string {
		return map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
			"OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
			"OTEL_BSP_SCHEDULE_DELAY":     "100", // ms: the SDK's own knob
			"MAX_ATTEMPTS":                "1",   // the YouTube song fails at once
		}
	}
	var unsetTrace string
	t.Run("unset: nothing exported", func(t *testing.T) {
		p := startProc(t, bin, "butakero", map[string]string{"DATA_DIR": t.TempDir()})
		opID, traceID, _ := tracedStart(t, p, files.URL("traced.m4a"))
		if op := p.waitFinal(t, opID, 2*time.Minute); op.Status != "success" {
			t.Fatalf("operation ended %q: %s", op.Status, op.Message)
		}
		// Whatever it had buffered it would have sent by its exit.
		if err := p.terminate(t, 30*time.Second); err != nil {
			t.Fatalf("butakero exited with %v", err)
		}
		unsetTrace = traceID
	})
	t.Run("all-in-one", func(t *testing.T) {
		vars := otel("http/protobuf", jaeger.OTLPHTTP)
		vars["DATA_DIR"] = t.TempDir()
		gw := startProc(t, bin, "butakero", vars)
		service := func(string) string { return "butakero" }
		checkSongTrace(t, jaeger, gw, files.URL("traced.m4a"), service)
		checkFailedFetchTrace(t, jaeger, gw, service)
	})
	t.Run("services alone", func(t *testing.T) {
		srv := startTokenNATS(t)
		vars := otel("grpc", jaeger.OTLPGRPC)
		vars["NATS_URL"], vars["NATS_TOKEN"] = srv.ClientURL(), natsToken
		var gw *proc
		for _, name := range []string{"resolver", "fetcher", "encoder", "recorder", "gateway"} {
			p := launchProc(t, bin, name, vars, name)
			if name == "gateway" {
				gw = p
			}
		}
		gw.waitReady(t, 90*time.Second)
		// OTEL_SERVICE_NAME unset: each names itself.
		service := func(component string) string { return "butakero-" + component }
		checkSongTrace(t, jaeger, gw, files.URL("traced.m4a"), service)
		checkFailedFetchTrace(t, jaeger, gw, service)
	})
	// Spans sent later have arrived: any the first process sent would
	// have too.
	if unsetTrace != "" && !t.Failed() {
		spans, err := jaeger.Trace(context.Background(), unsetTrace)
		if err != nil {
			t.Fatal(err)
		}
		if len(spans) != 0 {
			t.Errorf("without OTEL_* the all-in-one sent %d spans of its song's trace", len(spans))
		}
	}
}

// tracedStart asks gw for song as a client in trace traceID whose own span
// is parentID, and returns the operation id.
func tracedStart(t *testing.T, gw *proc, song string) (opID, traceID, parentID string) {
	t.Helper()
	traceID, parentID = randomHex(t, 16), randomHex(t, 8)
	req, err := http.NewRequest(http.MethodPost, gw.base+"/api/audio/start?song="+url.QueryEscape(song), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		OperationID string `json:"operation_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("start %s: HTTP %d, %v", song, resp.StatusCode, err)
	}
	return body.OperationID, traceID, parentID
}

// spansOf are the spans of trace that name operation opID (the stage
// attempts, the recorder's) and the named ones among them.
func opSpans(spans []jaegertest.Span, opID, name string) []jaegertest.Span {
	var out []jaegertest.Span
	for _, s := range spans {
		if s.Name == name && s.Tag("butakero.operation_id") == opID {
			out = append(out, s)
		}
	}
	return out
}

// one is the only span of spans, failing the test otherwise.
func one(t *testing.T, what string, spans []jaegertest.Span) jaegertest.Span {
	t.Helper()
	if len(spans) != 1 {
		t.Fatalf("%d %s spans, want 1: %+v", len(spans), what, spans)
	}
	return spans[0]
}

// checkSongTrace asks for song and checks its trace: every component's
// spans, parented as the events flowed (song.requested published in the
// request's span, video.resolved in the resolve attempt's…), with the
// operation, song, attempt and outcome on each attempt.
func checkSongTrace(t *testing.T, j *jaegertest.Jaeger, gw *proc, song string, service func(component string) string) {
	t.Helper()
	opID, traceID, clientSpan := tracedStart(t, gw, song)
	op := gw.waitFinal(t, opID, 2*time.Minute)
	if op.Status != "success" {
		t.Fatalf("operation ended %q: %s", op.Status, op.Message)
	}
	// Complete once the recorder's span of upload.done is there, and
	// ffmpeg's (the encode attempt ends after them): the five events of
	// the history; the recorder applies the fetcher's audio.arriving
	// announcement too, which is no step of it.
	spans := j.WaitTrace(t, traceID, time.Minute, func(spans []jaegertest.Span) bool {
		records := 0
		for _, s := range opSpans(spans, opID, "record") {
			if s.Tag("butakero.outcome") == "ok" && s.Tag("butakero.event_type") != events.TypeAudioArriving {
				records++
			}
		}
		return records == 5 && len(opSpans(spans, opID, "encode")) == 1
	})

	var request []jaegertest.Span
	for _, s := range spans {
		if s.Name == "POST /api/audio/start" {
			request = append(request, s)
		}
	}
	gwSpan := one(t, "gateway request", request)
	if gwSpan.ParentID != clientSpan || gwSpan.Service != service("gateway") || gwSpan.Tag("http.response.status_code") != "200" ||
		gwSpan.Tag("butakero.operation_id") != opID {
		t.Errorf("request span: parent %s service %s tags %v; want parent %s (the client's), service %s, status 200, operation %s",
			gwSpan.ParentID, gwSpan.Service, gwSpan.Tags, clientSpan, service("gateway"), opID)
	}
	stages := map[string]jaegertest.Span{}
	parent := gwSpan
	for _, st := range []struct{ name, component string }{{"resolve", "resolver"}, {"fetch", "fetcher"}, {"encode", "encoder"}} {
		s := one(t, st.name, opSpans(spans, opID, st.name))
		if s.ParentID != parent.SpanID {
			t.Errorf("%s span's parent is %s, want the %s span %s that published its event", st.name, s.ParentID, parent.Name, parent.SpanID)
		}
		if s.Service != service(st.component) {
			t.Errorf("%s span from service %q, want %q", st.name, s.Service, service(st.component))
		}
		// The song id is the message's: song.requested may not know it yet.
		if song := s.Tag("butakero.song_id"); s.Tag("butakero.attempt") != "1" || s.Tag("butakero.outcome") != "ok" || s.Error() ||
			(song != op.SongID && !(st.name == "resolve" && song == "")) {
			t.Errorf("%s span tags %v; want attempt 1, outcome ok, song %s, no error", st.name, s.Tags, op.SongID)
		}
		stages[st.name] = s
		parent = s
	}
	// The recorder applies every event: each of its spans is the child of
	// the span that published that event.
	publisher := map[string]jaegertest.Span{
		"butakero.song.requested.v1":   gwSpan,
		"butakero.video.resolved.v1":   stages["resolve"],
		"butakero.audio.arriving.v1":   stages["fetch"],
		"butakero.audio.downloaded.v1": stages["fetch"],
		"butakero.dca.encoded.v1":      stages["encode"],
		"butakero.upload.done.v1":      stages["encode"],
	}
	seen := map[string]bool{}
	for _, s := range opSpans(spans, opID, "record") {
		typ := s.Tag("butakero.event_type")
		want, ok := publisher[typ]
		if !ok || seen[typ] {
			t.Errorf("unexpected record span of %s", typ)
			continue
		}
		seen[typ] = true
		if s.ParentID != want.SpanID || s.Service != service("recorder") {
			t.Errorf("record span of %s: parent %s service %s; want parent %s (%s), service %s", typ, s.ParentID, s.Service, want.SpanID, want.Name, service("recorder"))
		}
	}
	// The encoder's ffprobe and ffmpeg runs are the children of its
	// encode or, for a song encoded as it downloaded, of its early_encode,
	// the child of the fetch that announced the download.
	encodes := map[string]bool{stages["encode"].SpanID: true}
	for _, s := range opSpans(spans, opID, "early_encode") {
		if s.ParentID != stages["fetch"].SpanID || s.Service != service("encoder") {
			t.Errorf("early_encode span: parent %s service %s; want the fetch span %s, service %s", s.ParentID, s.Service, stages["fetch"].SpanID, service("encoder"))
		}
		encodes[s.SpanID] = true
	}
	runs := map[string]int{}
	for _, s := range spans {
		if encodes[s.ParentID] {
			runs[s.Name]++
			if s.Error() {
				t.Errorf("%s span under the encode is an error: %v", s.Name, s.Tags)
			}
		}
	}
	if runs["ffprobe"] == 0 || runs["ffmpeg"] == 0 {
		t.Errorf("spans under the encode: %v; want ffprobe and ffmpeg runs", runs)
	}
}

// checkFailedFetchTrace asks for a YouTube video, which cannot be
// downloaded without a network: the fetch attempt is an error span with
// the operation's failure code, the yt-dlp run an error span under it,
// and the recorder's span of operation.failed its child.
func checkFailedFetchTrace(t *testing.T, j *jaegertest.Jaeger, gw *proc, service func(string) string) {
	t.Helper()
	opID, traceID, _ := tracedStart(t, gw, "https://youtu.be/dQw4w9WgXcQ")
	op := gw.waitFinal(t, opID, 2*time.Minute)
	if op.Status != "failed" || op.Stage != "failed" || op.ErrorCode == "" {
		t.Fatalf("the YouTube song ended %+v; want failed with a code", op)
	}
	spans := j.WaitTrace(t, traceID, time.Minute, func(spans []jaegertest.Span) bool {
		for _, s := range opSpans(spans, opID, "record") {
			if s.Tag("butakero.event_type") == "butakero.operation.failed.v1" {
				return len(opSpans(spans, opID, "fetch")) == 1
			}
		}
		return false
	})
	fetch := one(t, "fetch", opSpans(spans, opID, "fetch"))
	if !fetch.Error() || fetch.Tag("butakero.failure_code") != op.ErrorCode || fetch.Tag("butakero.outcome") != "failed" || fetch.Service != service("fetcher") {
		t.Errorf("fetch span: error %v tags %v service %s; want an error span with butakero.failure_code %s, outcome failed, from %s",
			fetch.Error(), fetch.Tags, fetch.Service, op.ErrorCode, service("fetcher"))
	}
	var ytdlp []jaegertest.Span
	for _, s := range spans {
		if s.ParentID == fetch.SpanID && s.Name == "yt-dlp" {
			ytdlp = append(ytdlp, s)
		}
	}
	if y := one(t, "yt-dlp", ytdlp); !y.Error() {
		t.Errorf("the failed yt-dlp run's span is no error: %v", y.Tags)
	}
	for _, s := range opSpans(spans, opID, "record") {
		if s.Tag("butakero.event_type") == "butakero.operation.failed.v1" && s.ParentID != fetch.SpanID {
			t.Errorf("the recorder's span of operation.failed has parent %s, want the failed fetch %s", s.ParentID, fetch.SpanID)
		}
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
