package probe

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// ICMP message types of echo, and of the errors that can answer one.
const (
	icmp4EchoReply   = 0
	icmp4Unreachable = 3
	icmp4Echo        = 8
	icmp4TimeExceed  = 11
	icmp6Unreachable = 1
	icmp6TimeExceed  = 3
	icmp6Echo        = 128
	icmp6EchoReply   = 129

	icmp4AdminProhibited = 13 // communication administratively prohibited (a reject rule)
	icmp6AdminProhibited = 1
)

// probeICMP sends one echo request from a raw ICMP socket made inside the
// source namespace and waits for the matching reply. A raw socket needs
// CAP_NET_RAW (root) but no setting of the namespace (ping sockets need
// net.ipv4.ping_group_range, which a namespace made by `ip netns add`
// leaves closed). Every raw ICMP socket of a namespace sees every ICMP
// message of it, so replies are matched on identifier, sequence and
// payload token.
func (p *Prober) probeICMP(ctx context.Context, r *Result) {
	dst := r.To.Addr.Addr().Unmap()
	network, wildcard := "ip4:icmp", "0.0.0.0"
	if dst.Is6() {
		network, wildcard = "ip6:ipv6-icmp", "::"
	}
	var pc net.PacketConn
	var listenErr error
	if err := r.From.Do(func() error {
		pc, listenErr = net.ListenPacket(network, wildcard)
		return nil
	}); err != nil {
		r.Err = err
		return
	}
	if listenErr != nil {
		r.Err = fmt.Errorf("icmp socket in %s: %w", r.From, listenErr)
		return
	}
	defer pc.Close()

	id, seq := uint16(rand.Uint32()), uint16(tokenSeq.Add(1))
	token := []byte("zwprobe-" + strconv.FormatUint(uint64(id)<<16|uint64(seq), 36) + "-" + strconv.Itoa(os.Getpid()))
	msg := echoRequest(dst.Is6(), id, seq, token)

	deadline := time.Now().Add(p.timeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = pc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = pc.SetDeadline(time.Now()) })
	defer stop()
	if _, err := pc.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		r.Status, r.Err = classify(ctx, err)
		return
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			r.Status, r.Err = classify(ctx, err)
			return
		}
		status, ok := matchEcho(dst.Is6(), buf[:n], id, seq, token)
		if !ok {
			continue // another probe's message, or neighbour discovery
		}
		r.Status = status
		switch status {
		case Open:
			r.Reply = []byte("echo reply")
		case Filtered:
			r.Err = fmt.Errorf("%s answered that a rule prohibits it", from)
		default:
			r.Err = fmt.Errorf("%s answered that %s is unreachable", from, dst)
		}
		return
	}
}

// echoRequest builds an ICMP (or ICMPv6) echo request. The kernel fills in
// the ICMPv6 checksum of a raw socket; ICMPv4's is computed here.
func echoRequest(v6 bool, id, seq uint16, payload []byte) []byte {
	msg := make([]byte, 8+len(payload))
	msg[0] = icmp4Echo
	if v6 {
		msg[0] = icmp6Echo
	}
	binary.BigEndian.PutUint16(msg[4:], id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	copy(msg[8:], payload)
	if !v6 {
		binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	}
	return msg
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// matchEcho reads one ICMP message (without IP header) and reports what
// it says about the echo request (id, seq, token): ok is false when it is
// about something else.
func matchEcho(v6 bool, m []byte, id, seq uint16, token []byte) (Status, bool) {
	if len(m) < 8 {
		return Failed, false
	}
	reply, unreach, exceeded, prohibited := byte(icmp4EchoReply), byte(icmp4Unreachable), byte(icmp4TimeExceed), byte(icmp4AdminProhibited)
	if v6 {
		reply, unreach, exceeded, prohibited = icmp6EchoReply, icmp6Unreachable, icmp6TimeExceed, icmp6AdminProhibited
	}
	ours := func(echo []byte, wantType byte) bool {
		return len(echo) >= 8 && echo[0] == wantType &&
			binary.BigEndian.Uint16(echo[4:]) == id && binary.BigEndian.Uint16(echo[6:]) == seq
	}
	switch m[0] {
	case reply:
		if ours(m, reply) && bytes.Equal(m[8:], token) {
			return Open, true
		}
	case unreach, exceeded:
		// The error quotes the request: its IP header, then at least the
		// first 8 bytes of the echo request.
		orig := m[8:]
		echoType := byte(icmp4Echo)
		if v6 {
			if len(orig) < 40 || orig[6] != 58 { // next header: ICMPv6
				return Failed, false
			}
			orig, echoType = orig[40:], icmp6Echo
		} else {
			if len(orig) < 20 || orig[9] != 1 { // protocol: ICMP
				return Failed, false
			}
			ihl := int(orig[0]&0x0f) * 4
			if ihl < 20 || ihl > len(orig) {
				return Failed, false
			}
			orig = orig[ihl:]
		}
		if !ours(orig, echoType) {
			return Failed, false
		}
		if m[0] == unreach && m[1] == prohibited {
			return Filtered, true
		}
		return Unreachable, true
	}
	return Failed, false
}

// ICMPTarget is an ICMP echo probe of addr.
func ICMPTarget(addr netip.Addr) Target {
	return Target{Proto: ICMP, Addr: netip.AddrPortFrom(addr, 0)}
}
