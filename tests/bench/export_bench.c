/*
 * export_bench.c -- what exporting the gateway span costs (issue #5:
 * "spans cost <= 1.5 microseconds per request"), measured alone, without
 * the noise of two whole gateways compared at different throughputs.
 *
 * A span shaped like the gateway's for a RUM fetch (the RUM context
 * continued by propagation_start_span, then the tags proxy_trace.c sets)
 * is submitted at a steady rate (default 50000/s, about what one worker
 * proxies in make bench) to the real exporter, which sends batches over
 * loopback to the in-process fake agent (tests/support/fake_agent_core.h,
 * bodies discarded).  Then it waits until every span was received.
 *
 * It prints, per span: the submitting thread's CPU time (encode + ring:
 * what a worker pays), the exporter thread's (drain, batch, send: the
 * process CPU minus the submitting and agent threads), and their sum.
 * Thread CPU clocks are not inflated by other processes, so the figures
 * are stable on a shared machine.  Exit status 1 if a span was lost or
 * the sum is over 1500 ns.
 *
 * Usage: export_bench [seconds, default 5] [spans per second, 50000].
 * Pin it to one CPU (taskset -c 0) to match make bench.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "exporter.h"
#include "ids.h"
#include "bench_util.h"
#include "propagation.h"
#include "sampler.h"
#include "span.h"
#include "support/fake_agent_core.h"

#define BENCH_BUDGET_NS 1500.0

static const char *const bench_headers[][2] = {
	{ "x-datadog-trace-id", "5474458728733560230" },
	{ "x-datadog-parent-id", "67667974448284343" },
	{ "x-datadog-origin", "rum" },
	{ "x-datadog-sampling-priority", "1" },
	{ "traceparent",
	  "00-00000000000000004bf92f3577b34da6-00f067aa0ba902b7-01" },
	{ "tracestate", "dd=s:1;o:rum" },
	{ "baggage", "session.id=2f6f6a1e-9c1d-4d4e-8b0a-6c7d2b1f0e3a" },
};

#define BENCH_SLICE_MAX 1000		/* spans per 1 ms slice */

static struct span bench_spans[BENCH_SLICE_MAX];
static struct trace_extract bench_ex;

/* The gateway's span for a RUM GET (proxy_trace.c's tags). */
static void
bench_fill(struct span *sp, const struct propagation_conf *pc,
    struct sampler *smp, struct ids_rng *rng, const struct trace_header *th,
    size_t n, uint64_t now)
{
	struct prop_stats st;

	memset(&st, 0, sizeof st);
	span_init(sp);
	(void)propagation_extract(pc, th, n, &bench_ex, &st);
	propagation_start_span(pc, &bench_ex, smp, rng, now, now, sp);
	(void)span_set_name(sp, "tracestitch.request");
	(void)span_set_service(sp, "tracestitch");
	(void)span_set_type(sp, "web");
	(void)span_set_resource(sp, "GET /api/users/?");
	(void)span_add_meta_static(sp, "span.kind", 9, "server", 6);
	(void)span_add_meta_static(sp, "component", 9, "tracestitch", 11);
	(void)span_add_meta_static(sp, "language", 8, "c", 1);
	(void)span_add_meta_static(sp, "env", 3, "prod", 4);
	(void)span_add_meta_static(sp, "version", 7, "1.4.2", 5);
	(void)span_add_meta_static(sp, "http.method", 11, "GET", 3);
	(void)span_set_meta(sp, "http.url",
	    "http://api.example.com/api/users/42");
	(void)span_set_meta(sp, "http.host", "api.example.com");
	(void)span_set_meta(sp, "http.useragent", "Mozilla/5.0 (X11; Linux "
	    "x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0");
	(void)span_set_meta(sp, "http.request.headers.origin",
	    "https://app.example.com");
	(void)span_add_meta_static(sp, "http.route", 10, "/api", 4);
	(void)span_add_meta_static(sp, "upstream.name", 13, "api", 3);
	(void)span_add_meta_static(sp, "upstream.address", 16,
	    "http://10.0.0.7:8080", 20);
	(void)span_set_meta(sp, "network.client.ip", "203.0.113.9");
	(void)span_set_meta(sp, "http.status_code", "200");
	(void)span_set_metric(sp, "_dd.measured", 1);
	(void)span_set_metric(sp, "upstream.connect_ms", 0.12);
	(void)span_set_metric(sp, "upstream.ttfb_ms", 0.85);
	span_finish(sp, now + 1250000);
}

int
main(int argc, char **argv)
{
	struct trace_header th[TS_NITEMS(bench_headers)];
	struct propagation_conf pc;
	struct sampler_conf sc;
	struct sampler *smp;
	struct ids_rng rng;
	struct fa_agent agent;
	struct exporter *ex;
	struct exporter_queue *q;
	struct exporter_stats st;
	struct config cfg;
	clockid_t agent_clock;
	char url[64], *cause = NULL;
	double seconds = 5, rate = 50000, worker_ns, exporter_ns;
	uint64_t w0, p0, a0, m0, t0, wcpu = 0, pcpu, acpu, mcpu, n = 0, next;
	uint64_t qpeak = 0;
	size_t nh = TS_NITEMS(bench_headers);
	int i;

	if (argc > 1)
		seconds = atof(argv[1]);
	if (argc > 2)
		rate = atof(argv[2]);
	if (seconds <= 0 || rate < 1000 || rate > BENCH_SLICE_MAX * 1000.0) {
		fprintf(stderr, "usage: export_bench [seconds] [spans/s, "
		    "1000..%d]\n", BENCH_SLICE_MAX * 1000);
		return 2;
	}
	bench_headers_fill(th, bench_headers, nh);
	propagation_conf_defaults(&pc);
	memset(&sc, 0, sizeof sc);
	sc.service = "tracestitch";
	sc.env = "prod";
	sc.rate_limit = 100;
	if ((smp = sampler_new(&sc)) == NULL)
		return 2;
	ids_rng_seed(&rng, 42);

	if (fa_init(&agent, 0, NULL) != 0)
		return 2;
	agent.discard_bodies = true;
	fa_start(&agent);
	if (pthread_getcpuclockid(agent.thread, &agent_clock) != 0)
		return 2;
	snprintf(url, sizeof url, "http://127.0.0.1:%d", agent.port);
	memset(&cfg, 0, sizeof cfg);
	cfg.workers = 1;
	cfg.tracing.service = "tracestitch";
	cfg.tracing.env = "prod";
	cfg.tracing.version = "1.4.2";
	cfg.exporter.type = CONFIG_EXPORTER_DATADOG;
	cfg.exporter.datadog_url = url;
	cfg.exporter.flush_interval_ms = 1000;
	cfg.exporter.max_queue_spans = 100000;	/* the defaults */
	if ((ex = exporter_new(&cfg, &cause)) == NULL) {
		fprintf(stderr, "export_bench: %s\n", cause);
		return 2;
	}
	q = exporter_queue_new(ex);

	/* Submit at the rate, in slices of 1 ms; time only the submits. */
	w0 = bench_clock(CLOCK_MONOTONIC);
	p0 = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
	a0 = bench_clock(agent_clock);
	m0 = bench_clock(CLOCK_THREAD_CPUTIME_ID);
	next = w0;
	while (bench_clock(CLOCK_MONOTONIC) - w0 < (uint64_t)(seconds * 1e9)) {
		int per = (int)(rate / 1000.0);

		/* Build the slice's spans first: only submits are timed. */
		for (i = 0; i < per; i++)
			bench_fill(&bench_spans[i], &pc, smp, &rng, th, nh,
			    w0 + n + (uint64_t)i);
		t0 = bench_clock(CLOCK_THREAD_CPUTIME_ID);
		for (i = 0; i < per; i++)
			(void)exporter_submit(q, &bench_spans[i]);
		wcpu += bench_clock(CLOCK_THREAD_CPUTIME_ID) - t0;
		n += (uint64_t)per;
		/* The queue's memory, every 10 ms (untimed). */
		if (n % (uint64_t)(10 * per) == 0) {
			exporter_get_stats(ex, &st);
			if (st.queue_bytes > qpeak)
				qpeak = st.queue_bytes;
		}
		next += 1000000;
		while (bench_clock(CLOCK_MONOTONIC) < next)
			usleep(100);
	}
	/* Everything delivered (or given up on) before the clocks stop. */
	exporter_flush(ex);
	for (i = 0; i < 5000; i++) {
		exporter_get_stats(ex, &st);
		if (st.exported + st.dropped_agent_error +
		    st.dropped_queue_full >= n)
			break;
		usleep(2000);
	}
	pcpu = bench_clock(CLOCK_PROCESS_CPUTIME_ID) - p0;
	acpu = bench_clock(agent_clock) - a0;
	mcpu = bench_clock(CLOCK_THREAD_CPUTIME_ID) - m0;
	exporter_get_stats(ex, &st);
	exporter_free(ex);
	fa_fini(&agent);
	sampler_free(smp);

	/*
	 * The exporter thread: the process minus the submitting thread
	 * (span building included: it is not export work) and the agent.
	 */
	worker_ns = (double)wcpu / (double)n;
	{
		double rest = (double)pcpu - (double)mcpu - (double)acpu;

		exporter_ns = rest > 0 ? rest / (double)n : 0;
	}
	printf("export_bench: %llu spans in %.1f s (%.0f/s) to the fake "
	    "agent over loopback\n", (unsigned long long)n, seconds,
	    (double)n / seconds);
	printf("  submitting thread (encode + ring): %7.0f ns/span\n",
	    worker_ns);
	printf("  exporter thread (drain + send):    %7.0f ns/span\n",
	    exporter_ns);
	printf("  span cost:                         %7.0f ns/span "
	    "(budget %.0f)\n", worker_ns + exporter_ns, BENCH_BUDGET_NS);
	printf("  export queue memory: peak %llu KiB\n",
	    (unsigned long long)(qpeak / 1024));
	printf("  exported %llu, dropped queue_full %llu, agent_error %llu\n",
	    (unsigned long long)st.exported,
	    (unsigned long long)st.dropped_queue_full,
	    (unsigned long long)st.dropped_agent_error);
	if (st.exported != n) {
		fprintf(stderr, "export_bench: %llu of %llu spans delivered\n",
		    (unsigned long long)st.exported, (unsigned long long)n);
		return 1;
	}
	return worker_ns + exporter_ns > BENCH_BUDGET_NS ? 1 : 0;
}
