package kserve

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/switchyard-ai/switchyard/gen/inference"
	"github.com/switchyard-ai/switchyard/router"
)

// classify reads what routing needs from an inference request: model and version, input size
// (elements as the size signal, and bytes), priority class, session key and the request's own
// timeout.
//
// Priority: the x-priority header (a class name) wins; otherwise Triton's `priority`
// parameter, where k ≥ 1 names the k-th class (1 is the most urgent; larger values the last),
// and 0 or no parameter leaves it empty for admission to fill with the caller's default. Session: Triton's `sequence_id` parameter (integer or
// string; 0 and "" mean none), else the session header. Timeout: Triton's `timeout` parameter
// in microseconds.
func (h *Handler) classify(m *inference.ModelInferRequest, hdr http.Header) (router.Request, time.Duration, error) {
	elements, size := InputSize(m)
	req := router.Request{
		ID: m.GetId(), Protocol: router.ProtocolKServe, Operation: router.OpInfer,
		Model: m.GetModelName(), Version: m.GetModelVersion(),
		PromptTokens: int(min(elements, int64(1<<31-1))), InputBytes: size, Header: hdr,
	}
	if req.ID == "" {
		req.ID = strconv.FormatUint(rand.Uint64(), 16)
	}
	if req.Model == "" {
		return req, 0, &router.Error{Code: router.CodeInvalidArgument, Param: "model_name", Message: "model_name is required"}
	}
	params := m.GetParameters()
	if p := hdr.Get(h.priorityHeader); p != "" {
		if !slices.Contains(h.priorities, p) {
			return req, 0, &router.Error{Code: router.CodeInvalidArgument, Param: h.priorityHeader,
				Message: "unknown priority class " + strconv.Quote(p)}
		}
		req.Priority = p
	} else if p, ok := params["priority"]; ok {
		var level uint64
		switch v := p.GetParameterChoice().(type) {
		case *inference.InferParameter_Uint64Param:
			level = v.Uint64Param
		case *inference.InferParameter_Int64Param:
			if v.Int64Param < 0 {
				return req, 0, &router.Error{Code: router.CodeInvalidArgument, Param: "priority", Message: "priority must not be negative"}
			}
			level = uint64(v.Int64Param)
		default:
			return req, 0, &router.Error{Code: router.CodeInvalidArgument, Param: "priority", Message: "priority must be an integer parameter"}
		}
		if level > 0 {
			req.Priority = h.priorities[min(level, uint64(len(h.priorities)))-1]
		}
	}
	if s, ok := params["sequence_id"]; ok {
		switch v := s.GetParameterChoice().(type) {
		case *inference.InferParameter_Int64Param:
			if v.Int64Param != 0 {
				req.SessionKey = "seq:" + strconv.FormatInt(v.Int64Param, 10)
			}
		case *inference.InferParameter_Uint64Param:
			if v.Uint64Param != 0 {
				req.SessionKey = "seq:" + strconv.FormatUint(v.Uint64Param, 10)
			}
		case *inference.InferParameter_StringParam:
			if v.StringParam != "" {
				req.SessionKey = "seq:" + v.StringParam
			}
		default:
			return req, 0, &router.Error{Code: router.CodeInvalidArgument, Param: "sequence_id", Message: "sequence_id must be an integer or string parameter"}
		}
	}
	if req.SessionKey == "" {
		req.SessionKey = hdr.Get(h.sessionHeader)
	}
	var timeout time.Duration
	if t, ok := params["timeout"]; ok {
		v, isInt := t.GetParameterChoice().(*inference.InferParameter_Int64Param)
		if !isInt || v.Int64Param < 0 {
			return req, 0, &router.Error{Code: router.CodeInvalidArgument, Param: "timeout", Message: "timeout must be a non-negative int64 parameter in microseconds"}
		}
		timeout = time.Duration(v.Int64Param) * time.Microsecond
	}
	return req, timeout, nil
}
