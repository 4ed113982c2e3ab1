/*
 * test_diagnose.c -- the pure parts of `tracestitch diagnose`: the browser-
 * side evaluation of a preflight answer, the RUM header set, propagator
 * parsing and response parsing; tracestitch's own refusal (its reason,
 * what it did not evaluate), Chromium's console texts and the fixes; and
 * every row of tests/data/cors/origins.tsv asked of the real CORS engine,
 * whose answer diagnose must judge the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cors/cors.h"
#include "cli/diagnose.h"
#include "ts_test.h"

#define ORIGIN "https://app.example.com"

static const char *rum_default[] = { "baggage", "traceparent", "tracestate",
	"x-datadog-origin", "x-datadog-parent-id",
	"x-datadog-sampling-priority", "x-datadog-trace-id" };

/* Evaluate with the default request and the given answer. */
static void
eval(int status, const struct diagnose_header *h, size_t n, bool creds,
    const char *method, struct diagnose_report *r)
{
	struct diagnose_input in;

	memset(&in, 0, sizeof in);
	in.origin = ORIGIN;
	in.method = method;
	in.credentials = creds;
	in.requested = rum_default;
	in.n_requested = TS_NITEMS(rum_default);
	in.status = status;
	in.headers = h;
	in.n_headers = n;
	ck_assert_int_eq(diagnose_evaluate(&in, r), 0);
}

/* A verdict by name. */
static const struct diagnose_verdict *
verdict(const struct diagnose_report *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->n_headers; i++) {
		if (strcmp(r->headers[i].name, name) == 0)
			return &r->headers[i];
	}
	ck_abort_msg("no verdict for %s", name);
	return NULL;
}

START_TEST(test_all_allowed)
{
	const struct diagnose_header h[] = {
		{ "access-control-allow-origin", ORIGIN },
		{ "Access-Control-Allow-Methods", "GET, POST" },
		{ "Access-Control-Allow-Headers", "Content-Type, X-Datadog-"
		  "Trace-Id, x-datadog-parent-id, x-datadog-origin, "
		  "x-datadog-sampling-priority, traceparent, tracestate, "
		  "baggage" },
		{ "Access-Control-Max-Age", "600" },
		{ "Vary", "Origin, Access-Control-Request-Method" },
	};
	struct diagnose_report r;

	eval(204, h, TS_NITEMS(h), false, "GET", &r);
	ck_assert(r.status_ok && r.origin_ok && r.method_ok);
	ck_assert_uint_eq(r.n_refused, 0);
	ck_assert(r.vary_has_origin);
	ck_assert(r.has_max_age);
	ck_assert_uint_eq(r.max_age, 600);
	ck_assert_uint_eq(r.n_warnings, 0);
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_OK);
	ck_assert(strncmp(r.verdict, "OK:", 3) == 0);
	ck_assert(verdict(&r, "traceparent")->tracing);
}
END_TEST

START_TEST(test_header_refused)
{
	const struct diagnose_header h[] = {
		{ "Access-Control-Allow-Origin", ORIGIN },
		{ "Access-Control-Allow-Headers", "x-datadog-trace-id, "
		  "x-datadog-parent-id, x-datadog-origin, "
		  "x-datadog-sampling-priority, traceparent" },
		{ "Vary", "Origin" },
		{ "Access-Control-Max-Age", "60" },
	};
	struct diagnose_report r;

	eval(204, h, TS_NITEMS(h), false, "GET", &r);
	ck_assert(r.origin_ok);
	ck_assert_uint_eq(r.n_refused, 2);
	ck_assert_uint_eq(r.n_tracing_refused, 2);
	ck_assert_int_eq(verdict(&r, "tracestate")->state, DIAGNOSE_REFUSED);
	ck_assert_int_eq(verdict(&r, "baggage")->state, DIAGNOSE_REFUSED);
	ck_assert_int_eq(verdict(&r, "x-datadog-trace-id")->state,
	    DIAGNOSE_ALLOWED);
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_REFUSED);
	ck_assert_msg(strstr(r.verdict, "baggage, tracestate") != NULL,
	    "%s", r.verdict);
}
END_TEST

START_TEST(test_origin_cases)
{
	struct diagnose_header h[] = {
		{ "Access-Control-Allow-Origin", "*" },
		{ "Access-Control-Allow-Headers", "*" },
		{ "Access-Control-Allow-Credentials", "true" },
		{ "Access-Control-Max-Age", "5" },
	};
	struct diagnose_header two[] = {
		{ "Access-Control-Allow-Origin", ORIGIN },
		{ "Access-Control-Allow-Origin", ORIGIN },
		{ "Access-Control-Allow-Headers", "*" },
	};
	struct diagnose_report r;

	/* "*" with a non-credentialed request: passes, with a warning. */
	eval(200, h, TS_NITEMS(h), false, "GET", &r);
	ck_assert(r.origin_ok);
	ck_assert_uint_eq(r.n_refused, 0);
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_OK);
	ck_assert_uint_ge(r.n_warnings, 1);
	ck_assert(strstr(r.warnings[0], "credential") != NULL);

	/* credentialed: "*" origin and "*" headers are literal. */
	eval(200, h, TS_NITEMS(h), true, "GET", &r);
	ck_assert(!r.origin_ok);
	ck_assert(strstr(r.origin_note, "credentialed") != NULL);
	ck_assert_uint_eq(r.n_refused, TS_NITEMS(rum_default));
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_REFUSED);

	/* another origin, case difference, absent, duplicated */
	h[0].value = "https://www.example.com";
	eval(200, h, TS_NITEMS(h), false, "GET", &r);
	ck_assert(!r.origin_ok);
	ck_assert(strstr(r.verdict, "another origin") != NULL);
	h[0].value = "https://APP.example.com";
	eval(200, h, TS_NITEMS(h), false, "GET", &r);
	ck_assert(!r.origin_ok);
	ck_assert(strstr(r.origin_note, "case") != NULL);
	eval(200, h + 1, TS_NITEMS(h) - 1, false, "GET", &r);
	ck_assert(!r.origin_ok);
	ck_assert_ptr_null(r.acao);
	eval(200, two, TS_NITEMS(two), false, "GET", &r);
	ck_assert(!r.origin_ok);
	ck_assert(strstr(r.origin_note, "several") != NULL);
	/* echoed origin without Vary: Origin warns */
	ck_assert(!r.vary_has_origin);
	ck_assert_uint_ge(r.n_warnings, 1);
}
END_TEST

START_TEST(test_credentials_and_methods)
{
	const struct diagnose_header h[] = {
		{ "Access-Control-Allow-Origin", ORIGIN },
		{ "Access-Control-Allow-Methods", "GET, PUT, patch" },
		{ "Access-Control-Allow-Headers", "baggage, traceparent, "
		  "tracestate, x-datadog-origin, x-datadog-parent-id, "
		  "x-datadog-sampling-priority, x-datadog-trace-id" },
		{ "Access-Control-Max-Age", "600" },
		{ "Vary", "Origin" },
	};
	struct diagnose_report r;

	eval(204, h, TS_NITEMS(h), true, "GET", &r);
	ck_assert(r.origin_ok);
	ck_assert(!r.credentials_ok);
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_REFUSED);
	ck_assert(strstr(r.verdict, "Credentials") != NULL);

	eval(204, h, TS_NITEMS(h), false, "PUT", &r);
	ck_assert(r.method_ok);
	eval(204, h, TS_NITEMS(h), false, "POST", &r);	/* safelisted */
	ck_assert(r.method_ok);
	eval(204, h, TS_NITEMS(h), false, "PATCH", &r);	/* case-sensitive */
	ck_assert(!r.method_ok);
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_REFUSED);
	ck_assert(strstr(r.verdict, "method PATCH") != NULL);
	eval(204, h, TS_NITEMS(h), false, "DELETE", &r);
	ck_assert(!r.method_ok);
}
END_TEST

START_TEST(test_status)
{
	const struct diagnose_header h[] = {
		{ "Access-Control-Allow-Origin", ORIGIN },
		{ "Access-Control-Allow-Headers", "*" },
	};
	struct diagnose_report r;

	eval(403, h, TS_NITEMS(h), false, "GET", &r);
	ck_assert(!r.status_ok);
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_REFUSED);
	ck_assert(strstr(r.verdict, "403") != NULL);
	eval(404, NULL, 0, false, "GET", &r);
	ck_assert_uint_eq(r.n_refused, TS_NITEMS(rum_default));
}
END_TEST

START_TEST(test_against_engine)
{
	const char *origins[] = { ORIGIN, NULL };
	const char *methods[] = { "GET", "PUT", NULL };
	const char *headers[] = { "Content-Type", NULL };
	const char *none[] = { NULL };
	const enum config_style styles[] = { CONFIG_STYLE_DATADOG,
		CONFIG_STYLE_TRACECONTEXT, CONFIG_STYLE_BAGGAGE };
	struct diagnose_header h[CORS_MAX_HEADERS];
	struct diagnose_input in;
	struct diagnose_report r;
	struct config_cors cc;
	struct cors_policy *p;
	struct cors_answer a;
	char **names;
	char acrh[512] = "";
	size_t i, n;

	memset(&cc, 0, sizeof cc);
	cc.allowed_origins.v = (char **)origins;
	cc.allowed_origins.n = 1;
	cc.allowed_methods.v = (char **)methods;
	cc.allowed_methods.n = 2;
	cc.allowed_headers.v = (char **)headers;
	cc.allowed_headers.n = 1;
	cc.exposed_headers.v = (char **)none;
	cc.max_age = 600;
	p = cors_policy_new(&cc, styles, 3, NULL, NULL);
	ck_assert_ptr_nonnull(p);

	diagnose_rum_headers(styles, 3, NULL, 0, &names, &n);
	for (i = 0; i < n; i++) {
		strcat(acrh, i ? "," : "");
		strcat(acrh, names[i]);
	}
	ck_assert_int_eq(cors_preflight(p, ORIGIN, strlen(ORIGIN), "PUT", 3,
	    acrh, strlen(acrh), false, &a), 0);
	ck_assert_int_eq(a.result, CORS_ALLOWED);
	for (i = 0; i < a.n_headers; i++) {
		h[i].name = a.headers[i].name;
		h[i].value = a.headers[i].value;
	}
	memset(&in, 0, sizeof in);
	in.origin = ORIGIN;
	in.method = "PUT";
	in.requested = (const char *const *)names;
	in.n_requested = n;
	in.status = 204;
	in.headers = h;
	in.n_headers = a.n_headers;
	ck_assert_int_eq(diagnose_evaluate(&in, &r), 0);
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_OK);
	ck_assert_uint_eq(r.n_warnings, 0);
	diagnose_strv_free(names, n);
	cors_policy_free(p);
}
END_TEST

START_TEST(test_rum_headers)
{
	const enum config_style st[] = { CONFIG_STYLE_TRACECONTEXT,
		CONFIG_STYLE_DATADOG, CONFIG_STYLE_BAGGAGE,
		CONFIG_STYLE_DATADOG };
	const enum config_style b3[] = { CONFIG_STYLE_B3MULTI,
		CONFIG_STYLE_B3 };
	const char *extra[] = { "Content-Type", "TRACEPARENT" };
	char **names;
	size_t i, n;

	diagnose_rum_headers(st, TS_NITEMS(st), extra, 2, &names, &n);
	ck_assert_uint_eq(n, TS_NITEMS(rum_default) + 1);
	ck_assert_str_eq(names[0], "baggage");
	ck_assert_str_eq(names[1], "content-type");
	for (i = 1; i < TS_NITEMS(rum_default); i++)
		ck_assert_str_eq(names[i + 1], rum_default[i]);
	diagnose_strv_free(names, n);

	diagnose_rum_headers(b3, 2, NULL, 0, &names, &n);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(names[0], "b3");
	ck_assert_str_eq(names[1], "x-b3-sampled");
	ck_assert_str_eq(names[2], "x-b3-spanid");
	ck_assert_str_eq(names[3], "x-b3-traceid");
	diagnose_strv_free(names, n);
}
END_TEST

START_TEST(test_parse_styles)
{
	enum config_style st[CONFIG_MAX_STYLES];
	const char *errstr;
	size_t n;

	ck_assert_int_eq(diagnose_parse_styles("datadog,tracecontext, b3multi",
	    st, TS_NITEMS(st), &n, &errstr), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(st[0], CONFIG_STYLE_DATADOG);
	ck_assert_int_eq(st[2], CONFIG_STYLE_B3MULTI);
	ck_assert_int_eq(diagnose_parse_styles("B3", st, TS_NITEMS(st), &n,
	    &errstr), 0);
	ck_assert_int_eq(st[0], CONFIG_STYLE_B3);
	ck_assert_int_eq(diagnose_parse_styles("datadog,zipkin", st,
	    TS_NITEMS(st), &n, &errstr), -1);
	ck_assert_msg(strstr(errstr, "zipkin") != NULL, "%s", errstr);
	/* The configuration's parser: blanks separate, a repeat is refused,
	 * "none" lists nothing. */
	ck_assert_int_eq(diagnose_parse_styles("datadog tracecontext", st,
	    TS_NITEMS(st), &n, &errstr), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(diagnose_parse_styles("datadog,Datadog", st,
	    TS_NITEMS(st), &n, &errstr), -1);
	ck_assert_int_eq(diagnose_parse_styles("none", st, TS_NITEMS(st), &n,
	    &errstr), -1);
	ck_assert_int_eq(diagnose_parse_styles(" , ", st, TS_NITEMS(st), &n,
	    &errstr), -1);
	ck_assert_int_eq(diagnose_parse_styles("b3,b3", st, 1, &n, &errstr),
	    -1);
}
END_TEST

START_TEST(test_parse_response)
{
	char ok[] = "HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 204 No Content\r\n"
	    "Access-Control-Allow-Origin:  https://a.test \r\n"
	    "Vary:Origin\r\n"
	    "Empty:\r\n\r\n";
	char bad1[] = "HTTP/1.1 20 X\r\n\r\n";
	char bad2[] = "HTTP/1.1 204 X\r\nNoColon\r\n\r\n";
	char bad3[] = "HTTP/1.1 204 X\r\nA: b\r\n";
	char bad4[] = "SSH-2.0-OpenSSH_9.2\r\n";
	struct diagnose_header h[4];
	const char *errstr;
	size_t n, boff, blen;
	int status;

	ck_assert_int_eq(diagnose_parse_response(ok, strlen(ok), &status, h,
	    4, &n, &boff, &blen, &errstr), 0);
	ck_assert_int_eq(status, 204);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(h[0].name, "Access-Control-Allow-Origin");
	ck_assert_str_eq(h[0].value, "https://a.test");
	ck_assert_str_eq(h[1].value, "Origin");
	ck_assert_str_eq(h[2].value, "");
	ck_assert_int_eq(diagnose_parse_response(bad1, strlen(bad1), &status,
	    h, 4, &n, &boff, &blen, &errstr), -1);
	ck_assert_int_eq(diagnose_parse_response(bad2, strlen(bad2), &status,
	    h, 4, &n, &boff, &blen, &errstr), -1);
	ck_assert_int_eq(diagnose_parse_response(bad3, strlen(bad3), &status,
	    h, 4, &n, &boff, &blen, &errstr), -1);
	ck_assert_int_eq(diagnose_parse_response(bad4, strlen(bad4), &status,
	    h, 4, &n, &boff, &blen, &errstr), -1);
}
END_TEST

START_TEST(test_usage_errors)
{
	char *a1[] = { "diagnose", NULL };
	char *a2[] = { "diagnose", "--origin", ORIGIN, "--url", "ftp://x/",
		NULL };
	char *a3[] = { "diagnose", "--origin", ORIGIN, "--url",
		"http://127.0.0.1:1/", "--propagators", "zipkin", NULL };
	char *a4[] = { "diagnose", "--origin", ORIGIN, "--url",
		"http://user@127.0.0.1/", NULL };
	FILE *saved = stderr;

	stderr = fopen("/dev/null", "w");
	ck_assert_int_eq(diagnose_main(1, a1), DIAGNOSE_EXIT_ERROR);
	ck_assert_int_eq(diagnose_main(5, a2), DIAGNOSE_EXIT_ERROR);
	ck_assert_int_eq(diagnose_main(7, a3), DIAGNOSE_EXIT_ERROR);
	ck_assert_int_eq(diagnose_main(5, a4), DIAGNOSE_EXIT_ERROR);
	fclose(stderr);
	stderr = saved;
}
END_TEST

/* ---- tracestitch's own refusal ---------------------------------------- */

/*
 * The answer the gateway writes for a preflight (proxy.c proxy_cors): 204
 * with the answer's headers, or 403 with cors_refusal_json() as the body
 * and the answer's headers (Vary only).  Fills h (up to CORS_MAX_HEADERS
 * + 1), the body buffer and the input's status/headers/body.
 */
static void
gateway_answer(const struct cors_answer *a, struct diagnose_header *h,
    char *body, size_t body_size, struct diagnose_input *in)
{
	size_t i;

	for (i = 0; i < a->n_headers; i++) {
		h[i].name = a->headers[i].name;
		h[i].value = a->headers[i].value;
	}
	h[i].name = "Content-Type";
	h[i].value = "application/json";
	in->headers = h;
	in->n_headers = a->n_headers;
	in->body = NULL;
	in->body_len = 0;
	if (a->result == CORS_ALLOWED) {
		in->status = 204;
		return;
	}
	in->status = 403;
	in->n_headers++;
	ck_assert_uint_lt(cors_refusal_json(a, body, body_size), body_size);
	in->body = body;
	in->body_len = strlen(body);
}

/* A policy of one origin pattern; NULL when the engine refuses it. */
static struct cors_policy *
one_origin_policy(const char *pattern, bool credentials,
    const char *extra_header)
{
	const char *origins[] = { pattern, NULL };
	const char *methods[] = { "GET", "PUT", NULL };
	const char *headers[] = { "Content-Type", extra_header, NULL };
	const char *none[] = { NULL };
	const enum config_style styles[] = { CONFIG_STYLE_DATADOG,
		CONFIG_STYLE_TRACECONTEXT, CONFIG_STYLE_BAGGAGE };
	struct config_cors cc;

	memset(&cc, 0, sizeof cc);
	cc.allowed_origins.v = (char **)origins;
	cc.allowed_origins.n = 1;
	cc.allowed_methods.v = (char **)methods;
	cc.allowed_methods.n = 2;
	cc.allowed_headers.v = (char **)headers;
	cc.allowed_headers.n = extra_header != NULL ? 2 : 1;
	cc.exposed_headers.v = (char **)none;
	cc.allow_credentials = credentials;
	cc.max_age = 600;
	cc.on_disallowed = CONFIG_CORS_REJECT;
	return cors_policy_new(&cc, styles, 3, NULL, NULL);
}

/* ACRH as diagnose sends it: the names joined with ",". */
static void
join_names(char *const *names, size_t n, char *buf, size_t size)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		ck_assert_uint_lt(strlen(buf) + strlen(names[i]) + 2, size);
		strcat(buf, i ? "," : "");
		strcat(buf, names[i]);
	}
}

/*
 * Ask the gateway's engine (cors_preflight) and evaluate its answer with
 * diagnose; returns the engine's result.
 */
static enum cors_result
ask_gateway(const struct cors_policy *p, const char *origin, size_t len,
    const char *method, const char *const *extra, size_t n_extra,
    bool credentials, struct cors_answer *a, struct diagnose_report *r)
{
	static const enum config_style styles[] = { CONFIG_STYLE_DATADOG,
		CONFIG_STYLE_TRACECONTEXT, CONFIG_STYLE_BAGGAGE };
	static struct diagnose_header h[CORS_MAX_HEADERS + 1];
	static char body[1024], acrh[1024], **names;
	static size_t n;
	struct diagnose_input in;

	if (names != NULL)
		diagnose_strv_free(names, n);
	diagnose_rum_headers(styles, 3, extra, n_extra, &names, &n);
	join_names(names, n, acrh, sizeof acrh);
	ck_assert_int_eq(cors_preflight(p, origin, len, method,
	    strlen(method), acrh, strlen(acrh), false, a), 0);
	memset(&in, 0, sizeof in);
	in.url = "https://api.example.com/v1/items";
	in.origin = origin;
	in.method = method;
	in.credentials = credentials;
	in.requested = (const char *const *)names;
	in.n_requested = n;
	in.styles = styles;
	in.n_styles = 3;
	gateway_answer(a, h, body, sizeof body, &in);
	ck_assert_int_eq(diagnose_evaluate(&in, r), 0);
	return a->result;
}

START_TEST(test_gateway_header_refused)
{
	const char *extra[] = { "x-custom-thing" };
	struct cors_policy *p = one_origin_policy(ORIGIN, false, NULL);
	struct cors_answer a;
	struct diagnose_report r;
	const struct diagnose_finding *f;
	size_t i;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(ask_gateway(p, ORIGIN, strlen(ORIGIN), "GET", extra,
	    1, false, &a, &r), CORS_REFUSED);
	/* The gateway's own reason, not a guess. */
	ck_assert(r.gateway);
	ck_assert_str_eq(r.gateway_kind, "header");
	ck_assert_str_eq(r.gateway_reason,
	    "header x-custom-thing is not allowed");
	ck_assert_str_eq(r.gateway_header, "x-custom-thing");
	/* Origin and method passed; the names sent before it too. */
	ck_assert_int_eq(r.origin_state, DIAGNOSE_ALLOWED);
	ck_assert_int_eq(r.method_state, DIAGNOSE_ALLOWED);
	ck_assert_uint_eq(r.n_headers, 8);
	/* baggage, traceparent, tracestate */
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(r.headers[i].state, DIAGNOSE_ALLOWED);
	ck_assert_str_eq(r.headers[3].name, "x-custom-thing");
	ck_assert_int_eq(r.headers[3].state, DIAGNOSE_REFUSED);
	for (i = 4; i < 8; i++)		/* x-datadog-*: never judged */
		ck_assert_int_eq(r.headers[i].state, DIAGNOSE_NOT_EVALUATED);
	ck_assert_uint_eq(r.n_refused, 1);
	ck_assert_uint_eq(r.n_tracing_refused, 0);
	ck_assert_uint_eq(r.n_not_evaluated, 4);
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_REFUSED);
	ck_assert_msg(strstr(r.verdict, "header x-custom-thing is not "
	    "allowed") != NULL && strstr(r.verdict, "4 items were not "
	    "evaluated") != NULL, "%s", r.verdict);
	/* A 403 without ACAO: Chromium reports the missing header. */
	ck_assert_str_eq(r.console, "Access to fetch at "
	    "'https://api.example.com/v1/items' from origin '" ORIGIN "' has "
	    "been blocked by CORS policy: Response to preflight request "
	    "doesn't pass access control check: No 'Access-Control-Allow-"
	    "Origin' header is present on the requested resource. If an "
	    "opaque response serves your needs, set the request's mode to "
	    "'no-cors' to fetch the resource with CORS disabled.");
	ck_assert_uint_eq(r.n_findings, 1);
	f = &r.findings[0];
	ck_assert_str_eq(f->header, "tracestitch");
	ck_assert_str_eq(f->fix_tracestitch,
	    "cors.allowed_headers: [..., x-custom-thing]");
	ck_assert_str_eq(f->fix_nginx, "");
	cors_policy_free(p);

	/* With the header allowed the same request passes. */
	p = one_origin_policy(ORIGIN, false, "X-Custom-Thing");
	ck_assert_int_eq(ask_gateway(p, ORIGIN, strlen(ORIGIN), "GET", extra,
	    1, false, &a, &r), CORS_ALLOWED);
	ck_assert(!r.gateway);
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_OK);
	ck_assert_str_eq(r.console, "");
	ck_assert_uint_eq(r.n_findings, 0);
	cors_policy_free(p);
}
END_TEST

START_TEST(test_gateway_origin_method_tracing)
{
	const char *b3[] = { "b3" };
	struct cors_policy *p = one_origin_policy(ORIGIN, false, NULL);
	struct cors_answer a;
	struct diagnose_report r;
	size_t i;

	/* Origin refused: nothing after it was judged. */
	ck_assert_int_eq(ask_gateway(p, "https://evil.com", 16, "GET", NULL,
	    0, false, &a, &r), CORS_REFUSED);
	ck_assert(r.gateway);
	ck_assert_str_eq(r.gateway_reason,
	    "origin https://evil.com is not allowed");
	ck_assert_int_eq(r.origin_state, DIAGNOSE_REFUSED);
	ck_assert_int_eq(r.method_state, DIAGNOSE_NOT_EVALUATED);
	for (i = 0; i < r.n_headers; i++)
		ck_assert_int_eq(r.headers[i].state, DIAGNOSE_NOT_EVALUATED);
	ck_assert_uint_eq(r.n_refused, 0);
	ck_assert_uint_eq(r.n_not_evaluated, 1 + 7);
	ck_assert_str_eq(r.findings[0].fix_tracestitch,
	    "cors.allowed_origins: [..., \"https://evil.com\"]");

	/* Method refused: the headers were not judged. */
	ck_assert_int_eq(ask_gateway(p, ORIGIN, strlen(ORIGIN), "PURGE", NULL,
	    0, false, &a, &r), CORS_REFUSED);
	ck_assert_str_eq(r.gateway_reason, "method PURGE is not allowed");
	ck_assert_int_eq(r.origin_state, DIAGNOSE_ALLOWED);
	ck_assert_int_eq(r.method_state, DIAGNOSE_REFUSED);
	ck_assert_uint_eq(r.n_not_evaluated, 7);
	ck_assert_str_eq(r.findings[0].fix_tracestitch,
	    "cors.allowed_methods: [..., PURGE]");

	/* A tracing header of a style the gateway lacks: add the style. */
	ck_assert_int_eq(ask_gateway(p, ORIGIN, strlen(ORIGIN), "GET", b3, 1,
	    false, &a, &r), CORS_REFUSED);
	ck_assert_str_eq(r.gateway_reason, "header b3 is not allowed");
	/* "b3" sorts first: refused at once, the 7 others never judged */
	ck_assert_str_eq(r.headers[0].name, "b3");
	ck_assert_int_eq(r.headers[0].state, DIAGNOSE_REFUSED);
	ck_assert(r.headers[0].tracing);
	ck_assert_int_eq(r.headers[1].state, DIAGNOSE_NOT_EVALUATED);
	ck_assert_uint_eq(r.n_tracing_refused, 1);
	ck_assert_uint_eq(r.n_not_evaluated, 7);
	ck_assert_msg(strncmp(r.findings[0].fix_tracestitch,
	    "propagation.extract: [..., b3]", 30) == 0, "%s",
	    r.findings[0].fix_tracestitch);
	cors_policy_free(p);
}
END_TEST

START_TEST(test_other_403_not_gateway)
{
	/* A 403 with a JSON reason that is not tracestitch's body. */
	static const char body[] = "{\"reason\":\"header x-custom-thing is "
	    "not allowed\"}";
	struct diagnose_header h[] = {
		{ "Content-Type", "application/json" },
	};
	struct diagnose_input in;
	struct diagnose_report r;

	memset(&in, 0, sizeof in);
	in.url = "https://api.example.com";
	in.origin = ORIGIN;
	in.method = "GET";
	in.requested = rum_default;
	in.n_requested = TS_NITEMS(rum_default);
	in.status = 403;
	in.headers = h;
	in.n_headers = 1;
	in.body = body;
	in.body_len = strlen(body);
	ck_assert_int_eq(diagnose_evaluate(&in, &r), 0);
	ck_assert(!r.gateway);
	ck_assert_uint_eq(r.n_not_evaluated, 0);
	/* Chromium serializes the empty path as "/". */
	ck_assert_msg(strncmp(r.console, "Access to fetch at "
	    "'https://api.example.com/' from", 49) == 0, "%s", r.console);
}
END_TEST

/* ---- what Chromium prints, and the fixes ------------------------------ */

static const struct {
	int status;
	const char *acao;
	const char *acao2;	/* a second ACAO line, or NULL */
	const char *acac;
	const char *acam;
	const char *acah;
	bool creds;
	const char *method;
	const char *console;	/* after "...blocked by CORS policy: " */
	const char *header;	/* the first finding's header, or NULL */
	const char *nginx;	/* its nginx fix, or NULL */
} console_rows[] = {
	{ 404, NULL, NULL, NULL, NULL, NULL, false, "GET",
	  "Response to preflight request doesn't pass access control check: "
	  "No 'Access-Control-Allow-Origin' header is present on the "
	  "requested resource. If an opaque response serves your needs, set "
	  "the request's mode to 'no-cors' to fetch the resource with CORS "
	  "disabled.", "Access-Control-Allow-Origin",
	  "add_header Access-Control-Allow-Origin \"" ORIGIN "\" always;" },
	{ 204, "*", NULL, "true", NULL, "*", true, "GET",
	  "Response to preflight request doesn't pass access control check: "
	  "The value of the 'Access-Control-Allow-Origin' header in the "
	  "response must not be the wildcard '*' when the request's "
	  "credentials mode is 'include'.", "Access-Control-Allow-Origin",
	  "add_header Access-Control-Allow-Origin \"" ORIGIN "\" always;" },
	{ 204, ORIGIN, ORIGIN, NULL, NULL, "*", false, "GET",
	  "Response to preflight request doesn't pass access control check: "
	  "The 'Access-Control-Allow-Origin' header contains multiple values "
	  "'" ORIGIN ", " ORIGIN "', but only one is allowed. Have the "
	  "server send the header with a valid value, or, if an opaque "
	  "response serves your needs, set the request's mode to 'no-cors' "
	  "to fetch the resource with CORS disabled.",
	  "Access-Control-Allow-Origin",
	  "proxy_hide_header Access-Control-Allow-Origin;  (drop the "
	  "upstream's copy; keep one add_header)" },
	{ 204, "https://www.example.com", NULL, NULL, NULL, "*", false, "GET",
	  "Response to preflight request doesn't pass access control check: "
	  "The 'Access-Control-Allow-Origin' header has a value "
	  "'https://www.example.com' that is not equal to the supplied "
	  "origin. Have the server send the header with a valid value, or, "
	  "if an opaque response serves your needs, set the request's mode "
	  "to 'no-cors' to fetch the resource with CORS disabled.",
	  "Access-Control-Allow-Origin", NULL },
	{ 204, "app.example.com", NULL, NULL, NULL, "*", false, "GET",
	  "Response to preflight request doesn't pass access control check: "
	  "The 'Access-Control-Allow-Origin' header contains the invalid "
	  "value 'app.example.com'. Have the server send the header with a "
	  "valid value, or, if an opaque response serves your needs, set the "
	  "request's mode to 'no-cors' to fetch the resource with CORS "
	  "disabled.", "Access-Control-Allow-Origin", NULL },
	{ 204, ORIGIN, NULL, NULL, NULL, "*", true, "GET",
	  "Response to preflight request doesn't pass access control check: "
	  "The value of the 'Access-Control-Allow-Credentials' header in the "
	  "response is '' which must be 'true' when the request's "
	  "credentials mode is 'include'.", "Access-Control-Allow-Credentials",
	  "add_header Access-Control-Allow-Credentials \"true\" always;" },
	{ 405, ORIGIN, NULL, NULL, NULL, "*", false, "GET",
	  "Response to preflight request doesn't pass access control check: "
	  "It does not have HTTP ok status.", "status",
	  "if ($request_method = OPTIONS) { return 204; }  (in the location, "
	  "with the add_header lines marked always)" },
	{ 501, ORIGIN, NULL, NULL, NULL, "*", false, "GET",
	  "Response to preflight request doesn't pass access control check: "
	  "It does not have HTTP ok status.", "status", NULL },
	{ 204, ORIGIN, NULL, NULL, "GET, PU T", "*", false, "PUT",
	  "Cannot parse Access-Control-Allow-Methods response header field in "
	  "preflight response.", "Access-Control-Allow-Methods", NULL },
	{ 204, ORIGIN, NULL, NULL, NULL, "x-datadog-trace-id; traceparent",
	  false, "GET", "Cannot parse Access-Control-Allow-Headers response "
	  "header field in preflight response.",
	  "Access-Control-Allow-Headers", NULL },
	{ 204, ORIGIN, NULL, NULL, "GET, POST", "*", false, "PUT",
	  "Method PUT is not allowed by Access-Control-Allow-Methods in "
	  "preflight response.", "Access-Control-Allow-Methods",
	  "add_header Access-Control-Allow-Methods \"GET, POST, PUT\" "
	  "always;" },
	{ 204, ORIGIN, NULL, NULL, NULL, "traceparent, x-datadog-trace-id, "
	  "x-datadog-parent-id, x-datadog-origin, x-datadog-sampling-priority, "
	  "baggage", false, "GET", "Request header field tracestate is not "
	  "allowed by Access-Control-Allow-Headers in preflight response.",
	  "Access-Control-Allow-Headers", "add_header Access-Control-Allow-"
	  "Headers \"traceparent, x-datadog-trace-id, x-datadog-parent-id, "
	  "x-datadog-origin, x-datadog-sampling-priority, baggage, "
	  "tracestate\" always;" },
	/* "*" is literal with credentials: the first name is refused */
	{ 204, ORIGIN, NULL, "true", NULL, "*", true, "GET",
	  "Request header field baggage is not allowed by Access-Control-"
	  "Allow-Headers in preflight response.",
	  "Access-Control-Allow-Headers", NULL },
};

START_TEST(test_console_texts)
{
	struct diagnose_header h[6];
	struct diagnose_input in;
	struct diagnose_report r;
	const char *prefix = "Access to fetch at "
	    "'https://api.example.com/v1' from origin '" ORIGIN "' has been "
	    "blocked by CORS policy: ";
	size_t n = 0, rows;

	for (rows = 0; rows < TS_NITEMS(console_rows); rows++) {
		n = 0;
		if (console_rows[rows].acao != NULL) {
			h[n].name = "Access-Control-Allow-Origin";
			h[n++].value = console_rows[rows].acao;
		}
		if (console_rows[rows].acao2 != NULL) {
			h[n].name = "Access-Control-Allow-Origin";
			h[n++].value = console_rows[rows].acao2;
		}
		if (console_rows[rows].acac != NULL) {
			h[n].name = "Access-Control-Allow-Credentials";
			h[n++].value = console_rows[rows].acac;
		}
		if (console_rows[rows].acam != NULL) {
			h[n].name = "Access-Control-Allow-Methods";
			h[n++].value = console_rows[rows].acam;
		}
		if (console_rows[rows].acah != NULL) {
			h[n].name = "Access-Control-Allow-Headers";
			h[n++].value = console_rows[rows].acah;
		}
		memset(&in, 0, sizeof in);
		in.url = "https://api.example.com/v1";
		in.origin = ORIGIN;
		in.method = console_rows[rows].method;
		in.credentials = console_rows[rows].creds;
		in.requested = rum_default;
		in.n_requested = TS_NITEMS(rum_default);
		in.status = console_rows[rows].status;
		in.headers = h;
		in.n_headers = n;
		ck_assert_int_eq(diagnose_evaluate(&in, &r), 0);
		ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_REFUSED);
		ck_assert_msg(strncmp(r.console, prefix, strlen(prefix)) == 0,
		    "row %zu: %s", rows, r.console);
		ck_assert_msg(strcmp(r.console + strlen(prefix),
		    console_rows[rows].console) == 0, "row %zu: %s", rows,
		    r.console);
		ck_assert_msg(r.n_findings >= 1, "row %zu", rows);
		ck_assert_str_eq(r.findings[0].header,
		    console_rows[rows].header);
		if (console_rows[rows].nginx != NULL)
			ck_assert_str_eq(r.findings[0].fix_nginx,
			    console_rows[rows].nginx);
		ck_assert(r.findings[0].fix_tracestitch[0] != '\0');
	}
	ck_assert_uint_eq(rows, 13);
}
END_TEST

START_TEST(test_plain_server_findings)
{
	const enum config_style st[] = { CONFIG_STYLE_DATADOG,
		CONFIG_STYLE_TRACECONTEXT, CONFIG_STYLE_BAGGAGE };
	const char *req[] = { "baggage", "traceparent", "x-custom-thing" };
	struct diagnose_header h[] = { { "Server", "tiny/1.0" } };
	struct diagnose_input in;
	struct diagnose_report r;

	memset(&in, 0, sizeof in);
	in.url = "http://127.0.0.1:8080/";
	in.origin = ORIGIN;
	in.method = "GET";
	in.requested = req;
	in.n_requested = 3;
	in.styles = st;
	in.n_styles = 3;
	in.status = 501;
	in.headers = h;
	in.n_headers = 1;
	ck_assert_int_eq(diagnose_evaluate(&in, &r), 0);
	ck_assert_str_eq(r.server, "tiny/1.0");
	ck_assert_uint_eq(r.n_findings, 3);
	ck_assert_str_eq(r.findings[0].header, "Access-Control-Allow-Origin");
	ck_assert_str_eq(r.findings[0].problem,
	    "no Access-Control-Allow-Origin in the answer");
	ck_assert_str_eq(r.findings[1].header, "status");
	ck_assert(strstr(r.findings[1].problem, "answered 501") != NULL);
	ck_assert_str_eq(r.findings[2].header, "Access-Control-Allow-Headers");
	ck_assert_str_eq(r.findings[2].problem, "Access-Control-Allow-Headers "
	    "(absent) does not list baggage, traceparent, x-custom-thing");
	ck_assert_str_eq(r.findings[2].fix_nginx, "add_header "
	    "Access-Control-Allow-Headers \"baggage, traceparent, "
	    "x-custom-thing\" always;");
	ck_assert_str_eq(r.findings[2].fix_tracestitch, "propagation.extract: "
	    "[datadog, tracecontext, baggage]; cors.allowed_headers: [..., "
	    "x-custom-thing]");
	ck_assert_msg(strstr(r.verdict, "FAIL: origin") != NULL, "%s",
	    r.verdict);
}
END_TEST

/* ---- the CORS origin table: diagnose agrees with the gateway ---------- */

struct table_row {
	char pattern[256];
	char origin[512];
	size_t origin_len;
	char expect[16];
	int line;
};

static struct table_row table[256];
static size_t n_table, n_table_lines;

/* Decode \xHH escapes in place; returns the length. */
static size_t
unescape(char *s)
{
	char *rd = s, *w = s;

	while (*rd != '\0') {
		if (rd[0] == '\\' && rd[1] == 'x' && rd[2] != '\0' &&
		    rd[3] != '\0') {
			char hex[3] = { rd[2], rd[3], '\0' };

			*w++ = (char)strtol(hex, NULL, 16);
			rd += 4;
		} else
			*w++ = *rd++;
	}
	*w = '\0';
	return (size_t)(w - s);
}

/* Load tests/data/cors/origins.tsv (before the suite is built). */
static void
load_table(void)
{
	char line[1024], *t1, *t2, *nl;
	FILE *f;
	int lineno = 0;

	if ((f = fopen(ts_data_path("cors/origins.tsv"), "r")) == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		n_table_lines++;
		t1 = strchr(line, '\t');
		t2 = t1 != NULL ? strchr(t1 + 1, '\t') : NULL;
		if (t2 == NULL || n_table == TS_NITEMS(table))
			continue;
		*t1 = *t2 = '\0';
		snprintf(table[n_table].pattern, sizeof table[0].pattern,
		    "%.255s", line);
		snprintf(table[n_table].origin, sizeof table[0].origin,
		    "%.511s", t1 + 1);
		table[n_table].origin_len = unescape(table[n_table].origin);
		snprintf(table[n_table].expect, sizeof table[0].expect, "%s",
		    t2 + 1);
		table[n_table].line = lineno;
		n_table++;
	}
	fclose(f);
}

/*
 * For one row: the gateway's decision (cors_preflight of a policy with
 * the row's pattern) and diagnose's verdict on the answer the gateway
 * writes must agree, without and with credentials; diagnose's own origin
 * check (cors.c's parser) agrees on "malformed"; and no probe origin of
 * diagnose gets credentials from these patterns.
 */
START_TEST(test_origin_table_agrees)
{
	const struct table_row *t = &table[_i];
	struct cors_policy *p;
	struct cors_answer a;
	struct diagnose_report r;
	char probes[2][300];
	size_t i, n;
	int pass;

	ck_assert_msg(diagnose_origin_wellformed(t->origin, t->origin_len) ==
	    (strcmp(t->expect, "malformed") != 0), "line %d: %s", t->line,
	    t->origin);
	for (pass = 0; pass < 2; pass++) {
		p = one_origin_policy(t->pattern, pass == 1, NULL);
		if (p == NULL) {
			/* Only "*" with credentials is refused at load. */
			ck_assert_msg(pass == 1 && strcmp(t->pattern, "*") == 0,
			    "line %d: policy %s refused", t->line, t->pattern);
			continue;
		}
		(void)ask_gateway(p, t->origin, t->origin_len, "GET", NULL, 0,
		    pass == 1, &a, &r);
		ck_assert_msg((a.result == CORS_ALLOWED) ==
		    (strcmp(t->expect, "yes") == 0), "line %d", t->line);
		ck_assert_msg((r.exit_code == DIAGNOSE_EXIT_OK) ==
		    (a.result == CORS_ALLOWED), "line %d (%s): gateway %s, "
		    "diagnose %s", t->line, pass ? "credentials" : "plain",
		    cors_result_name(a.result), r.verdict);
		if (a.result != CORS_ALLOWED) {
			ck_assert_msg(r.gateway, "line %d", t->line);
			ck_assert_str_eq(r.gateway_reason, a.reason);
			ck_assert_int_eq(r.origin_state, DIAGNOSE_REFUSED);
			ck_assert_uint_eq(r.n_not_evaluated, 1 + r.n_headers);
			ck_assert(strstr(r.console, "No 'Access-Control-Allow-"
			    "Origin' header") != NULL);
			cors_policy_free(p);
			continue;
		}
		ck_assert_uint_eq(r.n_findings, 0);
		if (pass == 1) {
			/* No pattern of the table is a reflector. */
			n = diagnose_probe_origins(t->origin, probes, 2);
			ck_assert_uint_ge(n, strcmp(t->origin, "null") != 0);
			for (i = 0; i < n; i++) {
				(void)ask_gateway(p, probes[i],
				    strlen(probes[i]), "GET", NULL, 0, true, &a,
				    &r);
				ck_assert_msg(r.exit_code != DIAGNOSE_EXIT_OK,
				    "line %d: probe %s passes", t->line,
				    probes[i]);
			}
		}
		cors_policy_free(p);
	}
}
END_TEST

START_TEST(test_origin_table_loaded)
{
	/* every data line of the file is a row, and there are many */
	ck_assert_uint_eq(n_table, n_table_lines);
	ck_assert_uint_ge(n_table, 85);
}
END_TEST

/*
 * A credentialed wildcard over a public suffix: whether or not the engine
 * accepts the pattern https://[*].com (issue 9 makes it a config error),
 * the browser
 * passes a gateway that does, and diagnose must then call it unsafe.
 */
START_TEST(test_public_suffix_wildcard)
{
	struct cors_policy *p = one_origin_policy("https://*.com", true, NULL);
	struct cors_answer a;
	struct diagnose_report r, pr;
	struct diagnose_input in;
	char probes[2][300];
	size_t n;

	n = diagnose_probe_origins("https://evil.com", probes, 2);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(probes[0], "https://tracestitch-diagnose-probe."
	    "invalid");
	ck_assert_str_eq(probes[1], "https://tracestitch-diagnose-probe.com");
	if (p == NULL)
		return;	/* refused at load: nothing to diagnose */
	ck_assert_int_eq(ask_gateway(p, "https://evil.com", 16, "GET", NULL,
	    0, true, &a, &r), CORS_ALLOWED);
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_OK);	/* browser */
	ck_assert_int_eq(ask_gateway(p, probes[1], strlen(probes[1]), "GET",
	    NULL, 0, true, &a, &pr), CORS_ALLOWED);
	ck_assert_int_eq(pr.exit_code, DIAGNOSE_EXIT_OK);
	/* diagnose_main marks the first answer unsafe after the probe */
	ck_assert_int_eq(ask_gateway(p, "https://evil.com", 16, "GET", NULL,
	    0, true, &a, &r), CORS_ALLOWED);
	memset(&in, 0, sizeof in);
	in.origin = "https://evil.com";
	diagnose_mark_unsafe(&r, &in, probes[1]);
	ck_assert_int_eq(r.exit_code, DIAGNOSE_EXIT_UNSAFE);
	ck_assert(strncmp(r.verdict, "UNSAFE:", 7) == 0);
	ck_assert_str_eq(r.unsafe_origin, probes[1]);
	ck_assert_uint_eq(r.n_findings, 1);
	cors_policy_free(p);
}
END_TEST

START_TEST(test_probe_origins)
{
	char probes[2][300];

	ck_assert_uint_eq(diagnose_probe_origins("https://shop.example.co.uk:"
	    "8443", probes, 2), 2);
	ck_assert_str_eq(probes[0], "https://tracestitch-diagnose-probe."
	    "invalid:8443");
	ck_assert_str_eq(probes[1], "https://tracestitch-diagnose-probe."
	    "co.uk:8443");
	ck_assert_uint_eq(diagnose_probe_origins("https://Me.GitHub.io",
	    probes, 2), 2);
	ck_assert_str_eq(probes[1], "https://tracestitch-diagnose-probe."
	    "github.io");
	ck_assert_uint_eq(diagnose_probe_origins("http://[::1]:8080", probes,
	    2), 1);
	ck_assert_str_eq(probes[0], "http://tracestitch-diagnose-probe."
	    "invalid:8080");
	ck_assert_uint_eq(diagnose_probe_origins("https://evil.com", probes,
	    1), 1);
	/* *.localhost is the user's own machine: no sibling probe */
	ck_assert_uint_eq(diagnose_probe_origins("http://app.localhost:3000",
	    probes, 2), 1);
	ck_assert_uint_eq(diagnose_probe_origins("null", probes, 2), 0);
	ck_assert_uint_eq(diagnose_probe_origins("https://evil.com/", probes,
	    2), 0);
}
END_TEST

START_TEST(test_parse_response_body)
{
	char ok[] = "HTTP/1.1 403 Forbidden\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 5\r\n\r\n"
	    "{\"a\":1}trailing";
	char noframe[] = "HTTP/1.1 404 Not Found\r\n\r\nnot found";
	struct diagnose_header h[4];
	const char *errstr;
	size_t n, off, len;
	int status;

	ck_assert_int_eq(diagnose_parse_response(ok, strlen(ok), &status, h,
	    4, &n, &off, &len, &errstr), 0);
	ck_assert_int_eq(status, 403);
	ck_assert_uint_eq(len, 5);
	ck_assert(strncmp(ok + off, "{\"a\":", 5) == 0);
	ck_assert_int_eq(diagnose_parse_response(noframe, strlen(noframe),
	    &status, h, 4, &n, &off, &len, &errstr), 0);
	ck_assert_uint_eq(len, 9);
	ck_assert_str_eq(noframe + off, "not found");
}
END_TEST

/* The shared response parser (http_response.c): chunked bodies are
 * de-chunked, a bare LF and a CTL in a value are refused. */
START_TEST(test_parse_response_shared)
{
	char chunked[] = "HTTP/1.1 403 Forbidden\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "Access-Control-Allow-Origin: https://a.test\r\n\r\n"
	    "4\r\n{\"a\"\r\n3;x=1\r\n:1}\r\n0\r\nT: v\r\n\r\n";
	char bare_lf[] = "HTTP/1.1 204 No Content\nVary: Origin\n\n";
	char ctl[] = "HTTP/1.1 204 No Content\r\nVary: \x01\r\n\r\n";
	struct diagnose_header h[4];
	const char *errstr;
	size_t n, off, len;
	int status;

	ck_assert_int_eq(diagnose_parse_response(chunked, strlen(chunked),
	    &status, h, 4, &n, &off, &len, &errstr), 0);
	ck_assert_int_eq(status, 403);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(h[1].name, "Access-Control-Allow-Origin");
	ck_assert_str_eq(h[1].value, "https://a.test");
	ck_assert_uint_eq(len, 7);
	ck_assert_str_eq(chunked + off, "{\"a\":1}");
	ck_assert_int_eq(diagnose_parse_response(bare_lf, strlen(bare_lf),
	    &status, h, 4, &n, &off, &len, &errstr), -1);
	ck_assert_str_eq(errstr, "invalid line ending");
	ck_assert_int_eq(diagnose_parse_response(ctl, strlen(ctl), &status,
	    h, 4, &n, &off, &len, &errstr), -1);
	ck_assert_str_eq(errstr, "invalid header field value");
}
END_TEST

static Suite *
diagnose_suite(void)
{
	Suite *s = suite_create("diagnose");
	TCase *tc;

	tc = tcase_create("evaluate");
	tcase_add_test(tc, test_all_allowed);
	tcase_add_test(tc, test_header_refused);
	tcase_add_test(tc, test_origin_cases);
	tcase_add_test(tc, test_credentials_and_methods);
	tcase_add_test(tc, test_status);
	tcase_add_test(tc, test_against_engine);
	tcase_add_test(tc, test_console_texts);
	tcase_add_test(tc, test_plain_server_findings);
	suite_add_tcase(s, tc);

	tc = tcase_create("gateway");
	tcase_add_test(tc, test_gateway_header_refused);
	tcase_add_test(tc, test_gateway_origin_method_tracing);
	tcase_add_test(tc, test_other_403_not_gateway);
	suite_add_tcase(s, tc);

	load_table();
	tc = tcase_create("origin_table");
	tcase_add_loop_test(tc, test_origin_table_agrees, 0, (int)n_table);
	tcase_add_test(tc, test_origin_table_loaded);
	tcase_add_test(tc, test_public_suffix_wildcard);
	tcase_add_test(tc, test_probe_origins);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_test(tc, test_rum_headers);
	tcase_add_test(tc, test_parse_styles);
	tcase_add_test(tc, test_parse_response);
	tcase_add_test(tc, test_parse_response_body);
	tcase_add_test(tc, test_parse_response_shared);
	tcase_add_test(tc, test_usage_errors);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(diagnose_suite)
