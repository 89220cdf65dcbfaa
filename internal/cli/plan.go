package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/agent"
	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/firewall"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/learn"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/plan"
	"github.com/zonewarden/zonewarden/internal/plan/execute"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/report"
	"github.com/zonewarden/zonewarden/internal/state"
)

// readPolicy reads and validates a policy file. An invalid one is exit 2,
// with every problem on standard error, one per line.
func (a *app) readPolicy(path string) (*policy.Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &exitErr{Code: exitError, Err: fmt.Errorf("cannot read the policy: %w", err)}
	}
	p, err := policy.Parse(path, data, policy.Options{})
	var perr *policy.Error
	switch {
	case errors.As(err, &perr):
		perr.WriteText(a.stderr)
		return nil, &exitErr{Code: exitError, Err: fmt.Errorf("the policy %s is invalid (%s above); nothing was done", path, count(len(perr.Problems), "problem"))}
	case err != nil:
		return nil, &exitErr{Code: exitError, Err: err}
	}
	return p, nil
}

// computePlan binds the policy to the host and returns the plan, with the
// binding for the firewall.
func computePlan(p *policy.Policy, snap *inventory.Snapshot) (*plan.Plan, *model.Binding) {
	b, bindErr := model.Bind(p, snap)
	want := plan.Desired{Members: b.MemberZones(), Unmatched: b.Unmatched(), PublishAllowed: b.PublishAllowed}
	for _, f := range b.Fenced() {
		want.Fenced = append(want.Fenced, f.String())
	}
	for _, z := range p.Zones {
		want.Zones = append(want.Zones, plan.Zone{Name: z.Name, Internal: z.Internal, Encrypted: z.WantsEncryption()})
	}
	var pl *plan.Plan
	if snap.Swarm != nil {
		pl = plan.ComputeSwarm(snap, want)
	} else {
		pl = plan.Compute(snap, want)
	}
	var perr *policy.Error
	if errors.As(bindErr, &perr) {
		for _, pr := range perr.Problems {
			pl.Blockers = append(pl.Blockers, pr.String())
		}
	} else if bindErr != nil {
		pl.Blockers = append(pl.Blockers, bindErr.Error())
	}
	return pl, b
}

// firewallPlan compares the ruleset the policy compiles to on this host
// with the one the last apply loaded, if its table is still installed.
func firewallPlan(ctx context.Context, b *model.Binding) *plan.Firewall {
	rs := enforce.Compile(b, enforce.Options{})
	fw := &plan.Firewall{Elements: rs.Size(), Sample: []string{}}
	listing, err := nft.List(ctx, "inet", enforce.Table)
	if err != nil || listing == "" {
		return fw
	}
	fw.Installed = true
	applied, err := state.Load()
	if err != nil || applied == nil {
		fw.Chains = true // installed by someone or something else: apply replaces it
		return fw
	}
	c := rs.Diff(applied.Script)
	fw.Added, fw.Removed = c.Count()
	fw.Chains = c.Chains
	for _, set := range slices.Sorted(maps.Keys(c.Added)) {
		for _, e := range c.Added[set] {
			if len(fw.Sample) < 10 {
				fw.Sample = append(fw.Sample, "+ "+set+": "+e)
			}
		}
	}
	for _, set := range slices.Sorted(maps.Keys(c.Removed)) {
		for _, e := range c.Removed[set] {
			if len(fw.Sample) < 20 {
				fw.Sample = append(fw.Sample, "- "+set+": "+e)
			}
		}
	}
	return fw
}

func (a *app) planCommand() *cobra.Command {
	var format, output, flowsFile string
	cmd := &cobra.Command{
		Use:   "plan POLICY",
		Short: "Show what apply would change to make the host match the policy",
		Long: `plan compares the policy with the host (live Docker by default, or -f /
--snapshot to preview offline) and lists, for review:

  + networks to create (a zone is the Docker network of the same name)
  ~ networks to re-create because their internal flag is wrong (Docker cannot
    change it in place; their members lose connectivity on it meanwhile)
  + memberships to add, - memberships to remove (each container joins exactly
    its workload's zones)
  ! what apply cannot change: containers no workload matches, published ports
    the policy does not allow; among them the fenced ones: on a default: deny
    zone, they get no flow into, out of or inside any zone (fail closed),
    whatever unmanaged says
  x blockers: why the host cannot satisfy the policy

With --flows FILE (recorded by 'zonewarden learn'), plan also lists the
recorded flows the policy would deny, with why: x for those it would drop,
~ for those only logged as would deny because every zone concerned is in
monitor mode. Run it before apply, and before switching monitor to enforce.

Exit status, like terraform plan -detailed-exitcode: 0 when nothing would
change, 1 when something would (or a recorded flow would break), 2 on error.`,
		Example: `  zonewarden plan zones.yaml
  zonewarden plan zones.yaml --format json | jq .connect
  zonewarden plan zones.yaml --snapshot host.json
  zonewarden plan zones.yaml --flows flows.jsonl   # which real flows it breaks`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return usageErr(cmd, "unknown --format %q: use text or json", format)
			}
			p, err := a.readPolicy(args[0])
			if err != nil {
				return err
			}
			snap, err := a.src.load(cmd.Context())
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			pl, b := computePlan(p, snap)
			if snap.Source.Kind == "docker" && snap.Swarm == nil { // a Swarm's flows are the agents'
				pl.Firewall = firewallPlan(cmd.Context(), b)
			}
			if flowsFile != "" {
				recs, err := readFlows(flowsFile)
				if err != nil {
					return &exitErr{Code: exitError, Err: err}
				}
				pl.Recorded = recordedPlan(b, recs, flowsFile)
			}
			w, closeOut, err := openOutput(a.stdout, output)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			if format == "json" {
				err = report.PlanJSON(w, pl)
			} else {
				err = report.PlanText(w, pl)
			}
			if cerr := closeOut(); err == nil {
				err = cerr
			}
			switch {
			case err != nil:
				return &exitErr{Code: exitError, Err: err}
			case pl.Changes() || len(pl.Blockers) > 0 || pl.Recorded != nil && len(pl.Recorded.Broken) > 0:
				return &exitErr{Code: exitFindings}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the plan to `FILE` instead of standard output")
	cmd.Flags().StringVar(&flowsFile, "flows", "", "also list the flows recorded in `FILE` (zonewarden learn) that the policy would break")
	return cmd
}

// recordedPlan judges the recorded flows by the policy bound to the host.
func recordedPlan(b *model.Binding, recs []learn.Record, file string) *plan.Recorded {
	breaks, unjudged := b.Breaks(recs)
	r := &plan.Recorded{File: file, Total: len(recs), Unjudged: unjudged, Broken: []plan.BrokenFlow{}}
	for _, x := range breaks {
		r.Broken = append(r.Broken, plan.BrokenFlow{Flow: x.Record.String(), Count: x.Record.Count,
			Last: x.Record.Last.Local().Format(time.DateTime), Reason: x.Decision.Reason, Monitored: x.Monitored})
	}
	return r
}

// applyOptions are apply's flags.
type applyOptions struct {
	recreate   bool
	labels     map[string]string
	dryRun     bool
	noFirewall bool
}

func (a *app) applyCommand() *cobra.Command {
	var (
		o      applyOptions
		labels []string
	)
	cmd := &cobra.Command{
		Use:   "apply POLICY",
		Short: "Make the host match the policy: zones' networks, memberships and the firewall",
		Long: `apply carries out what 'zonewarden plan POLICY' shows, on the live Docker host.

Docker side: it creates the zones' networks (labelled zonewarden.zone),
re-creates those whose internal flag is wrong, connects each container to its
workload's zones and disconnects it from every other network. New memberships
are added before old ones are removed.

Firewall: it then loads the policy as one nftables table of its own,
inet zonewarden, in one transaction (see 'zonewarden status', and
'zonewarden reset' to remove it): only the declared flows pass between
containers of the zones, port by port, inside a zone too; published ports
are reachable from other containers only where a flow allows it, and from
outside by the workload's ingress; egress beyond the host per workload;
IPv4 and IPv6 alike. A container that starts in a zone after apply is
dropped until it is admitted (run apply again, or the agent): fail closed.

On a Swarm (--docker-host a manager; --swarm-node for each node's own
daemon): each zone is an overlay network, created encrypted (IPsec between
nodes) unless the zone says encrypted: false, and apply refuses while a
node's kernel cannot encrypt (the overlay would carry nothing between
nodes). Services, not containers, join zones: 'docker service update'
adds every new zone, waits until the tasks run on it, then removes the old
networks. The flows are kept inside each overlay by 'zonewarden agent
--swarm' on every node; apply loads nothing into this host's firewall.

apply is idempotent: a second run changes nothing. It never removes a
container, and never removes a network it did not create unless
--recreate-networks is given. When the policy is invalid or the host cannot
satisfy it, apply stops before changing anything. There is no prompt: plan
(or apply --dry-run) is the preview.`,
		Example: `  zonewarden plan zones.yaml && zonewarden apply zones.yaml
  zonewarden apply zones.yaml --dry-run        # the plan and the nftables ruleset, nothing changed
  zonewarden apply zones.yaml --no-firewall    # networks and memberships only
  zonewarden apply zones.yaml --recreate-networks`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(a.src.composeFiles) > 0 || a.src.snapshotFile != "" {
				return usageErr(cmd, "apply changes a live Docker host: -f and --snapshot are for plan")
			}
			var err error
			if o.labels, err = parseLabels(labels); err != nil {
				return usageErr(cmd, "--label: %v", err)
			}
			p, err := a.readPolicy(args[0])
			if err != nil {
				return err
			}
			return a.runApply(cmd.Context(), p, o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.recreate, "recreate-networks", false, "allow re-creating networks zonewarden did not create (their members lose connectivity on them meanwhile)")
	f.StringArrayVar(&labels, "label", nil, "add `KEY=VALUE` to the networks apply creates (repeatable)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan and the nftables ruleset apply would load; change nothing")
	f.BoolVar(&o.noFirewall, "no-firewall", false, "apply networks and memberships only; leave the firewall as it is")
	return cmd
}

func (a *app) runApply(ctx context.Context, p *policy.Policy, o applyOptions) error {
	dc, err := dockerapi.New(a.src.dockerHost)
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	defer dc.Close()
	snap, err := dc.Snapshot(ctx)
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	if snap.Swarm != nil {
		return a.runSwarmApply(ctx, p, o, dc)
	}
	pl, b := computePlan(p, snap)
	x := &execute.Executor{Docker: dc, Out: a.stdout, Labels: o.labels, RecreateForeign: o.recreate}
	if err := x.Check(pl); err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	if o.dryRun {
		if err := report.PlanText(a.stdout, pl); err != nil {
			return &exitErr{Code: exitError, Err: err}
		}
		if !o.noFirewall {
			for _, c := range firewall.BridgeFilteringChanges() {
				fmt.Fprintf(a.stdout, "\nHost: apply would %s.\n", c)
			}
			bindPorts(snap)
			fmt.Fprintf(a.stdout, "\nFirewall: the rulesets apply would load with nft -f (addresses of new memberships are assigned by Docker during apply), the endpoint binding first:\n\n%s\n%s",
				enforce.CompilePorts(b, enforce.Options{}).Script(), enforce.Compile(b, enforce.Options{}).Script())
		}
		return nil
	}
	if s, ok := runningAgent(ctx, agent.DefaultSocket); ok && !o.noFirewall && s.Table == "inet "+enforce.Table {
		abs, _ := filepath.Abs(p.File)
		if s.Policy != abs {
			return &exitErr{Code: exitError, Err: fmt.Errorf("a zonewarden agent keeps the firewall for %s and would undo this apply's firewall within a second; nothing was changed: edit %s (the agent reloads it), stop the agent, or run apply --no-firewall for the Docker side", s.Policy, s.Policy)}
		}
		fmt.Fprintf(a.stdout, "A zonewarden agent keeps the firewall for this policy: apply does the Docker side, the agent the firewall.\n")
		o.noFirewall = true
	}
	var fw *firewall.Applier
	if !o.noFirewall {
		done, err := firewall.Preflight(ctx)
		for _, d := range done {
			fmt.Fprintf(a.stdout, "Host: %s.\n", d)
		}
		if err != nil {
			return &exitErr{Code: exitError, Err: fmt.Errorf("refusing to apply, nothing in Docker or the firewall was changed: %w (apply --no-firewall does the Docker side alone)", err)}
		}
		if fw, err = firewall.Open(firewall.Options{Fallback: true}); err != nil {
			return &exitErr{Code: exitError, Err: fmt.Errorf("refusing to apply, nothing in Docker or the firewall was changed: %w", err)}
		}
		defer fw.Close()
	}
	if pl.Changes() {
		if err := x.Apply(ctx, pl); err != nil {
			return &exitErr{Code: exitError, Err: err}
		}
		fmt.Fprintf(a.stdout, "Docker: %s created, %s re-created, %s added, %s removed.\n",
			count(len(pl.Create), "network"), count(len(pl.Recreate), "network"),
			count(len(pl.Connect), "membership"), count(len(pl.Disconnect), "membership"))
		if snap, err = dc.Snapshot(ctx); err != nil {
			return &exitErr{Code: exitError, Err: err}
		}
		b, _ = model.Bind(p, snap) // the addresses Docker gave the new memberships
	} else {
		fmt.Fprintln(a.stdout, "Docker: nothing to change, the host's networks and memberships match the policy.")
	}
	if o.noFirewall {
		return nil
	}
	// The endpoint binding first: an address the policy table admits is
	// then bound to its port from the start.
	for _, pr := range bindPorts(snap) {
		fmt.Fprintf(a.stderr, "zonewarden: warning: %s; that endpoint's addresses are not bound to a bridge port (the agent binds them once found)\n", pr)
	}
	ports := enforce.CompilePorts(b, enforce.Options{})
	if _, err := fw.Apply(ctx, ports, true); err != nil {
		return &exitErr{Code: exitError, Err: fmt.Errorf("loading the endpoint binding: %w; the previous ruleset stays in force", err)}
	}
	rs := enforce.Compile(b, enforce.Options{})
	res, err := fw.Apply(ctx, rs, true)
	if err != nil {
		return &exitErr{Code: exitError, Err: fmt.Errorf("loading the firewall: %w; the previous ruleset stays in force", err)}
	}
	bound, unbound := enforce.BoundPorts(snap)
	fmt.Fprintf(a.stdout, "Firewall: table bridge %s binds %s to their bridge ports (%d not found).\n", enforce.Table, count(bound, "endpoint"), unbound)
	fmt.Fprintf(a.stdout, "Firewall: table inet %s loaded in one transaction (%s, %s admitted).\n",
		enforce.Table, count(rs.Size(), "set element"), count(len(rs.Elements("admitted4"))+len(rs.Elements("admitted6")), "address"))
	if zones := p.MonitoredZones(); len(zones) > 0 {
		fmt.Fprintf(a.stdout, "Firewall: monitor mode in %s: what the policy would drop there is let through and logged as would deny ('zonewarden status' counts it; 'zonewarden agent' names it, see 'zonewarden flows').\n", strings.Join(zones, ", "))
	}
	if err := firewall.Record(p.File, policy.Format(p), rs); err != nil {
		fmt.Fprintf(a.stderr, "zonewarden: warning: %s; plan will not show firewall changes until the next apply\n", oneLine(err))
	}
	switch {
	case res.ConntrackErr != nil:
		fmt.Fprintf(a.stderr, "zonewarden: warning: %s; connections opened before apply that the policy forbids stay open until they close\n", oneLine(res.ConntrackErr))
	case res.Killed > 0:
		fmt.Fprintf(a.stdout, "Firewall: ended %s the policy no longer allows.\n", count(res.Killed, "tracked connection"))
	}
	return nil
}

// runSwarmApply applies the Docker side of a policy to a Swarm, through
// a manager: the zones' overlays and the services' memberships. The
// flows are the agents' (agent --swarm on every node): nothing is loaded
// into this host's firewall.
func (a *app) runSwarmApply(ctx context.Context, p *policy.Policy, o applyOptions, dc *dockerapi.Client) error {
	snap, err := a.src.load(ctx) // with each --swarm-node, and the IPsec of local nodes' kernel
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	pl, _ := computePlan(p, snap)
	x := &execute.Executor{Docker: dc, Out: a.stdout, Labels: o.labels}
	if err := x.Check(pl); err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	if o.dryRun {
		if err := report.PlanText(a.stdout, pl); err != nil {
			return &exitErr{Code: exitError, Err: err}
		}
		return nil
	}
	for _, w := range pl.Warnings {
		fmt.Fprintf(a.stderr, "zonewarden: warning: %s\n", w)
	}
	if pl.Changes() {
		if err := x.Apply(ctx, pl); err != nil {
			return &exitErr{Code: exitError, Err: err}
		}
		fmt.Fprintf(a.stdout, "Swarm: %s created, %s moved.\n", count(len(pl.Create), "overlay"), count(len(pl.Services), "service"))
	} else {
		fmt.Fprintln(a.stdout, "Swarm: nothing to change, the overlays and the services' memberships match the policy.")
	}
	fmt.Fprintf(a.stdout, "Firewall: on a Swarm the flows are kept inside each overlay, on every node, by 'zonewarden agent --policy %s --swarm' (docs/zones-across-hosts.md); apply loads nothing into this host's firewall.\n", p.File)
	return nil
}

func parseLabels(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("want KEY=VALUE, got %q", kv)
		}
		out[k] = v
	}
	return out, nil
}

func count(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "s"):
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
