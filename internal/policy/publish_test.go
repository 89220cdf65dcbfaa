package policy_test

import (
	"net/netip"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory/synthetic"
	"github.com/zonewarden/zonewarden/internal/policy"
)

func TestPublish(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"443:443/tcp", "443:443/tcp"},
		{"443:443", "443:443/tcp"},
		{"127.0.0.1:5432:5432/tcp", "127.0.0.1:5432:5432/tcp"},
		{"[::1]:2222:22/tcp", "[::1]:2222:22/tcp"},
		{"9000-9001:9000-9001/udp", "9000-9001:9000-9001/udp"},
		{"7000/tcp", "7000/tcp"},
		{"127.0.0.1::80/tcp", "127.0.0.1::80/tcp"},
	} {
		p, err := policy.ParsePublish(tt.in)
		if err != nil || p.String() != tt.want {
			t.Errorf("ParsePublish(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
			continue
		}
		if back, err := policy.ParsePublish(p.String()); err != nil || back != p {
			t.Errorf("ParsePublish(%q) does not round-trip: %v, %v", p.String(), back, err)
		}
	}
	p, _ := policy.ParsePublish("127.0.0.1:15432:5432/tcp")
	ok := func(hostIP string, hostPort, ctr uint16) bool {
		b := synthetic.Binding(hostIP, hostPort, ctr)
		return p.Allows(b)
	}
	if !ok("127.0.0.1", 15432, 5432) || ok("0.0.0.0", 15432, 5432) || ok("127.0.0.1", 5432, 5432) || ok("127.0.0.1", 15432, 5433) {
		t.Error("Allows is wrong for 127.0.0.1:15432:5432/tcp")
	}
	any, _ := policy.ParsePublish("8080/tcp")
	if !any.Allows(synthetic.Binding("", 32768, 8080)) || !any.Allows(synthetic.Binding("::", 40000, 8080)) {
		t.Error("a publish without host port allows any host port")
	}
	// A routed network has no host port: the container port alone counts.
	fixed, _ := policy.ParsePublish("29100:443/tcp")
	if !fixed.Allows(synthetic.Binding("0.0.0.0", 0, 443)) || fixed.Allows(synthetic.Binding("0.0.0.0", 0, 80)) || fixed.Allows(synthetic.Binding("0.0.0.0", 29101, 443)) {
		t.Error("Allows is wrong for a routed binding (no host port) of 29100:443/tcp")
	}
	if p.Allows(synthetic.Binding("0.0.0.0", 0, 5432)) {
		t.Error("a loopback-only entry allows a routed binding open on every address")
	}
	if _, err := policy.ParsePublish("[fe80::1%eth0]:80:80/tcp"); err == nil {
		t.Error("a zoned address was accepted")
	}
	_ = netip.Addr{}
}
