#!/bin/bash
# tests/bench/sched_probe.sh -- who holds the worker's core (issue 11,
# "the tail"): the gateway with one worker, spans exported to the fake
# agent, under wrk at saturation (50 connections, the datadog headers),
# pinned as in run.sh (gateway on CPU 0, wrk, backend and agent on CPU
# 1).  For each exporter.thread_nice given (default "0 10": the exporter
# thread as the workers are, then giving way), `perf sched record` on
# CPU 0 for PROBE_RECORD seconds in the middle of the run, then, from
# `perf sched timehist --state`:
#
# - the worker's waits for the core (off CPU while runnable: preempted
#   and waiting, or woken and not yet running), by the thread that held
#   the core just before the worker got it back: the exporter thread
#   (ts-exporter) or anything else (other processes on a shared machine);
#   how many, their total, the longest, and how many lasted 0.5 ms or 1 ms;
# - the exporter's runs while the worker was waiting: how many, their
#   total and the longest.
#
# Needs perf with the sched tracepoints (root, or perf_event_paranoid
# -1).  Every port is picked free; every process is stopped by its PID.
# Environment: BUILD (build), PROBE_NICE ("0 10"), PROBE_DURATION (6, s
# of wrk), PROBE_RECORD (2, s recorded), NGINX, WRK.
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
GATEWAY=$PWD/$BUILD/src/tracestitch
FAKE_AGENT=$PWD/$BUILD/tests/support/fake_agent
NICES=${PROBE_NICE:-0 10}
DURATION=${PROBE_DURATION:-6}
RECORD=${PROBE_RECORD:-2}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
WRK=${WRK:-$(command -v wrk || echo wrk)}

die() {
	echo "sched_probe: $*" >&2
	exit 1
}

pids=()
tmp=""
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	pids=()
	[ -z "$tmp" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for c in perf taskset curl python3 "$NGINX" "$WRK"; do
	command -v "$c" >/dev/null 2>&1 || die "$c not found"
done
[ -x "$GATEWAY" ] && [ -x "$FAKE_AGENT" ] || die "build first (make build)"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tracestitch-sched.XXXXXX")
mkdir -p "$tmp/nginx-temp"
perf sched record -C 0 -o "$tmp/check.data" -- true >/dev/null 2>&1 ||
    die "perf sched record failed (root or perf_event_paranoid -1 needed)"

read -r BP AP GP < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')

cat >"$tmp/backend.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $tmp/backend.pid;
error_log $tmp/backend-error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $tmp/nginx-temp/body;
	proxy_temp_path $tmp/nginx-temp/proxy;
	fastcgi_temp_path $tmp/nginx-temp/fastcgi;
	uwsgi_temp_path $tmp/nginx-temp/uwsgi;
	scgi_temp_path $tmp/nginx-temp/scgi;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$BP;
		location / { return 200 "hello\n"; }
	}
}
EOF

# Waits until url answers while pid lives (10 s at most).
await() {
	local pid=$1 url=$2 i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || die "$3 exited at start"
		curl -s -o /dev/null -m 1 "$url" && return 0
		sleep 0.05
	done
	die "$3 did not answer $url"
}

taskset -c 1 "$NGINX" -e "$tmp/backend-error.log" -p "$tmp" \
    -c "$tmp/backend.conf" >/dev/null 2>&1 &
pids+=("$!")
await "$!" "http://127.0.0.1:$BP/" backend

# The worker: the gateway's thread with the most CPU time.
worker_tid() {
	local f
	for f in /proc/"$1"/task/*/stat; do
		awk '{ sub(/.*\) /, ""); n = split(FILENAME, p, "/");
		    print $12 + $13, p[n - 1] }' "$f"
	done | sort -n | tail -1 | cut -d' ' -f2
}

for tn in $NICES; do
	rm -f "$tmp/agent.jsonl"
	taskset -c 1 "$FAKE_AGENT" -q -p "$AP" -o "$tmp/agent.jsonl" \
	    >/dev/null 2>&1 &
	apid=$!
	pids+=("$apid")
	cat >"$tmp/gw.yaml" <<EOF
server:
  listen: ["127.0.0.1:$GP"]
  workers: 1
routes:
  - name: probe
    path_prefix: /
    upstream:
      url: http://127.0.0.1:$BP
      keepalive: 64
exporter:
  type: datadog
  datadog_url: http://127.0.0.1:$AP
  thread_nice: $tn
logging:
  level: warn
  access_log: "off"
EOF
	taskset -c 0 "$GATEWAY" -c "$tmp/gw.yaml" >"$tmp/gw.log" 2>&1 &
	gpid=$!
	pids+=("$gpid")
	await "$gpid" "http://127.0.0.1:$GP/" gateway
	timeout $((DURATION + 15)) taskset -c 1 "$WRK" -t1 -c50 \
	    -d"${DURATION}s" -H 'x-datadog-trace-id: 5474458728733560230' \
	    -H 'x-datadog-parent-id: 67667974448284343' \
	    -H 'x-datadog-sampling-priority: 1' \
	    "http://127.0.0.1:$GP/api/hello" >"$tmp/wrk.out" 2>&1 &
	wpid=$!
	pids+=("$wpid")
	# The middle of the run: past the start, before the end.
	sleep $(((DURATION - RECORD) / 2))
	perf sched record -C 0 -o "$tmp/sched.data" -- sleep "$RECORD" \
	    >/dev/null 2>&1 || die "perf sched record failed"
	wait "$wpid" || die "wrk failed: $(cat "$tmp/wrk.out")"
	wtid=$(worker_tid "$gpid")
	kill -TERM "$gpid" "$apid"
	wait "$gpid" "$apid" 2>/dev/null || true
	echo "== exporter.thread_nice $tn: $(awk '/^Requests\/sec/ { print $2 }' \
	    "$tmp/wrk.out") req/s; worker $wtid of $gpid"
	perf sched timehist --state -i "$tmp/sched.data" 2>/dev/null |
	    awk -v W="$wtid" -v P="$gpid" '
	# Lines: time [cpu] task[tid/pid] wait sch_delay run state, printed
	# when the task leaves the core; the line before the worker'"'"'s is the
	# thread that held the core just before it.
	$2 != "[0000]" || NF < 7 { next }
	{
		task = $3; wt = $4; sd = $5; run = $6; st = $7
		if (index(task, "[" W "/" P "]") > 0) {
			# Preempted (R): all of its time off the core was a
			# wait for it; woken from a sleep: the delay only.
			d = (wstate == "R") ? wt + sd : sd
			if (wstate != "") {
				k = (prev ~ /^ts-exporter\[/ && index(prev, "/" P "]") > 0) ? "the exporter" : "others"
				n[k]++; tot[k] += d
				if (d > mx[k]) mx[k] = d
				if (d >= 0.5) half[k]++
				if (d >= 1) one[k]++
			}
			wstate = st
		}
		if (task ~ /^ts-exporter\[/ && index(task, "/" P "]") > 0 &&
		    wstate == "R") {
			ne++; et += run
			if (run > emx) emx = run
		}
		prev = task
	}
	END {
		split("the exporter,others", ks, ",")
		for (i = 1; i <= 2; i++) {
			k = ks[i]
			printf "worker waits ended by %-12s %6d, total %7.1f ms, longest %6.3f ms, >= 0.5 ms: %d, >= 1 ms: %d\n", \
			    k ":", n[k], tot[k], mx[k], half[k], one[k]
		}
		printf "exporter runs while the worker waited: %d, total %.1f ms, longest %.3f ms\n", \
		    ne, et, emx
	}'
done
