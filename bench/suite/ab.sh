#!/usr/bin/env bash
# Copyright 2026 The Flotilla Authors. All rights reserved.
#
# A/B comparison of two Flotilla builds, interleaved: both clusters run at
# once (3 nodes each, on loopback with fsync on, pre-split into RANGES
# ranges), both are loaded, then each round runs every workload on one and
# then the other (the order alternating between rounds), ROUNDS times. The
# idle cluster is quiescent, so the two barely compete; what the shared
# machine's speed does between minutes hits both builds alike. Prints each
# pair's ratio NEW ÷ BASE and, at the end, the median of the ratios per
# workload. Reports go to $OUT/<new|base>-<workload>-<round>.json.
#
# This is how to tell a change of a few per cent on a noisy machine:
# sequential suite runs minutes apart (bench/suite/run.sh) moved ±30 % on
# this project's machine; see docs/BENCHMARKS.md. Run it with
# `make bench-ab BASE=path/to/old/flotilla` from the repository root.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/suite/ab.sh   (or: make bench-ab BASE=...), settings from the environment:
  BASE        the flotilla binary to compare against (required), e.g. one
              built from an older commit: git worktree add /tmp/base <commit>
              && (cd /tmp/base && go build -o bin/flotilla ./cmd/flotilla)
  NEW         the flotilla binary under test; default bin/flotilla
  OUT         where reports and logs go; default bench-results/ab-<date-time>
  RANGES      ranges both clusters are pre-split into; default 48
  ROUNDS      rounds (each runs every workload on both); default 6
  WORKLOADS   workloads; default "write a c"
  CLIENTS     clients of each run; default 256
  DURATION    measured time of each run; default 6s
  RECORDS     records loaded and chosen among; default 100000
  VALUE_SIZE  value size in bytes; default 256
  READY_TIMEOUT  seconds to wait for a cluster to be ready; default 300
Ports on 127.0.0.1: NEW 7400-7402 and 7480-7482, BASE 7500-7502 and 7580-7582.
EOF
}
if [[ $# -gt 0 ]]; then
	usage
	[[ $1 == -h || $1 == --help ]] && exit 0
	exit 2
fi

if [[ -n ${OUT:-} && $OUT != /* ]]; then OUT=$PWD/$OUT; fi
for v in BASE NEW; do
	if [[ -n ${!v:-} && ${!v} != /* ]]; then declare "$v=$PWD/${!v}"; fi
done
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

NEW=${NEW:-$ROOT/bin/flotilla}
RANGES=${RANGES:-48}
ROUNDS=${ROUNDS:-6}
WORKLOADS=${WORKLOADS:-write a c}
CLIENTS=${CLIENTS:-256}
DURATION=${DURATION:-6s}
RECORDS=${RECORDS:-100000}
VALUE_SIZE=${VALUE_SIZE:-256}
READY_TIMEOUT=${READY_TIMEOUT:-300}
OUT=${OUT:-$ROOT/bench-results/ab-$(date +%Y%m%d-%H%M%S)}

log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	printf 'bench-ab: %s\n' "$*" >&2
	exit 1
}

[[ -n ${BASE:-} ]] || {
	usage >&2
	die "BASE is not set: give the flotilla binary to compare against"
}
for v in BASE NEW; do
	[[ -x ${!v} ]] || die "$v=${!v} is not an executable file"
done
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
for v in RANGES ROUNDS CLIENTS RECORDS VALUE_SIZE READY_TIMEOUT; do
	is_count "${!v}" || die "$v=${!v}: want a positive integer"
done
((RANGES <= RECORDS)) || die "RANGES=$RANGES: more ranges than the $RECORDS records"
((RANGES <= 1001)) || die "RANGES=$RANGES: flotilla init pre-splits into at most 1001 ranges"
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h)$ ]] || die "DURATION=$DURATION: want a Go duration such as 6s"
[[ -n ${WORKLOADS// /} ]] || die "WORKLOADS must not be empty"
for w in $WORKLOADS; do
	[[ $w =~ ^(a|b|c|d|e|f|write)$ ]] || die "WORKLOADS: $w is not a, b, c, d, e, f or write"
done
if [[ -d $OUT && -n $(ls -A "$OUT") ]]; then
	die "OUT=$OUT is not empty: give a new directory"
fi
for tool in jq curl; do
	command -v "$tool" >/dev/null || die "$tool is required (apt-get install $tool)"
done

declare -A BIN=([new]=$NEW [base]=$BASE)
declare -A PORT=([new]=74 [base]=75) # 74xx and 75xx
port_free() {
	if command -v ss >/dev/null; then
		[[ -z $(ss -Hltn "sport = :$1") ]]
	else
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 1; fi
	fi
}
for v in new base; do
	for i in 0 1 2; do
		for p in "${PORT[$v]}0$i" "${PORT[$v]}8$i"; do
			port_free "$p" || die "port $p on 127.0.0.1 is in use; stop what listens there"
		done
	done
done

mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
DATA=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-bench-ab.XXXXXX")
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
	if ((status != 0)); then
		printf 'bench-ab: failed (status %d); reports and logs so far in %s\n' "$status" "$OUT" >&2
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

endpoints() { echo "127.0.0.1:${PORT[$1]}00,127.0.0.1:${PORT[$1]}01,127.0.0.1:${PORT[$1]}02"; }

check_alive() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null || die "server $pid exited; see $OUT/logs"
	done
}

# listening V succeeds once every node of cluster V answers on its admin
# HTTP port (503 until the cluster is initialized).
listening() {
	local i
	for i in 0 1 2; do
		[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:${PORT[$1]}8$i/health") != 000 ]] ||
			{ echo "node at :${PORT[$1]}8$i not listening"; return 1; }
	done
}

# ready V prints what is missing before cluster V can be measured.
ready() {
	local v=$1 stores rs
	stores=$("${BIN[$v]}" cluster status --host "127.0.0.1:${PORT[$v]}00" --timeout 5s --format json 2>&1) || {
		echo "$stores"
		return 1
	}
	rs=$("${BIN[$v]}" cluster ranges --host "127.0.0.1:${PORT[$v]}00" --timeout 5s --format json 2>&1) || {
		echo "$rs"
		return 1
	}
	local reason
	reason=$(jq -nr -f "$ROOT/bench/suite/balanced.jq" --argjson stores "$stores" --argjson ranges "$rs" --argjson want "$RANGES") ||
		return 1
	[[ -z $reason ]] || {
		echo "$reason"
		return 1
	}
}

wait_for() {
	local what=$1 deadline=$((SECONDS + READY_TIMEOUT)) reason
	shift
	while ! reason=$("$@" 2>&1); do
		check_alive
		((SECONDS < deadline)) || die "$what: not ready after ${READY_TIMEOUT}s: ${reason:-no reason given}"
		sleep 0.5
	done
}

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "new: $NEW ($("$NEW" version 2>&1 | head -n 1))"
	echo "base: $BASE ($("$BASE" version 2>&1 | head -n 1))"
	echo "machine: $(uname -srm), $(nproc) CPUs"
	echo "settings: RANGES=$RANGES ROUNDS=$ROUNDS WORKLOADS=\"$WORKLOADS\" CLIENTS=$CLIENTS DURATION=$DURATION RECORDS=$RECORDS VALUE_SIZE=$VALUE_SIZE"
} >"$OUT/ab.txt"

for v in new base; do
	for i in 0 1 2; do
		"${BIN[$v]}" start --store "$DATA/$v/n$((i + 1))" \
			--listen-addr "127.0.0.1:${PORT[$v]}0$i" --http-addr "127.0.0.1:${PORT[$v]}8$i" \
			--join "$(endpoints "$v")" --split-size -1 --split-qps -1 >"$OUT/logs/$v-n$((i + 1)).log" 2>&1 &
		PIDS+=($!)
	done
done
for v in new base; do
	split=()
	if ((RANGES > 1)); then
		split=(--split-at "$("${BIN[$v]}" bench split-keys --records "$RECORDS" --ranges "$RANGES")")
	fi
	wait_for "$v: nodes listening" listening "$v"
	"${BIN[$v]}" init --host "127.0.0.1:${PORT[$v]}00" ${split[@]+"${split[@]}"} >>"$OUT/logs/$v-init.log" 2>&1 ||
		die "$v: init failed: $(cat "$OUT/logs/$v-init.log")"
	wait_for "$v: ranges replicated and leaders spread" ready "$v"
	log "$v: load of $RECORDS records"
	"${BIN[$v]}" bench --endpoints "$(endpoints "$v")" --phase load --clients 64 --records "$RECORDS" \
		--value-size "$VALUE_SIZE" --quiet --json "$OUT/$v-load.json" >"$OUT/logs/$v-load.txt" 2>&1 ||
		die "$v: load failed: $(tail -n 5 "$OUT/logs/$v-load.txt")"
done

throughput() { jq -r '.throughput' "$1"; }
for round in $(seq 1 "$ROUNDS"); do
	order="new base"
	((round % 2 == 0)) && order="base new"
	for w in $WORKLOADS; do
		for v in $order; do
			"${BIN[$v]}" bench --endpoints "$(endpoints "$v")" --phase run --workload "$w" --clients "$CLIENTS" \
				--duration "$DURATION" --records "$RECORDS" --value-size "$VALUE_SIZE" --quiet \
				--json "$OUT/$v-$w-$round.json" >"$OUT/logs/$v-$w-$round.txt" 2>&1 ||
				die "$v: workload $w failed: $(tail -n 5 "$OUT/logs/$v-$w-$round.txt")"
			check_alive
		done
		n=$(throughput "$OUT/new-$w-$round.json")
		b=$(throughput "$OUT/base-$w-$round.json")
		log "$(printf 'round %d/%d  %-5s  new %7.0f  base %7.0f ops/s  new/base %.2f' "$round" "$ROUNDS" "$w" "$n" "$b" "$(jq -n "$n / $b")")"
	done
done

# The summary: per workload, the medians of each build's throughput and of
# the per-round ratios, and the ratios' spread.
{
	printf '| workload | rounds | new ops/s (median) | base ops/s (median) | new/base (median of rounds) | min | max |\n'
	printf '| --- | --: | --: | --: | --: | --: | --: |\n'
	for w in $WORKLOADS; do
		jq -rn --arg w "$w" '
			def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
			def f2: (. * 100 | round) as $c | "\($c / 100 | floor).\($c % 100 | tostring | if length == 1 then "0" + . else . end)";
			[inputs | {name: input_filename, t: .throughput}] as $all
			| [$all[] | select(.name | test("/new-" + $w + "-[0-9]+\\.json$"))] as $new
			| [$all[] | select(.name | test("/base-" + $w + "-[0-9]+\\.json$"))] as $base
			| [range(0; $new | length) as $i | $new[$i].t / ($base[] | select(.name == ($new[$i].name | sub("/new-"; "/base-"))) | .t)] as $ratios
			| "| \($w) | \($ratios | length) | \($new | map(.t) | median | floor) | \($base | map(.t) | median | floor) | \($ratios | median | f2) | \($ratios | min | f2) | \($ratios | max | f2) |"
		' "$OUT"/new-"$w"-*.json "$OUT"/base-"$w"-*.json
	done
} | tee "$OUT/summary.md"
log "done: reports and logs in $OUT"
