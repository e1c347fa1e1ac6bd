package router

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/cluster"
)

// ErrSaturated reports that every endpoint of a pool is saturated; the scheduler queues the
// request rather than piling it onto a GPU.
var ErrSaturated = errors.New("router: every endpoint is saturated")

func errSaturated(pool string) error {
	return &Error{Code: CodeResourceExhausted, Reason: "pool_saturated", RetryAfter: time.Second,
		Message: "Every endpoint of pool " + pool + " is saturated.", Err: ErrSaturated}
}

// Scheduler places requests on one pool's endpoints: its picker chooses, and while every
// endpoint is saturated requests wait in a bounded queue ordered by priority class, then by
// arrival. Safe for concurrent use.
type Scheduler struct {
	Pool   *backends.Pool
	picker Picker

	// Session affinity: bindings, their idle TTL, and how saturated a bound endpoint may be
	// before the binding moves.
	sessions    cluster.Sessions
	sessionTTL  time.Duration
	stickyQueue int64
	stickyKV    float64
	stickyStale time.Duration
	byName      map[string]*backends.Endpoint
	prefixes    *PrefixIndex
	metrics     *Metrics
	now         func() time.Time

	maxWaiting int
	timeout    time.Duration

	mu      sync.Mutex
	waiters waiterHeap
	seq     uint64 // arrival order of waiters
	gen     uint64 // counts wakes, so the turn holder can tell it missed one
	// turnTaken is true while one woken waiter is trying the picker.
	turnTaken bool
	// waiting counts requests queued or retrying; zero lets Wake and newcomers skip the lock.
	waiting atomic.Int64
}

// SchedulerOption configures a Scheduler.
type SchedulerOption func(*Scheduler)

// WithQueue bounds the requests waiting for capacity (default 256) and how long each may wait
// (default 30s). Past either bound a request fails with CodeResourceExhausted.
func WithQueue(maxWaiting int, timeout time.Duration) SchedulerOption {
	return func(s *Scheduler) { s.maxWaiting, s.timeout = maxWaiting, timeout }
}

// WithSessions turns session affinity on: a request with a session key goes to the endpoint
// its session is bound to, as long as that endpoint is healthy and its queue is below
// maxQueue and its KV-cache use below maxKV (the saturation thresholds plus a margin);
// otherwise a new endpoint is picked and the binding moves. Bindings expire after ttl idle.
func WithSessions(store cluster.Sessions, ttl time.Duration, maxQueue int64, maxKV float64) SchedulerOption {
	return func(s *Scheduler) { s.sessions, s.sessionTTL, s.stickyQueue, s.stickyKV = store, ttl, maxQueue, maxKV }
}

// WithPrefixIndex records every placed request's prefix blocks for the endpoint it went to,
// so a PrefixScorer over the same index sends the next request with that prefix there.
func WithPrefixIndex(x *PrefixIndex) SchedulerOption { return func(s *Scheduler) { s.prefixes = x } }

// WithSchedulerClock sets the clock that judges session bindings; default time.Now.
func WithSchedulerClock(now func() time.Time) SchedulerOption {
	return func(s *Scheduler) { s.now = now }
}

// WithSchedulerMetrics counts session outcomes in m.
func WithSchedulerMetrics(m *Metrics) SchedulerOption { return func(s *Scheduler) { s.metrics = m } }

// NewScheduler returns a scheduler for pool using picker (default LeastInFlight).
func NewScheduler(pool *backends.Pool, picker Picker, opts ...SchedulerOption) *Scheduler {
	if picker == nil {
		picker = &LeastInFlight{}
	}
	s := &Scheduler{Pool: pool, picker: picker, maxWaiting: 256, timeout: 30 * time.Second,
		stickyStale: 2 * time.Second, now: time.Now, byName: map[string]*backends.Endpoint{}}
	for _, ep := range pool.Endpoints {
		s.byName[ep.Name] = ep
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// pickOnce places req without waiting: on its session's endpoint when that still qualifies,
// else through the picker; it then records the session binding and the prefix blocks.
func (s *Scheduler) pickOnce(req *Request, skip func(*backends.Endpoint) bool) (PickResult, error) {
	session := s.sessions != nil && req.SessionKey != ""
	key, prev := "", ""
	if session {
		key = s.Pool.Name + "|" + req.SessionKey
		if name, ok := s.sessions.Get(s.now(), key); ok {
			if ep := s.byName[name]; ep != nil && s.sticky(ep) && (skip == nil || !skip(ep)) {
				s.metrics.session("stuck")
				s.record(req, ep)
				return PickResult{Endpoint: ep, Done: ep.Acquire()}, nil
			}
			prev = name
		}
	}
	res, err := s.picker.Pick(s.Pool, req, skip)
	if err != nil {
		return res, err
	}
	if session {
		bound := s.sessions.Bind(s.now(), key, res.Endpoint.Name, prev, s.sessionTTL)
		switch ep := s.byName[bound]; {
		case bound == res.Endpoint.Name && prev != "":
			s.metrics.session("moved")
		case bound == res.Endpoint.Name:
			s.metrics.session("bound")
		case ep != nil && s.sticky(ep) && (skip == nil || !skip(ep)):
			// Another replica bound the session first: follow its choice.
			res.Done()
			res = PickResult{Endpoint: ep, Done: ep.Acquire()}
			s.metrics.session("adopted")
		default:
			s.metrics.session("unbound")
		}
	}
	s.record(req, res.Endpoint)
	return res, nil
}

// sticky reports whether a session may stay on ep: healthy, not drained, and not saturated
// beyond the margin by its latest fresh stats (unknown stats do not move a session).
func (s *Scheduler) sticky(ep *backends.Endpoint) bool {
	now := s.now()
	if ep.Drained() || !ep.Healthy(now) {
		return false
	}
	st := ep.Stats()
	if st == nil || st.Age(now) > s.stickyStale {
		return true
	}
	queue := int64(st.Waiting) + max(0, ep.InFlight()-st.InFlightAtScrape)
	return queue < s.stickyQueue && (st.KVUsage < 0 || st.KVUsage < s.stickyKV)
}

func (s *Scheduler) record(req *Request, ep *backends.Endpoint) {
	if s.prefixes != nil && len(req.PrefixHashes) > 0 {
		s.prefixes.Record(ep, req.PrefixHashes)
	}
}

// tryPick places req without waiting; while requests wait for capacity here, newcomers
// report ErrSaturated so they queue behind them (or overflow elsewhere).
func (s *Scheduler) tryPick(req *Request, skip func(*backends.Endpoint) bool) (PickResult, error) {
	if s.waiting.Load() > 0 {
		return PickResult{}, errSaturated(s.Pool.Name)
	}
	return s.pickOnce(req, skip)
}

// Waiting reports how many requests are queued for capacity now.
func (s *Scheduler) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters)
}

// Wake lets the most urgent waiting request try again; call it when capacity may have freed
// (a request finished, fresh stats arrived). Cheap when nobody waits. One waiter at a time
// holds the turn to try, so waiters are served strictly in order; a wake that arrives while
// the turn is taken makes its holder try once more instead of being lost.
func (s *Scheduler) Wake() {
	if s.waiting.Load() == 0 {
		return
	}
	s.mu.Lock()
	s.gen++
	if !s.turnTaken && len(s.waiters) > 0 {
		w := heap.Pop(&s.waiters).(*waiter)
		s.turnTaken = true
		close(w.ready)
	}
	s.mu.Unlock()
}

// pick places req, waiting in the queue while the pool is saturated. rank orders waiters:
// lower is more urgent.
func (s *Scheduler) pick(ctx context.Context, req *Request, rank int, skip func(*backends.Endpoint) bool) (PickResult, error) {
	res, err := s.tryPick(req, skip)
	if !errors.Is(err, ErrSaturated) {
		return res, err
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	deadline := time.Now().Add(s.timeout)
	w, err := s.enqueue(rank)
	if err != nil {
		return PickResult{}, err
	}
	s.Wake() // a newcomer did not try the picker: let the head try in case there is room
	for {
		if err := s.await(ctx, w, deadline); err != nil {
			return PickResult{}, err
		}
		// This waiter holds the turn until it leaves or goes back in line.
		for {
			s.mu.Lock()
			gen := s.gen
			s.mu.Unlock()
			res, err := s.pickOnce(req, skip)
			if !errors.Is(err, ErrSaturated) {
				s.releaseTurn()
				s.Wake() // there may be room for the next one too
				return res, err
			}
			if s.requeue(w, gen) {
				break
			}
			// Capacity may have freed while it tried: try again before giving up the turn.
		}
	}
}

func (s *Scheduler) enqueue(rank int) (*waiter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiters) >= s.maxWaiting {
		return nil, &Error{Code: CodeResourceExhausted, Reason: "queue_full", RetryAfter: time.Second,
			Message: "Pool " + s.Pool.Name + " is saturated and its wait queue is full; retry later."}
	}
	s.seq++
	w := &waiter{rank: rank, seq: s.seq, ready: make(chan struct{})}
	heap.Push(&s.waiters, w)
	return w, nil
}

// requeue puts the turn holder w back in line, keeping its place, and gives up the turn; it
// reports false (and keeps the turn) when a wake came after gen, so w must try again.
func (s *Scheduler) requeue(w *waiter, gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return false
	}
	w.ready = make(chan struct{})
	heap.Push(&s.waiters, w)
	s.turnTaken = false
	return true
}

func (s *Scheduler) releaseTurn() {
	s.mu.Lock()
	s.turnTaken = false
	s.mu.Unlock()
}

func (s *Scheduler) timeoutError() error {
	return &Error{Code: CodeResourceExhausted, Reason: "queue_timeout", RetryAfter: time.Second,
		Message: "Pool " + s.Pool.Name + " stayed saturated for " + s.timeout.String() + "; retry later."}
}

// await blocks until w is handed the turn, the deadline passes or ctx ends.
func (s *Scheduler) await(ctx context.Context, w *waiter, deadline time.Time) error {
	s.mu.Lock()
	ready := w.ready
	s.mu.Unlock()
	timer := time.NewTimer(max(0, time.Until(deadline)))
	defer timer.Stop()
	var err error
	select {
	case <-ready:
		return nil
	case <-timer.C:
		err = s.timeoutError()
	case <-ctx.Done():
		err = &Error{Code: CodeCanceled, Message: "client canceled while waiting for capacity", Err: ctx.Err()}
	}
	if !s.remove(w) {
		// It was handed the turn at the same moment; pass it on.
		s.releaseTurn()
		s.Wake()
	}
	return err
}

// remove takes w out of the queue; false when it was already woken.
func (s *Scheduler) remove(w *waiter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.index < 0 {
		return false
	}
	heap.Remove(&s.waiters, w.index)
	return true
}

type waiter struct {
	rank  int
	seq   uint64
	ready chan struct{}
	index int // position in the heap; -1 once popped
}

type waiterHeap []*waiter

func (h waiterHeap) Len() int { return len(h) }
func (h waiterHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].seq < h[j].seq
}
func (h waiterHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *waiterHeap) Push(x any) {
	w := x.(*waiter)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *waiterHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	w.index = -1
	*h = old[:len(old)-1]
	return w
}

// RoundRobin cycles through healthy endpoints regardless of load: the baseline that
// inference-aware picking is measured against. Safe for concurrent use.
type RoundRobin struct {
	next atomic.Uint64
}

var _ Picker = (*RoundRobin)(nil)

// Pick implements Picker.
func (r *RoundRobin) Pick(pool *backends.Pool, _ *Request, skip func(*backends.Endpoint) bool) (PickResult, error) {
	n := len(pool.Endpoints)
	start := r.next.Add(1)
	now := time.Now()
	for i := range n {
		ep := pool.Endpoints[(start+uint64(i))%uint64(n)]
		if (skip == nil || !skip(ep)) && !ep.Drained() && ep.Healthy(now) {
			return PickResult{Endpoint: ep, Done: ep.Acquire()}, nil
		}
	}
	return PickResult{}, &Error{Code: CodeUnavailable, Reason: "no_healthy_endpoint", Message: "no healthy endpoint in pool " + pool.Name}
}
