// Package verify is what zonewarden expects of real packets and how it
// judges them: the enforced model (Enforced: the host as the policy's
// firewall leaves it, which cli verify, the demo and the truth harness
// all expect), the ports probed on each destination, the result of each
// key with its outcome, and the likely cause of a mismatch. It is pure;
// verifier.Run sends the packets, report renders the results.
package verify

import (
	"slices"
	"strings"
	"time"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// Result is one probed key: a source, a destination and a port
// (or icmp).
type Result struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Port     string `json:"port"`
	Expected bool   `json:"expected"`
	// Observed is true when a probe reached the destination: it answered
	// (open), or refused because nothing listens there (closed).
	Observed bool `json:"observed"`
	// Outcome is what the probes saw, the best of them: open, closed
	// (the destination answered that nothing listens: reached, but no
	// service, and verify could not listen there itself), blocked (no
	// answer: dropped), unreachable (no route), stopped (the container
	// does not run: nothing was probed), off-host (every probe would have
	// left this machine, so none was sent: an address on an isolated
	// gateway-mode network, say) or error (no probe could be made).
	Outcome string         `json:"outcome"`
	Via     []reach.Reason `json:"via,omitempty"`
	// Listener says who answered: "service" (something already listened),
	// "zonewarden" (a temporary listener of verify) or "kernel" (an ICMP
	// echo).
	Listener string   `json:"listener,omitempty"`
	Probes   []string `json:"probes"`
	// ByName is the outcome of the probes that went to the destination's
	// name, resolved through Docker's DNS inside the source (--by-name):
	// as Outcome, or "unresolved"; Resolved is what the name resolved to.
	ByName   string   `json:"by_name,omitempty"`
	Resolved []string `json:"resolved,omitempty"`
	Cause    string   `json:"cause,omitempty"`
	// Note explains an expectation that is not the policy's, such as an
	// encrypted overlay that carries nothing between two nodes (IPsecNote).
	Note string `json:"note,omitempty"`
}

// Outcomes of a key.
const (
	OutcomeOpen        = "open"
	OutcomeClosed      = "closed"
	OutcomeBlocked     = "blocked"
	OutcomeUnreachable = "unreachable"
	OutcomeStopped     = "stopped"
	OutcomeOffHost     = "off-host"
	OutcomeError       = "error"
	OutcomeUnresolved  = "unresolved"
)

// Skipped reports whether nothing could be probed for the key (a stopped
// container, or an address whose packets would leave the machine):
// neither a pass nor a mismatch.
func (r Result) Skipped() bool {
	return r.Outcome == OutcomeStopped || r.Outcome == OutcomeOffHost
}

func (r Result) OK() bool {
	switch {
	case r.Skipped():
		return true
	case r.Outcome == OutcomeError:
		return false
	case r.Expected != r.Observed:
		return false
	}
	// By name, an allowed peer on a shared network must be found and
	// reached too: Docker's DNS is part of the path.
	return r.ByName == "" || !r.Expected || !r.overNetwork() || r.ByName == OutcomeOpen || r.ByName == OutcomeClosed
}

// overNetwork reports whether the model's path is a shared network (where
// Docker's DNS answers the destination's name).
func (r Result) overNetwork() bool {
	return slices.ContainsFunc(r.Via, func(v reach.Reason) bool { return v.Kind == reach.KindNetwork })
}

// Options are the settings of one verify run.
type Options struct {
	Label   [2]string // probe only containers with this label (key, value)
	Sample  int       // at most this many pairs (0: all)
	Timeout time.Duration
	ByName  bool // also probe destinations by name
	ICMP    bool // ping every pair
}

// ICMPPort is the key of an ICMP echo probe.
var ICMPPort = l4.Port{Proto: l4.ProtoICMP}

// Ports are the ports probed on a destination: its exposed and
// published container ports, the policy's flow and test ports to it, and
// 80/tcp (at most 8), and icmp where a flow or test of the policy names it
// (or always, with icmp).
func Ports(c *inventory.Container, ix *inventory.Index, b *model.Binding, icmp bool) []l4.Port {
	var out []l4.Port
	add := func(proto string, n uint16) {
		pt := l4.Port{Proto: proto, Number: n}
		switch {
		case slices.Contains(out, pt):
		case proto == l4.ProtoICMP:
			icmp = true
		case (proto == "tcp" || proto == "udp") && n != 0 && len(out) < 8:
			out = append(out, pt)
		}
	}
	for _, e := range c.ExposedPorts {
		add(e.Proto, e.Number)
	}
	for _, pb := range ix.PublishedPorts(c) {
		add(pb.ContainerPort.Proto, pb.ContainerPort.Number)
	}
	if b != nil {
		if m := b.Member(c.Name); m != nil && m.Workload != nil {
			p := b.Model.Policy()
			targets := func(ref policy.Ref) bool {
				return slices.ContainsFunc(b.Model.Members(ref), func(w *policy.Workload) bool { return w.Name == m.Workload.Name })
			}
			for _, f := range p.Flows {
				if targets(f.To) {
					for _, r := range f.Ports {
						add(r.Proto, r.First)
					}
				}
			}
			for _, t := range p.Tests {
				if t.To.Kind != policy.RefAddress && targets(t.To) {
					add(t.Port.Proto, t.Port.Number)
				}
			}
		}
	}
	add("tcp", 80)
	if icmp {
		out = append(out, ICMPPort)
	}
	return out
}

// Cause names the likely cause of a mismatch; b, when not nil, is
// the policy bound to the host.
func Cause(r Result, b *model.Binding) string {
	key := r.From + " " + r.To + " " + r.Port
	switch {
	case r.Outcome == OutcomeOffHost:
		return "not probed: this host does not route " + r.To + "'s addresses to its own bridges or namespaces (an isolated gateway mode, a macvlan over a physical device, or a router zonewarden cannot follow, such as a Swarm node's own namespace), so a test packet could leave the machine"
	case r.OK():
		return ""
	case r.Outcome == OutcomeError:
		return "no probe could be made (see the probes): did a container stop while verify ran?"
	case r.Expected && !r.Observed && r.Outcome == OutcomeUnreachable:
		return "expected to pass but there is no route to " + r.To + ": are both containers on the network the flow needs ('zonewarden reach --eval " + key + "')?"
	case r.Expected && !r.Observed:
		return "expected to pass but dropped: a firewall rule (zonewarden's, or Docker's isolation) stops it; check the flow with 'zonewarden reach --eval " + key + "'"
	case r.Expected:
		if r.ByName == OutcomeUnresolved {
			return "reached by address, but " + r.To + " is not found by name from " + r.From + ": Docker's DNS (127.0.0.11) in " + r.From + " does not answer it — do they share a user-defined network?"
		}
		return "reached by address, but not by name (" + r.ByName + "): the name resolves to " + strings.Join(r.Resolved, ", ") + " — is another container answering to that name?"
	}
	got := "open"
	if r.Outcome == OutcomeClosed {
		got = "reachable (" + r.To + " refused: nothing listens, but the packet got there)"
	}
	if b != nil {
		for _, n := range sharedNetworks(b, r.From, r.To) {
			for _, c := range []string{r.From, r.To} {
				if stray := stray(b, c, n); stray != "" {
					return "expected to be denied but " + got + " over network " + n + ": " + stray
				}
			}
		}
	}
	for _, v := range r.Via {
		if v.Kind == reach.KindNetwork {
			return "expected to be denied but " + got + " over " + v.String() + ": is a container on a network its workload may not join, or is the firewall missing ('zonewarden status')?"
		}
	}
	return "expected to be denied but " + got + ": no rule stops it — is zonewarden's firewall installed ('zonewarden status')?"
}

// sharedNetworks returns the networks containers x and y are both on.
func sharedNetworks(b *model.Binding, x, y string) []string {
	mx, my := b.Member(x), b.Member(y)
	if mx == nil || my == nil {
		return nil
	}
	var out []string
	for _, e := range mx.Container.Endpoints {
		if slices.ContainsFunc(my.Container.Endpoints, func(f inventory.Endpoint) bool { return f.Network == e.Network }) {
			out = append(out, e.Network)
		}
	}
	return out
}

// stray explains, when container c is on zone network n that
// its workload may not join, that membership; else it returns "".
func stray(b *model.Binding, c, n string) string {
	m := b.Member(c)
	if m == nil || !slices.Contains(m.Attached, n) || slices.Contains(m.Zones, n) {
		return ""
	}
	if m.Workload == nil {
		return c + " is on zone network " + n + " but no workload of the policy selects it: disconnect it ('docker network disconnect " + n + " " + c + "') or give it a workload"
	}
	zones := "none"
	if len(m.Zones) > 0 {
		zones = strings.Join(m.Zones, ", ")
	}
	return c + " is on network " + n + ", which its workload " + m.Workload.Name + " may not join (its zones: " + zones + "): disconnect it ('docker network disconnect " + n + " " + c + "'), or add " + n + " to the workload's zones if it belongs there"
}

// Strays explains each membership the policy forbids (nil
// without a policy). Each is a failure of verify even where the firewall
// keeps the container out: the host is not as the policy says.
func Strays(b *model.Binding) []string {
	if b == nil {
		return nil
	}
	var out []string
	for _, s := range b.Strays() {
		out = append(out, stray(b, s.Member.Container.Name, s.Network))
	}
	return out
}

// Best sums up the outcomes of the probes of one key: open if any was,
// else closed if the destination refused, else blocked if one was
// dropped, else unreachable; off-host when every probe would have left
// the machine (none was sent); error when no probe could be made.
func Best(outcomes []string) string {
	best := OutcomeError
	rank := map[string]int{OutcomeError: 0, OutcomeOffHost: 1, OutcomeUnreachable: 2, OutcomeBlocked: 3, OutcomeClosed: 4, OutcomeOpen: 5}
	for _, o := range outcomes {
		if rank[o] > rank[best] {
			best = o
		}
	}
	return best
}

// Key renders the result's key as "web -> db:5432/tcp" or "web -> db:icmp".
func (r Result) Key() string { return r.From + " -> " + r.To + ":" + r.Port }

// IPsecNote explains, for two tasks of a Swarm that share an encrypted
// overlay on different nodes, that the overlay carries nothing between
// them because a node's kernel cannot encrypt (what the model expects,
// reach's splitOverlays): "" when that is not the case.
func IPsecNote(snap *inventory.Snapshot, from, to *inventory.Container) string {
	if snap.Swarm == nil || from.Node == to.Node || from.Node == "" || to.Node == "" {
		return ""
	}
	ix := inventory.NewIndex(snap)
	var shared []string
	for _, e := range from.Endpoints {
		if n := ix.Network(e.Network); n != nil && n.Encrypted() && slices.ContainsFunc(to.Endpoints, func(o inventory.Endpoint) bool { return o.Network == e.Network }) {
			shared = append(shared, n.Name)
		}
	}
	if len(shared) == 0 {
		return ""
	}
	var why []string
	for _, node := range []string{from.Node, to.Node} {
		if n := snap.Swarm.Node(node); n != nil && n.IPsec != nil && !n.IPsec.CanEncrypt() {
			why = append(why, node+"'s kernel lacks "+strings.Join(n.IPsec.Missing, ", "))
		}
	}
	if len(why) == 0 {
		return ""
	}
	return "the encrypted overlay " + strings.Join(shared, ", ") + " carries nothing between " + from.Node + " and " + to.Node + ": " +
		strings.Join(why, "; ") + " (Docker's IPsec security associations fail there, silently): not a policy's drop, and no plaintext either"
}
