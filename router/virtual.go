package router

import (
	"hash/fnv"
	"math/rand/v2"
	"slices"
)

// Rule is one rule of a virtual model: when Match holds for a request, the request goes to
// one of Targets, chosen by weight. A rule without Match is the default and must come last.
type Rule struct {
	Match   *Match
	Targets []*Route
	Weights []int // one per target, positive; nil means equal weights
}

// Match is a rule's condition. Zero fields are not checked; every set field must hold.
type Match struct {
	MinPromptTokens, MaxPromptTokens int      // estimated prompt tokens within [min, max]
	MinOutputTokens, MaxOutputTokens int      // requested output budget within [min, max]
	Priorities                       []string // priority class is one of these
	Tenants                          []string // caller's tenant is one of these
	Headers                          map[string]string
}

func (m *Match) holds(req *Request) bool {
	switch {
	case m.MinPromptTokens > 0 && req.PromptTokens < m.MinPromptTokens,
		m.MaxPromptTokens > 0 && req.PromptTokens > m.MaxPromptTokens,
		m.MinOutputTokens > 0 && req.MaxTokens < m.MinOutputTokens,
		m.MaxOutputTokens > 0 && (req.MaxTokens == 0 || req.MaxTokens > m.MaxOutputTokens),
		len(m.Priorities) > 0 && !slices.Contains(m.Priorities, req.Priority),
		len(m.Tenants) > 0 && !slices.Contains(m.Tenants, req.Identity):
		return false
	}
	for k, v := range m.Headers {
		if req.Header == nil || req.Header.Get(k) != v {
			return false
		}
	}
	return true
}

// Virtual is a model name that resolves, per request, to a concrete route by ordered rules:
// the first rule that matches wins. It routes small prompts to a small model and long or
// critical ones to a large one, splits canary traffic by weight, and so on. The default rule
// is explicit: a request no rule matches is refused.
type Virtual struct {
	Protocol Protocol
	Name     string
	Rules    []Rule
}

// resolve picks the concrete route for req, or nil when no rule matches.
func (v *Virtual) resolve(req *Request) *Route {
	for i := range v.Rules {
		r := &v.Rules[i]
		if r.Match != nil && !r.Match.holds(req) {
			continue
		}
		return r.pick(v.Name, req.SessionKey)
	}
	return nil
}

// pick chooses a target by weight. With a session key the choice is a hash of the key, so one
// conversation stays on one model; without, it is random.
func (r *Rule) pick(name, session string) *Route {
	if len(r.Targets) == 1 {
		return r.Targets[0]
	}
	total := 0
	for i := range r.Targets {
		total += r.weight(i)
	}
	var n int
	if session != "" {
		h := fnv.New64a()
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write([]byte(session))
		n = int(h.Sum64() % uint64(total))
	} else {
		n = rand.IntN(total)
	}
	for i := range r.Targets {
		if n -= r.weight(i); n < 0 {
			return r.Targets[i]
		}
	}
	return r.Targets[len(r.Targets)-1]
}

func (r *Rule) weight(i int) int {
	if r.Weights == nil {
		return 1
	}
	return r.Weights[i]
}
