#!/usr/bin/python3
# make-h2-seeds.py -- regenerate tests/fuzz/corpus/h2, the seed corpus of
# fuzz_h2 (the HTTP/2 front-end fed a client's byte stream).
#
# Usage: /usr/bin/python3 tests/fuzz/make-h2-seeds.py [source-root]
#        /usr/bin/python3 tests/fuzz/make-h2-seeds.py --check [source-root]
#
# Needs Debian's python3-h2 (hyperframe and hpack): every frame is built
# with hyperframe and every header block is encoded with hpack, so no frame
# or HPACK byte is written by hand here; the one exception is a seed that
# must carry bytes no library emits on purpose (a bad preface, a frame
# whose length field lies), and those say so.
#
# Input format of fuzz_h2 (its block comment says the same): the bytes a
# client sends on one connection, starting with the connection preface
# (RFC 9113 3.4).  Every seed is deterministic: running this script again
# writes the same bytes, and --check exits 1 when a committed seed-* file
# differs from what the script would write or is missing (the meson test
# fuzz_h2_seeds runs it).  Files not named seed-* (libFuzzer -merge=1
# additions, named by their SHA-1) are left alone.
#
# Seeds: valid exchanges (GET with RUM headers, preflight, POST with and
# without content-length, many streams, CONTINUATION, trailers, cookie
# crumbs, PING / SETTINGS / WINDOW_UPDATE / PRIORITY / RST_STREAM /
# GOAWAY), the RFC 9113 8.2-8.3 refusals, the h2 -> h1 downgrade smuggling
# family, and the denial-of-service shapes of issue 12 item 4 (rapid
# reset, CONTINUATION flood, HPACK bomb, SETTINGS / PING / empty-frame
# floods, too many concurrent streams, flow-control abuse).
import os
import sys

from hpack import Encoder
from hyperframe.frame import (ContinuationFrame, DataFrame, GoAwayFrame,
                              HeadersFrame, PingFrame, PriorityFrame,
                              RstStreamFrame, SettingsFrame,
                              WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ORIGIN = "http://localhost:3000"
RUM = [
    ("origin", ORIGIN),
    ("referer", ORIGIN + "/app/checkout?step=2"),
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"),
    ("accept", "application/json"),
    ("x-datadog-trace-id", "1234567890123456789"),
    ("x-datadog-parent-id", "987654321987654321"),
    ("x-datadog-sampling-priority", "1"),
    ("x-datadog-origin", "rum"),
    ("x-datadog-tags", "_dd.p.dm=-4"),
    ("traceparent",
     "00-0000000000000000112210f47de98115-0db64b1a1e4f5c2e-01"),
    ("tracestate", "dd=s:1;o:rum;t.dm:-4,congo=t61rcWkgMzE"),
    ("baggage", "session.id=e2e,user.id=42"),
]
TRACE_HEADERS = ("x-datadog-trace-id,x-datadog-parent-id,x-datadog-origin,"
                 "x-datadog-sampling-priority,x-datadog-tags,traceparent,"
                 "tracestate,baggage")


def req(method="GET", path="/api/hello", authority="127.0.0.1",
        scheme="http", extra=()):
    """The pseudo-header fields of a request, in order, then extra."""
    return [(":method", method), (":scheme", scheme),
            (":authority", authority), (":path", path)] + list(extra)


class Conn:
    """One client byte stream: the preface, an empty SETTINGS, then frames.

    One HPACK encoder per connection, as a client has (the dynamic table
    carries over from one header block to the next)."""

    def __init__(self, settings=None, preface=True):
        self.enc = Encoder()
        self.out = bytearray()
        if preface:
            self.out += PREFACE
            f = SettingsFrame(0)
            for k, v in (settings or {}).items():
                f.settings[k] = v
            self.out += f.serialize()

    def frame(self, f):
        self.out += f.serialize()
        return self

    def block(self, fields, huffman=True):
        # hpack wants str or bytes; bytes keep CR/LF/NUL as they are.
        return self.enc.encode(
            [(n.encode("latin-1") if isinstance(n, str) else n,
              v.encode("latin-1") if isinstance(v, str) else v)
             for n, v in fields], huffman=huffman)

    def headers(self, sid, fields, end_stream=True, split=0):
        """HEADERS (+ CONTINUATION when split > 0: pieces of split bytes)."""
        blk = self.block(fields)
        flags = {"END_STREAM"} if end_stream else set()
        if split <= 0 or split >= len(blk):
            self.frame(HeadersFrame(sid, blk, flags=flags | {"END_HEADERS"}))
            return self
        pieces = [blk[i:i + split] for i in range(0, len(blk), split)]
        self.frame(HeadersFrame(sid, pieces[0], flags=flags))
        for i, p in enumerate(pieces[1:]):
            last = i == len(pieces) - 2
            self.frame(ContinuationFrame(
                sid, p, flags={"END_HEADERS"} if last else set()))
        return self

    def data(self, sid, payload, end_stream=True):
        return self.frame(DataFrame(
            sid, payload, flags={"END_STREAM"} if end_stream else set()))

    def raw(self, b):
        self.out += b
        return self

    def bytes(self):
        return bytes(self.out)


def get(fields=None, sid=1, **kw):
    return Conn().headers(sid, fields if fields is not None else req(**kw))


def seeds():
    s = {}

    # -- Valid exchanges ------------------------------------------------
    s["get"] = get().bytes()
    s["get-rum"] = get(req(extra=RUM)).bytes()
    s["preflight"] = get(req("OPTIONS", extra=[
        ("origin", ORIGIN), ("access-control-request-method", "GET"),
        ("access-control-request-headers", TRACE_HEADERS)])).bytes()
    s["head"] = get(req("HEAD")).bytes()
    s["post-content-length"] = (Conn()
        .headers(1, req("POST", extra=[("content-type", "application/json"),
                                       ("content-length", "13")]),
                 end_stream=False)
        .data(1, b'{"a":1,"b":2}').bytes())
    s["post-no-content-length"] = (Conn()
        .headers(1, req("POST"), end_stream=False)
        .data(1, b"part one, ", end_stream=False)
        .data(1, b"part two").bytes())
    s["post-empty-data-end"] = (Conn()
        .headers(1, req("POST", extra=[("content-length", "4")]),
                 end_stream=False)
        .data(1, b"abcd", end_stream=False).data(1, b"").bytes())
    c = Conn()
    for sid in (1, 3, 5, 7, 9):
        c.headers(sid, req(path="/api/item/%d" % sid, extra=RUM[:6]))
    s["many-streams"] = c.bytes()
    s["continuation"] = Conn().headers(1, req(extra=RUM), split=200).bytes()
    # One CONTINUATION per field: past server.http2_max_continuations.
    s["continuation-many"] = Conn().headers(1, req(extra=RUM), split=40)\
        .bytes()
    s["trailers"] = (Conn()
        .headers(1, req("POST", extra=[("te", "trailers")]),
                 end_stream=False)
        .data(1, b"body", end_stream=False)
        .headers(1, [("x-checksum", "abc")], end_stream=True).bytes())
    s["cookie-crumbs"] = get(req(extra=[
        ("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")])).bytes()
    s["authority-host-agree"] = get(req(extra=[("host", "127.0.0.1")])).bytes()
    s["no-authority-host"] = get([(":method", "GET"), (":scheme", "http"),
                                  (":path", "/"), ("host", "127.0.0.1")]).bytes()
    s["debug-propagation"] = get(req(path="/debug/propagation",
                                     extra=RUM)).bytes()
    s["control-frames"] = (Conn({SettingsFrame.INITIAL_WINDOW_SIZE: 1 << 20,
                                 SettingsFrame.MAX_FRAME_SIZE: 1 << 15,
                                 SettingsFrame.HEADER_TABLE_SIZE: 0,
                                 SettingsFrame.ENABLE_PUSH: 0})
        .frame(SettingsFrame(0, flags={"ACK"}))
        .frame(PingFrame(0, b"12345678"))
        .frame(WindowUpdateFrame(0, 1 << 20))
        .frame(PriorityFrame(1, depends_on=0, stream_weight=200))
        .headers(1, req())
        .frame(WindowUpdateFrame(1, 65535))
        .frame(GoAwayFrame(0, last_stream_id=0)).bytes())
    s["rst-open-stream"] = (Conn()
        .headers(1, req("POST"), end_stream=False)
        .frame(RstStreamFrame(1, error_code=8))
        .headers(3, req()).bytes())
    s["priority-in-headers"] = Conn().frame(HeadersFrame(
        1, Conn().block(req()), flags={"END_HEADERS", "END_STREAM",
                                       "PRIORITY"},
        depends_on=0, stream_weight=16)).bytes()
    s["padded"] = (Conn()
        .frame(HeadersFrame(1, Conn().block(req("POST")),
                            flags={"END_HEADERS", "PADDED"}, pad_length=7))
        .frame(DataFrame(1, b"xyz", flags={"END_STREAM", "PADDED"},
                         pad_length=5)).bytes())
    s["large-body"] = (Conn()
        .headers(1, req("POST", extra=[("content-length", "40000")]),
                 end_stream=False)
        .data(1, b"a" * 16384, end_stream=False)
        .data(1, b"b" * 16384, end_stream=False)
        .data(1, b"c" * 7232).bytes())
    s["window-zero"] = (Conn({SettingsFrame.INITIAL_WINDOW_SIZE: 0})
        .headers(1, req())
        .frame(WindowUpdateFrame(1, 10)).bytes())

    # fuzz_h2's fake upstream answers by path: /big 100 KB, /chunked a
    # chunked body with a trailer, /204 no body; /dead is a dead port.
    s["upstream-big"] = get(req(path="/big")).bytes()
    c = Conn({SettingsFrame.INITIAL_WINDOW_SIZE: 1000}).headers(
        1, req(path="/big"))
    for i in range(8):
        c.frame(WindowUpdateFrame(1, 4000)).frame(WindowUpdateFrame(0, 4000))
    s["upstream-big-small-window"] = c.bytes()
    c = Conn()
    for sid in (1, 3, 5, 7):
        c.headers(sid, req(path="/big/%d" % sid))
    s["upstream-big-streams"] = c.bytes()
    s["upstream-chunked-te-trailers"] = get(req(
        path="/chunked", extra=[("te", "trailers")])).bytes()
    s["upstream-204"] = get(req(path="/204")).bytes()
    s["upstream-dead"] = get(req(path="/dead", extra=RUM)).bytes()
    s["upstream-big-reset"] = (Conn().headers(1, req(path="/big"))
        .frame(RstStreamFrame(1, error_code=8)).bytes())

    # -- RFC 9113 8.2-8.3: refused, nothing goes upstream ---------------
    for name in ("connection", "keep-alive", "proxy-connection",
                 "transfer-encoding", "upgrade"):
        val = {"connection": "close", "keep-alive": "timeout=5",
               "proxy-connection": "keep-alive",
               "transfer-encoding": "chunked", "upgrade": "websocket"}[name]
        s["refuse-" + name] = get(req(extra=[(name, val)])).bytes()
    s["refuse-te-gzip"] = get(req(extra=[("te", "gzip")])).bytes()
    s["refuse-uppercase-name"] = get(req(extra=[("X-Upper", "1")])).bytes()
    s["refuse-value-cr"] = get(req(extra=[("x-a", "a\rb")])).bytes()
    s["refuse-value-lf"] = get(req(extra=[("x-a", "a\nb")])).bytes()
    s["refuse-value-nul"] = get(req(extra=[("x-a", "a\0b")])).bytes()
    s["refuse-value-leading-space"] = get(req(extra=[("x-a", " a")])).bytes()
    s["refuse-value-trailing-tab"] = get(req(extra=[("x-a", "a\t")])).bytes()
    s["refuse-name-colon"] = get(req(extra=[("x:a", "b")])).bytes()
    s["refuse-name-space"] = get(req(extra=[("x a", "b")])).bytes()
    s["refuse-no-method"] = get([(":scheme", "http"), (":authority", "h"),
                                 (":path", "/")]).bytes()
    s["refuse-no-path"] = get([(":method", "GET"), (":scheme", "http"),
                               (":authority", "h")]).bytes()
    s["refuse-no-scheme"] = get([(":method", "GET"), (":authority", "h"),
                                 (":path", "/")]).bytes()
    s["refuse-empty-path"] = get(req(path="")).bytes()
    s["refuse-dup-path"] = get(req(extra=[(":path", "/other")])).bytes()
    s["refuse-dup-method"] = get([(":method", "GET"), (":method", "POST"),
                                  (":scheme", "http"), (":authority", "h"),
                                  (":path", "/")]).bytes()
    s["refuse-unknown-pseudo"] = get(req(extra=[(":foo", "bar")])).bytes()
    s["refuse-response-pseudo"] = get(req(extra=[(":status", "200")])).bytes()
    s["refuse-pseudo-after-regular"] = get([
        (":method", "GET"), (":scheme", "http"), ("x-a", "1"),
        (":authority", "h"), (":path", "/")]).bytes()
    s["refuse-authority-host-differ"] = get(req(
        extra=[("host", "evil.example")])).bytes()
    s["refuse-content-length-short"] = (Conn()
        .headers(1, req("POST", extra=[("content-length", "10")]),
                 end_stream=False)
        .data(1, b"abc").bytes())
    s["refuse-content-length-long"] = (Conn()
        .headers(1, req("POST", extra=[("content-length", "2")]),
                 end_stream=False)
        .data(1, b"abcdef").bytes())
    s["refuse-content-length-two"] = get(req("POST", extra=[
        ("content-length", "1"), ("content-length", "2")]),
        ).bytes()
    s["refuse-content-length-list"] = get(req("POST", extra=[
        ("content-length", "1, 1")])).bytes()
    # Methods as the HTTP/1.1 side takes them: upper case, at most 15.
    s["refuse-method-lowercase"] = get(req("get")).bytes()
    s["refuse-method-long"] = get(req("PROPFINDPROPFINDX")).bytes()
    s["refuse-connect-with-path"] = get(req("CONNECT")).bytes()
    s["refuse-connect-no-authority"] = get([(":method", "CONNECT")]).bytes()
    s["refuse-connect-protocol"] = get(req("CONNECT", extra=[
        (":protocol", "websocket")])).bytes()
    s["refuse-trailers-pseudo"] = (Conn()
        .headers(1, req("POST"), end_stream=False)
        .data(1, b"x", end_stream=False)
        .headers(1, [(":path", "/x")], end_stream=True).bytes())
    s["refuse-trailers-no-end-stream"] = (Conn()
        .headers(1, req("POST"), end_stream=False)
        .headers(1, [("x-t", "1")], end_stream=False).bytes())
    s["refuse-trailers-uppercase"] = (Conn()
        .headers(1, req("POST"), end_stream=False)
        .data(1, b"x", end_stream=False)
        .headers(1, [("X-Checksum", "abc")], end_stream=True).bytes())
    s["refuse-trailers-connection"] = (Conn()
        .headers(1, req("POST"), end_stream=False)
        .data(1, b"x", end_stream=False)
        .headers(1, [("transfer-encoding", "chunked")], end_stream=True)
        .bytes())
    s["refuse-trailers-crlf"] = (Conn()
        .headers(1, req("POST"), end_stream=False)
        .data(1, b"x", end_stream=False)
        .headers(1, [("x-t", "a\r\nx-injected: 1")], end_stream=True)
        .bytes())

    # -- h2 -> h1 downgrade smuggling (published for other proxies) ------
    s["smuggle-cl0-body"] = (Conn()
        .headers(1, req("POST", extra=[("content-length", "0")]),
                 end_stream=False)
        .data(1, b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n").bytes())
    s["smuggle-te-chunked"] = (Conn()
        .headers(1, req("POST", extra=[("transfer-encoding", "chunked")]),
                 end_stream=False)
        .data(1, b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n").bytes())
    s["smuggle-crlf-in-value"] = get(req(extra=[
        ("x-a", "b\r\nTransfer-Encoding: chunked")])).bytes()
    s["smuggle-crlf-in-name"] = get(req(extra=[
        ("x-a\r\ntransfer-encoding", "chunked")])).bytes()
    s["smuggle-path-request-line"] = get(req(
        path="/ HTTP/1.1\r\nHost: x\r\n\r\nGET /admin")).bytes()
    s["smuggle-path-space"] = get(req(path="/a b")).bytes()
    s["smuggle-method-inner-space"] = get(req(method="GET /admin")).bytes()
    s["smuggle-method-space"] = get(req(method="GET /admin HTTP/1.1\r\n"
                                        "Host: x\r\n\r\nGET")).bytes()
    s["smuggle-authority-at"] = get(req(authority="127.0.0.1@evil.example"))\
        .bytes()
    s["smuggle-authority-crlf"] = get(req(authority="h\r\nx-a: b")).bytes()
    s["smuggle-scheme-url"] = get(req(scheme="http://evil.example/?")).bytes()
    s["smuggle-host-header-injection"] = get([
        (":method", "GET"), (":scheme", "http"), (":path", "/"),
        ("host", "h\r\nx-a: b")]).bytes()
    s["smuggle-path-absolute"] = get(req(path="http://evil.example/")).bytes()
    s["smuggle-path-asterisk"] = get(req(path="*")).bytes()

    # -- Denial of service (issue 12 item 4) -----------------------------
    c = Conn()
    for i in range(200):
        sid = 1 + 2 * i
        c.headers(sid, req(), end_stream=False)
        c.frame(RstStreamFrame(sid, error_code=8))
    s["dos-rapid-reset"] = c.bytes()
    c = Conn()
    blk = c.block(req())
    c.frame(HeadersFrame(1, blk, flags={"END_STREAM"}))
    for i in range(300):
        c.frame(ContinuationFrame(1, c.block([("x-flood", "%04d" % i)])))
    s["dos-continuation-flood"] = c.bytes()
    c = Conn()
    c.frame(HeadersFrame(1, blk, flags={"END_STREAM"}))
    for i in range(2000):
        c.frame(ContinuationFrame(1, b""))
    s["dos-continuation-empty"] = c.bytes()
    # HPACK bomb: one 3.5 KB field enters the dynamic table (4096 bytes
    # by default, so it stays beside the pseudo-header entries), then every
    # further block refers to it by its index (a byte each): a few hundred
    # bytes on the wire that decode to megabytes.
    c = Conn()
    big = [("x-bomb", "a" * 3500)]
    first = c.block(req() + big, huffman=False)
    c.frame(HeadersFrame(1, first, flags={"END_HEADERS", "END_STREAM"}))
    # The pseudo-header fields first: encoding them may add entries and
    # move the big one's index, so its reference is taken after them.
    head = c.block(req())
    ref = c.block(big)		# now an indexed reference, 1 byte
    c.frame(HeadersFrame(3, head + ref * 1000,
                         flags={"END_HEADERS", "END_STREAM"}))
    s["dos-hpack-bomb"] = c.bytes()
    # A 20 KB field, past server.limits.max_header_bytes (16384), in
    # frames of the default SETTINGS_MAX_FRAME_SIZE (HEADERS + one
    # CONTINUATION); and the same in one frame too large for it.
    s["dos-header-list-large"] = Conn().headers(
        1, req(extra=[("x-long", "v" * 20000)]), split=16384).bytes()
    s["error-frame-too-large"] = Conn().headers(
        1, req(extra=[("x-long", "v" * 20000)])).bytes()
    c = Conn()
    c.headers(1, req(extra=[("x-h%d" % i, "v") for i in range(500)]))
    s["dos-many-fields"] = c.bytes()
    c = Conn()
    for i in range(1000):
        c.frame(SettingsFrame(0, settings={SettingsFrame.MAX_FRAME_SIZE:
                                           16384 + i}))
    s["dos-settings-flood"] = c.bytes()
    c = Conn()
    for i in range(1000):
        c.frame(PingFrame(0, i.to_bytes(8, "big")))
    s["dos-ping-flood"] = c.bytes()
    c = Conn().headers(1, req("POST"), end_stream=False)
    for i in range(1000):
        c.data(1, b"", end_stream=False)
    s["dos-empty-data-flood"] = c.data(1, b"").bytes()
    c = Conn()
    for i in range(300):
        c.headers(1 + 2 * i, req("POST"), end_stream=False)
    s["dos-concurrent-streams"] = c.bytes()
    c = Conn().headers(1, req())
    for i in range(1000):
        c.frame(WindowUpdateFrame(0, 1))
    s["dos-window-update-flood"] = c.bytes()
    s["dos-window-overflow"] = (Conn().headers(1, req())
        .frame(WindowUpdateFrame(0, 0x7fffffff))
        .frame(WindowUpdateFrame(1, 0x7fffffff))
        .frame(WindowUpdateFrame(1, 0x7fffffff)).bytes())
    s["dos-data-past-window"] = (Conn()
        .headers(1, req("POST"), end_stream=False)
        .data(1, b"x" * 16384, end_stream=False)
        .data(1, b"x" * 16384, end_stream=False)
        .data(1, b"x" * 16384, end_stream=False)
        .data(1, b"x" * 16384, end_stream=False)
        .data(1, b"x" * 16384).bytes())
    c = Conn()
    for i in range(1000):
        c.frame(PriorityFrame(1 + 2 * i, depends_on=0, stream_weight=1))
    s["dos-priority-flood"] = c.bytes()

    # -- Protocol errors (connection errors, GOAWAY) ---------------------
    # The only hand-written bytes: no library sends a wrong preface or
    # a frame whose length field lies on purpose.
    s["error-bad-preface"] = b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"
    s["error-http1-request"] = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    # The h2c Upgrade of RFC 7540 3.2 (not implemented: RFC 9113 dropped
    # it): an HTTP/1.1 request like any other.
    s["h1-upgrade-h2c"] = (b"GET / HTTP/1.1\r\nHost: h\r\n"
                           b"Connection: Upgrade, HTTP2-Settings\r\n"
                           b"Upgrade: h2c\r\n"
                           b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    s["error-truncated-frame"] = Conn().raw(
        get().bytes()[len(PREFACE) + 9:][:5]).bytes()
    s["error-oversized-length"] = Conn().raw(
        b"\xff\xff\xff\x01\x05\x00\x00\x00\x01").bytes()
    # hyperframe refuses DATA on stream 0 when built; moved there after.
    d0 = DataFrame(1, b"x")
    d0.stream_id = 0
    s["error-data-stream-0"] = Conn().frame(d0).bytes()
    s["error-headers-stream-even"] = Conn().headers(2, req()).bytes()
    s["error-stream-id-decreasing"] = (Conn().headers(5, req())
                                       .headers(3, req()).bytes())
    s["error-continuation-other-stream"] = (Conn()
        .frame(HeadersFrame(1, blk, flags={"END_STREAM"}))
        .frame(ContinuationFrame(3, b"", flags={"END_HEADERS"})).bytes())
    s["error-data-idle-stream"] = Conn().data(7, b"x").bytes()
    s["error-settings-ack-payload"] = Conn().raw(
        b"\x00\x00\x06\x04\x01\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64")\
        .bytes()
    s["error-bad-hpack-index"] = Conn().frame(HeadersFrame(
        1, b"\xff\xff\xff\x0f", flags={"END_HEADERS", "END_STREAM"})).bytes()
    # hyperframe refuses an increment of 0 (RFC 9113 6.9), so by hand.
    s["error-window-update-zero"] = Conn().raw(
        b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00").bytes()
    s["error-push-promise"] = Conn().raw(
        b"\x00\x00\x04\x05\x04\x00\x00\x00\x01\x00\x00\x00\x02").bytes()
    s["goaway-then-headers"] = (Conn()
        .frame(GoAwayFrame(0, last_stream_id=0))
        .headers(1, req()).bytes())
    return s


def main(argv):
    check = len(argv) > 1 and argv[1] == "--check"
    rest = argv[2:] if check else argv[1:]
    root = rest[0] if rest else os.path.normpath(os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    out = os.path.join(root, "tests", "fuzz", "corpus", "h2")
    want = {"seed-" + k: v for k, v in seeds().items()}
    if check:
        bad = []
        for name, data in sorted(want.items()):
            try:
                with open(os.path.join(out, name), "rb") as f:
                    if f.read() != data:
                        bad.append(name + " differs")
            except OSError:
                bad.append(name + " missing")
        for name in sorted(os.listdir(out)):
            if name.startswith("seed-") and name not in want:
                bad.append(name + " not generated (stale)")
        for b in bad:
            print("make-h2-seeds: " + b, file=sys.stderr)
        print("make-h2-seeds: %d seeds checked, %d bad" % (len(want),
                                                          len(bad)))
        return 1 if bad else 0
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        if name.startswith("seed-") and name not in want:
            os.unlink(os.path.join(out, name))
    for name, data in sorted(want.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("make-h2-seeds: %d seeds in %s" % (len(want), out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
