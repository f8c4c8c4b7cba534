// Package natsconn dials and drains Butakero's connection to a NATS cluster.
package natsconn

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Connect dials the NATS cluster at urls (comma-separated) and keeps
// reconnecting for as long as the process runs. A cluster not up yet is
// retried in the background rather than failing the start.
func Connect(urls, name string, log *slog.Logger) (*nats.Conn, error) {
	if urls == "" {
		return nil, errors.New("NATS_URL is empty: a service run alone needs a NATS cluster (or run the all-in-one `butakero`)")
	}
	nc, err := nats.Connect(urls,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
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
