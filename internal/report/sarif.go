package report

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/zonewarden/zonewarden/internal/audit"
)

const (
	sarifSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifVersion = "2.1.0"
	// liveHostURI is the artifact that results about a live host point at.
	// A finding is about a running host, not a line of a file, but GitHub
	// code scanning rejects a result without a physical location; this
	// placeholder names what the finding is about and matches no file of
	// the repository, so GitHub shows the alert without a code snippet.
	liveHostURI = "docker-host"
	// fingerprintKey names the partial fingerprint. Bump the version if the
	// hashed fields ever change: GitHub matches alerts across runs by it.
	fingerprintKey = "zonewarden/v1"
)

// sarifLevel maps a severity to a SARIF result level.
func sarifLevel(s audit.Severity) string {
	switch {
	case s >= audit.High:
		return "error"
	case s == audit.Medium:
		return "warning"
	default:
		return "note"
	}
}

// securitySeverity is GitHub's security-severity score of a severity; GitHub
// shows 9.0 and above as critical, 7.0 high, 4.0 medium, 0.1 low.
func securitySeverity(s audit.Severity) string {
	switch s {
	case audit.Critical:
		return "9.5"
	case audit.High:
		return "8.0"
	case audit.Medium:
		return "5.5"
	case audit.Low:
		return "3.0"
	default:
		return "1.0"
	}
}

// The SARIF 2.1.0 objects this package writes: the subset GitHub code
// scanning reads.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri,omitempty"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID                   string             `json:"id"`
		Name                 string             `json:"name"`
		ShortDescription     sarifMessage       `json:"shortDescription"`
		FullDescription      sarifMessage       `json:"fullDescription"`
		Help                 sarifMessage       `json:"help"`
		DefaultConfiguration sarifConfiguration `json:"defaultConfiguration"`
		Properties           sarifRuleProps     `json:"properties"`
	}
	sarifMessage struct {
		Text     string `json:"text"`
		Markdown string `json:"markdown,omitempty"`
	}
	sarifConfiguration struct {
		Level string `json:"level"`
	}
	sarifRuleProps struct {
		Tags             []string `json:"tags"`
		SecuritySeverity string   `json:"security-severity"`
	}
	sarifResult struct {
		RuleID              string            `json:"ruleId"`
		RuleIndex           int               `json:"ruleIndex"`
		Level               string            `json:"level"`
		Message             sarifMessage      `json:"message"`
		Locations           []sarifLocation   `json:"locations"`
		PartialFingerprints map[string]string `json:"partialFingerprints"`
		Properties          sarifResultProps  `json:"properties"`
	}
	sarifResultProps struct {
		// Severity is the finding's own severity, which a check may have
		// raised above or lowered below its rule's.
		Severity audit.Severity `json:"severity"`
	}
	sarifLocation struct {
		PhysicalLocation sarifPhysicalLocation  `json:"physicalLocation"`
		LogicalLocations []sarifLogicalLocation `json:"logicalLocations,omitempty"`
	}
	sarifPhysicalLocation struct {
		ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
		Region           sarifRegion           `json:"region"`
	}
	sarifArtifactLocation struct {
		URI string `json:"uri"`
	}
	sarifRegion struct {
		StartLine int `json:"startLine"`
	}
	sarifLogicalLocation struct {
		Name string `json:"name"`
		Kind string `json:"kind,omitempty"`
	}
)

// AuditSARIF writes the report as a SARIF 2.1.0 log that GitHub code
// scanning accepts: one run whose tool.driver lists every rule of the
// catalog (with its why, fix, references, level and security-severity)
// and one result per finding.
//
// Every result points at o.SourceURI, line 1, or at the placeholder
// artifact "docker-host" when the host was read live: GitHub requires a
// physical location, and a finding about a host has no line to point at.
// The container or network is named in the result's logical location and
// message. Its partial fingerprint hashes rule, subject kind and subject
// name, so GitHub tracks one alert per rule and subject across runs.
//
// GitHub ranks an alert by its rule's security-severity; a finding whose
// check raised its severity above the rule's keeps its own in the result's
// level and properties.severity.
func AuditSARIF(w io.Writer, r *audit.Report, o AuditOptions) error {
	return writeSARIF(w, r, o, audit.Rules())
}

// writeSARIF is AuditSARIF with the rule catalog as a parameter, so that
// tests can pin it.
func writeSARIF(w io.Writer, r *audit.Report, o AuditOptions, catalog []*audit.Rule) error {
	driver := sarifDriver{
		Name:           o.Tool.name(),
		Version:        o.Tool.Version,
		InformationURI: o.Tool.InformationURI,
		Rules:          make([]sarifRule, 0, len(catalog)),
	}
	index := make(map[string]int, len(catalog))
	for _, rule := range catalog {
		index[rule.ID] = len(driver.Rules)
		driver.Rules = append(driver.Rules, sarifRuleOf(rule))
	}
	uri := artifactURI(o.SourceURI)
	results := make([]sarifResult, 0, len(r.Findings))
	for _, f := range r.Findings {
		i, ok := index[f.Rule]
		if !ok {
			// A finding of a rule the catalog does not hold (a report
			// from another version): describe the rule from the finding,
			// so that ruleIndex stays valid.
			i = len(driver.Rules)
			index[f.Rule] = i
			driver.Rules = append(driver.Rules, sarifRuleOf(&audit.Rule{
				ID: f.Rule, Severity: f.Severity, Title: f.Title, References: f.References,
			}))
		}
		results = append(results, sarifResult{
			RuleID:    f.Rule,
			RuleIndex: i,
			Level:     sarifLevel(f.Severity),
			Message:   sarifMessage{Text: sarifResultText(f)},
			Locations: []sarifLocation{{
				PhysicalLocation: sarifPhysicalLocation{
					ArtifactLocation: sarifArtifactLocation{URI: uri},
					Region:           sarifRegion{StartLine: 1},
				},
				LogicalLocations: []sarifLogicalLocation{{Name: f.Subject.Name, Kind: string(f.Subject.Kind)}},
			}},
			PartialFingerprints: map[string]string{fingerprintKey: fingerprint(f)},
			Properties:          sarifResultProps{Severity: f.Severity},
		})
	}
	log := sarifLog{
		Schema:  sarifSchema,
		Version: sarifVersion,
		Runs:    []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results}},
	}
	doc, err := marshalJSON(log)
	if err != nil {
		return fmt.Errorf("encoding the report as SARIF: %w", err)
	}
	return write(w, string(doc))
}

func sarifRuleOf(r *audit.Rule) sarifRule {
	tags := []string{"security", "docker"}
	for _, ref := range r.References {
		if strings.HasPrefix(ref, "CIS ") {
			tags = append(tags, "cis-docker-benchmark")
			break
		}
	}
	why := r.Why
	if why == "" {
		why = r.Title
	}
	return sarifRule{
		ID:                   r.ID,
		Name:                 ruleName(r.ID),
		ShortDescription:     sarifMessage{Text: r.Title},
		FullDescription:      sarifMessage{Text: why},
		Help:                 sarifMessage{Text: ruleHelpText(r), Markdown: ruleHelpMarkdown(r)},
		DefaultConfiguration: sarifConfiguration{Level: sarifLevel(r.Severity)},
		Properties:           sarifRuleProps{Tags: tags, SecuritySeverity: securitySeverity(r.Severity)},
	}
}

// ruleName turns a rule id into the identifier SARIF calls a rule's name:
// "docker-socket-mounted" becomes "DockerSocketMounted".
func ruleName(id string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(id, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		first, size := utf8.DecodeRuneInString(part)
		b.WriteRune(unicode.ToUpper(first))
		b.WriteString(part[size:])
	}
	return b.String()
}

func ruleHelpText(r *audit.Rule) string {
	var parts []string
	if r.Why != "" {
		parts = append(parts, "Why it matters: "+r.Why)
	}
	if r.Fix != "" {
		parts = append(parts, "How to fix: "+r.Fix)
	}
	if len(r.References) > 0 {
		parts = append(parts, "References:\n- "+strings.Join(r.References, "\n- "))
	}
	if len(parts) == 0 {
		return r.Title
	}
	return strings.Join(parts, "\n\n")
}

func ruleHelpMarkdown(r *audit.Rule) string {
	var b strings.Builder
	writeRuleBody(&b, r)
	if b.Len() == 0 {
		return mdEscape(r.Title)
	}
	return strings.TrimRight(b.String(), "\n")
}

// sarifResultText is the alert's message: what, where, the evidence and
// the concrete fix, one per line.
func sarifResultText(f audit.Finding) string {
	lines := []string{fmt.Sprintf("%s: %s.", f.Title, f.Subject)}
	if len(f.Evidence) > 0 {
		lines = append(lines, "Evidence: "+strings.Join(f.Evidence, "; ")+".")
	}
	if f.Remediation != "" {
		lines = append(lines, "Fix: "+f.Remediation)
	}
	return strings.Join(lines, "\n")
}

// fingerprint identifies a finding across runs: the same rule about the
// same container or network hashes the same, whatever its evidence.
func fingerprint(f audit.Finding) string {
	sum := sha256.Sum256([]byte(f.Rule + "\x00" + string(f.Subject.Kind) + "\x00" + f.Subject.Name))
	return hex.EncodeToString(sum[:])
}

// artifactURI turns the source file into a SARIF artifact URI: a path
// relative to the repository root stays relative (GitHub resolves it
// against the checkout), an absolute path becomes a file:// URI, and a
// live host gets the placeholder liveHostURI.
func artifactURI(source string) string {
	switch {
	case source == "":
		return liveHostURI
	case strings.Contains(source, "://"):
		return source
	case filepath.IsAbs(source):
		return (&url.URL{Scheme: "file", Path: filepath.ToSlash(source)}).String()
	}
	p := strings.TrimPrefix(filepath.ToSlash(filepath.Clean(source)), "./")
	return (&url.URL{Path: p}).String()
}
