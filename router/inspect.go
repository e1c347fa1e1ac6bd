package router

import (
	"cmp"
	"maps"
	"slices"
)

// Table returns the routing table in force now. The table is immutable; a later Swap does not
// change it.
func (r *Router) Table() *Table { return r.table.Load() }

// Routes returns the table's concrete routes sorted by model name. The routes are shared with
// the request path and must not be modified.
func (t *Table) Routes() []*Route {
	return slices.SortedFunc(maps.Values(t.routes), func(a, b *Route) int { return cmp.Compare(a.Model, b.Model) })
}

// Virtuals returns the table's virtual models sorted by name. They are shared with the
// request path and must not be modified.
func (t *Table) Virtuals() []*Virtual {
	return slices.SortedFunc(maps.Values(t.virtual), func(a, b *Virtual) int { return cmp.Compare(a.Name, b.Name) })
}
