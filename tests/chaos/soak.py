#!/usr/bin/env python3
"""tests/chaos/soak.py -- `make soak` (SOAK_MINUTES, default 30) and
`make soak-short` (1 minute, in `make test`): a long mixed load through
the built gateway, with its RSS, fds and CPU per request sampled at a
steady interval, written to a CSV, plotted to an SVG with gnuplot, and a
trend check (issue 16, docs/reliability.md).

The load (SOAK_CONNS keep-alive connections, default 8, each pacing its
requests SOAK_INTERVAL_MS apart, default 10), in turn:
  GET with datadog headers; GET with traceparent/tracestate; GET with b3
  (single); GET with b3multi; GET with baggage; GET with no trace header;
  POST with a body of 1 to 64 KiB; a CORS preflight (OPTIONS); a 404 of
  the backend; a 502 (a route whose upstream is closed); a disallowed
  Origin (200 without CORS headers); a request the framing guard refuses
  (400, the connection closed).
Every answer must carry its expected status; spans go to the fake agent
(exporter datadog) and the agent must have received every span the
gateway submitted, less those counted dropped, by the end.

Samples (SOAK_SAMPLE_S apart, default 60): elapsed seconds, requests so
far, the gateway's VmRSS (KiB), open fds, CPU microseconds per request
over the interval, spans the agent received (fds_own: the fds less the
client and upstream sockets).  Into $BUILD/soak.csv;
$BUILD/soak.svg when gnuplot is there.

Trend check: a Theil-Sen line (the median of the pairwise slopes) through
the samples after the first (warm-up); what it projects over the run
(slope x the sampled span) must stay within a noise bound:
  RSS: 2 MiB or 5% of the median RSS, whichever is larger;
  fds less the client and upstream sockets (which come and go with the
  load's reconnections and the keep-alive pool): 2;
  CPU per request: 25% of its median (a shared machine: other work on the
  same cores moves it in both directions).
A short form with fewer than 3 samples after warm-up reports the slopes
but checks only the exact counts.  Exit status 1 on a failed check.
"""

import asyncio
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos  # noqa: E402  (the processes, /proc and HTTP helpers)

ORIGIN = chaos.ORIGIN


def slope(xs, ys):
    """Theil-Sen: the median of the slopes between every pair of samples.
    One noisy interval (a neighbour's burst on a 2-core machine) moves a
    least-squares line a lot and this one hardly at all; a real leak moves
    every pair, so it still shows in full."""
    pairs = sorted((ys[j] - ys[i]) / (xs[j] - xs[i])
                   for i in range(len(xs)) for j in range(i + 1, len(xs))
                   if xs[j] != xs[i])
    if not pairs:
        return 0.0
    m = len(pairs) // 2
    return pairs[m] if len(pairs) % 2 else (pairs[m - 1] + pairs[m]) / 2


def trace_headers(kind):
    tid = random.getrandbits(64) or 1
    sid = random.getrandbits(64) or 1
    if kind == "datadog":
        return ("x-datadog-trace-id: %d\r\nx-datadog-parent-id: %d\r\n"
                "x-datadog-sampling-priority: 1\r\nx-datadog-origin: rum\r\n"
                % (tid >> 1, sid >> 1))
    if kind == "tracecontext":
        return ("traceparent: 00-%032x-%016x-01\r\ntracestate: dd=s:1;o:rum"
                "\r\n" % (tid, sid))
    if kind == "b3":
        return "b3: %032x-%016x-1\r\n" % (tid, sid)
    if kind == "b3multi":
        return ("X-B3-TraceId: %032x\r\nX-B3-SpanId: %016x\r\n"
                "X-B3-Sampled: 1\r\n" % (tid, sid))
    if kind == "baggage":
        return "baggage: user.id=%d,session=s%d\r\n" % (tid % 1000, sid % 97)
    return ""


# (name, request builder -> bytes, expected status, keeps the connection)
def requests_mix():
    def get(kind):
        return lambda: ("GET /api/echo/%s HTTP/1.1\r\nHost: soak\r\n"
                        "Origin: %s\r\n%s\r\n" % (kind, ORIGIN,
                                                   trace_headers(kind))
                        ).encode()

    def post():
        n = random.randint(1024, 65536)
        return ("POST /api/echo/post HTTP/1.1\r\nHost: soak\r\nOrigin: %s\r\n"
                "Content-Type: application/octet-stream\r\n"
                "Content-Length: %d\r\n%s\r\n" % (ORIGIN, n,
                                                 trace_headers("datadog"))
                ).encode() + b"p" * n
    return [
        ("datadog", get("datadog"), 200, True),
        ("tracecontext", get("tracecontext"), 200, True),
        ("b3", get("b3"), 200, True),
        ("b3multi", get("b3multi"), 200, True),
        ("baggage", get("baggage"), 200, True),
        ("none", get("none"), 200, True),
        ("post", post, 200, True),
        ("preflight", lambda: (
            "OPTIONS /api/echo HTTP/1.1\r\nHost: soak\r\nOrigin: %s\r\n"
            "Access-Control-Request-Method: POST\r\n"
            "Access-Control-Request-Headers: content-type,traceparent\r\n"
            "\r\n" % ORIGIN).encode(), 204, True),
        ("404", lambda: ("GET /status/404 HTTP/1.1\r\nHost: soak\r\n"
                         "Origin: %s\r\n\r\n" % ORIGIN).encode(), 404, True),
        ("502", lambda: ("GET /dead/x HTTP/1.1\r\nHost: soak\r\n"
                         "Origin: %s\r\n\r\n" % ORIGIN).encode(), 502, True),
        ("origin", lambda: ("GET /api/echo HTTP/1.1\r\nHost: soak\r\n"
                            "Origin: https://evil.example\r\n\r\n").encode(),
         200, True),
        ("bad", lambda: b"GET /api/echo HTTP/1.1\r\nHost: soak\r\n"
         b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
         False),
    ]


async def soak_main():
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    every = float(os.environ.get("SOAK_SAMPLE_S", "60"))
    conns = int(os.environ.get("SOAK_CONNS", "8"))
    interval = int(os.environ.get("SOAK_INTERVAL_MS", "10")) / 1000.0
    out_csv = os.path.join(chaos.BUILD, "soak.csv")
    out_svg = os.path.join(chaos.BUILD, "soak.svg")
    for p in (chaos.GATEWAY, chaos.BACKEND, chaos.AGENT):
        if not os.access(p, os.X_OK):
            chaos.log("%s not built (make build)" % p)
            return 2
    tmp = chaos.tempfile.mkdtemp(prefix="soak-")
    be = chaos.start_backend(tmp)
    ag = chaos.start_agent(tmp)
    # The 502 route's upstream: a port bound and never listened on, held
    # for the whole run (a port picked free and let go was taken by
    # another program during a 30-minute run, which answered 200).
    dead_sock = chaos.socket.socket()
    dead_sock.bind(("127.0.0.1", 0))
    dead = dead_sock.getsockname()[1]
    yaml = chaos.gateway_yaml(
        be.port, routes=[("dead", "/dead", dead, "2s"),
                         ("api", "/", be.port, "5s")],
        exporter="exporter: {type: datadog, datadog_url: "
        "\"http://127.0.0.1:%d\", flush_interval: 500ms}\n"
        "propagation: {extract: [datadog, tracecontext, b3, b3multi, "
        "baggage], inject: [datadog, tracecontext, baggage]}" % ag.port)
    gw = chaos.start_gateway(tmp, yaml)
    mix = requests_mix()
    counts = {"requests": 0}
    wrong = {}
    deadline = time.monotonic() + minutes * 60

    async def client(i):
        r = w = None
        k = i
        while time.monotonic() < deadline:
            name, build, want, keep = mix[k % len(mix)]
            k += 1
            try:
                if w is None:
                    r, w = await asyncio.open_connection("127.0.0.1",
                                                         gw.port)
                w.write(build())
                st, h, _ = await asyncio.wait_for(chaos.read_response(r),
                                                  15)
                counts["requests"] += 1
                if st != want:
                    key = "%s: %d" % (name, st)
                    wrong[key] = wrong.get(key, 0) + 1
                if not keep or h.get("connection", "").lower() == "close":
                    w.close()
                    w = None
            except (OSError, ConnectionError, ValueError,
                    asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                key = "%s: %s" % (name, type(e).__name__)
                wrong[key] = wrong.get(key, 0) + 1
                if w is not None:
                    w.close()
                w = None
            await asyncio.sleep(interval * (0.5 + random.random()))
        if w is not None:
            w.close()

    def agent_spans():
        n = 0
        with open(ag.out_path, errors="replace") as f:
            for line in f:
                m = chaos.re.search(r'"spans":\s*(\d+)', line)
                if m:
                    n += int(m.group(1))
        return n

    rows = []

    async def sampler():
        t0 = time.monotonic()
        last_req, last_cpu = 0, chaos.proc_cpu_s(gw.pid)
        while True:
            await asyncio.sleep(every)
            req, cpu = counts["requests"], chaos.proc_cpu_s(gw.pid)
            per = (cpu - last_cpu) * 1e6 / max(1, req - last_req)
            rows.append({"elapsed_s": round(time.monotonic() - t0, 1),
                         "requests": req,
                         "rss_kb": chaos.proc_rss_kb(gw.pid),
                         "fds": chaos.proc_fds(gw.pid),
                         "fds_own": chaos.proc_fds_own(gw.pid, be.port) -
                         chaos.proc_client_sockets(gw.pid, gw.port),
                         "cpu_us_per_req": round(per, 2),
                         "agent_spans": agent_spans()})
            chaos.log("soak: %s" % rows[-1])
            with open(out_csv, "w", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=list(rows[0]))
                wr.writeheader()
                wr.writerows(rows)
            last_req, last_cpu = req, cpu

    st = asyncio.ensure_future(sampler())
    await asyncio.gather(*(client(i) for i in range(conns)))
    # The last interval's sample is due about now.
    for _ in range(50):
        if len(rows) >= int(round(minutes * 60 / every)):
            break
        await asyncio.sleep(0.1)
    st.cancel()
    # Let the exporter flush, then compare what it submitted and dropped
    # with what the agent received.
    await asyncio.sleep(2)
    m = await chaos.metrics(gw.admin_port)
    submitted = chaos.msum(m, "tracestitch_export_submitted_spans_total")
    dropped = chaos.msum(m, "tracestitch_export_dropped_spans_total")
    received = agent_spans()
    gw.stop()
    ag.stop()
    be.stop()
    dead_sock.close()

    checks = []
    checks.append(("every answer as expected (%d requests; wrong: %s)" %
                   (counts["requests"], wrong or "none"),
                   not wrong and counts["requests"] > 0))
    checks.append(("samples: %d (every %.0f s over %.1f min)" %
                   (len(rows), every, minutes), len(rows) >= 2))
    checks.append(("spans: the agent received %d of %d submitted "
                   "(%d dropped)" % (received, submitted, dropped),
                   submitted > 0 and received + dropped >= submitted))
    tail = rows[1:]
    if len(tail) >= 2:
        xs = [r["elapsed_s"] for r in tail]
        span = xs[-1] - xs[0]
        for key, bound_fn, what in (
                ("rss_kb", lambda mean: max(2048.0, 0.05 * mean), "KiB"),
                ("fds_own", lambda mean: 2.0, "fds"),
                ("cpu_us_per_req", lambda mean: 0.25 * mean, "us")):
            ys = [float(r[key]) for r in tail]
            mean = sorted(ys)[len(ys) // 2]
            proj = slope(xs, ys) * span
            bound = bound_fn(mean)
            ok = abs(proj) <= bound if len(tail) >= 3 else True
            checks.append(("%s trend over the run %+.1f %s (|.| <= %.1f%s)"
                           % (key, proj, what, bound,
                              "" if len(tail) >= 3 else
                              ", too few samples: not checked"), ok))
    if shutil.which("gnuplot") and rows:
        plot = """set terminal svg size 900,900 dynamic
set output '%s'
set datafile separator ','
set key off
set multiplot layout 3,1 title 'tracestitch soak: %.0f min, mixed load'
set xlabel 'minutes'
set ylabel 'RSS (KiB)'
plot '%s' using ($1/60):3 skip 1 with linespoints
set ylabel 'open fds'
set key top left
plot '%s' using ($1/60):4 skip 1 with linespoints title 'all', \
     '%s' using ($1/60):5 skip 1 with linespoints title 'less client and upstream sockets'
set key off
set ylabel 'CPU us / request'
plot '%s' using ($1/60):6 skip 1 with linespoints
unset multiplot
""" % (out_svg, minutes, out_csv, out_csv, out_csv, out_csv)
        p = subprocess.run(["gnuplot"], input=plot.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        checks.append(("plot written to %s" % out_svg, p.returncode == 0 and
                       os.path.getsize(out_svg) > 0))
    else:
        chaos.log("soak: gnuplot not found (gnuplot-nox): no SVG")
    failed = 0
    for text, ok in checks:
        print("soak: %s %s" % ("ok" if ok else "FAILED", text))
        failed += not ok
    print("soak: csv %s" % out_csv)
    print("soak: %d passed, %d failed" % (len(checks) - failed, failed))
    return 1 if failed else 0


def main():
    try:
        return asyncio.run(soak_main())
    finally:
        chaos.Proc.stop_all()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(130))
    sys.exit(main())
