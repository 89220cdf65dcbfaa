package firewall

import (
	"context"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/enforce"
	"github.com/zonewarden/zonewarden/internal/enforce/enforcetest"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/nft"
	"github.com/zonewarden/zonewarden/internal/policy"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// compile binds doc to the enforce tests' host and compiles it into table.
func compile(t *testing.T, doc, table string) (*enforce.Ruleset, *enforce.Ruleset) {
	t.Helper()
	p, err := policy.Parse("zones.yaml", []byte(doc), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.Bind(p, enforcetest.HostWithPorts())
	if err != nil {
		t.Fatal(err)
	}
	opts := enforce.Options{Table: table}
	return enforce.Compile(b, opts), enforce.CompilePorts(b, opts)
}

// TestApplierSyncsThenUpdates: the first load of each table is a full
// sync; a change of elements alone is loaded as such; a change of rules
// (monitor mode) or a forced full load replaces the table; after Forget
// the next load is full again; the kernel holds each time what was
// loaded, and the applier remembers it.
func TestApplierSyncsThenUpdates(t *testing.T) {
	testenv.RequireRoot(t)
	table := "zwtest_applier"
	ctx := context.Background()
	t.Cleanup(func() {
		_ = nft.Delete(ctx, "inet", table)
		_ = nft.Delete(ctx, "bridge", table)
	})
	a, err := Open(Options{Fallback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	step := func(name string, rs *enforce.Ruleset, full, wantFull bool, listed, notListed string) {
		t.Helper()
		res, err := a.Apply(ctx, rs, full)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Full != wantFull {
			t.Errorf("%s: full %v, want %v (%+v)", name, res.Full, wantFull, res)
		}
		l, err := nft.List(ctx, rs.Family(), table)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(l, listed) || notListed != "" && strings.Contains(l, notListed) {
			t.Errorf("%s: the kernel's table lacks %q or has %q:\n%s", name, listed, notListed, l)
		}
		if a.Installed(rs.Family()) != rs {
			t.Errorf("%s: the applier does not remember what it loaded", name)
		}
	}
	rs, ports := compile(t, enforcetest.Policy, table)
	more, _ := compile(t, strings.Replace(enforcetest.Policy, "ports: [5432/tcp]", "ports: [5432/tcp, 5433/tcp]", 1), table)
	monitor, _ := compile(t, strings.Replace(enforcetest.Policy, "unmanaged: warn", "unmanaged: warn\nmode: monitor", 1), table)
	for _, ld := range []Loader{netlinkLoader{a.nl}, textLoader{}} {
		t.Logf("loader %T", ld)
		a.load = ld
		_ = nft.Delete(ctx, "inet", table)
		_ = nft.Delete(ctx, "bridge", table)
		a.Forget()
		step("first bridge", ports, false, true, "set ports", "")
		step("first inet", rs, false, true, "10.20.3.13 . 10.20.3.14 . tcp . 5432 ", "5433")
		step("elements", more, false, false, "tcp . 5432-5433", "")
		step("rules", monitor, false, true, `log prefix "zw:would:from-zone"`, "5433")
		step("forced", rs, true, true, "10.20.3.13 . 10.20.3.14 . tcp . 5432 ", "zw:would:")
		a.Forget()
		step("after Forget", more, false, true, "tcp . 5432-5433", "")
	}
}
