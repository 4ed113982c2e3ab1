/*
 * test_upstreams_e2e.c -- several servers per route through the real
 * binary and three fake backends (issue 13 items 1-3): the distribution
 * of each balancer, killing a backend under load, the 503 (with CORS)
 * when every server is down, active checks taking a server out and
 * bringing it back, /readyz with server.readyz_requires_upstreams.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

/* workers: 1 where a test counts exact shares (one balancer state). */
static char *
config_three(struct itest_proc *const b[3], const unsigned w[3],
    const char *server_extra, const char *upstream_extra)
{
	return itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "%s"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "cors: {allowed_origins: [\"https://app.example\"]}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream:\n"
	    "      servers:\n"
	    "        - {url: \"http://127.0.0.1:%u\", weight: %u}\n"
	    "        - {url: \"http://127.0.0.1:%u\", weight: %u}\n"
	    "        - {url: \"http://127.0.0.1:%u\", weight: %u}\n"
	    "%s"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: stdout}\n",
	    server_extra != NULL ? server_extra : "  workers: 1\n",
	    b[0]->port, w[0], b[1]->port, w[1], b[2]->port, w[2],
	    upstream_extra != NULL ? upstream_extra : "");
}

static void
start_three(struct itest_proc *b[3])
{
	b[0] = itest_backend_start("b0");
	b[1] = itest_backend_start("b1");
	b[2] = itest_backend_start("b2");
}

/* GET path over c (keep-alive) with extra header lines; the status. */
static int
get_on(struct itest_conn *c, const char *path, const char *extra,
    struct itest_resp *r)
{
	itest_sendf(c, "GET %s HTTP/1.1\r\nHost: itest.test\r\n%s\r\n", path,
	    extra != NULL ? extra : "");
	if (itest_read_response(c, r, 0, ITEST_TIMEOUT_MS) != 0)
		return -1;
	return r->status;
}

/* The name of the backend that answered an /echo. */
static char *
echo_name(const struct itest_resp *r)
{
	json_t *j = itest_resp_json(r);
	char *n = strdup(json_string_value(json_object_get(j, "name")));

	json_decref(j);
	return n;
}

/* /metrics of the gateway (caller frees). */
static char *
metrics_text(struct itest_proc *gw)
{
	struct itest_resp r;
	char *t;

	ck_assert_int_eq(itest_get(gw->admin_port, "/metrics", &r), 0);
	t = strdup(r.body);
	itest_resp_clear(&r);
	return t;
}

/* Wait until the sample name{labels} equals v; false on timeout. */
static bool
metric_wait(struct itest_proc *gw, const char *name, const char *labels,
    double v, int timeout_ms)
{
	int64_t end = itest_now_ms() + timeout_ms;
	struct itest_conn *c;
	char *t;
	bool ok;

	do {
		t = metrics_text(gw);
		ok = itest_metric(t, name, labels) == v;
		free(t);
		if (ok)
			return true;
		/* Poll without a sleep call: wait on a socket that never
		 * becomes readable, 20 ms at a time. */
		c = itest_connect(gw->admin_port);
		(void)itest_readable(c, 20);
		itest_conn_free(c);
	} while (itest_now_ms() < end);
	return false;
}

/* Wait about ms without a sleep call: a read that never comes. */
static void
pause_ms(struct itest_proc *gw, int ms)
{
	struct itest_conn *c = itest_connect(gw->admin_port);

	(void)itest_readable(c, ms);
	itest_conn_free(c);
}

/* Weights 1, 2, 3 with one worker: smooth WRR gives exactly 10/20/30. */
START_TEST(test_round_robin_weights)
{
	static const unsigned w[3] = { 1, 2, 3 };
	struct itest_proc *b[3], *gw;
	struct itest_resp r;
	struct itest_conn *c;
	json_t *lines;
	int64_t end;
	char *cfg;
	int i, per[3] = { 0, 0, 0 };

	start_three(b);
	cfg = config_three(b, w, NULL, NULL);
	gw = itest_gateway_start(cfg);
	free(cfg);
	c = itest_connect(gw->port);
	for (i = 0; i < 60; i++) {
		ck_assert_int_eq(get_on(c, "/echo", NULL, &r), 200);
		itest_resp_clear(&r);
	}
	itest_conn_free(c);
	ck_assert_uint_eq(itest_backend_requests(b[0]), 10);
	ck_assert_uint_eq(itest_backend_requests(b[1]), 20);
	ck_assert_uint_eq(itest_backend_requests(b[2]), 30);
	/* The access log names the server of each request. */
	end = itest_now_ms() + ITEST_TIMEOUT_MS;
	while ((lines = itest_json_lines(gw, ITEST_STDOUT, "request_id")) !=
	    NULL && json_array_size(lines) < 60 && itest_now_ms() < end) {
		json_decref(lines);
		pause_ms(gw, 20);
	}
	ck_assert_uint_eq(json_array_size(lines), 60);
	for (i = 0; i < 60; i++) {
		const char *a = json_string_value(json_object_get(
		    json_array_get(lines, (size_t)i), "upstream.address"));
		char want[3][32];
		int k;

		ck_assert_ptr_nonnull(a);
		for (k = 0; k < 3; k++) {
			snprintf(want[k], sizeof want[k], "127.0.0.1:%u",
			    b[k]->port);
			if (strcmp(a, want[k]) == 0)
				per[k]++;
		}
	}
	ck_assert_int_eq(per[0], 10);
	ck_assert_int_eq(per[1], 20);
	ck_assert_int_eq(per[2], 30);
	json_decref(lines);
}
END_TEST

/*
 * least_request: sequential requests find every server idle, so the two
 * choices are random: each server gets a fair share of 300 (at least
 * 20%, a third expected).
 */
START_TEST(test_least_request_spreads)
{
	static const unsigned w[3] = { 1, 1, 1 };
	struct itest_proc *b[3], *gw;
	struct itest_resp r;
	struct itest_conn *c;
	char *cfg;
	int i;

	start_three(b);
	cfg = config_three(b, w, NULL, "      balance: least_request\n");
	gw = itest_gateway_start(cfg);
	free(cfg);
	c = itest_connect(gw->port);
	for (i = 0; i < 300; i++) {
		ck_assert_int_eq(get_on(c, "/echo", NULL, &r), 200);
		itest_resp_clear(&r);
	}
	itest_conn_free(c);
	for (i = 0; i < 3; i++)
		ck_assert_uint_gt(itest_backend_requests(b[i]), 60);
	ck_assert_uint_eq(itest_backend_requests(b[0]) +
	    itest_backend_requests(b[1]) + itest_backend_requests(b[2]), 300);
}
END_TEST

/*
 * hash on a header, on a cookie, and on the client's address behind a
 * trusted proxy (its X-Forwarded-For client, every request coming from
 * the proxy's one address): a user sticks to one backend, and the users
 * spread over the three.
 */
START_TEST(test_hash_sticky)
{
	static const unsigned w[3] = { 1, 1, 1 };
	static const char *const how[] = { "header:X-User", "cookie:sid",
	    "client_address" };
	struct itest_proc *b[3], *gw;
	struct itest_resp r;
	struct itest_conn *c;
	char *cfg, *up, *first, *name, extra[96];
	bool used[3];
	size_t h;
	int u, k, n_used;

	for (h = 0; h < ITEST_NITEMS(how); h++) {
		start_three(b);
		up = itest_strf("      balance: hash\n      hash_on: \"%s\"\n",
		    how[h]);
		cfg = config_three(b, w, h == 2 ? "  workers: 1\n"
		    "  trusted_proxies: [\"127.0.0.1\"]\n" : NULL, up);
		gw = itest_gateway_start(cfg);
		free(cfg);
		free(up);
		c = itest_connect(gw->port);
		memset(used, 0, sizeof used);
		for (u = 0; u < 30; u++) {
			if (h == 0)
				snprintf(extra, sizeof extra,
				    "X-User: user-%d\r\n", u);
			else if (h == 2)
				snprintf(extra, sizeof extra,
				    "X-Forwarded-For: 203.0.113.%d\r\n", u);
			else
				snprintf(extra, sizeof extra, "Cookie: a=1; "
				    "sid=s%d; b=2\r\n", u);
			first = NULL;
			for (k = 0; k < 4; k++) {
				ck_assert_int_eq(get_on(c, "/echo", extra, &r),
				    200);
				name = echo_name(&r);
				itest_resp_clear(&r);
				if (first == NULL)
					first = name;
				else {
					ck_assert_str_eq(name, first);
					free(name);
				}
			}
			used[first[1] - '0'] = true;
			free(first);
		}
		itest_conn_free(c);
		n_used = used[0] + used[1] + used[2];
		/* 30 users over three servers: all of them get some. */
		ck_assert_int_eq(n_used, 3);
		itest_cleanup_all();
	}
}
END_TEST

/*
 * A backend killed while requests flow on 8 connections through 2
 * workers (max_fails 1): no idempotent request is lost.  The requests
 * sent to it before the first refusal came back (those of the round
 * after the kill) meet a refused connection, nothing was sent, and the
 * default retry (routes[].upstream.retry: one more try on a connect
 * failure or a reset) sends each to another server; the shared health
 * state ejects the dead one once for every worker, and every later
 * request is answered by the two others.
 */
START_TEST(test_kill_one_under_load)
{
	static const unsigned w[3] = { 1, 1, 1 };
	struct itest_proc *b[3], *gw;
	struct itest_resp r;
	struct itest_conn *c[8];
	char *cfg, *t, labels[96];
	int round, k, st, failed = 0, ok = 0;
	uint64_t before;
	double errs;

	start_three(b);
	cfg = config_three(b, w, "  workers: 2\n", "      max_fails: 1\n"
	    "      ejection_time: 60s\n");
	gw = itest_gateway_start(cfg);
	free(cfg);
	for (k = 0; k < 8; k++)
		c[k] = itest_connect(gw->port);
	before = 0;
	for (round = 0; round < 30; round++) {
		if (round == 10) {
			before = itest_backend_requests(b[1]);
			itest_proc_stop(b[1], SIGKILL, ITEST_TIMEOUT_MS);
		}
		/* 8 requests in flight at once, then their answers. */
		for (k = 0; k < 8; k++)
			itest_sendf(c[k], "GET /echo HTTP/1.1\r\n"
			    "Host: itest.test\r\n\r\n");
		for (k = 0; k < 8; k++) {
			ck_assert_int_eq(itest_read_response(c[k], &r, 0,
			    ITEST_TIMEOUT_MS), 0);
			st = r.status;
			itest_resp_clear(&r);
			if (st == 200) {
				ok++;
				continue;
			}
			failed++;
		}
	}
	for (k = 0; k < 8; k++)
		itest_conn_free(c[k]);
	/* Every meeting with the dead server was retried elsewhere. */
	ck_assert_int_eq(failed, 0);
	ck_assert_int_eq(ok, 240);
	ck_assert_uint_eq(itest_backend_requests(b[0]) +
	    itest_backend_requests(b[2]) + before, (uint64_t)ok);
	snprintf(labels, sizeof labels, "route=\"api\",server=\"127.0.0.1:%u\"",
	    b[1]->port);
	t = metrics_text(gw);
	/* Ejected once, whichever worker saw it first. */
	ck_assert_double_eq(itest_metric(t,
	    "tracestitch_upstream_server_ejections_total", labels), 1.0);
	/* Its failed attempts (1 to 3: the round after the kill), each
	 * retried. */
	errs = itest_metric(t, "tracestitch_upstream_server_errors_total",
	    labels);
	ck_assert_double_ge(errs, 1.0);
	ck_assert_double_le(errs, 3.0);
	ck_assert_double_eq(itest_metric(t, "tracestitch_upstream_retries_total",
	    "route=\"api\",reason=\"connect_failure\"") + itest_metric(t,
	    "tracestitch_upstream_retries_total",
	    "route=\"api\",reason=\"reset\""), errs);
	snprintf(labels, sizeof labels, "route=\"api\",server=\"127.0.0.1:%u\","
	    "state=\"ejected\"", b[1]->port);
	ck_assert_double_eq(itest_metric(t,
	    "tracestitch_upstream_server_healthy", labels), 0.0);
	free(t);
}
END_TEST

/*
 * Every server down: the requests that find one not yet ejected get 502;
 * then the route answers 503 "unavailable" with the CORS headers and a
 * reason, and /readyz (readyz_requires_upstreams) says which route.
 */
START_TEST(test_all_down_503_and_readyz)
{
	static const unsigned w[3] = { 1, 1, 1 };
	struct itest_proc *b[3], *gw;
	struct itest_resp r;
	json_t *j;
	char *cfg;
	int i, n502 = 0;

	start_three(b);
	cfg = config_three(b, w, "  workers: 1\n  readyz_requires_upstreams: true\n",
	    "      max_fails: 1\n      ejection_time: 60s\n");
	gw = itest_gateway_start(cfg);
	free(cfg);
	ck_assert_int_eq(itest_get(gw->admin_port, "/readyz", &r), 0);
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
	for (i = 0; i < 3; i++)
		itest_proc_stop(b[i], SIGKILL, ITEST_TIMEOUT_MS);
	for (i = 0; i < 6; i++) {
		ck_assert_int_eq(itest_request(gw->port, ITEST_LIT(
		    "GET /echo HTTP/1.1\r\nHost: itest.test\r\n"
		    "Origin: https://app.example\r\nConnection: close\r\n\r\n"),
		    &r, 0, ITEST_TIMEOUT_MS), 0);
		ck_assert_str_eq(itest_resp_header(&r,
		    "Access-Control-Allow-Origin"), "https://app.example");
		if (r.status == 502) {
			n502++;
			ck_assert_int_lt(i, 2);
		} else {
			itest_assert_error(&r, 503, "unavailable");
			ck_assert_ptr_nonnull(strstr(r.body,
			    "no healthy upstream server"));
		}
		itest_resp_clear(&r);
	}
	/* The first request met two dead servers (the default retry), the
	 * second the third one. */
	ck_assert_int_eq(n502, 2);
	ck_assert_int_eq(itest_get(gw->admin_port, "/readyz", &r), 0);
	ck_assert_int_eq(r.status, 503);
	j = itest_resp_json(&r);
	ck_assert_str_eq(json_string_value(json_object_get(j, "status")),
	    "no_upstream");
	ck_assert_str_eq(json_string_value(json_object_get(j, "route")),
	    "api");
	json_decref(j);
	itest_resp_clear(&r);
}
END_TEST

/*
 * Active checks (passive ejection off): a killed backend is taken out by
 * its failed checks and no request reaches it; started again on its
 * port, its checks bring it back and it gets requests again; /readyz
 * follows a route whose only server goes and comes back.
 */
START_TEST(test_active_checks_bring_back)
{
	static const unsigned w[3] = { 1, 1, 1 };
	struct itest_proc *b[3], *gw, *nb;
	struct itest_resp r;
	struct itest_conn *c;
	char *cfg, *name, labels[128];
	uint16_t port;
	int i, back = 0;

	start_three(b);
	cfg = config_three(b, w, "  workers: 1\n  readyz_requires_upstreams: true\n",
	    "      max_fails: 0\n"
	    "      health_check: {path: /status/204, interval: 50ms, "
	    "timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 2}\n");
	gw = itest_gateway_start(cfg);
	free(cfg);
	port = b[1]->port;
	snprintf(labels, sizeof labels, "route=\"api\",server=\"127.0.0.1:%u\","
	    "state=\"unhealthy\"", port);
	itest_proc_stop(b[1], SIGKILL, ITEST_TIMEOUT_MS);
	ck_assert_msg(metric_wait(gw, "tracestitch_upstream_server_healthy",
	    labels, 0.0, ITEST_TIMEOUT_MS), "the dead server was not taken "
	    "out by its checks");
	c = itest_connect(gw->port);
	for (i = 0; i < 30; i++) {
		ck_assert_int_eq(get_on(c, "/echo", NULL, &r), 200);
		itest_resp_clear(&r);
	}
	nb = itest_backend_start_at("b1-again", "127.0.0.1", port, 0);
	snprintf(labels, sizeof labels, "route=\"api\",server=\"127.0.0.1:%u\","
	    "state=\"healthy\"", port);
	ck_assert_msg(metric_wait(gw, "tracestitch_upstream_server_healthy",
	    labels, 1.0, ITEST_TIMEOUT_MS), "the server did not come back");
	for (i = 0; i < 30; i++) {
		ck_assert_int_eq(get_on(c, "/echo", NULL, &r), 200);
		name = echo_name(&r);
		itest_resp_clear(&r);
		back += strcmp(name, "b1-again") == 0;
		free(name);
	}
	itest_conn_free(c);
	/* Round robin over the three again: a third of the 30.  (The
	 * backend's own counter also has the checks' requests.) */
	ck_assert_int_eq(back, 10);
	ck_assert_uint_ge(itest_backend_requests(nb), 10 + 2);
	ck_assert_int_eq(itest_get(gw->admin_port, "/readyz", &r), 0);
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
}
END_TEST

/* One GET /echo on a new connection: the answering backend's name, or
 * NULL when the status is not 200 (*status says which). */
static char *
echo_from(struct itest_proc *gw, int *status)
{
	struct itest_resp r;
	char *n = NULL;

	ck_assert_int_eq(itest_get(gw->port, "/echo", &r), 0);
	*status = r.status;
	if (r.status == 200)
		n = echo_name(&r);
	itest_resp_clear(&r);
	return n;
}

/* Wait until a request is answered by backend want; false on timeout. */
static bool
wait_for_backend(struct itest_proc *gw, const char *want, int timeout_ms)
{
	int64_t end = itest_now_ms() + timeout_ms;
	char *n;
	int st;

	do {
		n = echo_from(gw, &st);
		if (n != NULL && strcmp(n, want) == 0) {
			free(n);
			return true;
		}
		free(n);
		pause_ms(gw, 20);
	} while (itest_now_ms() < end);
	return false;
}

/*
 * Background re-resolution (server.resolvers: the fake DNS server; no
 * worker ever looks a name up).  backend.test is unknown to the system's
 * resolver, so the route starts without a server and answers 502 until
 * the first background lookup; then a second address joins (127.0.0.2,
 * the same port: a name's every address is a server), the first leaves,
 * and a SERVFAIL keeps the last good address.
 */
/*
 * A gateway whose one route's server is backend.test:port, looked up
 * through the fake DNS server on dns_port; upstream_keys are flow-style
 * keys of the route's upstream block ("resolve_interval: 200ms, ...").
 */
static struct itest_proc *
dns_gateway(unsigned dns_port, unsigned port, const char *upstream_keys)
{
	struct itest_proc *gw;
	char *cfg;

	cfg = itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  workers: 1\n"
	    "  resolvers: [\"127.0.0.1:%u\"]\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream: {servers: [\"http://backend.test:%u\"], %s}\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: \"off\"}\n",
	    dns_port, port, upstream_keys);
	gw = itest_gateway_start(cfg);
	free(cfg);
	return gw;
}

START_TEST(test_dns_reresolve)
{
	struct itest_proc *b0, *b1, *dns, *gw;
	char *map, *n;	/* map: itest_write_temp owns it */
	int i, st, from[2];

	b0 = itest_backend_start_at("b0", "127.0.0.1", 0, 0);
	b1 = itest_backend_start_at("b1", "127.0.0.2", b0->port, 0);
	/* One name, one port: the addresses tell the servers apart. */
	ck_assert_uint_eq(b1->port, b0->port);
	map = itest_write_temp("backend.test 127.0.0.1\n", ".map");
	dns = itest_dns_start(map);
	gw = dns_gateway(dns->port, b0->port, "resolve_interval: 200ms");
	ck_assert_msg(wait_for_backend(gw, "b0", ITEST_TIMEOUT_MS),
	    "backend.test was never resolved in the background");
	ck_assert_int_ge(itest_log_wait(gw, ITEST_STDERR, "upstream addresses "
	    "changed", 0, ITEST_TIMEOUT_MS), 0);

	itest_rewrite(map, "backend.test 127.0.0.1 127.0.0.2\n");
	ck_assert_msg(wait_for_backend(gw, "b1", ITEST_TIMEOUT_MS),
	    "the second address was not taken");
	/* Both addresses, in turn (round robin, one worker). */
	from[0] = from[1] = 0;
	for (i = 0; i < 20; i++) {
		n = echo_from(gw, &st);
		ck_assert_int_eq(st, 200);
		from[strcmp(n, "b1") == 0]++;
		free(n);
	}
	ck_assert_int_eq(from[0], 10);
	ck_assert_int_eq(from[1], 10);

	itest_rewrite(map, "backend.test 127.0.0.2\n");
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR, "upstream host "
	    "backend.test now resolves to 1 address", 0, ITEST_TIMEOUT_MS) >= 0,
	    "the first address never left");
	/* The new generation reaches the worker: only b1 from then on. */
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR, "upstream addresses "
	    "changed (generation 4)", 0, ITEST_TIMEOUT_MS) >= 0,
	    "no generation for the change");
	for (i = 0; i < 10; i++) {
		n = echo_from(gw, &st);
		ck_assert_int_eq(st, 200);
		if (i > 0)
			ck_assert_str_eq(n, "b1");
		free(n);
	}

	/* The DNS server fails: the last good address stays in use. */
	itest_rewrite(map, "backend.test SERVFAIL\n");
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR, "upstream host "
	    "backend.test: cannot resolve", 0, ITEST_TIMEOUT_MS) >= 0,
	    "the failed lookup was not reported");
	for (i = 0; i < 5; i++) {
		n = echo_from(gw, &st);
		ck_assert_int_eq(st, 200);
		ck_assert_str_eq(n, "b1");
		free(n);
	}
}
END_TEST

/*
 * The gateway span's upstream.address is the URL of the server chosen
 * (the route's first server's before, whichever answered).
 */
START_TEST(test_span_names_server)
{
	struct itest_proc *b0, *b1, *gw;
	struct itest_resp r;
	json_t *spans, *sp;
	int64_t end;
	char *cfg, *u0, *u1;
	const char *a;
	size_t i;
	int k, n0 = 0, n1 = 0;

	b0 = itest_backend_start("b0");
	b1 = itest_backend_start("b1");
	u0 = itest_strf("http://127.0.0.1:%u", b0->port);
	u1 = itest_strf("http://127.0.0.1:%u", b1->port);
	cfg = itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream: {servers: [\"%s\", \"%s\"]}\n"
	    "tracing: {sample_rate: 1}\n"
	    "exporter: {type: stdout}\n"
	    "logging: {level: info, access_log: \"off\"}\n", u0, u1);
	gw = itest_gateway_start(cfg);
	free(cfg);
	for (k = 0; k < 6; k++) {
		ck_assert_int_eq(itest_get(gw->port, "/echo", &r), 0);
		ck_assert_int_eq(r.status, 200);
		itest_resp_clear(&r);
	}
	end = itest_now_ms() + ITEST_TIMEOUT_MS;
	while ((spans = itest_json_lines(gw, ITEST_STDOUT, "span_id")) !=
	    NULL && json_array_size(spans) < 6 && itest_now_ms() < end) {
		json_decref(spans);
		pause_ms(gw, 20);
	}
	ck_assert_uint_eq(json_array_size(spans), 6);
	json_array_foreach(spans, i, sp) {
		a = json_string_value(json_object_get(json_object_get(sp,
		    "meta"), "upstream.address"));
		ck_assert_ptr_nonnull(a);
		n0 += strcmp(a, u0) == 0;
		n1 += strcmp(a, u1) == 0;
	}
	ck_assert_int_eq(n0, 3);
	ck_assert_int_eq(n1, 3);
	json_decref(spans);
	free(u0);
	free(u1);
}
END_TEST

/*
 * SIGHUP with a server added and its weight: the new generation's
 * balancer uses them; a server ejected before the reload stays ejected
 * (its health belongs to the address, not to the generation).
 */
START_TEST(test_reload_servers)
{
	struct itest_proc *b[3], *gw;
	struct itest_resp r;
	struct itest_conn *c;
	char *cfg, labels[128];
	uint64_t before_b0, before_b2;
	size_t from;
	int i, st;

	start_three(b);
	cfg = itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream:\n"
	    "      servers: [\"http://127.0.0.1:%u\", \"http://127.0.0.1:%u\"]\n"
	    "      max_fails: 1\n"
	    "      ejection_time: 60s\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: \"off\"}\n",
	    b[0]->port, b[1]->port);
	gw = itest_gateway_start(cfg);
	free(cfg);
	/* b1 dies and is ejected: one 502, then b0 alone. */
	itest_proc_stop(b[1], SIGKILL, ITEST_TIMEOUT_MS);
	for (i = 0; i < 6; i++) {
		ck_assert_int_eq(itest_get(gw->port, "/echo", &r), 0);
		st = r.status;
		itest_resp_clear(&r);
		ck_assert(st == 200 || (st == 502 && i < 2));
	}
	cfg = itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream:\n"
	    "      servers:\n"
	    "        - \"http://127.0.0.1:%u\"\n"
	    "        - \"http://127.0.0.1:%u\"\n"
	    "        - {url: \"http://127.0.0.1:%u\", weight: 2}\n"
	    "      max_fails: 1\n"
	    "      ejection_time: 60s\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: \"off\"}\n",
	    b[0]->port, b[1]->port, b[2]->port);
	itest_rewrite(gw->cfg_path, cfg);
	free(cfg);
	from = itest_log_size(gw, ITEST_STDERR);
	itest_proc_signal(gw, SIGHUP);
	ck_assert(itest_log_wait(gw, ITEST_STDERR, "configuration reloaded",
	    from, ITEST_TIMEOUT_MS) >= 0);
	/* The first request may still meet the old generation. */
	ck_assert_int_eq(itest_get(gw->port, "/echo", &r), 0);
	itest_resp_clear(&r);
	before_b0 = itest_backend_requests(b[0]);
	before_b2 = itest_backend_requests(b[2]);
	c = itest_connect(gw->port);
	for (i = 0; i < 30; i++) {
		ck_assert_int_eq(get_on(c, "/echo", NULL, &r), 200);
		itest_resp_clear(&r);
	}
	itest_conn_free(c);
	/* b1 still ejected: b0 and b2 share 1:2. */
	ck_assert_uint_eq(itest_backend_requests(b[0]) - before_b0, 10);
	ck_assert_uint_eq(itest_backend_requests(b[2]) - before_b2, 20);
	snprintf(labels, sizeof labels, "route=\"api\",server=\"127.0.0.1:%u\","
	    "state=\"ejected\"", b[1]->port);
	ck_assert(metric_wait(gw, "tracestitch_upstream_server_healthy", labels,
	    0.0, ITEST_TIMEOUT_MS));
}
END_TEST

/*
 * "Re-resolved on failure": a server that fails (here: ejected after its
 * backend died) has its name looked up at once, not at the next interval
 * (an hour here), and the name's new address takes over.
 */
START_TEST(test_dns_after_failure)
{
	struct itest_proc *b0, *b1, *dns, *gw;
	char *map;	/* map: itest_write_temp owns it */

	b0 = itest_backend_start_at("b0", "127.0.0.1", 0, 0);
	b1 = itest_backend_start_at("b1", "127.0.0.2", b0->port, 0);
	ck_assert_uint_eq(b1->port, b0->port);
	map = itest_write_temp("backend.test 127.0.0.1\n", ".map");
	dns = itest_dns_start(map);
	gw = dns_gateway(dns->port, b0->port,
	    "resolve_interval: 60m, max_fails: 1");
	ck_assert(wait_for_backend(gw, "b0", ITEST_TIMEOUT_MS));
	/* The backend moves; nothing would look before an hour. */
	itest_rewrite(map, "backend.test 127.0.0.2\n");
	itest_proc_stop(b0, SIGKILL, ITEST_TIMEOUT_MS);
	ck_assert_msg(wait_for_backend(gw, "b1", ITEST_TIMEOUT_MS),
	    "the moved backend was not found after the failure");
	ck_assert(itest_log_wait(gw, ITEST_STDERR, "upstream host backend.test: "
	    "a server failed: looking it up again", 0, 0) >= 0);
}
END_TEST

/*
 * The answer's TTL drives the next lookup (resolve_interval: 60m, the
 * ceiling): a TTL of 1 s has a moved name followed within seconds; once
 * the answer says 3600 s, the name is not asked again (the ceiling is an
 * hour).
 */
START_TEST(test_dns_ttl)
{
	struct itest_proc *b0, *b1, *dns, *gw;
	char *map;	/* map: itest_write_temp owns it */
	size_t n0;

	b0 = itest_backend_start_at("b0", "127.0.0.1", 0, 0);
	b1 = itest_backend_start_at("b1", "127.0.0.2", b0->port, 0);
	ck_assert_uint_eq(b1->port, b0->port);
	map = itest_write_temp("backend.test 127.0.0.1 ttl=1\n", ".map");
	dns = itest_dns_start(map);
	gw = dns_gateway(dns->port, b0->port, "resolve_interval: 60m");
	ck_assert_msg(wait_for_backend(gw, "b0", ITEST_TIMEOUT_MS),
	    "backend.test was never resolved in the background");
	/* Moved, with a long TTL now: found at the old answer's TTL. */
	itest_rewrite(map, "backend.test 127.0.0.2 ttl=3600\n");
	ck_assert_msg(wait_for_backend(gw, "b1", ITEST_TIMEOUT_MS),
	    "the TTL of 1 s did not bring a new lookup");
	/* The answer with 3600 s is in: no query for 2.5 s (at a TTL of
	 * 1 s there would be two). */
	ck_assert(itest_log_wait(gw, ITEST_STDERR, "upstream host "
	    "backend.test now resolves to 1 address", 0, 0) >= 0);
	pause_ms(gw, 300);
	n0 = itest_log_count(dns, ITEST_STDOUT, "query backend.test type 1",
	    0);
	pause_ms(gw, 2500);
	ck_assert_uint_eq(itest_log_count(dns, ITEST_STDOUT,
	    "query backend.test type 1", 0), n0);
}
END_TEST

/* tests/data/REL (TS_TEST_DATA), in one of 4 static buffers. */
static const char *
data_path(const char *rel)
{
	static char buf[4][1024];
	static unsigned n;
	const char *d = getenv("TS_TEST_DATA");
	char *b = buf[n++ % 4];

	snprintf(b, sizeof buf[0], "%s/%s", d != NULL ? d : "tests/data",
	    rel);
	return b;
}

/*
 * https servers: the route's TLS settings (CA, verification) for each
 * server, the active checks over TLS too; a TLS server that stops is
 * taken out by its checks and the other answers alone.
 */
START_TEST(test_tls_servers_and_checks)
{
	struct itest_proc *a, *b, *gw;
	struct itest_resp r;
	char *cfg, labels[128];
	int i, na = 0, nb = 0;

	a = itest_canned_start("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
	    "Connection: close\r\n\r\na", data_path("tls/server.pem"),
	    data_path("tls/server.key"));
	b = itest_canned_start("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
	    "Connection: close\r\n\r\nb", data_path("tls/server.pem"),
	    data_path("tls/server.key"));
	cfg = itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream:\n"
	    "      servers: [\"https://127.0.0.1:%u\", \"https://127.0.0.1:%u\"]\n"
	    "      tls_verify: true\n"
	    "      tls_ca_file: \"%s\"\n"
	    "      keepalive: 0\n"
	    "      max_fails: 0\n"
	    "      health_check: {path: /hc, interval: 50ms, timeout: 2s, "
	    "healthy_threshold: 1, unhealthy_threshold: 1}\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: \"off\"}\n",
	    a->port, b->port, data_path("tls/ca.pem"));
	gw = itest_gateway_start(cfg);
	free(cfg);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(itest_get(gw->port, "/x", &r), 0);
		ck_assert_int_eq(r.status, 200);
		na += strcmp(r.body, "a") == 0;
		nb += strcmp(r.body, "b") == 0;
		itest_resp_clear(&r);
	}
	ck_assert_int_eq(na, 2);
	ck_assert_int_eq(nb, 2);
	itest_proc_stop(b, SIGKILL, ITEST_TIMEOUT_MS);
	snprintf(labels, sizeof labels, "route=\"api\",server=\"127.0.0.1:%u\","
	    "state=\"unhealthy\"", b->port);
	ck_assert(metric_wait(gw, "tracestitch_upstream_server_healthy", labels,
	    0.0, ITEST_TIMEOUT_MS));
	/* a passed its checks over TLS all along. */
	snprintf(labels, sizeof labels, "route=\"api\",server=\"127.0.0.1:%u\","
	    "state=\"healthy\"", a->port);
	ck_assert(metric_wait(gw, "tracestitch_upstream_server_healthy", labels,
	    1.0, ITEST_TIMEOUT_MS));
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(itest_get(gw->port, "/x", &r), 0);
		ck_assert_int_eq(r.status, 200);
		ck_assert_str_eq(r.body, "a");
		itest_resp_clear(&r);
	}
}
END_TEST

/*
 * Retries (issue 13 item 4).
 */

/* A port of 127.0.0.1 nothing listens on (bound, then closed). */
static uint16_t
dead_port(void)
{
	struct itest_proc *p = itest_backend_start("gone");
	uint16_t port = p->port;

	itest_proc_stop(p, SIGKILL, ITEST_TIMEOUT_MS);
	return port;
}

/* The access-log lines of gw once there are n (or the deadline). */
static json_t *
access_lines(struct itest_proc *gw, size_t n)
{
	int64_t end = itest_now_ms() + ITEST_TIMEOUT_MS;
	json_t *lines;

	while ((lines = itest_json_lines(gw, ITEST_STDOUT, "request_id")) !=
	    NULL && json_array_size(lines) < n && itest_now_ms() < end) {
		json_decref(lines);
		pause_ms(gw, 20);
	}
	ck_assert_ptr_nonnull(lines);
	ck_assert_uint_eq(json_array_size(lines), n);
	return lines;
}

/*
 * The retry budget: three backends whose every answer is a 503, on a
 * route that retries 503 up to twice (three tries), get at most their
 * requests plus 20% of them plus 3 per second -- not three times the
 * load.
 */
START_TEST(test_retry_budget)
{
	static const unsigned w[3] = { 1, 1, 1 };
	struct itest_proc *b[3], *gw;
	struct itest_resp r;
	struct itest_conn *c;
	char *cfg, *t;
	double retries, exhausted, secs;
	uint64_t got;
	int64_t t0;
	int i;

	start_three(b);
	cfg = config_three(b, w, "  workers: 2\n", "      max_fails: 0\n"
	    "      retry: {on: [\"503\"], tries: 3, budget_percent: 20, "
	    "budget_min_per_second: 3}\n");
	gw = itest_gateway_start(cfg);
	free(cfg);
	c = itest_connect(gw->port);
	t0 = itest_now_ms();
	for (i = 0; i < 100; i++) {
		ck_assert_int_eq(get_on(c, "/status/503", NULL, &r), 503);
		itest_resp_clear(&r);
	}
	secs = (double)(itest_now_ms() - t0) / 1000.0;
	itest_conn_free(c);
	t = metrics_text(gw);
	retries = itest_metric(t, "tracestitch_upstream_retries_total",
	    "route=\"api\",reason=\"503\"");
	exhausted = itest_metric(t,
	    "tracestitch_upstream_retry_budget_exhausted_total",
	    "route=\"api\"");
	free(t);
	/* Each retry reached a backend; 300 would without a budget. */
	got = itest_backend_requests(b[0]) + itest_backend_requests(b[1]) +
	    itest_backend_requests(b[2]);
	ck_assert_uint_eq(got, 100 + (uint64_t)retries);
	ck_assert_double_ge(retries, 3.0);
	ck_assert_msg(retries <= 20.0 + 3.0 * (secs + 2.0),
	    "%.0f retries in %.1f s: over the budget", retries, secs);
	ck_assert_double_ge(exhausted, 1.0);
}
END_TEST

/*
 * What is retried and what is not, on two servers: a GET whose server
 * resets the connection goes to the other one (both reset: 502 after two
 * tries); a POST that reached its server is not sent again; a POST whose
 * server refused the connection (nothing sent) is, and the access log
 * lists the attempts.
 */
START_TEST(test_retry_what)
{
	struct itest_proc *b0, *b1, *gw;
	struct itest_resp r;
	json_t *lines, *tries, *a;
	uint16_t dead;
	char *cfg;

	b0 = itest_backend_start("b0");
	b1 = itest_backend_start("b1");
	dead = dead_port();
	cfg = itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: dead\n"
	    "    path_prefix: /dead\n"
	    "    upstream:\n"
	    "      servers: [\"http://127.0.0.1:%u/x\", \"http://127.0.0.1:%u\"]\n"
	    "      max_fails: 0\n"
	    "  - name: api\n"
	    "    upstream:\n"
	    "      servers: [\"http://127.0.0.1:%u\", \"http://127.0.0.1:%u\"]\n"
	    "      max_fails: 0\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: stdout}\n",
	    dead, b0->port, b0->port, b1->port);
	gw = itest_gateway_start(cfg);
	free(cfg);
	/* POST /reset reached b0: not retried. */
	ck_assert_int_eq(itest_request(gw->port, ITEST_LIT(
	    "POST /reset HTTP/1.1\r\nHost: itest.test\r\nContent-Length: 2\r\n"
	    "Connection: close\r\n\r\nhi"), &r, 0, ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 502);
	itest_resp_clear(&r);
	ck_assert_uint_eq(itest_backend_requests(b0) +
	    itest_backend_requests(b1), 1);
	/* GET /reset: b1, then b0; both reset. */
	ck_assert_int_eq(itest_get(gw->port, "/reset", &r), 0);
	ck_assert_int_eq(r.status, 502);
	itest_resp_clear(&r);
	ck_assert_uint_eq(itest_backend_requests(b0), 2);
	ck_assert_uint_eq(itest_backend_requests(b1), 1);
	/* POST to a refused connection: sent to the other server. */
	ck_assert_int_eq(itest_request(gw->port, ITEST_LIT(
	    "POST /dead/echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Content-Length: 2\r\nConnection: close\r\n\r\nhi"), &r, 0,
	    ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
	ck_assert_uint_eq(itest_backend_requests(b0), 3);

	lines = access_lines(gw, 3);
	/* The first line: one attempt, no list. */
	ck_assert_ptr_null(json_object_get(json_array_get(lines, 0),
	    "upstream.tries"));
	tries = json_object_get(json_array_get(lines, 1), "upstream.tries");
	ck_assert_uint_eq(json_array_size(tries), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    tries, 0), "error")), "reset");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    tries, 1), "error")), "reset");
	tries = json_object_get(json_array_get(lines, 2), "upstream.tries");
	ck_assert_uint_eq(json_array_size(tries), 2);
	a = json_array_get(tries, 0);
	ck_assert_str_eq(json_string_value(json_object_get(a, "error")),
	    "connect_failure");
	cfg = itest_strf("127.0.0.1:%u", dead);
	ck_assert_str_eq(json_string_value(json_object_get(a, "address")),
	    cfg);
	free(cfg);
	a = json_array_get(tries, 1);
	ck_assert_int_eq(json_integer_value(json_object_get(a, "status")),
	    200);
	ck_assert(json_integer_value(json_object_get(a, "duration")) > 0);
	json_decref(lines);
}
END_TEST

/*
 * No retry once a response byte reached the client: a server that sends
 * a head and part of the body, then closes, leaves the client with a cut
 * response; the other server never sees the request.
 */
START_TEST(test_no_retry_after_response_bytes)
{
	struct itest_proc *cut, *b, *gw;
	struct pollfd pfd;
	char *cfg, buf[4096];
	int fd;
	size_t got = 0;
	ssize_t n;

	cut = itest_canned_start("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
	    "\r\npartial", NULL, NULL);
	b = itest_backend_start("b");
	cfg = itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream:\n"
	    "      servers: [\"http://127.0.0.1:%u\", \"http://127.0.0.1:%u\"]\n"
	    "      max_fails: 0\n"
	    "      retry: {on: [connect_failure, reset, timeout, \"502\"], "
	    "tries: 3}\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: \"off\"}\n",
	    cut->port, b->port);
	gw = itest_gateway_start(cfg);
	free(cfg);
	fd = itest_connect_fd(gw->port);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, ITEST_LIT("GET /x HTTP/1.1\r\n"
	    "Host: itest.test\r\n\r\n")), 37);
	/* The head and "partial", then the end of the connection. */
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (got < sizeof buf - 1 && poll(&pfd, 1, ITEST_TIMEOUT_MS) == 1 &&
	    (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\npartial"));
	ck_assert_ptr_null(strstr(buf, "partialpartial"));
	ck_assert_uint_eq(itest_backend_requests(b), 0);
}
END_TEST

/*
 * The gateway span of a retried request tags each attempt (server,
 * outcome, duration), as the Agent receives it (msgpack, decoded by the
 * fake Agent).
 */
START_TEST(test_span_shows_attempts)
{
	struct itest_proc *b, *agent, *gw;
	struct itest_resp r;
	json_t *reqs, *req, *trace, *sp, *meta, *mets, *found = NULL;
	uint16_t dead;
	char *cfg, *want;
	size_t i, j, k;

	b = itest_backend_start("b");
	agent = itest_agent_start("normal", NULL);
	dead = dead_port();
	cfg = itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream:\n"
	    "      servers: [\"http://127.0.0.1:%u\", \"http://127.0.0.1:%u\"]\n"
	    "      max_fails: 0\n"
	    "tracing: {sample_rate: 1}\n"
	    "exporter: {type: datadog, datadog_url: \"http://127.0.0.1:%u\", "
	    "flush_interval: 100ms}\n"
	    "logging: {level: info, access_log: \"off\"}\n",
	    dead, b->port, agent->port);
	gw = itest_gateway_start(cfg);
	free(cfg);
	ck_assert_int_eq(itest_get(gw->port, "/echo", &r), 0);
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
	reqs = itest_agent_wait_spans(agent, 1, ITEST_TIMEOUT_MS);
	ck_assert_msg(reqs != NULL, "%s", itest_error());
	json_array_foreach(reqs, i, req) {
		json_array_foreach(json_object_get(req, "body"), j, trace) {
			json_array_foreach(trace, k, sp) {
				if (json_object_get(json_object_get(sp,
				    "metrics"), "upstream.attempt_count") != NULL)
					found = sp;
			}
		}
	}
	ck_assert_msg(found != NULL, "no span with upstream.attempt_count");
	meta = json_object_get(found, "meta");
	mets = json_object_get(found, "metrics");
	ck_assert_double_eq(json_number_value(json_object_get(mets,
	    "upstream.attempt_count")), 2.0);
	want = itest_strf("127.0.0.1:%u", dead);
	ck_assert_str_eq(json_string_value(json_object_get(meta,
	    "upstream.attempt.1.address")), want);
	free(want);
	ck_assert_str_eq(json_string_value(json_object_get(meta,
	    "upstream.attempt.1.outcome")), "connect_failure");
	want = itest_strf("127.0.0.1:%u", b->port);
	ck_assert_str_eq(json_string_value(json_object_get(meta,
	    "upstream.attempt.2.address")), want);
	free(want);
	ck_assert_str_eq(json_string_value(json_object_get(meta,
	    "upstream.attempt.2.outcome")), "200");
	ck_assert(json_is_number(json_object_get(mets,
	    "upstream.attempt.1.duration_ms")));
	ck_assert(json_number_value(json_object_get(mets,
	    "upstream.attempt.2.duration_ms")) > 0.0);
	/* The span names the server that answered, and no error. */
	want = itest_strf("http://127.0.0.1:%u", b->port);
	ck_assert_str_eq(json_string_value(json_object_get(meta,
	    "upstream.address")), want);
	free(want);
	ck_assert_int_eq(json_integer_value(json_object_get(found, "error")),
	    0);
	json_decref(reqs);
}
END_TEST

/*
 * per_try_timeout: a server that accepts the connection (the kernel's
 * backlog) and never answers holds an attempt 300 ms, not the route's
 * 30 s timeout; the request goes to the other server and is answered.
 */
START_TEST(test_per_try_timeout)
{
	struct itest_proc *b, *gw;
	struct itest_resp r;
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	json_t *lines, *tries;
	char *cfg, *t;
	int64_t t0, took;
	int fd;

	/* Listening, never accepting: connects succeed, nothing answers. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	b = itest_backend_start("b");
	cfg = itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream:\n"
	    "      servers: [\"http://127.0.0.1:%u\", \"http://127.0.0.1:%u\"]\n"
	    "      timeout: 30s\n"
	    "      max_fails: 0\n"
	    "      retry: {per_try_timeout: 300ms}\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: stdout}\n",
	    (unsigned)ntohs(sin.sin_port), b->port);
	gw = itest_gateway_start(cfg);
	free(cfg);
	t0 = itest_now_ms();
	ck_assert_int_eq(itest_get(gw->port, "/echo", &r), 0);
	took = itest_now_ms() - t0;
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
	ck_assert_msg(took >= 250 && took < 10000, "took %lld ms",
	    (long long)took);
	ck_assert_uint_eq(itest_backend_requests(b), 1);
	lines = access_lines(gw, 1);
	tries = json_object_get(json_array_get(lines, 0), "upstream.tries");
	ck_assert_uint_eq(json_array_size(tries), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    tries, 0), "error")), "timeout");
	json_decref(lines);
	t = metrics_text(gw);
	ck_assert_double_eq(itest_metric(t, "tracestitch_upstream_retries_total",
	    "route=\"api\",reason=\"timeout\""), 1.0);
	free(t);
	close(fd);
}
END_TEST

/*
 * A retry goes to another server even where the balancer would choose
 * the same one again: with balance hash, a key's server resets the
 * connection and the retry goes to another of the three (each gets one
 * request), then the next request of the key is back on its own server.
 */
START_TEST(test_retry_skips_tried_server)
{
	static const unsigned w[3] = { 1, 1, 1 };
	struct itest_proc *b[3], *gw;
	struct itest_resp r;
	struct itest_conn *c;
	char *cfg, *first;
	uint64_t n[3];
	int i, got = 0;

	start_three(b);
	/* keepalive 0: a reset on a reused connection would be sent again
	 * on a new one to the same server first (a stale connection). */
	cfg = config_three(b, w, NULL, "      balance: hash\n"
	    "      hash_on: \"header:X-User\"\n      max_fails: 0\n"
	    "      keepalive: 0\n");
	gw = itest_gateway_start(cfg);
	free(cfg);
	c = itest_connect(gw->port);
	ck_assert_int_eq(get_on(c, "/echo", "X-User: u1\r\n", &r), 200);
	first = echo_name(&r);
	itest_resp_clear(&r);
	itest_conn_free(c);
	ck_assert_int_eq(itest_request(gw->port, ITEST_LIT(
	    "GET /reset HTTP/1.1\r\nHost: itest.test\r\nX-User: u1\r\n"
	    "Connection: close\r\n\r\n"), &r, 0, ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 502);
	itest_resp_clear(&r);
	for (i = 0; i < 3; i++) {
		n[i] = itest_backend_requests(b[i]);
		ck_assert_uint_le(n[i], 2);
		got += (int)n[i];
	}
	/* The key's server: /echo and the first /reset; another: the
	 * retry. */
	ck_assert_int_eq(got, 3);
	ck_assert_uint_eq(n[first[1] - '0'], 2);
	free(first);
}
END_TEST

static Suite *
upstreams_suite(void)
{
	Suite *s = suite_create("upstreams_e2e");
	TCase *tc = tcase_create("servers");

	tcase_add_checked_fixture(tc, NULL, itest_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_round_robin_weights);
	tcase_add_test(tc, test_least_request_spreads);
	tcase_add_test(tc, test_hash_sticky);
	tcase_add_test(tc, test_kill_one_under_load);
	tcase_add_test(tc, test_all_down_503_and_readyz);
	tcase_add_test(tc, test_active_checks_bring_back);
	tcase_add_test(tc, test_dns_reresolve);
	tcase_add_test(tc, test_span_names_server);
	tcase_add_test(tc, test_reload_servers);
	tcase_add_test(tc, test_dns_after_failure);
	tcase_add_test(tc, test_dns_ttl);
	tcase_add_test(tc, test_tls_servers_and_checks);
	tcase_add_test(tc, test_retry_budget);
	tcase_add_test(tc, test_retry_what);
	tcase_add_test(tc, test_no_retry_after_response_bytes);
	tcase_add_test(tc, test_span_shows_attempts);
	tcase_add_test(tc, test_per_try_timeout);
	tcase_add_test(tc, test_retry_skips_tried_server);
	suite_add_tcase(s, tc);
	return s;
}

ITEST_MAIN(upstreams_suite, true)
