package enforce

import "strings"

// LogGroup is the nflog group the drop rules log to unless Options say
// otherwise: "zw" in ASCII. The agent listens on it to name denied flows;
// with no listener the kernel discards the log messages.
const LogGroup = 0x7a77

// A DropRule is one of the table's drop rules. Every drop counts its
// packets and logs them to nflog with the prefix "zw:<ID>", so that a
// listener can tell which rule dropped a packet.
type DropRule struct {
	ID      string // short and stable, in the log prefix
	Comment string // the rule's comment in the table
}

// The drop rules, in the order a packet meets them.
var (
	DropUnadmittedSrc = DropRule{"unadmitted-src", "source in a zone, not admitted (fail closed)"}
	DropUnadmittedDst = DropRule{"unadmitted-dst", "destination in a zone, not admitted (fail closed)"}
	DropUnmanaged     = DropRule{"unmanaged", "a container no workload selects, with a member of a default: deny zone"}
	DropFromZone      = DropRule{"from-zone", "from a zone: no flow allows it"}
	DropToZone        = DropRule{"to-zone", "to a zone: no flow allows it"}
	DropPublished     = DropRule{"published", "published port: no flow allows it"}
	DropHost          = DropRule{"host", "to the host from a default: deny zone"}
	// The endpoint binding (bridge table, ports.go).
	DropSpoof    = DropRule{"spoof", "source address not of this bridge port (spoof)"}
	DropSpoofARP = DropRule{"spoof-arp", "ARP claim for an address not of this bridge port (spoof)"}
	DropSpoofND  = DropRule{"spoof-nd", "neighbour advertisement for an address not of this bridge port (spoof)"}
)

var dropRules = []DropRule{DropUnadmittedSrc, DropUnadmittedDst, DropUnmanaged, DropFromZone, DropToZone, DropPublished, DropHost, DropSpoof, DropSpoofARP, DropSpoofND}

// logPrefix starts every drop rule's log prefix.
const logPrefix = "zw:"

// wouldPrefix follows logPrefix in the prefix of a monitor-mode twin.
const wouldPrefix = "would:"

// DropRuleOf returns the drop rule whose log prefix is prefix (as nflog
// delivers it); would tells a packet a monitor-mode twin let through
// (WouldLogPrefix) from one the rule dropped.
func DropRuleOf(prefix string) (d DropRule, would, ok bool) {
	id, ok := strings.CutPrefix(strings.TrimSpace(prefix), logPrefix)
	if !ok {
		return DropRule{}, false, false
	}
	id, would = strings.CutPrefix(id, wouldPrefix)
	for _, d := range dropRules {
		if d.ID == id {
			return d, would, true
		}
	}
	return DropRule{}, false, false
}
