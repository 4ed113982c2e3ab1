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
#
# The difference of two whole gateways at different throughputs is noisy
# (the untraced preflight load shows +-0.6 us), so the export cost is then
# also measured alone: export_bench (tests/bench/export_bench.c) times the
# submitting and exporter threads' CPU for 50000 gateway-shaped spans per
# second to the in-process fake agent, pinned to CPU 0 like the gateway.
set -euo pipefail
cd "$(dirname "$0")"
BENCH_TARGETS=${BENCH_TARGETS:-nginx tracestitch tracestitch-spans} \
BENCH_LOADS=${BENCH_LOADS:-get} \
    bash ./run.sh "$@"
EXPORT_BENCH=../../${BUILD:-build}/tests/bench/export_bench
if [ -x "$EXPORT_BENCH" ]; then
	taskset -c 0 "$EXPORT_BENCH" "${BENCH_DURATION:-10}" 50000
else
	echo "span_bench: $EXPORT_BENCH not built; export cost not measured" >&2
fi
