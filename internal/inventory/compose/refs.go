package compose

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// refs returns the evidence in svc's configuration that it connects to
// other services of the project: each depends_on entry, and each service
// an environment value names as a host — a URL or DSN
// ("postgres://app:secret@db:5432/shop"), host:port ("cache:6379"), a
// bare name (DB_HOST=db), or a comma-separated list of those. Only the
// variable's name goes into the evidence, never its value.
func refs(p *types.Project, svc types.ServiceConfig) []inventory.Ref {
	services := map[string]bool{}
	for name := range p.Services {
		if name != svc.Name {
			services[name] = true
		}
	}
	var out []inventory.Ref
	for _, dep := range slices.Sorted(maps.Keys(svc.DependsOn)) {
		out = append(out, inventory.Ref{Service: dep, Via: "depends_on"})
	}
	for _, key := range slices.Sorted(maps.Keys(svc.Environment)) {
		v := svc.Environment[key]
		if v == nil {
			continue
		}
		for _, h := range hostsIn(*v) {
			if services[h.name] {
				out = append(out, inventory.Ref{Service: h.name, Port: h.port, Via: "environment " + key})
			}
		}
	}
	return out
}

// hostPort is a host named in a value, with its port if one is given.
type hostPort struct {
	name string
	port uint16
}

// hostsIn returns the hosts a value names: the host of each URL or DSN,
// host:port pair or bare name in it (a list split at commas and
// semicolons); a value with spaces in it is prose and names none.
func hostsIn(value string) []hostPort {
	var out []hostPort
	for _, part := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ';' }) {
		part = strings.TrimSpace(part)
		if strings.ContainsAny(part, " \t") {
			continue // prose, not an address
		}
		if strings.Contains(part, "://") {
			u, err := url.Parse(part)
			if err != nil {
				continue
			}
			// A DSN may list several hosts ("mongodb://a:1,b:2/db"); the
			// split at commas above leaves "b:2/db" for the next part.
			part = u.Host
		} else if i := strings.IndexAny(part, "/?"); i >= 0 {
			part = part[:i]
		}
		if i := strings.LastIndexByte(part, '@'); i >= 0 {
			part = part[i+1:] // user:password@host
		}
		if inner, ok := strings.CutPrefix(part, "tcp("); ok {
			part, _, _ = strings.Cut(inner, ")") // Go's MySQL DSN: user:pw@tcp(db:3306)/shop
		}
		host, port, found := strings.Cut(part, ":")
		hp := hostPort{name: strings.ToLower(host)}
		if found {
			n, err := strconv.ParseUint(port, 10, 16)
			if err != nil {
				continue
			}
			hp.port = uint16(n)
		}
		if hp.name != "" {
			out = append(out, hp)
		}
	}
	return out
}
