// Package swarmbed runs a Docker Swarm of several nodes on one Linux host
// for integration tests: one containerd and dockerd per node, each in a
// network namespace of its own, joined by veths on a bridge in a "switch"
// namespace. Nothing is created or changed in the host's own network
// namespace or firewall.
//
// Each node is one process tree: nsenter into the node's namespace, then
// unshare a private mount and UTS namespace, mount a sysfs of the node's
// namespace on /sys (as `ip netns exec` does) and the host's cgroup
// hierarchies again, start containerd (its own root, state and socket; CRI
// and NRI off) and exec dockerd (its own socket, data-root and exec-root;
// no default bridge; its containers under the cgroup parent of the node).
// The nodes' mounts (image layers, Docker's namespace files) live in that
// mount namespace only.
//
// The engine is the one the test suite runs (see [Engine]): Debian's
// docker.io 20.10 with its containerd 1.6, or docker.io 28.5.2 with
// containerd 2.1.9 unpacked by scripts/engine28.sh. A bed of three nodes
// starts in a few seconds and takes about 250 MiB.
//
// This kernel has no ESP/GCM (encrypted overlays carry nothing between
// nodes) and no IPVS (no routing mesh, no virtual IPs: use
// --endpoint-mode dnsrr, tasks.NAME and mode=host publishing).
package swarmbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/zonewarden/zonewarden/internal/testenv"
)

// Bed is a running Swarm test bed.
type Bed struct {
	Nodes []*Node
	// Image is the test image's tag, present on every node.
	Image string

	name   string // prefix of the bed's namespaces, folders and cgroups
	dir    string // data: /tmp/<name>
	run    string // state: /run/<name>
	engine Engine
}

// Node is one node of a bed.
type Node struct {
	Index    int
	Hostname string
	// Netns is the node's network namespace (a file under /run/netns).
	Netns string
	// Addr is the node's address on the underlay.
	Addr   netip.Addr
	Socket string // dockerd's socket
	Client *client.Client
	// ExecRoot is dockerd's exec-root; Docker's namespace files are in
	// ExecRoot/netns, seen from the node's mount namespace only (enter
	// it through DockerdPID).
	ExecRoot   string
	DockerdPID int
	Manager    bool

	dir, run string
}

// Engine is the pair of binaries the nodes run.
type Engine struct {
	Major      int // 20 or 28
	Dockerd    string
	Containerd string
	// Path is the PATH the daemons run with: the engine's own folders
	// first (shim, docker-init, docker-proxy), then the host's (runc).
	Path string
}

// EngineEnv names the engine a bed runs: "20" or "28". Unset, the bed
// runs the engine the host's Docker daemon runs (28 when it is that), else
// 20.
const EngineEnv = "ZW_SWARMBED_ENGINE"

// docker28Dir is where scripts/engine28.sh unpacks the Docker 28 engine
// (ZW_DOCKER28_DIR).
func docker28Dir() string {
	if d := os.Getenv("ZW_DOCKER28_DIR"); d != "" {
		return d
	}
	return "/var/cache/zonewarden/docker28"
}

// PickEngine returns the engine a bed runs; see [EngineEnv].
func PickEngine(host *client.Client) (Engine, error) {
	major := os.Getenv(EngineEnv)
	if major == "" {
		major = "20"
		if host != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if v, err := host.ServerVersion(ctx); err == nil && strings.HasPrefix(v.Version, "28.") {
				major = "28"
			}
		}
	}
	sys := "/usr/sbin:/usr/bin:/sbin:/bin"
	switch major {
	case "20":
		e := Engine{Major: 20, Dockerd: "/usr/sbin/dockerd", Containerd: "/usr/bin/containerd", Path: sys}
		for _, f := range []string{e.Dockerd, e.Containerd} {
			if _, err := os.Stat(f); err != nil {
				return Engine{}, fmt.Errorf("the Swarm test bed runs Debian's docker.io: %s is missing (apt-get install -y docker.io)", f)
			}
		}
		return e, nil
	case "28":
		d := docker28Dir()
		e := Engine{Major: 28, Dockerd: d + "/usr/sbin/dockerd", Containerd: d + "/usr/bin/containerd", Path: d + "/usr/sbin:" + d + "/usr/bin:" + sys}
		for _, f := range []string{e.Dockerd, e.Containerd} {
			if _, err := os.Stat(f); err != nil {
				return Engine{}, fmt.Errorf("the Swarm test bed runs Docker 28: %s is missing (scripts/engine28.sh fetch)", f)
			}
		}
		return e, nil
	}
	return Engine{}, fmt.Errorf("%s=%q: want 20 or 28", EngineEnv, major)
}

// Prefix starts the names of everything a bed makes (namespaces, folders
// under /tmp and /run, cgroups), so that a killed run's leftovers can be
// found: scripts/lib.sh removes them.
const Prefix = "zwsb"

// underlay is the nodes' network: node i is .(10+i).
var underlay = netip.MustParsePrefix("10.250.0.0/24")

// Up starts a bed of n nodes, the first managers of them managers (at
// least one), and removes it when t ends, also when t fails. It needs
// root; a missing engine skips t, or fails it where tests may not be
// skipped (testenv.Required).
func Up(t testing.TB, n, managers int) *Bed {
	t.Helper()
	testenv.RequireRoot(t)
	host, _ := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	e, err := PickEngine(host)
	if host != nil {
		host.Close()
	}
	if err != nil {
		if testenv.Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	b := &Bed{name: fmt.Sprintf("%s%d", Prefix, os.Getpid()%100000), engine: e}
	b.dir, b.run = filepath.Join("/tmp", b.name), filepath.Join("/run", b.name)
	t.Cleanup(func() {
		if err := b.Down(); err != nil {
			t.Errorf("swarm test bed: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := b.up(ctx, n, max(1, managers)); err != nil {
		t.Fatalf("swarm test bed (Docker %d): %v", e.Major, err)
	}
	return b
}

func (b *Bed) up(ctx context.Context, n, managers int) error {
	if err := b.underlay(n); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		node := &Node{Index: i, Hostname: fmt.Sprintf("%s-node%d", b.name, i), Netns: fmt.Sprintf("%s-%d", b.name, i),
			Addr: nodeAddr(i), dir: filepath.Join(b.dir, fmt.Sprint(i)), run: filepath.Join(b.run, fmt.Sprint(i))}
		node.Socket = filepath.Join(node.run, "docker.sock")
		node.ExecRoot = filepath.Join(node.run, "exec")
		b.Nodes = append(b.Nodes, node)
		if err := b.start(node); err != nil {
			return err
		}
	}
	for _, node := range b.Nodes {
		if err := b.wait(ctx, node); err != nil {
			return err
		}
	}
	for _, node := range b.Nodes {
		tag, err := testenv.BuildImage(ctx, node.Client)
		if err != nil {
			return fmt.Errorf("the test image on node %d: %w", node.Index, err)
		}
		b.Image = tag
	}
	return b.form(ctx, managers)
}

func nodeAddr(i int) netip.Addr {
	a := underlay.Addr().As4()
	a[3] = byte(10 + i)
	return netip.AddrFrom4(a)
}

// switchNS is the namespace of the bed's switch.
func (b *Bed) switchNS() string { return b.name + "-sw" }

// underlay makes the switch and the nodes' namespaces, each with eth0 on
// a port of the switch.
func (b *Bed) underlay(n int) error {
	sw := b.switchNS()
	cmds := [][]string{
		{"ip", "netns", "add", sw},
		{"ip", "-n", sw, "link", "set", "lo", "up"},
		{"ip", "netns", "exec", sw, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=0", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "-n", sw, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", sw, "link", "set", "br0", "up"},
	}
	for i := 1; i <= n; i++ {
		ns, port := fmt.Sprintf("%s-%d", b.name, i), fmt.Sprintf("node%d", i)
		cmds = append(cmds,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "-n", sw, "link", "set", port, "master", "br0", "up"},
			[]string{"ip", "-n", ns, "addr", "add", netip.PrefixFrom(nodeAddr(i), underlay.Bits()).String(), "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
		)
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

// start starts a node's containerd and dockerd.
func (b *Bed) start(node *Node) error {
	for _, d := range []string{filepath.Join(node.dir, "containerd"), filepath.Join(node.dir, "docker"), filepath.Join(node.run, "containerd"), node.ExecRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	version, disabled := 3, `"io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"`
	if b.engine.Major == 20 {
		version, disabled = 2, `"io.containerd.grpc.v1.cri"`
	}
	csock := filepath.Join(node.run, "containerd", "containerd.sock")
	files := map[string]string{
		"containerd.toml": fmt.Sprintf(`version = %d
root = %q
state = %q
disabled_plugins = [%s]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = %q
[metrics]
  address = ""
`, version, filepath.Join(node.dir, "containerd"), filepath.Join(node.run, "containerd"), disabled, csock, csock+".ttrpc", filepath.Join(node.run, "containerd", "debug.sock")),
		// Its own daemon.json, so that the host's is not read; bridge
		// networks (docker_gwbridge) from a pool of the node's own.
		"daemon.json": fmt.Sprintf(`{"default-address-pools": [{"base": "10.250.%d.0/22", "size": 24}]}`, 64+4*node.Index),
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var sh strings.Builder
	fmt.Fprintf(&sh, "set -e\necho %s >/proc/sys/kernel/hostname\numount -l /sys\nmount -t sysfs -o rw,nosuid,nodev,noexec,relatime sysfs /sys\n", node.Hostname)
	for _, m := range mounts {
		if m.fstype == "tmpfs" {
			fmt.Fprintf(&sh, "mount -t tmpfs -o %s tmpfs %s\n", m.options, m.point)
			continue
		}
		fmt.Fprintf(&sh, "mkdir -p %s && mount -t %s -o %s %s %s\n", m.point, m.fstype, m.options, m.fstype, m.point)
	}
	fmt.Fprintf(&sh, "export PATH=%s HOME=/root\n", b.engine.Path)
	fmt.Fprintf(&sh, "%s --config %s </dev/null >%s 2>&1 &\necho $! >%s\n", b.engine.Containerd, filepath.Join(node.dir, "containerd.toml"), filepath.Join(node.dir, "containerd.log"), filepath.Join(node.run, "containerd.pid"))
	fmt.Fprintf(&sh, "n=0; while [ ! -S %s ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done\n", csock)
	fmt.Fprintf(&sh, "exec %s -H unix://%s --containerd %s --data-root %s --exec-root %s --pidfile %s --config-file %s --bridge none --cgroup-parent /%s-%d",
		b.engine.Dockerd, node.Socket, csock, filepath.Join(node.dir, "docker"), node.ExecRoot, filepath.Join(node.run, "dockerd.pid"),
		filepath.Join(node.dir, "daemon.json"), b.name, node.Index)
	if b.engine.Major >= 28 {
		fmt.Fprintf(&sh, " --userland-proxy-path %s", filepath.Join(docker28Dir(), "usr/sbin/docker-proxy"))
	}
	sh.WriteString("\n")
	files["node.sh"] = sh.String()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(node.dir, name), []byte(text), 0o600); err != nil {
			return err
		}
	}
	log, err := os.Create(filepath.Join(node.dir, "dockerd.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+node.Netns, "--", "unshare", "--mount", "--uts", "--propagation", "private", "--",
		"env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "sh", filepath.Join(node.dir, "node.sh"))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting node %d: %w", node.Index, err)
	}
	node.DockerdPID = cmd.Process.Pid // sh execs dockerd
	go cmd.Wait()                     // reaped when it ends
	return nil
}

type mount struct{ fstype, options, point string }

// cgroupMounts returns the host's cgroup mounts, the tmpfs under them
// first, to mount again in a node's mount namespace (a fresh sysfs hides
// them).
func cgroupMounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	s := bufio.NewScanner(f)
	for s.Scan() {
		// id parent major:minor root mount-point options [optional...] - fstype source super-options
		fields := strings.Fields(s.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || !strings.HasPrefix(fields[4], "/sys/fs/cgroup") {
			continue
		}
		fstype, opts, point := fields[sep+1], fields[sep+3], fields[4]
		if fstype == "cgroup" || fstype == "cgroup2" || fstype == "tmpfs" && point == "/sys/fs/cgroup" {
			out = append(out, mount{fstype, opts, point})
		}
	}
	return out, s.Err()
}

// wait waits for a node's dockerd to answer and connects its client.
func (b *Bed) wait(ctx context.Context, node *Node) error {
	c, err := client.NewClientWithOpts(client.WithHost("unix://"+node.Socket), client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	node.Client = c
	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			tail, _ := os.ReadFile(filepath.Join(node.dir, "dockerd.log"))
			return fmt.Errorf("node %d's dockerd does not answer after 60 s: %v; its log ends:\n%s", node.Index, err, lastLines(string(tail), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// form makes node 1 a Swarm's first manager and joins the others, the
// first managers of them as managers.
func (b *Bed) form(ctx context.Context, managers int) error {
	first := b.Nodes[0]
	_, err := first.Client.SwarmInit(ctx, swarm.InitRequest{
		ListenAddr: first.Addr.String() + ":2377", AdvertiseAddr: first.Addr.String(),
		DefaultAddrPool: []string{"10.250.128.0/17"}, SubnetSize: 24,
	})
	if err != nil {
		return fmt.Errorf("swarm init on node 1: %w", err)
	}
	first.Manager = true
	sw, err := first.Client.SwarmInspect(ctx)
	if err != nil {
		return err
	}
	for _, node := range b.Nodes[1:] {
		token := sw.JoinTokens.Worker
		if node.Index <= managers {
			token, node.Manager = sw.JoinTokens.Manager, true
		}
		err := node.Client.SwarmJoin(ctx, swarm.JoinRequest{
			ListenAddr: node.Addr.String() + ":2377", AdvertiseAddr: node.Addr.String(),
			RemoteAddrs: []string{first.Addr.String() + ":2377"}, JoinToken: token,
		})
		if err != nil {
			return fmt.Errorf("node %d joining the swarm: %w", node.Index, err)
		}
	}
	return nil
}

// Down removes everything of the bed: services and containers, daemons,
// processes left in its namespaces and cgroups, mounts, cgroups,
// namespaces and folders. It is safe to call twice.
func (b *Bed) Down() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if len(b.Nodes) > 0 && b.Nodes[0].Client != nil {
		if svcs, err := b.Nodes[0].Client.ServiceList(ctx, swarm.ServiceListOptions{}); err == nil {
			for _, s := range svcs {
				_ = b.Nodes[0].Client.ServiceRemove(ctx, s.ID)
			}
		}
	}
	for _, node := range b.Nodes {
		if node.Client == nil {
			continue
		}
		if cs, err := node.Client.ContainerList(ctx, container.ListOptions{All: true}); err == nil {
			for _, c := range cs {
				_ = node.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			}
		}
		node.Client.Close()
		node.Client = nil
	}
	var errs []error
	for _, node := range b.Nodes {
		stopPidfile(filepath.Join(node.run, "dockerd.pid"), 5*time.Second)
	}
	for _, node := range b.Nodes {
		stopPidfile(filepath.Join(node.run, "containerd.pid"), 10*time.Second)
	}
	errs = append(errs, Remove(b.name))
	b.Nodes = nil
	return errors.Join(errs...)
}

// Remove removes what remains of a bed named name (a Prefix and a
// number), its daemons stopped or killed: processes in its namespaces and
// cgroups, mounts, cgroups, namespaces and folders.
func Remove(name string) error {
	nss, _ := filepath.Glob("/run/netns/" + name + "-*")
	for _, ns := range nss {
		out, _ := exec.Command("ip", "netns", "pids", filepath.Base(ns)).Output()
		for _, p := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/" + name + "-*")
	for _, cg := range cgroups {
		_ = filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Name() == "cgroup.procs" {
				b, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			return nil
		})
	}
	time.Sleep(300 * time.Millisecond) // the killed processes exit
	var errs []error
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var points []string
		for _, line := range strings.Split(string(mi), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && (strings.HasPrefix(f[4], "/tmp/"+name+"/") || strings.HasPrefix(f[4], "/run/"+name+"/")) {
				points = append(points, f[4])
			}
		}
		for i := len(points) - 1; i >= 0; i-- {
			if err := syscall.Unmount(points[i], 0); err != nil {
				_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
			}
		}
	}
	for _, cg := range cgroups {
		// Deepest first.
		var dirs []string
		_ = filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
	for _, ns := range nss {
		if out, err := exec.Command("ip", "netns", "del", filepath.Base(ns)).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", filepath.Base(ns), err, out))
		}
	}
	for _, d := range []string{"/tmp/" + name, "/run/" + name} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stopPidfile stops the process a pid file names: SIGTERM, then SIGKILL
// after grace.
func stopPidfile(path string, grace time.Duration) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SwitchNetns is the path of the namespace of the bed's switch: every
// packet between nodes (the underlay: VXLAN, or ESP around it) crosses its
// bridge.
func (b *Bed) SwitchNetns() string { return "/run/netns/" + b.switchNS() }
