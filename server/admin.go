// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"

	"github.com/VictoriaMetrics/metrics"
	"github.com/flotilladb/flotilla/rpc"
	"google.golang.org/protobuf/encoding/protojson"
)

// adminHandler serves the node's admin HTTP endpoints:
//
//	/metrics       Prometheus text: the store's, raft's, transport's and the process's metrics
//	/health        200 with {"status":"ok"} when the node is a running member, else 503;
//	               503 with {"status":"alarm","alarms":["NOSPACE"]} while its disk is
//	               short of space, unless ?exclude=NOSPACE
//	/status        JSON: the node, the nodes it knows, and its replicas with descriptor,
//	               leader, term, applied index, statistics and data hash
//	               (?hash=false skips the hash, which reads every range's data; on a
//	               secure node the hash needs a client certificate, and is
//	               skipped by default without one); on the
//	               placement group's leader also the driver's view: stores with the
//	               time since their last heartbeat, operators, balance scores
//	/debug/pprof/  Go's profiler; on a secure node only with a client
//	               certificate or Config.EnablePprof (pprofGuard)
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if !n.enter() {
			http.Error(w, "node is stopping", http.StatusServiceUnavailable)
			return
		}
		defer n.exit()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		n.metrics.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		host, _, running := n.running()
		body := map[string]any{"status": "ok", "node_id": n.NodeID()}
		code := http.StatusOK
		switch {
		case !running:
			n.mu.Lock()
			body["status"] = n.mu.state.String()
			n.mu.Unlock()
			code = http.StatusServiceUnavailable
		case host.Err() != nil:
			body["status"], body["error"] = "failed", host.Err().Error()
			code = http.StatusServiceUnavailable
		case n.eng.Err() != nil:
			// The store failed (the node is about to stop itself).
			body["status"], body["error"] = "failed", n.eng.Err().Error()
			code = http.StatusServiceUnavailable
		case len(n.Alarms()) > 0:
			// As etcd's: a raised alarm makes the node unhealthy, unless
			// the caller excludes it (?exclude=NOSPACE).
			body["alarms"], body["disk"] = n.Alarms(), n.diskStatus()
			if !slices.Contains(r.URL.Query()["exclude"], AlarmNoSpace) {
				body["status"] = "alarm"
				code = http.StatusServiceUnavailable
			}
		}
		writeJSON(w, code, body)
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		if !n.enter() {
			http.Error(w, "node is stopping", http.StatusServiceUnavailable)
			return
		}
		defer n.exit()
		// The hash reads every range's data: on a secure node only a
		// certificate holder may ask for it (and gets it by default).
		certified := n.certs == nil || hasCert(r)
		withHash := certified
		if v := r.URL.Query().Get("hash"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				http.Error(w, "hash: want true or false", http.StatusBadRequest)
				return
			}
			withHash = b
		}
		if withHash && !certified {
			http.Error(w, "/status?hash=true reads every range's data: on a secure node it needs a client certificate", http.StatusForbidden)
			return
		}
		out, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true, Indent: "  "}.Marshal(n.Status(withHash))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("/debug/pprof/", n.pprofGuard(pprof.Index))
	mux.HandleFunc("/debug/pprof/cmdline", n.pprofGuard(pprof.Cmdline))
	mux.HandleFunc("/debug/pprof/profile", n.pprofGuard(pprof.Profile))
	mux.HandleFunc("/debug/pprof/symbol", n.pprofGuard(pprof.Symbol))
	mux.HandleFunc("/debug/pprof/trace", n.pprofGuard(pprof.Trace))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status", http.StatusFound)
	})
	return mux
}

// pprofGuard lets a request reach the profiler only if the node is
// insecure, Config.EnablePprof is set, or the request came with a client
// (or node) certificate the CA signed: a profile shows memory and command
// lines, and profiling costs CPU.
func (n *Node) pprofGuard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if n.certs != nil && !n.cfg.EnablePprof && !hasCert(r) {
			http.Error(w, "/debug/pprof/ needs a client certificate on a secure node (or start it with --enable-pprof)", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

// hasCert reports whether an HTTPS request came with a certificate the
// cluster's CA signed (the listener verifies any certificate given).
func hasCert(r *http.Request) bool {
	role, _ := rpc.RoleOf(r.TLS)
	return role != rpc.RoleNone
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
