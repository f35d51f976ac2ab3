// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"

	"github.com/VictoriaMetrics/metrics"
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
//	               (?hash=false skips the hash, which reads every range's data); on the
//	               placement group's leader also the driver's view: stores with the
//	               time since their last heartbeat, operators, balance scores
//	/debug/pprof/  Go's profiler
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
		withHash := true
		if v := r.URL.Query().Get("hash"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				http.Error(w, "hash: want true or false", http.StatusBadRequest)
				return
			}
			withHash = b
		}
		out, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true, Indent: "  "}.Marshal(n.Status(withHash))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status", http.StatusFound)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
