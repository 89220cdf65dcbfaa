package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/plan"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/report"
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

// computePlan binds the policy to the host and returns the plan.
func computePlan(p *policy.Policy, snap *inventory.Snapshot) *plan.Plan {
	b, bindErr := policy.Bind(p, snap)
	want := plan.Desired{Members: b.MemberZones(), Unmatched: b.Unmatched(), PublishAllowed: b.PublishAllowed}
	for _, z := range p.Zones {
		want.Zones = append(want.Zones, plan.Zone{Name: z.Name, Internal: z.Internal})
	}
	pl := plan.Compute(snap, want)
	var perr *policy.Error
	if errors.As(bindErr, &perr) {
		for _, pr := range perr.Problems {
			pl.Blockers = append(pl.Blockers, pr.String())
		}
	} else if bindErr != nil {
		pl.Blockers = append(pl.Blockers, bindErr.Error())
	}
	return pl
}

func (a *app) planCommand() *cobra.Command {
	var format, output string
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
    the policy does not allow
  x blockers: why the host cannot satisfy the policy

Exit status, like terraform plan -detailed-exitcode: 0 when nothing would
change, 1 when something would, 2 on error.`,
		Example: `  zonewarden plan zones.yaml
  zonewarden plan zones.yaml --format json | jq .connect
  zonewarden plan zones.yaml --snapshot host.json`,
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
			pl := computePlan(p, snap)
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
			case pl.Changes() || len(pl.Blockers) > 0:
				return &exitErr{Code: exitFindings}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the plan to `FILE` instead of standard output")
	return cmd
}

func (a *app) applyCommand() *cobra.Command {
	var (
		recreate bool
		labels   []string
	)
	cmd := &cobra.Command{
		Use:   "apply POLICY",
		Short: "Make the host's networks and memberships match the policy",
		Long: `apply carries out what 'zonewarden plan POLICY' shows, on the live Docker host:
it creates the zones' networks (labelled zonewarden.zone), re-creates those
whose internal flag is wrong, connects each container to its workload's
zones and disconnects it from every other network. New memberships are
added before old ones are removed.

apply is idempotent: a second run changes nothing. It never removes a
container, and never removes a network it did not create unless
--recreate-networks is given. When the policy is invalid or the host cannot
satisfy it, apply stops before changing anything. There is no prompt: plan
is the preview.`,
		Example: `  zonewarden plan zones.yaml && zonewarden apply zones.yaml
  zonewarden apply zones.yaml --recreate-networks   # also re-create networks zonewarden did not create`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(a.src.composeFiles) > 0 || a.src.snapshotFile != "" {
				return usageErr(cmd, "apply changes a live Docker host: -f and --snapshot are for plan")
			}
			extra, err := parseLabels(labels)
			if err != nil {
				return usageErr(cmd, "--label: %v", err)
			}
			p, err := a.readPolicy(args[0])
			if err != nil {
				return err
			}
			return a.runApply(cmd.Context(), p, extra, recreate)
		},
	}
	cmd.Flags().BoolVar(&recreate, "recreate-networks", false, "allow re-creating networks zonewarden did not create (their members lose connectivity on them meanwhile)")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "add `KEY=VALUE` to the networks apply creates (repeatable)")
	return cmd
}

func (a *app) runApply(ctx context.Context, p *policy.Policy, labels map[string]string, recreate bool) error {
	dc, err := dockerapi.New(a.src.dockerHost)
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	defer dc.Close()
	snap, err := dc.Snapshot(ctx)
	if err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	pl := computePlan(p, snap)
	x := &executor{dc: dc, out: a.stdout, labels: labels, recreateForeign: recreate}
	if !pl.Changes() {
		if err := x.check(pl); err != nil {
			return &exitErr{Code: exitError, Err: err}
		}
		fmt.Fprintln(a.stdout, "Nothing to change: the host's networks and memberships match the policy.")
		return nil
	}
	if err := x.apply(ctx, pl); err != nil {
		return &exitErr{Code: exitError, Err: err}
	}
	fmt.Fprintf(a.stdout, "Applied: %s created, %s re-created, %s added, %s removed.\n",
		count(len(pl.Create), "network"), count(len(pl.Recreate), "network"),
		count(len(pl.Connect), "membership"), count(len(pl.Disconnect), "membership"))
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
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
