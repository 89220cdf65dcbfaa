package report

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/zonewarden/zonewarden/internal/verify"
)

// Verify writes verify's results as text, json or junit: each key with
// what was expected and observed, the cause of each mismatch, the
// memberships the policy forbids, and a summary.
func Verify(w io.Writer, format string, results []verify.Result, strays []string) error {
	bad, skipped, offHost := 0, 0, 0
	for _, r := range results {
		switch {
		case r.Outcome == verify.OutcomeOffHost:
			skipped++
			offHost++
		case r.Skipped():
			skipped++
		case !r.OK():
			bad++
		}
	}
	type summary struct {
		Probed     int `json:"probed"`
		Mismatches int `json:"mismatches"`
		NotRunning int `json:"not_running"`
		// Keys whose every probe would have left the machine: not sent.
		OffHost int `json:"off_host"`
		// Memberships the policy forbids: failures whatever the packets do.
		ForbiddenMemberships int `json:"forbidden_memberships"`
	}
	sum := summary{len(results) - skipped, bad, skipped - offHost, offHost, len(strays)}
	if strays == nil {
		strays = []string{}
	}
	switch format {
	case "json":
		doc, err := json.MarshalIndent(struct {
			Results     []verify.Result `json:"results"`
			Memberships []string        `json:"forbidden_memberships"`
			Summary     summary         `json:"summary"`
		}{results, strays, sum}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", doc)
		return err
	case "junit":
		type message struct {
			Message string `xml:"message,attr"`
			Text    string `xml:",chardata"`
		}
		type testcase struct {
			Name      string   `xml:"name,attr"`
			Classname string   `xml:"classname,attr"`
			Failure   *message `xml:"failure,omitempty"`
			Skipped   *message `xml:"skipped,omitempty"`
		}
		suite := struct {
			XMLName  xml.Name   `xml:"testsuite"`
			Name     string     `xml:"name,attr"`
			Tests    int        `xml:"tests,attr"`
			Failures int        `xml:"failures,attr"`
			Skipped  int        `xml:"skipped,attr"`
			Cases    []testcase `xml:"testcase"`
		}{Name: "zonewarden verify", Tests: len(results) + len(strays), Failures: bad + len(strays), Skipped: skipped}
		for _, m := range strays {
			suite.Cases = append(suite.Cases, testcase{Name: "membership", Classname: "zonewarden.verify", Failure: &message{Message: m}})
		}
		for _, r := range results {
			tc := testcase{Name: r.Key() + " " + AllowWord(r.Expected), Classname: "zonewarden.verify"}
			switch {
			case r.Outcome == verify.OutcomeOffHost:
				tc.Skipped = &message{Message: r.Cause, Text: strings.Join(r.Probes, "\n")}
			case r.Skipped():
				tc.Name = r.To + " " + r.Outcome
				tc.Skipped = &message{Message: r.Cause}
			case !r.OK():
				tc.Failure = &message{Message: r.Cause, Text: strings.Join(r.Probes, "\n")}
			}
			suite.Cases = append(suite.Cases, tc)
		}
		doc, err := xml.MarshalIndent(suite, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s%s\n", xml.Header, doc)
		return err
	}
	var sb strings.Builder
	for _, r := range results {
		if r.Outcome == verify.OutcomeOffHost {
			fmt.Fprintf(&sb, "skip %s: %s\n     probes: %s\n", r.Key(), r.Cause, strings.Join(r.Probes, ", "))
			continue
		}
		if r.Skipped() {
			fmt.Fprintf(&sb, "skip %s: %s\n", r.To, r.Cause)
			continue
		}
		mark := "ok  "
		if !r.OK() {
			mark = "FAIL"
		}
		fmt.Fprintf(&sb, "%s %s expected=%s observed=%s", mark, r.Key(), AllowWord(r.Expected), r.Outcome)
		if r.ByName != "" {
			fmt.Fprintf(&sb, " by-name=%s", r.ByName)
		}
		switch {
		case r.Outcome == verify.OutcomeClosed && r.Expected:
			sb.WriteString(" (the path is open; nothing listens there and verify could not listen itself: is the service down, or bound to another address?)")
		case r.Listener == "zonewarden" && r.Observed:
			sb.WriteString(" (temporary listener)")
		}
		sb.WriteByte('\n')
		if !r.OK() {
			fmt.Fprintf(&sb, "     %s\n     probes: %s\n", r.Cause, strings.Join(r.Probes, ", "))
		}
		if r.Note != "" {
			fmt.Fprintf(&sb, "     note: %s\n", r.Note)
		}
	}
	for _, m := range strays {
		fmt.Fprintf(&sb, "FAIL membership: %s\n", m)
	}
	fmt.Fprintf(&sb, "\n%d keys probed, %d mismatches", sum.Probed, bad)
	if len(strays) > 0 {
		fmt.Fprintf(&sb, ", %s the policy forbids", plural(len(strays), "membership"))
	}
	if n := skipped - offHost; n > 0 {
		fmt.Fprintf(&sb, ", %s not running (not probed)", plural(n, "container"))
	}
	if offHost > 0 {
		fmt.Fprintf(&sb, ", %s not probed because the packets would leave this machine", plural(offHost, "key"))
	}
	sb.WriteString(".\n")
	_, err := io.WriteString(w, sb.String())
	return err
}

// AllowWord is "allow" or "deny".
func AllowWord(b bool) string {
	if b {
		return "allow"
	}
	return "deny"
}
