package admin

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard-ai/switchyard/cluster"
	adminv1 "github.com/switchyard-ai/switchyard/gen/switchyard/admin/v1"
)

// GetSession implements adminv1.AdminServiceServer.
func (s *Service) GetSession(_ context.Context, req *adminv1.GetSessionRequest) (*adminv1.GetSessionResponse, error) {
	b, err := s.binding(req.GetPool(), req.GetSession())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetSessionResponse{Session: sessionView(req.GetPool(), req.GetSession(), b)}, nil
}

// DeleteSession implements adminv1.AdminServiceServer.
func (s *Service) DeleteSession(_ context.Context, req *adminv1.DeleteSessionRequest) (*adminv1.DeleteSessionResponse, error) {
	b, err := s.binding(req.GetPool(), req.GetSession())
	if err != nil {
		return nil, err
	}
	if err := s.sessions.Delete(b.Key); err != nil {
		return nil, status.Errorf(codes.Unavailable, "delete session: %v", err)
	}
	return &adminv1.DeleteSessionResponse{Session: sessionView(req.GetPool(), req.GetSession(), b)}, nil
}

// binding looks up a live session binding of a known pool.
func (s *Service) binding(pool, session string) (cluster.Binding, error) {
	if s.sessions == nil {
		return cluster.Binding{}, status.Error(codes.Unimplemented, "this replica has no session store")
	}
	if _, err := s.pool(pool); err != nil {
		return cluster.Binding{}, err
	}
	if session == "" {
		return cluster.Binding{}, status.Error(codes.InvalidArgument, "session is required")
	}
	// The store's key is the scheduler's: pool name, "|", session key.
	b, ok := s.sessions.Lookup(s.now(), pool+"|"+session)
	if !ok {
		return cluster.Binding{}, status.Errorf(codes.NotFound, "session %q is not bound in pool %q", session, pool)
	}
	return b, nil
}

func sessionView(pool, session string, b cluster.Binding) *adminv1.Session {
	return &adminv1.Session{Pool: pool, Session: session, Endpoint: b.Endpoint, ExpiresAt: timestamppb.New(b.Expires)}
}
