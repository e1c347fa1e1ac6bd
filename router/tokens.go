package router

import "unicode/utf8"

// EstimateTokens estimates how many tokens a byte-pair-encoding tokenizer of the
// cl100k/o200k family produces for text, in one pass with no allocation. Routing needs the
// order of magnitude of a prompt (a 50-token question versus a 20,000-token document), not
// the exact count, and a real tokenizer costs far more than the routing decision it informs.
//
// The rules mirror how such tokenizers split text: a word of letters with its leading space is
// one token, or more when long (one more per 10 letters); digits group in threes;
// punctuation merges in pairs; a run of newlines or of extra spaces is one token;
// CJK characters are about one token each and other non-ASCII letters about half. The error
// against cl100k_base and o200k_base on the sample corpus in testdata/tokens is measured by
// TestEstimateTokensAccuracy and stated in docs/routing.md.
//
// A text longer than 64 KiB is estimated from 32 windows of 512 bytes spread evenly over it,
// scaled to its whole length, so that the cost stays that of 16 KiB however long a prompt
// grows; TestEstimateTokensSampled bounds what sampling adds to the error.
func EstimateTokens(text []byte) int {
	if len(text) <= sampleAbove {
		return estimateAll(text)
	}
	stride := len(text) / sampleWindows
	tokens, sampled := 0, 0
	for k := range sampleWindows {
		w := text[wordStart(text, k*stride):wordStart(text, k*stride+sampleBytes)]
		tokens += estimateAll(w)
		sampled += len(w)
	}
	if sampled == 0 {
		return estimateAll(text)
	}
	return int(float64(tokens) * float64(len(text)) / float64(sampled))
}

// Sampling of long texts: texts over sampleAbove bytes are estimated from sampleWindows
// windows of about sampleBytes.
const (
	sampleAbove   = 64 << 10
	sampleWindows = 32
	sampleBytes   = 512
)

// wordStart moves i forward to where a window may start or end without cutting a word or a
// UTF-8 sequence: just past the next space or newline within 32 bytes, else the next rune
// start.
func wordStart(text []byte, i int) int {
	for j := i; j < len(text) && j < i+32; j++ {
		if c := text[j]; c == ' ' || c == '\n' {
			return j + 1
		}
	}
	for i < len(text) && !utf8.RuneStart(text[i]) {
		i++
	}
	return i
}

// estimateAll is EstimateTokens over every byte of text.
func estimateAll(text []byte) int {
	tokens := 0
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case isLetter(c):
			j := i + 1
			for j < len(text) && isLetter(text[j]) {
				j++
			}
			tokens += 1 + (j-i-1)/10
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(text) && text[j] >= '0' && text[j] <= '9' {
				j++
			}
			tokens += (j - i + 2) / 3
			i = j
		case c == ' ':
			// One space joins the word after it; a longer run is a token of its own.
			j := i + 1
			for j < len(text) && text[j] == ' ' {
				j++
			}
			if j-i > 1 {
				tokens += 1 + (j-i)/16
			}
			i = j
		case c == '\n' || c == '\r' || c == '\t':
			j := i + 1
			for j < len(text) && (text[j] == '\n' || text[j] == '\r' || text[j] == '\t') {
				j++
			}
			tokens++
			i = j
		case c < utf8.RuneSelf:
			// Punctuation runs such as `":"` or `});` merge in pairs.
			j := i + 1
			for j < len(text) && isPunct(text[j]) {
				j++
			}
			tokens += (j - i + 1) / 2
			i = j
		default:
			r, size := utf8.DecodeRune(text[i:])
			i += size
			if isCJK(r) {
				tokens++
				continue
			}
			// Other scripts: count letters in pairs, as tokenizers merge common bigrams.
			j := i
			n := 1
			for j < len(text) && text[j] >= utf8.RuneSelf {
				r2, s2 := utf8.DecodeRune(text[j:])
				if isCJK(r2) {
					break
				}
				j += s2
				n++
			}
			tokens += (n + 1) / 2
			i = j
		}
	}
	return tokens
}

func isPunct(c byte) bool {
	return c > ' ' && c < utf8.RuneSelf && !isLetter(c) && (c < '0' || c > '9')
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// isCJK reports whether r is in the Han, Kana, Hangul or CJK punctuation blocks.
func isCJK(r rune) bool {
	return (r >= 0x2E80 && r <= 0x9FFF) || (r >= 0xAC00 && r <= 0xD7AF) || (r >= 0xF900 && r <= 0xFAFF) || (r >= 0xFF00 && r <= 0xFFEF)
}
