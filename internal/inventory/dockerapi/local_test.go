package dockerapi

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

func TestBridgeOptions(t *testing.T) {
	var n inventory.Network
	bridgeOptions(&n, map[string]string{
		optGatewayMode4:  "routed",
		optGatewayMode6:  " isolated ",
		optInhibitIPv4:   "true",
		optMasquerade:    "false",
		optHostBinding:   "192.0.2.7",
		optTrustedIfaces: "eth1: eth2:",
	})
	if n.GatewayMode(false) != inventory.GatewayRouted || n.GatewayMode(true) != inventory.GatewayIsolated {
		t.Errorf("gateway modes %q %q", n.GatewayMode4, n.GatewayMode6)
	}
	if !n.InhibitIPv4 || !n.NoMasquerade || n.HostBinding.String() != "192.0.2.7" {
		t.Errorf("inhibit %v, no masquerade %v, host binding %v", n.InhibitIPv4, n.NoMasquerade, n.HostBinding)
	}
	if len(n.TrustedHostInterfaces) != 2 || n.TrustedHostInterfaces[1] != "eth2" {
		t.Errorf("trusted interfaces %q", n.TrustedHostInterfaces)
	}
	var d inventory.Network
	bridgeOptions(&d, map[string]string{optHostBinding: "0.0.0.0", optMasquerade: "maybe"})
	if d.GatewayMode(false) != inventory.GatewayNAT || d.HostBinding.IsValid() || d.NoMasquerade {
		t.Errorf("defaults: %+v", d)
	}
}

// fakeProc writes a /proc with this process's netns and one dockerd.
func fakeProc(t *testing.T, cmdline string, brnf map[string]string) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "self/ns"), 0o755))
	must(os.Symlink("net:[4026531840]", filepath.Join(root, "self/ns/net")))
	must(os.MkdirAll(filepath.Join(root, "4242/ns"), 0o755))
	must(os.Symlink("net:[4026531840]", filepath.Join(root, "4242/ns/net")))
	must(os.WriteFile(filepath.Join(root, "4242/comm"), []byte("dockerd\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "4242/cmdline"), []byte(cmdline), 0o644))
	if brnf != nil {
		must(os.MkdirAll(filepath.Join(root, "sys/net/bridge"), 0o755))
		for k, v := range brnf {
			must(os.WriteFile(filepath.Join(root, "sys/net/bridge", k), []byte(v+"\n"), 0o644))
		}
	}
	return root
}

func TestReadLocal(t *testing.T) {
	old := procRoot
	t.Cleanup(func() { procRoot = old })

	procRoot = fakeProc(t, "dockerd\x00--userland-proxy=false\x00--allow-direct-routing\x00--config-file\x00/nonexistent.json\x00",
		map[string]string{"bridge-nf-call-iptables": "0", "bridge-nf-call-ip6tables": "1"})
	var d inventory.Daemon
	readLocal(&d, DefaultHost)
	if d.UserlandProxy == nil || *d.UserlandProxy || !d.AllowDirectRouting {
		t.Errorf("userland-proxy %v, allow-direct-routing %v", d.UserlandProxy, d.AllowDirectRouting)
	}
	if d.BrNetfilter == nil || !*d.BrNetfilter || *d.BridgeNfIptables || !*d.BridgeNfIP6tables {
		t.Errorf("br_netfilter %v, iptables %v, ip6tables %v", d.BrNetfilter, d.BridgeNfIptables, d.BridgeNfIP6tables)
	}

	// A dockerd on another socket is not this daemon; no br_netfilter
	// sysctls means the module is not loaded.
	procRoot = fakeProc(t, "dockerd\x00-H\x00unix:///run/other.sock\x00--userland-proxy=false\x00", nil)
	d = inventory.Daemon{}
	readLocal(&d, DefaultHost)
	if d.UserlandProxy != nil {
		t.Errorf("userland-proxy read from another daemon: %v", *d.UserlandProxy)
	}
	if d.BrNetfilter == nil || *d.BrNetfilter || d.BridgeNfIptables == nil || *d.BridgeNfIptables {
		t.Errorf("br_netfilter absent: got %v, iptables %v", d.BrNetfilter, d.BridgeNfIptables)
	}
	d = inventory.Daemon{}
	readLocal(&d, "unix:///run/other.sock")
	if d.UserlandProxy == nil || *d.UserlandProxy {
		t.Errorf("the daemon on /run/other.sock runs with userland-proxy=false; got %v", d.UserlandProxy)
	}
}
