package discovery

import (
	"context"
	"net"
	"slices"
	"strconv"
)

// Source reports the endpoints of one pool as they change.
type Source interface {
	// Run calls update with the complete set of endpoint URLs (sorted, without duplicates)
	// once it is first known and again each time it changes, from one goroutine, until ctx
	// is done. A failed lookup keeps the last set: update is not called. Run returns nil
	// once ctx is done, or an error at once if the source cannot start.
	Run(ctx context.Context, update func(endpoints []string)) error
}

// endpointURL joins a scheme, a host or address and a port into an endpoint URL.
func endpointURL(scheme, host string, port int) string {
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// normalize sorts urls and drops duplicates, in place.
func normalize(urls []string) []string {
	slices.Sort(urls)
	return slices.Compact(urls)
}
