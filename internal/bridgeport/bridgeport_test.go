package bridgeport

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// Address plan: none; the live test makes a bridge zwbp<pid>, a namespace
// and a veth pair of its own, and the table test uses made-up ports.

func TestMatch(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	snap := &inventory.Snapshot{
		Networks: []inventory.Network{{Name: "db", Driver: "bridge", Bridge: "br-db"}, {Name: "app", Driver: "bridge", Bridge: "br-app"}},
		Containers: []inventory.Container{
			{Name: "pg", State: "running", Endpoints: []inventory.Endpoint{{Network: "db", MAC: "02:42:0a:00:00:02"}}},
			{Name: "api", State: "running", Endpoints: []inventory.Endpoint{{Network: "db", MAC: "02:42:0a:00:00:03"}, {Network: "app", MAC: "02:42:0a:01:00:03"}}},
			{Name: "twin", State: "running", Endpoints: []inventory.Endpoint{{Network: "db", MAC: "02:42:0a:00:00:09"}}},
			{Name: "late", State: "running", Endpoints: []inventory.Endpoint{{Network: "app", MAC: "02:42:0a:01:00:07"}}},
		},
	}
	ports := []Port{
		{Index: 10, Bridge: "br-db", PeerMAC: mac("02:42:0a:00:00:02")},
		{Index: 11, Bridge: "br-db", PeerMAC: mac("02:42:0a:00:00:03")},
		{Index: 12, Bridge: "br-app", PeerMAC: mac("02:42:0a:01:00:03")},
		// Same MAC on the other bridge: not pg's.
		{Index: 13, Bridge: "br-app", PeerMAC: mac("02:42:0a:00:00:02")},
		// twin's MAC on two ports of its bridge: one forges it.
		{Index: 14, Bridge: "br-db", PeerMAC: mac("02:42:0a:00:00:09")},
		{Index: 15, Bridge: "br-db", PeerMAC: mac("02:42:0a:00:00:09")},
	}
	problems := Match(snap, ports)
	got := func(c, e int) int { return snap.Containers[c].Endpoints[e].BridgePort }
	if got(0, 0) != 10 || got(1, 0) != 11 || got(1, 1) != 12 || got(2, 0) != 0 || got(3, 0) != 0 {
		t.Errorf("ports = pg %d, api %d/%d, twin %d, late %d; want 10, 11/12, 0, 0", got(0, 0), got(1, 0), got(1, 1), got(2, 0), got(3, 0))
	}
	if len(problems) != 2 || !strings.Contains(problems[0], "twin on db: 2 ports") || !strings.Contains(problems[1], "late on app: no port") {
		t.Errorf("problems = %q", problems)
	}
	// Bound before, a forger joins later: twin keeps port 14.
	snap.Containers[2].Endpoints[0].BridgePort = 14
	Match(snap, ports)
	if got(2, 0) != 14 {
		t.Errorf("twin lost its port to the forger: %d", got(2, 0))
	}
}

// testPort makes a veth of the test's own whose peer (MAC
// 02:42:0a:63:00:05) is in a namespace of its own, enslaved to a bridge
// of its own; it returns the namespace's name and the host side's and
// bridge's names. The peer gets the addresses given.
func testPort(t *testing.T, addrs ...string) (ns, host, br string) {
	testenv.RequireRoot(t)
	name := fmt.Sprintf("zwbp%d", os.Getpid()%100000)
	ns, br, host, peer := name, name+"b", name+"h", name+"p"
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", host).Run()
		exec.Command("ip", "link", "del", br).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	run(t, "ip", "netns", "add", ns)
	run(t, "ip", "link", "add", br, "type", "bridge")
	run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	run(t, "ip", "link", "set", peer, "netns", ns)
	run(t, "ip", "-n", ns, "link", "set", peer, "address", "02:42:0a:63:00:05")
	for _, a := range addrs {
		run(t, "ip", "-n", ns, "addr", "add", a, "dev", peer, "nodad")
	}
	run(t, "ip", "-n", ns, "link", "set", peer, "up")
	run(t, "ip", "link", "set", host, "master", br)
	return ns, host, br
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// TestList reads a port of the test's own.
func TestList(t *testing.T) {
	_, host, br := testPort(t)
	ports, err := List()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if p.Name == host {
			if p.Bridge != br || p.PeerMAC.String() != "02:42:0a:63:00:05" || p.Index == 0 {
				t.Errorf("port %+v, want bridge %s and peer MAC 02:42:0a:63:00:05", p, br)
			}
			return
		}
	}
	t.Errorf("port %s not listed among %d", host, len(ports))
}

// openNetns opens the namespace ns of /var/run/netns and a Reader, both
// closed when t ends.
func openNetns(t *testing.T, ns string) (*os.File, *Reader) {
	t.Helper()
	f, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r, err := NewReader()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return f, r
}

// TestInNetns finds the port of a namespace of the test's own, with its
// peer's addresses (not the link-local one), and none for the host's own
// namespace.
func TestInNetns(t *testing.T) {
	ns, host, br := testPort(t, "10.99.0.5/24", "fd99::5/64")
	f, r := openNetns(t, ns)
	peers, err := r.InNetns(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 {
		t.Fatalf("InNetns = %+v, want the one port %s", peers, host)
	}
	p := peers[0]
	got := fmt.Sprint(p.Addrs)
	if p.Name != host || p.Bridge != br || p.PeerMAC.String() != "02:42:0a:63:00:05" || got != "[10.99.0.5/24 fd99::5/64]" {
		t.Errorf("InNetns = %+v %s, want %s on %s, MAC 02:42:0a:63:00:05, [10.99.0.5/24 fd99::5/64]", p.Port, got, host, br)
	}
	self, err := os.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if peers, err := r.InNetns(int(self.Fd())); err != nil || len(peers) != 0 {
		t.Errorf("InNetns(host's namespace) = %+v, %v; want none", peers, err)
	}
}

// TestWatchAddrs hears an address added in a namespace of the test's
// own, with that namespace's id (and not only other namespaces' events:
// the test fails when its own is never heard).
func TestWatchAddrs(t *testing.T) {
	ns, _, _ := testPort(t)
	f, r := openNetns(t, ns)
	want, err := r.NsidOf(int(f.Fd()))
	if err != nil || want < 0 {
		t.Fatalf("NsidOf = %d, %v; want the id the veth gave it", want, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	heard := make(chan int, 16)
	done := make(chan error, 1)
	go func() {
		done <- WatchAddrs(ctx, func(nsid int) {
			select {
			case heard <- nsid:
			default:
			}
		})
	}()
	// The watch subscribes on its own goroutine: add addresses until one
	// is heard.
	deadline := time.After(5 * time.Second)
	for i := 1; ; i++ {
		run(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("10.98.0.%d/24", i), "dev", ns+"p")
		select {
		case got := <-heard:
			if got != want {
				continue // another namespace (a container's): add again
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("WatchAddrs after cancel: %v", err)
			}
			return
		case err := <-done:
			t.Fatalf("WatchAddrs ended: %v", err)
		case <-deadline:
			t.Fatal("no address event within 5 s")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestTable keeps a port of the test's own from link events: it shows
// with its peer's MAC once made, and goes when its veth is deleted.
func TestTable(t *testing.T) {
	testenv.RequireRoot(t)
	events, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: unix.RTMGRP_LINK})
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	table, err := NewTable()
	if err != nil {
		t.Fatal(err)
	}
	defer table.Close()
	if err := table.Load(); err != nil {
		t.Fatal(err)
	}
	_, host, br := testPort(t)
	find := func() (Port, bool) {
		ports, ok := table.Ports()
		if !ok {
			t.Fatal("the table is not loaded")
		}
		for _, p := range ports {
			if p.Name == host {
				return p, true
			}
		}
		return Port{}, false
	}
	// feed applies events until want holds, for 5 s at most.
	feed := func(what string, want func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !want() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5 s", what)
			}
			events.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			msgs, _ := events.Receive()
			for _, m := range msgs {
				table.Apply(m)
			}
		}
	}
	feed("the new port", func() bool {
		p, ok := find()
		return ok && p.Bridge == br && p.PeerMAC.String() == "02:42:0a:63:00:05"
	})
	run(t, "ip", "link", "del", host)
	feed("the deleted port gone", func() bool { _, ok := find(); return !ok })
}
