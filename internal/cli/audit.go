package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/report"
)

var auditFormats = []string{"text", "json", "sarif", "markdown"}

func (a *app) auditCommand() *cobra.Command {
	var (
		format  string
		failOn  string
		color   string
		output  string
		skip    []string
		polPath string
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check the host against network-security practice",
		Long: `audit reads the host (live Docker by default, -f compose files, or --snapshot)
and reports every finding of the rule catalog ('zonewarden rules' lists it):
default bridge use, ports published on all interfaces or to other networks,
data services outside internal networks, gateways between zones, privileged
and host-network containers, capabilities, writable root filesystems, and more.

Exit status: 0 when no finding reaches --fail-on, 1 when one does,
2 when the audit could not run.`,
		Example: `  zonewarden audit
  zonewarden audit -f compose.yaml --fail-on high
  zonewarden audit --policy zones.yaml
  zonewarden audit --format sarif -o zonewarden.sarif
  zonewarden audit --snapshot host.json --format markdown >> "$GITHUB_STEP_SUMMARY"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(auditFormats, format) {
				return usageErr(cmd, "unknown --format %q: use one of %s", format, strings.Join(auditFormats, ", "))
			}
			var threshold audit.Severity
			if failOn != "" && failOn != "none" {
				s, err := audit.ParseSeverity(failOn)
				if err != nil {
					return usageErr(cmd, "--fail-on: %v", err)
				}
				threshold = s
			}
			for _, id := range skip {
				if audit.Lookup(id) == nil {
					return usageErr(cmd, "--skip: no rule %q ('zonewarden rules' lists them)", id)
				}
			}
			snap, err := a.src.load(cmd.Context())
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			opts := audit.Options{Skip: skip}
			if polPath != "" {
				p, err := a.readPolicy(polPath)
				if err != nil {
					return err
				}
				b, _ := model.Bind(p, snap)
				opts.Fenced = map[string][]string{}
				for _, f := range b.Fenced() {
					opts.Fenced[f.Container] = f.Zones
				}
			}
			rep := audit.Run(snap, opts)

			w, closeOut, err := openOutput(a.stdout, output)
			if err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			ropts := report.AuditOptions{
				Color:     useColor(color, w),
				Tool:      report.ToolInfo{Name: "zonewarden", Version: version(), InformationURI: "https://github.com/zonewarden/zonewarden"},
				Source:    describe(snap),
				SourceURI: sourceURI(snap),
			}
			if err := renderAudit(w, format, rep, ropts); err != nil {
				closeOut()
				return &exitErr{Code: exitError, Err: err}
			}
			if err := closeOut(); err != nil {
				return &exitErr{Code: exitError, Err: err}
			}
			if failOn != "" && failOn != "none" && rep.AtLeast(threshold) {
				return &exitErr{Code: exitFindings}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "text", "output format: "+strings.Join(auditFormats, ", "))
	f.StringVar(&failOn, "fail-on", "", "exit 1 when a finding at or above `SEVERITY` exists (critical, high, medium, low, info)")
	f.StringVar(&color, "color", "auto", "colour the text output: auto, always, never (NO_COLOR is honoured)")
	f.StringVarP(&output, "output", "o", "", "write the report to `FILE` instead of standard output")
	f.StringSliceVar(&skip, "skip", nil, "rule `IDs` not to run (comma-separated)")
	f.StringVar(&polPath, "policy", "", "also check the host against the policy `FILE`: containers on a default: deny zone that no workload selects (fenced-container)")
	return cmd
}

func renderAudit(w io.Writer, format string, rep *audit.Report, opts report.AuditOptions) error {
	switch format {
	case "json":
		return report.AuditJSON(w, rep)
	case "sarif":
		return report.AuditSARIF(w, rep, opts)
	case "markdown":
		return report.AuditMarkdown(w, rep, opts)
	default:
		return report.AuditText(w, rep, opts)
	}
}

// sourceURI is the file a finding points at in SARIF: the compose file or
// snapshot the host came from, or "" for a live host.
func sourceURI(snap *inventory.Snapshot) string {
	switch snap.Source.Kind {
	case "compose", "snapshot":
		first, _, _ := strings.Cut(snap.Source.Detail, ",")
		return first
	}
	return ""
}

// openOutput returns the writer for -o FILE (or def) and a function that
// closes it.
func openOutput(def io.Writer, path string) (io.Writer, func() error, error) {
	if path == "" || path == "-" {
		return def, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot write the report: %w", err)
	}
	return f, f.Close, nil
}

// useColor decides whether to colour text output written to w.
func useColor(mode string, w io.Writer) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
