package integration_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"

	"github.com/switchyard-ai/switchyard/backends/sim"
)

// audioRouter serves model "whisper", renamed upstream to the simulators' model "m", so a
// transcription only succeeds if the router rewrote the form's model field.
func audioRouter(t *testing.T, extra string, sims ...*simServer) string {
	var b strings.Builder
	b.WriteString("pools:\n  - name: p\n    metrics: none\n    endpoints:\n")
	for _, s := range sims {
		b.WriteString("      - " + s.URL + "\n")
	}
	b.WriteString("models:\n  - {name: whisper, pool: p, target_model: m}\n" + extra)
	_, base := startRouter(t, b.String())
	return base
}

// noise is n deterministic pseudo-random bytes, produced as they are read.
type noise struct {
	left  int64
	state uint64
}

func (r *noise) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.left)
	for i := range n {
		r.state = r.state*6364136223846793005 + 1442695040888963407
		p[i] = byte(r.state >> 56)
	}
	r.left -= n
	return int(n), nil
}

func digestOf(t *testing.T, r io.Reader) string {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestAudioTranscriptionAndTranslationWithSDKs(t *testing.T) {
	base := audioRouter(t, "", startSim(t, sim.Config{Model: "m"}), startSim(t, sim.Config{Model: "m"}))
	ctx := context.Background()
	data, _ := io.ReadAll(&noise{left: 3 << 20, state: 7})
	want := digestOf(t, bytes.NewReader(data))

	// openai-go sends the file before the model, so the router must read past the file to
	// route it: the bytes before the model field are spooled and sent on intact.
	var hr *http.Response
	tr, err := newOpenAI(base).Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{
		File: openai.File(bytes.NewReader(data), "speech.wav", "audio/wav"), Model: "whisper",
	}, option.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Text == "" || hr.Header.Get("X-Sim-File-Sha256") != want || hr.Header.Get("X-Sim-File-Bytes") != fmt.Sprint(len(data)) {
		t.Errorf("transcription %q; file arrived as %s bytes, sha %s (want %s)", tr.Text,
			hr.Header.Get("X-Sim-File-Bytes"), hr.Header.Get("X-Sim-File-Sha256"), want)
	}
	if tr.Usage.InputTokens != int64(len(data)/1024) {
		t.Errorf("usage = %+v", tr.Usage)
	}

	path := filepath.Join(t.TempDir(), "speech.mp3")
	if err := os.WriteFile(path, data[:1<<20], 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := newGoOpenAI(base).CreateTranslation(ctx, goopenai.AudioRequest{Model: "whisper", FilePath: path})
	if err != nil {
		t.Fatal(err)
	}
	if res.Text == "" || res.Header().Get("X-Sim-File-Sha256") != digestOf(t, bytes.NewReader(data[:1<<20])) {
		t.Errorf("translation %q, sha %s", res.Text, res.Header().Get("X-Sim-File-Sha256"))
	}

	// Speech comes back as streamed audio bytes.
	speech, err := newOpenAI(base).Audio.Speech.New(ctx, openai.AudioSpeechNewParams{
		Model: "whisper", Input: "Hello there, router.", Voice: openai.AudioSpeechNewParamsVoiceUnion{OfString: openai.String("alloy")},
	})
	if err != nil {
		t.Fatal(err)
	}
	audio, err := io.ReadAll(speech.Body)
	speech.Body.Close()
	if err != nil || len(audio) == 0 || len(audio)%4096 != 0 || speech.Header.Get("Content-Type") != "audio/mpeg" {
		t.Errorf("speech: %v, %d bytes of %s", err, len(audio), speech.Header.Get("Content-Type"))
	}
}

// upload streams a multipart transcription request of size bytes of noise, the model field
// before or after the file, through a pipe: the test holds no more of it than a pipe write.
func upload(t *testing.T, base string, size int64, modelFirst bool) *http.Response {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		writeModel := func() { mw.WriteField("model", "whisper") }
		if modelFirst {
			writeModel()
		}
		fw, _ := mw.CreateFormFile("file", "long.wav")
		if _, err := io.Copy(fw, &noise{left: size, state: 11}); err != nil {
			pw.CloseWithError(err)
			return
		}
		if !modelFirst {
			writeModel()
		}
		pw.CloseWithError(mw.Close())
	}()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/audio/transcriptions", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestAudioUploadMemoryStaysFlat uploads a 64 MiB file, far larger than any buffer on the
// way, with the model field first (streamed straight through) and last (the file spooled to
// disk while the router looks for the model). The process's allocations during the upload and
// its peak heap growth must stay far below the file's size: the router, like the simulator
// behind it and the client in front, never holds the file.
func TestAudioUploadMemoryStaysFlat(t *testing.T) {
	const size = 64 << 20
	base := audioRouter(t, "server: {max_body_bytes: 134217728}\n", startSim(t, sim.Config{Model: "m"}))
	want := digestOf(t, &noise{left: size, state: 11})
	for _, modelFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("model first %v", modelFirst), func(t *testing.T) {
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				var m runtime.MemStats
				for {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					runtime.ReadMemStats(&m)
					if m.HeapAlloc > peak.Load() {
						peak.Store(m.HeapAlloc)
					}
				}
			}()
			resp := upload(t, base, size, modelFirst)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			close(stop)
			<-sampled
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if resp.StatusCode != 200 || resp.Header.Get("X-Sim-File-Sha256") != want {
				t.Fatalf("upload: %d %s, sha %s", resp.StatusCode, b, resp.Header.Get("X-Sim-File-Sha256"))
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			grew := int64(peak.Load()) - int64(before.HeapAlloc)
			t.Logf("%d MiB upload: %.1f MiB allocated in all, heap peak %+.1f MiB", size>>20,
				float64(allocated)/(1<<20), float64(grew)/(1<<20))
			if allocated > size/8 || grew > size/8 {
				t.Errorf("memory grew with the upload: %d bytes allocated, heap peak %+d bytes, for a %d-byte file", allocated, grew, size)
			}
		})
	}
}

func TestAudioUploadErrors(t *testing.T) {
	up := startSim(t, sim.Config{Model: "m"})
	base := audioRouter(t, "server: {max_body_bytes: 1048576}\n", up)
	post := func(ct string, body io.Reader) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/audio/transcriptions", body)
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	form := func(fields map[string]string, file int64) (string, *bytes.Buffer) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, _ := mw.CreateFormFile("file", "a.wav")
		io.Copy(fw, &noise{left: file})
		for k, v := range fields {
			mw.WriteField(k, v)
		}
		mw.Close()
		return mw.FormDataContentType(), &b
	}
	ct, body := form(nil, 1000)
	openAIError(t, post(ct, body), 400, "invalid_request") // no model field
	openAIError(t, post("application/json", strings.NewReader(`{"model":"whisper"}`)), 400, "invalid_request")
	ct, body = form(map[string]string{"model": "nope"}, 1000)
	openAIError(t, post(ct, body), 404, "model_not_found")
	ct, body = form(map[string]string{"model": "whisper"}, 2<<20)
	openAIError(t, post(ct, io.MultiReader(body)), 413, "request_too_large") // chunked: no early Content-Length check
	if n := up.sim.Stats().Requests; n != 0 {
		t.Errorf("refused uploads reached the model server: %d", n)
	}
}
