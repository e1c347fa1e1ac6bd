package router

import (
	"context"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// WithTracer records a span for the policy chain, each pick and each upstream attempt of a
// request, as children of the span in the request's context. Default: no tracing.
func WithTracer(t trace.Tracer) Option { return func(r *Router) { r.tracer = t } }

var noTracer = noop.NewTracerProvider().Tracer("")

func (r *Router) startSpan(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	t := r.tracer
	if t == nil {
		t = noTracer
	}
	return t.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// endSpan records err, if any, on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// annotate adds what routing decided to the request's own span.
func annotate(ctx context.Context, req *Request, route *Route) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(
		attribute.String("gen_ai.operation.name", genAIOperation(req.Operation)),
		attribute.String("gen_ai.request.model", req.Model),
		attribute.String("gen_ai.response.model", route.TargetModel),
		attribute.String("switchyard.priority", req.Priority),
		attribute.Int("switchyard.prompt_tokens_estimate", req.PromptTokens),
	)
	if req.Identity != "" {
		span.SetAttributes(attribute.String("switchyard.tenant", req.Identity))
	}
}

// attemptAttrs describe an upstream attempt.
func attemptAttrs(t Target, n int) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("server.address", t.Endpoint.Name),
		attribute.String("switchyard.pool", t.Pool.Name),
		attribute.String("switchyard.attempt", strconv.Itoa(n)),
	}
}
