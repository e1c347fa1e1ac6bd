package router

import (
	"cmp"
	"slices"
)

// Table returns the routing table in force now. The table is immutable; a later Swap does not
// change it.
func (r *Router) Table() *Table { return r.table.Load() }

// Routes returns the table's concrete routes sorted by model name. The routes are shared with
// the request path and must not be modified.
func (t *Table) Routes() []*Route {
	out := make([]*Route, 0, len(t.routes))
	for _, r := range t.routes {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Route) int { return cmp.Compare(a.Model, b.Model) })
	return out
}

// Virtuals returns the table's virtual models sorted by name. They are shared with the
// request path and must not be modified.
func (t *Table) Virtuals() []*Virtual {
	out := make([]*Virtual, 0, len(t.virtual))
	for _, v := range t.virtual {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *Virtual) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
