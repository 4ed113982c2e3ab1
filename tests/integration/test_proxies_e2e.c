/*
 * test_proxies_e2e.c -- proxies in front of the gateway (issue 14 item
 * 5), through the real binary and the fake backend (its /echo tells
 * what arrived upstream):
 *
 *   server.trusted_proxies: from a trusted peer, X-Forwarded-Proto and
 *   -Host are kept and the client is the right-most untrusted
 *   X-Forwarded-For address (access log, span http.client_ip); from
 *   anyone else they are overwritten as before.
 *
 *   server.proxy_protocol: v1 and v2 headers written by hand (the bytes
 *   of proxy-protocol.txt's examples, not our encoder: there is none),
 *   whole or in pieces; LOCAL keeps the socket's address; a connection
 *   without a header is closed unanswered; a header that never completes
 *   is closed after server.limits.header_timeout.
 */
#include <sys/socket.h>

#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static struct itest_proc *be, *gw;

static void
teardown(void)
{
	itest_teardown();
	be = gw = NULL;
}

/* The gateway with server_extra under server:, tracing extra, stdout. */
static void
start(const char *server_extra, const char *tracing)
{
	char *yaml;

	be = itest_backend_start("one");
	yaml = itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  workers: 1\n"
	    "%s"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "%s"
	    "exporter: {type: stdout}\n"
	    "logging: {level: info, access_log: stdout}\n",
	    server_extra, be->port, tracing != NULL ? tracing : "");
	gw = itest_gateway_start(yaml);
	free(yaml);
}

/* Send raw on a new connection, return the echo (status 200). */
static json_t *
echo_raw(const void *raw, size_t len)
{
	struct itest_conn *c = itest_connect(gw->port);
	struct itest_resp r;
	json_t *j;

	ck_assert_int_eq(itest_send(c, raw, len, ITEST_TIMEOUT_MS), 0);
	ck_assert_msg(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS) == 0,
	    "%s", itest_error());
	ck_assert_msg(r.status == 200, "status %d: %s", r.status, r.body);
	j = itest_resp_json(&r);
	itest_resp_clear(&r);
	itest_conn_free(c);
	return j;
}

/* The access-log line of path (stdout). */
static json_t *
log_line(const char *path)
{
	json_t *j = itest_json_line_wait(gw, ITEST_STDOUT, "request_id",
	    "http.url_details.path", path, ITEST_TIMEOUT_MS);

	ck_assert_msg(j != NULL, "no access-log line for %s", path);
	return j;
}

/* The meta of the stdout span of path (waits for it). */
static const char *
span_meta(json_t **span, const char *path, const char *key)
{
	int64_t deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	json_t *arr, *j;
	size_t i;

	for (*span = NULL; *span == NULL; poll(NULL, 0, 20)) {
		ck_assert_msg(itest_now_ms() < deadline, "no span for %s", path);
		arr = itest_json_lines(gw, ITEST_STDOUT, "span_id");
		json_array_foreach(arr, i, j) {
			const char *u = json_string_value(json_object_get(
			    json_object_get(j, "meta"), "http.url"));

			if (*span == NULL && u != NULL && strstr(u, path) !=
			    NULL)
				*span = json_incref(j);
		}
		json_decref(arr);
	}
	return json_string_value(json_object_get(json_object_get(*span,
	    "meta"), key));
}

static const char *
jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

START_TEST(trusted_peer_keeps_forwarded_headers)
{
	json_t *j, *span;

	/* The test client is 127.0.0.1; 10/8 stands for the inner hops. */
	start("  trusted_proxies: [\"127.0.0.1\", \"10.0.0.0/8\"]\n",
	    "tracing: {client_ip: true}\n");
	j = echo_raw(ITEST_LIT("GET /echo/t HTTP/1.1\r\nHost: gw.internal\r\n"
	    "X-Forwarded-For: 192.0.2.66, 203.0.113.9\r\n"
	    "X-Forwarded-For: 10.1.2.3\r\n"
	    "X-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: app.example.com\r\n\r\n"));
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-proto", 0),
	    "https");
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-host", 0),
	    "app.example.com");
	ck_assert_ptr_null(itest_echo_header(j, "x-forwarded-proto", 1));
	ck_assert_ptr_null(itest_echo_header(j, "x-forwarded-host", 1));
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "192.0.2.66, 203.0.113.9, 10.1.2.3, 127.0.0.1");
	json_decref(j);
	/* Right to left: 10.1.2.3 trusted, 203.0.113.9 is the client. */
	j = log_line("/echo/t");
	ck_assert_str_eq(jstr(j, "network.client.ip"), "203.0.113.9");
	json_decref(j);
	ck_assert_str_eq(span_meta(&span, "/echo/t", "http.client_ip"),
	    "203.0.113.9");
	json_decref(span);
	ck_assert_str_eq(span_meta(&span, "/echo/t", "network.client.ip"),
	    "203.0.113.9");
	json_decref(span);

	/* Every hop trusted: the left-most; garbage: the address right of it. */
	j = echo_raw(ITEST_LIT("GET /echo/all HTTP/1.1\r\nHost: x\r\n"
	    "X-Forwarded-For: 10.9.9.9,10.1.1.1\r\n\r\n"));
	json_decref(j);
	j = log_line("/echo/all");
	ck_assert_str_eq(jstr(j, "network.client.ip"), "10.9.9.9");
	json_decref(j);
	j = echo_raw(ITEST_LIT("GET /echo/junk HTTP/1.1\r\nHost: x\r\n"
	    "X-Forwarded-For: 198.51.100.1, unknown, 10.1.1.1\r\n\r\n"));
	json_decref(j);
	j = log_line("/echo/junk");
	ck_assert_str_eq(jstr(j, "network.client.ip"), "10.1.1.1");
	json_decref(j);
	/* No X-Forwarded-For: the peer; no -Proto/-Host: ours. */
	j = echo_raw(ITEST_LIT("GET /echo/none HTTP/1.1\r\nHost: h.test\r\n"
	    "\r\n"));
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-proto", 0),
	    "http");
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-host", 0),
	    "h.test");
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "127.0.0.1");
	json_decref(j);
	j = log_line("/echo/none");
	ck_assert_str_eq(jstr(j, "network.client.ip"), "127.0.0.1");
	json_decref(j);
}
END_TEST

START_TEST(untrusted_peer_is_overwritten)
{
	json_t *j, *span;

	start("  trusted_proxies: [\"10.0.0.0/8\", \"::1\"]\n", NULL);
	j = echo_raw(ITEST_LIT("GET /echo/u HTTP/1.1\r\nHost: gw.internal\r\n"
	    "X-Forwarded-For: 203.0.113.9\r\n"
	    "X-Forwarded-Proto: https\r\n"
	    "X-Forwarded-Host: evil.example\r\n\r\n"));
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-proto", 0),
	    "http");
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-host", 0),
	    "gw.internal");
	ck_assert_ptr_null(itest_echo_header(j, "x-forwarded-proto", 1));
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "203.0.113.9, 127.0.0.1");
	json_decref(j);
	j = log_line("/echo/u");
	ck_assert_str_eq(jstr(j, "network.client.ip"), "127.0.0.1");
	json_decref(j);
	/* tracing.client_ip is off: no http.client_ip on the span. */
	ck_assert_ptr_null(span_meta(&span, "/echo/u", "http.client_ip"));
	json_decref(span);
}
END_TEST

/* proxy-protocol.txt 2.2: the v2 signature, as bytes. */
#define V2_SIG "\r\n\r\n\0\r\nQUIT\n"

START_TEST(proxy_protocol_v1_and_v2)
{
	/* v2 PROXY TCP over IPv6: 2001:db8::7 port 40001 -> ::1 port 8080. */
	static const char v2_tcp6[] = V2_SIG "\x21\x21\x00\x24"
	    "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07"
	    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"
	    "\x9c\x41\x1f\x90"
	    "GET /echo/v2 HTTP/1.1\r\nHost: x\r\n\r\n";
	/* v2 PROXY TCP4 192.0.2.44:1234 with an AWS-style TLV (0xEA). */
	static const char v2_tcp4[] = V2_SIG "\x21\x11\x00\x13"
	    "\xc0\x00\x02\x2c\x0a\x00\x00\x01\x04\xd2\x1f\x90"
	    "\xea\x00\x04vpce"
	    "GET /echo/v2tlv HTTP/1.1\r\nHost: x\r\n\r\n";
	/* v2 LOCAL: the balancer's own health check. */
	static const char v2_local[] = V2_SIG "\x20\x00\x00\x00"
	    "GET /echo/local HTTP/1.1\r\nHost: x\r\n\r\n";
	struct itest_conn *c;
	struct itest_resp r;
	json_t *j;

	start("  proxy_protocol: true\n", NULL);
	j = echo_raw(ITEST_LIT("PROXY TCP4 198.51.100.22 10.0.0.1 40000 8080"
	    "\r\nGET /echo/v1 HTTP/1.1\r\nHost: x\r\n\r\n"));
	/* The balancer is transparent: the client is the header's. */
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "198.51.100.22");
	json_decref(j);
	j = log_line("/echo/v1");
	ck_assert_str_eq(jstr(j, "network.client.ip"), "198.51.100.22");
	json_decref(j);

	j = echo_raw(v2_tcp6, sizeof v2_tcp6 - 1);
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "2001:db8::7");
	json_decref(j);
	j = echo_raw(v2_tcp4, sizeof v2_tcp4 - 1);
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "192.0.2.44");
	json_decref(j);
	j = echo_raw(v2_local, sizeof v2_local - 1);
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "127.0.0.1");
	json_decref(j);

	/* In pieces: the header cut in its middle, then two requests. */
	c = itest_connect(gw->port);
	ck_assert_int_eq(itest_send(c, ITEST_LIT("PROXY TCP6 2001:db8::5 "),
	    ITEST_TIMEOUT_MS), 0);
	ck_assert(!itest_readable(c, 200));
	ck_assert_int_eq(itest_send(c, ITEST_LIT("2001:db8::1 5 443\r\nGET "
	    "/echo/p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/p2 HTTP/1.1\r\n"
	    "Host: x\r\n\r\n"), ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
	ck_assert_int_eq(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 200);
	j = itest_resp_json(&r);
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "2001:db8::5");
	json_decref(j);
	itest_resp_clear(&r);
	itest_conn_free(c);
	j = log_line("/echo/p2");
	ck_assert_str_eq(jstr(j, "network.client.ip"), "2001:db8::5");
	json_decref(j);
}
END_TEST

/* Poll /metrics until the refusal counter reaches want. */
static void
refused_wait(double want)
{
	int64_t deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	struct itest_resp r;
	double v;

	for (;;) {
		ck_assert_int_eq(itest_get(gw->admin_port, "/metrics", &r), 0);
		v = itest_metric(r.body,
		    "tracestitch_proxy_protocol_refused_total", NULL);
		itest_resp_clear(&r);
		if (v == want)
			return;
		ck_assert_msg(itest_now_ms() < deadline,
		    "proxy_protocol_refused_total %f, want %f", v, want);
		poll(NULL, 0, 20);
	}
}

START_TEST(proxy_protocol_required)
{
	struct itest_conn *c;
	int64_t t0;

	start("  proxy_protocol: true\n"
	    "  limits: {header_timeout: 300ms, idle_timeout: 60s}\n", NULL);
	/* A plain request where the header must be: closed, unanswered. */
	c = itest_connect(gw->port);
	ck_assert_int_eq(itest_send(c, ITEST_LIT("GET /echo/x HTTP/1.1\r\n"
	    "Host: x\r\n\r\n"), ITEST_TIMEOUT_MS), 0);
	ck_assert(itest_wait_closed(c, ITEST_TIMEOUT_MS));
	ck_assert_uint_eq(c->len, 0);
	itest_conn_free(c);
	refused_wait(1);
	/* A malformed one (a bad port) likewise. */
	c = itest_connect(gw->port);
	ck_assert_int_eq(itest_send(c, ITEST_LIT("PROXY TCP4 1.2.3.4 5.6.7.8 "
	    "080 80\r\n"), ITEST_TIMEOUT_MS), 0);
	ck_assert(itest_wait_closed(c, ITEST_TIMEOUT_MS));
	ck_assert_uint_eq(c->len, 0);
	itest_conn_free(c);
	refused_wait(2);
	/*
	 * A header that never completes: closed by header_timeout (300 ms),
	 * long before idle_timeout (60 s), unanswered.
	 */
	c = itest_connect(gw->port);
	t0 = itest_now_ms();
	ck_assert_int_eq(itest_send(c, ITEST_LIT("PROXY TCP4 1.2.3.4"),
	    ITEST_TIMEOUT_MS), 0);
	ck_assert(itest_wait_closed(c, 30000));
	ck_assert_int_ge(itest_now_ms() - t0, 250);
	ck_assert_uint_eq(c->len, 0);
	itest_conn_free(c);
	/* Nothing at all: the same timeout. */
	c = itest_connect(gw->port);
	ck_assert(itest_wait_closed(c, 30000));
	itest_conn_free(c);
	refused_wait(2);
}
END_TEST

/*
 * h2c with prior knowledge behind the PROXY header: the preface is looked
 * for after the header (RFC 9113 3.4: the server's first frame is
 * SETTINGS), and a plain HTTP/1.1 request still works beside it.
 */
START_TEST(proxy_protocol_then_h2c)
{
	static const char pre[] = "PROXY TCP4 198.51.100.9 10.0.0.1 5000 80"
	    "\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	    "\0\0\0\x04\0\0\0\0\0";	/* an empty SETTINGS frame */
	struct itest_conn *c;
	unsigned char frame[9];
	ssize_t n = 0, k;
	json_t *j;

	start("  proxy_protocol: true\n  http2_cleartext: true\n", NULL);
	c = itest_connect(gw->port);
	ck_assert_int_eq(itest_send(c, pre, sizeof pre - 1, ITEST_TIMEOUT_MS),
	    0);
	while (n < (ssize_t)sizeof frame && itest_readable(c,
	    ITEST_TIMEOUT_MS)) {
		k = recv(c->fd, frame + n, sizeof frame - (size_t)n, 0);
		if (k <= 0)
			break;
		n += k;
	}
	ck_assert_int_eq(n, (ssize_t)sizeof frame);
	ck_assert_uint_eq(frame[3], 0x04);	/* SETTINGS */
	ck_assert_uint_eq(frame[4] & 0x01, 0);	/* not an ACK */
	itest_conn_free(c);
	j = echo_raw(ITEST_LIT("PROXY TCP4 198.51.100.10 10.0.0.1 5001 80\r\n"
	    "GET /echo/h1 HTTP/1.1\r\nHost: x\r\n\r\n"));
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "198.51.100.10");
	json_decref(j);
}
END_TEST

static Suite *
proxies_suite(void)
{
	Suite *s = suite_create("proxies");
	TCase *tc = tcase_create("proxies");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, trusted_peer_keeps_forwarded_headers);
	tcase_add_test(tc, untrusted_peer_is_overwritten);
	tcase_add_test(tc, proxy_protocol_v1_and_v2);
	tcase_add_test(tc, proxy_protocol_required);
	tcase_add_test(tc, proxy_protocol_then_h2c);
	suite_add_tcase(s, tc);
	return s;
}

ITEST_MAIN(proxies_suite, true)
