package oracle_test

import (
	"fmt"
	"testing"

	"github.com/zonewarden/zonewarden/internal/kube"
	"github.com/zonewarden/zonewarden/internal/kube/oracle"
	"github.com/zonewarden/zonewarden/internal/policy/synthetic"
)

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkExport1000: a 1,000-workload policy (100 zones, 5,000 flows)
// exported and written as YAML. Reports the bytes written and the rules.
func BenchmarkExport1000(b *testing.B) {
	p := synthetic.Policy(1000, 100, 5000, 0, 1)
	var size int64
	var rules int
	for b.Loop() {
		x := kube.Build(p, kube.Options{Scheme: kube.Own})
		var c counter
		if err := x.Write(&c, kube.YAML); err != nil {
			b.Fatal(err)
		}
		size = c.n
		rules = 0
		for _, np := range x.Policies {
			rules += len(np.Spec.Ingress) + len(np.Spec.Egress)
		}
	}
	b.ReportMetric(float64(size), "bytes")
	b.ReportMetric(float64(rules), "rules")
}

// BenchmarkOracle: netpol-analyzer on exports of 100 and 200 workloads
// (10 zones, 5 flows per workload), a Deployment per workload: it
// computes every pair, and its time grows with their number.
func BenchmarkOracle(b *testing.B) {
	for _, n := range []int{100, 200} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := synthetic.Policy(n, n/10, 5*n, 0, 1)
			x := kube.Build(p, kube.Options{Scheme: kube.Own})
			for b.Loop() {
				c, err := oracle.Run(x)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(len(c.Connected())), "connected-pairs")
			}
		})
	}
}

// BenchmarkCheck1000: `check --k8s` of a 1,000-workload policy with 20
// tests: the analyzer is given the Deployments of the workloads the tests
// name only (all 1,000 policies).
func BenchmarkCheck1000(b *testing.B) {
	p := synthetic.Policy(1000, 100, 5000, 20, 1)
	for b.Loop() {
		results, err := oracle.Check(p, kube.Options{})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range results {
			if !r.Pass {
				b.Fatalf("test %s -> %s %s fails on the export: %s", r.Test.From, r.Test.To, r.Test.Port, r.Why)
			}
		}
	}
}
