// vcsim for the imagepipe tests: govmomi's vCenter simulator with its vAPI (/rest) endpoints,
// built from Debian's golang-github-vmware-govmomi-dev (scripts/vcsim builds it). It listens on
// loopback, prints "URL <url>" and "DATASTORE <id>" once ready, and stops when stdin closes, so
// a test that dies never leaves it running.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/vmware/govmomi/simulator"
	_ "github.com/vmware/govmomi/vapi/simulator"
)

func main() {
	useTLS := flag.Bool("tls", false, "serve https with the simulator's self-signed certificate")
	flag.Parse()

	model := simulator.VPX()
	model.Datastore = 1
	if err := model.Create(); err != nil {
		fmt.Fprintln(os.Stderr, "vcsim:", err)
		os.Exit(2)
	}
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0"}
	model.Service.RegisterEndpoints = true
	if *useTLS {
		model.Service.TLS = new(tls.Config)
	}
	server := model.Service.NewServer()
	ds := simulator.Map.Any("Datastore")

	u := *server.URL
	u.User = nil
	u.Path = ""
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "URL %s\nDATASTORE %s\n", u.String(), ds.Reference().Value)
	out.Flush()

	io.Copy(io.Discard, os.Stdin)
	server.Close()
	model.Remove()
}
