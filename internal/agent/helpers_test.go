package agent_test

import (
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

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t, prefix: "agent: "}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
