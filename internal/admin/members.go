package admin

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/switchyard-ai/switchyard/gen/switchyard/admin/v1"
)

// ListMembers implements adminv1.AdminServiceServer.
func (s *Service) ListMembers(context.Context, *adminv1.ListMembersRequest) (*adminv1.ListMembersResponse, error) {
	if s.cluster == nil {
		return nil, status.Error(codes.Unimplemented, "this replica has no cluster view")
	}
	st := s.cluster.Status()
	out := &adminv1.ListMembersResponse{Status: &adminv1.ClusterStatus{
		Mode: string(st.Mode), ReplicaId: st.ReplicaID, Members: int32(st.Members),
		Sessions: int32(st.Sessions), Counters: int32(st.Counters),
		LastSync: timestamp(st.LastSync), LastError: st.LastError, SinceError: timestamp(st.SinceError),
	}}
	for _, m := range s.cluster.Members() {
		out.Members = append(out.Members, &adminv1.Member{Id: m.ID, Addr: m.Addr, AdminAddr: m.AdminAddr,
			Since: timestamp(m.Since), Self: m.ID == st.ReplicaID})
	}
	slices.SortFunc(out.Members, func(a, b *adminv1.Member) int { return strings.Compare(a.Id, b.Id) })
	return out, nil
}

// timestamp converts t, leaving the zero time absent.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
