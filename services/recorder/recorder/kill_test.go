package recorder_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/butakero/butakero/platform/runtime/natsembed"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/services/recorder/recorder"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The child recorder process of TestSIGKILLMidLane: the test binary run
// again with these variables set.
const (
	envChildURL   = "BUTAKERO_TEST_RECORDER_URL"
	envChildToken = "BUTAKERO_TEST_RECORDER_TOKEN"
	envChildHold  = "BUTAKERO_TEST_RECORDER_HOLD" // "<operation id> <sequence>"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChildURL) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// runChild runs a recorder against the parent's server whose store never
// finishes the write of the held operation at the held sequence: it says
// "holding" on stdout and waits there to be killed.
func runChild() int {
	var opID string
	var seq uint64
	if _, err := fmt.Sscan(os.Getenv(envChildHold), &opID, &seq); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	nc, err := nats.Connect(os.Getenv(envChildURL), nats.Token(os.Getenv(envChildToken)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx := context.Background()
	kv, err := kvstore.Open(ctx, js, 1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	cfg, err := config.Load(config.FromMap(nil))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	store := &holdingStore{Store: kv, opID: opID, seq: seq}
	err = recorder.Run(ctx, recorder.Deps{JS: js, Store: store, Config: cfg, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	fmt.Fprintln(os.Stderr, "child: Run returned:", err)
	return 1
}

type holdingStore struct {
	*kvstore.Store
	opID string
	seq  uint64
}

func (s *holdingStore) PutOperationIf(ctx context.Context, op, prev projection.Operation) (bool, error) {
	if op.ID == s.opID && op.LastSeq == s.seq {
		fmt.Println("holding")
		select {} // until SIGKILL
	}
	return s.Store.PutOperationIf(ctx, op, prev)
}

// TestSIGKILLMidLane runs a recorder process that takes an operation's
// second event and is killed (SIGKILL) while it applies it, beside a
// recorder in this process sharing the lanes. The other lanes go on
// meanwhile; once the server gives the killed process's event to the
// survivor (after events.AckWait), the operation's events are applied in
// stream order and its record is that of the events applied one by one.
func TestSIGKILLMidLane(t *testing.T) {
	const token = "a-long-random-test-token-for-the-recorder-child"
	env := natstest.StartWith(t, natsembed.Options{Listen: "127.0.0.1:0", Auth: natsconn.Auth{Token: token}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kv := openStore(t, env)

	held := events.NewID()
	song := events.Song{ID: "kill-song", Title: "T"}
	history := []events.Event{events.SongRequested{Query: "q"}, events.VideoResolved{Song: song},
		events.UploadDone{Song: song, Key: "audio/kill-song.dca", Location: "nats://x", Size: 9}}
	var envs []events.Envelope
	for _, ev := range history {
		e, err := events.New(held, song.ID, ev)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	// The held operation's first event, so the child's hold is on the
	// second: the child applies the first, then hangs in the second.
	first := publishEnvelope(t, env, envs[0])

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), envChildURL+"="+env.Server.ClientURL(), envChildToken+"="+token,
		envChildHold+"="+held+" "+strconv.FormatUint(first+1, 10))
	child.Stderr = testWriter{t}
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	holding := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "holding" {
				close(holding)
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { _ = child.Wait(); close(exited) }()
	t.Cleanup(func() { _ = child.Process.Kill(); <-exited })

	// Only the child runs until it holds the second event.
	waitOp(ctx, t, env, held, upTo(first))
	second := publishEnvelope(t, env, envs[1])
	select {
	case <-holding:
	case <-exited:
		t.Fatal("the child recorder exited")
	case <-ctx.Done():
		t.Fatal("the child recorder never took the second event")
	}

	// A survivor sharing the lanes; other operations go on while the
	// child holds its lane's event.
	log := &orderLog{last: map[string]uint64{held: first}, failing: map[uint64]bool{}, applied: map[string]int{}}
	start(t, env, &orderStore{Store: kv, t: t, shared: log, name: "survivor"})
	third := publishEnvelope(t, env, envs[2])
	others := make([]string, 8)
	for i := range others {
		others[i] = events.NewID()
		publish(t, env, others[i], "", events.SongRequested{Query: "meanwhile"})
	}
	// Some of them are in other lanes than the held one (all eight in
	// the held lane: 16^-8), and those are applied while it is held.
	for applied := false; !applied; {
		for _, id := range others {
			if _, err := kv.Operation(ctx, id); err == nil {
				applied = true
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("no other operation was applied while one lane was held")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if op, err := kv.Operation(ctx, held); err != nil || op.LastSeq != first {
		t.Fatalf("before the kill the held operation is %+v (%v); want it at its first event", op, err)
	}

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	got := waitOp(ctx, t, env, held, upTo(third))
	for _, id := range others {
		waitOp(ctx, t, env, id, func(op projection.Operation) bool { return op.Stage == projection.StageRequested })
	}

	var want projection.Operation
	for i, e := range envs {
		want, _ = projection.Apply(want, projection.Song{}, e, history[i], []uint64{first, second, third}[i], e.Time)
	}
	if got != want {
		t.Fatalf("after the kill:\n got %+v\nwant %+v", got, want)
	}
}

var _ recorder.Store = (*holdingStore)(nil)
