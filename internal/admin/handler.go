package admin

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	adminv1 "github.com/switchyard-ai/switchyard/gen/switchyard/admin/v1"
	"github.com/switchyard-ai/switchyard/router"
)

// RESTPath is the prefix of the admin API's REST/JSON bindings.
const RESTPath = "/admin/v1/"

// Handler serves the admin API: gRPC (with server reflection) over HTTP/2, and REST/JSON under
// RESTPath through grpc-gateway, calling the service in process. Every call needs a bearer
// token that authorize accepts: gRPC calls without one fail with UNAUTHENTICATED, REST calls
// get 401 with grpc-gateway's JSON status. Safe for concurrent use.
type Handler struct {
	grpc      *grpc.Server
	rest      *runtime.ServeMux
	authorize func(token string) bool
}

// NewHandler returns the handler for svc. authorize reports whether a bearer token is an admin
// credential; nil leaves the API open, as an admin port without keys is.
func NewHandler(svc adminv1.AdminServiceServer, authorize func(token string) bool) *Handler {
	h := &Handler{authorize: authorize}
	h.grpc = grpc.NewServer(grpc.ChainUnaryInterceptor(h.unaryAuth), grpc.ChainStreamInterceptor(h.streamAuth))
	adminv1.RegisterAdminServiceServer(h.grpc, svc)
	reflection.Register(h.grpc)
	h.rest = runtime.NewServeMux(
		// Field names as in the .proto and every field present, as operators read them.
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		}}),
		// Session keys and endpoint names may hold any character: split the path on "/" only,
		// then unescape each segment fully, so %2F stays inside a segment.
		runtime.WithUnescapingMode(runtime.UnescapingModeAllCharacters),
	)
	// Registering in-process handlers fails only for a nil mux or server.
	if err := adminv1.RegisterAdminServiceHandlerServer(context.Background(), h.rest, svc); err != nil {
		panic(err)
	}
	return h
}

// ServeHTTP implements http.Handler: gRPC requests (HTTP/2 with a gRPC content type) go to
// the gRPC server, the rest to the REST gateway.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		h.grpc.ServeHTTP(w, r)
		return
	}
	if !h.allowed(router.BearerToken(r.Header)) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard-admin"`)
		_, out := runtime.MarshalerForRequest(h.rest, r)
		runtime.HTTPError(r.Context(), h.rest, out, w, r, errUnauthenticated)
		return
	}
	h.rest.ServeHTTP(w, r)
}

// Paths lists the path prefixes to mount the handler on: the admin service's gRPC methods,
// gRPC server reflection (which tools such as grpcurl use to discover the API) and RESTPath.
func (h *Handler) Paths() []string {
	paths := []string{RESTPath}
	for name := range h.grpc.GetServiceInfo() {
		paths = append(paths, "/"+name+"/")
	}
	slices.Sort(paths)
	return paths
}

// Close stops the gRPC server, ending calls still running. The http.Server that mounts the
// handler is closed by its owner.
func (h *Handler) Close() { h.grpc.Stop() }

var errUnauthenticated = status.Error(codes.Unauthenticated, "admin credentials required")

func (h *Handler) allowed(token string) bool {
	return h.authorize == nil || (token != "" && h.authorize(token))
}

// allowedCall checks the bearer token in a gRPC call's metadata.
func (h *Handler) allowedCall(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if !h.allowed(router.BearerToken(http.Header{"Authorization": md.Get("authorization")})) {
		return errUnauthenticated
	}
	return nil
}

func (h *Handler) unaryAuth(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if err := h.allowedCall(ctx); err != nil {
		return nil, err
	}
	return next(ctx, req)
}

func (h *Handler) streamAuth(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if err := h.allowedCall(ss.Context()); err != nil {
		return err
	}
	return next(srv, ss)
}
