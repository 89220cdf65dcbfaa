// Package nft loads nftables scripts with the nft command: one script is
// one transaction, so the kernel either takes all of it or none of it. It
// is the only package that runs nft.
package nft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Binary is the nft command; tests may point it elsewhere.
var Binary = "nft"

// ScriptError is a script the kernel refused, with the offending line.
type ScriptError struct {
	Line    int    // 1-based line of the script, 0 if unknown
	Text    string // that line
	Message string // nft's message
}

func (e *ScriptError) Error() string {
	if e.Line == 0 {
		return "nft refused the ruleset: " + e.Message
	}
	return fmt.Sprintf("nft refused line %d of the ruleset (%s): %s", e.Line, strings.TrimSpace(e.Text), e.Message)
}

// nft reports "/dev/stdin:12:3-10: Error: Could not process rule: ...".
var errorLine = regexp.MustCompile(`(?m)^(?:/dev/stdin|-):(\d+):[\d-]+: Error: (.*)$`)

// Apply loads script as one transaction. On failure nothing of it is
// applied and the error is a *ScriptError naming the line.
func Apply(ctx context.Context, script string) error {
	_, err := run(ctx, script, "-f", "-")
	var se *ScriptError
	if errors.As(err, &se) && se.Line > 0 {
		lines := strings.Split(script, "\n")
		if se.Line <= len(lines) {
			se.Text = lines[se.Line-1]
		}
	}
	return err
}

// Check validates script without loading it (nft -c).
func Check(ctx context.Context, script string) error {
	_, err := run(ctx, script, "-c", "-f", "-")
	return err
}

// List returns the listing of one table (nft list table FAMILY NAME), or
// "" and no error when it does not exist.
func List(ctx context.Context, family, name string) (string, error) {
	out, err := run(ctx, "", "list", "table", family, name)
	if err != nil && strings.Contains(err.Error(), "No such file or directory") {
		return "", nil
	}
	return out, err
}

// Tables lists the tables of the ruleset as "family name".
func Tables(ctx context.Context) ([]string, error) {
	out, err := run(ctx, "", "list", "tables")
	if err != nil {
		return nil, err
	}
	var tables []string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "table "); ok {
			tables = append(tables, rest)
		}
	}
	return tables, nil
}

// Delete removes one table if it exists.
func Delete(ctx context.Context, family, name string) error {
	_, err := run(ctx, fmt.Sprintf("add table %s %s\ndelete table %s %s\n", family, name, family, name), "-f", "-")
	return err
}

func run(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, Binary, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err == nil {
		return out.String(), nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return "", fmt.Errorf("cannot run %s: %w (install the nftables package)", Binary, err)
	}
	msg := strings.TrimSpace(errOut.String())
	if m := errorLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return "", &ScriptError{Line: line, Message: m[2]}
	}
	if msg == "" {
		msg = err.Error()
	}
	if strings.Contains(msg, "Operation not permitted") {
		msg += " (run as root, or with CAP_NET_ADMIN)"
	}
	return "", &ScriptError{Message: firstLine(msg)}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
