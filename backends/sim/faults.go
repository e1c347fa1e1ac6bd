package sim

import (
	"math/rand/v2"
	"sync"
)

// faults draws per-request fault decisions from one source seeded with
// Config.Seed, so a run with the same seed and request order injects the
// same faults. It is safe for concurrent use.
type faults struct {
	mu  sync.Mutex
	rng *rand.Rand
}

func newFaults(seed int64) *faults {
	return &faults{rng: rand.New(rand.NewPCG(uint64(seed), 0x5eed))}
}

// hit draws one decision with probability rate; a zero rate draws nothing,
// so enabling one fault does not shift the draws of another.
func (f *faults) hit(rate float64) bool {
	if rate <= 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64() < rate
}
