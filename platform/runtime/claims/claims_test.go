package claims_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/runtime/claims"
	"github.com/butakero/butakero/platform/testkit/natstest"
)

// open starts a JetStream server for t and opens the claims bucket on it.
func open(t *testing.T, ttl time.Duration) *claims.Store {
	t.Helper()
	env := natstest.Start(t)
	s, err := claims.Open(context.Background(), env.JS, 1, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func acquire(t *testing.T, s *claims.Store, song, owner string) (*claims.Claim, claims.Record) {
	t.Helper()
	c, held, err := s.Acquire(context.Background(), song, owner)
	if err != nil {
		t.Fatalf("Acquire(%s, %s): %v", song, owner, err)
	}
	return c, held
}

// mustOwn checks that owner got the claim on song.
func mustOwn(t *testing.T, s *claims.Store, song, owner string) *claims.Claim {
	t.Helper()
	c, held := acquire(t, s, song, owner)
	if c == nil {
		t.Fatalf("%s did not get the claim on %s: held by %+v", owner, song, held)
	}
	return c
}

// mustBeHeld checks that owner did not get the claim and that it is held
// by holder in state.
func mustBeHeld(t *testing.T, s *claims.Store, song, owner, holder string, state claims.State) claims.Record {
	t.Helper()
	c, held := acquire(t, s, song, owner)
	if c != nil {
		t.Fatalf("%s got the claim on %s, want it held by %s", owner, song, holder)
	}
	if held.Owner != holder || held.State != state {
		t.Fatalf("claim on %s held as %+v, want owner %s state %s", song, held, holder, state)
	}
	return held
}

func TestClaims(t *testing.T) {
	s := open(t, 0)
	ctx := context.Background()
	// waitEndsWith has op-a own song and op-b wait on it, and checks that
	// op-b's Wait returns once op-a's claim ends with end.
	waitEndsWith := func(t *testing.T, song string, end func(c *claims.Claim) error) {
		t.Helper()
		c := mustOwn(t, s, song, "op-a")
		held := mustBeHeld(t, s, song, "op-b", "op-a", claims.StateWorking)
		waited := make(chan error, 1)
		go func() { waited <- s.Wait(ctx, song, held) }()
		if err := end(c); err != nil {
			t.Fatal(err)
		}
		if err := <-waited; err != nil {
			t.Fatalf("Wait: %v", err)
		}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, song string)
	}{
		{"a free claim is taken; another operation finds it held", func(t *testing.T, song string) {
			mustOwn(t, s, song, "op-a")
			mustBeHeld(t, s, song, "op-b", "op-a", claims.StateWorking)
		}},
		{"the owner's own redelivery gets its claim again", func(t *testing.T, song string) {
			first := mustOwn(t, s, song, "op-a")
			again := mustOwn(t, s, song, "op-a")
			// Both handles are the same operation's: each follows the
			// other's writes.
			for _, c := range []*claims.Claim{first, again, first} {
				if err := c.Refresh(ctx); err != nil {
					t.Errorf("Refresh: %v", err)
				}
			}
			mustBeHeld(t, s, song, "op-b", "op-a", claims.StateWorking)
			if err := again.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := first.Release(ctx); !errors.Is(err, claims.ErrLost) {
				t.Errorf("second Release: %v, want ErrLost", err)
			}
		}},
		{"a released claim is free for the next operation", func(t *testing.T, song string) {
			c := mustOwn(t, s, song, "op-a")
			if err := c.Release(ctx); err != nil {
				t.Fatal(err)
			}
			mustOwn(t, s, song, "op-b")
		}},
		{"a failed claim is reported, with its failure, to others", func(t *testing.T, song string) {
			c := mustOwn(t, s, song, "op-a")
			if err := c.Fail(ctx, "not_found", "no audio was found at this URL"); err != nil {
				t.Fatal(err)
			}
			held := mustBeHeld(t, s, song, "op-b", "op-a", claims.StateFailed)
			if held.Code != "not_found" || held.Message != "no audio was found at this URL" {
				t.Errorf("failure recorded as %+v", held)
			}
			// The owner itself, redelivered, may try again.
			mustOwn(t, s, song, "op-a")
		}},
		{"wait ends when the owner releases", func(t *testing.T, song string) {
			waitEndsWith(t, song, func(c *claims.Claim) error { return c.Release(ctx) })
			mustOwn(t, s, song, "op-b")
		}},
		{"wait ends when the owner fails", func(t *testing.T, song string) {
			waitEndsWith(t, song, func(c *claims.Claim) error { return c.Fail(ctx, "invalid_audio", "not audio") })
			mustBeHeld(t, s, song, "op-b", "op-a", claims.StateFailed)
		}},
		{"wait on a claim already gone returns at once", func(t *testing.T, song string) {
			if err := s.Wait(ctx, song, claims.Record{Owner: "op-a", State: claims.StateWorking}); err != nil {
				t.Fatalf("Wait: %v", err)
			}
		}},
		{"wait goes on while the owner only refreshes, and ends with ctx", func(t *testing.T, song string) {
			c := mustOwn(t, s, song, "op-a")
			held := mustBeHeld(t, s, song, "op-b", "op-a", claims.StateWorking)
			wctx, cancel := context.WithCancel(ctx)
			waited := make(chan error, 1)
			go func() { waited <- s.Wait(wctx, song, held) }()
			for range 3 {
				if err := c.Refresh(ctx); err != nil {
					t.Fatal(err)
				}
			}
			cancel()
			if err := <-waited; !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait: %v, want context.Canceled (refreshes are not a change)", err)
			}
		}},
		{"an invalid song id is refused", func(t *testing.T, _ string) {
			if _, _, err := s.Acquire(ctx, "a.b", "op-a"); err == nil {
				t.Error("Acquire of a.b: no error")
			}
			if err := s.Wait(ctx, "a*", claims.Record{}); err == nil {
				t.Error("Wait on a*: no error")
			}
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, "song-"+string(rune('a'+i)))
		})
	}
}

// TestTakeover lets an owner's claim expire (a short TTL, nobody
// refreshing: the owner died) and checks that the waiter is woken, takes
// the claim over, and that the old owner can neither refresh nor release
// the new owner's claim.
func TestTakeover(t *testing.T) {
	s := open(t, claims.MinTTL)
	ctx := context.Background()
	dead := mustOwn(t, s, "expiring", "op-dead")
	held := mustBeHeld(t, s, "expiring", "op-next", "op-dead", claims.StateWorking)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := s.Wait(wctx, "expiring", held); err != nil {
		t.Fatalf("Wait for the expiry: %v", err)
	}
	next := mustOwn(t, s, "expiring", "op-next")
	if err := dead.Refresh(ctx); !errors.Is(err, claims.ErrLost) {
		t.Errorf("the dead owner's Refresh: %v, want ErrLost", err)
	}
	if err := dead.Release(ctx); !errors.Is(err, claims.ErrLost) {
		t.Errorf("the dead owner's Release: %v, want ErrLost", err)
	}
	if err := dead.Fail(ctx, "not_found", "gone"); !errors.Is(err, claims.ErrLost) {
		t.Errorf("the dead owner's Fail: %v, want ErrLost", err)
	}
	mustBeHeld(t, s, "expiring", "op-other", "op-next", claims.StateWorking)
	if err := next.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestKeep checks that a kept claim outlives several TTLs: a waiter's
// Wait sees no change until the owner stops keeping it and releases it.
func TestKeep(t *testing.T) {
	const ttl = 2 * time.Second
	s := open(t, ttl)
	ctx := context.Background()
	c := mustOwn(t, s, "kept", "op-a")
	stop := c.Keep(ctx)
	held := mustBeHeld(t, s, "kept", "op-b", "op-a", claims.StateWorking)
	wctx, cancel := context.WithTimeout(ctx, 3*ttl)
	defer cancel()
	if err := s.Wait(wctx, "kept", held); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a kept claim: %v, want it still held after 3 TTLs", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Keep: %v", err)
	}
	mustBeHeld(t, s, "kept", "op-b", "op-a", claims.StateWorking)
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	mustOwn(t, s, "kept", "op-b")
}

func TestOpenRefusesShortTTL(t *testing.T) {
	env := natstest.Start(t)
	if _, err := claims.Open(context.Background(), env.JS, 1, time.Millisecond); err == nil {
		t.Error("Open with a 1ms TTL: no error")
	}
}
