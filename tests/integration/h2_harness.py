"""h2_harness.py -- the HTTP/2 integration tests' helpers.

Starts the real gateway (TS_BUILD_ROOT/src/tracestitch) and the fake
backend (TS_FAKE_BACKEND) on 127.0.0.1 port 0, and speaks raw HTTP/2 to the
gateway with Debian's python3-hyperframe (frames) and python3-hpack (HPACK):
no validation on our side, so a test can send exactly the bytes a hostile
client would.  Every process a test starts is stopped by its PID.
"""
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.request

import hpack
from hyperframe import frame as hf

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TIMEOUT = 30.0            # generous: the test machine is shared

# RFC 9113 7 error codes.
NO_ERROR = 0
PROTOCOL_ERROR = 1
INTERNAL_ERROR = 2
REFUSED_STREAM = 7
CANCEL = 8
ENHANCE_YOUR_CALM = 11

BUILD = os.environ.get("TS_BUILD_ROOT", "build")
DATA = os.environ.get("TS_TEST_DATA", "tests/data")
GATEWAY = os.path.join(BUILD, "src", "tracestitch")
BACKEND = os.environ.get("TS_FAKE_BACKEND",
                         os.path.join(BUILD, "tests", "support",
                                      "fake_backend"))
TLS_CERT = os.path.join(DATA, "tls", "server.pem")
TLS_KEY = os.path.join(DATA, "tls", "server.key")
TLS_CA = os.path.join(DATA, "tls", "ca.pem")


def wait_for(cond, timeout=TIMEOUT, what="condition"):
    """Poll cond() until it returns something true; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


class Proc:
    """A child process with its stdout and stderr in temporary files."""

    def __init__(self, argv):
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=self.err)
        self.pid = self.p.pid

    def read(self, which="err"):
        f = self.err if which == "err" else self.out
        f.seek(0)
        return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            os.kill(self.pid, sig)
            try:
                self.p.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait()


class Backend(Proc):
    def __init__(self):
        super().__init__([BACKEND, "-p", "0", "-n", "be"])
        text = wait_for(lambda: "listening on" in self.read("out") and
                        self.read("out"), what="the fake backend")
        self.port = int(text.split("127.0.0.1:")[1].split()[0])

    def stats(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/stats" % self.port,
                                    timeout=TIMEOUT) as r:
            return json.loads(r.read())


class Gateway(Proc):
    """The gateway on one listener; server_extra is YAML under server:."""

    def __init__(self, backend_port, server_extra="", tls=False,
                 top_extra="", upstream_extra="", route_host=None,
                 yaml=None, admin_extra=""):
        tls_line = ""
        if tls:
            tls_line = '  tls: {cert: "%s", key: "%s"}\n' % (TLS_CERT,
                                                            TLS_KEY)
        self.yaml = ("server:\n"
                     '  listen: ["127.0.0.1:0"]\n'
                     "  workers: 1\n"
                     "%s%s"
                     'admin: {listen: "127.0.0.1:0"%s}\n'
                     "routes:\n"
                     "  - name: api\n"
                     "%s"
                     "    path_prefix: /\n"
                     "    upstream: {url: \"http://127.0.0.1:%d\"%s}\n"
                     "%s"
                     "exporter: {type: none}\n"
                     "logging: {level: info, access_log: stdout}\n"
                     % (tls_line, server_extra, admin_extra,
                        "    host: \"%s\"\n" % route_host if route_host
                        else "", backend_port, upstream_extra, top_extra))
        if yaml is not None:
            self.yaml = yaml        # a test's own configuration
        fd, self.cfg = tempfile.mkstemp(suffix=".yaml")
        os.write(fd, self.yaml.encode())
        os.close(fd)
        super().__init__([GATEWAY, "-c", self.cfg])
        text = wait_for(lambda: "info: ready" in self.read() and self.read()
                        or (self.p.poll() is not None and
                            self.fail_start()),
                        what="the gateway to be ready")
        self.port = self.admin_port = None
        for line in text.splitlines():
            if "listening on http" not in line:
                continue
            port = int(line.rsplit(":", 1)[1])
            if "admin listening" in line:
                self.admin_port = port
            elif self.port is None:
                self.port = port
        self.tls = tls

    def fail_start(self):
        raise AssertionError("gateway exited: " + self.read())

    def stop(self, sig=signal.SIGTERM):
        super().stop(sig)
        if os.path.exists(self.cfg):
            os.unlink(self.cfg)
        # Under the ASan build (make sanitize) a report fails the test.
        err = self.read()
        for bad in ("Sanitizer", "runtime error:"):
            if bad in err:
                raise AssertionError("gateway: " + err[-4000:])

    def metric(self, name, labels=""):
        """Sum of the samples of family name whose labels hold labels."""
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" %
                                    self.admin_port, timeout=TIMEOUT) as r:
            text = r.read().decode()
        total = 0
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            key, val = line.rsplit(" ", 1)
            if key.split("{")[0] == name and labels in key:
                total += int(float(val))
        return total

    def access_lines(self):
        return [json.loads(ln) for ln in self.read("out").splitlines()
                if ln.startswith("{")]


class Response:
    def __init__(self):
        self.status = None
        self.headers = []
        self.body = b""
        self.reset = None          # RST_STREAM error code
        self.goaway = None         # GOAWAY error code
        self.closed = False        # EOF before the stream ended
        self.ended = False

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def json(self):
        return json.loads(self.body)


class RawH2:
    """A raw HTTP/2 client connection (h2c prior knowledge, or TLS h2)."""

    def __init__(self, port, tls=False, settings=None, preface=True,
                 rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(TIMEOUT)
        s.connect(("127.0.0.1", port))
        if tls:
            ctx = ssl.create_default_context(cafile=TLS_CA)
            ctx.set_alpn_protocols(["h2"])
            s = ctx.wrap_socket(s, server_hostname="localhost")
            assert s.selected_alpn_protocol() == "h2", \
                s.selected_alpn_protocol()
        self.sock = s
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b""
        self.goaway = None
        self.eof = False
        self.streams = {}
        self.frames = []          # every frame read, in order
        self.send_failed = False
        if preface:
            self.sock.sendall(PREFACE)
            self.send(hf.SettingsFrame(0, settings=settings or {}))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, frame):
        # An attack goes on sending after the gateway closed: what was
        # sent is enough, the answer is read afterwards.
        try:
            self.sock.sendall(frame.serialize())
        except (BrokenPipeError, ConnectionResetError):
            self.send_failed = True

    def send_raw(self, data):
        self.sock.sendall(data)

    def block(self, headers):
        return self.enc.encode([(k.encode() if isinstance(k, str) else k,
                                 v.encode() if isinstance(v, str) else v)
                                for k, v in headers])

    def request(self, sid, headers, body=None, end_stream=None):
        """HEADERS (and DATA) for stream sid."""
        flags = ["END_HEADERS"]
        if end_stream is None:
            end_stream = True
        if end_stream and body is None:
            flags.append("END_STREAM")
        self.send(hf.HeadersFrame(sid, data=self.block(headers),
                                  flags=flags))
        if body is not None:
            self.send(hf.DataFrame(sid, data=body,
                                   flags=["END_STREAM"] if end_stream
                                   else []))

    def read_frame(self, timeout=TIMEOUT):
        """The next frame, or None at EOF (or timeout)."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 9:
                f, length = hf.Frame.parse_frame_header(self.buf[:9])
                if len(self.buf) >= 9 + length:
                    f.parse_body(memoryview(self.buf[9:9 + length]))
                    self.buf = self.buf[9 + length:]
                    self.frames.append(f)
                    self.on_frame(f)
                    return f
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return None
            except (ConnectionResetError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.eof = True
                return None
            self.buf += data

    def on_frame(self, f):
        if isinstance(f, hf.SettingsFrame) and "ACK" not in f.flags:
            self.send(hf.SettingsFrame(0, flags=["ACK"]))
        elif isinstance(f, hf.GoAwayFrame):
            self.goaway = f.error_code
        r = self.streams.get(f.stream_id) if f.stream_id else None
        if r is None and f.stream_id:
            r = self.streams[f.stream_id] = Response()
        if isinstance(f, (hf.HeadersFrame, hf.ContinuationFrame)):
            for k, v in self.dec.decode(f.data):
                k = k.decode() if isinstance(k, bytes) else k
                v = v.decode() if isinstance(v, bytes) else v
                if k == ":status":
                    r.status = int(v)
                else:
                    r.headers.append((k, v))
        elif isinstance(f, hf.DataFrame):
            r.body += f.data
            if f.flow_controlled_length > 0:
                # Keep the windows open: the test reads everything.
                self.send(hf.WindowUpdateFrame(0, window_increment=f.
                                               flow_controlled_length))
                if "END_STREAM" not in f.flags:
                    self.send(hf.WindowUpdateFrame(
                        f.stream_id,
                        window_increment=f.flow_controlled_length))
        elif isinstance(f, hf.RstStreamFrame):
            r.reset = f.error_code
        if r is not None and "END_STREAM" in getattr(f, "flags", ()):
            r.ended = True

    def response(self, sid, timeout=TIMEOUT):
        """Read until stream sid ends, is reset, or the connection ends."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.streams.get(sid)
            if r is not None and (r.ended or r.reset is not None):
                return r
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                break
            if self.read_frame(left) is None and not self.eof:
                break
        r = self.streams.setdefault(sid, Response())
        r.goaway = self.goaway
        r.closed = self.eof
        return r

    def handshake(self):
        """Read until the gateway's SETTINGS came (and were acknowledged:
        on_frame does), so that no ACK of ours lands inside a header block
        a test sends in pieces."""
        wait_for(lambda: any(isinstance(f, hf.SettingsFrame) and
                             "ACK" not in f.flags for f in self.frames) or
                 self.read_frame(TIMEOUT) is None and self.eof,
                 what="the gateway's SETTINGS")
        return self

    def wait_frame(self, pred, what="a frame"):
        """Read until a frame read so far satisfies pred."""
        return wait_for(lambda: any(pred(f) for f in self.frames) or
                        (self.read_frame(1) is not None and False),
                        what=what)

    def until_goaway(self, timeout=TIMEOUT):
        """Read until GOAWAY or EOF; the GOAWAY code or None."""
        deadline = time.monotonic() + timeout
        while self.goaway is None and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.read_frame(left)
        return self.goaway

    def until_eof(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.read_frame(left)
        return True


def base_headers(port, method="GET", path="/echo", extra=()):
    return [(":method", method), (":scheme", "http"),
            (":authority", "127.0.0.1:%d" % port), (":path", path)] + \
        list(extra)


class H2Case(unittest.TestCase):
    """One backend and one gateway per test class."""
    server_extra = "  http2_cleartext: true\n"
    top_extra = ""
    upstream_extra = ""
    route_host = None
    admin_extra = ""
    tls = False

    @classmethod
    def setUpClass(cls):
        cls.be = Backend()
        try:
            cls.gw = Gateway(cls.be.port, cls.server_extra, tls=cls.tls,
                             top_extra=cls.top_extra,
                             upstream_extra=cls.upstream_extra,
                             route_host=cls.route_host,
                             admin_extra=cls.admin_extra)
        except Exception:
            cls.be.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.be.stop()

    def connect(self, **kw):
        c = RawH2(self.gw.port, tls=self.tls, **kw)
        self.addCleanup(c.close)
        return c.handshake()

    def upstream_requests(self):
        return self.be.stats()["requests"]


def main():
    """unittest.main, with a count of the tests run (they must all run)."""
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    print("ran %d tests" % r.testsRun)
    raise SystemExit(0 if r.wasSuccessful() and r.testsRun > 0 else 1)
