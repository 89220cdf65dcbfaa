package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/zonewarden/zonewarden/internal/plan"
)

// PlanText writes a plan for review, Terraform-style: + adds, - removes,
// ~ re-creates, ! is reported but not changed, x blocks the apply.
//
//	Networks to create:
//	  + public-dmz
//	  + database-tier (internal)
//	Memberships to add:
//	  + frontend -> application-tier
func PlanText(w io.Writer, p *plan.Plan) error {
	var b strings.Builder
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(&b, "%s:\n", title)
		for _, l := range lines {
			fmt.Fprintf(&b, "  %s\n", clean(l))
		}
		b.WriteByte('\n')
	}
	var lines []string
	for _, z := range p.Create {
		tag := internalTag(z.Internal)
		if z.Overlay {
			tags := []string{"overlay", "not encrypted"}
			if z.Encrypted {
				tags[1] = "encrypted"
			}
			if z.Internal {
				tags = append(tags, "internal")
			}
			tag = " (" + strings.Join(tags, ", ") + ")"
		}
		lines = append(lines, "+ "+z.Name+tag)
	}
	section("Networks to create", lines)
	lines = nil
	for _, r := range p.Recreate {
		l := fmt.Sprintf("~ %s: internal %v -> %v", r.Network, !r.Internal, r.Internal)
		if len(r.Members) > 0 {
			l += fmt.Sprintf("; %s lose connectivity on it while it is re-created", strings.Join(r.Members, ", "))
		}
		if !r.Ours {
			l += " (not created by zonewarden: needs --recreate-networks)"
		}
		lines = append(lines, l)
	}
	section("Networks to re-create (Docker cannot change the internal flag in place)", lines)
	lines = nil
	for _, m := range p.Connect {
		lines = append(lines, "+ "+m.Container+" -> "+m.Network)
	}
	section("Memberships to add", lines)
	lines = nil
	for _, m := range p.Disconnect {
		lines = append(lines, "- "+m.Container+" from "+m.Network)
	}
	section("Memberships to remove", lines)
	lines = nil
	for _, u := range p.Services {
		l := "~ " + u.Service + ":"
		if len(u.Add) > 0 {
			l += " + " + strings.Join(u.Add, ", ")
		}
		if len(u.Remove) > 0 {
			l += " - " + strings.Join(u.Remove, ", ")
		}
		lines = append(lines, l+fmt.Sprintf(" (%s replaced)", plural(u.Tasks, "task")))
	}
	section("Swarm services to move (service update: every new zone first, the old networks once the tasks run on it)", lines)
	lines = nil
	for _, w := range p.Warnings {
		lines = append(lines, "! "+w)
	}
	section("Warnings", lines)
	lines = nil
	if len(p.Unmatched) > 0 {
		lines = append(lines, "! no workload matches: "+strings.Join(p.Unmatched, ", "))
	}
	for _, f := range p.Fenced {
		lines = append(lines, "! fenced: "+f+": no workload selects it, so the firewall denies it every flow into, out of and inside the zones, whatever unmanaged says (earlier releases left it to Docker under unmanaged: allow and warn); select it with a workload to give it flows")
	}
	for _, u := range p.Unenforceable {
		lines = append(lines, "! not enforceable: "+u+": its traffic on that network never crosses this host's netfilter, so no zone rule applies to it; select it with a workload (apply then moves it to its zones) or remove it from the network")
	}
	for _, x := range p.Published {
		lines = append(lines, "! "+x.Container+" publishes "+x.Binding+", which the policy does not allow (re-create it without the mapping)")
	}
	section("Reported, not changed by apply", lines)
	lines = nil
	for _, x := range p.Blockers {
		lines = append(lines, "x "+x)
	}
	section("Blockers (apply changes nothing until they are fixed)", lines)
	if f := p.Firewall; f != nil {
		lines = nil
		switch {
		case !f.Installed:
			lines = append(lines, fmt.Sprintf("+ table inet zonewarden, %s (it is not installed)", plural(f.Elements, "set element")))
		case f.Changes():
			l := fmt.Sprintf("~ table inet zonewarden: %d set elements to add, %d to remove", f.Added, f.Removed)
			if f.Chains {
				l += "; its rules change too (replaced in one transaction)"
			}
			lines = append(lines, l)
			lines = append(lines, f.Sample...)
		default:
			lines = append(lines, "= table inet zonewarden matches the policy")
		}
		section("Firewall", lines)
	}
	if r := p.Recorded; r != nil {
		lines = nil
		for _, x := range r.Broken {
			l := fmt.Sprintf("x %s (%d connections, last %s): %s", x.Flow, x.Count, x.Last, x.Reason)
			if x.Monitored {
				l = "~" + l[1:] + "; monitor mode: logged as would deny, let through until the zones enforce"
			}
			lines = append(lines, l)
		}
		if len(lines) == 0 {
			lines = append(lines, fmt.Sprintf("= the policy keeps all %d", r.Total-r.Unjudged))
		}
		if r.Unjudged > 0 {
			lines = append(lines, fmt.Sprintf("  (%s not judged: the host's own, never answered, or of containers no longer on the host)", plural(r.Unjudged, "flow")))
		}
		section(fmt.Sprintf("Recorded flows (%s, %s) the policy would break", r.File, plural(r.Total, "flow")), lines)
	}
	if !p.Changes() {
		b.WriteString("Nothing to change: the host matches the policy.\n")
	} else {
		fmt.Fprintf(&b, "Plan: %s to create, %s to re-create, %s to add, %s to remove",
			plural(len(p.Create), "network"), plural(len(p.Recreate), "network"),
			plural(len(p.Connect), "membership"), plural(len(p.Disconnect), "membership"))
		if p.Firewall.Changes() {
			b.WriteString("; the firewall changes")
		}
		b.WriteString(".\n")
	}
	return write(w, b.String())
}

// PlanJSON writes the plan as JSON; every list is present, [] when empty.
func PlanJSON(w io.Writer, p *plan.Plan) error {
	return writeJSON(w, struct {
		Changes bool `json:"changes"`
		*plan.Plan
	}{p.Changes(), p})
}

func internalTag(internal bool) string {
	if internal {
		return " (internal)"
	}
	return ""
}
