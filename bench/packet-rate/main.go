// Command packet-rate measures what zonewarden's enforcement costs per
// packet: the rate of new TCP connections forwarded between two network
// namespaces through a router namespace, with no rules, with
// zonewarden's compiled ruleset and with the seed's approach (one
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
// Configurations (-configs; the first five are the default):
//
//	none             no rules at all: conntrack is not even active
//	ct               only "ct state established,related accept" (nft): the
//	                 conntrack cost every stateful ruleset pays (and every
//	                 Docker host already pays)
//	zonewarden       zonewarden's real ruleset: a synthetic policy bound to
//	                 a host in which the benchmark's client and server are
//	                 admitted workloads (real.go), compiled by
//	                 enforce.Compile, loaded with nflink (one transaction)
//	iptables-nft     FORWARD: ctstate accept, N rules -s A -d B -p tcp
//	                 --dport P -j ACCEPT, DROP; iptables-nft-restore
//	iptables-legacy  the same through iptables-legacy-restore (x_tables)
//	zonewarden-deny  the real ruleset of the policy with unmanaged: deny
//	zonewarden-nft   the real ruleset loaded as its nft script (nft -f)
//	exp-*            experiments: the nft script with forward4 or the flow
//	                 sets edited by hand (experiments.go)
//	sketch-*         the hand-written sketch loaded before internal/enforce
//	                 existed: one lookup in an interval or a hash set
//
// Address plan (nothing of the host is touched: the three namespaces are
// the benchmark's own, and their veths are created inside them):
//
//	client ns  c0 198.18.1.2/24 (not admitted), 198.18.1.8-11 (the
//	           benchmark's sources, 198.18.1.8/30), default via 198.18.1.1
//	router ns  r0 198.18.1.1/24 — r1 198.18.2.1/24, ip_forward=1
//	server ns  s0 198.18.2.2/24, default via 198.18.2.1; listens on
//	           198.18.2.2:8080 (allowed) and :8081 (never allowed)
//	filler     zonewarden: a synthetic policy's flows in 10.x.y.0/24
//	           zones (real.go); iptables and sketch-*: flows from
//	           198.19.0.0/16 to 198.18.200.0/24. Rules only: no packet is
//	           sent to them
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
