package nft

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy/synthetic"
)

// BenchmarkApply loads compiled rulesets into the kernel (as root): a full
// sync from scratch of 10 and 100,000 flows, and the update that admits one
// new container with that much loaded. The bars: full sync of 10,000
// workloads / 100,000 flows under 2 s; admitting a container under 20 ms,
// no more than 2x slower with 100,000 flows than with 10.
//
//	sudo go test -run '^$' -bench Apply -benchtime 5x ./internal/nft
func BenchmarkApply(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading nftables needs root")
	}
	ctx := context.Background()
	for _, size := range []struct{ workloads, zones, flows int }{{10, 2, 10}, {10_000, 1_000, 100_000}} {
		p := synthetic.Policy(size.workloads, size.zones, size.flows, 0, 1)
		snap := synthetic.Host(p)
		bind, err := model.Bind(p, snap)
		if err != nil {
			b.Fatal(err)
		}
		opts := enforce.Options{Table: "zwbench"}
		rs := enforce.Compile(bind, opts)
		script := rs.Script()
		b.Cleanup(func() { Delete(ctx, "inet", "zwbench") })
		b.Run(fmt.Sprintf("full-sync/flows=%d", size.flows), func(b *testing.B) {
			for b.Loop() {
				if err := Apply(ctx, script); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rs.Size()), "elements")
		})
		// Admit one more container of workload 0 (and remove it again).
		bind2, _ := model.Bind(p, synthetic.WithOneMore(snap, 0))
		admitted := enforce.Compile(bind2, opts)
		add, del := admitted.Update(rs), rs.Update(admitted)
		b.Run(fmt.Sprintf("admit-one/flows=%d", size.flows), func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				if err := Apply(ctx, add); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				if err := Apply(ctx, del); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/admit")
		})
	}
}
