// Package natsconn dials and drains Butakero's connection to a NATS cluster.
package natsconn

import (
	"errors"
	"fmt"
	"log/slog"
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

// Connect dials the NATS cluster at urls (comma-separated), presenting
// auth, and keeps reconnecting for as long as the process runs. A cluster
// not up yet is retried in the background rather than failing the start.
func Connect(urls, name string, auth Auth, log *slog.Logger) (*nats.Conn, error) {
	if urls == "" {
		return nil, errors.New("NATS_URL is empty: a service run alone needs a NATS cluster (or run the all-in-one `butakero`)")
	}
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
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	}, auth.Options()...)
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats connect: %w", err)
	}
	return nc, nil
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
