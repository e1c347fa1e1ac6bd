package kserve

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchyard-ai/switchyard/router"
)

// upstreamStatus carries an upstream gRPC status through the core, so the client receives the
// model server's own code and message (an upstream INVALID_ARGUMENT stays INVALID_ARGUMENT).
type upstreamStatus struct{ st *status.Status }

func (u *upstreamStatus) Error() string { return u.st.Message() }

// codeOf maps a router code onto a gRPC status code.
func codeOf(c router.Code) connect.Code {
	switch c {
	case router.CodeInvalidArgument:
		return connect.CodeInvalidArgument
	case router.CodeNotFound:
		return connect.CodeNotFound
	case router.CodeMethodNotAllowed:
		return connect.CodeUnimplemented
	case router.CodeRequestTooLarge, router.CodeResourceExhausted:
		return connect.CodeResourceExhausted
	case router.CodeUnauthenticated:
		return connect.CodeUnauthenticated
	case router.CodePermissionDenied:
		return connect.CodePermissionDenied
	case router.CodeUpstream, router.CodeUnavailable:
		return connect.CodeUnavailable
	case router.CodeDeadlineExceeded:
		return connect.CodeDeadlineExceeded
	case router.CodeCanceled:
		return connect.CodeCanceled
	}
	return connect.CodeInternal
}

// routerCode maps an upstream gRPC code onto a router code.
func routerCode(c codes.Code) router.Code {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return router.CodeInvalidArgument
	case codes.NotFound:
		return router.CodeNotFound
	case codes.ResourceExhausted:
		return router.CodeResourceExhausted
	case codes.Unauthenticated:
		return router.CodeUnauthenticated
	case codes.PermissionDenied:
		return router.CodePermissionDenied
	case codes.DeadlineExceeded:
		return router.CodeDeadlineExceeded
	case codes.Canceled:
		return router.CodeCanceled
	case codes.Unimplemented:
		return router.CodeMethodNotAllowed
	}
	return router.CodeUpstream
}

// connectError turns any error from the core into a connect error with the right code, the
// upstream's own code when it came from a model server, and retry info when a retry helps.
func connectError(err error) *connect.Error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	var up *upstreamStatus
	if errors.As(err, &up) {
		return connect.NewError(connect.Code(up.st.Code()), errors.New(up.st.Message()))
	}
	e := router.AsError(err)
	out := connect.NewError(codeOf(e.Code), errors.New(e.Message))
	if e.RetryAfter > 0 {
		if d, derr := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)}); derr == nil {
			out.AddDetail(d)
		}
		out.Meta().Set("retry-after", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	return out
}

// restStatus maps a gRPC code onto the KServe REST status (Triton's mapping, with 429 for
// exhausted resources and 502/503 for upstream trouble).
func restStatus(c connect.Code) int {
	switch c {
	case connect.CodeInvalidArgument, connect.CodeOutOfRange, connect.CodeFailedPrecondition:
		return http.StatusBadRequest
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	case connect.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case connect.CodeUnimplemented:
		return http.StatusNotImplemented
	case connect.CodeCanceled:
		return 499
	}
	return http.StatusInternalServerError
}

// writeRESTError answers err as KServe REST {"error": "..."} with its status and returns the
// status.
func writeRESTError(w http.ResponseWriter, err error) int {
	ce := connectError(err)
	status := restStatus(ce.Code())
	if ra := ce.Meta().Get("retry-after"); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	b, _ := json.Marshal(map[string]string{"error": ce.Message()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
	return status
}
