package truth

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/probe"
)

// plumbing is what a scenario adds to the host besides Docker resources: a
// namespace zw<run>x joined to the host by a veth pair zw<run>v (host side
// 198.18.A.B+5/30 and fd5a:77ef:RRRR:RRRR::1/64, namespace side .6 and ::2)
// with a default route to the host. The namespace plays "outside" (a client
// on the LAN, which routes to the host) and "internet" (where containers'
// egress goes). The host side also holds the scenario's host address,
// 198.18.A.B+1/32 and fd5a:77ee:RRRR:RRRR::1/128: an address of the host
// that no one else uses, to reach published ports and host-network
// listeners "through a host address". (A dummy interface would do, but
// not every kernel has the dummy driver.)
//
// A and B (a multiple of 8) and RRRR come from the run id. Everything is
// removed when the test ends.
type plumbing struct {
	veth, netns  string
	host4, host6 netip.Addr // the host address, on the host side of veth
	hostVeth4    netip.Addr
	ext4, ext6   netip.Addr
	ext          *probe.Namespace
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func sysctlIn(netns, key, value string) error {
	out, err := exec.Command("ip", "netns", "exec", netns, "sysctl", "-qw", key+"="+value).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sysctl %s=%s in %s: %v: %s", key, value, netns, err, out)
	}
	return nil
}

// newPlumbing makes the outside namespace and the host address of run
// runID, and removes them when t ends.
func newPlumbing(t testing.TB, runID string) *plumbing {
	t.Helper()
	r, err := hex.DecodeString(runID)
	if err != nil || len(r) < 4 {
		t.Fatalf("run id %q: want 8 hex digits", runID)
	}
	b := r[1] &^ 7
	p := &plumbing{
		veth: "zw" + runID + "v", netns: "zw" + runID + "x",
		host4:     netip.AddrFrom4([4]byte{198, 18, r[0], b + 1}),
		hostVeth4: netip.AddrFrom4([4]byte{198, 18, r[0], b + 5}),
		ext4:      netip.AddrFrom4([4]byte{198, 18, r[0], b + 6}),
		host6:     netip.MustParseAddr(fmt.Sprintf("fd5a:77ee:%02x%02x:%02x%02x::1", r[0], r[1], r[2], r[3])),
		ext6:      netip.MustParseAddr(fmt.Sprintf("fd5a:77ef:%02x%02x:%02x%02x::2", r[0], r[1], r[2], r[3])),
	}
	hostVeth6 := fmt.Sprintf("fd5a:77ef:%02x%02x:%02x%02x::1", r[0], r[1], r[2], r[3])
	t.Cleanup(func() {
		if p.ext != nil {
			p.ext.Close()
		}
		// Deleting the namespace deletes the veth pair too.
		if err := ip("netns", "del", p.netns); err != nil && !strings.Contains(err.Error(), "No such file") {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := ip("netns", "add", p.netns); err != nil {
		t.Fatal(err)
	}
	// No duplicate address detection in the new namespace: its addresses
	// are usable as soon as the link is up.
	for _, k := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		if err := sysctlIn(p.netns, k, "0"); err != nil {
			t.Fatal(err)
		}
	}
	steps := [][]string{
		{"link", "add", p.veth, "type", "veth", "peer", "name", "eth0", "netns", p.netns},
		{"addr", "add", p.hostVeth4.String() + "/30", "dev", p.veth},
		{"addr", "add", hostVeth6 + "/64", "dev", p.veth, "nodad"},
		{"addr", "add", p.host4.String() + "/32", "dev", p.veth},
		{"addr", "add", p.host6.String() + "/128", "dev", p.veth, "nodad"},
		{"link", "set", p.veth, "up"},
		{"-n", p.netns, "link", "set", "lo", "up"},
		{"-n", p.netns, "addr", "add", p.ext4.String() + "/30", "dev", "eth0"},
		{"-n", p.netns, "addr", "add", p.ext6.String() + "/64", "dev", "eth0", "nodad"},
		{"-n", p.netns, "link", "set", "eth0", "up"},
		{"-n", p.netns, "route", "add", "default", "via", p.hostVeth4.String()},
		{"-n", p.netns, "-6", "route", "add", "default", "via", hostVeth6},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatal(err)
		}
	}
	p.ext, err = probe.OpenPath("/run/netns/" + p.netns)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
