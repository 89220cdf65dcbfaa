package reach

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// engineHost is a host whose networks differ only in what the engine
// does with them. Address plan: plain 10.30.1.0/24 (nat), other
// 10.30.2.0/24 (nat), routed 10.30.3.0/24 (gateway mode routed),
// open 10.30.4.0/24 (nat-unprotected), sealed 10.30.5.0/24 (internal,
// isolated), lan 192.0.2.0/24 (macvlan), quiet 10.30.6.0/24 (ICC off).
// Every network has two members, x1/x2 on plain, and so on; p publishes
// 8080->80 on plain, r publishes 8443->443 on routed, u 9000->90 on open,
// l 127.0.0.1:7000->70 on plain.
func engineHost(d inventory.Daemon) *inventory.Snapshot {
	nets := []inventory.Network{
		{Name: "plain", Driver: "bridge", ICC: true},
		{Name: "other", Driver: "bridge", ICC: true},
		{Name: "routed", Driver: "bridge", ICC: true, GatewayMode4: inventory.GatewayRouted},
		{Name: "open", Driver: "bridge", ICC: true, GatewayMode4: inventory.GatewayNATUnprotected},
		{Name: "sealed", Driver: "bridge", ICC: true, Internal: true, GatewayMode4: inventory.GatewayIsolated},
		{Name: "lan", Driver: "macvlan", ICC: true},
		{Name: "quiet", Driver: "bridge", ICC: false},
	}
	for i := range nets {
		nets[i].Subnets = []inventory.Subnet{{Prefix: netip.MustParsePrefix(fmt.Sprintf("10.30.%d.0/24", i+1))}}
	}
	c := func(name, network string, ports ...inventory.PortBinding) inventory.Container {
		return inventory.Container{Name: name, State: "running", NetworkMode: network,
			Endpoints: []inventory.Endpoint{{Network: network}}, Ports: ports}
	}
	pub := func(host string, hostPort, port uint16) inventory.PortBinding {
		b := inventory.PortBinding{ContainerPort: l4.Port{Number: port, Proto: "tcp"}, HostPort: hostPort}
		if host != "" {
			b.HostIP = netip.MustParseAddr(host)
		}
		return b
	}
	return &inventory.Snapshot{Version: 1, Daemon: d, Networks: nets, Containers: []inventory.Container{
		c("x1", "plain"), c("x2", "plain"),
		c("p", "plain", pub("", 8080, 80)),
		c("l", "plain", pub("127.0.0.1", 7000, 70)),
		c("o1", "other"),
		c("r", "routed", pub("", 8443, 443)), c("r2", "routed"),
		c("u", "open", pub("", 9000, 90)), c("u2", "open"),
		c("s1", "sealed"), c("s2", "sealed"),
		c("m1", "lan"), c("m2", "lan"),
		c("q1", "quiet"), c("q2", "quiet"),
	}}
}

// TestEngineModes holds the model to what each engine and network mode
// does (docs/reach.md, "Engines and modes"; internal/truth has the real
// packets).
func TestEngineModes(t *testing.T) {
	yes, no := true, false
	v20 := inventory.Daemon{Version: "20.10.24", UserlandProxy: &yes}
	v28 := inventory.Daemon{Version: "28.5.2", UserlandProxy: &yes, BridgeNfIptables: &yes}
	v28noProxy := inventory.Daemon{Version: "28.5.2", UserlandProxy: &no}
	v29 := inventory.Daemon{Version: "29.0.0", FirewallBackend: "nftables"}
	v28noBrNf := inventory.Daemon{Version: "28.5.2", BridgeNfIptables: &no}
	type k struct {
		from, to, port string
		want           bool
		via            string // one reason the edge must carry
	}
	for _, tt := range []struct {
		name   string
		daemon inventory.Daemon
		keys   []k
	}{
		{"docker 28 with docker-proxy", v28, []k{
			{"o1", "p", "80/tcp", true, "published:0.0.0.0:8080"},
			{"x1", "p", "80/tcp", true, "network:plain"},
			{"o1", "x1", "80/tcp", false, ""},
			// routed: the container port on its own address, from other
			// networks and from outside; its other ports stay closed.
			{"o1", "r", "443/tcp", true, ViaRouted + "routed"},
			{"outside", "r", "443/tcp", true, ViaRouted + "routed"},
			{"outside", "r", "80/tcp", false, ""},
			{"o1", "r2", "443/tcp", false, ""},
			// nat-unprotected: every port of every member from outside.
			{"outside", "u2", "22/tcp", true, ViaDirect + "open"},
			{"outside", "u", "90/tcp", true, "published:0.0.0.0:9000"},
			{"o1", "u2", "22/tcp", false, ""},
			// isolated: not even the host reaches the members.
			{"host", "s1", "80/tcp", false, ""},
			{"s1", "s2", "80/tcp", true, "network:sealed"},
			{"s1", "internet", "80/tcp", false, ""},
			// macvlan: the parent's segment, beside the host.
			{"outside", "m1", "22/tcp", true, ViaSegment + "lan"},
			{"m1", "internet", "443/tcp", true, ViaSegment + "lan"},
			{"m1", "m2", "80/tcp", true, "network:lan"},
			{"host", "m1", "80/tcp", false, ""},
			{"x1", "m1", "80/tcp", false, ""},
			// loopback publishing holds from 28 on.
			{"outside", "l", "70/tcp", false, ""},
			{"q1", "q2", "80/tcp", false, ""},
		}},
		{"docker 20.10", v20, []k{
			// before 28, a machine of the host's segment reaches a port
			// published on 127.0.0.1 (moby#45610).
			{"outside", "l", "70/tcp", true, ViaLoopbackLAN + "127.0.0.1:7000"},
			{"o1", "p", "80/tcp", true, "published:0.0.0.0:8080"},
		}},
		{"docker 28, userland-proxy=false", v28noProxy, []k{
			// the kernel DNATs, and the isolation of 20-28 drops it
			{"o1", "p", "80/tcp", false, ""},
			{"x1", "p", "80/tcp", true, "network:plain"},
			{"outside", "p", "80/tcp", true, "published:0.0.0.0:8080"},
			{"o1", "r", "443/tcp", true, ViaRouted + "routed"},
		}},
		{"docker 29", v29, []k{
			{"o1", "p", "80/tcp", true, "published:0.0.0.0:8080"},
			{"o1", "x1", "80/tcp", false, ""},
		}},
		{"br_netfilter off", v28noBrNf, []k{
			// Docker's ICC drop never sees a bridged frame.
			{"q1", "q2", "80/tcp", true, "network:quiet"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := Analyze(engineHost(tt.daemon), Options{})
			for _, k := range tt.keys {
				checkEval(t, a, k.from, k.to, k.port, k.want, k.via)
			}
		})
	}
}
