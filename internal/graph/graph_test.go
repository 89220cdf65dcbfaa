package graph

// Address plan of threeTier: public-dmz 10.20.1.0/24, application-tier
// 10.20.2.0/24, database-tier 10.20.3.0/24 (internal), dev 10.20.4.0/24,
// batch 10.20.5.0/24 (ICC off), bridge 172.17.0.0/16. Published ports:
// lb 0.0.0.0:18443 -> 443/tcp, admin 127.0.0.1:18080 -> 8080/tcp (host
// only, so not drawn), api [::]:19090 -> 9090/tcp.
//
// Regenerate the golden files with
//
//	go test ./internal/graph -update

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/demo"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/synthetic"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/reach"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// hostileName is a container name with a terminal escape sequence and
// characters that DOT, Mermaid, XML and HTML all treat specially.
const hostileName = "ci\"<runner>&1\x1b]0;pwned\x07|`x`"

// threeTier is the seed's three-tier host with every path reach knows: a
// load balancer published to the world, a gateway chain down to an
// internal database tier, a dev network, a host-network agent, a sidecar
// sharing api's namespace, a container without network, a batch network
// with ICC off, and a container on the default bridge with a hostile name.
func threeTier() *inventory.Snapshot {
	nets := []inventory.Network{
		{Name: "bridge", Driver: "bridge", ICC: true, Bridge: "docker0"},
		{Name: "host", Driver: "host"},
		{Name: "none", Driver: "null"},
		{Name: "public-dmz", Driver: "bridge", ICC: true},
		{Name: "application-tier", Driver: "bridge", ICC: true},
		{Name: "database-tier", Driver: "bridge", ICC: true, Internal: true},
		{Name: "dev", Driver: "bridge", ICC: true},
		{Name: "batch", Driver: "bridge", ICC: false},
	}
	nets[0].Subnets = []inventory.Subnet{{Prefix: netip.MustParsePrefix("172.17.0.0/16")}}
	for i := range nets[3:] {
		nets[3+i].Subnets = []inventory.Subnet{{Prefix: netip.MustParsePrefix(fmt.Sprintf("10.20.%d.0/24", i+1))}}
	}
	c := func(name, image string, networks ...string) inventory.Container {
		ct := inventory.Container{Name: name, Image: image, State: "running"}
		for _, n := range networks {
			ct.Endpoints = append(ct.Endpoints, inventory.Endpoint{Network: n})
		}
		if len(networks) > 0 {
			ct.NetworkMode = networks[0]
		}
		return ct
	}
	tcp := func(n uint16) l4.Port { return l4.Port{Number: n, Proto: "tcp"} }
	lb := c("lb", "nginx:1.25", "public-dmz")
	lb.Ports = []inventory.PortBinding{{ContainerPort: tcp(443), HostPort: 18443}}
	api := c("api", "example/api:3", "application-tier", "database-tier")
	api.Ports = []inventory.PortBinding{{ContainerPort: tcp(9090), HostIP: netip.IPv6Unspecified(), HostPort: 19090}}
	agent := c("agent", "metrics-agent:6")
	agent.NetworkMode = "host"
	sidecar := c("sidecar", "envoy:1.30")
	sidecar.NetworkMode = "container:api"
	loner := c("loner", "batch-job:1")
	loner.NetworkMode = "none"
	admin := c("admin", "adminer:4", "dev")
	admin.Ports = []inventory.PortBinding{{ContainerPort: tcp(8080), HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 18080}}
	devbox := c("devbox", "devbox:latest", "dev")
	devbox.Privileged = true
	stopped := c("report", "cron:1", "batch")
	stopped.State = "exited"
	snap := &inventory.Snapshot{Version: inventory.SchemaVersion, Networks: nets, Containers: []inventory.Container{
		lb,
		c("frontend", "example/web:2", "public-dmz", "application-tier"),
		api,
		c("postgres", "postgres:15", "database-tier"),
		c("cache", "redis:7", "database-tier"),
		devbox, admin, agent, sidecar, loner,
		c("worker", "example/worker:3", "batch"), stopped,
		c(hostileName, "cron:1", "bridge"),
	}}
	inventory.Sort(snap)
	return snap
}

// hosts are the fixtures every property test runs on.
func hosts() map[string]*inventory.Snapshot {
	return map[string]*inventory.Snapshot{
		"three-tier":    threeTier(),
		"demo":          demo.Level0().Snapshot(),
		"synthetic-300": synthetic.Host(300, 30, 7),
	}
}

// reachOnGraph computes the blast radius of a container from the drawing
// alone, as the HTML page does when a container is clicked: a node
// reaches the nodes of the clique zones it is drawn in, and the far end of
// every edge that starts at it or at a cluster it is drawn in (either end
// of a two-way edge); a published port passes on to its container in the
// same hop; the host, the internet and the outside are reached but not
// pivoted through. It returns the hops of every peer reached.
func reachOnGraph(g *Graph, source string) map[string]int {
	entityOf := map[string]string{}
	peerOf := map[string]string{}
	kindOf := map[string]NodeKind{}
	nodesOf := map[string][]string{}
	for _, n := range g.Nodes {
		entityOf[n.ID] = n.Entity
		peerOf[n.Entity] = n.Peer
		kindOf[n.Entity] = n.Kind
		nodesOf[n.Entity] = append(nodesOf[n.Entity], n.ID)
	}
	inCluster := map[string][]*Cluster{}
	for i := range g.Clusters {
		for _, id := range g.Clusters[i].Nodes {
			inCluster[entityOf[id]] = append(inCluster[entityOf[id]], &g.Clusters[i])
		}
	}
	ends := func(id string) []string {
		if c := g.Cluster(id); c != nil {
			var out []string
			for _, n := range c.Nodes {
				out = append(out, entityOf[n])
			}
			return out
		}
		return []string{entityOf[id]}
	}
	// from: entity -> entities it reaches in one hop.
	from := func(ent string) []string {
		var out []string
		starts := map[string]bool{}
		for _, n := range nodesOf[ent] {
			starts[n] = true
		}
		for _, c := range inCluster[ent] {
			starts[c.ID] = true
			if c.Clique {
				out = append(out, ends(c.ID)...)
			}
		}
		for _, e := range g.Edges {
			if e.Kind == KindPath || e.Kind == KindSame {
				continue
			}
			if starts[e.From] {
				out = append(out, ends(e.To)...)
			}
			if e.Both && starts[e.To] {
				out = append(out, ends(e.From)...)
			}
		}
		return out
	}
	src := "c:" + source
	hops := map[string]int{src: 0}
	queue := []string{src}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		h := hops[x] + 1
		next := from(x)
		for i := 0; i < len(next); i++ {
			t := next[i]
			if _, seen := hops[t]; seen {
				continue
			}
			if kindOf[t] == NodePort { // the published port forwards in the same hop
				hops[t] = h
				next = append(next, from(t)...)
				continue
			}
			hops[t] = h
			if kindOf[t] == NodeContainer || kindOf[t] == NodeFolded {
				queue = append(queue, t)
			}
		}
	}
	out := map[string]int{}
	for ent, h := range hops {
		if p := peerOf[ent]; p != "" && ent != src {
			out[p] = h
		}
	}
	return out
}

// TestDrawingIsExact: the blast radius read off the drawing of the whole
// host equals reach's, for every container of every fixture. This is
// what lets the drawing leave edges out.
func TestDrawingIsExact(t *testing.T) {
	for name, snap := range hosts() {
		t.Run(name, func(t *testing.T) {
			a := reach.Analyze(snap, reach.Options{})
			g := Host(snap, a, Options{FoldAbove: -1})
			for _, c := range a.Containers() {
				r, err := a.BlastRadius(c, 0)
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]int{}
				for _, x := range r.Reachable {
					want[x.Name] = x.Hops
				}
				got := reachOnGraph(g, c)
				for peer, h := range got {
					switch peer {
					case reach.Host, reach.Internet:
						if on := h == 1; on != map[string]bool{reach.Host: r.Host, reach.Internet: r.Internet}[peer] {
							t.Errorf("%s: drawing says %s at hop %d, reach says direct=%v", c, peer, h, !on)
						}
						delete(got, peer)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: blast radius on the drawing\n got %v\nwant %v", c, got, want)
				}
			}
		})
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/graph -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test ./internal/graph -update and review the diff):\n%s", path, firstDiff(string(want), string(got)))
	}
}

// firstDiff shows the first line that differs.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d\n want %q\n  got %q", i+1, wl, gl)
		}
	}
	return ""
}

// goldenGraphs are the drawings the golden files pin.
func goldenGraphs(t *testing.T) map[string]*Graph {
	t.Helper()
	tt := threeTier()
	a := reach.Analyze(tt, reach.Options{})
	r, err := a.BlastRadius("frontend", 0)
	if err != nil {
		t.Fatal(err)
	}
	demoSnap := demo.Level0().Snapshot()
	folded := synthetic.Host(40, 6, 3)
	return map[string]*Graph{
		"three-tier":           Host(tt, a, Options{Title: "three-tier host"}),
		"three-tier-highlight": Host(tt, a, Options{Title: "three-tier host", Radius: r}),
		"three-tier-from-api":  FromEdges(tt, a.From("api"), Options{Title: "edges from api"}),
		"demo":                 Host(demoSnap, reach.Analyze(demoSnap, reach.Options{}), Options{Title: "demo host"}),
		"folded":               Host(folded, reach.Analyze(folded, reach.Options{}), Options{Title: "40 containers folded above 20", FoldAbove: 20}),
	}
}

func TestGoldenDOTAndMermaid(t *testing.T) {
	for name, g := range goldenGraphs(t) {
		t.Run(name, func(t *testing.T) {
			var dot, mmd bytes.Buffer
			if err := DOT(&dot, g); err != nil {
				t.Fatal(err)
			}
			if err := Mermaid(&mmd, g); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".dot.golden", dot.Bytes())
			golden(t, name+".mmd.golden", mmd.Bytes())
			for format, out := range map[string]string{"dot": dot.String(), "mermaid": mmd.String()} {
				if strings.ContainsFunc(out, func(r rune) bool { return r < ' ' && r != '\n' }) {
					t.Errorf("%s output holds a control character", format)
				}
			}
		})
	}
}

// TestOutputIsDeterministic: the same host gives the same bytes, whatever
// the order of maps inside.
func TestOutputIsDeterministic(t *testing.T) {
	snap := threeTier()
	a := reach.Analyze(snap, reach.Options{})
	render := func() string {
		var b bytes.Buffer
		g := Host(snap, a, Options{})
		for _, f := range Formats() {
			if err := Render(&b, f, g); err != nil {
				t.Fatal(err)
			}
		}
		return b.String()
	}
	first := render()
	for range 5 {
		if render() != first {
			t.Fatal("two renderings of one host differ")
		}
	}
}

// svgDoc is what the SVG test reads back.
type svgElem struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Kids    []svgElem  `xml:",any"`
}

func (e *svgElem) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (e *svgElem) walk(fn func(*svgElem)) {
	fn(e)
	for i := range e.Kids {
		e.Kids[i].walk(fn)
	}
}

// TestSVGWellFormed parses the SVG of every fixture as XML and finds a
// node for each container, a cluster for each zone, both ends of every
// edge, and no two clusters on top of each other.
func TestSVGWellFormed(t *testing.T) {
	cases := map[string]*inventory.Snapshot{}
	for name, snap := range hosts() {
		cases[name] = snap
	}
	cases["synthetic-1000"] = synthetic.Host(1000, 100, 1)
	for name, snap := range cases {
		t.Run(name, func(t *testing.T) {
			a := reach.Analyze(snap, reach.Options{})
			names := a.Containers()
			r, err := a.BlastRadius(names[len(names)/2], 0)
			if err != nil {
				t.Fatal(err)
			}
			g := Host(snap, a, Options{Title: name, Radius: r})
			var b bytes.Buffer
			if err := SVG(&b, g); err != nil {
				t.Fatal(err)
			}
			var root svgElem
			dec := xml.NewDecoder(&b)
			if err := dec.Decode(&root); err != nil {
				t.Fatalf("not well-formed XML: %v", err)
			}
			if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
				t.Fatalf("root element %v", root.XMLName)
			}
			containers, clusters, ids := map[string]int{}, map[string]bool{}, map[string]bool{}
			folded := 0
			var edges [][2]string
			root.walk(func(e *svgElem) {
				if id := e.attr("id"); id != "" {
					ids[id] = true
				}
				switch cls := " " + e.attr("class") + " "; {
				case strings.Contains(cls, " node "):
					if c := e.attr("data-container"); c != "" {
						containers[c]++
					}
					if strings.Contains(cls, " folded ") {
						folded++
					}
				case strings.Contains(cls, " cluster "):
					clusters[e.attr("data-cluster")] = true
				case strings.Contains(cls, " edge "):
					edges = append(edges, [2]string{e.attr("data-from"), e.attr("data-to")})
				}
			})
			drawn := 0
			for _, c := range names {
				if containers[clean(c)] > 0 {
					drawn++
				}
			}
			if drawn+g.Folded != len(names) {
				t.Errorf("%d containers drawn and %d folded, want %d in all", drawn, g.Folded, len(names))
			}
			if g.Folded > 0 && folded == 0 {
				t.Error("folded containers but no folded node")
			}
			for _, n := range snap.Networks {
				if n.Driver != "host" && n.Driver != "null" && !clusters[n.Name] {
					t.Errorf("no cluster for network %s", n.Name)
				}
			}
			for _, e := range edges {
				if !ids[e[0]] || !ids[e[1]] {
					t.Errorf("edge %s -> %s ends at an element that does not exist", e[0], e[1])
				}
			}
			l := layOut(g)
			for i, c := range g.Clusters {
				p := l.clusters[c.ID]
				for _, d := range g.Clusters[i+1:] {
					q := l.clusters[d.ID]
					if p.x < q.x+q.w && q.x < p.x+p.w && p.y < q.y+q.h && q.y < p.y+p.h {
						t.Errorf("clusters %s and %s overlap", c.Name, d.Name)
					}
				}
				for _, id := range c.Nodes {
					n := l.nodes[id]
					if n.x < p.x || n.y < p.y || n.x+n.w > p.x+p.w || n.y+n.h > p.y+p.h {
						t.Errorf("node %s sticks out of cluster %s", id, c.Name)
					}
				}
			}
		})
	}
}

// TestHTMLSelfContained: the page asks for nothing outside itself, holds
// the drawing and the data its script reads, and escapes what it shows.
func TestHTMLSelfContained(t *testing.T) {
	snap := threeTier()
	a := reach.Analyze(snap, reach.Options{})
	rep := &audit.Report{Findings: []audit.Finding{{Rule: "r", Severity: audit.High, Title: "t <b>",
		Subject: audit.Subject{Kind: audit.KindContainer, Name: hostileName}, Evidence: []string{"e </script>"}, Remediation: "fix"}}}
	var b bytes.Buffer
	if err := HTML(&b, Host(snap, a, Options{Title: "three-tier"}), Page{Source: "test", Audit: rep, Radii: a.BlastRadii(), MaxRadii: 5}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<runner>", "</script>\"", "e </script>", "\x1b", "<b>"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q unescaped", bad)
		}
	}
	// The only URL is the SVG namespace.
	if n := strings.Count(page, "://"); n != strings.Count(page, "http://www.w3.org/2000/svg") {
		t.Errorf("page mentions a URL besides the SVG namespace")
	}
	for _, want := range []string{`id="zw-data"`, `class="zw-graph"`, "Content-Security-Policy", `data-peer="frontend"`, "more</summary>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	start := strings.Index(page, `<script type="application/json" id="zw-data">`)
	end := strings.Index(page[start:], "</script>")
	var data jsGraph
	if err := json.Unmarshal([]byte(page[start+len(`<script type="application/json" id="zw-data">`):start+end]), &data); err != nil {
		t.Fatalf("the page's data is not JSON: %v", err)
	}
	if len(data.Nodes) == 0 || len(data.Edges) == 0 {
		t.Errorf("page data %+v", data)
	}
}

// TestFromEdges draws only what the edges touch.
func TestFromEdges(t *testing.T) {
	snap := threeTier()
	a := reach.Analyze(snap, reach.Options{})
	g := FromEdges(snap, a.From("postgres"), Options{})
	var peers []string
	for _, n := range g.Nodes {
		if n.Peer != "" && !slices.Contains(peers, n.Peer) {
			peers = append(peers, n.Peer)
		}
	}
	slices.Sort(peers)
	// postgres, on the internal database-tier, reaches its members and
	// the host's namespace through the gateway: no published port, no
	// internet.
	if want := []string{"agent", "api", "cache", "host", "postgres", "sidecar"}; !slices.Equal(peers, want) {
		t.Errorf("peers drawn %v, want %v", peers, want)
	}
	for _, c := range g.Clusters {
		if c.Kind == ClusterZone && c.Name != "database-tier" && c.Name != "application-tier" {
			t.Errorf("zone %s drawn, but no edge touches it", c.Name)
		}
		if c.Kind == ClusterPublished {
			t.Error("published ports drawn, but no edge goes through one")
		}
	}
	exact := reachOnGraph(g, "postgres")
	for _, p := range []string{"api", "cache", "sidecar", "agent"} {
		if exact[p] != 1 {
			t.Errorf("the drawing of postgres's edges does not show it reaching %s in one hop: %v", p, exact)
		}
	}
}

func TestFolding(t *testing.T) {
	snap := synthetic.Host(1000, 100, 1)
	a := reach.Analyze(snap, reach.Options{})
	g := Host(snap, a, Options{})
	if g.Folded == 0 || g.Containers != 1000 {
		t.Fatalf("folded %d of %d containers", g.Folded, g.Containers)
	}
	count := 0
	for _, n := range g.Nodes {
		switch n.Kind {
		case NodeFolded:
			count += n.Count
		case NodeContainer:
			if !n.HasClass("gateway") && !slices.Contains(g.Cluster(n.Cluster).Nodes, n.ID) {
				t.Errorf("node %s not in its cluster", n.ID)
			}
		}
	}
	if count != g.Folded {
		t.Errorf("folded nodes hold %d containers, want %d", count, g.Folded)
	}
	if len(g.Nodes) > 600 || len(g.Edges) > 1500 {
		t.Errorf("1,000 containers drawn with %d nodes and %d edges", len(g.Nodes), len(g.Edges))
	}
	// Never folded: the highlighted source.
	src := "c00000"
	r, _ := a.BlastRadius(src, 0)
	g = Host(snap, a, Options{Radius: r})
	found := false
	for _, n := range g.Nodes {
		found = found || n.Peer == src
	}
	if !found {
		t.Errorf("the highlighted container %s was folded", src)
	}
}

func TestFormatOf(t *testing.T) {
	for file, want := range map[string]Format{"a.svg": FormatSVG, "b.HTML": FormatHTML, "c.dot": FormatDOT, "d.gv": FormatDOT, "e.mmd": FormatMermaid, "f.md": FormatMermaid} {
		if got, ok := FormatOf(file); !ok || got != want {
			t.Errorf("FormatOf(%s) = %s, %v", file, got, ok)
		}
	}
	if _, ok := FormatOf("x.png"); ok {
		t.Error("FormatOf(x.png) succeeded")
	}
	if _, err := ParseFormat("pdf"); err == nil {
		t.Error("ParseFormat(pdf) succeeded")
	}
}
