#!/usr/bin/python3
"""otlp_e2e.py -- OTLP http/protobuf over https through the real binary
(issue 14 items 2 and 3).

No OpenTelemetry Collector is installable here (Debian 12 packages only the
Go SDK; npm has OTLP exporters, not a receiver), so this is a fake one: an https receiver on
127.0.0.1:0 (Python's http.server and ssl, a CA and a server certificate
made at test time with the openssl command), keep-alive, counting the TLS
connections it accepts.  The gateway (TS_GATEWAY) exports to it with
exporter.otlp_protocol left at its default, gzip, an API-key header and
the CA in exporter.tls_ca_file.  Each body is gunzipped and decoded with
python3-protobuf from the .proto files of src/export/proto compiled by
Debian's protoc at test time: a decoder independent of the protoc-c code
the gateway packs with (tests/unit/test_export_otlp.c decodes with that
one).  Checked: the request line and headers, gzip, every field of a
continued span and of an error span (ids, parent, name, kind, times,
attributes, status), the resource and scope; several batches over one
connection; the receiver closing the connection costs one new connection
and no span; the API key never appears in the gateway's log; a gateway
trusting another CA refuses the receiver's certificate and sends nothing;
the Datadog exporter reaches an https Agent with the same client.

Exit 0 on success, 1 with a message on failure.  Every process it starts
is stopped by its PID.
"""
import gzip
import http.server
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT = 20.0           # seconds for anything awaited (loaded machine)
API_KEY = "e2e-s3cret-value"
TRACE_HEX = "0af7651916cd43dd8448eb211c80319c"
PARENT_HEX = "b7ad6b7169203331"

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)
    return cond


def wait_for(pred, what):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    raise TimeoutError("otlp_e2e: timed out waiting for " + what)


def run(cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, **kw)


def make_certs(d):
    """A CA and a server certificate for IP 127.0.0.1 signed by it."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    run(["openssl", "req", "-x509"] + ec + [
        "-keyout", os.path.join(d, "ca.key"),
        "-out", os.path.join(d, "ca.pem"), "-days", "2",
        "-subj", "/CN=tracestitch otlp e2e CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req"] + ec + [
        "-keyout", os.path.join(d, "srv.key"),
        "-out", os.path.join(d, "srv.csr"), "-subj", "/CN=127.0.0.1"])
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1\n")
    # A second CA that signed nothing the receiver shows.
    run(["openssl", "req", "-x509"] + ec + [
        "-keyout", os.path.join(d, "other.key"),
        "-out", os.path.join(d, "other.pem"), "-days", "2",
        "-subj", "/CN=tracestitch otlp e2e other CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "x509", "-req", "-in", os.path.join(d, "srv.csr"),
         "-CA", os.path.join(d, "ca.pem"), "-CAkey", os.path.join(d, "ca.key"),
         "-CAcreateserial", "-out", os.path.join(d, "srv.pem"), "-days", "2",
         "-extfile", os.path.join(d, "ext.cnf")])


def compile_protos(src, d):
    """protoc --python_out of src/export/proto; returns the modules."""
    protos = os.path.join(src, "src", "export", "proto")
    names = ["common.proto", "resource.proto", "trace.proto",
             "trace_service.proto"]
    run(["protoc", "--proto_path=" + protos, "--python_out=" + d] + names)
    sys.path.insert(0, d)
    import trace_pb2  # noqa: E402 (generated just now)
    import trace_service_pb2  # noqa: E402
    return trace_service_pb2, trace_pb2


class Receiver(http.server.ThreadingHTTPServer):
    """The fake collector: records requests, counts connections."""
    daemon_threads = True

    def __init__(self, ctx):
        super().__init__(("127.0.0.1", 0), Handler)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.lock = threading.Lock()
        self.requests = []      # (conn number, path, headers, body)
        self.connections = 0
        self.close_next = False  # close the connection after the answer

    def get_request(self):
        conn, addr = self.socket.accept()
        with self.lock:
            self.connections += 1
        return conn, addr


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive

    def setup(self):
        super().setup()
        with self.server.lock:
            self.conn_no = self.server.connections

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with self.server.lock:
            self.server.requests.append((self.conn_no, self.path,
                                         dict((k.lower(), v) for k, v in
                                              self.headers.items()), body))
            close = self.server.close_next
            self.server.close_next = False
        # An empty ExportTraceServiceResponse: zero bytes of protobuf.
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
        if close:
            # As an idle timeout would: after a keep-alive answer.
            self.close_connection = True

    do_PUT = do_POST    # the Datadog Agent's /v0.4/traces

    def log_message(self, fmt, *args):
        pass


class Backend(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), BackendHandler)
        self.seen = []


class BackendHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.seen.append(dict((k.lower(), v) for k, v in
                                     self.headers.items()))
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def serve(server):
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return t


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, path, headers):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    req = "GET %s HTTP/1.1\r\nHost: e2e.test\r\n%sConnection: close\r\n\r\n" \
        % (path, "".join("%s: %s\r\n" % kv for kv in headers))
    s.sendall(req.encode())
    # Read the head and Content-Length bytes of body (not until the close:
    # the status is all this needs).
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            break
        data += b
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while m is not None and len(body) < int(m.group(1)):
        b = s.recv(65536)
        if not b:
            break
        body += b
    s.close()
    return int(head.split(b" ", 2)[1])


def attrs(kvs):
    """KeyValue list -> {key: python value}."""
    out = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out

CFG = """server:
  listen: ["127.0.0.1:0"]
  workers: 1
admin: {listen: "127.0.0.1:0"}
routes:
  - name: dead
    path_prefix: /dead
    upstream: {url: "http://127.0.0.1:%d", connect_timeout: 1s}
  - name: api
    path_prefix: /
    upstream: {url: "http://127.0.0.1:%d"}
tracing: {service: otlp-svc, env: e2e, version: 1.2.3}
exporter:
  type: otlp
  otlp_endpoint: "https://127.0.0.1:%d/v1/traces"
  tls_ca_file: "%s"
  compression: gzip
  headers: {x-api-key: "%s"}
  flush_interval: 100ms
logging: {level: debug, access_log: "off"}
"""


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def start_gateway(gw_bin, cfg, errpath):
    """Start the gateway on cfg; (process, port) once it is ready."""
    env = dict((k, v) for k, v in os.environ.items()
               if not k.startswith(("DD_", "OTEL_")))
    with open(errpath, "w") as err:
        gw = subprocess.Popen([gw_bin, "-c", cfg], stdout=subprocess.DEVNULL,
                              stderr=err, env=env)
    wait_for(lambda: "info: ready" in read(errpath) or gw.poll() is not None,
             "the gateway to be ready")
    m = re.search(r"info: listening on http://127\.0\.0\.1:(\d+)",
                  read(errpath))
    if gw.poll() is not None or m is None:
        raise SystemExit("otlp_e2e: gateway did not start:\n" +
                         read(errpath))
    return gw, int(m.group(1))


def stop(gw):
    gw.terminate()
    try:
        gw.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        gw.kill()
        gw.wait()


def main():
    gw_bin = os.environ["TS_GATEWAY"]
    src = os.environ["TS_SOURCE_ROOT"]
    tmp = tempfile.mkdtemp(prefix="ts-otlp-e2e-")
    procs = []

    def log():
        return read(os.path.join(tmp, "gw.err"))
    try:
        make_certs(tmp)
        pb, tpb = compile_protos(src, tmp)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(tmp, "srv.pem"),
                            os.path.join(tmp, "srv.key"))
        rx = Receiver(ctx)
        serve(rx)
        be = Backend()
        serve(be)

        def write_cfg(name, ca):
            cfg = os.path.join(tmp, name)
            with open(cfg, "w") as f:
                f.write(CFG % (dead_port(), be.server_address[1],
                               rx.server_address[1], ca, API_KEY))
            return cfg
        cfg = write_cfg("gw.yaml", os.path.join(tmp, "ca.pem"))
        gw, port = start_gateway(gw_bin, cfg, os.path.join(tmp, "gw.err"))
        procs.append(gw)

        # Batch 1: a continued W3C trace.
        t0 = time.time_ns()
        st = get(port, "/ok", [("traceparent", "00-%s-%s-01" %
                                (TRACE_HEX, PARENT_HEX))])
        check(st == 200, "GET /ok: %d" % st)
        wait_for(lambda: len(rx.requests) >= 1, "the first export")
        # The span ends after its response is written, so before the
        # export arrives but not always before the client has read it.
        t1 = time.time_ns()
        # Batch 2: an error span (upstream refused).
        check(get(port, "/dead/x", []) == 502, "GET /dead/x is 502")
        wait_for(lambda: len(rx.requests) >= 2, "the second export")
        check(rx.connections == 1, "two batches over one connection "
              "(connections: %d)" % rx.connections)

        spans, resources, scopes = [], [], []
        for conn_no, path, hdrs, body in list(rx.requests):
            check(path == "/v1/traces", "path %s" % path)
            check(hdrs.get("content-type") == "application/x-protobuf",
                  "content-type %s" % hdrs.get("content-type"))
            check(hdrs.get("content-encoding") == "gzip",
                  "content-encoding %s" % hdrs.get("content-encoding"))
            check(hdrs.get("x-api-key") == API_KEY, "the API key header")
            check(hdrs.get("host") == "127.0.0.1:%d" % rx.server_address[1],
                  "host %s" % hdrs.get("host"))
            check("connection" not in hdrs, "no Connection: close")
            check(body[:2] == b"\x1f\x8b", "a gzip member")
            req = pb.ExportTraceServiceRequest()
            req.ParseFromString(gzip.decompress(body))
            for rs in req.resource_spans:
                resources.append(attrs(rs.resource.attributes))
                for ss in rs.scope_spans:
                    scopes.append((ss.scope.name, ss.scope.version))
                    spans.extend(ss.spans)
        check(len(spans) == 2, "2 spans exported, got %d" % len(spans))
        for r in resources:
            check(r.get("service.name") == "otlp-svc", "resource "
                  "service.name %r" % r.get("service.name"))
            check(r.get("deployment.environment") == "e2e",
                  "resource deployment.environment")
            check(r.get("service.version") == "1.2.3",
                  "resource service.version")
            check(r.get("telemetry.sdk.name") == "tracestitch",
                  "resource telemetry.sdk.name")
            check(r.get("telemetry.sdk.language") == "c",
                  "resource telemetry.sdk.language")
        for name, version in scopes:
            check(name == "tracestitch" and version != "", "scope %s %s"
                  % (name, version))

        ok = [s for s in spans if s.trace_id == bytes.fromhex(TRACE_HEX)]
        if check(len(ok) == 1, "the continued span"):
            s = ok[0]
            a = attrs(s.attributes)
            check(s.parent_span_id == bytes.fromhex(PARENT_HEX),
                  "parent_span_id %s" % s.parent_span_id.hex())
            check(len(s.span_id) == 8 and s.span_id != bytes(8),
                  "span_id %s" % s.span_id.hex())
            # The backend's traceparent names this span as its parent.
            tp = be.seen[0].get("traceparent", "")
            check(tp == "00-%s-%s-01" % (TRACE_HEX, s.span_id.hex()),
                  "backend traceparent %s vs span %s" % (tp,
                                                         s.span_id.hex()))
            check(s.name == "GET /ok", "name %r" % s.name)
            check(s.kind == tpb.Span.SPAN_KIND_SERVER,
                  "kind %d" % s.kind)
            check(t0 <= s.start_time_unix_nano <= s.end_time_unix_nano <= t1,
                  "times %d..%d within %d..%d" % (s.start_time_unix_nano,
                                                  s.end_time_unix_nano, t0,
                                                  t1))
            check(s.status.code == tpb.Status.STATUS_CODE_UNSET,
                  "status %d" % s.status.code)
            check(s.status.message == "", "no status message")
            check(a.get("service.name") == "otlp-svc", "span service.name")
            check(a.get("operation.name") == "tracestitch.request",
                  "operation.name %r" % a.get("operation.name"))
            check(a.get("resource.name") == "GET /ok", "resource.name")
            check(a.get("span.type") == "web", "span.type")
            check(a.get("http.method") == "GET", "http.method")
            check(a.get("http.status_code") == "200", "http.status_code %r"
                  % a.get("http.status_code"))
            check(a.get("_sampling_priority_v1") == 1,
                  "_sampling_priority_v1 %r (an int_value)"
                  % a.get("_sampling_priority_v1"))
            check("span.kind" not in a, "span.kind is the kind, not an "
                  "attribute")
        err = [s for s in spans if s.name == "GET /dead/x"]
        if check(len(err) == 1, "the error span"):
            s = err[0]
            check(len(s.trace_id) == 16 and s.trace_id != bytes(16),
                  "error span trace_id")
            check(s.parent_span_id == b"", "a root span has no parent")
            check(s.status.code == tpb.Status.STATUS_CODE_ERROR,
                  "error status %d" % s.status.code)
            check(s.status.message.startswith("upstream.connect: "),
                  "status message %r" % s.status.message)
            check(attrs(s.attributes).get("http.status_code") == "502",
                  "error span http.status_code")

        # The receiver closes the connection after its next answer: the
        # exporter opens one new connection and loses no span.
        with rx.lock:
            rx.close_next = True
        check(get(port, "/a", []) == 200, "GET /a")
        wait_for(lambda: len(rx.requests) >= 3, "the third export")
        for i in range(2):
            check(get(port, "/b%d" % i, []) == 200, "GET /b")
            wait_for(lambda: len(rx.requests) >= 4 + i, "export %d" % (4 + i))
        check(rx.connections == 2, "one reconnect after the close "
              "(connections: %d)" % rx.connections)
        check([r[0] for r in rx.requests] == [1, 1, 1, 2, 2],
              "requests per connection %r" % [r[0] for r in rx.requests])

        # Secrets stay out of the log; the header's name is shown masked.
        text = log()
        check(API_KEY not in text, "the API key is not in the log")
        check("x-api-key: ***" in text, "the masked header in the debug log")
        check("otlp http/protobuf https://127.0.0.1" in text,
              "the exporter's debug line")
        n_req = len(rx.requests)
        stop(gw)
        # A clean exit (also: no sanitizer report in an ASan build).
        check(gw.returncode == 0, "gateway exit status %d: %s"
              % (gw.returncode, log()[-2000:]))

        # Verification: a gateway trusting another CA sends nothing.
        cfg = write_cfg("other.yaml", os.path.join(tmp, "other.pem"))
        other_err = os.path.join(tmp, "other.err")
        gw2, port2 = start_gateway(gw_bin, cfg, other_err)
        procs.append(gw2)
        check(get(port2, "/c", []) == 200, "GET /c")
        wait_for(lambda: "spans dropped" in read(other_err),
                 "the export failure warning")
        text = read(other_err)
        check("TLS certificate verification failed" in text,
              "the certificate refused: " + text[-400:])
        check(len(rx.requests) == n_req, "nothing reached the receiver")
        stop(gw2)
        check(gw2.returncode == 0, "gateway exit status %d: %s"
              % (gw2.returncode, read(other_err)[-2000:]))

        # The Datadog exporter over https with the same client: a PUT of
        # msgpack to /v0.4/traces, verified against the CA, the header.
        cfg = write_cfg("dd.yaml", os.path.join(tmp, "ca.pem"))
        with open(cfg) as f:
            text = f.read()
        text = text.replace("type: otlp", "type: datadog").replace(
            "otlp_endpoint: \"https://127.0.0.1:%d/v1/traces\"" %
            rx.server_address[1], "datadog_url: \"https://127.0.0.1:%d\""
            % rx.server_address[1])
        check("datadog_url" in text, "the datadog config")
        with open(cfg, "w") as f:
            f.write(text)
        dd_err = os.path.join(tmp, "dd.err")
        gw3, port3 = start_gateway(gw_bin, cfg, dd_err)
        procs.append(gw3)
        check(get(port3, "/d", []) == 200, "GET /d")
        wait_for(lambda: len(rx.requests) > n_req, "the Datadog export")
        conn_no, path, hdrs, body = rx.requests[n_req]
        check(path == "/v0.4/traces", "datadog path %s" % path)
        check(hdrs.get("content-type") == "application/msgpack",
              "datadog content-type %s" % hdrs.get("content-type"))
        check(hdrs.get("x-datadog-trace-count") == "1", "trace count")
        check(hdrs.get("x-api-key") == API_KEY, "datadog: the header")
        check("content-encoding" not in hdrs, "no gzip for the Agent")
        check(body[:1] == b"\x91", "a msgpack array of one trace")
        stop(gw3)
        check(gw3.returncode == 0, "gateway exit status %d" % gw3.returncode)
        print("otlp_e2e: %d requests read, %d spans decoded, %d connections"
              % (n_req, len(spans), rx.connections))
    except TimeoutError as e:
        print(e)
        print("gateway log:\n" + log())
        failures.append(str(e))
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("otlp_e2e: %d failures" % len(failures))
        return 1
    print("otlp_e2e: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
