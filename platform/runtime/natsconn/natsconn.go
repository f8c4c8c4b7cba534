// Package natsconn dials and drains Butakero's connection to a NATS cluster,
// with the client authentication and TLS the configuration names.
package natsconn

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/nats-io/nats.go"
)

// Auth is what a client presents to NATS: a token (NATS_TOKEN), or a user
// and a password (NATS_USER, NATS_PASSWORD). The zero Auth presents
// nothing. The embedded server requires the same Auth of every client
// (natsembed.Options.Auth).
type Auth struct {
	Token    string
	User     string
	Password string
}

// AuthOf returns the Auth cfg names.
func AuthOf(cfg config.Config) Auth {
	return Auth{Token: cfg.NATSToken, User: cfg.NATSUser, Password: cfg.NATSPassword}
}

// IsZero reports whether a presents nothing.
func (a Auth) IsZero() bool { return a.Token == "" && a.User == "" }

// Options are the nats.go options that present a.
func (a Auth) Options() []nats.Option {
	switch {
	case a.Token != "":
		return []nats.Option{nats.Token(a.Token)}
	case a.User != "":
		return []nats.Option{nats.UserInfo(a.User, a.Password)}
	}
	return nil
}

// Connect dials the NATS cluster at cfg.NATSURL (comma-separated URLs) as
// name and keeps reconnecting for as long as the process runs. A cluster
// not up yet is retried in the background rather than failing the start,
// and each failed attempt whose reason differs from the last is logged
// (a refused password shows once, not twice a second).
//
// Authentication and TLS come from cfg (NATS_CREDS, NATS_TOKEN,
// NATS_USER/NATS_PASSWORD, NATS_TLS_CA, NATS_TLS_CERT/NATS_TLS_KEY; see
// Options). A file that cannot be read fails Connect at once, naming the
// variable, rather than every attempt in the background.
func Connect(cfg config.Config, name string, log *slog.Logger) (*nats.Conn, error) {
	if cfg.NATSURL == "" {
		return nil, errors.New("NATS_URL is empty: a service run alone needs a NATS cluster (or run the all-in-one `butakero`)")
	}
	auth, err := Options(cfg)
	if err != nil {
		return nil, err
	}
	var last lastError
	opts := append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if last.changed(err) {
				log.Warn("nats connection attempt failed; retrying", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			last.changed(nil)
			log.Info("nats reconnected", "url", c.ConnectedUrlRedacted())
		}),
		nats.ConnectHandler(func(c *nats.Conn) {
			last.changed(nil)
			log.Info("nats connected", "url", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats asynchronous error", "error", err)
		}),
	}, auth...)
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats connect: %w", err)
	}
	return nc, nil
}

// Options are the nats.go options of cfg's client authentication and TLS:
//
//   - NATS_CREDS: nats.UserCredentials (a chained credentials file: the
//     user JWT and NKey seed), re-read at every connection so a rotated file
//     is picked up;
//   - NATS_TOKEN: nats.Token;
//   - NATS_USER and NATS_PASSWORD: nats.UserInfo;
//   - NATS_TLS_CA: nats.RootCAs, the only CAs server certificates are
//     checked against (without it, the system's); setting it, or a client
//     certificate, requires TLS even for nats:// URLs;
//   - NATS_TLS_CERT and NATS_TLS_KEY: nats.ClientCert, for servers that
//     verify clients.
//
// config.Load has already refused contradictory settings; Options checks
// that every named file can be read.
func Options(cfg config.Config) ([]nats.Option, error) {
	for _, f := range []struct{ env, path string }{
		{"NATS_CREDS", cfg.NATSCreds},
		{"NATS_TLS_CA", cfg.NATSTLSCA},
		{"NATS_TLS_CERT", cfg.NATSTLSCert},
		{"NATS_TLS_KEY", cfg.NATSTLSKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			return nil, fmt.Errorf("%s: %w", f.env, err)
		}
	}
	var opts []nats.Option
	switch {
	case cfg.NATSCreds != "":
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	case cfg.NATSToken != "":
		opts = append(opts, nats.Token(cfg.NATSToken))
	case cfg.NATSUser != "":
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	if cfg.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCA))
	}
	if cfg.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSTLSCert, cfg.NATSTLSKey))
	}
	return opts, nil
}

// lastError remembers the reason of the last failed connection attempt, so
// that a repeated reason is logged once. nats.go calls its handlers from
// one goroutine, but the mutex keeps that an implementation detail.
type lastError struct {
	mu  sync.Mutex
	msg string
}

// changed records err (nil after a success) and reports whether its message
// differs from the one recorded before.
func (l *lastError) changed(err error) bool {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if msg == l.msg {
		return false
	}
	l.msg = msg
	return true
}

// Drain flushes what the connection still has to send, unsubscribes, and
// closes it, waiting at most timeout.
func Drain(nc *nats.Conn, timeout time.Duration, log *slog.Logger) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		if !errors.Is(err, nats.ErrConnectionClosed) {
			log.Warn("nats drain", "error", err)
		}
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(timeout):
		nc.Close()
	}
}
