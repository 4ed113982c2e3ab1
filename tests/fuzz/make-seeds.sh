#!/bin/sh
# make-seeds.sh -- regenerate the fuzz seed corpora from tests/data.
#
# Usage: tests/fuzz/make-seeds.sh [source-root]
#
# Every harness under tests/fuzz/ gets tests/fuzz/corpus/<harness>/ with
# one file per vector of the unit-test data, so the fuzzers start from the
# same cases the unit tests check (STYLE.md 0.9).  Generated files are
# named seed-*; anything else in a corpus directory (entries added with
# libFuzzer's -merge=1, named by their SHA-1) is left alone.
#
# Input formats (each harness's block comment says the same):
#   framing          the raw client stream (bytes column of cases.txt)
#   cors             origin [LF method [LF request-headers]]
#   prop_headers,    one flag byte, then "name: value" lines (LF);
#   prop_<codec>     the flag byte picks behaviour / limits
#   upstream_parser  one flag byte (bit 0: HEAD request, bits 1-7 pick
#                    the feed chunking), then the raw response stream
#   config           a YAML document
#   url              one flag byte (bit 0: unix, bit 1: query), the URL
#   proxy_protocol   the bytes a client sends first (the PROXY header)
#   ddforward        the query of a relay request (the bytes after '?')
set -eu

root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
exec python3 - "$root" <<'EOF'
import json, os, re, sys

root = sys.argv[1]
data = os.path.join(root, "tests", "data")
out = os.path.join(root, "tests", "fuzz", "corpus")


def unescape(s, repeat):
    """Decode \\r \\n \\t \\0 \\\\ \\xHH \\s and the two repeat forms:
    framing \\{N,c} and upstream \\{N}c."""
    res = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 >= len(s):
            res += c.encode("utf-8")
            i += 1
            continue
        n = s[i + 1]
        simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0",
                  "\\": b"\\", "s": b" "}
        if n in simple:
            res += simple[n]
            i += 2
        elif n == "x":
            res.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif n == "{" and repeat == "comma":
            m = re.match(r"\{(\d+),(.)\}", s[i + 1:])
            res += m.group(2).encode() * int(m.group(1))
            i += 1 + m.end()
        elif n == "{" and repeat == "after":
            m = re.match(r"\{(\d+)\}(.)", s[i + 1:])
            res += m.group(2).encode() * int(m.group(1))
            i += 1 + m.end()
        else:
            res += c.encode()
            i += 1
    return bytes(res)


def slug(s):
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-")[:48] or "x"


def write(harness, seeds):
    d = os.path.join(out, harness)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.unlink(os.path.join(d, f))
    seen = set()
    total = 0
    for i, (name, blob) in enumerate(seeds):
        if blob in seen:
            continue
        seen.add(blob)
        total += len(blob)
        with open(os.path.join(d, "seed-%03d-%s" % (i, slug(name))),
                  "wb") as fp:
            fp.write(blob)
    print("%-16s %4d seeds %7d bytes" % (harness, len(seen), total))


def lines(path):
    with open(path, encoding="utf-8") as fp:
        for ln in fp:
            ln = ln.rstrip("\n")
            if ln and not ln.startswith("#"):
                yield ln


# framing: "name | status | requests | reason | bytes"
seeds = []
for ln in lines(os.path.join(data, "framing", "cases.txt")):
    f = ln.split(" | ", 4)
    if len(f) == 5:
        seeds.append((f[0], unescape(f[4], "comma")))
write("framing", seeds)

# cors: "pattern<TAB>origin<TAB>expected"; add method/header lines to
# every third origin so the preflight paths are seeded too.
extra = [b"", b"\nPUT", b"\nGET\ncontent-type,x-datadog-trace-id,traceparent",
         b"\nDELETE\nauthorization, b3, baggage, x-b3-traceid",
         b"\nPATCH\nx-unknown"]
seeds = []
origins = []
for ln in lines(os.path.join(data, "cors", "origins.tsv")):
    f = ln.split("\t")
    if len(f) >= 2:
        origins.append(unescape(f[1], None))
for i, o in enumerate(origins):
    seeds.append(("origin-%d" % i, o + extra[i % len(extra)]))
write("cors", seeds)

# propagation: one flag byte + "name: value" lines.
with open(os.path.join(data, "prop", "propagation.json")) as fp:
    cases = json.load(fp)
hdr_cases = []
for i, c in enumerate(cases):
    text = "".join("%s: %s\n" % (k, v)
                   for k, v in c["request_headers"].items())
    hdr_cases.append((c["id"], i, text.encode("utf-8"),
                      [k.lower() for k in c["request_headers"]]))
tp = []
for ln in lines(os.path.join(data, "prop", "w3c_traceparent.tsv")):
    f = ln.split("\t")
    tp.append(unescape(f[0], None))


def prop_seeds(want):
    res = []
    for cid, i, text, names in hdr_cases:
        if want is None or any(n.startswith(want) for n in names):
            res.append((cid, bytes([i & 0xff]) + text))
    return res


write("prop_headers", prop_seeds(None) +
      [("traceparent-%d" % i, bytes([i]) + b"traceparent: " + v + b"\n")
       for i, v in enumerate(tp)])
write("prop_datadog", prop_seeds("x-datadog-"))
# tracestate rows: "fields<TAB>others<TAB>error", "\\n" between fields.
ts = []
for ln in lines(os.path.join(data, "prop", "w3c_tracestate.tsv")):
    f = ln.split("\t")
    ts.append(b"".join(b"tracestate: " + unescape(v, None) + b"\n"
                       for v in f[0].split("\\n")))
write("prop_w3c", prop_seeds("trace") +
      [("traceparent-%d" % i, bytes([i]) + b"traceparent: " + v + b"\n")
       for i, v in enumerate(tp)] +
      [("tracestate-%d" % i, bytes([i]) + b"traceparent: 00-"
        b"12345678901234567890123456789012-1234567890123456-01\n" + v)
       for i, v in enumerate(ts)])
b3 = prop_seeds("x-b3-") + prop_seeds("b3")
b3 += [("b3-single-%d" % i, bytes([i]) + v) for i, v in enumerate([
    b"b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90\n",
    b"b3: 0\n", b"b3: d\n",
    b"b3: a3ce929d0e0e4736-00f067aa0ba902b7\n",
    b"x-b3-traceid: 463ac35c9f6413ad48485a3953bb6124\n"
    b"x-b3-spanid: a2fb4a1d1a96d312\nx-b3-parentspanid: 0020000000000001\n"
    b"x-b3-sampled: 1\n"])]
write("prop_b3", b3)
write("prop_baggage", prop_seeds("baggage") + [
    ("baggage-%d" % i, bytes([i]) + v) for i, v in enumerate([
        b"baggage: userId=alice,serverNode=DF%2028,isProduction=false\n",
        b"baggage: key1=value1;property1;property2, key2 = value2\n",
        b"baggage: a=1\nbaggage: b=2\n", b"baggage: =\n",
        b"baggage: k=%zz,k2=%E2%82%AC\n"])])

# upstream: name is_head expect status body keepalive bodybytes headers
# input (the input may itself contain a TAB).
seeds = []
for ln in lines(os.path.join(data, "upstream", "responses.tsv")):
    f = ln.split("\t")
    if len(f) < 9:
        continue
    flag = 1 if f[1] == "1" else 0
    seeds.append((f[0], bytes([flag | (len(seeds) << 1 & 0xfe)]) +
                  unescape("\t".join(f[8:]), "after")))
write("upstream_parser", seeds)

# config: every good and bad YAML file as it is.
seeds = []
for sub in ("good", "bad"):
    d = os.path.join(data, "config", sub)
    for f in sorted(os.listdir(d)):
        if f.endswith(".yaml"):
            with open(os.path.join(d, f), "rb") as fp:
                seeds.append((sub + "-" + f[:-5], fp.read()))
write("config", seeds)

# url: flags<TAB>url<TAB>expected.
seeds = []
for ln in lines(os.path.join(data, "url", "vectors.tsv")):
    f = ln.split("\t")
    if len(f) < 3:
        continue
    flag = (1 if "unix" in f[0] else 0) | (2 if "query" in f[0] else 0)
    seeds.append((f[1], bytes([flag]) + f[1].encode()))
write("url", seeds)

# proxy_protocol: input<TAB>expectation...; the input column unescaped.
seeds = []
for ln in lines(os.path.join(data, "proxy_protocol", "vectors.tsv")):
    f = ln.split("\t")
    if len(f) < 2:
        continue
    seeds.append((f[0], unescape(f[0], "comma")))
write("proxy_protocol", seeds)

# ddforward: class<TAB>expected<TAB>query; the query unescaped.
seeds = []
for ln in lines(os.path.join(data, "ddforward", "values.tsv")):
    f = ln.split("\t")
    if len(f) < 3:
        continue
    seeds.append((f[0] + "-" + f[2][10:40], unescape(f[2], "after")))
write("ddforward", seeds)
EOF
