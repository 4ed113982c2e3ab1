/*
 * test_propagation_e2e.c -- trace-context propagation of issue #4,
 * through the real binary: headers sent by the client, headers the fake
 * backend received, and the gateway span the stdout exporter wrote.
 *
 * Covered: a RUM request continued in every style (Datadog headers,
 * W3C Trace Context section 3.2 traceparent and 3.3 tracestate, W3C
 * Baggage), translation between datadog / tracecontext / b3 / b3multi,
 * removal of every known tracing header before injection, repeated
 * tracestate and traceparent lines, malformed headers (a new trace, 200,
 * and the diagnostic tag), behavior restart (span link) and ignore with
 * the per-route override, 128-bit trace ids and the environment
 * overrides, and /debug/propagation on the admin listener.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

static struct itest_proc *be, *gw;

/* The RUM header set of docs/propagation.md. */
#define RUM_TRACE_DEC	"5474458728733560230"
#define RUM_TRACE_HEX	"4bf92f3577b34da6"
#define RUM_PARENT_DEC	"67667974448284343"
#define RUM_PARENT_HEX	"00f067aa0ba902b7"
#define RUM_DD								\
	"x-datadog-trace-id: " RUM_TRACE_DEC "\r\n"			\
	"x-datadog-parent-id: " RUM_PARENT_DEC "\r\n"			\
	"x-datadog-origin: rum\r\n"					\
	"x-datadog-sampling-priority: 1\r\n"
#define RUM_W3C								\
	"traceparent: 00-0000000000000000" RUM_TRACE_HEX "-"		\
	RUM_PARENT_HEX "-01\r\n"					\
	"tracestate: dd=s:1;o:rum\r\n"
#define RUM_BAGGAGE	"baggage: session.id=3f1c,user.id=42\r\n"

static const char *const tracing_prefixes[] = {
	"x-datadog-", "traceparent", "tracestate", "baggage", "b3",
	"x-b3-",
};

static void
setup(void)
{
	be = itest_backend_start("one");
}

static void
teardown(void)
{
	itest_teardown();
	be = gw = NULL;
}

/* Config: route "restart" (behavior override) and "api"; extra at top. */
static char *
config(const char *extra)
{
	return itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "admin: {listen: \"127.0.0.1:0\", debug: true}\n"
	    "routes:\n"
	    "  - name: restart\n"
	    "    path_prefix: /restart\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "    propagation: {behavior: restart}\n"
	    "  - name: api\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "%s"
	    "exporter: {type: stdout, flush_interval: 10ms}\n"
	    "logging: {level: info, access_log: stdout}\n",
	    be->port, be->port, extra != NULL ? extra : "");
}

static void
start_env(const char *extra, const char *const *env)
{
	char *yaml = config(extra);

	gw = itest_gateway_start_env(yaml, env);
	free(yaml);
}

static void
start(const char *extra)
{
	start_env(extra, NULL);
}

/* GET path with header lines hdrs; the backend's echo (200 asserted). */
static json_t *
echo(const char *path, const char *hdrs)
{
	struct itest_resp r;
	char *raw;
	json_t *j;

	raw = itest_strf("GET %s HTTP/1.1\r\nHost: itest.test\r\n%s"
	    "Connection: close\r\n\r\n", path, hdrs != NULL ? hdrs : "");
	ck_assert_msg(itest_request(gw->port, raw, strlen(raw), &r, 0,
	    ITEST_TIMEOUT_MS) == 0, "%s", itest_error());
	ck_assert_msg(r.status == 200, "status %d (never an error for trace "
	    "headers): %s\nrequest:\n%s", r.status, r.body, raw);
	j = itest_resp_json(&r);
	itest_resp_clear(&r);
	free(raw);
	return j;
}

static const char *
bh(json_t *j, const char *name)
{
	return itest_echo_header(j, name, 0);
}

/* Headers the backend received whose name starts with prefix. */
static size_t
bh_prefix_count(json_t *j, const char *prefix)
{
	json_t *h = json_object_get(j, "headers"), *pair;
	size_t i, n = 0;

	json_array_foreach(h, i, pair) {
		if (strncasecmp(json_string_value(json_array_get(pair, 0)),
		    prefix, strlen(prefix)) == 0)
			n++;
	}
	return n;
}

/* Exactly one header name at the backend, with this value. */
static void
bh_is(json_t *j, const char *name, const char *value)
{
	ck_assert_msg(itest_echo_header(j, name, 1) == NULL, "two %s headers: "
	    "%s", name, json_string_value(json_object_get(j, "head")));
	ck_assert_msg(bh(j, name) != NULL && strcmp(bh(j, name), value) == 0,
	    "backend %s: %s, expected %s; head:\n%s", name,
	    bh(j, name) != NULL ? bh(j, name) : "(absent)", value,
	    json_string_value(json_object_get(j, "head")));
}

static void
bh_absent(json_t *j, const char *prefix)
{
	ck_assert_msg(bh_prefix_count(j, prefix) == 0, "backend got %s*; "
	    "head:\n%s", prefix, json_string_value(json_object_get(j,
	    "head")));
}

/* The gateway span whose http.url ends with path (waits). */
static json_t *
span_wait(const char *path)
{
	int64_t deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	json_t *arr, *j, *hit = NULL;
	const char *u;
	size_t i;
	char *out;

	for (;;) {
		arr = itest_json_lines(gw, ITEST_STDOUT, "span_id");
		json_array_foreach(arr, i, j) {
			u = json_string_value(json_object_get(json_object_get(
			    j, "meta"), "http.url"));
			if (u != NULL && strlen(u) >= strlen(path) &&
			    strcmp(u + strlen(u) - strlen(path), path) == 0) {
				hit = json_incref(j);
				break;
			}
		}
		json_decref(arr);
		if (hit != NULL)
			return hit;
		if (itest_now_ms() >= deadline) {
			out = itest_log_read(gw, ITEST_STDOUT);
			ck_abort_msg("no span for %s; stdout:\n%s", path, out);
		}
		usleep(10000);
	}
}

static const char *
jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

static const char *
meta(json_t *span, const char *key)
{
	return jstr(json_object_get(span, "meta"), key);
}

/* Parse a traceparent the backend got: 00-<32>-<16>-<2>. */
static void
parse_tp(const char *tp, char trace[33], char parent[17], char flags[3])
{
	ck_assert_msg(tp != NULL && strlen(tp) == 55 && tp[2] == '-' &&
	    tp[35] == '-' && tp[52] == '-' && strncmp(tp, "00", 2) == 0,
	    "bad traceparent %s", tp != NULL ? tp : "(absent)");
	memcpy(trace, tp + 3, 32);
	trace[32] = '\0';
	memcpy(parent, tp + 36, 16);
	parent[16] = '\0';
	memcpy(flags, tp + 53, 2);
	flags[2] = '\0';
	ck_assert_msg(strspn(tp + 3, "0123456789abcdef-") == 52,
	    "traceparent %s not lower-case hex", tp);
}

/* 16 hex digits of a decimal id. */
static void
dec_to_hex(const char *dec, char hex[17])
{
	ck_assert_ptr_nonnull(dec);
	snprintf(hex, 17, "%016" PRIx64, (uint64_t)strtoull(dec, NULL, 10));
}

/* A RUM fetch with the default config: every style continued. */
START_TEST(rum_default_config)
{
	char trace[33], parent[17], flags[3], pid_hex[17], *want;
	json_t *j, *span;
	const char *ts, *tags;

	start(NULL);
	j = echo("/echo/rum", RUM_DD RUM_W3C RUM_BAGGAGE);
	bh_is(j, "x-datadog-trace-id", RUM_TRACE_DEC);
	bh_is(j, "x-datadog-origin", "rum");
	bh_is(j, "x-datadog-sampling-priority", "1");
	ck_assert_msg(strcmp(bh(j, "x-datadog-parent-id"), RUM_PARENT_DEC) !=
	    0, "parent id not replaced");
	dec_to_hex(bh(j, "x-datadog-parent-id"), pid_hex);
	tags = bh(j, "x-datadog-tags");
	ck_assert_msg(tags == NULL || strstr(tags, "_dd.p.tid") == NULL,
	    "a 64-bit RUM trace gained _dd.p.tid: %s", tags);
	parse_tp(bh(j, "traceparent"), trace, parent, flags);
	ck_assert_str_eq(trace, "0000000000000000" RUM_TRACE_HEX);
	ck_assert_str_eq(parent, pid_hex);
	ck_assert_str_eq(flags, "01");
	ts = bh(j, "tracestate");
	want = itest_strf("dd=s:1;p:%s", pid_hex);
	ck_assert_msg(ts != NULL && strncmp(ts, want, strlen(want)) == 0 &&
	    strstr(ts, ";o:rum") != NULL, "tracestate %s, expected %s...;o:rum",
	    ts, want);
	free(want);
	bh_is(j, "baggage", "session.id=3f1c,user.id=42");
	json_decref(j);

	span = span_wait("/echo/rum");
	ck_assert_str_eq(jstr(span, "span_id"), pid_hex);
	ck_assert_str_eq(jstr(span, "parent_id"), RUM_PARENT_HEX);
	ck_assert_str_eq(jstr(span, "trace_id"), "0000000000000000"
	    RUM_TRACE_HEX);
	ck_assert_pstr_eq(meta(span, "_dd.origin"), "rum");
	ck_assert_pstr_eq(meta(span, "baggage.session.id"), "3f1c");
	ck_assert_pstr_eq(meta(span, "baggage.user.id"), "42");
	json_decref(span);
}
END_TEST

/* Translations: each case has its own config and check. */
static void
chk_dd_to_w3c(json_t *j, json_t *span)
{
	char trace[33], parent[17], flags[3], *want;

	bh_absent(j, "x-datadog-");
	bh_absent(j, "baggage");
	parse_tp(bh(j, "traceparent"), trace, parent, flags);
	ck_assert_str_eq(trace, "0000000000000000" RUM_TRACE_HEX);
	ck_assert_str_eq(parent, jstr(span, "span_id"));
	ck_assert_str_eq(flags, "01");
	want = itest_strf("dd=s:1;p:%s;o:rum", parent);
	bh_is(j, "tracestate", want);
	free(want);
}

static void
chk_w3c_to_dd(json_t *j, json_t *span)
{
	char hex[17];

	bh_absent(j, "traceparent");
	bh_absent(j, "tracestate");
	/* Low 64 bits a3ce929d0e0e4736, high half as _dd.p.tid. */
	bh_is(j, "x-datadog-trace-id", "11803532876627986230");
	dec_to_hex(bh(j, "x-datadog-parent-id"), hex);
	ck_assert_str_eq(hex, jstr(span, "span_id"));
	ck_assert_msg(strstr(bh(j, "x-datadog-tags"),
	    "_dd.p.tid=4bf92f3577b34da6") != NULL, "x-datadog-tags %s",
	    bh(j, "x-datadog-tags"));
	bh_is(j, "x-datadog-origin", "rum");
	bh_is(j, "x-datadog-sampling-priority", "2");
	ck_assert_str_eq(jstr(span, "parent_id"), "00f067aa0ba902b7");
	ck_assert_str_eq(jstr(span, "trace_id"),
	    "4bf92f3577b34da6a3ce929d0e0e4736");
}

static void
chk_b3_to_b3multi(json_t *j, json_t *span)
{
	bh_absent(j, "b3");
	bh_is(j, "x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7");
	bh_is(j, "x-b3-spanid", jstr(span, "span_id"));
	bh_is(j, "x-b3-sampled", "1");
	ck_assert_ptr_null(bh(j, "x-b3-flags"));
	ck_assert_str_eq(jstr(span, "parent_id"), "e457b5a2e4d86bd1");
}

static void
chk_b3multi_to_b3(json_t *j, json_t *span)
{
	char *want;

	bh_absent(j, "x-b3-");
	want = itest_strf("463ac35c9f6413ad-%s-0", jstr(span, "span_id"));
	bh_is(j, "b3", want);
	free(want);
	ck_assert_str_eq(jstr(span, "parent_id"), "0020000000000001");
}

static void
chk_dd_to_b3multi(json_t *j, json_t *span)
{
	bh_absent(j, "x-datadog-");
	bh_absent(j, "traceparent");
	bh_is(j, "x-b3-traceid", RUM_TRACE_HEX);
	bh_is(j, "x-b3-spanid", jstr(span, "span_id"));
	bh_is(j, "x-b3-sampled", "1");
}

static void
chk_w3c_to_b3(json_t *j, json_t *span)
{
	char *want;

	want = itest_strf("4bf92f3577b34da6a3ce929d0e0e4736-%s-0",
	    jstr(span, "span_id"));
	bh_is(j, "b3", want);
	free(want);
	bh_absent(j, "traceparent");
}

static const struct {
	const char *name, *cfg, *hdrs;
	void (*check)(json_t *, json_t *);
} translations[] = {
	{ "datadog -> tracecontext",
	    "propagation: {extract: [datadog], inject: [tracecontext]}\n",
	    RUM_DD RUM_BAGGAGE, chk_dd_to_w3c },
	{ "tracecontext -> datadog",
	    "propagation: {extract: [tracecontext], inject: [datadog]}\n",
	    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-"
	    "00f067aa0ba902b7-01\r\ntracestate: dd=s:2;o:rum,rojo=1\r\n",
	    chk_w3c_to_dd },
	{ "b3 -> b3multi",
	    "propagation: {extract: [b3], inject: [b3multi]}\n",
	    "b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1\r\n",
	    chk_b3_to_b3multi },
	{ "b3multi -> b3",
	    "propagation: {extract: [b3multi], inject: [b3]}\n",
	    "X-B3-TraceId: 463ac35c9f6413ad\r\nX-B3-SpanId: 0020000000000001\r\n"
	    "X-B3-Sampled: 0\r\n", chk_b3multi_to_b3 },
	{ "datadog -> b3multi (origin lost)",
	    "propagation: {extract: [datadog], inject: [b3multi]}\n",
	    RUM_DD, chk_dd_to_b3multi },
	{ "tracecontext -> b3 (128-bit, not sampled)",
	    "propagation: {extract: [tracecontext], inject: [b3]}\n",
	    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-"
	    "00f067aa0ba902b7-00\r\n", chk_w3c_to_b3 },
};

START_TEST(translation)
{
	json_t *j, *span;

	start(translations[_i].cfg);
	j = echo("/echo/tr", translations[_i].hdrs);
	span = span_wait("/echo/tr");
	translations[_i].check(j, span);
	json_decref(span);
	json_decref(j);
}
END_TEST

/* Every known tracing header is removed, whatever the styles. */
START_TEST(stale_headers_removed)
{
	static const char stale[] =
	    "x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7\r\n"
	    "X-B3-SpanId: e457b5a2e4d86bd1\r\nx-b3-sampled: 1\r\n"
	    "X-B3-ParentSpanId: 05e3ac9a4f6e3b90\r\nX-B3-Flags: 1\r\n"
	    "b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1\r\n"
	    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-"
	    "b7ad6b7169203331-01\r\ntracestate: congo=t61rcWkgMzE\r\n"
	    "baggage: stale=1\r\nX-Datadog-Tags: _dd.p.dm=-4\r\n"
	    RUM_DD;
	json_t *j;
	size_t i;

	start("propagation: {extract: [datadog], inject: [datadog]}\n");
	j = echo("/echo/stale", stale);
	for (i = 1; i < ITEST_NITEMS(tracing_prefixes); i++)
		bh_absent(j, tracing_prefixes[i]);
	bh_is(j, "x-datadog-trace-id", RUM_TRACE_DEC);
	ck_assert_ptr_null(itest_echo_header(j, "x-datadog-trace-id", 1));
	/* x-datadog-tags is part of the extracted datadog context. */
	ck_assert_msg(bh(j, "x-datadog-tags") != NULL &&
	    strstr(bh(j, "x-datadog-tags"), "_dd.p.dm=-4") != NULL,
	    "x-datadog-tags %s", bh(j, "x-datadog-tags"));
	ck_assert_ptr_null(itest_echo_header(j, "x-datadog-tags", 1));
	ck_assert_str_ne(bh(j, "x-datadog-parent-id"), RUM_PARENT_DEC);
	json_decref(j);
	/* The x-b3-* and x-datadog-* families go whole; others stay. */
	j = echo("/echo/stale2", "X-B3-Custom-Thing: dropped\r\n"
	    "X-Datadog-Whatever: dropped\r\nX-Other: kept\r\n"
	    "x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7\r\n");
	bh_is(j, "X-Other", "kept");
	ck_assert_ptr_null(bh(j, "X-B3-Custom-Thing"));
	ck_assert_ptr_null(bh(j, "X-Datadog-Whatever"));
	ck_assert_ptr_null(bh(j, "x-b3-traceid"));
	json_decref(j);
}
END_TEST

/* Repeated tracestate lines are combined; other vendors after dd. */
START_TEST(tracestate_lines_combined)
{
	char trace[33], parent[17], flags[3], *want;
	json_t *j;

	start(NULL);
	j = echo("/echo/ts", "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-"
	    "00f067aa0ba902b7-01\r\n"
	    "tracestate: rojo=00f067aa0ba902b7, dd=s:1;o:rum\r\n"
	    "tracestate: congo=t61rcWkgMzE,,\r\n");
	parse_tp(bh(j, "traceparent"), trace, parent, flags);
	ck_assert_str_eq(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
	want = itest_strf("dd=s:1;p:%s;o:rum,rojo=00f067aa0ba902b7,"
	    "congo=t61rcWkgMzE", parent);
	bh_is(j, "tracestate", want);
	free(want);
	json_decref(j);
}
END_TEST

/*
 * A tracestate that breaks the W3C grammar (an upper-case key) is dropped
 * whole: the trace continues, only the new dd member goes out.
 */
START_TEST(tracestate_invalid_dropped)
{
	char trace[33], parent[17], flags[3], *want;
	json_t *j;

	start(NULL);
	j = echo("/echo/tsbad",
	    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-"
	    "00f067aa0ba902b7-01\r\n"
	    "tracestate: rojo=00f067aa0ba902b7, dd=s:2;o:rum\r\n"
	    "tracestate: Congo=t61rcWkgMzE\r\n");
	parse_tp(bh(j, "traceparent"), trace, parent, flags);
	ck_assert_str_eq(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
	want = itest_strf("dd=s:1;p:%s", parent);
	bh_is(j, "tracestate", want);
	free(want);
	json_decref(j);
}
END_TEST

/* Two traceparent lines are invalid: datadog wins, or a new trace. */
START_TEST(two_traceparents_invalid)
{
	static const char two[] =
	    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-"
	    "b7ad6b7169203331-01\r\n"
	    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-"
	    "b7ad6b7169203331-01\r\n";
	char trace[33], parent[17], flags[3];
	json_t *j, *span;

	start(NULL);
	j = echo("/echo/two-dd", RUM_DD "traceparent: 00-0af7651916cd43dd8448"
	    "eb211c80319c-b7ad6b7169203331-01\r\n" "traceparent: 00-0af765191"
	    "6cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n");
	bh_is(j, "x-datadog-trace-id", RUM_TRACE_DEC);
	parse_tp(bh(j, "traceparent"), trace, parent, flags);
	ck_assert_str_eq(trace, "0000000000000000" RUM_TRACE_HEX);
	json_decref(j);
	span = span_wait("/echo/two-dd");
	ck_assert_pstr_eq(meta(span, "_dd.w3c_extraction_error"),
	    "malformed_traceparent");
	ck_assert_ptr_null(json_object_get(span, "span_links"));
	json_decref(span);

	j = echo("/echo/two", two);
	parse_tp(bh(j, "traceparent"), trace, parent, flags);
	ck_assert_msg(strstr(trace, "0af7651916cd43dd") == NULL,
	    "two traceparents were continued: %s", trace);
	json_decref(j);
	span = span_wait("/echo/two");
	ck_assert_msg(json_object_get(span, "parent_id") == NULL ||
	    strcmp(jstr(span, "parent_id"), "0000000000000000") == 0 ||
	    strcmp(jstr(span, "parent_id"), "b7ad6b7169203331") != 0,
	    "parent %s", jstr(span, "parent_id"));
	ck_assert_pstr_eq(meta(span, "_dd.w3c_extraction_error"),
	    "malformed_traceparent");
	json_decref(span);
}
END_TEST

/* Malformed headers: a new trace, 200, and the diagnostic tag. */
static const struct {
	const char *name, *hdrs, *tag, *value;
	bool new_trace;
} malformed[] = {
	{ "datadog trace id 0x10", "x-datadog-trace-id: 0x10\r\n"
	    "x-datadog-parent-id: 1\r\n", NULL, NULL, true },
	{ "datadog trace id too large", "x-datadog-trace-id: "
	    "18446744073709551616\r\nx-datadog-parent-id: 1\r\n", NULL, NULL,
	    true },
	{ "upper-case traceparent", "traceparent: 00-4BF92F3577B34DA6A3CE929D0"
	    "E0E4736-00F067AA0BA902B7-01\r\n", "_dd.w3c_extraction_error",
	    "malformed_", true },
	{ "traceparent version ff", "traceparent: ff-4bf92f3577b34da6a3ce929d0"
	    "e0e4736-00f067aa0ba902b7-01\r\n", "_dd.w3c_extraction_error",
	    "invalid_version", true },
	{ "traceparent zero trace id", "traceparent: 00-00000000000000000000000"
	    "000000000-00f067aa0ba902b7-01\r\n", "_dd.w3c_extraction_error",
	    "malformed_traceid", true },
	{ "traceparent zero parent id", "traceparent: 00-4bf92f3577b34da6a3ce9"
	    "29d0e0e4736-0000000000000000-01\r\n", "_dd.w3c_extraction_error",
	    "malformed_parentid", true },
	{ "traceparent trailing data", "traceparent: 00-4bf92f3577b34da6a3ce92"
	    "9d0e0e4736-00f067aa0ba902b7-01-x\r\n", "_dd.w3c_extraction_error",
	    "malformed_traceparent", true },
	{ "garbage baggage", "baggage: no-equal-sign,=x,%zz\r\n", NULL, NULL,
	    true },
	{ "bad _dd.p.tid", RUM_DD "x-datadog-tags: _dd.p.tid=XYZ\r\n",
	    "_dd.propagation_error", "malformed_tid XYZ", false },
	{ "undecodable x-datadog-tags", RUM_DD "x-datadog-tags: garbage\r\n",
	    "_dd.propagation_error", "decoding_error", false },
	{ "bad b3", "b3: zzzz-e457b5a2e4d86bd1-1\r\n", NULL, NULL, true },
};

START_TEST(malformed_headers)
{
	const char *v, *tid;
	json_t *j, *span;
	char path[64];

	start("propagation: {extract: [datadog, tracecontext, b3, baggage]}\n");
	snprintf(path, sizeof path, "/echo/bad%d", _i);
	j = echo(path, malformed[_i].hdrs);
	tid = bh(j, "x-datadog-trace-id");
	ck_assert_ptr_nonnull(tid);
	if (malformed[_i].new_trace)
		ck_assert_msg(strcmp(tid, RUM_TRACE_DEC) != 0 &&
		    strcmp(tid, "16") != 0 && strcmp(tid, "11803532876627986230")
		    != 0, "%s: trace continued (%s)", malformed[_i].name, tid);
	else
		ck_assert_str_eq(tid, RUM_TRACE_DEC);
	if (strstr(malformed[_i].name, "baggage") != NULL)
		bh_absent(j, "baggage");
	json_decref(j);
	span = span_wait(path);
	if (malformed[_i].new_trace)
		ck_assert_msg(json_object_get(span, "parent_id") == NULL ||
		    strspn(jstr(span, "parent_id"), "0") == 16,
		    "%s: parent %s on a new trace", malformed[_i].name,
		    jstr(span, "parent_id"));
	if (malformed[_i].tag != NULL) {
		v = meta(span, malformed[_i].tag);
		ck_assert_msg(v != NULL && strncmp(v, malformed[_i].value,
		    strlen(malformed[_i].value)) == 0, "%s: %s = %s, expected "
		    "%s", malformed[_i].name, malformed[_i].tag,
		    v != NULL ? v : "(absent)", malformed[_i].value);
	}
	json_decref(span);
}
END_TEST

/* The span link of a restart, and its checks. */
static void
assert_restart_link(json_t *span)
{
	json_t *links = json_object_get(span, "span_links"), *l;

	ck_assert_msg(json_array_size(links) == 1, "links: %zu",
	    json_array_size(links));
	l = json_array_get(links, 0);
	ck_assert_str_eq(jstr(l, "trace_id"), "0000000000000000"
	    RUM_TRACE_HEX);
	ck_assert_str_eq(jstr(l, "span_id"), RUM_PARENT_HEX);
	ck_assert_pstr_eq(jstr(json_object_get(l, "attributes"), "reason"),
	    "propagation_behavior_extract");
	ck_assert_pstr_eq(jstr(json_object_get(l, "attributes"),
	    "context_headers"), "datadog");
}

/* Per-route behavior restart: new trace, link, baggage kept. */
START_TEST(behavior_restart_route)
{
	json_t *j, *span;

	start(NULL);
	j = echo("/restart/x", RUM_DD RUM_W3C RUM_BAGGAGE);
	ck_assert_str_ne(bh(j, "x-datadog-trace-id"), RUM_TRACE_DEC);
	ck_assert_ptr_null(bh(j, "x-datadog-origin"));
	bh_is(j, "baggage", "session.id=3f1c,user.id=42");
	json_decref(j);
	span = span_wait("/restart/x");
	ck_assert_msg(strstr(jstr(span, "trace_id"), RUM_TRACE_HEX) == NULL,
	    "restart kept the trace id");
	ck_assert_ptr_null(meta(span, "_dd.origin"));
	assert_restart_link(span);
	json_decref(span);

	/* The other route still continues. */
	j = echo("/echo/cont", RUM_DD);
	bh_is(j, "x-datadog-trace-id", RUM_TRACE_DEC);
	json_decref(j);
}
END_TEST

/* Global restart via the environment; ignore reads nothing. */
START_TEST(behavior_restart_env_and_ignore)
{
	static const char *const env[] = {
		"DD_TRACE_PROPAGATION_BEHAVIOR_EXTRACT=restart", NULL,
	};
	json_t *j, *span;

	start_env(NULL, env);
	j = echo("/echo/envrestart", RUM_DD);
	ck_assert_str_ne(bh(j, "x-datadog-trace-id"), RUM_TRACE_DEC);
	json_decref(j);
	span = span_wait("/echo/envrestart");
	assert_restart_link(span);
	json_decref(span);
	itest_cleanup_all();
	setup();

	start("propagation: {behavior: ignore}\n");
	j = echo("/echo/ignore", RUM_DD RUM_W3C RUM_BAGGAGE);
	ck_assert_str_ne(bh(j, "x-datadog-trace-id"), RUM_TRACE_DEC);
	ck_assert_ptr_null(bh(j, "x-datadog-origin"));
	bh_absent(j, "baggage");
	json_decref(j);
	span = span_wait("/echo/ignore");
	ck_assert_ptr_null(json_object_get(span, "span_links"));
	ck_assert_ptr_null(meta(span, "baggage.user.id"));
	json_decref(span);
	/* The restart route overrides ignore: it links and keeps baggage. */
	j = echo("/restart/y", RUM_DD RUM_BAGGAGE);
	bh_is(j, "baggage", "session.id=3f1c,user.id=42");
	json_decref(j);
	span = span_wait("/restart/y");
	assert_restart_link(span);
	json_decref(span);
}
END_TEST

/* New traces: 128-bit with a unix-seconds prefix; env turns it off. */
START_TEST(new_trace_ids_128bit)
{
	static const char *const env64[] = {
		"DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED=false", NULL,
	};
	char trace[33], parent[17], flags[3], tid[17], secs[9];
	const char *tags, *p;
	unsigned long t;
	json_t *j, *span;
	long now = (long)time(NULL);

	start(NULL);
	j = echo("/echo/new", NULL);
	tags = bh(j, "x-datadog-tags");
	ck_assert_msg(tags != NULL && (p = strstr(tags, "_dd.p.tid=")) !=
	    NULL, "x-datadog-tags %s", tags);
	memcpy(tid, p + 10, 16);
	tid[16] = '\0';
	ck_assert_msg(strspn(tid, "0123456789abcdef") == 16, "tid %s", tid);
	memcpy(secs, tid, 8);
	secs[8] = '\0';
	t = strtoul(secs, NULL, 16);
	ck_assert_msg(labs((long)t - now) < 120, "tid %s: %lu not near %ld",
	    tid, t, now);
	ck_assert_msg(strncmp(tid + 8, "00000000", 8) == 0, "tid %s", tid);
	parse_tp(bh(j, "traceparent"), trace, parent, flags);
	ck_assert_msg(strncmp(trace, tid, 16) == 0, "traceparent %s, tid %s",
	    trace, tid);
	{
		char low[17];

		snprintf(low, sizeof low, "%016" PRIx64, (uint64_t)strtoull(
		    bh(j, "x-datadog-trace-id"), NULL, 10));
		ck_assert_str_eq(trace + 16, low);
	}
	json_decref(j);
	span = span_wait("/echo/new");
	ck_assert_str_eq(jstr(span, "trace_id"), trace);
	json_decref(span);
	itest_cleanup_all();
	setup();

	start_env(NULL, env64);
	j = echo("/echo/new64", NULL);
	tags = bh(j, "x-datadog-tags");
	ck_assert_msg(tags == NULL || strstr(tags, "_dd.p.tid") == NULL,
	    "64-bit: x-datadog-tags %s", tags);
	parse_tp(bh(j, "traceparent"), trace, parent, flags);
	ck_assert_msg(strncmp(trace, "0000000000000000", 16) == 0,
	    "64-bit: traceparent trace %s", trace);
	json_decref(j);
}
END_TEST

/* DD_TRACE_PROPAGATION_STYLE_INJECT=b3 wins over the file. */
START_TEST(env_inject_style)
{
	static const char *const env[] = {
		"DD_TRACE_PROPAGATION_STYLE_INJECT=b3", NULL,
	};
	json_t *j, *span;
	char *want;

	start_env("propagation: {inject: [datadog, tracecontext]}\n", env);
	j = echo("/echo/envb3", RUM_DD);
	bh_absent(j, "x-datadog-");
	bh_absent(j, "traceparent");
	bh_absent(j, "x-b3-");
	span = span_wait("/echo/envb3");
	want = itest_strf("%s-%s-1", RUM_TRACE_HEX, jstr(span, "span_id"));
	bh_is(j, "b3", want);
	free(want);
	json_decref(span);
	json_decref(j);
}
END_TEST

/* The binary reads a style variable with the one parser: blanks too. */
START_TEST(env_style_blank_separated)
{
	static const char *const env[] = {
		"DD_TRACE_PROPAGATION_STYLE_INJECT= B3multi  tracecontext",
		NULL,
	};
	json_t *j;

	start_env("propagation: {inject: [datadog]}\n", env);
	j = echo("/echo/envblank", RUM_DD);
	bh_absent(j, "x-datadog-");
	ck_assert_ptr_nonnull(bh(j, "x-b3-traceid"));
	ck_assert_ptr_nonnull(bh(j, "traceparent"));
	json_decref(j);
}
END_TEST

/*
 * DD_TRACE_SAMPLING_RULES: a new trace whose resource matches a rule
 * with sample_rate 0 is dropped by the user (priority -1, flags 00
 * downstream, _dd.rule_psr 0 on the span); one no rule matches is kept
 * as before; an upstream decision (RUM's priority 1) is never overridden.
 */
START_TEST(env_sampling_rules)
{
	static const char *const env[] = {
		"DD_TRACE_SAMPLING_RULES=[{\"resource\": \"GET /echo/health*\","
		" \"sample_rate\": 0}]", NULL,
	};
	json_t *j, *span, *m;
	const char *tp;

	start_env(NULL, env);
	j = echo("/echo/healthz", NULL);
	bh_is(j, "x-datadog-sampling-priority", "-1");
	tp = bh(j, "traceparent");
	ck_assert_msg(tp != NULL && strlen(tp) == 55 &&
	    strcmp(tp + 53, "00") == 0, "traceparent %s", tp);
	json_decref(j);
	span = span_wait("/echo/healthz");
	m = json_object_get(span, "metrics");
	ck_assert(json_real_value(json_object_get(m, "_sampling_priority_v1"))
	    == -1.0);
	ck_assert(json_real_value(json_object_get(m, "_dd.rule_psr")) == 0.0);
	json_decref(span);

	j = echo("/echo/users", NULL);
	bh_is(j, "x-datadog-sampling-priority", "1");
	json_decref(j);

	j = echo("/echo/health-rum", RUM_DD);
	bh_is(j, "x-datadog-sampling-priority", "1");
	json_decref(j);
}
END_TEST

/* GET /debug/propagation on the admin listener. */
static json_t *
debug_get(const char *path, const char *hdrs, int want_status)
{
	struct itest_resp r;
	char *raw;
	json_t *j = NULL;

	raw = itest_strf("GET %s HTTP/1.1\r\nHost: admin.test\r\n%s"
	    "Connection: close\r\n\r\n", path, hdrs != NULL ? hdrs : "");
	ck_assert_msg(itest_request(gw->admin_port, raw, strlen(raw), &r, 0,
	    ITEST_TIMEOUT_MS) == 0, "%s", itest_error());
	ck_assert_msg(r.status == want_status, "%s: status %d, expected %d: "
	    "%s", path, r.status, want_status, r.body);
	if (want_status == 200)
		j = itest_resp_json(&r);
	itest_resp_clear(&r);
	free(raw);
	return j;
}

START_TEST(debug_propagation)
{
	json_t *j, *ex, *gs, *inj, *pair;
	const char *span_dec = NULL, *n;
	size_t i;
	bool saw_parent = false, saw_tp = false;

	start(NULL);
	j = debug_get("/debug/propagation", RUM_DD RUM_W3C RUM_BAGGAGE, 200);
	ex = json_object_get(j, "extracted");
	ck_assert(json_is_true(json_object_get(ex, "continued")));
	ck_assert_pstr_eq(jstr(ex, "style"), "datadog");
	ck_assert_pstr_eq(jstr(json_object_get(ex, "trace_id"), "low"),
	    RUM_TRACE_DEC);
	ck_assert_pstr_eq(jstr(json_object_get(ex, "parent_id"), "hex"),
	    RUM_PARENT_HEX);
	ck_assert_pstr_eq(jstr(ex, "origin"), "rum");
	gs = json_object_get(j, "gateway_span");
	span_dec = jstr(json_object_get(gs, "span_id"), "dec");
	ck_assert_ptr_nonnull(span_dec);
	ck_assert_pstr_eq(jstr(json_object_get(gs, "parent_id"), "hex"),
	    RUM_PARENT_HEX);
	inj = json_object_get(j, "inject");
	ck_assert(json_is_array(inj));
	json_array_foreach(inj, i, pair) {
		n = json_string_value(json_array_get(pair, 0));
		if (strcmp(n, "x-datadog-parent-id") == 0) {
			ck_assert_str_eq(json_string_value(json_array_get(pair,
			    1)), span_dec);
			saw_parent = true;
		}
		if (strcmp(n, "traceparent") == 0) {
			ck_assert_msg(strstr(json_string_value(json_array_get(
			    pair, 1)), jstr(json_object_get(gs, "span_id"),
			    "hex")) != NULL, "traceparent parent");
			saw_tp = true;
		}
	}
	ck_assert(saw_parent && saw_tp);
	ck_assert_ptr_nonnull(json_object_get(j, "config"));
	json_decref(j);

	/* ?route= applies the override; unknown route 404. */
	j = debug_get("/debug/propagation?route=restart", RUM_DD, 200);
	ck_assert(json_is_true(json_object_get(json_object_get(j,
	    "extracted"), "restart")));
	ck_assert_pstr_eq(jstr(json_object_get(j, "config"), "route"),
	    "restart");
	json_decref(j);
	(void)debug_get("/debug/propagation?route=nope", RUM_DD, 404);

	/* Malformed input is described, not an error. */
	j = debug_get("/debug/propagation", "traceparent: 00-4BF92F3577B34DA6"
	    "A3CE929D0E0E4736-00F067AA0BA902B7-01\r\n", 200);
	ck_assert_ptr_nonnull(jstr(json_object_get(json_object_get(j,
	    "extracted"), "diagnostics"), "_dd.w3c_extraction_error"));
	json_decref(j);
	/* Nothing was proxied or exported. */
	ck_assert_uint_eq(itest_backend_requests(be), 0);
	ck_assert_uint_eq(itest_log_count(gw, ITEST_STDOUT, "\"span_id\"",
	    0), 0);
}
END_TEST

START_TEST(debug_propagation_off)
{
	char *yaml;

	yaml = itest_config_simple(be->port, NULL, NULL);
	gw = itest_gateway_start(yaml);
	free(yaml);
	(void)debug_get("/debug/propagation", RUM_DD, 404);
}
END_TEST

static Suite *
propagation_e2e_suite(void)
{
	Suite *s = suite_create("propagation_e2e");
	TCase *tc = tcase_create("propagation");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, rum_default_config);
	tcase_add_loop_test(tc, translation, 0, ITEST_NITEMS(translations));
	tcase_add_test(tc, stale_headers_removed);
	tcase_add_test(tc, tracestate_lines_combined);
	tcase_add_test(tc, tracestate_invalid_dropped);
	tcase_add_test(tc, two_traceparents_invalid);
	tcase_add_loop_test(tc, malformed_headers, 0, ITEST_NITEMS(malformed));
	tcase_add_test(tc, behavior_restart_route);
	tcase_add_test(tc, behavior_restart_env_and_ignore);
	tcase_add_test(tc, new_trace_ids_128bit);
	tcase_add_test(tc, env_inject_style);
	tcase_add_test(tc, env_style_blank_separated);
	tcase_add_test(tc, env_sampling_rules);
	tcase_add_test(tc, debug_propagation);
	tcase_add_test(tc, debug_propagation_off);
	suite_add_tcase(s, tc);
	return s;
}

ITEST_MAIN(propagation_e2e_suite, true)
