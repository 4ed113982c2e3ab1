#!/usr/bin/env python3
"""tests/chaos/chaos.py -- `make chaos` (long form) and `make chaos-short`
(the short form `make test` runs): the faults production brings, each run
against the release binary while a steady paced load of normal clients
runs at the same time, side by side with nginx where nginx can do the same
job (issue 16).

Each scenario starts its own processes on 127.0.0.1 (port 0 wherever the
program can report the port it got; nginx cannot, so its ports are picked
by binding port 0 first, as tests/bench/run.sh does), stops every one of
them by its PID, and prints one row of the results table per target into
CHAOS_OUT (default $BUILD/chaos-results.md):

  normal clients: their requests, the share that succeeded (a 200 with
  the CORS header), p99 latency (ms);
  the proxy: its peak RSS and open fds, its CPU over the scenario (from
  /proc/PID/status, /proc/PID/fd and /proc/PID/stat, sampled every
  250 ms);
  what the metrics and logs said, and the scenario's own checks;
  PASS or FAIL against the thresholds of the issue's target column.

The normal clients run in a child process (`chaos.py load ...`): their
latencies are not those of the abusers' event loop.  They pace: each of
CHAOS_LOAD_CONNS keep-alive connections sends a GET, waits for the whole
answer, then waits CHAOS_LOAD_INTERVAL_MS (default 20) before the next,
so the load is steady and the same for both targets.

Usage: chaos.py [--short] [--only NAME,...] [--no-nginx]
Environment: BUILD (default build), CHAOS_OUT, CHAOS_P99_MS (the normal
clients' p99 bound: 50, the issue's target, for the long form; the short
form, which runs inside `make test` next to everything else, allows 250),
NGINX.

No fixed waits for a state: each step that needs one (the warm-up's
connections closed, RSS settled, the load connected, requests in flight,
the exporter drained, every replaced generation freed) awaits it with a
deadline (until(), settled_rss(), no_clients()); a condition that never
holds is logged and its check fails.  The sleeps left are the thing being
measured or done (the load's pace, the trickle, the sampling period, the
reload period, the fd-exhaustion hold) and say so where they are.

The exit status is 1 when any row failed, 2 when the harness itself could
not run (a program missing).
"""

import argparse
import asyncio
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ORIGIN = "https://app.example"


def build_dir():
    b = os.environ.get("BUILD", "build")
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


BUILD = build_dir()
GATEWAY = os.path.join(BUILD, "src", "tracestitch")
BACKEND = os.path.join(BUILD, "tests", "support", "fake_backend")
AGENT = os.path.join(BUILD, "tests", "support", "fake_agent")
NGINX = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"


def log(msg):
    print("chaos: " + msg, file=sys.stderr, flush=True)


def pct(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def free_ports(n):
    """n distinct free loopback ports (held until all are picked)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# --- processes -------------------------------------------------------------

class Proc:
    """A child whose stdout and stderr go to files; stopped by its PID."""

    all = []

    def __init__(self, name, argv, tmp, nofile=None):
        self.name = name
        self.out_path = os.path.join(tmp, name + ".out")
        self.err_path = os.path.join(tmp, name + ".err")
        out = open(self.out_path, "ab")
        err = open(self.err_path, "ab")

        def pre():
            os.setpgrp()
            if nofile is not None:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                lim = min(nofile, hard)
                resource.setrlimit(resource.RLIMIT_NOFILE, (lim, lim))
        self.p = subprocess.Popen(argv, stdout=out, stderr=err,
                                  stdin=subprocess.DEVNULL, preexec_fn=pre,
                                  cwd=tmp)
        out.close()
        err.close()
        self.pid = self.p.pid
        Proc.all.append(self)

    def text(self):
        t = ""
        for path in (self.out_path, self.err_path):
            with open(path, "r", errors="replace") as f:
                t += f.read()
        return t

    def wait_for(self, regex, timeout=10.0):
        deadline = time.monotonic() + timeout
        rx = re.compile(regex)
        while time.monotonic() < deadline:
            m = rx.search(self.text())
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("%s: no /%s/ within %.0f s; log:\n%s" %
                           (self.name, regex, timeout, self.text()[-2000:]))

    def alive(self):
        return self.p.poll() is None

    def send(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.alive():
            os.kill(self.pid, sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait()
        if self in Proc.all:
            Proc.all.remove(self)
        return self.p.returncode

    @staticmethod
    def stop_all():
        for p in list(Proc.all):
            p.stop(signal.SIGKILL)


def start_backend(tmp, name="backend", port=0):
    b = Proc(name, [BACKEND, "-p", str(port), "-n", name], tmp)
    m = b.wait_for(r"listening on http://127\.0\.0\.1:(\d+)")
    b.port = int(m.group(1))
    return b


def start_agent(tmp, name="agent"):
    a = Proc(name, [AGENT, "-p", "0", "-q"], tmp)
    m = a.wait_for(r"fake agent listening on http://127\.0\.0\.1:(\d+)")
    a.port = int(m.group(1))
    return a


def gateway_yaml(backend_port, limits="", routes=None, exporter=None,
                 level="info", workers=1):
    if routes is None:
        routes = [("api", "/", backend_port, "5s")]
    y = ["server:", '  listen: ["127.0.0.1:0"]', "  workers: %d" % workers]
    if limits:
        y.append("  limits: {%s}" % limits)
    y += ['admin: {listen: "127.0.0.1:0"}', "routes:"]
    for name, prefix, port, timeout in routes:
        y += ["  - name: %s" % name, "    path_prefix: %s" % prefix,
              '    upstream: {url: "http://127.0.0.1:%d", timeout: %s}' %
              (port, timeout)]
    y += ['cors: {allowed_origins: ["%s"]}' % ORIGIN]
    y += [exporter or "exporter: {type: none}"]
    y += ["logging: {level: %s, access_log: \"off\"}" % level]
    return "\n".join(y) + "\n"


def start_gateway(tmp, yaml, name="tracestitch", nofile=None):
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write(yaml)
    g = Proc(name, [GATEWAY, "-c", path], tmp, nofile=nofile)
    g.cfg_path = path
    m = g.wait_for(r"admin listening on http://127\.0\.0\.1:(\d+)")
    g.admin_port = int(m.group(1))
    # Not the admin line, which may come first.
    m = g.wait_for(r"(?<!admin )listening on http://127\.0\.0\.1:(\d+)")
    g.port = int(m.group(1))
    return g


NGINX_PROXY = """
worker_processes 1;
master_process off;
daemon off;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log info;
worker_rlimit_nofile {nofile};
events {{ worker_connections {wc}; }}
http {{
	access_log off;
	client_body_temp_path {tmp}/{name}-body;
	proxy_temp_path {tmp}/{name}-proxy;
	fastcgi_temp_path {tmp}/{name}-fastcgi;
	uwsgi_temp_path {tmp}/{name}-uwsgi;
	scgi_temp_path {tmp}/{name}-scgi;
	keepalive_requests 1000000;
	keepalive_timeout 60s;
	client_header_timeout {header_timeout};
	client_body_timeout {body_timeout};
	upstream chaos_backend {{
		server 127.0.0.1:{backend};
		keepalive 64;
	}}
	server {{
		listen 127.0.0.1:{port};
		location / {{
			proxy_pass http://chaos_backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_read_timeout {read_timeout};
			add_header Access-Control-Allow-Origin $http_origin always;
			add_header Vary Origin always;
		}}
	}}
}}
"""


def start_nginx(tmp, backend_port, name="nginx", header_timeout="60s",
                body_timeout="60s", read_timeout="5s", wc=16384,
                nofile=None):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = min(nofile or hard, hard)
    port, = free_ports(1)
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write(NGINX_PROXY.format(tmp=tmp, name=name, backend=backend_port,
                                   port=port, header_timeout=header_timeout,
                                   body_timeout=body_timeout,
                                   read_timeout=read_timeout, wc=wc,
                                   nofile=nofile))
    n = Proc(name, [NGINX, "-p", tmp, "-c", conf, "-e",
                    os.path.join(tmp, name + "-error.log")], tmp,
             nofile=nofile)
    n.port = port
    n.admin_port = None
    n.log_path = os.path.join(tmp, name + "-error.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return n
        except OSError:
            if not n.alive():
                break
            time.sleep(0.02)
    raise RuntimeError("nginx did not start: " + n.text()[-2000:])


# --- /proc ----------------------------------------------------------------

def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_upstream_sockets(pid, port):
    """Sockets pid holds to remote port (its upstream keep-alive pool)."""
    return proc_client_sockets(pid, port, remote=True)


def proc_fds_own(pid, backend_port):
    """pid's fds less its pooled upstream sockets (which grow with the
    load's concurrency up to routes[].upstream.keepalive: not a leak)."""
    return proc_fds(pid) - proc_upstream_sockets(pid, backend_port)


def proc_client_sockets(pid, port, remote=False):
    """Sockets pid holds whose local port is port (its clients'), or with
    remote, whose remote port is port, from /proc/PID/net/tcp and the
    socket inodes of /proc/PID/fd."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    n = 0
    with open("/proc/%d/net/tcp" % pid) as f:
        next(f)
        for line in f:
            x = line.split()
            lport = int(x[2 if remote else 1].split(":")[1], 16)
            if lport == port and x[3] != "0A" and x[9] in inodes:
                n += 1
    return n


class Sampler:
    """RSS, fds and CPU of pid every 250 ms while the scenario runs."""

    def __init__(self, pid):
        self.pid = pid
        self.rss = []
        self.fds = []
        self.t0 = time.monotonic()
        self.cpu0 = proc_cpu_s(pid)
        self.task = asyncio.ensure_future(self.run())

    def sample(self):
        try:
            self.rss.append(proc_rss_kb(self.pid))
            self.fds.append(proc_fds(self.pid))
            self.cpu1 = proc_cpu_s(self.pid)
            self.t1 = time.monotonic()
        except (OSError, IndexError, ValueError):
            pass

    async def run(self):
        while True:
            self.sample()
            await asyncio.sleep(0.25)	# the sampling period itself

    async def stop(self):
        self.sample()
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        wall = max(1e-6, self.t1 - self.t0)
        return {"rss_peak_kb": max(self.rss or [0]),
                "fds_peak": max(self.fds or [0]),
                "cpu_s": self.cpu1 - self.cpu0,
                "cpu_pct": 100.0 * (self.cpu1 - self.cpu0) / wall}


# --- HTTP on raw sockets ----------------------------------------------------

async def read_response(reader, head_only=False):
    """(status, {lower-name: value}, body bytes) of one HTTP/1.1 answer."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed before a status line")
    parts = line.decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers = {}
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed in the head")
        if line in (b"\r\n", b"\n"):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if head_only or status in (204, 304) or 100 <= status < 200:
        return status, headers, body
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += await reader.readexactly(size)
            await reader.readline()
    else:
        body = await reader.read()
    return status, headers, body


async def http_get(port, path, timeout=10.0, headers=""):
    r, w = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        w.write(("GET %s HTTP/1.1\r\nHost: chaos\r\n%sConnection: close\r\n"
                 "\r\n" % (path, headers)).encode())
        return await asyncio.wait_for(read_response(r), timeout)
    finally:
        w.close()


async def metrics(port):
    """The gateway's /metrics as {name{labels}: value}."""
    if port is None:
        return {}
    try:
        _, _, body = await http_get(port, "/metrics", 5.0)
    except (OSError, asyncio.TimeoutError, ConnectionError, ValueError):
        return {}
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        k, _, v = line.rpartition(" ")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


def msum(m, prefix):
    return sum(v for k, v in m.items() if k == prefix or
               k.startswith(prefix + "{"))


# --- the normal clients (a child process) -----------------------------------

async def load_main(a):
    """Paced keep-alive GETs; prints one JSON summary on stdout."""
    lat = []
    res = {"sent": 0, "ok": 0, "status": {}, "errors": {}, "hung": 0,
           "cors_missing": 0, "slow_ms": []}
    deadline = time.monotonic() + a.duration
    req = ("GET %s HTTP/1.1\r\nHost: chaos\r\nOrigin: %s\r\n"
           "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-"
           "00f067aa0ba902b7-01\r\n\r\n" % (a.path, ORIGIN)).encode()

    async def one_conn(i):
        # The pace is the load itself (a steady rate, the same for both
        # targets), not a wait for anything: a random start in the first
        # interval, then interval_ms x [0.5, 1.5) between requests.
        await asyncio.sleep(random.random() * a.interval_ms / 1000.0)
        r = w = None
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            res["sent"] += 1
            try:
                if w is None:
                    r, w = await asyncio.wait_for(asyncio.open_connection(
                        "127.0.0.1", a.port), a.timeout)
                w.write(req)
                st, h, _ = await asyncio.wait_for(read_response(r),
                                                  a.timeout)
                dt = (time.monotonic() - t0) * 1000.0
                res["status"][str(st)] = res["status"].get(str(st), 0) + 1
                if "access-control-allow-origin" not in h:
                    res["cors_missing"] += 1
                if st == 200 and "access-control-allow-origin" in h:
                    res["ok"] += 1
                    lat.append(dt)
                if h.get("connection", "").lower() == "close":
                    w.close()
                    w = None
            except asyncio.TimeoutError:
                res["hung"] += 1
                if w is not None:
                    w.close()
                w = None
            except (OSError, ConnectionError, ValueError,
                    asyncio.IncompleteReadError) as e:
                k = type(e).__name__
                res["errors"][k] = res["errors"].get(k, 0) + 1
                if w is not None:
                    w.close()
                w = None
                await asyncio.sleep(0.05)	# no reconnect storm
            await asyncio.sleep(a.interval_ms / 1000.0 *
                                (0.5 + random.random()))
        if w is not None:
            w.close()

    await asyncio.gather(*(one_conn(i) for i in range(a.conns)))
    res["p50_ms"] = pct(lat, 50)
    res["p99_ms"] = pct(lat, 99)
    res["max_ms"] = max(lat) if lat else 0.0
    print(json.dumps(res))


class Load:
    """The normal clients against port for duration seconds."""

    def __init__(self, port, duration, path="/api/echo", conns=None,
                 interval_ms=None, timeout=15.0):
        conns = conns or int(os.environ.get("CHAOS_LOAD_CONNS", "10"))
        interval = interval_ms or int(os.environ.get(
            "CHAOS_LOAD_INTERVAL_MS", "20"))
        self.argv = [sys.executable, os.path.abspath(__file__), "load",
                     "--port", str(port), "--duration", str(duration),
                     "--path", path, "--conns", str(conns),
                     "--interval-ms", str(interval), "--timeout",
                     str(timeout)]

    async def start(self):
        self.p = await asyncio.create_subprocess_exec(
            *self.argv, stdout=subprocess.PIPE)
        return self

    async def result(self):
        out, _ = await self.p.communicate()
        return json.loads(out.decode())


# --- results ----------------------------------------------------------------

class Results:
    def __init__(self, path):
        self.path = path
        self.rows = []

    def add(self, scenario, target, load, proc, checks, said, ref=False):
        """ref: nginx's row, for comparison; its checks do not fail the
        run (the targets are the gateway's)."""
        ok = all(c[1] for c in checks)
        failed = [c[0] for c in checks if not c[1]]
        row = {"scenario": scenario, "target": target, "load": load,
               "proc": proc, "checks": checks, "said": said, "pass": ok,
               "ref": ref}
        self.rows.append(row)
        log("%s / %s: %s%s" % (scenario, target, "PASS" if ok else "FAIL",
                               "" if ok else " (" + "; ".join(failed) + ")"))
        self.write()

    def write(self):
        lines = ["# make chaos results", "",
                 "Run %s on %s (%d CPUs; a shared, loaded machine)." %
                 (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  socket.gethostname(), os.cpu_count() or 0), "",
                 "| scenario | target | normal requests | success | p99 ms "
                 "| peak RSS KiB | peak fds | CPU % | metrics and logs said "
                 "| checks | result |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            ld = r["load"] or {}
            sent = ld.get("sent", 0)
            succ = ("%.2f%%" % (100.0 * ld.get("ok", 0) / sent)) if sent \
                else "-"
            p = r["proc"] or {}
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                         "| %s |" % (
                             r["scenario"], r["target"], sent or "-", succ,
                             ("%.1f" % ld["p99_ms"]) if sent else "-",
                             p.get("rss_peak_kb", "-"),
                             p.get("fds_peak", "-"),
                             ("%.1f" % p["cpu_pct"]) if p else "-",
                             r["said"].replace("|", "/"),
                             "; ".join("%s %s" % ("ok" if c[1] else "FAILED",
                                                  c[0])
                                       for c in r["checks"]).replace(
                                           "|", "/"),
                             ("PASS" if r["pass"] else "FAIL") +
                             (" (reference)" if r["ref"] else "")))
        with open(self.path, "w") as f:
            f.write("\n".join(lines) + "\n")


def load_checks(ld, p99_ms, success=100.0):
    sent = ld["sent"]
    rate = 100.0 * ld["ok"] / sent if sent else 0.0
    return [("normal clients %.2f%% >= %.2f%% success (%d/%d; statuses %s, "
             "errors %s, hung %d)" % (rate, success, ld["ok"], sent,
                                      ld["status"], ld["errors"], ld["hung"]),
             sent > 0 and rate >= success),
            ("normal p99 %.1f ms < %d ms" % (ld["p99_ms"], p99_ms),
             ld["p99_ms"] < p99_ms)]


# --- scenarios --------------------------------------------------------------

class Ctx:
    def __init__(self, args, results):
        self.short = args.short
        self.nginx = not args.no_nginx
        self.results = results
        self.p99 = int(os.environ.get("CHAOS_P99_MS",
                                      "250" if args.short else "50"))

    def S(self, short, long):
        return short if self.short else long

    def tmp(self, name):
        return tempfile.mkdtemp(prefix="chaos-%s-" % name)


def log_count(text, regex):
    return len(re.findall(regex, text))


async def until(cond, timeout, what, poll=0.05):
    """Await cond() (a function, or a coroutine function) for at most
    timeout seconds (a condition, never a
    fixed wait: on a loaded machine it takes what it takes, and no
    longer).  False, logged, when it never held: the checks that follow
    then fail and say why."""
    deadline = time.monotonic() + timeout
    while True:
        ok = cond()
        if asyncio.iscoroutine(ok):
            ok = await ok
        if ok:
            return True
        if time.monotonic() >= deadline:
            log("waited %.0f s for %s in vain" % (timeout, what))
            return False
        await asyncio.sleep(poll)


async def settled_rss(pid, timeout=10.0, window=1.0, tol_kb=64):
    """pid's RSS (KiB) once it has held within tol_kb for window seconds
    (the frees of the connections just closed are done), or at timeout."""
    deadline = time.monotonic() + timeout
    samples = []
    n = max(2, int(window / 0.25) + 1)
    while True:
        samples = (samples + [proc_rss_kb(pid)])[-n:]
        if len(samples) == n and max(samples) - min(samples) <= tol_kb:
            return samples[-1]
        if time.monotonic() >= deadline:
            log("RSS of %d not settled within %.0f s (%s)" %
                (pid, timeout, samples))
            return samples[-1]
        await asyncio.sleep(0.25)


async def no_clients(px, timeout=10.0, left=0):
    """Await the proxy holding at most left client sockets (the ones a
    step just closed are gone from its fd table)."""
    return await until(lambda: proc_client_sockets(px.pid, px.port) <= left,
                       timeout, "%s to close its client sockets (<= %d)" %
                       (px.name, left))


async def open_many(port, n, first=b"", concurrency=200):
    """n connections to port, first written on each; the (reader, writer)
    pairs, those that connected."""
    out = []
    sem = asyncio.Semaphore(concurrency)

    async def one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), 10)
            except (OSError, asyncio.TimeoutError):
                return
            if first:
                w.write(first)
            out.append((r, w))
    await asyncio.gather(*(one() for _ in range(n)))
    return out


def close_all(conns):
    for _, w in conns:
        try:
            w.close()
        except (OSError, RuntimeError):
            pass


async def slowloris(ctx, target):
    n = ctx.S(200, 2000)
    ht, bt = ctx.S(2, 5), ctx.S(3, 5)
    tmp = ctx.tmp("slowloris")
    be = start_backend(tmp)
    if target == "nginx":
        px = start_nginx(tmp, be.port, header_timeout="%ds" % ht,
                         body_timeout="%ds" % bt)
    else:
        px = start_gateway(tmp, gateway_yaml(
            be.port, "header_timeout: %ds, body_timeout: %ds, "
            "body_min_rate: 100, max_connections: 20000" % (ht, bt)))
    m0 = await metrics(px.admin_port)
    samp = Sampler(px.pid)
    t0 = time.monotonic()
    load = await Load(px.port, ctx.S(8, 20)).start()
    head = await open_many(px.port, n, b"GET /api/echo HTTP/1.1\r\nHost: x\r\n")
    body = await open_many(px.port, n, b"POST /api/echo HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 1000000\r\n\r\n")
    cut_at = {}
    statuses = {}
    bound = ctx.S(2 * max(ht, bt) + 8, 2 * max(ht, bt) + 15)

    async def trickle(i, r, w, kind):
        async def reader():
            try:
                line = await r.readline()
                if line:
                    st = line.split(b" ")[1].decode()
                    statuses[st] = statuses.get(st, 0) + 1
                    await r.read()
            except (OSError, ConnectionError, IndexError):
                pass
            cut_at[(kind, i)] = time.monotonic() - t0
        rt = asyncio.ensure_future(reader())
        while not rt.done() and time.monotonic() - t0 < bound:
            try:
                w.write(b"a")
            except (OSError, RuntimeError):
                break
            # The trickle: a byte every 0.5-0.6 s is the abuse itself.
            await asyncio.sleep(0.5 + random.random() * 0.1)
        # A last answer or close on its way: await it, 0.5 s at most.
        await asyncio.wait({rt}, timeout=0.5)
        rt.cancel()
        w.close()
    await asyncio.gather(*([trickle(i, r, w, "head")
                            for i, (r, w) in enumerate(head)] +
                           [trickle(i, r, w, "body")
                            for i, (r, w) in enumerate(body)]))
    ld = await load.result()
    pr = await samp.stop()
    m1 = await metrics(px.admin_port)
    head_cut = sum(1 for k in cut_at if k[0] == "head")
    body_cut = sum(1 for k in cut_at if k[0] == "body")
    last = max(cut_at.values() or [0])
    checks = load_checks(ld, ctx.p99)
    said = "cut: %d/%d trickling heads, %d/%d trickling bodies; answers %s; " \
        "last cut at %.1f s" % (head_cut, len(head), body_cut, len(body),
                               statuses, last)
    if target == "nginx":
        said += " (nginx has no minimum body rate: client_body_timeout " \
            "is a gap)"
    else:
        to = msum(m1, "tracestitch_client_timeouts_total") - \
            msum(m0, "tracestitch_client_timeouts_total")
        sb = msum(m1, "tracestitch_client_slow_bodies_total") - \
            msum(m0, "tracestitch_client_slow_bodies_total")
        said += "; metrics: client_timeouts +%d, slow_bodies +%d" % (to, sb)
        checks += [
            ("all %d slow clients connected" % (2 * n),
             len(head) == n and len(body) == n),
            ("every trickling head cut by header_timeout %ds" % ht,
             head_cut == len(head)),
            ("every trickling body cut (408) by body_min_rate", body_cut ==
             len(body) and statuses.get("408", 0) == len(body)),
            ("counted: client_timeouts + slow_bodies >= %d" % (2 * n),
             to + sb >= 2 * n)]
    px.stop()
    be.stop()
    ctx.results.add("slowloris (%d heads + %d bodies)" % (n, n), target, ld,
                    pr, checks, said, ref=target == "nginx")


async def idle_flood(ctx, target):
    n = ctx.S(1000, 10000)
    tmp = ctx.tmp("idle")
    be = start_backend(tmp)
    if target == "nginx":
        px = start_nginx(tmp, be.port, wc=n + 2000, nofile=n + 4000)
    else:
        px = start_gateway(tmp, gateway_yaml(
            be.port, "idle_timeout: 300s, max_connections: %d" % (n + 2000)),
            nofile=n + 4000)
    # Warm the allocator and the paths, then the baseline.
    for _ in range(50):
        await http_get(px.port, "/api/echo", headers="Origin: %s\r\n" % ORIGIN)
    await no_clients(px)
    rss0 = await settled_rss(px.pid)
    conns = await open_many(px.port, n)
    ok = 0

    async def one(r, w):
        nonlocal ok
        w.write(b"GET /api/echo HTTP/1.1\r\nHost: x\r\nOrigin: " +
                ORIGIN.encode() + b"\r\n\r\n")
        try:
            st, _, _ = await asyncio.wait_for(read_response(r), 30)
            ok += st == 200
        except (OSError, ConnectionError, asyncio.TimeoutError, ValueError,
                asyncio.IncompleteReadError):
            pass
    # Ten at a time, like the normal load: more would grow the upstream
    # keep-alive pool, whose buffers are not the idle connections'.
    sem = asyncio.Semaphore(10)

    async def lim(r, w):
        async with sem:
            await one(r, w)
    await asyncio.gather(*(lim(r, w) for r, w in conns))
    rss1 = await settled_rss(px.pid)
    fds1 = proc_fds(px.pid)
    samp = Sampler(px.pid)
    ld = await (await Load(px.port, ctx.S(4, 10)).start()).result()
    pr = await samp.stop()
    close_all(conns)
    # Await the proxy seeing them close.
    deadline = time.monotonic() + 20
    while proc_fds(px.pid) > fds1 - n // 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await no_clients(px, 20)
    rss2 = await settled_rss(px.pid, window=1.5)
    per = (rss1 - rss0) * 1024.0 / max(1, n)
    said = "%d idle keep-alive connections (%d served): RSS %d -> %d KiB, " \
        "%.2f KiB each; after they closed %d KiB" % (
            n, ok, rss0, rss1, per / 1024.0, rss2)
    checks = load_checks(ld, ctx.p99)
    checks.append(("all %d idle connections opened and served" % n,
                   len(conns) == n and ok == n))
    px.stop()
    be.stop()
    ctx.idle[target] = per
    if target != "nginx":
        # RSS returns (docs/reliability.md, idle flood): what stays is
        # libevent's per-descriptor map; the long form checks it, the
        # short one only reports it (1,000 connections grow RSS by less
        # than the allowance's floor, so the check would say nothing).
        if not ctx.short:
            keep = max(1024, 0.25 * (rss1 - rss0))
            checks.append(("RSS returns when they close: +%d KiB <= %d KiB "
                           "(a quarter of the growth)" % (rss2 - rss0, keep),
                           rss2 - rss0 <= keep))
        if "nginx" in ctx.idle:
            ratio = per / max(1.0, ctx.idle["nginx"])
            said += "; %.2fx nginx's %.2f KiB" % (ratio,
                                                   ctx.idle["nginx"] / 1024)
            checks.append(("memory per idle connection %.2fx nginx <= 1.5x"
                           % ratio, ratio <= 1.5))
        else:
            checks.append(("memory per idle connection %.2f KiB <= 3.5 KiB "
                           "(no nginx in this run)" % (per / 1024),
                           per <= 3.5 * 1024))
    ctx.results.add("idle flood (%d)" % n, target, ld, pr, checks, said,
                    ref=target == "nginx")


async def fd_exhaustion(ctx, target):
    nofile = 64
    extra = ctx.S(100, 300)
    hold = ctx.S(4, 10)
    tmp = ctx.tmp("fds")
    be = start_backend(tmp)
    if target == "nginx":
        px = start_nginx(tmp, be.port, wc=1024, nofile=nofile)
    else:
        px = start_gateway(tmp, gateway_yaml(be.port, "idle_timeout: 60s"),
                           nofile=nofile)
    text0 = len(px.text()) if target != "nginx" else 0
    samp = Sampler(px.pid)
    conns = await open_many(px.port, extra)
    t0 = time.monotonic()
    # The hold is the measurement: CPU and log lines while out of fds.
    await asyncio.sleep(hold)
    pr = await samp.stop()
    alive = px.alive()
    close_all(conns)
    # Recovery: a request is served again within 5 s.
    t1 = time.monotonic()
    recovered = None
    while time.monotonic() - t1 < 5:
        try:
            st, _, _ = await http_get(px.port, "/api/echo", 2.0,
                                      "Origin: %s\r\n" % ORIGIN)
            if st == 200:
                recovered = time.monotonic() - t1
                break
        except (OSError, ConnectionError, asyncio.TimeoutError, ValueError):
            pass
        await asyncio.sleep(0.05)
    ld = await (await Load(px.port, ctx.S(3, 5)).start()).result()
    if target == "nginx":
        with open(px.log_path, errors="replace") as f:
            lines = log_count(f.read(), r"Too many open files")
    else:
        lines = log_count(px.text()[text0:], r"accept on .*Too many open "
                          r"files")
    m = await metrics(px.admin_port)
    said = "%d connections over %d fds held %d s: CPU %.1f%%, %d log lines " \
        "about it, recovered in %s" % (
            extra, nofile, hold, pr["cpu_pct"], lines,
            "%.2f s" % recovered if recovered is not None else "never")
    checks = load_checks(ld, ctx.p99)
    checks += [("alive (no crash)", alive),
               ("CPU %.1f%% < 25%% while out of fds (no busy loop)" %
                pr["cpu_pct"], pr["cpu_pct"] < 25),
               ("recovered within 5 s of the connections closing",
                recovered is not None)]
    if target != "nginx":
        errs = msum(m, "tracestitch_accept_errors_total")
        said += "; accept_errors_total %d" % errs
        checks += [("logged at most once a second (%d lines in %.0f s)" %
                    (lines, time.monotonic() - t0),
                    1 <= lines <= time.monotonic() - t0 + 2),
                   ("counted in accept_errors_total", errs > 0)]
    px.stop()
    be.stop()
    ctx.results.add("fd exhaustion (ulimit -n %d)" % nofile, target, ld, pr,
                    checks, said, ref=target == "nginx")


async def backend_flap(ctx, target):
    period = ctx.S(1.0, 2.0)
    dur = ctx.S(6, 30)
    tmp = ctx.tmp("flap")
    be = start_backend(tmp)
    port = be.port
    if target == "nginx":
        px = start_nginx(tmp, port)
    else:
        px = start_gateway(tmp, gateway_yaml(port))
    samp = Sampler(px.pid)
    load = await Load(px.port, dur + 1).start()
    flaps = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < dur:
        await asyncio.sleep(period / 2)
        be.stop(signal.SIGKILL)
        flaps += 1
        await asyncio.sleep(period / 2)
        be = start_backend(tmp, "backend%d" % flaps, port)
    ld = await load.result()
    pr = await samp.stop()
    # The pool recovers: a clean load afterwards.
    after = await (await Load(px.port, ctx.S(2, 5)).start()).result()
    bad = {k: v for k, v in ld["status"].items()
           if k not in ("200", "502", "503", "504")}
    said = "%d kills: statuses %s, no CORS header on %d answers, %d hung, " \
        "connection errors %s; afterwards %d/%d ok" % (
            flaps, ld["status"], ld["cors_missing"], ld["hung"],
            ld["errors"], after["ok"], after["sent"])
    checks = [("every failure a 502/503/504 (others: %s)" % bad, not bad),
              ("every answer with CORS headers", ld["cors_missing"] == 0),
              ("none hangs", ld["hung"] == 0),
              ("every request answered (no connection error)",
               not ld["errors"]),
              ("the pool recovers: 100%% after the flap (%d/%d)" %
               (after["ok"], after["sent"]),
               after["sent"] > 0 and after["ok"] == after["sent"])]
    px.stop()
    be.stop()
    ctx.results.add("backend flap (every %.0f s)" % period, target, ld, pr,
                    checks, said, ref=target == "nginx")
    if target != "nginx":
        await backend_flap_servers(ctx, period)


async def backend_flap_servers(ctx, period):
    """The flap with retries and several servers (issue 16's target): one
    of three servers of the route is killed and started again while the
    load runs; every request is a GET, retried on another server by the
    default retry (a connect failure or a reset), so none may fail."""
    dur = ctx.S(4, 20)
    tmp = ctx.tmp("flap3")
    bes = [start_backend(tmp, "backend-%s" % c) for c in "abc"]
    ports = [b.port for b in bes]
    y = ["server:", '  listen: ["127.0.0.1:0"]', "  workers: 2",
         'admin: {listen: "127.0.0.1:0"}', "routes:",
         "  - name: api", "    path_prefix: /", "    upstream:",
         "      servers: [%s]" % ", ".join('"http://127.0.0.1:%d"' % p
                                           for p in ports),
         "      timeout: 5s",
         'cors: {allowed_origins: ["%s"]}' % ORIGIN,
         "exporter: {type: none}", 'logging: {level: info, access_log: "off"}']
    px = start_gateway(tmp, "\n".join(y) + "\n")
    samp = Sampler(px.pid)
    load = await Load(px.port, dur + 1).start()
    flaps = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < dur:
        await asyncio.sleep(period / 2)
        bes[1].stop(signal.SIGKILL)
        flaps += 1
        await asyncio.sleep(period / 2)
        bes[1] = start_backend(tmp, "backend-b%d" % flaps, ports[1])
    ld = await load.result()
    pr = await samp.stop()
    m = await metrics(px.admin_port)
    retries = msum(m, "tracestitch_upstream_retries_total")
    failed = ld["sent"] - ld["ok"]
    said = "%d kills of 1 of 3 servers: statuses %s, %d retries, %d hung, " \
        "connection errors %s" % (flaps, ld["status"], retries, ld["hung"],
                                  ld["errors"])
    checks = [("0 failed idempotent requests (%d of %d)" %
               (failed, ld["sent"]), ld["sent"] > 0 and failed == 0),
              ("the failed attempts were retried (%d)" % retries,
               retries > 0),
              ("none hangs", ld["hung"] == 0)]
    px.stop()
    for b in bes:
        b.stop()
    ctx.results.add("backend flap, 3 servers with retries (every %.0f s)" %
                    period, "tracestitch", ld, pr, checks, said)


async def slow_backend(ctx, target):
    m = ctx.S(20, 100)
    dur = ctx.S(6, 20)
    tmp = ctx.tmp("slow")
    be = start_backend(tmp)
    if target == "nginx":
        px = start_nginx(tmp, be.port, read_timeout="2s")
    else:
        px = start_gateway(tmp, gateway_yaml(be.port, routes=[
            ("slow", "/slow", be.port, "2s"), ("api", "/", be.port, "5s")]))
    samp = Sampler(px.pid)
    load = await Load(px.port, dur).start()
    got = {}
    took = []
    t0 = time.monotonic()

    async def abuser():
        while time.monotonic() - t0 < dur:
            t = time.monotonic()
            try:
                st, _, _ = await http_get(px.port, "/slow?ms=10000", 15,
                                          "Origin: %s\r\n" % ORIGIN)
                got[str(st)] = got.get(str(st), 0) + 1
            except (OSError, ConnectionError, asyncio.TimeoutError,
                    ValueError):
                got["error"] = got.get("error", 0) + 1
            took.append(time.monotonic() - t)
    await asyncio.gather(*(abuser() for _ in range(m)))
    ld = await load.result()
    pr = await samp.stop()
    said = "%d clients on 10 s answers: %s, longest %.1f s" % (
        m, got, max(took or [0]))
    checks = load_checks(ld, ctx.p99)
    checks += [("every slow request answered 504 (%s)" % got,
                set(got) == {"504"}),
               ("504 within 2 s timeout + 2 s", max(took or [99]) < 4.0)]
    px.stop()
    be.stop()
    ctx.results.add("slow backend (%d x 10 s)" % m, target, ld, pr, checks,
                    said, ref=target == "nginx")


async def agent_faults(ctx, target):
    phase = ctx.S(2, 8)
    tmp = ctx.tmp("agent")
    be = start_backend(tmp)
    ag = start_agent(tmp)
    aport = ag.port
    px = start_gateway(tmp, gateway_yaml(
        be.port, exporter="exporter: {type: datadog, datadog_url: "
        "\"http://127.0.0.1:%d\", flush_interval: 200ms}" % aport))

    def agent_spans():
        n = 0
        for line in open(ag.out_path, errors="replace"):
            mm = re.search(r'"spans":\s*(\d+)', line)
            if mm:
                n += int(mm.group(1))
        return n

    async def control(mode):
        await http_get(aport, "/control/mode?" + mode, 5)

    async def settle_export(name, m0, s0):
        """Await what the phase's checks read: healthy, every span
        submitted has reached the agent (queue and in-flight empty);
        down or 500, a failure counted.  Stalled has nothing to await
        (the Agent never answers; only the latency is checked)."""
        state = {"m": {}}

        async def poll():
            state["m"] = await metrics(px.admin_port)
        if name in ("baseline", "healed"):
            async def done():
                await poll()
                m = state["m"]
                return "tracestitch_export_queue_spans" in m and \
                    msum(m, "tracestitch_export_queue_spans") == 0 and \
                    msum(m, "tracestitch_export_inflight_spans") == 0 and \
                    agent_spans() > s0
        elif name in ("down", "500"):
            async def done():
                await poll()
                m = state["m"]
                return msum(m, "tracestitch_export_errors_total") + \
                    msum(m, "tracestitch_export_dropped_spans_total") > \
                    msum(m0, "tracestitch_export_errors_total") + \
                    msum(m0, "tracestitch_export_dropped_spans_total")
        else:
            return
        await until(done, 10, "the exporter to settle (agent %s)" % name)

    samp = Sampler(px.pid)
    rows = []
    lds = []
    faults = [("baseline", None), ("down", "down"), ("healed", "up"),
              ("stalled", "stall"), ("healed", "normal"),
              ("500", "500"), ("healed", "normal")]
    for name, action in faults:
        if action == "down":
            ag.stop(signal.SIGKILL)
        elif action == "up":
            ag = Proc("agent2", [AGENT, "-p", str(aport), "-q"], tmp)
            ag.wait_for(r"fake agent listening")
        elif action is not None:
            await control(action)
        s0 = agent_spans()
        m0 = await metrics(px.admin_port)
        ld = await (await Load(px.port, phase).start()).result()
        await settle_export(name, m0, s0)
        m1 = await metrics(px.admin_port)
        s1 = agent_spans()
        lds.append(ld)
        d = {k: msum(m1, k) - msum(m0, k) for k in (
            "tracestitch_export_dropped_spans_total",
            "tracestitch_export_errors_total",
            "tracestitch_export_spans_total")}
        rows.append((name, ld, s1 - s0, d))
    pr = await samp.stop()
    total = {"sent": sum(x["sent"] for x in lds),
             "ok": sum(x["ok"] for x in lds),
             "status": {}, "errors": {}, "hung": sum(x["hung"] for x in lds),
             "p99_ms": max(x["p99_ms"] for x in lds)}
    said = "; ".join("%s: p99 %.1f ms, agent got %d spans, export errors "
                     "+%d, dropped +%d" % (
                         n, ld["p99_ms"], got,
                         d["tracestitch_export_errors_total"],
                         d["tracestitch_export_dropped_spans_total"])
                     for n, ld, got, d in rows)
    base = rows[0][1]["p99_ms"]
    checks = load_checks(total, ctx.p99)
    checks += [("p99 of every fault phase <= baseline %.1f ms + %d ms" %
                (base, ctx.S(100, 10)),
                all(ld["p99_ms"] <= base + ctx.S(100, 10)
                    for _, ld, _, _ in rows))]
    for n, ld, got, d in rows:
        if n in ("down", "stalled", "500"):
            checks.append(("%s: failures counted" % n,
                           d["tracestitch_export_errors_total"] +
                           d["tracestitch_export_dropped_spans_total"] > 0
                           or n == "stalled"))
        if n in ("baseline", "healed"):
            checks.append(("%s: spans reach the agent (%d)" % (n, got),
                           got > 0))
    px.stop()
    ag.stop()
    be.stop()
    ctx.results.add("Agent down / stalled / 500", target, total, pr, checks,
                    said)


async def reload_storm(ctx, target):
    dur = ctx.S(5, 60)
    tmp = ctx.tmp("reload")
    be = start_backend(tmp)

    def yaml(i):
        routes = [("r%d_%d" % (i, k), "/r%d/%d" % (i % 7, k), be.port, "5s")
                  for k in range(i % 5)]
        return gateway_yaml(be.port, routes=routes +
                            [("api", "/", be.port, "5s")], level="debug")
    px = start_gateway(tmp, yaml(0))
    for _ in range(20):
        await http_get(px.port, "/api/echo", headers="Origin: %s\r\n" % ORIGIN)
    await no_clients(px)
    rss0 = await settled_rss(px.pid)
    fds0 = proc_fds_own(px.pid, be.port)
    samp = Sampler(px.pid)
    load = await Load(px.port, dur + 1).start()
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < dur:
        n += 1
        with open(px.cfg_path + ".new", "w") as f:
            f.write(yaml(n))
        os.rename(px.cfg_path + ".new", px.cfg_path)
        px.send(signal.SIGHUP)
        await asyncio.sleep(0.1)	# the storm's period, the scenario
    ld = await load.result()
    pr = await samp.stop()
    # Settled: the load's connections closed and every generation the
    # reloads replaced freed (its last requests finished).
    await no_clients(px)
    state = {"m": {}}

    async def all_freed():
        state["m"] = await metrics(px.admin_port)
        ok = msum(state["m"],
                  'tracestitch_config_reloads_total{result="ok"}')
        return ok > 0 and log_count(
            px.text(), r"configuration generation \d+ freed") >= ok
    await until(all_freed, 10, "every replaced generation freed", 0.1)
    rss1 = await settled_rss(px.pid)
    fds1 = proc_fds_own(px.pid, be.port)
    m = await metrics(px.admin_port)
    ok = msum(m, 'tracestitch_config_reloads_total{result="ok"}')
    failed = msum(m, 'tracestitch_config_reloads_total{result="failed"}')
    text = px.text()
    freed = log_count(text, r"configuration generation \d+ freed")
    said = "%d SIGHUPs: %d reloads ok, %d failed; generations freed %d; " \
        "RSS %d -> %d KiB, fds (less upstream keep-alive) %d -> %d" % (n, ok, failed, freed, rss0, rss1,
                                            fds0, fds1)
    checks = load_checks(ld, ctx.p99)
    checks += [("no reload failed", failed == 0 and ok > 0),
               ("every generation but the current freed (%d of %d)" %
                (freed, ok), freed == ok),
               ("fds flat (%d -> %d)" % (fds0, fds1), fds1 <= fds0 + 2),
               ("RSS flat (+%d KiB <= 4 MiB)" % (rss1 - rss0),
                rss1 - rss0 <= 4096)]
    px.stop()
    be.stop()
    ctx.results.add("reload storm (SIGHUP / 100 ms, %d s)" % dur, target, ld,
                    pr, checks, said)


async def drain(ctx, target):
    k = ctx.S(10, 50)
    tmp = ctx.tmp("drain")
    be = start_backend(tmp)
    # The slow requests have a backend of their own, whose /stats says
    # when all of them have arrived (are in flight).
    bs = start_backend(tmp, "slowbackend")
    px = start_gateway(tmp, gateway_yaml(be.port, routes=[
        ("slow", "/slow", bs.port, "5s"), ("api", "/", be.port, "5s")]))
    samp = Sampler(px.pid)
    load = await Load(px.port, 3).start()
    nload = int(os.environ.get("CHAOS_LOAD_CONNS", "10"))
    await until(lambda: proc_client_sockets(px.pid, px.port) >= nload, 10,
                "the normal clients' connections")
    rss0 = proc_rss_kb(px.pid)
    inflight = [asyncio.ensure_future(http_get(
        px.port, "/slow?ms=1500", 30, "Origin: %s\r\n" % ORIGIN))
        for _ in range(k)]

    async def arrived():
        _, _, body = await http_get(bs.port, "/stats", 5)
        return json.loads(body)["requests"] >= k
    # 1.2 s at most: they are answered at 1.5 s.
    await until(arrived, 1.2, "%d requests in flight upstream" % k, 0.02)
    # Memory per in-flight request (a GET waiting on its upstream): its
    # connection, exchange, upstream connection and span.
    per_req = (proc_rss_kb(px.pid) - rss0) / float(k)
    pr = await samp.stop()
    t0 = time.monotonic()
    px.send(signal.SIGTERM)
    # New connections are refused once the listeners are shut down.
    refused = False
    while time.monotonic() - t0 < 5 and not refused:
        try:
            socket.create_connection(("127.0.0.1", px.port), 1).close()
            await asyncio.sleep(0.02)
        except OSError:
            refused = True
    res = await asyncio.gather(*inflight, return_exceptions=True)
    fin = sum(1 for x in res if not isinstance(x, BaseException) and
              x[0] == 200)
    while px.alive() and time.monotonic() - t0 < 35:
        await asyncio.sleep(0.02)
    exit_s = time.monotonic() - t0
    rc = px.stop()
    bs.stop()
    ld = await load.result()
    said = "SIGTERM with %d requests in flight: %d finished 200; new " \
        "connections %s; exit status %s after %.2f s; RSS per in-flight " \
        "request %.2f KiB" % (k, fin, "refused" if refused else
                             "still accepted", rc, exit_s, per_req)
    checks = [("in-flight requests finish (%d/%d)" % (fin, k), fin == k),
              ("new connections refused", refused),
              ("exit 0 within the drain timeout (30 s): %.1f s" % exit_s,
               rc == 0 and exit_s < 30)]
    be.stop()
    ctx.results.add("drain (SIGTERM under load)", target, ld, pr, checks,
                    said)


async def pipelined_abuse(ctx, target):
    npipe = 1000
    nhalf = ctx.S(20, 200)
    nrst = ctx.S(50, 500)
    tmp = ctx.tmp("abuse")
    be = start_backend(tmp)
    if target == "nginx":
        px = start_nginx(tmp, be.port)
    else:
        px = start_gateway(tmp, gateway_yaml(be.port))
    for _ in range(20):
        await http_get(px.port, "/api/echo", headers="Origin: %s\r\n" % ORIGIN)
    await no_clients(px)
    fds0, rss0 = proc_fds(px.pid), proc_rss_kb(px.pid)
    cs0 = proc_client_sockets(px.pid, px.port)
    own0 = proc_fds_own(px.pid, be.port)
    samp = Sampler(px.pid)
    load = await Load(px.port, ctx.S(5, 15)).start()
    # 1,000 pipelined requests written at once on one connection.
    r, w = await asyncio.open_connection("127.0.0.1", px.port)
    w.write(b"".join(b"GET /api/echo/%d HTTP/1.1\r\nHost: x\r\nOrigin: %s"
                     b"\r\n\r\n" % (i, ORIGIN.encode())
                     for i in range(npipe)))
    answered = 0
    pst = {}
    try:
        for i in range(npipe):
            st, _, _ = await asyncio.wait_for(read_response(r), 20)
            pst[str(st)] = pst.get(str(st), 0) + 1
            answered += 1
    except (OSError, ConnectionError, asyncio.TimeoutError, ValueError,
            asyncio.IncompleteReadError):
        pass
    w.close()

    # Half-closed: the request, then FIN; the answer must still come.
    async def half():
        r, w = await asyncio.open_connection("127.0.0.1", px.port)
        w.write(b"GET /api/echo HTTP/1.1\r\nHost: x\r\nOrigin: " +
                ORIGIN.encode() + b"\r\n\r\n")
        await w.drain()
        w.write_eof()
        try:
            st, _, _ = await asyncio.wait_for(read_response(r), 10)
        except asyncio.TimeoutError:
            st = -1		# hung
        except (OSError, ConnectionError) as e:
            # Closed before a status line: the EOF cancelled it.
            st = 0 if "before a status line" in str(e) or \
                isinstance(e, ConnectionResetError) else -2
        except (ValueError, asyncio.IncompleteReadError):
            st = -2		# a partial or broken answer
        w.close()
        return st
    halves = await asyncio.gather(*(half() for _ in range(nhalf)))

    # RST in the middle of a body (SO_LINGER 0).
    async def rst():
        s = socket.socket()
        s.setblocking(False)
        await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1",
                                                          px.port))
        s.send(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: "
               b"100000\r\n\r\n" + b"x" * 1000)
        # Not a wait for a condition: the gap makes the reset land after
        # the head and part of the body were read (mid-body), whatever
        # the proxy has done with them by then.
        await asyncio.sleep(0.05)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    await asyncio.gather(*(rst() for _ in range(nrst)))
    ld = await load.result()
    pr = await samp.stop()
    deadline = time.monotonic() + 10
    while proc_client_sockets(px.pid, px.port) > cs0 and \
            time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    fds1, rss1 = proc_fds(px.pid), proc_rss_kb(px.pid)
    cs1 = proc_client_sockets(px.pid, px.port)
    own1 = proc_fds_own(px.pid, be.port)
    m = await metrics(px.admin_port)
    hok = sum(1 for s in halves if s == 200)
    hclosed = sum(1 for s in halves if s == 0)
    said = "%d pipelined: %d answered %s; %d half-closed: %d answered 200, %d closed unanswered; " \
        "%d reset mid-body; client sockets %d -> %d, fds %d -> %d (upstream " \
        "keep-alive included), RSS %d -> %d KiB" % (
            npipe, answered, pst, nhalf, hok, hclosed, nrst, cs0, cs1, fds0,
            fds1,
            rss0, rss1)
    checks = load_checks(ld, ctx.p99)
    checks += [("every pipelined request answered 200 (%d/%d)" %
                (pst.get("200", 0), npipe), pst.get("200", 0) == npipe),
               # RFC 9112 9.6: a request complete before the FIN is
               # answered (issue 16); nginx cancels most of them, so its
               # reference row only has to answer or close cleanly.
               (("every half-closed request answered 200 (%d of %d)" %
                 (hok, nhalf), hok == nhalf) if target != "nginx" else
                ("every half-closed request answered 200 or closed without "
                 "a byte (nginx cancels it on the EOF): %d + %d of %d" %
                 (hok, hclosed, nhalf), hok + hclosed == nhalf)),
               ("no client socket left (%d -> %d)" % (cs0, cs1),
                cs1 <= cs0),
               ("no other fd left: fds less upstream sockets %d -> %d" %
                (own0, own1), own1 <= own0)]
    if target != "nginx":
        oc = m.get("tracestitch_open_connections", -1)
        said += "; open_connections %d" % oc
        checks.append(("no connection left open (metric %d)" % oc, oc == 0))
    px.stop()
    be.stop()
    ctx.results.add("pipelined abuse", target, ld, pr, checks, said,
                    ref=target == "nginx")


async def connection_limit(ctx, target):
    """server.limits.max_connections (nginx: worker_connections): at the
    limit a new connection is closed at once and counted, the open ones
    keep working, and new ones are served again once some close."""
    limit = ctx.S(200, 2000)
    over = ctx.S(100, 1000)
    conns_load = int(os.environ.get("CHAOS_LOAD_CONNS", "10"))
    tmp = ctx.tmp("limit")
    be = start_backend(tmp)
    if target == "nginx":
        # worker_connections counts the listener and the upstream
        # connections too: leave room for them.
        px = start_nginx(tmp, be.port, wc=limit + 70)
    else:
        px = start_gateway(tmp, gateway_yaml(
            be.port, "max_connections: %d, idle_timeout: 120s" % limit))
    samp = Sampler(px.pid)
    load = await Load(px.port, ctx.S(6, 12)).start()
    await until(lambda: proc_client_sockets(px.pid, px.port) >= conns_load,
                10, "the normal clients' connections")
    held = await open_many(px.port, limit - conns_load, b"GET /api/echo "
                           b"HTTP/1.1\r\nHost: x\r\n\r\n", concurrency=20)
    ok_held = 0
    for r, w in held:
        try:
            st, _, _ = await asyncio.wait_for(read_response(r), 10)
            ok_held += st == 200
        except (OSError, ConnectionError, asyncio.TimeoutError, ValueError,
                asyncio.IncompleteReadError):
            pass
    # Over the limit: each must be closed (EOF or reset) promptly.
    t0 = time.monotonic()
    extra = await open_many(px.port, over, b"GET /api/echo HTTP/1.1\r\n"
                            b"Host: x\r\n\r\n", concurrency=50)
    closed = 0
    answered = 0

    async def fate(r):
        nonlocal closed, answered
        try:
            line = await asyncio.wait_for(r.readline(), 10)
            if line:
                answered += 1
            else:
                closed += 1
        except (OSError, ConnectionError):
            closed += 1
        except asyncio.TimeoutError:
            pass
    await asyncio.gather(*(fate(r) for r, _ in extra))
    took = time.monotonic() - t0
    close_all(extra)
    close_all(held[:over])
    # Room again: the proxy has closed its side of those (and the
    # refused ones), so a new connection is under the limit.
    await no_clients(px, 10, left=len(held) - over + conns_load)
    after = None
    try:
        after = (await http_get(px.port, "/api/echo", 5,
                                "Origin: %s\r\n" % ORIGIN))[0]
    except (OSError, ConnectionError, asyncio.TimeoutError, ValueError):
        pass
    ld = await load.result()
    pr = await samp.stop()
    close_all(held)
    m = await metrics(px.admin_port)
    said = "%d held (%d served), %d more: %d closed, %d answered, in %.1f " \
        "s; after %d closed: %s" % (len(held), ok_held, len(extra), closed,
                                    answered, took, over, after)
    checks = load_checks(ld, ctx.p99)
    checks += [("every connection over the limit closed (%d/%d)" %
                (closed, len(extra)), closed == len(extra) == over),
               ("the held ones were served (%d/%d)" % (ok_held, len(held)),
                ok_held == len(held)),
               ("served again once some closed", after == 200)]
    if target != "nginx":
        ref = msum(m, "tracestitch_connections_refused_total")
        lines = log_count(px.text(), r"max_connections \(\d+\) reached")
        said += "; connections_refused_total %d, %d log lines" % (ref, lines)
        checks += [("counted (%d)" % ref, ref == over),
                   ("logged at most once a second (%d lines)" % lines,
                    1 <= lines <= took + 3)]
    else:
        with open(px.log_path, errors="replace") as f:
            said += "; 'worker_connections are not enough' %d times" % \
                log_count(f.read(), "worker_connections are not enough")
    px.stop()
    be.stop()
    ctx.results.add("connection limit (%d + %d)" % (limit, over), target, ld,
                    pr, checks, said, ref=target == "nginx")


SCENARIOS = [
    ("slowloris", slowloris, True),
    ("idle", idle_flood, True),
    ("fds", fd_exhaustion, True),
    ("flap", backend_flap, True),
    ("slow", slow_backend, True),
    ("agent", agent_faults, False),
    ("reload", reload_storm, False),
    ("drain", drain, False),
    ("pipelined", pipelined_abuse, True),
    ("limit", connection_limit, False),
]


async def chaos_main(args):
    for p in (GATEWAY, BACKEND, AGENT):
        if not os.access(p, os.X_OK):
            log("%s not built (make build)" % p)
            return 2
    if not args.no_nginx and not os.access(NGINX, os.X_OK):
        log("nginx not found (make deps): running without it")
        args.no_nginx = True
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out = os.environ.get("CHAOS_OUT") or os.path.join(BUILD,
                                                      "chaos-results.md")
    res = Results(out)
    ctx = Ctx(args, res)
    ctx.idle = {}
    only = set(args.only.split(",")) if args.only else None
    for name, fn, nginx_too in SCENARIOS:
        if only and name not in only:
            continue
        targets = (["nginx"] if nginx_too and ctx.nginx else []) + \
            ["tracestitch"]
        for t in targets:
            log("%s: %s" % (name, t))
            try:
                await fn(ctx, t)
            except Exception as e:  # a scenario that cannot run fails
                import traceback
                traceback.print_exc()
                res.add(name, t, None, None, [("ran: %s" % e, False)],
                        "the scenario raised")
            finally:
                Proc.stop_all()
    res.write()
    failed = [r for r in res.rows if not r["pass"] and not r.get("ref")]
    total = sum(1 for r in res.rows if not r.get("ref"))
    print(open(out).read())
    print("chaos: %d passed, %d failed" % (total - len(failed), len(failed)))
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    lp = sub.add_parser("load")
    lp.add_argument("--port", type=int, required=True)
    lp.add_argument("--duration", type=float, required=True)
    lp.add_argument("--path", default="/api/echo")
    lp.add_argument("--conns", type=int, default=10)
    lp.add_argument("--interval-ms", type=int, default=20)
    lp.add_argument("--timeout", type=float, default=15)
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--no-nginx", action="store_true")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    if a.cmd == "load":
        asyncio.run(load_main(a))
        return 0
    try:
        return asyncio.run(chaos_main(a))
    finally:
        Proc.stop_all()


if __name__ == "__main__":
    sys.exit(main())
