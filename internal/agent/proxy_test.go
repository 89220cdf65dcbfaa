package agent_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/probe"
)

// readOnlyProxy serves the Docker API on a socket of its own, passing on
// only what a read-only socket proxy that allows containers, networks and
// events passes (GET /_ping, /containers/json, /networks, /networks/ID,
// /events), and
// refusing everything else with 403, as such proxies do. It returns the
// socket and the requests it refused.
func readOnlyProxy(t *testing.T) (string, func() []string) {
	t.Helper()
	allowed := regexp.MustCompile(`^(/v[0-9.]+)?/(_ping|containers/json|networks|networks/[0-9a-f]+|events)$`)
	var (
		mu      sync.Mutex
		refused []string
	)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: "http", Host: "docker"}) },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", "/var/run/docker.sock")
		}},
		FlushInterval: -1, // events stream
	}
	sock := filepath.Join(t.TempDir(), "proxy.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !allowed.MatchString(r.URL.Path) {
			mu.Lock()
			refused = append(refused, r.Method+" "+r.URL.Path)
			mu.Unlock()
			http.Error(w, "forbidden by the read-only proxy", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), refused...)
	}
}

// TestAgentBehindReadOnlyProxy: the agent keeps the policy with nothing
// but read access to containers, networks and events.
func TestAgentBehindReadOnlyProxy(t *testing.T) {
	h := newZoneHost(t)
	host, refused := readOnlyProxy(t)
	h.startAgentOn(host, false)
	id, name, err := h.client(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, func() string {
		if st, err := h.probe(id, h.svc, 80, 200*time.Millisecond); st != probe.Open {
			return fmt.Sprintf("%s -> svc:80 %s (%v): not admitted through the proxy", name, st, err)
		}
		return ""
	})
	if st, _ := h.probe(id, h.svc, 5432, 200*time.Millisecond); st == probe.Open {
		t.Errorf("%s reaches svc:5432, which the policy denies", name)
	}
	if r := refused(); len(r) > 0 {
		t.Errorf("the agent asked the read-only proxy for more than it allows: %q", r)
	}
}
