/*
 * test_tls.c -- TLS contexts (loading errors name the file) and https
 * upstreams against an in-process TLS stub server built with
 * tls_server_ctx_new() and the test PKI in tests/data/tls (gen.sh).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "ts_test.h"
#include "proto/tls.h"
#include "upstream/upstream.h"
#include "util.h"

#define OK_HELLO "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

enum stub_mode {
	STUB_TLS = 0,		/* TLS, answer OK_HELLO to every request */
	STUB_PLAIN_REPLY,	/* plain TCP: answer HTTP to the ClientHello */
	STUB_SILENT,		/* accept and say nothing */
};

static struct event_base *base;
static SSL_CTX *server_ctx;
static struct evconnlistener *lev;
static enum stub_mode mode;
static int stub_conns, stub_reqs;
#define MAX_STUB_BEVS 16
static struct bufferevent *stub_bevs[MAX_STUB_BEVS];	/* open ones */
static struct config_upstream conf;

static void
stub_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr p;

	if (mode == STUB_PLAIN_REPLY) {
		evbuffer_drain(in, evbuffer_get_length(in));
		bufferevent_write(bev, "HTTP/1.1 400 Bad\r\n\r\n", 20);
		return;
	}
	while ((p = evbuffer_search(in, "\r\n\r\n", 4, NULL)).pos >= 0) {
		evbuffer_drain(in, (size_t)p.pos + 4);
		stub_reqs++;
		bufferevent_write(bev, OK_HELLO, strlen(OK_HELLO));
	}
}

static void
stub_event_cb(struct bufferevent *bev, short what, void *arg)
{
	int i;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		ERR_clear_error();
		for (i = 0; i < MAX_STUB_BEVS; i++) {
			if (stub_bevs[i] == bev)
				stub_bevs[i] = NULL;
		}
		bufferevent_free(bev);
	}
}

static void
stub_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct bufferevent *bev;

	stub_conns++;
	if (mode == STUB_TLS)
		bev = tls_server_bev(base, server_ctx, fd);
	else
		bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	ck_assert_ptr_nonnull(bev);
	ck_assert_int_lt(stub_conns, MAX_STUB_BEVS);
	stub_bevs[stub_conns - 1] = bev;
	bufferevent_setcb(bev, stub_read_cb, NULL, stub_event_cb, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
setup(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	char *cause = NULL, *cert;

	base = event_base_new();
	/* ts_data_path() returns a static buffer: copy the first. */
	cert = xstrdup(ts_data_path("tls/server.pem"));
	server_ctx = tls_server_ctx_new(cert, ts_data_path("tls/server.key"),
	    &cause);
	free(cert);
	ck_assert_msg(server_ctx != NULL, "%s", cause);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lev = evconnlistener_new_bind(base, stub_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof sin);
	ck_assert_ptr_nonnull(lev);
	getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&sin, &len);
	mode = STUB_TLS;
	stub_conns = stub_reqs = 0;

	memset(&conf, 0, sizeof conf);
	conf.url = (char *)"https://127.0.0.1";
	conf.scheme = CONFIG_SCHEME_HTTPS;
	conf.host = (char *)"127.0.0.1";
	conf.port = ntohs(sin.sin_port);
	conf.authority = (char *)"127.0.0.1";
	conf.base_path = (char *)"";
	conf.connect_timeout_ms = 2000;
	conf.timeout_ms = 2000;
	conf.keepalive = 4;
	conf.tls_verify = true;
}

static void
teardown(void)
{
	int i;

	for (i = 0; i < MAX_STUB_BEVS; i++) {
		if (stub_bevs[i] != NULL)
			bufferevent_free(stub_bevs[i]);
		stub_bevs[i] = NULL;
	}
	evconnlistener_free(lev);
	SSL_CTX_free(server_ctx);
	event_base_free(base);
}

struct result {
	bool done;
	enum upstream_err err;
	const char *errstr;
	int status;
	struct evbuffer *body;
};

static int
res_head_cb(struct upstream_req *req, const struct upstream_response *r,
    void *arg)
{
	((struct result *)arg)->status = r->status;
	return 0;
}

static void
res_body_cb(struct upstream_req *req, struct evbuffer *buf, void *arg)
{
	evbuffer_add_buffer(((struct result *)arg)->body, buf);
}

static void
res_done_cb(struct upstream_req *req, enum upstream_err err,
    const char *errstr, bool head_sent, void *arg)
{
	struct result *res = arg;

	res->done = true;
	res->err = err;
	res->errstr = errstr;
}

static const struct upstream_cbs res_cbs = {
	res_head_cb, res_body_cb, res_done_cb,
};

static bool guard_fired;

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	guard_fired = true;
}

/* One GET through pool; fills res (caller frees res->body). */
static void
get_one(struct upstream_pool *pool, struct result *res)
{
	struct evbuffer *rq = evbuffer_new();
	struct event *guard = evtimer_new(base, guard_cb, NULL);
	struct timeval tv = { 5, 0 };

	memset(res, 0, sizeof *res);
	res->body = evbuffer_new();
	evbuffer_add_printf(rq, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
	ck_assert_ptr_nonnull(upstream_request(pool, rq, false, true,
	    &res_cbs, res));
	evbuffer_free(rq);
	guard_fired = false;
	evtimer_add(guard, &tv);
	while (!res->done && !guard_fired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
	ck_assert_msg(!guard_fired, "timed out");
}

/* Build a client context and pool from conf. */
static struct upstream_pool *
https_pool(bool verify, const char *ca, SSL_CTX **ctxp)
{
	struct upstream_pool *pool;
	struct upstream_addr *addrs;
	char *cause = NULL;
	SSL_CTX *ctx;
	size_t n;

	conf.tls_verify = verify;
	ctx = tls_client_ctx_new(verify, ca != NULL ? ts_data_path(ca) : NULL,
	    &cause);
	ck_assert_msg(ctx != NULL, "%s", cause);
	ck_assert_msg(upstream_resolve(&conf, &addrs, &n, &cause) == 0, "%s",
	    cause);
	pool = upstream_pool_new(base, &conf, addrs, n, ctx, &cause);
	ck_assert_msg(pool != NULL, "%s", cause);
	free(addrs);
	*ctxp = ctx;
	return pool;
}

static void
expect_hello(struct upstream_pool *pool)
{
	struct result res;

	get_one(pool, &res);
	ck_assert_msg(res.err == UPSTREAM_OK, "%s", res.errstr);
	ck_assert_int_eq(res.status, 200);
	ck_assert_uint_eq(evbuffer_get_length(res.body), 5);
	ck_assert_mem_eq(evbuffer_pullup(res.body, -1), "hello", 5);
	evbuffer_free(res.body);
}

static void
expect_failure(struct upstream_pool *pool, enum upstream_err err,
    const char *errstr)
{
	struct result res;

	get_one(pool, &res);
	ck_assert_int_eq(res.err, err);
	ck_assert_str_eq(res.errstr, errstr);
	evbuffer_free(res.body);
}

/* Verified against the CA, by IP SAN and by DNS name; keep-alive. */
START_TEST(test_verified)
{
	struct upstream_pool *pool;
	SSL_CTX *ctx;

	if (_i == 1)
		conf.tls_server_name = (char *)"localhost";
	pool = https_pool(true, "tls/ca.pem", &ctx);
	expect_hello(pool);
	expect_hello(pool);
	expect_hello(pool);
	ck_assert_uint_eq(upstream_pool_connects(pool), 1);
	ck_assert_int_eq(stub_conns, 1);
	ck_assert_int_eq(stub_reqs, 3);
	upstream_pool_free(pool);
	/* The pool holds its own reference to the context. */
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(test_wrong_name)
{
	struct upstream_pool *pool;
	SSL_CTX *ctx;

	conf.tls_server_name = (char *)"wrong.example";
	pool = https_pool(true, "tls/ca.pem", &ctx);
	expect_failure(pool, UPSTREAM_ERR_TLS,
	    "upstream TLS certificate verification failed");
	upstream_pool_free(pool);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(test_wrong_ip)
{
	struct upstream_pool *pool;
	SSL_CTX *ctx;

	conf.tls_server_name = (char *)"127.0.0.2";
	pool = https_pool(true, "tls/ca.pem", &ctx);
	expect_failure(pool, UPSTREAM_ERR_TLS,
	    "upstream TLS certificate verification failed");
	upstream_pool_free(pool);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(test_unknown_ca)
{
	struct upstream_pool *pool;
	SSL_CTX *ctx;

	/* The system store does not know the test CA. */
	pool = https_pool(true, NULL, &ctx);
	expect_failure(pool, UPSTREAM_ERR_TLS,
	    "upstream TLS certificate verification failed");
	upstream_pool_free(pool);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(test_no_verify)
{
	struct upstream_pool *pool;
	SSL_CTX *ctx;

	conf.tls_server_name = (char *)"wrong.example";
	pool = https_pool(false, NULL, &ctx);
	expect_hello(pool);
	upstream_pool_free(pool);
	SSL_CTX_free(ctx);
}
END_TEST

/* A plain HTTP server behind an https URL: the handshake fails. */
START_TEST(test_not_tls)
{
	struct upstream_pool *pool;
	SSL_CTX *ctx;

	mode = STUB_PLAIN_REPLY;
	pool = https_pool(true, "tls/ca.pem", &ctx);
	expect_failure(pool, UPSTREAM_ERR_TLS,
	    "upstream TLS handshake failed");
	upstream_pool_free(pool);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(test_handshake_timeout)
{
	struct upstream_pool *pool;
	SSL_CTX *ctx;

	mode = STUB_SILENT;
	conf.connect_timeout_ms = 100;
	pool = https_pool(true, "tls/ca.pem", &ctx);
	expect_failure(pool, UPSTREAM_ERR_TIMEOUT,
	    "upstream TLS handshake timed out");
	upstream_pool_free(pool);
	SSL_CTX_free(ctx);
}
END_TEST

START_TEST(test_https_needs_ctx)
{
	struct upstream_addr *addrs;
	char *cause = NULL;
	size_t n;

	ck_assert_msg(upstream_resolve(&conf, &addrs, &n, &cause) == 0, "%s",
	    cause);
	ck_assert_ptr_null(upstream_pool_new(base, &conf, addrs, n, NULL,
	    &cause));
	ck_assert_ptr_nonnull(strstr(cause, "TLS context"));
	free(cause);
	free(addrs);
}
END_TEST

/* Context errors name the file and carry OpenSSL's reasons. */
START_TEST(test_ctx_errors)
{
	char *cause = NULL, *path;
	SSL_CTX *ctx;

	ctx = tls_server_ctx_new("/nonexistent/cert.pem",
	    ts_data_path("tls/server.key"), &cause);
	ck_assert_ptr_null(ctx);
	ck_assert_ptr_nonnull(strstr(cause,
	    "cannot load certificate chain: /nonexistent/cert.pem: "));
	free(cause);

	path = xstrdup(ts_data_path("tls/server.pem"));
	ctx = tls_server_ctx_new(path, ts_data_path("tls/other.key"), &cause);
	ck_assert_ptr_null(ctx);
	/* OpenSSL checks the pair while loading the key. */
	ck_assert_msg(strstr(cause, "other.key: key values mismatch") != NULL,
	    "%s", cause);
	free(cause);

	/* A key file that is not a key. */
	ctx = tls_server_ctx_new(path, path, &cause);
	ck_assert_ptr_null(ctx);
	ck_assert_ptr_nonnull(strstr(cause, "cannot load private key: "));
	free(cause);
	free(path);

	ctx = tls_client_ctx_new(true, "/nonexistent/ca.pem", &cause);
	ck_assert_ptr_null(ctx);
	ck_assert_ptr_nonnull(strstr(cause,
	    "cannot load CA file: /nonexistent/ca.pem: "));
	free(cause);
	/* The queue is left empty. */
	ck_assert_uint_eq(ERR_peek_error(), 0);
}
END_TEST

START_TEST(test_errors_empty)
{
	char *s;

	ERR_clear_error();
	s = tls_errors();
	ck_assert_ptr_nonnull(s);
	free(s);
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc;

	tc = tcase_create("contexts");
	tcase_add_test(tc, test_ctx_errors);
	tcase_add_test(tc, test_errors_empty);
	suite_add_tcase(s, tc);

	tc = tcase_create("https");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_verified, 0, 2);
	tcase_add_test(tc, test_wrong_name);
	tcase_add_test(tc, test_wrong_ip);
	tcase_add_test(tc, test_unknown_ca);
	tcase_add_test(tc, test_no_verify);
	tcase_add_test(tc, test_not_tls);
	tcase_add_test(tc, test_handshake_timeout);
	tcase_add_test(tc, test_https_needs_ctx);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(tls_suite)
