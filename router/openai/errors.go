package openai

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	"github.com/switchyard-ai/switchyard/router"
)

// errorBody is the OpenAI error envelope; all four fields are always present.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// httpStatus maps a router code onto the status OpenAI clients expect, and the OpenAI error type.
func httpStatus(c router.Code) (int, string) {
	switch c {
	case router.CodeInvalidArgument:
		return http.StatusBadRequest, "invalid_request_error"
	case router.CodeNotFound:
		return http.StatusNotFound, "invalid_request_error"
	case router.CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed, "invalid_request_error"
	case router.CodeRequestTooLarge:
		return http.StatusRequestEntityTooLarge, "invalid_request_error"
	case router.CodeUnauthenticated:
		return http.StatusUnauthorized, "authentication_error"
	case router.CodePermissionDenied:
		return http.StatusForbidden, "permission_error"
	case router.CodeResourceExhausted:
		return http.StatusTooManyRequests, "rate_limit_error"
	case router.CodeUpstream:
		return http.StatusBadGateway, "server_error"
	case router.CodeUnavailable:
		return http.StatusServiceUnavailable, "server_error"
	case router.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout, "server_error"
	case router.CodeCanceled:
		return 499, "invalid_request_error"
	}
	return http.StatusInternalServerError, "server_error"
}

// encodeError renders e as OpenAI error JSON.
func encodeError(e *router.Error) []byte {
	_, typ := httpStatus(e.Code)
	d := errorDetail{Message: e.Message, Type: typ}
	if e.Param != "" {
		d.Param = &e.Param
	}
	code := e.Reason
	if code == "" {
		code = e.Code.String()
	}
	d.Code = &code
	return encodeErrorDetail(d)
}

func encodeErrorDetail(d errorDetail) []byte {
	b, _ := json.Marshal(errorBody{Error: d})
	return b
}

// writeError answers err as OpenAI error JSON with its status and, when set, Retry-After.
func writeError(w http.ResponseWriter, err error) int {
	e := router.AsError(err)
	status, _ := httpStatus(e.Code)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	w.WriteHeader(status)
	w.Write(append(encodeError(e), '\n'))
	return status
}

// normalizeUpstreamError rewrites an old vLLM error body ({"object":"error","message",...,
// "code":<int>}) into the OpenAI envelope. Other bodies are returned unchanged.
func normalizeUpstreamError(body []byte, status int) []byte {
	var old struct {
		Object  string  `json:"object"`
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
	}
	if json.Unmarshal(body, &old) != nil || old.Object != "error" {
		return body
	}
	code := strconv.Itoa(status)
	if old.Type == "" {
		old.Type = "server_error"
	}
	b, _ := json.Marshal(errorBody{Error: errorDetail{Message: old.Message, Type: old.Type, Param: old.Param, Code: &code}})
	return b
}
