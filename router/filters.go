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
// sent since) of at least MaxQueue, or KV-cache use of at least MaxKV. Endpoints with unknown
// stats pass, since nothing says they are saturated; the in-flight scorer judges them.
type SaturationFilter struct {
	MaxQueue int64   // default 5
	MaxKV    float64 // default 0.8
}

var _ Filter = (*SaturationFilter)(nil)

// Filter implements Filter.
func (f *SaturationFilter) Filter(_ *Request, cands []Candidate) []Candidate {
	out := cands[:0]
	for _, c := range cands {
		if c.Stats != nil && (c.Queue() >= f.MaxQueue || (c.Stats.KVUsage >= 0 && c.Stats.KVUsage >= f.MaxKV)) {
			continue
		}
		out = append(out, c)
	}
	return out
}
