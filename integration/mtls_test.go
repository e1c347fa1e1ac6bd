package integration_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/switchyard-ai/switchyard/backends/backendstest"
	"github.com/switchyard-ai/switchyard/gen/inference"
)

// testCA issues certificates for the mTLS test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and key as PEM, for a server (IP SAN 127.0.0.1; usable as a
// client certificate too, as etcd's own gateway needs) or a client (DNS SAN san).
func (ca *testCA) issue(t *testing.T, cn, san string, server bool) (certPEM, keyPEM []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	if server {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.DNSNames, tmpl.ExtKeyUsage = []string{san}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestMTLSIdentity serves the data plane over TLS with optional client certificates: a
// certificate whose SAN is mapped to a tenant is an identity, over HTTPS and gRPC alike; no
// certificate and no key is 401; a certificate from an unknown CA identifies no one.
func TestMTLSIdentity(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "test ca")
	srvCert, srvKey := ca.issue(t, "switchyard", "", true)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	up := backendstest.New(t, "a")
	tensor := tensorSim(t, time.Millisecond, 4)
	yaml := `
server:
  tls: {cert_file: ` + write("srv.pem", srvCert) + `, key_file: ` + write("srv-key.pem", srvKey) + `, client_ca_file: ` + write("ca.pem", ca.pem) + `, client_auth: optional}
auth:
  mtls: [{san: batch.acme.internal, tenant: acme}]
pools:
  - {name: p, metrics: none, endpoints: [` + up.URL + `]}
  - {name: t, protocol: kserve, metrics: none, endpoints: [grpc://` + tensor.Host + `]}
models:
  - {name: m, pool: p}
  - {name: tensor, pool: t, target_model: sim-tensor}
`
	s, _ := startRouter(t, yaml)
	base := "https://" + s.Addr()
	clientCert := func(ca *testCA, san string) tls.Certificate {
		c, k := ca.issue(t, "batch-job", san, false)
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	do := func(certs ...tls.Certificate) (*http.Response, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, Certificates: certs}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		return (&http.Client{Transport: tr}).Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","messages":[]}`))
	}
	resp, err := do(clientCert(ca, "batch.acme.internal"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("mapped certificate: %d over %s", resp.StatusCode, resp.Proto)
	}
	resp, err = do()
	if err != nil {
		t.Fatal(err)
	}
	openAIError(t, resp, 401, "invalid_api_key")
	resp, err = do(clientCert(ca, "unmapped.example"))
	if err != nil {
		t.Fatal(err)
	}
	openAIError(t, resp, 401, "invalid_api_key")
	// A certificate from another CA is not one the server asked for: the client withholds it
	// (or the handshake fails), and the caller is not identified.
	if resp, err := do(clientCert(newTestCA(t, "rogue ca"), "batch.acme.internal")); err == nil {
		openAIError(t, resp, 401, "invalid_api_key")
	}

	// gRPC over TLS with the client certificate.
	creds := credentials.NewTLS(&tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{clientCert(ca, "batch.acme.internal")}})
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := inference.NewGRPCInferenceServiceClient(conn).ModelInfer(context.Background(), addRequest("tensor")); err != nil {
		t.Errorf("gRPC with a mapped certificate: %v", err)
	}
}
