package faultproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-ai/switchyard/internal/faultproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// answerServer answers every read with 100 bytes.
func answerServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if _, err := c.Write(bytes.Repeat([]byte("x"), 100)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name     string
		fault    faultproxy.Fault
		want     int  // bytes the client reads before the connection ends or stalls
		reset    bool // the connection ends in a reset
		stalls   bool // the client's read times out instead
		minDelay time.Duration
	}{
		{name: "pass", fault: faultproxy.Fault{}, want: 100, stalls: true},
		{name: "reset before first byte", fault: faultproxy.Fault{Kind: faultproxy.ResetBeforeFirstByte}, want: 0, reset: true},
		{name: "reset mid-stream", fault: faultproxy.Fault{Kind: faultproxy.ResetMidStream, After: 40}, want: 40, reset: true},
		{name: "stall", fault: faultproxy.Fault{Kind: faultproxy.Stall, After: 30}, want: 30, stalls: true},
		{name: "delay", fault: faultproxy.Fault{Kind: faultproxy.Delay, Delay: 100 * time.Millisecond}, want: 100, stalls: true, minDelay: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := faultproxy.New(answerServer(t))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			p.Set(tt.fault)
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			c.Write([]byte("ask"))
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			got, err := io.ReadAll(c)
			var ne net.Error
			timedOut := errors.As(err, &ne) && ne.Timeout()
			if len(got) != tt.want || timedOut != tt.stalls || errors.Is(err, syscall.ECONNRESET) != tt.reset {
				t.Fatalf("read %d bytes, err %v; want %d bytes, stall %v, reset %v", len(got), err, tt.want, tt.stalls, tt.reset)
			}
			if tt.minDelay > 0 && time.Since(start) < tt.minDelay {
				t.Errorf("answered after %v, want at least %v", time.Since(start), tt.minDelay)
			}
			if tt.fault.Kind == faultproxy.Stall { // lifting the stall releases the rest
				p.Set(faultproxy.Fault{})
				c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				rest, _ := io.ReadAll(c)
				if len(rest) != 70 {
					t.Errorf("after the stall: %d more bytes, want 70", len(rest))
				}
			}
		})
	}
}

func TestOpenCountsConnections(t *testing.T) {
	p, err := faultproxy.New(answerServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ask"))
	io.ReadFull(c, make([]byte, 100))
	if p.Open() != 1 || p.Accepted() != 1 {
		t.Errorf("open %d accepted %d, want 1 and 1", p.Open(), p.Accepted())
	}
	c.Close()
	for deadline := time.Now().Add(2 * time.Second); p.Open() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a closed connection is still counted open")
		}
	}
}
