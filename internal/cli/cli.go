// Package cli parses zonewarden's command line and wires the packages
// together. It holds no analysis of its own: every command reads a source
// into a snapshot, hands it to the pure packages and renders the result.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	exitOK       = 0
	exitFindings = 1 // the command ran and found what it was asked to fail on
	exitError    = 2 // the command could not run
)

// exitErr carries an exit code out of a command. A nil Err means "exit with
// Code, nothing more to say".
type exitErr struct {
	Code int
	Err  error
}

func (e *exitErr) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *exitErr) Unwrap() error { return e.Err }

// Main runs zonewarden with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := &app{stdout: stdout, stderr: stderr}
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(stderr, "zonewarden: %s\n", oneLine(ee.Err))
		}
		return ee.Code
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "zonewarden: interrupted")
		return exitError
	}
	fmt.Fprintf(stderr, "zonewarden: %s\n", oneLine(err))
	return exitError
}

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

// app holds what the commands share: output streams and the source flags.
type app struct {
	stdout, stderr io.Writer
	src            sourceFlags
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "zonewarden",
		Short: "Security zones for one Docker host: see, audit, enforce and verify who reaches whom",
		Long: `zonewarden turns one Docker host into security zones and proves that they hold.

It reads a host from the Docker Engine API (default), from compose files (-f)
or from a snapshot file (--snapshot): it audits it, shows who reaches whom
and the blast radius of each container, and enforces zones declared in one
policy file (Docker networks plus an nftables table of its own).

See:
  zonewarden demo                        build a small insecure host, audit it, segment it
  zonewarden audit                       the network mistakes of the local Docker host
  zonewarden reach --from web            who web reaches, on which ports, and why
  zonewarden blast-radius --all          every container by what an attacker would reach
  zonewarden graph -o zones.html         the zones drawn, with findings and blast radii

Enforce:
  zonewarden learn -o flows.jsonl        record the connections containers really make
  zonewarden init -o zones.yaml          a starter policy from the host (--from-flows: from learn's)
  zonewarden check zones.yaml            validate it and run its tests, offline
  zonewarden plan zones.yaml             what apply would change
  zonewarden apply zones.yaml            networks, memberships and the firewall
  zonewarden status / zonewarden reset   the installed firewall; remove it
  zonewarden verify zones.yaml           prove it with real packets
  zonewarden agent --policy zones.yaml   keep it true as containers come and go
  zonewarden flows --follow              the flows it denies, named
`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &exitErr{Code: exitError, Err: fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
	})
	a.src.register(root)
	root.AddCommand(
		a.auditCommand(),
		a.snapshotCommand(),
		a.demoCommand(),
		a.rulesCommand(),
		a.reachCommand(),
		a.blastRadiusCommand(),
		a.graphCommand(),
		a.checkCommand(),
		a.exportCommand(),
		a.initCommand(),
		a.planCommand(),
		a.applyCommand(),
		a.statusCommand(),
		a.resetCommand(),
		a.verifyCommand(),
		a.agentCommand(),
		a.flowsCommand(),
		a.learnCommand(),
		idleCommand(),
	)
	return root
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// usageErr reports bad command-line input: exit 2 with a hint.
func usageErr(cmd *cobra.Command, format string, args ...any) error {
	return &exitErr{Code: exitError, Err: fmt.Errorf("%s (see '%s --help')", fmt.Sprintf(format, args...), cmd.CommandPath())}
}
