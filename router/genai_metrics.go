package router

import (
	"github.com/prometheus/client_golang/prometheus"
)

// genAIMetrics are the series the OpenTelemetry GenAI semantic conventions define for model
// servers (gen_ai.server.request.duration, gen_ai.server.time_to_first_token,
// gen_ai.server.time_per_output_token) and for token usage (gen_ai.client.token.usage), under
// the names OpenTelemetry's Prometheus exporter gives them, with the conventions' bucket
// boundaries. Switchyard adds tenant to each, and server_address is the endpoint that served
// the request.
type genAIMetrics struct {
	duration *prometheus.HistogramVec
	ttft     *prometheus.HistogramVec
	tpot     *prometheus.HistogramVec
	tokens   *prometheus.HistogramVec
}

var (
	genAIDurationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	genAITTFTBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	genAITPOTBuckets     = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
	genAITokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
)

// limitMetrics count rate-limit decisions.
type limitMetrics struct {
	decisions *prometheus.CounterVec
}

func newLimitMetrics(reg prometheus.Registerer) *limitMetrics {
	l := &limitMetrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_ratelimit_decisions_total",
		Help: "Requests checked against rate limits, by result: admitted, or refused by the named limit.",
	}, []string{"result", "limit"})}
	reg.MustRegister(l.decisions)
	return l
}

// limited counts a rate-limit decision: refused by limit, or admitted when limit is "".
func (m *Metrics) limited(limit string) {
	if m == nil {
		return
	}
	if limit == "" {
		m.admitted.get(func() prometheus.Counter { return m.limits.decisions.WithLabelValues("admitted", "") }).Inc()
		return
	}
	m.limits.decisions.WithLabelValues("refused", limit).Inc()
}

func newGenAIMetrics(reg prometheus.Registerer) *genAIMetrics {
	base := []string{"gen_ai_operation_name", "gen_ai_request_model", "gen_ai_response_model", "server_address", "tenant"}
	g := &genAIMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gen_ai_server_request_duration_seconds", Buckets: genAIDurationBuckets,
			Help: "GenAI request duration, from request received to the last byte of the answer, by operation, requested and served model, endpoint, tenant and error type (empty on success).",
		}, append(base, "error_type")),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gen_ai_server_time_to_first_token_seconds", Buckets: genAITTFTBuckets,
			Help: "Time to the first token of successful generations (the first body byte sent to the client), by operation, requested and served model, endpoint and tenant.",
		}, base),
		tpot: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gen_ai_server_time_per_output_token_seconds", Buckets: genAITPOTBuckets,
			Help: "Time per output token after the first, of successful generations reporting more than one output token, by operation, requested and served model, endpoint and tenant.",
		}, base),
		tokens: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gen_ai_client_token_usage", Buckets: genAITokenBuckets,
			Help: "Tokens per request as the model server reported them, by operation, requested and served model, endpoint, tenant and token type (input or output).",
		}, append(base, "gen_ai_token_type")),
	}
	reg.MustRegister(g.duration, g.ttft, g.tpot, g.tokens)
	return g
}

// genAIOperation maps an operation to the conventions' gen_ai.operation.name values where one
// exists.
func genAIOperation(op Operation) string {
	switch op {
	case OpChat:
		return "chat"
	case OpCompletion:
		return "text_completion"
	case OpEmbedding:
		return "embeddings"
	case "":
		return "unknown"
	}
	return string(op)
}

// generates reports whether an operation produces tokens one after another, so time to first
// token and per output token mean something.
func generates(op Operation) bool {
	return op == OpChat || op == OpCompletion || op == "responses"
}

func (g *genAIMetrics) observe(o Outcome, s *outcomeSeries) {
	labels := s.genaiLabels[:]
	s.genaiDuration.Observe(o.Duration.Seconds())
	if o.InputTokens > 0 {
		s.inputTokens.get(func() prometheus.Observer { return g.tokens.WithLabelValues(append(labels, "input")...) }).Observe(float64(o.InputTokens))
	}
	if o.OutputTokens > 0 {
		s.outputTokens.get(func() prometheus.Observer { return g.tokens.WithLabelValues(append(labels, "output")...) }).Observe(float64(o.OutputTokens))
	}
	if o.Failed || !generates(o.Operation) || o.FirstByte <= 0 {
		return
	}
	s.ttft.get(func() prometheus.Observer { return g.ttft.WithLabelValues(labels...) }).Observe(o.FirstByte.Seconds())
	if o.OutputTokens > 1 && o.Duration > o.FirstByte {
		s.tpot.get(func() prometheus.Observer { return g.tpot.WithLabelValues(labels...) }).Observe((o.Duration - o.FirstByte).Seconds() / float64(o.OutputTokens-1))
	}
}
