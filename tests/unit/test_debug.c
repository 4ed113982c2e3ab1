/*
 * test_debug.c -- /debug/propagation: the JSON built from RUM headers,
 * diagnostics for malformed headers (table-driven), conflicting ids,
 * route behavior overrides, and the evhttp answer (404 when admin.debug
 * is off, 405, unknown route) over a loopback connection.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <jansson.h>

#include "ts_test.h"
#include "core/config.h"
#include "admin/debug.h"

static char *const no_env[] = { NULL };

static const char debug_yaml[] =
    "admin:\n"
    "  listen: \"127.0.0.1:0\"\n"
    "  debug: %s\n"
    "routes:\n"
    "  - name: api\n"
    "    upstream: {url: \"http://127.0.0.1:9\"}\n"
    "  - name: restarting\n"
    "    path_prefix: /r/\n"
    "    upstream: {url: \"http://127.0.0.1:9\"}\n"
    "    propagation: {behavior: restart}\n"
    "exporter: {type: none}\n";

/* The header set a browser running RUM sends (64-bit trace id). */
static const char *const rum_headers[][2] = {
	{ "Host", "api.example.com" },
	{ "x-datadog-trace-id", "5474458728733560230" },
	{ "x-datadog-parent-id", "67667974448284343" },
	{ "x-datadog-origin", "rum" },
	{ "x-datadog-sampling-priority", "1" },
	{ "traceparent",
	  "00-00000000000000004bf92f3577b34da6-00f067aa0ba902b7-01" },
	{ "tracestate", "dd=s:1;o:rum,vendor=x" },
	{ "baggage", "session.id=abc,user.id=42" },
};

/* Load the test config with admin.debug on or off. */
static struct config *
debug_config(bool on)
{
	struct config *cfg = NULL;
	char *errors = NULL, text[1024];
	int len;

	len = snprintf(text, sizeof text, debug_yaml, on ? "true" : "false");
	if (config_load_string("debug.yaml", text, (size_t)len, no_env, &cfg,
	    &errors) != 0)
		ck_abort_msg("config: %s", errors);
	return cfg;
}

/* Fill th from a name/value table. */
static size_t
debug_headers(const char *const (*src)[2], size_t n, struct trace_header *th)
{
	size_t i;

	for (i = 0; i < n; i++) {
		th[i].name = src[i][0];
		th[i].name_len = strlen(src[i][0]);
		th[i].value = src[i][1];
		th[i].value_len = strlen(src[i][1]);
	}
	return n;
}

/* Node at a dotted path ("a.b.0.c"; numbers index arrays), or NULL. */
static json_t *
jget(json_t *root, const char *path)
{
	char buf[256], *p, *save = NULL;
	json_t *cur = root;

	snprintf(buf, sizeof buf, "%s", path);
	for (p = strtok_r(buf, ".", &save); p != NULL && cur != NULL;
	    p = strtok_r(NULL, ".", &save)) {
		if (json_is_array(cur))
			cur = json_array_get(cur, strtoul(p, NULL, 10));
		else
			cur = json_object_get(cur, p);
	}
	return cur;
}

/* String at a path; fails the test when it is not a string. */
static const char *
jstr(json_t *root, const char *path)
{
	json_t *v = jget(root, path);

	ck_assert_msg(json_is_string(v), "%s is not a string", path);
	return json_string_value(v);
}

/* jget splits at '.', so keys with dots are read with this helper. */
static const char *
jkey(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Value of the injected header name, or NULL. */
static const char *
jinject(json_t *root, const char *name)
{
	json_t *a = json_object_get(root, "inject"), *pair;
	size_t i;

	json_array_foreach(a, i, pair) {
		if (strcmp(json_string_value(json_array_get(pair, 0)),
		    name) == 0)
			return json_string_value(json_array_get(pair, 1));
	}
	return NULL;
}

/* True if the array at path holds the string s. */
static bool
jhas(json_t *root, const char *path, const char *s)
{
	json_t *a = jget(root, path), *v;
	size_t i;

	json_array_foreach(a, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	}
	return false;
}

/* Run debug_propagation_json_route and parse the answer. */
static json_t *
run(const struct config *cfg, const char *route,
    const char *const (*src)[2], size_t n)
{
	struct trace_header th[32];
	const char *errstr = NULL;
	json_error_t jerr;
	json_t *root;
	char *json = NULL;

	n = debug_headers(src, n, th);
	if (debug_propagation_json_route(cfg, route, th, n, &json,
	    &errstr) != 0)
		ck_abort_msg("debug_propagation_json_route: %s", errstr);
	root = json_loads(json, 0, &jerr);
	ck_assert_msg(root != NULL, "bad JSON: %s", jerr.text);
	free(json);
	return root;
}

START_TEST(test_rum_headers)
{
	struct config *cfg = debug_config(true);
	json_t *r = run(cfg, NULL, rum_headers, TS_NITEMS(rum_headers));
	char want[128];
	const char *span_hex, *span_dec;

	ck_assert(json_is_true(jget(r, "extracted.continued")));
	ck_assert_str_eq(jstr(r, "extracted.style"), "datadog");
	ck_assert_str_eq(jstr(r, "extracted.styles.0"), "datadog");
	ck_assert_str_eq(jstr(r, "extracted.styles.1"), "tracecontext");
	ck_assert_str_eq(jstr(r, "extracted.styles.2"), "baggage");
	ck_assert_str_eq(jstr(r, "extracted.trace_id.hex"),
	    "00000000000000004bf92f3577b34da6");
	ck_assert_str_eq(jstr(r, "extracted.trace_id.low"),
	    "5474458728733560230");
	ck_assert_str_eq(jstr(r, "extracted.parent_id.dec"),
	    "67667974448284343");
	ck_assert_str_eq(jstr(r, "extracted.parent_id.hex"),
	    "00f067aa0ba902b7");
	ck_assert_int_eq(json_integer_value(jget(r,
	    "extracted.sampling_priority")), 1);
	ck_assert_str_eq(jstr(r, "extracted.origin"), "rum");
	ck_assert_str_eq(jstr(r, "extracted.tracestate_others"), "vendor=x");
	ck_assert_str_eq(jkey(jget(r, "extracted.baggage"), "session.id"),
	    "abc");
	ck_assert_uint_eq(json_array_size(jget(r, "extracted.links")), 0);
	ck_assert(json_is_null(json_object_get(jget(r,
	    "extracted.diagnostics"), "_dd.propagation_error")));
	ck_assert_uint_eq(json_array_size(jget(r,
	    "extracted.diagnostics.invalid_styles")), 0);
	ck_assert_str_eq(jstr(r, "extracted.by_style.0.result"), "ok");
	ck_assert_str_eq(jstr(r, "extracted.by_style.1.result"), "ok");
	ck_assert_str_eq(jstr(r, "extracted.by_style.2.result"), "ok");

	/* The gateway span: same trace, the browser span as parent. */
	ck_assert_str_eq(jstr(r, "gateway_span.trace_id.low"),
	    "5474458728733560230");
	ck_assert_str_eq(jstr(r, "gateway_span.parent_id.dec"),
	    "67667974448284343");
	span_hex = jstr(r, "gateway_span.span_id.hex");
	span_dec = jstr(r, "gateway_span.span_id.dec");
	ck_assert_str_ne(span_dec, "67667974448284343");
	ck_assert_str_eq(jkey(jget(r, "gateway_span.meta"),
	    "baggage.session.id"), "abc");

	/* Injected: every parent id is the gateway span id. */
	ck_assert_str_eq(jinject(r, "x-datadog-trace-id"),
	    "5474458728733560230");
	ck_assert_str_eq(jinject(r, "x-datadog-parent-id"), span_dec);
	ck_assert_str_eq(jinject(r, "x-datadog-sampling-priority"), "1");
	ck_assert_str_eq(jinject(r, "x-datadog-origin"), "rum");
	snprintf(want, sizeof want,
	    "00-00000000000000004bf92f3577b34da6-%s-01", span_hex);
	ck_assert_str_eq(jinject(r, "traceparent"), want);
	snprintf(want, sizeof want, "p:%s", span_hex);
	ck_assert_ptr_nonnull(strstr(jinject(r, "tracestate"), want));
	ck_assert_ptr_nonnull(strstr(jinject(r, "tracestate"), "o:rum"));
	ck_assert_ptr_nonnull(strstr(jinject(r, "tracestate"), "vendor=x"));
	ck_assert_ptr_nonnull(strstr(jinject(r, "baggage"), "session.id=abc"));

	ck_assert_str_eq(jstr(r, "config.extract.0"), "datadog");
	ck_assert_str_eq(jstr(r, "config.behavior"), "continue");
	ck_assert(json_is_null(jget(r, "config.route")));
	json_decref(r);
	config_unref(cfg);
}
END_TEST

/* Malformed header sets: the diagnostic each one must produce. */
static const struct {
	const char	*name;
	const char	*headers[4][2];
	size_t		 n;
	const char	*invalid;	/* style in invalid_styles, or NULL */
	const char	*w3c_error;	/* _dd.w3c_extraction_error or NULL */
	const char	*prop_error;	/* _dd.propagation_error prefix */
	bool		 continued;
} bad_cases[] = {
	{ "uppercase traceparent",
	  { { "traceparent",
	      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01" } },
	  1, "tracecontext", "malformed_traceid", NULL, false },
	{ "traceparent version ff",
	  { { "traceparent",
	      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" } },
	  1, "tracecontext", "invalid_version", NULL, false },
	{ "datadog hex trace id",
	  { { "x-datadog-trace-id", "0x10" },
	    { "x-datadog-parent-id", "5" } },
	  2, "datadog", NULL, NULL, false },
	{ "bad tid falls back to 64 bits",
	  { { "x-datadog-trace-id", "5474458728733560230" },
	    { "x-datadog-parent-id", "67667974448284343" },
	    { "x-datadog-tags", "_dd.p.tid=XYZ" } },
	  3, NULL, NULL, "malformed_tid", true },
	{ "tags without equal sign",
	  { { "x-datadog-trace-id", "5474458728733560230" },
	    { "x-datadog-parent-id", "67667974448284343" },
	    { "x-datadog-tags", "_dd.p.dm" } },
	  3, NULL, NULL, "decoding_error", true },
	{ "malformed baggage",
	  { { "baggage", "no-equal-sign" } },
	  1, "baggage", NULL, NULL, false },
	{ "bad datadog, good traceparent",
	  { { "x-datadog-trace-id", "-1" },
	    { "x-datadog-parent-id", "1" },
	    { "traceparent",
	      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" } },
	  3, "datadog", NULL, NULL, true },
};

START_TEST(test_malformed)
{
	struct config *cfg = debug_config(true);
	json_t *r, *pe, *notes;

	r = run(cfg, NULL, bad_cases[_i].headers, bad_cases[_i].n);
	ck_assert_msg(json_is_true(jget(r, "extracted.continued")) ==
	    bad_cases[_i].continued, "%s: continued", bad_cases[_i].name);
	if (bad_cases[_i].invalid != NULL)
		ck_assert_msg(jhas(r, "extracted.diagnostics.invalid_styles",
		    bad_cases[_i].invalid), "%s: %s not invalid",
		    bad_cases[_i].name, bad_cases[_i].invalid);
	else
		ck_assert_uint_eq(json_array_size(jget(r,
		    "extracted.diagnostics.invalid_styles")), 0);
	if (bad_cases[_i].w3c_error != NULL)
		ck_assert_str_eq(jkey(jget(r, "extracted.diagnostics"),
		    "_dd.w3c_extraction_error"), bad_cases[_i].w3c_error);
	pe = json_object_get(jget(r, "extracted.diagnostics"),
	    "_dd.propagation_error");
	if (bad_cases[_i].prop_error != NULL) {
		ck_assert_msg(json_is_string(pe), "%s: no propagation error",
		    bad_cases[_i].name);
		ck_assert_msg(strncmp(json_string_value(pe),
		    bad_cases[_i].prop_error,
		    strlen(bad_cases[_i].prop_error)) == 0, "%s: got %s",
		    bad_cases[_i].name, json_string_value(pe));
	} else
		ck_assert(json_is_null(pe));
	notes = jget(r, "extracted.diagnostics.notes");
	ck_assert_msg(json_array_size(notes) > 0, "%s: no notes",
	    bad_cases[_i].name);
	/* A new trace still injects a full context with the span id. */
	ck_assert_str_eq(jinject(r, "x-datadog-parent-id"),
	    jstr(r, "gateway_span.span_id.dec"));
	if (!bad_cases[_i].continued)
		ck_assert(json_is_null(jget(r, "extracted.trace_id")));
	json_decref(r);
	config_unref(cfg);
}
END_TEST

START_TEST(test_conflict_link)
{
	static const char *const h[][2] = {
		{ "x-datadog-trace-id", "5474458728733560230" },
		{ "x-datadog-parent-id", "67667974448284343" },
		{ "traceparent",
		  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
	};
	struct config *cfg = debug_config(true);
	json_t *r = run(cfg, NULL, h, TS_NITEMS(h));

	ck_assert(json_is_true(jget(r, "extracted.continued")));
	ck_assert_str_eq(jstr(r, "extracted.style"), "datadog");
	ck_assert_uint_eq(json_array_size(jget(r, "extracted.styles")), 1);
	ck_assert_uint_eq(json_array_size(jget(r, "extracted.links")), 1);
	ck_assert_str_eq(jstr(r, "extracted.links.0.reason"),
	    "terminated_context");
	ck_assert_str_eq(jstr(r, "extracted.links.0.context_headers"),
	    "tracecontext");
	ck_assert_str_eq(jstr(r, "extracted.links.0.trace_id.hex"),
	    "4bf92f3577b34da6a3ce929d0e0e4736");
	ck_assert_str_eq(jstr(r, "extracted.by_style.1.trace_id.hex"),
	    "4bf92f3577b34da6a3ce929d0e0e4736");
	ck_assert_ptr_nonnull(strstr(jstr(r,
	    "extracted.diagnostics.notes.0"), "another trace id"));
	json_decref(r);
	config_unref(cfg);
}
END_TEST

START_TEST(test_w3c_parent_differs)
{
	static const char *const h[][2] = {
		{ "x-datadog-trace-id", "5474458728733560230" },
		{ "x-datadog-parent-id", "67667974448284343" },
		{ "traceparent",
		  "00-00000000000000004bf92f3577b34da6-1111111111111111-01" },
		{ "tracestate", "dd=s:1;p:00f067aa0ba902b7" },
	};
	struct config *cfg = debug_config(true);
	json_t *r = run(cfg, NULL, h, TS_NITEMS(h));

	ck_assert_str_eq(jstr(r, "extracted.parent_id.hex"),
	    "1111111111111111");
	ck_assert_str_eq(jkey(jget(r, "extracted.diagnostics"),
	    "_dd.parent_id"), "00f067aa0ba902b7");
	ck_assert_str_eq(jkey(jget(r, "gateway_span.meta"), "_dd.parent_id"),
	    "00f067aa0ba902b7");
	json_decref(r);
	config_unref(cfg);
}
END_TEST

START_TEST(test_route_restart)
{
	struct config *cfg = debug_config(true);
	json_t *r = run(cfg, "restarting", rum_headers, TS_NITEMS(rum_headers));
	struct trace_header th[1];
	const char *errstr = NULL;
	char *json = (char *)"x";

	ck_assert(json_is_false(jget(r, "extracted.continued")));
	ck_assert(json_is_true(jget(r, "extracted.restart")));
	ck_assert_str_eq(jstr(r, "config.behavior"), "restart");
	ck_assert_str_eq(jstr(r, "config.route"), "restarting");
	ck_assert_str_ne(jstr(r, "gateway_span.trace_id.low"),
	    "5474458728733560230");
	ck_assert_str_eq(jstr(r, "gateway_span.parent_id.dec"), "0");
	ck_assert_str_eq(jstr(r, "gateway_span.links.0.reason"),
	    "propagation_behavior_extract");
	ck_assert_str_eq(jstr(r, "gateway_span.links.0.span_id.dec"),
	    "67667974448284343");
	/* Baggage survives restart. */
	ck_assert_ptr_nonnull(strstr(jinject(r, "baggage"), "session.id=abc"));
	json_decref(r);

	(void)debug_headers(rum_headers, 1, th);
	ck_assert_int_eq(debug_propagation_json_route(cfg, "nope", th, 1,
	    &json, &errstr), -1);
	ck_assert_ptr_null(json);
	ck_assert_str_eq(errstr, "unknown route");
	/* The plain entry point uses the global behavior. */
	ck_assert_int_eq(debug_propagation_json(cfg, th, 1, &json), 0);
	ck_assert_ptr_nonnull(strstr(json, "\"behavior\": \"continue\""));
	free(json);
	config_unref(cfg);
}
END_TEST

/* Loopback evhttp: server calls debug_propagation_reply. */
struct http_result {
	int		 code;
	char		*body;
	struct event_base *base;
};

static void
server_cb(struct evhttp_request *req, void *arg)
{
	debug_propagation_reply(req, arg);
}

static void
client_cb(struct evhttp_request *req, void *arg)
{
	struct http_result *res = arg;
	struct evbuffer *b;
	size_t len;

	if (req != NULL) {
		res->code = evhttp_request_get_response_code(req);
		b = evhttp_request_get_input_buffer(req);
		len = evbuffer_get_length(b);
		res->body = malloc(len + 1);
		evbuffer_remove(b, res->body, len);
		res->body[len] = '\0';
	}
	event_base_loopexit(res->base, NULL);
}

/* One request to the debug endpoint; returns the status code. */
static int
http_call(const struct config *cfg, enum evhttp_cmd_type cmd,
    const char *uri, const char *const (*h)[2], size_t n, char **body)
{
	struct event_base *base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	struct evhttp_bound_socket *bs;
	struct evhttp_connection *conn;
	struct evhttp_request *req;
	struct http_result res = { 0, NULL, base };
	struct sockaddr_storage ss;
	ev_socklen_t sl = sizeof ss;
	struct timeval guard = { 5, 0 };
	char port[8];
	size_t i;

	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT);
	evhttp_set_gencb(http, server_cb, (void *)cfg);
	bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(bs);
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
	    &sl);
	snprintf(port, sizeof port, "%u",
	    ntohs(((struct sockaddr_in *)&ss)->sin_port));
	conn = evhttp_connection_base_new(base, NULL, "127.0.0.1",
	    (unsigned short)strtoul(port, NULL, 10));
	req = evhttp_request_new(client_cb, &res);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host",
	    "127.0.0.1");
	for (i = 0; i < n; i++)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    h[i][0], h[i][1]);
	ck_assert_int_eq(evhttp_make_request(conn, req, cmd, uri), 0);
	event_base_loopexit(base, &guard);
	event_base_dispatch(base);
	evhttp_connection_free(conn);
	evhttp_free(http);
	event_base_free(base);
	*body = res.body;
	return res.code;
}

START_TEST(test_http)
{
	struct config *off = debug_config(false), *on = debug_config(true);
	char *body = NULL;
	json_t *r;

	ck_assert_int_eq(http_call(off, EVHTTP_REQ_GET, "/debug/propagation",
	    rum_headers + 1, TS_NITEMS(rum_headers) - 1, &body), 404);
	ck_assert_ptr_nonnull(strstr(body, "not_found"));
	free(body);

	ck_assert_int_eq(http_call(on, EVHTTP_REQ_GET, "/debug/propagation",
	    rum_headers + 1, TS_NITEMS(rum_headers) - 1, &body), 200);
	r = json_loads(body, 0, NULL);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(jstr(r, "extracted.trace_id.low"),
	    "5474458728733560230");
	ck_assert_str_eq(jinject(r, "x-datadog-parent-id"),
	    jstr(r, "gateway_span.span_id.dec"));
	json_decref(r);
	free(body);

	ck_assert_int_eq(http_call(on, EVHTTP_REQ_POST,
	    "/debug/propagation?route=restarting", rum_headers + 1,
	    TS_NITEMS(rum_headers) - 1, &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "\"restart\": true"));
	free(body);

	ck_assert_int_eq(http_call(on, EVHTTP_REQ_GET,
	    "/debug/propagation?route=missing", NULL, 0, &body), 404);
	ck_assert_ptr_nonnull(strstr(body, "unknown_route"));
	free(body);

	ck_assert_int_eq(http_call(on, EVHTTP_REQ_PUT, "/debug/propagation",
	    NULL, 0, &body), 405);
	free(body);
	config_unref(off);
	config_unref(on);
}
END_TEST

static Suite *
debug_suite(void)
{
	Suite *s = suite_create("debug");
	TCase *tc;

	tc = tcase_create("json");
	tcase_add_test(tc, test_rum_headers);
	tcase_add_loop_test(tc, test_malformed, 0, TS_NITEMS(bad_cases));
	tcase_add_test(tc, test_conflict_link);
	tcase_add_test(tc, test_w3c_parent_differs);
	tcase_add_test(tc, test_route_restart);
	suite_add_tcase(s, tc);
	tc = tcase_create("http");
	tcase_add_test(tc, test_http);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(debug_suite)
