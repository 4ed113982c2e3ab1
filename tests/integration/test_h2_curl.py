#!/usr/bin/env python3
"""test_h2_curl.py -- HTTP/2 through the real gateway with Debian's curl
(built on nghttp2): ALPN h2 on TLS (server.http2, default on, and off),
h2c with prior knowledge (server.http2_cleartext, default off), and what
every stream gets (issue 12 items 1 and 2): the pipeline's routing, CORS
preflight answered at the gateway, trace injection, the gateway's own
errors with CORS headers, the access-log line with its protocol, the
protocol label of the request metrics, concurrent streams on one
connection.
"""
import json
import subprocess
import tempfile

import h2_harness as H

ORIGIN = "https://app.example"
CORS = ("cors:\n"
        "  allowed_origins: [\"%s\"]\n"
        "  allowed_methods: [GET, POST]\n" % ORIGIN)


def curl(*args):
    """Run curl; (http_version, status, headers text, body)."""
    p = subprocess.run(["curl", "-sS", "--max-time", "30",
                        "-D", "/dev/stdout", "-o", "-",
                        "-w", "\n%{http_version} %{http_code}"] +
                       list(args), capture_output=True, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    body, _, tail = out.rpartition("\n")
    version, code = tail.split()
    head, _, body = body.partition("\r\n\r\n")
    return version, int(code), head.lower(), body, p.returncode


class Cleartext(H.H2Case):
    top_extra = CORS

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.gw.port, path)

    def test_prior_knowledge_get(self):
        v, code, head, body, _ = curl("--http2-prior-knowledge",
                                      self.url("/echo?x=1"))
        self.assertEqual((v, code), ("2", 200))
        echo = json.loads(body)
        self.assertEqual(echo["target"], "/echo?x=1")
        self.assertEqual(echo["version"], "HTTP/1.1")
        names = [k.lower() for k, _ in echo["headers"]]
        # Trace injection and X-Forwarded-* as for HTTP/1.1.
        self.assertIn("traceparent", names)
        self.assertIn("x-forwarded-for", names)
        lines = H.wait_for(lambda: [ln for ln in self.gw.access_lines()
                                    if ln.get("http.url_details.path") ==
                                    "/echo" and ln.get("http.version") == "2"],
                           what="the h2 access-log line")
        self.assertEqual(lines[-1]["http.status_code"], 200)

    def test_http11_still_served(self):
        v, code, _, _, _ = curl("--http1.1", self.url("/echo"))
        self.assertEqual((v, code), ("1.1", 200))
        H.wait_for(lambda: any(ln.get("http.version") == "1.1"
                               for ln in self.gw.access_lines()),
                   what="the http/1.1 access-log line")

    def test_post_body(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"z" * 200000)
            f.flush()
            v, code, _, body, _ = curl("--http2-prior-knowledge",
                                       "--data-binary", "@" + f.name,
                                       self.url("/echo"))
        self.assertEqual((v, code), ("2", 200))
        self.assertEqual(json.loads(body)["body_bytes"], 200000)

    def test_preflight_at_the_gateway(self):
        up = self.upstream_requests()
        v, code, head, _, _ = curl(
            "--http2-prior-knowledge", "-X", "OPTIONS",
            "-H", "Origin: " + ORIGIN,
            "-H", "Access-Control-Request-Method: POST",
            "-H", "Access-Control-Request-Headers: traceparent",
            self.url("/api"))
        self.assertEqual((v, code), ("2", 204))
        self.assertIn("access-control-allow-origin: " + ORIGIN, head)
        self.assertIn("traceparent", head)
        self.assertEqual(self.upstream_requests(), up)

    def test_actual_request_cors(self):
        v, code, head, _, _ = curl("--http2-prior-knowledge",
                                   "-H", "Origin: " + ORIGIN,
                                   self.url("/echo"))
        self.assertEqual((v, code), ("2", 200))
        self.assertIn("access-control-allow-origin: " + ORIGIN, head)

    def test_gateway_error_has_cors(self):
        # 502 from a backend that resets; our JSON and CORS headers.
        v, code, head, body, _ = curl("--http2-prior-knowledge",
                                      "-H", "Origin: " + ORIGIN,
                                      self.url("/reset"))
        self.assertEqual((v, code), ("2", 502))
        self.assertIn("access-control-allow-origin: " + ORIGIN, head)
        self.assertEqual(json.loads(body)["error"], "bad_gateway")

    def test_big_response(self):
        size = 5 * 1000 * 1000
        p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge",
                            "--max-time", "60", "-o", "/dev/null", "-w",
                            "%{http_version} %{http_code} %{size_download}",
                            self.url("/big?bytes=%d" % size)],
                           capture_output=True, timeout=90)
        self.assertEqual(p.stdout.decode().split(),
                         ["2", "200", str(size)])

    def test_concurrent_streams_raw(self):
        c = self.connect()
        for i in range(10):
            c.request(1 + 2 * i, H.base_headers(
                self.gw.port, path="/slow?ms=200&n=%d" % i))
        for i in range(10):
            r = c.response(1 + 2 * i)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json()["target"], "/slow?ms=200&n=%d" % i)

    def test_requests_by_protocol_metric(self):
        before = self.gw.metric("tracestitch_requests_by_protocol_total",
                                'protocol="h2"')
        curl("--http2-prior-knowledge", self.url("/echo"))
        H.wait_for(lambda: self.gw.metric(
            "tracestitch_requests_by_protocol_total", 'protocol="h2"') ==
            before + 1, what="the h2 request counted")
        self.assertGreater(self.gw.metric(
            "tracestitch_http2_connections_total"), 0)


class GatewayErrors(H.H2Case):
    """404 and 504 of the gateway over h2, with the CORS headers."""
    top_extra = CORS
    upstream_extra = ", timeout: 1s"
    route_host = "127.0.0.1"

    def test_404_and_504_with_cors(self):
        c = self.connect()
        origin = ("origin", ORIGIN)
        c.request(1, [(":method", "GET"), (":scheme", "http"),
                      (":authority", "127.0.0.1:%d" % self.gw.port),
                      (":path", "/stall"), origin])
        r = c.response(1)
        self.assertEqual(r.status, 504, vars(r))
        self.assertEqual(r.header("access-control-allow-origin"), ORIGIN)
        self.assertEqual(r.json()["error"], "gateway_timeout")
        # No route for this host (the route is for 127.0.0.1).
        c.request(3, [(":method", "GET"), (":scheme", "http"),
                      (":authority", "other.example"), (":path", "/echo"),
                      origin])
        r = c.response(3)
        self.assertEqual(r.status, 404, vars(r))
        self.assertEqual(r.header("access-control-allow-origin"), ORIGIN)


class CleartextOff(H.H2Case):
    server_extra = ""

    def test_prior_knowledge_refused(self):
        # The preface goes to the HTTP/1.1 guard, which refuses it.
        p = subprocess.run(["curl", "-sS", "--max-time", "30",
                            "--http2-prior-knowledge", "-o", "/dev/null",
                            "-w", "%{http_version}",
                            "http://127.0.0.1:%d/echo" % self.gw.port],
                           capture_output=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(self.upstream_requests(), 0)
        v, code, _, _, _ = curl("http://127.0.0.1:%d/echo" % self.gw.port)
        self.assertEqual((v, code), ("1.1", 200))


class Tls(H.H2Case):
    server_extra = ""
    tls = True

    def url(self, path):
        return "https://localhost:%d%s" % (self.gw.port, path)

    def args(self):
        return ["--cacert", H.TLS_CA, "--resolve",
                "localhost:%d:127.0.0.1" % self.gw.port]

    def test_alpn_h2(self):
        v, code, _, body, _ = curl(*self.args(), "--http2",
                                   self.url("/echo"))
        self.assertEqual((v, code), ("2", 200))
        names = dict((k.lower(), val) for k, val in
                     json.loads(body)["headers"])
        self.assertEqual(names["x-forwarded-proto"], "https")

    def test_alpn_http11(self):
        v, code, _, _, _ = curl(*self.args(), "--http1.1",
                                self.url("/echo"))
        self.assertEqual((v, code), ("1.1", 200))

    def test_concurrent_streams_one_connection(self):
        urls = [self.url("/slow?ms=300&n=%d" % i) for i in range(10)]
        # Over TLS: Debian 12's curl (7.88) fails the second transfer of
        # --parallel with --http2-prior-knowledge before it reaches us
        # ("Error in the HTTP2 framing layer"); nghttp -m works there.
        p = subprocess.run(["curl", "-sS", "--http2"] + self.args() + [
                            "--parallel",
                            "--parallel-max", "10", "-w",
                            "%{http_version} %{http_code} "
                            "%{num_connects}\n"] +
                           sum([[u, "-o", "/dev/null"] for u in urls], []),
                           capture_output=True, timeout=60)
        rows = [ln.split() for ln in p.stdout.decode().splitlines()]
        self.assertEqual(len(rows), 10)
        self.assertTrue(all(r[:2] == ["2", "200"] for r in rows), rows)
        # One connection carried them all.
        self.assertEqual(sum(int(r[2]) for r in rows), 1)

    def test_raw_frames_over_tls(self):
        c = self.connect()
        c.request(1, [(":method", "GET"), (":scheme", "https"),
                      (":authority", "localhost:%d" % self.gw.port),
                      (":path", "/echo")])
        r = c.response(1)
        self.assertEqual(r.status, 200)


TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class DebugPropagation(H.H2Case):
    """/debug/propagation over h2 (admin.debug, admin.debug_listeners):
    the answer of the admin listener, for the headers as they came over
    h2, on the proxy listener (h2c and TLS h2 alike)."""
    admin_extra = ", debug: true, debug_listeners: true"
    top_extra = CORS
    tls = True

    def admin_answer(self, headers):
        req = H.urllib.request.Request(
            "http://127.0.0.1:%d/debug/propagation" % self.gw.admin_port,
            headers=dict(headers))
        with H.urllib.request.urlopen(req, timeout=H.TIMEOUT) as r:
            return json.loads(r.read())

    def test_h2_over_tls_is_the_admin_answer(self):
        up = self.upstream_requests()
        v, code, head, body, _ = curl(
            "--http2", "--cacert", H.TLS_CA, "--resolve",
            "localhost:%d:127.0.0.1" % self.gw.port,
            "-H", "traceparent: " + TP, "-H", "origin: " + ORIGIN,
            "-H", "x-datadog-origin: rum",
            "https://localhost:%d/debug/propagation" % self.gw.port)
        self.assertEqual((v, code), ("2", 200), body)
        got = json.loads(body)
        self.assertEqual(got["extracted"]["trace_id"]["hex"],
                         "4bf92f3577b34da6a3ce929d0e0e4736")
        # What extraction makes of it is what the admin listener says
        # for the same headers over HTTP/1.1.
        want = self.admin_answer([("traceparent", TP),
                                  ("x-datadog-origin", "rum")])
        self.assertEqual(got["extracted"], want["extracted"])
        self.assertEqual(got["config"]["route"], "api")
        # A page on the allowed origin can read it.
        self.assertIn("access-control-allow-origin: " + ORIGIN, head)
        # Answered at the gateway: nothing upstream.
        self.assertEqual(self.upstream_requests(), up)

    def test_http11_too(self):
        v, code, _, body, _ = curl(
            "--http1.1", "--cacert", H.TLS_CA, "--resolve",
            "localhost:%d:127.0.0.1" % self.gw.port,
            "-H", "traceparent: " + TP,
            "https://localhost:%d/debug/propagation" % self.gw.port)
        self.assertEqual((v, code), ("1.1", 200), body)
        self.assertEqual(json.loads(body)["extracted"]["trace_id"]["hex"],
                         "4bf92f3577b34da6a3ce929d0e0e4736")

    def test_raw_h2_with_a_query(self):
        # The path without its query is the one answered.
        c = H.RawH2(self.gw.port, tls=True)
        self.addCleanup(c.close)
        c.handshake()
        c.request(1, [(":method", "GET"), (":scheme", "https"),
                      (":authority", "localhost:%d" % self.gw.port),
                      (":path", "/debug/propagation?x=1"),
                      ("traceparent", TP)])
        r = c.response(1)
        self.assertEqual(r.status, 200, vars(r))
        got = r.json()
        self.assertEqual(got["extracted"]["trace_id"]["hex"],
                         "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertEqual(r.header("content-type"), "application/json")


class DebugPropagationOff(H.H2Case):
    """Without admin.debug_listeners (the default) the path is the
    route's, as any other: it goes upstream."""
    admin_extra = ", debug: true"

    def test_goes_upstream_by_default(self):
        v, code, _, body, _ = curl(
            "--http2-prior-knowledge",
            "http://127.0.0.1:%d/debug/propagation" % self.gw.port)
        self.assertEqual((v, code), ("2", 200))
        self.assertEqual(json.loads(body)["path"], "/debug/propagation")


class TlsHttp2Off(H.H2Case):
    server_extra = "  http2: false\n"
    tls = True

    def test_alpn_offers_http11_only(self):
        v, code, _, _, _ = curl("--cacert", H.TLS_CA, "--resolve",
                                "localhost:%d:127.0.0.1" % self.gw.port,
                                "--http2",
                                "https://localhost:%d/echo" % self.gw.port)
        self.assertEqual((v, code), ("1.1", 200))


if __name__ == "__main__":
    H.main()
