package reach

import (
	"fmt"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory/synthetic"
)

// The benchmarks run on synthetic hosts of 1k, 10k and 100k containers
// (one network per ten containers, one container in twenty publishing a
// port). Figures go in the notes:
//
//	go test -run '^$' -bench . -benchmem -benchtime 3x ./internal/reach

var sizes = []int{1000, 10000, 100000}

// BenchmarkAllPairsAndBlastRadii computes every edge of the host and the
// blast radius of every container: the target is 10k containers on 1k
// networks in under 2 s and 1 GiB.
func BenchmarkAllPairsAndBlastRadii(b *testing.B) {
	for _, n := range sizes {
		snap := synthetic.Host(n, n/10, 1)
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			var edges, reached int
			for b.Loop() {
				a := Analyze(snap, Options{})
				edges = 0
				a.Edges(func(Edge) bool { edges++; return true })
				reached = 0
				for _, r := range a.BlastRadii() {
					reached += r.Reached
				}
			}
			b.ReportMetric(float64(edges), "edges")
			b.ReportMetric(float64(reached), "reached")
		})
	}
}

// BenchmarkEdges and BenchmarkBlastRadii time the two parts alone.
func BenchmarkEdges(b *testing.B) {
	for _, n := range sizes {
		a := Analyze(synthetic.Host(n, n/10, 1), Options{})
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			edges := 0
			for b.Loop() {
				edges = 0
				a.Edges(func(Edge) bool { edges++; return true })
			}
			b.ReportMetric(float64(edges), "edges")
		})
	}
}

func BenchmarkBlastRadii(b *testing.B) {
	for _, n := range sizes {
		a := Analyze(synthetic.Host(n, n/10, 1), Options{})
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			for b.Loop() {
				a.BlastRadii()
			}
		})
	}
}
