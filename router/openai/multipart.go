package openai

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
)

// maxFieldBytes bounds the value of the form field a multipart upload is routed by.
const maxFieldBytes = 1024

// errFieldMissing reports a multipart body that ended without the field routing needs.
var errFieldMissing = errors.New("openai: multipart field missing")

// formScan is a multipart body read up to the end of one field's value, ready to be sent on
// byte for byte: head holds every byte before the value, value is the field's value, and the
// rest follows from after, then from the body itself.
type formScan struct {
	head  *spool
	value []byte
	after []byte
	rest  io.Reader
}

// body returns the upload to send upstream with the field's value replaced by value, and its
// length given the original length (-1 when unknown).
func (f *formScan) body(value []byte, origSize int64) (io.Reader, int64) {
	size := int64(-1)
	if origSize >= 0 {
		size = origSize - int64(len(f.value)) + int64(len(value))
	}
	return io.MultiReader(f.head.reader(), bytes.NewReader(value), bytes.NewReader(f.after), f.rest), size
}

// scanForm reads a multipart/form-data body from br, whose parts are separated by boundary,
// until it has the value of the part named field. Parts before it (an uploaded file, when
// the client sends it first) go to head, which keeps them in memory only up to a small bound
// and on disk beyond it. It fails with errFieldMissing when the body ends first, and with
// the body's own error when reading fails.
func scanForm(br *bufio.Reader, boundary, field string, head *spool) (*formScan, error) {
	delim := []byte("--" + boundary)
	atLineStart := true
	inHeaders, want := false, false
	var value []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			err = nil // a long line of file content: pass it on in pieces
		}
		if err == io.EOF && len(line) > 0 {
			err = nil
		}
		if err != nil {
			if err == io.EOF {
				return nil, errFieldMissing
			}
			return nil, err
		}
		complete := line[len(line)-1] == '\n'
		isDelim := atLineStart && bytes.HasPrefix(line, delim)
		atLineStart = complete
		switch {
		case isDelim && want:
			// The CRLF before a delimiter belongs to the delimiter, not to the value.
			value = bytes.TrimSuffix(value, []byte("\r\n"))
			value = bytes.TrimSuffix(value, []byte("\n"))
			after := append(make([]byte, 0, 2+len(line)), "\r\n"...)
			return &formScan{head: head, value: value, after: append(after, line...), rest: br}, nil
		case isDelim:
			if bytes.HasPrefix(line[len(delim):], []byte("--")) {
				return nil, errFieldMissing // the closing delimiter
			}
			inHeaders = true
		case inHeaders && isBlankLine(line):
			inHeaders = false
			if want {
				if _, err := head.Write(line); err != nil {
					return nil, err
				}
				continue
			}
		case inHeaders:
			if name, ok := formName(line); ok && name == field {
				want = true
			}
		case want:
			if value = append(value, line...); len(value) > maxFieldBytes+2 {
				return nil, fmt.Errorf("openai: multipart field %s is longer than %d bytes", field, maxFieldBytes)
			}
			continue
		}
		if _, err := head.Write(line); err != nil {
			return nil, err
		}
	}
}

func isBlankLine(line []byte) bool { return string(line) == "\r\n" || string(line) == "\n" }

// formName returns the field name of a part's Content-Disposition header line.
func formName(line []byte) (string, bool) {
	k, v, ok := bytes.Cut(line, []byte(":"))
	if !ok || !bytes.EqualFold(bytes.TrimSpace(k), []byte("Content-Disposition")) {
		return "", false
	}
	disp, params, err := mime.ParseMediaType(string(bytes.TrimSpace(v)))
	if err != nil || disp != "form-data" {
		return "", false
	}
	name, ok := params["name"]
	return name, ok
}

// spool holds the bytes of an upload read ahead of its routing field: the first memBytes in
// memory, the rest in an unlinked temporary file, so that a large file sent before the field
// costs disk, not memory. It is not safe for concurrent use; Close releases the file.
type spool struct {
	dir   string
	limit int64 // most bytes it takes; past that Write fails with errSpoolFull
	mem   []byte
	file  *os.File
	n     int64
}

// memBytes is how much of an upload a spool keeps in memory.
const memBytes = 64 << 10

var errSpoolFull = errors.New("openai: upload larger than the body limit")

func newSpool(dir string, limit int64) *spool { return &spool{dir: dir, limit: limit} }

func (s *spool) Write(p []byte) (int, error) {
	if s.n+int64(len(p)) > s.limit {
		return 0, errSpoolFull
	}
	s.n += int64(len(p))
	if s.file == nil && len(s.mem)+len(p) <= memBytes {
		s.mem = append(s.mem, p...)
		return len(p), nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "switchyard-upload-*")
		if err != nil {
			return 0, fmt.Errorf("openai: spooling upload: %w", err)
		}
		os.Remove(f.Name()) // the open file lives on, and nothing is left behind if the process dies
		s.file = f
	}
	return s.file.Write(p)
}

// reader returns the spooled bytes from the start. Call it once, after the last Write.
func (s *spool) reader() io.Reader {
	if s.file == nil {
		return bytes.NewReader(s.mem)
	}
	return io.MultiReader(bytes.NewReader(s.mem), io.NewSectionReader(s.file, 0, s.n-int64(len(s.mem))))
}

// Close releases the spool's file, if it has one.
func (s *spool) Close() error {
	if s.file == nil {
		return nil
	}
	return s.file.Close()
}
