package sim

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Server is a simulated vLLM model server. Its methods are safe for
// concurrent use.
type Server struct {
	cfg      Config
	eng      *engine
	tensor   *tensorModel
	metrics  *metrics
	faults   *faults
	mux      *http.ServeMux
	words    []string
	created  int64
	requests atomic.Int64
	ids      atomic.Uint64
	// responses are the Responses API's stored responses; realtime counts WebSocket sessions.
	responses responseStore
	realtime  realtimeStats
}

// Stats is a snapshot of a Server's state. Requests counts inference requests
// (chat, completions, embeddings) received, whatever their outcome; the token
// counters match the vllm: counters of the same names.
type Stats struct {
	Running, Waiting int
	KVUsage          float64 // pinned KV blocks ÷ KVBlocks, 0..1
	PrefixHits       int64   // prompt tokens served from the prefix cache
	PrefixQueries    int64   // prompt tokens looked up in the prefix cache
	PromptTokens     int64
	GenerationTokens int64
	Requests         int64

	// The KServe v2 tensor model: requests computing and queued now, and
	// inference requests received, whatever their outcome.
	TensorRunning, TensorWaiting int
	TensorRequests               int64
}

// New applies defaults to cfg, validates it and starts the engine goroutine,
// which runs until Close.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := newMetrics(cfg)
	s := &Server{
		cfg: cfg, metrics: m, faults: newFaults(cfg.Seed), words: strings.Fields(vocabulary),
		created: time.Now().Unix(),
		eng:     newEngine(cfg, m.ttft, m.e2e, m.queueTime),
	}
	m.register(cfg, s.eng)
	s.tensor = newTensorModel(cfg, s.faults, s.eng.stop)
	m.registerTriton(cfg, s.tensor)
	s.responses.salt = rand.Uint32()
	s.mux = s.routes()
	s.kserveRoutes(s.mux)
	return s, nil
}

// Handler returns the HTTP handler serving the OpenAI-compatible API, the
// KServe v2 REST API under /v2, /health and /metrics.
func (s *Server) Handler() http.Handler { return s.mux }

// Close stops the engine. Queued and running requests end with an error
// (503, or an error event on a stream; UNAVAILABLE over KServe gRPC) and
// later requests get 503. Close is idempotent.
func (s *Server) Close() { s.eng.close() }

// Stats returns a snapshot of the server's queue, cache and counters.
func (s *Server) Stats() Stats {
	st, ts := s.eng.snapshot(), s.tensor.snapshot()
	return Stats{
		Running: st.running, Waiting: st.waiting, KVUsage: st.kvUsage,
		PrefixHits: st.prefixHits, PrefixQueries: st.prefixQueries,
		PromptTokens: st.promptTokens, GenerationTokens: st.genTokens,
		Requests: s.requests.Load(), TensorRequests: ts.requests,
		TensorRunning: ts.running, TensorWaiting: ts.waiting,
	}
}
