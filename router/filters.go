package router

// FreshFilter drops endpoints whose stats are unknown (never scraped or stale) while at least
// one endpoint has fresh stats, so an endpoint that stopped reporting is not mistaken for an
// idle one. When no endpoint has fresh stats (metrics off, or the scraper is down) it keeps
// them all and scheduling falls back to local counters.
type FreshFilter struct{}

var _ Filter = FreshFilter{}

// Filter implements Filter.
func (FreshFilter) Filter(_ *Request, cands []Candidate) []Candidate {
	out := cands[:0]
	for _, c := range cands {
		if c.Stats != nil {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return cands[:len(cands):len(cands)] // nothing fresh: keep all (cands was not overwritten)
	}
	return out
}

// SaturationFilter drops endpoints that are saturated: a queue (scraped waiting plus requests
// sent since) of at least MaxQueue, or KV-cache use of at least MaxKV while requests are
// already queued there. A full cache alone is not saturation: long contexts fill it in normal
// operation, and the server admits the next request as soon as blocks free, sooner than a
// router-side queue would. Endpoints with unknown stats pass, since nothing says they are
// saturated; the in-flight scorer judges them.
//
// For requests of a shed class it is stricter: it keeps Headroom (a fraction of the endpoint's
// batch capacity, the most requests it was seen running while others waited) free for other classes, so sheddable
// work never takes the last batch slots and critical work arriving under overload finds one.
type SaturationFilter struct {
	MaxQueue int64   // default 5
	MaxKV    float64 // default 0.8
	// Shed names the classes that must leave Headroom free; Headroom is 0..1.
	Shed     map[string]bool
	Headroom float64
}

var _ Filter = (*SaturationFilter)(nil)

// Filter implements Filter.
func (f *SaturationFilter) Filter(req *Request, cands []Candidate) []Candidate {
	reserve := req != nil && f.Headroom > 0 && f.Shed[req.Priority]
	out := cands[:0]
	for _, c := range cands {
		if c.Stats != nil && (c.Queue() >= f.MaxQueue || (c.Queue() > 0 && c.Stats.KVUsage >= 0 && c.Stats.KVUsage >= f.MaxKV)) {
			continue
		}
		if reserve {
			if capacity := c.Endpoint.Latency().MaxRunning; capacity > 0 {
				busy := c.InFlight
				if c.Stats != nil && c.Stats.Running >= 0 {
					busy = max(busy, int64(c.Stats.Running+c.Stats.Waiting)+c.Pending)
				}
				if float64(busy) >= float64(capacity)*(1-f.Headroom) {
					continue
				}
			}
		}
		out = append(out, c)
	}
	return out
}
