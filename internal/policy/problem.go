package policy

import (
	"cmp"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a policy, at the place it was found.
type Problem struct {
	File      string // as given to Parse; "" for a policy built in code
	Line, Col int    // 1-based; 0 when unknown
	Msg       string
}

// String renders the problem as "file:line:col: message".
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
	}
	if p.Line > 0 {
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(p.Col))
		b.WriteByte(':')
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(p.Msg)
	return b.String()
}

// GitHub renders the problem as a GitHub Actions workflow command, which
// annotates the line in a pull request:
// "::error file=policy.yaml,line=3,col=5::message".
func (p Problem) GitHub(level string) string {
	var b strings.Builder
	b.WriteString("::")
	b.WriteString(level)
	var props []string
	if p.File != "" {
		props = append(props, "file="+escapeProperty(p.File))
	}
	if p.Line > 0 {
		props = append(props, "line="+strconv.Itoa(p.Line), "col="+strconv.Itoa(p.Col))
	}
	if len(props) > 0 {
		b.WriteByte(' ')
		b.WriteString(strings.Join(props, ","))
	}
	b.WriteString("::")
	b.WriteString(escapeData(p.Msg))
	return b.String()
}

// escapeData and escapeProperty follow the escaping of GitHub's
// @actions/core (command.ts).
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// Error is an invalid policy: every problem found, in file order.
type Error struct {
	Problems []Problem
}

// Error renders one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// WriteText writes one "file:line:col: message" line per problem.
func (e *Error) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, p := range e.Problems {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteGitHub writes one GitHub Actions error annotation per problem.
func (e *Error) WriteGitHub(w io.Writer) error {
	var b strings.Builder
	for _, p := range e.Problems {
		b.WriteString(p.GitHub("error"))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// problems collects problems up to a limit.
type problems struct {
	file  string
	list  []Problem
	limit int // 0: no limit
}

func (ps *problems) add(pos Pos, msg string) {
	if ps.full() {
		return
	}
	ps.list = append(ps.list, Problem{File: ps.file, Line: pos.Line, Col: pos.Col, Msg: msg})
}

func (ps *problems) full() bool { return ps.limit > 0 && len(ps.list) >= ps.limit }

// sorted returns the problems in file order (problems without a position
// last), keeping the order of discovery between equal positions.
func (ps *problems) sorted() []Problem {
	slices.SortStableFunc(ps.list, func(a, b Problem) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return ps.list
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	return &Error{Problems: ps.sorted()}
}

// NewError returns the problems as an *Error in file order, or nil when
// there is none: for packages that check a policy against something else
// (a host).
func NewError(list []Problem) error {
	ps := &problems{list: list}
	return ps.err()
}
