package nflink

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/zonewarden/zonewarden/internal/enforce"
)

// A field is one data type of a set key: how many bytes it takes and how
// its text (one value, a prefix or a range lo-hi) reads.
type field struct {
	typ  nftables.SetDatatype
	size int
}

var fields = map[string]field{
	"ipv4_addr":    {nftables.TypeIPAddr, 4},
	"ipv6_addr":    {nftables.TypeIP6Addr, 16},
	"inet_proto":   {nftables.TypeInetProto, 1},
	"inet_service": {nftables.TypeInetService, 2},
	"iface_index":  {nftables.TypeIFIndex, 4},
}

// typeofFields are the keys of typeof sets that have no named type.
var typeofFields = map[string]field{
	"meta iif": fields["iface_index"],
	// A raw 128-bit payload: an ICMPv6 neighbour advertisement's target.
	// nft declares it an integer and describes it in the set's user data
	// (typeof), which google/nftables cannot write; without that
	// description nft cannot list an integer key (it aborts). The kernel
	// looks at the key's length only, so the set is declared ipv6_addr:
	// the same bytes, and nft lists the targets as addresses.
	"@th,64,128": {nftables.TypeIP6Addr, 16},
}

// protocols are the names nft knows for inet_proto values that the
// compiler may write (/etc/protocols names).
var protocols = map[string]byte{
	"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
	"ipv6-icmp": 58, "sctp": 132, "udplite": 136, "dccp": 33,
}

// kind is the kernel's set backend, which decides how an element is
// encoded.
type kind int

const (
	hashed   kind = iota // one key per element
	interval             // rbtree: a start element and an interval-end element
	concatIv             // pipapo: a key and an inclusive key end
)

// layout is how a set's elements are encoded.
type layout struct {
	name   string
	fields []field
	kind   kind
	keyLen int // bytes of a key: fields padded to 4 bytes when concatenated
	set    *nftables.Set
}

// newLayout reads a set declaration. t is the table the set lives in.
func newLayout(d enforce.SetInfo, t *nftables.Table) (*layout, error) {
	l := &layout{name: d.Name}
	var types []nftables.SetDatatype
	for _, name := range strings.Split(d.Type, " . ") {
		f, ok := fields[name]
		if d.Typeof {
			f, ok = typeofFields[name]
		}
		if !ok {
			return nil, fmt.Errorf("set %s: type %q is not supported", d.Name, name)
		}
		l.fields = append(l.fields, f)
		types = append(types, f.typ)
	}
	concat := len(l.fields) > 1
	for _, f := range l.fields {
		if concat {
			l.keyLen += (f.size + 3) &^ 3
		} else {
			l.keyLen += f.size
		}
	}
	switch {
	case d.Interval && concat:
		l.kind = concatIv
	case d.Interval:
		l.kind = interval
	}
	s := &nftables.Set{
		Table:         t,
		Name:          d.Name,
		Interval:      d.Interval,
		Concatenation: d.Interval && concat, // nft marks only pipapo sets as concatenations
		Counter:       d.Counter,
		Comment:       d.Comment,
		KeyType:       types[0],
	}
	if concat {
		kt, err := nftables.ConcatSetType(types...)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", d.Name, err)
		}
		s.KeyType = kt
	} else if l.fields[0].typ.Name == "iface_index" {
		s.KeyByteOrder = binaryutil.NativeEndian // meta iif: host order
	} else {
		s.KeyByteOrder = binaryutil.BigEndian
	}
	l.set = s
	return l, nil
}

// encode turns one element (nft syntax, as Ruleset.Elements returns it)
// into the kernel's elements: one for a hash or pipapo set, a start and
// an interval end for an rbtree set (only the start when the interval
// runs to the end of the type's range). The comment goes on the first.
func (l *layout) encode(elem, comment string) ([]nftables.SetElement, error) {
	return l.appendElem(nil, &arena{}, elem, comment)
}

// appendElem appends the encoding of one element to out, its keys
// carved from a.
func (l *layout) appendElem(out []nftables.SetElement, a *arena, elem, comment string) ([]nftables.SetElement, error) {
	key := a.alloc(l.keyLen)
	var keyEnd []byte // the last value covered
	if l.kind != hashed {
		keyEnd = a.alloc(l.keyLen)
	}
	var scratch [16]byte // a hash set's last value: must equal the first
	rest, off, n := elem, 0, 0
	for more := true; more; n++ {
		var p string
		p, rest, more = strings.Cut(rest, " . ")
		if n >= len(l.fields) {
			break
		}
		f := l.fields[n]
		lo := key[off : off+f.size]
		hi := scratch[:f.size]
		if keyEnd != nil {
			hi = keyEnd[off : off+f.size]
		}
		if err := parseField(f, p, lo, hi); err != nil {
			return out, fmt.Errorf("set %s: element %q: %w", l.name, elem, err)
		}
		if l.kind == hashed && !bytes.Equal(lo, hi) {
			return out, fmt.Errorf("set %s: element %q: a range or prefix needs flags interval", l.name, elem)
		}
		off += f.size
		if len(l.fields) > 1 {
			off += (4 - f.size%4) % 4 // the padding stays zero
		}
	}
	if n != len(l.fields) {
		return out, fmt.Errorf("set %s: element %q has %d fields, want %d", l.name, elem, n, len(l.fields))
	}
	switch l.kind {
	case hashed:
		return append(out, nftables.SetElement{Key: key, Comment: comment}), nil
	case concatIv:
		return append(out, nftables.SetElement{Key: key, KeyEnd: keyEnd, Comment: comment}), nil
	}
	out = append(out, nftables.SetElement{Key: key, Comment: comment})
	if increment(keyEnd) { // the end element is the first value after the interval
		out = append(out, nftables.SetElement{Key: keyEnd, IntervalEnd: true})
	}
	return out, nil
}

// An arena hands out zeroed byte slices from larger allocations.
type arena struct{ buf []byte }

func (a *arena) alloc(n int) []byte {
	if len(a.buf)+n > cap(a.buf) {
		a.buf = make([]byte, 0, max(16<<10, n))
	}
	s := a.buf[len(a.buf) : len(a.buf)+n : len(a.buf)+n]
	a.buf = a.buf[:len(a.buf)+n]
	return s
}

// parseField reads one field of an element, a value, a prefix
// (addresses) or a range lo-hi, into the first and last values it covers,
// big endian. lo and hi are f.size bytes.
func parseField(f field, s string, lo, hi []byte) error {
	switch f.typ.Name {
	case "inet_proto":
		if p, ok := protocols[s]; ok {
			lo[0], hi[0] = p, p
			return nil
		}
		a, b, err := numberRange(s, 0xff)
		if err != nil {
			return fmt.Errorf("%q is not a protocol: %w", s, err)
		}
		lo[0], hi[0] = byte(a), byte(b)
		return nil
	case "iface_index":
		// The kernel's ifindex, in host byte order as meta iif loads it.
		a, _, err := numberRange(s, 0x7fffffff)
		if err != nil || strings.Contains(s, "-") {
			return fmt.Errorf("%q is not an interface index", s)
		}
		binary.NativeEndian.PutUint32(lo, uint32(a))
		copy(hi, lo)
		return nil
	case "ipv6_addr", "ipv4_addr":
		if h, ok := strings.CutPrefix(s, "0x"); ok {
			// A raw payload key (typeof), its bytes in hex as in the
			// packet.
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != f.size {
				return fmt.Errorf("%q is not a %d-byte 0x integer", s, f.size)
			}
			copy(lo, b)
			copy(hi, b)
			return nil
		}
		return parseAddrField(f, s, lo, hi)
	case "inet_service":
		a, b, err := numberRange(s, 0xffff)
		if err != nil {
			return fmt.Errorf("%q is not a port: %w", s, err)
		}
		binary.BigEndian.PutUint16(lo, uint16(a))
		binary.BigEndian.PutUint16(hi, uint16(b))
		return nil
	}
	return fmt.Errorf("type %s is not supported", f.typ.Name)
}

// parseAddrField reads an address, a prefix or a range of addresses.
func parseAddrField(f field, s string, lo, hi []byte) error {
	want4 := f.size == 4
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Is4() != want4 {
			return fmt.Errorf("%q is not a %s prefix", s, f.typ.Name)
		}
		p = p.Masked()
		putAddr(lo, p.Addr())
		copy(hi, lo)
		for bit := p.Bits(); bit < len(hi)*8; bit++ {
			hi[bit/8] |= 0x80 >> (bit % 8)
		}
		return nil
	}
	a, b, isRange := strings.Cut(s, "-")
	first, err1 := netip.ParseAddr(a)
	last := first
	var err2 error
	if isRange {
		last, err2 = netip.ParseAddr(b)
	}
	if err1 != nil || err2 != nil || first.Is4() != want4 || last.Is4() != want4 || last.Less(first) {
		return fmt.Errorf("%q is not a %s value or range", s, f.typ.Name)
	}
	putAddr(lo, first)
	putAddr(hi, last)
	return nil
}

func putAddr(dst []byte, a netip.Addr) {
	if a.Is4() {
		b := a.As4()
		copy(dst, b[:])
		return
	}
	b := a.As16()
	copy(dst, b[:])
}

// numberRange reads N or N-M, each at most max.
func numberRange(s string, max uint64) (lo, hi uint64, err error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err = strconv.ParseUint(a, 10, 64)
	if err != nil || lo > max {
		return 0, 0, fmt.Errorf("not a number up to %d", max)
	}
	hi = lo
	if isRange {
		hi, err = strconv.ParseUint(b, 10, 64)
		if err != nil || hi > max || hi < lo {
			return 0, 0, fmt.Errorf("not a range up to %d", max)
		}
	}
	return lo, hi, nil
}

// increment adds one to b (big endian) in place; false when b was all
// ones (and is now all zeros).
func increment(b []byte) bool {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return true
		}
	}
	return false
}

// encodeAll encodes the elements of a set, for a set created with them:
// rbtree intervals sorted by their start, with the interval end at zero
// in front that nft writes too (the gap below the first interval).
func (l *layout) encodeAll(r *enforce.Ruleset) ([]nftables.SetElement, error) {
	n := 0
	for range r.AllElements(l.name) {
		n++
	}
	if l.kind == interval {
		n *= 2
	}
	out := make([]nftables.SetElement, 0, n+1)
	a := &arena{}
	var err error
	for e, c := range r.AllElements(l.name) {
		if out, err = l.appendElem(out, a, e, c); err != nil {
			return nil, err
		}
	}
	if l.kind != interval || len(out) == 0 {
		return out, nil
	}
	// Sort the intervals by start, each start followed by its end, as nft
	// sends them (of adjacent intervals, the first's end precedes the
	// second's start, the same key).
	type iv struct{ start, end *nftables.SetElement }
	var ivs []iv
	for i := 0; i < len(out); i++ {
		v := iv{start: &out[i]}
		if i+1 < len(out) && out[i+1].IntervalEnd {
			v.end = &out[i+1]
			i++
		}
		ivs = append(ivs, v)
	}
	slices.SortFunc(ivs, func(a, b iv) int { return bytes.Compare(a.start.Key, b.start.Key) })
	sorted := make([]nftables.SetElement, 0, len(out)+1)
	if zero := make([]byte, l.keyLen); !bytes.Equal(ivs[0].start.Key, zero) {
		sorted = append(sorted, nftables.SetElement{Key: zero, IntervalEnd: true})
	}
	for _, v := range ivs {
		sorted = append(sorted, *v.start)
		if v.end != nil {
			sorted = append(sorted, *v.end)
		}
	}
	return sorted, nil
}

// elemSize estimates the bytes an element takes in a netlink message.
func elemSize(e *nftables.SetElement) int {
	return 4 + 8 + len(e.Key) + 8 + len(e.KeyEnd) + 8 + len(e.Comment) + 4 + 8
}
