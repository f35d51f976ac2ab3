// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flotilladb/flotilla/rpc"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// certsDirEnv, if set, is the default of every command's --certs-dir.
const certsDirEnv = "FLOTILLA_CERTS_DIR"

// tlsFlags are the security flags of a command that connects to nodes as
// a client.
type tlsFlags struct {
	certsDir string
	user     string
}

func (f *tlsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.certsDir, "certs-dir", os.Getenv(certsDirEnv),
		"connect securely with the certificates in this directory (ca.crt and client.USER.crt/.key, made by `flotilla cert`); default $"+certsDirEnv+", or none: plaintext, for an insecure cluster")
	fs.StringVar(&f.user, "user", rpc.RootUser, "the client certificate to use from --certs-dir: client.USER.crt")
}

// config returns the client TLS configuration the flags ask for: nil
// without --certs-dir.
func (f *tlsFlags) config(fs *pflag.FlagSet) (*tls.Config, error) {
	if f.certsDir == "" {
		if fs.Changed("user") {
			return nil, errors.New("--user picks a client certificate from --certs-dir: give --certs-dir too")
		}
		return nil, nil
	}
	c, err := rpc.LoadClientTLS(f.certsDir, f.user)
	if err != nil {
		return nil, fmt.Errorf("--certs-dir %s: %w", f.certsDir, err)
	}
	return c, nil
}

func newCertCmd() *cobra.Command {
	var (
		req    rpc.CertRequest
		format string
	)
	cert := &cobra.Command{
		Use:   "cert",
		Short: "Create and list the certificates of a secure cluster",
		Long: `Create the certificates a secure cluster runs on, in a certs directory:

  ca.crt, ca.key        the cluster's certificate authority (keep ca.key off the
                        nodes: --ca-key puts it elsewhere)
  node.crt, node.key    a node's certificate, for the names and IPs it is reached at
  client.NAME.crt/.key  a client's certificate for user NAME (the CLI uses root)

A node started with --certs-dir needs ca.crt, node.crt and node.key; a client
(every kv, cluster and bench command, the Go client's Config.TLS) needs ca.crt and
its client.NAME.crt/.key. See docs/SECURITY.md.`,
		Example: `  flotilla cert create-ca --certs-dir certs --ca-key safe/ca.key
  flotilla cert create-node 127.0.0.1 localhost node1.example.com --certs-dir certs --ca-key safe/ca.key
  flotilla cert create-client root --certs-dir certs --ca-key safe/ca.key
  flotilla cert list --certs-dir certs`,
	}
	cert.PersistentFlags().StringVar(&req.CertsDir, "certs-dir", os.Getenv(certsDirEnv), "the certs directory (created if missing); default $"+certsDirEnv)
	withCA := func(c *cobra.Command, lifetime time.Duration) *cobra.Command {
		c.Flags().StringVar(&req.CAKey, "ca-key", "", "the CA key's file (default: ca.key in --certs-dir)")
		// Default 0: the subcommands share req, so the request picks the
		// default of its kind.
		c.Flags().DurationVar(&req.Lifetime, "lifetime", 0, fmt.Sprintf("how long the certificate is valid (default %v; never past the CA's expiry)", lifetime))
		c.Flags().BoolVar(&req.Overwrite, "overwrite", false, "replace existing files")
		return c
	}
	needDir := func() error {
		if req.CertsDir == "" {
			return errors.New("--certs-dir is required")
		}
		return nil
	}
	cert.AddCommand(
		withCA(&cobra.Command{
			Use:   "create-ca",
			Short: "Create a certificate authority: ca.crt and its key",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := needDir(); err != nil {
					return err
				}
				if err := rpc.CreateCA(req); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "created %s and %s\n", filepath.Join(req.CertsDir, rpc.CACertFile), req.CAKey)
				return nil
			},
		}, rpc.DefaultCALifetime),
		withCA(&cobra.Command{
			Use:   "create-node HOST...",
			Short: "Create a node certificate (node.crt, node.key) for the given host names and IPs",
			Long: `Create node.crt and node.key, signed by the CA, valid for every HOST: the
addresses (without port) that peers and clients reach the node at, such as its
--advertise-addr host, 127.0.0.1 and localhost.`,
			Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, hosts []string) error {
				if err := needDir(); err != nil {
					return err
				}
				if err := rpc.CreateNodeCert(req, hosts); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "created %s and %s for %s\n", filepath.Join(req.CertsDir, rpc.NodeCertFile),
					filepath.Join(req.CertsDir, rpc.NodeKeyFile), strings.Join(hosts, ", "))
				return nil
			},
		}, rpc.DefaultCertLifetime),
		withCA(&cobra.Command{
			Use:   "create-client NAME",
			Short: "Create a client certificate (client.NAME.crt, .key) for user NAME",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := needDir(); err != nil {
					return err
				}
				if err := rpc.CreateClientCert(req, args[0]); err != nil {
					return err
				}
				c, k := rpc.ClientCertFiles(args[0])
				fmt.Fprintf(cmd.OutOrStdout(), "created %s and %s\n", filepath.Join(req.CertsDir, c), filepath.Join(req.CertsDir, k))
				return nil
			},
		}, rpc.DefaultCertLifetime),
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the certificates in the certs directory with their names and expiry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDir(); err != nil {
				return err
			}
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json", format)
			}
			return listCerts(cmd.OutOrStdout(), req.CertsDir, format)
		},
	}
	list.Flags().StringVar(&format, "format", "table", "output format: table or json")
	cert.AddCommand(list)
	return cert
}

type certInfo struct {
	File     string    `json:"file"`
	Usage    string    `json:"usage"`
	Subject  string    `json:"common_name"`
	Hosts    []string  `json:"hosts,omitempty"`
	NotAfter time.Time `json:"expires"`
	Error    string    `json:"error,omitempty"`
}

// listCerts describes every *.crt file of dir.
func listCerts(w io.Writer, dir string, format string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("--certs-dir: %w", err)
		}
	}
	slices.Sort(files)
	var infos []certInfo
	for _, f := range files {
		info := certInfo{File: filepath.Base(f)}
		certs, err := rpc.ReadCerts(f)
		if err != nil {
			info.Error = err.Error()
			infos = append(infos, info)
			continue
		}
		// ca.crt may hold several CAs while one is rotated: list each.
		for _, c := range certs {
			infos = append(infos, describeCert(info.File, c))
		}
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if infos == nil {
			infos = []certInfo{}
		}
		return enc.Encode(infos)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tUSAGE\tNAME\tHOSTS\tEXPIRES")
	for _, i := range infos {
		if i.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\terror: %s\n", i.File, i.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", i.File, i.Usage, i.Subject, orDash(strings.Join(i.Hosts, ",")), i.NotAfter.Format(time.DateOnly))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func describeCert(file string, c *x509.Certificate) certInfo {
	info := certInfo{File: file, Subject: c.Subject.CommonName, NotAfter: c.NotAfter}
	switch {
	case c.IsCA:
		info.Usage = "ca"
	case c.Subject.CommonName == rpc.NodeCommonName && slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth):
		info.Usage = "node"
	default:
		info.Usage = "client"
	}
	info.Hosts = append(info.Hosts, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		info.Hosts = append(info.Hosts, ip.String())
	}
	return info
}
