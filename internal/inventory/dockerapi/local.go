package dockerapi

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// The facts of a local daemon that the Engine API does not show (or no
// longer shows: /info dropped the bridge-nf warnings in Docker 27,
// moby#49089): read from this host's /proc, sysctls and the daemon's
// command line and configuration file. Only for a daemon on a unix
// socket of this host, in this network namespace.

// procRoot is where the host's proc file system is; tests point it
// elsewhere.
var procRoot = "/proc"

// local reports whether the daemon runs on this host.
func (c *Client) local() bool { return strings.HasPrefix(c.host, "unix://") }

// readLocal fills what this host tells about its daemon into d.
func readLocal(d *inventory.Daemon, socket string) {
	readBrNetfilter(d)
	args, ok := findDockerd(socket)
	if !ok {
		return
	}
	opts := daemonOptions(args)
	proxy := true
	if v, ok := opts["userland-proxy"]; ok {
		if b, err := strconv.ParseBool(v); err == nil {
			proxy = b
		}
	}
	d.UserlandProxy = &proxy
	if b, err := strconv.ParseBool(opts["allow-direct-routing"]); err == nil {
		d.AllowDirectRouting = b
	}
}

// readBrNetfilter reads the br_netfilter sysctls: absent, the module is
// not loaded and no bridged frame passes the inet hooks.
func readBrNetfilter(d *inventory.Daemon) {
	dir := filepath.Join(procRoot, "sys/net/bridge")
	if _, err := os.Stat(dir); err != nil {
		if os.IsNotExist(err) {
			d.BrNetfilter, d.BridgeNfIptables, d.BridgeNfIP6tables = ptr(false), ptr(false), ptr(false)
		}
		return
	}
	d.BrNetfilter = ptr(true)
	for name, dst := range map[string]**bool{"bridge-nf-call-iptables": &d.BridgeNfIptables, "bridge-nf-call-ip6tables": &d.BridgeNfIP6tables} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		*dst = ptr(strings.TrimSpace(string(b)) == "1")
	}
}

// findDockerd returns the command line of the dockerd that serves socket
// (a unix:// address): one in this network namespace whose -H names it,
// or, for the default socket, one with no -H.
func findDockerd(socket string) ([]string, bool) {
	self, err := os.Readlink(filepath.Join(procRoot, "self/ns/net"))
	if err != nil {
		return nil, false
	}
	path := strings.TrimPrefix(socket, "unix://")
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "dockerd" {
			continue
		}
		if ns, err := os.Readlink(filepath.Join(dir, "ns/net")); err != nil || ns != self {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		hosts := flagValues(args, "-H", "--host")
		if len(hosts) == 0 && path == strings.TrimPrefix(DefaultHost, "unix://") {
			return args, true
		}
		for _, h := range hosts {
			if strings.TrimPrefix(h, "unix://") == path || h == "fd://" && path == strings.TrimPrefix(DefaultHost, "unix://") {
				return args, true
			}
		}
	}
	return nil, false
}

// flagValues returns the values of a flag given as "--name=v", "--name v"
// or "-H v", in order.
func flagValues(args []string, names ...string) []string {
	var out []string
	for i := 1; i < len(args); i++ {
		for _, n := range names {
			switch {
			case strings.HasPrefix(args[i], n+"="):
				out = append(out, strings.TrimPrefix(args[i], n+"="))
			case args[i] == n && i+1 < len(args):
				out = append(out, args[i+1])
			}
		}
	}
	return out
}

// daemonOptions returns the daemon options that matter here, from its
// configuration file (--config-file, else /etc/docker/daemon.json), then
// its flags, which win. A boolean flag with no value is "true".
func daemonOptions(args []string) map[string]string {
	opts := map[string]string{}
	file := "/etc/docker/daemon.json"
	if f := flagValues(args, "--config-file"); len(f) > 0 {
		file = f[len(f)-1]
	}
	if b, err := os.ReadFile(file); err == nil {
		var cfg map[string]any
		if json.Unmarshal(b, &cfg) == nil {
			for k, v := range cfg {
				if b, ok := v.(bool); ok {
					opts[k] = strconv.FormatBool(b)
				}
			}
		}
	}
	for _, name := range []string{"userland-proxy", "allow-direct-routing"} {
		for _, a := range args[1:] {
			switch {
			case a == "--"+name:
				opts[name] = "true"
			case strings.HasPrefix(a, "--"+name+"="):
				opts[name] = strings.TrimPrefix(a, "--"+name+"=")
			}
		}
	}
	return opts
}
