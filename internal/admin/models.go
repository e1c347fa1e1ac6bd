package admin

import (
	"context"
	"maps"
	"slices"
	"strings"

	adminv1 "github.com/switchyard-ai/switchyard/gen/switchyard/admin/v1"
	"github.com/switchyard-ai/switchyard/router"
)

// ListModels implements adminv1.AdminServiceServer.
func (s *Service) ListModels(context.Context, *adminv1.ListModelsRequest) (*adminv1.ListModelsResponse, error) {
	t := s.table()
	var out []*adminv1.Model
	for _, r := range t.Routes() {
		m := &adminv1.Model{Name: r.Model, Protocol: string(r.Protocol), Pool: r.Pool().Name, TargetModel: r.TargetModel}
		for _, o := range r.Overflow {
			m.OverflowPools = append(m.OverflowPools, o.Pool.Name)
		}
		out = append(out, m)
	}
	for _, v := range t.Virtuals() {
		m := &adminv1.Model{Name: v.Name, Protocol: string(v.Protocol), Virtual: true}
		for _, rule := range v.Rules {
			m.Rules = append(m.Rules, routeRule(rule))
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *adminv1.Model) int { return strings.Compare(a.Name, b.Name) })
	return &adminv1.ListModelsResponse{Models: out}, nil
}

func routeRule(rule router.Rule) *adminv1.RouteRule {
	out := &adminv1.RouteRule{}
	if m := rule.Match; m != nil {
		out.Match = &adminv1.RouteMatch{
			MinPromptTokens: int32(m.MinPromptTokens), MaxPromptTokens: int32(m.MaxPromptTokens),
			MinOutputTokens: int32(m.MinOutputTokens), MaxOutputTokens: int32(m.MaxOutputTokens),
			Priorities: m.Priorities, Tenants: m.Tenants, Headers: maps.Clone(m.Headers),
		}
	}
	for i, target := range rule.Targets {
		weight := 1 // nil weights are equal weights
		if rule.Weights != nil {
			weight = rule.Weights[i]
		}
		out.Targets = append(out.Targets, &adminv1.RouteTarget{Model: target.Model, Pool: target.Pool().Name, Weight: int32(weight)})
	}
	return out
}
