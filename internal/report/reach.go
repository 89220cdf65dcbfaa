package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/zonewarden/zonewarden/internal/reach"
)

// EdgeWriter writes reachability edges one at a time, so that the edges
// of a large host stream out instead of piling up in memory. Call Write
// for each edge, then Close once.
type EdgeWriter interface {
	Write(reach.Edge) error
	Close() error
}

// NewEdgeWriter returns the writer of one format: text, json or csv.
func NewEdgeWriter(w io.Writer, format string) (EdgeWriter, error) {
	return NewNodeEdgeWriter(w, format, nil)
}

// NewNodeEdgeWriter is NewEdgeWriter for a Swarm: nodes maps each task to
// the node it runs on, which the text and JSON forms name for both ends
// ("web.1 [node1] => db.1 [node2]").
func NewNodeEdgeWriter(w io.Writer, format string, nodes map[string]string) (EdgeWriter, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	switch format {
	case "text":
		return &edgeText{w: bw, nodes: nodes}, nil
	case "json":
		return &edgeJSON{w: bw, nodes: nodes}, nil
	case "csv":
		cw := csv.NewWriter(bw)
		return &edgeCSV{bw: bw, w: cw}, cw.Write([]string{"from", "to", "ports", "via"})
	}
	return nil, fmt.Errorf("no edge writer for format %q", format)
}

// DescribeVia renders the reasons of an edge for people:
// "network application-tier, published 0.0.0.0:18443".
func DescribeVia(via []reach.Reason) string {
	out := make([]string, len(via))
	for i, v := range via {
		out[i] = strings.Replace(v.String(), ":", " ", 1)
	}
	return strings.Join(out, ", ")
}

// edgeText writes "frontend => api : all ports (network application-tier)".
type edgeText struct {
	w     *bufio.Writer
	n     int
	nodes map[string]string
}

func (e *edgeText) Write(x reach.Edge) error {
	e.n++
	_, err := fmt.Fprintf(e.w, "%s%s => %s%s : %s (%s)\n", clean(x.From), onNode(e.nodes, x.From), clean(x.To), onNode(e.nodes, x.To), x.Ports.Describe(), DescribeVia(x.Via))
	return err
}

// onNode is " [node]" for a peer that runs on a Swarm node, "" otherwise.
func onNode(nodes map[string]string, peer string) string {
	if n := nodes[peer]; n != "" {
		return " [" + n + "]"
	}
	return ""
}

func (e *edgeText) Close() error {
	if e.n == 0 {
		fmt.Fprintln(e.w, "No peer reaches another with these filters.")
	}
	return e.w.Flush()
}

// edgeJSON writes {"edges": [{"from", "to", "ports", "via"}, ...]}.
type edgeJSON struct {
	w     *bufio.Writer
	n     int
	buf   bytes.Buffer
	nodes map[string]string
}

type jsonEdge struct {
	From     string         `json:"from"`
	FromNode string         `json:"from_node,omitempty"`
	To       string         `json:"to"`
	ToNode   string         `json:"to_node,omitempty"`
	Ports    []string       `json:"ports"`
	Via      []reach.Reason `json:"via"`
}

func (e *edgeJSON) Write(x reach.Edge) error {
	sep := ",\n    "
	if e.n == 0 {
		sep = "{\n  \"edges\": [\n    "
	}
	e.n++
	e.buf.Reset()
	enc := json.NewEncoder(&e.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(jsonEdge{From: x.From, FromNode: e.nodes[x.From], To: x.To, ToNode: e.nodes[x.To], Ports: x.Ports.Strings(), Via: x.Via}); err != nil {
		return err
	}
	e.w.WriteString(sep)
	_, err := e.w.Write(bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")))
	return err
}

func (e *edgeJSON) Close() error {
	if e.n == 0 {
		e.w.WriteString("{\n  \"edges\": []\n}\n")
	} else {
		e.w.WriteString("\n  ]\n}\n")
	}
	return e.w.Flush()
}

// edgeCSV writes one row per edge; several ports or reasons are joined
// with spaces.
type edgeCSV struct {
	bw *bufio.Writer
	w  *csv.Writer
}

func (e *edgeCSV) Write(x reach.Edge) error {
	return e.w.Write([]string{x.From, x.To, strings.Join(x.Ports.Strings(), " "), strings.Join(reach.Reasons(x.Via), " ")})
}

func (e *edgeCSV) Close() error {
	e.w.Flush()
	if err := e.w.Error(); err != nil {
		return err
	}
	return e.bw.Flush()
}

// BlastRadiusText writes one container's blast radius for people: every
// container reached with its hop count, first-hop ports and shortest path,
// then a summary naming the data services.
//
//	Blast radius of devbox: an attacker who controls it reaches 3 containers.
//
//	  HOP  CONTAINER  FIRST-HOP PORTS  PATH
//	  1    lb         443/tcp          devbox -> lb
//	  2    frontend   443/tcp          devbox -> lb -> frontend
func BlastRadiusText(w io.Writer, r *reach.Radius, maxHops int) error {
	var b strings.Builder
	limit := ""
	if maxHops > 0 {
		limit = fmt.Sprintf(" within %s", plural(maxHops, "hop"))
	}
	fmt.Fprintf(&b, "Blast radius of %s: an attacker who controls it reaches %s%s.\n", clean(r.Source), plural(len(r.Reachable), "container"), limit)
	if len(r.Reachable) > 0 {
		b.WriteByte('\n')
		rows := [][]string{{"HOP", "CONTAINER", "FIRST-HOP PORTS", "PATH"}}
		for _, x := range r.Reachable {
			name := clean(x.Name)
			if x.Data != "" {
				name += " [" + x.Data + "]"
			}
			rows = append(rows, []string{fmt.Sprint(x.Hops), name, strings.Join(x.Ports, ","), clean(strings.Join(x.Path, " -> "))})
		}
		writeColumns(&b, rows)
	}
	b.WriteByte('\n')
	if ds := r.DataServices(); len(ds) > 0 {
		fmt.Fprintf(&b, "Data services reached (%d):\n", len(ds))
		for _, d := range ds {
			fmt.Fprintf(&b, "  %s (%s) in %s: %s\n", clean(d.Name), d.Data, plural(d.Hops, "hop"), clean(strings.Join(d.Path, " -> ")))
		}
	} else {
		b.WriteString("No data service reached.\n")
	}
	var also []string
	if r.Host {
		also = append(also, "the host's own services (through its gateway address)")
	}
	if r.Internet {
		also = append(also, "the internet")
	}
	if len(also) > 0 {
		fmt.Fprintf(&b, "It also reaches %s.\n", strings.Join(also, " and "))
	}
	return write(w, b.String())
}

// BlastRadiusJSON writes one blast radius as JSON:
// {"source": "frontend", "reachable": [{"name", "hops", "path", "ports"}], ...}.
func BlastRadiusJSON(w io.Writer, r *reach.Radius) error {
	return writeJSON(w, r)
}

// BlastRadiiText ranks every container by the size of its blast radius,
// the worst first.
func BlastRadiiText(w io.Writer, radii []reach.Summary) error {
	var b strings.Builder
	rows := [][]string{{"CONTAINER", "REACHES", "DATA", "DIRECT", "HOPS", "HOST", "INTERNET"}}
	for _, s := range radii {
		rows = append(rows, []string{clean(s.Source), fmt.Sprint(s.Reached), fmt.Sprint(s.Data), fmt.Sprint(s.Direct), fmt.Sprint(s.MaxHops), yesNo(s.Host), yesNo(s.Internet)})
	}
	writeColumns(&b, rows)
	return write(w, b.String())
}

// BlastRadiiJSON writes {"radii": [...]}, the worst first.
func BlastRadiiJSON(w io.Writer, radii []reach.Summary) error {
	if radii == nil {
		radii = []reach.Summary{}
	}
	return writeJSON(w, struct {
		Radii []reach.Summary `json:"radii"`
	}{radii})
}

func writeJSON(w io.Writer, v any) error {
	doc, err := marshalJSON(v)
	if err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	return write(w, string(doc))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writeColumns writes rows as left-aligned columns two spaces apart,
// indented by two.
func writeColumns(b *strings.Builder, rows [][]string) {
	var width []int
	for _, r := range rows {
		for i, cell := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len(cell))
		}
	}
	for _, r := range rows {
		b.WriteString("  ")
		for i, cell := range r {
			if i == len(r)-1 {
				b.WriteString(cell)
				break
			}
			fmt.Fprintf(b, "%-*s  ", width[i], cell)
		}
		b.WriteByte('\n')
	}
}
