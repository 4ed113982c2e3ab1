/*
 * test_export_datadog.c -- the Datadog Agent exporter end to end in one
 * process: hand-built gateway spans go through exporter_submit, the
 * exporter thread PUTs /v0.4/traces to an in-test fake agent on
 * 127.0.0.1:0 (and over a unix socket), and the payload is decoded with
 * msgpack-c: every field, its msgpack type and its wire marker
 * (PROPAGATION.md 11.1, 11.2, 11.4), the headers, and the agent's
 * rate_by_service answer reaching exporter_rates_copy.
 */
#include <math.h>
#include <stdint.h>

#include <msgpack.h>

#include "config.h"
#include "exporter.h"
#include "metrics.h"
#include "sampler.h"
#include "span.h"
#include "export_fixture.h"

static void
setup(void)
{
	export_fixture_setup(CONFIG_EXPORTER_DATADOG, NULL, "prod", "1.2.3",
	    1000);
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

/* The common shape of a gateway span. */
static void
base_span(struct span *sp, const char *resource)
{
	export_fixture_span(sp, resource);
	sp->span_id = 0xa1b2c3d4e5f60718ULL;
	sp->start_ns = 1700000000123456789ULL;
	ck_assert_int_eq(span_set_meta(sp, "http.url",
	    "https://api.example.com/users"), 0);
	ck_assert_int_eq(span_set_meta(sp, "http.status_code", "200"), 0);
}

/* Look up a key in a map; NULL if absent. */
static const msgpack_object *
get(const msgpack_object *m, const char *key)
{
	uint32_t i;

	ck_assert_int_eq(m->type, MSGPACK_OBJECT_MAP);
	for (i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;

		ck_assert_int_eq(k->type, MSGPACK_OBJECT_STR);
		if (k->via.str.size == strlen(key) &&
		    memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

static uint64_t
get_u(const msgpack_object *m, const char *key)
{
	const msgpack_object *v = get(m, key);

	ck_assert_msg(v != NULL, "missing %s", key);
	ck_assert_msg(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER,
	    "%s: type %d, want uint", key, v->type);
	return v->via.u64;
}

static void
assert_str(const msgpack_object *m, const char *key, const char *want)
{
	const msgpack_object *v = get(m, key);

	ck_assert_msg(v != NULL, "missing %s", key);
	ck_assert_msg(v->type == MSGPACK_OBJECT_STR, "%s: type %d, want str",
	    key, v->type);
	ck_assert_msg(v->via.str.size == strlen(want) &&
	    memcmp(v->via.str.ptr, want, v->via.str.size) == 0,
	    "%s: got %.*s want %s", key, (int)v->via.str.size, v->via.str.ptr,
	    want);
}

static void
assert_f64(const msgpack_object *m, const char *key, double want)
{
	const msgpack_object *v = get(m, key);

	ck_assert_msg(v != NULL, "missing metric %s", key);
	ck_assert_msg(v->type == MSGPACK_OBJECT_FLOAT64, "%s: type %d, want "
	    "float64", key, v->type);
	ck_assert_msg(fabs(v->via.f64 - want) < 1e-9, "%s: %f want %f", key,
	    v->via.f64, want);
}

/* The wire marker byte right after the key "key" in body. */
static unsigned
marker_after(const struct fa_request *r, const char *key)
{
	char pat[64];
	size_t klen = strlen(key), i;

	pat[0] = (char)(0xa0 | klen);
	memcpy(pat + 1, key, klen);
	for (i = 0; i + klen + 1 < r->body_len; i++)
		if (memcmp(r->body + i, pat, klen + 1) == 0)
			return (unsigned char)r->body[i + klen + 1];
	ck_abort_msg("key %s not in the payload", key);
	return 0;
}

/* Submit one span, flush, return the agent's request (index idx). */
static const struct fa_request *
export_one(struct exporter *ex, const struct span *sp, size_t idx)
{
	struct exporter_queue *q = exporter_queue_new(ex);

	ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	ck_assert_msg(fa_wait(&agent, idx + 1, 5000), "no payload");
	return &agent.reqs[idx];
}

/* Decode the payload: an array of one trace of one span. */
static msgpack_object
decode_one(const struct fa_request *r, msgpack_zone *z)
{
	msgpack_object root, trace;
	size_t off = 0;

	ck_assert_int_eq(msgpack_unpack(r->body, r->body_len, &off, z, &root),
	    MSGPACK_UNPACK_SUCCESS);
	ck_assert_uint_eq(off, r->body_len);
	ck_assert_int_eq(root.type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(root.via.array.size, 1);
	trace = root.via.array.ptr[0];
	ck_assert_int_eq(trace.type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(trace.via.array.size, 1);
	return trace.via.array.ptr[0];
}

/* Fields and types every span carries (11.2). */
static void
assert_common(const struct fa_request *r, const msgpack_object *sp)
{
	const msgpack_object *v;

	assert_str(sp, "name", "tracestitch.request");
	assert_str(sp, "service", "gw");
	assert_str(sp, "type", "web");
	ck_assert_uint_eq(get_u(sp, "span_id"), 0xa1b2c3d4e5f60718ULL);
	ck_assert_uint_eq(get_u(sp, "start"), 1700000000123456789ULL);
	ck_assert_uint_eq(get_u(sp, "duration"), 2500000);
	ck_assert_ptr_nonnull(v = get(sp, "error"));
	ck_assert_int_eq(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	ck_assert_int_eq(get(sp, "meta")->type, MSGPACK_OBJECT_MAP);
	ck_assert_int_eq(get(sp, "metrics")->type, MSGPACK_OBJECT_MAP);
	/* dd-trace's wire types: uint64 ids, int64 times, float64 metrics. */
	ck_assert_uint_eq(marker_after(r, "trace_id"), 0xcf);
	ck_assert_uint_eq(marker_after(r, "span_id"), 0xcf);
	ck_assert_uint_eq(marker_after(r, "parent_id"), 0xcf);
	ck_assert_uint_eq(marker_after(r, "start"), 0xd3);
	ck_assert_uint_eq(marker_after(r, "duration"), 0xd3);
	ck_assert_uint_eq(marker_after(r, "_sampling_priority_v1"), 0xcb);
	ck_assert_uint_eq(marker_after(r, "_dd.top_level"), 0xcb);
	/* Every meta value is a str, every metric a float64. */
	v = get(sp, "meta");
	for (uint32_t i = 0; i < v->via.map.size; i++)
		ck_assert_int_eq(v->via.map.ptr[i].val.type,
		    MSGPACK_OBJECT_STR);
	v = get(sp, "metrics");
	for (uint32_t i = 0; i < v->via.map.size; i++)
		ck_assert_int_eq(v->via.map.ptr[i].val.type,
		    MSGPACK_OBJECT_FLOAT64);
	assert_str(get(sp, "meta"), "env", "prod");
	assert_str(get(sp, "meta"), "version", "1.2.3");
	assert_str(get(sp, "meta"), "language", "c");
	assert_str(get(sp, "meta"), "span.kind", "server");
	assert_str(get(sp, "meta"), "http.method", "GET");
	ck_assert_ptr_nonnull(get(get(sp, "meta"), "runtime-id"));
	assert_f64(get(sp, "metrics"), "_dd.top_level", 1);
	assert_f64(get(sp, "metrics"), "process_id", (double)getpid());
}

/* A trace continued from RUM: _dd.origin=rum, 64-bit id, RUM parent. */
START_TEST(test_rum_continued)
{
	struct span *sp = span_new();
	struct exporter *ex = new_exporter();
	const struct fa_request *r;
	msgpack_zone z;
	msgpack_object s;
	char buf[64];

	base_span(sp, "GET /users");
	sp->trace_id.low = 8765432101234567890ULL;
	sp->parent_id = 1234567890123456789ULL;
	sp->has_priority = true;
	sp->priority = 1;
	sp->origin = span_strdup(sp, "rum");
	span_finish(sp, sp->start_ns + 2500000);
	r = export_one(ex, sp, 0);
	ck_assert_str_eq(r->method, "PUT");
	ck_assert_str_eq(r->target, "/v0.4/traces");
	ck_assert_str_eq(fa_header(r->head, "Content-Type", buf, sizeof buf),
	    "application/msgpack");
	ck_assert_str_eq(fa_header(r->head, "X-Datadog-Trace-Count", buf,
	    sizeof buf), "1");
	ck_assert_str_eq(fa_header(r->head, "Datadog-Meta-Lang", buf,
	    sizeof buf), "c");
	ck_assert_ptr_nonnull(fa_header(r->head, "Datadog-Meta-Lang-Version",
	    buf, sizeof buf));
	ck_assert_ptr_nonnull(fa_header(r->head,
	    "Datadog-Meta-Tracer-Version", buf, sizeof buf));
	msgpack_zone_init(&z, 4096);
	s = decode_one(r, &z);
	assert_common(r, &s);
	ck_assert_uint_eq(get_u(&s, "trace_id"), 8765432101234567890ULL);
	ck_assert_uint_eq(get_u(&s, "parent_id"), 1234567890123456789ULL);
	ck_assert_uint_eq(get_u(&s, "error"), 0);
	assert_str(&s, "resource", "GET /users");
	assert_str(get(&s, "meta"), "_dd.origin", "rum");
	ck_assert_ptr_null(get(get(&s, "meta"), "_dd.p.tid"));
	assert_f64(get(&s, "metrics"), "_sampling_priority_v1", 1);
	ck_assert_ptr_null(get(&s, "span_links"));
	msgpack_zone_destroy(&z);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* A new 128-bit trace: low 64 in trace_id, high in _dd.p.tid. */
START_TEST(test_new_128bit)
{
	struct span *sp = span_new();
	struct exporter *ex = new_exporter();
	const struct fa_request *r;
	msgpack_zone z;
	msgpack_object s;

	base_span(sp, "POST /orders");
	sp->trace_id.high = 0x6650a1b200000000ULL;
	sp->trace_id.low = 0x0123456789abcdefULL;
	sp->has_priority = true;
	sp->priority = 1;
	sp->mechanism = SPAN_MECH_AGENT_RATE;
	ck_assert_int_eq(span_set_ptag(sp, "_dd.p.dm", "-1"), 0);
	ck_assert_int_eq(span_set_metric(sp, "_dd.agent_psr", 0.5), 0);
	span_finish(sp, sp->start_ns + 2500000);
	r = export_one(ex, sp, 0);
	msgpack_zone_init(&z, 4096);
	s = decode_one(r, &z);
	assert_common(r, &s);
	ck_assert_uint_eq(get_u(&s, "trace_id"), 0x0123456789abcdefULL);
	ck_assert_uint_eq(get_u(&s, "parent_id"), 0);
	assert_str(get(&s, "meta"), "_dd.p.tid", "6650a1b200000000");
	assert_str(get(&s, "meta"), "_dd.p.dm", "-1");
	ck_assert_ptr_null(get(get(&s, "meta"), "_dd.origin"));
	assert_f64(get(&s, "metrics"), "_dd.agent_psr", 0.5);
	msgpack_zone_destroy(&z);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* An error span: error = 1 (int32 family) and the error.* meta. */
START_TEST(test_error_span)
{
	struct span *sp = span_new();
	struct exporter *ex = new_exporter();
	const struct fa_request *r;
	msgpack_zone z;
	msgpack_object s;

	base_span(sp, "GET /fail");
	sp->trace_id.low = 42;
	sp->has_priority = true;
	sp->priority = 2;
	sp->error = true;
	ck_assert_int_eq(span_set_meta(sp, "http.status_code", "502"), 0);
	ck_assert_int_eq(span_set_meta(sp, "error.type", "upstream"), 0);
	ck_assert_int_eq(span_set_meta(sp, "error.message",
	    "connection refused"), 0);
	span_finish(sp, sp->start_ns + 2500000);
	r = export_one(ex, sp, 0);
	msgpack_zone_init(&z, 4096);
	s = decode_one(r, &z);
	assert_common(r, &s);
	ck_assert_uint_eq(get_u(&s, "error"), 1);
	ck_assert_uint_eq(marker_after(r, "error"), 0x01);	/* fixint */
	assert_str(get(&s, "meta"), "http.status_code", "502");
	assert_str(get(&s, "meta"), "error.message", "connection refused");
	assert_f64(get(&s, "metrics"), "_sampling_priority_v1", 2);
	msgpack_zone_destroy(&z);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* Borrowed tags (span_add_meta_static) are packed like copied ones, can
 * be replaced by span_set_meta, and the span does not copy them. */
START_TEST(test_static_meta)
{
	static const char conf_route[] = "/api/v1";
	struct span *sp = span_new();
	struct exporter *ex = new_exporter();
	const struct fa_request *r;
	msgpack_zone z;
	msgpack_object s;
	size_t before;

	base_span(sp, "GET /static");
	before = sp->arena.len;
	ck_assert_int_eq(span_add_meta_static(sp, "http.route", 10, conf_route,
	    strlen(conf_route)), 0);
	ck_assert_int_eq(span_add_meta_static(sp, "upstream.name", 13, "api",
	    3), 0);
	ck_assert_uint_eq(sp->arena.len, before);	/* nothing copied */
	ck_assert_ptr_eq(span_get_meta(sp, "http.route"), conf_route);
	ck_assert_int_eq(span_set_meta(sp, "upstream.name", "api-2"), 0);
	span_finish(sp, sp->start_ns + 1000);
	r = export_one(ex, sp, 0);
	msgpack_zone_init(&z, 4096);
	s = decode_one(r, &z);
	assert_str(get(&s, "meta"), "http.route", "/api/v1");
	assert_str(get(&s, "meta"), "upstream.name", "api-2");
	/* Added by the exporter when the span lacks them (11.4). */
	assert_f64(get(&s, "metrics"), "_dd.top_level", 1);
	ck_assert_ptr_nonnull(get(get(&s, "metrics"), "process_id"));
	msgpack_zone_destroy(&z);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* A span link in the native v0.4 span_links field (11.2). */
START_TEST(test_span_link)
{
	struct span *sp = span_new();
	struct exporter *ex = new_exporter();
	struct trace_link l;
	const struct fa_request *r;
	const msgpack_object *links, *lk;
	msgpack_zone z;
	msgpack_object s;

	base_span(sp, "GET /users");
	sp->trace_id.low = 7;
	sp->has_priority = true;
	sp->priority = 1;
	memset(&l, 0, sizeof l);
	l.trace_id.high = 0x1111111111111111ULL;
	l.trace_id.low = 0x2222222222222222ULL;
	l.span_id = 0x3333333333333333ULL;
	l.tracestate = "dd=s:1;o:rum";
	l.has_flags = true;
	l.flags = 1;
	l.reason = "terminated_context";
	l.context_headers = "tracecontext";
	ck_assert_int_eq(span_add_link(sp, &l), 0);
	span_finish(sp, sp->start_ns + 2500000);
	r = export_one(ex, sp, 0);
	msgpack_zone_init(&z, 4096);
	s = decode_one(r, &z);
	assert_common(r, &s);
	ck_assert_ptr_nonnull(links = get(&s, "span_links"));
	ck_assert_int_eq(links->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(links->via.array.size, 1);
	lk = &links->via.array.ptr[0];
	ck_assert_uint_eq(get_u(lk, "trace_id"), 0x2222222222222222ULL);
	ck_assert_uint_eq(get_u(lk, "trace_id_high"), 0x1111111111111111ULL);
	ck_assert_uint_eq(get_u(lk, "span_id"), 0x3333333333333333ULL);
	ck_assert_uint_eq(get_u(lk, "flags"), 0x80000001u);
	assert_str(lk, "tracestate", "dd=s:1;o:rum");
	assert_str(get(lk, "attributes"), "reason", "terminated_context");
	assert_str(get(lk, "attributes"), "context_headers", "tracecontext");
	msgpack_zone_destroy(&z);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* Several spans in one flush: one payload, one trace per span. */
START_TEST(test_batch)
{
	struct span *sp = span_new();
	struct exporter *ex = new_exporter();
	struct exporter_queue *q = exporter_queue_new(ex);
	struct exporter_stats st;
	msgpack_object root;
	msgpack_zone z;
	size_t off = 0;
	char buf[16];
	int i;

	base_span(sp, "GET /x");
	span_finish(sp, sp->start_ns + 10);
	for (i = 0; i < 25; i++) {
		sp->trace_id.low = (uint64_t)i + 1;
		ck_assert(exporter_submit(q, sp));
	}
	exporter_flush(ex);
	ck_assert(fa_wait(&agent, 1, 5000));
	msgpack_zone_init(&z, 4096);
	ck_assert_int_eq(msgpack_unpack(agent.reqs[0].body,
	    agent.reqs[0].body_len, &off, &z, &root), MSGPACK_UNPACK_SUCCESS);
	ck_assert_uint_eq(root.via.array.size, 25);
	for (i = 0; i < 25; i++)
		ck_assert_uint_eq(get_u(&root.via.array.ptr[i].via.array.ptr[0],
		    "trace_id"), (uint64_t)i + 1);
	ck_assert_str_eq(fa_header(agent.reqs[0].head,
	    "X-Datadog-Trace-Count", buf, sizeof buf), "25");
	msgpack_zone_destroy(&z);
	WAIT_STATS(ex, st, st.exported == 25);
	ck_assert_uint_eq(st.requests, 1);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* The agent's rate_by_service answer is published with a new version. */
START_TEST(test_rates)
{
	struct span *sp = span_new();
	struct exporter *ex;
	struct exporter_queue *q;
	struct sampler_rate *rates;
	size_t n, i;
	uint64_t v;

	fa_set(&agent, FA_NORMAL, "{\"rate_by_service\":{\"service:gw,env:"
	    "prod\":0.25,\"service:,env:\":0.75}}");
	ex = new_exporter();
	q = exporter_queue_new(ex);
	ck_assert_uint_eq(exporter_rates_version(ex), 0);
	ck_assert_uint_eq(exporter_rates_copy(ex, &rates, &n), 0);
	ck_assert_ptr_null(rates);
	base_span(sp, "GET /r");
	span_finish(sp, sp->start_ns + 10);
	ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	ck_assert(fa_wait(&agent, 1, 5000));
	for (i = 0; i < 500 && exporter_rates_version(ex) == 0; i++)
		usleep(2000);
	ck_assert_uint_eq(exporter_rates_version(ex), 1);
	v = exporter_rates_copy(ex, &rates, &n);
	ck_assert_uint_eq(v, 1);
	ck_assert_uint_eq(n, 2);
	for (i = 0; i < n; i++) {
		if (strcmp(rates[i].key, "service:gw,env:prod") == 0)
			ck_assert_double_eq_tol(rates[i].rate, 0.25, 1e-9);
		else {
			ck_assert_str_eq(rates[i].key, "service:,env:");
			ck_assert_double_eq_tol(rates[i].rate, 0.75, 1e-9);
		}
	}
	sampler_rates_free(rates, n);

	/* The same table again: no new version; a new one: version 2. */
	ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	ck_assert(fa_wait(&agent, 2, 5000));
	fa_set(&agent, FA_NORMAL, "{\"rate_by_service\":{\"service:,env:\":"
	    "0.1}}");
	ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	ck_assert(fa_wait(&agent, 3, 5000));
	for (i = 0; i < 500 && exporter_rates_version(ex) < 2; i++)
		usleep(2000);
	ck_assert_uint_eq(exporter_rates_version(ex), 2);
	v = exporter_rates_copy(ex, &rates, &n);
	ck_assert_uint_eq(v, 2);
	ck_assert_uint_eq(n, 1);
	ck_assert_double_eq_tol(rates[0].rate, 0.1, 1e-9);
	sampler_rates_free(rates, n);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

/* unix:///path/apm.socket: same payload over AF_UNIX, no container id. */
START_TEST(test_unix_socket)
{
	struct fa_agent ua;
	struct span *sp = span_new();
	struct exporter *ex;
	struct exporter_queue *q;
	char path[96], uurl[128], buf[64];

	snprintf(path, sizeof path, "/tmp/ts-export-%d.sock", (int)getpid());
	ck_assert_int_eq(fa_init(&ua, 0, path), 0);
	fa_start(&ua);
	snprintf(uurl, sizeof uurl, "unix://%s", path);
	cfg.exporter.datadog_url = uurl;
	ex = new_exporter();
	q = exporter_queue_new(ex);
	base_span(sp, "GET /u");
	span_finish(sp, sp->start_ns + 10);
	ck_assert(exporter_submit(q, sp));
	exporter_flush(ex);
	ck_assert(fa_wait(&ua, 1, 5000));
	ck_assert_str_eq(ua.reqs[0].target, "/v0.4/traces");
	ck_assert_ptr_null(fa_header(ua.reqs[0].head, "Datadog-Container-ID",
	    buf, sizeof buf));
	exporter_free(ex);
	fa_fini(&ua);
	span_free(sp);
}
END_TEST

/* A str packed by msgpack-c. */
static void
ref_str(msgpack_packer *pk, const char *v)
{
	msgpack_pack_str(pk, strlen(v));
	msgpack_pack_str_body(pk, v, strlen(v));
}

static void
ref_kv(msgpack_packer *pk, const char *k, const char *v)
{
	ref_str(pk, k);
	ref_str(pk, v);
}

/*
 * The reference payload of batches of one span each, packed with
 * msgpack-c's own packer in the order of PROPAGATION.md 11.2: meta as
 * the span has it plus language and runtime-id (the span carries env,
 * version and component), metrics plus _dd.top_level and process_id.
 */
static void
ref_payload(msgpack_sbuffer *sb, const struct span *sp, size_t nspans,
    const char *runtime_id)
{
	msgpack_packer pk;
	size_t i, j;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, nspans);
	for (j = 0; j < nspans; j++) {
		msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, 13);
		ref_str(&pk, "trace_id");
		msgpack_pack_fix_uint64(&pk, sp->trace_id.low + j);
		ref_str(&pk, "span_id");
		msgpack_pack_fix_uint64(&pk, sp->span_id);
		ref_str(&pk, "parent_id");
		msgpack_pack_fix_uint64(&pk, sp->parent_id);
		ref_kv(&pk, "name", sp->name);
		ref_kv(&pk, "resource", sp->resource);
		ref_kv(&pk, "service", sp->service);
		ref_kv(&pk, "type", sp->type);
		ref_str(&pk, "start");
		msgpack_pack_fix_int64(&pk, (int64_t)sp->start_ns);
		ref_str(&pk, "duration");
		msgpack_pack_fix_int64(&pk, (int64_t)sp->duration_ns);
		ref_str(&pk, "error");
		msgpack_pack_int32(&pk, sp->error ? 1 : 0);
		ref_str(&pk, "meta");
		msgpack_pack_map(&pk, sp->n_meta + 2);
		for (i = 0; i < sp->n_meta; i++)
			ref_kv(&pk, sp->meta[i].key, sp->meta[i].value);
		ref_kv(&pk, "language", "c");
		ref_kv(&pk, "runtime-id", runtime_id);
		ref_str(&pk, "metrics");
		msgpack_pack_map(&pk, sp->n_metrics + 2);
		for (i = 0; i < sp->n_metrics; i++) {
			ref_str(&pk, sp->metrics[i].key);
			msgpack_pack_double(&pk, sp->metrics[i].value);
		}
		ref_str(&pk, "_dd.top_level");
		msgpack_pack_double(&pk, 1.0);
		ref_str(&pk, "process_id");
		msgpack_pack_double(&pk, (double)getpid());
		ref_str(&pk, "span_links");
		msgpack_pack_array(&pk, sp->n_links);
		for (i = 0; i < sp->n_links; i++) {
			const struct trace_link *l = &sp->links[i];

			msgpack_pack_map(&pk, 6);
			ref_str(&pk, "trace_id");
			msgpack_pack_fix_uint64(&pk, l->trace_id.low);
			ref_str(&pk, "trace_id_high");
			msgpack_pack_fix_uint64(&pk, l->trace_id.high);
			ref_str(&pk, "span_id");
			msgpack_pack_fix_uint64(&pk, l->span_id);
			ref_str(&pk, "attributes");
			msgpack_pack_map(&pk, 2);
			ref_kv(&pk, "reason", l->reason);
			ref_kv(&pk, "context_headers", l->context_headers);
			ref_kv(&pk, "tracestate", l->tracestate);
			ref_str(&pk, "flags");
			msgpack_pack_uint32(&pk, l->flags | 0x80000000u);
		}
	}
}

/* A value of n bytes 'a'..'z' (static buffer, overwritten per call). */
static const char *
filler(size_t n)
{
	static char b[400];
	size_t i;

	ck_assert_uint_lt(n, sizeof b);
	for (i = 0; i < n; i++)
		b[i] = (char)('a' + i % 26);
	b[n] = '\0';
	return b;
}

/*
 * The payload is byte for byte what msgpack-c packs: every str header
 * size (fixstr, str8, str16 at the 31/32, 255/256 boundaries), map16
 * meta (>= 16 entries), array16 (>= 16 traces), error as fixint, flags
 * as uint32, negative-looking int64 times.
 */
START_TEST(test_wire_bytes)
{
	static const size_t lens[] = { 0, 1, 31, 32, 255, 256, 300 };
	struct span *sp = span_new();
	struct exporter *ex = new_exporter();
	struct exporter_queue *q = exporter_queue_new(ex);
	struct trace_link l;
	msgpack_sbuffer sb;
	msgpack_zone z;
	msgpack_object root;
	const msgpack_object *rid;
	size_t i, off = 0, nspans = (size_t)_i;
	char key[32], runtime_id[64];

	base_span(sp, filler(40));
	sp->trace_id.low = 0xfedcba9876543210ULL;
	sp->parent_id = 3;
	sp->start_ns = 0x8000000000000001ULL;
	sp->error = true;
	ck_assert_int_eq(span_set_meta(sp, "env", "prod"), 0);
	ck_assert_int_eq(span_set_meta(sp, "version", "1.2.3"), 0);
	ck_assert_int_eq(span_set_meta(sp, "component", "tracestitch"), 0);
	for (i = 0; i < TS_NITEMS(lens); i++) {
		snprintf(key, sizeof key, "len.%zu", lens[i]);
		ck_assert_int_eq(span_set_meta(sp, key, filler(lens[i])), 0);
	}
	for (i = 0; i < 8; i++) {
		snprintf(key, sizeof key, "tag.%zu", i);
		ck_assert_int_eq(span_set_meta(sp, key, "v"), 0);
	}
	ck_assert_int_eq(span_set_meta(sp, filler(33), "long key"), 0);
	ck_assert_int_eq(span_set_metric(sp, "upstream.ttfb_ms", 0.125), 0);
	ck_assert_int_eq(span_set_metric(sp, "neg", -2.5), 0);
	memset(&l, 0, sizeof l);
	l.trace_id.high = 1;
	l.trace_id.low = 2;
	l.span_id = 3;
	l.tracestate = "dd=s:1";
	l.has_flags = true;
	l.flags = 1;
	l.reason = "terminated_context";
	l.context_headers = "datadog";
	ck_assert_int_eq(span_add_link(sp, &l), 0);
	sp->has_priority = true;
	sp->priority = 1;
	span_finish(sp, sp->start_ns + 77);
	ck_assert_uint_ge(sp->n_meta, 16);
	for (i = 0; i < nspans; i++) {
		uint64_t low = sp->trace_id.low;

		sp->trace_id.low = low + i;
		ck_assert(exporter_submit(q, sp));
		sp->trace_id.low = low;
	}
	exporter_flush(ex);
	ck_assert(fa_wait(&agent, 1, 5000));
	/* The runtime-id is random: take it from the payload. */
	msgpack_zone_init(&z, 4096);
	ck_assert_int_eq(msgpack_unpack(agent.reqs[0].body,
	    agent.reqs[0].body_len, &off, &z, &root), MSGPACK_UNPACK_SUCCESS);
	ck_assert_uint_eq(root.via.array.size, nspans);
	rid = get(get(&root.via.array.ptr[0].via.array.ptr[0], "meta"),
	    "runtime-id");
	ck_assert_ptr_nonnull(rid);
	ck_assert_uint_lt(rid->via.str.size, sizeof runtime_id);
	memcpy(runtime_id, rid->via.str.ptr, rid->via.str.size);
	runtime_id[rid->via.str.size] = '\0';
	msgpack_zone_destroy(&z);

	msgpack_sbuffer_init(&sb);
	ref_payload(&sb, sp, nspans, runtime_id);
	ck_assert_uint_eq(agent.reqs[0].body_len, sb.size);
	ck_assert(memcmp(agent.reqs[0].body, sb.data, sb.size) == 0);
	msgpack_sbuffer_destroy(&sb);
	exporter_free(ex);
	span_free(sp);
}
END_TEST

static Suite *
export_datadog_suite(void)
{
	Suite *s = suite_create("export_datadog");
	TCase *tc = tcase_create("payload");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_rum_continued);
	tcase_add_test(tc, test_new_128bit);
	tcase_add_test(tc, test_error_span);
	tcase_add_test(tc, test_static_meta);
	tcase_add_test(tc, test_span_link);
	tcase_add_test(tc, test_batch);
	tcase_add_test(tc, test_rates);
	tcase_add_test(tc, test_unix_socket);
	/* 1 and 15 traces: fixarray; 16 and 300: array16. */
	tcase_add_loop_test(tc, test_wire_bytes, 1, 2);
	tcase_add_loop_test(tc, test_wire_bytes, 15, 17);
	tcase_add_loop_test(tc, test_wire_bytes, 300, 301);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(export_datadog_suite)
