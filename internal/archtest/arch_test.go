// Package archtest holds the tests that keep the architecture honest:
// pure packages must not import the Docker SDK, netlink, os/exec, system
// calls or the adapters that act on the host; only dockerapi imports the
// Docker SDK; packages depend only downward through the layers.
package archtest

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pure lists the packages that must stay free of side effects.
var pure = []string{
	"github.com/zonewarden/zonewarden/internal/inventory",
	"github.com/zonewarden/zonewarden/internal/inventory/synthetic",
	"github.com/zonewarden/zonewarden/internal/audit",
	"github.com/zonewarden/zonewarden/internal/reach",
	"github.com/zonewarden/zonewarden/internal/learn",
	"github.com/zonewarden/zonewarden/internal/graph",
	"github.com/zonewarden/zonewarden/internal/plan",
	"github.com/zonewarden/zonewarden/internal/enforce",
	"github.com/zonewarden/zonewarden/internal/enforce/enforcetest",
	"github.com/zonewarden/zonewarden/internal/suggest",
	"github.com/zonewarden/zonewarden/internal/policy",
	"github.com/zonewarden/zonewarden/internal/policy/synthetic",
	"github.com/zonewarden/zonewarden/internal/report",
	"github.com/zonewarden/zonewarden/internal/verify",
	"github.com/zonewarden/zonewarden/internal/kube",
	"github.com/zonewarden/zonewarden/internal/draft",
	"github.com/zonewarden/zonewarden/internal/model",
	"github.com/zonewarden/zonewarden/internal/l4",
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

const module = "github.com/zonewarden/zonewarden/"

// testSupport are the packages that exist for tests only: they may talk
// to Docker through its SDK to build test hosts.
var testSupport = []string{"internal/testenv", "internal/testenv/swarmbed", "internal/truth"}

// goPackage is what the layering tests read of each package of the module.
type goPackage struct {
	ImportPath string
	Imports    []string
}

func modulePackages(t *testing.T) []goPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "github.com/zonewarden/zonewarden/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		p.ImportPath = strings.TrimPrefix(p.ImportPath, module)
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestOnlyDockerapiImportsTheDockerSDK: Docker's types are converted into
// the project's own at one boundary; the test-support packages aside.
func TestOnlyDockerapiImportsTheDockerSDK(t *testing.T) {
	allowed := append([]string{"internal/inventory/dockerapi"}, testSupport...)
	for _, p := range modulePackages(t) {
		if slices.Contains(allowed, p.ImportPath) {
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "github.com/docker/") || strings.HasPrefix(imp, "github.com/moby/") {
				t.Errorf("%s imports %s: only internal/inventory/dockerapi may (convert to inventory types there)", p.ImportPath, imp)
			}
		}
	}
}

// TestPurePackagesMakeNoSyscalls: pure packages import no system calls
// and no network clients themselves (netip is data; net and net/http
// dial).
func TestPurePackagesMakeNoSyscalls(t *testing.T) {
	for _, p := range modulePackages(t) {
		if !slices.Contains(pure, module+p.ImportPath) {
			continue
		}
		for _, imp := range p.Imports {
			switch imp {
			case "syscall", "golang.org/x/sys/unix", "net", "net/http", "os/exec", "unsafe":
				t.Errorf("%s imports %s: pure packages must not", p.ImportPath, imp)
			}
		}
	}
}

// layers rank the module's packages: a package imports only packages of
// its own layer or below (sources and the policy model under analysis and
// compile, those under the effects, everything under the command line).
var layers = map[string]int{
	// 0: the model, and helpers every layer uses
	"internal/inventory": 0, "internal/inventory/synthetic": 0, "internal/suggest": 0, "internal/l4": 0,
	// 1: analysis of a host (the policy binds to it)
	"internal/reach": 1, "internal/learn": 1,
	// 2: the policy model, and the sources of hosts
	"internal/policy": 2, "internal/policy/synthetic": 2, "internal/model": 2,
	"internal/inventory/dockerapi": 2, "internal/inventory/compose": 2,
	// 3: analysis and compile
	"internal/audit": 3, "internal/graph": 3, "internal/plan": 3, "internal/enforce": 3,
	"internal/enforce/enforcetest": 3, "internal/report": 3, "internal/verify": 3,
	"internal/kube": 3, "internal/kube/oracle": 3, "internal/draft": 3,
	// 4: effects: the kernel, the host, the agent
	"internal/nft": 4, "internal/nft/nflink": 4, "internal/conntrack": 4, "internal/firewall": 4,
	"internal/probe": 4, "internal/plan/execute": 4, "internal/verifier": 4, "internal/bridgeport": 4, "internal/procwatch": 4, "internal/ipsec": 4, "internal/state": 4, "internal/agent": 4,
	// 5: wiring
	"internal/demo": 5, "internal/cli": 5, "cmd/zonewarden": 5,
}

// TestPackagesDependDownward: no package imports one of a higher layer;
// every package of the module has a layer (test support and benchmarks
// sit above everything).
func TestPackagesDependDownward(t *testing.T) {
	rank := func(p string) (int, bool) {
		if r, ok := layers[p]; ok {
			return r, true
		}
		if slices.Contains(testSupport, p) || strings.HasPrefix(p, "bench/") || strings.HasPrefix(p, "internal/testenv/") || p == "internal/archtest" {
			return 6, true
		}
		return 0, false
	}
	for _, p := range modulePackages(t) {
		r, ok := rank(p.ImportPath)
		if !ok {
			t.Errorf("%s has no layer: add it to layers in %s", p.ImportPath, "internal/archtest")
			continue
		}
		for _, imp := range p.Imports {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if d, _ := rank(dep); d > r {
				t.Errorf("%s (layer %d) imports %s (layer %d): packages depend only downward", p.ImportPath, r, dep, d)
			}
		}
	}
}

// TestOnePortVocabulary: ports are l4's (Port, Range, List, and their
// parsers); no other package declares its own: a small struct of a
// protocol and a port number or range. (Packets and connections, which
// carry a protocol and a port among addresses, are not ports.)
func TestOnePortVocabulary(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.Contains(path, filepath.Join("internal", "l4")) {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, spec := range g.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				fields := map[string]bool{}
				for _, f := range st.Fields.List {
					for _, n := range f.Names {
						fields[n.Name] = true
					}
				}
				if len(fields) <= 3 && (fields["Proto"] || fields["Protocol"]) && (fields["Number"] || fields["First"] || fields["Port"]) {
					t.Errorf("%s declares type %s, a port of its own: ports are internal/l4's (l4.Port, l4.Range, l4.List)", path, ts.Name.Name)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
