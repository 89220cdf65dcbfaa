package graph

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// Page is what the HTML page shows beside the drawing. The zero value
// shows the drawing alone.
type Page struct {
	// Source names the host for people ("docker unix:///var/run/docker.sock").
	Source string
	// Audit holds the findings to list, or is nil.
	Audit *audit.Report
	// Radii ranks the blast radii (reach.Analysis.BlastRadii), or is nil.
	Radii []reach.Summary
	// MaxRadii caps the rows of the ranking shown at once (0: 50); the
	// rest fold away.
	MaxRadii int
	// MaxFindings caps the findings listed per severity (0: 100); the
	// page says how many more there are ('zonewarden audit' lists all).
	MaxFindings int
}

//go:embed page/page.js
var pageJS string

//go:embed page/page.css
var pageCSS string

// HTML writes g as one self-contained HTML page: the SVG drawing with pan
// and zoom (wheel, drag, buttons, + - 0 keys), the findings and the
// blast-radius ranking beside it. Clicking a container (in the drawing,
// the ranking or a finding) highlights its blast radius, computed in the
// page from the drawing; a graph built with Options.Radius starts with
// that one highlighted, and so does a page opened as FILE#highlight=NAME.
//
// The page loads nothing: no CDN, no fonts, no images; its Content
// Security Policy forbids any request.
func HTML(w io.Writer, g *Graph, p Page) error {
	// The page highlights with its script, from the plain drawing.
	plain := *g
	plain.Highlight = nil
	plain.Edges = nil
	for _, e := range g.Edges {
		if e.Kind != KindPath {
			plain.Edges = append(plain.Edges, e)
		}
	}
	var svg strings.Builder
	writeSVG(&svg, &plain, layOut(&plain))

	data, err := json.Marshal(pageData(&plain, g.Highlight))
	if err != nil {
		return fmt.Errorf("encoding the graph for the page: %w", err)
	}
	v := pageView{
		Title:     firstNonEmpty(g.Title, "zonewarden graph"),
		Source:    p.Source,
		Graph:     g,
		SVG:       template.HTML(svg.String()),
		Data:      template.JS(data),
		Script:    template.JS(pageJS),
		Style:     template.CSS(pageCSS),
		Audit:     p.Audit,
		HasRadii:  p.Radii != nil,
		Highlight: g.Highlight,
	}
	for _, c := range g.Clusters {
		if c.Kind == ClusterZone {
			v.Zones++
		}
	}
	limit := p.MaxRadii
	if limit <= 0 {
		limit = 50
	}
	v.Radii, v.MoreRadii = p.Radii[:min(limit, len(p.Radii))], p.Radii[min(limit, len(p.Radii)):]
	if p.Audit != nil {
		for _, s := range audit.Severities() {
			var fs []audit.Finding
			for _, f := range p.Audit.Findings {
				if f.Severity == s {
					fs = append(fs, f)
				}
			}
			if len(fs) > 0 {
				shown := min(len(fs), cmp.Or(max(p.MaxFindings, 0), 100))
				v.Severities = append(v.Severities, severityGroup{Name: s.String(), Total: len(fs), Findings: fs[:shown], More: len(fs) - shown})
			}
		}
	}
	var b strings.Builder
	if err := pageTemplate.Execute(&b, v); err != nil {
		return fmt.Errorf("rendering the page: %w", err)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

type pageView struct {
	Title, Source    string
	Graph            *Graph
	SVG              template.HTML
	Data, Script     template.JS
	Style            template.CSS
	Audit            *audit.Report
	Severities       []severityGroup
	HasRadii         bool
	Radii, MoreRadii []reach.Summary
	Highlight        *Highlight
	Zones            int
}

type severityGroup struct {
	Name        string
	Total, More int
	Findings    []audit.Finding
}

// The drawing as the page's script reads it.
type jsNode struct {
	ID     string   `json:"id"`
	Entity string   `json:"e"`
	Kind   NodeKind `json:"k"`
	Peer   string   `json:"p,omitempty"`
	Data   bool     `json:"d,omitempty"`
	Count  int      `json:"n,omitempty"`
}

type jsCluster struct {
	ID     string   `json:"id"`
	Nodes  []string `json:"n"`
	Clique bool     `json:"q,omitempty"`
}

type jsEdge struct {
	From string `json:"f"`
	To   string `json:"t"`
	Kind Kind   `json:"k"`
	Both bool   `json:"b,omitempty"`
}

type jsGraph struct {
	Nodes     []jsNode    `json:"nodes"`
	Clusters  []jsCluster `json:"clusters"`
	Edges     []jsEdge    `json:"edges"`
	Highlight string      `json:"highlight,omitempty"`
}

func pageData(g *Graph, h *Highlight) jsGraph {
	d := jsGraph{Nodes: []jsNode{}, Clusters: []jsCluster{}, Edges: []jsEdge{}}
	// Names are cleaned as in the drawing, whose attributes the script
	// matches them with.
	for _, n := range g.Nodes {
		jn := jsNode{ID: n.ID, Entity: clean(n.Entity), Kind: n.Kind, Peer: clean(n.Peer), Data: n.HasClass("data")}
		if n.Kind == NodeFolded {
			jn.Count = n.Count
		}
		d.Nodes = append(d.Nodes, jn)
	}
	for _, c := range g.Clusters {
		d.Clusters = append(d.Clusters, jsCluster{ID: c.ID, Nodes: append([]string{}, c.Nodes...), Clique: c.Clique})
	}
	for _, e := range g.Edges { // in drawing order: data-edge is the index
		d.Edges = append(d.Edges, jsEdge{From: e.From, To: e.To, Kind: e.Kind, Both: e.Both})
	}
	if h != nil {
		d.Highlight = clean(h.Source)
	}
	return d
}

// pageTemplate cleans every name and text it shows (clean): html/template
// escapes markup, not control characters.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{"clean": clean}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="zonewarden">
<title>{{clean .Title}}</title>
<style>{{.Style}}</style>
</head>
<body>
<header>
<h1>{{clean .Title}}</h1>
<span class="zw-meta">{{if .Source}}{{clean .Source}} · {{end}}{{.Graph.Containers}} containers in {{.Zones}} zones{{if .Graph.Folded}} · {{.Graph.Folded}} ordinary containers folded into one node per zone{{end}}</span>
</header>
<main>
<section id="zw-canvas">
<div id="zw-toolbar"><button id="zw-zoom-in" title="zoom in (+)">+</button><button id="zw-zoom-out" title="zoom out (-)">−</button><button id="zw-fit" title="fit (0, or double-click)">fit</button><button id="zw-clear" title="clear the highlight (Esc)">clear</button><span class="zw-hint">wheel: zoom · drag: pan · click a container: its blast radius</span></div>
{{.SVG}}
</section>
<aside id="zw-panel">
<h2>Blast radius</h2>
<div id="zw-selection">{{if .Highlight}}<p>{{clean .Highlight.Describe}}</p>{{else}}<p class="zw-muted">Click a container to see what an attacker who controls it reaches, directly and by pivoting through the containers it reaches.</p>{{end}}</div>
{{- if .HasRadii}}
<h2>Largest blast radii</h2>
<table class="zw-radii">
<thead><tr><th>container</th><th class="num" title="containers reached at any hop">reached</th><th class="num" title="containers reached in one hop">direct</th><th class="num" title="data services reached">data</th><th class="num" title="longest shortest path">hops</th><th title="reaches the host's own services">host</th><th title="reaches the internet">net</th></tr></thead>
<tbody>
{{- range .Radii}}
<tr data-peer="{{clean .Source}}"><td>{{clean .Source}}</td><td class="num">{{.Reached}}</td><td class="num">{{.Direct}}</td><td class="num">{{.Data}}</td><td class="num">{{.MaxHops}}</td><td>{{if .Host}}✓{{else}}–{{end}}</td><td>{{if .Internet}}✓{{else}}–{{end}}</td></tr>
{{- end}}
</tbody>
</table>
{{- if .MoreRadii}}
<details><summary>{{len .MoreRadii}} more</summary>
<table class="zw-radii"><tbody>
{{- range .MoreRadii}}
<tr data-peer="{{clean .Source}}"><td>{{clean .Source}}</td><td class="num">{{.Reached}}</td><td class="num">{{.Direct}}</td><td class="num">{{.Data}}</td><td class="num">{{.MaxHops}}</td><td>{{if .Host}}✓{{else}}–{{end}}</td><td>{{if .Internet}}✓{{else}}–{{end}}</td></tr>
{{- end}}
</tbody></table>
</details>
{{- end}}
{{- end}}
{{- if .Audit}}
<h2>Findings ({{len .Audit.Findings}})</h2>
{{- if not .Audit.Findings}}<p class="zw-muted">No findings.</p>{{end}}
{{- range .Severities}}
<h3 class="zw-badge">{{.Name}} ({{.Total}})</h3>
{{- range .Findings}}
<details class="zw-finding zw-sev-{{.Severity}}"><summary><span class="zw-subject">{{if eq (print .Subject.Kind) "container"}}<a class="zw-peer" data-peer="{{clean .Subject.Name}}">{{clean .Subject.Name}}</a>{{else}}{{clean (print .Subject)}}{{end}}</span>: {{clean .Title}} <span class="zw-rule">{{clean .Rule}}</span></summary>
{{- if .Evidence}}<ul>{{range .Evidence}}<li>{{clean .}}</li>{{end}}</ul>{{end}}
<p><strong>Fix:</strong> {{clean .Remediation}}</p>
{{- if .References}}<p class="zw-muted">{{range $i, $r := .References}}{{if $i}} · {{end}}{{clean $r}}{{end}}</p>{{end}}
</details>
{{- end}}
{{- if .More}}<p class="zw-muted">and {{.More}} more {{.Name}} findings: 'zonewarden audit' lists them all.</p>{{end}}
{{- end}}
{{- end}}
</aside>
</main>
<script type="application/json" id="zw-data">{{.Data}}</script>
<script>{{.Script}}</script>
</body>
</html>
`))
