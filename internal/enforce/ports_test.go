package enforce

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/enforce/enforcetest"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

func hostWithPorts() *inventory.Snapshot { return enforcetest.HostWithPorts() }

func TestGoldenPorts(t *testing.T) {
	got := CompilePorts(bind(t, threeTierPolicy, hostWithPorts()), Options{}).Script()
	path := filepath.Join("testdata", "ports.nft")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/enforce -update writes it)", err)
	}
	if d := goldenDiff(got, string(want)); d != "" {
		t.Errorf("ports differs from %s: %s; -update rewrites it:\n%s", path, d, got)
	}
}

// TestPortsBindEveryAddress: every address of a running container with a
// port is bound to that port and claimed; a stopped container's and a
// port-less endpoint's are not; gateways are claimed by no port.
func TestPortsBindEveryAddress(t *testing.T) {
	snap := hostWithPorts()
	snap.Containers[4].State = "exited"            // cache
	snap.Containers[3].Endpoints[0].BridgePort = 0 // postgres: port unknown
	r := CompilePorts(bind(t, threeTierPolicy, snap), Options{})
	has := func(set, elem string) bool { _, ok := r.ElementComment(set, elem); return ok }
	for _, tt := range []struct {
		set, elem string
		want      bool
	}{
		{"bound4", "100 . 10.20.1.11", true}, // lb
		{"bound6", "100 . fd20:1::11", true}, // lb's IPv6
		{"ndbound6", "100 . " + rawAddr(netip.MustParseAddr("fd20:1::11")), true},
		{"bound4", "120 . 10.20.2.13", true}, // api on application-tier
		{"bound4", "121 . 10.20.3.13", true}, // api on database-tier
		{"claimed4", "10.20.3.13", true},
		{"claimed4", "10.20.3.1", true}, // a gateway
		{"claimed6", "fd20:1::1", true},
		{"claimed4", "10.20.3.14", false}, // postgres: no port yet
		{"claimed4", "10.20.3.15", false}, // cache: stopped
		{"ports", "121", true},
		{"ports", "130", false},
		{"unbound6", "fe80::/10", true},
	} {
		if got := has(tt.set, tt.elem); got != tt.want {
			t.Errorf("%s has %s: %v, want %v", tt.set, tt.elem, got, tt.want)
		}
	}
	if r.Family() != "bridge" || !strings.Contains(r.Script(), "table bridge zonewarden {") {
		t.Errorf("not a bridge table:\n%s", r.Script())
	}
}

// TestPortsLoad: nft takes the script (a full sync and an update), in a
// table of the test's own.
func TestPortsLoad(t *testing.T) {
	testenv.RequireRoot(t)
	opts := Options{Table: "zwtest_ports_" + testenv.RunID(t)}
	b := bind(t, threeTierPolicy, hostWithPorts())
	r := CompilePorts(b, opts)
	ctx := context.Background()
	t.Cleanup(func() { nft.Apply(ctx, "delete table bridge "+opts.Table+"\n") })
	if err := nft.Apply(ctx, r.Script()); err != nil {
		t.Fatalf("nft -f of the port table: %v\n%s", err, r.Script())
	}
	snap := hostWithPorts()
	snap.Containers[2].Endpoints[1].BridgePort = 999 // api re-created on database-tier
	r2 := CompilePorts(bind(t, threeTierPolicy, snap), opts)
	up := r2.Update(r)
	if !strings.Contains(up, "delete element bridge") || strings.Contains(up, "table bridge "+opts.Table+" {") {
		t.Fatalf("update is not element changes:\n%s", up)
	}
	if err := nft.Apply(ctx, up); err != nil {
		t.Fatalf("nft -f of the update: %v\n%s", err, up)
	}
	listing, err := nft.List(ctx, "bridge", opts.Table)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(listing, "999 . 10.20.3.13") || strings.Contains(listing, "121 . 10.20.3.13") {
		t.Errorf("the kernel holds the old binding:\n%s", listing)
	}
}
