package sim

import (
	"errors"
	"slices"
	"sync"
	"time"
)

var (
	errQueueFull = errors.New("sim: waiting queue is full")
	errClosed    = errors.New("sim: server is shutting down")
	errAborted   = errors.New("sim: request aborted")
)

// Finish reasons, the label values of vllm:request_success_total.
const (
	finishLength = "length"
	finishStop   = "stop"
	finishAbort  = "abort"
)

type seqState int

const (
	stateWaiting seqState = iota
	stateRunning
	stateDone
)

// seq is one request's sequence. Fields after notify are guarded by engine.mu;
// notify is signalled, without blocking the engine, after every change a
// handler may want to see.
type seq struct {
	prompt    []uint32
	hashes    []uint64 // chained hashes of the prompt's full blocks
	maxTokens int      // 0 for embeddings: prefill only
	arrived   time.Time
	notify    chan struct{}

	state     seqState
	blocks    []int
	prefilled bool // KV computed for every token so far in this admission
	started   bool // first prefill done, first token out
	generated int
	cached    int // prompt tokens served from the prefix cache at first admission
	uncached  int // tokens to prefill in this admission
	err       error
}

func newSeq(prompt []uint32, maxTokens, blockSize int) *seq {
	return &seq{
		prompt: prompt, hashes: blockHashes(prompt, blockSize), maxTokens: maxTokens,
		arrived: time.Now(), notify: make(chan struct{}, 1),
	}
}

// tokens is the number of tokens whose KV the sequence needs after its next
// step: everything so far plus the token that step produces.
func (s *seq) tokens() int {
	n := len(s.prompt) + s.generated
	if s.generated < s.maxTokens {
		n++
	}
	return n
}

func (s *seq) signal() {
	select {
	case s.notify <- struct{}{}:
	default: // a wake-up is already pending; the handler reads the latest state
	}
}

// progress is what a handler sees of a sequence.
type progress struct {
	started   bool
	generated int
	cached    int
	done      bool
	err       error
}

// observer receives latency samples in seconds.
type observer interface{ Observe(float64) }

// engineStats is a consistent snapshot of the engine's gauges and counters.
type engineStats struct {
	running, waiting                                   int
	kvUsage                                            float64
	prefixHits, prefixQueries, promptTokens, genTokens int64
	finished                                           map[string]int64
}

// engine schedules sequences vLLM-style. Its run goroutine is started by
// newEngine and stopped by close; all other methods are safe for concurrent
// use.
type engine struct {
	cfg                  Config
	ttft, e2e, queueTime observer
	wake                 chan struct{}
	stop, done           chan struct{}
	closeOnce            sync.Once

	mu      sync.Mutex
	closed  bool
	kv      *kvCache
	waiting []*seq // FIFO; preempted sequences rejoin at the front
	running []*seq // in admission order
	stats   engineStats
}

func newEngine(cfg Config, ttft, e2e, queueTime observer) *engine {
	e := &engine{
		cfg: cfg, ttft: ttft, e2e: e2e, queueTime: queueTime,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		kv:    newKVCache(cfg.KVBlocks, cfg.BlockSize),
		stats: engineStats{finished: map[string]int64{}},
	}
	go e.run()
	return e
}

// close stops the engine and fails every queued and running sequence with
// errClosed. It is idempotent and returns once the run goroutine has exited.
func (e *engine) close() {
	e.closeOnce.Do(func() { close(e.stop) })
	<-e.done
}

// fits reports whether a sequence of n tokens could ever fit the KV cache.
func (e *engine) fits(n int) bool { return e.kv.blocksFor(n) <= e.cfg.KVBlocks }

// submit queues s, or fails with errQueueFull or errClosed.
func (e *engine) submit(s *seq) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return errClosed
	case len(e.running)+len(e.waiting) >= e.cfg.MaxRunning+e.cfg.MaxWaiting:
		return errQueueFull
	}
	e.waiting = append(e.waiting, s)
	e.poke()
	return nil
}

// abort ends s at once, freeing its queue place or running slot and its KV
// blocks. It is a no-op for a finished sequence.
func (e *engine) abort(s *seq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch s.state {
	case stateDone:
		return
	case stateWaiting:
		e.waiting = slices.DeleteFunc(e.waiting, func(w *seq) bool { return w == s })
	case stateRunning:
		e.running = slices.DeleteFunc(e.running, func(r *seq) bool { return r == s })
		e.kv.release(s.blocks)
	}
	s.blocks, s.state, s.err = nil, stateDone, errAborted
	e.stats.finished[finishAbort]++
	e.poke() // a slot or blocks may have freed up for the queue head
}

func (e *engine) progress(s *seq) progress {
	e.mu.Lock()
	defer e.mu.Unlock()
	return progress{started: s.started, generated: s.generated, cached: s.cached, done: s.state == stateDone, err: s.err}
}

func (e *engine) snapshot() engineStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats
	st.running, st.waiting, st.kvUsage = len(e.running), len(e.waiting), e.kv.usage()
	st.finished = make(map[string]int64, len(e.stats.finished))
	for k, v := range e.stats.finished {
		st.finished[k] = v
	}
	return st
}

func (e *engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// run is the engine loop: plan a step under the lock, sleep for its
// duration without the lock so requests can queue and abort meanwhile, then
// apply the step's results to whichever sequences are still running.
func (e *engine) run() {
	defer close(e.done)
	defer e.shutdown()
	for {
		e.mu.Lock()
		d := e.plan()
		busy := len(e.running) > 0
		e.mu.Unlock()
		if !busy {
			select {
			case <-e.wake:
				continue
			case <-e.stop:
				return
			}
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-e.stop:
			t.Stop()
			return
		}
		e.mu.Lock()
		e.apply()
		e.mu.Unlock()
	}
}

// plan reserves KV space for the next step, admits waiting sequences and
// returns the step's duration (see the package doc for the formula).
func (e *engine) plan() time.Duration {
	preempted := false
	for i := 0; i < len(e.running); i++ {
		s := e.running[i]
		for {
			var ok bool
			if s.blocks, ok = e.kv.grow(s.blocks, s.tokens()); ok {
				break
			}
			// Out of blocks: recompute-preempt the newest sequence, as vLLM does.
			victim := e.running[len(e.running)-1]
			e.preempt(victim)
			preempted = true
			if victim == s {
				break
			}
		}
	}
	// vLLM admits nothing in a step that had to preempt.
	for !preempted && len(e.waiting) > 0 && len(e.running) < e.cfg.MaxRunning {
		s := e.waiting[0]
		n := len(s.prompt) + s.generated
		blocks, cached, ok := e.kv.allocate(s.hashes, n, s.tokens())
		if !ok {
			break // FIFO: the head blocks the queue until blocks free up
		}
		e.waiting = e.waiting[1:]
		e.running = append(e.running, s)
		s.state, s.blocks, s.prefilled, s.uncached = stateRunning, blocks, false, n-cached
		e.stats.prefixQueries += int64(n)
		e.stats.prefixHits += int64(cached)
		if !s.started {
			s.cached = cached
			e.stats.promptTokens += int64(len(s.prompt))
			e.queueTime.Observe(time.Since(s.arrived).Seconds())
		}
	}
	var d time.Duration
	decoding := false
	for _, s := range e.running {
		if s.prefilled {
			decoding = true
		} else {
			d += e.cfg.PrefillBase + e.cfg.PrefillPerToken*time.Duration(s.uncached)
		}
	}
	if decoding {
		slowdown := 1 + e.cfg.DecodeBatchPenalty*float64(len(e.running)-1)
		d += time.Duration(float64(e.cfg.DecodePerToken) * slowdown)
	}
	return d
}

// apply completes a step: every running sequence gains one output token,
// newly prefilled ones make their prompt blocks reusable, and finished ones
// leave.
func (e *engine) apply() {
	now := time.Now()
	kept := e.running[:0]
	for _, s := range e.running {
		if !s.prefilled {
			s.prefilled = true
			e.kv.commit(s.blocks, s.hashes)
			if !s.started && s.maxTokens > 0 {
				e.ttft.Observe(now.Sub(s.arrived).Seconds())
			}
			s.started = true
		}
		if s.generated < s.maxTokens {
			s.generated++
			e.stats.genTokens++
		}
		if s.generated < s.maxTokens {
			kept = append(kept, s)
		} else {
			reason := finishLength
			if s.maxTokens == 0 {
				reason = finishStop
			}
			e.kv.release(s.blocks)
			s.blocks, s.state = nil, stateDone
			e.stats.finished[reason]++
			e.e2e.Observe(now.Sub(s.arrived).Seconds())
		}
		s.signal()
	}
	clear(e.running[len(kept):])
	e.running = kept
}

// preempt frees the blocks of running sequence s and puts it back at the
// head of the queue; its prompt blocks usually stay cached for the recompute.
func (e *engine) preempt(s *seq) {
	e.running = slices.DeleteFunc(e.running, func(r *seq) bool { return r == s })
	e.kv.release(s.blocks)
	s.blocks, s.state, s.prefilled = nil, stateWaiting, false
	e.waiting = slices.Insert(e.waiting, 0, s)
}

// shutdown fails every sequence still in the engine and refuses new ones.
func (e *engine) shutdown() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for _, s := range slices.Concat(e.waiting, e.running) {
		e.kv.release(s.blocks)
		s.blocks, s.state, s.err = nil, stateDone, errClosed
		s.signal()
	}
	e.waiting, e.running = nil, nil
}
