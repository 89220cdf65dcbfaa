package agent_test

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// testWriter sends lines to the test log.
type testWriter struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf += string(p)
	for {
		line, rest, ok := strings.Cut(w.buf, "\n")
		if !ok {
			break
		}
		w.t.Log(w.prefix + line)
		w.buf = rest
	}
	return len(p), nil
}

func testLogger(t *testing.T, also ...io.Writer) *slog.Logger {
	w := io.MultiWriter(append([]io.Writer{&testWriter{t: t, prefix: "agent: "}}, also...)...)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
