// Command packet-rate measures what zonewarden's enforcement costs per
// packet: the rate of new TCP connections forwarded between two network
// namespaces through a router namespace, with no rules, with the
// zonewarden-shaped nftables ruleset and with the seed's approach (one
// iptables rule per allowed pair in a linear chain), each with 10, 10,000
// and 100,000 allowed flows loaded.
//
//	sudo bench/packet-rate.sh                 # or:
//	sudo go run ./bench/packet-rate -flows 10,10000,100000 -duration 5s -reps 3
//
// New connections are what a rule set evaluates: every configuration with
// rules accepts established and related packets first (conntrack), so only
// the SYN of each connection walks the flow lookup — the set lookup in
// zonewarden's chain, the whole linear chain in the seed's (the benchmark's
// own flow is the chain's last rule, the worst case). The client keeps
// -inflight connections in flight on each of -workers threads (epoll):
// each connects, waits for the server to accept and close, and aborts
// (SO_LINGER 0, so no TIME_WAIT); completed connections are counted for
// -duration after -warmup. Each measurement runs on a freshly built
// topology, -reps times, interleaved; the tables give medians of the
// connection rate (and its share of "no rules"), of the CPU time per
// connection (steadier on a shared machine), and of the ruleset's load
// time. Before each run it waits for other tasks to use less than -busy of
// the CPUs, and repeats a run they disturbed (-retries).
//
// Configurations (-configs):
//
//	none             no rules at all: conntrack is not even active
//	ct               only "ct state established,related accept" (nft): the
//	                 conntrack cost every stateful ruleset pays
//	zonewarden       table inet zonewarden: forward hook, priority -5,
//	                 ct accept, fail-closed checks on small sets, then a
//	                 lookup in an interval set with concatenated keys
//	                 ip saddr . ip daddr . meta l4proto . th dport holding
//	                 N flows, counter drop; one `nft -f` transaction
//	zonewarden-hash  the same with a hash set of exact keys (no "flags
//	                 interval"): what the interval set costs
//	iptables-nft     FORWARD: ctstate accept, N rules -s A -d B -p tcp
//	                 --dport P -j ACCEPT, DROP; iptables-nft-restore
//	iptables-legacy  the same through iptables-legacy-restore (x_tables)
//
// Address plan (nothing of the host is touched: the three namespaces are
// the benchmark's own, and their veths are created inside them):
//
//	client ns  c0 198.18.1.2/24 (not admitted), 198.18.1.8-11 (the
//	           benchmark's sources, 198.18.1.8/30), default via 198.18.1.1
//	router ns  r0 198.18.1.1/24 — r1 198.18.2.1/24, ip_forward=1
//	server ns  s0 198.18.2.2/24, default via 198.18.2.1; listens on
//	           198.18.2.2:8080 (allowed) and :8081 (never allowed)
//	filler     flows from 198.19.0.0/16 to 198.18.200.0/24: rules only,
//	           no packet is sent to them
//
// Everything is removed on exit, on failure and on Ctrl-C (SIGINT,
// SIGTERM). After a SIGKILL, remove leftovers with
// `ip netns del zwbench-<id>-{cli,rtr,srv}` (`ip netns list` shows them).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second signal kills the process the ordinary way.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "packet-rate: interrupted; its namespaces are removed")
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "packet-rate:", err)
		os.Exit(1)
	}
}
