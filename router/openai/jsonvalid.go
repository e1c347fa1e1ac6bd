package openai

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Errors validJSON reports.
var (
	errInvalidJSON = errors.New("openai: invalid JSON")
	errJSONDepth   = errors.New("openai: JSON nested too deeply")
)

// validJSON checks that b holds exactly one JSON value, as encoding/json.Valid does (strings
// are not checked for valid UTF-8, just as encoding/json does not), with objects and arrays
// nested at most maxDepth deep. It walks iteratively, checking string contents many bytes at
// a time (see stringEnd), and allocates only when nesting passes 64 levels.
func validJSON(b []byte, maxDepth int) error {
	var small [64]byte
	stack := small[:0] // '{' or '[' for each open container
	i := skipSpace(b, 0)
	for {
		// A value starts at i.
		if i >= len(b) {
			return errInvalidJSON
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(stack) >= maxDepth {
				return errJSONDepth
			}
			stack = append(stack, c)
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				var ok bool
				if i, ok = objectKey(b, i); !ok {
					return errInvalidJSON
				}
			}
			continue
		case c == '"':
			var ok bool
			if i, ok = skipString(b, i); !ok {
				return errInvalidJSON
			}
		case c == 't':
			if !hasLiteral(b, i, "true") {
				return errInvalidJSON
			}
			i += 4
		case c == 'f':
			if !hasLiteral(b, i, "false") {
				return errInvalidJSON
			}
			i += 5
		case c == 'n':
			if !hasLiteral(b, i, "null") {
				return errInvalidJSON
			}
			i += 4
		case c == '-' || c >= '0' && c <= '9':
			var ok bool
			if i, ok = skipNumber(b, i); !ok {
				return errInvalidJSON
			}
		default:
			return errInvalidJSON
		}
		// A value ended at i: close containers, or move to the next element.
		for {
			i = skipSpace(b, i)
			if len(stack) == 0 {
				if i != len(b) {
					return errInvalidJSON
				}
				return nil
			}
			if i >= len(b) {
				return errInvalidJSON
			}
			top := stack[len(stack)-1]
			if b[i] == top+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return errInvalidJSON
			}
			i = skipSpace(b, i+1)
			if top == '{' {
				var ok bool
				if i, ok = objectKey(b, i); !ok {
					return errInvalidJSON
				}
			}
			break
		}
	}
}

// objectKey consumes `"key" :` and the space after it, returning where the value starts.
func objectKey(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i, ok := skipString(b, i)
	if !ok {
		return i, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, false
	}
	return skipSpace(b, i+1), true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// Word-at-a-time byte tests (each lane of a uint64 is one byte).
const (
	lanes01 = 0x0101010101010101
	lanes80 = 0x8080808080808080
)

// controlBytes has the high bit of each of the eight bytes of v set that is a control
// character (below 0x20), and possibly of bytes above such a one; it is zero when there is
// none.
func controlBytes(v uint64) uint64 { return (v - lanes01*0x20) &^ v & lanes80 }

// stringEnd returns the index of the closing quote of the string whose contents start at i,
// checking escapes and rejecting control characters; ok is false for a malformed or
// unterminated string. In a long string, bytes.IndexByte finds the next quote and the next
// backslash before it, and the text between is checked for control characters 32 bytes at a
// time.
func stringEnd(b []byte, i int) (end int, ok bool) {
	// Most strings, keys above all, end within a few bytes: a byte loop finds their end
	// sooner than a call would.
	for n := min(len(b), i+16); i < n; i++ {
		if c := b[i]; c == '"' {
			return i, true
		} else if c == '\\' || c < 0x20 {
			break
		}
	}
	q := -1 // the first quote at or after i, once found
	for {
		if q < i {
			if q = bytes.IndexByte(b[i:], '"'); q < 0 {
				return len(b), false
			}
			q += i
		}
		plain := q // the end of the text before the next escape or the quote
		if e := bytes.IndexByte(b[i:q], '\\'); e >= 0 {
			plain = i + e
		}
		for ; i+32 <= plain; i += 32 {
			w := b[i : i+32 : i+32]
			v0, v1 := binary.LittleEndian.Uint64(w), binary.LittleEndian.Uint64(w[8:])
			v2, v3 := binary.LittleEndian.Uint64(w[16:]), binary.LittleEndian.Uint64(w[24:])
			if ((v0-lanes01*0x20)&^v0|(v1-lanes01*0x20)&^v1|(v2-lanes01*0x20)&^v2|(v3-lanes01*0x20)&^v3)&lanes80 != 0 {
				break
			}
		}
		for i < plain && b[i] >= 0x20 {
			i++
		}
		if i < plain {
			return i, false // a control character
		}
		if i == q {
			return q, true
		}
		// An escape; it may take the quote at q, which the next turn then searches past.
		if i+1 >= len(b) {
			return i, false
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if len(b)-i < 6 || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
				return i, false
			}
			i += 6
		default:
			return i, false
		}
	}
}

// skipString consumes the string starting with the quote at i and returns the index after it.
func skipString(b []byte, i int) (int, bool) {
	end, ok := stringEnd(b, i+1)
	return end + 1, ok
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipNumber consumes a number by RFC 8259's grammar:
// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func skipNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
