package app_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/services/encoder/dcafile"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, which scripts/test.sh installs.
const chromiumPath = "/usr/bin/chromium"

// newBrowser starts headless Chromium for the test and returns its
// context; every step derives its own timeout from it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the dashboard test needs Chromium at %s (run make test, which installs it): %v", chromiumPath, err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WSURLReadTimeout(60*time.Second),
	)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser and lives as long as ctx: no
	// timeout on it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// step runs browser actions with a time limit.
func step(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// watchStages records, in window.__stages, every state a stage shows
// ("fetch running 42%"), so the test sees the live progress it missed.
const watchStages = `(() => {
  window.__stages = [];
  const ops = document.getElementById("operations");
  new MutationObserver((ms) => {
    for (const m of ms) {
      const node = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      const row = node && node.closest(".stage");
      if (row) window.__stages.push(row.dataset.stage + " " + row.dataset.state + " " + row.querySelector(".stage-pct").textContent);
    }
  }).observe(ops, {subtree: true, attributes: true, childList: true, characterData: true});
  return true;
})()`

// TestDashboard uses the dashboard in headless Chromium against the real
// all-in-one behind an API key: request a song and watch it through, find
// it in the catalog, download its DCA, and see why a corrupt file failed.
func TestDashboard(t *testing.T) {
	media := t.TempDir()
	const songLen = 6 * time.Second
	audiofixture.Make(t, media, audiofixture.M4A("dashboard-tone.m4a", songLen))
	audiofixture.WriteNotAudio(t, media, "broken.mp3")
	srv := audiofixture.Serve(t, media)
	const key = "dashboard-key"
	in := start(t, t.TempDir(), map[string]string{"API_KEYS": key})
	ctx := newBrowser(t)
	downloads := t.TempDir()

	step(t, ctx, "open the dashboard",
		chromedp.Navigate(in.base+"/"),
		chromedp.WaitVisible(chromedp.ID("request-form")),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			yes := true
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: &yes,
			})
			return err
		}),
	)

	t.Run("without the key the request is refused", func(t *testing.T) {
		step(t, ctx, "request without a key",
			chromedp.SendKeys(chromedp.ID("query"), srv.URL("dashboard-tone.m4a")),
			chromedp.Click(chromedp.ID("request-button")),
			chromedp.WaitVisible(chromedp.ID("request-error")),
		)
		if msg := eval[string](t, ctx, `document.getElementById("request-error").textContent`); !strings.Contains(msg, "(unauthorized)") {
			t.Errorf("request error %q, want it to say unauthorized", msg)
		}
	})

	var songID string
	t.Run("a song goes through its stages", func(t *testing.T) {
		eval[bool](t, ctx, watchStages)
		step(t, ctx, "save the key and request",
			chromedp.SendKeys(chromedp.ID("api-key"), key),
			chromedp.Click(chromedp.CSS(`#key-form button[type="submit"]`)),
			chromedp.Click(chromedp.ID("request-button")), // the query is still typed
			chromedp.WaitVisible(chromedp.CSS(`li.op[data-status="success"]`)),
		)
		if stored := eval[string](t, ctx, `localStorage.getItem("butakero.apiKey")`); stored != key {
			t.Errorf("localStorage key %q, want %q", stored, key)
		}
		stages := eval[[]string](t, ctx, `[...document.querySelectorAll('li.op[data-status="success"] .stage')].map(s => s.dataset.stage + " " + s.dataset.state + " " + s.querySelector(".stage-pct").textContent + " " + s.querySelector(".fill").style.width)`)
		if want := []string{"resolve done done 100%", "fetch done done 100%", "encode done done 100%"}; strings.Join(stages, "|") != strings.Join(want, "|") {
			t.Errorf("stages %q, want %q", stages, want)
		}
		seen := eval[[]string](t, ctx, `window.__stages`)
		live := regexp.MustCompile(`^(fetch|encode) running \d+%$`)
		measured := false
		for _, s := range seen {
			measured = measured || live.MatchString(s)
		}
		if !measured {
			t.Errorf("no stage showed a running percentage; seen %q", seen)
		}
		songID = eval[string](t, ctx, `document.querySelector('li.op[data-status="success"] button.download').dataset.song`)
		if songID == "" {
			t.Fatal("the stored operation has no download button")
		}
	})
	if songID == "" {
		t.Fatal("no song stored: the cases below need one")
	}

	t.Run("the song is in the catalog", func(t *testing.T) {
		row := chromedp.CSS(`#songs tr[data-song="` + songID + `"]`)
		step(t, ctx, "catalog row", chromedp.WaitVisible(row))
		step(t, ctx, "search",
			chromedp.SendKeys(chromedp.ID("search"), "dashboard-tone"),
			chromedp.Click(chromedp.CSS(`#search-form button[type="submit"]`)),
			chromedp.WaitVisible(row),
		)
		text := eval[string](t, ctx, `document.querySelector('#songs tr[data-song="`+songID+`"]').textContent`)
		if !strings.Contains(text, "dashboard-tone") || !strings.Contains(text, "0:06") {
			t.Errorf("catalog row %q, want the title and the length 0:06", text)
		}
	})

	t.Run("the player loads the song from /ogg", func(t *testing.T) {
		// Clicked in the page, found as it is clicked: a catalog load that
		// answers late (the search's, or the one after the operation
		// ended) replaces the rows, and a node chromedp found a moment
		// before may be gone by its click.
		play := `document.querySelector('#songs tr[data-song="` + songID + `"] button.play')`
		step(t, ctx, "play button", chromedp.WaitVisible(chromedp.CSS(`#songs tr[data-song="`+songID+`"] button.play`)))
		if !eval[bool](t, ctx, `(`+play+`.click(), true)`) {
			t.Fatal("the play button was not clicked")
		}
		step(t, ctx, "player", chromedp.WaitVisible(chromedp.CSS(`#player-duration[data-seconds]`)))
		secs := eval[float64](t, ctx, `document.getElementById("player-audio").duration`)
		if got := time.Duration(secs * float64(time.Second)); (got - songLen).Abs() > 50*time.Millisecond {
			t.Errorf("the player reports %s, the song lasts %s", got, songLen)
		}
		if shown := eval[string](t, ctx, `document.getElementById("player-duration").textContent`); shown != "0:06" {
			t.Errorf("the player shows %q, want 0:06", shown)
		}
	})

	t.Run("download the DCA", func(t *testing.T) {
		// Subscribed before the click; the deadline ends the iteration.
		dctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		progress := chromedp.Events(dctx, browser.DownloadProgress)
		step(t, ctx, "click download", chromedp.Click(chromedp.CSS(`li.op[data-status="success"] button.download`)))
		var file string
		for ev, err := range progress {
			if err != nil {
				t.Fatalf("download: %v", err)
			}
			if ev.State == browser.DownloadProgressStateCanceled {
				t.Fatal("the download was cancelled")
			}
			if ev.State == browser.DownloadProgressStateCompleted {
				file = filepath.Join(downloads, ev.GUID)
				break
			}
		}
		if file == "" {
			t.Fatal("the download did not complete")
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		info, err := dcafile.Parse(f)
		if err != nil {
			t.Fatalf("the downloaded DCA does not parse: %v", err)
		}
		if diff := (info.Duration - songLen).Abs(); diff > songLen/100 {
			t.Errorf("the downloaded DCA covers %s, the song is %s", info.Duration, songLen)
		}
	})

	t.Run("a failure shows its reason", func(t *testing.T) {
		step(t, ctx, "request a corrupt file",
			chromedp.SendKeys(chromedp.ID("query"), srv.URL("broken.mp3")),
			chromedp.Click(chromedp.ID("request-button")),
			chromedp.WaitVisible(chromedp.CSS(`li.op[data-status="failed"] .op-error`)),
		)
		reason := eval[string](t, ctx, `document.querySelector('li.op[data-status="failed"] .op-error').textContent`)
		if !strings.Contains(reason, "(invalid_audio)") || len(reason) < len("(invalid_audio)")+10 {
			t.Errorf("failure shown as %q, want the reason and its code", reason)
		}
		failed := eval[[]string](t, ctx, `[...document.querySelectorAll('li.op[data-status="failed"] .stage[data-state="failed"]')].map(s => s.dataset.stage)`)
		if len(failed) != 1 {
			t.Errorf("failed stages %q, want the one that failed", failed)
		}
	})
}
