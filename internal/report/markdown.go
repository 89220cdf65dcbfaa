package report

import (
	"fmt"
	"html"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/zonewarden/zonewarden/internal/audit"
)

// AuditMarkdown writes the report as GitHub-flavoured Markdown for a
// pull-request comment or a job summary ($GITHUB_STEP_SUMMARY): a table of
// counts per severity, a table with one row per finding, then one
// collapsed section per finding with its evidence, fix and references.
// Text from the host is escaped, so a name cannot break a table or inject
// HTML.
func AuditMarkdown(w io.Writer, r *audit.Report, o AuditOptions) error {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s audit\n\n", mdEscape(o.Tool.name()))
	where := scope(r.Summary)
	switch {
	case o.Source != "" && where != "":
		fmt.Fprintf(&b, "Host: %s (%s)\n\n", mdCode(o.Source), where)
	case o.Source != "":
		fmt.Fprintf(&b, "Host: %s\n\n", mdCode(o.Source))
	case where != "":
		fmt.Fprintf(&b, "Audited %s.\n\n", where)
	}
	if len(r.Findings) == 0 {
		b.WriteString("No findings.\n")
		return write(w, b.String())
	}

	n := countBySeverity(r.Findings)
	b.WriteString("| Severity | Findings |\n| :-- | --: |\n")
	for _, sev := range audit.Severities() {
		fmt.Fprintf(&b, "| %s | %d |\n", severityTitle(sev), n[sev])
	}
	fmt.Fprintf(&b, "| **Total** | **%d** |\n\n", len(r.Findings))

	b.WriteString("### Findings\n\n")
	b.WriteString("| Severity | Rule | Subject | Finding |\n| :-- | :-- | :-- | :-- |\n")
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n",
			severityTitle(f.Severity), mdCell(mdCode(f.Rule)), mdCell(mdSubject(f.Subject)), mdCell(mdEscape(f.Title)))
	}

	b.WriteString("\n### Details\n")
	for _, f := range r.Findings {
		b.WriteByte('\n')
		writeMarkdownFinding(&b, f)
	}
	return write(w, b.String())
}

// writeMarkdownFinding writes one collapsed section. The summary line is
// HTML (GitHub does not render Markdown there); the body is Markdown, which
// needs the blank line after </summary>.
func writeMarkdownFinding(b *strings.Builder, f audit.Finding) {
	fmt.Fprintf(b, "<details>\n<summary><b>%s</b> · <code>%s</code> · %s %s: %s</summary>\n\n",
		severityTitle(f.Severity), htmlText(f.Rule), htmlText(string(f.Subject.Kind)),
		"<code>"+htmlText(f.Subject.Name)+"</code>", htmlText(f.Title))
	if len(f.Evidence) > 0 {
		b.WriteString("**Evidence:**\n\n")
		for _, e := range f.Evidence {
			fmt.Fprintf(b, "- %s\n", mdEscape(e))
		}
		b.WriteByte('\n')
	}
	if f.Remediation != "" {
		fmt.Fprintf(b, "**Fix:** %s\n\n", mdEscape(f.Remediation))
	}
	if len(f.References) > 0 {
		b.WriteString("**References:**\n\n")
		for _, ref := range f.References {
			fmt.Fprintf(b, "- %s\n", mdReference(ref))
		}
		b.WriteByte('\n')
	}
	b.WriteString("</details>\n")
}

// severityTitle is "Critical", "High", ...
func severityTitle(s audit.Severity) string {
	name := s.String()
	return strings.ToUpper(name[:1]) + name[1:]
}

func mdSubject(s audit.Subject) string {
	if s.Kind == "" {
		return mdCode(s.Name)
	}
	return mdEscape(string(s.Kind)) + " " + mdCode(s.Name)
}

// mdEscape makes text from the host or the catalog literal Markdown inline
// text: characters that would start emphasis, code, links or HTML are
// escaped with a backslash, and so is $ (GitHub's math). Underscores inside words are left alone, as
// GitHub never reads them as emphasis (NET_ADMIN, br_netfilter).
func mdEscape(s string) string {
	s = clean(s)
	var b strings.Builder
	prev := rune(-1)
	for i, r := range s {
		switch r {
		case '\\', '`', '*', '[', ']', '<', '>', '~', '&', '|', '$':
			b.WriteByte('\\')
		case '_':
			next, _ := utf8.DecodeRuneInString(s[i+1:])
			if !(isWordRune(prev) && isWordRune(next)) {
				b.WriteByte('\\')
			}
		case '#', '+', '-', '=':
			if i == 0 { // would start a heading or list
				b.WriteByte('\\')
			}
		}
		b.WriteRune(r)
		prev = r
	}
	return b.String()
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// mdCode renders s as a code span, with a fence longer than any run of
// backticks in s.
func mdCode(s string) string {
	s = clean(s)
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// mdCell makes inline Markdown safe in a table cell: every pipe is
// escaped, also inside code spans (GitHub splits cells before it reads
// code spans), and mdEscape's escaped pipes are not escaped twice.
func mdCell(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '|':
			b.WriteString(`\|`)
			i++
		case s[i] == '|':
			b.WriteString(`\|`)
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// mdReference renders a reference: a URL as a link, anything else as text.
func mdReference(ref string) string {
	if (strings.HasPrefix(ref, "https://") || strings.HasPrefix(ref, "http://")) &&
		!strings.ContainsAny(ref, " <>") && clean(ref) == ref {
		return "<" + ref + ">"
	}
	return mdEscape(ref)
}

// htmlText escapes text for the HTML of a <summary> line.
func htmlText(s string) string { return html.EscapeString(clean(s)) }
