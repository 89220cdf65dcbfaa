package probe_test

// Address plan: each test makes its own namespaces "zwp<8 hex>a" and
// "zwp<8 hex>b" joined by a veth pair: a = 198.19.K.1/30 and fd00:5a77:0:K::1/64,
// b = 198.19.K.2/30 and fd00:5a77:0:K::2/64, K a random byte. The host test
// joins namespace a to the host instead: host side 198.19.K.5/30, a side
// 198.19.K.6/30. 203.0.113.0/24 (TEST-NET-3) has no route anywhere, and
// 198.19.K.3 is on the link but unused. Namespace b drops tcp/9000 and
// udp/9001 with an nftables table of its own. No packet leaves these
// namespaces and the one host link.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// pair is two namespaces joined by a veth link.
type pair struct {
	a, b         *probe.Namespace
	aName, bName string
	a4, b4       netip.Addr
	a6, b6       netip.Addr
	k            byte
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func randomHex(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// newNetns makes a namespace with lo up, removed when t ends.
func newNetns(t *testing.T, name string) *probe.Namespace {
	t.Helper()
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("removing netns %s: %v %s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	ns, err := probe.OpenPath("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func newPair(t *testing.T) *pair {
	t.Helper()
	testenv.RequireRoot(t)
	r := randomHex(t, 5)
	id := hex.EncodeToString(r[:4])
	p := &pair{aName: "zwp" + id + "a", bName: "zwp" + id + "b", k: r[4]}
	p.a, p.b = newNetns(t, p.aName), newNetns(t, p.bName)
	p.a4 = netip.AddrFrom4([4]byte{198, 19, p.k, 1})
	p.b4 = netip.AddrFrom4([4]byte{198, 19, p.k, 2})
	p.a6 = netip.MustParseAddr(fmt.Sprintf("fd00:5a77:0:%x::1", p.k))
	p.b6 = netip.MustParseAddr(fmt.Sprintf("fd00:5a77:0:%x::2", p.k))
	run(t, "ip", "-n", p.aName, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", p.bName)
	for _, s := range []struct {
		ns, dev string
		v4, v6  netip.Addr
	}{{p.aName, "va", p.a4, p.a6}, {p.bName, "vb", p.b4, p.b6}} {
		run(t, "ip", "-n", s.ns, "addr", "add", s.v4.String()+"/30", "dev", s.dev)
		run(t, "ip", "-n", s.ns, "addr", "add", s.v6.String()+"/64", "dev", s.dev, "nodad")
		run(t, "ip", "-n", s.ns, "link", "set", s.dev, "up")
	}
	// IPv6 on a new link answers only once the kernel sees it ready (about
	// a second): wait until a probe from a gets b's refusal.
	waitReady(t, p.a, p.b6)
	// b drops two ports, so that probes to them time out.
	cmd := exec.Command("ip", "netns", "exec", p.bName, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet zwprobetest {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 9000 drop
		udp dport 9001 drop
	}
}
`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", p.bName, err, out)
	}
	return p
}

// waitReady polls until a TCP probe from ns to addr:1 is refused (nothing
// listens on port 1), or fails t after 10 s.
func waitReady(t *testing.T, ns *probe.Namespace, addr netip.Addr) {
	t.Helper()
	pr := &probe.Prober{Timeout: 100 * time.Millisecond}
	target := probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(addr, 1)}
	var r probe.Result
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if r = pr.Probe(context.Background(), ns, target); r.Status == probe.Refused {
			return
		}
	}
	t.Fatalf("%s never became reachable: last probe %v", addr, r)
}

func threadNetnsInode(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestDoRunsInsideAndLeavesThreadsInTheHost(t *testing.T) {
	p := newPair(t)
	hostIno, err := probe.Host().Inode()
	if err != nil {
		t.Fatal(err)
	}
	aIno, err := p.a.Inode()
	if err != nil {
		t.Fatal(err)
	}
	if aIno == hostIno {
		t.Fatalf("namespace a has the host's inode %d", hostIno)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- p.a.Do(func() error {
				var st unix.Stat_t
				if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
					return err
				}
				if st.Ino != aIno {
					return fmt.Errorf("inside Do the thread is in netns %d, want %d", st.Ino, aIno)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Every thread that ran fn went back to the host: goroutines that land
	// on any thread of the process see the host namespace.
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if ino := threadNetnsInode(t); ino != hostIno {
				t.Errorf("a thread was left in netns %d, want the host's %d", ino, hostIno)
			}
		}()
	}
	wg.Wait()

	self, err := probe.OpenPID(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if ino, _ := self.Inode(); ino != hostIno {
		t.Errorf("OpenPID(own pid) inode %d, want the host's %d", ino, hostIno)
	}
	if _, err := probe.OpenPath("/etc/hostname"); err == nil {
		t.Error("OpenPath accepted a file that is not a namespace")
	}
	if _, err := probe.OpenPID(0); err == nil {
		t.Error("OpenPID(0) succeeded")
	}
}

func TestProbeStatuses(t *testing.T) {
	p := newPair(t)
	l, err := probe.Listen(p.b, probe.ListenConfig{TCP: []uint16{8080, 9000}, UDP: []uint16{5353, 9001}, Banner: "bee"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if _, err := probe.Listen(p.b, probe.ListenConfig{TCP: []uint16{1}, Banner: "two words"}); err == nil {
		t.Error("Listen accepted a banner with a space")
	}

	tcp := func(a netip.Addr, port uint16) probe.Target {
		return probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(a, port)}
	}
	udp := func(a netip.Addr, port uint16) probe.Target {
		return probe.Target{Proto: probe.UDP, Addr: netip.AddrPortFrom(a, port)}
	}
	noRoute := netip.MustParseAddr("203.0.113.9")
	tests := []struct {
		to     probe.Target
		want   probe.Status
		banner string
	}{
		{tcp(p.b4, 8080), probe.Open, "bee"},
		{tcp(p.b6, 8080), probe.Open, "bee"},
		{udp(p.b4, 5353), probe.Open, "bee"},
		{udp(p.b6, 5353), probe.Open, "bee"},
		{tcp(p.b4, 8081), probe.Refused, ""},
		{tcp(p.b6, 8081), probe.Refused, ""},
		{udp(p.b4, 5354), probe.Refused, ""},
		{udp(p.b6, 5354), probe.Refused, ""},
		{tcp(p.b4, 9000), probe.Filtered, ""}, // listening, but dropped
		{tcp(p.b6, 9000), probe.Filtered, ""},
		{udp(p.b4, 9001), probe.Filtered, ""},
		{tcp(noRoute, 80), probe.Unreachable, ""},
		{udp(noRoute, 53), probe.Unreachable, ""},
		{tcp(p.a4, 8080), probe.Refused, ""}, // a's own address: the listener is in b only
	}
	pr := &probe.Prober{Timeout: 300 * time.Millisecond, ReadReply: true}
	jobs := make([]probe.Job, 0, len(tests))
	for _, tt := range tests {
		jobs = append(jobs, probe.Job{From: p.a, To: tt.to})
	}
	start := time.Now()
	results := pr.Run(context.Background(), jobs)
	elapsed := time.Since(start)
	for i, tt := range tests {
		r := results[i]
		if r.To != tt.to || r.From != p.a {
			t.Errorf("result %d is for %v from %v, want %v from a", i, r.To, r.From, tt.to)
		}
		if r.Status != tt.want {
			t.Errorf("%s: status %v, want %v (%v)", tt.to, r.Status, tt.want, r)
			continue
		}
		banner, echo := probe.FromBanner(r.Reply)
		if tt.banner != "" && banner != tt.banner {
			t.Errorf("%s: reply %q, want banner %q", tt.to, r.Reply, tt.banner)
		}
		if tt.to.Proto == probe.UDP && r.Status == probe.Open && !strings.HasPrefix(string(echo), "zwprobe-") {
			t.Errorf("%s: echo %q, want the probe's token", tt.to, echo)
		}
		if r.Status == probe.Filtered && (r.Elapsed < 250*time.Millisecond || r.Elapsed > 2*time.Second) {
			t.Errorf("%s: filtered after %v, want about the 300ms timeout", tt.to, r.Elapsed)
		}
	}
	// All at once: the drops time out together, not one after another.
	if elapsed > 2*time.Second {
		t.Errorf("%d probes took %v; they should run concurrently", len(tests), elapsed)
	}
}

func TestRunIsConcurrentAndBounded(t *testing.T) {
	p := newPair(t)
	var jobs []probe.Job
	for i := range 300 {
		port := uint16(9000) // dropped: each takes the full timeout
		if i%3 == 0 {
			port = 9100 // refused at once
		}
		jobs = append(jobs, probe.Job{From: p.a, To: probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(p.b4, port)}})
	}
	pr := &probe.Prober{Timeout: 200 * time.Millisecond, Workers: 100}
	start := time.Now()
	results := pr.Run(context.Background(), jobs)
	elapsed := time.Since(start)
	counts := map[probe.Status]int{}
	for _, r := range results {
		counts[r.Status]++
	}
	if counts[probe.Filtered] != 200 || counts[probe.Refused] != 100 {
		t.Errorf("statuses %v, want 200 filtered and 100 refused", counts)
	}
	// 200 drops of 200 ms with 100 workers: about 400 ms; serially 40 s.
	if elapsed < 350*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("300 probes with 100 workers took %v, want about 0.4 s", elapsed)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := pr.Probe(ctx, p.a, jobs[1].To); r.Status != probe.Failed || r.Err == nil {
		t.Errorf("probe with a cancelled context = %v, want error", r)
	}
	if r := pr.Probe(context.Background(), p.a, probe.Target{Proto: "sctp", Addr: jobs[1].To.Addr}); r.Status != probe.Failed {
		t.Errorf("sctp probe = %v, want error", r)
	}
}

// TestHostNamespace listens in the host namespace on one address and
// probes it from namespace a, and a's listener from the host.
func TestHostNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	r := randomHex(t, 5)
	id := hex.EncodeToString(r[:4])
	aName, hostDev := "zwp"+id+"h", "zwp"+id+"v"
	a := newNetns(t, aName)
	hostAddr := netip.AddrFrom4([4]byte{198, 19, r[4], 5})
	aAddr := netip.AddrFrom4([4]byte{198, 19, r[4], 6})
	run(t, "ip", "link", "add", hostDev, "type", "veth", "peer", "name", "va", "netns", aName)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostDev).Run() })
	run(t, "ip", "addr", "add", hostAddr.String()+"/30", "dev", hostDev)
	run(t, "ip", "link", "set", hostDev, "up")
	run(t, "ip", "-n", aName, "addr", "add", aAddr.String()+"/30", "dev", "va")
	run(t, "ip", "-n", aName, "link", "set", "va", "up")

	hl, err := probe.Listen(probe.Host(), probe.ListenConfig{Addrs: []netip.Addr{hostAddr}, TCP: []uint16{28080}, UDP: []uint16{28053}, Banner: "host"})
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	al, err := probe.Listen(a, probe.ListenConfig{TCP: []uint16{28080}, Banner: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()

	pr := &probe.Prober{ReadReply: true}
	ctx := context.Background()
	for _, c := range []struct {
		from   *probe.Namespace
		to     probe.Target
		banner string
	}{
		{a, probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(hostAddr, 28080)}, "host"},
		{a, probe.Target{Proto: probe.UDP, Addr: netip.AddrPortFrom(hostAddr, 28053)}, "host"},
		{probe.Host(), probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(aAddr, 28080)}, "a"},
		{nil, probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(aAddr, 28080)}, "a"},
	} {
		res := pr.Probe(ctx, c.from, c.to)
		if b, _ := probe.FromBanner(res.Reply); res.Status != probe.Open || b != c.banner {
			t.Errorf("%v: want open with banner %q", res, c.banner)
		}
	}
}

// TestICMP pings from namespace a: b answers on IPv4 and IPv6, many pings
// at once are each matched to their own reply, a route that does not
// exist is unreachable, a dropped echo is filtered after the timeout, and
// a rejected one is filtered at once.
func TestICMP(t *testing.T) {
	p := newPair(t)
	pr := &probe.Prober{Timeout: 300 * time.Millisecond, Workers: 200}
	ctx := context.Background()
	for _, a := range []netip.Addr{p.b4, p.b6, p.a4} {
		r := pr.Probe(ctx, p.a, probe.ICMPTarget(a))
		if r.Status != probe.Open {
			t.Errorf("ping %s: %v, want open", a, r)
		}
		if r.Elapsed > 50*time.Millisecond {
			t.Errorf("ping %s took %v; an answered ping on one host takes well under 50 ms", a, r.Elapsed)
		}
	}
	if r := pr.Probe(ctx, p.a, probe.ICMPTarget(netip.MustParseAddr("203.0.113.9"))); r.Status != probe.Unreachable {
		t.Errorf("ping without a route: %v, want unreachable", r)
	}
	// 400 pings at once over one link: every reply finds its probe.
	var jobs []probe.Job
	for i := range 400 {
		a := p.b4
		if i%2 == 1 {
			a = p.b6
		}
		jobs = append(jobs, probe.Job{From: p.a, To: probe.ICMPTarget(a)})
	}
	start := time.Now()
	open := 0
	for _, r := range pr.Run(ctx, jobs) {
		if r.Status == probe.Open {
			open++
		}
	}
	t.Logf("400 concurrent pings: %d answered in %v", open, time.Since(start))
	if open != len(jobs) {
		t.Errorf("%d of %d concurrent pings answered, want all", open, len(jobs))
	}

	// b drops echo requests from a's IPv4 address, and rejects a's IPv6
	// ones as administratively prohibited.
	cmd := exec.Command("ip", "netns", "exec", p.bName, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`table inet zwprobeicmp {
	chain input {
		type filter hook input priority -10; policy accept;
		ip saddr %s icmp type echo-request drop
		ip6 saddr %s icmpv6 type echo-request reject with icmpv6 type admin-prohibited
	}
}
`, p.a4, p.a6))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", p.bName, err, out)
	}
	r := pr.Probe(ctx, p.a, probe.ICMPTarget(p.b4))
	if r.Status != probe.Filtered || r.Elapsed < 250*time.Millisecond {
		t.Errorf("dropped ping: %v after %v, want filtered after the 300ms timeout", r, r.Elapsed)
	}
	r = pr.Probe(ctx, p.a, probe.ICMPTarget(p.b6))
	if r.Status != probe.Filtered || r.Elapsed > 100*time.Millisecond || r.Err == nil || !strings.Contains(r.Err.Error(), "prohibits") {
		t.Errorf("rejected ping: %v after %v, want filtered at once by the answer", r, r.Elapsed)
	}
}
