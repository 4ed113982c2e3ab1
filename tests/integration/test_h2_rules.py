#!/usr/bin/env python3
"""test_h2_rules.py -- the strict HTTP/2 -> HTTP/1.1 translation (RFC 9113
8.2-8.3, issue 12 item 3) through the real gateway, with raw frames.

Every refused request must get its 400 (501 for CONNECT) with the reason,
reach no backend, leave the connection usable for the next stream, count
in tracestitch_http2_refused_total{reason} and log its reason.  The
"HTTP/2 downgrade" request smuggling vectors published against other
proxies (CRLF or spaces written into the HTTP/1.1 request line or fields,
content-length or transfer-encoding disagreeing with the DATA frames) are
rows of the same table.
"""
import time

import h2_harness as H

# (name, extra headers or a full replacement, body, expected status,
#  reason substring, metric reason class).  Headers: a list of pairs
# appended to the base request, or ("replace", pairs) for all of them.
P = "127.0.0.1:%d"
ROWS = [
    ("connection", [("connection", "keep-alive")], None, 400,
     "connection-specific", "connection_specific"),
    ("keep-alive", [("keep-alive", "timeout=5")], None, 400,
     "connection-specific", "connection_specific"),
    ("proxy-connection", [("proxy-connection", "close")], None, 400,
     "connection-specific", "connection_specific"),
    ("transfer-encoding", [("transfer-encoding", "chunked")], b"0\r\n\r\n",
     400, "connection-specific", "connection_specific"),
    ("upgrade", [("upgrade", "websocket")], None, 400,
     "connection-specific", "connection_specific"),
    ("te gzip", [("te", "gzip")], None, 400, "te other than", "te"),
    ("te trailers, gzip", [("te", "trailers, gzip")], None, 400,
     "te other than", "te"),
    ("upper-case name", [("X-Foo", "1")], None, 400, "upper-case",
     "field_name"),
    ("space in name", [("x foo", "1")], None, 400, "invalid byte",
     "field_name"),
    ("colon in name", [("x:foo", "1")], None, 400, "invalid byte",
     "field_name"),
    ("CRLF in value", [("x-foo", "a\r\ntransfer-encoding: chunked")], None,
     400, "CR, LF or NUL", "field_value"),
    ("LF in value", [("x-foo", "a\nb")], None, 400, "CR, LF or NUL",
     "field_value"),
    ("NUL in value", [("x-foo", "a\x00b")], None, 400, "CR, LF or NUL",
     "field_value"),
    ("control byte in value", [("x-foo", "a\x01b")], None, 400,
     "control byte", "field_value"),
    ("leading space", [("x-foo", " a")], None, 400, "whitespace",
     "field_value"),
    ("trailing tab", [("x-foo", "a\t")], None, 400, "whitespace",
     "field_value"),
    ("missing :method", ("replace", [(":scheme", "http"),
                                     (":authority", P), (":path", "/echo")]),
     None, 400, "missing :method", "pseudo_header"),
    ("missing :path", ("replace", [(":method", "GET"), (":scheme", "http"),
                                   (":authority", P)]),
     None, 400, "missing :method", "pseudo_header"),
    ("missing :scheme", ("replace", [(":method", "GET"), (":authority", P),
                                     (":path", "/echo")]),
     None, 400, "missing :method", "pseudo_header"),
    ("duplicated :path", ("replace", [(":method", "GET"),
                                      (":scheme", "http"), (":authority", P),
                                      (":path", "/echo"),
                                      (":path", "/admin")]),
     None, 400, "duplicated pseudo-header", "pseudo_header"),
    ("unknown pseudo", [(":foo", "bar")], None, 400, "pseudo-header",
     "pseudo_header"),
    ("pseudo after regular", ("replace", [(":method", "GET"),
                                          (":scheme", "http"),
                                          ("x-a", "1"), (":authority", P),
                                          (":path", "/echo")]),
     None, 400, "pseudo-header after", "pseudo_header"),
    ("response pseudo :status", [(":status", "200")], None, 400,
     "pseudo-header", "pseudo_header"),
    ("empty :path", ("replace", [(":method", "GET"), (":scheme", "http"),
                                 (":authority", P), (":path", "")]),
     None, 400, "empty pseudo-header", "pseudo_header"),
    ("asterisk :path for GET", ("replace", [(":method", "GET"),
                                            (":scheme", "http"),
                                            (":authority", P),
                                            (":path", "*")]),
     None, 400, "origin-form", "pseudo_header"),
    ("absolute :path", ("replace", [(":method", "GET"), (":scheme", "http"),
                                    (":authority", P),
                                    (":path", "http://evil/")]),
     None, 400, "origin-form", "pseudo_header"),
    ("space in :path (request line)", ("replace", [
        (":method", "GET"), (":scheme", "http"), (":authority", P),
        (":path", "/echo HTTP/1.1")]),
     None, 400, "origin-form", "pseudo_header"),
    ("CRLF in :path (second request)", ("replace", [
        (":method", "GET"), (":scheme", "http"), (":authority", P),
        (":path", "/echo HTTP/1.1\r\nHost: x\r\n\r\nGET /admin")]),
     None, 400, "CR, LF or NUL", "field_value"),
    ("space in :method", ("replace", [
        (":method", "GET /admin HTTP/1.1"), (":scheme", "http"),
        (":authority", P), (":path", "/echo")]),
     None, 400, ":method is not a token", "pseudo_header"),
    ("bad :scheme", ("replace", [(":method", "GET"), (":scheme", "ftp"),
                                 (":authority", P), (":path", "/echo")]),
     None, 400, ":scheme", "pseudo_header"),
    (":authority with userinfo", ("replace", [
        (":method", "GET"), (":scheme", "http"),
        (":authority", "user@127.0.0.1"), (":path", "/echo")]),
     None, 400, "invalid :authority", "authority"),
    (":authority with a path", ("replace", [
        (":method", "GET"), (":scheme", "http"),
        (":authority", "a.example/x"), (":path", "/echo")]),
     None, 400, "invalid :authority", "authority"),
    (":authority disagrees with host", [("host", "other.example")], None,
     400, "disagrees with host", "authority"),
    ("two hosts", ("replace", [(":method", "GET"), (":scheme", "http"),
                               (":path", "/echo"), ("host", "a.example"),
                               ("host", "b.example")]),
     None, 400, "more than one host", "authority"),
    ("no authority nor host", ("replace", [(":method", "GET"),
                                           (":scheme", "http"),
                                           (":path", "/echo")]),
     None, 400, "neither :authority nor host", "authority"),
    ("content-length above DATA (H2.CL)", [("content-length", "10")],
     b"12345", 400, "content-length disagrees", "content_length"),
    ("content-length below DATA (H2.CL smuggling)",
     [("content-length", "0")],
     b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n", 400,
     "content-length disagrees", "content_length"),
    ("content-length without DATA", [("content-length", "5")], None, 400,
     "content-length disagrees", "content_length"),
    ("two content-lengths", [("content-length", "5"),
                             ("content-length", "6")], b"12345", 400,
     "invalid content-length", "content_length"),
    ("content-length not digits", [("content-length", "5, 5")], b"12345",
     400, "invalid content-length", "content_length"),
    ("CONNECT", ("replace", [(":method", "CONNECT"),
                             (":authority", "example.com:443")]),
     None, 501, "CONNECT is not proxied", "method"),
    ("lower-case method", ("replace", [(":method", "get"),
                                       (":scheme", "http"),
                                       (":authority", P),
                                       (":path", "/echo")]),
     None, 501, "method not supported", "method"),
    ("16-byte method", ("replace", [(":method", "ABCDEFGHIJKLMNOP"),
                                    (":scheme", "http"), (":authority", P),
                                    (":path", "/echo")]),
     None, 501, "method not supported", "method"),
]


class Rules(H.H2Case):

    def row(self, name, headers, body, status, reason, klass):
        port = self.gw.port
        if isinstance(headers, tuple):
            hdrs = [(k, v % port if "%d" in v else v)
                    for k, v in headers[1]]
        else:
            method = "POST" if body is not None else "GET"
            hdrs = H.base_headers(port, method=method, extra=headers)
        before_up = self.upstream_requests()
        before_m = self.gw.metric("tracestitch_http2_refused_total",
                                  'reason="%s"' % klass)
        c = self.connect()
        c.request(1, hdrs, body=body)
        r = c.response(1)
        self.assertEqual(r.status, status, "%s: %r" % (name, vars(r)))
        self.assertIn(reason, r.json()["message"], name)
        # The gateway's own error: CORS-capable JSON with a request id.
        self.assertEqual(r.header("content-type"), "application/json")
        # The connection goes on: the next stream is served.
        c.request(3, H.base_headers(port))
        r2 = c.response(3)
        self.assertEqual(r2.status, 200, name)
        self.assertEqual(self.upstream_requests(), before_up + 1,
                         "%s reached the backend" % name)
        H.wait_for(lambda: self.gw.metric(
            "tracestitch_http2_refused_total",
            'reason="%s"' % klass) == before_m + 1,
            what="the refusal counted for " + name)
        H.wait_for(lambda: reason in self.gw.read(),
                   what="the reason of %s in the log" % name)

    def test_rows(self):
        n = 0
        for row in ROWS:
            # The gateway logs at most 10 refusals a second per worker
            # (as the HTTP/1.1 side): stay under it so that every reason
            # can be found in the log.
            if n % 8 == 7:
                time.sleep(1.0 - time.time() % 1.0 + 0.01)
            with self.subTest(row[0]):
                self.row(*row)
            n += 1
        self.assertEqual(n, 43)

    def test_cookie_crumbs_joined(self):
        c = self.connect()
        c.request(1, H.base_headers(self.gw.port, extra=[
            ("cookie", "a=1"), ("x-mid", "m"), ("cookie", "b=2"),
            ("cookie", "c=3")]))
        r = c.response(1)
        self.assertEqual(r.status, 200)
        hdrs = r.json()["headers"]
        cookies = [v for k, v in hdrs if k.lower() == "cookie"]
        self.assertEqual(cookies, ["a=1; b=2; c=3"])

    def test_authority_becomes_host(self):
        c = self.connect()
        c.request(1, H.base_headers(self.gw.port))
        r = c.response(1)
        head = r.json()["head"]
        self.assertTrue(head.startswith("GET /echo HTTP/1.1\r\nhost: "
                                        "127.0.0.1:%d\r\n" % self.gw.port),
                        head)

    def test_host_agreeing_with_authority_passes(self):
        c = self.connect()
        c.request(1, H.base_headers(self.gw.port, extra=[
            ("host", "127.0.0.1:%d" % self.gw.port)]))
        r = c.response(1)
        self.assertEqual(r.status, 200)
        hosts = [v for k, v in r.json()["headers"] if k.lower() == "host"]
        self.assertEqual(len(hosts), 1)

    def test_te_trailers_passes_and_is_not_forwarded(self):
        c = self.connect()
        c.request(1, H.base_headers(self.gw.port, extra=[("te",
                                                           "trailers")]))
        r = c.response(1)
        self.assertEqual(r.status, 200)
        self.assertNotIn("te", [k.lower() for k, v in r.json()["headers"]])

    def test_body_with_content_length(self):
        body = b"x" * 70000           # more than one window's worth
        c = self.connect()
        c.send(H.hf.WindowUpdateFrame(0, window_increment=1 << 20))
        c.request(1, H.base_headers(self.gw.port, method="POST", extra=[
            ("content-length", str(len(body)))]), end_stream=False)
        # DATA in frames of 16 KiB, within the gateway's stream window
        # (65535 by default): the gateway's WINDOW_UPDATEs open the rest.
        off = 0
        while off < len(body):
            chunk = body[off:off + 16384]
            off += len(chunk)
            c.send(H.hf.DataFrame(1, data=chunk, flags=["END_STREAM"]
                                  if off >= len(body) else []))
            # Let the gateway's window updates come.
            c.read_frame(0.05)
        r = c.response(1)
        self.assertEqual(r.status, 200, vars(r))
        self.assertEqual(r.json()["body_bytes"], len(body))

    def test_options_asterisk(self):
        c = self.connect()
        c.request(1, [(":method", "OPTIONS"), (":scheme", "http"),
                      (":authority", "127.0.0.1:%d" % self.gw.port),
                      (":path", "*")])
        r = c.response(1)
        self.assertIsNotNone(r.status)
        self.assertNotEqual(r.status, 400)



class Trailers(H.H2Case):
    """Request trailers (RFC 9113 8.1): checked, then dropped."""
    server_extra = ("  http2_cleartext: true\n"
                    "  limits: {max_header_bytes: 4096}\n")

    def post_with_trailers(self, c, sid, trailers, end=True):
        c.request(sid, H.base_headers(self.gw.port, method="POST", extra=[
            ("te", "trailers")]), end_stream=False)
        c.send(H.hf.DataFrame(sid, data=b"hello"))
        c.send(H.hf.HeadersFrame(sid, data=c.block(trailers),
                                 flags=["END_HEADERS", "END_STREAM"]
                                 if end else ["END_HEADERS"]))
        return c.response(sid)

    def test_valid_trailers_are_dropped_and_counted(self):
        dropped = self.gw.metric(
            "tracestitch_http2_request_trailers_dropped_total")
        c = self.connect()
        r = self.post_with_trailers(c, 1, [("x-checksum", "abc"),
                                           ("grpc-status", "0")])
        self.assertEqual(r.status, 200, vars(r))
        echo = r.json()
        self.assertEqual(echo["body_bytes"], 5)
        # Nothing of the trailer section went upstream: not as a field
        # of the head, not after the body (the body has a length).
        names = [k.lower() for k, v in echo["headers"]]
        self.assertNotIn("x-checksum", names)
        self.assertNotIn("grpc-status", names)
        self.assertNotIn("x-checksum", echo["head"])
        H.wait_for(lambda: self.gw.metric(
            "tracestitch_http2_request_trailers_dropped_total") ==
            dropped + 1, what="the dropped trailers counted")

    def refused(self, trailers, klass, reason, end=True, status=400):
        up = self.upstream_requests()
        before = self.gw.metric("tracestitch_http2_refused_total",
                                'reason="%s"' % klass)
        c = self.connect()
        r = self.post_with_trailers(c, 1, trailers, end=end)
        self.assertEqual(r.status, status, vars(r))
        self.assertIn(reason, r.json()["message"])
        # The connection goes on, and the refused body never went up.
        c.request(3, H.base_headers(self.gw.port))
        self.assertEqual(c.response(3).status, 200)
        self.assertEqual(self.upstream_requests(), up + 1)
        H.wait_for(lambda: self.gw.metric(
            "tracestitch_http2_refused_total", 'reason="%s"' % klass) ==
            before + 1, what="the refusal counted as " + klass)
        return c, r

    def test_pseudo_header_in_trailers(self):
        self.refused([(":path", "/admin")], "trailers",
                     "pseudo-header in a trailer section")

    def test_upper_case_name_in_trailers(self):
        self.refused([("X-Checksum", "abc")], "field_name",
                     "upper-case field name (RFC 9113 8.2.1), in the "
                     "trailer section")

    def test_crlf_in_a_trailer_value(self):
        self.refused([("x-t", "a\r\ntransfer-encoding: chunked")],
                     "field_value", "CR, LF or NUL")

    def test_connection_specific_trailer(self):
        self.refused([("transfer-encoding", "chunked")],
                     "connection_specific", "connection-specific field")

    def test_trailers_without_end_stream(self):
        c, r = self.refused([("x-t", "1")], "trailers",
                            "trailer section without END_STREAM",
                            end=False)
        # The stream was still open: RST_STREAM NO_ERROR closes it.
        c.wait_frame(lambda f: isinstance(f, H.hf.RstStreamFrame) and
                     f.stream_id == 1 and f.error_code == H.NO_ERROR,
                     what="RST_STREAM NO_ERROR")

    def test_trailer_section_too_large_is_431(self):
        self.refused([("x-big", "y" * 5000)], "header_list",
                     "trailer section too large", status=431)


class BodyLimit(H.H2Case):
    server_extra = ("  http2_cleartext: true\n"
                    "  limits: {max_body_bytes: 1000}\n")
    top_extra = ("cors:\n"
                 "  allowed_origins: [\"https://app.example\"]\n")

    def test_413_with_cors_then_the_next_stream(self):
        up = self.upstream_requests()
        c = self.connect()
        c.request(1, H.base_headers(self.gw.port, method="POST", extra=[
            ("origin", "https://app.example")]), end_stream=False)
        c.send(H.hf.DataFrame(1, data=b"x" * 1500))
        r = c.response(1)
        self.assertEqual(r.status, 413)
        self.assertEqual(r.header("access-control-allow-origin"),
                         "https://app.example")
        # The client was still sending: RST_STREAM NO_ERROR stops it.
        c.wait_frame(lambda f: isinstance(f, H.hf.RstStreamFrame) and
                     f.stream_id == 1 and f.error_code == H.NO_ERROR,
                     what="RST_STREAM NO_ERROR")
        c.request(3, H.base_headers(self.gw.port))
        self.assertEqual(c.response(3).status, 200)
        self.assertEqual(self.upstream_requests(), up + 1)
        self.assertGreater(self.gw.metric("tracestitch_http2_refused_total",
                                          'reason="body_too_large"'), 0)


if __name__ == "__main__":
    H.main()
