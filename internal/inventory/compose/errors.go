package compose

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// explain turns an error of compose-go's loader into one
// *inventory.DecodeError line that names the file it comes from, with the
// line and column that YAML errors carry.
func (l *projectLoader) explain(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	msg := err.Error()
	file, content, rest := l.fileInMessage(msg)
	if file == "" {
		file, content = l.culprit(ctx, msg)
	}
	de := &inventory.DecodeError{File: file}
	if line, col, problem, ok := yamlPosition(rest, content); ok {
		de.Line, de.Col, de.Msg = line, col, problem
		return de
	}
	rest = strings.Join(strings.Fields(rest), " ")
	de.Line, de.Col = locate(content, rest)
	de.Msg = describe(rest)
	return de
}

// explainModel places a problem that convert found in the loaded project
// ("services.web.ports[0]: ...") in the last file that writes its path, as
// later files override earlier ones.
func (l *projectLoader) explainModel(err error) error {
	msg := err.Error()
	de := &inventory.DecodeError{Msg: msg}
	path, best := modelPath(msg), 0
	for i := len(l.inputs) - 1; i >= 0 && path != ""; i-- {
		line, col, depth := keyPosition(l.inputs[i].content, path)
		if depth > best {
			de.File, de.Line, de.Col, best = l.inputs[i].name, line, col, depth
		}
	}
	if de.File == "" {
		names := make([]string, len(l.inputs))
		for i, in := range l.inputs {
			names[i] = in.name
		}
		de.File = strings.Join(names, ",")
	}
	return de
}

// fileInMessage finds the compose file that compose-go names in msg
// ("failed to parse /abs/compose.yaml: ...", "validating /abs/...: ") and
// returns it by the caller's name, with its content and the rest of msg.
// Files pulled in by include: keep the path compose-go gives.
func (l *projectLoader) fileInMessage(msg string) (file string, content []byte, rest string) {
	byLength := slices.Clone(l.inputs)
	slices.SortFunc(byLength, func(a, b input) int { return len(b.abs) - len(a.abs) })
	for _, in := range byLength {
		if _, after, ok := strings.Cut(msg, in.abs+": "); ok {
			return in.name, in.content, after
		}
	}
	for _, prefix := range []string{"failed to parse ", "validating "} {
		if after, ok := strings.CutPrefix(msg, prefix); ok {
			if path, problem, ok := strings.Cut(after, ": "); ok {
				return path, nil, problem
			}
		}
	}
	return "", nil, msg
}

// culprit finds the file that brings in an error compose-go reports without
// a file name (interpolation, model consistency): the first file whose
// addition to the files before it makes loading fail the same way. An error
// that only the whole set shows is the last file's.
func (l *projectLoader) culprit(ctx context.Context, msg string) (string, []byte) {
	for n := 1; n < len(l.inputs); n++ {
		if _, err := l.load(ctx, n); err != nil && err.Error() == msg {
			return l.inputs[n-1].name, l.inputs[n-1].content
		}
	}
	last := l.inputs[len(l.inputs)-1]
	return last.name, last.content
}

// describe makes a compose-go message one line and says what to do where
// the message does not.
func describe(msg string) string {
	msg = strings.TrimSuffix(msg, ": invalid compose project")
	if m := badInterpolation.FindStringSubmatch(msg); m != nil {
		return m[1] + ": invalid interpolation in " + strconv.Quote(m[2]) + " (close ${...}, or write $$ for a literal $)"
	}
	switch {
	case msg == "empty compose file":
		return "the compose file is empty: define at least one service"
	case additionalProp.MatchString(msg):
		return modelPath(msg) + ": not an attribute of the compose specification (check the spelling and the indentation)"
	case undefinedReference.MatchString(msg):
		m := undefinedReference.FindStringSubmatch(msg)
		return fmt.Sprintf("services.%s: uses %s %s, which the top-level %ss section does not declare (declare it there; add external: true if it exists already)", m[1], m[2], m[3], m[2])
	case strings.HasSuffix(msg, " false schema"):
		attr := strings.TrimSuffix(msg, " false schema")
		return attr + ": not an attribute of the compose specification (check the spelling and the indentation)"
	case strings.HasPrefix(msg, "required variable"):
		return msg + " (set it in the environment or in .env)"
	case strings.HasPrefix(msg, "project name must not be empty"):
		return msg + " (set COMPOSE_PROJECT_NAME or a top-level name:)"
	}
	return msg
}

// compose-go's message for a "$" that starts no valid ${VAR}, on one line.
var badInterpolation = regexp.MustCompile(`^invalid interpolation format for (\S+?)\. You may need to escape any \$ with another \$\. (.*)$`)

// A YAML error as go.yaml.in/yaml/v4 formats it, after "yaml: ":
// "[CONTEXT at MARK: ][MARK: ]PROBLEM", a MARK being "line N[, column M]".
var (
	yamlMessage = regexp.MustCompile(`^(?:(while [^:]*?) at (line \d+(?:, column \d+)?): )?(?:(line \d+(?:, column \d+)?): )?(.+)$`)
	yamlMark    = regexp.MustCompile(`^line (\d+)(?:, column (\d+))?$`)
	// A decode error: "line N: PROBLEM", nested once per document level.
	yamlLinePrefix = regexp.MustCompile(`^line (\d+): `)
)

// parserProblems are the problems go.yaml.in/yaml/v4's parser reports
// without a context. Its parser (unlike its scanner and decoder) prints
// 0-based line numbers: v4.0.0-rc.4 adds 1 in formatScannerError but not
// in formatParserError. TestLoadErrors pins the positions, so a fixed
// release shows up there.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// yamlPosition reads the position out of a YAML error message and returns
// it 1-based, with the problem alone. content, when known, fills in the
// column of errors that carry only a line.
func yamlPosition(msg string, content []byte) (line, col int, problem string, ok bool) {
	rest, isYAML := strings.CutPrefix(msg, "yaml: ")
	if !isYAML {
		return 0, 0, "", false
	}
	for _, list := range []string{"construct errors:", "unmarshal errors:"} {
		if after, found := strings.CutPrefix(rest, list); found {
			return decodePosition(after, content)
		}
	}
	m := yamlMessage.FindStringSubmatch(strings.Join(strings.Fields(rest), " "))
	if m == nil {
		return 0, 0, "", false
	}
	context, contextMark, problemMark, problem := m[1], m[2], m[3], m[4]
	if problemMark == "" {
		problemMark = contextMark
	}
	line, col, ok = parseMark(problemMark)
	if !ok {
		return 0, 0, "", false
	}
	zeroBased := parserProblems[problem]
	if context != "" {
		zeroBased = strings.HasPrefix(context, "while parsing a ") &&
			!strings.HasPrefix(context, "while parsing a tag") &&
			!strings.HasPrefix(context, "while parsing a %TAG")
	}
	if zeroBased {
		line++
	}
	if strings.HasPrefix(problem, "unknown anchor") && col > 1 {
		col-- // the decoder's node column is 1-based already, and printed +1
	}
	if context != "" && contextMark != problemMark && contextMark != "" {
		if cl, cc, ok := parseMark(contextMark); ok {
			if zeroBased {
				cl++
			}
			problem += " (" + context + " at " + strconv.Itoa(cl) + ":" + strconv.Itoa(cc) + ")"
		}
	}
	return line, col, problem + "; check the indentation and quoting", true
}

// decodePosition reads the first of the decoder's errors:
// "\n  line 1: line 4: mapping key \"web\" already defined at line 2".
func decodePosition(list string, content []byte) (line, col int, problem string, ok bool) {
	first := strings.TrimSpace(list)
	if i := strings.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	for {
		m := yamlLinePrefix.FindStringSubmatch(first)
		if m == nil {
			break
		}
		line, _ = strconv.Atoi(m[1])
		first = first[len(m[0]):]
	}
	if line == 0 {
		return 0, 0, "", false
	}
	return line, firstColumn(content, line), first, true
}

// parseMark reads "line N[, column M]"; a mark without a column is at the
// start of the line.
func parseMark(s string) (line, col int, ok bool) {
	m := yamlMark.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, false
	}
	line, _ = strconv.Atoi(m[1])
	col = 1
	if m[2] != "" {
		col, _ = strconv.Atoi(m[2])
	}
	return line, col, true
}
