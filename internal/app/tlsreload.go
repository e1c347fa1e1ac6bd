package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// defaultCertPoll is how often the data-plane certificate files are checked for rotation.
// Kubernetes takes up to a minute or so to project a renewed Secret into a pod, so a few
// seconds more add nothing noticeable, and two stat calls per poll cost nothing.
const defaultCertPoll = 5 * time.Second

// WithCertPollInterval sets how often the data plane's certificate and key files are checked
// for rotation. Default 5s.
func WithCertPollInterval(d time.Duration) StartOption {
	return func(o *startOptions) { o.certPoll = d }
}

// certReloader hands the data-plane listener its certificate and swaps in a new pair when
// the files change on disk, as they do when cert-manager renews a certificate or a Kubernetes
// Secret volume is updated. Handshakes read the current pair through an atomic pointer and
// never touch the files; only Run writes the pointer. A new pair that does not load (a key
// that does not match, a half-written file) is logged and the previous pair keeps serving.
type certReloader struct {
	certFile, keyFile string
	every             time.Duration
	log               *slog.Logger
	cert              atomic.Pointer[tls.Certificate]
	seen              fileStamp // owned by Run
}

// fileStamp is what a poll compares to notice a rotation: each file's modification time and
// size, as seen through any symlinks (a Secret volume swaps a symlink to a new directory, which
// gives both files new times at once).
type fileStamp struct {
	certMod, keyMod   int64
	certSize, keySize int64
}

// newCertReloader loads the pair once; a pair that does not load is an error, so the router
// never starts without a certificate.
func newCertReloader(certFile, keyFile string, every time.Duration, log *slog.Logger) (*certReloader, error) {
	if every <= 0 {
		every = defaultCertPoll
	}
	r := &certReloader{certFile: certFile, keyFile: keyFile, every: every, log: log}
	// Stamp before loading: a change in between is then loaded again at the first poll
	// rather than missed.
	st, err := r.stamp()
	if err == nil {
		err = r.load()
	}
	if err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	r.seen = st
	return r, nil
}

// GetCertificate is the listener's tls.Config.GetCertificate. It does not block.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Run polls the files until ctx is done.
func (r *certReloader) Run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.poll()
		}
	}
}

// poll loads the pair again when either file changed since the last poll. A failure is
// logged once per change of the files, not at every poll.
func (r *certReloader) poll() {
	st, err := r.stamp()
	if st == r.seen {
		return // unchanged, or still missing since the last poll logged it
	}
	r.seen = st
	if err == nil {
		err = r.load()
	}
	if err != nil {
		r.log.Error("data-plane certificate not reloaded; the previous one keeps serving",
			"cert_file", r.certFile, "key_file", r.keyFile, "error", err)
		return
	}
	leaf := r.cert.Load().Leaf
	r.log.Info("data-plane certificate reloaded", "cert_file", r.certFile,
		"subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
}

func (r *certReloader) load() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	if c.Leaf == nil {
		return errors.New("no certificate in " + r.certFile)
	}
	r.cert.Store(&c)
	return nil
}

// stamp is the files' current stamp; on error it is the zero stamp, which a later success
// always differs from.
func (r *certReloader) stamp() (fileStamp, error) {
	c, err := os.Stat(r.certFile)
	if err != nil {
		return fileStamp{}, err
	}
	k, err := os.Stat(r.keyFile)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{certMod: c.ModTime().UnixNano(), keyMod: k.ModTime().UnixNano(),
		certSize: c.Size(), keySize: k.Size()}, nil
}
