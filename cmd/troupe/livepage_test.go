package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
)

// chromiumPath is Debian's Chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// screenshotEnv names a file to write a PNG of the page with three hosts
// to (docs/live-page.png, shown in docs/operations.md):
//
//	TROUPE_SCREENSHOT=$PWD/docs/live-page.png go test ./cmd/troupe -run TestLivePage
const screenshotEnv = "TROUPE_SCREENSHOT"

// newBrowser starts headless Chromium with the flags this closed network
// needs and a fresh profile; it is stopped when t ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Skipf("the live page test needs Chromium at %s (Debian package chromium; .ci/run installs it): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// TestLivePage drives the live page of troupe dev in headless Chromium:
// with three hosts it lists three, and after one leaves, two, without a
// reload.
func TestLivePage(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	ui := natstest.FreeAddr(t)
	addr := natstest.FreeAddr(t)
	dev := startProc(t, "dev", "--listen", addr, "--store", t.TempDir(), "--ui", ui)
	url := "nats://" + addr
	waitFor(t, 20*time.Second, "troupe dev prints its URL", func() bool {
		return strings.HasPrefix(dev.stdout.String(), url+"\n")
	})
	h2UI := natstest.FreeAddr(t)
	startProc(t, "host", "-s", url, "--name", "h2", "--ui", h2UI) // troupe host serves it too
	h3 := startProc(t, "host", "-s", url, "--name", "h3")
	r := newRouter(t, url)
	waitFor(t, 20*time.Second, "three hosts in the table", func() bool { return len(r.Table().Members()) == 3 })
	// Ids until every host owns two, so that every host gets calls.
	var ids []placement.ActorID
	owned := map[placement.HostID]int{}
	for i := 0; len(owned) < 3 || minCount(owned) < 2; i++ {
		id := placement.ActorID(fmt.Sprintf("p%d", i))
		m, _ := r.Table().Owner("counter", id)
		owned[m.ID]++
		ids = append(ids, id)
	}
	for i, id := range ids {
		mustCall(t, url, strconv.Itoa(i), "counter", string(id), "add", strconv.Itoa(i))
	}
	// A light, steady load, for the call rates.
	loadCtx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	t.Cleanup(func() { stopLoad(); <-loadDone })
	go func() {
		defer close(loadDone)
		for i := 0; loadCtx.Err() == nil; i++ {
			cctx, cancel := context.WithTimeout(loadCtx, 5*time.Second)
			_, _ = r.Call(cctx, "counter", ids[i%len(ids)], "get", nil)
			cancel()
			time.Sleep(10 * time.Millisecond)
		}
	}()

	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+ui+"/")); err != nil {
		t.Fatalf("open the live page: %v", err)
	}
	// A mark on the window: a reload would lose it.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.troupeMark = 42`)); err != nil {
		t.Fatal(err)
	}
	rows := func() []string {
		ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('#hosts tr.host')].map(r => r.dataset.host)`))
		if err != nil {
			t.Fatalf("read the host rows: %v", err)
		}
		return ids
	}
	waitFor(t, 20*time.Second, "the page lists three hosts", func() bool { return len(rows()) == 3 })
	ringHosts, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`new Set([...document.querySelectorAll('svg[data-type="counter"] path')].map(p => p.dataset.host)).size`))
	if err != nil {
		t.Fatal(err)
	}
	if ringHosts != 3 {
		t.Errorf("the counter placement ring colours %d hosts, want 3", ringHosts)
	}
	waitFor(t, 10*time.Second, "the page shows the active actors and a call rate of each host", func() bool {
		actors, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`[...document.querySelectorAll('#hosts tr.host td:nth-child(5)')].map(td => td.textContent).join("|")`))
		if err != nil || strings.Count(actors, "counter: ") != 3 {
			return false
		}
		busy, err := chromedp.Run(ctx, chromedp.Evaluate[int](
			`[...document.querySelectorAll('#hosts tr.host td:nth-child(6)')].filter(td => parseFloat(td.textContent) > 0).length`))
		return err == nil && busy == 3
	})
	if path := os.Getenv(screenshotEnv); path != "" {
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	h3.signal(t, syscall.SIGTERM)
	if code := h3.exitCode(t, 20*time.Second); code != 0 {
		t.Errorf("troupe host h3 exited %d after SIGTERM", code)
	}
	waitFor(t, 20*time.Second, "the page lists two hosts", func() bool {
		ids := rows()
		return len(ids) == 2 && !strings.Contains(strings.Join(ids, " "), "h3")
	})
	// h2's page has the same news, in its JSON.
	waitFor(t, 10*time.Second, "h2's live page lists two hosts", func() bool {
		resp, err := http.Get("http://" + h2UI + "/api/state")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var snap struct {
			ServedBy string `json:"served_by"`
			Hosts    []struct{ ID string }
		}
		return json.NewDecoder(resp.Body).Decode(&snap) == nil && snap.ServedBy == "h2" && len(snap.Hosts) == 2
	})
	if mark, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.troupeMark`)); err != nil || mark != 42 {
		t.Errorf("window.troupeMark = %d (%v) after the change: the page reloaded", mark, err)
	}
	history, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("history").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(history, "−h3") {
		t.Errorf("the table history %q does not show h3 leaving", history)
	}
}

func minCount(m map[placement.HostID]int) int {
	n := -1
	for _, c := range m {
		if n < 0 || c < n {
			n = c
		}
	}
	return n
}
