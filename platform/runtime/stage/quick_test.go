package stage_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/stage"
)

// TestQuickBesideSlots: a worker with one slot and three messages held at
// once. A slow message (A) holds the slot until its STAGE_TIMEOUT ends;
// a message Quick cannot answer (B) waits for the slot meanwhile, and a
// message Quick answers (C) is answered beside them. B's timeout starts
// when it has the slot, not when it was pulled; and while B waits the
// worker pulls nothing more (D stays in the consumer). B leaves Quick only
// once C is in Quick, so that both are pulled before B waits (a pull after
// B waits would not take C), and C is answered only once B waits, so that
// the pull after C finds B counted.
func TestQuickBesideSlots(t *testing.T) {
	env, ctx, cons := startConsumer(t, events.ConsumerResolver, 3, 60*time.Second)
	const timeout = 2 * time.Second
	publish := func(query string) string {
		opID := events.NewID()
		req, err := events.New(opID, "", events.SongRequested{Query: query})
		if err != nil {
			t.Fatal(err)
		}
		env.Publish(t, req)
		return opID
	}
	query := func(d stage.Delivery) string { return d.Event.(events.SongRequested).Query }

	var mu sync.Mutex
	quickSeen := map[string]bool{}
	cAnswered := make(chan struct{})
	cInQuick := make(chan struct{})
	dPublished := make(chan struct{})
	bLeft := make(chan time.Duration, 1)
	aSawD := make(chan bool, 1)
	aStarted := make(chan struct{})
	testCtx := ctx
	var w *stage.Worker
	w = &stage.Worker{
		Stage: "resolve", JS: env.JS, Consumer: cons, MaxAttempts: 3, Timeout: timeout,
		Concurrency: 3, Slots: 1, Grace: time.Second, Cancellable: true,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Quick: func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
			q := query(d)
			mu.Lock()
			quickSeen[q] = true
			mu.Unlock()
			switch q {
			case "B":
				select {
				case <-cInQuick:
				case <-ctx.Done():
					t.Error("C never reached Quick")
				}
			case "C":
				close(cInQuick)
				// Answered once B waits for the slot: C's loop then
				// finds no room to pull D.
				if !stage.WaitForSlotWaiters(ctx, w, 1) {
					t.Error("B never waited for the slot")
				}
				return resolved(), nil
			}
			return nil, stage.ErrNotQuick
		},
		Handle: func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
			switch query(d) {
			case "A":
				if d.Attempt > 1 {
					return resolved(), nil
				}
				close(aStarted)
				select {
				case <-cAnswered:
				case <-ctx.Done():
					t.Error("C was not answered while A held the only slot")
				}
				select {
				case <-dPublished:
				case <-testCtx.Done():
				}
				<-ctx.Done() // A's STAGE_TIMEOUT
				mu.Lock()
				aSawD <- quickSeen["D"]
				mu.Unlock()
				return nil, ctx.Err()
			case "B":
				deadline, _ := ctx.Deadline()
				if d.Attempt != 1 {
					t.Errorf("B ran at attempt %d: its first attempt ended while it waited for the slot", d.Attempt)
				}
				bLeft <- time.Until(deadline)
			}
			return resolved(), nil
		},
	}
	publish("A")
	runWorker(t, ctx, w)
	select {
	case <-aStarted:
	case <-ctx.Done():
		t.Fatal("A never ran")
	}
	publish("B")
	c := publish("C")
	env.Next(ctx, t, events.KindVideoResolved, c)
	close(cAnswered)
	publish("D")
	close(dPublished)

	select {
	case left := <-bLeft:
		if left < timeout/2 {
			t.Errorf("B had %v of its %v timeout left when its handler started: the wait for the slot was charged to it", left, timeout)
		}
	case <-ctx.Done():
		t.Fatal("B never ran")
	}
	if <-aSawD {
		t.Error("the worker pulled D while B waited for the only slot")
	}
	waitAcked(ctx, t, cons)
}
