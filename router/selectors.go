package router

// MaxScore selects the highest total score, breaking ties uniformly at random.
type MaxScore struct {
	// IntN returns a uniform int in [0, n); nil means math/rand/v2.
	IntN func(n int) int
}

var _ Selector = (*MaxScore)(nil)

// tieEpsilon treats scores this close as equal, so float noise does not break ties.
const tieEpsilon = 1e-9

// Select implements Selector.
func (m *MaxScore) Select(_ []Candidate, scores []float64) int {
	best, ties := 0, 0
	for i, s := range scores {
		switch {
		case ties == 0 || s > scores[best]+tieEpsilon:
			best, ties = i, 1
		case s >= scores[best]-tieEpsilon:
			ties++
			if randIntN(m.IntN, ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// PowerOfTwo draws two distinct candidates at random and selects the better scored: nearly as
// good as the maximum, and it avoids herding when many replicas act on the same snapshot.
type PowerOfTwo struct {
	IntN func(n int) int
}

var _ Selector = (*PowerOfTwo)(nil)

// Select implements Selector.
func (p *PowerOfTwo) Select(cands []Candidate, scores []float64) int {
	n := len(cands)
	if n == 1 {
		return 0
	}
	a := randIntN(p.IntN, n)
	b := randIntN(p.IntN, n-1)
	if b >= a {
		b++
	}
	if scores[b] > scores[a] {
		return b
	}
	return a
}
