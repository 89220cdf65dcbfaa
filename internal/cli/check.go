package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zonewarden/zonewarden/internal/draft"
	"github.com/zonewarden/zonewarden/internal/kube"
	"github.com/zonewarden/zonewarden/internal/kube/oracle"
	"github.com/zonewarden/zonewarden/internal/learn"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

var checkFormats = []string{"text", "github"}

func (a *app) checkCommand() *cobra.Command {
	var (
		format string
		k8s    bool
	)
	cmd := &cobra.Command{
		Use:   "check POLICY [--k8s]",
		Short: "Validate a policy file and run its tests, offline",
		Long: `check reads a policy file strictly — version: 1 required, unknown fields,
duplicate keys, unknown zones or workloads, overlapping or empty port ranges,
invalid CIDRs, workloads in no zone and flows that cannot happen are errors —
and reports every problem as file:line:col: message, in file order.

A valid policy's tests are then run against the policy itself (no Docker
needed): each failing test is printed with the rule or the missing flow
that decides it.

With --k8s the tests are also run on the policy exported to Kubernetes
('zonewarden export k8s'): netpol-analyzer, an implementation of
NetworkPolicy independent of zonewarden, computes what the exported
NetworkPolicies let through, so that the policy's promises hold on both
engines. A test Kubernetes cannot answer (ICMP, an IPv6 address) is listed
as not checked.

The format is described in docs/policy.md; 'zonewarden init' drafts a policy
from a host.

Exit status: 0 when the policy is valid and every test passes, 1 when a test
fails, 2 when the policy is invalid or cannot be read.`,
		Example: `  zonewarden check policy.yaml
  zonewarden check policy.yaml --format github     # annotations in a GitHub Actions run
  zonewarden check policy.yaml --k8s               # the tests on the Kubernetes export too
  zonewarden init -o policy.yaml && zonewarden check policy.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(checkFormats, format) {
				return usageErr(cmd, "unknown --format %q: use one of %s", format, strings.Join(checkFormats, ", "))
			}
			if len(args) != 1 {
				return usageErr(cmd, "name one policy file, like: zonewarden check policy.yaml")
			}
			path := args[0]
			data, err := os.ReadFile(path)
			if err != nil {
				return &exitErr{Code: exitError, Err: readPolicyErr(path, err)}
			}
			out := bufio.NewWriter(a.stdout)
			defer out.Flush()
			p, err := policy.Parse(path, data, policy.Options{})
			var invalid *policy.Error
			switch {
			case errors.As(err, &invalid):
				if format == "github" {
					invalid.WriteGitHub(out)
				} else {
					out.Flush()
					invalid.WriteText(a.stderr)
				}
				return &exitErr{Code: exitError}
			case err != nil:
				return &exitErr{Code: exitError, Err: err}
			}
			results := model.Compile(p).RunTests()
			failed := model.Failed(results)
			for _, r := range failed {
				prob := policy.Problem{File: path, Line: r.Test.Pos.Line, Col: r.Test.Pos.Col, Msg: describeFailure(r)}
				if format == "github" {
					fmt.Fprintln(out, prob.GitHub("error"))
				} else {
					fmt.Fprintln(out, prob.String())
				}
			}
			summary := fmt.Sprintf("%s: valid: %s, %s, %s; ", path,
				plural(len(p.Zones), "zone"), plural(len(p.Workloads), "workload"), plural(len(p.Flows), "flow"))
			switch {
			case len(results) == 0:
				summary += "no tests (add tests: to assert what must and must not connect)"
			case len(failed) == 0:
				summary += fmt.Sprintf("%s pass", plural(len(results), "test"))
			default:
				summary += fmt.Sprintf("%d of %s fail", len(failed), plural(len(results), "test"))
			}
			fmt.Fprintln(out, summary)
			if k8s {
				k8sFailed, err := a.checkK8s(out, p, format)
				if err != nil {
					return &exitErr{Code: exitError, Err: err}
				}
				failed = append(failed, k8sFailed...)
			}
			if len(failed) > 0 {
				return &exitErr{Code: exitFindings}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "how to print problems and failing tests: text (file:line:col: message) or github (workflow annotations)")
	cmd.Flags().BoolVar(&k8s, "k8s", false, "also run the tests on the policy exported to Kubernetes, through netpol-analyzer")
	return cmd
}

// describeFailure says what a failing test expected, what the policy
// decides and why.
func describeFailure(r model.TestResult) string {
	t := r.Test
	on := " on any port"
	if t.Port.Proto != "" {
		on = " on " + t.Port.String()
	}
	got := policy.Deny
	if r.Decision.Allow {
		got = policy.Allow
	}
	return fmt.Sprintf("test failed: %s -> %s%s: expected %s, the policy says %s: %s", t.From, t.To, on, t.Expect, got, r.Decision.Reason)
}

func readPolicyErr(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such file (write a starter policy with 'zonewarden init -o %s')", path, path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: permission denied", path)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: cannot read the policy: %v", path, pe.Err)
	}
	return fmt.Errorf("cannot read the policy: %w", err)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func (a *app) initCommand() *cobra.Command {
	var (
		output    string
		force     bool
		fromFlows string
		label     string
	)
	cmd := &cobra.Command{
		Use:   "init [-o FILE] [--from-flows FILE]",
		Short: "Draft a policy from the host that keeps what works today",
		Long: `init reads the host (live Docker by default, -f compose files, or --snapshot)
and writes a starter policy:

  - one zone per user network, with its internal flag; default: deny for
    the zones that hold a data service (database, cache, search engine),
    default: allow (Docker's behaviour) for the others; containers on
    Docker's default bridge get a new zone, legacy-bridge;
  - one workload per compose service (matched by project and service) or
    per container (matched by name), in the zones of its networks, with the
    ports it publishes today;
  - a flow between every two workloads that share a network, on the ports
    the destination exposes or publishes (pairs with no known port are
    listed in a comment);
  - tests that untrusted workloads (dev, staging, third-party) cannot reach
    the data services;
  - "decide:" comments wherever a person must choose.

With --from-flows FILE (written by 'zonewarden learn' or 'agent --learn'),
the draft is the least-privilege policy that keeps exactly the recorded
flows: every zone default: deny, a flow per pair of workloads that
connected, on the ports they used (with the count in a comment), and tests
that the data services stay denied to every workload that never connected
to them. Flows beyond the host, and of addresses no container had, are
listed in comments.

The draft passes 'zonewarden check'. Review it, then 'zonewarden plan' shows
what applying it would change.`,
		Example: `  zonewarden init -o policy.yaml
  zonewarden init -f compose.yaml -o policy.yaml
  zonewarden init --snapshot host.json > policy.yaml
  zonewarden init -o policy.yaml --force          # overwrite an existing file
  zonewarden init --label com.docker.compose.project=shop -o shop.yaml
  zonewarden learn --duration 1h && zonewarden init --from-flows flows.jsonl -o policy.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			snap, err := a.src.load(cmd.Context())
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			if label != "" {
				k, v, ok := strings.Cut(label, "=")
				if !ok {
					return usageErr(cmd, "--label: want KEY=VALUE, got %q", label)
				}
				snap = snap.OnlyLabelled(k, v)
				if len(snap.Containers) == 0 {
					return &exitErr{Code: exitError, Err: fmt.Errorf("no container has the label %s: is it right? (docker ps --filter label=%s)", label, label)}
				}
			}
			p := draft.FromHost(snap)
			if fromFlows != "" {
				recs, err := readFlows(fromFlows)
				if err != nil {
					return &exitErr{Code: exitError, Err: err}
				}
				p = draft.FromFlows(snap, recs, fromFlows)
			}
			data := policy.Format(p)
			name := output
			if name == "" || name == "-" {
				name = "policy.yaml"
			}
			// The draft must pass check; if it does not, that is a bug
			// here, and writing it would only hand the user the problem.
			if _, err := policy.Parse(name, data, policy.Options{}); err != nil {
				return &exitErr{Code: exitError, Err: fmt.Errorf("the drafted policy does not pass check (a zonewarden bug, please report it): %v", err)}
			}
			if output == "" || output == "-" {
				_, err := a.stdout.Write(data)
				if err != nil {
					return &exitErr{Code: exitError, Err: err}
				}
				return nil
			}
			if err := writeNew(output, data, force); err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			decide := strings.Count(string(data), "decide: ")
			fmt.Fprintf(a.stdout, "wrote %s: %s, %s, %s, %s from %s\n", output,
				plural(len(p.Zones), "zone"), plural(len(p.Workloads), "workload"), plural(len(p.Flows), "flow"), plural(len(p.Tests), "test"), describe(snap))
			fmt.Fprintf(a.stdout, "next: review the %s, then run: zonewarden check %s && zonewarden plan %s\n", plural(decide, `"decide:" comment`), output, output)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "", "write the policy to `FILE` instead of standard output")
	f.BoolVar(&force, "force", false, "overwrite the -o file if it exists")
	f.StringVar(&label, "label", "", "draft only for the containers with this `KEY=VALUE` label (com.docker.compose.project=shop) and their networks")
	f.StringVar(&fromFlows, "from-flows", "", "draft the policy that keeps exactly the flows recorded in `FILE` (zonewarden learn)")
	return cmd
}

// readFlows reads a flows file that learn wrote.
func readFlows(path string) ([]learn.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the recorded flows: %w (record them with 'zonewarden learn -o %s')", err, path)
	}
	defer f.Close()
	recs, err := learn.Read(path, f)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s holds no flows: run 'zonewarden learn -o %s' while the applications work", path, path)
	}
	return recs, nil
}

// writeNew writes data to path, refusing to replace an existing file
// unless force is set.
func writeNew(path string, data []byte, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: use --force to overwrite it, or -o another file", path)
	}
	if err != nil {
		return fmt.Errorf("cannot write the policy: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("cannot write the policy: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write the policy: %w", err)
	}
	return nil
}

// checkK8s runs the policy's tests on its Kubernetes export and prints the
// failures and a summary; it returns the failed tests.
func (a *app) checkK8s(out *bufio.Writer, p *policy.Policy, format string) ([]model.TestResult, error) {
	results, err := oracle.Check(p, kube.Options{})
	if err != nil {
		return nil, fmt.Errorf("check --k8s: %w", err)
	}
	var failed []model.TestResult
	var unchecked []string
	for _, r := range results {
		t := r.Test
		switch {
		case !r.Checked:
			unchecked = append(unchecked, fmt.Sprintf("  %s: %s -> %s: %s", p.Position(t.Pos), t.From, t.To, r.Why))
		case !r.Pass:
			failed = append(failed, model.TestResult{Test: t})
			got := policy.Deny
			if r.Allow {
				got = policy.Allow
			}
			on := " on any port"
			if t.Port.Proto != "" {
				on = " on " + t.Port.String()
			}
			prob := policy.Problem{File: p.File, Line: t.Pos.Line, Col: t.Pos.Col,
				Msg: fmt.Sprintf("test fails on Kubernetes: %s -> %s%s: expected %s, the exported NetworkPolicies %s (%s)", t.From, t.To, on, t.Expect, got, r.Why)}
			if format == "github" {
				fmt.Fprintln(out, prob.GitHub("error"))
			} else {
				fmt.Fprintln(out, prob.String())
			}
		}
	}
	checked := len(results) - len(unchecked)
	summary := fmt.Sprintf("%s: on Kubernetes (the export, read by netpol-analyzer): ", p.File)
	switch {
	case len(results) == 0:
		summary += "no tests"
	case len(failed) == 0:
		summary += fmt.Sprintf("%s pass", plural(checked, "test"))
	default:
		summary += fmt.Sprintf("%d of %s fail", len(failed), plural(checked, "test"))
	}
	if len(unchecked) > 0 {
		summary += fmt.Sprintf("; %d not checked:", len(unchecked))
	}
	fmt.Fprintln(out, summary)
	for _, u := range unchecked {
		fmt.Fprintln(out, u)
	}
	return failed, nil
}
