package router

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an Error. Front doors map each code onto their protocol: an HTTP status and
// OpenAI error type, a gRPC status code, a KServe REST status.
type Code uint8

// The error codes. Their HTTP statuses are given for orientation; the mapping lives at the edge.
const (
	CodeInternal          Code = iota // 500: a bug; recovered and logged
	CodeInvalidArgument               // 400: malformed or missing input
	CodeNotFound                      // 404: unknown model or route
	CodeMethodNotAllowed              // 405: known route, wrong method
	CodeRequestTooLarge               // 413: body over the configured limit
	CodeUnauthenticated               // 401: no or bad credentials
	CodePermissionDenied              // 403: credentials valid, access not allowed
	CodeResourceExhausted             // 429: rate limited or shed
	CodeUpstream                      // 502: the model server failed
	CodeUnavailable                   // 503: no healthy endpoint
	CodeDeadlineExceeded              // 504: the model server did not answer in time
	CodeCanceled                      // 499: the client went away
)

var codeNames = [...]string{
	CodeInternal: "internal", CodeInvalidArgument: "invalid_argument", CodeNotFound: "not_found",
	CodeMethodNotAllowed: "method_not_allowed", CodeRequestTooLarge: "request_too_large",
	CodeUnauthenticated: "unauthenticated", CodePermissionDenied: "permission_denied",
	CodeResourceExhausted: "resource_exhausted", CodeUpstream: "upstream_error",
	CodeUnavailable: "unavailable", CodeDeadlineExceeded: "deadline_exceeded", CodeCanceled: "canceled",
}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", c)
}

// Error is the one error type the core returns. Use errors.As to find it in a chain.
type Error struct {
	Code    Code
	Message string // safe to show the client
	// Param names the offending request field, when there is one (OpenAI "param").
	Param string
	// Reason is a short machine-readable cause (OpenAI "code"), e.g. "model_not_found".
	Reason string
	// RetryAfter, when positive, tells the client when to try again.
	RetryAfter time.Duration
	// Err is the underlying cause, logged but not shown to clients.
	Err error
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code.String() + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code.String() + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// AsError returns err as an *Error, wrapping anything else as CodeInternal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}

// errRetryable marks an attempt that failed before any response byte reached the client.
var errRetryable = errors.New("router: retryable before first byte")

// Retryable marks err as a failure before the first response byte, so the core may retry the
// request once on another endpoint.
func Retryable(err error) error { return fmt.Errorf("%w: %w", errRetryable, err) }

// IsRetryable reports whether err was marked by Retryable.
func IsRetryable(err error) bool { return errors.Is(err, errRetryable) }
