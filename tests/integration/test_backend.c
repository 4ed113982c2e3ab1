/*
 * test_backend.c -- the fake backend and the itest client helpers, alone.
 *
 * The other integration suites trust what the fake backend reports (the
 * exact request head it received, body checksums, connection counts) and
 * what the raw client decodes; this suite checks both directly, with no
 * gateway in between.
 */
#include <sys/wait.h>

#include <signal.h>
#include <unistd.h>

#include <check.h>
#include <string.h>

#include "itest.h"

static struct itest_proc *be;

static void
setup(void)
{
	be = itest_backend_start("solo");
}

static void
teardown(void)
{
	itest_teardown();
	be = NULL;
}

/* Body verifier for the generated pattern: byte k is 'a' + k % 26. */
struct pattern_check {
	uint64_t off;
	bool ok;
};

static int
pattern_cb(const char *data, size_t len, void *arg)
{
	struct pattern_check *pc = arg;
	size_t i;

	for (i = 0; i < len; i++, pc->off++)
		if (data[i] != (char)('a' + pc->off % 26))
			pc->ok = false;
	return 0;
}

START_TEST(echo_reports_head_and_headers_in_order)
{
	static const char req[] = "GET /echo?x=1&y=2 HTTP/1.1\r\n"
	    "Host: Example.TEST:8080\r\n"
	    "X-A: 1\r\n"
	    "X-B:   spaced  value \r\n"
	    "X-A: 2\r\n"
	    "\r\n";
	struct itest_resp r;
	json_t *j, *h;

	ck_assert_int_eq(itest_request(be->port, req, sizeof req - 1, &r, 0,
	    ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 200);
	j = itest_resp_json(&r);
	ck_assert_str_eq(json_string_value(json_object_get(j, "method")),
	    "GET");
	ck_assert_str_eq(json_string_value(json_object_get(j, "path")),
	    "/echo");
	ck_assert_str_eq(json_string_value(json_object_get(j, "query")),
	    "x=1&y=2");
	ck_assert_str_eq(json_string_value(json_object_get(j, "head")), req);
	ck_assert_str_eq(json_string_value(json_object_get(j, "name")),
	    "solo");
	h = json_object_get(j, "headers");
	ck_assert_int_eq(json_array_size(h), 4);
	ck_assert_str_eq(json_string_value(json_array_get(
	    json_array_get(h, 1), 0)), "X-A");
	ck_assert_str_eq(json_string_value(json_array_get(
	    json_array_get(h, 2), 1)), "spaced  value");
	ck_assert_str_eq(json_string_value(json_array_get(
	    json_array_get(h, 3), 1)), "2");
	json_decref(j);
	itest_resp_clear(&r);
}
END_TEST

START_TEST(bodies_content_length_and_chunked)
{
	static const char body[] = "hello, integration world";
	struct itest_conn *c = itest_connect(be->port);
	struct itest_resp r;
	char hex[65];
	json_t *j;

	itest_sha256_hex(body, sizeof body - 1, hex);
	ck_assert_int_eq(itest_sendf(c, "POST /echo HTTP/1.1\r\nHost: b\r\n"
	    "Content-Length: %zu\r\n\r\n%s", sizeof body - 1, body), 0);
	ck_assert_int_eq(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS), 0);
	j = itest_resp_json(&r);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "body_bytes")),
	    sizeof body - 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "body_sha256")),
	    hex);
	ck_assert(!json_boolean_value(json_object_get(j, "chunked")));
	json_decref(j);
	itest_resp_clear(&r);

	/* Same body in three chunks, one with an extension, and a trailer. */
	ck_assert_int_eq(itest_sendf(c, "PUT /echo HTTP/1.1\r\nHost: b\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n"
	    "2;ext=1\r\n, \r\n"
	    "11\r\nintegration world\r\n"
	    "0\r\nX-T: 1\r\n\r\n"), 0);
	ck_assert_int_eq(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS), 0);
	j = itest_resp_json(&r);
	ck_assert_str_eq(json_string_value(json_object_get(j, "method")),
	    "PUT");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "body_bytes")),
	    sizeof body - 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "body_sha256")),
	    hex);
	ck_assert(json_boolean_value(json_object_get(j, "chunked")));
	json_decref(j);
	itest_resp_clear(&r);
	itest_conn_free(c);
}
END_TEST

START_TEST(keepalive_counts_connections)
{
	struct itest_conn *c = itest_connect(be->port);
	struct itest_resp r;
	uint64_t conns0 = itest_backend_connections(be);
	uint64_t reqs0 = itest_backend_requests(be);
	int i;

	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(itest_sendf(c, "GET /echo/%d HTTP/1.1\r\n"
		    "Host: b\r\n\r\n", i), 0);
		ck_assert_int_eq(itest_read_response(c, &r, 0,
		    ITEST_TIMEOUT_MS), 0);
		ck_assert_int_eq(r.status, 200);
		ck_assert(!r.closed);
		itest_resp_clear(&r);
	}
	ck_assert_uint_eq(itest_backend_connections(be), conns0 + 1);
	ck_assert_uint_eq(itest_backend_requests(be), reqs0 + 5);
	itest_conn_free(c);
}
END_TEST

START_TEST(big_bodies_are_generated_and_verified)
{
	struct pattern_check pc;
	struct itest_conn *c = itest_connect(be->port);
	struct itest_resp r;

	pc.off = 0;
	pc.ok = true;
	ck_assert_int_eq(itest_sendf(c, "GET /big?bytes=3000000 HTTP/1.1\r\n"
	    "Host: b\r\n\r\n"), 0);
	ck_assert_int_eq(itest_read_response_cb(c, &r, 0, ITEST_TIMEOUT_MS,
	    pattern_cb, &pc), 0);
	ck_assert_str_eq(itest_resp_header(&r, "Content-Length"), "3000000");
	ck_assert_uint_eq(r.body_len, 3000000);
	ck_assert(pc.ok);
	itest_resp_clear(&r);

	pc.off = 0;
	ck_assert_int_eq(itest_sendf(c, "GET /bigchunked?bytes=1000001 "
	    "HTTP/1.1\r\nHost: b\r\n\r\n"), 0);
	ck_assert_int_eq(itest_read_response_cb(c, &r, 0, ITEST_TIMEOUT_MS,
	    pattern_cb, &pc), 0);
	ck_assert(r.chunked);
	ck_assert_uint_eq(r.body_len, 1000001);
	ck_assert(pc.ok);
	itest_resp_clear(&r);

	ck_assert_int_eq(itest_sendf(c, "HEAD /big?bytes=77 HTTP/1.1\r\n"
	    "Host: b\r\n\r\n"), 0);
	ck_assert_int_eq(itest_read_response(c, &r, ITEST_HEAD_REQUEST,
	    ITEST_TIMEOUT_MS), 0);
	ck_assert_str_eq(itest_resp_header(&r, "Content-Length"), "77");
	ck_assert_uint_eq(r.body_len, 0);
	itest_resp_clear(&r);
	itest_conn_free(c);
}
END_TEST

START_TEST(status_without_body_keeps_connection)
{
	struct itest_conn *c = itest_connect(be->port);
	struct itest_resp r;

	ck_assert_int_eq(itest_sendf(c, "GET /status/204 HTTP/1.1\r\n"
	    "Host: b\r\n\r\nGET /status/304 HTTP/1.1\r\nHost: b\r\n\r\n"
	    "GET /status/418 HTTP/1.1\r\nHost: b\r\n\r\n"), 0);
	ck_assert_int_eq(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 204);
	ck_assert_uint_eq(r.body_len, 0);
	itest_resp_clear(&r);
	ck_assert_int_eq(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 304);
	itest_resp_clear(&r);
	ck_assert_int_eq(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 418);
	ck_assert_str_eq(r.body, "status 418\n");
	itest_resp_clear(&r);
	itest_conn_free(c);
}
END_TEST

START_TEST(failure_modes)
{
	struct itest_resp r;
	int64_t t0;

	ck_assert_int_eq(itest_get(be->port, "/close", &r), -1);
	ck_assert_str_eq(itest_error(), "connection closed before a response");
	itest_resp_clear(&r);

	ck_assert_int_eq(itest_get(be->port, "/reset", &r), -1);
	itest_resp_clear(&r);

	ck_assert_int_eq(itest_get(be->port, "/malformed", &r), -1);
	ck_assert(strstr(itest_error(), "bad status line") != NULL);
	itest_resp_clear(&r);

	t0 = itest_now_ms();
	ck_assert_int_eq(itest_get(be->port, "/slow?ms=200", &r), 0);
	ck_assert_int_ge(itest_now_ms() - t0, 190);
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);

	ck_assert_int_eq(itest_request(be->port,
	    ITEST_LIT("GET /stall HTTP/1.1\r\nHost: b\r\n\r\n"), &r, 0, 300),
	    -1);
	ck_assert_str_eq(itest_error(), "timeout waiting for data");
	itest_resp_clear(&r);
}
END_TEST

START_TEST(hop_headers_response)
{
	struct itest_resp r;

	ck_assert_int_eq(itest_get(be->port, "/headers", &r), 0);
	ck_assert_uint_eq(itest_resp_count(&r, "Set-Cookie"), 3);
	ck_assert_str_eq(itest_resp_header(&r, "Foo"),
	    "hop-named-in-connection");
	ck_assert(r.closed);
	itest_resp_clear(&r);
}
END_TEST

START_TEST(metric_parser)
{
	static const char text[] =
	    "# HELP tracestitch_requests_total Requests.\n"
	    "# TYPE tracestitch_requests_total counter\n"
	    "tracestitch_requests_total{route=\"api\",code=\"2xx\"} 12\n"
	    "tracestitch_requests_total{route=\"api\",code=\"5xx\"} 3\n"
	    "tracestitch_requests_total_other{route=\"api\"} 99\n"
	    "tracestitch_open_connections 4\n";

	ck_assert(itest_metric(text, "tracestitch_requests_total",
	    "route=\"api\",code=\"2xx\"") == 12);
	ck_assert(itest_metric(text, "tracestitch_requests_total",
	    "code=\"5xx\",route=\"api\"") == 3);
	ck_assert(itest_metric(text, "tracestitch_requests_total",
	    "code=\"4xx\"") == -1);
	ck_assert(itest_metric(text, "tracestitch_open_connections", NULL)
	    == 4);
	ck_assert(itest_metric(text, "tracestitch_open", NULL) == -1);
	/* Several matching samples add up. */
	ck_assert(itest_metric(text, "tracestitch_requests_total",
	    "route=\"api\"") == 15);
}
END_TEST

START_TEST(process_helpers)
{
	int st;

	ck_assert_int_gt(itest_rss_kb(be->pid), 0);
	ck_assert_int_gt(itest_rss_kb(getpid()), 0);
	ck_assert_int_gt(itest_log_wait(be, ITEST_STDOUT, "listening", 0,
	    1000), 0);
	ck_assert_int_eq(itest_log_wait(be, ITEST_STDOUT, "never printed", 0,
	    50), -1);
	st = itest_proc_stop(be, SIGTERM, 5000);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	ck_assert_int_eq(itest_connect_fd(be->port), -1);
}
END_TEST

static Suite *
backend_suite(void)
{
	Suite *s = suite_create("fake_backend");
	TCase *tc = tcase_create("backend");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, echo_reports_head_and_headers_in_order);
	tcase_add_test(tc, bodies_content_length_and_chunked);
	tcase_add_test(tc, keepalive_counts_connections);
	tcase_add_test(tc, big_bodies_are_generated_and_verified);
	tcase_add_test(tc, status_without_body_keeps_connection);
	tcase_add_test(tc, failure_modes);
	tcase_add_test(tc, hop_headers_response);
	tcase_add_test(tc, metric_parser);
	tcase_add_test(tc, process_helpers);
	suite_add_tcase(s, tc);
	return s;
}

ITEST_MAIN(backend_suite, false)
