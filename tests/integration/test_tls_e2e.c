/*
 * test_tls_e2e.c -- TLS listeners and https upstreams (issue #2), through
 * the real binary.
 *
 * The gateway serves HTTPS with the test PKI of tests/data/tls (a CA and
 * a leaf for localhost / 127.0.0.1); the test is an OpenSSL client that
 * verifies the gateway against that CA.  Covered: a proxied request over
 * TLS, X-Forwarded-Proto and the span's http.url saying https, the
 * framing guard over TLS (RFC 9112 section 6.1: CL + TE gets 400 and is
 * never forwarded), and https upstreams (a canned TLS server) verified
 * against the right CA, a wrong CA and a wrong name (502), or not
 * verified at all.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "itest.h"

static struct itest_proc *be, *gw, *tls_up;

/* A file under tests/data. */
static const char *
data(const char *rel)
{
	static char buf[8][4096];
	static unsigned n;
	const char *d = getenv("TS_TEST_DATA");
	char *b = buf[n++ % 8];

	snprintf(b, sizeof buf[0], "%s/%s", d != NULL ? d : "tests/data",
	    rel);
	return b;
}

static void
setup(void)
{
	be = itest_backend_start("one");
	tls_up = itest_canned_start("HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 16\r\n"
	    "Connection: close\r\n\r\nfrom tls backend", data("tls/server.pem"),
	    data("tls/server.key"));
}

static void
teardown(void)
{
	itest_teardown();
	be = gw = tls_up = NULL;
}

/* The HTTPS gateway: routes to the fake backend and to the TLS upstream. */
static void
start_listener(bool tls)
{
	char *yaml, *tls_line;

	tls_line = tls ? itest_strf("  tls: {cert: \"%s\", key: \"%s\"}\n",
	    data("tls/server.pem"), data("tls/server.key")) : strdup("");
	yaml = itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  workers: 1\n"
	    "%s"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: tls-ok\n"
	    "    path_prefix: /up-ok\n"
	    "    upstream: {url: \"https://127.0.0.1:%u\", tls_verify: true,"
	    " tls_ca_file: \"%s\", timeout: 5s, keepalive: 0}\n"
	    "  - name: tls-wrong-ca\n"
	    "    path_prefix: /up-wrong-ca\n"
	    "    upstream: {url: \"https://127.0.0.1:%u\", tls_verify: true,"
	    " tls_ca_file: \"%s\", timeout: 5s, keepalive: 0}\n"
	    "  - name: tls-wrong-name\n"
	    "    path_prefix: /up-wrong-name\n"
	    "    upstream: {url: \"https://127.0.0.1:%u\", tls_verify: true,"
	    " tls_ca_file: \"%s\", tls_server_name: wrong.example,"
	    " timeout: 5s, keepalive: 0}\n"
	    "  - name: tls-noverify\n"
	    "    path_prefix: /up-noverify\n"
	    "    upstream: {url: \"https://127.0.0.1:%u\", tls_verify: false,"
	    " tls_ca_file: \"%s\", timeout: 5s, keepalive: 0}\n"
	    "  - name: dead\n"
	    "    path_prefix: /dead\n"
	    "    upstream: {url: \"http://127.0.0.1:1\", timeout: 2s}\n"
	    "  - name: api\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "cors: {allowed_origins: [\"https://app.test\"]}\n"
	    "exporter: {type: stdout, flush_interval: 10ms}\n"
	    "logging: {level: info, access_log: stdout}\n",
	    tls_line, tls_up->port, data("tls/ca.pem"),
	    tls_up->port, data("integration/tls/other-ca.pem"),
	    tls_up->port, data("tls/ca.pem"),
	    tls_up->port, data("integration/tls/other-ca.pem"),
	    be->port);
	gw = itest_gateway_start(yaml);
	free(yaml);
	free(tls_line);
	ck_assert_msg(gw->https == tls, "the gateway said http%s://",
	    gw->https ? "s" : "");
}

static void
start(void)
{
	start_listener(true);
}

/* OpenSSL's error queue as text, for messages. */
static const char *
ssl_errors(void)
{
	static char buf[512];
	unsigned long e;
	size_t n = 0;

	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0 && n + 130 < sizeof buf) {
		ERR_error_string_n(e, buf + n, sizeof buf - n);
		n += strlen(buf + n);
		buf[n++] = ' ';
		buf[n] = '\0';
	}
	return buf;
}

/*
 * Send raw over TLS to the gateway (verified against the test CA, SNI
 * localhost) and read until the server closes; parse into r.
 */
static void
tls_exchange(const char *raw, size_t len, char **out, size_t *outlen)
{
	struct sockaddr_in sin;
	struct timeval tv = { 4, 0 };	/* a reply is local: fast */
	SSL_CTX *ctx;
	SSL *ssl;
	char *buf = NULL;
	size_t blen = 0, cap = 0;
	int fd, n, one = 1;

	ctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ck_assert_msg(SSL_CTX_load_verify_locations(ctx, data("tls/ca.pem"),
	    NULL) == 1, "load CA: %s", ssl_errors());
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(fd, -1);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(gw->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0,
	    "connect: %s", strerror(errno));
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	SSL_set1_host(ssl, "localhost");
	ck_assert_msg(SSL_connect(ssl) == 1, "TLS handshake with the "
	    "gateway: %s (verify %ld)", ssl_errors(),
	    SSL_get_verify_result(ssl));
	ck_assert_int_eq(SSL_get_verify_result(ssl), X509_V_OK);
	ck_assert_int_eq(SSL_write(ssl, raw, (int)len), (int)len);
	for (;;) {
		if (cap - blen < 4096) {
			cap = cap == 0 ? 65536 : cap * 2;
			buf = realloc(buf, cap);
		}
		n = SSL_read(ssl, buf + blen, (int)(cap - blen));
		if (n <= 0)
			break;
		blen += (size_t)n;
	}
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	*out = buf;
	*outlen = blen;
}

static void
tls_request(const char *raw, size_t len, struct itest_resp *r)
{
	char *buf;
	size_t blen;

	tls_exchange(raw, len, &buf, &blen);
	ck_assert_msg(itest_resp_parse(buf != NULL ? buf : "", blen, r) == 0,
	    "no response over TLS within 4 s (%s, %zu bytes) to:\n%s",
	    itest_error(), blen, raw);
	free(buf);
}

static void
tls_get(const char *path, struct itest_resp *r)
{
	char *raw;

	raw = itest_strf("GET %s HTTP/1.1\r\nHost: localhost\r\n"
	    "Connection: close\r\n\r\n", path);
	tls_request(raw, strlen(raw), r);
	free(raw);
}

START_TEST(https_listener_proxies)
{
	struct itest_resp r;
	json_t *j, *span;
	const char *url;

	start();
	tls_get("/echo/tls", &r);
	ck_assert_msg(r.status == 200, "status %d: %s", r.status, r.body);
	j = itest_resp_json(&r);
	ck_assert_str_eq(json_string_value(json_object_get(j, "path")),
	    "/echo/tls");
	ck_assert_pstr_eq(itest_echo_header(j, "X-Forwarded-Proto", 0),
	    "https");
	json_decref(j);
	itest_resp_clear(&r);

	span = itest_json_line_wait(gw, ITEST_STDOUT, "span_id", "resource",
	    "GET /echo/tls", ITEST_TIMEOUT_MS);
	if (span == NULL) {
		/* The resource may be the route; find it by http.url. */
		json_t *arr = itest_json_lines(gw, ITEST_STDOUT, "span_id");

		span = json_incref(json_array_get(arr, 0));
		json_decref(arr);
	}
	ck_assert_msg(span != NULL, "no span on stdout");
	url = json_string_value(json_object_get(json_object_get(span, "meta"),
	    "http.url"));
	ck_assert_msg(url != NULL && strncmp(url, "https://", 8) == 0,
	    "span http.url %s", url != NULL ? url : "(absent)");
	json_decref(span);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDOUT,
	    "\"http.url_details.path\":\"/echo/tls\"", 0,
	    ITEST_TIMEOUT_MS) > 0, "no access-log line");
}
END_TEST

/* Plain HTTP on the TLS port is not proxied. */
START_TEST(plain_http_on_tls_port)
{
	struct itest_conn *c;
	uint64_t before;

	start();
	before = itest_backend_requests(be);
	c = itest_connect(gw->port);
	ck_assert_int_eq(itest_sendf(c, "GET /echo HTTP/1.1\r\n"
	    "Host: localhost\r\n\r\n"), 0);
	ck_assert_msg(itest_wait_closed(c, ITEST_TIMEOUT_MS),
	    "the TLS listener kept a plain-HTTP connection open");
	itest_conn_free(c);
	ck_assert_uint_eq(itest_backend_requests(be), before);
}
END_TEST

/* The framing guard works over TLS too. */
START_TEST(framing_guard_over_tls)
{
	static const char smuggle[] =
	    "POST /echo HTTP/1.1\r\nHost: localhost\r\n"
	    "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\n\r\nGET /echo/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
	struct itest_resp r;
	uint64_t before;

	start();
	before = itest_backend_requests(be);
	tls_request(smuggle, sizeof smuggle - 1, &r);
	itest_assert_error(&r, 400, "bad_request");
	ck_assert_msg(r.closed || itest_resp_header(&r, "Connection") != NULL,
	    "no close after a refusal");
	itest_resp_clear(&r);
	ck_assert_uint_eq(itest_backend_requests(be), before);

	/* A good request on a new TLS connection still works. */
	tls_get("/echo/after", &r);
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
}
END_TEST

/*
 * Pipelined requests over TLS, one with a body larger than a
 * connection's input buffer, all in one write: answered in order.
 */
START_TEST(pipelined_over_tls)
{
	static char body[100001];
	const char *p1, *p2, *p3;
	char *raw, *buf;
	size_t blen, n = 0;
	const char *q;

	start();
	memset(body, 'b', sizeof body - 1);
	/* The first is slow: the rest piles up while it is served. */
	raw = itest_strf("GET /slow?ms=50&t=1 HTTP/1.1\r\nHost: localhost\r\n"
	    "\r\n"
	    "POST /echo/t2 HTTP/1.1\r\nHost: localhost\r\n"
	    "Content-Length: %zu\r\n\r\n%s"
	    "GET /echo/t3 HTTP/1.1\r\nHost: localhost\r\n"
	    "Connection: close\r\n\r\n", sizeof body - 1, body);
	tls_exchange(raw, strlen(raw), &buf, &blen);
	ck_assert_ptr_nonnull(buf);
	buf[blen < 1 ? 0 : blen - 1] = '\0';
	for (q = buf; (q = strstr(q, "HTTP/1.1 200 OK\r\n")) != NULL; q++)
		n++;
	ck_assert_msg(n == 3, "%zu responses in:\n%.2000s", n, buf);
	p1 = strstr(buf, "ms=50&t=1");
	p2 = strstr(buf, "\"/echo/t2\"");
	p3 = strstr(buf, "\"/echo/t3\"");
	ck_assert(p1 != NULL && p2 != NULL && p3 != NULL);
	ck_assert(p1 < p2 && p2 < p3);
	ck_assert_ptr_nonnull(strstr(p2, "\"body_bytes\":100000"));
	free(buf);
	free(raw);
}
END_TEST

/* https upstreams: right CA 200; wrong CA or name 502; no verify 200. */
static const struct {
	const char *path;
	int status;
} upstreams[] = {
	{ "/up-ok", 200 },
	{ "/up-wrong-ca", 502 },
	{ "/up-wrong-name", 502 },
	{ "/up-noverify", 200 },
	{ "/dead", 502 },
};

START_TEST(https_upstream)
{
	struct itest_resp r;

	start();
	tls_get(upstreams[_i].path, &r);
	ck_assert_msg(r.status == upstreams[_i].status, "%s: status %d, "
	    "expected %d: %s", upstreams[_i].path, r.status,
	    upstreams[_i].status, r.body);
	if (r.status == 200)
		ck_assert_str_eq(r.body, "from tls backend");
	else
		itest_assert_error(&r, 502, "bad_gateway");
	itest_resp_clear(&r);
}
END_TEST

/* A preflight answered by the gateway itself, over TLS. */
START_TEST(preflight_over_tls)
{
	static const char pre[] =
	    "OPTIONS /echo HTTP/1.1\r\nHost: localhost\r\n"
	    "Origin: https://app.test\r\n"
	    "Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n";
	struct itest_resp r;

	start();
	tls_request(pre, sizeof pre - 1, &r);
	ck_assert_int_eq(r.status, 204);
	ck_assert_pstr_eq(itest_resp_header(&r, "Access-Control-Allow-Origin"),
	    "https://app.test");
	itest_resp_clear(&r);
}
END_TEST

/* The same https upstreams behind a plain-HTTP listener. */
START_TEST(https_upstream_plain_listener)
{
	struct itest_resp r;
	char *raw;

	start_listener(false);
	raw = itest_strf("GET %s HTTP/1.1\r\nHost: localhost\r\n"
	    "Connection: close\r\n\r\n", upstreams[_i].path);
	ck_assert_msg(itest_request(gw->port, raw, strlen(raw), &r, 0,
	    ITEST_TIMEOUT_MS) == 0, "%s", itest_error());
	free(raw);
	ck_assert_msg(r.status == upstreams[_i].status, "%s: status %d, "
	    "expected %d: %s", upstreams[_i].path, r.status,
	    upstreams[_i].status, r.body);
	if (r.status == 200)
		ck_assert_str_eq(r.body, "from tls backend");
	else
		itest_assert_error(&r, 502, "bad_gateway");
	itest_resp_clear(&r);
}
END_TEST

static Suite *
tls_e2e_suite(void)
{
	Suite *s = suite_create("tls_e2e");
	TCase *tc = tcase_create("tls");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, https_listener_proxies);
	tcase_add_test(tc, plain_http_on_tls_port);
	tcase_add_test(tc, framing_guard_over_tls);
	tcase_add_test(tc, pipelined_over_tls);
	tcase_add_test(tc, preflight_over_tls);
	tcase_add_loop_test(tc, https_upstream, 0, ITEST_NITEMS(upstreams));
	tcase_add_loop_test(tc, https_upstream_plain_listener, 0,
	    ITEST_NITEMS(upstreams));
	suite_add_tcase(s, tc);
	return s;
}

ITEST_MAIN(tls_e2e_suite, true)
