package draft_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/demo"
	"github.com/zonewarden/zonewarden/internal/draft"
	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
	"github.com/zonewarden/zonewarden/internal/learn"
	"github.com/zonewarden/zonewarden/internal/model"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// TestDraftFromFlowsKeepsExactlyTheObserved: on the demo host, with web
// -> api and api -> db and api -> cache recorded, the draft from the
// flows passes check and its own tests, allows those connections on the
// ports used, and denies every other pair of containers sharing a zone on
// every port they expose; flows beyond the host and of unknown addresses
// are listed, not allowed.
func TestDraftFromFlowsKeepsExactlyTheObserved(t *testing.T) {
	snap := demo.Level0().Snapshot()
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	peer := func(name string) learn.Peer {
		c := inventory.NewIndex(snap).Container(name)
		return learn.Peer{Kind: learn.KindContainer, Container: name, Project: c.ComposeProject(), Service: c.ComposeService()}
	}
	rec := func(from, to learn.Peer, proto string, port uint16, via string) learn.Record {
		return learn.Record{From: from, To: to, Proto: proto, Port: port, Via: via, Count: 7, Answered: 7, First: t0, Last: t0.Add(time.Hour)}
	}
	// api was recreated since (another name, same compose service).
	api := peer("shop-api")
	api.Container = "shop-api-old"
	recs := []learn.Record{
		rec(peer("shop-web"), api, "tcp", 8080, ""),
		rec(peer("shop-api"), peer("customer-db"), "tcp", 5432, ""),
		rec(peer("shop-api"), peer("session-cache"), "tcp", 6379, ""),
		rec(peer("shop-api"), peer("session-cache"), "icmp", 0, ""),
		rec(peer("shop-web"), learn.Peer{Kind: learn.KindOutside, Addr: "203.0.113.5"}, "tcp", 443, ""),
		rec(learn.Peer{Kind: learn.KindUnknown, Addr: "172.20.0.99"}, peer("customer-db"), "tcp", 5432, ""),
		rec(learn.Peer{Kind: learn.KindHost}, peer("shop-web"), "tcp", 80, "published 8080/tcp"),
		// A scan from staging: tried, never answered.
		{From: peer("staging-api"), To: peer("customer-db"), Proto: "tcp", Port: 5432, Count: 3, First: t0, Last: t0},
	}
	p, out := passesCheck(t, draft.FromFlows(snap, learn.Merge(recs), "flows.jsonl"))
	for _, z := range p.Zones {
		if z.Default != policy.Deny {
			t.Errorf("zone %s is default: %s; a draft from flows denies what was not observed", z.Name, z.Default)
		}
	}
	b, err := model.Bind(p, snap)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{
		"shop-web -> shop-api 8080/tcp": true, "shop-api -> customer-db 5432/tcp": true,
		"shop-api -> session-cache 6379/tcp": true, "shop-api -> session-cache icmp": true,
	}
	ix := inventory.NewIndex(snap)
	checked := 0
	for _, n := range snap.Networks {
		if n.IsBuiltin() {
			continue
		}
		for _, a := range ix.Members(n.Name) {
			for _, c := range ix.Members(n.Name) {
				ports := []l4.Port{{Proto: "icmp"}, {Proto: "tcp", Number: 22}}
				for _, pt := range c.ExposedPorts {
					ports = append(ports, l4.Port{Proto: pt.Proto, Number: pt.Number})
				}
				for _, pt := range ports {
					if a == c {
						continue
					}
					key := a.Name + " -> " + c.Name + " " + pt.String()
					checked++
					if got := b.Decide(a.Name, c.Name, pt).Allow; got != allowed[key] {
						t.Errorf("%s: allowed %v, want %v (observed: %v)", key, got, allowed[key], allowed[key])
					}
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d decisions checked", checked)
	}
	for _, want := range []string{
		"# observed: 5432/tcp x7",
		"shop-web -> 203.0.113.5 443/tcp",
		"172.20.0.99 -> customer-db 5432/tcp",
		"flows recorded in flows.jsonl",
		"never answered (a closed or filtered port, a scan, a forged address): not proposed:\n#   staging-api -> customer-db 5432/tcp (3 tries)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the draft does not say %q:\n%s", want, out)
		}
	}
	// Denials that matter: staging-api shares shop-prod with the
	// database and never connected to it.
	if !slices.ContainsFunc(p.Tests, func(tt policy.Test) bool {
		return tt.From.String() == "staging-api" && tt.To.String() == "customer-db" && tt.Expect == policy.Deny
	}) {
		t.Errorf("no test that staging-api stays denied customer-db:\n%s", out)
	}
}

// TestBreaksListsWhatThePolicyDenies: judged by the draft from some
// flows, the recorded flows it keeps are not listed, the others are, with
// the reason; in monitor mode they are marked monitored; the host's own
// flows and those of containers gone are counted, not judged.
func TestBreaksListsWhatThePolicyDenies(t *testing.T) {
	snap := demo.Level0().Snapshot()
	c := func(name string) learn.Peer {
		ct := inventory.NewIndex(snap).Container(name)
		return learn.Peer{Kind: learn.KindContainer, Container: name, Project: ct.ComposeProject(), Service: ct.ComposeService()}
	}
	kept := []learn.Record{{From: c("shop-web"), To: c("shop-api"), Proto: "tcp", Port: 8080, Count: 3, Answered: 3}}
	p, err := policy.Parse("draft.yaml", policy.Format(draft.FromFlows(snap, kept, "flows.jsonl")), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recorded := append(kept,
		learn.Record{From: c("staging-api"), To: c("customer-db"), Proto: "tcp", Port: 5432, Count: 2, Answered: 2},
		learn.Record{From: learn.Peer{Kind: learn.KindHost}, To: c("shop-web"), Proto: "tcp", Port: 80, Count: 1, Answered: 1},
		learn.Record{From: learn.Peer{Kind: learn.KindContainer, Container: "gone"}, To: c("shop-web"), Proto: "tcp", Port: 80, Count: 1, Answered: 1},
		learn.Record{From: c("dev-box"), To: c("shop-web"), Proto: "tcp", Port: 80, Count: 1}, // never answered
	)
	for _, mode := range []policy.Mode{policy.Enforce, policy.Monitor} {
		p.Mode = mode
		b, err := model.Bind(p, snap)
		if err != nil {
			t.Fatal(err)
		}
		breaks, unjudged := b.Breaks(recorded)
		if len(breaks) != 1 || breaks[0].Record.String() != "staging-api -> customer-db 5432/tcp" || unjudged != 3 {
			t.Fatalf("mode %s: breaks %+v, %d unjudged; want staging-api -> customer-db alone, 3 unjudged", mode, breaks, unjudged)
		}
		if !strings.Contains(breaks[0].Decision.Reason, "no flow from staging-api to customer-db") {
			t.Errorf("reason %q", breaks[0].Decision.Reason)
		}
		if breaks[0].Monitored != (mode == policy.Monitor) {
			t.Errorf("mode %s: monitored %v", mode, breaks[0].Monitored)
		}
	}
}
