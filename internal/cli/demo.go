package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/demo"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/reach"
	"github.com/zonewarden/zonewarden/internal/report"
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
		return a.demoAudit(out, host.Snapshot(), color)
	}
	dc, err := dockerapi.New(a.src.dockerHost)
	if err == nil {
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = dc.Ping(pingCtx)
		cancel()
	}
	if err != nil {
		fmt.Fprintf(out, "\nNo Docker engine to build it on (%s).\nAuditing the embedded snapshot of the same host instead.\n", oneLine(err))
		return a.demoAudit(out, host.Snapshot(), color)
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
	only := onlyLabelled(snap, demo.Label, runID)
	return a.demoAudit(out, only, color)
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

// onlyLabelled keeps the demo's containers and networks (and Docker's own
// networks), so that other containers on the host do not muddle the demo.
func onlyLabelled(snap *inventory.Snapshot, key, value string) *inventory.Snapshot {
	out := *snap
	out.Containers = nil
	out.Networks = nil
	for _, n := range snap.Networks {
		if n.Labels[key] == value || n.IsBuiltin() {
			out.Networks = append(out.Networks, n)
		}
	}
	for _, c := range snap.Containers {
		if c.Labels[key] == value {
			out.Containers = append(out.Containers, c)
		}
	}
	return &out
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
