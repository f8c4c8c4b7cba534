package app

import (
	"context"
	"fmt"
	"io"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/kvstore"
	"github.com/butakero/butakero/platform/standalone"
	"github.com/butakero/butakero/services/recorder/recorder"
	"github.com/nats-io/nats.go/jetstream"
)

// Replay rebuilds the operation and song projections from the event stream
// into the configured stores (`butakero replay`) and writes what it applied
// to out.
//
// In JetStream KV the buckets are emptied first, then every event is
// applied again. In DynamoDB nothing is deleted: point the table variables at
// fresh tables to rebuild; into tables that already hold the projections the
// replay changes nothing, since every write is conditional on the last
// sequence applied. In the embedded mode, stop the running butakero first:
// one DATA_DIR serves one process.
func (m *Main) Replay(ctx context.Context, out io.Writer) error {
	nc, closeNATS, err := m.connect()
	if err != nil {
		return err
	}
	defer closeNATS()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := events.EnsureStream(ctx, js, m.Config.StreamReplicas, m.Config.StreamLimits()); err != nil {
		return err
	}
	stores, err := standalone.OpenStores(ctx, m.Config, js)
	if err != nil {
		return err
	}
	if !m.Config.ProjectionsInDynamoDB() {
		if err := kvstore.Reset(ctx, js); err != nil {
			return err
		}
		fmt.Fprintln(out, "replay: emptied the KV buckets operations and songs")
	}
	st, err := recorder.Replay(ctx, js, stores.Projections, m.Log)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "replay: read %d events (up to stream sequence %d) into %s: %d applied, %d already applied, %d undecodable\n",
		st.Events, st.LastSeq, stores.Where, st.Applied, st.Events-st.Applied-st.Undecodable, st.Undecodable)
	return nil
}
