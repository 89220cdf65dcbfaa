package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/agent"
	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/state"
)

func (a *app) resetCommand() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove zonewarden's firewall table, and nothing else",
		Long: `reset deletes the nftables tables inet zonewarden (the policy) and bridge
zonewarden (the endpoint binding). Docker's
own behaviour is back at once; other tables (Docker's, firewalld's, yours)
are not touched, and networks and memberships stay as apply left them.
While a 'zonewarden agent' keeps the table, reset refuses: stop the agent
first, or it would restore the table within a second.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if s, ok := runningAgent(ctx, socket); ok && s.Table == "inet "+enforce.Table {
				return &exitErr{Code: exitError, Err: fmt.Errorf("a zonewarden agent (on %s) keeps table inet %s and would restore it at once: stop the agent first (systemctl stop zonewarden-agent), then run reset; nothing was changed", socket, enforce.Table)}
			}
			was, err := nft.List(ctx, "inet", enforce.Table)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			if ports, err := nft.List(ctx, "bridge", enforce.Table); err == nil && ports != "" {
				if err := nft.Delete(ctx, "bridge", enforce.Table); err != nil {
					return &exitErr{Code: exitError, Err: err}
				}
				fmt.Fprintf(a.stdout, "Removed table bridge %s: addresses are no longer bound to bridge ports.\n", enforce.Table)
			}
			if was == "" {
				fmt.Fprintln(a.stdout, "No zonewarden table is installed: nothing to remove.")
				return nil
			}
			if err := nft.Delete(ctx, "inet", enforce.Table); err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			if err := state.Clear(); err != nil {
				fmt.Fprintf(a.stderr, "zonewarden: warning: %s\n", oneLine(err))
			}
			fmt.Fprintf(a.stdout, "Removed table inet %s: Docker's own behaviour is back.\n", enforce.Table)
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", agent.DefaultSocket, "a running agent's control socket `PATH`: reset refuses while an agent keeps the table")
	return cmd
}

func (a *app) statusCommand() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the installed zonewarden firewall: whether it matches the policy, admitted containers, drops",
		Long: `status lists zonewarden's installed nftables table: the policy it was applied
from, whether it still matches that policy on the host as it is now (a
container started, stopped or moved since apply is drift: run apply again),
the admitted containers and the drop counters. When a 'zonewarden agent'
answers on --socket, its view comes first: last sync, health, memberships
the policy forbids.

Exit status: 0 when the firewall is installed and matches, 1 when it is
missing or drifted, 2 when status could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			table := enforce.Table
			agentTable := a.agentStatus(cmd.Context(), socket)
			if agentTable != "" {
				table = agentTable
			}
			listing, err := nft.List(cmd.Context(), "inet", table)
			switch {
			case err != nil && agentTable != "":
				// In the agent's own image there is no nft: its view is
				// the status.
				fmt.Fprintf(a.stdout, "(The table itself cannot be listed here: %s.)\n", oneLine(err))
				return nil
			case err != nil:
				return &exitErr{Code: exitError, Err: err}
			}
			if listing == "" {
				fmt.Fprintln(a.stdout, "No zonewarden table is installed: Docker's own behaviour applies. Run 'zonewarden apply POLICY'.")
				return &exitErr{Code: exitFindings}
			}
			admitted := map[string]bool{}
			for _, set := range []string{"admitted4", "admitted6"} {
				for _, name := range nft.ElementComments(listing, set) {
					admitted[strings.TrimSuffix(name, " (unmanaged)")] = true
				}
			}
			fmt.Fprintf(a.stdout, "Table inet %s is installed.\n", table)
			drifted := true
			if applied, err := state.Load(); err == nil && applied != nil {
				fmt.Fprintf(a.stdout, "Applied from %s at %s.\n", applied.PolicyPath, applied.Time.Format(time.RFC3339))
				drifted = a.reportDrift(cmd.Context(), applied)
			} else {
				fmt.Fprintln(a.stdout, "No record of the apply that installed it (state in "+state.Dir()+"): cannot tell whether it matches a policy.")
			}
			fmt.Fprintf(a.stdout, "Admitted containers (%d): %s\n", len(admitted), strings.Join(sortedKeys(admitted), ", "))
			fmt.Fprintln(a.stdout, "Drops:")
			var would []string
			for _, c := range nft.Counters(listing) {
				if c.Verdict == "accept" {
					would = append(would, fmt.Sprintf("  %10d packets  %s", c.Packets, strings.TrimPrefix(c.Comment, enforce.WouldDenyComment)))
					continue
				}
				fmt.Fprintf(a.stdout, "  %10d packets  %s\n", c.Packets, c.Comment)
			}
			if len(would) > 0 {
				fmt.Fprintln(a.stdout, "Would deny (monitor mode: let through, logged; 'zonewarden flows' names them while an agent runs):")
				fmt.Fprintln(a.stdout, strings.Join(would, "\n"))
			}
			if drifted {
				return &exitErr{Code: exitFindings}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", agent.DefaultSocket, "a running agent's control socket `PATH`")
	return cmd
}

// reportDrift compares the firewall the applied policy compiles to on the
// host as it is now with the one apply loaded, says what differs, and
// reports whether anything does.
func (a *app) reportDrift(ctx context.Context, applied *state.Applied) bool {
	p, err := policy.Parse(applied.PolicyPath, applied.Policy, policy.Options{})
	if err != nil {
		fmt.Fprintf(a.stdout, "The recorded policy does not read (%s).\n", oneLine(err))
		return true
	}
	snap, err := a.src.load(ctx)
	if err != nil {
		fmt.Fprintf(a.stdout, "Cannot read the host to compare (%s).\n", oneLine(err))
		return true
	}
	b, _ := model.Bind(p, snap)
	for _, f := range b.Fenced() {
		fmt.Fprintf(a.stdout, "Fenced: %s: no workload selects it, so it is denied every flow of the zones.\n", f)
	}
	c := enforce.Compile(b, enforce.Options{}).Diff(applied.Script)
	if c.Empty() {
		fmt.Fprintln(a.stdout, "In sync: the firewall matches the policy on the host as it is now.")
		return false
	}
	added, removed := c.Count()
	fmt.Fprintf(a.stdout, "Drifted: the host changed since apply (%d set elements to add, %d to remove). Run 'zonewarden apply %s'.\n", added, removed, applied.PolicyPath)
	return true
}

func sortedKeys(m map[string]bool) []string {
	return slices.Sorted(maps.Keys(m))
}
