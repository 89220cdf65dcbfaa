package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/graph"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/reach"
	"github.com/zonewarden/zonewarden/internal/report"
)

// reachTitle names a drawing of reach's edges after its filter.
func reachTitle(f reach.Filter) string {
	title := "zonewarden reach"
	if f.From != "" {
		title += " --from " + f.From
	}
	if f.To != "" {
		title += " --to " + f.To
	}
	if f.Port != nil {
		title += " --port " + f.Port.String()
	}
	return title
}

var reachFormats = []string{"text", "json", "csv", "dot", "mermaid", "svg"}

func (a *app) reachCommand() *cobra.Command {
	var (
		from, to, port, format, output string
		eval, ignoreFirewall           bool
	)
	cmd := &cobra.Command{
		Use:   "reach [--from A] [--to B] [--port PORT] | reach --eval A B [PORT]",
		Short: "Show who reaches whom, on which ports, and why",
		Long: `reach lists every connection one peer can open to another on the host, with
the destination ports and the path that allows it:

  network:NAME               both are on network NAME (all ports)
  published:HOSTIP:PORT      the destination publishes PORT; the source reaches it
                             through the host or its gateway address, whatever
                             network it is on (Docker's isolation does not cover this)
  host-network               one side runs in the host's network namespace
  gateway:NAME               a container reaches the host's own services through
                             the gateway address of network NAME
  namespace:NAME             both share NAME's network namespace (--network container:NAME)
  egress                     routed out of the host (NAT)

Peers are the containers plus "host" (processes on the host), "internet"
(beyond the host) and "outside" (remote clients of published ports).

With --eval A B [PORT], reach answers one question: yes (exit 0) or no
(exit 1), with the reason.

On a live host where 'zonewarden apply' installed the firewall, the edges
follow the applied policy (a line on stderr says so); --ignore-firewall
answers as Docker alone would.`,
		Example: `  zonewarden reach
  zonewarden reach --from frontend
  zonewarden reach --to postgres --port 5432/tcp
  zonewarden reach -f compose.yaml --format json
  zonewarden reach --eval devbox postgres 5432/tcp && echo "devbox reaches the database"
  zonewarden reach --format svg -o reach.svg`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(reachFormats, format) {
				return usageErr(cmd, "unknown --format %q: use one of %s", format, strings.Join(reachFormats, ", "))
			}
			var filter *l4.Port
			if port != "" {
				p, err := l4.ParsePort(port)
				if err != nil {
					return usageErr(cmd, "--port: %v", err)
				}
				filter = &p
			}
			switch {
			case eval && (len(args) < 2 || len(args) > 3):
				return usageErr(cmd, "--eval takes a source, a destination and optionally a port, like: --eval frontend api 8080/tcp")
			case eval && (from != "" || to != "" || port != ""):
				return usageErr(cmd, "--eval takes its peers and port as arguments, not --from, --to or --port")
			case !eval && len(args) > 0:
				return usageErr(cmd, "unexpected argument %q: use --from, --to and --port to filter, or --eval A B PORT", args[0])
			}
			if eval && len(args) == 3 {
				p, err := l4.ParsePort(args[2])
				if err != nil {
					return usageErr(cmd, "%v", err)
				}
				filter = &p
			}
			snap, err := a.src.load(cmd.Context())
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			an := a.analyze(cmd.Context(), snap, ignoreFirewall)
			if eval {
				from, to = args[0], args[1]
			}
			for _, name := range []string{from, to} {
				if name != "" {
					if err := an.CheckPeer(name); err != nil {
						return &exitErr{Code: exitError, Err: err}
					}
				}
			}
			if eval {
				return evalReach(a.stdout, an, from, to, filter)
			}
			return a.writeReach(snap, an, format, output, reach.Filter{From: from, To: to, Port: filter})
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "only connections opened by this `PEER` (a container, host or outside)")
	f.StringVar(&to, "to", "", "only connections to this `PEER` (a container, host or internet)")
	f.StringVar(&port, "port", "", "only connections on this `PORT`, like 5432/tcp, 53/udp or icmp")
	f.StringVar(&format, "format", "text", "output format: "+strings.Join(reachFormats, ", "))
	f.StringVarP(&output, "output", "o", "", "write to `FILE` instead of standard output")
	f.BoolVar(&eval, "eval", false, "answer whether A reaches B (on PORT): exit 0 for yes, 1 for no")
	f.BoolVar(&ignoreFirewall, "ignore-firewall", false, "answer as Docker alone would, even where zonewarden's firewall is installed")
	return cmd
}

// writeReach streams the edges that pass the filter in format.
func (a *app) writeReach(snap *inventory.Snapshot, an *reach.Analysis, format, output string, filter reach.Filter) error {
	w, closeOut, err := openOutput(a.stdout, output)
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	switch format {
	case "dot", "mermaid", "svg":
		err = graph.WriteEdges(w, graph.Format(format), snap, an.Filtered(filter), graph.Options{Title: reachTitle(filter)})
	default:
		err = streamEdges(w, an, format, filter, swarmNodes(snap))
	}
	if cerr := closeOut(); err == nil {
		err = cerr
	}
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	return nil
}

// swarmNodes maps each container of a Swarm to the node it runs on; nil
// outside a Swarm.
func swarmNodes(snap *inventory.Snapshot) map[string]string {
	if snap.Swarm == nil {
		return nil
	}
	out := make(map[string]string, len(snap.Containers))
	for _, c := range snap.Containers {
		if c.Node != "" {
			out[c.Name] = c.Node
		}
	}
	return out
}

// onNodes names, in a Swarm, the node of each hop of a blast radius's
// paths ("web.1.x@node1 -> db.1.y@node3"); r as it is outside one.
func onNodes(r *reach.Radius, nodes map[string]string) *reach.Radius {
	if nodes == nil {
		return r
	}
	at := func(name string) string {
		if n := nodes[name]; n != "" {
			return name + "@" + n
		}
		return name
	}
	out := *r
	out.Source = at(r.Source)
	out.Reachable = slices.Clone(r.Reachable)
	for i := range out.Reachable {
		x := &out.Reachable[i]
		x.Path = slices.Clone(x.Path)
		for j := range x.Path {
			x.Path[j] = at(x.Path[j])
		}
	}
	return &out
}

func streamEdges(w io.Writer, an *reach.Analysis, format string, filter reach.Filter, nodes map[string]string) error {
	ew, err := report.NewNodeEdgeWriter(w, format, nodes)
	if err != nil {
		return err
	}
	for e := range an.Select(filter) {
		if err := ew.Write(e); err != nil {
			return err
		}
	}
	return ew.Close()
}

// evalReach answers one reachability question: exit 0 for yes, 1 for no.
func evalReach(w io.Writer, an *reach.Analysis, from, to string, port *l4.Port) error {
	e, found := an.Edge(from, to)
	on := ""
	if port != nil {
		on = " on " + port.String()
	}
	switch {
	case found && (port == nil || e.Ports.Contains(*port)):
		ports := e.Ports.Describe()
		if port != nil && !e.Ports.All() {
			ports = port.String()
		}
		fmt.Fprintf(w, "yes: %s => %s : %s (%s)\n", from, to, ports, report.DescribeVia(e.Via))
		return nil
	case found:
		fmt.Fprintf(w, "no: %s reaches %s on %s only (%s), not %s\n", from, to, e.Ports.Describe(), report.DescribeVia(e.Via), port)
	default:
		fmt.Fprintf(w, "no: %s cannot open a connection to %s%s: %s\n", from, to, on, an.WhyNot(from, to))
	}
	return &exitErr{Code: exitFindings}
}

func (a *app) blastRadiusCommand() *cobra.Command {
	var (
		maxHops        int
		all            bool
		format         string
		output         string
		ignoreFirewall bool
	)
	cmd := &cobra.Command{
		Use:   "blast-radius CONTAINER | blast-radius --all",
		Short: "Show what an attacker who controls a container reaches",
		Long: `blast-radius answers: if CONTAINER is compromised, what else falls? It lists
every container the attacker reaches directly (hop 1), then by pivoting
through each container reached (hop 2 and on), with the shortest path to
each and the ports open on the first hop, and names the data services among
them. Pivoting assumes that a container the attacker can connect to can be
taken over: the worst case, which is what a blast radius is for.

--all ranks every container by the size of its blast radius, the worst first.
On a live host where 'zonewarden apply' installed the firewall, the radius
follows the applied policy; --ignore-firewall shows it as Docker alone would.`,
		Example: `  zonewarden blast-radius devbox
  zonewarden blast-radius frontend --max-hops 1
  zonewarden blast-radius --all
  zonewarden blast-radius -f compose.yaml api --format json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case format != "text" && format != "json":
				return usageErr(cmd, "unknown --format %q: use text or json", format)
			case maxHops < 0:
				return usageErr(cmd, "--max-hops must be 0 (no limit) or more")
			case all && len(args) > 0:
				return usageErr(cmd, "give a container or --all, not both")
			case !all && len(args) != 1:
				return usageErr(cmd, "name one container, or use --all to rank them all")
			}
			snap, err := a.src.load(cmd.Context())
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			an := a.analyze(cmd.Context(), snap, ignoreFirewall)
			w, closeOut, err := openOutput(a.stdout, output)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			if all {
				radii := an.BlastRadii()
				if format == "json" {
					err = report.BlastRadiiJSON(w, radii)
				} else {
					err = report.BlastRadiiText(w, radii)
				}
			} else {
				var r *reach.Radius
				r, err = an.BlastRadius(args[0], maxHops)
				if err != nil {
					closeOut()
					return &exitErr{Code: exitError, Err: err}
				}
				r = onNodes(r, swarmNodes(snap))
				if format == "json" {
					err = report.BlastRadiusJSON(w, r)
				} else {
					err = report.BlastRadiusText(w, r, maxHops)
				}
			}
			if cerr := closeOut(); err == nil {
				err = cerr
			}
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&maxHops, "max-hops", 0, "stop after `N` hops (0: follow every pivot)")
	f.BoolVar(&ignoreFirewall, "ignore-firewall", false, "as Docker alone would, even where zonewarden's firewall is installed")
	f.BoolVar(&all, "all", false, "rank every container by blast radius, the worst first")
	f.StringVar(&format, "format", "text", "output format: text or json")
	f.StringVarP(&output, "output", "o", "", "write to `FILE` instead of standard output")
	return cmd
}
