package policy

import (
	"path"
	"strings"
)

// validGlob reports whether pattern is a valid path.Match pattern.
func validGlob(pattern string) bool {
	_, err := path.Match(pattern, "")
	return err == nil
}

// IsGlob reports whether s holds a glob metacharacter: a literal matches
// itself only.
func IsGlob(s string) bool { return strings.ContainsAny(s, `*?[\`) }

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
