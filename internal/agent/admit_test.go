package agent

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/bridgeport"
	"github.com/zonewarden/zonewarden/internal/inventory"
)

// TestEndpointOf: the one address per family a starting container's peer
// holds inside its network's subnets; none of a family it holds two of
// (one added by the container), nor the gateway or addresses outside.
func TestEndpointOf(t *testing.T) {
	n := inventory.Network{Name: "db", Subnets: []inventory.Subnet{
		{Prefix: netip.MustParsePrefix("10.20.0.0/16"), Gateway: netip.MustParseAddr("10.20.0.1")},
		{Prefix: netip.MustParsePrefix("fd20::/64"), Gateway: netip.MustParseAddr("fd20::1")},
	}}
	mac, _ := net.ParseMAC("02:42:0a:14:00:05")
	peer := func(addrs ...string) bridgeport.Peer {
		p := bridgeport.Peer{Port: bridgeport.Port{Index: 7, Bridge: "br-db", PeerMAC: mac}}
		for _, a := range addrs {
			p.Addrs = append(p.Addrs, netip.MustParsePrefix(a))
		}
		return p
	}
	for _, tc := range []struct {
		name  string
		peer  bridgeport.Peer
		want  string // "ipv4 ipv6", "-" for none
		found bool
	}{
		{"both families", peer("10.20.0.5/16", "fd20::5/64"), "10.20.0.5 fd20::5", true},
		{"IPv4 only", peer("10.20.0.5/16"), "10.20.0.5 invalid IP", true},
		{"a second IPv4 leaves IPv4 out", peer("10.20.0.5/16", "10.20.0.9/16", "fd20::5/64"), "invalid IP fd20::5", true},
		{"outside the subnets", peer("192.168.9.9/24"), "-", false},
		{"the gateway is never a container's", peer("10.20.0.1/16"), "-", false},
		{"no address yet", peer(), "-", false},
	} {
		e, ok := endpointOf(n, tc.peer)
		got := "-"
		if ok {
			got = e.IPv4.String() + " " + e.IPv6.String()
		}
		if ok != tc.found || got != tc.want || ok && (e.Network != "db" || e.MAC != "02:42:0a:14:00:05") {
			t.Errorf("%s: endpointOf = %+v, %v; want %s", tc.name, e, ok, tc.want)
		}
	}
}

// TestRefuseKernel: an address the kernel shows is taken only for a
// starting container configured for that network, with a namespace of
// its own, while Docker has shown none for it there and nobody else
// holds the address.
func TestRefuseKernel(t *testing.T) {
	h := newHostView(nil)
	addr := netip.MustParseAddr("10.20.0.5")
	h.containers = map[string]inventory.Container{
		"new":    {ID: "new", Name: "new", State: "created", Endpoints: []inventory.Endpoint{{Network: "db"}}},
		"api":    {ID: "api", Name: "api", State: "running", Endpoints: []inventory.Endpoint{{Network: "db", IPv4: netip.MustParseAddr("10.20.0.7")}}},
		"gone":   {ID: "gone", Name: "gone", State: "exited", Endpoints: []inventory.Endpoint{{Network: "db", IPv4: netip.MustParseAddr("10.20.0.8")}}},
		"shared": {ID: "shared", Name: "shared", State: "created", NetworkMode: "container:api", Endpoints: []inventory.Endpoint{{Network: "db"}}},
		"other":  {ID: "other", Name: "other", State: "created", Endpoints: []inventory.Endpoint{{Network: "app"}}},
	}
	ke := func(id, a string) kernelEndpoint {
		return kernelEndpoint{ContainerID: id, Endpoint: inventory.Endpoint{Network: "db", IPv4: netip.MustParseAddr(a)}}
	}
	for _, tc := range []struct {
		name string
		e    kernelEndpoint
		want string // "" taken, else part of the reason
	}{
		{"a starting container", ke("new", addr.String()), ""},
		{"an address a stopped container had is free", ke("new", "10.20.0.8"), ""},
		{"a running container is Docker's to tell", ke("api", "10.20.0.7"), "already running"},
		{"another's address", ke("new", "10.20.0.7"), "is api's"},
		{"unknown", ke("nobody", addr.String()), "not in Docker's list"},
		{"a shared namespace shows its owner's ports", ke("shared", addr.String()), "shares another's"},
		{"not configured for the network", ke("other", addr.String()), "not configured"},
	} {
		got := h.refuseKernel(tc.e, h.addressesHeld())
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: refuseKernel = %q, want %q", tc.name, got, tc.want)
		}
	}
	// Once Docker's view has one, the kernel's is not taken.
	h.pending["new"] = map[string]inventory.Endpoint{"db": {Network: "db", IPv4: netip.MustParseAddr("10.20.0.6")}}
	if got := h.refuseKernel(ke("new", addr.String()), h.addressesHeld()); !strings.Contains(got, "Docker's view") {
		t.Errorf("with Docker's endpoint pending: refuseKernel = %q", got)
	}
	// And through readEndpoints: a taken one becomes the pending endpoint.
	h = newHostView(nil)
	h.containers = map[string]inventory.Container{"new": {ID: "new", Name: "new", State: "created", Endpoints: []inventory.Endpoint{{Network: "db"}}}}
	h.reader = newEndpointReader(nil, nil)
	h.reader.addKernel([]kernelEndpoint{ke("new", addr.String())})
	if err := h.readEndpoints(context.Background(), dirty{}); err != nil {
		t.Fatal(err)
	}
	if got := h.pending["new"]["db"].IPv4; got != addr {
		t.Errorf("pending after readEndpoints: %v, want %v", got, addr)
	}
}
