package reach

import "testing"

func TestParseReason(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Reason
	}{
		{ViaNetwork + "app", Reason{Kind: KindNetwork, Network: "app"}},
		{ViaGateway + "app", Reason{Kind: KindGateway, Network: "app"}},
		{ViaPublished + "0.0.0.0:8080", Reason{Kind: KindPublished, Binding: "0.0.0.0:8080"}},
		{ViaPublished + "[::]:8080", Reason{Kind: KindPublished, Binding: "[::]:8080"}},
		{ViaLoopbackLAN + "127.0.0.1:7000", Reason{Kind: KindLoopbackLAN, Binding: "127.0.0.1:7000"}},
		{ViaNamespace + "api", Reason{Kind: KindNamespace, Container: "api"}},
		{ViaRouted + "dmz", Reason{Kind: KindRouted, Network: "dmz"}},
		{ViaDirect + "open", Reason{Kind: KindDirect, Network: "open"}},
		{ViaSegment + "lan", Reason{Kind: KindSegment, Network: "lan"}},
		{ViaHostNetwork, Reason{Kind: KindHostNetwork}},
		{ViaEgress, Reason{Kind: KindEgress}},
		{ViaIPv6Unfiltered, Reason{Kind: KindIPv6Unfiltered}},
		{"firewall: no flow", Reason{}},
		{"something", Reason{}},
	} {
		got := ParseReason(tt.in)
		if got != tt.want {
			t.Errorf("ParseReason(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if tt.want.Kind != "" && got.String() != tt.in {
			t.Errorf("ParseReason(%q).String() = %q", tt.in, got.String())
		}
	}
}
