/*
 * test_diagnose.c -- the pure parts of `tracestitch diagnose`: the browser-
 * side evaluation of a preflight answer, the RUM header set, propagator
 * parsing and response-head parsing; plus one end-to-end run against the
 * real CORS engine's answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cors/cors.h"
#include "http/diagnose.h"
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
	ck_assert(!verdict(&r, "tracestate")->allowed);
	ck_assert(!verdict(&r, "baggage")->allowed);
	ck_assert(verdict(&r, "x-datadog-trace-id")->allowed);
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
	ck_assert(strstr(errstr, "unknown") != NULL);
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
	size_t n;
	int status;

	ck_assert_int_eq(diagnose_parse_response(ok, strlen(ok), &status, h,
	    4, &n, &errstr), 0);
	ck_assert_int_eq(status, 204);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(h[0].name, "Access-Control-Allow-Origin");
	ck_assert_str_eq(h[0].value, "https://a.test");
	ck_assert_str_eq(h[1].value, "Origin");
	ck_assert_str_eq(h[2].value, "");
	ck_assert_int_eq(diagnose_parse_response(bad1, strlen(bad1), &status,
	    h, 4, &n, &errstr), -1);
	ck_assert_int_eq(diagnose_parse_response(bad2, strlen(bad2), &status,
	    h, 4, &n, &errstr), -1);
	ck_assert_int_eq(diagnose_parse_response(bad3, strlen(bad3), &status,
	    h, 4, &n, &errstr), -1);
	ck_assert_int_eq(diagnose_parse_response(bad4, strlen(bad4), &status,
	    h, 4, &n, &errstr), -1);
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
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_test(tc, test_rum_headers);
	tcase_add_test(tc, test_parse_styles);
	tcase_add_test(tc, test_parse_response);
	tcase_add_test(tc, test_usage_errors);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(diagnose_suite)
