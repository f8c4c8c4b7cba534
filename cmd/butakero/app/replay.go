package app

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/store"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/services/recorder/recorder"
)

// recorderCheckWindow is how long Replay watches the recorder's consumer
// for a running recorder before it writes into JetStream KV.
const recorderCheckWindow = 2 * time.Second

// Replay rebuilds the operation and song projections from the event stream
// into the configured stores (`butakero replay`) and writes what it applied
// to out.
//
// In JetStream KV it first makes sure no recorder is running (KV writes are
// not conditional, so a recorder writing beside the replay could lose
// fields), then empties the buckets and applies every event again; but when
// the stream no longer holds its first events (STREAM_MAX_AGE,
// STREAM_MAX_BYTES, or a purge), it keeps the buckets: records of
// operations whose events are gone could not be rebuilt, and a replay
// deletes nothing. It then applies what the stream holds over the current
// records, which changes nothing for current ones and re-creates missing
// ones from the events left.
//
// In DynamoDB nothing is deleted: point the table variables at fresh
// tables to rebuild; into tables that already hold the projections the
// replay changes nothing, since every write is conditional on the last
// sequence applied. In the embedded mode, stop the running butakero first:
// one DATA_DIR serves one process.
func (m *Main) Replay(ctx context.Context, out io.Writer) error {
	_, js, closeNATS, err := m.connect()
	if err != nil {
		return err
	}
	defer closeNATS()
	stream, err := events.EnsureStream(ctx, js, m.Config.StreamReplicas, m.Config.StreamLimits())
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("replay: stream info: %w", err)
	}
	projections, where, err := store.Projections(ctx, m.Config, js)
	if err != nil {
		return err
	}
	if !m.Config.ProjectionsInDynamoDB() {
		if err := recorder.CheckNoRecorder(ctx, js, recorderCheckWindow); err != nil {
			return fmt.Errorf("replay refused: %w", err)
		}
		switch first := info.State.FirstSeq; {
		case info.State.Msgs == 0:
			fmt.Fprintln(out, "replay: the stream holds no events; the KV buckets operations and songs are kept as they are")
		case first > 1:
			fmt.Fprintf(out, "replay: the stream no longer holds its events before sequence %d; the KV buckets operations and songs are kept, and the events it holds are applied over them\n", first)
		default:
			if err := kvstore.Reset(ctx, js); err != nil {
				return err
			}
			fmt.Fprintln(out, "replay: emptied the KV buckets operations and songs")
		}
	}
	st, err := recorder.Replay(ctx, js, projections, m.Log)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "replay: read %d events (up to stream sequence %d) into %s: %d applied, %d already applied, %d undecodable\n",
		st.Events, st.LastSeq, "projections="+where, st.Applied, st.Events-st.Applied-st.Undecodable, st.Undecodable)
	return nil
}
