package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The connection rate depends on what else the machine runs. So each run
// also measures the CPU time the benchmark itself used — this process,
// whose threads carry the forwarding and netfilter work of the packets
// they send (softirqs run in the sender's context on veth), plus the
// ksoftirqd threads that take over under load — and what everything else
// used meanwhile. CPU time per connection is steadier than the rate on a
// busy machine; "other" says how busy it was.

// userHZ is the unit of /proc/stat and /proc/PID/stat: USER_HZ, 100 on
// every Linux architecture Go supports.
const userHZ = 100

// cpuSample is a reading of the CPU time counters.
type cpuSample struct {
	at    time.Time
	busy  time.Duration // all CPUs, all tasks, but steal (/proc/stat)
	steal time.Duration // taken by the hypervisor
	ours  time.Duration // this process and ksoftirqd
}

func ticks(n uint64) time.Duration { return time.Duration(n) * time.Second / userHZ }

// readCPU reads the counters; softirqd are the /proc/PID/stat paths of
// the ksoftirqd threads.
func readCPU(softirqd []string) (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return s, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return s, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	s.busy = ticks(v[0] + v[1] + v[2] + v[5] + v[6])
	s.steal = ticks(v[7])
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("getrusage: %w", err)
	}
	s.ours = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	for _, p := range softirqd {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// Fields after the command (which is in parentheses): state is
		// the 3rd field, utime and stime the 14th and 15th.
		_, rest, ok := bytes.Cut(b, []byte(") "))
		if !ok {
			continue
		}
		g := strings.Fields(string(rest))
		if len(g) < 13 {
			continue
		}
		u, _ := strconv.ParseUint(g[11], 10, 64)
		st, _ := strconv.ParseUint(g[12], 10, 64)
		s.ours += ticks(u + st)
	}
	return s, nil
}

// softirqThreads finds the ksoftirqd threads' stat files.
func softirqThreads() []string {
	var out []string
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, c := range comms {
		b, err := os.ReadFile(c)
		if err == nil && strings.HasPrefix(string(b), "ksoftirqd/") {
			out = append(out, filepath.Join(filepath.Dir(c), "stat"))
		}
	}
	return out
}

// cpuUse is what happened between two samples.
type cpuUse struct {
	ours  time.Duration // CPU time of the benchmark
	other float64       // share of all CPUs used by everything else
	steal float64       // share of all CPUs taken by the hypervisor
}

func usage(a, b cpuSample) cpuUse {
	capacity := float64(b.at.Sub(a.at)) * float64(runtime.NumCPU())
	u := cpuUse{ours: b.ours - a.ours}
	other := float64(b.busy - a.busy - u.ours)
	u.other = max(other, 0) / capacity
	u.steal = float64(b.steal-a.steal) / capacity
	return u
}

// waitIdle waits until everything else uses less than maxOther of the
// machine over a second, for at most limit; it reports how busy the
// machine still was when it gave up (0 when it did not).
func waitIdle(ctx context.Context, softirqd []string, maxOther float64, limit time.Duration) (float64, error) {
	deadline := time.Now().Add(limit)
	for {
		a, err := readCPU(softirqd)
		if err != nil {
			return 0, err
		}
		if err := sleep(ctx, time.Second); err != nil {
			return 0, err
		}
		b, err := readCPU(softirqd)
		if err != nil {
			return 0, err
		}
		u := usage(a, b)
		if u.other+u.steal < maxOther {
			return 0, nil
		}
		if time.Now().After(deadline) {
			return u.other + u.steal, nil
		}
	}
}
