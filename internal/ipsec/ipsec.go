// Package ipsec probes whether the kernel it runs on can carry Docker's
// encrypted overlays. Docker encrypts an overlay (--opt encrypted) with
// IPsec ESP in transport mode around VXLAN, keyed with AES-GCM
// (rfc4106(gcm(aes))); a kernel without ESP or GCM (CONFIG_INET_ESP,
// CONFIG_CRYPTO_GCM) lets Docker create the network and start its tasks,
// but Docker's security associations fail ("function not implemented"
// in its log, nothing in its API) and no packet crosses between nodes:
// the overlay silently carries nothing.
//
// The probe asks the kernel for exactly what Docker asks: an ESP state
// with that AEAD, in a network namespace of its own made for the probe
// and dropped after (nothing of the host's is touched). When it fails, a
// second state with a non-AEAD cipher tells a missing ESP from a missing
// GCM. It needs CAP_SYS_ADMIN and CAP_NET_ADMIN (root).
package ipsec

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/zonewarden/zonewarden/internal/inventory"
)

// DockerAEAD is the AEAD Docker's overlay driver keys its ESP states with.
const DockerAEAD = "rfc4106(gcm(aes))"

// Probe reports what this kernel can do for an encrypted overlay.
func Probe() (*inventory.IPsec, error) {
	ns, err := newNetns()
	if err != nil {
		return nil, fmt.Errorf("ipsec probe: a network namespace of its own: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("ipsec probe: %w", err)
	}
	defer h.Close()
	gcm := h.XfrmStateAdd(state(1, &netlink.XfrmStateAlgo{Name: DockerAEAD, Key: make([]byte, 20), ICVLen: 128}, nil, nil))
	if gcm == nil {
		return &inventory.IPsec{Evidence: "the kernel took an ESP state with " + DockerAEAD}, nil
	}
	plain := h.XfrmStateAdd(state(2, nil, &netlink.XfrmStateAlgo{Name: "cbc(aes)", Key: make([]byte, 16)}, &netlink.XfrmStateAlgo{Name: "hmac(sha256)", Key: make([]byte, 32), TruncateLen: 128}))
	out := &inventory.IPsec{Evidence: fmt.Sprintf("an ESP state with %s: %v; with cbc(aes) and hmac(sha256): %s", DockerAEAD, gcm, errString(plain))}
	// The kernel's configuration, where it shows it, names every piece
	// missing; the probe alone tells ESP from GCM only when ESP works.
	if missing, ok := missingFromConfig(); ok && len(missing) > 0 {
		out.Missing = missing
		out.Evidence += "; /proc/config.gz: " + strings.Join(missing, ", ") + " not set"
		return out, nil
	}
	if plain == nil {
		out.Missing = []string{"CONFIG_CRYPTO_GCM"}
	} else {
		out.Missing = []string{"CONFIG_INET_ESP"}
	}
	return out, nil
}

func errString(err error) string {
	if err == nil {
		return "accepted"
	}
	return err.Error()
}

// needed are the kernel options an encrypted overlay needs: the xfrm
// netlink interface, ESP, and the AES-GCM AEAD (GHASH is GCM's hash).
var needed = []string{"CONFIG_XFRM_USER", "CONFIG_INET_ESP", "CONFIG_CRYPTO_AES", "CONFIG_CRYPTO_GCM", "CONFIG_CRYPTO_GHASH", "CONFIG_CRYPTO_SEQIV"}

// missingFromConfig reads /proc/config.gz (CONFIG_IKCONFIG_PROC) for the
// options of needed that are neither built in nor modules; false when the
// kernel does not show its configuration.
func missingFromConfig() ([]string, bool) {
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		return nil, false
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return nil, false
	}
	set := map[string]bool{}
	s := bufio.NewScanner(z)
	for s.Scan() {
		if name, v, ok := strings.Cut(s.Text(), "="); ok && (v == "y" || v == "m") {
			set[name] = true
		}
	}
	if s.Err() != nil {
		return nil, false
	}
	var missing []string
	for _, o := range needed {
		if !set[o] {
			missing = append(missing, o)
		}
	}
	return missing, true
}

// state is a transport-mode ESP state between two documentation addresses.
func state(spi int, aead, crypt, auth *netlink.XfrmStateAlgo) *netlink.XfrmState {
	return &netlink.XfrmState{
		Src: net.ParseIP("192.0.2.1"), Dst: net.ParseIP("192.0.2.2"),
		Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TRANSPORT,
		Spi: spi, Reqid: spi, Aead: aead, Crypt: crypt, Auth: auth,
	}
}

// newNetns makes a network namespace and returns a handle to it, leaving
// the calling goroutine's thread in its own namespace.
func newNetns() (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return 0, err
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		return 0, err
	}
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the new namespace: never unlock it, so
		// that the runtime drops it with the goroutine.
		runtime.LockOSThread()
		ns.Close()
		return 0, err
	}
	return ns, nil
}

// Summary is one line for operators.
func Summary(p *inventory.IPsec) string {
	if p.CanEncrypt() {
		return "can encrypt overlays (ESP with " + DockerAEAD + ")"
	}
	return "cannot encrypt overlays: missing " + strings.Join(p.Missing, ", ")
}
