package agent

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zonewarden/zonewarden/internal/inventory"
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
	// kernel holds the endpoints of starting containers the kernel showed
	// (kernelAdmitter).
	kernel []kernelEndpoint
	kick   chan struct{}

	// bridges maps a bridge's name to its network, as of the last
	// reconcile (the watchers of links and processes read it).
	bridges atomic.Pointer[map[string]inventory.Network]
}

func newEndpointReader(d *dockerapi.Client, log *slog.Logger) *endpointReader {
	r := &endpointReader{docker: d, log: log, want: map[string]bool{}, kick: make(chan struct{}, 1)}
	r.bridges.Store(&map[string]inventory.Network{})
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
	n, ok := (*r.bridges.Load())[bridge]
	if ok {
		r.request(n.ID)
	}
	return ok
}

// requestAll asks for the endpoints of every bridge network known to be
// read.
func (r *endpointReader) requestAll() {
	for _, n := range *r.bridges.Load() {
		r.request(n.ID)
	}
}

// addKernel hands over endpoints the kernel showed.
func (r *endpointReader) addKernel(eps []kernelEndpoint) {
	r.mu.Lock()
	r.kernel = append(r.kernel, eps...)
	r.mu.Unlock()
}

// take returns the endpoints read from Docker and shown by the kernel
// since the last take.
func (r *endpointReader) take() ([]dockerapi.NetworkEndpoint, []kernelEndpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	found, kernel := r.found, r.kernel
	r.found, r.kernel = nil, nil
	return found, kernel
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

// containerReader reads changed containers from Docker's container list
// off the reconcile loop: on a daemon busy with a storm of starts one
// list takes tens of milliseconds or more, and a starting container's
// endpoint, from the kernel or the network's inspect, must not wait
// behind it. The reconcile takes what was read (take).
type containerReader struct {
	docker  *dockerapi.Client
	log     *slog.Logger
	onError func(error) // a read failed: the caller reads everything again

	mu   sync.Mutex
	want map[string]bool // ids to read
	all  bool            // read every container
	done []containerRead
	kick chan struct{}
}

// containerRead is one list read: of the ids given, or of all (ids nil).
type containerRead struct {
	at    time.Time // when the read began
	ids   []string
	found []inventory.Container
}

func newContainerReader(d *dockerapi.Client, log *slog.Logger, onError func(error)) *containerReader {
	return &containerReader{docker: d, log: log, onError: onError, want: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// request asks for containers to be read: these ids, or all when ids is
// nil.
func (r *containerReader) request(ids []string) {
	r.mu.Lock()
	if ids == nil {
		r.all = true
	}
	for _, id := range ids {
		r.want[id] = true
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// take returns the reads done since the last take, oldest first.
func (r *containerReader) take() []containerRead {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.done
	r.done = nil
	return out
}

// run reads what is requested, one read at a time, and calls wake after
// each.
func (r *containerReader) run(ctx context.Context, wake func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		r.mu.Lock()
		var ids []string
		if !r.all && len(r.want) <= listAllAbove {
			ids = make([]string, 0, len(r.want))
			for id := range r.want {
				ids = append(ids, id)
			}
		}
		r.all = false
		clear(r.want)
		r.mu.Unlock()
		start := time.Now()
		found, err := r.docker.ListContainers(ctx, ids)
		if err != nil {
			if ctx.Err() == nil {
				r.onError(err)
			}
			continue
		}
		r.log.Debug("read Docker", "what", "container list", "ms", ms(time.Since(start)), "ids", len(ids), "containers", len(found))
		r.mu.Lock()
		r.done = append(r.done, containerRead{at: start, ids: ids, found: found})
		r.mu.Unlock()
		wake()
	}
}
