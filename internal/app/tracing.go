package app

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/switchyard-ai/switchyard/internal/config"
)

// tracing is the OpenTelemetry trace pipeline: an OTLP/gRPC exporter behind a batching
// provider, and the W3C trace-context propagator. A nil *tracing traces nothing.
type tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
}

// newTracing builds the pipeline when the config turns tracing on; it connects lazily, so an
// unreachable collector costs dropped spans, never requests.
func newTracing(ctx context.Context, c config.Tracing) (*tracing, error) {
	if !c.Enabled() {
		return nil, nil
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(c.OTLPEndpoint), otlptracegrpc.WithTimeout(c.ExportTimeout.D())}
	if c.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	if len(c.Headers) > 0 {
		opts = append(opts, otlptracegrpc.WithHeaders(c.Headers))
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, err
	}
	res := resource.NewSchemaless(attribute.String("service.name", c.ServiceName), attribute.String("service.version", Version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*c.SampleRatio))))
	return &tracing{provider: tp, tracer: tp.Tracer("github.com/switchyard-ai/switchyard"),
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}, nil
}

// shutdown flushes the spans still buffered.
func (t *tracing) shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// routerTracer is the tracer the router records its child spans with; nil when off.
func (t *tracing) routerTracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer
}

// injectHTTP writes the trace context of ctx into an upstream request's headers; nil when off.
func (t *tracing) injectHTTP() func(context.Context, http.Header) {
	if t == nil {
		return nil
	}
	return func(ctx context.Context, h http.Header) { t.prop.Inject(ctx, propagation.HeaderCarrier(h)) }
}

// grpcDialOptions are interceptors that write the trace context into upstream gRPC calls'
// metadata; none when off.
func (t *tracing) grpcDialOptions() []grpc.DialOption {
	if t == nil {
		return nil
	}
	outgoing := func(ctx context.Context) context.Context {
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		t.prop.Inject(ctx, metadataCarrier(md))
		return metadata.NewOutgoingContext(ctx, md)
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(outgoing(ctx), method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(outgoing(ctx), desc, cc, method, opts...)
		}),
	}
}

// metadataCarrier adapts gRPC metadata to the propagator.
type metadataCarrier metadata.MD

func (m metadataCarrier) Get(key string) string {
	if v := metadata.MD(m).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (m metadataCarrier) Set(key, value string) { metadata.MD(m).Set(key, value) }
func (m metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// middleware starts the server span of every data-plane request, continuing the client's trace
// context (HTTP headers, which gRPC metadata also travels as); the router adds its children and
// its routing decision to it. The identity of the handler when tracing is off.
func (t *tracing) middleware(next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method+" "+spanRoute(r.URL.Path), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
				attribute.String("network.protocol.version", r.Proto)))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			span.SetAttributes(attribute.Int("http.response.status_code", code))
			if st := sw.Header().Get("Grpc-Status"); st != "" && st != "0" {
				span.SetAttributes(attribute.String("rpc.grpc.status_code", st))
				span.SetStatus(codes.Error, "grpc status "+st)
			} else if code >= 500 {
				span.SetStatus(codes.Error, http.StatusText(code))
			}
			span.End()
		}()
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// spanRoute keeps span names low in cardinality: a KServe path's model name becomes {model}.
func spanRoute(path string) string {
	if rest, ok := strings.CutPrefix(path, "/v2/models/"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return "/v2/models/{model}" + rest[i:]
		}
		return "/v2/models/{model}"
	}
	return path
}

// statusWriter records the status code and passes flushing, hijacking (WebSocket upgrades)
// and trailers through.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijacking not supported")
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
