package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/zonewarden/zonewarden/internal/audit"
)

// RulesMarkdown writes the documentation of every rule of the audit
// catalog: an index, then per rule its id, usual severity, title, why it
// matters, how to fix it and references. docs/rules.md is its output; a
// test in this package fails when the file is out of date.
func RulesMarkdown(w io.Writer) error {
	return writeRulesMarkdown(w, audit.Rules())
}

func writeRulesMarkdown(w io.Writer, rules []*audit.Rule) error {
	var b strings.Builder
	b.WriteString(`# Audit rules

<!-- Generated from the rule catalog in internal/audit by
     go test ./internal/report -update
     Edit the catalog, not this file. -->

` + "`zonewarden audit`" + ` checks a Docker host against the rules below. Each finding
names its rule, the container, network or host it is about, the evidence
seen and a concrete fix for that host. ` + "`zonewarden rules`" + ` lists the rules,
` + "`zonewarden rules RULE`" + ` explains one, and ` + "`zonewarden audit --skip RULE`" + ` leaves
one out.

## Severities

A rule's severity is the usual one for its finding. A check raises or
lowers it when the evidence calls for it, and each finding carries its own.
In SARIF output (GitHub code scanning), severities map to result levels and
to GitHub's security-severity scores as follows:

| Severity | SARIF level | security-severity |
| :-- | :-- | --: |
`)
	for _, sev := range audit.Severities() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", sev, sarifLevel(sev), securitySeverity(sev))
	}

	b.WriteString("\n## Rules\n\n| Rule | Severity | Title |\n| :-- | :-- | :-- |\n")
	for _, r := range rules {
		fmt.Fprintf(&b, "| [%s](#%s) | %s | %s |\n", mdCell(mdCode(r.ID)), r.ID, r.Severity, mdCell(mdEscape(r.Title)))
	}
	b.WriteByte('\n')
	for _, r := range rules {
		// GitHub derives the anchor #id from the heading.
		fmt.Fprintf(&b, "### %s\n\n%s. Usual severity: **%s**.\n\n", mdCode(r.ID), mdEscape(r.Title), r.Severity)
		writeRuleBody(&b, r)
	}
	return write(w, strings.TrimRight(b.String(), "\n")+"\n")
}

// writeRuleBody writes why a rule matters, how to fix it and its
// references, each followed by a blank line. It is shared by docs/rules.md
// and the SARIF rule help, which GitHub shows next to an alert.
func writeRuleBody(b *strings.Builder, r *audit.Rule) {
	if r.Why != "" {
		fmt.Fprintf(b, "**Why it matters.** %s\n\n", mdEscape(r.Why))
	}
	if r.Fix != "" {
		fmt.Fprintf(b, "**How to fix.** %s\n\n", mdEscape(r.Fix))
	}
	if len(r.References) > 0 {
		b.WriteString("**References:**\n\n")
		for _, ref := range r.References {
			fmt.Fprintf(b, "- %s\n", mdReference(ref))
		}
		b.WriteByte('\n')
	}
}
