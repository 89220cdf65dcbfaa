package verify

import (
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/enforce/enforcetest"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// TestNarrowerAgreesWithDecide: between every two containers of the
// enforce tests' host that workloads select, on every port the policy
// names and some it does not, the narrower keeps a port exactly when
// Binding.Decide allows it, under unmanaged warn and deny and with the
// tiers default: allow. (A container no workload selects is decided by
// the path: the kernel leaves it to Docker on networks outside the
// zones, which Decide does not see; truth's tests hold those cases.)
func TestNarrowerAgreesWithDecide(t *testing.T) {
	ports := []l4.Port{{Proto: "tcp", Number: 8080}, {Proto: "tcp", Number: 443}, {Proto: "tcp", Number: 5432},
		{Proto: "tcp", Number: 6379}, {Proto: "udp", Number: 9050}, {Proto: "tcp", Number: 22}, {Proto: "icmp"}}
	for _, doc := range []string{
		enforcetest.Policy,
		strings.Replace(enforcetest.Policy, "unmanaged: warn", "unmanaged: deny", 1),
		strings.ReplaceAll(enforcetest.Policy, "{default: deny}", "{}"),
	} {
		p, err := policy.Parse("zones.yaml", []byte(doc), policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		snap := enforcetest.Host()
		b, _ := model.Bind(p, snap)
		narrow := Narrower(b)
		checked := 0
		for _, a := range snap.Containers {
			for _, c := range snap.Containers {
				if a.Name == c.Name || b.Member(a.Name).Workload == nil || b.Member(c.Name).Workload == nil {
					continue
				}
				for _, pt := range ports {
					kept := !narrow(a.Name, c.Name, reach.PortSet{}.Add(pt)).Empty()
					d := b.Decide(a.Name, c.Name, pt)
					if kept != d.Allow {
						t.Errorf("%s -> %s %s: the narrower keeps it: %v; Decide: %v (%s)", a.Name, c.Name, pt, kept, d.Allow, d.Reason)
					}
					checked++
				}
			}
		}
		if checked < 100 {
			t.Errorf("only %d decisions checked", checked)
		}
	}
}
