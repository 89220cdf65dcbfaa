package nft

import (
	"reflect"
	"testing"
)

const listing = `table inet zonewarden {
	set admitted4 {
		type ipv4_addr
		comment "containers zonewarden admitted"
		elements = { 172.30.0.2 comment "api", 172.30.0.3 comment "dev (unmanaged)" }
	}
	set admitted6 {
		type ipv6_addr
	}
	chain forward4 {
		ip saddr @zones4 ip saddr != @admitted4 counter packets 3 bytes 180 log prefix "zw:unadmitted-src " group 31351 drop comment "unadmitted source"
		ip saddr @zones4 counter packets 0 bytes 0 log prefix "zw:would:zone-default " group 31351 accept comment "would deny: zone default"
		counter packets 12 bytes 720 drop comment "zone default"
	}
}
`

func TestCounters(t *testing.T) {
	want := []Counter{
		{Packets: 3, Bytes: 180, Verdict: "drop", Comment: "unadmitted source"},
		{Packets: 0, Bytes: 0, Verdict: "accept", Comment: "would deny: zone default"},
		{Packets: 12, Bytes: 720, Verdict: "drop", Comment: "zone default"},
	}
	if got := Counters(listing); !reflect.DeepEqual(got, want) {
		t.Errorf("Counters = %+v\nwant %+v", got, want)
	}
}

func TestElementComments(t *testing.T) {
	if got, want := ElementComments(listing, "admitted4"), []string{"api", "dev (unmanaged)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("admitted4: %q, want %q", got, want)
	}
	if got := ElementComments(listing, "admitted6"); len(got) != 0 {
		t.Errorf("admitted6 has no elements: %q", got)
	}
	if got := ElementComments(listing, "nosuch"); got != nil {
		t.Errorf("a missing set: %q", got)
	}
}
