#!/usr/bin/python3
"""test_rum_intake_e2e.py -- the RUM intake relay through the real binary
(issue 15, docs/rum-relay.md).

A fake intake over https (Python's http.server and ssl with the test PKI of
tests/data/tls: the gateway verifies it against tests/data/tls/ca.pem)
records every request that reaches it: request line, header lines as sent,
body bytes.  The gateway (TS_GATEWAY) has relay routes pointing at it.
Checked:

- a deflate/gzip batch and a binary multipart batch arrive byte for byte,
  on the decoded ddforward path and query, with Content-Type kept and
  Host the intake's; chunked client bodies arrive whole with our
  Content-Length; a batch over HTTP/2 (h2c, python3-h2) arrives the same;
- Cookie, Authorization, Proxy-Authorization, every tracing header,
  Forwarded, X-Real-IP and the client's X-Forwarded-* never arrive;
  User-Agent does; X-Forwarded-For is the client: the peer, or from a
  peer in server.trusted_proxies the address it names (a peer outside the
  list cannot claim one);
- the intake's status and body come back with the route's CORS headers
  (not the intake's), a preflight is answered by the gateway;
- every refusal class of ddforward is a 400 with its reason, GET is a 405,
  a batch over max_body_bytes a 413, and none of them reaches the intake;
- an intake whose certificate does not verify, or that does not answer, is
  a 502 and receives nothing;
- relay requests have no gateway span unless rum_intake.trace is on (the
  access log's dd.trace_id);
- /metrics counts tracestitch_rum_intake_requests_total{track,result}, the
  bytes and the durations.

Exit 0 on success, 1 with a message on failure.  Every process it starts is
stopped by its PID.
"""
import gzip
import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import h2.config
import h2.connection
import h2.events

TIMEOUT = 20.0           # seconds for anything awaited (loaded machine)
ORIGIN = "https://app.test"

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)
    return cond


def wait_for(pred, what):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise TimeoutError("rum_intake_e2e: timed out waiting for " + what)


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class Intake(http.server.ThreadingHTTPServer):
    """The fake intake: records (method, path, [(name, value)], body)."""
    daemon_threads = True

    def __init__(self, ctx):
        super().__init__(("127.0.0.1", 0), IntakeHandler)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.lock = threading.Lock()
        self.requests = []

    def count(self):
        with self.lock:
            return len(self.requests)


class IntakeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _any(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with self.server.lock:
            self.server.requests.append((self.command, self.path,
                                         list(self.headers.items()), body))
        # The SDK's intake answers 202 with a request id; a query
        # parameter "status" asks for another status here.
        m = re.search(r"[?&]status=(\d+)", self.path)
        status = int(m.group(1)) if m else 202
        out = b'{"request_id":"fake-intake"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        # The intake's own CORS answer must not reach the browser.
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_POST = do_GET = do_PUT = _any

    def log_message(self, fmt, *args):
        pass


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(port, method, target, headers=(), body=b"", source="127.0.0.1",
            chunked=False):
    """One request on its own connection: (status, {name: value}, body)."""
    s = socket.socket()
    s.settimeout(TIMEOUT)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    head = "%s %s HTTP/1.1\r\nHost: api.test\r\n" % (method, target)
    head += "".join("%s: %s\r\n" % kv for kv in headers)
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
        data = b""
        for i in range(0, len(body), 1000):
            piece = body[i:i + 1000]
            data += b"%x\r\n%s\r\n" % (len(piece), piece)
        data += b"0\r\n\r\n"
    else:
        if body or method == "POST":
            head += "Content-Length: %d\r\n" % len(body)
        data = body
    head += "Connection: close\r\n\r\n"
    s.sendall(head.encode("latin-1") + data)
    resp = b""
    while True:
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        if not b:
            break
        resp += b
    s.close()
    h, _, rbody = resp.partition(b"\r\n\r\n")
    lines = h.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        fields[k.strip().lower()] = v.strip()
    return status, fields, rbody


def h2_post(port, target, headers, body):
    """One POST over h2c (prior knowledge, python3-h2): (status, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                            (":authority", "api.test"),
                            (":path", target)] + list(headers))
    for i in range(0, len(body), 16384):
        conn.send_data(sid, body[i:i + 16384])
    conn.end_stream(sid)
    s.sendall(conn.data_to_send())
    status, rbody, done = None, b"", False
    while not done:
        data = s.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                rbody += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length,
                                               ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded,
                                 h2.events.StreamReset)):
                done = True
        s.sendall(conn.data_to_send())
    s.close()
    return status, rbody


# What @datadog/browser-rum 6.33 puts in ddforward (endpointBuilder.ts),
# one encodeURIComponent of path?query.
def sdk_query(track, extra=""):
    inner = ("/api/v2/%s?ddsource=browser&dd-api-key=pub0123456789abcdef&"
             "dd-evp-origin-version=6.33.0&dd-evp-origin=browser&"
             "dd-request-id=0b5a4c3d-1e2f-4a5b-8c7d-9e0f1a2b3c4d%s"
             % (track, extra))
    return inner, "ddforward=" + urllib.request.quote(inner, safe="")


CFG = """server:
  listen: ["127.0.0.1:0"]
  workers: 1
  trusted_proxies: ["127.0.0.1/32"]
  http2_cleartext: true
admin: {listen: "127.0.0.1:0"}
routes:
  - name: rum
    path_prefix: /rum-intake
    rum_intake:
      intake_url: "https://127.0.0.1:%(intake)d"
      tls_ca_file: "%(ca)s"
      max_body_bytes: 64k
      timeout: 5s
  - name: rum-traced
    path_prefix: /rum-traced
    rum_intake:
      intake_url: "https://127.0.0.1:%(intake)d"
      tls_ca_file: "%(ca)s"
      trace: true
  - name: rum-wrong-ca
    path_prefix: /rum-wrong-ca
    rum_intake:
      intake_url: "https://127.0.0.1:%(intake)d"
      tls_ca_file: "%(other_ca)s"
  - name: rum-dead
    path_prefix: /rum-dead
    rum_intake:
      intake_url: "https://127.0.0.1:%(dead)d"
      tls_ca_file: "%(ca)s"
      connect_timeout: 1s
  - name: api
    path_prefix: /
    upstream: {url: "http://127.0.0.1:%(dead)d", connect_timeout: 1s}
cors:
  allowed_origins: ["%(origin)s"]
  allowed_headers: [Content-Type]
tracing: {service: rum-e2e}
exporter: {type: none}
logging: {level: info, access_log: stdout}
"""

# One value per refusal class of ddforward.c, the reason's words.
REFUSALS = [
    ("absolute", "ddforward=https%3A%2F%2Fbrowser-intake-datadoghq.com."
     "malicious.com%2Fapi%2Fv2%2Frum", "absolute URL"),
    ("scheme-relative", "ddforward=%2F%2Fbrowser-intake-datadoghq.com."
     "malicious.com%2Fapi%2Fv2%2Frum", "scheme-relative"),
    ("host-suffix", "ddforward=.malicious.com%2Fapi%2Fv2%2Frum",
     "does not start with '/'"),
    ("userinfo", "ddforward=%2Fapi%2Fv2%2Frum%40evil.example", "an '@'"),
    ("dot-segment", "ddforward=%2Fapi%2Fv2%2F..%2F..%2Fadmin",
     "'.' or '..' segment"),
    ("encoded-dots", "ddforward=%2Fapi%2Fv2%2F%252e%252e%2Fadmin",
     "percent-encoded twice"),
    ("encoded-slash", "ddforward=%2Fapi%2Fv2%252Frum",
     "percent-encoded twice"),
    ("backslash", "ddforward=%5C%5Cevil.example%5Capi%5Cv2%5Crum",
     "backslash"),
    ("control", "ddforward=%2Fapi%2Fv2%2Frum%0D%0AHost%3A%20evil.example",
     "control byte"),
    ("nul", "ddforward=%2Fapi%2Fv2%2Frum%00", "control byte"),
    ("duplicate", "ddforward=%2Fapi%2Fv2%2Frum&ddforward=%2F%2Fevil",
     "more than once"),
    ("nested", "ddforward=%2Fapi%2Fv2%2Frum%3Fddforward%3D%252F%252Fevil",
     "ddforward parameter of its own"),
    ("name", "dd%66orward=%2Fapi%2Fv2%2Frum", "must be written ddforward"),
    ("overlong", "ddforward=%2Fapi%2Fv2%2Frum%3Fx%3D" + "a" * 2100,
     "longer than the relay accepts"),
    ("percent", "ddforward=%2Fapi%2Fv2%2Frum%zz", "two hex digits"),
    ("unicode", "ddforward=%EF%BC%8Fapi%EF%BC%8Fv2%EF%BC%8Frum",
     "outside ASCII"),
    ("plus", "ddforward=%2Fapi%2Fv2%2Frum+", "ambiguous"),
    ("bad-char", "ddforward=%2Fapi%2Fv2%2Frum%3Fa%3D%22%3E", "a URL may not"),
    ("unknown-path", "ddforward=%2Fapi%2Fv1%2Finput", "not an intake path"),
    ("missing", "a=1", "is missing"),
    ("empty", "ddforward=", "is empty"),
]

# Headers a browser (or a script) may send that the intake must not get.
DROPPED = [
    ("Cookie", "session=s3cret; _dd_s=rum=1"),
    ("Authorization", "Bearer s3cret-token"),
    ("Proxy-Authorization", "Basic c2VjcmV0"),
    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("tracestate", "dd=s:1"),
    ("x-datadog-trace-id", "1234"),
    ("x-datadog-parent-id", "5678"),
    ("x-datadog-sampling-priority", "1"),
    ("x-datadog-origin", "rum"),
    ("baggage", "user=alice"),
    ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    ("Forwarded", "for=198.51.100.9"),
    ("X-Real-IP", "198.51.100.9"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "gopher"),
]


def header(fields, name):
    """Every value of name in a recorded header list."""
    return [v for k, v in fields if k.lower() == name.lower()]


def access_lines(out, needle):
    rows = []
    for line in out.splitlines():
        if line.startswith("{") and needle in line:
            rows.append(json.loads(line))
    return rows


def metric(text, name, labels):
    want = ",".join('%s="%s"' % kv for kv in labels)
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(want)),
                  text, re.M)
    return float(m.group(1)) if m else None


def main():
    gw_bin = os.environ["TS_GATEWAY"]
    data = os.environ["TS_TEST_DATA"]
    tmp = tempfile.mkdtemp(prefix="ts-rum-e2e-")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(data, "tls", "server.pem"),
                        os.path.join(data, "tls", "server.key"))
    intake = Intake(ctx)
    threading.Thread(target=intake.serve_forever, daemon=True).start()
    cfg = os.path.join(tmp, "gw.yaml")
    with open(cfg, "w") as f:
        f.write(CFG % {"intake": intake.server_address[1],
                       "ca": os.path.join(data, "tls", "ca.pem"),
                       "other_ca": os.path.join(data, "integration", "tls",
                                                "other-ca.pem"),
                       "dead": dead_port(), "origin": ORIGIN})
    out_path = os.path.join(tmp, "out")
    err_path = os.path.join(tmp, "err")
    env = dict((k, v) for k, v in os.environ.items()
               if not k.startswith(("DD_", "OTEL_")))
    with open(out_path, "w") as out, open(err_path, "w") as err:
        gw = subprocess.Popen([gw_bin, "-c", cfg], stdout=out, stderr=err,
                              stdin=subprocess.DEVNULL, env=env)
    try:
        text = wait_for(lambda: ("info: ready" in read(err_path) or
                                 gw.poll() is not None) and read(err_path),
                        "the gateway to be ready")
        if gw.poll() is not None:
            raise SystemExit("rum_intake_e2e: gateway exited:\n" + text)
        ports = re.findall(r"(admin )?listening on http://127\.0\.0\.1:(\d+)",
                           text)
        port = next(int(p) for a, p in ports if not a)
        admin = next(int(p) for a, p in ports if a)
        run(port, admin, intake, out_path)
    finally:
        if gw.poll() is None:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                gw.kill()
                gw.wait()
        intake.shutdown()
        log = read(err_path)
        for needle in ("Sanitizer", "runtime error:"):
            check(needle not in log, "the gateway reported:\n" + log)
    if failures:
        print("rum_intake_e2e: %d failure(s)" % len(failures))
        return 1
    print("rum_intake_e2e: ok")
    return 0


def run(port, admin, intake, out_path):
    sent_bytes = 0
    forwarded = 0

    # 1. A compressed RUM batch, as the SDK sends it (deflate stream in a
    #    text/plain body; gzip here), with every header to drop.
    events = b"\n".join(json.dumps({"type": "view", "n": i}).encode()
                        for i in range(200))
    gz = gzip.compress(events)
    inner, q = sdk_query("rum", "&batch_time=1700000000000&"
                         "_dd.api=fetch-keepalive")
    st, h, body = request(port, "POST", "/rum-intake?" + q, [
        ("Content-Type", "text/plain;charset=UTF-8"),
        ("User-Agent", "Mozilla/5.0 rum-e2e"),
        ("Origin", ORIGIN),
        ("X-Forwarded-For", "203.0.113.7"),
        ("Connection", "X-Private"),
        ("X-Private", "named by Connection: hop-by-hop"),
    ] + DROPPED, gz)
    check(st == 202, "gzip batch: status %d, want the intake's 202" % st)
    check(body == b'{"request_id":"fake-intake"}',
          "gzip batch: the intake's body came back: %r" % body)
    check(h.get("access-control-allow-origin") == ORIGIN,
          "gzip batch: Access-Control-Allow-Origin %r, want ours (%s)" %
          (h.get("access-control-allow-origin"), ORIGIN))
    forwarded += 1
    sent_bytes += len(gz)
    wait_for(lambda: intake.count() >= 1, "the gzip batch at the intake")
    method, path, fields, got = intake.requests[0]
    check(method == "POST", "gzip batch: method %s" % method)
    check(path == inner, "gzip batch: path %r, want %r" % (path, inner))
    check(got == gz, "gzip batch: %d bytes arrived, %d sent, or they "
          "differ" % (len(got), len(gz)))
    check(header(fields, "Content-Type") == ["text/plain;charset=UTF-8"],
          "gzip batch: Content-Type %r" % header(fields, "Content-Type"))
    check(header(fields, "Host") == ["127.0.0.1:%d" %
                                     intake.server_address[1]],
          "gzip batch: Host %r" % header(fields, "Host"))
    check(header(fields, "User-Agent") == ["Mozilla/5.0 rum-e2e"],
          "gzip batch: User-Agent %r" % header(fields, "User-Agent"))
    check(header(fields, "Origin") == [ORIGIN],
          "gzip batch: Origin %r" % header(fields, "Origin"))
    check(header(fields, "Content-Length") == [str(len(gz))],
          "gzip batch: Content-Length %r" % header(fields, "Content-Length"))
    # From a trusted peer (127.0.0.1 is in server.trusted_proxies), the
    # client is the address its X-Forwarded-For names.
    check(header(fields, "X-Forwarded-For") == ["203.0.113.7"],
          "gzip batch: X-Forwarded-For %r, want the client 203.0.113.7" %
          header(fields, "X-Forwarded-For"))
    for name, _ in DROPPED:
        if name.lower().startswith("x-forwarded-"):
            continue
        check(not header(fields, name), "gzip batch: %s reached the "
              "intake: %r" % (name, header(fields, name)))
    check(not header(fields, "X-Forwarded-Host") and
          not header(fields, "X-Forwarded-Proto"),
          "gzip batch: X-Forwarded-Host/-Proto reached the intake")
    check("s3cret" not in repr(fields), "gzip batch: a secret arrived")
    check(not header(fields, "X-Private") and not header(fields,
                                                          "Connection"),
          "gzip batch: Connection or a field it names reached the intake")

    # 2. A binary multipart batch (session replay), chunked by the client,
    #    from a peer outside server.trusted_proxies: its X-Forwarded-For
    #    claim is not believed.
    blob = bytes(range(256)) * 64 + b"\r\n--x--\r\n\x00\xff"
    mp = (b"--b0undary\r\nContent-Disposition: form-data; name=\"segment\"; "
          b"filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n"
          b"\r\n" + blob + b"\r\n--b0undary--\r\n")
    inner, q = sdk_query("replay", "&dd-evp-encoding=deflate")
    st, h, _ = request(port, "POST", "/rum-intake?" + q, [
        ("Content-Type", "multipart/form-data; boundary=b0undary"),
        ("X-Forwarded-For", "198.51.100.1"),
    ], mp, source="127.0.0.2", chunked=True)
    check(st == 202, "binary batch: status %d" % st)
    forwarded += 1
    sent_bytes += len(mp)
    wait_for(lambda: intake.count() >= 2, "the binary batch at the intake")
    _, path, fields, got = intake.requests[1]
    check(path == inner, "binary batch: path %r, want %r" % (path, inner))
    check(got == mp, "binary batch: %d bytes arrived, %d sent, or they "
          "differ" % (len(got), len(mp)))
    check(header(fields, "Content-Type") ==
          ["multipart/form-data; boundary=b0undary"],
          "binary batch: Content-Type %r" % header(fields, "Content-Type"))
    check(not header(fields, "Transfer-Encoding"),
          "binary batch: Transfer-Encoding reached the intake")
    check(header(fields, "X-Forwarded-For") == ["127.0.0.2"],
          "binary batch: X-Forwarded-For %r, want the peer 127.0.0.2" %
          header(fields, "X-Forwarded-For"))

    # 2b. The same over HTTP/2 (h2c): one stream, the body in DATA frames.
    blob2 = bytes((i * 7) & 0xff for i in range(40000))
    inner, q = sdk_query("rum")
    st, rbody = h2_post(port, "/rum-intake?" + q,
                        [("content-type", "text/plain;charset=UTF-8"),
                         ("cookie", "session=s3cret")], blob2)
    check(st == 202, "h2 batch: status %r" % st)
    forwarded += 1
    sent_bytes += len(blob2)
    wait_for(lambda: intake.count() >= 3, "the h2 batch at the intake")
    _, path, fields, got = intake.requests[2]
    check(path == inner, "h2 batch: path %r" % path)
    check(got == blob2, "h2 batch: %d bytes arrived, %d sent, or they "
          "differ" % (len(got), len(blob2)))
    check(not header(fields, "Cookie"), "h2 batch: Cookie arrived")

    # 3. The intake's own refusal goes back as it is, with our CORS.
    inner, q = sdk_query("logs", "&status=413")
    st, h, _ = request(port, "POST", "/rum-intake?" + q,
                       [("Origin", ORIGIN)], b"{}")
    check(st == 413, "intake 413: status %d" % st)
    check(h.get("access-control-allow-origin") == ORIGIN,
          "intake 413: no CORS header of ours")
    wait_for(lambda: intake.count() >= 4, "the logs batch at the intake")
    check(intake.requests[3][1] == inner, "logs: path %r" %
          intake.requests[3][1])
    rejected = 1
    sent_bytes_logs = 2

    # 4. Refusals: none reaches the intake.
    before = intake.count()
    for cls, query, words in REFUSALS:
        st, h, body = request(port, "POST", "/rum-intake?" + query,
                              [("Origin", ORIGIN)], b"x")
        check(st == 400, "%s: status %d, want 400" % (cls, st))
        check(words in body.decode("utf-8", "replace"),
              "%s: the reason %r is not in %r" % (cls, words, body))
        check(h.get("access-control-allow-origin") == ORIGIN,
              "%s: the 400 has no CORS header" % cls)
    _, q = sdk_query("rum")
    st, h, body = request(port, "GET", "/rum-intake?" + q)
    check(st == 405, "GET: status %d, want 405" % st)
    check(h.get("allow") == "POST", "405: Allow %r" % h.get("allow"))
    # A refusal keeps the connection: two requests on one.
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(("POST /rum-intake?ddforward=%%2F%%2Fevil HTTP/1.1\r\n"
               "Host: api.test\r\nContent-Length: 1\r\n\r\nx"
               "POST /rum-intake?ddforward=%%2Fapi%%2Fv2%%2Fx HTTP/1.1\r\n"
               "Host: api.test\r\nContent-Length: 1\r\n"
               "Connection: close\r\n\r\nx").encode())
    both = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        both += b
    s.close()
    check(both.count(b"HTTP/1.1 400 ") == 2,
          "two refusals on one connection: %r" % both[:300])
    st, _, body = request(port, "PUT", "/rum-intake?" + q, body=b"x")
    check(st == 405, "PUT: status %d, want 405" % st)
    st, _, body = request(port, "POST", "/rum-intake?" + q,
                          body=b"a" * (64 * 1024 + 1))
    check(st == 413, "65537 bytes over max_body_bytes 64k: status %d" % st)
    check(b"max_body_bytes" in body, "413: reason %r" % body)
    st, h, _ = request(port, "OPTIONS", "/rum-intake?" + q, [
        ("Origin", ORIGIN), ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type")])
    check(st == 204, "preflight: status %d" % st)
    check(h.get("access-control-allow-origin") == ORIGIN,
          "preflight: no Access-Control-Allow-Origin")
    st, h, _ = request(port, "OPTIONS", "/rum-intake?" + q, [
        ("Origin", "https://evil.test"),
        ("Access-Control-Request-Method", "POST")])
    check(st == 403, "preflight of another origin: status %d" % st)
    check("access-control-allow-origin" not in h,
          "preflight of another origin: allowed")
    refused = len(REFUSALS) + 3 + 2
    # The request at the limit goes through.
    st, _, _ = request(port, "POST", "/rum-intake?" + q,
                       body=b"b" * (64 * 1024))
    check(st == 202, "65536 bytes at max_body_bytes: status %d" % st)
    forwarded += 1
    sent_bytes += 64 * 1024
    wait_for(lambda: intake.count() >= before + 1, "the batch at the limit")
    check(intake.count() == before + 1, "a refused request reached the "
          "intake (%d requests, want %d)" % (intake.count(), before + 1))

    # 5. An intake that does not verify, one that does not answer.
    before = intake.count()
    st, _, body = request(port, "POST", "/rum-wrong-ca?" + q, body=b"z")
    check(st == 502, "wrong CA: status %d, want 502" % st)
    st, _, body = request(port, "POST", "/rum-dead?" + q, body=b"z")
    check(st == 502, "dead intake: status %d, want 502" % st)
    check(intake.count() == before, "the unverified intake got a request")
    failed = 2

    # 6. Traced only when the route says so.
    st, _, _ = request(port, "POST", "/rum-traced?" + q, body=b"t")
    check(st == 202, "traced route: status %d" % st)
    forwarded += 1
    sent_bytes += 1
    def relay_rows():
        rows = access_lines(read(out_path), 'route":"rum')
        done = [r for r in rows if r.get("route") == "rum-traced"]
        return rows if done else None
    rows = wait_for(relay_rows, "the traced request's access-log line")
    traced = [r for r in rows if r.get("route") == "rum-traced"]
    plain = [r for r in rows if r.get("route") == "rum"]
    check(len(traced) == 1 and traced[0].get("dd.trace_id", "0") != "0",
          "the traced relay route has no trace id: %r" % traced)
    # The rum route's lines: its batches, refusals and the two preflights.
    check(len(plain) == forwarded - 1 + rejected + refused + 2 and
          all("dd.trace_id" not in r for r in plain),
          "untraced relay requests: %d lines, trace ids %r" %
          (len(plain), [r.get("dd.trace_id") for r in plain]))

    # 7. Metrics.
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin,
                                timeout=TIMEOUT) as r:
        text = r.read().decode()
    name = "tracestitch_rum_intake_requests_total"
    got_fwd = sum(metric(text, name, [("track", t), ("result", "forwarded")])
                  or 0 for t in ("rum", "replay"))
    check(got_fwd == forwarded, "forwarded: %r, want %d" % (got_fwd,
                                                             forwarded))
    check(metric(text, name, [("track", "logs"), ("result", "rejected")])
          == rejected, "rejected logs: %r" % metric(
              text, name, [("track", "logs"), ("result", "rejected")]))
    got_ref = sum(metric(text, name, [("track", t), ("result", "refused")])
                  or 0 for t in ("rum", "none"))
    check(got_ref == refused, "refused: %r, want %d" % (got_ref, refused))
    check(metric(text, name, [("track", "rum"), ("result", "failed")]) ==
          failed, "failed: %r" % metric(text, name, [("track", "rum"),
                                                     ("result", "failed")]))
    got_bytes = sum(metric(text, "tracestitch_rum_intake_bytes_total",
                           [("track", t)]) or 0
                    for t in ("rum", "replay", "logs"))
    want_bytes = sent_bytes + sent_bytes_logs + 2   # + the 2 failed 'z'
    check(got_bytes == want_bytes, "bytes: %r, want %d" % (got_bytes,
                                                           want_bytes))
    count = sum(metric(text, "tracestitch_rum_intake_duration_seconds_count",
                       [("track", t)]) or 0
                for t in ("rum", "replay", "logs", "none"))
    check(count == forwarded + rejected + refused + failed,
          "duration count %r, want %d" % (count, forwarded + rejected +
                                          refused + failed))


if __name__ == "__main__":
    sys.exit(main())
