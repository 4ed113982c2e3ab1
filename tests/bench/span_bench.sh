#!/bin/bash
# tests/bench/span_bench.sh -- the cost of exporting spans (issue #5):
# tests/bench/run.sh with the get load (RUM headers in; datadog,
# tracecontext and baggage injected) against nginx, tracestitch with
# exporter none and tracestitch-spans (exporter datadog to the fake
# agent), same run.  Prints CPU per request of each, the span cost
# (tracestitch-spans - tracestitch) and the delivery check (spans the
# agent received + dropped against wrk's request count).
#
# Targets to read the figures against: span cost <= 1.5 us per request;
# tracestitch-spans cpu_us/req <= 1.3 x nginx; 100% delivered.
# Environment: as run.sh (BUILD, BENCH_DURATION, BENCH_REPS, ...).
set -euo pipefail
cd "$(dirname "$0")"
BENCH_TARGETS=${BENCH_TARGETS:-nginx tracestitch tracestitch-spans} \
BENCH_LOADS=${BENCH_LOADS:-get} \
    exec bash ./run.sh "$@"
