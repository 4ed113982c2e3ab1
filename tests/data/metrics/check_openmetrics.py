#!/usr/bin/python3
"""Validate a /metrics answer with prometheus_client's parsers (Debian
python3-prometheus-client), independent of the gateway's code.

usage: check_openmetrics.py openmetrics|text FILE [TRACE_ID]

Prints "families=N samples=M exemplars=E trace=yes|no" and exits 0, or
prints the parser's complaint and exits 1.  The OpenMetrics parser
rejects a missing "# EOF", a counter family named with _total, samples out
of order, bad exemplars (label set, value, timestamp) and more.
"""
import sys

from prometheus_client.openmetrics.parser import \
    text_string_to_metric_families as om_families
from prometheus_client.parser import \
    text_string_to_metric_families as text_families


def main():
    kind, path = sys.argv[1], sys.argv[2]
    trace = sys.argv[3] if len(sys.argv) > 3 else None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    parse = om_families if kind == "openmetrics" else text_families
    try:
        families = list(parse(text))
    except Exception as e:  # the parsers raise ValueError and others
        print("parse error: %s" % e)
        return 1
    samples = [s for f in families for s in f.samples]
    exemplars = [s.exemplar for s in samples
                 if getattr(s, "exemplar", None) is not None]
    found = any(e.labels.get("trace_id") == trace for e in exemplars)
    print("families=%d samples=%d exemplars=%d trace=%s" % (
        len(families), len(samples), len(exemplars),
        "yes" if found else "no"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
