package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"

	"github.com/zonewarden/zonewarden/internal/audit"
)

// AuditJSON writes the report as one indented JSON document,
//
//	{"findings": [...], "summary": {...}}
//
// with the fields of audit.Finding and audit.Summary. Lists and maps are
// never null: no findings is [], a finding without evidence has
// "evidence": [], and summary.by_severity always holds every severity.
// Characters such as < and > are written as themselves, not as \u003c.
func AuditJSON(w io.Writer, r *audit.Report) error {
	doc, err := marshalJSON(normalized(r))
	if err != nil {
		return fmt.Errorf("encoding the report as JSON: %w", err)
	}
	return write(w, string(doc))
}

// normalized returns a copy of r whose lists and maps are never nil, so
// that a report built by hand encodes like one from audit.Run.
func normalized(r *audit.Report) *audit.Report {
	out := &audit.Report{Findings: make([]audit.Finding, len(r.Findings)), Summary: r.Summary}
	for i, f := range r.Findings {
		if f.Evidence == nil {
			f.Evidence = []string{}
		}
		out.Findings[i] = f
	}
	sum := &out.Summary
	sum.BySeverity = maps.Clone(sum.BySeverity)
	if sum.BySeverity == nil {
		sum.BySeverity = make(map[string]int, len(audit.Severities()))
	}
	for _, s := range audit.Severities() {
		sum.BySeverity[s.String()] += 0
	}
	if sum.ByRule == nil {
		sum.ByRule = map[string]int{}
	}
	return out
}

// marshalJSON indents by two spaces, ends with a newline and leaves <, >
// and & unescaped: the documents are read by people and jq, not embedded
// in HTML.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
