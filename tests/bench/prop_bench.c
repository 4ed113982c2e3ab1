/*
 * prop_bench.c -- microbenchmark of the per-request propagation work
 * (issue #4 item 8): extract + start the gateway span + inject, over the
 * full header set a browser running Datadog RUM sends (Datadog headers,
 * traceparent + tracestate, baggage) among ordinary request headers,
 * with the default propagation configuration (datadog, tracecontext,
 * baggage both ways) and a sampler, exactly as pipeline/proxy.c calls it.
 *
 * It prints the nanoseconds per request (thread CPU time, which other
 * processes on a shared machine do not inflate, and wall time; best,
 * median and worst of several rounds), each phase alone, and the number
 * of malloc/calloc/realloc calls made during the timed loops.  The executable is linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc so every allocation the
 * statically linked tracestitch code makes goes through the counters
 * below; mallinfo2() before and after cross-checks the heap (it also sees
 * allocations made inside shared libraries).  The request's context
 * (struct trace_extract and struct span) is caller storage, allocated
 * once before the loop, as each worker does.
 *
 * Usage: prop_bench [iterations per round, default 1000000] [rounds, 3].
 * Exit status 1 if anything was allocated during the loops or the median
 * CPU time is above 2000 ns per request.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "propagation.h"
#include "sampler.h"
#include "span.h"

#define BENCH_BUDGET_NS 2000.0
#define BENCH_MAX_ROUNDS 15

void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void *__wrap_malloc(size_t);
void *__wrap_calloc(size_t, size_t);
void *__wrap_realloc(void *, size_t);

static unsigned long bench_allocs;

/* Counting wrappers (-Wl,--wrap). */
void *
__wrap_malloc(size_t n)
{
	bench_allocs++;
	return __real_malloc(n);
}

/* Counting calloc. */
void *
__wrap_calloc(size_t n, size_t sz)
{
	bench_allocs++;
	return __real_calloc(n, sz);
}

/* Counting realloc. */
void *
__wrap_realloc(void *p, size_t n)
{
	bench_allocs++;
	return __real_realloc(p, n);
}

/* A RUM fetch as the gateway sees it: tracing and ordinary headers. */
static const char *const bench_headers[][2] = {
	{ "Host", "api.example.com" },
	{ "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
	  "(KHTML, like Gecko) Chrome/126.0 Safari/537.36" },
	{ "Accept", "application/json" },
	{ "Accept-Language", "en-US,en;q=0.9" },
	{ "Origin", "https://app.example.com" },
	{ "Referer", "https://app.example.com/dashboard" },
	{ "x-datadog-trace-id", "5474458728733560230" },
	{ "x-datadog-parent-id", "67667974448284343" },
	{ "x-datadog-origin", "rum" },
	{ "x-datadog-sampling-priority", "1" },
	{ "traceparent",
	  "00-00000000000000004bf92f3577b34da6-00f067aa0ba902b7-01" },
	{ "tracestate", "dd=s:1;o:rum" },
	{ "baggage", "session.id=2f6f6a1e-9c1d-4d4e-8b0a-6c7d2b1f0e3a,"
	  "user.id=42,account.id=acme" },
	{ "Content-Type", "application/json" },
};

/* The request's context: caller storage, as in a worker. */
static struct trace_extract bench_ex;
static struct span bench_span;

/* Emit: copy the header into a scratch buffer, as the head builder does. */
static int
bench_emit(void *arg, const char *name, const char *value, size_t len)
{
	static char out[4096];
	size_t *used = arg, nl = strlen(name);

	if (nl + len + 4 > sizeof out)
		return -1;
	memcpy(out, name, nl);
	memcpy(out + nl, ": ", 2);
	memcpy(out + nl + 2, value, len);
	*used += nl + len + 4;
	return 0;
}

/* Thread CPU nanoseconds: what counts on a machine shared with others. */
static uint64_t
bench_cpu(void)
{
	return bench_clock(CLOCK_THREAD_CPUTIME_ID);
}

/* qsort comparator for doubles. */
static int
bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Run the rounds and print the figures (see the comment at the top). */
int
main(int argc, char **argv)
{
	struct trace_header th[TS_NITEMS(bench_headers)];
	struct propagation_conf pc;
	struct sampler_conf sc;
	struct prop_stats st;
	struct sampler *smp;
	struct ids_rng rng;
	struct mallinfo2 m0, m1;
	double per[BENCH_MAX_ROUNDS], wall[BENCH_MAX_ROUNDS], best, median;
	double ph_extract, ph_start, ph_inject;
	unsigned long iters = 1000000, rounds = 3, i, r, allocs, phase_iters;
	uint64_t t0, t1, w0, now_ns = 1700000000ULL * 1000000000ULL;
	size_t n = TS_NITEMS(bench_headers), used = 0;

	if (argc > 1)
		iters = strtoul(argv[1], NULL, 10);
	if (argc > 2)
		rounds = strtoul(argv[2], NULL, 10);
	if (iters == 0 || rounds == 0 || rounds > BENCH_MAX_ROUNDS) {
		fprintf(stderr, "usage: prop_bench [iterations] [rounds 1..%d]\n",
		    BENCH_MAX_ROUNDS);
		return 2;
	}
	bench_headers_fill(th, bench_headers, n);
	propagation_conf_defaults(&pc);
	memset(&sc, 0, sizeof sc);
	sc.service = "tracestitch";
	sc.env = "";
	sc.rate_limit = 100;
	if ((smp = sampler_new(&sc)) == NULL)
		return 2;
	ids_rng_seed(&rng, 42);
	memset(&st, 0, sizeof st);

	/* The counters must see the library's allocations. */
	bench_allocs = 0;
	sampler_free(sampler_new(&sc));
	if (bench_allocs == 0) {
		fprintf(stderr, "prop_bench: malloc is not wrapped (link with "
		    "-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc)\n");
		return 2;
	}

	/* Warm up and check the result once. */
	for (i = 0; i < 1000; i++) {
		span_init(&bench_span);
		(void)propagation_extract(&pc, th, n, &bench_ex, &st);
		propagation_start_span(&pc, &bench_ex, smp, &rng, now_ns, i,
		    &bench_span);
		(void)propagation_inject(&pc, &bench_span, bench_emit, &used);
	}
	if (!bench_ex.continued || bench_span.trace_id.low !=
	    5474458728733560230ULL || bench_span.n_baggage != 3) {
		fprintf(stderr, "prop_bench: the RUM context was not "
		    "continued\n");
		return 2;
	}

	m0 = mallinfo2();
	bench_allocs = 0;
	for (r = 0; r < rounds; r++) {
		w0 = bench_clock(CLOCK_MONOTONIC);
		t0 = bench_cpu();
		for (i = 0; i < iters; i++) {
			span_init(&bench_span);
			(void)propagation_extract(&pc, th, n, &bench_ex, &st);
			propagation_start_span(&pc, &bench_ex, smp, &rng,
			    now_ns + i, w0 + i, &bench_span);
			(void)propagation_inject(&pc, &bench_span, bench_emit,
			    &used);
		}
		t1 = bench_cpu();
		per[r] = (double)(t1 - t0) / (double)iters;
		wall[r] = (double)(bench_clock(CLOCK_MONOTONIC) - w0) /
		    (double)iters;
	}

	/* Each phase alone, on the same state. */
	phase_iters = iters / 4 > 0 ? iters / 4 : 1;
	t0 = bench_cpu();
	for (i = 0; i < phase_iters; i++)
		(void)propagation_extract(&pc, th, n, &bench_ex, &st);
	ph_extract = (double)(bench_cpu() - t0) / (double)phase_iters;
	t0 = bench_cpu();
	for (i = 0; i < phase_iters; i++) {
		span_init(&bench_span);
		propagation_start_span(&pc, &bench_ex, smp, &rng, now_ns + i,
		    t0 + i, &bench_span);
	}
	ph_start = (double)(bench_cpu() - t0) / (double)phase_iters;
	t0 = bench_cpu();
	for (i = 0; i < phase_iters; i++)
		(void)propagation_inject(&pc, &bench_span, bench_emit, &used);
	ph_inject = (double)(bench_cpu() - t0) / (double)phase_iters;
	allocs = bench_allocs;
	m1 = mallinfo2();

	qsort(per, rounds, sizeof per[0], bench_cmp);
	qsort(wall, rounds, sizeof wall[0], bench_cmp);
	best = per[0];
	median = per[rounds / 2];
	printf("prop_bench: extract + start_span + inject, %zu headers "
	    "(datadog + tracecontext + baggage), default styles\n", n);
	printf("prop_bench: %lu rounds x %lu iterations\n", rounds, iters);
	printf("prop_bench: CPU ns/op best %.1f median %.1f worst %.1f "
	    "(budget %.0f)\n", best, median, per[rounds - 1], BENCH_BUDGET_NS);
	printf("prop_bench: wall ns/op best %.1f median %.1f (includes "
	    "preemption by other processes)\n", wall[0], wall[rounds / 2]);
	printf("prop_bench: phases alone, CPU ns/op: extract %.1f, "
	    "start_span %.1f (span_init included), inject %.1f\n",
	    ph_extract, ph_start, ph_inject);
	printf("prop_bench: allocations during the loops: %lu calls, heap "
	    "in use %+lld bytes (mallinfo2)\n", allocs,
	    (long long)m1.uordblks - (long long)m0.uordblks);
	printf("prop_bench: %lu requests continued, %zu header bytes "
	    "emitted\n", (unsigned long)st.continued, used);
	sampler_free(smp);
	return allocs == 0 && median <= BENCH_BUDGET_NS ? 0 : 1;
}
