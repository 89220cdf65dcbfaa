package reach

import "strings"

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

// String renders the reason as Edge.Via holds it.
func (r Reason) String() string {
	switch r.Kind {
	case KindHostNetwork, KindEgress, KindIPv6Unfiltered, "":
		return r.Kind
	}
	return r.Kind + ":" + r.Network + r.Binding + r.Container
}
