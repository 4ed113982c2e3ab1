/*
 * test_export_otlp.c -- the OTLP/HTTP exporter: spans submitted through
 * the exporter are POSTed to an in-test collector on 127.0.0.1:0, as
 * http/protobuf (the default: decoded with the same protoc-c code the
 * exporter packs with; the integration suite decodes with python3-protobuf
 * too) and as http/json (decoded with jansson) (PROPAGATION.md 12): ids,
 * kind, times, attributes, status, links, resource attributes; gzip and
 * the configured headers; an unsampled trace is not sent and is counted;
 * a partial success in the answer is warned about.
 */
#include <jansson.h>
#include <zlib.h>

#include "trace_service.pb-c.h"

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
	struct exporter *ex;
	struct exporter_queue *q;
	struct trace_link l;
	json_t *root, *rs, *spans, *s, *attrs, *link;
	json_error_t err;
	char buf[64];

	cfg.exporter.otlp_protocol = CONFIG_OTLP_JSON;
	ex = new_exporter();
	q = exporter_queue_new(ex);
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
	struct exporter *ex;
	struct exporter_queue *q;
	struct exporter_stats st;
	json_t *root, *spans;

	cfg.exporter.otlp_protocol = CONFIG_OTLP_JSON;
	ex = new_exporter();
	q = exporter_queue_new(ex);
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

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest
    pb_req;
typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;

/* The value of key among n protobuf attributes, or NULL. */
static const Opentelemetry__Proto__Common__V1__AnyValue *
pb_attr(pb_kv **kvs, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(kvs[i]->key, key) == 0)
			return kvs[i]->value;
	return NULL;
}

static const char *
pb_attr_s(pb_kv **kvs, size_t n, const char *key)
{
	const Opentelemetry__Proto__Common__V1__AnyValue *v;

	v = pb_attr(kvs, n, key);
	ck_assert_msg(v != NULL, "missing attribute %s", key);
	ck_assert_int_eq(v->value_case,
	    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
	return v->string_value;
}

static void
ck_bytes(ProtobufCBinaryData d, const char *hex)
{
	char got[40];
	size_t i;

	ck_assert_uint_eq(d.len * 2, strlen(hex));
	for (i = 0; i < d.len; i++)
		snprintf(got + 2 * i, 3, "%02x", d.data[i]);
	ck_assert_str_eq(got, hex);
}

/* Inflate a gzip body (RFC 1952) into a new buffer of *len bytes. */
static unsigned char *
gunzip(const char *in, size_t inlen, size_t *len)
{
	unsigned char *out = malloc(1 << 20);
	z_stream z;

	memset(&z, 0, sizeof z);
	ck_assert_int_eq(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)inlen;
	z.next_out = out;
	z.avail_out = 1 << 20;
	ck_assert_int_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
	*len = z.total_out;
	inflateEnd(&z);
	return out;
}

/*
 * http/protobuf, the default: every field of the span, decoded with the
 * generated code; gzip (compression) and the configured headers.
 */
START_TEST(test_otlp_protobuf)
{
	struct config_kv hv[] = { { "Api-Key", "k-123" } };
	struct span *sp = span_new();
	struct exporter *ex;
	struct exporter_queue *q;
	struct trace_link l;
	const Opentelemetry__Proto__Trace__V1__Span *s;
	const Opentelemetry__Proto__Trace__V1__ResourceSpans *rs;
	const Opentelemetry__Proto__Trace__V1__ScopeSpans *ss;
	const Opentelemetry__Proto__Common__V1__AnyValue *v;
	pb_req *req;
	unsigned char *body;
	size_t blen;
	char buf[64];

	ck_assert_int_eq(cfg.exporter.otlp_protocol, CONFIG_OTLP_PROTOBUF);
	cfg.exporter.compression = CONFIG_COMPRESSION_GZIP;
	cfg.exporter.headers = hv;
	cfg.exporter.n_headers = 1;
	ex = new_exporter();
	q = exporter_queue_new(ex);
	make_span(sp, 1, true);
	memset(&l, 0, sizeof l);
	l.trace_id.high = 7;
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
	    sizeof buf), "application/x-protobuf");
	ck_assert_str_eq(fa_header(agent.reqs[0].head, "Content-Encoding",
	    buf, sizeof buf), "gzip");
	ck_assert_str_eq(fa_header(agent.reqs[0].head, "Api-Key", buf,
	    sizeof buf), "k-123");
	body = gunzip(agent.reqs[0].body, agent.reqs[0].body_len, &blen);
	req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
	    NULL, blen, body);
	ck_assert_ptr_nonnull(req);
	ck_assert_uint_eq(req->n_resource_spans, 1);
	rs = req->resource_spans[0];
	ck_assert_str_eq(pb_attr_s(rs->resource->attributes,
	    rs->resource->n_attributes, "service.name"), "gw");
	ck_assert_str_eq(pb_attr_s(rs->resource->attributes,
	    rs->resource->n_attributes, "deployment.environment"), "staging");
	ck_assert_str_eq(pb_attr_s(rs->resource->attributes,
	    rs->resource->n_attributes, "service.version"), "2.0");
	ck_assert_str_eq(pb_attr_s(rs->resource->attributes,
	    rs->resource->n_attributes, "telemetry.sdk.name"), "tracestitch");
	ck_assert_uint_eq(rs->n_scope_spans, 1);
	ss = rs->scope_spans[0];
	ck_assert_str_eq(ss->scope->name, "tracestitch");
	ck_assert_uint_eq(ss->n_spans, 1);
	s = ss->spans[0];
	ck_bytes(s->trace_id, "6650a1b2000000000123456789abcdef");
	ck_bytes(s->span_id, "00000000000000ff");
	ck_bytes(s->parent_span_id, "1000000000000001");
	ck_assert_str_eq(s->name, "GET /users");
	ck_assert_int_eq(s->kind,
	    OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
	ck_assert_uint_eq(s->start_time_unix_nano, 1700000000000000000ULL);
	ck_assert_uint_eq(s->end_time_unix_nano, 1700000000000001500ULL);
	ck_assert_str_eq(pb_attr_s(s->attributes, s->n_attributes,
	    "service.name"), "gw");
	ck_assert_str_eq(pb_attr_s(s->attributes, s->n_attributes,
	    "operation.name"), "tracestitch.request");
	ck_assert_str_eq(pb_attr_s(s->attributes, s->n_attributes,
	    "resource.name"), "GET /users");
	ck_assert_str_eq(pb_attr_s(s->attributes, s->n_attributes,
	    "span.type"), "web");
	ck_assert_str_eq(pb_attr_s(s->attributes, s->n_attributes,
	    "_dd.origin"), "rum");
	ck_assert_str_eq(pb_attr_s(s->attributes, s->n_attributes,
	    "http.method"), "GET");
	ck_assert_ptr_null(pb_attr(s->attributes, s->n_attributes,
	    "span.kind"));
	ck_assert_ptr_null(pb_attr(s->attributes, s->n_attributes,
	    "_dd.p.tid"));
	v = pb_attr(s->attributes, s->n_attributes, "_sampling_priority_v1");
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(v->value_case,
	    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
	ck_assert_int_eq(v->int_value, 1);
	v = pb_attr(s->attributes, s->n_attributes, "_dd.agent_psr");
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(v->value_case,
	    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE);
	ck_assert_double_eq_tol(v->double_value, 0.5, 1e-9);
	ck_assert_ptr_nonnull(s->status);
	ck_assert_int_eq(s->status->code,
	    OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
	ck_assert_str_eq(s->status->message, "upstream: timeout");
	ck_assert_uint_eq(s->n_links, 1);
	ck_bytes(s->links[0]->trace_id, "00000000000000070000000000000005");
	ck_bytes(s->links[0]->span_id, "0000000000000006");
	ck_assert_str_eq(s->links[0]->trace_state, "dd=s:1");
	ck_assert_uint_eq(s->links[0]->flags, 1);
	ck_assert_str_eq(pb_attr_s(s->links[0]->attributes,
	    s->links[0]->n_attributes, "reason"), "terminated_context");
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
	    req, NULL);
	free(body);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* A root span has no parent_span_id; status unset without an error. */
START_TEST(test_otlp_protobuf_root)
{
	struct span *sp = span_new();
	struct exporter *ex = new_exporter();
	struct exporter_queue *q = exporter_queue_new(ex);
	const Opentelemetry__Proto__Trace__V1__Span *s;
	pb_req *req;

	make_span(sp, 2, false);
	sp->parent_id = 0;
	ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	ck_assert(fa_wait(&agent, 1, 5000));
	req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
	    NULL, agent.reqs[0].body_len,
	    (const uint8_t *)agent.reqs[0].body);
	ck_assert_ptr_nonnull(req);
	s = req->resource_spans[0]->scope_spans[0]->spans[0];
	ck_assert_uint_eq(s->parent_span_id.len, 0);
	ck_assert_int_eq(s->status->code,
	    OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_UNSET);
	ck_assert_str_eq(s->status->message, "");
	ck_assert_uint_eq(s->n_links, 0);
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
	    req, NULL);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* Wait until the expected warning was logged (5 s at most). */
static bool
warned(void)
{
	int i;

	for (i = 0; i < 2500 && __atomic_load_n(&ts_warnings_seen,
	    __ATOMIC_RELAXED) < 1; i++)
		usleep(2000);
	return ts_warnings_seen >= 1;
}

/*
 * A partial success in the collector's answer (OTLP "Partial Success"):
 * warned about, not retried, the spans counted as exported.  The answer
 * is protobuf: partial_success (1) { rejected_spans (1): 3,
 * error_message (2): "bad" }.
 */
START_TEST(test_otlp_partial_success_protobuf)
{
	struct span *sp = span_new();
	struct exporter *ex;
	struct exporter_stats st;

	fa_set(&agent, FA_NORMAL, "\x0a\x07\x08\x03\x12\x03" "bad");
	ts_expect_warning("the collector rejected 3 of 1 spans: bad");
	ex = new_exporter();
	make_span(sp, 1, false);
	ck_assert(exporter_submit(exporter_queue_new(ex), sp));
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported == 1);
	ck_assert(warned());
	ck_assert_uint_eq(st.errors, 0);
	ck_assert_uint_eq(fa_count(&agent), 1);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* The same in OTLP/JSON (int64 as a string). */
START_TEST(test_otlp_partial_success_json)
{
	struct span *sp = span_new();
	struct exporter *ex;
	struct exporter_stats st;

	cfg.exporter.otlp_protocol = CONFIG_OTLP_JSON;
	fa_set(&agent, FA_NORMAL, "{\"partialSuccess\": {\"rejectedSpans\": "
	    "\"2\", \"errorMessage\": \"too old\"}}");
	ts_expect_warning("the collector rejected 2 of 1 spans: too old");
	ex = new_exporter();
	make_span(sp, 1, false);
	ck_assert(exporter_submit(exporter_queue_new(ex), sp));
	exporter_flush(ex);
	WAIT_STATS(ex, st, st.exported == 1);
	ck_assert(warned());
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
	tcase_add_test(tc, test_otlp_protobuf);
	tcase_add_test(tc, test_otlp_protobuf_root);
	tcase_add_test(tc, test_otlp_partial_success_protobuf);
	tcase_add_test(tc, test_otlp_partial_success_json);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(export_otlp_suite)
