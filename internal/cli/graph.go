package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// graphCommand is a placeholder until the graph renderers land.
func (a *app) graphCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "graph",
		Short:  "Draw the zones and who reaches whom (not yet available)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return &exitErr{Code: exitError, Err: errors.New("graph is not available yet")}
		},
	}
}
