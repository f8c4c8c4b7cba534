// Package audiofixture makes audio files with the real ffmpeg at test time
// and serves them from a loopback HTTP server, the way yt-dlp would find
// media on the web.
package audiofixture

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// Server serves dir over HTTP on 127.0.0.1 and counts requests per path.
type Server struct {
	*httptest.Server
	hits *hitCounter
}

// Serve starts a loopback file server for dir, stopped when t ends.
func Serve(t testing.TB, dir string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hc := newHitCounter()
	fs := http.FileServer(http.Dir(dir))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hc.add(r.URL.Path)
		fs.ServeHTTP(w, r)
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &Server{Server: srv, hits: hc}
}

// URL is the address of the fixture called name.
func (s *Server) URL(name string) string { return fmt.Sprintf("%s/%s", s.Server.URL, name) }

// Hits is how many requests asked for path ("/name").
func (s *Server) Hits(path string) int { return s.hits.get(path) }

// TotalHits is how many requests the server answered, whatever the path.
func (s *Server) TotalHits() int { return s.hits.total() }
