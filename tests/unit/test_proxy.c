/*
 * test_proxy.c -- the request pipeline (proxy.c) through its doors: a
 * FAKE front-end (a test table of exchange.h callbacks that records the
 * head, fields, body and end it is given) and a fake upstream (a
 * listening socket on 127.0.0.1, port 0, served on the test's loop).
 *
 * Covered: route match and 404, CORS preflight allowed (204) and refused
 * (403 with its reason), CORS headers on an actual request, trace
 * extraction and injection (the upstream sees our traceparent, continuing
 * the incoming trace), and every gateway error reply -- 404, 502, 504
 * from a request, 400, 408, 413, 431, 503 through refuse() -- carrying
 * the CORS headers of an allowed origin; an upstream cut mid-body ends in
 * abort(), a departed client in gone().  The fake front-end asserts that
 * the pipeline never calls it from complete() or gone() (the no-re-entry
 * rule).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "cors.h"
#include "exchange.h"
#include "log.h"
#include "metrics.h"
#include "propagation.h"
#include "proxy.h"
#include "server.h"
#include "ts_test.h"
#include "upstream.h"
#include "group.h"
#include "health.h"

static char *const no_env[] = { NULL };

static struct config *cfg;
static struct server_gen gen;
static struct worker_gen wgen;
static struct worker_route routes[2];
static struct upstream_target targets[2];
static struct propagation_conf props[2];
static struct event_base *base;
static struct metrics *metrics;
static struct proxy_pipeline *pl;

/* The fake upstream. */
static int backend_fd = -1, backend_conn = -1;
static struct event *backend_ev, *backend_conn_ev;
static char backend_got[8192];
static size_t backend_len;
static bool backend_silent;	/* read, never answer (504) */
static bool backend_cut;	/* close after the reply (a short body) */
static const char *backend_reply;

/* What the fake front-end was given. */
static struct {
	unsigned heads, ends, aborts;
	int status;
	bool close, framed;
	char fields[4096];	/* "name: value\n" each */
	char body[4096];
	size_t body_len;
	bool in_complete;	/* the pipeline is inside complete() */
} ff;

static void
ff_add_body(const char *p, size_t n)
{
	if (n > sizeof ff.body - 1 - ff.body_len)
		n = sizeof ff.body - 1 - ff.body_len;
	memcpy(ff.body + ff.body_len, p, n);
	ff.body_len += n;
	ff.body[ff.body_len] = '\0';
}

static void
ff_head(struct exchange *x, const struct exchange_head *h)
{
	size_t i, len = 0;

	(void)x;
	ck_assert_msg(!ff.in_complete, "head() from inside complete()");
	ff.heads++;
	ff.status = h->status;
	ff.close = h->close;
	ff.framed = h->framed;
	for (i = 0; i < h->n_fields; i++) {
		const struct exchange_field *f = &h->fields[i];
		int n = snprintf(ff.fields + len, sizeof ff.fields - len,
		    "%.*s: %.*s\n", (int)f->name_len, f->name,
		    (int)f->value_len, f->value);

		if (n > 0 && (size_t)n < sizeof ff.fields - len)
			len += (size_t)n;
	}
	if (h->body != NULL)
		ff_add_body(h->body, h->body_len);
}

static bool
ff_body(struct exchange *x, struct evbuffer *buf)
{
	size_t n = evbuffer_get_length(buf);

	(void)x;
	ck_assert_msg(!ff.in_complete, "body() from inside complete()");
	ff_add_body((const char *)evbuffer_pullup(buf, -1), n);
	evbuffer_drain(buf, n);
	return false;
}

static void
ff_end(struct exchange *x)
{
	(void)x;
	ck_assert_msg(!ff.in_complete, "end() from inside complete()");
	ff.ends++;
}

static void
ff_abort(struct exchange *x)
{
	(void)x;
	ff.aborts++;
}

static const struct exchange_front fake_front = {
	ff_head, ff_body, ff_end, ff_abort, NULL,
};

/* The request of one case: fields as "Name: value" strings. */
static struct exchange x;
static struct http_field xfields[8];
static char xstore[8][256];

static void
request(enum exchange_method m, const char *method, const char *target,
    const char *const *fields)
{
	size_t i;

	memset(&x, 0, sizeof x);
	memset(&ff, 0, sizeof ff);
	x.method = m;
	x.method_name = method;
	x.target = target;
	x.major = 1;
	x.minor = 1;
	x.client = "127.0.0.1:5555";
	x.client_ip = "127.0.0.1";
	x.body_end = true;
	x.front = &fake_front;
	for (i = 0; fields != NULL && fields[i] != NULL; i++) {
		char *colon;

		ck_assert_uint_lt(i, TS_NITEMS(xfields));
		snprintf(xstore[i], sizeof xstore[i], "%s", fields[i]);
		colon = strchr(xstore[i], ':');
		*colon = '\0';
		xfields[i].name = xstore[i];
		xfields[i].name_len = strlen(xstore[i]);
		xfields[i].value = colon + 2;
		xfields[i].value_len = strlen(colon + 2);
	}
	x.fields = xfields;
	x.n_fields = i;
}

/* Run the loop until the reply ended or was aborted (5 s at most). */
static void
run_until_replied(void)
{
	int i;

	for (i = 0; i < 5000 && ff.ends == 0 && ff.aborts == 0; i++) {
		struct timeval tv = { 0, 1000 };

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

/* The front-end's part after end(): the reply left. */
static void
complete(void)
{
	ck_assert_uint_eq(ff.ends, 1);
	ck_assert_ptr_nonnull(x.pipe);
	ff.in_complete = true;
	proxy_exchange.complete(&x);
	ff.in_complete = false;
	ck_assert_ptr_null(x.pipe);
}

static bool
has_field(const char *line)
{
	return strstr(ff.fields, line) != NULL;
}

static void
backend_read_cb(evutil_socket_t fd, short what, void *arg)
{
	ssize_t n;

	(void)what;
	(void)arg;
	n = read(fd, backend_got + backend_len,
	    sizeof backend_got - 1 - backend_len);
	if (n <= 0) {
		event_free(backend_conn_ev);
		backend_conn_ev = NULL;
		close(backend_conn);
		backend_conn = -1;
		return;
	}
	backend_len += (size_t)n;
	backend_got[backend_len] = '\0';
	if (strstr(backend_got, "\r\n\r\n") != NULL && !backend_silent) {
		ck_assert_int_eq(write(fd, backend_reply,
		    strlen(backend_reply)), (ssize_t)strlen(backend_reply));
		if (backend_cut) {
			event_free(backend_conn_ev);
			backend_conn_ev = NULL;
			close(backend_conn);
			backend_conn = -1;
		}
	}
}

static void
backend_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	int c;

	(void)what;
	(void)arg;
	if ((c = accept(fd, NULL, NULL)) == -1)
		return;
	ck_assert_int_eq(backend_conn, -1);	/* one connection at a time */
	backend_conn = c;
	backend_len = 0;
	backend_got[0] = '\0';
	backend_conn_ev = event_new(base, c, EV_READ | EV_PERSIST,
	    backend_read_cb, NULL);
	event_add(backend_conn_ev, NULL);
}

/* A listening socket on 127.0.0.1 (port 0); its port in *port. */
static int
listen_local(unsigned *port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ck_assert_int_ne(fd, -1);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
setup(void)
{
	enum config_style styles[2 * CONFIG_MAX_STYLES];
	char yaml[2048], *errors = NULL, *cause = NULL;
	unsigned port, dead;
	size_t i, n_styles = 0, n_addrs;
	struct upstream_addr *addrs;
	int dfd;

	memset(&gen, 0, sizeof gen);
	memset(&wgen, 0, sizeof wgen);
	memset(routes, 0, sizeof routes);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	backend_fd = listen_local(&port);
	backend_silent = false;
	backend_cut = false;
	backend_reply = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "Vary: Accept\r\n\r\nhello";
	backend_conn = -1;
	backend_ev = event_new(base, backend_fd, EV_READ | EV_PERSIST,
	    backend_accept_cb, NULL);
	event_add(backend_ev, NULL);
	/* A port nobody listens on: connection refused (502). */
	dfd = listen_local(&dead);
	close(dfd);
	snprintf(yaml, sizeof yaml,
	    "routes:\n"
	    "  - name: api\n"
	    "    path_prefix: /api\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\", timeout: 300ms}\n"
	    "  - name: dead\n"
	    "    path_prefix: /dead\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "cors:\n"
	    "  allowed_origins: [\"https://app.example\"]\n"
	    "  allowed_methods: [GET, POST]\n"
	    "propagation: {extract: [tracecontext], inject: [tracecontext]}\n"
	    "tracing: {sample_rate: 1}\n"
	    "exporter: {type: none}\n", port, dead);
	if (config_load_string("t.yaml", yaml, strlen(yaml), no_env, &cfg,
	    &errors) != 0)
		ck_abort_msg("%s", errors);
	for (i = 0; i < cfg->propagation.n_extract; i++)
		styles[n_styles++] = cfg->propagation.extract[i];
	for (i = 0; i < cfg->propagation.n_inject; i++)
		styles[n_styles++] = cfg->propagation.inject[i];
	gen.cfg = cfg;
	gen.busy_timeout_ms = 5000;
	gen.default_cors = cors_policy_new(&cfg->cors, styles, n_styles,
	    NULL, NULL);
	ck_assert_ptr_nonnull(gen.default_cors);
	wgen.refs = 1;			/* the test's: never freed */
	wgen.gen = &gen;
	wgen.cfg = cfg;
	wgen.default_cors = gen.default_cors;
	wgen.routes = routes;
	wgen.n_routes = cfg->n_routes;
	ck_assert_uint_eq(cfg->n_routes, 2);
	for (i = 0; i < cfg->n_routes; i++) {
		propagation_conf_init(&props[i], cfg);
		routes[i].conf = &cfg->routes[i];
		routes[i].prop = &props[i];
		/* A route without its own cors map has the top-level block. */
		ck_assert_ptr_eq(cfg->routes[i].cors, &cfg->cors);
		routes[i].cors = gen.default_cors;
		/* Resolved here as server_gen_new does on the main thread. */
		ck_assert_msg(upstream_resolve(&cfg->routes[i].upstream, &addrs,
		    &n_addrs, &cause) == 0, "%s", cause);
		/* One target: the route's one server, its first address. */
		memset(&targets[i], 0, sizeof targets[i]);
		targets[i].addr = addrs[0];
		targets[i].conf = &cfg->routes[i].upstream.servers[0].up;
		targets[i].weight = 1;
		upstream_addr_name(&addrs[0], targets[i].name,
		    sizeof targets[i].name);
		targets[i].server = health_server_get(cfg->routes[i].name,
		    targets[i].name);
		routes[i].group = upstream_group_new(base,
		    &cfg->routes[i].upstream, &targets[i], 1, NULL, 1, &cause);
		free(addrs);
		ck_assert_msg(routes[i].group != NULL, "%s", cause);
	}
	metrics = metrics_new("test");
	ck_assert_int_eq(log_access_open("off", &cause), 0);
	pl = proxy_pipeline_new(0, metrics, NULL, NULL);
	proxy_pipeline_set_gen(pl, &wgen);
}

static void
teardown(void)
{
	size_t i;

	proxy_pipeline_free(pl);
	for (i = 0; i < TS_NITEMS(routes); i++)
		upstream_group_free(routes[i].group);
	health_free_all();
	if (backend_conn_ev != NULL)
		event_free(backend_conn_ev);
	backend_conn_ev = NULL;
	if (backend_conn != -1)
		close(backend_conn);
	backend_conn = -1;
	event_free(backend_ev);
	close(backend_fd);
	cors_policy_free(gen.default_cors);
	event_base_free(base);
	config_unref(cfg);
	metrics_free_all();
	ck_assert_int_eq(wgen.refs, 1);	/* every request let go of it */
}

static const char *const allowed[] = {
	"Host: gw.example", "Origin: https://app.example", NULL,
};

/* A JSON gateway error: status, the CORS header, the code, closing. */
static void
assert_error(int status, const char *code)
{
	char want[64];

	ck_assert_uint_eq(ff.heads, 1);
	ck_assert_int_eq(ff.status, status);
	ck_assert_msg(has_field("Access-Control-Allow-Origin: "
	    "https://app.example\n"), "fields: %s", ff.fields);
	ck_assert_msg(has_field("Content-Type: application/json\n"),
	    "fields: %s", ff.fields);
	snprintf(want, sizeof want, "Content-Length: %zu\n", ff.body_len);
	ck_assert_msg(has_field(want), "fields: %s", ff.fields);
	snprintf(want, sizeof want, "{\"error\":\"%s\"", code);
	ck_assert_msg(strncmp(ff.body, want, strlen(want)) == 0, "body: %s",
	    ff.body);
	ck_assert(ff.framed);
}

/* No route matches: 404 (with the top-level CORS block's headers). */
START_TEST(test_no_route_404)
{
	request(EXCHANGE_M_GET, "GET", "/nope", allowed);
	proxy_exchange.start(pl, &x);
	/* Answered inside start(); complete() comes from the front-end. */
	ck_assert_uint_eq(ff.ends, 1);
	assert_error(404, "no_route");
	ck_assert(!ff.close);
	complete();
	ck_assert_int_eq(backend_conn, -1);	/* nothing went upstream */
}
END_TEST

/* The route matches: the upstream's answer, with our CORS headers. */
START_TEST(test_route_and_cors_actual)
{
	request(EXCHANGE_M_GET, "GET", "/api/items?q=1", allowed);
	proxy_exchange.start(pl, &x);
	ck_assert_uint_eq(ff.heads, 0);		/* the upstream answers */
	run_until_replied();
	ck_assert_uint_eq(ff.ends, 1);
	ck_assert_int_eq(ff.status, 200);
	ck_assert_str_eq(ff.body, "hello");
	ck_assert(ff.framed);
	ck_assert_msg(has_field("Content-Length: 5\n"), "%s", ff.fields);
	ck_assert_msg(has_field("Access-Control-Allow-Origin: "
	    "https://app.example\n"), "fields: %s", ff.fields);
	/* The upstream's Vary and ours merged into one field. */
	ck_assert_msg(has_field("Vary: Accept, Origin\n"), "%s", ff.fields);
	ck_assert_msg(strncmp(backend_got, "GET /api/items?q=1 HTTP/1.1\r\n",
	    29) == 0, "upstream got: %s", backend_got);
	ck_assert_msg(strstr(backend_got, "\r\nX-Forwarded-For: 127.0.0.1\r\n")
	    != NULL, "upstream got: %s", backend_got);
	complete();
}
END_TEST

/* An allowed preflight: 204 with the CORS answer, nothing upstream. */
START_TEST(test_preflight_allowed)
{
	static const char *const f[] = {
		"Host: gw.example", "Origin: https://app.example",
		"Access-Control-Request-Method: POST", NULL,
	};

	request(EXCHANGE_M_OPTIONS, "OPTIONS", "/api/items", f);
	proxy_exchange.start(pl, &x);
	ck_assert_uint_eq(ff.ends, 1);
	ck_assert_int_eq(ff.status, 204);
	ck_assert_msg(has_field("Access-Control-Allow-Origin: "
	    "https://app.example\n"), "fields: %s", ff.fields);
	ck_assert_msg(has_field("Access-Control-Allow-Methods: "), "%s",
	    ff.fields);
	ck_assert_msg(!has_field("Content-Length"), "%s", ff.fields);
	ck_assert_uint_eq(ff.body_len, 0);
	complete();
	ck_assert_int_eq(backend_conn, -1);
}
END_TEST

/* A refused preflight: 403 with the reason as JSON. */
START_TEST(test_preflight_refused)
{
	static const char *const f[] = {
		"Host: gw.example", "Origin: https://evil.example",
		"Access-Control-Request-Method: POST", NULL,
	};

	request(EXCHANGE_M_OPTIONS, "OPTIONS", "/api/items", f);
	proxy_exchange.start(pl, &x);
	ck_assert_uint_eq(ff.ends, 1);
	ck_assert_int_eq(ff.status, 403);
	ck_assert_msg(!has_field("Access-Control-Allow-Origin"), "%s",
	    ff.fields);
	ck_assert_msg(strncmp(ff.body, "{\"error\":\"cors_refused\"", 23) == 0,
	    "body: %s", ff.body);
	ck_assert_msg(strstr(ff.body, "\"reason\":") != NULL, "body: %s",
	    ff.body);
	complete();
}
END_TEST

/*
 * Trace: the incoming traceparent is extracted, and the upstream gets
 * ours -- the same trace id, our span id instead of the caller's.
 */
START_TEST(test_trace_extract_inject)
{
	static const char *const f[] = {
		"Host: gw.example",
		"traceparent: 00-0af7651916cd43dd8448eb211c80319c-"
		    "b7ad6b7169203331-01",
		NULL,
	};

	request(EXCHANGE_M_GET, "GET", "/api/t", f);
	proxy_exchange.start(pl, &x);
	run_until_replied();
	ck_assert_int_eq(ff.status, 200);
	ck_assert_msg(strstr(backend_got, "\r\ntraceparent: 00-"
	    "0af7651916cd43dd8448eb211c80319c-") != NULL, "upstream got: %s",
	    backend_got);
	ck_assert_msg(strstr(backend_got, "b7ad6b7169203331") == NULL,
	    "upstream got: %s", backend_got);
	complete();
}
END_TEST

/* The upstream refuses connections: 502 with CORS headers. */
START_TEST(test_upstream_refused_502)
{
	ts_expect_warning("upstream http://127.0.0.1:");
	request(EXCHANGE_M_GET, "GET", "/dead/x", allowed);
	proxy_exchange.start(pl, &x);
	run_until_replied();
	assert_error(502, "bad_gateway");
	complete();
}
END_TEST

/* The upstream does not answer within its timeout: 504, CORS headers. */
START_TEST(test_upstream_timeout_504)
{
	ts_expect_warning("upstream http://127.0.0.1:");
	backend_silent = true;
	request(EXCHANGE_M_GET, "GET", "/api/slow", allowed);
	proxy_exchange.start(pl, &x);
	run_until_replied();
	assert_error(504, "gateway_timeout");
	complete();
}
END_TEST

/*
 * The front-end's own refusals (guard, timeout, memory) answered by the
 * pipeline through refuse(): CORS headers of the route, a request id,
 * and the connection closes.
 */
START_TEST(test_refusals_carry_cors)
{
	static const struct {
		int status;
		const char *code;
	} rows[] = {
		{ 400, "bad_request" },
		{ 408, "request_timeout" },
		{ 413, "payload_too_large" },
		{ 431, "header_too_large" },
		{ 503, "unavailable" },
	};
	size_t i;

	for (i = 0; i < TS_NITEMS(rows); i++) {
		request(EXCHANGE_M_OTHER, "-", "/api/x", allowed);
		proxy_exchange.refuse(pl, &x, rows[i].status, "refused here");
		ck_assert_uint_eq(ff.ends, 1);
		assert_error(rows[i].status, rows[i].code);
		ck_assert(ff.close);
		ck_assert_msg(strstr(ff.body, "\"message\":\"refused here\"")
		    != NULL, "body: %s", ff.body);
		ck_assert_ptr_null(x.pipe);	/* nothing kept */
	}
	ck_assert_uint_eq(i, 5);
}
END_TEST

/*
 * The upstream closes after 10 of 100 body bytes: the head is out, so the
 * pipeline aborts the exchange (the client sees the cut), and ends its
 * request itself: no complete() is expected from the front-end.
 */
START_TEST(test_upstream_cut_mid_body_aborts)
{
	ts_expect_warning("upstream http://127.0.0.1:");
	backend_reply = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
	    "0123456789";
	backend_cut = true;
	request(EXCHANGE_M_GET, "GET", "/api/cut", allowed);
	proxy_exchange.start(pl, &x);
	run_until_replied();
	ck_assert_uint_eq(ff.heads, 1);
	ck_assert_int_eq(ff.status, 200);
	ck_assert_str_eq(ff.body, "0123456789");
	ck_assert_uint_eq(ff.aborts, 1);
	ck_assert_uint_eq(ff.ends, 0);
	ck_assert_ptr_null(x.pipe);		/* the pipeline let go */
}
END_TEST

/* A request the front-end lost: gone() ends it, nothing is called back. */
START_TEST(test_gone_while_upstream)
{
	backend_silent = true;
	request(EXCHANGE_M_GET, "GET", "/api/slow", allowed);
	proxy_exchange.start(pl, &x);
	ck_assert_ptr_nonnull(x.pipe);
	ff.in_complete = true;		/* no front call from inside gone() */
	proxy_exchange.gone(&x);
	ff.in_complete = false;
	ck_assert_ptr_null(x.pipe);
	ck_assert_uint_eq(ff.heads + ff.ends + ff.aborts, 0);
}
END_TEST

static Suite *
proxy_suite(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("pipeline");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_no_route_404);
	tcase_add_test(tc, test_route_and_cors_actual);
	tcase_add_test(tc, test_preflight_allowed);
	tcase_add_test(tc, test_preflight_refused);
	tcase_add_test(tc, test_trace_extract_inject);
	tcase_add_test(tc, test_upstream_refused_502);
	tcase_add_test(tc, test_upstream_timeout_504);
	tcase_add_test(tc, test_refusals_carry_cors);
	tcase_add_test(tc, test_gone_while_upstream);
	tcase_add_test(tc, test_upstream_cut_mid_body_aborts);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(proxy_suite)
