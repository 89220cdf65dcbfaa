package model_test

import (
	"testing"

	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/policy/synthetic"
)

// BenchmarkCheck measures what 'zonewarden check' does with a policy of
// 10,000 workloads, 1,000 zones, 100,000 flows and 10,000 tests: parse,
// validate, compile, run the tests. The bar is 1 s.
func BenchmarkCheck(b *testing.B) {
	data := policy.Format(synthetic.Policy(10_000, 1_000, 100_000, 10_000, 1))
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		p, err := policy.Parse("bench.yaml", data, policy.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if failed := model.Failed(model.Compile(p).RunTests()); len(failed) > 0 {
			b.Fatalf("%d tests fail: %s", len(failed), failed[0].Decision.Reason)
		}
	}
}
