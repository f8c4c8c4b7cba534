package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// sendBuffer is how many frames may wait for one slow socket before the
// hub gives up on it and closes it.
const sendBuffer = 64

// hub is the gateway's one subscription to the event stream and to
// progress, fanned out to the open sockets by operation id. Events come
// from one JetStream ordered consumer over the stream's subjects (from
// the stream's end at start-up; ordered, gap-free across reconnects);
// progress from one core NATS subscription on "progress.*". No socket
// subscribes to NATS itself.
//
// Delivery to a socket never blocks the hub: each subscriber has a bounded
// buffer, and one that is full is dropped (its socket closes as a slow
// consumer). Methods are safe for concurrent use.
type hub struct {
	log *slog.Logger

	// live holds the operations the hub saw start, for status reads.
	live *live

	mu     sync.Mutex
	subs   map[string]map[*subscriber]struct{}
	closed bool
}

// frame is one message for a socket: an event (pre-encoded once for all
// its sockets) or a progress update.
type frame struct {
	event    *eventFrame
	body     []byte
	progress *events.Progress
}

// subscriber is one socket's registration.
type subscriber struct {
	opID string
	// also are the other operations it follows: a parent's children
	// (follow). Guarded by the hub's mutex.
	also []string
	ch   chan frame
	// gone is closed when the hub drops the subscriber; reason says why.
	gone   chan struct{}
	once   sync.Once
	reason string
}

func (s *subscriber) drop(reason string) {
	s.once.Do(func() { s.reason = reason; close(s.gone) })
}

// startHub subscribes; the subscriptions end, and every subscriber is
// dropped with "going away", when life is cancelled. setup bounds the
// subscribing.
func startHub(setup, life context.Context, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) (*hub, error) {
	h := &hub{log: log, live: newLive(), subs: map[string]map[*subscriber]struct{}{}}
	subjects := make([]string, 0, len(events.Kinds))
	for _, k := range events.Kinds {
		if !events.IsAnnouncement(k) {
			subjects = append(subjects, events.Subject(k, "*"))
		}
	}
	cons, err := js.OrderedConsumer(setup, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		// nats.go names the consumer NamePrefix_<n>, counting resets: a
		// prefix of its own per gateway, or two gateways' hubs share one
		// consumer, and its events, and delete it under each other.
		NamePrefix: "gateway-hub-" + events.NewID(),
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: hub consumer: %w", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		seq, at := uint64(0), time.Time{}
		if md, err := msg.Metadata(); err == nil {
			seq, at = md.Sequence.Stream, md.Timestamp
		}
		// Before the sockets: a client that saw an event on its socket
		// finds it in the status too.
		h.live.apply(msg.Data(), seq, at)
		h.event(msg.Subject(), msg.Data(), seq)
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		log.Warn("gateway: hub consumer", "error", err)
	}))
	if err != nil {
		return nil, fmt.Errorf("gateway: hub consume: %w", err)
	}
	psub, err := nc.Subscribe(events.ProgressSubject("*"), func(m *nats.Msg) { h.progress(m.Data) })
	if err != nil {
		cc.Stop()
		return nil, fmt.Errorf("gateway: hub progress subscription: %w", err)
	}
	// Pending progress is worthless: keep little of it if the hub lags.
	_ = psub.SetPendingLimits(4096, 4<<20)
	go func() {
		<-life.Done()
		cc.Stop()
		_ = psub.Unsubscribe()
		h.close()
	}()
	return h, nil
}

// subscribe registers a socket for opID's events and progress from now on.
// Call it before reading the history, so nothing falls between the two.
func (h *hub) subscribe(opID string) *subscriber {
	s := &subscriber{opID: opID, ch: make(chan frame, sendBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.drop("going away")
		return s
	}
	set := h.subs[opID]
	if set == nil {
		set = map[*subscriber]struct{}{}
		h.subs[opID] = set
	}
	set[s] = struct{}{}
	return s
}

// unsubscribe removes a subscriber; it is safe to call more than once.
func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, opID := range append([]string{s.opID}, s.also...) {
		if set := h.subs[opID]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(h.subs, opID)
			}
		}
	}
}

// follow makes s receive opID's events and progress too (a parent's
// socket follows its children), from now on.
func (h *hub) follow(s *subscriber, opID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || opID == s.opID {
		return
	}
	set := h.subs[opID]
	if set == nil {
		set = map[*subscriber]struct{}{}
		h.subs[opID] = set
	}
	if _, ok := set[s]; ok {
		return
	}
	set[s] = struct{}{}
	s.also = append(s.also, opID)
}

func (h *hub) event(subject string, data []byte, seq uint64) {
	_, opID, ok := events.KindOf(subject)
	if !ok || !h.watched(opID) {
		return
	}
	f, err := frameOf(subject, data, seq)
	if err != nil {
		h.log.Warn("gateway: hub skipping an undecodable event", "subject", subject, "error", err)
		return
	}
	body, err := json.Marshal(f)
	if err != nil {
		h.log.Error("gateway: hub encoding an event", "subject", subject, "error", err)
		return
	}
	h.send(opID, frame{event: &f, body: body})
}

func (h *hub) progress(data []byte) {
	var p events.Progress
	if err := json.Unmarshal(data, &p); err != nil || p.OperationID == "" {
		return
	}
	p.Type = "progress"
	h.send(p.OperationID, frame{progress: &p})
}

// watched reports whether any socket follows opID, so most events cost no
// decoding.
func (h *hub) watched(opID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[opID]) > 0
}

func (h *hub) send(opID string, f frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[opID] {
		select {
		case s.ch <- f:
		default:
			delete(h.subs[opID], s)
			s.drop("slow consumer")
		}
	}
	if len(h.subs[opID]) == 0 {
		delete(h.subs, opID)
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for opID, set := range h.subs {
		for s := range set {
			s.drop("going away")
		}
		delete(h.subs, opID)
	}
}
