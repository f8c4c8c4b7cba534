package main

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/butakero/butakero/client"
)

// The stages the progress bar shows, in order.
var barStages = []string{"resolve", client.StageFetch, client.StageEncode}

// Stage states.
const (
	stWaiting = "waiting"
	stRunning = "running"
	stDone    = "done"
	stFailed  = "failed"
)

type barStage struct {
	state   string
	percent int // whole percent while running; -1 before any measure
}

// progressBar shows an operation's stages as it is followed. On a
// terminal it redraws one line in place with \r; elsewhere (a log, a
// pipe) it prints one line per change of a stage's state or whole
// percent. It is used from one goroutine.
type progressBar struct {
	w      io.Writer
	tty    bool
	stages map[string]*barStage
	drawn  int // length of the last line drawn on a terminal
}

func newProgressBar(w io.Writer, tty bool) *progressBar {
	b := &progressBar{w: w, tty: tty, stages: map[string]*barStage{}}
	for _, s := range barStages {
		b.stages[s] = &barStage{state: stWaiting, percent: -1}
	}
	return b
}

// update takes one message of the operation (Follow's callback).
func (b *progressBar) update(e client.Event) {
	switch e.Kind {
	case client.KindSongRequested:
		b.set("resolve", stRunning, -1)
	case client.KindVideoResolved:
		b.set("resolve", stDone, 100)
		b.set(client.StageFetch, stRunning, -1)
	case client.KindAudioDownloaded:
		b.set("resolve", stDone, 100)
		b.set(client.StageFetch, stDone, 100)
		b.set(client.StageEncode, stRunning, -1)
	case client.KindDCAEncoded, client.KindUploadDone:
		for _, s := range barStages {
			b.set(s, stDone, 100)
		}
	case client.KindOperationFailed:
		failed := ""
		if f := e.Failure(); f != nil {
			failed = f.Stage
		}
		if _, ok := b.stages[failed]; !ok {
			failed = b.running()
		}
		if failed != "" {
			b.set(failed, stFailed, b.stages[failed].percent)
		}
	case client.KindProgress:
		if st, ok := b.stages[e.Stage]; ok && st.state != stDone && st.state != stFailed {
			b.set(e.Stage, stRunning, int(math.Floor(min(max(e.Percent, 0), 100))))
		}
	}
}

// running is the first running stage, "" when none runs.
func (b *progressBar) running() string {
	for _, s := range barStages {
		if b.stages[s].state == stRunning {
			return s
		}
	}
	return ""
}

// set changes a stage and shows the change, if any.
func (b *progressBar) set(stage, state string, percent int) {
	st := b.stages[stage]
	if st.state == state && (percent == -1 || st.percent == percent) {
		return
	}
	st.state = state
	if percent != -1 || state != stRunning {
		st.percent = percent
	}
	if b.tty {
		b.redraw()
		return
	}
	switch {
	case state == stRunning && st.percent >= 0:
		fmt.Fprintf(b.w, "%s: %d%%\n", stage, st.percent)
	default:
		fmt.Fprintf(b.w, "%s: %s\n", stage, state)
	}
}

// redraw draws every stage on the terminal's current line.
func (b *progressBar) redraw() {
	parts := make([]string, 0, len(barStages))
	for _, s := range barStages {
		st := b.stages[s]
		switch {
		case st.state == stRunning && st.percent >= 0:
			parts = append(parts, fmt.Sprintf("%s %s %3d%%", s, bar(st.percent, 20), st.percent))
		case st.state == stRunning:
			parts = append(parts, s+" …")
		case st.state == stDone:
			parts = append(parts, s+" ✓")
		case st.state == stFailed:
			parts = append(parts, s+" ✗")
		default:
			parts = append(parts, s+" ·")
		}
	}
	line := strings.Join(parts, "  ")
	n := len([]rune(line))
	pad := ""
	if b.drawn > n {
		pad = strings.Repeat(" ", b.drawn-n)
	}
	b.drawn = n
	fmt.Fprint(b.w, "\r"+line+pad)
}

// bar is a width-wide bar filled to percent.
func bar(percent, width int) string {
	full := percent * width / 100
	return "[" + strings.Repeat("#", full) + strings.Repeat("-", width-full) + "]"
}

// finish ends the terminal's progress line.
func (b *progressBar) finish() {
	if b.tty && b.drawn > 0 {
		fmt.Fprintln(b.w)
		b.drawn = 0
	}
}
