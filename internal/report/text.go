package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/zonewarden/zonewarden/internal/audit"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// ANSI SGR codes of each severity's tag in coloured text.
var severityColor = map[audit.Severity]string{
	audit.Critical: "1;97;41", // bold white on red
	audit.High:     "1;31",    // bold red
	audit.Medium:   "33",      // yellow
	audit.Low:      "36",      // cyan
	audit.Info:     "34",      // blue
}

// painter adds ANSI colours when on, and nothing when off.
type painter bool

func (p painter) paint(code, s string) string {
	if !p || code == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p painter) severity(s audit.Severity, text string) string {
	return p.paint(severityColor[s], text)
}

// textLabelWidth aligns the values of a finding's lines; "container:" is
// the longest label.
const textLabelWidth = len("container: ")

// AuditText writes the report for a person at a terminal: the findings
// grouped by severity, most severe first, each with its evidence, the fix
// and references, then a line counting the findings per severity.
// o.Color colours the severity tags; without it the text reads the same.
//
//	[CRITICAL] Docker socket mounted into the container
//	  container: portainer
//	  rule:      docker-socket-mounted
//	  evidence:  bind mount /var/run/docker.sock -> /var/run/docker.sock, read-write
//	  fix:       Remove the -v /var/run/docker.sock:/var/run/docker.sock mount from portainer; ...
//	  see:       CIS Docker Benchmark v1.6.0 5.31: ...
func AuditText(w io.Writer, r *audit.Report, o AuditOptions) error {
	var b strings.Builder
	p := painter(o.Color)
	if o.Source != "" {
		fmt.Fprintf(&b, "Audit of %s\n\n", clean(o.Source))
	}
	where := scope(r.Summary)
	if len(r.Findings) == 0 {
		if where != "" {
			where = " on " + where
		}
		writeTextBlastRadii(&b, p, r.BlastRadii)
		fmt.Fprintf(&b, "No findings%s.\n", where)
		return write(w, b.String())
	}
	for _, sev := range audit.Severities() {
		group := bySeverity(r.Findings, sev)
		if len(group) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s\n\n", p.paint("1", fmt.Sprintf("%d %s %s", len(group), sev, pluralNoun(len(group), "finding"))))
		for _, f := range group {
			writeTextFinding(&b, p, f)
			b.WriteByte('\n')
		}
	}
	writeTextBlastRadii(&b, p, r.BlastRadii)
	writeTextSummary(&b, p, r.Findings, where)
	return write(w, b.String())
}

// textRadiiShown is how many blast radii the text report lists; the rest
// are counted.
const textRadiiShown = 25

// writeTextBlastRadii lists the size of each container's blast radius,
// the largest first:
//
//	devbox      9 containers, 2 data services, up to 3 hops (4 directly); also the host, the internet
func writeTextBlastRadii(b *strings.Builder, p painter, radii []reach.Summary) {
	if len(radii) == 0 {
		return
	}
	fmt.Fprintf(b, "%s\n\n", p.paint("1", "Blast radius: what an attacker who controls each container reaches"))
	width := 0
	for _, s := range radii[:min(len(radii), textRadiiShown)] {
		width = max(width, len(s.Source))
	}
	for _, s := range radii[:min(len(radii), textRadiiShown)] {
		fmt.Fprintf(b, "  %-*s  %s\n", width, clean(s.Source), describeRadius(s))
	}
	if rest := len(radii) - textRadiiShown; rest > 0 {
		fmt.Fprintf(b, "  ... and %s with smaller radii ('zonewarden blast-radius --all' lists them)\n", plural(rest, "more container"))
	}
	b.WriteString("  ('zonewarden blast-radius NAME' shows the paths)\n\n")
}

// describeRadius renders one blast-radius summary for people.
func describeRadius(s reach.Summary) string {
	var parts []string
	if s.Reached == 0 {
		parts = append(parts, "no container")
	} else {
		parts = append(parts, plural(s.Reached, "container"))
		if s.Data > 0 {
			parts = append(parts, plural(s.Data, "data service"))
		}
		if s.MaxHops > 1 {
			parts = append(parts, fmt.Sprintf("up to %d hops (%d directly)", s.MaxHops, s.Direct))
		}
	}
	text := strings.Join(parts, ", ")
	var also []string
	if s.Host {
		also = append(also, "the host")
	}
	if s.Internet {
		also = append(also, "the internet")
	}
	if len(also) > 0 {
		text += "; also " + strings.Join(also, ", ")
	}
	return text
}

func writeTextFinding(b *strings.Builder, p painter, f audit.Finding) {
	tag := "[" + strings.ToUpper(f.Severity.String()) + "]"
	fmt.Fprintf(b, "%s %s\n", p.severity(f.Severity, tag), p.paint("1", clean(f.Title)))
	line := func(label string, values ...string) {
		for i, v := range values {
			if i > 0 {
				label = ""
			}
			fmt.Fprintf(b, "  %-*s%s\n", textLabelWidth, label, clean(v))
		}
	}
	kind := string(f.Subject.Kind)
	if kind == "" {
		kind = "subject"
	}
	line(kind+":", f.Subject.Name)
	line("rule:", f.Rule)
	line("evidence:", f.Evidence...)
	if f.Remediation != "" {
		line("fix:", f.Remediation)
	}
	line("see:", f.References...)
}

// writeTextSummary writes the closing line:
// "12 findings on 6 containers and 5 networks: 2 critical, 3 high, ...".
func writeTextSummary(b *strings.Builder, p painter, fs []audit.Finding, where string) {
	n := countBySeverity(fs)
	counts := make([]string, 0, len(audit.Severities()))
	for _, sev := range audit.Severities() {
		c := fmt.Sprintf("%d %s", n[sev], sev)
		if n[sev] > 0 {
			c = p.severity(sev, c)
		}
		counts = append(counts, c)
	}
	if where != "" {
		where = " on " + where
	}
	fmt.Fprintf(b, "%s%s: %s.\n", plural(len(fs), "finding"), where, strings.Join(counts, ", "))
}

// pluralNoun returns noun, with an s unless n is 1.
func pluralNoun(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}
