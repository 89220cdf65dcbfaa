// Package execute carries out the Docker side of a plan: it creates and
// re-creates the zones' networks and changes memberships, new ones before
// old ones, through the Docker API. It never removes a container, and it
// re-creates a network it did not create only when told to. The firewall
// is internal/firewall's.
package execute

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
	"github.com/zonewarden/zonewarden/internal/plan"
)

// Executor carries out the Docker side of a plan.
type Executor struct {
	Docker *dockerapi.Client
	// Out gets a line per change made.
	Out io.Writer
	// Labels go on every network zonewarden creates, with
	// plan.LabelManaged.
	Labels map[string]string
	// RecreateForeign allows re-creating networks zonewarden did not
	// create.
	RecreateForeign bool
}

// Check refuses a plan that cannot be applied, before anything changes.
func (x *Executor) Check(p *plan.Plan) error {
	if len(p.Blockers) > 0 {
		return fmt.Errorf("the host cannot satisfy the policy, nothing was changed: %s", strings.Join(p.Blockers, "; "))
	}
	for _, r := range p.Recreate {
		if !r.Ours && !x.RecreateForeign {
			return fmt.Errorf("network %s must be re-created to make it %s, but zonewarden did not create it; nothing was changed. Re-run with --recreate-networks to allow it (%s lose connectivity on it meanwhile)",
				r.Network, plan.InternalWord(r.Internal), membersText(r.Members))
		}
	}
	return nil
}

// Apply executes p: create networks, re-create those whose internal flag
// is wrong, connect the new memberships, then disconnect the old ones (so
// that a container moving between zones is never without its network
// longer than needed). It stops at the first error and says what was done.
func (x *Executor) Apply(ctx context.Context, p *plan.Plan) error {
	if err := x.Check(p); err != nil {
		return err
	}
	done := 0
	fail := func(err error) error {
		if done == 0 {
			return fmt.Errorf("%w (nothing was changed)", err)
		}
		return fmt.Errorf("%w (after %d of the plan's changes; run 'zonewarden plan' to see what is left)", err, done)
	}
	for _, z := range p.Create {
		spec := x.spec(z.Name, z.Internal)
		spec.Overlay, spec.Encrypted = z.Overlay, z.Encrypted
		if _, err := x.Docker.CreateNetwork(ctx, spec); err != nil {
			return fail(err)
		}
		fmt.Fprintf(x.Out, "created network %s%s\n", z.Name, zoneNote(z))
		done++
	}
	n, err := x.updateServices(ctx, p.Services)
	done += n
	if err != nil {
		return fail(err)
	}
	leaving := map[plan.Membership]bool{}
	for _, m := range p.Disconnect {
		leaving[m] = true
	}
	for _, r := range p.Recreate {
		for _, c := range r.Members {
			if err := x.Docker.DisconnectNetwork(ctx, r.Network, c); err != nil {
				return fail(err)
			}
		}
		if err := x.Docker.RemoveNetwork(ctx, r.Network); err != nil {
			return fail(err)
		}
		if _, err := x.Docker.CreateNetwork(ctx, x.spec(r.Network, r.Internal)); err != nil {
			return fail(err)
		}
		for _, c := range r.Members {
			if leaving[plan.Membership{Container: c, Network: r.Network}] {
				continue
			}
			if err := x.Docker.ConnectNetwork(ctx, r.Network, c); err != nil {
				return fail(err)
			}
		}
		fmt.Fprintf(x.Out, "re-created network %s%s\n", r.Network, internalNote(r.Internal))
		done++
	}
	for _, m := range p.Connect {
		if err := x.Docker.ConnectNetwork(ctx, m.Network, m.Container); err != nil {
			return fail(err)
		}
		fmt.Fprintf(x.Out, "connected %s to %s\n", m.Container, m.Network)
		done++
	}
	var errs []error
	for _, m := range p.Disconnect {
		if slices.ContainsFunc(p.Recreate, func(r plan.Recreate) bool { return r.Network == m.Network }) {
			continue // not reconnected above
		}
		if err := x.Docker.DisconnectNetwork(ctx, m.Network, m.Container); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(x.Out, "disconnected %s from %s\n", m.Container, m.Network)
		done++
	}
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	return nil
}

// ServiceWait bounds the wait for a service's tasks to run on their new
// overlays, after each of the two updates.
var ServiceWait = 3 * time.Minute

// updateServices moves Swarm services between overlays in two rounds:
// every service gains its new zones and its tasks run on them, then every
// service leaves its old networks. It returns how many updates it made.
func (x *Executor) updateServices(ctx context.Context, us []plan.ServiceUpdate) (int, error) {
	done := 0
	for _, removing := range []bool{false, true} {
		var waits []plan.ServiceUpdate
		for _, u := range us {
			add, rem, verb := u.Add, []string(nil), "added"
			if removing {
				add, rem, verb = nil, u.Remove, "removed"
			}
			if len(add)+len(rem) == 0 {
				continue
			}
			if err := x.Docker.UpdateServiceNetworks(ctx, u.Service, add, rem); err != nil {
				return done, err
			}
			fmt.Fprintf(x.Out, "service %s: %s %s\n", u.Service, verb, strings.Join(append(add, rem...), ", "))
			done++
			waits = append(waits, u)
		}
		for _, u := range waits {
			on := append(slices.Clone(u.Keep), u.Add...)
			if !removing {
				on = append(on, u.Remove...) // still on the old networks
			}
			wctx, cancel := context.WithTimeout(ctx, ServiceWait)
			err := x.Docker.WaitService(wctx, u.Service, on)
			cancel()
			if err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

func (x *Executor) spec(name string, internal bool) dockerapi.NetworkSpec {
	labels := maps.Clone(x.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[plan.LabelManaged] = name
	return dockerapi.NetworkSpec{Name: name, Internal: internal, Labels: labels}
}

func internalNote(internal bool) string {
	if internal {
		return " (internal)"
	}
	return ""
}

func membersText(ms []string) string {
	if len(ms) == 0 {
		return "no container"
	}
	return strings.Join(ms, ", ")
}

func zoneNote(z plan.Zone) string {
	var tags []string
	if z.Overlay {
		tags = append(tags, "overlay")
		if z.Encrypted {
			tags = append(tags, "encrypted")
		} else {
			tags = append(tags, "not encrypted")
		}
	}
	if z.Internal {
		tags = append(tags, "internal")
	}
	if len(tags) == 0 {
		return ""
	}
	return " (" + strings.Join(tags, ", ") + ")"
}
