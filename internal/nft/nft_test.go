package nft

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/testenv"
)

// TestApplyIsOneTransaction: a script with an error on its third line
// changes nothing, and the error names that line; a good one loads; List
// and Delete see and remove only that table.
func TestApplyIsOneTransaction(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	table := "zwtest_nft_" + testenv.RunID(t)
	t.Cleanup(func() { Delete(ctx, "inet", table) })

	bad := "table inet " + table + " {\n\tset s { type ipv4_addr; }\n\tchain c { ip saddr @nope drop; }\n}\n"
	err := Apply(ctx, bad)
	var se *ScriptError
	if !errors.As(err, &se) || se.Line != 3 || !strings.Contains(se.Text, "@nope") {
		t.Fatalf("bad script: error %v, want a ScriptError on line 3", err)
	}
	if got, _ := List(ctx, "inet", table); got != "" {
		t.Fatalf("a failed transaction left the table behind:\n%s", got)
	}

	good := "table inet " + table + " {\n\tset s { type ipv4_addr; elements = { 198.18.0.1 } }\n}\n"
	if err := Apply(ctx, good); err != nil {
		t.Fatal(err)
	}
	got, err := List(ctx, "inet", table)
	if err != nil || !strings.Contains(got, "198.18.0.1") {
		t.Fatalf("after loading: %q, %v", got, err)
	}
	if tables, _ := Tables(ctx); !slices.Contains(tables, "inet "+table) {
		t.Errorf("Tables() = %v, lacks inet %s", tables, table)
	}
	if err := Delete(ctx, "inet", table); err != nil {
		t.Fatal(err)
	}
	if tables, _ := Tables(ctx); slices.Contains(tables, "inet "+table) {
		t.Errorf("inet %s still listed after Delete: %v", table, tables)
	}
	if err := Delete(ctx, "inet", table); err != nil {
		t.Errorf("deleting a missing table: %v", err)
	}
}
