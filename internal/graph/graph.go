// Package graph draws a Docker host as zones and who reaches whom: the
// networks as clusters, the containers inside them, the published ports,
// the host and the world outside as nodes, and the paths between them as
// edges styled by kind. It renders that drawing as Graphviz DOT, a Mermaid
// flowchart, a standalone SVG (laid out here, in Go) and a self-contained
// HTML page with pan, zoom and blast-radius highlighting.
//
// It owns the drawing only. It must not decide who reaches whom (package
// reach does: a Graph is built from reach's edges and blast radii), judge
// the host (package audit does), or read the host. It is pure: no Docker,
// no os/exec, no files.
//
// A Graph is built to stay readable on a real host:
//
//   - Inside a network with ICC on, every member reaches every other one.
//     That is drawn as membership of the zone, not as N² edges.
//   - An edge that holds for every member of a zone starts or ends at the
//     zone's border: "every container of shop-prod reaches the published
//     ports", "the host reaches every container of dev". It is drawn this
//     way only when it is exactly true, so a blast radius can be read off
//     the drawing (the HTML page computes one that way when a container is
//     clicked).
//   - A container in several zones (a gateway) is drawn in each of them,
//     the copies linked by a dotted "same container" edge.
//   - Above a number of containers (Options.FoldAbove), the containers of
//     a zone that are neither gateways, publishers nor sharing a network
//     namespace are folded into one "+N containers" node per zone.
//
// The SVG is laid out by this package (layout.go), not by Graphviz: the
// pure-Go Graphviz (goccy/go-graphviz, Graphviz compiled to WebAssembly
// and run by wazero) compiles its module when the program starts, in
// every command, and caches the native code in $TMPDIR/go-graphviz, a
// predictable directory in a world-writable place that a tool run as root
// must not load code from. The drawings here have a known shape (outside,
// ports, zones, host), which a simple column layout serves well.
package graph

import (
	"fmt"
	"strings"
)

// NodeKind says what a node stands for.
type NodeKind string

// Node kinds.
const (
	NodeContainer NodeKind = "container"
	NodeFolded    NodeKind = "folded"   // several containers of one zone, folded
	NodePort      NodeKind = "port"     // a published port, hostip:port
	NodeOutside   NodeKind = "outside"  // remote clients
	NodeInternet  NodeKind = "internet" // destinations of egress
	NodeHost      NodeKind = "host"     // the host's own network namespace
)

// ClusterKind says what a cluster groups.
type ClusterKind string

// Cluster kinds.
const (
	ClusterZone      ClusterKind = "zone"      // one Docker network
	ClusterPublished ClusterKind = "published" // the host's published ports
	ClusterHost      ClusterKind = "host"      // the host's network namespace
	ClusterIsolated  ClusterKind = "isolated"  // containers without a network
)

// Kind is the kind of an edge: the path a connection takes.
type Kind string

// Edge kinds. The first six mirror reach's reasons (Edge.Via).
const (
	KindNetwork     Kind = "network"      // both ends on one network
	KindPublished   Kind = "published"    // to a published port, and from it to its container
	KindHostNetwork Kind = "host-network" // from or to the host's namespace
	KindGateway     Kind = "gateway"      // to the host through a network's gateway address
	KindEgress      Kind = "egress"       // routed out of the host
	KindNamespace   Kind = "namespace"    // the same network namespace (--network container:X)
	KindSame        Kind = "same"         // two drawings of one container (a gateway)
	KindPath        Kind = "path"         // a step of the highlighted blast radius
	KindOther       Kind = "other"        // a reason this package does not know
)

// kinds lists the edge kinds in drawing and legend order.
var kinds = []Kind{KindPublished, KindNetwork, KindGateway, KindHostNetwork, KindEgress, KindNamespace, KindSame, KindPath, KindOther}

func kindRank(k Kind) int {
	for i, x := range kinds {
		if x == k {
			return i
		}
	}
	return len(kinds)
}

// Graph is a drawing of a host: clusters, nodes and edges, in a stable
// order. Build one with Host or FromEdges and render it with DOT, Mermaid,
// SVG or HTML. It is plain data: renderers do not change it.
type Graph struct {
	Title    string
	Clusters []Cluster
	Nodes    []Node
	Edges    []Edge
	// Highlight describes the blast radius drawn, or is nil.
	Highlight *Highlight
	// Containers counts the containers drawn (folded ones included);
	// Folded those folded into NodeFolded nodes.
	Containers, Folded int
}

// Cluster is a box of nodes: a zone (network), the published ports, the
// host's namespace, or the containers without a network.
type Cluster struct {
	ID   string // "c1", "c2", ... unique in the graph
	Kind ClusterKind
	Name string // the network's name for a zone
	// Internal: the network has no route out. ICCOff: its members do not
	// reach each other. DefaultBridge: Docker's docker0 network.
	Internal, ICCOff, DefaultBridge bool
	// Clique: the members drawn reach each other (a zone with ICC on
	// whose members' edges were all drawn, or the host's namespace); their
	// pairwise edges are left out.
	Clique bool
	// Nodes are the IDs of the nodes drawn inside, in order.
	Nodes []string
}

// Label returns the lines of the cluster's caption.
func (c *Cluster) Label() []string {
	switch c.Kind {
	case ClusterPublished:
		return []string{"published ports", "DNAT on every host address"}
	case ClusterHost:
		return []string{"host network namespace", "one stack: members reach each other"}
	case ClusterIsolated:
		return []string{"no network"}
	}
	var notes []string
	if c.DefaultBridge {
		notes = append(notes, "default bridge")
	}
	if c.Internal {
		notes = append(notes, "internal")
	}
	if c.ICCOff {
		notes = append(notes, "ICC off: members isolated")
	} else if c.Clique {
		notes = append(notes, "members reach each other")
	}
	if len(c.Nodes) == 0 {
		notes = append(notes, "empty")
	}
	lines := []string{"zone " + c.Name}
	if len(notes) > 0 {
		lines = append(lines, strings.Join(notes, " · "))
	}
	return lines
}

// Node is one box of the drawing.
type Node struct {
	ID   string // "n1", "n2", ... unique in the graph
	Kind NodeKind
	// Name is the container's name, the published address (0.0.0.0:8443),
	// the zone of a folded node, or the pseudo-peer's name (outside,
	// internet, host).
	Name string
	// Peer is the reach peer the node stands for (a container name, or
	// reach.Host, reach.Internet, reach.Outside); "" for ports and
	// folded nodes.
	Peer string
	// Entity identifies what the node stands for: the copies of one
	// container drawn in several zones share it.
	Entity string
	// Cluster is the ID of the cluster the node is drawn in, or "".
	Cluster string
	// Lines are the label, first line the name.
	Lines []string
	// Classes qualify the node: data, untrusted, privileged, stopped,
	// gateway (in several zones), folded.
	Classes []string
	// Count is the number of containers a folded node stands for.
	Count int
	// Hops is the node's distance from the highlighted source: 0 for the
	// source, -1 when not reached. Meaningful only when Graph.Highlight is
	// set.
	Hops int
}

// HasClass reports whether the node carries class c.
func (n *Node) HasClass(c string) bool {
	for _, x := range n.Classes {
		if x == c {
			return true
		}
	}
	return false
}

// Edge is one arrow of the drawing. From and To are node or cluster IDs:
// a cluster end means every node drawn in the cluster (except those of the
// other end's own namespace: a publisher does not reach itself through
// its published port).
type Edge struct {
	From, To string
	Kind     Kind
	// Label is short: the container ports behind a published port, or the
	// reason of an edge of KindOther.
	Label string
	// Both: the edge holds in both directions.
	Both bool
	// Hop numbers a KindPath edge: the step of the blast radius.
	Hop int
}

// Highlight is the blast radius drawn on a graph.
type Highlight struct {
	Source string
	// Reached counts the containers reached, Data the data services among
	// them; MaxHops is the longest shortest path.
	Reached, Data, MaxHops int
	Host, Internet         bool
}

// Describe says it in one line for people.
func (h *Highlight) Describe() string {
	s := fmt.Sprintf("blast radius of %s: %d containers", h.Source, h.Reached)
	if h.Data > 0 {
		s += fmt.Sprintf(" (%d data services)", h.Data)
	}
	if h.MaxHops > 1 {
		s += fmt.Sprintf(" within %d hops", h.MaxHops)
	}
	var also []string
	if h.Host {
		also = append(also, "the host")
	}
	if h.Internet {
		also = append(also, "the internet")
	}
	if len(also) > 0 {
		s += ", and " + strings.Join(also, " and ")
	}
	return s
}

// Node returns the node with the given ID, or nil.
func (g *Graph) Node(id string) *Node {
	for i := range g.Nodes {
		if g.Nodes[i].ID == id {
			return &g.Nodes[i]
		}
	}
	return nil
}

// Cluster returns the cluster with the given ID, or nil.
func (g *Graph) Cluster(id string) *Cluster {
	for i := range g.Clusters {
		if g.Clusters[i].ID == id {
			return &g.Clusters[i]
		}
	}
	return nil
}
