/*
 * export_fixture.h -- what the exporter suites share: an in-process fake
 * agent (tests/support/fake_agent_core.h) on port 0, a minimal config
 * aimed at it, and an exporter with short test timers.
 */
#ifndef TS_EXPORT_FIXTURE_H
#define TS_EXPORT_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "exporter.h"
#include "metrics.h"
#include "span.h"
#include "ts_test.h"
#include "support/fake_agent_core.h"

static struct fa_agent agent;
static struct config cfg;
static char url[160];

/*
 * Start the fake agent and point cfg at it: type, path appended to the
 * agent's URL (for OTLP), service "gw", env and version as given, a long
 * flush interval (tests flush by hand) and max_queue spans.
 */
static TS_UNUSED void
export_fixture_setup(enum config_exporter_type type, const char *path,
    char *env, char *version, uint64_t max_queue)
{
	ck_assert_int_eq(fa_init(&agent, 0, NULL), 0);
	fa_start(&agent);
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", agent.port,
	    path != NULL ? path : "");
	memset(&cfg, 0, sizeof cfg);
	cfg.workers = 1;
	cfg.tracing.service = "gw";
	cfg.tracing.env = env;
	cfg.tracing.version = version;
	cfg.exporter.type = type;
	if (type == CONFIG_EXPORTER_OTLP)
		cfg.exporter.otlp_endpoint = url;
	else
		cfg.exporter.datadog_url = url;
	cfg.exporter.flush_interval_ms = 60000;
	cfg.exporter.max_queue_spans = max_queue;
}

static TS_UNUSED void
export_fixture_teardown(void)
{
	fa_fini(&agent);
	metrics_free_all();
}

/* An exporter for cfg polling every 5 ms, with this request timeout. */
static TS_UNUSED struct exporter *
export_fixture_exporter(uint64_t timeout_ms, bool no_retry)
{
	struct exporter_opts o;
	struct exporter *ex;
	char *cause = NULL;

	memset(&o, 0, sizeof o);
	o.tick_ms = 5;
	o.timeout_ms = timeout_ms;
	o.no_retry = no_retry;
	o.retry_ms = 20;
	ex = exporter_new_opts(&cfg, &o, &cause);
	ck_assert_msg(ex != NULL, "%s", cause);
	return ex;
}

/*
 * The shape every exporter suite starts its spans from: name
 * "tracestitch.request", resource, service "gw", type "web", span.kind
 * server and http.method GET.  Ids, times and the rest are the caller's.
 */
static TS_UNUSED void
export_fixture_span(struct span *sp, const char *resource)
{
	span_init(sp);
	ck_assert_int_eq(span_set_name(sp, "tracestitch.request"), 0);
	ck_assert_int_eq(span_set_resource(sp, resource), 0);
	ck_assert_int_eq(span_set_service(sp, "gw"), 0);
	ck_assert_int_eq(span_set_type(sp, "web"), 0);
	ck_assert_int_eq(span_set_meta(sp, "span.kind", "server"), 0);
	ck_assert_int_eq(span_set_meta(sp, "http.method", "GET"), 0);
}

/* Poll the exporter's stats into st until pred holds (5 s at most). */
#define WAIT_STATS(ex, st, pred) do {					\
	int wait_n_;							\
	for (wait_n_ = 0; wait_n_ < 2500; wait_n_++) {			\
		exporter_get_stats((ex), &(st));			\
		if (pred)						\
			break;						\
		usleep(2000);						\
	}								\
	ck_assert_msg(pred, "timed out waiting for " #pred);		\
} while (0)

#endif /* TS_EXPORT_FIXTURE_H */
