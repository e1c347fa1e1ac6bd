package backends_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends"
)

// certs writes a CA, a server certificate for 127.0.0.1 and a client certificate into dir.
func certs(t *testing.T, dir string) (serverCert tls.Certificate, caPool *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(name string, usage x509.ExtKeyUsage, ip bool) (tls.Certificate, []byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c, certPEM, keyPEM
	}
	serverCert, _, _ = issue("server", x509.ExtKeyUsageServerAuth, true)
	_, clientPEM, clientKey := issue("client", x509.ExtKeyUsageClientAuth, false)
	os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	os.WriteFile(filepath.Join(dir, "client.pem"), clientPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "client-key.pem"), clientKey, 0o600)
	caPool = x509.NewCertPool()
	caPool.AddCert(ca)
	return serverCert, caPool
}

func TestHTTPClientMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCert, caPool := certs(t, dir)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: caPool}
	srv.StartTLS()
	defer srv.Close()
	ep, err := backends.NewEndpoint(srv.URL)
	if err != nil {
		t.Fatal(err)
	}

	c, err := backends.NewHTTPClient(backends.HTTPOptions{TLS: &backends.TLSOptions{
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	status, body, err := c.Get(context.Background(), ep, "/", 1024)
	if err != nil || status != 200 || string(body) != "client" {
		t.Fatalf("with client certificate: %d %q %v", status, body, err)
	}

	noCert, _ := backends.NewHTTPClient(backends.HTTPOptions{TLS: &backends.TLSOptions{CAFile: filepath.Join(dir, "ca.pem")}})
	defer noCert.Close()
	if _, _, err := noCert.Get(context.Background(), ep, "/", 1024); err == nil {
		t.Error("server accepted a client without a certificate")
	}
	untrusted, _ := backends.NewHTTPClient(backends.HTTPOptions{TLS: &backends.TLSOptions{}})
	defer untrusted.Close()
	if _, _, err := untrusted.Get(context.Background(), ep, "/", 1024); err == nil {
		t.Error("client trusted a server certificate from an unknown CA")
	}
	if _, err := backends.NewHTTPClient(backends.HTTPOptions{TLS: &backends.TLSOptions{CAFile: filepath.Join(dir, "missing.pem")}}); err == nil {
		t.Error("missing CA file accepted")
	}
}

func TestHTTPClientErrorsClassified(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	ep, _ := backends.NewEndpoint("http://" + addr)
	c, _ := backends.NewHTTPClient(backends.HTTPOptions{FirstByteTimeout: 100 * time.Millisecond, IdleStreamTimeout: 100 * time.Millisecond})
	defer c.Close()
	if _, err := c.Post(context.Background(), ep, "/", http.Header{}, nil); !errors.Is(err, backends.ErrConnect) {
		t.Errorf("refused: %v, want ErrConnect", err)
	}

	release := make(chan struct{})
	defer close(release)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall" {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	ep, _ = backends.NewEndpoint(hang.URL)
	if _, err := c.Post(context.Background(), ep, "/hang", http.Header{}, nil); !errors.Is(err, backends.ErrFirstByteTimeout) {
		t.Errorf("hang: %v, want ErrFirstByteTimeout", err)
	}
	resp, err := c.Post(context.Background(), ep, "/stall", http.Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 10)); !errors.Is(err, backends.ErrIdleTimeout) {
		t.Errorf("stall: %v, want ErrIdleTimeout", err)
	}
}

func TestHTTPClientPostParts(t *testing.T) {
	got := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- fmt.Sprintf("%d %s", r.ContentLength, b)
	}))
	defer srv.Close()
	ep, _ := backends.NewEndpoint(srv.URL)
	c, _ := backends.NewHTTPClient(backends.HTTPOptions{})
	defer c.Close()
	for _, tt := range []struct {
		parts [][]byte
		want  string
	}{
		{[][]byte{[]byte(`{"a":1}`)}, `7 {"a":1}`},
		{[][]byte{[]byte(`{`), []byte(`"b":2,`), []byte(`"a":1}`)}, `13 {"b":2,"a":1}`},
		{[][]byte{nil, []byte(`{}`), {}}, `2 {}`},
		{[][]byte{[]byte(`["`), bytes.Repeat([]byte("x"), 40<<10), []byte(`"]`)}, fmt.Sprintf(`%d ["%s"]`, 40<<10+4, bytes.Repeat([]byte("x"), 40<<10))},
	} {
		resp, err := c.Post(context.Background(), ep, "/", http.Header{}, tt.parts...)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if s := <-got; s != tt.want {
			t.Errorf("server got %q, want %q", s, tt.want)
		}
	}
}

func TestMetricsFormat(t *testing.T) {
	tests := map[string]backends.MetricsFormat{
		"# HELP x\n# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} 3\n": backends.MetricsVLLM,
		"sglang:num_queue_reqs 1\n":                           backends.MetricsSGLang,
		"process_cpu 1\ntgi_queue_size 0\n":                   backends.MetricsTGI,
		"nv_inference_pending_request_count{model=\"m\"} 0\n": backends.MetricsTriton,
		"go_goroutines 8\n":                                   backends.MetricsNone,
	}
	for text, want := range tests {
		if got := backends.SniffMetricsFormat([]byte(text)); got != want {
			t.Errorf("Sniff(%q) = %s, want %s", text, got, want)
		}
	}
	if _, err := backends.ParseMetricsFormat("prom"); err == nil {
		t.Error("unknown format accepted")
	}
}
