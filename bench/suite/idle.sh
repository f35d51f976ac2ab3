#!/usr/bin/env bash
# Copyright 2026 The Flotilla Authors. All rights reserved.
#
# idle.sh measures what many ranges cost a cluster that does nothing (issue
# 19, "heartbeats that scale"): it starts three nodes, pre-splits the
# keyspace into RANGES ranges at init, times how long until every range has
# three voters, lets the cluster settle, and then reads each node's CPU
# time (/proc/PID/stat) over WINDOW seconds of no load, once the balancers
# are done, and its RSS.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/suite/idle.sh   (or: make bench-idle), settings from the environment:
  BIN        the flotilla binary; default bin/flotilla
  OUT        where the summary and logs go; default bench-results/idle-<date-time>
  RANGES     ranges the cluster is pre-split into, 1 to 20001; default 1000
  SETTLE     seconds to wait after up-replication before measuring; default 15
  WINDOW     seconds of idle time measured; default 30
  READY_TIMEOUT  seconds to wait for up-replication; default 600
Ports on 127.0.0.1: 7600-7602 (gRPC) and 7680-7682 (HTTP).
EOF
}
if [[ $# -gt 0 ]]; then
	usage
	[[ $1 == -h || $1 == --help ]] && exit 0
	exit 2
fi
if [[ -n ${OUT:-} && $OUT != /* ]]; then OUT=$PWD/$OUT; fi
if [[ -n ${BIN:-} && $BIN != /* ]]; then BIN=$PWD/$BIN; fi
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin/flotilla}
RANGES=${RANGES:-1000}
SETTLE=${SETTLE:-15}
WINDOW=${WINDOW:-30}
READY_TIMEOUT=${READY_TIMEOUT:-600}
OUT=${OUT:-$ROOT/bench-results/idle-$(date +%Y%m%d-%H%M%S)}

log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	printf 'bench-idle: %s\n' "$*" >&2
	exit 1
}
[[ -x $BIN ]] || die "BIN=$BIN is not an executable file (make build)"
for v in RANGES SETTLE WINDOW READY_TIMEOUT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: want a positive whole number"
done
((RANGES <= 20001)) || die "RANGES=$RANGES: flotilla init pre-splits into at most 20001 ranges"
for tool in jq curl; do
	command -v "$tool" >/dev/null || die "$tool is required (apt-get install $tool)"
done
if [[ -d $OUT && -n $(ls -A "$OUT") ]]; then
	die "OUT=$OUT is not empty: give a new directory"
fi
mkdir -p "$OUT/logs"
DATA=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-bench-idle.XXXXXX")
PIDS=()
cleanup() {
	local status=$? pid deadline=$((SECONDS + 20))
	trap - EXIT INT TERM
	if ((${#PIDS[@]} > 0)); then
		kill -TERM "${PIDS[@]}" 2>/dev/null || true
		for pid in "${PIDS[@]}"; do
			while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
		done
		kill -KILL "${PIDS[@]}" 2>/dev/null || true
		wait "${PIDS[@]}" 2>/dev/null || true
	fi
	rm -rf "$DATA"
	((status == 0)) || printf 'bench-idle: failed (status %d); logs in %s\n' "$status" "$OUT" >&2
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

endpoints="127.0.0.1:7600,127.0.0.1:7601,127.0.0.1:7602"
for i in 0 1 2; do
	"$BIN" start --store "$DATA/n$((i + 1))" --listen-addr "127.0.0.1:760$i" --http-addr "127.0.0.1:768$i" \
		--join "$endpoints" --split-size -1 --split-qps -1 >"$OUT/logs/n$((i + 1)).log" 2>&1 &
	PIDS+=($!)
done
check_alive() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null || die "server $pid exited; see $OUT/logs"
	done
}
wait_for() {
	local what=$1 deadline=$((SECONDS + READY_TIMEOUT)) reason
	shift
	while ! reason=$("$@" 2>&1); do
		check_alive
		((SECONDS < deadline)) || die "$what: not done after ${READY_TIMEOUT}s: ${reason:-no reason given}"
		sleep 0.5
	done
}
listening() {
	local i
	for i in 0 1 2; do
		[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:768$i/health") != 000 ]] ||
			{ echo "node at :768$i not listening"; return 1; }
	done
}
# replicated succeeds once RANGES ranges are listed, each with three voters.
replicated() {
	local rs
	rs=$("$BIN" cluster ranges --host 127.0.0.1:7600 --timeout 10s --format json 2>&1) || {
		echo "$rs"
		return 1
	}
	jq -e --argjson want "$RANGES" \
		'(length == $want) and all(.[]; ([.replicas[] | select(.type == "voter")] | length) == 3)' <<<"$rs" >/dev/null || {
		jq -r --argjson want "$RANGES" \
			'"\(length) of \($want) ranges listed, \([.[] | select(([.replicas[] | select(.type == "voter")] | length) == 3)] | length) with 3 voters"' <<<"$rs"
		return 1
	}
}
split=()
if ((RANGES > 1)); then
	"$BIN" bench split-keys --records $((RANGES * 100)) --ranges "$RANGES" | tr ',' '\n' >"$OUT/split-keys.txt"
	split=(--split-at-file "$OUT/split-keys.txt")
fi
wait_for "nodes listening" listening
start=$SECONDS
"$BIN" init --host 127.0.0.1:7600 --timeout 60s ${split[@]+"${split[@]}"} >"$OUT/logs/init.log" 2>&1 ||
	die "init failed: $(cat "$OUT/logs/init.log")"
wait_for "up-replication of $RANGES ranges" replicated
upreplicated=$((SECONDS - start))
log "every one of $RANGES ranges has 3 voters after ${upreplicated}s; waiting for the balancers to finish"
# quiet succeeds once the placement driver runs no operator and the
# leaders (all on node 1 after init) and replicas are spread.
quiet() {
	local ops
	ops=$("$BIN" cluster operators --host 127.0.0.1:7600 --timeout 10s --format json 2>&1) || {
		echo "$ops"
		return 1
	}
	jq -e '.counts.running == 0 and .leader_balance <= 2 and .replica_balance <= 2' <<<"$ops" >/dev/null || {
		jq -r '"\(.counts.running) operators running; leader balance \(.leader_balance), replica balance \(.replica_balance)"' <<<"$ops"
		return 1
	}
}
wait_for "balancing" quiet
balanced=$((SECONDS - start))
log "no operator runs after ${balanced}s; settling ${SETTLE}s"
sleep "$SETTLE"
check_alive

# cpu PID prints the process's user+system CPU time in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
declare -a before
for i in 0 1 2; do before[i]=$(cpu "${PIDS[i]}"); done
sleep "$WINDOW"
check_alive
{
	echo "# Idle cost of $RANGES ranges on 3 nodes ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
	echo
	echo "binary: $BIN ($("$BIN" version 2>&1 | head -n 1)); machine: $(uname -srm), $(nproc) CPUs"
	echo "after init: every range had 3 voters at ${upreplicated} s, no operator ran at ${balanced} s; settled ${SETTLE} s; measured over ${WINDOW} s"
	echo
	echo "| node | CPU (% of a core) | RSS (MiB) |"
	echo "| --: | --: | --: |"
	for i in 0 1 2; do
		after=$(cpu "${PIDS[i]}")
		rss=$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/${PIDS[i]}/status")
		awk -v a="$after" -v b="${before[i]}" -v t="$tck" -v w="$WINDOW" -v n=$((i + 1)) -v r="$rss" \
			'BEGIN {printf "| %d | %.2f | %s |\n", n, 100 * (a - b) / t / w, r}'
	done
} | tee "$OUT/summary.md"
