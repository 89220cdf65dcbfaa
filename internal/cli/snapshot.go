package cli

import (
	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

func (a *app) snapshotCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Write the host (containers, networks, daemon settings) as JSON",
		Long: `snapshot reads the host from the selected source and writes it as versioned
JSON (docs/snapshot.md describes the format). Analyse it elsewhere with
--snapshot FILE, or keep it as a test fixture.`,
		Example: `  zonewarden snapshot -o host.json
  zonewarden snapshot -f compose.yaml > planned.json
  zonewarden audit --snapshot host.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			snap, err := a.src.load(cmd.Context())
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			w, closeOut, err := openOutput(a.stdout, output)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			if err := inventory.Encode(w, snap); err != nil {
				closeOut()
				return &exitErr{Code: exitError, Err: err}
			}
			if err := closeOut(); err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to `FILE` instead of standard output")
	return cmd
}
