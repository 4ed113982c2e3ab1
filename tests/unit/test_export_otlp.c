/*
 * test_export_otlp.c -- the OTLP/HTTP exporter: spans submitted through
 * the exporter are POSTed as OTLP/JSON to an in-test collector on
 * 127.0.0.1:0 and decoded with jansson (PROPAGATION.md 12): hex ids,
 * kind, times, attributes, status, links, resource attributes; an
 * unsampled trace is not sent and is counted.
 */
#include <jansson.h>

#include "config.h"
#include "exporter.h"
#include "metrics.h"
#include "span.h"
#include "export_fixture.h"

static void
setup(void)
{
	export_fixture_setup(CONFIG_EXPORTER_OTLP, "/v1/traces", "staging",
	    "2.0", 100);
	fa_set(&agent, FA_NORMAL, "{}");
}

static void
teardown(void)
{
	export_fixture_teardown();
}

/* An exporter with a 1 s request timeout and the default retries. */
static struct exporter *
new_exporter(void)
{
	return export_fixture_exporter(1000, false);
}

static void
make_span(struct span *sp, int priority, bool error)
{
	export_fixture_span(sp, "GET /users");
	sp->trace_id.high = 0x6650a1b200000000ULL;
	sp->trace_id.low = 0x0123456789abcdefULL;
	sp->span_id = 0x00000000000000ffULL;
	sp->parent_id = 0x1000000000000001ULL;
	sp->start_ns = 1700000000000000000ULL;
	sp->has_priority = true;
	sp->priority = priority;
	sp->origin = span_strdup(sp, "rum");
	sp->error = error;
	if (error) {
		ck_assert_int_eq(span_set_meta(sp, "error.type", "upstream"),
		    0);
		ck_assert_int_eq(span_set_meta(sp, "error.message",
		    "timeout"), 0);
	}
	ck_assert_int_eq(span_set_metric(sp, "_dd.agent_psr", 0.5), 0);
	span_finish(sp, sp->start_ns + 1500);
}

/* The attribute value object of key in an OTLP attribute array. */
static json_t *
attr(json_t *attrs, const char *key)
{
	size_t i;
	json_t *a;

	json_array_foreach(attrs, i, a) {
		if (strcmp(json_string_value(json_object_get(a, "key")), key)
		    == 0)
			return json_object_get(a, "value");
	}
	return NULL;
}

static const char *
attr_s(json_t *attrs, const char *key)
{
	json_t *v = attr(attrs, key);

	ck_assert_msg(v != NULL, "missing attribute %s", key);
	return json_string_value(json_object_get(v, "stringValue"));
}

START_TEST(test_otlp_span)
{
	struct span *sp = span_new();
	struct exporter *ex = new_exporter();
	struct exporter_queue *q = exporter_queue_new(ex);
	struct trace_link l;
	json_t *root, *rs, *spans, *s, *attrs, *link;
	json_error_t err;
	char buf[64];

	make_span(sp, 1, true);
	memset(&l, 0, sizeof l);
	l.trace_id.low = 5;
	l.span_id = 6;
	l.has_flags = true;
	l.flags = 1;
	l.tracestate = "dd=s:1";
	l.reason = "terminated_context";
	ck_assert_int_eq(span_add_link(sp, &l), 0);
	ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	ck_assert(fa_wait(&agent, 1, 5000));
	ck_assert_str_eq(agent.reqs[0].method, "POST");
	ck_assert_str_eq(agent.reqs[0].target, "/v1/traces");
	ck_assert_str_eq(fa_header(agent.reqs[0].head, "Content-Type", buf,
	    sizeof buf), "application/json");
	root = json_loadb(agent.reqs[0].body, agent.reqs[0].body_len, 0,
	    &err);
	ck_assert_msg(root != NULL, "%s", err.text);
	rs = json_array_get(json_object_get(root, "resourceSpans"), 0);
	attrs = json_object_get(json_object_get(rs, "resource"),
	    "attributes");
	ck_assert_str_eq(attr_s(attrs, "service.name"), "gw");
	ck_assert_str_eq(attr_s(attrs, "deployment.environment"), "staging");
	ck_assert_str_eq(attr_s(attrs, "service.version"), "2.0");
	spans = json_object_get(json_array_get(json_object_get(rs,
	    "scopeSpans"), 0), "spans");
	ck_assert_uint_eq(json_array_size(spans), 1);
	s = json_array_get(spans, 0);
	ck_assert_str_eq(json_string_value(json_object_get(s, "traceId")),
	    "6650a1b2000000000123456789abcdef");
	ck_assert_str_eq(json_string_value(json_object_get(s, "spanId")),
	    "00000000000000ff");
	ck_assert_str_eq(json_string_value(json_object_get(s,
	    "parentSpanId")), "1000000000000001");
	ck_assert_str_eq(json_string_value(json_object_get(s, "name")),
	    "GET /users");
	ck_assert_int_eq(json_integer_value(json_object_get(s, "kind")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(s,
	    "startTimeUnixNano")), "1700000000000000000");
	ck_assert_str_eq(json_string_value(json_object_get(s,
	    "endTimeUnixNano")), "1700000000000001500");
	attrs = json_object_get(s, "attributes");
	ck_assert_str_eq(attr_s(attrs, "service.name"), "gw");
	ck_assert_str_eq(attr_s(attrs, "operation.name"),
	    "tracestitch.request");
	ck_assert_str_eq(attr_s(attrs, "resource.name"), "GET /users");
	ck_assert_str_eq(attr_s(attrs, "span.type"), "web");
	ck_assert_str_eq(attr_s(attrs, "_dd.origin"), "rum");
	ck_assert_str_eq(attr_s(attrs, "http.method"), "GET");
	ck_assert_ptr_null(attr(attrs, "span.kind"));
	ck_assert_ptr_null(attr(attrs, "_dd.p.tid"));
	ck_assert_str_eq(json_string_value(json_object_get(attr(attrs,
	    "_sampling_priority_v1"), "intValue")), "1");
	ck_assert_double_eq_tol(json_real_value(json_object_get(attr(attrs,
	    "_dd.agent_psr"), "doubleValue")), 0.5, 1e-9);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(s,
	    "status"), "code")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(s,
	    "status"), "message")), "upstream: timeout");
	link = json_array_get(json_object_get(s, "links"), 0);
	ck_assert_ptr_nonnull(link);
	ck_assert_str_eq(json_string_value(json_object_get(link, "traceId")),
	    "00000000000000000000000000000005");
	ck_assert_str_eq(json_string_value(json_object_get(link, "spanId")),
	    "0000000000000006");
	ck_assert_str_eq(json_string_value(json_object_get(link,
	    "traceState")), "dd=s:1");
	ck_assert_int_eq(json_integer_value(json_object_get(link, "flags")),
	    1);
	ck_assert_str_eq(attr_s(json_object_get(link, "attributes"),
	    "reason"), "terminated_context");
	json_decref(root);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* Unsampled traces (priority <= 0) are counted, not sent. */
START_TEST(test_otlp_unsampled)
{
	struct span *sp = span_new();
	struct exporter *ex = new_exporter();
	struct exporter_queue *q = exporter_queue_new(ex);
	struct exporter_stats st;
	json_t *root, *spans;

	make_span(sp, 0, false);
	ck_assert(exporter_submit(q, sp));
	make_span(sp, -1, false);
	ck_assert(exporter_submit(q, sp));
	make_span(sp, 2, false);
	ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	ck_assert(fa_wait(&agent, 1, 5000));
	root = json_loadb(agent.reqs[0].body, agent.reqs[0].body_len, 0,
	    NULL);
	ck_assert_ptr_nonnull(root);
	spans = json_object_get(json_array_get(json_object_get(json_array_get(
	    json_object_get(root, "resourceSpans"), 0), "scopeSpans"), 0),
	    "spans");
	ck_assert_uint_eq(json_array_size(spans), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    json_array_get(spans, 0), "status"), "code")), 0);
	json_decref(root);
	WAIT_STATS(ex, st, st.exported == 1);
	ck_assert_uint_eq(st.dropped_unsampled, 2);

	/* Only unsampled spans: nothing is sent at all. */
	make_span(sp, 0, false);
	ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.dropped_unsampled == 3);
	ck_assert_uint_eq(fa_count(&agent), 1);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

static Suite *
export_otlp_suite(void)
{
	Suite *s = suite_create("export_otlp");
	TCase *tc = tcase_create("otlp");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_otlp_span);
	tcase_add_test(tc, test_otlp_unsampled);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(export_otlp_suite)
