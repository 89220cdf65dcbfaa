package conntrack_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/conntrack"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/learn"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// loopHost is a snapshot of n running containers with addresses on the
// loopback range 127.64.0.0/16 (every 127/8 address is the host's own),
// so that the kernel tracks real connections between them without a
// single namespace: container i has 127.64.i/250.i%250+1.
func loopHost(n int) *inventory.Snapshot {
	snap := &inventory.Snapshot{Networks: []inventory.Network{{Name: "lrn", Driver: "bridge",
		Subnets: []inventory.Subnet{{Prefix: netip.MustParsePrefix("127.64.0.0/16")}}}}}
	for i := range n {
		snap.Containers = append(snap.Containers, inventory.Container{Name: fmt.Sprintf("c%d", i), State: "running",
			Endpoints: []inventory.Endpoint{{Network: "lrn", IPv4: loopAddr(i)}}})
	}
	return snap
}

func loopAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 64, byte(i / 250), byte(i%250 + 1)})
}

// server listens on container i's address and closes each connection
// when its client resets it.
func server(t testing.TB, i int) (netip.AddrPort, func()) {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(loopAddr(i), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = c.Read(make([]byte, 1))
				_ = c.Close()
			}()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String()), func() { _ = l.Close() }
}

// dial opens and resets one connection from container i to to.
func dial(i int, to netip.AddrPort) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: loopAddr(i).AsSlice()}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", to.String())
	if err != nil {
		return err
	}
	_ = c.(*net.TCPConn).SetLinger(0)
	return c.Close()
}

// TestWatchNamesNewConnections: a real connection between two addresses
// of the snapshot reaches the recorder as one flow, named, on the
// server's port, counted once per connection and once per answer; a
// refused one is counted, never answered.
func TestWatchNamesNewConnections(t *testing.T) {
	testenv.RequireRoot(t)
	w, err := conntrack.Watch(4 << 20)
	if err != nil {
		t.Fatal(err)
	}
	rec := learn.NewRecorder(learn.NewNamer(loopHost(10), nil))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- w.Record(ctx, rec)
	}()
	srv, stop := server(t, 9)
	defer stop()
	for range 3 {
		if err := dial(2, srv); err != nil {
			t.Fatal(err)
		}
	}
	// A port nothing listens on: refused, never answered.
	closed := netip.AddrPortFrom(srv.Addr(), 9)
	if dial(2, closed) == nil {
		t.Fatalf("%s answered", closed)
	}
	want := []string{fmt.Sprintf("c2 -> c9 %d/tcp x3, 3 answered", srv.Port()), "c2 -> c9 9/tcp x1, 0 answered"}
	slices.Sort(want)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var got []string
		for _, r := range rec.Records() {
			got = append(got, fmt.Sprintf("%s x%d, %d answered", r, r.Count, r.Answered))
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the records are %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after its context ended: %v", err)
	}
}

// BenchmarkLearnKeepsUp: 1,000 containers (loopback addresses), 50 of
// them servers, the others opening connections as fast as 16 clients
// can (each reset at once); the recorder must see every one of them.
// Reports connections/s made, connections lost (made but not recorded)
// and the heap the recorder holds.
func BenchmarkLearnKeepsUp(b *testing.B) {
	testenv.RequireRoot(b)
	const containers, servers, clients = 1000, 50, 16
	w, err := conntrack.Watch(64 << 20)
	if err != nil {
		b.Fatal(err)
	}
	rec := learn.NewRecorder(learn.NewNamer(loopHost(containers), nil))
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	go func() {
		_ = w.Record(ctx, rec)
	}()
	var srvs []netip.AddrPort
	for i := range servers {
		a, stop := server(b, containers-1-i)
		defer stop()
		srvs = append(srvs, a)
	}
	var next, failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				n := next.Add(1) - 1
				if n >= int64(b.N) {
					return
				}
				if dial(int(n)%(containers-servers), srvs[int(n)%servers]) != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	made := int64(b.N) - failed.Load()
	deadline := time.Now().Add(10 * time.Second)
	cs := rec.Counts()
	for (cs.Connections < made || cs.Answered < made) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		cs = rec.Counts()
	}
	seen := cs.Connections
	b.StopTimer()
	_, overflows := w.Stats()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	flows := cs.Flows
	b.ReportMetric(float64(made)/took.Seconds(), "conns/s")
	b.ReportMetric(float64(made-seen), "lost")
	b.ReportMetric(float64(overflows), "overflows")
	b.ReportMetric(float64(flows), "flows")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(made-cs.Answered), "unanswered")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB")
	}
	if seen < made || cs.Answered < made {
		b.Errorf("%d connections made, %d recorded, %d answered (%d socket overflows)", made, seen, cs.Answered, overflows)
	}
}
