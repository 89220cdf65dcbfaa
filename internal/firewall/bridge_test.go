package firewall

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSys points procSys at a folder with the br_netfilter sysctls set
// to v4 and v6 ("" leaves the module out).
func fakeSys(t *testing.T, v4, v6 string) string {
	t.Helper()
	old := procSys
	t.Cleanup(func() { procSys = old })
	procSys = t.TempDir()
	if v4 == "" {
		return procSys
	}
	dir := filepath.Join(procSys, "net/bridge")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "bridge-nf-call-iptables"), []byte(v4+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bridge-nf-call-ip6tables"), []byte(v6+"\n"), 0o644)
	return procSys
}

func TestEnsureBridgeFiltering(t *testing.T) {
	ctx := context.Background()

	sys := fakeSys(t, "0", "1")
	if c := BridgeFilteringChanges(); len(c) != 1 || !strings.Contains(c[0], "bridge-nf-call-iptables=1") {
		t.Errorf("changes before: %q", c)
	}
	done, err := EnsureBridgeFiltering(ctx)
	if err != nil || len(done) != 1 || !strings.Contains(done[0], "set net.bridge.bridge-nf-call-iptables=1") {
		t.Errorf("EnsureBridgeFiltering = %q, %v", done, err)
	}
	if b, _ := os.ReadFile(filepath.Join(sys, "net/bridge/bridge-nf-call-iptables")); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("bridge-nf-call-iptables = %q after, want 1", b)
	}
	if c := BridgeFilteringChanges(); len(c) != 0 {
		t.Errorf("changes after: %q", c)
	}
	if done, err := EnsureBridgeFiltering(ctx); err != nil || len(done) != 0 {
		t.Errorf("second run changed %q, %v", done, err)
	}

	// A sysctl that cannot be written (here a folder where the file
	// should be): refused, with what to do.
	sys = fakeSys(t, "1", "1")
	p := filepath.Join(sys, "net/bridge/bridge-nf-call-ip6tables")
	os.Remove(p)
	os.Mkdir(p, 0o755)
	if _, err := EnsureBridgeFiltering(ctx); !errors.Is(err, ErrBridgeUnfiltered) || !strings.Contains(err.Error(), "bridge-nf-call-ip6tables") {
		t.Errorf("unwritable sysctl: %v, want ErrBridgeUnfiltered naming it", err)
	}

	// No module, and modprobe cannot make one appear in this folder:
	// refused, naming the module.
	fakeSys(t, "", "")
	if c := BridgeFilteringChanges(); len(c) != 1 || !strings.Contains(c[0], "br_netfilter") {
		t.Errorf("changes without the module: %q", c)
	}
	if _, err := EnsureBridgeFiltering(ctx); !errors.Is(err, ErrBridgeUnfiltered) || !strings.Contains(err.Error(), "modprobe br_netfilter") {
		t.Errorf("no module: %v, want ErrBridgeUnfiltered saying how to load it", err)
	}
}
