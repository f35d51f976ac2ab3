// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// Defaults for Config.
const (
	// DefaultRequestTimeout bounds a request whose context has no deadline.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultDialTimeout bounds how long a client tries to reach its
	// endpoints before it reports them unreachable (etcdctl's default).
	DefaultDialTimeout = 2 * time.Second
)

// Config configures a Client (New). Fill Endpoints; leave the rest zero for
// the defaults.
type Config struct {
	// Endpoints are nodes of the cluster, HOST:PORT (or gRPC targets:
	// dns:///HOST:PORT, unix:PATH), at least one. The
	// client asks them where ranges are, and sends a request to one of
	// them when it cannot route it itself; it learns the other nodes from
	// their answers.
	Endpoints []string
	// DialTimeout bounds how long a request tries to reach a node: when
	// none of the nodes it tried (its endpoints, or the nodes of its
	// range's replicas) could be connected to for this long, and none was
	// reached before, it fails with ErrUnavailable (and, a write,
	// ErrNotApplied: nothing was sent) and each node's dial error (connection refused, say) instead of trying
	// until its deadline. Default DefaultDialTimeout (2 s). Repeated
	// endpoints count once.
	DialTimeout time.Duration
	// TLS secures the client's connections to a secure cluster: the CA to
	// trust and the client certificate to present. LoadClientTLS makes it
	// from a certs directory. A node's name is checked against the address
	// dialled unless TLS.ServerName is set. Default nil: plaintext, for an
	// insecure cluster. The client does not modify it.
	TLS *tls.Config
	// ReadFrom is the replica that serves reads that do not choose one
	// (ReadOptions.Replica, ScanOptions.Replica): Leader (the default),
	// Follower or Nearest. Every choice is linearizable. Follower and
	// Nearest reads go first to the node of the first endpoint when it
	// holds a replica of the range.
	ReadFrom Replica
	// Zone is the client's zone: with Nearest, replicas on stores whose
	// "zone" label has this value serve its reads first.
	Zone string
}

// LoadClientTLS returns the TLS configuration of user's client
// certificate in a certs directory made by `flotilla cert`: certsDir/ca.crt
// and certsDir/client.USER.crt and .key. Use it as Config.TLS.
func LoadClientTLS(certsDir, user string) (*tls.Config, error) {
	c, err := rpc.LoadClientTLS(certsDir, user)
	if err != nil {
		return nil, fmt.Errorf("flotilla: %w", err)
	}
	return c, nil
}

// EnsureDefaults fills unset fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadFrom == ReplicaDefault {
		c.ReadFrom = Leader
	}
}

// Validate reports every problem at once. It expects EnsureDefaults to have
// run.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("no endpoints"))
	}
	for _, ep := range c.Endpoints {
		if _, _, err := net.SplitHostPort(ep); err != nil && !grpcTarget(ep) {
			errs = append(errs, fmt.Errorf("endpoint %q: want HOST:PORT (or a gRPC target such as dns:///HOST:PORT): %v", ep, err))
		}
	}
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("DialTimeout %v is negative", c.DialTimeout))
	}
	if c.ReadFrom < ReplicaDefault || c.ReadFrom > Nearest {
		errs = append(errs, fmt.Errorf("read-from choice %v is not Leader, Follower or Nearest", c.ReadFrom))
	}
	if c.Zone != "" {
		if _, err := flotillapb.ParseConstraint("zone=" + c.Zone); err != nil {
			errs = append(errs, fmt.Errorf("zone %q is not a label value: %v", c.Zone, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: client config: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	return nil
}

// grpcTarget reports whether ep names a gRPC target by scheme
// (dns:///host:port, unix:path, passthrough:///host:port), which gRPC
// resolves itself.
func grpcTarget(ep string) bool {
	scheme, rest, ok := strings.Cut(ep, ":")
	if !ok || rest == "" {
		return false
	}
	switch scheme {
	case "dns", "unix", "unix-abstract", "passthrough", "ipv4", "ipv6":
		return true
	}
	return false
}
