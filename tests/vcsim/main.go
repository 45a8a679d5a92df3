// vcsim for the imagepipe tests: govmomi's vCenter simulator with its vAPI (/rest) endpoints,
// built from Debian's golang-github-vmware-govmomi-dev (scripts/vcsim builds it). It listens on
// loopback, prints "URL <url>", "RESOURCE_POOL <id>" and "DATASTORE <id>" once ready, and stops
// when stdin closes, so a test that dies never leaves it running.
//
// Two additions in front of the simulator's own handlers:
//   - -delay D answers every HTTP request only after D, a vCenter far away (the import
//     benchmark's slow sites);
//   - the /rest/vcenter/vm power and list calls of vSphere 6.5+ (govmomi 0.24's simulator only
//     has DELETE /rest/vcenter/vm/{vm}), carried out through the simulator's own SOAP API, so
//     the deploy check can power its VM on, watch it run, and a test can list what is left.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	_ "github.com/vmware/govmomi/vapi/simulator"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// vmAPI serves the /rest/vcenter/vm calls the simulator lacks, through a SOAP client.
type vmAPI struct {
	client *govmomi.Client
	next   http.Handler
}

func reply(w http.ResponseWriter, status int, value interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]interface{}{"value": value})
}

func notFound(w http.ResponseWriter, id string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(map[string]interface{}{
		"type": "com.vmware.vapi.std.errors.not_found",
		"value": map[string]interface{}{"messages": []map[string]string{{
			"id": "vapi.std.errors.not_found", "default_message": "no virtual machine " + id,
		}}},
	})
}

var powerStates = map[types.VirtualMachinePowerState]string{
	types.VirtualMachinePowerStatePoweredOn:  "POWERED_ON",
	types.VirtualMachinePowerStatePoweredOff: "POWERED_OFF",
	types.VirtualMachinePowerStateSuspended:  "SUSPENDED",
}

func (a *vmAPI) vms(ctx context.Context) ([]mo.VirtualMachine, error) {
	v, err := view.NewManager(a.client.Client).CreateContainerView(ctx, a.client.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = v.Destroy(ctx) }()
	var vms []mo.VirtualMachine
	err = v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name", "runtime.powerState"}, &vms)
	return vms, err
}

func (a *vmAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "/rest/vcenter/vm"
	if !strings.HasPrefix(r.URL.Path, prefix) || r.Header.Get("vmware-api-session-id") == "" {
		a.next.ServeHTTP(w, r)
		return
	}
	ctx := r.Context()
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, prefix), "/"), "/")
	vms, err := a.vms(ctx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// GET /rest/vcenter/vm[?filter.names=…]: the list, as vSphere's VM.list summary.
	if parts[0] == "" && r.Method == http.MethodGet {
		names := r.URL.Query()["filter.names"]
		list := []map[string]string{}
		for _, vm := range vms {
			if len(names) > 0 && !contains(names, vm.Name) {
				continue
			}
			list = append(list, map[string]string{
				"vm": vm.Reference().Value, "name": vm.Name, "power_state": powerStates[vm.Runtime.PowerState],
			})
		}
		reply(w, http.StatusOK, list)
		return
	}
	var found *mo.VirtualMachine
	for i := range vms {
		if vms[i].Reference().Value == parts[0] {
			found = &vms[i]
		}
	}
	if len(parts) == 1 {
		if found == nil {
			notFound(w, parts[0])
			return
		}
		if r.Method == http.MethodDelete {
			// vCenter refuses to delete a running VM; the simulator's own handler would ignore
			// the refusal, so the check happens here.
			if found.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]interface{}{
					"type": "com.vmware.vapi.std.errors.resource_in_use",
					"value": map[string]interface{}{"messages": []map[string]string{{
						"default_message": "the virtual machine is powered on",
					}}},
				})
				return
			}
			a.next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodGet {
			reply(w, http.StatusOK, map[string]string{"name": found.Name, "power_state": powerStates[found.Runtime.PowerState]})
			return
		}
	}
	if len(parts) >= 2 && parts[1] == "power" {
		if found == nil {
			notFound(w, parts[0])
			return
		}
		vm := object.NewVirtualMachine(a.client.Client, found.Reference())
		switch {
		case len(parts) == 2 && r.Method == http.MethodGet:
			reply(w, http.StatusOK, map[string]string{"state": powerStates[found.Runtime.PowerState]})
			return
		case len(parts) == 3 && r.Method == http.MethodPost && (parts[2] == "start" || parts[2] == "stop"):
			var task *object.Task
			if parts[2] == "start" {
				task, err = vm.PowerOn(ctx)
			} else {
				task, err = vm.PowerOff(ctx)
			}
			if err == nil {
				err = task.Wait(ctx)
			}
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]interface{}{
					"type": "com.vmware.vapi.std.errors.already_in_desired_state",
					"value": map[string]interface{}{"messages": []map[string]string{{"default_message": err.Error()}}},
				})
				return
			}
			w.WriteHeader(http.StatusOK)
			return
		}
	}
	a.next.ServeHTTP(w, r)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// delayed answers each request after `d`.
type delayed struct {
	d    time.Duration
	next http.Handler
}

func (h delayed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(h.d)
	h.next.ServeHTTP(w, r)
}

func main() {
	useTLS := flag.Bool("tls", false, "serve https with the simulator's self-signed certificate")
	delay := flag.Duration("delay", 0, "answer every HTTP request after this long")
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
	pool := simulator.Map.Any("ResourcePool")

	client, err := govmomi.NewClient(context.Background(), server.URL, true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vcsim: SOAP client:", err)
		os.Exit(2)
	}
	// No request has reached the server yet (its URL is printed below), so its handler can still
	// be wrapped.
	var handler http.Handler = &vmAPI{client: client, next: server.Config.Handler}
	if *delay > 0 {
		handler = delayed{d: *delay, next: handler}
	}
	server.Config.Handler = handler

	u := *server.URL
	u.User = nil
	u.Path = ""
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "URL %s\nRESOURCE_POOL %s\nDATASTORE %s\n", u.String(), pool.Reference().Value, ds.Reference().Value)
	out.Flush()

	io.Copy(io.Discard, os.Stdin)
	server.Close()
	model.Remove()
}
