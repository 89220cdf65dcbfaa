package audit

import (
	"fmt"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory/synthetic"
)

// BenchmarkRun evaluates every rule on synthetic hosts; the figures go in
// the issue notes. Run: go test -run '^$' -bench Run -benchmem ./internal/audit
func BenchmarkRun(b *testing.B) {
	for _, size := range []struct{ containers, networks int }{{1000, 100}, {10000, 1000}} {
		snap := synthetic.Host(size.containers, size.networks, 1)
		b.Run(fmt.Sprintf("containers=%d/networks=%d", size.containers, size.networks), func(b *testing.B) {
			for b.Loop() {
				rep := Run(snap, Options{})
				if len(rep.Findings) == 0 {
					b.Fatal("no findings")
				}
			}
		})
	}
}
