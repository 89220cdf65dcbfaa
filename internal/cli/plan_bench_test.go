package cli

import (
	"testing"

	"github.com/zonewarden/zonewarden/internal/policy/synthetic"
)

// BenchmarkPlan binds a policy of 1,000 workloads, 100 zones and 10,000
// flows to a 1,000-container host and computes the plan (the live
// snapshot of such a host takes ~0.56 s more; see bench/live-audit.sh).
// The bar for 'zonewarden plan' on a 1,000-container host: under 2 s.
//
//	go test -run '^$' -bench Plan ./internal/cli
func BenchmarkPlan(b *testing.B) {
	p := synthetic.Policy(1_000, 100, 10_000, 0, 1)
	snap := synthetic.Host(p)
	for i := range snap.Containers { // a host not yet segmented: every container on one network
		snap.Containers[i].Endpoints = snap.Containers[i].Endpoints[:1]
	}
	for b.Loop() {
		pl, _ := computePlan(p, snap)
		if !pl.Changes() {
			b.Fatal("nothing to change")
		}
	}
}
