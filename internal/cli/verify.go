package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// verifyResult is one probed key: a source, a destination and a port
// (or icmp).
type verifyResult struct {
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
	Outcome string   `json:"outcome"`
	Via     []string `json:"via,omitempty"`
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
}

// Outcomes of a key.
const (
	outcomeOpen        = "open"
	outcomeClosed      = "closed"
	outcomeBlocked     = "blocked"
	outcomeUnreachable = "unreachable"
	outcomeStopped     = "stopped"
	outcomeOffHost     = "off-host"
	outcomeError       = "error"
	outcomeUnresolved  = "unresolved"
)

// skipped reports whether nothing could be probed for the key (a stopped
// container, or an address whose packets would leave the machine):
// neither a pass nor a mismatch.
func (r verifyResult) skipped() bool {
	return r.Outcome == outcomeStopped || r.Outcome == outcomeOffHost
}

func (r verifyResult) ok() bool {
	switch {
	case r.skipped():
		return true
	case r.Outcome == outcomeError:
		return false
	case r.Expected != r.Observed:
		return false
	}
	// By name, an allowed peer on a shared network must be found and
	// reached too: Docker's DNS is part of the path.
	return r.ByName == "" || !r.Expected || !r.overNetwork() || r.ByName == outcomeOpen || r.ByName == outcomeClosed
}

// overNetwork reports whether the model's path is a shared network (where
// Docker's DNS answers the destination's name).
func (r verifyResult) overNetwork() bool {
	return slices.ContainsFunc(r.Via, func(v string) bool { return reach.ParseReason(v).Kind == reach.KindNetwork })
}

func (a *app) verifyCommand() *cobra.Command {
	var (
		format, output, label string
		opts                  verifyOptions
	)
	cmd := &cobra.Command{
		Use:   "verify [POLICY]",
		Short: "Probe with real packets that every expected allow and deny holds",
		Long: `verify proves the zones with real packets. From inside each running
container's network namespace (no tool is needed in the image: zonewarden
enters the namespace itself) it opens connections to its peers' addresses on
the ports that matter — the destination's exposed and published ports, the
policy's flow ports, and 80/tcp — and compares what happened with what is
expected: the policy's decisions when POLICY is given, else the engine's
model of the host (which follows zonewarden's firewall where apply
installed it).

Blocked is told from closed: where nothing listens on a probed port,
verify listens there itself for the duration of the probe, so an allow
means a handshake completed and a deny means the packet was dropped, not
that a service was down. Where it cannot listen (a service holds the port
on another address, such as 127.0.0.1), a refusal from the destination
shows as closed: the packet got there, so the path is open. UDP counts as
open when the listener's reply comes back, closed when the destination
answers port unreachable, blocked when nothing comes back.

ICMP echo (ping, IPv4 and IPv6) is probed where the policy declares an
icmp flow to the destination or an icmp test, and between every pair with
--icmp: open when the echo reply comes back. A container that is not
running is reported as stopped, not as blocked: there is nothing to probe.

With --by-name verify also probes each destination by its container name,
resolved through Docker's embedded DNS (127.0.0.11) inside the source, as
a program in the container would: an allowed peer on a shared network must
be found by name and reached.

Exit status: 0 when everything matches, 1 on any mismatch, 2 when verify
could not run.`,
		Example: `  zonewarden verify
  zonewarden verify zones.yaml --format junit -o verify.xml
  zonewarden verify --label com.docker.compose.project=shop --sample 500
  zonewarden verify zones.yaml --by-name --icmp`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains([]string{"text", "json", "junit"}, format) {
				return usageErr(cmd, "unknown --format %q: use text, json or junit", format)
			}
			if len(a.src.composeFiles) > 0 || a.src.snapshotFile != "" {
				return usageErr(cmd, "verify probes a live Docker host: -f and --snapshot cannot be probed")
			}
			if label != "" {
				k, v, ok := strings.Cut(label, "=")
				if !ok {
					return usageErr(cmd, "--label: want KEY=VALUE, got %q", label)
				}
				opts.label = [2]string{k, v}
			}
			var p *policy.Policy
			if len(args) == 1 {
				var err error
				if p, err = a.readPolicy(args[0]); err != nil {
					return err
				}
			}
			snap, err := a.src.load(cmd.Context())
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			var an *reach.Analysis
			var b *policy.Binding
			if p != nil {
				b, _ = policy.Bind(p, snap)
				an = reach.Analyze(snap, reach.Options{Narrow: policyNarrower(b)})
			} else {
				an = a.analyze(cmd.Context(), snap, false)
			}
			results, err := runVerify(cmd.Context(), snap, an, b, opts)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			w, closeOut, err := openOutput(a.stdout, output)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			strays := strayMemberships(b)
			err = writeVerify(w, format, results, strays)
			if cerr := closeOut(); err == nil {
				err = cerr
			}
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			if len(strays) > 0 {
				return &exitErr{Code: exitFindings}
			}
			for _, r := range results {
				if !r.ok() {
					return &exitErr{Code: exitFindings}
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "text", "output format: text, json or junit (JUnit XML for CI)")
	f.StringVarP(&output, "output", "o", "", "write the results to `FILE` instead of standard output")
	f.StringVar(&label, "label", "", "probe only containers with this `KEY=VALUE` label")
	f.IntVar(&opts.sample, "sample", 0, "probe at most `N` source-destination pairs, chosen at random (0: all)")
	f.DurationVar(&opts.timeout, "timeout", probe.DefaultTimeout, "how long a probe waits before it counts as dropped")
	f.BoolVar(&opts.byName, "by-name", false, "also probe each destination by its container name, resolved through Docker's DNS inside the source")
	f.BoolVar(&opts.icmp, "icmp", false, "probe ICMP echo between every pair (by default only where the policy declares icmp)")
	return cmd
}

// verifyOptions are the settings of one verify run.
type verifyOptions struct {
	label   [2]string // probe only containers with this label (key, value)
	sample  int       // at most this many pairs (0: all)
	timeout time.Duration
	byName  bool // also probe destinations by name
	icmp    bool // ping every pair
}

// icmpPort is the key of an ICMP echo probe.
var icmpPort = reach.Port{Proto: policy.ProtoICMP}

// verifyPorts are the ports probed on a destination: its exposed and
// published container ports, the policy's flow and test ports to it, and
// 80/tcp (at most 8), and icmp where a flow or test of the policy names it
// (or always, with icmp).
func verifyPorts(c *inventory.Container, ix *inventory.Index, b *policy.Binding, icmp bool) []reach.Port {
	var out []reach.Port
	add := func(proto string, n uint16) {
		pt := reach.Port{Proto: proto, Number: n}
		switch {
		case slices.Contains(out, pt):
		case proto == policy.ProtoICMP:
			icmp = true
		case (proto == "tcp" || proto == "udp") && n != 0 && len(out) < 8:
			out = append(out, pt)
		}
	}
	for _, e := range c.ExposedPorts {
		add(e.Protocol, e.Number)
	}
	for _, pb := range ix.PublishedPorts(c) {
		add(pb.ContainerPort.Protocol, pb.ContainerPort.Number)
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
		out = append(out, icmpPort)
	}
	return out
}

// runVerify probes the peers of snap; b, when not nil, is the policy bound
// to snap (its flow and test ports are probed too).
func runVerify(ctx context.Context, snap *inventory.Snapshot, an *reach.Analysis, b *policy.Binding, opts verifyOptions) ([]verifyResult, error) {
	ix := inventory.NewIndex(snap)
	// Peers: running containers with a network namespace of their own;
	// those that do not run are reported, not probed.
	var peers []*inventory.Container
	var results []verifyResult
	stopped := func(c *inventory.Container, why string) {
		results = append(results, verifyResult{From: "*", To: c.Name, Outcome: outcomeStopped, Probes: []string{},
			Cause: c.Name + " " + why + ": nothing to probe to or from it; start it and verify again to check its flows"})
	}
	for i := range snap.Containers {
		c := &snap.Containers[i]
		if c.UsesHostNetwork() || c.NoNetwork() || c.SharedNamespaceWith() != "" {
			continue
		}
		if opts.label[0] != "" && c.Labels[opts.label[0]] != opts.label[1] {
			continue
		}
		if c.Pid <= 0 {
			stopped(c, "is "+cmp.Or(c.State, "not running"))
			continue
		}
		peers = append(peers, c)
	}
	ns := map[string]*probe.Namespace{}
	defer func() {
		for _, n := range ns {
			n.Close()
		}
	}()
	running := peers[:0]
	for _, c := range peers {
		n, err := probe.OpenPID(c.Pid)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			stopped(c, "stopped while verify ran")
			continue
		case err != nil:
			return nil, fmt.Errorf("entering the network namespace of %s: %w (verify needs root)", c.Name, err)
		}
		ns[c.Name] = n
		running = append(running, c)
	}
	peers = running
	if len(peers) < 2 {
		return nil, errors.New("fewer than two running containers to probe between (is the --label right?)")
	}
	// Listen where nothing does, so that a refusal cannot pass for a drop.
	owner := map[[2]string]string{} // (container, port) -> "service", "zonewarden" or "kernel"
	var listeners []*probe.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	ports := map[string][]reach.Port{}
	for _, c := range peers {
		ports[c.Name] = verifyPorts(c, ix, b, opts.icmp)
		for _, pt := range ports[c.Name] {
			cfg := probe.ListenConfig{Banner: "zonewarden-verify"}
			switch pt.Proto {
			case policy.ProtoICMP:
				owner[[2]string{c.Name, pt.String()}] = "kernel"
				continue
			case "tcp":
				cfg.TCP = []uint16{pt.Number}
			default:
				cfg.UDP = []uint16{pt.Number}
			}
			l, err := probe.Listen(ns[c.Name], cfg)
			if err != nil {
				owner[[2]string{c.Name, pt.String()}] = "service"
				continue
			}
			listeners = append(listeners, l)
			owner[[2]string{c.Name, pt.String()}] = "zonewarden"
		}
	}
	type pair struct{ from, to *inventory.Container }
	var pairs []pair
	for _, s := range peers {
		for _, t := range peers {
			if s != t {
				pairs = append(pairs, pair{s, t})
			}
		}
	}
	if opts.sample > 0 && opts.sample < len(pairs) {
		r := rand.New(rand.NewPCG(1, 2))
		r.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
		pairs = pairs[:opts.sample]
	}
	// kind says how a job reaches its destination.
	const (
		direct    = iota // one of the destination's addresses
		published        // a published port through a gateway: the host answers a refusal
		byName           // the destination's name, resolved in the source
	)
	type jobKey struct{ result, kind int }
	var jobs []probe.Job
	var keys []jobKey
	first := len(results)
	for _, pr := range pairs {
		for _, pt := range ports[pr.to.Name] {
			ok, edge := an.Eval(pr.from.Name, pr.to.Name, pt)
			res := verifyResult{From: pr.from.Name, To: pr.to.Name, Port: pt.String(), Expected: ok, Via: edge.Via,
				Listener: owner[[2]string{pr.to.Name, pt.String()}], Probes: []string{}}
			results = append(results, res)
			add := func(t probe.Target, kind int) {
				jobs = append(jobs, probe.Job{From: ns[pr.from.Name], To: t})
				keys = append(keys, jobKey{len(results) - 1, kind})
			}
			for _, e := range pr.to.Endpoints {
				for _, addr := range []netip.Addr{e.IPv4, e.IPv6} {
					if addr.IsValid() {
						add(probe.Target{Proto: pt.Proto, Addr: netip.AddrPortFrom(addr, pt.Number)}, direct)
					}
				}
			}
			if opts.byName {
				add(probe.Target{Proto: pt.Proto, Addr: netip.AddrPortFrom(netip.Addr{}, pt.Number), Name: pr.to.Name}, byName)
			}
			if pt.Proto == policy.ProtoICMP {
				continue // nothing is published for ICMP
			}
			// The published path: the destination's host port through the
			// gateway address of each of the source's networks.
			for _, pb := range ix.PublishedPorts(pr.to) {
				if pb.ContainerPort.Number != pt.Number || pb.ContainerPort.Protocol != pt.Proto || pb.HostPort == 0 {
					continue
				}
				for _, gw := range gateways(ix, pr.from) {
					if pb.AllInterfaces() && (!pb.HostIP.IsValid() || pb.HostIP.Is4() == gw.Is4()) || pb.HostIP == gw {
						add(probe.Target{Proto: pt.Proto, Addr: netip.AddrPortFrom(gw, pb.HostPort)}, published)
					}
				}
			}
		}
	}
	prober := &probe.Prober{Timeout: opts.timeout}
	seen := make([][]probe.Status, len(results))  // per result: the statuses of its address and published probes
	named := make([][]probe.Status, len(results)) // per result: of its probes by name
	for i, r := range prober.Run(ctx, jobs) {
		k := keys[i]
		res := &results[k.result]
		st := r.Status
		if st == probe.Refused && k.kind == published {
			// The host refused: nothing (no longer) published there. It
			// says nothing about the destination.
			st = probe.Unreachable
		}
		desc := r.To.String() + " " + r.Status.String()
		if k.kind == byName {
			if len(r.Resolved) == 0 {
				st = probe.Failed
				desc = "name " + r.To.String() + " unresolved (" + oneLine(r.Err) + ")"
			} else {
				desc = "name " + r.To.String() + " = " + r.To.Addr.Addr().String() + " " + r.Status.String()
				for _, a := range r.Resolved {
					if s := a.String(); !slices.Contains(res.Resolved, s) {
						res.Resolved = append(res.Resolved, s)
					}
				}
			}
			named[k.result] = append(named[k.result], st)
		}
		if k.kind != byName || len(r.Resolved) > 0 {
			seen[k.result] = append(seen[k.result], st)
		}
		res.Probes = append(res.Probes, desc)
	}
	for i := first; i < len(results); i++ {
		res := &results[i]
		res.Outcome = outcomeOf(seen[i])
		res.Observed = res.Outcome == outcomeOpen || res.Outcome == outcomeClosed
		if opts.byName {
			res.ByName = outcomeOf(named[i])
			if res.ByName == outcomeError {
				res.ByName = outcomeUnresolved
			}
		}
		res.Cause = verifyCause(*res, b)
	}
	slices.SortFunc(results, func(x, y verifyResult) int {
		return strings.Compare(x.From+" "+x.To+" "+x.Port, y.From+" "+y.To+" "+y.Port)
	})
	return results, nil
}

// outcomeOf sums up the statuses of the probes of one key: open if any
// was, else closed if the destination refused, else blocked if one was
// dropped, else unreachable; off-host when every probe would have left
// the machine (none was sent); error when no probe could be made.
func outcomeOf(statuses []probe.Status) string {
	best := outcomeError
	rank := map[string]int{outcomeError: 0, outcomeOffHost: 1, outcomeUnreachable: 2, outcomeBlocked: 3, outcomeClosed: 4, outcomeOpen: 5}
	for _, s := range statuses {
		o := outcomeError
		switch s {
		case probe.Open:
			o = outcomeOpen
		case probe.Refused:
			o = outcomeClosed
		case probe.Filtered:
			o = outcomeBlocked
		case probe.Unreachable:
			o = outcomeUnreachable
		case probe.Skipped:
			o = outcomeOffHost
		}
		if rank[o] > rank[best] {
			best = o
		}
	}
	return best
}

// gateways returns the gateway addresses of a container's networks.
func gateways(ix *inventory.Index, c *inventory.Container) []netip.Addr {
	var out []netip.Addr
	for _, e := range c.Endpoints {
		n := ix.Network(e.Network)
		if n == nil || n.Driver != "bridge" {
			continue
		}
		for _, s := range n.Subnets {
			gw := s.Gateway
			if !gw.IsValid() {
				gw = s.Prefix.Masked().Addr().Next()
			}
			out = append(out, gw)
		}
	}
	return out
}

// verifyCause names the likely cause of a mismatch; b, when not nil, is
// the policy bound to the host.
func verifyCause(r verifyResult, b *policy.Binding) string {
	key := r.From + " " + r.To + " " + r.Port
	switch {
	case r.ok():
		return ""
	case r.Outcome == outcomeError:
		return "no probe could be made (see the probes): did a container stop while verify ran?"
	case r.Outcome == outcomeOffHost:
		return "not probed: this host does not route " + r.To + "'s addresses to its own bridges or namespaces (an isolated gateway mode, or a macvlan over a physical device), so a test packet would leave the machine"
	case r.Expected && !r.Observed && r.Outcome == outcomeUnreachable:
		return "expected to pass but there is no route to " + r.To + ": are both containers on the network the flow needs ('zonewarden reach --eval " + key + "')?"
	case r.Expected && !r.Observed:
		return "expected to pass but dropped: a firewall rule (zonewarden's, or Docker's isolation) stops it; check the flow with 'zonewarden reach --eval " + key + "'"
	case r.Expected:
		if r.ByName == outcomeUnresolved {
			return "reached by address, but " + r.To + " is not found by name from " + r.From + ": Docker's DNS (127.0.0.11) in " + r.From + " does not answer it — do they share a user-defined network?"
		}
		return "reached by address, but not by name (" + r.ByName + "): the name resolves to " + strings.Join(r.Resolved, ", ") + " — is another container answering to that name?"
	}
	got := "open"
	if r.Outcome == outcomeClosed {
		got = "reachable (" + r.To + " refused: nothing listens, but the packet got there)"
	}
	if b != nil {
		for _, n := range sharedNetworks(b, r.From, r.To) {
			for _, c := range []string{r.From, r.To} {
				if stray := strayMembership(b, c, n); stray != "" {
					return "expected to be denied but " + got + " over network " + n + ": " + stray
				}
			}
		}
	}
	for _, v := range r.Via {
		if reach.ParseReason(v).Kind == reach.KindNetwork {
			return "expected to be denied but " + got + " over " + v + ": is a container on a network its workload may not join, or is the firewall missing ('zonewarden status')?"
		}
	}
	return "expected to be denied but " + got + ": no rule stops it — is zonewarden's firewall installed ('zonewarden status')?"
}

// sharedNetworks returns the networks containers x and y are both on.
func sharedNetworks(b *policy.Binding, x, y string) []string {
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

// strayMembership explains, when container c is on zone network n that
// its workload may not join, that membership; else it returns "".
func strayMembership(b *policy.Binding, c, n string) string {
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

// strayMemberships explains each membership the policy forbids (nil
// without a policy). Each is a failure of verify even where the firewall
// keeps the container out: the host is not as the policy says.
func strayMemberships(b *policy.Binding) []string {
	if b == nil {
		return nil
	}
	var out []string
	for _, s := range b.Strays() {
		out = append(out, strayMembership(b, s.Member.Container.Name, s.Network))
	}
	return out
}

func writeVerify(w io.Writer, format string, results []verifyResult, strays []string) error {
	bad, skipped, offHost := 0, 0, 0
	for _, r := range results {
		switch {
		case r.Outcome == outcomeOffHost:
			skipped++
			offHost++
		case r.skipped():
			skipped++
		case !r.ok():
			bad++
		}
	}
	type summary struct {
		Probed     int `json:"probed"`
		Mismatches int `json:"mismatches"`
		NotRunning int `json:"not_running"`
		// Keys whose every probe would have left the machine: not sent.
		OffHost int `json:"off_host"`
		// Memberships the policy forbids: failures whatever the packets do.
		ForbiddenMemberships int `json:"forbidden_memberships"`
	}
	sum := summary{len(results) - skipped, bad, skipped - offHost, offHost, len(strays)}
	if strays == nil {
		strays = []string{}
	}
	switch format {
	case "json":
		doc, err := json.MarshalIndent(struct {
			Results     []verifyResult `json:"results"`
			Memberships []string       `json:"forbidden_memberships"`
			Summary     summary        `json:"summary"`
		}{results, strays, sum}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", doc)
		return err
	case "junit":
		type message struct {
			Message string `xml:"message,attr"`
			Text    string `xml:",chardata"`
		}
		type testcase struct {
			Name      string   `xml:"name,attr"`
			Classname string   `xml:"classname,attr"`
			Failure   *message `xml:"failure,omitempty"`
			Skipped   *message `xml:"skipped,omitempty"`
		}
		suite := struct {
			XMLName  xml.Name   `xml:"testsuite"`
			Name     string     `xml:"name,attr"`
			Tests    int        `xml:"tests,attr"`
			Failures int        `xml:"failures,attr"`
			Skipped  int        `xml:"skipped,attr"`
			Cases    []testcase `xml:"testcase"`
		}{Name: "zonewarden verify", Tests: len(results) + len(strays), Failures: bad + len(strays), Skipped: skipped}
		for _, m := range strays {
			suite.Cases = append(suite.Cases, testcase{Name: "membership", Classname: "zonewarden.verify", Failure: &message{Message: m}})
		}
		for _, r := range results {
			tc := testcase{Name: verifyKey(r) + " " + allowWord(r.Expected), Classname: "zonewarden.verify"}
			switch {
			case r.Outcome == outcomeOffHost:
				tc.Skipped = &message{Message: r.Cause, Text: strings.Join(r.Probes, "\n")}
			case r.skipped():
				tc.Name = r.To + " " + r.Outcome
				tc.Skipped = &message{Message: r.Cause}
			case !r.ok():
				tc.Failure = &message{Message: r.Cause, Text: strings.Join(r.Probes, "\n")}
			}
			suite.Cases = append(suite.Cases, tc)
		}
		doc, err := xml.MarshalIndent(suite, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s%s\n", xml.Header, doc)
		return err
	}
	var sb strings.Builder
	for _, r := range results {
		if r.Outcome == outcomeOffHost {
			fmt.Fprintf(&sb, "skip %s: %s\n     probes: %s\n", verifyKey(r), r.Cause, strings.Join(r.Probes, ", "))
			continue
		}
		if r.skipped() {
			fmt.Fprintf(&sb, "skip %s: %s\n", r.To, r.Cause)
			continue
		}
		mark := "ok  "
		if !r.ok() {
			mark = "FAIL"
		}
		fmt.Fprintf(&sb, "%s %s expected=%s observed=%s", mark, verifyKey(r), allowWord(r.Expected), r.Outcome)
		if r.ByName != "" {
			fmt.Fprintf(&sb, " by-name=%s", r.ByName)
		}
		switch {
		case r.Outcome == outcomeClosed && r.Expected:
			sb.WriteString(" (the path is open; nothing listens there and verify could not listen itself: is the service down, or bound to another address?)")
		case r.Listener == "zonewarden" && r.Observed:
			sb.WriteString(" (temporary listener)")
		}
		sb.WriteByte('\n')
		if !r.ok() {
			fmt.Fprintf(&sb, "     %s\n     probes: %s\n", r.Cause, strings.Join(r.Probes, ", "))
		}
	}
	for _, m := range strays {
		fmt.Fprintf(&sb, "FAIL membership: %s\n", m)
	}
	fmt.Fprintf(&sb, "\n%d keys probed, %d mismatches", sum.Probed, bad)
	if len(strays) > 0 {
		fmt.Fprintf(&sb, ", %s the policy forbids", count(len(strays), "membership"))
	}
	if n := skipped - offHost; n > 0 {
		fmt.Fprintf(&sb, ", %s not running (not probed)", count(n, "container"))
	}
	if offHost > 0 {
		fmt.Fprintf(&sb, ", %s not probed because the packets would leave this machine", count(offHost, "key"))
	}
	sb.WriteString(".\n")
	_, err := io.WriteString(w, sb.String())
	return err
}

// verifyKey renders a key as "web -> db:5432/tcp" or "web -> db:icmp".
func verifyKey(r verifyResult) string { return r.From + " -> " + r.To + ":" + r.Port }

func allowWord(b bool) string {
	if b {
		return "allow"
	}
	return "deny"
}
