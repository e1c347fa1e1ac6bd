package app_test

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
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-ai/switchyard/backends/backendstest"
	"github.com/switchyard-ai/switchyard/internal/app"
	"github.com/switchyard-ai/switchyard/internal/config"
)

// certAuthority issues server certificates for 127.0.0.1 in tests.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCertAuthority(t *testing.T) *certAuthority {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &certAuthority{cert: cert, key: key, pool: pool}
}

// issue returns a PEM certificate and key named cn, valid for 127.0.0.1.
func (ca *certAuthority) issue(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// secretVolume lays files out as the kubelet projects a Secret: tls.crt and tls.key are
// symlinks through ..data, itself a symlink to a timestamped directory, and an update swaps
// ..data in one rename.
type secretVolume struct {
	dir string
	gen int
}

func (v *secretVolume) update(t *testing.T, certPEM, keyPEM []byte) {
	t.Helper()
	v.gen++
	ts := fmt.Sprintf("..v%d", v.gen)
	os.Mkdir(filepath.Join(v.dir, ts), 0o755)
	os.WriteFile(filepath.Join(v.dir, ts, "tls.crt"), certPEM, 0o600)
	os.WriteFile(filepath.Join(v.dir, ts, "tls.key"), keyPEM, 0o600)
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if v.gen == 1 {
		os.Symlink("..data/tls.crt", filepath.Join(v.dir, "tls.crt"))
		os.Symlink("..data/tls.key", filepath.Join(v.dir, "tls.key"))
	}
}

// tlsConfig serves model m from upstream over a TLS data plane whose pair is tls.crt and
// tls.key in dir.
func tlsConfig(t *testing.T, dir, upstream string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
server:
  tls: {cert_file: %s, key_file: %s}
pools:
  - {name: p, endpoints: [%s], metrics: none}
models:
  - {name: m, pool: p}
`, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), upstream)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// lockedBuffer is a log sink that tests read while the server writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// handshaker sends requests one after another, each on a new connection, and records the
// certificate name each handshake saw and any request that failed.
type handshaker struct {
	mu     sync.Mutex
	names  []string
	failed []string
}

func (h *handshaker) run(ctx context.Context, client *http.Client, url string) {
	for ctx.Err() == nil {
		resp, err := client.Post(url, "application/json", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			if ctx.Err() == nil {
				h.fail(err.Error())
			}
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			h.fail(resp.Status)
		}
		h.mu.Lock()
		h.names = append(h.names, resp.TLS.PeerCertificates[0].Subject.CommonName)
		h.mu.Unlock()
	}
}

func (h *handshaker) fail(s string) {
	h.mu.Lock()
	h.failed = append(h.failed, s)
	h.mu.Unlock()
}

// seenSince reports the names seen from the n-th request on, and how many requests there were.
func (h *handshaker) seenSince(n int) (map[string]int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := map[string]int{}
	for _, name := range h.names[min(n, len(h.names)):] {
		m[name]++
	}
	return m, len(h.names)
}

// TestDataPlaneCertRotation rotates the data plane's certificate on disk, as a Secret volume
// update does, while clients over HTTP/1.1 and HTTP/2 keep opening connections: new
// handshakes see the new certificate, no request fails, and a broken pair (a key that does
// not match) is refused with an error while the previous certificate keeps serving.
func TestDataPlaneCertRotation(t *testing.T) {
	up := backendstest.New(t, "a")
	ca := newCertAuthority(t)
	vol := &secretVolume{dir: t.TempDir()}
	certA, keyA := ca.issue(t, "cert-a")
	vol.update(t, certA, keyA)
	cfg := tlsConfig(t, vol.dir, up.URL)
	logs := &lockedBuffer{}
	srv, err := app.Start(context.Background(), cfg, app.WithLogOutput(logs), app.WithCertPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	clients := map[string]*handshaker{}
	for _, proto := range []string{"http/1.1", "h2"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, DisableKeepAlives: true,
			ForceAttemptHTTP2: proto == "h2"}
		defer tr.CloseIdleConnections()
		h := &handshaker{}
		clients[proto] = h
		wg.Go(func() { h.run(ctx, &http.Client{Transport: tr}, "https://"+srv.Addr()+"/v1/chat/completions") })
	}
	// waitFor returns once every client has seen name on a new connection.
	waitFor := func(name string) {
		t.Helper()
		for proto, h := range clients {
			eventually(t, proto+" client sees "+name, func() bool { seen, _ := h.seenSince(0); return seen[name] > 0 })
		}
	}
	marks := func() map[string]int {
		m := map[string]int{}
		for proto, h := range clients {
			_, m[proto] = h.seenSince(0)
		}
		return m
	}

	waitFor("cert-a")
	certB, keyB := ca.issue(t, "cert-b")
	vol.update(t, certB, keyB)
	waitFor("cert-b")
	afterB := marks()

	// A broken pair: a certificate with another certificate's key.
	brokenCert, _ := ca.issue(t, "cert-c")
	_, otherKey := ca.issue(t, "other")
	vol.update(t, brokenCert, otherKey)
	eventually(t, "the broken pair is refused", func() bool { return logs.count("certificate not reloaded") > 0 })
	// Handshakes after the failed reload, each at least one full poll later.
	beforeFix := marks()
	for proto, h := range clients {
		eventually(t, proto+" client makes more requests", func() bool { _, n := h.seenSince(0); return n >= beforeFix[proto]+5 })
	}
	for proto, h := range clients {
		seen, n := h.seenSince(afterB[proto])
		if seen["cert-b"] != n-afterB[proto] {
			t.Errorf("%s: after the broken pair, handshakes saw %v; want cert-b only", proto, seen)
		}
	}

	certC, keyC := ca.issue(t, "cert-c")
	vol.update(t, certC, keyC)
	waitFor("cert-c")
	stop()
	wg.Wait()

	for proto, h := range clients {
		if len(h.failed) > 0 {
			t.Errorf("%s: %d requests failed, first: %s", proto, len(h.failed), h.failed[0])
		}
		// Names only move forward: no handshake saw an older certificate after a newer one.
		for i := 1; i < len(h.names); i++ {
			if h.names[i] < h.names[i-1] {
				t.Errorf("%s: request %d saw %s after %s", proto, i, h.names[i], h.names[i-1])
				break
			}
		}
	}
	if n := logs.count("data-plane certificate reloaded"); n != 2 {
		t.Errorf("%d reloads logged, want 2 (cert-b and cert-c)", n)
	}
	if n := logs.count("certificate not reloaded"); n != 1 {
		t.Errorf("broken pair logged %d times, want once", n)
	}
}

// eventually fails the test unless cond turns true within 20s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

// TestDataPlaneCertMustLoad refuses to start without a usable certificate.
func TestDataPlaneCertMustLoad(t *testing.T) {
	ca := newCertAuthority(t)
	dir := t.TempDir()
	certPEM, _ := ca.issue(t, "a")
	_, otherKey := ca.issue(t, "b")
	os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "tls.key"), otherKey, 0o600)
	cfg := tlsConfig(t, dir, "http://127.0.0.1:1")
	srv, err := app.Start(context.Background(), cfg, app.WithLogOutput(io.Discard))
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("started with a key that does not match its certificate")
	}
	if !strings.Contains(err.Error(), "server.tls") {
		t.Errorf("error %q does not name server.tls", err)
	}
}
