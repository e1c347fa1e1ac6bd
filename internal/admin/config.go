package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/switchyard-ai/switchyard/gen/switchyard/admin/v1"
)

// GetConfig implements adminv1.AdminServiceServer.
func (s *Service) GetConfig(context.Context, *adminv1.GetConfigRequest) (*adminv1.GetConfigResponse, error) {
	if s.config == nil {
		return nil, status.Error(codes.Unimplemented, "this replica does not expose its configuration")
	}
	yaml, loaded := s.config()
	sum := sha256.Sum256(yaml)
	return &adminv1.GetConfigResponse{Yaml: string(yaml), Version: hex.EncodeToString(sum[:]), LoadedAt: timestamp(loaded)}, nil
}
