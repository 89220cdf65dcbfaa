package model

import (
	"fmt"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/learn"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// Break is a recorded flow that a policy would deny.
type Break struct {
	Record learn.Record
	// Decision is the policy's; Monitored says the zones concerned are
	// in monitor mode: the flow is logged as would deny, not dropped,
	// until they enforce.
	Decision  Decision
	Monitored bool
}

// Breaks lists the recorded flows (zonewarden learn) that the policy
// bound to this host would deny, and counts those it cannot judge: the
// host's own (not filtered), those never answered (a denial breaks
// nothing that worked), or whose container is no longer on the host under
// its name or compose service.
func (b *Binding) Breaks(recs []learn.Record) (breaks []Break, unjudged int) {
	ix := inventory.NewIndex(b.Snapshot)
	for _, r := range recs {
		if r.Answered == 0 {
			unjudged++
			continue
		}
		from, okFrom := b.recordedName(ix, r.From)
		to, okTo := b.recordedName(ix, r.To)
		if !okFrom || !okTo {
			unjudged++
			continue
		}
		port := l4.Port{Proto: r.Proto, Number: r.Port}
		if r.Proto == "icmp" || r.Proto == "ipv6-icmp" {
			port = l4.Port{Proto: l4.ProtoICMP}
		}
		d := b.Decide(from, to, port)
		if d.Allow && r.Via != "" && d.Flow < 0 && d.Zone != "" {
			// Sharing a default: allow zone does not open a published
			// host port to a managed container: only a flow does.
			d = Decision{Flow: -1, Zone: d.Zone, Reason: fmt.Sprintf("%s reaches %s through its published port (%s): only a flow opens a published port to containers", from, to, r.Via)}
		}
		if d.Allow {
			continue
		}
		breaks = append(breaks, Break{Record: r, Decision: d, Monitored: b.monitored(from, to)})
	}
	return breaks, unjudged
}

// recordedName names a recorded peer as Decide takes it: a container on
// the host now (by name, else by compose project and service), or an
// outside address. The host's own traffic is not judged.
func (b *Binding) recordedName(ix *inventory.Index, p learn.Peer) (string, bool) {
	switch p.Kind {
	case learn.KindContainer:
		if ix.Container(p.Container) != nil {
			return p.Container, true
		}
		if p.Project == "" || p.Service == "" {
			return "", false
		}
		for i := range b.Snapshot.Containers {
			c := &b.Snapshot.Containers[i]
			if c.ComposeProject() == p.Project && c.ComposeService() == p.Service {
				return c.Name, true
			}
		}
	case learn.KindOutside:
		return p.Addr, p.Addr != ""
	}
	return "", false
}

// monitored reports whether no zone in enforce mode is party to a flow
// between the two (container names or addresses): every zone either end
// is on monitors.
func (b *Binding) monitored(from, to string) bool {
	p := b.Model.p
	if !p.Monitors() {
		return false
	}
	for _, name := range []string{from, to} {
		m := b.Member(name)
		if m == nil {
			continue
		}
		for _, n := range append(append([]string(nil), m.Attached...), m.Zones...) {
			if z := p.Zone(n); z != nil && p.ZoneMode(z) == policy.Enforce {
				return false
			}
		}
	}
	return true
}
