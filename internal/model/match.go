package model

import (
	"path"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
	"github.com/zonewarden/zonewarden/internal/policy"
)

// globMatch matches s against a valid pattern; a literal pattern is
// compared directly.
func globMatch(pattern, s string) bool {
	if !policy.IsGlob(pattern) {
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
func Matches(m *policy.Match, c *inventory.Container) bool {
	if m.IsZero() {
		return false
	}
	return matches(m, c, nil)
}

func matches(m *policy.Match, c *inventory.Container, img *imageRef) bool {
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
