package cli

// The HTML graph in a real browser: headless Chromium (Debian's chromium
// package; scripts/test.sh installs it) opens the page from a file:// URL
// with every background request turned off and name resolution pointed
// nowhere, so it cannot reach the network; the test reads the DOM after
// the page's script ran and keeps a screenshot.
//
// Artifacts (the page and the screenshot) go to $ZONEWARDEN_ARTIFACTS,
// default $TMPDIR/testdata; the test logs their paths.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/demo"
	"github.com/zonewarden/zonewarden/internal/reach"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// findChromium returns the browser to run, or skips t (fails it when the
// test may not be skipped: CI=true or ZONEWARDEN_REQUIRE_DOCKER=1).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	msg := "no chromium on PATH (apt-get install chromium, or run sudo scripts/test.sh)"
	if testenv.Required() {
		t.Fatalf("%s (the test may not be skipped: %s=1 or CI=true)", msg, testenv.RequireEnv)
	}
	t.Skipf("skipped: %s (set %s=1 to make this a failure)", msg, testenv.RequireEnv)
	return ""
}

// headless runs chromium on a local page with extra flags and returns its
// standard output.
func headless(t *testing.T, chromium, page, fragment string, flags ...string) string {
	t.Helper()
	home := t.TempDir()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
		"--metrics-recording-only", "--no-pings",
		// Belt and braces: no name resolves and every proxied request
		// goes to a closed port, should anything try.
		"--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
		"--user-data-dir=" + filepath.Join(home, "profile"),
		"--hide-scrollbars",
	}
	args = append(args, flags...)
	args = append(args, "file://"+page+fragment)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(flags, " "), err, stderr.String())
	}
	return stdout.String()
}

func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ZONEWARDEN_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "testdata")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var (
	nodeTag = regexp.MustCompile(`<g class="node [^"]*"[^>]*>`)
	attrRe  = regexp.MustCompile(`([a-z-]+)="([^"]*)"`)
)

// renderedNodes returns the attributes of every node of the drawing in
// a dumped DOM.
func renderedNodes(dom string) []map[string]string {
	var out []map[string]string
	for _, tag := range nodeTag.FindAllString(dom, -1) {
		attrs := map[string]string{}
		for _, m := range attrRe.FindAllStringSubmatch(tag, -1) {
			attrs[m[1]] = m[2]
		}
		out = append(out, attrs)
	}
	return out
}

func TestGraphHTMLInChromium(t *testing.T) {
	chromium := findChromium(t)
	snapFile := demoSnapshot(t)
	snap := demo.Level0().Snapshot()
	page := filepath.Join(t.TempDir(), "demo.html")
	if code, _, stderr := run(t, "graph", "--snapshot", snapFile, "-o", page); code != 0 {
		t.Fatalf("zonewarden graph: exit %d: %s", code, stderr)
	}

	t.Run("renders", func(t *testing.T) {
		dom := headless(t, chromium, page, "", "--dump-dom")
		if !strings.Contains(dom, `data-panzoom="ready"`) {
			t.Error("the pan/zoom script did not run: no data-panzoom=ready on the page")
		}
		if !regexp.MustCompile(`class="zw-viewport" transform="translate\(`).MatchString(dom) {
			t.Error("the drawing was not fitted to the window: no transform on the viewport")
		}
		drawn := map[string]bool{}
		for _, n := range renderedNodes(dom) {
			drawn[n["data-container"]] = true
		}
		for _, c := range snap.Containers {
			if !drawn[c.Name] {
				t.Errorf("no node for container %s in the rendered page", c.Name)
			}
		}
		if n := strings.Count(dom, `class="zw-finding`); n == 0 {
			t.Error("no finding in the side panel")
		}
		if n := strings.Count(dom, "<tr data-peer="); n != len(snap.Containers) {
			t.Errorf("%d rows in the blast-radius ranking, want %d", n, len(snap.Containers))
		}
	})

	// Clicking a container (here: opening the page with #highlight=NAME)
	// colours its blast radius; the hops the page computes from the
	// drawing are reach's.
	a := reach.Analyze(snap, reach.Options{})
	for _, source := range []string{"staging-api", "metrics-agent", "dev-box", "session-cache"} {
		t.Run("highlight "+source, func(t *testing.T) {
			dom := headless(t, chromium, page, "#highlight="+source, "--dump-dom")
			if !strings.Contains(dom, `data-highlight="`+source+`"`) {
				t.Fatalf("the page did not highlight %s", source)
			}
			r, err := a.BlastRadius(source, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int{source: 0}
			for _, x := range r.Reachable {
				want[x.Name] = x.Hops
			}
			for _, n := range renderedNodes(dom) {
				name := n["data-container"]
				if name == "" {
					continue
				}
				got, err := strconv.Atoi(n["data-hops"])
				if err != nil {
					t.Errorf("node of %s has no data-hops after highlighting", name)
					continue
				}
				w, ok := want[name]
				if !ok {
					w = -1
				}
				if got != w {
					t.Errorf("%s: the page says %d hops from %s, reach says %d", name, got, source, w)
				}
			}
		})
	}

	// Two containers sharing one namespace and no network: only the
	// two-way namespace edge joins them.
	t.Run("shared namespace", func(t *testing.T) {
		dir := t.TempDir()
		snapFile := filepath.Join(dir, "ns.json")
		os.WriteFile(snapFile, []byte(`{"version": 1, "networks": [{"name": "app", "driver": "bridge", "icc": true}],
		  "containers": [{"name": "vpn", "state": "running", "network_mode": "none"},
		    {"name": "vpn-client", "state": "running", "network_mode": "container:vpn"},
		    {"name": "web", "state": "running", "network_mode": "app", "endpoints": [{"network": "app"}]}]}`), 0o644)
		page := filepath.Join(dir, "ns.html")
		if code, _, stderr := run(t, "graph", "--snapshot", snapFile, "-o", page); code != 0 {
			t.Fatalf("zonewarden graph: exit %d: %s", code, stderr)
		}
		for source, other := range map[string]string{"vpn": "vpn-client", "vpn-client": "vpn"} {
			hops := map[string]string{}
			for _, n := range renderedNodes(headless(t, chromium, page, "#highlight="+source, "--dump-dom")) {
				hops[n["data-container"]] = n["data-hops"]
			}
			if hops[source] != "0" || hops[other] != "1" || hops["web"] != "-1" {
				t.Errorf("highlight %s: hops %v, want %s 0, %s 1, web -1", source, hops, source, other)
			}
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		dir := artifactDir(t)
		shot := filepath.Join(dir, "graph-demo.png")
		os.Remove(shot)
		headless(t, chromium, page, "#highlight=staging-api", "--screenshot="+shot, "--window-size=1600,1000")
		png, err := os.ReadFile(shot)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10000 {
			t.Errorf("screenshot %s is not a PNG of a drawing (%d bytes)", shot, len(png))
		}
		kept := filepath.Join(dir, "graph-demo.html")
		if b, err := os.ReadFile(page); err == nil {
			os.WriteFile(kept, b, 0o644)
		}
		t.Logf("screenshot: %s (page: %s)", shot, kept)
	})
}
