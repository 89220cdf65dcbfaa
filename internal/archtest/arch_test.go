// Package archtest holds the test that keeps the architecture honest:
// pure packages must not import the Docker SDK, netlink, os/exec or the
// adapters that act on the host.
package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// pure lists the packages that must stay free of side effects.
var pure = []string{
	"github.com/zonewarden/zonewarden/internal/inventory",
	"github.com/zonewarden/zonewarden/internal/inventory/synthetic",
	"github.com/zonewarden/zonewarden/internal/audit",
	"github.com/zonewarden/zonewarden/internal/reach",
	"github.com/zonewarden/zonewarden/internal/graph",
	"github.com/zonewarden/zonewarden/internal/plan",
	"github.com/zonewarden/zonewarden/internal/enforce",
	"github.com/zonewarden/zonewarden/internal/enforce/enforcetest",
	"github.com/zonewarden/zonewarden/internal/suggest",
	"github.com/zonewarden/zonewarden/internal/policy",
	"github.com/zonewarden/zonewarden/internal/policy/synthetic",
	"github.com/zonewarden/zonewarden/internal/report",
}

// forbidden are import path prefixes that pure packages must not depend on,
// directly or not.
var forbidden = []string{
	"github.com/docker/",
	"github.com/moby/",
	"github.com/vishvananda/",
	"github.com/google/nftables",
	"github.com/mdlayher/netlink",
	"os/exec",
	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi",
	"github.com/zonewarden/zonewarden/internal/inventory/compose",
	"github.com/zonewarden/zonewarden/internal/cli",
	"github.com/zonewarden/zonewarden/internal/demo",
	"github.com/zonewarden/zonewarden/internal/testenv",
	"github.com/zonewarden/zonewarden/internal/nft",
}

func TestPurePackagesHaveNoSideEffectImports(t *testing.T) {
	for _, pkg := range pure {
		out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		dec := json.NewDecoder(strings.NewReader(string(out)))
		for dec.More() {
			var p struct{ ImportPath string }
			if err := dec.Decode(&p); err != nil {
				t.Fatal(err)
			}
			for _, f := range forbidden {
				if strings.HasPrefix(p.ImportPath, f) {
					t.Errorf("%s depends on %s: pure packages must not (see STYLE.md)", pkg, p.ImportPath)
				}
			}
		}
	}
}

// TestProberDoesNotImportDocker: the netns prober is an adapter of the
// kernel only; verify and the truth harness find the PIDs, it must not.
func TestProberDoesNotImportDocker(t *testing.T) {
	const pkg = "github.com/zonewarden/zonewarden/internal/probe"
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct{ ImportPath string }
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"github.com/docker/", "github.com/moby/", "github.com/zonewarden/zonewarden/internal/inventory"} {
			if strings.HasPrefix(p.ImportPath, f) {
				t.Errorf("%s depends on %s: the prober must not talk to Docker", pkg, p.ImportPath)
			}
		}
	}
}
