package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// NetworkOpts are the settings of a test network. The zero value is a plain
// bridge network with Docker's defaults.
type NetworkOpts struct {
	// Driver is "bridge" when empty; "macvlan" wants Options["parent"],
	// an interface the test made (never one of the host's own NICs).
	Driver string
	// Internal makes the network internal: no route out, and Docker ignores
	// published ports of containers whose only network it is.
	Internal bool
	// DisableICC sets com.docker.network.bridge.enable_icc=false: Docker
	// drops traffic between containers of the network.
	DisableICC bool
	// IPv6 enables IPv6. Docker 20.10 has no default IPv6 pool, so without
	// Subnet6 the network gets a ULA /64 derived from the run id and name.
	IPv6 bool
	// Subnet is the IPv4 subnet ("10.123.0.0/24"); empty lets Docker pick.
	Subnet string
	// Gateway is the IPv4 gateway of Subnet; empty lets Docker pick.
	Gateway string
	// Subnet6 is the IPv6 subnet when IPv6 is set.
	Subnet6 string
	// Options are more driver options (com.docker.network.bridge.name, ...).
	Options map[string]string
	// Labels are added to the network's labels (next to [Label]).
	Labels map[string]string
	// ExactName uses the name as given instead of [Prefixed].
	ExactName bool
}

// CreateNetwork creates a bridge network called [Prefixed](runID, name)
// (or name itself with opts.ExactName), labelled [Label]=runID, and returns
// its ID. It fails t on error and makes sure [Cleanup] removes the network.
func CreateNetwork(t testing.TB, cli *client.Client, runID, name string, opts NetworkOpts) string {
	t.Helper()
	id, err := TryCreateNetwork(t, cli, runID, name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TryCreateNetwork is [CreateNetwork] returning the error instead of failing
// t: for a caller that retries, with another subnet, when Docker answers
// that the subnet overlaps another network's ("Pool overlaps with other
// one on this address space").
func TryCreateNetwork(t testing.TB, cli *client.Client, runID, name string, opts NetworkOpts) (string, error) {
	t.Helper()
	Cleanup(t, cli, runID)
	fullName := name
	if !opts.ExactName {
		fullName = Prefixed(runID, name)
	}
	labels := maps.Clone(opts.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[Label] = runID
	options := maps.Clone(opts.Options)
	if options == nil {
		options = map[string]string{}
	}
	if opts.DisableICC {
		options["com.docker.network.bridge.enable_icc"] = "false"
	}
	driver := opts.Driver
	if driver == "" {
		driver = "bridge"
	}
	create := network.CreateOptions{
		Driver:   driver,
		Internal: opts.Internal,
		Labels:   labels,
		Options:  options,
	}
	var ipam []network.IPAMConfig
	if opts.Subnet != "" {
		ipam = append(ipam, network.IPAMConfig{Subnet: opts.Subnet, Gateway: opts.Gateway})
	}
	if opts.IPv6 {
		on := true
		create.EnableIPv6 = &on
		subnet6 := opts.Subnet6
		if subnet6 == "" {
			subnet6 = ulaSubnet(runID, fullName)
		}
		ipam = append(ipam, network.IPAMConfig{Subnet: subnet6})
	}
	if len(ipam) > 0 {
		create.IPAM = &network.IPAM{Driver: "default", Config: ipam}
	}

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	resp, err := cli.NetworkCreate(ctx, fullName, create)
	if err != nil {
		return "", fmt.Errorf("creating network %s: %w", fullName, err)
	}
	if resp.Warning != "" {
		t.Logf("creating network %s: Docker warns: %s", fullName, resp.Warning)
	}
	return resp.ID, nil
}

// ulaSubnet returns a unique local IPv6 /64 (fd00::/8) for one network.
func ulaSubnet(runID, name string) string {
	h := sha256.Sum256([]byte(runID + "/" + name))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:8], h[:7])
	return netip.PrefixFrom(netip.AddrFrom16(a), 64).String()
}

// ContainerSpec describes a test container. The zero value is a container
// of the test image on Docker's default bridge, created but not started.
type ContainerSpec struct {
	// Name is the container name, used as [Prefixed](runID, Name) unless
	// ExactName. Empty gives "zw<runID>-c<n>".
	Name      string
	ExactName bool
	// Image defaults to the busybox test image ([Image]).
	Image string
	// Network is the network (name or ID) the container is created on; it
	// is also the network mode unless NetworkMode is set.
	Network string
	// ExtraNetworks are connected after creation, before the start (API
	// 1.41 creates a container on one network only).
	ExtraNetworks []string
	// Ports are published ports, "[ip:]host:container[/proto]" as for
	// docker run -p ("8080:80", "127.0.0.1:5432:5432/tcp", "53:53/udp").
	Ports []string
	// Privileged, ReadOnly (root filesystem), CapAdd, CapDrop, SecurityOpt
	// and Binds are the docker run options of the same names. Privileged
	// containers and CapAdd ALL cannot start on the project's VMs: create
	// them with Start false.
	Privileged  bool
	ReadOnly    bool
	CapAdd      []string
	CapDrop     []string
	SecurityOpt []string
	Binds       []string
	// NetworkMode is "host", "none", "container:<id>" or a network; empty
	// means Network, or Docker's default bridge.
	NetworkMode string
	// Labels are added to the container's labels (next to [Label]).
	Labels map[string]string
	// Env is the environment, "KEY=value".
	Env []string
	// Cmd replaces the image's command (`sleep 3600` for the test image).
	Cmd []string
	// Start starts the container after creating it.
	Start bool
	// IPv4 is the container's address on Network (docker run --ip);
	// invalid: Docker picks one.
	IPv4 netip.Addr
}

// containerSeq numbers the containers created without a name.
var containerSeq atomic.Uint64

// RunContainer creates the container spec describes, labelled
// [Label]=runID, connects its extra networks, starts it when spec.Start,
// and returns its ID. It fails t on error and makes sure [Cleanup] removes
// the container.
func RunContainer(t testing.TB, cli *client.Client, runID string, spec ContainerSpec) string {
	t.Helper()
	Cleanup(t, cli, runID)
	name := spec.Name
	switch {
	case name == "":
		name = Prefixed(runID, "c"+strconv.FormatUint(containerSeq.Add(1), 10))
	case !spec.ExactName:
		name = Prefixed(runID, name)
	}
	img := spec.Image
	if img == "" {
		img = Image(t, cli)
	}
	exposed, bindings, err := nat.ParsePortSpecs(spec.Ports)
	if err != nil {
		t.Fatalf("container %s: ports %q: %v", name, spec.Ports, err)
	}
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[Label] = runID

	mode := container.NetworkMode(spec.NetworkMode)
	if mode == "" {
		mode = container.NetworkMode(spec.Network)
	}
	var netCfg *network.NetworkingConfig
	if spec.Network != "" && mode.IsUserDefined() {
		ep := &network.EndpointSettings{}
		if spec.IPv4.IsValid() {
			ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: spec.IPv4.String()}
		}
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{spec.Network: ep}}
	}
	cfg := &container.Config{
		Image:        img,
		Cmd:          spec.Cmd,
		Env:          spec.Env,
		Labels:       labels,
		ExposedPorts: exposed,
	}
	host := &container.HostConfig{
		NetworkMode:    mode,
		PortBindings:   bindings,
		Privileged:     spec.Privileged,
		ReadonlyRootfs: spec.ReadOnly,
		CapAdd:         spec.CapAdd,
		CapDrop:        spec.CapDrop,
		SecurityOpt:    spec.SecurityOpt,
		Binds:          spec.Binds,
	}

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	resp, err := cli.ContainerCreate(ctx, cfg, host, netCfg, nil, name)
	if err != nil {
		t.Fatalf("creating container %s: %v", name, err)
	}
	for _, w := range resp.Warnings {
		t.Logf("creating container %s: Docker warns: %s", name, w)
	}
	for _, n := range spec.ExtraNetworks {
		if err := cli.NetworkConnect(ctx, n, resp.ID, &network.EndpointSettings{}); err != nil {
			t.Fatalf("connecting container %s to network %s: %v", name, n, err)
		}
	}
	if spec.Start {
		if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
			t.Fatalf("starting container %s: %v", name, err)
		}
	}
	return resp.ID
}

// ExecResult is the outcome of [Exec].
type ExecResult struct {
	ExitCode int
	Stdout   string
	Stderr   string
}

// String shows the result for test failure messages.
func (r ExecResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
}

// Exec runs cmd in the running container id, waits for it (up to 2 min), and
// returns its exit code and output. A command that fails is a result, not a
// test failure; t fails only when Docker cannot run the command at all.
func Exec(t testing.TB, cli *client.Client, id string, cmd ...string) ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	created, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd:          cmd,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		t.Fatalf("exec %q in %s: %v", cmd, shortID(id), err)
	}
	att, err := cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %q in %s: attach: %v", cmd, shortID(id), err)
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		t.Fatalf("exec %q in %s: reading output: %v", cmd, shortID(id), err)
	}
	// The stream ends as the process exits; the exit code can lag behind.
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		info, err := cli.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			t.Fatalf("exec %q in %s: inspect: %v", cmd, shortID(id), err)
		}
		if !info.Running {
			return ExecResult{ExitCode: info.ExitCode, Stdout: stdout.String(), Stderr: stderr.String()}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("exec %q in %s: still running after %s", cmd, shortID(id), opTimeout)
		case <-time.After(wait):
		}
	}
}

// Addr returns the IPv4 address of container id on network (name or ID).
// It fails t if the container has none there.
func Addr(t testing.TB, cli *client.Client, id, network string) netip.Addr {
	t.Helper()
	return endpointAddr(t, cli, id, network, false)
}

// Addr6 returns the IPv6 address of container id on network (name or ID).
// It fails t if the container has none there.
func Addr6(t testing.TB, cli *client.Client, id, network string) netip.Addr {
	t.Helper()
	return endpointAddr(t, cli, id, network, true)
}

func endpointAddr(t testing.TB, cli *client.Client, id, netName string, v6 bool) netip.Addr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("inspecting container %s: %v", shortID(id), err)
	}
	if info.NetworkSettings == nil {
		t.Fatalf("container %s has no network settings", shortID(id))
	}
	for name, ep := range info.NetworkSettings.Networks {
		byID := ep != nil && (ep.NetworkID == netName || len(netName) >= 12 && strings.HasPrefix(ep.NetworkID, netName))
		if ep == nil || name != netName && !byID {
			continue
		}
		s, family := ep.IPAddress, "IPv4"
		if v6 {
			s, family = ep.GlobalIPv6Address, "IPv6"
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			t.Fatalf("container %s has no %s address on network %s (is it running?): %q", shortID(id), family, netName, s)
		}
		return a
	}
	t.Fatalf("container %s is not on network %s", shortID(id), netName)
	return netip.Addr{}
}

// Pid returns the host PID of the main process of the running container
// id: /proc/PID/ns/net is the container's network namespace. It fails t if
// the container is not running.
func Pid(t testing.TB, cli *client.Client, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("inspecting container %s: %v", shortID(id), err)
	}
	if info.State == nil || !info.State.Running || info.State.Pid <= 0 {
		t.Fatalf("container %s is not running (state %+v), so it has no PID", shortID(id), info.State)
	}
	return info.State.Pid
}
