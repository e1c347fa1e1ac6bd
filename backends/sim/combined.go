package sim

import (
	"net/http"
	"strings"

	"google.golang.org/grpc"
)

// CombinedHandler serves everything on one port: the OpenAI and KServe v2 REST APIs and
// /metrics, and, for HTTP/2 requests with a gRPC content type, the KServe v2 gRPC service.
// Serve it with HTTP/1.1 and unencrypted HTTP/2 (h2c) enabled.
func (s *Server) CombinedHandler() http.Handler {
	g := grpc.NewServer()
	s.RegisterKServe(g)
	rest := s.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
}

// H2C returns the protocols CombinedHandler needs: HTTP/1.1 and unencrypted HTTP/2.
func H2C() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}
