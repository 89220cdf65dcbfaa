package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultSocket is where the agent serves its control socket.
const DefaultSocket = "/run/zonewarden/agent.sock"

// Status is what /status answers: the agent's view of the host and of the
// firewall it keeps.
type Status struct {
	Policy          string    `json:"policy"`
	PolicyError     string    `json:"policy_error,omitempty"` // the file on disk is invalid; the previous policy is in force
	Table           string    `json:"table"`
	Docker          string    `json:"docker"`
	Started         time.Time `json:"started"`
	LastSync        time.Time `json:"last_sync"`
	LastSyncKind    string    `json:"last_sync_kind"`
	LastSyncSeconds float64   `json:"last_sync_seconds"`
	LastError       string    `json:"last_error,omitempty"`
	Containers      int       `json:"containers"`
	Admitted        int       `json:"admitted_containers"`
	Elements        int       `json:"set_elements"`
	Violations      []string  `json:"membership_violations"`
	Unmatched       []string  `json:"unmatched_containers"`
	// Fenced are the unmatched containers on a default: deny zone, denied
	// every flow of the zones ("c (on default: deny zone z)").
	Fenced []string `json:"fenced_containers"`
	// BoundEndpoints counts the endpoints whose addresses are bound to
	// their bridge port (the bridge table); UnboundEndpoints those of
	// running containers that are not, and Unbound says why.
	BoundEndpoints   int      `json:"bound_endpoints"`
	UnboundEndpoints int      `json:"unbound_endpoints"`
	Unbound          []string `json:"unbound,omitempty"`
	FlowLog          bool     `json:"denied_flow_log"`
	// Monitoring are the zones in monitor mode: their would-be drops are
	// let through, logged as would deny; WouldDeny counts those packets.
	Monitoring []string `json:"monitoring,omitempty"`
	WouldDeny  int64    `json:"would_deny_packets"`
	Resync     string   `json:"resync"`
	// Admission latency, from a container's Docker event to its
	// admission, over the latest AdmissionSamples admissions (at most
	// 1,024).
	AdmissionP50Ms   float64 `json:"admission_p50_ms"`
	AdmissionP99Ms   float64 `json:"admission_p99_ms"`
	AdmissionSamples int     `json:"admission_samples"`
}

// Healthy reports whether the agent keeps the firewall current: a sync
// succeeded within two resync periods and the last attempt did not fail.
func (s Status) Healthy(resync time.Duration) (bool, string) {
	switch {
	case s.LastSync.IsZero():
		return false, "no successful sync yet"
	case s.LastError != "":
		return false, "the last sync failed: " + s.LastError
	case time.Since(s.LastSync) > 2*resync+5*time.Second:
		return false, fmt.Sprintf("no successful sync for %s", time.Since(s.LastSync).Round(time.Second))
	}
	return true, "ok"
}

type statusBox struct {
	mu sync.Mutex
	s  Status
}

func (b *statusBox) set(f func(*Status)) {
	b.mu.Lock()
	f(&b.s)
	b.mu.Unlock()
}

func (b *statusBox) get() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.s
	s.Violations = slices.Clone(s.Violations)
	s.Unmatched = slices.Clone(s.Unmatched)
	s.Fenced = slices.Clone(s.Fenced)
	s.Unbound = slices.Clone(s.Unbound)
	s.Monitoring = slices.Clone(s.Monitoring)
	return s
}

// Status returns the agent's status now.
func (a *Agent) Status() Status {
	s := a.status.get()
	s.WouldDeny = a.flows.wouldDeny.Load()
	return s
}

// serve starts the control socket (and the loopback metrics listener).
func (a *Agent) serve(ctx context.Context) (stop func(), err error) {
	a.status.set(func(s *Status) {
		s.Policy, s.Table, s.Started, s.Resync = a.cfg.PolicyPath, "inet "+a.cfg.Table, time.Now(), a.cfg.Resync.String()
	})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := a.status.get().Healthy(a.cfg.Resync)
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, why)
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.Status())
	})
	mux.HandleFunc("/flows", func(w http.ResponseWriter, r *http.Request) {
		recent, ch, cancel := a.flows.subscribe()
		defer cancel()
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, fl := range recent {
			_ = enc.Encode(fl)
		}
		if r.URL.Query().Get("follow") == "" {
			return
		}
		flusher, _ := w.(http.Flusher)
		for {
			if flusher != nil {
				flusher.Flush()
			}
			select {
			case fl := <-ch:
				if enc.Encode(fl) != nil {
					return
				}
			case <-r.Context().Done():
				return
			case <-ctx.Done():
				return
			}
		}
	})

	var servers []*http.Server
	listen := func(ln net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go func() { _ = srv.Serve(ln) }()
	}
	if a.cfg.Socket != "" {
		ln, err := listenUnix(a.cfg.Socket)
		if err != nil {
			return nil, err
		}
		listen(ln, mux)
	}
	if a.cfg.MetricsAddr != "" {
		host, _, err := net.SplitHostPort(a.cfg.MetricsAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("--metrics-addr %s: serve metrics on a loopback address only (127.0.0.1:PORT or [::1]:PORT); scrape it through the host or the socket", a.cfg.MetricsAddr)
		}
		ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("cannot serve metrics on %s: %w", a.cfg.MetricsAddr, err)
		}
		only := http.NewServeMux()
		only.Handle("/metrics", mux)
		only.Handle("/healthz", mux)
		listen(ln, only)
	}
	return func() {
		for _, s := range servers {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.Shutdown(sctx)
			cancel()
		}
		if a.cfg.Socket != "" {
			_ = os.Remove(a.cfg.Socket)
		}
	}, nil
}

// listenUnix listens on a socket path, replacing a stale socket of a
// dead agent but refusing to take over a live one.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("another agent already serves %s: stop it first (or give --socket another path)", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// Client talks to a running agent over its control socket.
type Client struct {
	http *http.Client
}

// Dial returns a client for the agent at socket, or an error when none
// answers there.
func Dial(socket string) (*Client, error) {
	if _, err := os.Stat(socket); err != nil {
		return nil, fmt.Errorf("no agent socket at %s: %w", socket, err)
	}
	c := &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}}
	return c, nil
}

// Status asks the agent for its status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/status", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&s)
	return s, err
}

// Flows calls fn with the agent's recent denied flows and, with follow,
// every next one until ctx is done.
func (c *Client) Flows(ctx context.Context, follow bool, fn func(DeniedFlow) error) error {
	url := "http://agent/flows"
	if follow {
		url += "?follow=1"
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var fl DeniedFlow
		if err := json.Unmarshal(sc.Bytes(), &fl); err != nil {
			return fmt.Errorf("reading the agent's flows: %w", err)
		}
		if err := fn(fl); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return err
	}
	return nil
}
