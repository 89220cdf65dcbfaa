package cli

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// idleCommand is the process of the demo's and tests' containers: it waits
// until it is told to stop. Hidden: it is not for people.
func idleCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "idle",
		Short:  "Wait until stopped (the process of demo containers)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
			select {
			case <-sig:
			case <-cmd.Context().Done():
			}
			return nil
		},
	}
}
