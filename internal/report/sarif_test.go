package report

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"testing"

	"github.com/zonewarden/zonewarden/internal/audit"
)

func TestSARIFStructure(t *testing.T) {
	for name, tc := range map[string]struct {
		r *audit.Report
		o AuditOptions
	}{
		"sample":       {sampleReport(), sampleOptions},
		"live":         {sampleReport(), liveOptions},
		"empty":        {emptyReport(), AuditOptions{}},
		"hand-made {}": {&audit.Report{}, AuditOptions{}},
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := AuditSARIF(&b, tc.r, tc.o); err != nil {
				t.Fatal(err)
			}
			log := checkSARIF(t, b.Bytes())
			results := log.Runs[0].Results
			if len(results) != len(tc.r.Findings) {
				t.Fatalf("%d results for %d findings", len(results), len(tc.r.Findings))
			}
			wantURI := artifactURI(tc.o.SourceURI)
			for i, res := range results {
				f := tc.r.Findings[i]
				if res.Level != sarifLevel(f.Severity) {
					t.Errorf("result %d: level %s for a %s finding", i, res.Level, f.Severity)
				}
				if got := res.Locations[0].PhysicalLocation.ArtifactLocation.URI; got != wantURI {
					t.Errorf("result %d: uri %q, want %q", i, got, wantURI)
				}
				if l := res.Locations[0].LogicalLocations; len(l) != 1 || l[0].Name != f.Subject.Name || l[0].Kind != string(f.Subject.Kind) {
					t.Errorf("result %d: logical locations %+v, want the subject %s", i, l, f.Subject)
				}
			}
		})
	}
}

// TestSARIFFingerprint checks that the fingerprint depends on rule and
// subject only, so GitHub keeps one alert per rule and subject across runs.
func TestSARIFFingerprint(t *testing.T) {
	f := sampleReport().Findings[1]
	g := f
	g.Evidence = []string{"other evidence"}
	g.Severity = audit.High
	g.Remediation = "other fix"
	if fingerprint(f) != fingerprint(g) {
		t.Error("the fingerprint changes with evidence, severity or fix")
	}
	for _, h := range []audit.Finding{
		{Rule: "other", Subject: f.Subject},
		{Rule: f.Rule, Subject: audit.Subject{Kind: audit.KindNetwork, Name: f.Subject.Name}},
		{Rule: f.Rule, Subject: audit.Subject{Kind: f.Subject.Kind, Name: "other"}},
	} {
		if fingerprint(h) == fingerprint(f) {
			t.Errorf("%+v has the fingerprint of %+v", h, f)
		}
	}
	// Pinned: GitHub matches alerts across runs by this value; a new
	// scheme needs a new fingerprintKey.
	got := fingerprint(audit.Finding{Rule: "privileged", Subject: audit.Subject{Kind: audit.KindContainer, Name: "db"}})
	if want := "fce59c9b01d83770372f19703c800888211f2ab3f91f7236d36de01c5b367e18"; got != want {
		t.Errorf("fingerprint of privileged/container/db = %s, want %s", got, want)
	}
}

// checkSARIF checks a log the way GitHub code scanning reads it: the
// fields it requires are present, every result's ruleIndex points at the
// rule named by its ruleId, levels and security-severity are valid, and
// fingerprints are unique. It returns the decoded log.
func checkSARIF(t *testing.T, doc []byte) sarifLog {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal(doc, &raw); err != nil {
		t.Fatalf("SARIF is not JSON: %v", err)
	}
	require := func(where string, m map[string]any, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if v, ok := m[k]; !ok || v == nil || v == "" {
				t.Errorf("%s: required field %q missing or empty", where, k)
			}
		}
	}
	obj := func(v any) map[string]any { m, _ := v.(map[string]any); return m }
	arr := func(v any) []any { a, _ := v.([]any); return a }

	require("log", raw, "$schema", "version", "runs")
	if raw["version"] != "2.1.0" {
		t.Errorf("version %v, want 2.1.0", raw["version"])
	}
	runs := arr(raw["runs"])
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
	run := obj(runs[0])
	require("run", run, "tool", "results")
	if _, ok := run["results"].([]any); !ok {
		t.Errorf("run.results is %v, want an array", run["results"])
	}
	driver := obj(obj(run["tool"])["driver"])
	require("tool.driver", driver, "name", "rules")
	for i, r := range arr(driver["rules"]) {
		rule := obj(r)
		where := "rules[" + strconv.Itoa(i) + "]"
		require(where, rule, "id", "name", "shortDescription", "fullDescription", "help", "defaultConfiguration", "properties")
		require(where+".shortDescription", obj(rule["shortDescription"]), "text")
		require(where+".fullDescription", obj(rule["fullDescription"]), "text")
		require(where+".help", obj(rule["help"]), "text", "markdown")
		require(where+".properties", obj(rule["properties"]), "tags", "security-severity")
	}
	for i, r := range arr(run["results"]) {
		res := obj(r)
		where := "results[" + strconv.Itoa(i) + "]"
		require(where, res, "ruleId", "ruleIndex", "level", "message", "locations", "partialFingerprints")
		require(where+".message", obj(res["message"]), "text")
		locs := arr(res["locations"])
		if len(locs) == 0 {
			t.Errorf("%s: no location", where)
			continue
		}
		phys := obj(obj(locs[0])["physicalLocation"])
		require(where+".physicalLocation", phys, "artifactLocation", "region")
		require(where+".artifactLocation", obj(phys["artifactLocation"]), "uri")
		require(where+".region", obj(phys["region"]), "startLine")
	}

	var log sarifLog
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&log); err != nil {
		t.Fatalf("decoding SARIF: %v", err)
	}
	if log.Schema != sarifSchema {
		t.Errorf("$schema %q", log.Schema)
	}
	levels := []string{"none", "note", "warning", "error"}
	rules := log.Runs[0].Tool.Driver.Rules
	ids := map[string]bool{}
	for _, r := range rules {
		if ids[r.ID] {
			t.Errorf("rule %s listed twice", r.ID)
		}
		ids[r.ID] = true
		if !slices.Contains(levels, r.DefaultConfiguration.Level) {
			t.Errorf("rule %s: default level %q", r.ID, r.DefaultConfiguration.Level)
		}
		if !slices.Contains(r.Properties.Tags, "security") {
			t.Errorf("rule %s: tags %v lack security", r.ID, r.Properties.Tags)
		}
		if s, err := strconv.ParseFloat(r.Properties.SecuritySeverity, 64); err != nil || s <= 0 || s > 10 {
			t.Errorf("rule %s: security-severity %q is not a number in (0, 10]", r.ID, r.Properties.SecuritySeverity)
		}
	}
	prints := map[string]bool{}
	for i, res := range log.Runs[0].Results {
		if res.RuleIndex < 0 || res.RuleIndex >= len(rules) || rules[res.RuleIndex].ID != res.RuleID {
			t.Errorf("result %d: ruleIndex %d does not point at rule %s", i, res.RuleIndex, res.RuleID)
		}
		if !slices.Contains(levels, res.Level) {
			t.Errorf("result %d: level %q", i, res.Level)
		}
		if res.Locations[0].PhysicalLocation.Region.StartLine < 1 {
			t.Errorf("result %d: startLine < 1", i)
		}
		fp := res.PartialFingerprints[fingerprintKey]
		if fp == "" || prints[fp] {
			t.Errorf("result %d: fingerprint %q missing or not unique", i, fp)
		}
		prints[fp] = true
	}
	return log
}
