#!/bin/bash
# tests/bench/selfcheck.sh BUILD -- `make test`'s check that `make bench`
# still runs and still reports what issue 11 asks of it: tests/bench/run.sh
# for 1 s per run, one repetition of get and get-paced against nginx,
# tracestitch, nginx-3, tracestitch-3 (three servers behind the route,
# issue 13 item 8) and tracestitch-spans (about 15 s), then its tables
# must hold every row and its TSV exactly the 10 runs.  The figures themselves are not
# checked (a shared machine's timings are not pass/fail material), except
# that every span was delivered (100% or a little more: wrk and h2load do
# not count the requests they cut off at the end, which are traced too).
# Then the HTTP/2 part (h2.sh): h2-get for 1 s against every target that
# speaks h2c, and the memory per idle h2 connection.  Skips (77) without
# nginx or wrk.
set -euo pipefail

BUILD=${1:?usage: selfcheck.sh BUILD}
command -v nginx >/dev/null 2>&1 || { echo "no nginx: skipped"; exit 77; }
command -v wrk >/dev/null 2>&1 || { echo "no wrk: skipped"; exit 77; }
[ -x "$BUILD/tests/support/fake_agent" ] ||
    { echo "no fake_agent: skipped"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tracestitch-benchcheck.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The HTTP/2 part (tests/bench/h2.sh): h2-get for 1 s against every
# target, the memory per idle h2 connection over 100 connections.  The
# gateway rows are required once the gateway takes server.http2_cleartext.
h2_loads=""
h2_gateway=""
want=0
if command -v h2load >/dev/null 2>&1 &&
    /usr/bin/python3 -c 'import h2' 2>/dev/null; then
	h2_loads=h2-get
	printf 'server:\n  http2_cleartext: true\nroutes:\n  - upstream:\n      url: http://127.0.0.1:9\n' \
	    >"$tmp/h2.yaml"
	if "$BUILD/src/tracestitch" -n -c "$tmp/h2.yaml" >/dev/null 2>&1; then
		h2_gateway=1
	fi
else
	echo "no h2load or python3-h2: the HTTP/2 part not checked"
fi

fail() {
	echo "selfcheck: $*" >&2
	echo "--- run.sh output:" >&2
	cat "$tmp/out" >&2 || true
	exit 1
}

BUILD=$BUILD BENCH_DURATION=1 BENCH_REPS=1 BENCH_IDLE=0 \
    BENCH_LOADS="get get-paced" BENCH_OUT="$tmp/r.tsv" \
    BENCH_H2_LOADS="$h2_loads" BENCH_H2_IDLE_CONNECTIONS=100 \
    bash "$(dirname "$0")/run.sh" >"$tmp/out" 2>&1 || fail "run.sh failed"

# The runs: a header and 2 loads x 5 targets.
rows=$(($(wc -l <"$tmp/r.tsv") - 1))
[ "$rows" -eq 10 ] || fail "$rows runs in the TSV, expected 10"
[ -s "$tmp/r.md" ] || fail "no table"
n=0
for row in "get, req/s" "get, p50 ms" "get, p99 ms" "get, CPU us/req" \
    "get, new upstream connections per run" "get-paced, req/s" \
    "get-paced, p50 ms" "get-paced, p99 ms" "get-paced, CPU us/req" \
    "get-paced, new upstream connections per run" \
    "new upstream connections, all runs" "peak RSS MiB (VmHWM)" \
    "idle RSS MiB at start" "idle RSS MiB after the loads" \
    "get, spans delivered" "get-paced, spans delivered" \
    "get, 3 servers, req/s" "get, 3 servers, CPU us/req" \
    "get-paced, 3 servers, CPU us/req"; do
	grep -qF "| $row |" "$tmp/r.md" || fail "no row \"$row\" in the table"
	n=$((n + 1))
done
# Every cell of nginx and tracestitch filled on the measured rows (a
# "-" is a figure the script failed to read).
awk -F'|' '$2 ~ /(req\/s|ms|us\/req|per run|RSS)/ && ($3 ~ /-/ || $4 ~ /-/ ||
    $6 ~ /^ *- *$/) { bad = bad $0 "\n" } END { printf "%s", bad }' \
    "$tmp/r.md" >"$tmp/bad"
[ ! -s "$tmp/bad" ] || fail "rows with a missing figure: $(cat "$tmp/bad")"
grep -q '^| get, spans delivered | | | | 1[0-9][0-9]\.' "$tmp/r.md" ||
    fail "get: not every span delivered"
grep -q '^| get-paced, spans delivered | | | | 1[0-9][0-9]\.' "$tmp/r.md" ||
    fail "get-paced: not every span delivered"
if [ -n "$h2_loads" ]; then
	want=1
	[ -z "$h2_gateway" ] || want=3
	rows=$(($(wc -l <"$tmp/r-h2.tsv") - 1))
	[ "$rows" -eq "$want" ] || fail "$rows HTTP/2 runs in the TSV, expected $want"
	awk -F'\t' 'NR > 1 && ($4 <= 0 || $6 !~ /^[0-9]+$/ || $7 !~ /^[0-9]+$/ ||
	    $8 <= 0 || $9 != 0) { bad = bad $0 "\n" } END { printf "%s", bad }' \
	    "$tmp/r-h2.tsv" >"$tmp/bad"
	[ ! -s "$tmp/bad" ] || fail "HTTP/2 runs with a missing figure or failed requests: $(cat "$tmp/bad")"
	for row in "h2-get, req/s" "h2-get, p50 ms" "h2-get, p99 ms" \
	    "h2-get, CPU us/req" "h2-get, new upstream connections per run" \
	    "h2-get, failed or non-2xx per run" \
	    "memory per idle h2 connection, KiB"; do
		grep -qF "| $row |" "$tmp/r-h2.md" ||
		    fail "no row \"$row\" in the HTTP/2 table"
		n=$((n + 1))
	done
	# nginx's idle figure, and the gateway's when it speaks h2c.
	awk -F'|' -v gw="$h2_gateway" '$2 ~ /memory per idle h2/ &&
	    ($3 ~ /-/ || (gw && $4 ~ /-/)) { print }' "$tmp/r-h2.md" >"$tmp/bad"
	[ ! -s "$tmp/bad" ] || fail "no memory per idle h2 connection: $(cat "$tmp/bad")"
	if [ -n "$h2_gateway" ]; then
		grep -q '^| h2-get, spans delivered | | | | 1[0-9][0-9]\.' "$tmp/r-h2.md" ||
		    fail "h2-get: not every span delivered"
	fi
fi
# The three-server table: every cell filled (nginx and tracestitch, one
# server and three).
awk -F'|' '$2 ~ /3 servers/ && ($3 ~ /-/ || $4 ~ /-/ || $6 ~ /-/ ||
    $7 ~ /-/) { bad = bad $0 "\n" } END { printf "%s", bad }' \
    "$tmp/r.md" >"$tmp/bad"
[ ! -s "$tmp/bad" ] || fail "three-server rows with a missing figure: $(cat "$tmp/bad")"
# make bench-ir (tests/bench/ir.py): 50 preflights under callgrind against
# nginx, and its figures parse (two totals and a ratio).
ir=0
if command -v valgrind >/dev/null 2>&1; then
	BUILD=$BUILD /usr/bin/python3 "$(dirname "$0")/ir.py" --base nginx -n 50 \
	    --warm 10 --loads preflight --top 3 >"$tmp/ir.txt" 2>&1 ||
	    fail "tests/bench/ir.py failed: $(cat "$tmp/ir.txt")"
	ir=$(grep -cE '^ir: preflight (base|build) .*: [0-9.]+ instructions per request|^ir: preflight build/base = [0-9.]+' "$tmp/ir.txt" || true)
	[ "$ir" -eq 3 ] || fail "tests/bench/ir.py: $ir of 3 figures: $(cat "$tmp/ir.txt")"
fi
echo "selfcheck: 10 runs, $want HTTP/2 runs, $n table rows, every span delivered, $ir instruction figures"
