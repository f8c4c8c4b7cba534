// Package awstest starts real S3 and DynamoDB implementations for tests:
// versitygw (an S3 gateway on a posix directory, credentials enforced) and
// DynamoDB Local (in memory). Each starts once per test binary, on a random
// loopback port, the first time a test asks for it, and stops when Main's
// m.Run returns (or, failing that, when the test binary exits).
//
// The test command (make test, scripts/test.sh) installs both and names
// them in BUTAKERO_VERSITYGW and BUTAKERO_DYNAMODB_LOCAL_JAR; a test that
// needs one that is not there fails, saying to run make test. DynamoDB
// Local cannot listen on loopback only, so it is started only inside a
// private network namespace (where loopback is the only interface), which
// is how scripts/test.sh runs the tests.
//
// This package reads the environment: it is test infrastructure, not
// service code.
package awstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/butakero/butakero/platform/store/awsconfig"
	"github.com/butakero/butakero/platform/testkit/loopback"
)

// Environment variables the test command sets.
const (
	// EnvVersityGW is the path of the versitygw binary.
	EnvVersityGW = "BUTAKERO_VERSITYGW"
	// EnvDynamoDBLocalJar is the path of DynamoDBLocal.jar (its
	// DynamoDBLocal_lib directory beside it).
	EnvDynamoDBLocalJar = "BUTAKERO_DYNAMODB_LOCAL_JAR"
)

// Credentials and region of the servers. versitygw accepts only these;
// DynamoDB Local accepts any.
const (
	Region    = "us-east-1"
	AccessKey = "butakerotestkey"
	SecretKey = "butakero-test-secret-0123456789"
)

// startTimeout bounds one server's start, a JVM's included, on a loaded
// machine.
const startTimeout = 90 * time.Second

// Server is one running server.
type Server struct {
	// Endpoint is its base URL, http://127.0.0.1:<port>.
	Endpoint string
	name     string
	cmd      *exec.Cmd
	dir      string // removed at stop
	out      *bytes.Buffer
	exited   chan struct{}
}

// AWS returns an SDK configuration with the servers' region and
// credentials and no other source. Give Endpoint to the client.
func (s *Server) AWS() aws.Config { return awsconfig.Static(Region, AccessKey, SecretKey) }

var (
	mu      sync.Mutex
	s3srv   *Server
	s3err   error
	ddbsrv  *Server
	ddberr  error
	started []*Server
)

// S3 returns the versitygw server of this test binary, starting it on
// first use, or fails t.
func S3(t testing.TB) *Server {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if s3srv == nil && s3err == nil {
		s3srv, s3err = startVersityGW()
	}
	if s3err != nil {
		t.Fatalf("awstest: S3 (versitygw): %v", s3err)
	}
	return s3srv
}

// DynamoDB returns the DynamoDB Local server of this test binary, starting
// it on first use, or fails t.
func DynamoDB(t testing.TB) *Server {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if ddbsrv == nil && ddberr == nil {
		ddbsrv, ddberr = startDynamoDBLocal()
	}
	if ddberr != nil {
		t.Fatalf("awstest: DynamoDB Local: %v", ddberr)
	}
	return ddbsrv
}

// Main runs the tests of a package that uses this one and stops the
// servers afterwards: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops every server started so far and removes their files.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	for _, s := range started {
		s.stop()
	}
	started = nil
	s3srv, ddbsrv, s3err, ddberr = nil, nil, nil, nil
}

// Name returns a fresh name for a bucket or table: prefix, '-' and 12
// random hex digits (lower-case, valid for both).
func Name(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func missing(what, env string) error {
	return fmt.Errorf("%s not found: run make test, which installs it and sets %s (or set %s yourself)", what, env, env)
}

func startVersityGW() (*Server, error) {
	bin := os.Getenv(EnvVersityGW)
	if bin == "" {
		return nil, missing("versitygw", EnvVersityGW)
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, missing("versitygw ("+err.Error()+")", EnvVersityGW)
	}
	dir, err := os.MkdirTemp("", "butakero-versitygw-")
	if err != nil {
		return nil, err
	}
	return start("versitygw", dir, func(port int) *exec.Cmd {
		return exec.Command(bin,
			"--access", AccessKey, "--secret", SecretKey, "--region", Region,
			"--port", "127.0.0.1:"+strconv.Itoa(port), "--quiet",
			"posix", dir)
	})
}

func startDynamoDBLocal() (*Server, error) {
	jar := os.Getenv(EnvDynamoDBLocalJar)
	if jar == "" {
		return nil, missing("DynamoDB Local", EnvDynamoDBLocalJar)
	}
	if _, err := os.Stat(jar); err != nil {
		return nil, missing("DynamoDB Local ("+err.Error()+")", EnvDynamoDBLocalJar)
	}
	if err := privateNetwork(); err != nil {
		return nil, err
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, errors.New("java not found: DynamoDB Local needs Java 17 or newer (make test checks it)")
	}
	lib := filepath.Join(filepath.Dir(jar), "DynamoDBLocal_lib")
	return start("DynamoDB Local", "", func(port int) *exec.Cmd {
		cmd := exec.Command(java, "-Xms64m", "-Xmx256m", "-Djava.library.path="+lib,
			"-jar", jar, "-inMemory", "-port", strconv.Itoa(port))
		cmd.Dir = filepath.Dir(jar)
		return cmd
	})
}

// privateNetwork fails unless loopback is the only network interface: the
// sign of the private network namespace DynamoDB Local must run in, since
// it listens on every interface.
func privateNetwork() error {
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list network interfaces: %w", err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return fmt.Errorf("DynamoDB Local listens on every interface, and this process sees %q: run the tests with make test, which runs them in a private network namespace", i.Name)
		}
	}
	return nil
}

// start runs the command newCmd builds for a free port until it answers
// HTTP, trying a few ports in case one is taken in between.
func start(name, dir string, newCmd func(port int) *exec.Cmd) (*Server, error) {
	var lastErr error
	for range 3 {
		port, err := loopback.Port()
		if err != nil {
			return nil, err
		}
		s := &Server{Endpoint: "http://127.0.0.1:" + strconv.Itoa(port), name: name, dir: dir, out: &bytes.Buffer{}, exited: make(chan struct{})}
		s.cmd = newCmd(port)
		s.cmd.Stdout = &syncWriter{w: s.out}
		s.cmd.Stderr = s.cmd.Stdout
		// Killed with the test binary if Stop is never called.
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		go func() { _ = s.cmd.Wait(); close(s.exited) }()
		if err := s.waitAnswer(); err != nil {
			s.stop()
			lastErr = err
			continue
		}
		started = append(started, s)
		return s, nil
	}
	if dir != "" {
		os.RemoveAll(dir)
	}
	return nil, lastErr
}

// waitAnswer polls the server until any HTTP answer comes back.
func (s *Server) waitAnswer() error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited at start: %s", s.name, s.output())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer on %s within %s: %v; output: %s", s.name, s.Endpoint, startTimeout, err, s.output())
		}
	}
}

func (s *Server) output() string {
	w := s.cmd.Stdout.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(s.out.String())
}

// Pause stops the server's processes (SIGSTOP to its process group), as a
// store that hangs would: connections are still accepted by the kernel,
// and nothing answers. The server is shared by the test binary, so only a
// test that no other test runs beside should pause it; t.Cleanup resumes
// it if the test does not.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("awstest: pause %s: %v", s.name, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT) })
}

// Resume lets a paused server run again (SIGCONT).
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatalf("awstest: resume %s: %v", s.name, err)
	}
}

// stop ends the server's process group: SIGTERM, then SIGKILL after 10 s.
// A paused server is resumed so that it can act on the SIGTERM.
func (s *Server) stop() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
