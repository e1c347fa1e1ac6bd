package openai

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"strings"
	"testing"
)

// form builds a multipart body whose parts are written in order.
func form(t *testing.T, parts ...[2]string) (body []byte, boundary string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		if p[0] == "file" {
			fw, _ := mw.CreateFormFile("file", "a.wav")
			fw.Write([]byte(p[1]))
			continue
		}
		mw.WriteField(p[0], p[1])
	}
	mw.Close()
	return b.Bytes(), mw.Boundary()
}

func TestScanForm(t *testing.T) {
	longLine := strings.Repeat("x", 100<<10) // longer than the reader's buffer, no newline
	binary := "--not-a-boundary\r\n\x00\xff\r\n--" + longLine + "\n"
	tests := []struct {
		name    string
		parts   [][2]string
		rename  string
		want    string // the model's value
		wantErr error
	}{
		{"model first", [][2]string{{"model", "whisper-1"}, {"file", binary}}, "", "whisper-1", nil},
		{"file first", [][2]string{{"file", binary}, {"language", "en"}, {"model", "whisper-1"}}, "", "whisper-1", nil},
		{"renamed", [][2]string{{"file", "abc"}, {"model", "w"}, {"prompt", "p"}}, "org/whisper-large-v3", "w", nil},
		{"value with a newline", [][2]string{{"model", "a\nb"}, {"file", "abc"}}, "", "a\nb", nil},
		{"no model", [][2]string{{"file", binary}, {"language", "en"}}, "", "", errFieldMissing},
		{"empty body", nil, "", "", errFieldMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, boundary := form(t, tt.parts...)
			head := newSpool(t.TempDir(), 1<<30)
			defer head.Close()
			f, err := scanForm(bufio.NewReaderSize(bytes.NewReader(body), 4096), boundary, "model", head)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if string(f.value) != tt.want {
				t.Errorf("value = %q, want %q", f.value, tt.want)
			}
			value := f.value
			if tt.rename != "" {
				value = []byte(tt.rename)
			}
			rd, size := f.body(value, int64(len(body)))
			out, err := io.ReadAll(rd)
			if err != nil {
				t.Fatal(err)
			}
			want := body
			if tt.rename != "" {
				want = bytes.Replace(body, []byte("\r\n\r\n"+tt.want+"\r\n"), []byte("\r\n\r\n"+tt.rename+"\r\n"), 1)
			}
			if !bytes.Equal(out, want) || size != int64(len(want)) {
				t.Errorf("forwarded %d bytes (size %d), want the %d bytes of the body with only the model changed", len(out), size, len(want))
			}
			// What is forwarded still parses, with every field intact.
			mr := multipart.NewReader(bytes.NewReader(out), boundary)
			for _, p := range tt.parts {
				part, err := mr.NextPart()
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(part)
				wantVal := p[1]
				if p[0] == "model" && tt.rename != "" {
					wantVal = tt.rename
				}
				if part.FormName() != p[0] || string(got) != wantVal {
					t.Errorf("part %s = %d bytes, want %d", part.FormName(), len(got), len(wantVal))
				}
			}
		})
	}
}

func TestScanFormLimits(t *testing.T) {
	body, boundary := form(t, [2]string{"file", strings.Repeat("a", 200<<10)}, [2]string{"model", "m"})
	head := newSpool(t.TempDir(), 100<<10)
	defer head.Close()
	if _, err := scanForm(bufio.NewReader(bytes.NewReader(body)), boundary, "model", head); !errors.Is(err, errSpoolFull) {
		t.Errorf("over the limit: %v", err)
	}
	body, boundary = form(t, [2]string{"model", strings.Repeat("m", maxFieldBytes+10)})
	head = newSpool(t.TempDir(), 1<<20)
	defer head.Close()
	if _, err := scanForm(bufio.NewReader(bytes.NewReader(body)), boundary, "model", head); err == nil {
		t.Error("an overlong model value was accepted")
	}
	// Past memBytes the spool moves to a file, and reads back the same bytes.
	s := newSpool(t.TempDir(), 1<<30)
	defer s.Close()
	data := bytes.Repeat([]byte("0123456789"), memBytes/5)
	for i := 0; i < len(data); i += 1000 {
		s.Write(data[i:min(i+1000, len(data))])
	}
	if s.file == nil {
		t.Error("spool kept everything in memory")
	}
	if got, _ := io.ReadAll(s.reader()); !bytes.Equal(got, data) {
		t.Errorf("spool read back %d bytes, want %d", len(got), len(data))
	}
}
