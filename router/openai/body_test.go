package openai

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
	"github.com/switchyard-ai/switchyard/router"
)

func TestHoldBodySizes(t *testing.T) {
	for _, tt := range []struct {
		n        int64
		capacity int // 0: not pooled
	}{
		{-1, 0}, {1000, 0}, {pooledBodyBytes - 1, 0},
		{pooledBodyBytes, 2 * pooledBodyBytes}, // room for one byte more
		{pooledBodyBytes - 1 + pooledBodyBytes, 2 * pooledBodyBytes},
		{256 << 10, 512 << 10},
		{maxPooledBodyBytes - 1, maxPooledBodyBytes},
		{maxPooledBodyBytes, 0},
	} {
		b := holdBody(tt.n)
		switch {
		case tt.capacity == 0 && b != nil:
			t.Errorf("holdBody(%d) pooled", tt.n)
		case tt.capacity != 0 && (b == nil || cap(b.buf) != tt.capacity || len(b.buf) != 0):
			t.Errorf("holdBody(%d) = %v, want an empty buffer of %d", tt.n, b, tt.capacity)
		case b != nil:
			b.release()
		}
	}
}

// TestHeldBodyOutlivesEarlyAnswer sends large bodies to an upstream that answers as soon as it
// has a request's headers and reads the body only later, while other requests come and go.
// An upstream client that let the handler return while it was still writing a body would send
// the reused buffer's next contents as that request's bytes. Every byte the upstream gets
// must be its request's own.
func TestHeldBodyOutlivesEarlyAnswer(t *testing.T) {
	const bodyBytes = 6 << 20 // past the socket buffers (the sender's grow to 4 MiB at most), so the write blocks
	bodyFor := func(id string) []byte {
		return []byte(`{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat(id+" ", bodyBytes/(len(id)+1)) + `"}]}`)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wrong, checked atomic.Int32
	var conns sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetReadBuffer(64 << 10) // no autotuning: unread, the body stops the writer
			conns.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
					time.Sleep(60 * time.Millisecond) // the answer is out long before the body is read
					got, _ := io.ReadAll(req.Body)
					want := bodyFor(req.Header.Get("X-Test-Id"))
					checked.Add(1)
					if len(got) > len(want) || !bytes.Equal(got, want[:len(got)]) {
						wrong.Add(1)
					}
					if len(got) < len(want) {
						return // the client gave up on the write and closed the connection
					}
				}
			})
		}
	}()
	ep, _ := backends.NewEndpoint("http://" + ln.Addr().String())
	c, _ := backends.NewHTTPClient(backends.HTTPOptions{})
	defer c.Close()
	rt := router.New()
	rt.Swap(router.NewTable([]*router.Route{{Model: "m", TargetModel: "m", Scheduler: router.NewScheduler(backends.NewPool("p", []*backends.Endpoint{ep}, c, backends.MetricsNone), nil)}}))
	srv := &http.Server{Handler: NewHandler(rt, WithLogger(discardLogger())), ReadHeaderTimeout: 10 * time.Second}
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(front)
	defer srv.Close()
	client := &http.Client{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 5 {
				id := fmt.Sprintf("request-%d-%d", w, i)
				req, _ := http.NewRequest("POST", "http://"+front.Addr().String()+"/v1/chat/completions", bytes.NewReader(bodyFor(id)))
				req.Header.Set("X-Test-Id", id)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("%s: status %d", id, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	c.Close()
	srv.Close()
	ln.Close()
	conns.Wait()
	if checked.Load() == 0 || wrong.Load() != 0 {
		t.Errorf("%d of %d bodies reached the upstream with bytes not their own", wrong.Load(), checked.Load())
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
