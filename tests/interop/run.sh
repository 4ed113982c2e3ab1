#!/bin/bash
# tests/interop/run.sh -- `make interop` (run by `make test`): real tracer
# libraries (dd-trace, @opentelemetry/core) continue the trace tracestitch
# injects.  Installs the npm packages of this folder when node_modules is
# missing or package.json is newer (no lock file: see .npmrc), checks that
# the gateway is built, runs the node --test suite with a bounded time and
# prints "interop: N passed, N failed".  Every process the tests start is
# stopped by its PID (lib/procs.mjs).
#
# Environment: BUILD (build dir, default build), INTEROP_TIMEOUT (seconds
# for the whole suite, default 180).
set -euo pipefail

cd "$(dirname "$0")"
HERE=$(pwd)
ROOT=$(cd ../.. && pwd)
BUILD=${BUILD:-build}
case $BUILD in
/*) ;;
*) BUILD=$ROOT/$BUILD ;;
esac
GATEWAY=$BUILD/src/tracestitch
TIMEOUT=${INTEROP_TIMEOUT:-180}

for tool in node npm; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "interop: $tool not found, skipped (install Node.js 18+ and npm)"
		exit 0
	fi
done
if [ ! -x "$GATEWAY" ]; then
	echo "interop: $GATEWAY not built (make build)" >&2
	exit 1
fi

if [ ! -d node_modules ] || [ package.json -nt node_modules ]; then
	echo "interop: npm install (dd-trace, @opentelemetry/core, @opentelemetry/api)"
	if ! timeout 600 npm install --no-package-lock --no-audit --no-fund \
	    --loglevel=error >npm-install.log 2>&1; then
		echo "interop: npm install failed:" >&2
		sed 's/^/    /' npm-install.log >&2
		exit 1
	fi
	rm -f npm-install.log
	touch node_modules
fi

out=$(mktemp "${TMPDIR:-/tmp}/tracestitch-interop.XXXXXX")
trap 'rm -f "$out"' EXIT
rc=0
# In the background so a signal reaches the trap; node --test stops its
# own children, timeout(1) bounds the whole run.
BUILD=$BUILD timeout "$TIMEOUT" node --test --test-concurrency=1 \
    --test-reporter=tap "$HERE"/*.test.mjs >"$out" 2>&1 &
wait $! || rc=$?
cat "$out"
pass=$(awk '/^# pass / { print $3 }' "$out")
fail=$(awk '/^# fail / { print $3 }' "$out")
skip=$(awk '/^# skipped / { print $3 }' "$out")
pass=${pass:-0}
fail=${fail:-0}
if [ "$rc" -eq 124 ]; then
	echo "interop: timed out after ${TIMEOUT}s" >&2
	fail=$((fail + 1))
elif [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
	fail=1
fi
echo "interop: $pass passed, $fail failed${skip:+, $skip skipped}"
[ "$fail" -eq 0 ]
