# tests/bench/h2.sh -- the HTTP/2 loads of `make bench` (issue 12 item 6).
# Sourced by run.sh, which calls h2_setup once the configurations are
# written (before the targets start) and h2_run at the very end, after the
# HTTP/1.1 loads and their table, so that nothing of the HTTP/1.1 part
# (its figures, RSS readings and table) changes.
#
# Same run, same processes, same cores: the nginx proxy gets a second
# listen address with `http2` (Debian's nginx 1.22: h2c with prior
# knowledge on a plaintext listener), the gateways get
# server.http2_cleartext: true (h2c with prior knowledge on their listener,
# HTTP/1.1 still served there); h2load (nghttp2-client, one thread) is
# pinned with the load (CPU 1), the proxies stay on CPU 0.  Plaintext
# h2c rather than h2 over TLS: both proxies would spend the same OpenSSL
# record work per request, which would only dilute the ratio of the
# HTTP/2 and pipeline work this compares.
#
# Loads (BENCH_H2_LOADS, default "h2-get h2-preflight h2-streams"):
# - h2-get: the GET of run.sh's get load (Origin, Referer, a browser
#   User-Agent, x-datadog-* and traceparent / tracestate) on
#   BENCH_CONNECTIONS connections, one stream at a time on each (h2load
#   -m 1).  h2load sends the same header values in every request (it has
#   no per-request script), so HPACK sends them as indexed fields after
#   the first request: the ids repeat, the gateway still makes one span
#   per request.
# - h2-preflight: OPTIONS with Origin and Access-Control-Request-*,
#   answered by the proxy, BENCH_CONNECTIONS connections, -m 1.
# - h2-streams: the h2-get request on BENCH_H2_STREAMS_CONNECTIONS (4)
#   connections with 100 concurrent streams each (-m 100).
# Every load alternates the targets over BENCH_REPS repetitions of
# BENCH_DURATION seconds (h2load -D), as run.sh does.  Per run: req/s,
# p50 and p99 of h2load's per-request times (--log-file), CPU per request
# (the proxy's utime+stime over h2load's requests done), failed or
# non-2xx requests, new upstream connections.  For tracestitch-spans, the
# spans the agent received plus the dropped ones against the requests.
#
# Memory per idle h2 connection: after the loads, a fresh copy of nginx
# and of tracestitch (the same configuration on other ports, pinned the
# same way, nothing run through it yet): its VmRSS before and while
# h2_idle.py holds BENCH_H2_IDLE_CONNECTIONS (1000) h2c connections that
# each made one GET and stay idle; the difference over the count.
#
# Results: ${OUT%.tsv}-h2.tsv (one row per run), ${OUT%.tsv}-h2-idle.tsv
# and the table ${OUT%.tsv}-h2.md (also printed).  BENCH_H2_LOADS=""
# skips the HTTP/2 part; so does a gateway that does not accept h2c
# (a probe with curl --http2-prior-knowledge must see HTTP/2 200).

H2_LOADS=${BENCH_H2_LOADS-h2-get h2-preflight h2-streams}
H2_STREAMS_CONNS=${BENCH_H2_STREAMS_CONNECTIONS:-4}
H2_IDLE_CONNS=${BENCH_H2_IDLE_CONNECTIONS:-1000}
# Seconds the idle connections stay idle before VmRSS is read (both
# targets): a browser keeps a used connection for minutes, and the
# gateway gives an idle connection's frame buffer back after 1 s.
H2_IDLE_SETTLE=${BENCH_H2_IDLE_SETTLE:-2}
H2LOAD=${H2LOAD:-$(command -v h2load || echo h2load)}
H2_PY=/usr/bin/python3
H2_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# After run.sh wrote proxy.conf and the gateways' YAML: nginx's h2c
# listener, the gateways' h2c key.
h2_setup() {
	[ -n "$H2_LOADS" ] || return 0
	command -v "$H2LOAD" >/dev/null 2>&1 ||
	    die "h2load not found (make deps: nghttp2-client)"
	"$H2_PY" -c 'import h2' 2>/dev/null ||
	    die "$H2_PY has no h2 module (make deps: python3-h2)"
	NGINX_H2_PORT=$("$H2_PY" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
')
	sed -i "s|^\t\tlisten 127.0.0.1:$NGINX_PORT;|&\n\t\tlisten 127.0.0.1:$NGINX_H2_PORT http2;|" \
	    "$tmp/proxy.conf"
	grep -q "listen 127.0.0.1:$NGINX_H2_PORT http2;" "$tmp/proxy.conf" ||
	    die "h2: could not add the http2 listener to proxy.conf"
	local f
	for f in "$tmp/tracestitch.yaml" "$tmp/tracestitch-spans.yaml"; do
		sed -i '/^  workers: 1$/a\  http2_cleartext: true' "$f"
	done
	# A gateway built without HTTP/2 refuses the key: run the HTTP/1.1
	# loads as before, h2 against nginx only.
	if [ -x "$GATEWAY" ] &&
	    ! "$GATEWAY" -n -c "$tmp/tracestitch.yaml" >"$tmp/h2-check.out" 2>&1; then
		echo "bench: $GATEWAY refuses server.http2_cleartext; HTTP/2" \
		    "loads against nginx only: $(head -1 "$tmp/h2-check.out")" >&2
		for f in "$tmp/tracestitch.yaml" "$tmp/tracestitch-spans.yaml"; do
			sed -i '/^  http2_cleartext: true$/d' "$f"
		done
	fi
}

# The h2c URL of a target.
h2_url() {
	case $1 in
	nginx) echo "http://127.0.0.1:$NGINX_H2_PORT/api/hello" ;;
	tracestitch) echo "http://127.0.0.1:$TS_PORT/api/hello" ;;
	tracestitch-spans) echo "http://127.0.0.1:$TS2_PORT/api/hello" ;;
	esac
}

# "status version" of one request of the load over h2c.
h2_probe() {
	local load=$1 url=$2
	if [ "$load" = h2-preflight ]; then
		curl -s -o /dev/null -m 2 --http2-prior-knowledge \
		    -w '%{http_code} %{http_version}' -X OPTIONS "$url" \
		    -H "Origin: $ORIGIN" \
		    -H 'Access-Control-Request-Method: GET' \
		    -H "Access-Control-Request-Headers: $TRACE_HEADERS" || true
	else
		curl -s -o /dev/null -m 2 --http2-prior-knowledge \
		    -w '%{http_code} %{http_version}' "$url" \
		    -H "Origin: $ORIGIN" || true
	fi
}

# h2load's arguments for a load (after -c/-m).
h2_args() {
	local a=(-H "origin: $ORIGIN")
	case $1 in
	h2-preflight)
		a+=(-H ':method: OPTIONS'
		    -H 'access-control-request-method: GET'
		    -H "access-control-request-headers: $TRACE_HEADERS")
		;;
	*)
		a+=(-H "referer: $ORIGIN/app/checkout?step=2"
		    -H 'user-agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'
		    -H 'accept: application/json'
		    -H 'x-datadog-trace-id: 4611686018427387904'
		    -H 'x-datadog-parent-id: 2305843009213693952'
		    -H 'x-datadog-sampling-priority: 1'
		    -H 'x-datadog-origin: rum'
		    -H 'x-datadog-tags: _dd.p.dm=-4'
		    -H 'traceparent: 00-00000000000000004000000000000000-2000000000000000-01'
		    -H 'tracestate: dd=s:1;o:rum;t.dm:-4,congo=t61rcWkgMzE')
		;;
	esac
	printf '%s\0' "${a[@]}"
}

# p50 and p99 (us) of h2load's --log-file (third column).
h2_percentiles() {
	cut -f3 "$1" | sort -n | awk '{ v[NR] = $1 }
	    END { if (NR == 0) { print "- -"; exit }
		printf "%d %d\n", v[int((NR - 1) * 0.50) + 1], v[int((NR - 1) * 0.99) + 1] }'
}

h2_spans_delivery() {
	local load=$1 rep=$2 reqs=$3 i s d
	[ "$load" != h2-preflight ] || return 0
	for ((i = 0; i < 100; i++)); do
		s=$(($(agent_spans) - s0))
		d=$(($(spans_dropped) - d0))
		if [ $((s + d)) -ge "$reqs" ]; then
			break
		fi
		sleep 0.1
	done
	printf '%-12s %-17s %3d spans: h2load %s, agent received %s, dropped %s\n' \
	    "$load" tracestitch-spans "$rep" "$reqs" "$s" "$d"
	printf '%s\t%s\t%s\t%s\t%s\n' "$load" "$rep" "$reqs" "$s" "$d" \
	    >>"$tmp/h2-delivery.tsv"
}

# Three free loopback ports.
h2_ports() {
	"$H2_PY" -c '
import socket
socks = []
for _ in range(3):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
'
}

# Memory per idle h2 connection of a fresh copy of target t (nginx or
# tracestitch), started for this alone with its configuration on other
# ports and pinned as the target is: VmRSS before and while h2_idle.py
# holds its connections, per connection.  A fresh process, so that heap
# the loads freed does not hide what the connections take.
h2_idle_mem() {
	local t=$1 pid url port p1 p2 p3 before after line i rc=0
	read -r p1 p2 p3 < <(h2_ports)
	case $t in
	nginx)
		sed -e "s|127.0.0.1:$NGINX_PORT;|127.0.0.1:$p1;|" \
		    -e "s|127.0.0.1:$NGINX_H2_PORT http2;|127.0.0.1:$p2 http2;|" \
		    -e "s|$tmp/proxy.pid|$tmp/idle.pid|" \
		    -e "s|$tmp/proxy-error.log|$tmp/idle-error.log|" \
		    "$tmp/proxy.conf" >"$tmp/idle.conf"
		start pid "$tmp/idle.out" $PIN_PROXY "$NGINX" \
		    -e "$tmp/idle-error.log" -p "$tmp" -c "$tmp/idle.conf"
		url=http://127.0.0.1:$p2/api/hello
		;;
	tracestitch)
		sed -e "s/127.0.0.1:$TS_PORT\"/127.0.0.1:$p1\"/" \
		    -e "s/127.0.0.1:$TS_ADMIN_PORT\"/127.0.0.1:$p3\"/" \
		    "$tmp/tracestitch.yaml" >"$tmp/idle.yaml"
		start pid "$tmp/idle.out" $PIN_PROXY "$GATEWAY" -c "$tmp/idle.yaml"
		url=http://127.0.0.1:$p1/api/hello
		;;
	esac
	for ((i = 0; i < START_TIMEOUT * 20; i++)); do
		kill -0 "$pid" 2>/dev/null ||
		    die "h2 idle: a fresh $t exited at start: $(cat "$tmp/idle.out")"
		[ "$(h2_probe h2-get "$url")" != "200 2" ] || break
		sleep 0.05
	done
	[ "$(h2_probe h2-get "$url")" = "200 2" ] ||
	    die "h2 idle: a fresh $t does not answer $url over h2c"
	before=$(proc_kb "$pid" VmRSS)
	mkfifo "$tmp/h2-idle-in"
	port=${url#http://127.0.0.1:}
	port=${port%%/*}
	$PIN_LOAD "$H2_PY" "$H2_DIR/h2_idle.py" 127.0.0.1 "$port" \
	    "$H2_IDLE_CONNS" /api/hello <"$tmp/h2-idle-in" \
	    >"$tmp/h2-idle.out" 2>&1 &
	h2_idle_pid=$!
	pids+=("$h2_idle_pid")
	exec 9>"$tmp/h2-idle-in"
	line=""
	for ((i = 0; i < 600; i++)); do
		line=$(grep -m1 '^ready' "$tmp/h2-idle.out" || true)
		[ -z "$line" ] || break
		kill -0 "$h2_idle_pid" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$line" ] || die "h2_idle.py against $t: $(cat "$tmp/h2-idle.out")"
	sleep "$H2_IDLE_SETTLE"
	after=$(proc_kb "$pid" VmRSS)
	exec 9>&-
	wait "$h2_idle_pid" || rc=$?
	[ "$rc" -eq 0 ] || die "h2_idle.py against $t failed: $(cat "$tmp/h2-idle.out")"
	rm -f "$tmp/h2-idle-in"
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	h2_forget "$pid" "$h2_idle_pid"
	printf '%s\t%s\t%s\t%s\n' "$t" "$H2_IDLE_CONNS" "$before" "$after" \
	    >>"$tmp/h2-idle.tsv"
	printf 'h2 idle      %-17s %d connections: VmRSS %s -> %s kB, %.1f kB each\n' \
	    "$t" "$H2_IDLE_CONNS" "$before" "$after" \
	    "$(awk -v a="$after" -v b="$before" -v n="$H2_IDLE_CONNS" \
	    'BEGIN { print (a - b) / n }')"
}

# Drop stopped processes from run.sh's list (their PIDs may be reused).
h2_forget() {
	local keep=() p q drop
	for p in "${pids[@]}"; do
		drop=""
		for q in "$@"; do
			[ "$p" != "$q" ] || drop=1
		done
		[ -n "$drop" ] || keep+=("$p")
	done
	pids=("${keep[@]}")
}

h2_run() {
	[ -n "$H2_LOADS" ] || return 0
	local load t rep order pid url code conns streams args out reqs rps \
	    fails non2xx c0 c1 a0 a1 upnew cpu p50 p99
	local -A h2ok
	for load in $H2_LOADS; do
		for t in $TARGETS; do
			url=$(h2_url "$t")
			code=$(h2_probe "$load" "$url")
			case $load:$code in
			h2-get:"200 2" | h2-streams:"200 2" | \
			    h2-preflight:"204 2" | h2-preflight:"200 2")
				h2ok[$load:$t]=1 ;;
			h2-get:* | h2-streams:* | h2-preflight:*)
				echo "bench: $t answers $load over h2c with" \
				    "\"$code\"; $load skipped for $t" >&2 ;;
			*)
				die "unknown h2 load $load (h2-get, h2-preflight," \
				    "h2-streams)" ;;
			esac
		done
	done
	printf 'load\ttarget\trep\treqs\treq_s\tp50_us\tp99_us\tcpu_us_req\tnon2xx\tupstream_new\n' \
	    >"$tmp/h2-results.tsv"
	: >"$tmp/h2-delivery.tsv"
	printf 'target\tconnections\tbefore_kb\tafter_kb\n' >"$tmp/h2-idle.tsv"
	echo
	echo "bench: HTTP/2 (h2c, prior knowledge), h2load 1 thread:" \
	    "${DURATION}s x $REPS alternating reps; h2-get, h2-preflight:" \
	    "$CONNS connections x 1 stream; h2-streams: $H2_STREAMS_CONNS" \
	    "connections x 100 streams"
	printf '%-12s %-17s %3s %10s %8s %8s %10s %7s %8s\n' load target rep \
	    req/s p50_us p99_us cpu_us/req non2xx up_new
	for load in $H2_LOADS; do
		conns=$CONNS
		streams=1
		if [ "$load" = h2-streams ]; then
			conns=$H2_STREAMS_CONNS
			streams=100
		fi
		mapfile -d '' args < <(h2_args "$load")
		for ((rep = 1; rep <= REPS; rep++)); do
			order=$TARGETS
			if ((rep % 2 == 0)); then
				order=$(echo "$TARGETS" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }')
			fi
			for t in $order; do
				[ -n "${h2ok[$load:$t]:-}" ] || continue
				pid=${target_pid[$t]}
				url=$(h2_url "$t")
				if [ "$t" = tracestitch-spans ]; then
					s0=$(agent_spans)
					d0=$(spans_dropped)
				fi
				a0=$(backend_accepts)
				c0=$(cpu_ticks "$pid")
				rm -f "$tmp/h2load.log"
				# wrk_pid: run.sh's cleanup stops it on a signal.
				timeout $((DURATION + 15)) $PIN_LOAD "$H2LOAD" \
				    -t1 -c"$conns" -m"$streams" -D"$DURATION" \
				    --log-file="$tmp/h2load.log" "${args[@]}" \
				    "$url" >"$tmp/h2load.out" 2>&1 &
				wrk_pid=$!
				wait "$wrk_pid" || die "h2load failed against $t:" \
				    "$(cat "$tmp/h2load.out")"
				wrk_pid=""
				c1=$(cpu_ticks "$pid")
				a1=$(backend_accepts)
				[ -n "$a0" ] && [ -n "$a1" ] ||
				    die "the backend's stub_status did not answer"
				upnew=$((a1 - a0 - 1))
				out=$(cat "$tmp/h2load.out")
				# "requests: N total, N started, N done, N succeeded,
				#  N failed, N errored, N timeout"
				reqs=$(echo "$out" | awk '$1 == "requests:" { print $6 }')
				fails=$(echo "$out" | awk '$1 == "requests:" { print $10 + $12 + $14 }')
				non2xx=$(echo "$out" | awk '$1 == "status" && $2 == "codes:" { print $5 + $7 + $9 }')
				rps=$(echo "$out" | awk '$1 == "finished" { sub(/,$/, "", $4); print $4 }')
				[ -n "$reqs" ] && [ "$reqs" -gt 0 ] ||
				    die "h2load reported no requests against $t: $out"
				non2xx=$((${non2xx:-0} + ${fails:-0}))
				read -r p50 p99 < <(h2_percentiles "$tmp/h2load.log")
				cpu=$(awk -v d=$((c1 - c0)) -v hz="$hz" -v n="$reqs" \
				    'BEGIN { printf "%.2f", d * 1000000 / hz / n }')
				printf '%-12s %-17s %3d %10s %8s %8s %10s %7s %8s\n' \
				    "$load" "$t" "$rep" "$rps" "$p50" "$p99" "$cpu" \
				    "$non2xx" "$upnew"
				printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
				    "$load" "$t" "$rep" "$reqs" "$rps" "$p50" "$p99" \
				    "$cpu" "$non2xx" "$upnew" >>"$tmp/h2-results.tsv"
				if [ "$t" = tracestitch-spans ]; then
					h2_spans_delivery "$load" "$rep" "$reqs"
				fi
			done
		done
	done
	# tracestitch-spans idles as tracestitch does (its exporter has
	# nothing to send): nginx and tracestitch only.
	for t in $TARGETS; do
		case $t in
		nginx | tracestitch) ;;
		*) continue ;;
		esac
		[ -n "${h2ok[h2-get:$t]:-}${h2ok[h2-streams:$t]:-}${h2ok[h2-preflight:$t]:-}" ] ||
		    continue
		h2_idle_mem "$t"
	done

	echo
	awk -F'\t' -v reps="$REPS" -v dur="$DURATION" -v conns="$CONNS" \
	    -v sconns="$H2_STREAMS_CONNS" '
FNR == 1 { f++ }
f == 1 {
	if (FNR == 1) next
	k = $1 SUBSEP $2
	n[k]++
	v[k, 1, n[k]] = $5; v[k, 2, n[k]] = $6 / 1000
	v[k, 3, n[k]] = $7 / 1000; v[k, 4, n[k]] = $8; v[k, 5, n[k]] = $10
	v[k, 6, n[k]] = $9
	if (!($1 in seen)) { seen[$1] = 1; loads[++nl] = $1 }
	next
}
f == 2 {
	if (FNR == 1) next
	idle[$1] = ($4 - $3) / $2
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
function med(L, t, m,    k) { k = L SUBSEP t; return (k in n) ? median(k, m, n[k]) : "" }
function iv(t) { return (t in idle) ? idle[t] : "" }
function row(name, a, b, c, fmt) {
	printf "| %s | %s | %s | %s | %s | %s |\n", name, cell(a, fmt), \
	    cell(b, fmt), ratio(b, a), cell(c, fmt), ratio(c, a)
}
END {
	split("req/s,p50 ms,p99 ms,CPU us/req,new upstream connections per run,failed or non-2xx per run", names, ",")
	split("%.0f,%.3f,%.3f,%.2f,%.0f,%.0f", fmts, ",")
	printf "HTTP/2 (h2c): %d alternating repetitions of %d s; h2-get, h2-preflight: %d connections x 1 stream, h2-streams: %d connections x 100 streams; medians; ratio: against nginx\n\n", reps, dur, conns, sconns
	printf "| load, metric | nginx | tracestitch | ratio | tracestitch-spans | ratio |\n"
	printf "|---|---:|---:|---:|---:|---:|\n"
	for (l = 1; l <= nl; l++) {
		L = loads[l]
		for (m = 1; m <= 6; m++)
			row(L ", " names[m], med(L, "nginx", m), \
			    med(L, "tracestitch", m), med(L, "tracestitch-spans", m), fmts[m])
	}
	row("memory per idle h2 connection, KiB", iv("nginx"), iv("tracestitch"), \
	    iv("tracestitch-spans"), "%.1f")
	for (l = 1; l <= nl; l++) {
		L = loads[l]
		if (!(L in dn)) continue
		printf "| %s, spans delivered | | | | %.2f%% (agent %d, h2load %d, dropped %d) | |\n", \
		    L, (dn[L] > 0 ? 100 * ds[L] / dn[L] : 0), ds[L], dn[L], dd[L]
	}
}' "$tmp/h2-results.tsv" "$tmp/h2-idle.tsv" "$tmp/h2-delivery.tsv" |
	    tee "$tmp/h2-table.md"
	cp "$tmp/h2-results.tsv" "${OUT%.tsv}-h2.tsv"
	cp "$tmp/h2-idle.tsv" "${OUT%.tsv}-h2-idle.tsv"
	cp "$tmp/h2-table.md" "${OUT%.tsv}-h2.md"
	echo "bench: HTTP/2 results in ${OUT%.tsv}-h2.tsv, the table in" \
	    "${OUT%.tsv}-h2.md"
}
