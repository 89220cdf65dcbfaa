// Package audit checks a host snapshot against network-security practice
// and returns findings.
//
// It is pure: it reads an inventory.Snapshot and never talks to Docker or
// the kernel. Each rule has a stable id, a severity, a CIS Docker Benchmark
// reference where one applies, and is documented in docs/rules.md. Rules
// run once over indexed data: the cost of an audit grows with containers
// plus endpoints, never with pairs of containers.
package audit

import (
	"fmt"
	"github.com/zonewarden/zonewarden/internal/reach"
	"slices"
	"strings"
)

// Severity orders findings from Info (lowest) to Critical.
type Severity int

// Severities, lowest first. The zero value is Info.
const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < Info || s > Critical {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity reads "critical", "high", "medium", "low" or "info".
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q: use one of critical, high, medium, low, info", s)
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Severities lists every severity, highest first.
func Severities() []Severity { return []Severity{Critical, High, Medium, Low, Info} }

// SubjectKind is what a finding is about.
type SubjectKind string

// Subject kinds.
const (
	KindContainer SubjectKind = "container"
	KindNetwork   SubjectKind = "network"
	KindHost      SubjectKind = "host"
)

// Subject names the container, network or host a finding is about.
type Subject struct {
	Kind SubjectKind `json:"kind"`
	Name string      `json:"name"` // without a leading slash
}

func (s Subject) String() string { return string(s.Kind) + " " + s.Name }

// Finding is one audit result.
type Finding struct {
	Rule        string   `json:"rule"`
	Severity    Severity `json:"severity"`
	Title       string   `json:"title"`
	Subject     Subject  `json:"subject"`
	Evidence    []string `json:"evidence"`
	Remediation string   `json:"remediation"`
	References  []string `json:"references,omitempty"`
}

// Summary counts the findings of one audit.
type Summary struct {
	Containers int            `json:"containers"`
	Networks   int            `json:"networks"`
	Findings   int            `json:"findings"`
	BySeverity map[string]int `json:"by_severity"`
	ByRule     map[string]int `json:"by_rule"`
	// Highest is the highest severity found, or "" when nothing was found.
	Highest string `json:"highest,omitempty"`
}

// Report is the result of one audit: the findings, most severe first.
type Report struct {
	Findings []Finding `json:"findings"`
	Summary  Summary   `json:"summary"`
	// BlastRadii sizes what an attacker who controls each container
	// reaches, the largest first. The text report shows them; JSON keeps
	// to findings and summary ('zonewarden blast-radius --all --format
	// json' has them).
	BlastRadii []reach.Summary `json:"-"`
}

// AtLeast reports whether any finding has severity s or higher.
func (r *Report) AtLeast(s Severity) bool {
	for _, f := range r.Findings {
		if f.Severity >= s {
			return true
		}
	}
	return false
}

func summarize(findings []Finding, containers, networks int) Summary {
	sum := Summary{
		Containers: containers,
		Networks:   networks,
		Findings:   len(findings),
		BySeverity: make(map[string]int, len(severityNames)),
		ByRule:     make(map[string]int),
	}
	for _, s := range severityNames {
		sum.BySeverity[s] = 0
	}
	highest := Severity(-1)
	for _, f := range findings {
		sum.BySeverity[f.Severity.String()]++
		sum.ByRule[f.Rule]++
		highest = max(highest, f.Severity)
	}
	if highest >= Info {
		sum.Highest = highest.String()
	}
	return sum
}

// sortFindings orders by severity (highest first), then rule, then subject.
func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if a.Severity != b.Severity {
			return int(b.Severity) - int(a.Severity)
		}
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Subject.Kind), string(b.Subject.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Subject.Name, b.Subject.Name)
	})
}
