package probe

// Address plan: a whole fake host in namespaces of its own, named
// zwguard<8 hex><role>, so that the real host's routes are never used
// (Prober.Host is H). Every link is named zwguard...; all of it goes with
// the namespaces.
//
//   - H, the host: bridge zwguardbr1 198.18.1.1/24 fd00:5a77:1::1/64 (S
//     and D on it by veth); bridge zwguardbr2 198.18.2.1/24
//     fd00:5a77:2::1/64 (P, a peer H routes to); bridge zwguardbr3
//     198.18.6.1/24 with a tap port zwguarddum3 (a bridge that is not
//     local); tap zwguardphy (a stand-in for a physical NIC; this kernel
//     has no dummy links); veth
//     zwguardout 198.18.255.1/30 fd00:5a77:ff::1/64 to OUT, H's default
//     route (IPv4 and IPv6). H forwards.
//   - S, the source: zwguardeth0 198.18.1.2/24 fd00:5a77:1::2/64, default
//     via H's bridge address, like a container; and macvlans made in H:
//     zwguardmv0 (bridge mode over zwguardphy) 198.18.3.2/24, zwguardmv1
//     (vepa mode over zwguardbr2) 198.18.4.2/24, zwguardmv2 (bridge mode
//     over zwguardbr2) 198.18.5.2/24.
//   - D: 198.18.1.3/24 fd00:5a77:1::3/64 on zwguardbr1.
//   - P: 198.18.2.3/24 fd00:5a77:2::3/64 on zwguardbr2, default via H.
//   - OUT, "the internet": 198.18.255.2/30 fd00:5a77:ff::2/64; an nft
//     counter counts every IP packet that arrives there (neighbour
//     discovery and MLD aside).
//
// 203.0.113.0/24 (TEST-NET-3) and 2001:db8::/32 exist nowhere: H routes
// them only by its default route to OUT. Packets go only between these
// namespaces.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/testenv"
)

// fakeHost is the host of the address plan.
type fakeHost struct {
	h, s, d, p, out *Namespace
	names           map[string]string // role -> namespace name
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	testenv.RequireRoot(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	fh := &fakeHost{names: map[string]string{}}
	for _, role := range []string{"h", "s", "d", "p", "o"} {
		name := "zwguard" + id + role
		sh(t, "ip", "netns", "add", name)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("removing netns %s: %v %s", name, err, out)
			}
		})
		sh(t, "ip", "-n", name, "link", "set", "lo", "up")
		ns, err := OpenPath("/run/netns/" + name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		fh.names[role] = name
		switch role {
		case "h":
			fh.h = ns
		case "s":
			fh.s = ns
		case "d":
			fh.d = ns
		case "p":
			fh.p = ns
		case "o":
			fh.out = ns
		}
	}
	h, s, d, p, o := fh.names["h"], fh.names["s"], fh.names["d"], fh.names["p"], fh.names["o"]
	ip := func(ns string, args ...string) { sh(t, append([]string{"ip", "-n", ns}, args...)...) }
	addrs := func(ns, dev string, addrs ...string) {
		for _, a := range addrs {
			if strings.Contains(a, ":") {
				ip(ns, "addr", "add", a, "dev", dev, "nodad")
			} else {
				ip(ns, "addr", "add", a, "dev", dev)
			}
		}
		ip(ns, "link", "set", dev, "up")
	}
	sh(t, "ip", "netns", "exec", h, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	for _, br := range []struct{ name, v4, v6 string }{
		{"zwguardbr1", "198.18.1.1/24", "fd00:5a77:1::1/64"},
		{"zwguardbr2", "198.18.2.1/24", "fd00:5a77:2::1/64"},
		{"zwguardbr3", "198.18.6.1/24", ""},
	} {
		ip(h, "link", "add", br.name, "type", "bridge")
		if br.v6 != "" {
			addrs(h, br.name, br.v4, br.v6)
		} else {
			addrs(h, br.name, br.v4)
		}
	}
	ip(h, "tuntap", "add", "dev", "zwguarddum3", "mode", "tap")
	ip(h, "link", "set", "zwguarddum3", "master", "zwguardbr3", "up")
	ip(h, "tuntap", "add", "dev", "zwguardphy", "mode", "tap")
	ip(h, "link", "set", "zwguardphy", "up")
	for _, c := range []struct{ ns, port, bridge, v4, v6, gw4, gw6 string }{
		{s, "zwguards", "zwguardbr1", "198.18.1.2/24", "fd00:5a77:1::2/64", "198.18.1.1", "fd00:5a77:1::1"},
		{d, "zwguardd", "zwguardbr1", "198.18.1.3/24", "fd00:5a77:1::3/64", "198.18.1.1", "fd00:5a77:1::1"},
		{p, "zwguardp", "zwguardbr2", "198.18.2.3/24", "fd00:5a77:2::3/64", "198.18.2.1", "fd00:5a77:2::1"},
	} {
		ip(h, "link", "add", c.port, "type", "veth", "peer", "name", "zwguardeth0", "netns", c.ns)
		ip(h, "link", "set", c.port, "master", c.bridge, "up")
		addrs(c.ns, "zwguardeth0", c.v4, c.v6)
		ip(c.ns, "route", "add", "default", "via", c.gw4)
		ip(c.ns, "-6", "route", "add", "default", "via", c.gw6)
	}
	ip(h, "link", "add", "zwguardout", "type", "veth", "peer", "name", "zwguardeth0", "netns", o)
	addrs(h, "zwguardout", "198.18.255.1/30", "fd00:5a77:ff::1/64")
	addrs(o, "zwguardeth0", "198.18.255.2/30", "fd00:5a77:ff::2/64")
	ip(h, "route", "add", "default", "via", "198.18.255.2")
	ip(h, "-6", "route", "add", "default", "via", "fd00:5a77:ff::2")
	for _, mv := range []struct{ name, parent, mode, addr string }{
		{"zwguardmv0", "zwguardphy", "bridge", "198.18.3.2/24"},
		{"zwguardmv1", "zwguardbr2", "vepa", "198.18.4.2/24"},
		{"zwguardmv2", "zwguardbr2", "bridge", "198.18.5.2/24"},
	} {
		ip(h, "link", "add", mv.name, "link", mv.parent, "type", "macvlan", "mode", mv.mode)
		ip(h, "link", "set", mv.name, "netns", s)
		addrs(s, mv.name, mv.addr)
	}
	cmd := exec.Command("ip", "netns", "exec", o, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet zwguard {
	counter arrived { }
	chain prerouting {
		type filter hook prerouting priority -300; policy accept;
		icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-query, mld-listener-report, mld2-listener-report } accept
		counter name "arrived"
	}
}
`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", o, err, out)
	}
	return fh
}

// arrived returns how many IP packets reached OUT.
func (fh *fakeHost) arrived(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", fh.names["o"], "nft", "list", "counter", "inet", "zwguard", "arrived").CombinedOutput()
	if err != nil {
		t.Fatalf("reading the counter of OUT: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`packets (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no packet count in %s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// waitRefused polls until a TCP probe from fh's S to each addr:1 is
// refused (IPv6 on new links takes a moment), or fails t after 10 s.
func (fh *fakeHost) waitRefused(t *testing.T, addrs ...netip.Addr) {
	t.Helper()
	pr := &Prober{Timeout: 100 * time.Millisecond, Host: fh.h}
	for _, a := range addrs {
		target := Target{Proto: TCP, Addr: netip.AddrPortFrom(a, 1)}
		var r Result
		for deadline := time.Now().Add(10 * time.Second); ; {
			if r = pr.Probe(context.Background(), fh.s, target); r.Status == Refused {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never became reachable: last probe %v", a, r)
			}
		}
	}
}

// TestGuardFakeHost probes from S in the fake host: the peer on S's
// bridge and the one H routes to are probed as before; addresses that H
// routes only by its default route, or that leave by a macvlan over a
// physical-like link or a bridge with such a port, are skipped with the
// route, and OUT sees no packet.
func TestGuardFakeHost(t *testing.T) {
	fh := newFakeHost(t)
	a := netip.MustParseAddr
	d4, d6, p4, p6 := a("198.18.1.3"), a("fd00:5a77:1::3"), a("198.18.2.3"), a("fd00:5a77:2::3")
	fh.waitRefused(t, d4, d6, p4, p6)
	for _, l := range []struct {
		ns     *Namespace
		banner string
	}{{fh.d, "d"}, {fh.p, "p"}} {
		ln, err := Listen(l.ns, ListenConfig{TCP: []uint16{8080}, UDP: []uint16{5353}, Banner: l.banner})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
	}
	before := fh.arrived(t)

	tcp := func(addr string, port uint16) Target {
		return Target{Proto: TCP, Addr: netip.AddrPortFrom(a(addr), port)}
	}
	udp := func(addr string, port uint16) Target {
		return Target{Proto: UDP, Addr: netip.AddrPortFrom(a(addr), port)}
	}
	const sent = "" // want: sent, with the status of the probe
	tests := []struct {
		to     Target
		status Status
		banner string
		// skip: the reason must name these (the status is then Skipped).
		skip []string
	}{
		{tcp("198.18.1.3", 8080), Open, "d", nil},
		{tcp("fd00:5a77:1::3", 8080), Open, "d", nil},
		{udp("198.18.1.3", 5353), Open, "d", nil},
		{tcp("198.18.1.3", 8081), Refused, sent, nil},
		{ICMPTarget(d4), Open, sent, nil},
		{ICMPTarget(d6), Open, sent, nil},
		{tcp("198.18.2.3", 8080), Open, "p", nil}, // routed by H
		{tcp("fd00:5a77:2::3", 8080), Open, "p", nil},
		{udp("fd00:5a77:2::3", 5353), Open, "p", nil},
		{ICMPTarget(p4), Open, sent, nil},
		{tcp("198.18.1.1", 1), Refused, sent, nil},   // H's bridge address (the published-port path)
		{tcp("198.18.255.1", 1), Refused, sent, nil}, // another address of H, via the gateway
		{tcp("198.18.1.2", 1), Refused, sent, nil},   // S's own
		{tcp("203.0.113.9", 80), Skipped, sent, []string{"203.0.113.9 is not routed to this host's bridges or namespaces", "the host would send it out of zwguardout", "via 198.18.255.2", "not probed"}},
		{udp("203.0.113.9", 53), Skipped, sent, []string{"zwguardout", "198.18.255.2"}},
		{ICMPTarget(a("203.0.113.9")), Skipped, sent, []string{"zwguardout"}},
		{tcp("2001:db8::9", 80), Skipped, sent, []string{"zwguardout", "fd00:5a77:ff::2"}},
		{ICMPTarget(a("2001:db8::9")), Skipped, sent, []string{"zwguardout"}},
		{tcp("198.18.3.9", 80), Skipped, sent, []string{"out of zwguardmv0, a macvlan over zwguardphy, a tun link"}},
		{tcp("198.18.4.9", 80), Skipped, sent, []string{"out of zwguardmv1, a macvlan in vepa mode"}},
		{tcp("198.18.6.9", 80), Skipped, sent, []string{"the host would send it out of zwguardbr3, a bridge with zwguarddum3 (a tun link) as a port"}},
	}
	pr := &Prober{Timeout: 300 * time.Millisecond, ReadReply: true, Host: fh.h}
	jobs := make([]Job, 0, len(tests))
	for _, tt := range tests {
		jobs = append(jobs, Job{From: fh.s, To: tt.to})
	}
	for i, r := range pr.Run(context.Background(), jobs) {
		tt := tests[i]
		if r.Status != tt.status {
			t.Errorf("%s: %v, want %v", tt.to, r, tt.status)
			continue
		}
		if b, _ := FromBanner(r.Reply); tt.banner != "" && b != tt.banner {
			t.Errorf("%s: reply %q, want banner %q", tt.to, r.Reply, tt.banner)
		}
		for _, want := range tt.skip {
			if r.Err == nil || !strings.Contains(r.Err.Error(), want) {
				t.Errorf("%s: %v\nwant the reason to say %q", tt.to, r, want)
			}
		}
		if r.Status == Skipped && r.Elapsed > 100*time.Millisecond {
			t.Errorf("%s: skipped after %v; the guard decides without waiting", tt.to, r.Elapsed)
		}
	}
	// A bridge-mode macvlan over H's local bridge: sent (no one has the
	// address, so no answer).
	if r := pr.Probe(context.Background(), fh.s, tcp("198.18.5.9", 80)); r.Status == Skipped || r.Status == Failed {
		t.Errorf("out of a bridge-mode macvlan over a local bridge: %v, want sent", r)
	}
	// Without Host, S's gateway is in a namespace that is not the host:
	// not followed. S's own bridge is still fine.
	bare := &Prober{Timeout: 300 * time.Millisecond, ReadReply: true}
	if r := bare.Probe(context.Background(), fh.s, tcp("198.18.2.3", 8080)); r.Status != Skipped || !strings.Contains(r.Err.Error(), "a router in another namespace") {
		t.Errorf("routed peer without Prober.Host: %v, want skipped", r)
	}
	if r := bare.Probe(context.Background(), fh.s, tcp("198.18.1.3", 8080)); r.Status != Open {
		t.Errorf("peer on the bridge without Prober.Host: %v, want open", r)
	}

	if n := fh.arrived(t) - before; n != 0 {
		t.Errorf("%d packets reached OUT, want none", n)
	}
	// The counter counts: a ping from H to OUT's own address (on-link out
	// of a veth to a namespace of the host) arrives.
	if r := pr.Probe(context.Background(), fh.h, ICMPTarget(a("198.18.255.2"))); r.Status != Open {
		t.Errorf("ping from H to OUT: %v, want open", r)
	}
	if n := fh.arrived(t) - before; n < 1 {
		t.Errorf("the ping from H did not reach OUT's counter (%d): the counter proves nothing", n)
	}
}

// TestGuardCost runs 10,000 probes over 20 destinations (10 on S's
// bridge, 10 routed by H) and checks that the guard looked each
// destination up once, and how long the lookups take against the probes.
func TestGuardCost(t *testing.T) {
	fh := newFakeHost(t)
	var dsts []netip.Addr
	for i := range 10 {
		d := netip.AddrFrom4([4]byte{198, 18, 1, byte(100 + i)})
		p := netip.AddrFrom4([4]byte{198, 18, 2, byte(100 + i)})
		sh(t, "ip", "-n", fh.names["d"], "addr", "add", d.String()+"/24", "dev", "zwguardeth0")
		sh(t, "ip", "-n", fh.names["p"], "addr", "add", p.String()+"/24", "dev", "zwguardeth0")
		dsts = append(dsts, d, p)
	}
	fh.waitRefused(t, dsts...)
	jobs := make([]Job, 10000)
	for i := range jobs {
		jobs[i] = Job{From: fh.s, To: Target{Proto: TCP, Addr: netip.AddrPortFrom(dsts[i%len(dsts)], 1)}}
	}
	pr := &Prober{Timeout: time.Second, Host: fh.h}
	start := time.Now()
	results := pr.Run(context.Background(), jobs)
	runTime := time.Since(start)
	for _, r := range results {
		if r.Status != Refused {
			t.Fatalf("%v, want refused", r)
		}
	}

	// The same judgements alone, by a fresh guard as Run makes one.
	g := newGuard(fh.h)
	defer g.close()
	start = time.Now()
	for _, j := range jobs[:len(dsts)] {
		if v, err := g.check(j.From, j.To.Addr.Addr(), false); err != nil || !v.send {
			t.Fatalf("%s: %+v %v, want sent", j.To, v, err)
		}
	}
	cold := time.Since(start)
	start = time.Now()
	for _, j := range jobs {
		if v, err := g.check(j.From, j.To.Addr.Addr(), false); err != nil || !v.send {
			t.Fatalf("%s: %+v %v, want sent", j.To, v, err)
		}
	}
	warm := time.Since(start)
	lookups, dumps := g.view.routeLookups.Load(), g.view.dumps.Load()
	t.Logf("Run of %d probes over %d destinations: %v; the guard alone: %v for the first probe of each destination (%d route lookups, %d dumps), then %v for all %d (%v each)",
		len(jobs), len(dsts), runTime, cold, lookups, dumps, warm, len(jobs), warm/time.Duration(len(jobs)))
	// S looks each destination up; H the 10 it routes.
	if want := int64(len(dsts) + len(dsts)/2); lookups != want {
		t.Errorf("%d route lookups, want %d: one per destination in S, one more in H for those it routes", lookups, want)
	}
	if dumps > 3 {
		t.Errorf("%d dumps, want at most 3 (the links of S and H, the addresses of H)", dumps)
	}
	if cold+warm > runTime/5 {
		t.Errorf("the guard took %v of a %v run; it should not dominate", cold+warm, runTime)
	}
}
