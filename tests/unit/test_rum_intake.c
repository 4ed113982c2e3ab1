/*
 * test_rum_intake.c -- the RUM intake relay's checks and intake request
 * (src/pipeline/rum_intake.c) on their own: the status and reason of each
 * refusal, and the exact bytes of the request the intake gets.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "rum_intake.h"
#include "ts_test.h"

#define F(n, v) { (char *)(n), (char *)(v), sizeof(n) - 1, sizeof(v) - 1 }

static struct http_field fields[] = {
	F("Host", "api.test"),
	F("Content-Type", "text/plain;charset=UTF-8"),
	F("Content-Length", "5"),
	F("Cookie", "s=1"),
	F("authorization", "Bearer t"),
	F("Proxy-Authorization", "Basic x"),
	F("User-Agent", "ua/1"),
	F("Connection", "keep-alive, X-Hop"),
	F("X-Hop", "1"),
	F("Keep-Alive", "timeout=5"),
	F("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
	F("x-datadog-trace-id", "1"),
	F("baggage", "a=b"),
	F("X-Forwarded-For", "203.0.113.9"),
	F("X-Forwarded-Proto", "https"),
	F("Forwarded", "for=1.2.3.4"),
	F("X-Real-IP", "1.2.3.4"),
	F("Expect", "100-continue"),
	F("Origin", "https://app.test"),
	F("Accept-Language", "fr"),
};

static struct config_route route;
static struct config_upstream intake;

static void
setup(void)
{
	memset(&route, 0, sizeof route);
	route.rum.enabled = true;
	route.rum.max_body_bytes = 8;
	memset(&intake, 0, sizeof intake);
	intake.authority = (char *)"browser-intake-datadoghq.com";
	intake.base_path = (char *)"/base";
}

static void
exchange_init(struct exchange *x, enum exchange_method m, struct evbuffer *b)
{
	memset(x, 0, sizeof *x);
	x->method = m;
	x->fields = fields;
	x->n_fields = TS_NITEMS(fields);
	x->body = b;
	x->body_end = true;
}

START_TEST(test_check_refusals)
{
	static struct ddforward d;
	struct evbuffer *b = evbuffer_new();
	struct exchange x;
	const char *why;

	evbuffer_add(b, "12345678", 8);
	exchange_init(&x, EXCHANGE_M_GET, b);
	ck_assert_int_eq(rum_intake_check(&route, &x,
	    "/rum?ddforward=%2Fapi%2Fv2%2Frum", &d, &why), 405);
	ck_assert_ptr_nonnull(strstr(why, "POST"));
	ck_assert_int_eq(d.track, -1);
	x.method = EXCHANGE_M_POST;
	ck_assert_int_eq(rum_intake_check(&route, &x, "/rum", &d, &why), 400);
	ck_assert_str_eq(why, ddforward_reason_text(DDF_MISSING));
	ck_assert_int_eq(rum_intake_check(&route, &x,
	    "/rum?ddforward=%2F%2Fevil%2Fapi%2Fv2%2Frum", &d, &why), 400);
	ck_assert_str_eq(why, ddforward_reason_text(DDF_SCHEME_RELATIVE));
	/* At the bound, then one byte over it. */
	ck_assert_int_eq(rum_intake_check(&route, &x,
	    "/rum?ddforward=%2Fapi%2Fv2%2Flogs", &d, &why), 0);
	ck_assert_str_eq(ddforward_tracks[d.track].name, "logs");
	evbuffer_add(b, "9", 1);
	ck_assert_int_eq(rum_intake_check(&route, &x,
	    "/rum?ddforward=%2Fapi%2Fv2%2Flogs", &d, &why), 413);
	ck_assert_str_eq(ddforward_tracks[d.track].name, "logs");
	x.body = NULL;
	ck_assert_int_eq(rum_intake_check(&route, &x,
	    "/rum?ddforward=%2Fapi%2Fv2%2Frum", &d, &why), 0);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_request_bytes)
{
	static const char want[] =
	    "POST /base/api/v2/rum?ddsource=browser HTTP/1.1\r\n"
	    "Host: browser-intake-datadoghq.com\r\n"
	    "Content-Type: text/plain;charset=UTF-8\r\n"
	    "User-Agent: ua/1\r\n"
	    "Origin: https://app.test\r\n"
	    "Accept-Language: fr\r\n"
	    "X-Forwarded-For: 198.51.100.4\r\n"
	    "Content-Length: 5\r\n"
	    "\r\n"
	    "\x1f\x8b\x00\xff\x01";
	static struct ddforward d;
	struct evbuffer *b = evbuffer_new(), *out = evbuffer_new();
	struct exchange x;
	size_t n;
	char *got;

	evbuffer_add(b, "\x1f\x8b\x00\xff\x01", 5);
	exchange_init(&x, EXCHANGE_M_POST, b);
	ck_assert_int_eq(ddforward_parse("ddforward=%2Fapi%2Fv2%2Frum%3F"
	    "ddsource%3Dbrowser", 48, &d), 0);
	rum_intake_request(&intake, &x, &d, "198.51.100.4", out);
	n = evbuffer_get_length(out);
	got = (char *)evbuffer_pullup(out, -1);
	ck_assert_msg(n == sizeof want - 1 && memcmp(got, want, n) == 0,
	    "got %zu bytes:\n%.*s", n, (int)n, got);
	/* The body was moved, not copied. */
	ck_assert_uint_eq(evbuffer_get_length(b), 0);
	evbuffer_free(out);
	evbuffer_free(b);
}
END_TEST

/* An empty body is still a POST with its length. */
START_TEST(test_request_empty)
{
	static struct ddforward d;
	struct evbuffer *out = evbuffer_new();
	struct exchange x;
	size_t n;
	char *got;

	exchange_init(&x, EXCHANGE_M_POST, NULL);
	x.n_fields = 0;
	ck_assert_int_eq(ddforward_parse("ddforward=/api/v2/replay", 24, &d),
	    0);
	rum_intake_request(&intake, &x, &d, "::1", out);
	n = evbuffer_get_length(out);
	got = (char *)evbuffer_pullup(out, -1);
	ck_assert_msg(n == strlen("POST /base/api/v2/replay HTTP/1.1\r\nHost: "
	    "browser-intake-datadoghq.com\r\nX-Forwarded-For: ::1\r\n"
	    "Content-Length: 0\r\n\r\n") && strstr(got, "Content-Length: 0\r\n"
	    "\r\n") != NULL, "%.*s", (int)n, got);
	evbuffer_free(out);
}
END_TEST

static Suite *
rum_intake_suite(void)
{
	Suite *s = suite_create("rum_intake");
	TCase *tc = tcase_create("relay");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_check_refusals);
	tcase_add_test(tc, test_request_bytes);
	tcase_add_test(tc, test_request_empty);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(rum_intake_suite)
