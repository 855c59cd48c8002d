package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/flashstock/flashstock/internal/clustertls"
)

// runTLS makes the cluster's certificates:
//
//	node tls ca   --out DIR [--days 1825] [--force]
//	node tls cert --ca DIR --name NODE --host IP|DNS[,...] --out DIR [--days 365] [--force]
//
// ca writes DIR/ca.crt and DIR/ca.key (0600): an ECDSA P-256 CA that signs
// node certificates only. cert writes DIR/NODE.crt and DIR/NODE.key
// (0600): the node's certificate, for server and client authentication,
// naming NODE and every --host. Existing files are kept unless --force.
func runTLS(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("node tls: want ca or cert (node tls ca --out DIR; node tls cert --ca DIR --name n1 --host IP --out DIR)")}
	}
	fs := flag.NewFlagSet("node tls "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("out", "", "directory to write to (created 0700)")
	force := fs.Bool("force", false, "replace existing files")
	var days int
	switch args[0] {
	case "ca":
		fs.IntVar(&days, "days", int(clustertls.CAValidity/(24*time.Hour)), "validity in days")
		name := fs.String("name", "Flashstock cluster CA", "the CA's common name")
		if err := parse(fs, args[1:], stdout); err != nil {
			return err
		}
		if *out == "" {
			return usageError{errors.New("node tls ca: --out DIR is required")}
		}
		ca, err := clustertls.NewCA(*name, time.Duration(days)*24*time.Hour, time.Now())
		if err != nil {
			return err
		}
		certPath, keyPath, err := clustertls.WriteFiles(*out, "ca", ca, *force)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "CA certificate %s (give it to every node as --tls-ca)\nCA key %s (keep it off the nodes)\n", certPath, keyPath)
		return nil
	case "cert":
		fs.IntVar(&days, "days", int(clustertls.CertValidity/(24*time.Hour)), "validity in days")
		caDir := fs.String("ca", "", "directory holding ca.crt and ca.key")
		name := fs.String("name", "", "node name (its --name)")
		var hosts hostList
		fs.Var(&hosts, "host", "IP address or DNS name peers reach the node at; comma-separated or repeated")
		if err := parse(fs, args[1:], stdout); err != nil {
			return err
		}
		if *caDir == "" || *name == "" || *out == "" {
			return usageError{errors.New("node tls cert: --ca DIR, --name NODE and --out DIR are required")}
		}
		ca, err := clustertls.ReadCA(*caDir)
		if err != nil {
			return err
		}
		c, err := clustertls.Issue(ca, *name, hosts, time.Duration(days)*24*time.Hour, time.Now())
		if err != nil {
			return usageError{err}
		}
		certPath, keyPath, err := clustertls.WriteFiles(*out, *name, c, *force)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "node certificate %s (--tls-cert)\nnode key %s (--tls-key)\n", certPath, keyPath)
		return nil
	}
	return usageError{fmt.Errorf("node tls %s: want ca or cert", args[0])}
}

func parse(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	return parseSub(fs, fs.Name()+" [flags]", args, stdout)
}

// errHelp is returned once -h printed a usage: run ends with status 0.
var errHelp = errors.New("help shown")

// parseSub parses a subcommand's flags. -h prints the usage line and the
// flags to stdout and returns errHelp.
func parseSub(fs *flag.FlagSet, usage string, args []string, stdout io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: %s\n\nflags:\n", usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return errHelp
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// hostList is a repeatable, comma-separated flag.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

func (h *hostList) Set(v string) error {
	*h = append(*h, splitList(v)...)
	return nil
}

// runGossipKey makes a gossip encryption key (32 random bytes, base64):
// into --out (mode 0600, never overwritten) or on standard output.
func runGossipKey(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("node gossip-key", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("out", "", "write the key to this file (0600) instead of standard output")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return err
	}
	line := base64.StdEncoding.EncodeToString(k[:]) + "\n"
	if *out == "" {
		_, err := io.WriteString(stdout, line)
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(line)
	return errors.Join(werr, f.Close())
}
