package truth

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/zonewarden/zonewarden/internal/probe"
	"github.com/zonewarden/zonewarden/internal/testenv"
)

// Held is an open TCP connection between two containers' namespaces,
// to an echo listener the test runs in the server's namespace.
type Held struct {
	c net.Conn
}

// Hold opens a connection from one container to an echo listener the test
// runs on port of another (its first network's address), and checks that
// it echoes. Both are closed when t ends.
func (env *Env) Hold(t *testing.T, from, to string, port uint16) *Held {
	t.Helper()
	open := func(name string) *probe.Namespace {
		ns, err := probe.OpenPID(testenv.Pid(t, env.Client(), env.ID(name)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		return ns
	}
	var ln net.Listener
	if err := open(to).Do(func() (err error) { ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); return }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	addr := env.ix.Container(to).Endpoints[0].IPv4
	var c net.Conn
	if err := open(from).Do(func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(addr, port).String(), 2*time.Second)
		return
	}); err != nil {
		t.Fatalf("connecting %s -> %s:%d: %v", from, to, port, err)
	}
	t.Cleanup(func() { c.Close() })
	h := &Held{c: c}
	if !h.Alive(2 * time.Second) {
		t.Fatalf("the held connection %s -> %s does not echo", from, to)
	}
	return h
}

// Alive reports whether the connection still echoes within d.
func (h *Held) Alive(d time.Duration) bool {
	h.c.SetDeadline(time.Now().Add(d))
	if _, err := h.c.Write([]byte("ping\n")); err != nil {
		return false
	}
	buf := make([]byte, 5)
	_, err := io.ReadFull(h.c, buf)
	return err == nil && string(buf) == "ping\n"
}
