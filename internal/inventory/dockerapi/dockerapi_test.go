package dockerapi

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// TestSnapshotOfLiveHost creates networks and containers in several states
// on the real engine and checks that the snapshot carries every field the
// analysis needs, at a fixed number of list calls plus one inspect per
// container.
//
// Address plan: "plain" is 10.213.50.0/24, "v6" has 10.213.51.0/24 and a
// ULA /64 from testenv; "closed" (ICC off) and "vault" (internal) are
// picked by Docker.
func TestSnapshotOfLiveHost(t *testing.T) {
	cli, run := testenv.Setup(t)
	p := func(n string) string { return testenv.Prefixed(run, n) }
	testenv.CreateNetwork(t, cli, run, "plain", testenv.NetworkOpts{Subnet: "10.213.50.0/24"})
	testenv.CreateNetwork(t, cli, run, "v6", testenv.NetworkOpts{IPv6: true, Subnet: "10.213.51.0/24"})
	testenv.CreateNetwork(t, cli, run, "closed", testenv.NetworkOpts{DisableICC: true})
	testenv.CreateNetwork(t, cli, run, "vault", testenv.NetworkOpts{Internal: true})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	web := testenv.RunContainer(t, cli, run, testenv.ContainerSpec{Name: "web", Network: p("plain"),
		ExtraNetworks: []string{p("v6")}, Ports: []string{"127.0.0.1:" + strconv.Itoa(port) + ":80", "53/udp"},
		ReadOnly: true, CapDrop: []string{"ALL"}, CapAdd: []string{"NET_BIND_SERVICE"}, Start: true})
	testenv.RunContainer(t, cli, run, testenv.ContainerSpec{Name: "created", Network: p("vault"), Privileged: true,
		Binds: []string{"/var/run/docker.sock:/var/run/docker.sock:ro"}})
	exited := testenv.RunContainer(t, cli, run, testenv.ContainerSpec{Name: "exited", Network: p("closed"), Cmd: []string{"true"}, Start: true})
	testenv.RunContainer(t, cli, run, testenv.ContainerSpec{Name: "side", NetworkMode: "container:" + web, Start: true})
	ctx := context.Background()
	waitCh, errCh := cli.ContainerWait(ctx, exited, container.WaitConditionNotRunning)
	select {
	case <-waitCh:
	case err := <-errCh:
		t.Fatal(err)
	}

	dc, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	snap, err := dc.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Validate(); err != nil {
		t.Fatal(err)
	}
	reqs := dc.Requests()
	if reqs["GET /containers/{id}/json"] != len(snap.Containers) {
		t.Errorf("%d inspects for %d containers: %v", reqs["GET /containers/{id}/json"], len(snap.Containers), reqs)
	}
	for k, v := range reqs {
		if k != "GET /containers/{id}/json" && v > 1 {
			t.Errorf("%s called %d times, want once", k, v)
		}
	}
	if snap.Daemon.Version == "" || snap.Daemon.APIVersion == "" || snap.Daemon.BridgeNfIptables == nil {
		t.Errorf("daemon = %+v", snap.Daemon)
	}

	ix := inventory.NewIndex(snap)
	if n := ix.Network(p("closed")); n == nil || n.ICC {
		t.Errorf("closed network: %+v", n)
	}
	if n := ix.Network(p("vault")); n == nil || !n.Internal {
		t.Errorf("vault network: %+v", n)
	}
	if n := ix.Network(p("v6")); n == nil || !n.HasIPv6() || !strings.HasPrefix(n.Bridge, "br-") {
		t.Errorf("v6 network: %+v", n)
	}
	if n := ix.Network(p("plain")); n == nil || n.Subnets[0].Prefix != netip.MustParsePrefix("10.213.50.0/24") {
		t.Errorf("plain network: %+v", n)
	}
	if n := ix.Network("bridge"); n == nil || !n.IsDefaultBridge() {
		t.Errorf("default bridge: %+v", n)
	}

	w := ix.Container(p("web"))
	if w == nil || w.State != "running" || !w.ReadOnlyRootfs || !w.DropsAllCaps() || !w.HasCapAdded("NET_BIND_SERVICE") {
		t.Fatalf("web = %+v", w)
	}
	if len(w.Endpoints) != 2 || !w.Endpoints[0].IPv4.IsValid() {
		t.Errorf("web endpoints = %+v", w.Endpoints)
	}
	for _, e := range w.Endpoints {
		if e.Network == p("v6") && !e.IPv6.IsValid() {
			t.Errorf("no IPv6 address on the v6 network: %+v", e)
		}
	}
	var sawTCP, sawUDP bool
	for _, b := range w.Ports {
		switch b.ContainerPort.String() {
		case "80/tcp":
			sawTCP = b.HostIP == netip.MustParseAddr("127.0.0.1") && int(b.HostPort) == port
		case "53/udp":
			sawUDP = b.HostPort != 0 // Docker picked it
		}
	}
	if !sawTCP || !sawUDP {
		t.Errorf("web ports = %+v", w.Ports)
	}
	c := ix.Container(p("created"))
	if c == nil || c.State != "created" || !c.Privileged || len(c.Mounts) != 1 || !c.Mounts[0].ReadOnly || c.Mounts[0].Source != "/var/run/docker.sock" {
		t.Errorf("created = %+v", c)
	}
	if e := ix.Container(p("exited")); e == nil || e.State != "exited" || !e.OnNetwork(p("closed")) {
		t.Errorf("exited = %+v", e)
	}
	if s := ix.Container(p("side")); s == nil || s.SharedNamespaceWith() != p("web") {
		t.Errorf("side = %+v, want network mode container:%s", s, p("web"))
	}
}

func TestUnreachableSocket(t *testing.T) {
	sock := "unix://" + t.TempDir() + "/docker.sock"
	dc, err := New(sock)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dc.Snapshot(context.Background())
	if err == nil || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "is dockerd running") {
		t.Fatalf("error %v should name the socket and say what to do", err)
	}
}
