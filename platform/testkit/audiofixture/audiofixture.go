// Package audiofixture makes audio files with the real ffmpeg at test time
// and serves them from a loopback HTTP server, the way the fetcher finds
// media on the web.
package audiofixture

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Spec describes one fixture.
type Spec struct {
	// Name is the file name, whose extension picks the container.
	Name string
	// Duration of the tone.
	Duration time.Duration
	// Args are ffmpeg output options (codec, rate, channels…).
	Args []string
	// Video adds a test-pattern video track.
	Video bool
}

// Common fixtures: one per container and codec the pipeline must take.
func M4A(name string, d time.Duration) Spec {
	return Spec{Name: name, Duration: d, Args: []string{"-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"}}
}
func MP3(name string, d time.Duration) Spec {
	return Spec{Name: name, Duration: d, Args: []string{"-c:a", "libmp3lame", "-b:a", "128k"}}
}
func WebMOpus(name string, d time.Duration) Spec {
	return Spec{Name: name, Duration: d, Args: []string{"-c:a", "libopus", "-b:a", "96k"}}
}
func OggVorbis(name string, d time.Duration) Spec {
	return Spec{Name: name, Duration: d, Args: []string{"-c:a", "libvorbis", "-q:a", "3"}}
}
func WAV(name string, d time.Duration) Spec {
	return Spec{Name: name, Duration: d, Args: []string{"-c:a", "pcm_s16le"}}
}
func Mono22k(name string, d time.Duration) Spec {
	return Spec{Name: name, Duration: d, Args: []string{"-c:a", "libmp3lame", "-ar", "22050", "-ac", "1"}}
}
func MP4Video(name string, d time.Duration) Spec {
	return Spec{Name: name, Duration: d, Video: true, Args: []string{"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart"}}
}

// Make writes the fixture into dir with ffmpeg and returns its path.
func Make(t testing.TB, dir string, s Spec) string {
	t.Helper()
	out := filepath.Join(dir, s.Name)
	secs := strconv.FormatFloat(s.Duration.Seconds(), 'f', 3, 64)
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=" + secs}
	if s.Video {
		args = append(args, "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration="+secs)
	}
	args = append(args, s.Args...)
	args = append(args, "-t", secs, out)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("audiofixture: ffmpeg %s: %v\n%s", s.Name, err, b)
	}
	return out
}

// Write writes raw bytes as a fixture (an empty or corrupt file).
func Write(t testing.TB, dir, name string, body []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// WriteNotAudio writes a fixture called name that no decoder reads as
// audio (10 kB of text), for a song that must fail as invalid audio, and
// returns its path.
func WriteNotAudio(t testing.TB, dir, name string) string {
	t.Helper()
	return Write(t, dir, name, []byte(strings.Repeat("this is not audio at all\n", 400)))
}

// Server serves dir over HTTP on loopback and counts requests per path.
type Server struct {
	*httptest.Server
	hits *hitCounter

	mu       sync.Mutex
	handlers map[string]http.Handler
}

// Serve starts a file server for dir on 127.0.0.1, stopped when t ends.
func Serve(t testing.TB, dir string) *Server {
	t.Helper()
	return ServeAt(t, dir, "127.0.0.1:0")
}

// ServeAt is Serve on the listen address addr ("[::1]:0").
//
// A file's Content-Type comes from its extension (contentTypes), the same
// on every machine, whatever /etc/mime.types says; other names get net/http's
// guess.
func ServeAt(t testing.TB, dir, addr string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{hits: newHitCounter(), handlers: map[string]http.Handler{}}
	fs := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.add(r.URL.Path)
		s.mu.Lock()
		h := s.handlers[r.URL.Path]
		s.mu.Unlock()
		if h != nil {
			h.ServeHTTP(w, r)
			return
		}
		if ct, ok := contentTypes[path.Ext(r.URL.Path)]; ok {
			w.Header().Set("Content-Type", ct)
		}
		fs.ServeHTTP(w, r)
	}))
	s.Server.Listener = ln
	s.Server.Start()
	t.Cleanup(s.Server.Close)
	return s
}

// contentTypes are the fixtures' media types.
var contentTypes = map[string]string{
	".m4a": "audio/mp4", ".mp3": "audio/mpeg", ".webm": "audio/webm", ".ogg": "audio/ogg",
	".wav": "audio/wav", ".mp4": "video/mp4", ".html": "text/html; charset=utf-8",
}

// Handle makes the server answer path ("/name") with h rather than a file:
// a redirect, a page, a chosen status. Its requests are counted as a file's.
func (s *Server) Handle(path string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[path] = h
}

// URL is the address of the fixture called name.
func (s *Server) URL(name string) string { return fmt.Sprintf("%s/%s", s.Server.URL, name) }

// Hits is how many requests asked for path ("/name").
func (s *Server) Hits(path string) int { return s.hits.get(path) }

// TotalHits is how many requests the server answered, whatever the path.
func (s *Server) TotalHits() int { return s.hits.total() }
