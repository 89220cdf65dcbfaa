package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportK8sGolden: the seed's three tiers as NetworkPolicies.
func TestExportK8sGolden(t *testing.T) {
	code, stdout, stderr := run(t, "export", "k8s", seedPolicy, "--labels", "zonewarden", "-n", "shop")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden(t, "export-three-tier.yaml", stdout)
	inOrder(t, "stderr", stderr, []string{"6 NetworkPolicies for namespace shop, pods selected by zonewarden.io/workload"})
}

// TestExportK8sFromHost: given the host (a compose file, or here the
// demo's snapshot), every compose workload of the drafted policy is
// selected by the label Kompose puts on its pods, and the drafted tests
// hold on the export.
func TestExportK8sFromHost(t *testing.T) {
	snap := demoSnapshot(t)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if code, _, stderr := run(t, "init", "--snapshot", snap, "-o", pol); code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	dir := filepath.Join(t.TempDir(), "k8s")
	code, stdout, stderr := run(t, "export", "k8s", pol, "--snapshot", snap, "-o", dir)
	if code != 0 || stdout != "" {
		t.Fatalf("export: exit %d, stdout %q: %s", code, stdout, stderr)
	}
	// shop-api and staging-api both run a service named api (of two
	// projects): each is selected by its own label, not by the shared one.
	inOrder(t, "stderr", stderr, []string{"workloads shop-api, staging-api all run compose service api: selected by zonewarden.io/workload=shop-api"})
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) < 3 {
		t.Fatalf("export wrote %d files in %s", len(files), dir)
	}
	db, err := os.ReadFile(filepath.Join(dir, "zw-customer-db.yaml"))
	if err != nil {
		t.Fatalf("%v (files: %v)", err, files)
	}
	inOrder(t, "zw-customer-db.yaml", string(db), []string{"zonewarden.io/workload: shop-api", "io.kompose.service: db", "policyTypes:", "- Ingress", "- Egress"})
	code, stdout, stderr = run(t, "check", pol, "--k8s")
	if code != 0 {
		t.Fatalf("check --k8s: exit %d\n%s%s", code, stdout, stderr)
	}
	inOrder(t, "stdout", stdout, []string{"on Kubernetes (the export, read by netpol-analyzer): ", "pass"})
}

func TestCheckK8sFails(t *testing.T) {
	failing := writeFile(t, "failing.yaml", failingPolicy)
	code, stdout, _ := run(t, "check", failing, "--k8s")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	inOrder(t, "stdout", stdout, []string{
		"1 of 2 tests fail",
		failing + ":11:5: test fails on Kubernetes: api -> web on 80/tcp: expected allow, the exported NetworkPolicies deny (the exported NetworkPolicies allow no port)",
		"on Kubernetes (the export, read by netpol-analyzer): 1 of 2 tests fail",
	})
}

func TestExportK8sUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"export"}, "name the engine"},
		{[]string{"export", "k8s"}, "name one policy file"},
		{[]string{"export", "k8s", seedPolicy, "--labels", "app"}, `unknown --labels "app"`},
		{[]string{"export", "k8s", seedPolicy, "--format", "toml"}, `unknown --format "toml"`},
		{[]string{"export", "k8s", "/nonexistent.yaml"}, "cannot read the policy"},
	} {
		code, _, stderr := run(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "goroutine") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
}
