package policy

import (
	"path"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// validGlob reports whether pattern is a valid path.Match pattern.
func validGlob(pattern string) bool {
	_, err := path.Match(pattern, "")
	return err == nil
}

// isGlob reports whether s holds a glob metacharacter.
func isGlob(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// globMatch matches s against a valid pattern; a literal pattern is
// compared directly.
func globMatch(pattern, s string) bool {
	if !isGlob(pattern) {
		return pattern == s
	}
	ok, _ := path.Match(pattern, s)
	return ok
}

// imageRef is an image reference split for matching: the repository
// without the implicit docker.io/library/ prefix, its last path element,
// and the tag (latest when none) or digest.
type imageRef struct {
	repo, last, tag, digest string
}

func parseImage(image string) imageRef {
	r := parseImagePattern(image)
	if r.tag == "" && r.digest == "" {
		r.tag = "latest"
	}
	r.last = r.repo
	if i := strings.LastIndexByte(r.repo, '/'); i >= 0 {
		r.last = r.repo[i+1:]
	}
	return r
}

// matchImage applies an image pattern (see Match.Image).
func matchImage(pattern string, img imageRef) bool {
	pat := parseImagePattern(pattern)
	name := img.repo
	if !strings.Contains(pat.repo, "/") {
		name = img.last
	}
	if !globMatch(pat.repo, name) {
		return false
	}
	switch {
	case pat.digest != "":
		return img.digest != "" && globMatch(pat.digest, img.digest)
	case pat.tag != "":
		return img.tag != "" && globMatch(pat.tag, img.tag)
	}
	return true
}

// parseImagePattern splits a pattern into repository, tag and digest,
// without the implicit latest tag that parseImage adds: a pattern without a
// tag matches every tag.
func parseImagePattern(pattern string) imageRef {
	var r imageRef
	rest := pattern
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		r.digest = rest[i+1:]
		rest = rest[:i]
	}
	// A ':' after the last '/' starts the tag; one before it is a
	// registry port.
	slash := strings.LastIndexByte(rest, '/')
	if i := strings.LastIndexByte(rest, ':'); i > slash {
		r.tag = rest[i+1:]
		rest = rest[:i]
	}
	rest = strings.TrimPrefix(rest, "docker.io/")
	rest = strings.TrimPrefix(rest, "index.docker.io/")
	rest = strings.TrimPrefix(rest, "library/")
	r.repo = rest
	return r
}

// Matches reports whether the container satisfies every criterion of m.
// A zero Match matches nothing.
func (m *Match) Matches(c *inventory.Container) bool {
	if m.IsZero() {
		return false
	}
	return m.matches(c, nil)
}

func (m *Match) matches(c *inventory.Container, img *imageRef) bool {
	if m.Name != "" && !globMatch(m.Name, c.Name) {
		return false
	}
	if m.Compose.Project != "" && !globMatch(m.Compose.Project, c.ComposeProject()) {
		return false
	}
	if m.Compose.Service != "" && !globMatch(m.Compose.Service, c.ComposeService()) {
		return false
	}
	if !m.Compose.IsZero() && c.ComposeProject() == "" {
		return false
	}
	for k, pat := range m.Labels {
		v, ok := c.Labels[k]
		if !ok || !globMatch(pat, v) {
			return false
		}
	}
	if m.Image != "" {
		if img == nil {
			r := parseImage(c.Image)
			img = &r
		}
		if c.Image == "" || !matchImage(m.Image, *img) {
			return false
		}
	}
	return true
}

// validName reports whether s is a name Docker accepts for a network or
// container: [a-zA-Z0-9][a-zA-Z0-9_.-]*. letterFirst also requires a
// letter first (workload names, which must not read as addresses).
// ValidZoneName reports whether s can name a zone (a Docker network).
func ValidZoneName(s string) bool { return validName(s, false) }

func validName(s string, letterFirst bool) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9':
			if i == 0 && letterFirst {
				return false
			}
		case c == '_' || c == '.' || c == '-':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
