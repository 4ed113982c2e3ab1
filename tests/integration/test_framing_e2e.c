/*
 * test_framing_e2e.c -- framing rejections and gateway errors, end to end.
 *
 * Request-smuggling inputs (RFC 9112 section 6.1, 6.3 and 7.1; RFC 9110
 * section 5.1 tokens and 5.5 field values) must get 400 with a close
 * before any byte reaches the backend: the fake backend's /stats request
 * count must not move.  Then the limits (413, 431) and the upstream
 * failures (502 refused / closed / reset / malformed, 504 timeout), each
 * with the gateway's JSON error body.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

static struct itest_proc *be, *gw;

/* A port with nothing listening (bound once, then closed). */
static uint16_t
dead_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static void
setup(void)
{
	char *yaml;

	be = itest_backend_start("one");
	yaml = itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  workers: 2\n"
	    "  limits: {max_body_bytes: 1024, max_header_bytes: 8192}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: dead\n"
	    "    path_prefix: /dead\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\", connect_timeout: 2s,"
	    " timeout: 2s}\n"
	    "  - name: api\n"
	    "    upstream:\n"
	    "      url: http://127.0.0.1:%u\n"
	    "      timeout: 300ms\n"
	    "      keepalive: 4\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: stdout}\n",
	    dead_port(), be->port);
	gw = itest_gateway_start(yaml);
	free(yaml);
}

static void
teardown(void)
{
	itest_teardown();
	be = gw = NULL;
}

/* Every one must be refused with 400 and a close, never forwarded. */
static const struct {
	const char *name;
	const char *raw;
	size_t len;
} smuggling[] = {
	{ "content-length and transfer-encoding", ITEST_LIT(
	    "POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\n\r\nGET /echo/smuggled HTTP/1.1\r\nHost: itest.test\r\n\r\n") },
	{ "space before colon in transfer-encoding", ITEST_LIT(
	    "POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n"
	    "0\r\n\r\n") },
	{ "transfer-encoding xchunked", ITEST_LIT(
	    "POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Transfer-Encoding: xchunked\r\n\r\n"
	    "GET /echo/smuggled HTTP/1.1\r\nHost: itest.test\r\n\r\n") },
	{ "transfer-encoding chunked, identity", ITEST_LIT(
	    "POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n") },
	{ "two different content-length", ITEST_LIT(
	    "POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Content-Length: 3\r\nContent-Length: 5\r\n\r\nhello") },
	{ "two equal content-length", ITEST_LIT(
	    "POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello") },
	{ "content-length with plus sign", ITEST_LIT(
	    "POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Content-Length: +5\r\n\r\nhello") },
	{ "content-length list", ITEST_LIT(
	    "POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Content-Length: 5, 5\r\n\r\nhello") },
	{ "transfer-encoding on HTTP/1.0", ITEST_LIT(
	    "POST /echo HTTP/1.0\r\nHost: itest.test\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n") },
	{ "missing host on HTTP/1.1", ITEST_LIT(
	    "GET /echo HTTP/1.1\r\nX-A: 1\r\n\r\n") },
	{ "duplicate host", ITEST_LIT(
	    "GET /echo HTTP/1.1\r\nHost: itest.test\r\nHost: evil.test\r\n"
	    "\r\n") },
	{ "obs-fold", ITEST_LIT(
	    "GET /echo HTTP/1.1\r\nHost: itest.test\r\nX-Folded: a\r\n"
	    "  b\r\n\r\n") },
	{ "space in header name", ITEST_LIT(
	    "GET /echo HTTP/1.1\r\nHost: itest.test\r\nBad Header: x\r\n"
	    "\r\n") },
	{ "non-token header name", ITEST_LIT(
	    "GET /echo HTTP/1.1\r\nHost: itest.test\r\nX@(Y): x\r\n\r\n") },
	{ "NUL in header value", ITEST_LIT(
	    "GET /echo HTTP/1.1\r\nHost: itest.test\r\nX-A: a\0b\r\n\r\n") },
	{ "chunk size with 0x prefix", ITEST_LIT(
	    "POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n") },
	{ "chunk size with leading space", ITEST_LIT(
	    "POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n") },
};

START_TEST(smuggling_rejected_before_upstream)
{
	uint64_t before = itest_backend_requests(be);
	struct itest_conn *c = itest_connect(gw->port);
	struct itest_resp r;
	int rv;

	ck_assert_int_eq(itest_send(c, smuggling[_i].raw, smuggling[_i].len,
	    ITEST_TIMEOUT_MS), 0);
	rv = itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS);
	ck_assert_msg(rv == 0, "%s: no response: %s", smuggling[_i].name,
	    itest_error());
	ck_assert_msg(r.status == 400, "%s: status %d", smuggling[_i].name,
	    r.status);
	itest_assert_error(&r, 400, "bad_request");
	ck_assert_msg(r.closed, "%s: no Connection: close",
	    smuggling[_i].name);
	ck_assert_msg(itest_wait_closed(c, ITEST_TIMEOUT_MS),
	    "%s: connection left open", smuggling[_i].name);
	itest_resp_clear(&r);
	itest_conn_free(c);
	ck_assert_msg(itest_backend_requests(be) == before,
	    "%s: the backend received a request", smuggling[_i].name);
}
END_TEST

START_TEST(body_within_limit_passes)
{
	struct itest_resp r;
	char body[1000], *raw;
	json_t *j;

	memset(body, 'x', sizeof body);
	raw = itest_strf("POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%.*s",
	    sizeof body, (int)sizeof body, body);
	ck_assert_int_eq(itest_request(gw->port, raw, strlen(raw), &r, 0,
	    ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 200);
	j = itest_resp_json(&r);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "body_bytes")),
	    1000);
	json_decref(j);
	itest_resp_clear(&r);
	free(raw);
}
END_TEST

START_TEST(content_length_over_limit_413)
{
	uint64_t before = itest_backend_requests(be);
	struct itest_conn *c = itest_connect(gw->port);
	struct itest_resp r;

	/* Head only: the answer must not wait for the body. */
	ck_assert_int_eq(itest_sendf(c, "POST /echo HTTP/1.1\r\n"
	    "Host: itest.test\r\nContent-Length: 4096\r\n\r\n"), 0);
	ck_assert_msg(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS) == 0,
	    "%s", itest_error());
	itest_assert_error(&r, 413, "payload_too_large");
	ck_assert(r.closed);
	ck_assert(itest_wait_closed(c, ITEST_TIMEOUT_MS));
	itest_resp_clear(&r);
	itest_conn_free(c);
	ck_assert_uint_eq(itest_backend_requests(be), before);
}
END_TEST

START_TEST(chunked_over_limit_413)
{
	uint64_t before = itest_backend_requests(be);
	struct itest_conn *c = itest_connect(gw->port);
	struct itest_resp r;
	char piece[600];
	int i;

	memset(piece, 'z', sizeof piece);
	ck_assert_int_eq(itest_sendf(c, "POST /echo HTTP/1.1\r\n"
	    "Host: itest.test\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
	/* Send until the gateway answers (at most 6000 bytes). */
	for (i = 0; i < 10 && !itest_readable(c, 50); i++) {
		if (itest_sendf(c, "%zx\r\n", sizeof piece) == -1 ||
		    itest_send(c, piece, sizeof piece, ITEST_TIMEOUT_MS) == -1 ||
		    itest_sendf(c, "\r\n") == -1)
			break;
	}
	ck_assert_msg(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS) == 0,
	    "%s", itest_error());
	itest_assert_error(&r, 413, "payload_too_large");
	ck_assert(r.closed);
	itest_resp_clear(&r);
	itest_conn_free(c);
	ck_assert_uint_eq(itest_backend_requests(be), before);
}
END_TEST

START_TEST(headers_over_limit_431)
{
	uint64_t before = itest_backend_requests(be);
	struct itest_conn *c;
	struct itest_resp r;
	char *big;

	big = malloc(9001);
	memset(big, 'h', 9000);
	big[9000] = '\0';

	c = itest_connect(gw->port);
	ck_assert_int_eq(itest_sendf(c, "GET /echo HTTP/1.1\r\n"
	    "Host: itest.test\r\nX-Big: %s\r\n\r\n", big), 0);
	ck_assert_msg(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS) == 0,
	    "%s", itest_error());
	itest_assert_error(&r, 431, "header_too_large");
	ck_assert(r.closed);
	itest_resp_clear(&r);
	itest_conn_free(c);

	/* A request line over the limit as well. */
	c = itest_connect(gw->port);
	ck_assert_int_eq(itest_sendf(c, "GET /echo?q=%s HTTP/1.1\r\n"
	    "Host: itest.test\r\n\r\n", big), 0);
	ck_assert_msg(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS) == 0,
	    "%s", itest_error());
	ck_assert_msg(r.status == 431 || r.status == 414,
	    "long request line: status %d", r.status);
	ck_assert(r.closed);
	itest_resp_clear(&r);
	itest_conn_free(c);
	free(big);
	ck_assert_uint_eq(itest_backend_requests(be), before);
}
END_TEST

/* Upstream failures that must become 502 bad_gateway. */
static const char *const bad_gateway_paths[] = {
	"/dead/nothing-listens",
	"/close",
	"/reset",
	"/malformed",
};

START_TEST(upstream_failure_502)
{
	struct itest_resp r;

	ck_assert_msg(itest_get(gw->port, bad_gateway_paths[_i], &r) == 0,
	    "%s: %s", bad_gateway_paths[_i], itest_error());
	itest_assert_error(&r, 502, "bad_gateway");
	itest_resp_clear(&r);

	/* The gateway is still fine afterwards. */
	ck_assert_int_eq(itest_get(gw->port, "/echo/after", &r), 0);
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
}
END_TEST

START_TEST(upstream_timeout_504)
{
	struct itest_resp r;
	int64_t t0 = itest_now_ms(), dt;

	ck_assert_msg(itest_get(gw->port, "/stall", &r) == 0, "%s",
	    itest_error());
	dt = itest_now_ms() - t0;
	itest_assert_error(&r, 504, "gateway_timeout");
	ck_assert_msg(dt >= 250 && dt < 5000, "504 after %lld ms (timeout "
	    "300ms)", (long long)dt);
	itest_resp_clear(&r);

	/* A slow answer within the timeout still passes. */
	ck_assert_int_eq(itest_get(gw->port, "/slow?ms=50", &r), 0);
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
}
END_TEST

static Suite *
framing_suite(void)
{
	Suite *s = suite_create("framing_e2e");
	TCase *tc = tcase_create("framing");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, smuggling_rejected_before_upstream, 0,
	    ITEST_NITEMS(smuggling));
	tcase_add_test(tc, body_within_limit_passes);
	tcase_add_test(tc, content_length_over_limit_413);
	tcase_add_test(tc, chunked_over_limit_413);
	tcase_add_test(tc, headers_over_limit_431);
	tcase_add_loop_test(tc, upstream_failure_502, 0,
	    ITEST_NITEMS(bad_gateway_paths));
	tcase_add_test(tc, upstream_timeout_504);
	suite_add_tcase(s, tc);
	return s;
}

ITEST_MAIN(framing_suite, true)
