package backends

import "crypto/tls"

// ClientTLS builds a client TLS configuration from o, as upstream clients use it: TLS 1.2 or
// later, roots from CAFile (default the system's), an optional client certificate.
func ClientTLS(o *TLSOptions) (*tls.Config, error) { return buildTLS(o) }
