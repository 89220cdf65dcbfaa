package agent

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zonewarden/zonewarden/internal/inventory/dockerapi"
)

// endpointReader reads the endpoints of networks, off the reconcile
// loop, as soon as a connect event or a new bridge port announces a new
// container: Docker's network inspect shows the address of a container
// that is starting before its list, inspect or events do (on Docker 28
// under a storm of starts, its events come seconds late), but it can
// itself take a few hundred milliseconds on a busy daemon. Reading it
// here lets the reconcile loop load what it has meanwhile. The reconcile
// takes what was read (take) into hostView.pending.
type endpointReader struct {
	docker *dockerapi.Client
	log    *slog.Logger

	mu    sync.Mutex
	want  map[string]bool // network ids to read
	found []dockerapi.NetworkEndpoint
	kick  chan struct{}

	// bridges maps a bridge's name to its network's id, as of the last
	// reconcile (the watcher of links reads it).
	bridges atomic.Pointer[map[string]string]
}

func newEndpointReader(d *dockerapi.Client, log *slog.Logger) *endpointReader {
	r := &endpointReader{docker: d, log: log, want: map[string]bool{}, kick: make(chan struct{}, 1)}
	r.bridges.Store(&map[string]string{})
	return r
}

// request asks for one network's endpoints to be read.
func (r *endpointReader) request(network string) {
	r.mu.Lock()
	r.want[network] = true
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// requestBridge asks for the endpoints of the network of a bridge; false
// when no network is known to have that bridge.
func (r *endpointReader) requestBridge(bridge string) bool {
	id, ok := (*r.bridges.Load())[bridge]
	if ok {
		r.request(id)
	}
	return ok
}

// take returns the endpoints read since the last take.
func (r *endpointReader) take() []dockerapi.NetworkEndpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.found
	r.found = nil
	return out
}

// inFlight bounds the reads of one network at a time. Under a storm of
// starts one read takes tens to hundreds of milliseconds on a busy
// daemon; an endpoint stored just after a read began waits for the next,
// so reads overlap: a request starts one at once while fewer than
// inFlight run.
const inFlight = 3

// run reads the networks requested and calls wake after each read that
// found endpoints. A network asked for while inFlight reads of it run is
// read once more when one ends.
func (r *endpointReader) run(ctx context.Context, wake func()) {
	running := map[string]int{}
	done := make(chan string, 16)
	var wg sync.WaitGroup
	defer wg.Wait()
	read := func(id string) {
		running[id]++
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			eps, err := r.docker.NetworkEndpoints(ctx, id)
			switch {
			case err != nil:
				if ctx.Err() == nil {
					r.log.Debug("cannot read a network's endpoints; the container list will show them", "network", id, "error", err.Error())
				}
			default:
				r.log.Debug("read Docker", "what", "network inspect", "ms", ms(time.Since(start)), "endpoints", len(eps))
				r.mu.Lock()
				r.found = append(r.found, eps...)
				r.mu.Unlock()
				wake()
			}
			select {
			case done <- id:
			case <-ctx.Done():
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case id := <-done:
			running[id]--
		}
		r.mu.Lock()
		for id := range r.want {
			if running[id] < inFlight {
				delete(r.want, id)
				read(id)
			}
		}
		r.mu.Unlock()
	}
}
