package workers_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/runtime/workers"
)

func TestRun(t *testing.T) {
	errA, errB := errors.New("a"), errors.New("b")
	cases := []struct {
		name  string
		fails map[int]error
		want  []error
	}{
		{name: "all succeed", fails: nil},
		{name: "one fails", fails: map[int]error{2: errA}, want: []error{errA}},
		{name: "two fail", fails: map[int]error{0: errA, 3: errB}, want: []error{errA, errB}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ran := make([]bool, 4)
			err := workers.Run(len(ran), func(i int) error {
				ran[i] = true
				return tc.fails[i]
			})
			for i, r := range ran {
				if !r {
					t.Errorf("loop %d did not run", i)
				}
			}
			if len(tc.want) == 0 && err != nil {
				t.Fatalf("Run: %v, want nil", err)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("Run: %v, want it to hold %v", err, w)
				}
			}
		})
	}
}

func TestGrace(t *testing.T) {
	t.Run("outlives its parent", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		work, done := workers.Grace(ctx, time.Hour)
		defer done()
		cancel()
		if work.Err() != nil {
			t.Fatalf("work ended with its parent: %v", work.Err())
		}
	})
	t.Run("ends once the grace has passed", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		work, done := workers.Grace(ctx, time.Millisecond)
		defer done()
		cancel()
		select {
		case <-work.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("work did not end after the grace")
		}
	})
	t.Run("cancel ends it at once", func(t *testing.T) {
		work, done := workers.Grace(context.Background(), time.Hour)
		done()
		if work.Err() == nil {
			t.Fatal("work outlived its cancel")
		}
	})
}
