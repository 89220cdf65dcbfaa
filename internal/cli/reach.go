package cli

import "github.com/spf13/cobra"

func (a *app) reachCommand() *cobra.Command { return &cobra.Command{Use: "reach", Hidden: true} }

func (a *app) blastRadiusCommand() *cobra.Command {
	return &cobra.Command{Use: "blast-radius", Hidden: true}
}
