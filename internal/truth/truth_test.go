package truth

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/reach"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// TestCompareReportsEveryDisagreement: pure, on a hand-made matrix.
func TestCompareReportsEveryDisagreement(t *testing.T) {
	pg := l4.Port{Proto: "tcp", Number: 5432}
	m := &Matrix{index: map[Key]int{}}
	for _, o := range []Observation{
		{Key: Key{"api", "db", pg}, Reached: false},
		{Key: Key{"dev", "db", pg}, Reached: true, Via: []string{"published:0.0.0.0:15432"}},
		{Key: Key{"web", "db", pg}, Reached: true, Via: []string{"network:app"}},
	} {
		m.index[o.Key] = len(m.obs)
		m.obs = append(m.obs, o)
	}
	model := ModelFunc(func(from, to string, p l4.Port) (bool, reach.Edge) {
		if from == "dev" {
			return false, reach.Edge{}
		}
		return true, reach.Edge{From: from, To: to, Via: []reach.Reason{reach.ParseReason("network:app")}}
	})
	var got []string
	for _, mm := range Compare(m, model) {
		got = append(got, mm.String())
	}
	want := []string{
		"api -> db:5432/tcp model=yes real=no (network:app)",
		"dev -> db:5432/tcp model=no real=yes (published:0.0.0.0:15432)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Compare = %q, want %q", got, want)
	}
	if !m.Reached("web", "db", pg) || m.Reached("api", "db", pg) || m.Reached("nobody", "db", pg) {
		t.Error("Reached disagrees with the observations")
	}
}

func TestFilterKeepsTheRunAndStripsItsPrefix(t *testing.T) {
	run := "0123abcd"
	own := map[string]string{testenv.Label: run}
	other := map[string]string{testenv.Label: "ffffffff"}
	p := testenv.Prefixed(run, "")
	snap := &inventory.Snapshot{
		Networks: []inventory.Network{
			{Name: "bridge", Driver: "bridge"}, {Name: "host", Driver: "host"},
			{Name: p + "app", Driver: "bridge", Labels: own}, {Name: "zwffffffff-app", Driver: "bridge", Labels: other},
			{Name: "someone-elses", Driver: "bridge"},
		},
		Containers: []inventory.Container{
			{Name: p + "main", Labels: own, NetworkMode: p + "app", Endpoints: []inventory.Endpoint{{Network: p + "app", IPv4: netip.MustParseAddr("10.0.0.2")}}},
			{Name: p + "side", Labels: own, NetworkMode: "container:" + p + "main"},
			{Name: "zwffffffff-main", Labels: other, NetworkMode: "bridge"},
		},
	}
	f := Filter(snap, run)
	var nets, cs []string
	for _, n := range f.Networks {
		nets = append(nets, n.Name)
	}
	for _, c := range f.Containers {
		cs = append(cs, c.Name+"|"+c.NetworkMode)
	}
	slices.Sort(nets)
	if want := []string{"app", "bridge", "host"}; !slices.Equal(nets, want) {
		t.Errorf("networks %v, want %v", nets, want)
	}
	if want := []string{"main|app", "side|container:main"}; !slices.Equal(cs, want) {
		t.Errorf("containers %v, want %v", cs, want)
	}
	if f.Containers[0].Endpoints[0].Network != "app" || snap.Containers[0].Endpoints[0].Network != p+"app" {
		t.Error("Filter must rename endpoints in its copy only")
	}
}

func TestScenariosAreValidAndPortsDistinct(t *testing.T) {
	seen := map[uint16]string{}
	for name, sc := range map[string]Scenario{
		"three-tier": ThreeTier(), "multi-project": MultiProject(), "published": Published(),
		"internal": Internal(), "host-network": HostNetwork(), "icc": ICCDisabled(), "ipv6": IPv6(),
		"none": NoneNetwork(), "container": ContainerNamespace(), "default-bridge": DefaultBridge(),
	} {
		if err := sc.validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, c := range sc.Containers {
			for _, p := range c.Publish {
				if other, dup := seen[p.HostPort]; dup {
					t.Errorf("host port %d in %s and %s", p.HostPort, name, other)
				}
				seen[p.HostPort] = name
			}
		}
	}
	moved := Published().WithHostPorts(40000)
	var ports []uint16
	for _, c := range moved.Containers {
		for _, p := range c.Publish {
			ports = append(ports, p.HostPort)
		}
	}
	if want := []uint16{40000, 40001, 40002, 40003}; !slices.Equal(ports, want) {
		t.Errorf("WithHostPorts(40000) = %v, want %v", ports, want)
	}
	if Published().Containers[0].Publish[0].HostPort != 28380 {
		t.Error("WithHostPorts changed the original")
	}
	bad := Scenario{Containers: []Container{{Name: "a", Mode: "container:b"}, {Name: "b", Networks: []string{"nope"}}}}
	if bad.validate() == nil {
		t.Error("validate accepted unknown references")
	}
}
