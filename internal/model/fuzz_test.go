package model_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// FuzzEval: questions on the model of any policy Parse accepts never
// panic, and a test the model passes keeps passing when asked again.
func FuzzEval(f *testing.F) {
	files, _ := filepath.Glob("../policy/testdata/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.Parse("f.yaml", data, policy.Options{})
		if err != nil {
			return
		}
		m := model.Compile(p)
		first := m.RunTests()
		for i, r := range m.RunTests() {
			if r.Pass != first[i].Pass {
				t.Fatalf("test %d passes once and fails once", i)
			}
		}
		m.WorkloadFlows()
		refs := []policy.Ref{policy.ParseRef("192.0.2.1")}
		for _, z := range p.Zones {
			refs = append(refs, policy.ZoneRef(z.Name))
		}
		for _, w := range p.Workloads {
			refs = append(refs, policy.WorkloadRef(w.Name))
		}
		for _, a := range refs[:min(len(refs), 6)] {
			for _, b := range refs[:min(len(refs), 6)] {
				m.Eval(a, b, l4.Port{Proto: "tcp", Number: 80})
				m.Eval(a, b, l4.Port{})
				m.AllowedPorts(a, b)
			}
		}
	})
}
