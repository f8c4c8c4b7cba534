package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/butakero/butakero/events"
)

func TestRoundTrip(t *testing.T) {
	song := events.Song{ID: "dQw4w9WgXcQ", Title: "Never Gonna Give You Up", DurationMs: 213000, URL: "https://www.youtube.com/watch?v=dQw4w9WgXcQ", Source: "youtube"}
	cases := []struct {
		name    string
		ev      events.Event
		subject string
	}{
		{"song requested", events.SongRequested{Query: "never gonna give you up"}, "song.requested.op-1"},
		{"video resolved", events.VideoResolved{Song: song}, "video.resolved.op-1"},
		{"audio downloaded", events.AudioDownloaded{Song: song, Key: "staging/op-1.m4a", Size: 1234, Ext: "m4a"}, "audio.downloaded.op-1"},
		{"dca encoded", events.DCAEncoded{Frames: 10650, DurationMs: 213000, SourceDurationMs: 212990, BitrateKbps: 96}, "dca.encoded.op-1"},
		{"upload done", events.UploadDone{Song: song, Key: "audio/x.dca", Location: "nats://objects/b/audio/x.dca", Size: 99}, "upload.done.op-1"},
		{"loudness measured", events.LoudnessMeasured{Key: "audio/x.dca", LoudnessLUFS: ptr(-14.5), TruePeakDB: ptr(-1.2)}, "loudness.measured.op-1"},
		{"operation failed", events.OperationFailed{Stage: "encode", Code: events.CodeInvalidAudio, Message: "not audio", Attempts: 1}, "operation.failed.op-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, err := events.New("op-1", song.ID, tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			subject, err := env.Subject()
			if err != nil || subject != tc.subject {
				t.Fatalf("subject = %q, %v; want %q", subject, err, tc.subject)
			}
			body, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			got, ev, err := events.Decode(body)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.ID != env.ID || got.Type != tc.ev.Type() || got.OperationID != "op-1" || got.SongID != song.ID || !got.Time.Equal(env.Time) {
				t.Errorf("envelope = %+v, want %+v", got, env)
			}
			if !reflect.DeepEqual(ev, tc.ev) {
				t.Errorf("event = %#v, want %#v", ev, tc.ev)
			}
			if !strings.HasSuffix(got.Type, ".v1") {
				t.Errorf("type %q carries no version", got.Type)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name string
		body string
		want error
	}{
		{"not json", `{"id":`, events.ErrMalformed},
		{"unknown type", `{"id":"a","type":"butakero.song.requested.v9","operation_id":"op","data":{}}`, events.ErrUnknownType},
		{"data of the wrong shape", `{"id":"a","type":"butakero.song.requested.v1","operation_id":"op","data":{"query":5}}`, events.ErrMalformed},
		{"missing id", `{"type":"butakero.song.requested.v1","operation_id":"op","data":{}}`, events.ErrMalformed},
		{"operation id with a dot", `{"id":"a","type":"butakero.song.requested.v1","operation_id":"a.b","data":{}}`, events.ErrMalformed},
		{"operation id with a wildcard", `{"id":"a","type":"butakero.song.requested.v1","operation_id":"*","data":{}}`, events.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := events.Decode([]byte(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNextIsDeterministic(t *testing.T) {
	parent, err := events.New("op-1", "", events.SongRequested{Query: "x"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := events.Next(parent, "song", events.VideoResolved{Song: events.Song{ID: "song"}})
	b, _ := events.Next(parent, "song", events.VideoResolved{Song: events.Song{ID: "song"}})
	c, _ := events.Next(parent, "song", events.OperationFailed{Stage: "resolve"})
	if a.ID != b.ID {
		t.Errorf("two handlings of one parent gave ids %s and %s", a.ID, b.ID)
	}
	if a.ID == c.ID {
		t.Errorf("different event types share id %s", a.ID)
	}
	if a.OperationID != "op-1" || a.SongID != "song" {
		t.Errorf("next envelope = %+v", a)
	}
}

func TestFailureCodes(t *testing.T) {
	if !events.CodeInvalidAudio.Permanent() || events.CodeDownloadFailed.Permanent() || events.CodeInternal.Permanent() {
		t.Fatal("permanence of codes is wrong")
	}
	f := events.AsFailure(errors.New("dial tcp 10.0.0.1:4222: refused"))
	if f.Code != events.CodeInternal || strings.Contains(f.Message, "10.0.0.1") {
		t.Fatalf("internal error leaks to users: %+v", f)
	}
	wrapped := events.AsFailure(fmt.Errorf("resolve: %w", events.Fail(events.CodeNotFound, "no video found")))
	if wrapped.Code != events.CodeNotFound {
		t.Fatalf("wrapped failure lost its code: %+v", wrapped)
	}
}

func TestValidSongID(t *testing.T) {
	cases := []struct {
		name string
		id   string
		ok   bool
	}{
		{"youtube video id", "dQw4w9WgXcQ", true},
		{"direct URL id", "url-0123456789abcdef", true},
		{"longest", strings.Repeat("a", events.MaxSongIDLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", events.MaxSongIDLen+1), false},
		{"parent directory", "../../etc/x", false},
		{"dot dot alone", "..", false},
		{"absolute path", "/etc/passwd", false},
		{"windows separator", `a\b`, false},
		{"subject token", "a.b", false},
		{"space", "a b", false},
		{"NUL", "a\x00b", false},
		{"non-ASCII letter", "canción", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := events.ValidSongID(tc.id)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidSongID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
			}
			if err != nil && !errors.Is(err, events.ErrMalformed) {
				t.Errorf("error %v is not ErrMalformed", err)
			}
		})
	}
}

func TestSourceSeq(t *testing.T) {
	cases := []struct {
		name   string
		header string
		want   uint64
		ok     bool
	}{
		{name: "sourced with a transform", header: "BUTAKERO 42 *.*.* lanes.{{partition(16,3)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}", want: 42, ok: true},
		{name: "stream and sequence only", header: "BUTAKERO 7", want: 7, ok: true},
		{name: "another stream", header: "OTHER 42 > >"},
		{name: "no sequence", header: "BUTAKERO"},
		{name: "not a number", header: "BUTAKERO x > >"},
		{name: "empty", header: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := events.SourceSeq(tc.header)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("SourceSeq(%q) = %d, %v; want %d, %v", tc.header, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func ptr(v float64) *float64 { return &v }
