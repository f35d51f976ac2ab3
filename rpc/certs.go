// Copyright 2026 The Flotilla Authors. All rights reserved.

package rpc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// A certs directory holds what a node or a client needs for mutual TLS,
// named as CockroachDB names them:
//
//	ca.crt              the cluster's CA certificate (every node and client)
//	ca.key              the CA's key (only where certificates are made; keep
//	                    it off the nodes, see --ca-key)
//	node.crt, node.key  a node's certificate: CommonName "node", valid for
//	                    the node's host names and IPs, usable as server and
//	                    client (nodes dial each other)
//	client.NAME.crt     a client's certificate for user NAME: CommonName
//	client.NAME.key     NAME, usable as client only
//
// Keys are ECDSA P-256, written PKCS #8 in PEM with mode 0600.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
	// NodeCommonName is the CommonName of every node certificate: what
	// tells a node from a client.
	NodeCommonName = "node"
	// RootUser is the client user the CLI uses by default.
	RootUser = "root"
)

// Default certificate lifetimes (CockroachDB's).
const (
	DefaultCALifetime   = 10 * 366 * 24 * time.Hour
	DefaultCertLifetime = 5 * 366 * 24 * time.Hour
)

// ClientCertFiles returns the names of user's certificate and key in a
// certs directory.
func ClientCertFiles(user string) (cert, key string) {
	return "client." + user + ".crt", "client." + user + ".key"
}

// hostPattern matches a DNS name: dot-separated labels of letters, digits
// and '-' (not first or last), or a wildcard first label.
var hostPattern = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

var userPattern = regexp.MustCompile(`^[a-z0-9_][a-z0-9_.-]{0,62}$`)

// CheckUser returns what is wrong with a client user name, or nil. A name
// is 1 to 63 of a-z, 0-9, '_', '.' and '-' (not first), and not "node".
func CheckUser(user string) error {
	switch {
	case user == NodeCommonName:
		return fmt.Errorf("user name %q is reserved for node certificates", user)
	case !userPattern.MatchString(user):
		return fmt.Errorf("user name %q: want 1 to 63 of a-z, 0-9, '_', '.', '-' (not first)", user)
	}
	return nil
}

// CertRequest says where CreateCA, CreateNodeCert and CreateClientCert
// write and with what.
type CertRequest struct {
	// CertsDir is the directory to write to (created if missing). Required.
	CertsDir string
	// CAKey is the CA key's file. Default CertsDir/ca.key.
	CAKey string
	// Lifetime is how long the certificate is valid. Default
	// DefaultCALifetime for a CA, DefaultCertLifetime for the others.
	Lifetime time.Duration
	// Overwrite replaces existing files; without it, an existing
	// certificate or key is an error.
	Overwrite bool
	// Now is the time the certificate is made at. Default time.Now();
	// tests set it.
	Now time.Time
}

func (r *CertRequest) ensureDefaults(lifetime time.Duration) error {
	if r.CertsDir == "" {
		return errors.New("no certs directory given")
	}
	if r.CAKey == "" {
		r.CAKey = filepath.Join(r.CertsDir, CAKeyFile)
	}
	if r.Lifetime == 0 {
		r.Lifetime = lifetime
	}
	if r.Lifetime < 0 {
		return fmt.Errorf("lifetime %v is negative", r.Lifetime)
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	if err := os.MkdirAll(r.CertsDir, 0o700); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Dir(r.CAKey), 0o700)
}

// CreateCA makes a new CA: CertsDir/ca.crt and its key at CAKey.
func CreateCA(r CertRequest) error {
	if err := r.ensureDefaults(DefaultCALifetime); err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	certPath := filepath.Join(r.CertsDir, CACertFile)
	if err := r.checkFree(certPath, r.CAKey); err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	tmpl, err := template(r, "Flotilla CA")
	if err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	if err := r.writePair(certPath, der, r.CAKey, key); err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	return nil
}

// CreateNodeCert makes CertsDir/node.crt and node.key, signed by the CA,
// for the given hosts (IP addresses or DNS names; at least one): the names
// peers and clients dial the node by.
func CreateNodeCert(r CertRequest, hosts []string) error {
	if len(hosts) == 0 {
		return errors.New("create node certificate: no host given: list the names and IPs the node is reached at")
	}
	if err := r.ensureDefaults(DefaultCertLifetime); err != nil {
		return fmt.Errorf("create node certificate: %w", err)
	}
	tmpl, err := template(r, NodeCommonName)
	if err != nil {
		return fmt.Errorf("create node certificate: %w", err)
	}
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if !hostPattern.MatchString(h) {
			return fmt.Errorf("create node certificate: host %q is neither an IP address nor a DNS name (give hosts without ports)", h)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if err := r.sign(tmpl, NodeCertFile, NodeKeyFile); err != nil {
		return fmt.Errorf("create node certificate: %w", err)
	}
	return nil
}

// CreateClientCert makes CertsDir/client.USER.crt and .key, signed by the
// CA, for a client user.
func CreateClientCert(r CertRequest, user string) error {
	if err := CheckUser(user); err != nil {
		return fmt.Errorf("create client certificate: %w", err)
	}
	if err := r.ensureDefaults(DefaultCertLifetime); err != nil {
		return fmt.Errorf("create client certificate: %w", err)
	}
	tmpl, err := template(r, user)
	if err != nil {
		return fmt.Errorf("create client certificate: %w", err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	certFile, keyFile := ClientCertFiles(user)
	if err := r.sign(tmpl, certFile, keyFile); err != nil {
		return fmt.Errorf("create client certificate: %w", err)
	}
	return nil
}

// sign signs tmpl with the CA and writes it with a new key to certFile
// and keyFile in CertsDir.
func (r *CertRequest) sign(tmpl *x509.Certificate, certFile, keyFile string) error {
	certPath, keyPath := filepath.Join(r.CertsDir, certFile), filepath.Join(r.CertsDir, keyFile)
	if err := r.checkFree(certPath, keyPath); err != nil {
		return err
	}
	ca, caKey, err := loadCA(filepath.Join(r.CertsDir, CACertFile), r.CAKey)
	if err != nil {
		return err
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter // a certificate cannot outlive its CA
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	return r.writePair(certPath, der, keyPath, key)
}

// writePair writes a certificate and its key. Each file is written to a
// temporary file first and then moved into place: without Overwrite by a
// link that fails if the file exists (so two runs at once cannot mix
// their files), with Overwrite by a rename; the key goes first. A crash
// between the two (or a node started between them) can still pair a new
// key with the old certificate when overwriting: stop the node that uses
// the files while they are replaced.
func (r *CertRequest) writePair(certPath string, der []byte, keyPath string, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	keyTmp, err := writeTemp(keyPath, "PRIVATE KEY", keyDER, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(keyTmp)
	certTmp, err := writeTemp(certPath, "CERTIFICATE", der, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(certTmp)
	place := os.Link
	if r.Overwrite {
		place = os.Rename
	}
	if err := place(keyTmp, keyPath); err != nil {
		return err
	}
	if err := place(certTmp, certPath); err != nil {
		if !r.Overwrite {
			_ = os.Remove(keyPath) // ours: the link succeeded
		}
		return err
	}
	return syncDir(filepath.Dir(certPath), filepath.Dir(keyPath))
}

func syncDir(dirs ...string) error {
	for _, dir := range dirs {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		err = d.Sync()
		_ = d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// checkFree fails if a path exists and r does not overwrite.
func (r *CertRequest) checkFree(paths ...string) error {
	if r.Overwrite {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s already exists (overwrite it with --overwrite)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func template(r CertRequest, commonName string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"Flotilla"}, CommonName: commonName},
		// An hour back, for clocks a little behind this one.
		NotBefore: r.Now.Add(-time.Hour),
		NotAfter:  r.Now.Add(r.Lifetime),
	}, nil
}

func loadCA(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certs, err := ReadCerts(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w (make one with: flotilla cert create-ca)", err)
	}
	pemKey, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w (give it with --ca-key)", err)
	}
	block, _ := pem.Decode(pemKey)
	if block == nil {
		return nil, nil, fmt.Errorf("CA key %s: no PEM block", keyPath)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key %s: %w", keyPath, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("CA key %s: not an ECDSA key", keyPath)
	}
	// ca.crt may hold several CAs while one is rotated out; the key picks
	// the one that signs.
	for _, c := range certs {
		if pub, ok := c.PublicKey.(*ecdsa.PublicKey); ok && pub.Equal(&key.PublicKey) {
			return c, key, nil
		}
	}
	return nil, nil, fmt.Errorf("CA key %s belongs to no certificate in %s", keyPath, certPath)
}

// ReadCerts reads every certificate of a PEM file (ca.crt may hold several
// while a CA is rotated).
func ReadCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no certificate in it", path)
	}
	return certs, nil
}

// writeTemp writes one PEM block to a new temporary file beside path,
// synced, and returns its name.
func writeTemp(path, typ string, der []byte, mode os.FileMode) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return "", err
	}
	err = tmp.Chmod(mode)
	if err == nil {
		err = pem.Encode(tmp, &pem.Block{Type: typ, Bytes: der})
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}
