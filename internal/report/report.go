// Package report renders audit results for people and tools: text for a
// terminal, JSON for scripts, SARIF 2.1.0 for GitHub code scanning,
// Markdown for pull-request comments and job summaries, and the rule
// catalog as docs/rules.md.
//
// It owns the output formats only. It must not decide what a finding is or
// how severe it is (package audit does), read the host, or decide on its
// own whether to colour output (the caller says so in AuditOptions). Every
// renderer builds the whole document in memory and writes it with one
// call, so a rendering problem never leaves half a report in a file.
package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/zonewarden/zonewarden/internal/audit"
)

// AuditOptions tune the audit renderers. The zero value renders plain text
// without colour and a SARIF log whose tool is "zonewarden".
type AuditOptions struct {
	// Color turns on ANSI colours in the text format. The caller decides
	// (terminal, --color, NO_COLOR); the other formats ignore it.
	Color bool
	// Tool describes this program in SARIF (tool.driver) and names the
	// Markdown heading.
	Tool ToolInfo
	// SourceURI is the compose or snapshot file the host was read from:
	// a path or a URI; "" for a live host. SARIF results point at it (see
	// AuditSARIF). GitHub resolves a relative path against the repository
	// root, so give it as seen from there.
	SourceURI string
	// Source names the host for people: "docker unix:///var/run/docker.sock",
	// "compose compose.yaml". Empty leaves it out.
	Source string
}

// ToolInfo identifies the program that produced a report.
type ToolInfo struct {
	Name           string // "zonewarden" when empty
	Version        string
	InformationURI string
}

func (t ToolInfo) name() string {
	if t.Name == "" {
		return "zonewarden"
	}
	return t.Name
}

// countBySeverity counts the findings of each severity.
func countBySeverity(fs []audit.Finding) map[audit.Severity]int {
	n := make(map[audit.Severity]int, len(audit.Severities()))
	for _, f := range fs {
		n[f.Severity]++
	}
	return n
}

// bySeverity returns the findings of severity s, in report order.
func bySeverity(fs []audit.Finding, s audit.Severity) []audit.Finding {
	var out []audit.Finding
	for _, f := range fs {
		if f.Severity == s {
			out = append(out, f)
		}
	}
	return out
}

// scope says what the audit looked at: "6 containers and 5 networks", or
// "" when the summary does not say (a report built by hand).
func scope(s audit.Summary) string {
	if s.Containers == 0 && s.Networks == 0 {
		return ""
	}
	return plural(s.Containers, "container") + " and " + plural(s.Networks, "network")
}

// plural renders "1 finding" or "3 findings".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// clean makes a string from the host safe to print on one line: control
// characters (escape sequences, newlines) and bidirectional overrides are
// shown as Go escapes, so a crafted container name or label cannot rewrite
// the operator's terminal or the layout of a Markdown table.
func clean(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// write writes the rendered document in one call.
func write(w io.Writer, doc string) error {
	if _, err := io.WriteString(w, doc); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}
