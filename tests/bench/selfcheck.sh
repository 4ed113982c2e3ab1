#!/bin/bash
# tests/bench/selfcheck.sh BUILD -- `make test`'s check that `make bench`
# still runs and still reports what issue 11 asks of it: tests/bench/run.sh
# for 1 s per run, one repetition of get and get-paced against nginx,
# tracestitch and tracestitch-spans (about 10 s), then its table must hold
# every row and its TSV exactly the 6 runs.  The figures themselves are not
# checked (a shared machine's timings are not pass/fail material), except
# that every span was delivered.  Skips (77) without nginx or wrk.
set -euo pipefail

BUILD=${1:?usage: selfcheck.sh BUILD}
command -v nginx >/dev/null 2>&1 || { echo "no nginx: skipped"; exit 77; }
command -v wrk >/dev/null 2>&1 || { echo "no wrk: skipped"; exit 77; }
[ -x "$BUILD/tests/support/fake_agent" ] ||
    { echo "no fake_agent: skipped"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tracestitch-benchcheck.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "selfcheck: $*" >&2
	echo "--- run.sh output:" >&2
	cat "$tmp/out" >&2 || true
	exit 1
}

BUILD=$BUILD BENCH_DURATION=1 BENCH_REPS=1 BENCH_IDLE=0 \
    BENCH_LOADS="get get-paced" BENCH_OUT="$tmp/r.tsv" \
    bash "$(dirname "$0")/run.sh" >"$tmp/out" 2>&1 || fail "run.sh failed"

# The runs: a header and 2 loads x 3 targets.
rows=$(($(wc -l <"$tmp/r.tsv") - 1))
[ "$rows" -eq 6 ] || fail "$rows runs in the TSV, expected 6"
[ -s "$tmp/r.md" ] || fail "no table"
n=0
for row in "get, req/s" "get, p50 ms" "get, p99 ms" "get, CPU us/req" \
    "get, new upstream connections per run" "get-paced, req/s" \
    "get-paced, p50 ms" "get-paced, p99 ms" "get-paced, CPU us/req" \
    "get-paced, new upstream connections per run" \
    "new upstream connections, all runs" "peak RSS MiB (VmHWM)" \
    "idle RSS MiB at start" "idle RSS MiB after the loads" \
    "get, spans delivered" "get-paced, spans delivered"; do
	grep -qF "| $row |" "$tmp/r.md" || fail "no row \"$row\" in the table"
	n=$((n + 1))
done
# Every cell of nginx and tracestitch filled on the measured rows (a
# "-" is a figure the script failed to read).
awk -F'|' '$2 ~ /(req\/s|ms|us\/req|per run|RSS)/ && ($3 ~ /-/ || $4 ~ /-/ ||
    $6 ~ /^ *- *$/) { bad = bad $0 "\n" } END { printf "%s", bad }' \
    "$tmp/r.md" >"$tmp/bad"
[ ! -s "$tmp/bad" ] || fail "rows with a missing figure: $(cat "$tmp/bad")"
grep -q '^| get, spans delivered | | | | 100\.' "$tmp/r.md" ||
    fail "get: not every span delivered"
grep -q '^| get-paced, spans delivered | | | | 100\.' "$tmp/r.md" ||
    fail "get-paced: not every span delivered"
echo "selfcheck: 6 runs, $n table rows, every span delivered"
