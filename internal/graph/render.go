package graph

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// Format is an output format of the renderers.
type Format string

// Formats.
const (
	FormatSVG     Format = "svg"
	FormatHTML    Format = "html"
	FormatDOT     Format = "dot"
	FormatMermaid Format = "mermaid"
)

// Formats lists the formats, the default first.
func Formats() []Format { return []Format{FormatSVG, FormatHTML, FormatDOT, FormatMermaid} }

// ParseFormat reads a format name ("svg", "html", "dot", "mermaid").
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if strings.EqualFold(s, string(f)) {
			return f, nil
		}
	}
	names := make([]string, 0, 4)
	for _, f := range Formats() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("unknown format %q: use one of %s", s, strings.Join(names, ", "))
}

// FormatOf returns the format a file name asks for by its extension:
// .svg, .html/.htm, .dot/.gv, .mmd/.mermaid/.md; false for any other.
func FormatOf(path string) (Format, bool) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".svg":
		return FormatSVG, true
	case ".html", ".htm":
		return FormatHTML, true
	case ".dot", ".gv":
		return FormatDOT, true
	case ".mmd", ".mermaid", ".md", ".markdown":
		return FormatMermaid, true
	}
	return "", false
}

// Render writes g in format f. HTML is the page without findings or
// ranking (see HTML for those). A file named *.md gets Mermaid inside a
// ```mermaid fence: use MarkdownMermaid.
func Render(w io.Writer, f Format, g *Graph) error {
	switch f {
	case FormatSVG:
		return SVG(w, g)
	case FormatHTML:
		return HTML(w, g, Page{})
	case FormatDOT:
		return DOT(w, g)
	case FormatMermaid:
		return Mermaid(w, g)
	}
	_, err := ParseFormat(string(f))
	return err
}

// MarkdownMermaid writes the Mermaid flowchart of g inside a ```mermaid
// fence, which GitHub and GitLab render in Markdown files, comments and
// job summaries.
func MarkdownMermaid(w io.Writer, g *Graph) error {
	var b strings.Builder
	b.WriteString("```mermaid\n")
	if err := Mermaid(&b, g); err != nil {
		return err
	}
	b.WriteString("```\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteEdges draws a list of edges (reach's, filtered) in format f, with
// their containers in the zones snap gives them. It is what 'zonewarden
// reach --format dot|mermaid|svg' writes.
func WriteEdges(w io.Writer, f Format, snap *inventory.Snapshot, edges []reach.Edge, opts Options) error {
	return Render(w, f, FromEdges(snap, edges, opts))
}
