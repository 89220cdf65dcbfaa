package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/audit"
)

func (a *app) rulesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rules [RULE]",
		Short: "List the audit rules, or explain one",
		Example: `  zonewarden rules
  zonewarden rules published-bypasses-isolation`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				r := audit.Lookup(args[0])
				if r == nil {
					return usageErr(cmd, "no rule %q", args[0])
				}
				fmt.Fprintf(a.stdout, "%s (%s): %s\n\nWhy: %s\n\nFix: %s\n", r.ID, r.Severity, r.Title, r.Why, r.Fix)
				for _, ref := range r.References {
					fmt.Fprintf(a.stdout, "See: %s\n", ref)
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "RULE\tSEVERITY\tTITLE")
			for _, r := range audit.Rules() {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", r.ID, r.Severity, r.Title)
			}
			return tw.Flush()
		},
	}
}
