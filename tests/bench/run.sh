#!/bin/bash
# tests/bench/run.sh -- `make bench`: tracestitch against nginx, same run,
# same backend, same machine (loopback only).
#
# One nginx process serving a fixed 200 is the backend of both proxies.
# Each proxy has one worker and is pinned to CPU 0; wrk (one thread) and
# the backend are pinned to CPU 1.  nginx proxies with HTTP/1.1 and upstream
# keep-alive and adds the same CORS headers as the gateway; it answers
# preflights itself (add_header + return 204), as the gateway does.  For
# every load, the targets alternate for BENCH_REPS repetitions of
# BENCH_DURATION seconds (odd repetitions in the given order, even ones
# reversed); the table at the end gives the medians and the ratios to
# nginx.
#
# Per run: req/s, p50 and p99 (wrk --latency), CPU per request (the proxy
# process's utime+stime delta from /proc/PID/stat over wrk's request
# count) and the new upstream connections the proxy opened (the backend's
# stub_status "accepts" delta, less the one connection of the reading
# itself).  Per target, over the whole run: idle RSS (VmRSS after start,
# before any load, and again BENCH_IDLE seconds after the last load) and
# peak RSS (VmHWM), from /proc/PID/status.
#
# Targets: nginx, tracestitch (exporter none: spans off),
# nginx-3 and tracestitch-3 (the same, with three servers behind the
# route: nginx's upstream block lists three, the gateway's route has
# servers: [three] with the default round robin; the one backend nginx
# listens on three ports, so the backend's work is the same and only the
# proxies' balancing differs; issue 13 item 8 compares their CPU per
# request with the one-server rows, in a second table) and
# tracestitch-spans (a second gateway, exporter datadog to the fake agent
# tests/support/fake_agent -q, pinned with the load; default queue, flush
# interval and exporter.thread_nice, or BENCH_THREAD_NICE).  For
# tracestitch-spans every run also checks delivery: the spans the agent
# received plus tracestitch_export_dropped_spans_total against wrk's
# request count.
#
# Loads:
# - get: the GET of issue 11, with distinct ids per request: Origin,
#   Referer, a browser User-Agent, x-datadog-trace-id/-parent-id/
#   -sampling-priority/-origin/-tags (_dd.p.dm=-4), traceparent and
#   tracestate (dd=s:1;o:rum;t.dm:-4,congo=t61rcWkgMzE), proxied to the
#   backend.  wrk builds 65,536 such requests once (init) and sends them
#   in turn, so that building them costs wrk nothing per request.
# - get-paced: the same requests, each connection waiting a random 1 ..
#   2 x BENCH_PACED_MS - 1 ms (mean BENCH_PACED_MS, default 2: at most
#   50 x 1000 / 2 = 25,000 req/s with 50 connections, less by the
#   latency; some 30% of nginx's saturated rate) after each answer before its next
#   request (wrk's delay()).  Why wrk and delay(): pacing per connection
#   keeps wrk's latency exact for every request sent; what a pacing
#   client omits (coordinated omission) are the requests a stalled
#   connection would have sent meanwhile -- here one connection of 50
#   for the length of a stall, which the p99 of the other 49 still shows.
#   h2load paces connections, not requests; wrk2 is not in Debian.
# - plain: a GET with no Origin and no trace headers (the gateway still
#   starts a new trace); not run unless named in BENCH_LOADS.
# - preflight: OPTIONS with Origin + Access-Control-Request-*, answered
#   by the proxy.
#
# Every port is picked free at start; every process is stopped by its
# PID; every wrk run is bounded by timeout(1).  Exits 1 when a target
# cannot start.
#
# Environment: BUILD (build dir, default build), BENCH_TARGETS ("nginx
# tracestitch nginx-3 tracestitch-3 tracestitch-spans", the last only
# when the fake agent is built), BENCH_LOADS ("get get-paced preflight"), BENCH_DURATION (10),
# BENCH_REPS (5), BENCH_CONNECTIONS (50), BENCH_PACED_MS (2), BENCH_IDLE
# (3, seconds before the idle RSS after the loads), BENCH_THREAD_NICE
# (exporter.thread_nice of tracestitch-spans; unset: the default),
# BENCH_LOG_LEVEL (logging.level of tracestitch-spans, default warn;
# debug adds the exporter's CPU per batch at the end),
# BENCH_OUT (results TSV, default $BUILD/bench-results.tsv; the table
# goes to ${BENCH_OUT%.tsv}.md too), NGINX, WRK.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
case $BUILD in
/*) ;;
*) BUILD=$ROOT/$BUILD ;;
esac
GATEWAY=$BUILD/src/tracestitch
FAKE_AGENT=$BUILD/tests/support/fake_agent
if [ -x "$FAKE_AGENT" ]; then
	TARGETS=${BENCH_TARGETS:-nginx tracestitch nginx-3 tracestitch-3 tracestitch-spans}
else
	TARGETS=${BENCH_TARGETS:-nginx tracestitch nginx-3 tracestitch-3}
fi
LOADS=${BENCH_LOADS:-get get-paced preflight}
DURATION=${BENCH_DURATION:-10}
REPS=${BENCH_REPS:-5}
CONNS=${BENCH_CONNECTIONS:-50}
PACED_MS=${BENCH_PACED_MS:-2}
IDLE=${BENCH_IDLE:-3}
THREAD_NICE=${BENCH_THREAD_NICE:-}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
OUT=${BENCH_OUT:-$BUILD/bench-results.tsv}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
WRK=${WRK:-$(command -v wrk || echo wrk)}
START_TIMEOUT=10
ORIGIN=http://localhost:3000
TRACE_HEADERS=x-datadog-trace-id,x-datadog-parent-id,x-datadog-origin,x-datadog-sampling-priority,x-datadog-tags,traceparent,tracestate,baggage
STUB=/bench-stub-status
# The HTTP/2 loads (h2_setup, h2_run): tests/bench/h2.sh.
. "$ROOT/tests/bench/h2.sh"

pids=()
wrk_pid=""
tmp=""

die() {
	echo "bench: $*" >&2
	exit 1
}

cleanup() {
	local pid
	if [ -n "$wrk_pid" ]; then
		kill -TERM "$wrk_pid" 2>/dev/null || true
		wait "$wrk_pid" 2>/dev/null || true
	fi
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	pids=()
	if [ -n "$tmp" ]; then
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v "$NGINX" >/dev/null 2>&1 || die "nginx not found (make deps)"
command -v "$WRK" >/dev/null 2>&1 || die "wrk not found (make deps)"
command -v curl >/dev/null 2>&1 || die "curl not found (make deps)"
command -v python3 >/dev/null 2>&1 || die "python3 not found (make deps)"
case " $TARGETS " in
*" tracestitch "* | *" tracestitch-3 "* | *" tracestitch-spans "*)
	[ -x "$GATEWAY" ] || die "$GATEWAY not built (make build)" ;;
esac
case " $TARGETS " in
*" tracestitch-spans "*)
	[ -x "$FAKE_AGENT" ] || die "$FAKE_AGENT not built (make build)" ;;
esac

# CPU 0 for the proxies, CPU 1 for wrk and the backend.
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
	PIN_PROXY="taskset -c 0"
	PIN_LOAD="taskset -c 1"
else
	echo "bench: fewer than 2 CPUs or no taskset: running unpinned" >&2
	PIN_PROXY=""
	PIN_LOAD=""
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tracestitch-bench.XXXXXX")
mkdir -p "$tmp/nginx-temp"

# Free loopback ports, all distinct (the sockets are held until all are
# picked): backend, nginx proxy, tracestitch listen, tracestitch admin,
# the same two for tracestitch-spans, the fake agent; the backend's
# second and third ports, nginx-3, and the two of tracestitch-3.
read -r BACKEND_PORT NGINX_PORT TS_PORT TS_ADMIN_PORT TS2_PORT TS2_ADMIN_PORT \
    AGENT_PORT BACKEND2_PORT BACKEND3_PORT NGINX3_PORT TS3_PORT TS3_ADMIN_PORT \
    < <(python3 -c '
import socket
socks = []
for _ in range(12):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
')

# The parts of an nginx configuration that keep every file inside $tmp.
nginx_common() {
	cat <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $tmp/$1.pid;
error_log $tmp/$1-error.log warn;
events { worker_connections 4096; }
EOF
}

nginx_http_common() {
	cat <<EOF
	access_log off;
	client_body_temp_path $tmp/nginx-temp/body-$1;
	proxy_temp_path $tmp/nginx-temp/proxy-$1;
	fastcgi_temp_path $tmp/nginx-temp/fastcgi-$1;
	uwsgi_temp_path $tmp/nginx-temp/uwsgi-$1;
	scgi_temp_path $tmp/nginx-temp/scgi-$1;
	keepalive_requests 1000000;
	keepalive_timeout 60s;
EOF
}

{
	nginx_common backend
	echo "http {"
	nginx_http_common backend
	cat <<EOF
	server {
		# Three ports: the three servers of nginx-3 and tracestitch-3.
		listen 127.0.0.1:$BACKEND_PORT;
		listen 127.0.0.1:$BACKEND2_PORT;
		listen 127.0.0.1:$BACKEND3_PORT;
		location / {
			default_type text/plain;
			return 200 "hello from the bench backend\n";
		}
		# Its "accepts": the connections the proxies opened.
		location = $STUB {
			stub_status;
		}
	}
}
EOF
} >"$tmp/backend.conf"

# nginx as the proxy: the same work the gateway does, CORS headers on
# proxied answers, preflights answered locally.  $1: its name, $2: its
# port, then the backend ports of its upstream block.
nginx_proxy_conf() {
	local name=$1 port=$2 p
	shift 2
	nginx_common "$name"
	echo "http {"
	nginx_http_common "$name"
	echo "	upstream bench_backend {"
	for p in "$@"; do
		echo "		server 127.0.0.1:$p;"
	done
	cat <<EOF
		keepalive 64;
	}
	server {
		listen 127.0.0.1:$port;
		location / {
			if (\$request_method = OPTIONS) {
				add_header Access-Control-Allow-Origin \$http_origin always;
				add_header Access-Control-Allow-Methods "GET, HEAD, POST" always;
				add_header Access-Control-Allow-Headers "Content-Type, Authorization, $TRACE_HEADERS" always;
				add_header Access-Control-Max-Age 600 always;
				add_header Vary "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" always;
				return 204;
			}
			proxy_pass http://bench_backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
			proxy_set_header X-Forwarded-For \$remote_addr;
			proxy_set_header X-Forwarded-Proto \$scheme;
			proxy_set_header X-Forwarded-Host \$host;
			add_header Access-Control-Allow-Origin \$http_origin always;
			add_header Vary Origin always;
			add_header Timing-Allow-Origin \$http_origin always;
		}
	}
}
EOF
}
nginx_proxy_conf proxy "$NGINX_PORT" "$BACKEND_PORT" >"$tmp/proxy.conf"
nginx_proxy_conf proxy3 "$NGINX3_PORT" "$BACKEND_PORT" "$BACKEND2_PORT" \
    "$BACKEND3_PORT" >"$tmp/proxy3.conf"

cat >"$tmp/tracestitch.yaml" <<EOF
# Generated by tests/bench/run.sh.
server:
  listen: ["127.0.0.1:$TS_PORT"]
  workers: 1
admin:
  listen: "127.0.0.1:$TS_ADMIN_PORT"
routes:
  - name: bench
    path_prefix: /
    upstream:
      url: http://127.0.0.1:$BACKEND_PORT
      keepalive: 64
cors:
  allowed_origins: ["$ORIGIN"]
  allowed_methods: [GET, HEAD, POST]
  allowed_headers: [Content-Type, Authorization]
  max_age: 600
exporter:
  type: none
logging:
  level: warn
  access_log: "off"
EOF

# tracestitch-spans: the same, spans exported to the fake agent (the
# default queue and flush interval).
sed -e "s/127.0.0.1:$TS_PORT\"/127.0.0.1:$TS2_PORT\"/" \
    -e "s/127.0.0.1:$TS_ADMIN_PORT\"/127.0.0.1:$TS2_ADMIN_PORT\"/" \
    -e "/^  type: none/a\\  datadog_url: http://127.0.0.1:$AGENT_PORT" \
    -e "s/^  type: none/  type: datadog/" \
    "$tmp/tracestitch.yaml" >"$tmp/tracestitch-spans.yaml"
# tracestitch-3: the same, three servers behind the route.
sed -e "s/127.0.0.1:$TS_PORT\"/127.0.0.1:$TS3_PORT\"/" \
    -e "s/127.0.0.1:$TS_ADMIN_PORT\"/127.0.0.1:$TS3_ADMIN_PORT\"/" \
    -e "s|^      url: http://127.0.0.1:$BACKEND_PORT\$|      servers: [\"http://127.0.0.1:$BACKEND_PORT\", \"http://127.0.0.1:$BACKEND2_PORT\", \"http://127.0.0.1:$BACKEND3_PORT\"]|" \
    "$tmp/tracestitch.yaml" >"$tmp/tracestitch-3.yaml"
grep -q '^      servers: ' "$tmp/tracestitch-3.yaml" ||
    die "tracestitch-3.yaml: the servers line was not written"
# The exporter's cost per batch (its debug line) when asked for.
sed -i "s/^  level: warn/  level: $LOG_LEVEL/" "$tmp/tracestitch-spans.yaml"
if [ -n "$THREAD_NICE" ]; then
	sed -i "/^  datadog_url:/a\\  thread_nice: $THREAD_NICE" \
	    "$tmp/tracestitch-spans.yaml"
fi

h2_setup

cat >"$tmp/preflight.lua" <<EOF
wrk.method = "OPTIONS"
wrk.headers["Origin"] = "$ORIGIN"
wrk.headers["Access-Control-Request-Method"] = "GET"
wrk.headers["Access-Control-Request-Headers"] = "$TRACE_HEADERS"
EOF

cat >"$tmp/plain.lua" <<EOF
wrk.method = "GET"
EOF

# The GET of issue 11: distinct ids per request (ids below 2^53, exact
# in LuaJIT's doubles), the same trace in the datadog and W3C headers.
# Built in init(): wrk sets the Host header just before it.
cat >"$tmp/get-requests.lua" <<EOF
local reqs, n, i = {}, 65536, 0
init = function(args)
math.randomseed(20261207)
for k = 1, n do
	local hi, lo = math.random(1, 2097151), math.random(0, 4294967295)
	local phi, plo = math.random(1, 2097151), math.random(0, 4294967295)
	local tid = string.format("%.0f", hi * 4294967296 + lo)
	local pid = string.format("%.0f", phi * 4294967296 + plo)
	local tp = string.format("00-0000000000000000%08x%08x-%08x%08x-01",
	    hi, lo, phi, plo)
	reqs[k] = wrk.format("GET", "/api/hello", {
		["Origin"] = "$ORIGIN",
		["Referer"] = "$ORIGIN/app/checkout?step=2",
		["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		["Accept"] = "application/json",
		["x-datadog-trace-id"] = tid,
		["x-datadog-parent-id"] = pid,
		["x-datadog-sampling-priority"] = "1",
		["x-datadog-origin"] = "rum",
		["x-datadog-tags"] = "_dd.p.dm=-4",
		["traceparent"] = tp,
		["tracestate"] = "dd=s:1;o:rum;t.dm:-4,congo=t61rcWkgMzE",
	})
end
end
request = function()
	i = i % n + 1
	return reqs[i]
end
EOF
cp "$tmp/get-requests.lua" "$tmp/get.lua"
{
	cat "$tmp/get-requests.lua"
	cat <<EOF
-- Paced: 1 .. 2 x $PACED_MS - 1 ms after each answer (mean $PACED_MS).
delay = function()
	return math.random(1, 2 * $PACED_MS - 1)
end
EOF
} >"$tmp/get-paced.lua"

# Status code of one request of the given load; 000 if nothing answers.
probe() {
	local load=$1 url=$2
	if [ "$load" = preflight ]; then
		curl -s -o /dev/null -m 2 -w '%{http_code}' -X OPTIONS "$url" \
		    -H "Origin: $ORIGIN" \
		    -H 'Access-Control-Request-Method: GET' \
		    -H "Access-Control-Request-Headers: $TRACE_HEADERS" || true
	else
		curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" \
		    -H "Origin: $ORIGIN" || true
	fi
}

# Starts a process in the background; its PID goes to the named variable.
start() {
	local var=$1 log=$2
	shift 2
	"$@" >"$log" 2>&1 &
	pids+=("$!")
	printf -v "$var" '%s' "$!"
}

# Waits until url answers (any status) while pid lives.
await() {
	local what=$1 pid=$2 url=$3 log=$4 i code
	for ((i = 0; i < START_TIMEOUT * 20; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: $what exited at start; its log:" >&2
			sed 's/^/    /' "$log" >&2 || true
			exit 1
		fi
		code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$url" || true)
		if [ -n "$code" ] && [ "$code" != 000 ]; then
			return 0
		fi
		sleep 0.05
	done
	echo "bench: $what did not answer $url in ${START_TIMEOUT}s; log:" >&2
	sed 's/^/    /' "$log" >&2 || true
	exit 1
}

# utime + stime of a process, in clock ticks.
cpu_ticks() {
	local stat
	stat=$(cat "/proc/$1/stat") || die "process $1 is gone"
	stat=${stat##*) }
	# After "pid (comm) ": field 3 is state; utime and stime are 14, 15.
	set -- $stat
	echo $((${12} + ${13}))
}

# Spans the fake agent received so far.
agent_spans() {
	awk -F'"spans":' 'NF > 1 { split($2, a, /[,}]/); s += a[1] }
	    END { print s + 0 }' "$tmp/agent.jsonl" 2>/dev/null || echo 0
}

# Sum of tracestitch_export_dropped_spans_total of tracestitch-spans.
spans_dropped() {
	curl -s -m 2 "http://127.0.0.1:$TS2_ADMIN_PORT/metrics" | awk '
	    /^tracestitch_export_dropped_spans_total/ { s += $NF }
	    END { printf "%d", s }'
}

# wrk's latency ("850.12us", "1.23ms", "1.02s") in microseconds.
to_us() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) m = 1
		else if (v ~ /ms$/) m = 1000
		else if (v ~ /m$/) m = 60000000
		else if (v ~ /s$/) m = 1000000
		else m = 1
		printf "%.0f", n * m
	}'
}

start backend_pid "$tmp/backend.out" $PIN_LOAD "$NGINX" -e "$tmp/backend-error.log" \
    -p "$tmp" -c "$tmp/backend.conf"
await "backend nginx" "$backend_pid" "http://127.0.0.1:$BACKEND_PORT/" \
    "$tmp/backend-error.log"

declare -A target_pid target_url
for t in $TARGETS; do
	case $t in
	nginx)
		start pid "$tmp/proxy.out" $PIN_PROXY "$NGINX" \
		    -e "$tmp/proxy-error.log" -p "$tmp" -c "$tmp/proxy.conf"
		target_url[$t]=http://127.0.0.1:$NGINX_PORT/api/hello
		await "nginx proxy" "$pid" "${target_url[$t]}" "$tmp/proxy-error.log"
		;;
	tracestitch)
		start pid "$tmp/tracestitch.log" $PIN_PROXY "$GATEWAY" \
		    -c "$tmp/tracestitch.yaml"
		target_url[$t]=http://127.0.0.1:$TS_PORT/api/hello
		await tracestitch "$pid" "${target_url[$t]}" "$tmp/tracestitch.log"
		;;
	nginx-3)
		start pid "$tmp/proxy3.out" $PIN_PROXY "$NGINX" \
		    -e "$tmp/proxy3-error.log" -p "$tmp" -c "$tmp/proxy3.conf"
		target_url[$t]=http://127.0.0.1:$NGINX3_PORT/api/hello
		await "nginx-3 proxy" "$pid" "${target_url[$t]}" \
		    "$tmp/proxy3-error.log"
		;;
	tracestitch-3)
		start pid "$tmp/tracestitch-3.log" $PIN_PROXY "$GATEWAY" \
		    -c "$tmp/tracestitch-3.yaml"
		target_url[$t]=http://127.0.0.1:$TS3_PORT/api/hello
		await tracestitch-3 "$pid" "${target_url[$t]}" \
		    "$tmp/tracestitch-3.log"
		;;
	tracestitch-spans)
		start agent_pid "$tmp/agent.out" $PIN_LOAD "$FAKE_AGENT" -q \
		    -p "$AGENT_PORT" -o "$tmp/agent.jsonl"
		start pid "$tmp/tracestitch-spans.log" $PIN_PROXY "$GATEWAY" \
		    -c "$tmp/tracestitch-spans.yaml"
		target_url[$t]=http://127.0.0.1:$TS2_PORT/api/hello
		await tracestitch-spans "$pid" "${target_url[$t]}" \
		    "$tmp/tracestitch-spans.log"
		;;
	*)
		die "unknown target $t (nginx, tracestitch, nginx-3," \
		    "tracestitch-3, tracestitch-spans)"
		;;
	esac
	target_pid[$t]=$pid
done

# Which loads each target can run: get must be 200, preflight 204/200.
declare -A runnable
for load in $LOADS; do
	for t in $TARGETS; do
		code=$(probe "$load" "${target_url[$t]}")
		case $load:$code in
		get:200 | get-paced:200 | plain:200 | preflight:204 | \
		    preflight:200)
			runnable[$load:$t]=1 ;;
		get:* | get-paced:* | plain:* | preflight:*)
			echo "bench: $t answers $load with $code; $load skipped" \
			    "for $t" >&2 ;;
		*)
			die "unknown load $load (get, get-paced, plain," \
			    "preflight)" ;;
		esac
	done
done

# After a tracestitch-spans run: wait (flush interval + a request
# timeout, at most 10 s) until every request of the run is accounted for
# as a span the agent received or a dropped span, then log the counts.
# wrk's count excludes requests cut off when it stops, whose spans are
# exported too, so accounted >= wrk's count is 100% delivery.
spans_delivery() {
	local load=$1 rep=$2 reqs=$3 i s d
	# Preflights are not traced (tracing.trace_preflights: false).
	if [ "$load" = preflight ]; then
		return 0
	fi
	for ((i = 0; i < 100; i++)); do
		s=$(($(agent_spans) - s0))
		d=$(($(spans_dropped) - d0))
		if [ $((s + d)) -ge "$reqs" ]; then
			break
		fi
		sleep 0.1
	done
	printf '%-10s %-12s %3d spans: wrk %s, agent received %s, dropped %s (%s%% delivered)\n' \
	    "$load" tracestitch-spans "$rep" "$reqs" "$s" "$d" \
	    "$(awk -v s="$s" -v n="$reqs" 'BEGIN { printf "%.2f", (n > 0 ? 100 * s / n : 0) }')"
	printf '%s\t%s\t%s\t%s\t%s\n' "$load" "$rep" "$reqs" "$s" "$d" \
	    >>"$tmp/delivery.tsv"
}

# The backend's accepted connections so far (nginx stub_status), this
# reading's own connection included.
backend_accepts() {
	curl -s -m 2 "http://127.0.0.1:$BACKEND_PORT$STUB" |
	    awk 'p { print $1; exit } /accepts handled requests/ { p = 1 }'
}

# A field of /proc/PID/status (VmRSS, VmHWM) in kB.
proc_kb() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" ||
	    die "process $1 is gone"
}

hz=$(getconf CLK_TCK)
printf 'load\ttarget\trep\treqs\treq_s\tp50_us\tp99_us\tcpu_us_req\tnon2xx\tupstream_new\n' \
    >"$tmp/results.tsv"
printf 'target\tidle_start_kb\tpeak_kb\tidle_end_kb\n' >"$tmp/rss.tsv"

# Idle RSS before any load (the probes above are a handful of requests).
declare -A rss_start
for t in $TARGETS; do
	rss_start[$t]=$(proc_kb "${target_pid[$t]}" VmRSS)
done

echo "bench: ${DURATION}s x $REPS alternating reps, $CONNS connections," \
    "wrk 1 thread; paced: ${PACED_MS} ms mean delay per connection;" \
    "backend 127.0.0.1:$BACKEND_PORT; load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %-17s %3s %10s %8s %8s %10s %7s %8s\n' load target rep req/s \
    p50_us p99_us cpu_us/req non2xx up_new
for load in $LOADS; do
	for ((rep = 1; rep <= REPS; rep++)); do
		# Alternate the order: odd reps as given, even reps reversed.
		order=$TARGETS
		if ((rep % 2 == 0)); then
			order=$(echo "$TARGETS" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }')
		fi
		for t in $order; do
			[ -n "${runnable[$load:$t]:-}" ] || continue
			pid=${target_pid[$t]}
			if [ "$t" = tracestitch-spans ]; then
				s0=$(agent_spans)
				d0=$(spans_dropped)
			fi
			a0=$(backend_accepts)
			c0=$(cpu_ticks "$pid")
			# In the background, so that a signal's trap runs at once.
			timeout $((DURATION + 15)) $PIN_LOAD "$WRK" -t1 \
			    -c"$CONNS" -d"${DURATION}s" --latency \
			    -s "$tmp/$load.lua" "${target_url[$t]}" \
			    >"$tmp/wrk.out" 2>&1 &
			wrk_pid=$!
			wait "$wrk_pid" || die "wrk failed against $t:" \
			    "$(cat "$tmp/wrk.out")"
			wrk_pid=""
			out=$(cat "$tmp/wrk.out")
			c1=$(cpu_ticks "$pid")
			a1=$(backend_accepts)
			[ -n "$a0" ] && [ -n "$a1" ] ||
			    die "the backend's stub_status did not answer"
			upnew=$((a1 - a0 - 1))
			reqs=$(echo "$out" | awk '/ requests in / { print $1 }')
			rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
			p50=$(echo "$out" | awk '$1 == "50%" { print $2 }')
			p99=$(echo "$out" | awk '$1 == "99%" { print $2 }')
			non2xx=$(echo "$out" | awk '/Non-2xx or 3xx responses:/ { print $NF }')
			non2xx=${non2xx:-0}
			[ -n "$reqs" ] && [ "$reqs" -gt 0 ] ||
			    die "wrk reported no requests against $t: $out"
			[ -n "$p50" ] && [ -n "$p99" ] ||
			    die "wrk printed no percentiles against $t: $out"
			p50us=$(to_us "$p50")
			p99us=$(to_us "$p99")
			cpu=$(awk -v d=$((c1 - c0)) -v hz="$hz" -v n="$reqs" \
			    'BEGIN { printf "%.2f", d * 1000000 / hz / n }')
			printf '%-10s %-17s %3d %10s %8s %8s %10s %7s %8s\n' \
			    "$load" "$t" "$rep" "$rps" "$p50us" "$p99us" "$cpu" \
			    "$non2xx" "$upnew"
			printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$load" \
			    "$t" "$rep" "$reqs" "$rps" "$p50us" "$p99us" "$cpu" \
			    "$non2xx" "$upnew" >>"$tmp/results.tsv"
			if [ "$t" = tracestitch-spans ]; then
				spans_delivery "$load" "$rep" "$reqs"
			fi
		done
	done
done

# Idle again: the export queue gives its spare chunks back after two
# windows of 20 ticks of 50 ms (docs/exporters.md); BENCH_IDLE seconds
# covers that.
sleep "$IDLE"
for t in $TARGETS; do
	printf '%s\t%s\t%s\t%s\n' "$t" "${rss_start[$t]}" \
	    "$(proc_kb "${target_pid[$t]}" VmHWM)" \
	    "$(proc_kb "${target_pid[$t]}" VmRSS)" >>"$tmp/rss.tsv"
done
touch "$tmp/delivery.tsv"

# One markdown table: medians per load and target, the ratios to nginx,
# then memory and delivery over the whole run.
echo
awk -F'\t' -v reps="$REPS" -v conns="$CONNS" -v dur="$DURATION" '
FNR == 1 { f++ }
f == 1 {
	if (FNR == 1) next
	k = $1 SUBSEP $2
	n[k]++
	v[k, 1, n[k]] = $5; v[k, 2, n[k]] = $6 / 1000
	v[k, 3, n[k]] = $7 / 1000; v[k, 4, n[k]] = $8; v[k, 5, n[k]] = $10
	up[$2] += $10
	if (!($1 in seen)) { seen[$1] = 1; loads[++nl] = $1 }
	next
}
f == 2 {
	if (FNR == 1) next
	rss[$1, 1] = $3 / 1024; rss[$1, 2] = $2 / 1024; rss[$1, 3] = $4 / 1024
	next
}
f == 3 {
	dn[$1] += $3; ds[$1] += $4; dd[$1] += $5
}
function median(k, m, cnt,    i, j, t, a) {
	for (i = 1; i <= cnt; i++) a[i] = v[k, m, i] + 0
	for (i = 2; i <= cnt; i++)
		for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
			t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
		}
	return cnt % 2 ? a[(cnt + 1) / 2] : (a[cnt / 2] + a[cnt / 2 + 1]) / 2
}
function cell(x, fmt) { return x == "" ? "-" : sprintf(fmt, x) }
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "" : sprintf("%.2f", a / b) }
function rv(t, m,    k) { k = t SUBSEP m; return (k in rss) ? rss[k] : "" }
function med(L, t, m,    k) { k = L SUBSEP t; return (k in n) ? median(k, m, n[k]) : "" }
function row(name, a, b, c, fmt) {
	printf "| %s | %s | %s | %s | %s | %s |\n", name, cell(a, fmt), \
	    cell(b, fmt), ratio(b, a), cell(c, fmt), ratio(c, a)
}
END {
	split("req/s,p50 ms,p99 ms,CPU us/req,new upstream connections per run", names, ",")
	split("%.0f,%.3f,%.3f,%.2f,%.0f", fmts, ",")
	printf "%d alternating repetitions of %d s, %d connections, medians; ratio: against nginx\n\n", reps, dur, conns
	printf "| load, metric | nginx | tracestitch | ratio | tracestitch-spans | ratio |\n"
	printf "|---|---:|---:|---:|---:|---:|\n"
	for (l = 1; l <= nl; l++) {
		L = loads[l]
		for (m = 1; m <= 5; m++)
			row(L ", " names[m], med(L, "nginx", m), \
			    med(L, "tracestitch", m), med(L, "tracestitch-spans", m), fmts[m])
	}
	row("new upstream connections, all runs", up["nginx"], \
	    up["tracestitch"], up["tracestitch-spans"], "%.0f")
	split("peak RSS MiB (VmHWM),idle RSS MiB at start,idle RSS MiB after the loads", rn, ",")
	for (m = 1; m <= 3; m++)
		row(rn[m], rv("nginx", m), rv("tracestitch", m), \
		    rv("tracestitch-spans", m), "%.1f")
	for (l = 1; l <= nl; l++) {
		L = loads[l]
		if (!(L in dn)) continue
		printf "| %s, spans delivered | | | | %.2f%% (agent %d, wrk %d, dropped %d) | |\n", \
		    L, (dn[L] > 0 ? 100 * ds[L] / dn[L] : 0), ds[L], dn[L], dd[L]
	}
	# Three servers behind the route, beside the one-server figures;
	# ratio: three servers against one (issue 13 item 8: CPU per
	# request within 2%).
	three = 0
	for (l = 1; l <= nl; l++)
		if ((loads[l] SUBSEP "nginx-3") in n || \
		    (loads[l] SUBSEP "tracestitch-3") in n)
			three = 1
	if (!three) exit
	printf "\nThree servers behind the route (nginx: an upstream block of three; tracestitch: servers of three, round robin); ratio: three servers against one\n\n"
	printf "| load, metric | nginx, 1 server | nginx, 3 servers | ratio | tracestitch, 1 server | tracestitch, 3 servers | ratio |\n"
	printf "|---|---:|---:|---:|---:|---:|---:|\n"
	for (l = 1; l <= nl; l++) {
		L = loads[l]
		for (m = 1; m <= 5; m++) {
			a = med(L, "nginx", m); b = med(L, "nginx-3", m)
			c = med(L, "tracestitch", m); d = med(L, "tracestitch-3", m)
			printf "| %s, 3 servers, %s | %s | %s | %s | %s | %s | %s |\n", \
			    L, names[m], cell(a, fmts[m]), cell(b, fmts[m]), \
			    ratio(b, a), cell(c, fmts[m]), cell(d, fmts[m]), \
			    ratio(d, c)
		}
	}
}' "$tmp/results.tsv" "$tmp/rss.tsv" "$tmp/delivery.tsv" | tee "$tmp/table.md"

mkdir -p "$(dirname "$OUT")"
cp "$tmp/results.tsv" "$OUT"
cp "$tmp/rss.tsv" "${OUT%.tsv}-rss.tsv"
cp "$tmp/table.md" "${OUT%.tsv}.md"
if [ -s "$tmp/delivery.tsv" ]; then
	echo
	awk -F'\t' '{ n += $3; s += $4; d += $5 }
	    END { printf "spans: wrk %d requests, agent received %d, dropped %d (%.2f%% delivered)\n",
	    n, s, d, (n > 0 ? 100 * s / n : 0) }' "$tmp/delivery.tsv"
	cp "$tmp/delivery.tsv" "${OUT%.tsv}-spans.tsv"
	# The agent decodes every 64th payload in full (-q) and flags one
	# whose spans differ from its X-Datadog-Trace-Count header.
	if grep -q count_mismatch "$tmp/agent.jsonl" 2>/dev/null; then
		die "the agent decoded a payload whose span count differs" \
		    "from its X-Datadog-Trace-Count header"
	fi
	echo "spans: $(grep -c '"spans"' "$tmp/agent.jsonl") payloads," \
	    "every 64th decoded in full, no count mismatch"
fi
# With BENCH_LOG_LEVEL=debug: what each export batch cost the exporter
# thread (exporter.c batch_cost), as a distribution over the run.
if grep -q 'export: batch of' "$tmp/tracestitch-spans.log" 2>/dev/null; then
	grep -o 'export: batch of [0-9]* spans, [0-9]* bytes: [0-9]* us CPU' \
	    "$tmp/tracestitch-spans.log" | awk '{ print $4, $6, $8 }' |
	    sort -n -k3 | awk '
	{ sp[NR] = $1; by += $2; cpu[NR] = $3; tot += $3; ns += $1 }
	END {
		printf "exporter batches: %d, %.0f spans and %.0f KiB each on average; CPU per batch: p50 %d us, p90 %d us, p99 %d us, max %d us; %.2f us per span\n",
		    NR, ns / NR, by / NR / 1024, cpu[int(NR * 0.5) + 1],
		    cpu[int(NR * 0.9) + 1], cpu[int(NR * 0.99) + 1], cpu[NR],
		    (ns > 0 ? tot / ns : 0)
	}' | tee "${OUT%.tsv}-batches.txt"
fi
echo "bench: results in $OUT, the table in ${OUT%.tsv}.md"
h2_run
