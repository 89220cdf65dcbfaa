package graph

import (
	"fmt"
	"io"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory/synthetic"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// The benchmarks draw synthetic hosts of 1k and 10k containers (one
// network per ten containers, one container in ten a gateway, one in
// twenty publishing a port), folded as the CLI does by default. Figures
// go in the notes:
//
//	go test -run '^$' -bench . -benchmem ./internal/graph
//
// The target: 1,000 containers drawn in every format in well under a
// second.

var benchSizes = []int{1000, 10000}

// BenchmarkBuild builds the drawing from an analysis (reach.Edges is
// most of it).
func BenchmarkBuild(b *testing.B) {
	for _, n := range benchSizes {
		snap := synthetic.Host(n, n/10, 1)
		a := reach.Analyze(snap, reach.Options{})
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			var g *Graph
			for b.Loop() {
				g = Host(snap, a, Options{})
			}
			b.ReportMetric(float64(len(g.Nodes)), "nodes")
			b.ReportMetric(float64(len(g.Edges)), "edges")
		})
	}
}

// BenchmarkRender renders a built drawing in each format.
func BenchmarkRender(b *testing.B) {
	for _, n := range benchSizes {
		snap := synthetic.Host(n, n/10, 1)
		a := reach.Analyze(snap, reach.Options{})
		g := Host(snap, a, Options{})
		page := Page{Radii: a.BlastRadii()}
		for _, f := range Formats() {
			b.Run(fmt.Sprintf("containers=%d/%s", n, f), func(b *testing.B) {
				w := &countingWriter{}
				for b.Loop() {
					w.n = 0
					var err error
					if f == FormatHTML {
						err = HTML(w, g, page)
					} else {
						err = Render(w, f, g)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(w.n)/1024, "KiB")
			})
		}
	}
}

// BenchmarkEndToEnd is what 'zonewarden graph -o host.svg' costs after
// reading the host: analysis, drawing, SVG.
func BenchmarkEndToEnd(b *testing.B) {
	for _, n := range benchSizes {
		snap := synthetic.Host(n, n/10, 1)
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			for b.Loop() {
				a := reach.Analyze(snap, reach.Options{})
				if err := SVG(io.Discard, Host(snap, a, Options{})); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnfolded draws 1,000 containers with folding off: the worst
// case a user can ask for.
func BenchmarkUnfolded(b *testing.B) {
	snap := synthetic.Host(1000, 100, 1)
	a := reach.Analyze(snap, reach.Options{})
	var g *Graph
	for b.Loop() {
		g = Host(snap, a, Options{FoldAbove: -1})
		if err := SVG(io.Discard, g); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(g.Nodes)), "nodes")
	b.ReportMetric(float64(len(g.Edges)), "edges")
}

type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
