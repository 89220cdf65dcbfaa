package bridgeport

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

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

// TestList reads a veth of the test's own, whose peer is in a namespace
// of its own, enslaved to a bridge of its own.
func TestList(t *testing.T) {
	testenv.RequireRoot(t)
	name := fmt.Sprintf("zwbp%d", os.Getpid()%100000)
	ns, br, host, peer := name, name+"b", name+"h", name+"p"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", host).Run()
		exec.Command("ip", "link", "del", br).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	run("ip", "netns", "add", ns)
	run("ip", "link", "add", br, "type", "bridge")
	run("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	run("ip", "link", "set", peer, "netns", ns)
	run("ip", "-n", ns, "link", "set", peer, "address", "02:42:0a:63:00:05")
	run("ip", "link", "set", host, "master", br)
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
