package dockerapi

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Event is a change on the host that can change its snapshot: a
// container started, stopped, renamed or removed, a container connected
// to or disconnected from a network, a network created or removed.
type Event struct {
	// Container is the id of the container concerned, empty for a
	// network created or removed.
	Container string
	// Network is the id of the network concerned, for network events.
	Network string
	Action  string
	Time    time.Time
}

// Events subscribes to the daemon's events. When it returns without an
// error the subscription is in place: a snapshot read after it misses
// nothing that the events do not report. The channel closes when the
// stream ends (ctx done, daemon gone); the error then says why.
func (c *Client) Events(ctx context.Context) (<-chan Event, func() error, error) {
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("type", string(events.NetworkEventType)),
	)
	for _, a := range []events.Action{
		events.ActionStart, events.ActionDie, events.ActionDestroy, events.ActionRename,
		events.ActionConnect, events.ActionDisconnect, events.ActionCreate, events.ActionRemove,
		events.ActionPause, events.ActionUnPause,
	} {
		f.Add("event", string(a))
	}
	ctx, cancel := context.WithCancel(ctx)
	msgs, errs := c.api.Events(ctx, events.ListOptions{Filters: f})
	// Events returns once the daemon answered; a refused request is
	// already on errs.
	select {
	case err := <-errs:
		cancel()
		return nil, nil, c.explain(err)
	default:
	}
	out := make(chan Event, 1024)
	var streamErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		defer cancel()
		for {
			select {
			case m := <-msgs:
				e := Event{Action: string(m.Action), Time: time.Unix(0, m.TimeNano)}
				switch m.Type {
				case events.ContainerEventType:
					e.Container = m.Actor.ID
				case events.NetworkEventType:
					e.Network = m.Actor.ID
					e.Container = m.Actor.Attributes["container"]
				default:
					continue
				}
				select {
				case out <- e:
				case <-ctx.Done():
					streamErr = ctx.Err()
					return
				}
			case err := <-errs:
				streamErr = c.explain(err)
				return
			}
		}
	}()
	return out, func() error { <-done; return streamErr }, nil
}
