package enforce

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/policy/synthetic"
)

// BenchmarkCompile compiles a policy of 10,000 workloads, 1,000 zones and
// 100,000 flows bound to a host with a container per workload (the bar:
// under 1 s), and renders the full-sync script.
func BenchmarkCompile(b *testing.B) {
	for _, size := range []struct{ workloads, zones, flows int }{{100, 10, 1_000}, {10_000, 1_000, 100_000}} {
		p := synthetic.Policy(size.workloads, size.zones, size.flows, 0, 1)
		snap := synthetic.Host(p)
		bind, err := model.Bind(p, snap)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("workloads=%d/flows=%d", size.workloads, size.flows), func(b *testing.B) {
			var elements, bytes int
			for b.Loop() {
				r := Compile(bind, Options{})
				elements, bytes = r.Size(), len(r.Script())
			}
			b.ReportMetric(float64(elements), "elements")
			b.ReportMetric(float64(bytes), "script-bytes")
		})
	}
}

// BenchmarkTrace traces the first packet of a declared flow and of a
// denied one through the three tiers' chains: what ending the connections
// a tightened policy forbids costs per tracked connection (Forbids).
func BenchmarkTrace(b *testing.B) {
	p, err := policy.Parse("zones.yaml", []byte(threeTierPolicy), policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	bind, err := model.Bind(p, threeTier())
	if err != nil {
		b.Fatal(err)
	}
	r := Compile(bind, Options{})
	allowed := Packet{Hook: Forward, Src: netip.MustParseAddr("10.20.3.13"), Dst: netip.MustParseAddr("10.20.3.14"), Proto: "tcp", Port: 5432}
	denied := Packet{Hook: Forward, Src: netip.MustParseAddr("10.20.1.11"), Dst: netip.MustParseAddr("10.20.2.13"), Proto: "tcp", Port: 5432}
	for b.Loop() {
		if r.Trace(allowed).Drop || !r.Trace(denied).Drop {
			b.Fatal("wrong verdict")
		}
	}
}
