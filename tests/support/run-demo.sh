#!/bin/bash
# run-demo.sh -- `make run`: the demo backend on 127.0.0.1:9000 and the
# gateway with conf/demo.yaml (127.0.0.1:8080, admin 127.0.0.1:9901) in the
# foreground.  Prints two curl commands to try; Ctrl-C stops both processes
# by PID and exits 0.  BUILD names the build directory (default: build).
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BACKEND=$BUILD/tests/support/demo_backend
GATEWAY=$BUILD/src/tracestitch
CONF=conf/demo.yaml
BACKEND_PORT=9000
LISTEN_PORT=8080
ADMIN_PORT=9901
WAIT_SECONDS=10

backend_pid=""
gateway_pid=""

die() {
	echo "run-demo: $*" >&2
	exit 1
}

stop_all() {
	local pid
	for pid in $gateway_pid $backend_pid; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in $gateway_pid $backend_pid; do
		wait "$pid" 2>/dev/null || true
	done
	gateway_pid=""
	backend_pid=""
}

on_signal() {
	echo
	echo "run-demo: stopping (gateway ${gateway_pid:-none}," \
	    "backend ${backend_pid:-none})"
	stop_all
	exit 0
}

# Prints the HTTP status code curl got from URL, 000 when nothing answered.
http_code() {
	curl -s -o /dev/null -m 1 -w '%{http_code}' "$1" 2>/dev/null || true
}

# Waits until URL answers with any HTTP status while PID is alive.
await_http() {
	local url=$1 pid=$2 what=$3 i code
	for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || die "$what exited during start-up"
		code=$(http_code "$url")
		if [ "$code" != "000" ] && [ -n "$code" ]; then
			return 0
		fi
		sleep 0.1
	done
	die "$what did not answer on $url within ${WAIT_SECONDS}s"
}

[ -x "$BACKEND" ] || die "$BACKEND not built (make build)"
[ -x "$GATEWAY" ] || die "$GATEWAY not built (make build)"
[ -f "$CONF" ] || die "$CONF is missing"

for port in $BACKEND_PORT $LISTEN_PORT $ADMIN_PORT; do
	if [ "$(http_code "http://127.0.0.1:$port/")" != "000" ]; then
		die "something already answers on 127.0.0.1:$port; stop it first"
	fi
done

trap on_signal INT TERM
trap stop_all EXIT

"$BACKEND" -p "$BACKEND_PORT" &
backend_pid=$!
await_http "http://127.0.0.1:$BACKEND_PORT/" "$backend_pid" "demo backend"

"$GATEWAY" -c "$CONF" &
gateway_pid=$!
await_http "http://127.0.0.1:$ADMIN_PORT/healthz" "$gateway_pid" "tracestitch admin"
await_http "http://127.0.0.1:$LISTEN_PORT/" "$gateway_pid" "tracestitch"

cat <<EOF

tracestitch is up: http://127.0.0.1:$LISTEN_PORT -> demo backend 127.0.0.1:$BACKEND_PORT
admin: http://127.0.0.1:$ADMIN_PORT/healthz /readyz /metrics

A browser preflight asking for every tracing header:

  curl -i -X OPTIONS http://127.0.0.1:$LISTEN_PORT/api/hello \\
    -H 'Origin: http://localhost:3000' \\
    -H 'Access-Control-Request-Method: GET' \\
    -H 'Access-Control-Request-Headers: x-datadog-trace-id,x-datadog-parent-id,x-datadog-origin,x-datadog-sampling-priority,traceparent,tracestate,baggage'

A GET carrying the headers the Datadog RUM SDK sends:

  curl -i http://127.0.0.1:$LISTEN_PORT/api/hello \\
    -H 'Origin: http://localhost:3000' \\
    -H 'x-datadog-trace-id: 5474458728733560230' \\
    -H 'x-datadog-parent-id: 67667974448284343' \\
    -H 'x-datadog-origin: rum' \\
    -H 'x-datadog-sampling-priority: 1' \\
    -H 'traceparent: 00-00000000000000004bf92f3577b34da6-00f067aa0ba902b7-01' \\
    -H 'tracestate: dd=s:1;o:rum' \\
    -H 'baggage: session.id=4c1f3b2a-demo'

Spans are printed on stdout (exporter: stdout).  Ctrl-C stops both.
EOF

# Foreground until Ctrl-C, or until one of the two exits on its own.
set +e
wait -n "$backend_pid" "$gateway_pid"
rc=$?
set -e
echo "run-demo: a process exited on its own (status $rc); stopping" >&2
stop_all
exit 1
