package reach

import (
	"cmp"
	"strings"
)

// Reason is one reason of an edge (an entry of Edge.Via), read: what kind
// of path it names and what the path goes through. Consumers ask a Reason
// instead of matching the text's prefixes.
type Reason struct {
	// Kind is the reason's prefix without its colon ("network",
	// "published", "host-network", "egress", ...); "" for text that is no
	// reason of this package's.
	Kind string
	// Network names the network of a network, gateway, routed, direct or
	// segment reason.
	Network string
	// Binding is the host address and port of a published or
	// loopback-lan reason ("0.0.0.0:8080", "[::]:8080").
	Binding string
	// Container is the container whose namespace a namespace reason
	// shares.
	Container string
}

// The kinds of Reason.
const (
	KindNetwork        = "network"
	KindPublished      = "published"
	KindHostNetwork    = "host-network"
	KindGateway        = "gateway"
	KindEgress         = "egress"
	KindNamespace      = "namespace"
	KindIPv6Unfiltered = "ipv6-unfiltered"
	KindRouted         = "routed"
	KindDirect         = "direct"
	KindSegment        = "segment"
	KindLoopbackLAN    = "loopback-lan"
)

// ParseReason reads one entry of Edge.Via.
func ParseReason(s string) Reason {
	switch s {
	case ViaHostNetwork, ViaEgress, ViaIPv6Unfiltered:
		return Reason{Kind: s}
	}
	kind, arg, ok := strings.Cut(s, ":")
	if !ok {
		return Reason{}
	}
	switch kind + ":" {
	case ViaNetwork, ViaGateway, ViaRouted, ViaDirect, ViaSegment:
		return Reason{Kind: kind, Network: arg}
	case ViaPublished, ViaLoopbackLAN:
		return Reason{Kind: kind, Binding: arg}
	case ViaNamespace:
		return Reason{Kind: kind, Container: arg}
	}
	return Reason{}
}

// String renders the reason as text: "network:app", "published:0.0.0.0:8080",
// "egress" (the forms of the Via constants).
func (r Reason) String() string {
	switch r.Kind {
	case KindHostNetwork, KindEgress, KindIPv6Unfiltered, "":
		return r.Kind
	}
	return r.Kind + ":" + r.Network + r.Binding + r.Container
}

// MarshalText renders the reason as String does (JSON output keeps the
// text form).
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a reason's text form.
func (r *Reason) UnmarshalText(b []byte) error {
	*r = ParseReason(string(b))
	return nil
}

// Compare orders reasons as their text forms sort (no kind is a prefix of
// another).
func (r Reason) Compare(o Reason) int {
	return cmp.Or(strings.Compare(r.Kind, o.Kind), strings.Compare(r.Network, o.Network),
		strings.Compare(r.Binding, o.Binding), strings.Compare(r.Container, o.Container))
}

// Reasons renders reasons as text.
func Reasons(rs []Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

// Reason constructors, one per kind with an argument.
func onNetwork(kind, network string) Reason  { return Reason{Kind: kind, Network: network} }
func viaBinding(kind, binding string) Reason { return Reason{Kind: kind, Binding: binding} }
