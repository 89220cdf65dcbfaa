package cli

import "github.com/spf13/cobra"

// checkCommand is a placeholder until the policy package lands.
func (a *app) checkCommand() *cobra.Command {
	return &cobra.Command{Use: "check", Hidden: true}
}

// initCommand is a placeholder until the policy package lands.
func (a *app) initCommand() *cobra.Command {
	return &cobra.Command{Use: "init", Hidden: true}
}
