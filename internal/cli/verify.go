package cli

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/reach"
	"github.com/zonewarden/zonewarden/internal/report"
	"github.com/zonewarden/zonewarden/internal/verifier"
	"github.com/zonewarden/zonewarden/internal/verify"
)

func (a *app) verifyCommand() *cobra.Command {
	var (
		format, output, label string
		opts                  verify.Options
	)
	cmd := &cobra.Command{
		Use:   "verify [POLICY]",
		Short: "Probe with real packets that every expected allow and deny holds",
		Long: `verify proves the zones with real packets. From inside each running
container's network namespace (no tool is needed in the image: zonewarden
enters the namespace itself) it opens connections to its peers' addresses on
the ports that matter — the destination's exposed and published ports, the
policy's flow ports, and 80/tcp — and compares what happened with what is
expected: the policy's decisions when POLICY is given, else the engine's
model of the host (which follows zonewarden's firewall where apply
installed it).

Blocked is told from closed: where nothing listens on a probed port,
verify listens there itself for the duration of the probe, so an allow
means a handshake completed and a deny means the packet was dropped, not
that a service was down. Where it cannot listen (a service holds the port
on another address, such as 127.0.0.1), a refusal from the destination
shows as closed: the packet got there, so the path is open. UDP counts as
open when the listener's reply comes back, closed when the destination
answers port unreachable, blocked when nothing comes back.

ICMP echo (ping, IPv4 and IPv6) is probed where the policy declares an
icmp flow to the destination or an icmp test, and between every pair with
--icmp: open when the echo reply comes back. A container that is not
running is reported as stopped, not as blocked: there is nothing to probe.

With --by-name verify also probes each destination by its container name,
resolved through Docker's embedded DNS (127.0.0.11) inside the source, as
a program in the container would: an allowed peer on a shared network must
be found by name and reached.

Exit status: 0 when everything matches, 1 on any mismatch, 2 when verify
could not run.`,
		Example: `  zonewarden verify
  zonewarden verify zones.yaml --format junit -o verify.xml
  zonewarden verify --label com.docker.compose.project=shop --sample 500
  zonewarden verify zones.yaml --by-name --icmp`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains([]string{"text", "json", "junit"}, format) {
				return usageErr(cmd, "unknown --format %q: use text, json or junit", format)
			}
			if len(a.src.composeFiles) > 0 || a.src.snapshotFile != "" {
				return usageErr(cmd, "verify probes a live Docker host: -f and --snapshot cannot be probed")
			}
			if label != "" {
				k, v, ok := strings.Cut(label, "=")
				if !ok {
					return usageErr(cmd, "--label: want KEY=VALUE, got %q", label)
				}
				opts.Label = [2]string{k, v}
			}
			var p *policy.Policy
			if len(args) == 1 {
				var err error
				if p, err = a.readPolicy(args[0]); err != nil {
					return err
				}
			}
			snap, err := a.src.load(cmd.Context())
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			var an *reach.Analysis
			var b *model.Binding
			if p != nil {
				b, _ = model.Bind(p, snap)
				an = reach.Analyze(snap, reach.Options{Narrow: verify.Narrower(b)})
			} else {
				an = a.analyze(cmd.Context(), snap, false)
			}
			results, err := verifier.Run(cmd.Context(), snap, an, b, opts)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			w, closeOut, err := openOutput(a.stdout, output)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			strays := verify.Strays(b)
			err = report.Verify(w, format, results, strays)
			if cerr := closeOut(); err == nil {
				err = cerr
			}
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			if len(strays) > 0 {
				return &exitErr{Code: exitFindings}
			}
			for _, r := range results {
				if !r.OK() {
					return &exitErr{Code: exitFindings}
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "text", "output format: text, json or junit (JUnit XML for CI)")
	f.StringVarP(&output, "output", "o", "", "write the results to `FILE` instead of standard output")
	f.StringVar(&label, "label", "", "probe only containers with this `KEY=VALUE` label")
	f.IntVar(&opts.Sample, "sample", 0, "probe at most `N` source-destination pairs, chosen at random (0: all)")
	f.DurationVar(&opts.Timeout, "timeout", probe.DefaultTimeout, "how long a probe waits before it counts as dropped")
	f.BoolVar(&opts.ByName, "by-name", false, "also probe each destination by its container name, resolved through Docker's DNS inside the source")
	f.BoolVar(&opts.ICMP, "icmp", false, "probe ICMP echo between every pair (by default only where the policy declares icmp)")
	return cmd
}
