package membudget

import (
	"math"
	"testing"
)

// fake is the runtime's limit and live heap.
type fake struct {
	limit int64
	live  uint64
	sets  []int64
}

func (f *fake) setLimit(n int64) int64 {
	old := f.limit
	if n >= 0 {
		f.limit = n
		f.sets = append(f.sets, n)
	}
	return old
}

func budget(bytes int64, f *fake) *Budget {
	b := New(bytes)
	b.setLimit, b.liveHeap = f.setLimit, func() uint64 { return f.live }
	return b
}

func TestHold(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name      string
		userLimit int64
		live      uint64
		want      int64
	}{
		{"the budget", math.MaxInt64, 4 * mib, 24 * mib},
		{"the live heap with headroom", math.MaxInt64, 40 * mib, 50 * mib},
		{"never above the user's GOMEMLIMIT", 16 * mib, 4 * mib, 16 * mib},
		{"nor above it with a big heap", 30 * mib, 40 * mib, 30 * mib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fake{limit: tt.userLimit, live: tt.live}
			b := budget(24*mib, f)
			r1 := b.Hold("song")
			if f.limit != tt.want {
				t.Fatalf("limit while held: %d, want %d", f.limit, tt.want)
			}
			r2 := b.Hold("song")
			r1()
			r1() // a second call does nothing
			if f.limit != tt.want {
				t.Fatalf("limit with one hold left: %d, want %d", f.limit, tt.want)
			}
			r2()
			if f.limit != tt.userLimit {
				t.Fatalf("limit once released: %d, want %d (the one before)", f.limit, tt.userLimit)
			}
			// Held again: the limit before is read again.
			r3 := b.Hold("song")
			if f.limit != tt.want {
				t.Fatalf("limit held again: %d, want %d", f.limit, tt.want)
			}
			r3()
			if f.limit != tt.userLimit {
				t.Fatalf("limit released again: %d, want %d", f.limit, tt.userLimit)
			}
		})
	}
}

func TestOff(t *testing.T) {
	var b *Budget = New(0)
	if b != nil {
		t.Fatalf("New(0) = %v, want nil", b)
	}
	b.Hold("song")() // sets nothing, does not panic
}

// TestPerSong: the work of one song (its download, encode and follows)
// shares the budget; each other song held at once adds a budget, and its
// release takes it away again.
func TestPerSong(t *testing.T) {
	const mib = 1 << 20
	f := &fake{limit: math.MaxInt64, live: 4 * mib}
	b := budget(24*mib, f)
	fetch := b.Hold("a")
	encode := b.Hold("a")
	follow := b.Hold("a")
	if f.limit != 24*mib {
		t.Fatalf("one song's three holds: limit %d MiB, want 24", f.limit/mib)
	}
	var others []func()
	for _, s := range []string{"b", "c", "d"} {
		others = append(others, b.Hold(s))
	}
	if f.limit != 4*24*mib {
		t.Fatalf("four songs: limit %d MiB, want 96", f.limit/mib)
	}
	for _, r := range others {
		r()
	}
	if f.limit != 24*mib {
		t.Fatalf("the other songs released: limit %d MiB, want 24", f.limit/mib)
	}
	fetch()
	encode()
	if f.limit != 24*mib {
		t.Fatalf("one hold of the song left: limit %d MiB, want 24", f.limit/mib)
	}
	follow()
	if f.limit != math.MaxInt64 {
		t.Fatalf("all released: limit %d, want none", f.limit)
	}
	// Never above the user's limit, whatever the songs.
	f.limit = 64 * mib
	var held []func()
	for _, s := range []string{"a", "b", "c", "d"} {
		held = append(held, b.Hold(s))
	}
	if f.limit != 64*mib {
		t.Fatalf("four songs under GOMEMLIMIT=64MiB: limit %d MiB", f.limit/mib)
	}
	for _, r := range held {
		r()
	}
}
