package verifier

import (
	"testing"

	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/verify"
)

// best is the outcome of a key whose probes ended with statuses.
func best(statuses []probe.Status) string {
	var outcomes []string
	for _, s := range statuses {
		outcomes = append(outcomes, outcomeOf(s))
	}
	return verify.Best(outcomes)
}

// TestOutcomeOf: the best status of a key's probes decides its outcome.
func TestOutcomeOf(t *testing.T) {
	for _, tt := range []struct {
		in   []probe.Status
		want string
	}{
		{nil, "error"},
		{[]probe.Status{probe.Failed}, "error"},
		{[]probe.Status{probe.Filtered, probe.Open}, "open"},
		{[]probe.Status{probe.Filtered, probe.Refused}, "closed"},
		{[]probe.Status{probe.Unreachable, probe.Filtered}, "blocked"},
		{[]probe.Status{probe.Failed, probe.Unreachable}, "unreachable"},
		{[]probe.Status{probe.Skipped, probe.Skipped}, "off-host"},
		{[]probe.Status{probe.Skipped, probe.Filtered}, "blocked"},
		{[]probe.Status{probe.Failed, probe.Skipped}, "off-host"},
	} {
		if got := best(tt.in); got != tt.want {
			t.Errorf("the outcome of %v = %s, want %s", tt.in, got, tt.want)
		}
	}
}
