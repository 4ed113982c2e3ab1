#!/usr/bin/python3
"""test_websocket_e2e.py -- WebSocket tunnels and streamed answers through
the real gateway binary (issue 13 items 5 and 6).

The WebSocket peers are Debian's python3-websockets (RFC 6455): an echo
server behind the gateway and clients in front of it.  Raw sockets check
the refusals byte by byte, a small threaded backend the server-sent events.
Everything listens on 127.0.0.1 port 0; every process started here is
stopped by its PID (and gets PR_SET_PDEATHSIG, so a killed run leaves
nothing behind).  Waits are conditions with deadlines; the only timed
pauses are the pacing of streams whose timing is what is under test.

Run by meson (suite integration) with TS_GATEWAY set to the binary.
"""
import asyncio
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import websockets
import websockets.exceptions

GATEWAY = os.environ.get("TS_GATEWAY", "")
DEADLINE = 15.0          # seconds, for one awaited condition
PR_SET_PDEATHSIG = 1


def _child_setup():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def wait_for(cond, what, timeout=DEADLINE, step=0.02):
    """Poll cond() until it returns a true value; fail after timeout."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(step)


class Gateway:
    """The tracestitch binary on a config; stdout/stderr in temp files."""

    def __init__(self, yaml_text):
        self.dir = tempfile.TemporaryDirectory(prefix="ts-ws-")
        self.cfg = os.path.join(self.dir.name, "gw.yaml")
        with open(self.cfg, "w") as f:
            f.write(yaml_text)
        self.out_path = os.path.join(self.dir.name, "out")
        self.err_path = os.path.join(self.dir.name, "err")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([GATEWAY, "-c", self.cfg],
                                     stdout=self.out, stderr=self.err,
                                     stdin=subprocess.DEVNULL,
                                     preexec_fn=_child_setup)
        text = wait_for(self._ready, "the gateway to be ready")
        ports = re.findall(r"(admin )?listening on http://127\.0\.0\.1:(\d+)",
                           text)
        self.port = next(int(p) for a, p in ports if not a)
        admin = [int(p) for a, p in ports if a]
        self.admin_port = admin[0] if admin else None

    def _ready(self):
        text = self.stderr()
        if "info: ready" in text:
            return text
        if self.proc.poll() is not None:
            raise AssertionError("the gateway exited: " + text)
        return None

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def json_lines(self, key):
        rows = []
        for line in self.stdout().splitlines():
            if line.startswith("{") and ('"%s"' % key) in line:
                rows.append(json.loads(line))
        return rows

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" %
                                    self.admin_port, timeout=5) as r:
            return r.read().decode()

    def metric(self, name):
        m = re.search(r"^%s (\S+)$" % re.escape(name), self.metrics(), re.M)
        return float(m.group(1)) if m else None

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        self.err.close()
        self.dir.cleanup()


def config(backend_port, route_extra="", server_extra="",
           exporter="{type: none}"):
    return ("server:\n"
            "  listen: [\"127.0.0.1:0\"]\n"
            "  workers: 2\n"
            + server_extra +
            "admin: {listen: \"127.0.0.1:0\"}\n"
            "routes:\n"
            "  - name: ws\n"
            "    path_prefix: /\n"
            "    upstream:\n"
            "      url: http://127.0.0.1:%d\n" % backend_port
            + route_extra +
            "exporter: " + exporter + "\n"
            "logging: {level: info, access_log: stdout}\n")


class EchoServer:
    """A websockets echo server on its own thread and event loop."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.sent = 0             # push mode: messages sent so far
        self.push = None          # (count, size) to send on /push
        self.closed_codes = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(DEADLINE)

    async def _handler(self, ws, path=None):
        path = path if path is not None else ws.path
        if path.startswith("/push"):
            count, size = self.push
            for i in range(count):
                await ws.send(bytes([i % 256]) * size)
                self.sent = i + 1
            await ws.wait_closed()
            return
        if path.startswith("/close/"):
            await ws.close(int(path[7:]), "bye")
            return
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.exceptions.ConnectionClosed:
            pass
        self.closed_codes.append(ws.close_code)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.stop_fut = self.loop.create_future()
            async with websockets.serve(self._handler, "127.0.0.1", 0,
                                        max_size=None, ping_interval=None,
                                        compression=None) as srv:
                self.port = srv.sockets[0].getsockname()[1]
                self.ready.set()
                await self.stop_fut
        self.loop.run_until_complete(main())

    def stop(self):
        self.loop.call_soon_threadsafe(
            lambda: self.stop_fut.done() or self.stop_fut.set_result(None))
        self.thread.join(DEADLINE)


def ws_url(gw, path="/echo"):
    return "ws://127.0.0.1:%d%s" % (gw.port, path)


def connect(gw, path="/echo", **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("compression", None)
    kw.setdefault("open_timeout", DEADLINE)
    return websockets.connect(ws_url(gw, path), **kw)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def raw_request(port, head, timeout=DEADLINE):
    """Send head, read until the peer closes; (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    head_b, _, body = data.partition(b"\r\n\r\n")
    lines = head_b.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


WS_HEAD = ("GET /echo HTTP/1.1\r\nHost: t.test\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n")


class CannedBackend:
    """Answers every connection with a fixed response, then closes."""

    def __init__(self, response):
        self.response = response
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                data = b""
                while b"\r\n\r\n" not in data:
                    b = c.recv(65536)
                    if not b:
                        break
                    data += b
                self.requests.append(data.decode("latin-1"))
                c.sendall(self.response)

    def stop(self):
        self.sock.close()


class WebSocketTest(unittest.TestCase):
    def setUp(self):
        self.cleanups = []

    def tearDown(self):
        for fn in reversed(self.cleanups):
            fn()

    def echo_gateway(self, route_extra="", server_extra="",
                     exporter="{type: none}"):
        echo = EchoServer()
        self.cleanups.append(echo.stop)
        gw = Gateway(config(echo.port, route_extra, server_extra, exporter))
        self.cleanups.append(gw.stop)
        return echo, gw

    def test_echo_text(self):
        """A text message goes through the tunnel and back."""
        _, gw = self.echo_gateway()

        async def go():
            async with connect(gw) as ws:
                await ws.send("hello through the tunnel")
                return await ws.recv()
        self.assertEqual(run(go()), "hello through the tunnel")
        # The request is logged once the tunnel ended, with its 101.
        rows = wait_for(lambda: [r for r in gw.json_lines("request_id")
                                 if r.get("status") == 101],
                        "the access-log line of the tunnel")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["path"], "/echo")


def main():
    if not GATEWAY or not os.access(GATEWAY, os.X_OK):
        print("TS_GATEWAY is not an executable gateway binary",
              file=sys.stderr)
        return 1
    prog = unittest.main(exit=False, verbosity=2)
    res = prog.result
    print("%d tests run" % res.testsRun)
    return 0 if res.wasSuccessful() and res.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
