package audit

import (
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/reach"
)

// Rule is one entry of the catalog.
type Rule struct {
	ID       string
	Severity Severity // the usual severity; a check may raise or lower it
	Title    string
	// Why explains the risk; Fix the general remedy (each finding carries
	// a concrete one). Both are rendered into docs/rules.md.
	Why        string
	Fix        string
	References []string
	check      func(*host, *Rule) []Finding
}

// Rules returns the catalog in a stable order.
func Rules() []*Rule { return catalog }

// Lookup returns the rule with the given id, or nil.
func Lookup(id string) *Rule {
	for _, r := range catalog {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// Options tune an audit. The zero value runs every rule.
type Options struct {
	// Skip lists rule ids not to run.
	Skip []string
	// Fenced maps each container that no workload of a policy selects and
	// that is on a default: deny zone to those zones (policy
	// Binding.Fenced); the fenced-container rule reports them. Without a
	// policy it is empty.
	Fenced map[string][]string
}

// Run audits the snapshot and returns the findings, most severe first.
func Run(s *inventory.Snapshot, opts Options) *Report {
	h := newHost(s)
	h.fenced = opts.Fenced
	skip := make(map[string]bool, len(opts.Skip))
	for _, id := range opts.Skip {
		skip[id] = true
	}
	var fs []Finding
	for _, r := range catalog {
		if skip[r.ID] {
			continue
		}
		fs = append(fs, r.check(h, r)...)
	}
	sortFindings(fs)
	if fs == nil {
		fs = []Finding{}
	}
	return &Report{Findings: fs, Summary: summarize(fs, len(s.Containers), len(s.Networks)), BlastRadii: h.an.BlastRadii()}
}

// host is the snapshot with what several rules need computed once.
type host struct {
	snap *inventory.Snapshot
	ix   *inventory.Index
	an   *reach.Analysis
	// data holds, per container, the data service it runs ("" if none).
	data map[*inventory.Container]dataInfo
	// untrusted holds why a container counts as untrusted.
	untrusted map[*inventory.Container]string
	// fenced: Options.Fenced.
	fenced map[string][]string
}

type dataInfo struct{ kind, reason string }

func newHost(s *inventory.Snapshot) *host {
	h := &host{
		snap:      s,
		ix:        inventory.NewIndex(s),
		an:        reach.Analyze(s, reach.Options{}),
		data:      make(map[*inventory.Container]dataInfo),
		untrusted: make(map[*inventory.Container]string),
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		if kind, why, ok := inventory.DataService(c); ok {
			h.data[c] = dataInfo{kind, why}
		}
		if why, ok := inventory.Untrusted(c); ok {
			h.untrusted[c] = why
		}
	}
	return h
}

// dataMembers returns the data services attached to network n.
func (h *host) dataMembers(n string) []*inventory.Container {
	var out []*inventory.Container
	for _, c := range h.ix.Members(n) {
		if _, ok := h.data[c]; ok {
			out = append(out, c)
		}
	}
	return out
}

// finding starts a finding of rule r about subject.
func (r *Rule) finding(kind SubjectKind, name string, evidence []string, fix string) Finding {
	return Finding{
		Rule:        r.ID,
		Severity:    r.Severity,
		Title:       r.Title,
		Subject:     Subject{Kind: kind, Name: name},
		Evidence:    evidence,
		Remediation: fix,
		References:  r.References,
	}
}
