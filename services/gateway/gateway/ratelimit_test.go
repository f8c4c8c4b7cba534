package gateway

import (
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	type step struct {
		advance   time.Duration // before the request
		client    string
		ok        bool
		remaining int
		retry     time.Duration // when refused
	}
	tests := []struct {
		name  string
		limit int
		size  int // clients remembered
		steps []step
	}{
		{name: "a burst of the limit, then one per 60/limit s", limit: 3, size: 10, steps: []step{
			{client: "a", ok: true, remaining: 2},
			{client: "a", ok: true, remaining: 1},
			{client: "a", ok: true, remaining: 0},
			{client: "a", ok: false, retry: 20 * time.Second},
			{advance: 15 * time.Second, client: "a", ok: false, retry: 5 * time.Second},
			{advance: 5 * time.Second, client: "a", ok: true, remaining: 0},
			{advance: time.Minute, client: "a", ok: true, remaining: 2},
		}},
		{name: "clients have their own buckets", limit: 1, size: 10, steps: []step{
			{client: "a", ok: true},
			{client: "a", ok: false, retry: time.Minute},
			{client: "b", ok: true},
		}},
		{name: "a forgotten client starts full", limit: 1, size: 2, steps: []step{
			{client: "a", ok: true},
			{client: "b", ok: true},
			{client: "c", ok: true}, // a, least recently seen, is forgotten
			{client: "a", ok: true},
			{client: "c", ok: false, retry: time.Minute},
		}},
		{name: "0 disables", limit: 0, size: 10, steps: []step{
			{client: "a", ok: true}, {client: "a", ok: true}, {client: "a", ok: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newRateLimiterSized("requests", tc.limit, clock, tc.size)
			for i, st := range tc.steps {
				now = now.Add(st.advance)
				ok, remaining, _, retry := l.take(st.client)
				if ok != st.ok || remaining != st.remaining || retry.Round(time.Millisecond) != st.retry {
					t.Errorf("step %d: take(%s) = %v, %d left, retry %s; want %v, %d, %s", i, st.client, ok, remaining, retry, st.ok, st.remaining, st.retry)
				}
			}
			if l.enabled() && l.clients.Len() > tc.size {
				t.Errorf("%d clients remembered, want at most %d", l.clients.Len(), tc.size)
			}
		})
	}
}

func TestRateLimiterSpent(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRateLimiterSized("failures", 2, func() time.Time { return now }, 10)
	if spent, _ := l.spent("ip:a"); spent || l.clients.Len() != 0 {
		t.Fatalf("an unknown client is spent (%v) or remembered (%d)", spent, l.clients.Len())
	}
	l.take("ip:a")
	if spent, _ := l.spent("ip:a"); spent {
		t.Fatal("spent after one of two")
	}
	l.take("ip:a")
	if spent, retry := l.spent("ip:a"); !spent || retry != 30*time.Second {
		t.Fatalf("after two of two: spent %v, retry %s; want true, 30s", spent, retry)
	}
	now = now.Add(30 * time.Second)
	if spent, _ := l.spent("ip:a"); spent {
		t.Fatal("still spent once a token is back")
	}
}
