// Package enforcetest holds the host the enforcement tests share.
package enforcetest

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/l4"
)

// Host is the seed's Level-3 host after apply, for the tests of the
// compiler and its loaders: addresses 10.20.N.x (IPv6 fd20:1::x on the
// dmz), the default bridge on 10.20.0.0/24, lb publishing 443, and a
// container no workload selects (stray).
func Host() *inventory.Snapshot {
	nets := []inventory.Network{{Name: "bridge", Driver: "bridge", ICC: true,
		Subnets: []inventory.Subnet{{Prefix: netip.MustParsePrefix("10.20.0.0/24")}}}}
	for i, n := range []string{"public-dmz", "application-tier", "database-tier"} {
		nw := inventory.Network{Name: n, Driver: "bridge", ICC: true, Internal: n == "database-tier",
			Subnets: []inventory.Subnet{{Prefix: netip.MustParsePrefix(fmt.Sprintf("10.20.%d.0/24", i+1))}}}
		if n == "public-dmz" {
			nw.EnableIPv6 = true
			nw.Subnets = append(nw.Subnets, inventory.Subnet{Prefix: netip.MustParsePrefix("fd20:1::/64")})
		}
		nets = append(nets, nw)
	}
	addr := 10
	c := func(name string, networks ...string) inventory.Container {
		addr++
		ct := inventory.Container{Name: name, State: "running", NetworkMode: networks[0]}
		for _, n := range networks {
			i := map[string]int{"public-dmz": 1, "application-tier": 2, "database-tier": 3}[n]
			e := inventory.Endpoint{Network: n, IPv4: netip.MustParseAddr(fmt.Sprintf("10.20.%d.%d", i, addr))}
			if i == 1 {
				e.IPv6 = netip.MustParseAddr(fmt.Sprintf("fd20:1::%d", addr))
			}
			ct.Endpoints = append(ct.Endpoints, e)
		}
		return ct
	}
	lb := c("lb", "public-dmz")
	lb.Ports = []inventory.PortBinding{{ContainerPort: l4.Port{Number: 443, Proto: "tcp"}, HostPort: 443}}
	return &inventory.Snapshot{Version: 1, Networks: nets, Containers: []inventory.Container{
		lb, c("frontend", "public-dmz", "application-tier"), c("api", "application-tier", "database-tier"),
		c("postgres", "database-tier"), c("cache", "database-tier"), c("stray", "application-tier"),
	}}
}

// Policy is the seed's three-tier policy for Host: default: deny tiers,
// ingress CIDRs, egress, port ranges, icmp and an "all" flow; stray is left
// unmanaged (warn).
const Policy = `version: 1
zones:
  public-dmz:       {default: deny}
  application-tier: {default: deny}
  database-tier:    {internal: true}
workloads:
  lb:       {match: {name: lb}, zones: [public-dmz], publish: ["443:443/tcp"], ingress: ["203.0.113.0/24", "2001:db8::/32"]}
  frontend: {match: {name: frontend}, zones: [public-dmz, application-tier]}
  api:      {match: {name: api}, zones: [application-tier, database-tier], egress: [{to: 198.51.100.0/24, ports: [443/tcp]}]}
  postgres: {match: {name: postgres}, zones: [database-tier]}
  cache:    {match: {name: cache}, zones: [database-tier]}
flows:
  - {from: lb,       to: frontend, ports: [8080/tcp]}
  - {from: frontend, to: api,      ports: [8080/tcp, 9000-9100/udp]}
  - {from: api,      to: postgres, ports: [5432/tcp]}
  - {from: api,      to: cache,    ports: [6379/tcp, icmp]}
  - {from: frontend, to: lb,       ports: [443/tcp]}
  - {from: cache,    to: api,      ports: [all]}
unmanaged: warn
`

// Variants are Policy as it is, with unmanaged: deny, and with every
// tier default: allow: the decisions a model of the firewall must agree
// on.
func Variants() []string {
	return []string{
		Policy,
		strings.Replace(Policy, "unmanaged: warn", "unmanaged: deny", 1),
		strings.ReplaceAll(Policy, "{default: deny}", "{}"),
	}
}

// Ports are the ports to ask about Policy: those it names, and some it
// does not.
var Ports = []l4.Port{{Proto: "tcp", Number: 8080}, {Proto: "tcp", Number: 443}, {Proto: "tcp", Number: 5432},
	{Proto: "tcp", Number: 6379}, {Proto: "udp", Number: 9050}, {Proto: "tcp", Number: 22}, {Proto: "icmp"}}

// HostWithPorts is Host with bridge ports: each endpoint of container i
// (in snapshot order) on its j-th network has port 100+10i+j, and each
// subnet's first address is its gateway.
func HostWithPorts() *inventory.Snapshot {
	snap := Host()
	for i := range snap.Networks {
		for j := range snap.Networks[i].Subnets {
			s := &snap.Networks[i].Subnets[j]
			s.Gateway = s.Prefix.Addr().Next()
		}
	}
	for i := range snap.Containers {
		for j := range snap.Containers[i].Endpoints {
			snap.Containers[i].Endpoints[j].BridgePort = 100 + 10*i + j
		}
	}
	return snap
}
