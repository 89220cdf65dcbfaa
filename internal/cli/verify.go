package cli

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
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

// verifyResult is one probed key: a source, a destination and a port.
type verifyResult struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	Port     string   `json:"port"`
	Expected bool     `json:"expected"`
	Observed bool     `json:"observed"`
	Via      []string `json:"via,omitempty"`
	// Listener says who answered: "service" (something already listened)
	// or "zonewarden" (a temporary listener of verify).
	Listener string   `json:"listener"`
	Probes   []string `json:"probes"`
	Cause    string   `json:"cause,omitempty"`
}

func (r verifyResult) ok() bool { return r.Expected == r.Observed }

func (a *app) verifyCommand() *cobra.Command {
	var (
		format, output, label string
		sample                int
		timeout               time.Duration
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
that a service was down. UDP counts as open when the listener's reply
comes back.

Exit status: 0 when everything matches, 1 on any mismatch, 2 when verify
could not run.`,
		Example: `  zonewarden verify
  zonewarden verify zones.yaml --format junit -o verify.xml
  zonewarden verify --label com.docker.compose.project=shop --sample 500`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains([]string{"text", "json", "junit"}, format) {
				return usageErr(cmd, "unknown --format %q: use text, json or junit", format)
			}
			if len(a.src.composeFiles) > 0 || a.src.snapshotFile != "" {
				return usageErr(cmd, "verify probes a live Docker host: -f and --snapshot cannot be probed")
			}
			var keyVal [2]string
			if label != "" {
				k, v, ok := strings.Cut(label, "=")
				if !ok {
					return usageErr(cmd, "--label: want KEY=VALUE, got %q", label)
				}
				keyVal = [2]string{k, v}
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
			results, err := runVerify(cmd.Context(), snap, an, b, keyVal, sample, timeout)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			w, closeOut, err := openOutput(a.stdout, output)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			err = writeVerify(w, format, results)
			if cerr := closeOut(); err == nil {
				err = cerr
			}
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
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
	f.IntVar(&sample, "sample", 0, "probe at most `N` source-destination pairs, chosen at random (0: all)")
	f.DurationVar(&timeout, "timeout", probe.DefaultTimeout, "how long a probe waits before it counts as dropped")
	return cmd
}

// verifyPorts are the ports probed on a destination: its exposed and
// published container ports, the policy's flow ports to it, and 80/tcp.
func verifyPorts(c *inventory.Container, ix *inventory.Index, b *policy.Binding) []reach.Port {
	var out []reach.Port
	add := func(proto string, n uint16) {
		pt := reach.Port{Proto: proto, Number: n}
		if (proto == "tcp" || proto == "udp") && n != 0 && !slices.Contains(out, pt) && len(out) < 8 {
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
			for _, f := range b.Model.Policy().Flows {
				for _, w := range b.Model.Members(f.To) {
					if w.Name == m.Workload.Name {
						for _, r := range f.Ports {
							add(r.Proto, r.First)
						}
					}
				}
			}
		}
	}
	add("tcp", 80)
	return out
}

// runVerify probes the peers of snap; b, when not nil, is the policy bound
// to snap (its flow ports are probed too).
func runVerify(ctx context.Context, snap *inventory.Snapshot, an *reach.Analysis, b *policy.Binding, label [2]string, sample int, timeout time.Duration) ([]verifyResult, error) {
	ix := inventory.NewIndex(snap)
	// Peers: running containers with a network namespace of their own.
	var peers []*inventory.Container
	for i := range snap.Containers {
		c := &snap.Containers[i]
		if c.Pid <= 0 || c.UsesHostNetwork() || c.NoNetwork() || c.SharedNamespaceWith() != "" {
			continue
		}
		if label[0] != "" && c.Labels[label[0]] != label[1] {
			continue
		}
		peers = append(peers, c)
	}
	if len(peers) < 2 {
		return nil, errors.New("fewer than two running containers to probe between (is the --label right?)")
	}
	ns := map[string]*probe.Namespace{}
	defer func() {
		for _, n := range ns {
			n.Close()
		}
	}()
	for _, c := range peers {
		n, err := probe.OpenPID(c.Pid)
		if err != nil {
			return nil, fmt.Errorf("entering the network namespace of %s: %w (verify needs root)", c.Name, err)
		}
		ns[c.Name] = n
	}
	// Listen where nothing does, so that a refusal cannot pass for a drop.
	owner := map[[2]string]string{} // (container, port) -> "service" or "zonewarden"
	var listeners []*probe.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	ports := map[string][]reach.Port{}
	for _, c := range peers {
		ports[c.Name] = verifyPorts(c, ix, b)
		for _, pt := range ports[c.Name] {
			cfg := probe.ListenConfig{Banner: "zonewarden-verify"}
			if pt.Proto == "tcp" {
				cfg.TCP = []uint16{pt.Number}
			} else {
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
	if sample > 0 && sample < len(pairs) {
		r := rand.New(rand.NewPCG(1, 2))
		r.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
		pairs = pairs[:sample]
	}
	var jobs []probe.Job
	var keys []int // job -> result index
	var results []verifyResult
	for _, pr := range pairs {
		for _, pt := range ports[pr.to.Name] {
			ok, edge := an.Eval(pr.from.Name, pr.to.Name, pt)
			res := verifyResult{From: pr.from.Name, To: pr.to.Name, Port: pt.String(), Expected: ok, Via: edge.Via,
				Listener: owner[[2]string{pr.to.Name, pt.String()}], Probes: []string{}}
			results = append(results, res)
			add := func(ap netip.AddrPort) {
				jobs = append(jobs, probe.Job{From: ns[pr.from.Name], To: probe.Target{Proto: pt.Proto, Addr: ap}})
				keys = append(keys, len(results)-1)
			}
			for _, e := range pr.to.Endpoints {
				for _, addr := range []netip.Addr{e.IPv4, e.IPv6} {
					if addr.IsValid() {
						add(netip.AddrPortFrom(addr, pt.Number))
					}
				}
			}
			// The published path: the destination's host port through the
			// gateway address of each of the source's networks.
			for _, pb := range ix.PublishedPorts(pr.to) {
				if pb.ContainerPort.Number != pt.Number || pb.ContainerPort.Protocol != pt.Proto || pb.HostPort == 0 {
					continue
				}
				for _, gw := range gateways(ix, pr.from) {
					if pb.AllInterfaces() && (!pb.HostIP.IsValid() || pb.HostIP.Is4() == gw.Is4()) || pb.HostIP == gw {
						add(netip.AddrPortFrom(gw, pb.HostPort))
					}
				}
			}
		}
	}
	prober := &probe.Prober{Timeout: timeout}
	for i, r := range prober.Run(ctx, jobs) {
		res := &results[keys[i]]
		res.Observed = res.Observed || r.Status == probe.Open
		res.Probes = append(res.Probes, r.To.String()+" "+r.Status.String())
	}
	for i := range results {
		results[i].Cause = verifyCause(results[i])
	}
	slices.SortFunc(results, func(x, y verifyResult) int {
		return strings.Compare(x.From+" "+x.To+" "+x.Port, y.From+" "+y.To+" "+y.Port)
	})
	return results, nil
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

// verifyCause names the likely cause of a mismatch.
func verifyCause(r verifyResult) string {
	switch {
	case r.ok():
		return ""
	case r.Expected:
		return "expected to pass but dropped: a firewall rule (zonewarden's, or Docker's isolation) stops it; check the flow with 'zonewarden reach --eval " + r.From + " " + r.To + " " + r.Port + "'"
	}
	for _, v := range r.Via {
		if strings.HasPrefix(v, reach.ViaNetwork) {
			return "expected to be denied but open over " + v + ": is a container on a network its workload may not join, or is the firewall missing ('zonewarden status')?"
		}
	}
	return "expected to be denied but open: no rule stops it — is zonewarden's firewall installed ('zonewarden status')?"
}

func writeVerify(w io.Writer, format string, results []verifyResult) error {
	bad := 0
	for _, r := range results {
		if !r.ok() {
			bad++
		}
	}
	switch format {
	case "json":
		doc, err := json.MarshalIndent(struct {
			Results []verifyResult `json:"results"`
			Summary struct {
				Probed     int `json:"probed"`
				Mismatches int `json:"mismatches"`
			} `json:"summary"`
		}{Results: results, Summary: struct {
			Probed     int `json:"probed"`
			Mismatches int `json:"mismatches"`
		}{len(results), bad}}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", doc)
		return err
	case "junit":
		type failure struct {
			Message string `xml:"message,attr"`
			Text    string `xml:",chardata"`
		}
		type testcase struct {
			Name      string   `xml:"name,attr"`
			Classname string   `xml:"classname,attr"`
			Failure   *failure `xml:"failure,omitempty"`
		}
		suite := struct {
			XMLName  xml.Name   `xml:"testsuite"`
			Name     string     `xml:"name,attr"`
			Tests    int        `xml:"tests,attr"`
			Failures int        `xml:"failures,attr"`
			Cases    []testcase `xml:"testcase"`
		}{Name: "zonewarden verify", Tests: len(results), Failures: bad}
		for _, r := range results {
			tc := testcase{Name: r.From + " -> " + r.To + ":" + r.Port + " " + allowWord(r.Expected), Classname: "zonewarden.verify"}
			if !r.ok() {
				tc.Failure = &failure{Message: r.Cause, Text: strings.Join(r.Probes, "\n")}
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
		mark := "ok  "
		if !r.ok() {
			mark = "FAIL"
		}
		fmt.Fprintf(&sb, "%s %s -> %s:%s expected=%s observed=%s", mark, r.From, r.To, r.Port, allowWord(r.Expected), openWord(r.Observed))
		if r.Listener == "zonewarden" {
			sb.WriteString(" (temporary listener)")
		}
		sb.WriteByte('\n')
		if !r.ok() {
			fmt.Fprintf(&sb, "     %s\n     probes: %s\n", r.Cause, strings.Join(r.Probes, ", "))
		}
	}
	fmt.Fprintf(&sb, "\n%d keys probed, %d mismatches.\n", len(results), bad)
	_, err := io.WriteString(w, sb.String())
	return err
}

func allowWord(b bool) string {
	if b {
		return "allow"
	}
	return "deny"
}

func openWord(b bool) string {
	if b {
		return "open"
	}
	return "blocked"
}
