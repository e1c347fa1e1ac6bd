package sim

import (
	"math"
	"strings"
	"unicode"
)

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
	maxPiece  = 4 // bytes per token when a word is chopped
)

// fnvString folds s into the FNV-1a hash h.
func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

// tokenize splits text into token ids: a run of letters and digits becomes
// pieces of at most maxPiece bytes, any other non-space rune is a token of
// its own, and whitespace only separates. A token's id is the FNV-1a hash of
// its text, so equal text always yields equal ids.
func tokenize(text string) []uint32 {
	var ids []uint32
	emit := func(s string) { ids = append(ids, uint32(fnvString(fnvOffset, s))) }
	word := -1 // start of the current letter/digit run
	flush := func(end int) {
		for ; word >= 0 && word < end; word += maxPiece {
			emit(text[word:min(word+maxPiece, end)])
		}
		word = -1
	}
	for i, r := range text {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if word < 0 {
				word = i
			}
		case unicode.IsSpace(r):
			flush(i)
		default:
			flush(i)
			emit(string(r))
		}
	}
	flush(len(text))
	return ids
}

// chatMessage is one rendered turn of a chat prompt.
type chatMessage struct{ role, content string }

// renderChat turns messages into one prompt. Each turn ends in a newline, a
// token boundary, so a grown conversation keeps its old prompt as a prefix.
func renderChat(msgs []chatMessage) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m.role)
		b.WriteString(": ")
		b.WriteString(m.content)
		b.WriteString("\n")
	}
	return b.String()
}

// blockHashes returns the chained hash of every full block of tokens: block
// i's hash covers block i−1's hash and its own tokens, so it names the whole
// prefix ending at block i.
func blockHashes(tokens []uint32, blockSize int) []uint64 {
	hashes := make([]uint64, len(tokens)/blockSize)
	h := uint64(fnvOffset)
	for i := range hashes {
		for _, t := range tokens[i*blockSize : (i+1)*blockSize] {
			h = (h ^ uint64(t)) * fnvPrime
		}
		hashes[i] = h
	}
	return hashes
}

// splitmix advances a SplitMix64 state and returns its next output.
func splitmix(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// vocabulary is the generated words; each is at most maxPiece letters, so
// every generated word is exactly one token.
const vocabulary = `the a of to and in is it that for on with as was at by
	this from or an be are but not have they we you can all one so if will out up
	more what time when new some like into then than only also just over most very
	many each much well good work make data path node load fast`

// textGen produces the deterministic output tokens of one request.
type textGen struct {
	state uint64
	words []string
}

// newTextGen seeds a generator over words from the server seed and the
// prompt's tokens.
func newTextGen(seed int64, prompt []uint32, words []string) *textGen {
	h := uint64(fnvOffset) ^ uint64(seed)
	for _, t := range prompt {
		h = (h ^ uint64(t)) * fnvPrime
	}
	return &textGen{state: h, words: words}
}

// next returns the next output token's text, a word with a leading space.
func (g *textGen) next() string { return " " + g.words[splitmix(&g.state)%uint64(len(g.words))] }

// embed returns a deterministic unit vector of length dim for input.
func embed(seed int64, input string, dim int) []float64 {
	state := fnvString(fnvOffset^uint64(seed), input)
	v := make([]float64, dim)
	var norm float64
	for i := range v {
		v[i] = float64(int64(splitmix(&state))) / math.MaxInt64
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	for i := range v {
		v[i] /= norm
	}
	return v
}
