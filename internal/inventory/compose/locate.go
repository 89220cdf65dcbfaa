package compose

import (
	"bytes"
	"regexp"
	"strings"
)

// Model paths in compose-go's and this package's messages:
// "services.web.ports must be a array", "error while interpolating
// services.web.image: ...", "services.web.networks.a.ipv4_address: ...".
var (
	leadingPath       = regexp.MustCompile(`^((?:services|networks|volumes|secrets|configs|models|include|name|x-[^.\s:]*)(?:\.[^\s:\[]+)*)`)
	interpolationPath = regexp.MustCompile(`^(?:invalid interpolation format for|error while interpolating) (\S+?)[.:]?(?:\s|$)`)
	additionalProp    = regexp.MustCompile(`additional properties '([^']+)'`)
	// compose-go's consistency errors name the service only.
	serviceSubject     = regexp.MustCompile(`^service "([^"]+)"`)
	undefinedReference = regexp.MustCompile(`^service "([^"]+)" refers to undefined (network|volume|secret|config) (\S+)`)
)

// modelPath returns the dotted path of the model element msg is about, or "".
func modelPath(msg string) string {
	path := ""
	if m := undefinedReference.FindStringSubmatch(msg); m != nil {
		return "services." + m[1] + "." + m[2] + "s"
	}
	if m := serviceSubject.FindStringSubmatch(msg); m != nil {
		return "services." + m[1]
	}
	if m := interpolationPath.FindStringSubmatch(msg); m != nil {
		path = m[1]
	} else if m := leadingPath.FindStringSubmatch(msg); m != nil {
		path = m[1]
	}
	if m := additionalProp.FindStringSubmatch(msg); m != nil {
		if path == "" {
			return m[1]
		}
		return path + "." + m[1]
	}
	return path
}

// keyPosition finds where a model path ("services.web.ports") is written
// in block-style YAML: the 1-based line and column of the deepest key of
// the path it finds, and how many keys of the path it found. It reads
// indentation only: a list index ("ports.0", "[]") or flow style
// ("web: {image: x}") ends the search.
func keyPosition(content []byte, path string) (line, col, depth int) {
	lines := strings.Split(string(content), "\n")
	start, parentIndent := 0, -1
	for _, key := range strings.Split(path, ".") {
		if key == "" || strings.HasPrefix(key, "[") || strings.Trim(key, "0123456789") == "" {
			break
		}
		found := false
		childIndent := -1
		for i := start; i < len(lines); i++ {
			text := strings.TrimRight(lines[i], "\r")
			trimmed := strings.TrimLeft(text, " ")
			if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "---") {
				continue
			}
			indent := len(text) - len(trimmed)
			if indent <= parentIndent {
				break // the parent's block ended
			}
			if childIndent < 0 {
				childIndent = indent
			}
			if indent != childIndent || mappingKey(trimmed) != key {
				continue
			}
			line, col, depth = i+1, indent+1, depth+1
			start, parentIndent = i+1, indent
			found = true
			break
		}
		if !found {
			break
		}
	}
	return line, col, depth
}

// mappingKey returns the key of a "key: value" line, unquoting it, or "".
func mappingKey(s string) string {
	if s != "" && (s[0] == '"' || s[0] == '\'') {
		end := strings.IndexByte(s[1:], s[0])
		if end < 0 {
			return ""
		}
		rest := strings.TrimLeft(s[end+2:], " ")
		if !strings.HasPrefix(rest, ":") {
			return ""
		}
		return s[1 : end+1]
	}
	for i := 0; i < len(s); i++ {
		if s[i] == ':' && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\t') {
			return strings.TrimRight(s[:i], " ")
		}
	}
	return ""
}

// locate finds the model path of msg in the content of a file.
func locate(content []byte, msg string) (line, col int) {
	path := modelPath(msg)
	if path == "" || len(content) == 0 {
		return 0, 0
	}
	line, col, _ = keyPosition(content, path)
	return line, col
}

// firstColumn returns the column of the first non-blank character of the
// 1-based line in content, or 1.
func firstColumn(content []byte, line int) int {
	lines := bytes.Split(content, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 1
	}
	text := lines[line-1]
	indent := len(text) - len(bytes.TrimLeft(text, " \t"))
	if indent == len(text) {
		return 1
	}
	return indent + 1
}
