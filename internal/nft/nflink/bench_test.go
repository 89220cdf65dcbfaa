package nflink

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/policy/synthetic"
)

// BenchmarkNetlink loads compiled rulesets over netlink (as root), as
// internal/nft's BenchmarkApply does with nft -f: a full sync from
// scratch of 10 and 100,000 flows, and the update that admits one new
// container with that much loaded (ms/admit: the netlink transaction,
// with the changes computed beforehand as the nft benchmark renders its
// script beforehand; diff-ms: computing them with Diff). Each admission
// is also loaded with nft -f (nft-admit-...) for reference.
//
//	sudo go test -run '^$' -bench Netlink -benchtime 5x ./internal/nft/nflink
//	sudo go test -run '^$' -bench 'Netlink/admit-' -benchtime 500x ./internal/nft/nflink
func BenchmarkNetlink(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading nftables needs root")
	}
	ctx := context.Background()
	l, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const table = "zwbench_nflink"
	b.Cleanup(func() { nft.Delete(ctx, "inet", table) })
	for _, size := range []struct{ workloads, zones, flows int }{{10, 2, 10}, {10_000, 1_000, 100_000}} {
		p := synthetic.Policy(size.workloads, size.zones, size.flows, 0, 1)
		snap := synthetic.Host(p)
		bind, err := model.Bind(p, snap)
		if err != nil {
			b.Fatal(err)
		}
		opts := enforce.Options{Table: table}
		rs := enforce.Compile(bind, opts)
		b.Run(fmt.Sprintf("full-sync/flows=%d", size.flows), func(b *testing.B) {
			for b.Loop() {
				if err := l.Sync(rs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rs.Size()), "elements")
		})
		// The admissions start from rs loaded, whichever sub-benchmarks run.
		if err := l.Sync(rs); err != nil {
			b.Fatal(err)
		}
		// Admit one more container of workload 0 (and remove it again).
		add, del, diffTime, admitted := admission(b, p, snap, rs, 0)
		admit := func(name string, add, del *Changes, diffTime time.Duration, admitted *enforce.Ruleset) {
			b.Run(fmt.Sprintf("%s/flows=%d", name, size.flows), func(b *testing.B) {
				var total time.Duration
				for b.Loop() {
					start := time.Now()
					if err := l.Apply(add); err != nil {
						b.Fatal(err)
					}
					total += time.Since(start)
					if err := l.Apply(del); err != nil {
						b.Fatal(err)
					}
				}
				added, _ := add.Count()
				b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/admit")
				b.ReportMetric(float64(added), "elements/admit")
				b.ReportMetric(float64(diffTime.Microseconds())/1000, "diff-ms")
			})
			// The same change with nft -f, for reference.
			addScript, delScript := admitted.Update(rs), rs.Update(admitted)
			b.Run(fmt.Sprintf("nft-%s/flows=%d", name, size.flows), func(b *testing.B) {
				var total time.Duration
				for b.Loop() {
					start := time.Now()
					if err := nft.Apply(ctx, addScript); err != nil {
						b.Fatal(err)
					}
					total += time.Since(start)
					if err := nft.Apply(ctx, delScript); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/admit")
			})
		}
		admit("admit-one", add, del, diffTime, admitted)
		// And one more container of the busiest workload: the one whose
		// address is in the most declared flows.
		add, del, diffTime, admitted = admission(b, p, snap, rs, busiest(snap, rs))
		admit("admit-busy", add, del, diffTime, admitted)
	}
}

// admission returns the changes that admit one more container like
// snap.Containers[i], on its first network, and remove it again, and the
// time Diff took to compute the first.
func admission(b *testing.B, p *policy.Policy, snap *inventory.Snapshot, rs *enforce.Ruleset, i int) (add, del *Changes, took time.Duration, admitted *enforce.Ruleset) {
	bind, err := model.Bind(p, synthetic.WithOneMore(snap, i))
	if err != nil {
		b.Fatal(err)
	}
	admitted = enforce.Compile(bind, enforce.Options{Table: rs.TableName()})
	start := time.Now()
	add, err = Diff(rs, admitted)
	took = time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if del, err = Diff(admitted, rs); err != nil {
		b.Fatal(err)
	}
	if add.Full() || del.Full() {
		b.Fatal("admitting a container changes the chains")
	}
	return add, del, took, admitted
}

// busiest returns the index of the container whose first address is in
// the most elements of allow4.
func busiest(snap *inventory.Snapshot, rs *enforce.Ruleset) int {
	count := map[string]int{}
	for e := range rs.AllElements("allow4") {
		src, rest, _ := strings.Cut(e, " . ")
		dst, _, _ := strings.Cut(rest, " . ")
		count[src]++
		count[dst]++
	}
	best, most := 0, -1
	for i, c := range snap.Containers {
		if n := count[c.Endpoints[0].IPv4.String()]; n > most {
			best, most = i, n
		}
	}
	return best
}

// BenchmarkDiff computes the changes that admit one container with
// 100,000 flows loaded, against Ruleset.Update rendering them for nft:
// both compare every element of the two rulesets.
//
//	go test -run '^$' -bench Diff ./internal/nft/nflink
func BenchmarkDiff(b *testing.B) {
	p := synthetic.Policy(10_000, 1_000, 100_000, 0, 1)
	snap := synthetic.Host(p)
	bind, err := model.Bind(p, snap)
	if err != nil {
		b.Fatal(err)
	}
	rs := enforce.Compile(bind, enforce.Options{})
	bind2, _ := model.Bind(p, synthetic.WithOneMore(snap, 0))
	admitted := enforce.Compile(bind2, enforce.Options{})
	b.Run("nflink.Diff", func(b *testing.B) {
		for b.Loop() {
			if _, err := Diff(rs, admitted); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Ruleset.Update", func(b *testing.B) {
		for b.Loop() {
			_ = admitted.Update(rs)
		}
	})
}
