package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/graph"
	"github.com/zonewarden/zonewarden/internal/reach"
)

func (a *app) graphCommand() *cobra.Command {
	var (
		format, output, highlight string
		foldAbove                 int
	)
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Draw the zones and who reaches whom (SVG, HTML, DOT, Mermaid)",
		Long: `graph draws the host (live Docker by default, -f compose files, or --snapshot):
each network is a zone (a box; internal and ICC-off networks are marked), each
container a node inside the zones it joins (a gateway container is drawn in
each of them, the copies joined by a dotted line), and the published ports,
the host's network namespace, the outside world and the internet as nodes.
Edges are styled by the path they take: published port, shared network,
gateway address, host network, egress, shared namespace.

Inside a zone whose members reach each other, no edge is drawn: membership
says it. An edge that holds for every member of a zone starts or ends at the
zone's border. Above --fold-above containers, the ordinary containers of each
zone (no gateway, nothing published, no shared namespace) fold into one node.

--highlight CONTAINER draws its blast radius: what an attacker who controls
it reaches, coloured by the number of hops, with the paths.

Formats: svg (laid out by zonewarden, no Graphviz needed), html (one
self-contained page: the drawing with pan and zoom, the audit findings and
the blast-radius ranking; click a container to see its blast radius), dot
(Graphviz), mermaid (a flowchart; written inside a ` + "```mermaid" + ` fence when
-o ends in .md). Without --format the extension of -o decides (.svg, .html,
.dot/.gv, .mmd/.md), else svg.

Exit status: 0 when the graph was written, 2 when it could not be.`,
		Example: `  zonewarden graph -o host.html                 # open it in a browser
  zonewarden graph -f compose.yaml -o zones.svg
  zonewarden graph --snapshot host.json --highlight dev-box -o dev-box.svg
  zonewarden graph --format dot | dot -Tpng -o host.png
  zonewarden graph --format mermaid -o docs/zones.md   # renders on GitHub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := graphFormat(format, output)
			if err != nil {
				return usageErr(cmd, "%v", err)
			}
			if foldAbove < 0 {
				return usageErr(cmd, "--fold-above must be 0 (never fold) or more, not %d", foldAbove)
			}
			snap, err := a.src.load(cmd.Context())
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			an := reach.Analyze(snap, reach.Options{})
			opts := graph.Options{Title: "zonewarden: " + describe(snap), FoldAbove: foldAbove}
			if foldAbove == 0 {
				opts.FoldAbove = -1
			}
			if highlight != "" {
				r, err := blastRadius(an, highlight)
				if err != nil {
					return &exitErr{Code: exitError, Err: fmt.Errorf("--highlight: %w", err)}
				}
				opts.Radius = r
			}
			g := graph.Host(snap, an, opts)

			var buf bytes.Buffer
			switch {
			case f == graph.FormatHTML:
				err = graph.HTML(&buf, g, graph.Page{Source: describe(snap), Audit: audit.Run(snap, audit.Options{}), Radii: an.BlastRadii()})
			case f == graph.FormatMermaid && strings.EqualFold(filepath.Ext(output), ".md"):
				err = graph.MarkdownMermaid(&buf, g)
			default:
				err = graph.Render(&buf, f, g)
			}
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			if output == "" || output == "-" {
				_, err = a.stdout.Write(buf.Bytes())
			} else {
				err = os.WriteFile(output, buf.Bytes(), 0o666)
			}
			if err != nil {
				return &exitErr{Code: exitError, Err: fmt.Errorf("cannot write the graph: %w", err)}
			}
			return nil
		},
	}
	names := make([]string, 0, 4)
	for _, f := range graph.Formats() {
		names = append(names, string(f))
	}
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "", "output `FORMAT`: "+strings.Join(names, ", ")+" (default: from the -o extension, else svg)")
	fl.StringVarP(&output, "output", "o", "", "write the graph to `FILE` instead of standard output")
	fl.StringVar(&highlight, "highlight", "", "draw the blast radius of `CONTAINER`")
	fl.IntVar(&foldAbove, "fold-above", graph.DefaultFoldAbove, "fold the ordinary containers of each zone into one node when the host has more than `N` containers (0: never)")
	return cmd
}

// graphFormat picks the format: --format, else the extension of -o, else
// svg.
func graphFormat(format, output string) (graph.Format, error) {
	if format != "" {
		return graph.ParseFormat(format)
	}
	if output == "" || output == "-" {
		return graph.FormatSVG, nil
	}
	if f, ok := graph.FormatOf(output); ok {
		return f, nil
	}
	return "", fmt.Errorf("cannot tell the format from %q: name it .svg, .html, .dot or .mmd, or give --format", filepath.Base(output))
}

// blastRadius returns the blast radius of a container, or an error that
// names close matches (or says a pseudo-peer is not a container).
func blastRadius(an *reach.Analysis, name string) (*reach.Radius, error) {
	if err := an.CheckPeer(name); err != nil {
		return nil, err
	}
	if an.Container(name) == nil {
		return nil, fmt.Errorf("%q is not a container: a blast radius starts from a container ('zonewarden reach' lists them)", name)
	}
	return an.BlastRadius(name, 0)
}
