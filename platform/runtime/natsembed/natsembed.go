// Package natsembed runs a JetStream-enabled nats-server inside the process,
// for the all-in-one's embedded default and for tests.
package natsembed

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configure the embedded server.
type Options struct {
	// StoreDir holds JetStream's files. States survive a restart on the
	// same directory.
	StoreDir string
	// Listen is "host:port" for a client listener. Empty means none: only
	// in-process connections reach the server. A listener needs Auth.
	Listen string
	// Auth is what every client must present, the in-process connections
	// of Connect included (they present it themselves): a token, or a user
	// and a password. Required with Listen, so that the stream and the
	// buckets are never open to whoever reaches the address; optional
	// without.
	Auth natsconn.Auth
}

// Server is a running embedded server.
type Server struct {
	ns   *server.Server
	auth natsconn.Auth
}

// ErrListenWithoutAuth is Start's error for a listener without Auth.
var ErrListenWithoutAuth = errors.New("natsembed: a client listener needs authentication (a token, or a user and a password)")

// Start starts the server and waits until it accepts connections.
func Start(opts Options) (*Server, error) {
	so := &server.Options{
		ServerName: "butakero-embedded",
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		DontListen: true,
	}
	switch a := opts.Auth; {
	case a.Token != "" && a.User != "":
		return nil, errors.New("natsembed: a token or a user, not both")
	case a.Token != "":
		so.Authorization = a.Token
	case a.User != "" && a.Password != "":
		so.Username, so.Password = a.User, a.Password
	case a.User != "" || a.Password != "":
		return nil, errors.New("natsembed: a user needs a password")
	case opts.Listen != "":
		return nil, ErrListenWithoutAuth
	}
	if opts.Listen != "" {
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsembed: listen %q: %w", opts.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("natsembed: listen port %q: %w", port, err)
		}
		so.DontListen = false
		so.Host, so.Port = host, p
		if p == 0 {
			so.Port = server.RANDOM_PORT
		}
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("natsembed: server not ready within 30s")
	}
	return &Server{ns: ns, auth: opts.Auth}, nil
}

// Connect opens an in-process client connection with the given name,
// presenting the server's Auth.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	base := append([]nats.Option{nats.Name(name), nats.InProcessServer(s.ns), nats.MaxReconnects(-1)}, s.auth.Options()...)
	opts = append(base, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("natsembed: connect: %w", err)
	}
	return nc, nil
}

// ClientURL is the client listener's URL, or "" without one.
func (s *Server) ClientURL() string {
	if addr := s.ns.Addr(); addr != nil {
		return "nats://" + addr.String()
	}
	return ""
}

// Shutdown stops the server and waits for it to be down. JetStream flushes
// its files first.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
