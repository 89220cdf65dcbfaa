package probe_test

// Address plan: one IPv6-enabled user-defined network of the run (Docker
// picks the IPv4 subnet; testenv derives a ULA /64), with containers "a"
// and "b" of the tool-less image (testenv.ScratchImage), and "lone" of the
// same image on Docker's default bridge. Probes go only between them.

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// TestProbeToolLessContainers probes from and to containers whose image
// holds one static binary and nothing else (no shell, no busybox): by
// address over TCP, UDP and ICMP on IPv4 and IPv6, and by name through
// Docker's embedded DNS inside the source container.
func TestProbeToolLessContainers(t *testing.T) {
	cli, runID := testenv.Setup(t)
	img := testenv.ScratchImage(t, cli)
	net := testenv.CreateNetwork(t, cli, runID, "n", testenv.NetworkOpts{IPv6: true})
	aID := testenv.RunContainer(t, cli, runID, testenv.ContainerSpec{Name: "a", Image: img, Network: net, Start: true})
	bID := testenv.RunContainer(t, cli, runID, testenv.ContainerSpec{Name: "b", Image: img, Network: net, Start: true})
	loneID := testenv.RunContainer(t, cli, runID, testenv.ContainerSpec{Name: "lone", Image: img, Network: "bridge", Start: true})
	// The image really has no tools: exec of a shell fails.
	if r := testenv.Exec(t, cli, aID, "/bin/sh", "-c", "true"); r.ExitCode == 0 {
		t.Fatalf("the tool-less image ran /bin/sh: %v", r)
	}
	open := func(id string) *probe.Namespace {
		ns, err := probe.OpenPID(testenv.Pid(t, cli, id))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		return ns
	}
	a, b, lone := open(aID), open(bID), open(loneID)
	b4, b6 := testenv.Addr(t, cli, bID, net), testenv.Addr6(t, cli, bID, net)
	a4 := testenv.Addr(t, cli, aID, net)
	l, err := probe.Listen(b, probe.ListenConfig{TCP: []uint16{5432}, UDP: []uint16{53}, Banner: "b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	la, err := probe.Listen(a, probe.ListenConfig{TCP: []uint16{8080}, Banner: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { la.Close() })

	pr := &probe.Prober{ReadReply: true, Timeout: time.Second}
	ctx := context.Background()
	bName, aName := testenv.Prefixed(runID, "b"), testenv.Prefixed(runID, "a")

	// IPv6 on a new endpoint answers once duplicate address detection is
	// over: poll until b's IPv6 address answers a ping.
	var r probe.Result
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if r = pr.Probe(ctx, a, probe.ICMPTarget(b6)); r.Status == probe.Open {
			break
		}
	}
	if r.Status != probe.Open {
		t.Fatalf("ping b's IPv6 address from a: %v", r)
	}

	addrs, err := pr.Resolve(ctx, a, bName)
	if err != nil {
		t.Fatalf("resolving %s in a: %v", bName, err)
	}
	if !slices.Contains(addrs, b4) || !slices.Contains(addrs, b6) || addrs[0] != b4 {
		t.Errorf("%s resolved in a to %v, want %v first and %v", bName, addrs, b4, b6)
	}
	start := time.Now()
	jobs := []probe.Job{
		{From: a, To: probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(b4, 5432)}},
		{From: a, To: probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(b6, 5432)}},
		{From: a, To: probe.Target{Proto: probe.UDP, Addr: netip.AddrPortFrom(b4, 53)}},
		{From: a, To: probe.ICMPTarget(b4)},
		{From: a, To: probe.ICMPTarget(b6)},
		{From: a, To: probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(netip.Addr{}, 5432), Name: bName}},
		{From: a, To: probe.Target{Proto: probe.ICMP, Name: bName}},
		{From: b, To: probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(netip.Addr{}, 8080), Name: aName}},
	}
	for _, r := range pr.Run(ctx, jobs) {
		if r.Status != probe.Open {
			t.Errorf("%v: want open", r)
			continue
		}
		if r.To.Proto == probe.TCP {
			if got, _ := probe.FromBanner(r.Reply); got == "" {
				t.Errorf("%v: no banner", r)
			}
		}
		if r.To.Name != "" && (len(r.Resolved) == 0 || r.To.Addr.Addr() != r.Resolved[0] || !r.To.Addr.Addr().Is4()) {
			t.Errorf("%v: probed %v, resolved %v: want the first, IPv4, address", r, r.To.Addr, r.Resolved)
		}
		if r.To.Name == aName && r.To.Addr.Addr() != a4 {
			t.Errorf("%v: %s resolved in b to %v, want %v", r, aName, r.To.Addr.Addr(), a4)
		}
	}
	t.Logf("%d probes by address and by name between tool-less containers in %v", len(jobs), time.Since(start))

	// A name the network does not know, and a container with no embedded
	// DNS (Docker's default bridge): errors, quickly, not hangs.
	start = time.Now()
	if _, err := pr.Resolve(ctx, a, testenv.Prefixed(runID, "lone")); !errors.Is(err, probe.ErrNoName) {
		t.Errorf("resolving a container of another network: %v, want %v", err, probe.ErrNoName)
	}
	r = pr.Probe(ctx, lone, probe.Target{Proto: probe.TCP, Addr: netip.AddrPortFrom(netip.Addr{}, 5432), Name: bName})
	if r.Status != probe.Failed || r.Err == nil || len(r.Resolved) != 0 {
		t.Errorf("probe by name from the default bridge: %v, want an error (no embedded DNS there)", r)
	}
	t.Logf("from the default bridge: %v (both failures in %v)", r, time.Since(start))
	if d := time.Since(start); d > 2*pr.Timeout+time.Second {
		t.Errorf("two failed resolutions took %v, want them bounded by the %v timeout", d, pr.Timeout)
	}
}
