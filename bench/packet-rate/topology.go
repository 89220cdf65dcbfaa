package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"
)

// Addresses of the topology (see the package comment).
var (
	clientPrimary = netip.MustParseAddr("198.18.1.2") // not admitted
	clientSources = netip.MustParsePrefix("198.18.1.8/30")
	routerClient  = netip.MustParseAddr("198.18.1.1")
	routerServer  = netip.MustParseAddr("198.18.2.1")
	serverAddr    = netip.MustParseAddr("198.18.2.2")
	clientNet     = netip.MustParsePrefix("198.18.1.0/24")
	serverNet     = netip.MustParsePrefix("198.18.2.0/24")
)

// Ports the server listens on.
const (
	allowedPort = 8080 // the benchmark's flow
	deniedPort  = 8081 // in no rule: must be dropped whenever rules are loaded
)

// sources returns the benchmark's client source addresses.
func sources() []netip.Addr {
	var out []netip.Addr
	for a := clientSources.Addr(); clientSources.Contains(a); a = a.Next() {
		out = append(out, a)
	}
	return out
}

// topology is the three namespaces of one measurement.
type topology struct {
	client, router, server string // names for `ip netns`
}

func newTopology(id string) topology {
	p := "zwbench-" + id + "-"
	return topology{client: p + "cli", router: p + "rtr", server: p + "srv"}
}

func (t topology) names() []string { return []string{t.client, t.router, t.server} }

// netnsPath is where `ip netns add` binds a namespace.
func netnsPath(name string) string { return "/run/netns/" + name }

// create builds the namespaces, the veth pairs (made inside the
// namespaces: no interface ever exists in the host's) and the routes, and
// sets the sysctls of each namespace. On error the caller still calls
// destroy.
func (t topology) create(ctx context.Context) error {
	for _, n := range t.names() {
		if err := execute(ctx, "ip", "netns", "add", n); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"ip", "-n", t.client, "link", "add", "c0", "type", "veth", "peer", "name", "r0", "netns", t.router},
		{"ip", "-n", t.server, "link", "add", "s0", "type", "veth", "peer", "name", "r1", "netns", t.router},
		{"ip", "-n", t.client, "addr", "add", clientPrimary.String() + "/24", "dev", "c0"},
		// The client side is a bridge with r0 as its port, as a Docker
		// network is: the bridge-family hooks (the endpoint binding) see
		// every frame of the client; its address is the gateway's.
		{"ip", "-n", t.router, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", t.router, "link", "set", "r0", "master", "br0"},
		{"ip", "-n", t.router, "addr", "add", routerClient.String() + "/24", "dev", "br0"},
		{"ip", "-n", t.router, "addr", "add", routerServer.String() + "/24", "dev", "r1"},
		{"ip", "-n", t.server, "addr", "add", serverAddr.String() + "/24", "dev", "s0"},
	}
	for _, a := range sources() {
		steps = append(steps, []string{"ip", "-n", t.client, "addr", "add", a.String() + "/24", "dev", "c0"})
	}
	for _, n := range t.names() {
		steps = append(steps, []string{"ip", "-n", n, "link", "set", "lo", "up"})
	}
	steps = append(steps,
		[]string{"ip", "-n", t.client, "link", "set", "c0", "up"},
		[]string{"ip", "-n", t.router, "link", "set", "r0", "up"},
		[]string{"ip", "-n", t.router, "link", "set", "br0", "up"},
		[]string{"ip", "-n", t.router, "link", "set", "r1", "up"},
		[]string{"ip", "-n", t.server, "link", "set", "s0", "up"},
		[]string{"ip", "-n", t.client, "route", "add", "default", "via", routerClient.String()},
		[]string{"ip", "-n", t.server, "route", "add", "default", "via", routerServer.String()},
		// The client's ephemeral ports: as wide as possible, in the client
		// namespace only.
		[]string{"ip", "netns", "exec", t.client, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"},
		[]string{"ip", "netns", "exec", t.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
		// Aborted connections leave conntrack entries in CLOSE state for
		// 10 s by default; at tens of thousands of connections a second
		// that would fill the (host-wide) nf_conntrack_max. One second
		// keeps the table small; it changes no verdict.
		[]string{"ip", "netns", "exec", t.router, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_timeout_close=1"},
		[]string{"ip", "netns", "exec", t.server, "sysctl", "-q", "-w", "net.core.somaxconn=8192"},
		[]string{"ip", "netns", "exec", t.server, "sysctl", "-q", "-w", "net.ipv4.tcp_max_syn_backlog=8192"},
	)
	for _, s := range steps {
		if err := execute(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return t.waitCarrier(ctx)
}

// waitCarrier waits until the veths report carrier: the kernel announces
// it with up to a second's delay (linkwatch), and drops packets until then.
func (t topology) waitCarrier(ctx context.Context) error {
	links := [][2]string{{t.client, "c0"}, {t.router, "r0"}, {t.router, "br0"}, {t.router, "r1"}, {t.server, "s0"}}
	deadline := time.Now().Add(10 * time.Second)
	for _, l := range links {
		for {
			out, err := exec.CommandContext(ctx, "ip", "-n", l[0], "-o", "link", "show", "dev", l[1]).Output()
			if err != nil {
				return fmt.Errorf("ip -n %s link show dev %s: %w", l[0], l[1], err)
			}
			if strings.Contains(string(out), "state UP") {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s in %s: no carrier after 10s: %s", l[1], l[0], out)
			}
			if err := sleep(ctx, 50*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// clientPort returns the ifindex of r0, the bridge port the client's
// frames enter the router's bridge through.
func (t topology) clientPort(ctx context.Context) (int, error) {
	out, err := exec.CommandContext(ctx, "ip", "-n", t.router, "-o", "link", "show", "dev", "r0").Output()
	if err != nil {
		return 0, fmt.Errorf("ip -n %s link show dev r0: %w", t.router, err)
	}
	idx, _, _ := strings.Cut(string(out), ":")
	var n int
	if _, err := fmt.Sscan(idx, &n); err != nil {
		return 0, fmt.Errorf("ifindex of r0 in %q: %w", out, err)
	}
	return n, nil
}

// destroy deletes the namespaces, and with them their veths, rules and
// conntrack entries. It ignores namespaces that do not exist and runs
// even after ctx is cancelled.
func (t topology) destroy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, n := range t.names() {
		if err := execute(ctx, "ip", "netns", "del", n); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// execute runs a command and returns its error with its output.
func execute(ctx context.Context, name string, args ...string) error {
	return runInput(ctx, nil, name, args...)
}

// runInput runs a command with stdin and returns its error with its
// output.
func runInput(ctx context.Context, stdin []byte, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 2000 {
			msg = msg[:2000] + " ..."
		}
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return nil
}
