package ipsec

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/testenv"
)

// TestProbe compares the probe with iproute2 asking the same of the
// kernel, in a namespace of its own: the ESP state Docker's encrypted
// overlays need.
func TestProbe(t *testing.T) {
	testenv.RequireRoot(t)
	p, err := Probe()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (%s)", Summary(p), p.Evidence)
	out, err := exec.Command("unshare", "--net", "ip", "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2",
		"proto", "esp", "spi", "0x100", "reqid", "1", "mode", "transport",
		"aead", DockerAEAD, "0x"+strings.Repeat("00", 20), "128").CombinedOutput()
	if _, notRun := err.(*exec.Error); notRun {
		t.Fatalf("cannot run iproute2 to check the probe: %v", err)
	}
	if want := err == nil; p.CanEncrypt() != want {
		t.Errorf("probe: can encrypt %v; ip xfrm state add with %s: %v %s", p.CanEncrypt(), DockerAEAD, err, out)
	}
	if p.CanEncrypt() == (len(p.Missing) > 0) {
		t.Errorf("can encrypt %v, missing %v", p.CanEncrypt(), p.Missing)
	}
	if missing, ok := missingFromConfig(); ok && !slices.Equal(missing, p.Missing) && !p.CanEncrypt() {
		t.Errorf("missing %v, the kernel's configuration says %v", p.Missing, missing)
	}
}
