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
 *
 *   server.listen[i].proxy_protocol on a TLS listener (issue 14 item 5):
 *   the header comes first on the TCP connection, then the TLS handshake
 *   (HAProxy's send-proxy-v2, AWS NLB in front of a TLS target); the
 *   option is the listener's (a second listener of the same gateway
 *   takes TLS without a header); a missing or bad header is refused.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

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

static void refused_wait(double);

/* A file under tests/data. */
static const char *
data(const char *rel)
{
	static char buf[4][4096];
	static unsigned n;
	const char *d = getenv("TS_TEST_DATA");
	char *b = buf[n++ % 4];

	snprintf(b, sizeof buf[0], "%s/%s", d != NULL ? d : "tests/data",
	    rel);
	return b;
}

/*
 * The HTTPS gateway with two listeners: ports[0] wants a PROXY header
 * before the handshake, ports[1] (the short form) does not.
 */
static void
start_tls_pp(void)
{
	char *yaml;

	be = itest_backend_start("one");
	yaml = itest_strf(
	    "server:\n"
	    "  listen:\n"
	    "    - {address: \"127.0.0.1:0\", proxy_protocol: true}\n"
	    "    - \"127.0.0.1:0\"\n"
	    "  workers: 1\n"
	    "  tls: {cert: \"%s\", key: \"%s\"}\n"
	    "  limits: {header_timeout: 2s}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: stdout}\n",
	    data("tls/server.pem"), data("tls/server.key"), be->port);
	gw = itest_gateway_start(yaml);
	free(yaml);
	ck_assert(gw->https);
	ck_assert_uint_eq(gw->n_ports, 2);
}

/*
 * Connect to port, write pre (a PROXY header, or nothing), then speak
 * TLS (verifying the gateway against the test CA) and send raw; the
 * answer up to the close is returned (caller frees), or NULL when the
 * handshake failed.
 */
static char *
tls_pp_exchange(uint16_t port, const void *pre, size_t npre,
    const char *raw)
{
	struct sockaddr_in sin;
	struct timeval tv = { 5, 0 };
	SSL_CTX *ctx;
	SSL *ssl;
	char *buf;
	size_t blen = 0, cap = 65536;
	int fd, n, one = 1;

	ctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, data("tls/ca.pem"),
	    NULL), 1);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(fd, -1);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0,
	    "connect: %s", strerror(errno));
	if (npre > 0)
		ck_assert_int_eq(write(fd, pre, npre), (ssize_t)npre);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	SSL_set1_host(ssl, "localhost");
	if (SSL_connect(ssl) != 1) {
		ERR_clear_error();
		SSL_free(ssl);
		close(fd);
		SSL_CTX_free(ctx);
		return NULL;
	}
	ck_assert_int_eq(SSL_get_verify_result(ssl), X509_V_OK);
	ck_assert_int_eq(SSL_write(ssl, raw, (int)strlen(raw)),
	    (int)strlen(raw));
	buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	while ((n = SSL_read(ssl, buf + blen, (int)(cap - 1 - blen))) > 0)
		blen += (size_t)n;
	buf[blen] = '\0';
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	return buf;
}

/* GET path over TLS behind pre on port: the backend's echo (200). */
static json_t *
tls_pp_echo(uint16_t port, const void *pre, size_t npre, const char *path)
{
	struct itest_resp r;
	char *raw, *got;
	json_t *j;

	raw = itest_strf("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close"
	    "\r\n\r\n", path);
	got = tls_pp_exchange(port, pre, npre, raw);
	ck_assert_msg(got != NULL, "TLS handshake after the PROXY header "
	    "failed (%s)", path);
	ck_assert_msg(itest_resp_parse(got, strlen(got), &r) == 0, "%s: %s",
	    itest_error(), got);
	ck_assert_msg(r.status == 200, "status %d: %s", r.status, got);
	j = itest_resp_json(&r);
	itest_resp_clear(&r);
	free(got);
	free(raw);
	return j;
}

/* proxy-protocol.txt 2.2: the v2 signature, as bytes. */
#define V2_SIG "\r\n\r\n\0\r\nQUIT\n"

START_TEST(proxy_protocol_before_tls)
{
	/* v2 PROXY TCP4 203.0.113.9:5555 -> 10.0.0.1:443, as HAProxy's
	 * send-proxy-v2 writes it, with an AWS-style TLV. */
	static const char v2[] = V2_SIG "\x21\x11\x00\x13"
	    "\xcb\x00\x71\x09\x0a\x00\x00\x01\x15\xb3\x01\xbb"
	    "\xea\x00\x04vpce";
	static const char v1[] = "PROXY TCP6 2001:db8::9 2001:db8::1 4000 "
	    "443\r\n";
	json_t *j;

	start_tls_pp();
	j = tls_pp_echo(gw->ports[0], v2, sizeof v2 - 1, "/echo/tls-v2");
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "203.0.113.9");
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-proto", 0),
	    "https");
	json_decref(j);
	j = log_line("/echo/tls-v2");
	ck_assert_str_eq(jstr(j, "network.client.ip"), "203.0.113.9");
	json_decref(j);

	j = tls_pp_echo(gw->ports[0], v1, sizeof v1 - 1, "/echo/tls-v1");
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "2001:db8::9");
	json_decref(j);

	/* The other listener is TLS without the PROXY protocol. */
	j = tls_pp_echo(gw->ports[1], NULL, 0, "/echo/tls-plain");
	ck_assert_str_eq(itest_echo_header(j, "x-forwarded-for", 0),
	    "127.0.0.1");
	json_decref(j);
	refused_wait(0);
}
END_TEST

/*
 * On the PROXY listener a handshake without the header (its ClientHello
 * is not a PROXY header) and a bad v2 header are refused: closed, never
 * answered, counted; a header that never completes is cut by
 * header_timeout.
 */
START_TEST(proxy_protocol_before_tls_refusals)
{
	/* Version 3 in the version/command byte: not v2 (2.2). */
	static const char bad_v2[] = V2_SIG "\x31\x11\x00\x0c"
	    "\xcb\x00\x71\x09\x0a\x00\x00\x01\x15\xb3\x01\xbb";
	struct itest_conn *c;
	int64_t t0;

	start_tls_pp();
	ck_assert_ptr_null(tls_pp_exchange(gw->ports[0], NULL, 0,
	    "GET /echo/x HTTP/1.1\r\nHost: x\r\n\r\n"));
	refused_wait(1);
	ck_assert_ptr_null(tls_pp_exchange(gw->ports[0], bad_v2,
	    sizeof bad_v2 - 1, "GET /echo/x HTTP/1.1\r\nHost: x\r\n\r\n"));
	refused_wait(2);
	/* Half a header, then nothing: closed after header_timeout (2 s). */
	c = itest_connect(gw->ports[0]);
	t0 = itest_now_ms();
	ck_assert_int_eq(itest_send(c, V2_SIG "\x21\x11", 14,
	    ITEST_TIMEOUT_MS), 0);
	ck_assert(itest_wait_closed(c, ITEST_TIMEOUT_MS));
	ck_assert_int_ge(itest_now_ms() - t0, 1500);
	ck_assert_uint_eq(c->len - c->off, 0);
	itest_conn_free(c);
	ck_assert_uint_eq(itest_backend_requests(be), 0);
}
END_TEST

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
	tcase_add_test(tc, proxy_protocol_before_tls);
	tcase_add_test(tc, proxy_protocol_before_tls_refusals);
	suite_add_tcase(s, tc);
	return s;
}

ITEST_MAIN(proxies_suite, true)
