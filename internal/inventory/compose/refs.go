package compose

import (
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// refs returns the evidence in svc's configuration that it connects to
// other services of the project: each depends_on entry, each upstream of a
// reverse proxy configuration mounted from the project (configRefs), and
// each service an environment value names as a host — a URL or DSN
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
	out = append(out, configRefs(p, svc, services)...)
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

// Bounds of the configuration files read for proxy targets.
const (
	maxConfigSize  = 1 << 20 // bytes of one file
	maxConfigFiles = 50      // files of one mounted folder
)

// proxyTargets find the upstreams of a reverse proxy's configuration:
// nginx's proxy_pass, *_pass and upstream servers, Traefik's (and
// others') service URLs; caddyProxy, Caddy's.
var proxyTargets = []*regexp.Regexp{
	regexp.MustCompile(`(?m)(?:^|[;{])\s*proxy_pass\s+\w+://([A-Za-z0-9_.-]+)(?::(\d+))?`),
	regexp.MustCompile(`(?m)(?:^|[;{])\s*(?:fastcgi|uwsgi|grpc|scgi)_pass\s+(?:\w+://)?([A-Za-z0-9_.-]+)(?::(\d+))?`),
	regexp.MustCompile(`(?m)(?:^|[;{])\s*server\s+([A-Za-z0-9_.-]+)(?::(\d+))?[^;\n]*;`),
	regexp.MustCompile(`(?m)url\s*[:=]\s*["']?\w+://([A-Za-z0-9_.-]+)(?::(\d+))?`),
}

// caddyProxy finds Caddy's reverse_proxy upstreams (the rest of the
// line, before a block).
var caddyProxy = regexp.MustCompile(`(?m)reverse_proxy\s+([^\n{]+)`)

// configRefs reads the reverse proxy configurations mounted into svc from
// the project's own folder (a bind mount of a file, or of a folder's files
// one level deep) and returns the services they send traffic to.
func configRefs(p *types.Project, svc types.ServiceConfig, services map[string]bool) []inventory.Ref {
	var out []inventory.Ref
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind || p.WorkingDir == "" {
			continue
		}
		// Only the project's own files, links resolved: never the host's.
		root, err1 := filepath.EvalSymlinks(p.WorkingDir)
		src, err2 := filepath.EvalSymlinks(v.Source)
		if err1 != nil || err2 != nil || !within(root, src) {
			continue
		}
		for _, file := range configFiles(src) {
			if real, err := filepath.EvalSymlinks(file); err != nil || !within(root, real) {
				continue
			}
			data, err := os.ReadFile(file)
			if err != nil || len(data) > maxConfigSize {
				continue
			}
			name, _ := filepath.Rel(root, file)
			via := "config ./" + filepath.ToSlash(name)
			var found []hostPort
			for _, re := range proxyTargets {
				for _, m := range re.FindAllStringSubmatch(string(data), -1) {
					hp := hostPort{name: strings.ToLower(m[1])}
					if n, err := strconv.ParseUint(m[2], 10, 16); err == nil {
						hp.port = uint16(n)
					}
					found = append(found, hp)
				}
			}
			// Caddy: reverse_proxy takes one upstream or more.
			for _, m := range caddyProxy.FindAllStringSubmatch(string(data), -1) {
				for _, up := range strings.Fields(m[1]) {
					found = append(found, hostsIn(up)...)
				}
			}
			for _, hp := range found {
				r := inventory.Ref{Service: hp.name, Port: hp.port, Via: via}
				if services[hp.name] && !slices.Contains(out, r) {
					out = append(out, r)
				}
			}
		}
	}
	return out
}

// within reports whether path is root or below it.
func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// configFiles returns path when it is a regular file, or the regular
// files in it (one level, at most maxConfigFiles) when it is a folder.
func configFiles(path string) []string {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return nil
	case fi.Mode().IsRegular():
		return []string{path}
	case !fi.IsDir():
		return nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && len(out) < maxConfigFiles {
			out = append(out, filepath.Join(path, e.Name()))
		}
	}
	return out
}
