package admin

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard-ai/switchyard/backends"
	adminv1 "github.com/switchyard-ai/switchyard/gen/switchyard/admin/v1"
	"github.com/switchyard-ai/switchyard/router"
)

// ListPools implements adminv1.AdminServiceServer.
func (s *Service) ListPools(context.Context, *adminv1.ListPoolsRequest) (*adminv1.ListPoolsResponse, error) {
	// A pool's wait queue lives in its scheduler, which the routes reach.
	queued := map[*backends.Pool]int{}
	for _, r := range s.table().Routes() {
		for _, sched := range append([]*router.Scheduler{r.Scheduler}, r.Overflow...) {
			queued[sched.Pool] = sched.Waiting()
		}
	}
	now := s.now()
	out := &adminv1.ListPoolsResponse{}
	for _, p := range s.pools() {
		ap := &adminv1.Pool{Name: p.Name, MetricsFormat: string(p.MetricsFormat()), Queued: int32(queued[p])}
		for _, ep := range p.Endpoints {
			ap.Endpoints = append(ap.Endpoints, endpointView(ep, now))
		}
		out.Pools = append(out.Pools, ap)
	}
	return out, nil
}

// DrainEndpoint implements adminv1.AdminServiceServer.
func (s *Service) DrainEndpoint(ctx context.Context, req *adminv1.DrainEndpointRequest) (*adminv1.DrainEndpointResponse, error) {
	ep, err := s.setDrained(ctx, req.GetPool(), req.GetEndpoint(), true)
	if err != nil {
		return nil, err
	}
	return &adminv1.DrainEndpointResponse{Endpoint: ep}, nil
}

// UndrainEndpoint implements adminv1.AdminServiceServer.
func (s *Service) UndrainEndpoint(ctx context.Context, req *adminv1.UndrainEndpointRequest) (*adminv1.UndrainEndpointResponse, error) {
	ep, err := s.setDrained(ctx, req.GetPool(), req.GetEndpoint(), false)
	if err != nil {
		return nil, err
	}
	return &adminv1.UndrainEndpointResponse{Endpoint: ep}, nil
}

// setDrained drains or undrains an endpoint of a pool and returns its view afterwards. With
// a shared set of drains, the change goes there, and from there to every replica's
// endpoints, this one's before it returns.
func (s *Service) setDrained(ctx context.Context, pool, name string, drained bool) (*adminv1.Endpoint, error) {
	ep, err := s.endpoint(pool, name)
	if err != nil {
		return nil, err
	}
	if s.drains == nil {
		ep.SetDrained(drained)
	} else if err := s.drains.SetDrained(ctx, pool, name, drained); err != nil {
		return nil, status.Errorf(codes.Unavailable, "the drain could not be shared with the other replicas, and is not applied: %v", err)
	}
	return endpointView(ep, s.now()), nil
}

// pool finds a pool by name among those in force.
func (s *Service) pool(name string) (*backends.Pool, error) {
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "pool is required")
	}
	for _, p := range s.pools() {
		if p.Name == name {
			return p, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "pool %q not found", name)
}

// endpoint finds an endpoint by name in a pool.
func (s *Service) endpoint(pool, name string) (*backends.Endpoint, error) {
	p, err := s.pool(pool)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "endpoint is required")
	}
	for _, ep := range p.Endpoints {
		if ep.Name == name {
			return ep, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "endpoint %q not found in pool %q", name, pool)
}

func endpointView(ep *backends.Endpoint, now time.Time) *adminv1.Endpoint {
	out := &adminv1.Endpoint{Name: ep.Name, Url: ep.URL.Redacted(), Healthy: ep.Healthy(now),
		Drained: ep.Drained(), InFlight: ep.InFlight()}
	if st := ep.Stats(); st != nil {
		out.Stats = &adminv1.EndpointStats{Waiting: int32(st.Waiting),
			ScrapedAt: timestamppb.New(st.ScrapedAt), Age: durationpb.New(st.Age(now))}
		if st.Running >= 0 {
			out.Stats.Running = proto.Int32(int32(st.Running))
		}
		if st.KVUsage >= 0 {
			out.Stats.KvCacheUsage = proto.Float64(st.KVUsage)
		}
	}
	return out
}
