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

// noSpan stands for the spans of a router without a tracer: it records nothing.
var noSpan trace.Span = noop.Span{}

// startSpan starts a child span of ctx's. Without a tracer it returns ctx and noSpan, and
// attrs, which builds the span's attributes, is not called: a request then pays nothing for
// tracing. attrs may be nil.
func (r *Router) startSpan(ctx context.Context, name string, kind trace.SpanKind, attrs func() []attribute.KeyValue) (context.Context, trace.Span) {
	if r.tracer == nil {
		return ctx, noSpan
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(kind)}
	if attrs != nil {
		opts = append(opts, trace.WithAttributes(attrs()...))
	}
	return r.tracer.Start(ctx, name, opts...)
}

// endSpan records err, if any, on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
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
