#!/usr/bin/env bash
# Copyright 2026 The Flotilla Authors. All rights reserved.
#
# The standard benchmark suite: the same workloads against etcd (3 members)
# and Flotilla (3 nodes, with 1 range and with the keyspace pre-split into
# R ranges), one store at a time so that they never compete for CPU, each
# on loopback with fsync on. For each store: start it, load RECORDS records,
# run every workload in WORKLOADS with every client count in CLIENTS for
# DURATION, stop it. Reports go to $OUT/<store>-<workload>-<clients>.json
# (and $OUT/<store>-load.json), servers' logs and the runs' summaries to
# $OUT/logs; a table of every report is printed at the end.
#
# Run it with `make bench-suite` (which builds bin/flotilla and bin/etcd
# first) from the repository root. Settings come from the environment; see
# usage below or docs/BENCHMARKS.md. It uses the standard ports on
# 127.0.0.1 (etcd 2379/2380, 22379/22380, 32379/32380; Flotilla 7400-7402
# and 7480-7482) and fails if one is taken. Every process it starts is
# stopped, and its temporary data removed, however it exits.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/suite/run.sh   (or: make bench-suite), settings from the environment:
  OUT            where reports and logs go; default bench-results/<date-time>
  RECORDS        records loaded and chosen among; default 100000
  VALUE_SIZE     value size in bytes; default 256
  DURATION       measured time of each run; default 20s
  CLIENTS        client counts, each a run; default "1 16 64 256"
  WORKLOADS      workloads, each with every client count; default "write a c"
  RANGES         range counts of the pre-split Flotilla stores; default "16 48"
  STORES         stores to run, in order; default "etcd flotilla-1" and
                 flotilla-R for each R in RANGES (flotilla-N: N ranges;
                 flotilla-tls-N: the same, secure, with throwaway certificates)
  LOAD_CLIENTS   clients of the load phase; default 64
  READY_TIMEOUT  seconds to wait for a store to be ready; default 300
EOF
}
if [[ $# -gt 0 ]]; then
	usage
	[[ $1 == -h || $1 == --help ]] && exit 0
	exit 2
fi

# A relative OUT is taken from where the script was started.
if [[ -n ${OUT:-} && $OUT != /* ]]; then OUT=$PWD/$OUT; fi
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
FLOTILLA=$ROOT/bin/flotilla
ETCD=$ROOT/bin/etcd

RECORDS=${RECORDS:-100000}
VALUE_SIZE=${VALUE_SIZE:-256}
DURATION=${DURATION:-20s}
CLIENTS=${CLIENTS:-1 16 64 256}
WORKLOADS=${WORKLOADS:-write a c}
RANGES=${RANGES:-16 48}
LOAD_CLIENTS=${LOAD_CLIENTS:-64}
READY_TIMEOUT=${READY_TIMEOUT:-300}
if [[ -z ${STORES:-} ]]; then
	STORES="etcd flotilla-1"
	for r in $RANGES; do STORES+=" flotilla-$r"; done
fi
OUT=${OUT:-$ROOT/bench-results/$(date +%Y%m%d-%H%M%S)}

ETCD_CLIENT_PORTS=(2379 22379 32379)
ETCD_PEER_PORTS=(2380 22380 32380)
FLOTILLA_PORTS=(7400 7401 7402)
FLOTILLA_HTTP_PORTS=(7480 7481 7482)
ETCD_ENDPOINTS=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
FLOTILLA_ENDPOINTS=127.0.0.1:7400,127.0.0.1:7401,127.0.0.1:7402

log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	printf 'bench-suite: %s\n' "$*" >&2
	exit 1
}

# --- what was asked -----------------------------------------------------

is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
for v in RECORDS VALUE_SIZE LOAD_CLIENTS READY_TIMEOUT; do
	is_count "${!v}" || die "$v=${!v}: want a positive integer"
done
for c in $CLIENTS; do is_count "$c" || die "CLIENTS: $c is not a positive integer"; done
for r in $RANGES; do is_count "$r" || die "RANGES: $r is not a positive integer"; done
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h)$ ]] || die "DURATION=$DURATION: want a Go duration such as 20s"
[[ -n ${CLIENTS// /} && -n ${WORKLOADS// /} && -n ${STORES// /} ]] || die "CLIENTS, WORKLOADS and STORES must not be empty"
for s in $STORES; do
	[[ $s == etcd || $s =~ ^flotilla-(tls-)?[1-9][0-9]*$ ]] || die "STORES: $s is not etcd, flotilla-N or flotilla-tls-N (N ranges)"
	if [[ $s == flotilla-* ]] && ((${s##*-} > RECORDS)); then
		die "STORES: $s has more ranges than the $RECORDS records"
	fi
	if [[ $s == flotilla-* ]] && ((${s##*-} > 1001)); then
		die "STORES: $s: flotilla init pre-splits into at most 1001 ranges"
	fi
done
for w in $WORKLOADS; do
	[[ $w =~ ^(a|b|c|d|e|f|write)$ ]] || die "WORKLOADS: $w is not a, b, c, d, e, f or write"
done
if [[ -d $OUT && -n $(ls -A "$OUT") ]]; then
	die "OUT=$OUT is not empty: give a new directory, so that reports of different runs do not mix"
fi
[[ -x $FLOTILLA ]] || die "$FLOTILLA is missing: run 'make build etcd' first (make bench-suite does)"
[[ " $STORES " != *" etcd "* || -x $ETCD ]] || die "$ETCD is missing: run 'make etcd' first (make bench-suite does)"
for tool in jq curl; do
	command -v "$tool" >/dev/null || die "$tool is required (apt-get install $tool)"
done

# port_free fails if something listens on 127.0.0.1:$1 (or on every
# address at that port).
port_free() {
	if command -v ss >/dev/null; then
		[[ -z $(ss -Hltn "sport = :$1") ]]
	else
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 1; fi
	fi
}
check_ports() {
	local p
	for p in "$@"; do
		port_free "$p" || die "port $p on 127.0.0.1 is in use (by: $(ss -Hltnp "sport = :$p" 2>/dev/null | grep -o 'users:.*' || echo unknown)); stop what listens there"
	done
}
ports_of() {
	case $1 in
	etcd) echo "${ETCD_CLIENT_PORTS[*]} ${ETCD_PEER_PORTS[*]}" ;;
	*) echo "${FLOTILLA_PORTS[*]} ${FLOTILLA_HTTP_PORTS[*]}" ;;
	esac
}
for s in $STORES; do
	# shellcheck disable=SC2046 # ports_of prints a list of numbers
	check_ports $(ports_of "$s")
done

# --- processes and cleanup ----------------------------------------------

mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
DATA=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-bench-suite.XXXXXX")
PIDS=()         # every process started and not yet stopped
declare -A LOGS # the log of each process in PIDS

# stop_pids sends SIGTERM to the given processes, waits up to 20 s for them
# to exit, then kills what is left, and reaps them all.
stop_pids() {
	local pid deadline=$((SECONDS + 20)) alive
	for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
	while :; do
		alive=()
		for pid in "$@"; do
			if kill -0 "$pid" 2>/dev/null; then alive+=("$pid"); fi
		done
		((${#alive[@]} == 0)) && break
		if ((SECONDS >= deadline)); then
			log "killing ${alive[*]}: still running 20 s after SIGTERM"
			kill -KILL "${alive[@]}" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
	local keep=()
	for pid in "${PIDS[@]}"; do
		[[ " $* " == *" $pid "* ]] || keep+=("$pid")
	done
	PIDS=(${keep[@]+"${keep[@]}"})
}

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if ((${#PIDS[@]} > 0)); then
		log "stopping ${#PIDS[@]} processes"
		stop_pids "${PIDS[@]}"
	fi
	rm -rf "$DATA"
	if ((status != 0)); then
		printf 'bench-suite: failed (status %d); reports and logs so far in %s\n' "$status" "$OUT" >&2
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start LOG CMD ARGS... starts a process in the background, its output to
# LOG, and records it for cleanup.
start() {
	local logfile=$1
	shift
	"$@" >"$logfile" 2>&1 &
	PIDS+=($!)
	LOGS[$!]=$logfile
}

# check_alive fails, with the end of its log, if a server has exited.
check_alive() {
	local pid
	for pid in "${PIDS[@]}"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			die "process $pid exited; the end of ${LOGS[$pid]}:
$(tail -n 5 "${LOGS[$pid]}")"
		fi
	done
}

# wait_for WHAT CMD... runs CMD until it succeeds, for up to READY_TIMEOUT
# seconds, failing early if a started process exits. CMD may print why it
# is not ready yet; the last reason is shown if the wait times out.
wait_for() {
	local what=$1 deadline=$((SECONDS + READY_TIMEOUT)) reason
	shift
	while ! reason=$("$@" 2>&1); do
		check_alive
		if ((SECONDS >= deadline)); then
			die "$what: not ready after ${READY_TIMEOUT}s: ${reason:-no reason given}"
		fi
		sleep 0.5
	done
}

# --- etcd ---------------------------------------------------------------

etcd_healthy() {
	local port
	for port in "${ETCD_CLIENT_PORTS[@]}"; do
		curl -sf --max-time 2 "http://127.0.0.1:$port/health" | jq -e '.health == "true"' >/dev/null ||
			{ echo "member at :$port not healthy"; return 1; }
	done
}

start_etcd() {
	local cluster="" i
	for i in 0 1 2; do
		cluster+="${cluster:+,}m$((i + 1))=http://127.0.0.1:${ETCD_PEER_PORTS[i]}"
	done
	for i in 0 1 2; do
		local client=${ETCD_CLIENT_PORTS[i]} peer=${ETCD_PEER_PORTS[i]}
		start "$OUT/logs/etcd-m$((i + 1)).log" "$ETCD" --name "m$((i + 1))" --data-dir "$DATA/etcd/m$((i + 1))" \
			--listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
			--listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
			--initial-cluster "$cluster" --initial-cluster-token flotilla-bench-suite --initial-cluster-state new \
			--log-level warn
	done
	wait_for "etcd" etcd_healthy
}

# --- Flotilla -----------------------------------------------------------

# A secure store (flotilla-tls-N) sets FLOTILLA_CERTS_DIR, which every
# flotilla command reads as its --certs-dir, and HTTPS for curl.
HTTP_SCHEME=http
CURL_TLS=()

# flotilla_listening succeeds once every node's admin HTTP answers (503
# until the cluster is initialized).
flotilla_listening() {
	local port
	for port in "${FLOTILLA_HTTP_PORTS[@]}"; do
		[[ $(curl -s ${CURL_TLS[@]+"${CURL_TLS[@]}"} -o /dev/null -w '%{http_code}' --max-time 2 "$HTTP_SCHEME://127.0.0.1:$port/health") != 000 ]] ||
			{ echo "node at :$port not listening"; return 1; }
	done
}

flotilla_healthy() {
	local port
	for port in "${FLOTILLA_HTTP_PORTS[@]}"; do
		curl -sf ${CURL_TLS[@]+"${CURL_TLS[@]}"} -o /dev/null --max-time 2 "$HTTP_SCHEME://127.0.0.1:$port/health" || { echo "node at :$port not healthy"; return 1; }
	done
}

# flotilla_balanced RANGES succeeds once the cluster has 3 live stores and
# RANGES ranges, each with exactly 3 replicas, all voters, and a leader, and
# every store leads at least floor(RANGES/3)-1 of them (balanced.jq); else
# it prints what is missing.
flotilla_balanced() {
	local ranges=$1 stores rs reason
	stores=$("$FLOTILLA" cluster status --host 127.0.0.1:7400 --timeout 5s --format json) || return 1
	rs=$("$FLOTILLA" cluster ranges --host 127.0.0.1:7400 --timeout 5s --format json) || return 1
	reason=$(jq -nr -f "$ROOT/bench/suite/balanced.jq" --argjson stores "$stores" --argjson ranges "$rs" --argjson want "$ranges") ||
		return 1
	[[ -z $reason ]] || { echo "$reason"; return 1; }
}

# start_flotilla NAME RANGES starts 3 nodes (logs named NAME) with automatic splits off,
# initializes the cluster pre-split into RANGES ranges of equal record
# counts, and waits until the ranges are replicated and their leaders
# spread.
start_flotilla() {
	local name=$1 ranges=$2 i join=$FLOTILLA_ENDPOINTS
	for i in 0 1 2; do
		start "$OUT/logs/$name-n$((i + 1)).log" "$FLOTILLA" start --store "$DATA/$name/n$((i + 1))" \
			--listen-addr "127.0.0.1:${FLOTILLA_PORTS[i]}" --http-addr "127.0.0.1:${FLOTILLA_HTTP_PORTS[i]}" \
			--join "$join" --split-size -1 --split-qps -1
	done
	wait_for "$name: nodes listening" flotilla_listening
	local split=()
	if ((ranges > 1)); then
		split=(--split-at "$("$FLOTILLA" bench split-keys --records "$RECORDS" --ranges "$ranges")")
	fi
	"$FLOTILLA" init --host "127.0.0.1:${FLOTILLA_PORTS[0]}" ${split[@]+"${split[@]}"} >>"$OUT/logs/$name-init.log" 2>&1 ||
		die "$name: init failed: $(cat "$OUT/logs/$name-init.log")"
	wait_for "$name: nodes healthy" flotilla_healthy
	wait_for "$name: ranges replicated and leaders spread" flotilla_balanced "$ranges"
}

# --- the runs -----------------------------------------------------------

REPORTS=() # in the order run, for the table

# bench NAME ARGS... runs `flotilla bench` in the background (so that a
# signal reaches the trap at once), its summary to $OUT/logs/NAME.txt and
# its report to $OUT/NAME.json, and prints a line of its figures.
bench() {
	local name=$1
	shift
	start "$OUT/logs/$name.txt" "$FLOTILLA" bench "$@" --records "$RECORDS" --value-size "$VALUE_SIZE" \
		--quiet --json "$OUT/$name.json"
	local pid=${PIDS[-1]} status=0
	wait "$pid" || status=$?
	PIDS=("${PIDS[@]:0:${#PIDS[@]}-1}")
	((status == 0)) || die "$name: flotilla bench failed (status $status): $(tail -n 5 "$OUT/logs/$name.txt")"
	REPORTS+=("$OUT/$name.json")
	log "$(jq -r '"  \(.throughput | floor) ops/s, \(.errors) errors"' "$OUT/$name.json")"
	# A server that stopped during the run spoiled it (and would fail the
	# next one less clearly).
	check_alive
}

runs_per_store=$((1 + $(wc -w <<<"$WORKLOADS") * $(wc -w <<<"$CLIENTS")))
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
	echo "flotilla: $("$FLOTILLA" version)"
	if [[ -x $ETCD ]]; then echo "etcd: $("$ETCD" --version 2>&1 | sed -n 1p)"; fi
	echo "machine: $(uname -srm), $(nproc) CPUs"
	echo "settings: RECORDS=$RECORDS VALUE_SIZE=$VALUE_SIZE DURATION=$DURATION CLIENTS=\"$CLIENTS\" WORKLOADS=\"$WORKLOADS\" STORES=\"$STORES\" LOAD_CLIENTS=$LOAD_CLIENTS"
} >"$OUT/suite.txt"
log "bench suite: stores $STORES; $runs_per_store runs each (load, then workloads $WORKLOADS × clients $CLIENTS) of $DURATION; results in $OUT"

for store in $STORES; do
	# shellcheck disable=SC2046
	check_ports $(ports_of "$store")
	log "$store: starting"
	case $store in
	etcd)
		start_etcd
		target=(--etcd "$ETCD_ENDPOINTS")
		;;
	flotilla-tls-*)
		export FLOTILLA_CERTS_DIR=$DATA/certs
		"$FLOTILLA" cert create-ca >/dev/null && "$FLOTILLA" cert create-node 127.0.0.1 localhost >/dev/null &&
			"$FLOTILLA" cert create-client root >/dev/null || die "$store: making certificates failed"
		HTTP_SCHEME=https CURL_TLS=(--cacert "$FLOTILLA_CERTS_DIR/ca.crt")
		start_flotilla "$store" "${store#flotilla-tls-}"
		target=(--endpoints "$FLOTILLA_ENDPOINTS")
		;;
	flotilla-*)
		unset FLOTILLA_CERTS_DIR
		HTTP_SCHEME=http CURL_TLS=()
		start_flotilla "$store" "${store#flotilla-}"
		target=(--endpoints "$FLOTILLA_ENDPOINTS")
		;;
	esac
	log "$store: load of $RECORDS records"
	bench "$store-load" "${target[@]}" --phase load --clients "$LOAD_CLIENTS"
	for workload in $WORKLOADS; do
		for clients in $CLIENTS; do
			log "$store: workload $workload, clients $clients, $DURATION"
			bench "$store-$workload-$clients" "${target[@]}" --phase run --workload "$workload" \
				--clients "$clients" --duration "$DURATION"
		done
	done
	log "$store: stopping"
	stop_pids "${PIDS[@]}"
	rm -rf "${DATA:?}"/*
done

log "done: reports and logs in $OUT"
"$FLOTILLA" bench table "${REPORTS[@]}" | tee "$OUT/table.md"
