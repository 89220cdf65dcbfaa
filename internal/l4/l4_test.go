package l4_test

import (
	"strings"
	"testing"

	"github.com/zonewarden/zonewarden/internal/l4"
)

func port(s string) l4.Port {
	p, err := l4.ParsePort(s)
	if err != nil {
		panic(err)
	}
	return p
}

func TestParsePort(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"5432/tcp", "5432/tcp", ""},
		{"53", "53/tcp", ""},
		{" ICMP ", "icmp", ""},
		{"0/tcp", "", "from 1 to 65535"},
		{"80/gre", "", "protocol must be"},
	} {
		p, err := l4.ParsePort(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParsePort(%q) error = %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || p.String() != tt.want):
			t.Errorf("ParsePort(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
		}
	}
	if c := port("80/tcp").Compare(port("53/udp")); c >= 0 {
		t.Errorf("80/tcp does not sort before 53/udp: %d", c)
	}
}

func TestPortRanges(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"5432/tcp", "5432/tcp", ""},
		{"5432", "5432/tcp", ""},
		{" 53/UDP ", "53/udp", ""},
		{"8000-8100/tcp", "8000-8100/tcp", ""},
		{"80-80/sctp", "80/sctp", ""},
		{"icmp", "icmp", ""},
		{"ALL", "all", ""},
		{"", "", "empty port"},
		{"65536/tcp", "", "from 1 to 65535"},
		{"0/udp", "", "from 1 to 65535"},
		{"10-/tcp", "", "from 1 to 65535"},
		{"9-1/tcp", "", "is empty"},
		{"80/icmp", "", "protocol must be"},
		{"+80/tcp", "", "from 1 to 65535"},
	} {
		r, err := l4.ParseRange(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseRange(%q) error = %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || r.String() != tt.want):
			t.Errorf("ParseRange(%q) = %v, %v; want %s", tt.in, r, err, tt.want)
		}
	}
	l := l4.List{{Proto: "tcp", First: 80, Last: 80}}.Union(l4.List{{Proto: "tcp", First: 81, Last: 90}, {Proto: "udp", First: 53, Last: 53}, {Proto: "icmp"}})
	if got := l.String(); got != "80-90/tcp, 53/udp, icmp" {
		t.Errorf("Union = %s", got)
	}
	if !l.Contains(port("85/tcp")) || l.Contains(port("91/tcp")) || !l.Contains(port("icmp")) || l.Contains(port("53/tcp")) {
		t.Errorf("Contains on %s is wrong", l)
	}
	if !l4.AllPorts().Contains(port("icmp")) || !l.Union(l4.AllPorts()).All() {
		t.Error("all does not hold everything")
	}
}
