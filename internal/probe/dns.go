package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// DockerDNS is the address of Docker's embedded DNS server inside every
// container on a user-defined network. It answers the names of the
// containers (and their aliases, compose service names among them) that
// share a network with the asking container; containers on Docker's
// default bridge have none.
var DockerDNS = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 11}), 53)

// DNS record types asked for.
const (
	dnsA    = 1
	dnsAAAA = 28
)

// ErrNoName is returned (wrapped) by [Prober.Resolve] when the DNS server
// answered that the name does not exist (NXDOMAIN) or has no address: the
// asking container shares no network with a container of that name.
var ErrNoName = errors.New("no such name")

// Resolve asks the DNS server at DockerDNS, from inside ns, for the IPv4
// and IPv6 addresses of name, as a program in the container would (but
// without the container's resolv.conf: no search domains, and the name is
// asked as given, absolute). Both questions go out at once; Resolve waits
// for both answers, at most the prober's timeout, and returns the
// addresses it has by then, IPv4 first. No address at all is an error.
func (p *Prober) Resolve(ctx context.Context, ns *Namespace, name string) ([]netip.Addr, error) {
	return p.resolve(ctx, ns, DockerDNS, name)
}

func (p *Prober) resolve(ctx context.Context, ns *Namespace, server netip.AddrPort, name string) ([]netip.Addr, error) {
	if ns == nil {
		ns = host
	}
	qname, err := encodeName(name)
	if err != nil {
		return nil, err
	}
	var conn net.Conn
	var dialErr error
	if err := ns.Do(func() error {
		var d net.Dialer
		conn, dialErr = d.DialContext(ctx, "udp", server.String())
		return nil
	}); err != nil {
		return nil, err
	}
	if dialErr != nil {
		return nil, fmt.Errorf("resolving %s in %s: %w", name, ns, dialErr)
	}
	defer conn.Close()
	deadline := time.Now().Add(p.timeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	pending := map[uint16]uint16{} // query id -> record type
	for _, qtype := range []uint16{dnsA, dnsAAAA} {
		id := uint16(rand.Uint32())
		for pending[id] != 0 {
			id++
		}
		pending[id] = qtype
		if _, err := conn.Write(dnsQuery(id, qname, qtype)); err != nil {
			return nil, fmt.Errorf("resolving %s in %s: %w", name, ns, dnsError(err))
		}
	}
	var addrs []netip.Addr
	var answerErr error
	buf := make([]byte, 1500)
	for len(pending) > 0 {
		n, err := conn.Read(buf)
		if err != nil {
			if len(addrs) > 0 {
				break // an unanswered AAAA (forwarded upstream, say)
			}
			if answerErr != nil {
				return nil, answerErr
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("resolving %s in %s: %w", name, ns, dnsError(err))
		}
		id, got, err := parseAnswer(buf[:n], qname)
		if _, ok := pending[id]; !ok {
			continue // a stray or duplicate answer
		}
		delete(pending, id)
		if err != nil {
			answerErr = fmt.Errorf("resolving %s in %s: %w", name, ns, err)
			continue
		}
		addrs = append(addrs, got...)
	}
	if len(addrs) == 0 {
		if answerErr == nil {
			answerErr = fmt.Errorf("resolving %s in %s: %w", name, ns, ErrNoName)
		}
		return nil, answerErr
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int {
		if a.Is4() != b.Is4() {
			if a.Is4() {
				return -1
			}
			return 1
		}
		return a.Compare(b)
	})
	return slices.Compact(addrs), nil
}

// dnsError says what a socket error means for a DNS question.
func dnsError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, net.ErrClosed):
		return err
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no answer from %s: %w", DockerDNS.Addr(), err)
	case strings.Contains(err.Error(), "connection refused"):
		return fmt.Errorf("no DNS server listens at %s (a container on Docker's default bridge has no embedded DNS): %w", DockerDNS.Addr(), err)
	}
	return err
}

// encodeName renders name as DNS labels, absolute.
func encodeName(name string) ([]byte, error) {
	n := strings.TrimSuffix(name, ".")
	if n == "" || len(n) > 253 {
		return nil, fmt.Errorf("resolving %q: not a DNS name", name)
	}
	var out []byte
	for l := range strings.SplitSeq(n, ".") {
		if l == "" || len(l) > 63 {
			return nil, fmt.Errorf("resolving %q: not a DNS name (empty or long label)", name)
		}
		out = append(out, byte(len(l)))
		out = append(out, l...)
	}
	return append(out, 0), nil
}

// dnsQuery builds a recursive question for qname of type qtype, class IN.
func dnsQuery(id uint16, qname []byte, qtype uint16) []byte {
	m := make([]byte, 12, 12+len(qname)+4)
	binary.BigEndian.PutUint16(m[0:], id)
	m[2] = 0x01                          // RD
	binary.BigEndian.PutUint16(m[4:], 1) // QDCOUNT
	m = append(m, qname...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(m, qtype), 1)
}

// parseAnswer reads a DNS response to a question for qname and returns its
// id and the A and AAAA records of its answer section.
func parseAnswer(m []byte, qname []byte) (uint16, []netip.Addr, error) {
	if len(m) < 12 {
		return 0, nil, errors.New("short DNS answer")
	}
	id := binary.BigEndian.Uint16(m)
	if m[2]&0x80 == 0 {
		return id, nil, errors.New("not a DNS answer")
	}
	switch rcode := m[3] & 0x0f; rcode {
	case 0:
	case 3:
		return id, nil, ErrNoName
	default:
		return id, nil, fmt.Errorf("the DNS server answered with error code %d", rcode)
	}
	qd, an := binary.BigEndian.Uint16(m[4:]), binary.BigEndian.Uint16(m[6:])
	off := 12
	for range qd {
		end, ok := skipName(m, off)
		if !ok || end+4 > len(m) {
			return id, nil, errors.New("malformed DNS answer")
		}
		if !strings.EqualFold(string(m[off:end]), string(qname)) {
			return id, nil, errors.New("a DNS answer to another question")
		}
		off = end + 4
	}
	var out []netip.Addr
	for range an {
		end, ok := skipName(m, off)
		if !ok || end+10 > len(m) {
			return id, nil, errors.New("malformed DNS answer")
		}
		typ, class := binary.BigEndian.Uint16(m[end:]), binary.BigEndian.Uint16(m[end+2:])
		rdlen := int(binary.BigEndian.Uint16(m[end+8:]))
		rdata := end + 10
		if rdata+rdlen > len(m) {
			return id, nil, errors.New("malformed DNS answer")
		}
		if class == 1 {
			if a, ok := netip.AddrFromSlice(m[rdata : rdata+rdlen]); ok && (typ == dnsA && rdlen == 4 || typ == dnsAAAA && rdlen == 16) {
				out = append(out, a.Unmap())
			}
		}
		off = rdata + rdlen
	}
	return id, out, nil
}

// skipName returns the offset just past the (possibly compressed) name at
// off.
func skipName(m []byte, off int) (int, bool) {
	for off < len(m) {
		l := int(m[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xc0 == 0xc0:
			return off + 2, off+2 <= len(m)
		case l&0xc0 != 0:
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}
