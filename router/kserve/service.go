package kserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/gen/inference"
	"github.com/switchyard-ai/switchyard/gen/inference/inferenceconnect"
	"github.com/switchyard-ai/switchyard/policy"
	"github.com/switchyard-ai/switchyard/router"
)

// Response headers naming where a call was routed.
const (
	hdrModel    = "x-switchyard-model"
	hdrEndpoint = "x-switchyard-endpoint"
)

// service implements the GRPCInferenceService. Server-level RPCs answer for Switchyard
// itself; model-level RPCs are routed to an endpoint serving the model.
type service struct{ h *Handler }

var _ inferenceconnect.GRPCInferenceServiceHandler = (*service)(nil)

func (s *service) ServerLive(context.Context, *connect.Request[inference.ServerLiveRequest]) (*connect.Response[inference.ServerLiveResponse], error) {
	return connect.NewResponse(&inference.ServerLiveResponse{Live: true}), nil
}

func (s *service) ServerReady(context.Context, *connect.Request[inference.ServerReadyRequest]) (*connect.Response[inference.ServerReadyResponse], error) {
	return connect.NewResponse(&inference.ServerReadyResponse{Ready: s.h.ready()}), nil
}

func (s *service) ServerMetadata(context.Context, *connect.Request[inference.ServerMetadataRequest]) (*connect.Response[inference.ServerMetadataResponse], error) {
	return connect.NewResponse(s.h.serverMetadata()), nil
}

func (h *Handler) serverMetadata() *inference.ServerMetadataResponse {
	return &inference.ServerMetadataResponse{Name: "switchyard", Version: h.version,
		Extensions: []string{"parameters", "binary_tensor_data"}}
}

// ModelReady answers false, not an error, for a model that is unknown or has no endpoint
// able to answer, as the protocol's health RPCs do.
func (s *service) ModelReady(ctx context.Context, req *connect.Request[inference.ModelReadyRequest]) (*connect.Response[inference.ModelReadyResponse], error) {
	ready, t, err := s.h.modelReady(ctx, req.Msg.GetName(), req.Msg.GetVersion(), req.Header())
	if isPolicyError(err) {
		return nil, connectError(err)
	}
	resp := connect.NewResponse(&inference.ModelReadyResponse{Ready: ready && err == nil})
	s.h.setRouting(resp.Header(), t)
	return resp, nil
}

func (h *Handler) modelReady(ctx context.Context, model, version string, hdr http.Header) (bool, router.Target, error) {
	var ready bool
	var target router.Target
	req := &router.Request{Protocol: router.ProtocolKServe, Operation: router.OpMetadata, Model: model, Version: version}
	if _, err := h.rt.Admit(ctx, req, credentials(ctx, hdr)); err != nil {
		return false, target, err
	}
	err := h.rt.Serve(ctx, req, func(ctx context.Context, t router.Target) error {
		target = t
		var err error
		ready, err = upstreamReady(ctx, t, version)
		return err
	})
	return ready, target, err
}

func (s *service) ModelMetadata(ctx context.Context, req *connect.Request[inference.ModelMetadataRequest]) (*connect.Response[inference.ModelMetadataResponse], error) {
	md, t, err := s.h.modelMetadata(ctx, req.Msg.GetName(), req.Msg.GetVersion(), req.Header())
	if err != nil {
		ce := connectError(err)
		s.h.setRouting(ce.Meta(), t)
		return nil, ce
	}
	resp := connect.NewResponse(md)
	s.h.setRouting(resp.Header(), t)
	return resp, nil
}

func (h *Handler) modelMetadata(ctx context.Context, model, version string, hdr http.Header) (*inference.ModelMetadataResponse, router.Target, error) {
	var md *inference.ModelMetadataResponse
	var target router.Target
	req := &router.Request{Protocol: router.ProtocolKServe, Operation: router.OpMetadata, Model: model, Version: version}
	if _, err := h.rt.Admit(ctx, req, credentials(ctx, hdr)); err != nil {
		return nil, target, err
	}
	err := h.rt.Serve(ctx, req, func(ctx context.Context, t router.Target) error {
		target = t
		var err error
		md, err = upstreamMetadata(ctx, t, version)
		return err
	})
	if md != nil {
		md.Name = model // the client's name for it, whatever the upstream calls it
	}
	return md, target, err
}

func (s *service) ModelInfer(ctx context.Context, req *connect.Request[inference.ModelInferRequest]) (*connect.Response[inference.ModelInferResponse], error) {
	resp, t, q, err := s.h.infer(ctx, req.Msg, req.Header())
	if err != nil {
		ce := connectError(err)
		s.h.setRouting(ce.Meta(), t)
		router.SetQuotaHeaders(ce.Meta(), q)
		return nil, ce
	}
	out := connect.NewResponse(resp)
	s.h.setRouting(out.Header(), t)
	router.SetQuotaHeaders(out.Header(), q)
	return out, nil
}

// infer validates, classifies, admits and routes one inference request; it also returns the
// caller's remaining quota.
func (h *Handler) infer(ctx context.Context, m *inference.ModelInferRequest, hdr http.Header) (*inference.ModelInferResponse, router.Target, policy.Quota, error) {
	var target router.Target
	var quota policy.Quota
	req, timeout, err := h.classify(m, hdr)
	if err != nil {
		return nil, target, quota, err
	}
	adm, err := h.rt.Admit(ctx, &req, credentials(ctx, hdr))
	if err != nil {
		var d *policy.Denial
		if errors.As(err, &d) {
			quota = d.Quota
		}
		return nil, target, quota, err
	}
	defer adm.Settle(0) // tensor requests are charged as requests, not tokens
	quota = adm.Quota()
	if err := ValidateInferRequest(m, h.maxElements); err != nil {
		return nil, target, quota, &router.Error{Code: router.CodeInvalidArgument, Message: err.Error()}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var resp *inference.ModelInferResponse
	err = h.rt.Serve(ctx, &req, func(ctx context.Context, t router.Target) error {
		target = t
		var err error
		resp, err = upstreamInfer(ctx, t, m)
		return err
	})
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		err = &router.Error{Code: router.CodeDeadlineExceeded, Message: "inference did not finish within its timeout", Err: err}
	}
	if resp != nil {
		resp.ModelName = req.Model
	}
	return resp, target, quota, err
}

// isPolicyError reports whether err is an authentication or authorization refusal, which
// health answers must not hide behind ready=false.
func isPolicyError(err error) bool {
	var e *router.Error
	return errors.As(err, &e) && (e.Code == router.CodeUnauthenticated || e.Code == router.CodePermissionDenied)
}

// setRouting names the chosen model and endpoint in response headers (gRPC metadata).
func (h *Handler) setRouting(hdr http.Header, t router.Target) {
	if !h.routingHeaders || t.Route == nil {
		return
	}
	hdr.Set(hdrModel, t.Route.TargetModel)
	hdr.Set(hdrEndpoint, t.Endpoint.Name)
}

// ModelStreamInfer binds the stream to the model of its first request and to one endpoint,
// picked for that request, then relays requests and responses message by message both ways.
// Requests are forwarded as they are (the model name rewritten when the route maps it); the
// upstream answers each, errors included, in order.
func (s *service) ModelStreamInfer(ctx context.Context, stream *connect.BidiStream[inference.ModelInferRequest, inference.ModelStreamInferResponse]) error {
	h := s.h
	first, err := stream.Receive()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := ValidateInferRequest(first, h.maxElements); err != nil {
		return connectError(&router.Error{Code: router.CodeInvalidArgument, Message: err.Error()})
	}
	req, _, err := h.classify(first, stream.RequestHeader())
	if err != nil {
		return connectError(err)
	}
	adm, err := h.rt.Admit(ctx, &req, credentials(ctx, stream.RequestHeader()))
	if err != nil {
		return connectError(err)
	}
	defer adm.Settle(0)
	err = h.rt.Serve(ctx, &req, func(ctx context.Context, t router.Target) error {
		client := t.Pool.GRPC.Inference(t.Endpoint)
		if client == nil {
			return &router.Error{Code: router.CodeMethodNotAllowed, Message: "ModelStreamInfer needs a gRPC upstream; model " + req.Model + " is served over REST"}
		}
		up, err := client.ModelStreamInfer(ctx)
		if err != nil {
			return grpcError(t, err)
		}
		h.setRouting(stream.ResponseHeader(), t)
		return relayStream(ctx, stream, up, first, req.Model, t.Route.TargetModel)
	})
	if err != nil {
		return connectError(err)
	}
	return nil
}

// relayStream pumps client requests upstream and upstream responses to the client until the
// client closes its side and the upstream has answered everything.
func relayStream(ctx context.Context, client *connect.BidiStream[inference.ModelInferRequest, inference.ModelStreamInferResponse],
	up inference.GRPCInferenceService_ModelStreamInferClient, first *inference.ModelInferRequest, model, target string) error {
	rename := func(m *inference.ModelInferRequest) {
		if m.ModelName == model {
			m.ModelName = target
		}
	}
	rename(first)
	if err := up.Send(first); err != nil {
		return &router.Error{Code: router.CodeUpstream, Message: "upstream stream failed", Err: err}
	}
	var wg sync.WaitGroup
	sendErr := make(chan error, 1)
	wg.Go(func() {
		for {
			m, err := client.Receive()
			if errors.Is(err, io.EOF) {
				sendErr <- up.CloseSend()
				return
			}
			if err != nil {
				sendErr <- err
				return
			}
			rename(m)
			if err := up.Send(m); err != nil {
				sendErr <- err
				return
			}
		}
	})
	defer wg.Wait()
	for {
		r, err := up.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
				return &router.Error{Code: routerCode(st.Code()), Message: st.Message(), Err: &upstreamStatus{st}}
			}
			return &router.Error{Code: router.CodeUpstream, Message: "upstream stream failed", Err: err}
		}
		if ir := r.GetInferResponse(); ir != nil && ir.ModelName == target {
			ir.ModelName = model
		}
		if err := client.Send(r); err != nil {
			return &router.Error{Code: router.CodeCanceled, Message: "client stream closed", Err: err}
		}
		select {
		case err := <-sendErr:
			if err != nil && ctx.Err() == nil {
				return &router.Error{Code: router.CodeCanceled, Message: "client stream failed", Err: err}
			}
			sendErr <- nil // keep the result for the next look; CloseSend done
		default:
		}
	}
}

// grpcError maps an upstream gRPC failure onto a router error; UNAVAILABLE (nothing was
// processed) and RESOURCE_EXHAUSTED (the server's queue is full) may be retried elsewhere.
func grpcError(t router.Target, err error) error {
	st, _ := status.FromError(err)
	e := &router.Error{Code: routerCode(st.Code()), Message: st.Message(), Err: &upstreamStatus{st}}
	switch st.Code() {
	case codes.Unavailable:
		t.Endpoint.MarkFailed(nowFunc())
		e.Message = "upstream " + t.Endpoint.Name + " unavailable: " + st.Message()
		return router.Retryable(e)
	case codes.ResourceExhausted:
		if !t.Last {
			return router.Retryable(e)
		}
	}
	return e
}

// upstreamInfer sends m to the target over gRPC or REST.
func upstreamInfer(ctx context.Context, t router.Target, m *inference.ModelInferRequest) (*inference.ModelInferResponse, error) {
	pool := t.Pool
	name := m.ModelName
	m.ModelName = t.Route.TargetModel
	defer func() { m.ModelName = name }()
	if client := pool.GRPC.Inference(t.Endpoint); client != nil {
		resp, err := client.ModelInfer(ctx, m)
		if err != nil {
			return nil, grpcError(t, err)
		}
		t.Endpoint.MarkOK()
		return resp, nil
	}
	body, err := EncodeInferRequest(m)
	if err != nil {
		return nil, &router.Error{Code: router.CodeInvalidArgument, Message: err.Error()}
	}
	status, b, err := restCall(ctx, t, http.MethodPost, modelPath(t.Route.TargetModel, m.ModelVersion)+"/infer", body)
	if err != nil {
		return nil, err
	}
	resp, err := DecodeInferResponse(b)
	if err != nil {
		return nil, &router.Error{Code: router.CodeUpstream, Message: fmt.Sprintf("upstream %s answered %d with a malformed body: %v", t.Endpoint.Name, status, err)}
	}
	return resp, nil
}

func upstreamReady(ctx context.Context, t router.Target, version string) (bool, error) {
	if client := t.Pool.GRPC.Inference(t.Endpoint); client != nil {
		r, err := client.ModelReady(ctx, &inference.ModelReadyRequest{Name: t.Route.TargetModel, Version: version})
		if err != nil {
			return false, grpcError(t, err)
		}
		return r.GetReady(), nil
	}
	_, _, err := restCall(ctx, t, http.MethodGet, modelPath(t.Route.TargetModel, version)+"/ready", nil)
	return err == nil, err
}

func upstreamMetadata(ctx context.Context, t router.Target, version string) (*inference.ModelMetadataResponse, error) {
	if client := t.Pool.GRPC.Inference(t.Endpoint); client != nil {
		r, err := client.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: t.Route.TargetModel, Version: version})
		if err != nil {
			return nil, grpcError(t, err)
		}
		return r, nil
	}
	_, b, err := restCall(ctx, t, http.MethodGet, modelPath(t.Route.TargetModel, version), nil)
	if err != nil {
		return nil, err
	}
	md, err := DecodeModelMetadata(b)
	if err != nil {
		return nil, &router.Error{Code: router.CodeUpstream, Message: "upstream " + t.Endpoint.Name + " sent malformed model metadata: " + err.Error()}
	}
	return md, nil
}

func modelPath(model, version string) string {
	p := "/v2/models/" + model
	if version != "" {
		p += "/versions/" + version
	}
	return p
}

// restCall performs one KServe v2 REST call and returns the 2xx body, or the upstream's
// {"error"} as a router error with the matching code.
func restCall(ctx context.Context, t router.Target, method, path string, body []byte) (int, []byte, error) {
	client := t.Pool.Client
	var (
		status int
		b      []byte
		err    error
	)
	if method == http.MethodGet {
		status, b, err = client.Get(ctx, t.Endpoint, path, 64<<20)
	} else {
		hdr := http.Header{"Content-Type": {"application/json"}}
		var resp *http.Response
		resp, err = client.Post(ctx, t.Endpoint, path, hdr, body)
		if err == nil {
			status = resp.StatusCode
			b, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			resp.Body.Close()
		}
	}
	if err != nil {
		if errors.Is(err, backends.ErrConnect) {
			t.Endpoint.MarkFailed(nowFunc())
			return 0, nil, router.Retryable(&router.Error{Code: router.CodeUpstream, Message: "upstream " + t.Endpoint.Name + " could not be reached", Err: err})
		}
		if errors.Is(err, backends.ErrFirstByteTimeout) {
			return 0, nil, &router.Error{Code: router.CodeDeadlineExceeded, Message: "upstream " + t.Endpoint.Name + " did not answer in time", Err: err}
		}
		if ctx.Err() != nil {
			return 0, nil, &router.Error{Code: router.CodeCanceled, Message: "request canceled", Err: err}
		}
		return 0, nil, &router.Error{Code: router.CodeUpstream, Message: "upstream " + t.Endpoint.Name + " failed", Err: err}
	}
	t.Endpoint.MarkOK()
	if status/100 == 2 {
		return status, b, nil
	}
	msg := string(b)
	var eb struct {
		Error string `json:"error"`
	}
	if jsonUnmarshal(b, &eb) == nil && eb.Error != "" {
		msg = eb.Error
	}
	e := &router.Error{Code: restCode(status), Message: msg}
	if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests || status == http.StatusBadGateway) && !t.Last {
		return status, nil, router.Retryable(e)
	}
	return status, nil, e
}

// restCode maps an upstream KServe REST status onto a router code.
func restCode(status int) router.Code {
	switch status {
	case http.StatusBadRequest:
		return router.CodeInvalidArgument
	case http.StatusNotFound:
		return router.CodeNotFound
	case http.StatusTooManyRequests:
		return router.CodeResourceExhausted
	case http.StatusUnauthorized:
		return router.CodeUnauthenticated
	case http.StatusForbidden:
		return router.CodePermissionDenied
	case http.StatusGatewayTimeout:
		return router.CodeDeadlineExceeded
	case http.StatusNotImplemented:
		return router.CodeMethodNotAllowed
	}
	return router.CodeUpstream
}
