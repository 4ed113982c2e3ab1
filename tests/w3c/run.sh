#!/bin/bash
# tests/w3c/run.sh -- `make w3c` (run by `make test`): the W3C Trace
# Context test suite (w3c/trace-context, folder test/) through the release
# gateway, SPEC_LEVEL 2 and STRICT_LEVEL 2, fan-out mode; the bar is every
# case.  The suite, its runner (run_w3c.sh) and the adapter that sits on
# both sides of the gateway are not in this repository: they live in
# W3C_DIR (default ../shared/conformance/w3c beside the repository top).
#
#   harness -> adapter front -> tracestitch -> adapter back -> harness
#
# Every port is picked free by the kernel (bind to port 0, read it, close)
# and every process started here is stopped by its PID.  Without the suite
# the run is skipped with a message, or fails when CI is set.
#
# Environment: BUILD (build dir, default build), W3C_DIR, W3C_TIMEOUT
# (seconds for the whole harness run, default 300).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
case $BUILD in
/*) ;;
*) BUILD=$ROOT/$BUILD ;;
esac
GATEWAY=$BUILD/src/tracestitch
W3C_DIR=${W3C_DIR:-$ROOT/../shared/conformance/w3c}

if [ ! -x "$W3C_DIR/run_w3c.sh" ] || [ ! -f "$W3C_DIR/suite/test.py" ]; then
	echo "w3c: no W3C Trace Context suite at $W3C_DIR (expected" \
	    "run_w3c.sh and suite/test.py there; set W3C_DIR)" >&2
	if [ -n "${CI:-}" ]; then
		echo "w3c: CI is set, so a missing suite is a failure" >&2
		exit 1
	fi
	echo "w3c: skipped"
	exit 0
fi
if [ ! -x "$GATEWAY" ]; then
	echo "w3c: $GATEWAY not built (make build)" >&2
	exit 1
fi

# Four distinct free ports: the sockets stay open until all four are read.
read -r GW_PORT HARNESS_PORT W3C_BACK_PORT W3C_FRONT_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss:
    s.close()
')
export HARNESS_PORT W3C_BACK_PORT W3C_FRONT_PORT

dir=$(mktemp -d "${TMPDIR:-/tmp}/tracestitch-w3c.XXXXXX")
GW_PID=
keep=
cleanup() {
	if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
		kill "$GW_PID" 2>/dev/null || true
		wait "$GW_PID" 2>/dev/null || true
	fi
	# The logs of a failed run stay for a look; a passing run leaves
	# nothing behind.
	if [ -z "$keep" ]; then
		rm -rf "$dir"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$dir/tracestitch.yaml" <<EOF
server:
  listen: ["127.0.0.1:$GW_PORT"]
  workers: 1
routes:
  - name: w3c
    upstream:
      url: http://127.0.0.1:$W3C_BACK_PORT
propagation:
  extract: [datadog, tracecontext, baggage]
  inject: [datadog, tracecontext, baggage]
exporter:
  type: none
logging:
  level: warn
  access_log: off
EOF

# A clean environment: DD_* variables of the caller would override the file.
env -i PATH="$PATH" "$GATEWAY" -c "$dir/tracestitch.yaml" \
    >"$dir/gateway.log" 2>&1 &
GW_PID=$!

# Wait (bounded) until the gateway accepts connections, or has exited.
ready=0
for _ in $(seq 100); do
	if ! kill -0 "$GW_PID" 2>/dev/null; then
		break
	fi
	if (exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT") 2>/dev/null; then
		ready=1
		break
	fi
	sleep 0.1
done
if [ "$ready" -ne 1 ]; then
	echo "w3c: the gateway did not start on 127.0.0.1:$GW_PORT:" >&2
	keep=1
	sed 's/^/    /' "$dir/gateway.log" >&2
	exit 1
fi

# run_w3c.sh prints its own closing line "w3c: N passed, M failed" and
# exits 0 only when every case passed.
rc=0
W3C_MODE=fanout SPEC_LEVEL=2 STRICT_LEVEL=2 W3C_OUT="$dir/out" \
    W3C_TIMEOUT=${W3C_TIMEOUT:-300} \
    "$W3C_DIR/run_w3c.sh" "http://127.0.0.1:$GW_PORT/test" || rc=$?
if ! kill -0 "$GW_PID" 2>/dev/null; then
	echo "w3c: the gateway exited during the run:" >&2
	sed 's/^/    /' "$dir/gateway.log" >&2
	rc=1
fi
if [ "$rc" -ne 0 ]; then
	keep=1
	echo "w3c: failures (logs kept in $dir):" >&2
	grep -E '^(FAIL|ERROR|AssertionError)' \
	    "$dir/out/harness.log" >&2 || true
fi
exit "$rc"
