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
func EstimateTokens(text []byte) int {
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
