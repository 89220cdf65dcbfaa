package cli

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/demo"
	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/firewall"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/plan"
	"github.com/zonewarden/zonewarden/internal/plan/execute"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/reach"
	"github.com/zonewarden/zonewarden/internal/report"
	"github.com/zonewarden/zonewarden/internal/verifier"
	"github.com/zonewarden/zonewarden/internal/verify"
)

func (a *app) demoCommand() *cobra.Command {
	var keep, offline bool
	var color string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build a small shared host with the usual mistakes and audit it",
		Long: `demo builds the host of zonewarden's problem statement on the Docker engine:
a production web shop and its customer database, a staging copy, developer
containers, a third-party monitoring agent — with the mistakes such hosts
collect. It audits that host and removes everything it made (label
zonewarden.demo), unless --keep is given.

Nothing is pulled: the demo image is built FROM scratch around a static
binary (zonewarden itself when built with CGO_ENABLED=0, else busybox).
When no Docker engine answers, the demo audits an embedded snapshot of the
same host and says so.`,
		Example: `  zonewarden demo
  zonewarden demo --keep     # leave the host up to explore it
  zonewarden demo --offline  # use the embedded snapshot`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runDemo(cmd.Context(), keep, offline, useColor(color, a.stdout))
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the demo containers and networks in place")
	cmd.Flags().BoolVar(&offline, "offline", false, "do not use Docker: audit the embedded snapshot")
	cmd.Flags().StringVar(&color, "color", "auto", "colour the output: auto, always, never")
	return cmd
}

func (a *app) runDemo(ctx context.Context, keep, offline, color bool) error {
	out := a.stdout
	host := demo.Level0()
	header(out, color, "The host")
	fmt.Fprintln(out, "A shared Docker host, as zonewarden's problem statement describes it:")
	describeHost(out, host)

	if offline {
		fmt.Fprintln(out, "\n--offline: auditing the embedded snapshot of this host.")
		return a.demoOffline(out, host.Snapshot(), color)
	}
	dc, err := dockerapi.New(a.src.dockerHost)
	if err == nil {
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = dc.Ping(pingCtx)
		cancel()
	}
	if err != nil {
		fmt.Fprintf(out, "\nNo Docker engine to build it on (%s).\nAuditing the embedded snapshot of the same host instead.\n", oneLine(err))
		return a.demoOffline(out, host.Snapshot(), color)
	}
	defer dc.Close()

	payload, err := demo.FindPayload()
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	runID := newRunID()
	fmt.Fprintf(out, "\nBuilding it on %s (label %s=%s) ...\n", dc.Host(), demo.Label, runID)
	start := time.Now()
	built, buildErr := demo.Build(ctx, dc, host, runID, payload)
	cleanup := func() {
		if keep {
			fmt.Fprintf(out, "\nKept the demo host. Remove it with:\n  docker rm -f $(docker ps -aq --filter label=%[1]s=%[2]s) && docker network prune -f --filter label=%[1]s=%[2]s\n", demo.Label, runID)
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		if err := dc.RemoveLabelled(cctx, demo.Label, runID); err != nil {
			fmt.Fprintf(a.stderr, "zonewarden: cleaning up the demo: %s\n", oneLine(err))
			return
		}
		fmt.Fprintf(out, "\nRemoved the demo host (%d containers, %d networks). Run with --keep to explore it.\n", len(built.Containers), len(built.Networks))
	}
	if buildErr != nil {
		if built != nil {
			keep = false
			cleanup()
		}
		return &exitErr{Code: exitError, Err: fmt.Errorf("building the demo host: %w", buildErr)}
	}
	defer cleanup()
	fmt.Fprintf(out, "Created %d networks and %d containers (%d running) in %s.\n",
		len(built.Networks), len(built.Containers), built.Started, time.Since(start).Round(time.Millisecond))

	snap, err := dc.Snapshot(ctx)
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	only := snap.OnlyLabelled(demo.Label, runID)
	if err := a.demoAudit(out, only, color); err != nil {
		return err
	}
	return a.demoSegment(ctx, out, only, color, dc, runID, keep)
}

// demoTable is the firewall table of the demo: not zonewarden's own, so
// that a host where zonewarden is applied keeps its enforcement.
const demoTable = "zonewarden_demo"

// demoPolicy reads the demo's policy.
func demoPolicy() (*policy.Policy, error) {
	return policy.Parse("demo-policy.yaml", demo.Policy, policy.Options{})
}

// demoOffline audits the embedded host, then shows what applying the
// demo's policy would make of the dev container's blast radius.
func (a *app) demoOffline(out io.Writer, snap *inventory.Snapshot, color bool) error {
	if err := a.demoAudit(out, snap, color); err != nil {
		return err
	}
	p, err := demoPolicy()
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	header(out, color, "After segmenting it (offline: what apply would make of it)")
	pl, _ := computePlan(p, snap)
	after := plan.Simulate(snap, pl)
	b, _ := model.Bind(p, after)
	if err := demoRadiusAfter(out, reach.Analyze(after, reach.Options{Narrow: verify.Narrower(b)})); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nNot verified: 'zonewarden verify' sends real packets from inside the containers, and this\nrun only simulated the host. Run the demo where a Docker engine answers to see the\npolicy proved by packets before and after it is applied.")
	return nil
}

// demoSegment applies the demo's policy to the demo host — networks,
// memberships and a firewall table of its own — and shows the dev
// container's blast radius after. The cleanup removes the table.
func (a *app) demoSegment(ctx context.Context, out io.Writer, snap *inventory.Snapshot, color bool, dc *dockerapi.Client, runID string, keep bool) error {
	p, err := demoPolicy()
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	header(out, color, "Segmenting it: zonewarden apply")
	fmt.Fprintf(out, "The policy (zonewarden check accepts it; 'zonewarden demo --offline' shows it too):\n\n%s\n", demo.Policy)
	if err := nft.Check(ctx, "add table inet "+demoTable+"\n"); err != nil {
		fmt.Fprintf(out, "nftables is not usable here (%s): the demo stops before enforcing.\n", oneLine(err))
		return nil
	}
	label := [2]string{demo.Label, runID}
	header(out, color, "Verify before: real packets against the policy")
	if err := demoVerify(ctx, out, snap, p, label); err != nil {
		return err
	}
	pl, _ := computePlan(p, snap)
	x := &execute.Executor{Docker: dc, Out: out, Labels: map[string]string{demo.Label: runID}}
	if err := x.Apply(ctx, pl); err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	full, err := dc.Snapshot(ctx)
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	after := full.OnlyLabelled(demo.Label, runID)
	b, _ := model.Bind(p, after)
	rs := enforce.Compile(b, enforce.Options{Table: demoTable})
	defer func() {
		if keep {
			fmt.Fprintf(out, "\nKept the demo's firewall too. Remove it with: nft delete table inet %s\n", demoTable)
			return
		}
		if err := nft.Delete(context.WithoutCancel(ctx), "inet", demoTable); err != nil {
			fmt.Fprintf(a.stderr, "zonewarden: removing the demo's firewall table %s: %s\n", demoTable, oneLine(err))
		}
	}()
	if _, err := firewall.Load(ctx, rs); err != nil {
		return &exitErr{Code: exitError, Err: fmt.Errorf("loading the demo's firewall: %w", err)}
	}
	fmt.Fprintf(out, "Loaded the firewall: table inet %s, %s, in one transaction.\n", demoTable, count(rs.Size(), "set element"))
	header(out, color, "After segmenting it")
	if err := demoRadiusAfter(out, reach.Analyze(after, reach.Options{Narrow: verify.Narrower(b)})); err != nil {
		return err
	}
	header(out, color, "Verify after: real packets against the policy")
	return demoVerify(ctx, out, after, p, label)
}

// demoVerify probes the demo host with real packets against the policy
// and prints a compact matrix: for each source (row) and destination
// (column), whether every probed port behaved as the policy says.
func demoVerify(ctx context.Context, out io.Writer, snap *inventory.Snapshot, p *policy.Policy, label [2]string) error {
	b, _ := model.Bind(p, snap)
	an := reach.Analyze(snap, reach.Options{Narrow: verify.Narrower(b)})
	start := time.Now()
	results, err := verifier.Run(ctx, snap, an, b, verify.Options{Label: label, Timeout: probe.DefaultTimeout})
	if err != nil {
		fmt.Fprintf(out, "verify could not probe the demo host: %s\n", oneLine(err))
		return nil
	}
	elapsed := time.Since(start)
	var names []string
	type cell struct{ keys, bad int }
	cells := map[[2]string]*cell{}
	var bad []verify.Result
	skipped := 0
	for _, r := range results {
		if r.Skipped() {
			skipped++
			continue
		}
		for _, n := range []string{r.From, r.To} {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		k := [2]string{r.From, r.To}
		if cells[k] == nil {
			cells[k] = &cell{}
		}
		cells[k].keys++
		if !r.OK() {
			cells[k].bad++
			bad = append(bad, r)
		}
	}
	slices.Sort(names)
	fmt.Fprintf(out, "From inside each running container, to every other one (x: a port behaves\nunlike the policy says, .: every probed port as it says):\n\n")
	tw := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
	fmt.Fprint(tw, "  FROM \\ TO\t")
	for i := range names {
		fmt.Fprintf(tw, "%d\t", i+1)
	}
	fmt.Fprintln(tw)
	for i, from := range names {
		fmt.Fprintf(tw, "  %d %s\t", i+1, from)
		for _, to := range names {
			mark := "-"
			if c := cells[[2]string{from, to}]; c != nil {
				mark = "."
				if c.bad > 0 {
					mark = "x"
				}
			}
			fmt.Fprintf(tw, "%s\t", mark)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintf(out, "\n%d ports checked between %d containers in %s: %d behave unlike the policy.",
		len(results)-skipped, len(names), elapsed.Round(time.Millisecond), len(bad))
	if skipped > 0 {
		fmt.Fprintf(out, " (%s not running, not probed.)", count(skipped, "container"))
	}
	fmt.Fprintln(out)
	// The dev container's mismatches first: they are the demo's story.
	slices.SortStableFunc(bad, func(x, y verify.Result) int {
		return cmp.Compare(boolRank(x.From != demo.DevContainer), boolRank(y.From != demo.DevContainer))
	})
	const show = 4
	for i, r := range bad {
		if i == show {
			fmt.Fprintf(out, "  ... and %d more: 'zonewarden verify POLICY' lists them all.\n", len(bad)-show)
			break
		}
		fmt.Fprintf(out, "  %s: the policy says %s, the packets found it %s\n", r.Key(), report.AllowWord(r.Expected), r.Outcome)
	}
	if len(bad) == 0 {
		fmt.Fprintln(out, "Every probe matched the policy: the zones hold.")
	}
	return nil
}

func demoRadiusAfter(out io.Writer, an *reach.Analysis) error {
	fmt.Fprintf(out, "If %s is compromised now:\n\n", demo.DevContainer)
	r, err := an.BlastRadius(demo.DevContainer, 0)
	if err == nil {
		err = report.BlastRadiusText(out, r, 0)
	}
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	return nil
}

func (a *app) demoAudit(out io.Writer, snap *inventory.Snapshot, color bool) error {
	header(out, color, "Audit")
	start := time.Now()
	rep := audit.Run(snap, audit.Options{})
	elapsed := time.Since(start)
	err := report.AuditText(out, rep, report.AuditOptions{Color: color, Source: describe(snap)})
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	fmt.Fprintf(out, "\nAudited %d containers on %d networks in %s. Run 'zonewarden rules RULE' to learn about a rule.\n",
		len(snap.Containers), len(snap.Networks), elapsed.Round(time.Microsecond))

	header(out, color, "Blast radius of the dev container")
	fmt.Fprintf(out, "If %s is compromised, this is what the attacker reaches before any fix:\n\n", demo.DevContainer)
	r, err := reach.Analyze(snap, reach.Options{}).BlastRadius(demo.DevContainer, 0)
	if err == nil {
		err = report.BlastRadiusText(out, r, 0)
	}
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	fmt.Fprintf(out, "\nExplore it: zonewarden reach --from %[1]s, zonewarden blast-radius --all.\n", demo.DevContainer)
	return nil
}

func describeHost(w io.Writer, h demo.Host) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CONTAINER\tNETWORKS\tROLE")
	for _, c := range h.Containers {
		nets := strings.Join(c.Networks, ",")
		if c.NetworkMode != "" {
			nets = c.NetworkMode
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Name, nets, c.Role)
	}
	tw.Flush()
}

func header(w io.Writer, color bool, title string) {
	if color {
		fmt.Fprintf(w, "\n\033[1m== %s ==\033[0m\n", title)
		return
	}
	fmt.Fprintf(w, "\n== %s ==\n", title)
}

func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
