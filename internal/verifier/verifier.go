// Package verifier proves a host with real packets: from each running
// container's network namespace it probes its peers on the ports
// verify.Ports names (listening itself where nothing does) and judges
// each key against the expected reachability (package verify).
package verifier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/reach"
	"github.com/zonewarden/zonewarden/internal/verify"
)

// Run probes the peers of snap, from their network namespaces, on the
// ports verify.Ports names, and judges each key against an (the expected
// reachability); b, when not nil, is the policy bound to snap (its flow
// and test ports are probed too, and it explains mismatches).
func Run(ctx context.Context, snap *inventory.Snapshot, an *reach.Analysis, b *model.Binding, opts verify.Options) ([]verify.Result, error) {
	ix := inventory.NewIndex(snap)
	// Peers: running containers with a network namespace of their own;
	// those that do not run are reported, not probed.
	var peers []*inventory.Container
	var results []verify.Result
	stopped := func(c *inventory.Container, why string) {
		results = append(results, verify.Result{From: "*", To: c.Name, Outcome: verify.OutcomeStopped, Probes: []string{},
			Cause: c.Name + " " + why + ": nothing to probe to or from it; start it and verify again to check its flows"})
	}
	for i := range snap.Containers {
		c := &snap.Containers[i]
		if c.UsesHostNetwork() || c.NoNetwork() || c.SharedNamespaceWith() != "" {
			continue
		}
		if opts.Label[0] != "" && c.Labels[opts.Label[0]] != opts.Label[1] {
			continue
		}
		if c.Pid <= 0 {
			stopped(c, "is "+cmp.Or(c.State, "not running"))
			continue
		}
		peers = append(peers, c)
	}
	ns := map[string]*probe.Namespace{}
	defer func() {
		for _, n := range ns {
			n.Close()
		}
	}()
	running := peers[:0]
	for _, c := range peers {
		n, err := probe.OpenPID(c.Pid)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			stopped(c, "stopped while verify ran")
			continue
		case err != nil:
			return nil, fmt.Errorf("entering the network namespace of %s: %w (verify needs root)", c.Name, err)
		}
		ns[c.Name] = n
		running = append(running, c)
	}
	peers = running
	if len(peers) < 2 {
		return nil, errors.New("fewer than two running containers to probe between (is the --label right?)")
	}
	// probe.Listen where nothing does, so that a refusal cannot pass for a drop.
	owner := map[[2]string]string{} // (container, port) -> "service", "zonewarden" or "kernel"
	var listeners []*probe.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	ports := map[string][]l4.Port{}
	for _, c := range peers {
		ports[c.Name] = verify.Ports(c, ix, b, opts.ICMP)
		for _, pt := range ports[c.Name] {
			cfg := probe.ListenConfig{Banner: "zonewarden-verify"}
			switch pt.Proto {
			case l4.ProtoICMP:
				owner[[2]string{c.Name, pt.String()}] = "kernel"
				continue
			case "tcp":
				cfg.TCP = []uint16{pt.Number}
			default:
				cfg.UDP = []uint16{pt.Number}
			}
			l, err := probe.Listen(ns[c.Name], cfg)
			if err != nil {
				owner[[2]string{c.Name, pt.String()}] = "service"
				continue
			}
			listeners = append(listeners, l)
			owner[[2]string{c.Name, pt.String()}] = "zonewarden"
		}
	}
	type pair struct{ from, to *inventory.Container }
	var pairs []pair
	for _, s := range peers {
		for _, t := range peers {
			if s != t {
				pairs = append(pairs, pair{s, t})
			}
		}
	}
	if opts.Sample > 0 && opts.Sample < len(pairs) {
		r := rand.New(rand.NewPCG(1, 2))
		r.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
		pairs = pairs[:opts.Sample]
	}
	// kind says how a job reaches its destination.
	const (
		direct    = iota // one of the destination's addresses
		published        // a published port through a gateway: the host answers a refusal
		viaName          // the destination's name, resolved in the source
	)
	type jobKey struct{ result, kind int }
	notes := map[int]string{} // result -> its IPsec note
	var jobs []probe.Job
	var keys []jobKey
	first := len(results)
	for _, pr := range pairs {
		for _, pt := range ports[pr.to.Name] {
			ok, edge := an.Eval(pr.from.Name, pr.to.Name, pt)
			res := verify.Result{From: pr.from.Name, To: pr.to.Name, Port: pt.String(), Expected: ok, Via: edge.Via,
				Listener: owner[[2]string{pr.to.Name, pt.String()}], Probes: []string{}}
			results = append(results, res)
			if note := verify.IPsecNote(snap, pr.from, pr.to); note != "" && !ok {
				notes[len(results)-1] = note
			}
			add := func(t probe.Target, kind int) {
				jobs = append(jobs, probe.Job{From: ns[pr.from.Name], To: t})
				keys = append(keys, jobKey{len(results) - 1, kind})
			}
			for _, e := range pr.to.Endpoints {
				for _, addr := range []netip.Addr{e.IPv4, e.IPv6} {
					if addr.IsValid() {
						add(probe.Target{Proto: pt.Proto, Addr: netip.AddrPortFrom(addr, pt.Number)}, direct)
					}
				}
			}
			if opts.ByName {
				add(probe.Target{Proto: pt.Proto, Addr: netip.AddrPortFrom(netip.Addr{}, pt.Number), Name: pr.to.Name}, viaName)
			}
			if pt.Proto == l4.ProtoICMP {
				continue // nothing is published for ICMP
			}
			// The published path: the destination's host port through the
			// gateway address of each of the source's networks.
			for _, pb := range ix.PublishedPorts(pr.to) {
				if pb.ContainerPort.Number != pt.Number || pb.ContainerPort.Proto != pt.Proto || pb.HostPort == 0 {
					continue
				}
				for _, gw := range gateways(ix, pr.from) {
					if pb.AllInterfaces() && (!pb.HostIP.IsValid() || pb.HostIP.Is4() == gw.Is4()) || pb.HostIP == gw {
						add(probe.Target{Proto: pt.Proto, Addr: netip.AddrPortFrom(gw, pb.HostPort)}, published)
					}
				}
			}
		}
	}
	prober := &probe.Prober{Timeout: opts.Timeout, Overlay: overlayTasks(snap, ix)}
	seen := make([][]string, len(results))  // per result: the statuses of its address and published probes
	named := make([][]string, len(results)) // per result: of its probes by name
	for i, r := range prober.Run(ctx, jobs) {
		k := keys[i]
		res := &results[k.result]
		st := r.Status
		if st == probe.Refused && k.kind == published {
			// The host refused: nothing (no longer) published there. It
			// says nothing about the destination.
			st = probe.Unreachable
		}
		desc := r.To.String() + " " + r.Status.String()
		if k.kind == viaName {
			if len(r.Resolved) == 0 {
				st = probe.Failed
				desc = "name " + r.To.String() + " unresolved (" + strings.ReplaceAll(fmt.Sprint(r.Err), "\n", "; ") + ")"
			} else {
				desc = "name " + r.To.String() + " = " + r.To.Addr.Addr().String() + " " + r.Status.String()
				for _, a := range r.Resolved {
					if s := a.String(); !slices.Contains(res.Resolved, s) {
						res.Resolved = append(res.Resolved, s)
					}
				}
			}
			named[k.result] = append(named[k.result], outcomeOf(st))
		}
		if k.kind != viaName || len(r.Resolved) > 0 {
			seen[k.result] = append(seen[k.result], outcomeOf(st))
		}
		res.Probes = append(res.Probes, desc)
	}
	for i := first; i < len(results); i++ {
		res := &results[i]
		res.Outcome = verify.Best(seen[i])
		res.Observed = res.Outcome == verify.OutcomeOpen || res.Outcome == verify.OutcomeClosed
		if opts.ByName {
			res.ByName = verify.Best(named[i])
			if res.ByName == verify.OutcomeError {
				res.ByName = verify.OutcomeUnresolved
			}
		}
		res.Cause = verify.Cause(*res, b)
		res.Note = notes[i]
	}
	slices.SortFunc(results, func(x, y verify.Result) int {
		return strings.Compare(x.From+" "+x.To+" "+x.Port, y.From+" "+y.To+" "+y.Port)
	})
	return results, nil
}

// overlayTasks returns, for a Swarm, the test that lets a probe cross an
// overlay to another node: its destination is the overlay address of a
// task of the Swarm. Nil outside a Swarm: no probe crosses a VXLAN.
func overlayTasks(snap *inventory.Snapshot, ix *inventory.Index) func(netip.Addr) bool {
	if snap.Swarm == nil {
		return nil
	}
	tasks := map[netip.Addr]bool{}
	for _, c := range snap.Containers {
		for _, e := range c.Endpoints {
			if n := ix.Network(e.Network); n != nil && n.Driver == "overlay" {
				for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
					if a.IsValid() {
						tasks[a] = true
					}
				}
			}
		}
	}
	return func(a netip.Addr) bool { return tasks[a.Unmap()] }
}

// gateways returns the gateway addresses of a container's networks.
func gateways(ix *inventory.Index, c *inventory.Container) []netip.Addr {
	var out []netip.Addr
	for _, e := range c.Endpoints {
		n := ix.Network(e.Network)
		if n == nil || n.Driver != "bridge" {
			continue
		}
		for _, s := range n.Subnets {
			gw := s.Gateway
			if !gw.IsValid() {
				gw = s.Prefix.Masked().Addr().Next()
			}
			out = append(out, gw)
		}
	}
	return out
}

// outcomeOf is the verify outcome of one probe's status.
func outcomeOf(s probe.Status) string {
	switch s {
	case probe.Open:
		return verify.OutcomeOpen
	case probe.Refused:
		return verify.OutcomeClosed
	case probe.Filtered:
		return verify.OutcomeBlocked
	case probe.Unreachable:
		return verify.OutcomeUnreachable
	case probe.Skipped:
		return verify.OutcomeOffHost
	}
	return verify.OutcomeError
}
