package admin

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/switchyard-ai/switchyard/gen/switchyard/admin/v1"
)

// GetConfig implements adminv1.AdminServiceServer.
func (s *Service) GetConfig(context.Context, *adminv1.GetConfigRequest) (*adminv1.GetConfigResponse, error) {
	if s.config == nil {
		return nil, status.Error(codes.Unimplemented, "this replica does not expose its configuration")
	}
	c := s.config()
	return &adminv1.GetConfigResponse{Yaml: string(c.YAML), Version: c.Version, LoadedAt: timestamp(c.LoadedAt)}, nil
}
