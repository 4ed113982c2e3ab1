#!/usr/bin/python3
"""tests/bench/ir.py -- `make bench-ir`: instructions per request, counted.

This machine has no hardware performance counters (perf stat says
"<not supported>" for instructions and cycles), and wall-clock CPU per
request moves by 10-30% with whatever else runs on the two cores.  An
instruction count does not: valgrind's callgrind counts every instruction
the gateway executes (all threads: worker, exporter, main), the same on a
busy machine as on a quiet one.  It is not time (cache misses, syscalls
and the kernel are not in it), so it cannot replace `make bench`; it says
exactly which function a change made costlier, and by how much, where the
wall-clock bench can only say "somewhat, maybe".

For each build (BUILD, and BASE when given: a build dir of another
commit), for each load: start tests/support/fake_backend and fake_agent,
the gateway with the bench's configuration (one worker, exporter datadog
to the fake agent, or none with --no-spans) under callgrind with
instrumentation off; send WARM requests; switch instrumentation on; send
N requests on one keep-alive connection; wait until the agent has every
span (so the exporter's encoding and sending are counted); dump.

Loads (as tests/bench/run.sh): get (the traced GET of issue 11, distinct
ids per request), preflight (OPTIONS with the tracing headers), plain (a
GET with no Origin and no trace headers).

Output: per build and load, instructions per request in total, then the
functions (self cost, per request) that differ most between BASE and
BUILD, or the top ones without BASE.

A build given as DIR@3 runs with three servers behind the route (round
robin, the bench's tracestitch-3): --base build --build build@3 counts
what the balancer and the per-server state cost per request.

IR_KEEP=FILE keeps a copy of the callgrind dump, for callgrind_annotate
--tree=caller (who calls what).

Usage: tests/bench/ir.py [--build DIR] [--base DIR] [-n N] [--warm N]
                         [--loads get,preflight,plain] [--no-spans]
                         [--top K] [--syscalls]
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ORIGIN = "https://app.example.com"
TRACE_HEADERS = ("x-datadog-trace-id,x-datadog-parent-id,"
                 "x-datadog-origin,x-datadog-sampling-priority,"
                 "traceparent,tracestate,baggage")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, deadline_s=60.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit("ir: process exited early (%d)" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("ir: port %d never opened" % port)


def start_printing(argv, pattern):
    """Start a helper that prints its address; return (proc, port)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(pattern, line)
    if not m:
        p.kill()
        raise SystemExit("ir: %s printed %r" % (argv[0], line))
    return p, int(m.group(1))


def request(load, k):
    if load == "preflight":
        return ("OPTIONS /api/hello HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Origin: %s\r\nAccess-Control-Request-Method: GET\r\n"
                "Access-Control-Request-Headers: %s\r\n\r\n"
                % (ORIGIN, TRACE_HEADERS)).encode()
    if load == "plain":
        return b"GET /api/hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    hi, lo = 1 + (k * 7919) % 2097151, (k * 104729 + 17) % 4294967296
    phi, plo = 1 + (k * 31) % 2097151, (k * 65537 + 3) % 4294967296
    tid, pid = hi * 4294967296 + lo, phi * 4294967296 + plo
    tp = "00-0000000000000000%08x%08x-%08x%08x-01" % (hi, lo, phi, plo)
    return ("GET /api/hello HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Origin: %s\r\nReferer: %s/app/checkout?step=2\r\n"
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
            "Accept: application/json\r\n"
            "x-datadog-trace-id: %d\r\nx-datadog-parent-id: %d\r\n"
            "x-datadog-sampling-priority: 1\r\nx-datadog-origin: rum\r\n"
            "x-datadog-tags: _dd.p.dm=-4\r\ntraceparent: %s\r\n"
            "tracestate: dd=s:1;o:rum;t.dm:-4,congo=t61rcWkgMzE\r\n\r\n"
            % (ORIGIN, ORIGIN, tid, pid, tp)).encode()


def read_response(sock, buf):
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1")
            status = int(head.split(" ", 2)[1])
            m = re.search(r"(?im)^content-length:\s*(\d+)", head)
            n = end + 4 + (int(m.group(1)) if m else 0)
            while len(buf) < n:
                buf += sock.recv(65536)
            return status, buf[n:]
        d = sock.recv(65536)
        if not d:
            raise SystemExit("ir: the gateway closed the connection")
        buf += d


def send_n(port, load, first, n):
    s = socket.create_connection(("127.0.0.1", port))
    buf, bad = b"", 0
    for k in range(first, first + n):
        s.sendall(request(load, k))
        status, buf = read_response(s, buf)
        bad += status not in (200, 204)
    s.close()
    if bad:
        raise SystemExit("ir: %d of %d %s answers were not 200/204"
                         % (bad, n, load))


def agent_spans(path):
    n = 0
    try:
        with open(path) as f:
            for line in f:
                m = re.search(r'"spans":(\d+)', line)
                if m:
                    n += int(m.group(1))
    except OSError:
        pass
    return n


def parse_callgrind(path):
    """Self instruction counts per function (callgrind_annotate's list),
    and the program total."""
    if os.environ.get("IR_KEEP"):
        shutil.copy(path, os.environ["IR_KEEP"])
    out = subprocess.run(["callgrind_annotate", "--threshold=100",
                          "--inclusive=no", "--tree=none", "--auto=no", path],
                         stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    fns, total = {}, 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([\d.]+%\)\s+)?(.*)$", line)
        if not m:
            continue
        ir, what = int(m.group(1).replace(",", "")), m.group(2).strip()
        if what.startswith("PROGRAM TOTALS"):
            total = ir
        elif ":" in what:
            name = what.split(":", 1)[1].split(" [")[0].strip()
            fns[name] = fns.get(name, 0) + ir
    return fns, total


def metric(admin, name):
    s = socket.create_connection(("127.0.0.1", admin), 30)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close"
              b"\r\n\r\n")
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    n = 0.0
    for line in buf.decode("latin-1").splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            n += float(line.rsplit(" ", 1)[1])
    return n


def wait_delivered(admin, agent_out):
    """Every span submitted so far is at the agent (or counted dropped)."""
    end = time.monotonic() + 120
    while time.monotonic() < end:
        sub = metric(admin, "tracestitch_export_submitted_spans_total")
        drop = metric(admin, "tracestitch_export_dropped_spans_total")
        if agent_spans(agent_out) + drop >= sub:
            return sub, drop
        time.sleep(0.2)
    raise SystemExit("ir: spans still undelivered after 120 s")


def stop(p):
    """SIGTERM, and SIGKILL after 20 s (valgrind's exit on a loaded
    machine can take longer than the figures are worth)."""
    p.terminate()
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(20)


GATEWAY_CONF = """server:
  listen: ["127.0.0.1:%d"]
  workers: 1
admin:
  listen: "127.0.0.1:%d"
routes:
  - name: bench
    path_prefix: /
    upstream:
      url: http://127.0.0.1:%d
      keepalive: 64
cors:
  allowed_origins: ["%s"]
  allowed_methods: [GET, HEAD, POST]
  allowed_headers: [Content-Type, Authorization]
  max_age: 600
exporter:
%slogging:
  level: warn
  access_log: "off"
"""

NGINX_CONF = """worker_processes 1;
master_process off;
daemon off;
pid %(tmp)s/nginx.pid;
error_log %(tmp)s/nginx-error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %(tmp)s/body;
	proxy_temp_path %(tmp)s/proxy;
	fastcgi_temp_path %(tmp)s/fastcgi;
	uwsgi_temp_path %(tmp)s/uwsgi;
	scgi_temp_path %(tmp)s/scgi;
	keepalive_requests 1000000;
	keepalive_timeout 60s;
	upstream bench_backend {
		server 127.0.0.1:%(be)d;
		keepalive 64;
	}
	server {
		listen 127.0.0.1:%(port)d;
		location / {
			if ($request_method = OPTIONS) {
				add_header Access-Control-Allow-Origin $http_origin always;
				add_header Access-Control-Allow-Methods "GET, HEAD, POST" always;
				add_header Access-Control-Allow-Headers "Content-Type, Authorization, %(th)s" always;
				add_header Access-Control-Max-Age 600 always;
				add_header Vary "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" always;
				return 204;
			}
			proxy_pass http://bench_backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $remote_addr;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_set_header X-Forwarded-Host $host;
			add_header Access-Control-Allow-Origin $http_origin always;
			add_header Vary Origin always;
			add_header Timing-Allow-Origin $http_origin always;
		}
	}
}
"""


def measure(build, load, n, warm, spans, tmp, strace=False):
    # "BUILD@3": the build's gateway with three servers behind the route
    # (round robin), as the bench's tracestitch-3.
    three = build.endswith("@3")
    build = build[:-2] if three else build
    nginx = build == "nginx"
    if nginx:
        # The bench's nginx (tests/bench/run.sh's proxy.conf), with the
        # helpers (fake backend) of BUILD; no spans.
        build, spans = os.environ.get("BUILD", "build"), False
    gw = os.path.join(build, "src", "tracestitch")
    be, be_port = start_printing(
        [os.path.join(build, "tests", "support", "fake_backend"), "-p", "0"],
        r":(\d+)\s*$")
    procs = [be]
    more = []
    if three:
        for _ in range(2):
            b2, p2 = start_printing(
                [os.path.join(build, "tests", "support", "fake_backend"),
                 "-p", "0"], r":(\d+)\s*$")
            procs.append(b2)
            more.append(p2)
    agent_out = os.path.join(tmp, "agent-%s.jsonl" % load)
    try:
        exporter = "  type: none\n"
        if spans:
            ag, ag_port = start_printing(
                [os.path.join(build, "tests", "support", "fake_agent"), "-q",
                 "-p", "0", "-o", agent_out], r":(\d+)\s*$")
            procs.append(ag)
            exporter = ("  type: datadog\n  datadog_url: http://127.0.0.1:%d\n"
                        % ag_port)
        port, admin = free_port(), free_port()
        if nginx:
            cfg = os.path.join(tmp, "nginx.conf")
            conf = NGINX_CONF % {"tmp": tmp, "be": be_port, "port": port,
                                 "th": TRACE_HEADERS}
            argv = [shutil.which("nginx") or "/usr/sbin/nginx", "-p", tmp,
                    "-c", cfg]
        else:
            cfg = os.path.join(tmp, "gw-%s.yaml" % load)
            conf = GATEWAY_CONF % (port, admin, be_port, ORIGIN, exporter)
            if three:
                conf = conf.replace(
                    "      url: http://127.0.0.1:%d\n" % be_port,
                    "      servers: [%s]\n" % ", ".join(
                        '"http://127.0.0.1:%d"' % p
                        for p in [be_port] + more))
            argv = [gw, "-c", cfg]
        with open(cfg, "w") as f:
            f.write(conf)
        out = os.path.join(tmp, "callgrind-%s.out" % load)
        vg = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             "--callgrind-out-file=" + out] + argv if not strace else argv,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(vg)
        wait_port(port, vg, 120)
        send_n(port, load, 0, warm)
        if strace:
            if spans:
                wait_delivered(admin, agent_out)
            so = os.path.join(tmp, "strace-%s.txt" % load)
            st = subprocess.Popen(["strace", "-f", "-c", "-o", so, "-p",
                                   str(vg.pid)], stderr=subprocess.DEVNULL)
            time.sleep(1)  # strace attaches to every thread
            send_n(port, load, warm, n)
            if spans:
                time.sleep(3)  # an export flush or two
            st.terminate()
            st.wait(30)
            calls = {}
            for line in open(so):
                f = line.split()
                if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                    calls[f[-1]] = int(f[3])
            stop(vg)
            return calls, sum(calls.values())
        if spans:
            wait_delivered(admin, agent_out)
            sub0, ag0 = (metric(admin, "tracestitch_export_submitted_spans_total"),
                         agent_spans(agent_out))
        subprocess.run(["callgrind_control", "-i", "on", str(vg.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        send_n(port, load, warm, n)
        if spans:
            # Wait for the exporter without asking the gateway anything
            # (a /metrics answer would be counted): n spans at the agent,
            # or no new span for 3 s (a load whose requests are not all
            # traced); the submitted count checks it afterwards.
            last, since = -1, time.monotonic()
            while agent_spans(agent_out) - ag0 < n:
                got = agent_spans(agent_out)
                if got != last:
                    last, since = got, time.monotonic()
                elif time.monotonic() - since > 3:
                    break
                time.sleep(0.1)
        subprocess.run(["callgrind_control", "-d", str(vg.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        dumps = [os.path.join(tmp, x) for x in os.listdir(tmp)
                 if x.startswith("callgrind-%s.out." % load)]
        subprocess.run(["callgrind_control", "-i", "off", str(vg.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        if spans:
            sub = metric(admin, "tracestitch_export_submitted_spans_total")
            drop = metric(admin, "tracestitch_export_dropped_spans_total")
            got = agent_spans(agent_out) - ag0
            if drop or got != sub - sub0:
                raise SystemExit("ir: %s: %d spans submitted, %d at the "
                                 "agent, %d dropped" % (load, sub - sub0,
                                                        got, drop))
        # The explicit dump only (callgrind writes OUT.1 for it; OUT itself
        # comes at exit, after instrumentation was switched off again).
        dumps = [os.path.join(tmp, x) for x in os.listdir(tmp)
                 if x.startswith("callgrind-%s.out." % load)]
        stop(vg)  # the dump is written: its exit dump is not needed
        fns, total = {}, 0
        for d in dumps:
            f, t = parse_callgrind(d)
            for k, v in f.items():
                fns[k] = fns.get(k, 0) + v
            total += t
        return fns, total
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--base", default=os.environ.get("BASE"))
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--warm", type=int, default=300)
    ap.add_argument("--loads", default="get,preflight")
    ap.add_argument("--no-spans", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--syscalls", action="store_true",
                    help="count syscalls (strace -c) instead of instructions")
    a = ap.parse_args()
    builds = [("base", a.base)] if a.base else []
    builds.append(("build", a.build))
    for load in a.loads.split(","):
        res = {}
        for tag, b in builds:
            with tempfile.TemporaryDirectory(prefix="ts-ir.") as tmp:
                fns, total = measure(b, load, a.n, a.warm,
                                     not a.no_spans, tmp,
                                     strace=a.syscalls)
            res[tag] = (fns, total)
            print("ir: %-9s %-5s %s: %.2f %s per request "
                  "(%d requests)" % (load, tag, b, total / a.n,
                                     "syscalls" if a.syscalls else
                                     "instructions", a.n))
        if "base" in res:
            bf, bt = res["base"]
            nf, nt = res["build"]
            print("ir: %-9s build/base = %.3f (%+.0f per request)"
                  % (load, nt / bt, (nt - bt) / a.n))
            keys = set(bf) | set(nf)
            rows = sorted(keys, key=lambda k: -abs(nf.get(k, 0) -
                                                   bf.get(k, 0)))
            print("  %10s %10s %10s  function" % ("base", "build", "delta"))
            for k in rows[:a.top]:
                b0, n0 = bf.get(k, 0) / a.n, nf.get(k, 0) / a.n
                print("  %10.1f %10.1f %+10.1f  %s" % (b0, n0, n0 - b0, k))
        else:
            nf, nt = res["build"]
            print("  %10s  function" % "per req")
            for k in sorted(nf, key=lambda k: -nf[k])[:a.top]:
                print("  %10.1f  %s" % (nf[k] / a.n, k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
