/*
 * test_proxy.c -- end-to-end proxying through the real gateway binary.
 *
 * The gateway runs with a one-route config in front of the fake backend;
 * the backend's /echo answer tells exactly what arrived upstream.
 * Covered: bodies intact in both framings (RFC 9112 section 6: the
 * gateway re-frames with Content-Length), HEAD/204/304 without bodies
 * (RFC 9110 section 6.4.1), a 50 MB streamed response with bounded gateway
 * memory, hop-by-hop header removal both ways (RFC 9110 section 7.6.1),
 * X-Forwarded-*, header order and repeats, Host preserved, upstream
 * keep-alive reuse, route matching, and the access log line.
 */
#include <sys/socket.h>

#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "itest.h"

static struct itest_proc *be, *gw;

static void
setup(void)
{
	char *yaml;

	be = itest_backend_start("one");
	yaml = itest_config_simple(be->port, NULL,
	    "      timeout: 10s\n      keepalive: 8\n");
	gw = itest_gateway_start(yaml);
	free(yaml);
}

static void
teardown(void)
{
	itest_teardown();
	be = gw = NULL;
}

/* Send raw on c, read the response, return the echo JSON (status 200). */
static json_t *
echo_on(struct itest_conn *c, const char *raw, size_t len)
{
	struct itest_resp r;
	json_t *j;

	ck_assert_int_eq(itest_send(c, raw, len, ITEST_TIMEOUT_MS), 0);
	ck_assert_msg(itest_read_response(c, &r, 0, 30000) == 0, "%s",
	    itest_error());
	ck_assert_msg(r.status == 200, "status %d: %s", r.status, r.body);
	j = itest_resp_json(&r);
	itest_resp_clear(&r);
	return j;
}

static json_t *
echo(const char *raw)
{
	struct itest_conn *c = itest_connect(gw->port);
	json_t *j;

	j = echo_on(c, raw, strlen(raw));
	itest_conn_free(c);
	return j;
}

static const char *
jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

/* The access-log line (stdout) of request request_id r; NULL: none yet. */
static json_t *
log_line(struct itest_proc *g, const char *field, const char *value)
{
	return itest_json_line_wait(g, ITEST_STDOUT, "request_id", field,
	    value, ITEST_TIMEOUT_MS);
}

static int64_t
jint(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);

	ck_assert_msg(json_is_integer(v), "%s is not an integer", key);
	return (int64_t)json_integer_value(v);
}

START_TEST(get_is_forwarded_and_logged)
{
	const char *raw = "GET /echo/a?x=1&y=%20 HTTP/1.1\r\n"
	    "Host: itest.test\r\nUser-Agent: itest/1.0 \"quoted\"\r\n"
	    "Referer: https://app.test/page\r\n\r\n";
	char addr[64];
	json_t *j, *line;

	j = echo(raw);
	ck_assert_str_eq(jstr(j, "method"), "GET");
	ck_assert_str_eq(jstr(j, "target"), "/echo/a?x=1&y=%20");
	ck_assert_str_eq(jstr(j, "version"), "HTTP/1.1");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "body_bytes")),
	    0);
	json_decref(j);

	/* One JSON access-log line on stdout: Datadog's attributes. */
	line = log_line(gw, "http.url_details.path", "/echo/a");
	ck_assert_msg(line != NULL, "no access log line on stdout");
	ck_assert_ptr_nonnull(jstr(line, "timestamp"));
	ck_assert_str_eq(jstr(line, "status"), "info");
	ck_assert_str_eq(jstr(line, "level"), "info");
	ck_assert_str_eq(jstr(line, "message"), "GET /echo/a 200");
	ck_assert_str_eq(jstr(line, "http.method"), "GET");
	ck_assert_str_eq(jstr(line, "http.url"), "/echo/a?x=1&y=%20");
	ck_assert_int_eq(jint(line, "http.status_code"), 200);
	ck_assert_str_eq(jstr(line, "http.useragent"), "itest/1.0 \"quoted\"");
	ck_assert_str_eq(jstr(line, "http.referer"), "https://app.test/page");
	ck_assert_str_eq(jstr(line, "network.client.ip"), "127.0.0.1");
	/* The head as sent (no body), and the echo body sent back. */
	ck_assert_int_eq(jint(line, "network.bytes_read"), (int64_t)strlen(raw));
	ck_assert_int_gt(jint(line, "network.bytes_written"), 0);
	/* Nanoseconds: more than a microsecond, less than the timeout. */
	ck_assert_int_gt(jint(line, "duration"), 1000);
	ck_assert_int_lt(jint(line, "duration"), 30000000000LL);
	snprintf(addr, sizeof addr, "127.0.0.1:%u", be->port);
	ck_assert_str_eq(jstr(line, "upstream.address"), addr);
	snprintf(addr, sizeof addr, "http://127.0.0.1:%u", be->port);
	ck_assert_str_eq(jstr(line, "upstream.url"), addr);
	ck_assert_int_eq(jint(line, "upstream.status"), 200);
	ck_assert_int_eq(jint(line, "upstream.attempts"), 1);
	ck_assert(jstr(line, "request_id") != NULL &&
	    *jstr(line, "request_id") != '\0');
	ck_assert_str_eq(jstr(line, "route"), "api");
	ck_assert_ptr_nonnull(jstr(line, "dd.service"));
	/* The old names are gone (issue 14 item 4). */
	ck_assert_ptr_null(json_object_get(line, "method"));
	ck_assert_ptr_null(json_object_get(line, "path"));
	ck_assert_ptr_null(json_object_get(line, "client"));
	ck_assert_ptr_null(json_object_get(line, "duration_ms"));
	json_decref(line);
}
END_TEST

/*
 * The level follows the status (5xx error, 4xx warn), a request answered
 * by the gateway itself has no upstream fields, and a failed upstream
 * has its address and attempts but no status.
 */
START_TEST(access_log_levels_and_upstream)
{
	struct itest_proc *g;
	struct itest_resp r;
	char *yaml, addr[64];
	json_t *line;
	uint16_t dead;

	/* A port nobody listens on: the backend's, once it stopped. */
	dead = be->port;
	(void)itest_proc_stop(be, SIGTERM, ITEST_TIMEOUT_MS);
	yaml = itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  workers: 1\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: dead\n"
	    "    path_prefix: /dead\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: stdout}\n", dead);
	g = itest_gateway_start(yaml);
	free(yaml);

	ck_assert_int_eq(itest_request(g->port, ITEST_LIT("GET /nowhere "
	    "HTTP/1.1\r\nHost: x\r\n\r\n"), &r, 0, ITEST_TIMEOUT_MS), 0);
	itest_assert_error(&r, 404, "no_route");
	itest_resp_clear(&r);
	line = log_line(g, "http.url_details.path", "/nowhere");
	ck_assert_ptr_nonnull(line);
	ck_assert_int_eq(jint(line, "http.status_code"), 404);
	ck_assert_str_eq(jstr(line, "status"), "warn");
	ck_assert_str_eq(jstr(line, "level"), "warn");
	ck_assert_ptr_null(json_object_get(line, "upstream.address"));
	ck_assert_ptr_null(json_object_get(line, "upstream.status"));
	ck_assert_ptr_null(json_object_get(line, "upstream.attempts"));
	json_decref(line);

	ck_assert_int_eq(itest_request(g->port, ITEST_LIT("GET /dead/x "
	    "HTTP/1.1\r\nHost: x\r\n\r\n"), &r, 0, ITEST_TIMEOUT_MS), 0);
	itest_assert_error(&r, 502, "bad_gateway");
	itest_resp_clear(&r);
	line = log_line(g, "http.url_details.path", "/dead/x");
	ck_assert_ptr_nonnull(line);
	ck_assert_int_eq(jint(line, "http.status_code"), 502);
	ck_assert_str_eq(jstr(line, "status"), "error");
	snprintf(addr, sizeof addr, "127.0.0.1:%u", dead);
	ck_assert_str_eq(jstr(line, "upstream.address"), addr);
	ck_assert_ptr_null(json_object_get(line, "upstream.status"));
	ck_assert_int_eq(jint(line, "upstream.attempts"), 1);
	json_decref(line);
}
END_TEST

/* logging.access_log_format: combined writes nginx's combined lines. */
START_TEST(access_log_combined)
{
	struct itest_proc *g;
	struct itest_conn *c;
	char *yaml, *out, *p, *eol, want[256];
	json_t *j;
	long off;

	yaml = itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  workers: 1\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: stdout, "
	    "access_log_format: combined}\n", be->port);
	g = itest_gateway_start(yaml);
	free(yaml);

	c = itest_connect(g->port);
	j = echo_on(c, ITEST_LIT("GET /echo/c?q=1 HTTP/1.1\r\nHost: x\r\n"
	    "User-Agent: curl/8 \"x\"\r\n\r\n"));
	json_decref(j);
	itest_conn_free(c);
	off = itest_log_wait(g, ITEST_STDOUT, "\"GET /echo/c?q=1 HTTP/1.1\"",
	    0, ITEST_TIMEOUT_MS);
	ck_assert_msg(off > 0, "no combined access log line");
	out = itest_log_read(g, ITEST_STDOUT);
	p = out + off;
	while (p > out && p[-1] != '\n')
		p--;
	eol = strchr(p, '\n');
	ck_assert_ptr_nonnull(eol);
	*eol = '\0';
	/* 127.0.0.1 - - [07/Dec/2026:21:53:36 +0000] "GET ..." 200 N "-" "ua" */
	ck_assert_msg(strncmp(p, "127.0.0.1 - - [", 15) == 0, "%s", p);
	ck_assert_msg(strlen(p) > 44 && p[17] == '/' && p[21] == '/' &&
	    p[26] == ':' && strncmp(p + 35, " +0000] ", 8) == 0, "%s", p);
	snprintf(want, sizeof want, "\"GET /echo/c?q=1 HTTP/1.1\" 200 ");
	ck_assert_msg(strstr(p, want) != NULL, "%s", p);
	/* nginx escapes '"' as \x22; no Referer is "-". */
	ck_assert_msg(strstr(p, " \"-\" \"curl/8 \\x22x\\x22\"") != NULL &&
	    p[strlen(p) - 1] == '"', "%s", p);
	free(out);

	/* The format reloads (SIGHUP): back to JSON for new requests. */
	yaml = itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  workers: 1\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: stdout, "
	    "access_log_format: json}\n", be->port);
	itest_rewrite(g->cfg_path, yaml);
	free(yaml);
	off = (long)itest_log_size(g, ITEST_STDERR);
	itest_proc_signal(g, SIGHUP);
	ck_assert_msg(itest_log_wait(g, ITEST_STDERR, "configuration reloaded",
	    (size_t)off, ITEST_TIMEOUT_MS) > 0, "no reload");
	c = itest_connect(g->port);
	j = echo_on(c, ITEST_LIT("GET /echo/after-reload HTTP/1.1\r\n"
	    "Host: x\r\n\r\n"));
	json_decref(j);
	itest_conn_free(c);
	j = log_line(g, "http.url_details.path", "/echo/after-reload");
	ck_assert_msg(j != NULL, "no JSON line after the reload");
	json_decref(j);
}
END_TEST

/* 5 MB bodies with Content-Length for POST, PUT and PATCH. */
static const char *const body_methods[] = { "POST", "PUT", "PATCH" };

START_TEST(large_bodies_arrive_intact)
{
	size_t n = 5 * 1024 * 1024, i;
	struct itest_conn *c;
	char *body, *head, hex[65], *cl;
	uint32_t x = 12345;
	json_t *j;

	body = malloc(n);
	for (i = 0; i < n; i++) {
		x = x * 1103515245 + 12345;
		body[i] = (char)(x >> 16);
	}
	itest_sha256_hex(body, n, hex);
	c = itest_connect(gw->port);
	head = itest_strf("%s /echo/upload HTTP/1.1\r\nHost: itest.test\r\n"
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Length: %zu\r\n\r\n", body_methods[_i], n);
	ck_assert_int_eq(itest_send(c, head, strlen(head), 30000), 0);
	j = echo_on(c, body, n);
	ck_assert_str_eq(jstr(j, "method"), body_methods[_i]);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "body_bytes")),
	    (json_int_t)n);
	ck_assert_str_eq(jstr(j, "body_sha256"), hex);
	cl = itest_strf("%zu", n);
	ck_assert_pstr_eq(itest_echo_header(j, "Content-Length", 0), cl);
	ck_assert_ptr_null(itest_echo_header(j, "Transfer-Encoding", 0));
	json_decref(j);
	free(cl);
	free(head);
	free(body);
	itest_conn_free(c);
}
END_TEST

START_TEST(chunked_upload_is_reframed)
{
	size_t total = 0, sz, i;
	struct itest_conn *c = itest_connect(gw->port);
	char *piece, hex[65], cl[32];
	char *all;
	json_t *j;

	all = malloc(2 * 1024 * 1024);
	ck_assert_int_eq(itest_sendf(c, "POST /echo/chunked HTTP/1.1\r\n"
	    "Host: itest.test\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
	for (i = 0, sz = 1; total + sz < 1500000; i++, sz = sz * 7 % 65521 + 1) {
		piece = all + total;
		memset(piece, 'A' + (int)(i % 26), sz);
		ck_assert_int_eq(itest_sendf(c, "%zx\r\n", sz), 0);
		ck_assert_int_eq(itest_send(c, piece, sz, ITEST_TIMEOUT_MS), 0);
		ck_assert_int_eq(itest_sendf(c, "\r\n"), 0);
		total += sz;
	}
	itest_sha256_hex(all, total, hex);
	j = echo_on(c, "0\r\n\r\n", 5);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "body_bytes")),
	    (json_int_t)total);
	ck_assert_str_eq(jstr(j, "body_sha256"), hex);
	ck_assert_msg(!json_boolean_value(json_object_get(j, "chunked")),
	    "the backend received a chunked body; head: %s", jstr(j, "head"));
	snprintf(cl, sizeof cl, "%zu", total);
	ck_assert_pstr_eq(itest_echo_header(j, "Content-Length", 0), cl);
	ck_assert_ptr_null(itest_echo_header(j, "Transfer-Encoding", 0));
	json_decref(j);
	free(all);
	itest_conn_free(c);
}
END_TEST

START_TEST(head_and_bodiless_statuses)
{
	struct itest_conn *c = itest_connect(gw->port);
	struct itest_resp r;
	json_t *j;

	ck_assert_int_eq(itest_sendf(c, "HEAD /big?bytes=1000 HTTP/1.1\r\n"
	    "Host: itest.test\r\n\r\n"), 0);
	ck_assert_msg(itest_read_response(c, &r, ITEST_HEAD_REQUEST,
	    ITEST_TIMEOUT_MS) == 0, "%s", itest_error());
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body_len, 0);
	ck_assert(!r.closed);
	itest_resp_clear(&r);

	ck_assert_int_eq(itest_sendf(c, "GET /status/204 HTTP/1.1\r\n"
	    "Host: itest.test\r\n\r\n"), 0);
	ck_assert_msg(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS) == 0,
	    "%s", itest_error());
	ck_assert_int_eq(r.status, 204);
	ck_assert_uint_eq(r.body_len, 0);
	ck_assert_ptr_null(itest_resp_header(&r, "Transfer-Encoding"));
	itest_resp_clear(&r);

	ck_assert_int_eq(itest_sendf(c, "GET /status/304 HTTP/1.1\r\n"
	    "Host: itest.test\r\n\r\n"), 0);
	ck_assert_msg(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS) == 0,
	    "%s", itest_error());
	ck_assert_int_eq(r.status, 304);
	ck_assert_uint_eq(r.body_len, 0);
	ck_assert_ptr_null(itest_resp_header(&r, "Transfer-Encoding"));
	itest_resp_clear(&r);

	/* The connection is still in sync: a body would show up here. */
	j = echo_on(c, ITEST_LIT("GET /echo/after HTTP/1.1\r\n"
	    "Host: itest.test\r\n\r\n"));
	ck_assert_str_eq(jstr(j, "path"), "/echo/after");
	json_decref(j);
	itest_conn_free(c);
}
END_TEST

/* Streaming consumer: checks the pattern, pauses once, tracks RSS. */
struct stream_watch {
	uint64_t off;
	bool ok;
	bool paused;
	long idle_kb;
	long max_kb;
	uint64_t next_probe;
};

static void
stream_probe(struct stream_watch *w)
{
	long kb = itest_rss_kb(gw->pid);

	if (kb > w->max_kb)
		w->max_kb = kb;
}

static int
stream_cb(const char *data, size_t len, void *arg)
{
	struct stream_watch *w = arg;
	size_t i;
	int k;

	for (i = 0; i < len; i++, w->off++)
		if (data[i] != (char)('a' + w->off % 26))
			w->ok = false;
	if (w->off >= w->next_probe) {
		stream_probe(w);
		w->next_probe += 2 * 1024 * 1024;
	}
	if (!w->paused && w->off >= 8 * 1024 * 1024) {
		/*
		 * Stop reading for about a second: the gateway must apply
		 * backpressure to the backend, not buffer the rest.
		 */
		w->paused = true;
		for (k = 0; k < 20; k++) {
			int64_t until = itest_now_ms() + 50;

			while (itest_now_ms() < until)
				poll(NULL, 0, (int)(until - itest_now_ms()));
			stream_probe(w);
		}
	}
	return 0;
}

START_TEST(big_response_streams_with_bounded_memory)
{
	uint64_t n = 50ull * 1024 * 1024;
	struct stream_watch w;
	struct itest_conn *c;
	struct itest_resp r;
	char path[64];

	/* Warm up (threads, pools, first allocations) before the baseline. */
	ck_assert_int_eq(itest_get(gw->port, "/echo/warmup", &r), 0);
	itest_resp_clear(&r);
	memset(&w, 0, sizeof w);
	w.ok = true;
	w.idle_kb = w.max_kb = itest_rss_kb(gw->pid);
	ck_assert_int_gt(w.idle_kb, 0);

	c = itest_connect(gw->port);
	snprintf(path, sizeof path, "/big?bytes=%llu", (unsigned long long)n);
	ck_assert_int_eq(itest_sendf(c, "GET %s HTTP/1.1\r\n"
	    "Host: itest.test\r\n\r\n", path), 0);
	ck_assert_msg(itest_read_response_cb(c, &r, 0, 120000, stream_cb,
	    &w) == 0, "%s after %llu bytes", itest_error(),
	    (unsigned long long)w.off);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body_len, n);
	ck_assert(w.ok);
	ck_assert(w.paused);
	ck_assert_msg(w.max_kb - w.idle_kb < 40 * 1024,
	    "gateway RSS grew from %ld kB to %ld kB while streaming",
	    w.idle_kb, w.max_kb);
	itest_resp_clear(&r);

	/* Chunked from the backend, same content. */
	memset(&w, 0, sizeof w);
	w.ok = true;
	w.paused = true;
	w.idle_kb = w.max_kb = itest_rss_kb(gw->pid);
	ck_assert_int_eq(itest_sendf(c, "GET /bigchunked?bytes=10000000 "
	    "HTTP/1.1\r\nHost: itest.test\r\n\r\n"), 0);
	ck_assert_msg(itest_read_response_cb(c, &r, 0, 60000, stream_cb,
	    &w) == 0, "%s", itest_error());
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body_len, 10000000);
	ck_assert(w.ok);
	itest_resp_clear(&r);
	itest_conn_free(c);
}
END_TEST

START_TEST(hop_by_hop_request_headers_removed)
{
	const char *v;
	json_t *j;

	j = echo("GET /echo/hop HTTP/1.1\r\n"
	    "Host: itest.test\r\n"
	    "Connection: keep-alive, X-Drop-Me\r\n"
	    "X-Drop-Me: secret\r\n"
	    "Keep-Alive: timeout=5\r\n"
	    "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
	    "Proxy-Connection: keep-alive\r\n"
	    "TE: trailers\r\n"
	    "Trailer: X-Checksum\r\n"
	    "Upgrade: websocket\r\n"
	    "X-Keep-Me: yes\r\n"
	    "\r\n");
	ck_assert_ptr_null(itest_echo_header(j, "X-Drop-Me", 0));
	ck_assert_ptr_null(itest_echo_header(j, "Keep-Alive", 0));
	ck_assert_ptr_null(itest_echo_header(j, "Proxy-Authorization", 0));
	ck_assert_ptr_null(itest_echo_header(j, "Proxy-Connection", 0));
	ck_assert_ptr_null(itest_echo_header(j, "TE", 0));
	ck_assert_ptr_null(itest_echo_header(j, "Trailer", 0));
	ck_assert_ptr_null(itest_echo_header(j, "Upgrade", 0));
	ck_assert_ptr_null(itest_echo_header(j, "Transfer-Encoding", 0));
	/* The gateway may send its own Connection, never the client's. */
	v = itest_echo_header(j, "Connection", 0);
	ck_assert_msg(v == NULL || strcasestr(v, "x-drop-me") == NULL,
	    "Connection forwarded: %s", v);
	ck_assert_pstr_eq(itest_echo_header(j, "X-Keep-Me", 0), "yes");
	json_decref(j);
}
END_TEST

START_TEST(forwarded_headers_added)
{
	json_t *j;

	j = echo("GET /echo/xff HTTP/1.1\r\nHost: Api.Example.TEST:8443\r\n"
	    "\r\n");
	ck_assert_pstr_eq(itest_echo_header(j, "Host", 0),
	    "Api.Example.TEST:8443");
	ck_assert_ptr_null(itest_echo_header(j, "Host", 1));
	ck_assert_pstr_eq(itest_echo_header(j, "X-Forwarded-For", 0),
	    "127.0.0.1");
	ck_assert_pstr_eq(itest_echo_header(j, "X-Forwarded-Proto", 0), "http");
	ck_assert_pstr_eq(itest_echo_header(j, "X-Forwarded-Host", 0),
	    "Api.Example.TEST:8443");
	json_decref(j);

	/*
	 * An incoming X-Forwarded-Proto or -Host is replaced by what the
	 * gateway saw (docs/deployment.md says so): there is no trusted-proxy
	 * setting yet, so a client could otherwise claim https.
	 */
	j = echo("GET /echo/xfp HTTP/1.1\r\nHost: itest.test\r\n"
	    "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n"
	    "\r\n");
	ck_assert_pstr_eq(itest_echo_header(j, "X-Forwarded-Proto", 0), "http");
	ck_assert_ptr_null(itest_echo_header(j, "X-Forwarded-Proto", 1));
	ck_assert_pstr_eq(itest_echo_header(j, "X-Forwarded-Host", 0),
	    "itest.test");
	ck_assert_ptr_null(itest_echo_header(j, "X-Forwarded-Host", 1));
	json_decref(j);

	/* An incoming X-Forwarded-For is appended to, never replaced. */
	j = echo("GET /echo/xff HTTP/1.1\r\nHost: itest.test\r\n"
	    "X-Forwarded-For: 203.0.113.7, 10.1.2.3\r\n\r\n");
	ck_assert_pstr_eq(itest_echo_header(j, "X-Forwarded-For", 0),
	    "203.0.113.7, 10.1.2.3, 127.0.0.1");
	ck_assert_ptr_null(itest_echo_header(j, "X-Forwarded-For", 1));
	json_decref(j);
}
END_TEST

START_TEST(header_order_and_repeats_kept)
{
	static const char *const want[][2] = {
		{ "X-A", "1" },
		{ "x-MiXeD-CaSe", "Value With  Two  Spaces" },
		{ "X-A", "3" },
		{ "Cookie", "a=1" },
		{ "X-Empty", "" },
		{ "Cookie", "b=2; c=3" },
		{ "Accept", "text/html, application/json;q=0.9" },
	};
	json_t *j, *h, *pair;
	const char *name;
	size_t i, k = 0;

	j = echo("GET /echo/order HTTP/1.1\r\n"
	    "Host: itest.test\r\n"
	    "X-A: 1\r\n"
	    "x-MiXeD-CaSe: Value With  Two  Spaces\r\n"
	    "X-A: 3\r\n"
	    "Cookie: a=1\r\n"
	    "X-Empty:\r\n"
	    "Cookie: b=2; c=3\r\n"
	    "Accept: text/html, application/json;q=0.9\r\n"
	    "\r\n");
	h = json_object_get(j, "headers");
	json_array_foreach(h, i, pair) {
		name = json_string_value(json_array_get(pair, 0));
		if (strcasecmp(name, "X-A") != 0 &&
		    strcasecmp(name, "x-mixed-case") != 0 &&
		    strcasecmp(name, "Cookie") != 0 &&
		    strcasecmp(name, "X-Empty") != 0 &&
		    strcasecmp(name, "Accept") != 0)
			continue;
		ck_assert_msg(k < ITEST_NITEMS(want), "extra header %s", name);
		ck_assert_str_eq(name, want[k][0]);
		ck_assert_str_eq(json_string_value(json_array_get(pair, 1)),
		    want[k][1]);
		k++;
	}
	ck_assert_msg(k == ITEST_NITEMS(want), "%zu of %zu headers arrived; "
	    "head:\n%s", k, ITEST_NITEMS(want), jstr(j, "head"));
	json_decref(j);
}
END_TEST

START_TEST(hop_by_hop_response_headers_removed)
{
	struct itest_resp r;
	const char *v;
	size_t i, k = 0;
	static const char *const cookies[] = { "a=1", "b=2; Path=/", "c=3" };

	ck_assert_int_eq(itest_get(gw->port, "/headers", &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "ok\n");
	ck_assert_ptr_null(itest_resp_header(&r, "Foo"));
	ck_assert_ptr_null(itest_resp_header(&r, "X-Bar"));
	ck_assert_ptr_null(itest_resp_header(&r, "Keep-Alive"));
	ck_assert_ptr_null(itest_resp_header(&r, "Proxy-Authenticate"));
	ck_assert_ptr_null(itest_resp_header(&r, "Proxy-Connection"));
	ck_assert_ptr_null(itest_resp_header(&r, "Upgrade"));
	ck_assert_ptr_null(itest_resp_header(&r, "Trailer"));
	v = itest_resp_header(&r, "Connection");
	ck_assert_msg(v == NULL || strcasestr(v, "foo") == NULL,
	    "backend Connection forwarded: %s", v);
	ck_assert_pstr_eq(itest_resp_header(&r, "X-End-To-End"), "kept");
	for (i = 0; i < r.n_hdrs; i++) {
		if (strcasecmp(r.hdrs[i].name, "Set-Cookie") != 0)
			continue;
		ck_assert_msg(k < 3, "extra Set-Cookie %s", r.hdrs[i].value);
		ck_assert_str_eq(r.hdrs[i].value, cookies[k]);
		k++;
	}
	ck_assert_uint_eq(k, 3);
	itest_resp_clear(&r);
}
END_TEST

START_TEST(upstream_keepalive_reused)
{
	uint64_t conns0 = itest_backend_connections(be), conns;
	struct itest_conn *c;
	struct itest_resp r;
	int i, k;

	for (k = 0; k < 4; k++) {
		c = itest_connect(gw->port);
		for (i = 0; i < 50; i++) {
			ck_assert_int_eq(itest_sendf(c, "GET /echo/ka/%d/%d "
			    "HTTP/1.1\r\nHost: itest.test\r\n\r\n", k, i), 0);
			ck_assert_msg(itest_read_response(c, &r, 0,
			    ITEST_TIMEOUT_MS) == 0, "request %d/%d: %s", k, i,
			    itest_error());
			ck_assert_int_eq(r.status, 200);
			ck_assert_msg(!r.closed, "gateway closed a keep-alive "
			    "client connection");
			itest_resp_clear(&r);
		}
		itest_conn_free(c);
	}
	conns = itest_backend_connections(be) - conns0;
	ck_assert_msg(conns < 10, "200 requests used %llu upstream connections",
	    (unsigned long long)conns);
}
END_TEST

START_TEST(routes_match_host_and_prefix_in_order)
{
	struct itest_proc *two, *g;
	struct itest_resp r;
	struct itest_conn *c;
	char *yaml;
	json_t *j;

	two = itest_backend_start("two");
	yaml = itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  workers: 2\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: hosted\n"
	    "    host: a.test\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "  - name: prefixed\n"
	    "    path_prefix: /b\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: stdout}\n",
	    be->port, two->port);
	g = itest_gateway_start(yaml);
	free(yaml);

	c = itest_connect(g->port);
	j = echo_on(c, ITEST_LIT("GET /b/x HTTP/1.1\r\nHost: a.test\r\n\r\n"));
	ck_assert_str_eq(jstr(j, "name"), "one");
	json_decref(j);
	j = echo_on(c, ITEST_LIT("GET /b/x HTTP/1.1\r\nHost: A.Test\r\n\r\n"));
	ck_assert_str_eq(jstr(j, "name"), "one");
	json_decref(j);
	j = echo_on(c, ITEST_LIT("GET /b/x HTTP/1.1\r\n"
	    "Host: other.test\r\n\r\n"));
	ck_assert_str_eq(jstr(j, "name"), "two");
	json_decref(j);
	itest_conn_free(c);

	ck_assert_int_eq(itest_request(g->port, ITEST_LIT("GET /c HTTP/1.1\r\n"
	    "Host: other.test\r\n\r\n"), &r, 0, ITEST_TIMEOUT_MS), 0);
	itest_assert_error(&r, 404, "no_route");
	itest_resp_clear(&r);
}
END_TEST

/* Read the interim 100 (Continue) of c (fails the test otherwise). */
static void
read_continue(struct itest_conn *c)
{
	char interim[64];
	ssize_t n = 0;

	if (itest_readable(c, ITEST_TIMEOUT_MS))
		n = recv(c->fd, interim, sizeof interim - 1, 0);
	interim[n > 0 ? n : 0] = '\0';
	ck_assert_msg(strcmp(interim, "HTTP/1.1 100 Continue\r\n\r\n") == 0,
	    "no 100 Continue, got: %s", interim);
}

/* A head of n X-<tag>-i: <tag>-i fields (caller frees). */
static char *
many_fields(const char *tag, int n)
{
	size_t size = (size_t)n * 40 + 1, len = 0;
	char *s = malloc(size);
	int i;

	ck_assert_ptr_nonnull(s);
	s[0] = '\0';
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, size - len,
		    "X-%s-%d: %s-%d\r\n", tag, i, tag, i);
	return s;
}

/*
 * Connection A's head waits for its body while connection B's request
 * (more fields than the worker's first index array of 64, within
 * max_header_fields' 100) comes and goes on the same worker: A's head
 * must reach the backend intact.
 */
START_TEST(waiting_head_survives_other_requests)
{
	struct itest_conn *a = itest_connect(gw->port);
	struct itest_conn *b = itest_connect(gw->port);
	char *fa = many_fields("A", 90), *fb = many_fields("B", 95), *raw;
	char name[16], want[16];
	json_t *j;
	int i;

	ck_assert_int_eq(itest_sendf(a, "POST /echo/a HTTP/1.1\r\n"
	    "Host: itest.test\r\n%sContent-Length: 5\r\n"
	    "Expect: 100-continue\r\n\r\n", fa), 0);
	read_continue(a);
	/* Fewer fields (the same index array), then more (a new one). */
	for (i = 0; i < 2; i++) {
		raw = itest_strf("GET /echo/b HTTP/1.1\r\nHost: itest.test\r\n"
		    "%s\r\n", i == 0 ? strstr(fb, "X-B-85") : fb);
		j = echo_on(b, raw, strlen(raw));
		ck_assert_str_eq(itest_echo_header(j, "X-B-94", 0), "B-94");
		ck_assert_ptr_null(itest_echo_header(j, "X-A-0", 0));
		json_decref(j);
		free(raw);
	}
	/* The body comes in two pieces. */
	ck_assert_int_eq(itest_sendf(a, "he"), 0);
	j = echo_on(a, ITEST_LIT("llo"));
	ck_assert_str_eq(jstr(j, "target"), "/echo/a");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "body_bytes")),
	    5);
	for (i = 0; i < 90; i++) {
		snprintf(name, sizeof name, "X-A-%d", i);
		snprintf(want, sizeof want, "A-%d", i);
		ck_assert_msg(itest_echo_header(j, name, 0) != NULL &&
		    strcmp(itest_echo_header(j, name, 0), want) == 0,
		    "%s: %s", name, itest_echo_header(j, name, 0));
	}
	ck_assert_ptr_null(itest_echo_header(j, "X-B-0", 0));
	json_decref(j);
	free(fa);
	free(fb);
	itest_conn_free(a);
	itest_conn_free(b);
}
END_TEST

/* A head larger than a connection's first input buffer, sent in pieces,
 * then a chunked body in pieces: everything arrives intact. */
START_TEST(large_head_and_body_in_pieces)
{
	struct itest_conn *c = itest_connect(gw->port);
	char big[9001], *raw;
	size_t len, off, step;
	json_t *j;

	memset(big, 'v', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	raw = itest_strf("POST /echo/big HTTP/1.1\r\nHost: itest.test\r\n"
	    "X-Big: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: 1\r\n\r\n", big);
	len = strlen(raw);
	/* Pieces of 1000 bytes, then byte by byte for the body. */
	for (off = 0; off < len - 40; off += step) {
		step = len - 40 - off < 1000 ? len - 40 - off : 1000;
		ck_assert_int_eq(itest_send(c, raw + off, step,
		    ITEST_TIMEOUT_MS), 0);
	}
	for (; off < len - 1; off++)
		ck_assert_int_eq(itest_send(c, raw + off, 1, ITEST_TIMEOUT_MS),
		    0);
	j = echo_on(c, raw + off, 1);
	ck_assert_str_eq(itest_echo_header(j, "X-Big", 0), big);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "body_bytes")),
	    7);
	ck_assert_ptr_null(itest_echo_header(j, "Transfer-Encoding", 0));
	json_decref(j);
	free(raw);
	itest_conn_free(c);
}
END_TEST

/* Extension methods (WebDAV, PURGE) are proxied as sent; odd ones 501. */
START_TEST(extension_methods_proxied)
{
	struct itest_conn *c = itest_connect(gw->port);
	struct itest_resp r;
	json_t *j;

	j = echo_on(c, ITEST_LIT("PROPFIND /echo/dav HTTP/1.1\r\n"
	    "Host: itest.test\r\nDepth: 1\r\nContent-Length: 7\r\n\r\n"
	    "<a></a>"));
	ck_assert_str_eq(jstr(j, "method"), "PROPFIND");
	ck_assert_str_eq(itest_echo_header(j, "Depth", 0), "1");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "body_bytes")),
	    7);
	json_decref(j);
	j = echo_on(c, ITEST_LIT("PURGE /echo/cache HTTP/1.1\r\n"
	    "Host: itest.test\r\n\r\n"));
	ck_assert_str_eq(jstr(j, "method"), "PURGE");
	json_decref(j);
	itest_conn_free(c);
	ck_assert_int_eq(itest_request(gw->port, ITEST_LIT(
	    "get /echo HTTP/1.1\r\nHost: itest.test\r\n\r\n"), &r, 0,
	    ITEST_TIMEOUT_MS), 0);
	itest_assert_error(&r, 501, "not_implemented");
	itest_resp_clear(&r);
}
END_TEST

/* xorshift64* with a fixed seed: the same streams on every run. */
static uint64_t
rnd(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 2685821657736338717ULL;
}

/* Append a random request (kind from the stream) to buf; its target. */
static size_t
random_request(uint64_t *st, char *buf, size_t size, int seq, size_t *blen)
{
	size_t n, i, nh = rnd(st) % 60, body = 0;
	int kind = (int)(rnd(st) % 3);

	n = (size_t)snprintf(buf, size, "%s /echo/r%d HTTP/1.1\r\n"
	    "Host: itest.test\r\n", kind == 0 ? "GET" : "POST", seq);
	for (i = 0; i < nh; i++) {
		size_t vl = rnd(st) % 150, j;

		n += (size_t)snprintf(buf + n, size - n, "X-R%zu: ", i);
		for (j = 0; j < vl; j++)
			buf[n++] = (char)('a' + rnd(st) % 26);
		buf[n++] = '\r';
		buf[n++] = '\n';
	}
	if (kind == 1) {
		body = rnd(st) % 20000;
		n += (size_t)snprintf(buf + n, size - n,
		    "Content-Length: %zu\r\n\r\n", body);
		memset(buf + n, 'c', body);
		n += body;
	} else if (kind == 2) {
		int chunks = (int)(rnd(st) % 5), c;

		n += (size_t)snprintf(buf + n, size - n,
		    "Transfer-Encoding: chunked\r\n\r\n");
		for (c = 0; c < chunks; c++) {
			size_t cl = 1 + rnd(st) % 3000;

			n += (size_t)snprintf(buf + n, size - n, "%zx%s\r\n",
			    cl, c == 1 ? ";ext=1" : "");
			memset(buf + n, 'k', cl);
			n += cl;
			buf[n++] = '\r';
			buf[n++] = '\n';
			body += cl;
		}
		n += (size_t)snprintf(buf + n, size - n, "0\r\n%s\r\n",
		    rnd(st) % 2 ? "X-Trailer: t\r\n" : "");
	} else
		n += (size_t)snprintf(buf + n, size - n, "\r\n");
	*blen = body;
	return n;
}

/*
 * Streams of 1-5 pipelined requests (GET; POST with Content-Length or
 * chunked bodies up to 20 KB; up to 60 extra fields of up to 150 bytes)
 * sent in random pieces of 1 byte to 4 KB on kept-alive connections:
 * every answer comes in order with its body intact.  This walks conn.c's
 * buffer reuse, compaction and growth, and bodies crossing reads.
 */
START_TEST(random_pipelines_in_random_pieces)
{
	enum { ROUNDS = 60, MAXREQ = 5 };
	static char buf[MAXREQ * 40000];
	uint64_t st = 0x9e3779b97f4a7c15ULL;
	struct itest_conn *c = itest_connect(gw->port);
	int round, seq = 0;

	for (round = 0; round < ROUNDS; round++) {
		size_t len = 0, off, piece, blen[MAXREQ];
		int nreq = 1 + (int)(rnd(&st) % MAXREQ), i;

		for (i = 0; i < nreq; i++)
			len += random_request(&st, buf + len, sizeof buf - len,
			    seq + i, &blen[i]);
		for (off = 0; off < len; off += piece) {
			piece = rnd(&st) % 3 == 0 ? 1 : 1 + rnd(&st) % 4096;
			if (piece > len - off)
				piece = len - off;
			ck_assert_int_eq(itest_send(c, buf + off, piece,
			    ITEST_TIMEOUT_MS), 0);
		}
		for (i = 0; i < nreq; i++, seq++) {
			struct itest_resp r;
			char want[32];
			json_t *j;

			ck_assert_msg(itest_read_response(c, &r, 0,
			    ITEST_TIMEOUT_MS) == 0, "round %d request %d: %s",
			    round, i, itest_error());
			ck_assert_msg(r.status == 200, "round %d: status %d %s",
			    round, r.status, r.body);
			j = itest_resp_json(&r);
			snprintf(want, sizeof want, "/echo/r%d", seq);
			ck_assert_str_eq(jstr(j, "target"), want);
			ck_assert_int_eq(json_integer_value(json_object_get(j,
			    "body_bytes")), (json_int_t)blen[i]);
			json_decref(j);
			itest_resp_clear(&r);
		}
	}
	itest_conn_free(c);
}
END_TEST

START_TEST(pipelined_requests_answered_in_order)
{
	struct itest_conn *c = itest_connect(gw->port);
	struct itest_resp r;
	json_t *j;
	char want[32];
	int i;

	ck_assert_int_eq(itest_sendf(c,
	    "GET /echo/p0 HTTP/1.1\r\nHost: itest.test\r\n\r\n"
	    "GET /slow?ms=100&p=1 HTTP/1.1\r\nHost: itest.test\r\n\r\n"
	    "GET /echo/p2 HTTP/1.1\r\nHost: itest.test\r\n\r\n"), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_msg(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS)
		    == 0, "response %d: %s", i, itest_error());
		ck_assert_int_eq(r.status, 200);
		j = itest_resp_json(&r);
		snprintf(want, sizeof want, i == 1 ? "/slow?ms=100&p=1" :
		    "/echo/p%d", i);
		ck_assert_str_eq(jstr(j, "target"), want);
		json_decref(j);
		itest_resp_clear(&r);
	}
	itest_conn_free(c);
}
END_TEST

START_TEST(client_abort_mid_stream_recovers)
{
	struct itest_conn *c;
	struct itest_resp r;
	int64_t deadline;
	uint64_t conns0;
	char buf[65536];
	size_t got = 0;
	ssize_t n;

	conns0 = itest_backend_connections(be);
	c = itest_connect(gw->port);
	ck_assert_int_eq(itest_sendf(c, "GET /big?bytes=104857600 HTTP/1.1\r\n"
	    "Host: itest.test\r\n\r\n"), 0);
	deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	while (got < 1024 * 1024 && itest_now_ms() < deadline) {
		if (!itest_readable(c, 100))
			continue;
		n = recv(c->fd, buf, sizeof buf, 0);
		ck_assert_int_gt(n, 0);
		got += (size_t)n;
	}
	ck_assert_uint_ge(got, 1024 * 1024);
	itest_conn_free(c);	/* abort with ~99 MB unread */

	/*
	 * The gateway must drop that upstream connection (it is mid-body,
	 * never reusable) and go on serving: the next request works and
	 * does not land on the aborted stream.
	 */
	ck_assert_int_eq(itest_get(gw->port, "/echo/after-abort", &r), 0);
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
	ck_assert_uint_ge(itest_backend_connections(be), conns0 + 1);

	/* Every client connection is accounted as closed again. */
	deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	for (;;) {
		double open;

		ck_assert_int_eq(itest_get(gw->admin_port, "/metrics", &r), 0);
		open = itest_metric(r.body, "tracestitch_open_connections",
		    NULL);
		itest_resp_clear(&r);
		if (open == 0)
			break;
		ck_assert_msg(itest_now_ms() < deadline, "%g client "
		    "connections still open after the abort", open);
		poll(NULL, 0, 20);
	}
}
END_TEST

START_TEST(stale_pooled_connection_not_an_error)
{
	struct itest_proc *idle_be, *g;
	struct itest_resp r;
	int64_t deadline;
	uint64_t closed;
	char *yaml;
	int round, k;

	/* A backend that closes keep-alive connections idle for 150 ms. */
	idle_be = itest_backend_start_idle("idle", 150);
	yaml = itest_config_simple(idle_be->port, NULL,
	    "      keepalive: 8\n");
	g = itest_gateway_start(yaml);
	free(yaml);

	for (round = 0; round < 3; round++) {
		closed = itest_backend_stat(idle_be, "idle_closed");
		for (k = 0; k < 2; k++) {
			ck_assert_int_eq(itest_get(g->port, "/echo/warm", &r),
			    0);
			ck_assert_int_eq(r.status, 200);
			itest_resp_clear(&r);
		}
		/* Wait until the backend closed the pooled connection(s). */
		deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
		while (itest_backend_stat(idle_be, "idle_closed") == closed) {
			ck_assert_msg(itest_now_ms() < deadline,
			    "backend never closed an idle connection");
			poll(NULL, 0, 20);
		}
		/*
		 * The gateway must notice the closed pooled connection (or
		 * retry the idempotent request on a new one): no 502.
		 */
		for (k = 0; k < 4; k++) {
			ck_assert_int_eq(itest_get(g->port, "/echo/after-idle",
			    &r), 0);
			ck_assert_msg(r.status == 200, "round %d request %d "
			    "after the backend closed an idle pooled "
			    "connection: status %d %s", round, k, r.status,
			    r.body);
			itest_resp_clear(&r);
		}
	}
}
END_TEST

START_TEST(expect_100_continue)
{
	struct itest_conn *c = itest_connect(gw->port);
	char interim[256];
	ssize_t n = 0;
	json_t *j;

	ck_assert_int_eq(itest_sendf(c, "POST /echo/expect HTTP/1.1\r\n"
	    "Host: itest.test\r\nContent-Length: 5\r\n"
	    "Expect: 100-continue\r\n\r\n"), 0);
	/* RFC 9110 section 10.1.1: a 100 (Continue) before the body. */
	if (itest_readable(c, 3000))
		n = recv(c->fd, interim, sizeof interim - 1, 0);
	interim[n > 0 ? n : 0] = '\0';
	ck_assert_msg(strncmp(interim, "HTTP/1.1 100 ", 13) == 0,
	    "no 100 Continue, got: %s", interim);
	ck_assert_msg(strstr(interim, "\r\n\r\n") != NULL &&
	    strstr(interim, "\r\n\r\n")[4] == '\0',
	    "unexpected bytes after the 100 response: %s", interim);
	j = echo_on(c, ITEST_LIT("hello"));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "body_bytes")),
	    5);
	ck_assert_ptr_null(itest_echo_header(j, "Expect", 0));
	json_decref(j);
	itest_conn_free(c);
}
END_TEST

START_TEST(expect_unknown_417)
{
	uint64_t before = itest_backend_requests(be);
	struct itest_resp r;

	ck_assert_int_eq(itest_request(gw->port, ITEST_LIT(
	    "POST /echo HTTP/1.1\r\nHost: itest.test\r\n"
	    "Content-Length: 5\r\nExpect: teapot\r\n\r\nhello"), &r, 0,
	    ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 417);
	ck_assert(r.closed);
	itest_resp_clear(&r);
	ck_assert_uint_eq(itest_backend_requests(be), before);
}
END_TEST

START_TEST(http10_client)
{
	struct itest_conn *c = itest_connect(gw->port);
	struct itest_resp r;
	json_t *j;

	ck_assert_int_eq(itest_send(c, ITEST_LIT("GET /echo/old HTTP/1.0\r\n"
	    "\r\n"), ITEST_TIMEOUT_MS), 0);
	ck_assert_msg(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS) == 0,
	    "%s", itest_error());
	ck_assert_int_eq(r.status, 200);
	j = itest_resp_json(&r);
	ck_assert_str_eq(jstr(j, "path"), "/echo/old");
	json_decref(j);
	ck_assert_ptr_null(itest_resp_header(&r, "Transfer-Encoding"));
	itest_resp_clear(&r);
	ck_assert_msg(itest_wait_closed(c, ITEST_TIMEOUT_MS),
	    "HTTP/1.0 connection without keep-alive left open");
	itest_conn_free(c);
}
END_TEST

static Suite *
proxy_suite(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("proxy");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, get_is_forwarded_and_logged);
	tcase_add_test(tc, access_log_levels_and_upstream);
	tcase_add_test(tc, access_log_combined);
	tcase_add_loop_test(tc, large_bodies_arrive_intact, 0,
	    ITEST_NITEMS(body_methods));
	tcase_add_test(tc, chunked_upload_is_reframed);
	tcase_add_test(tc, head_and_bodiless_statuses);
	tcase_add_test(tc, big_response_streams_with_bounded_memory);
	tcase_add_test(tc, hop_by_hop_request_headers_removed);
	tcase_add_test(tc, forwarded_headers_added);
	tcase_add_test(tc, header_order_and_repeats_kept);
	tcase_add_test(tc, hop_by_hop_response_headers_removed);
	tcase_add_test(tc, upstream_keepalive_reused);
	tcase_add_test(tc, routes_match_host_and_prefix_in_order);
	tcase_add_test(tc, pipelined_requests_answered_in_order);
	tcase_add_test(tc, waiting_head_survives_other_requests);
	tcase_add_test(tc, large_head_and_body_in_pieces);
	tcase_add_test(tc, extension_methods_proxied);
	tcase_add_test(tc, random_pipelines_in_random_pieces);
	tcase_add_test(tc, client_abort_mid_stream_recovers);
	tcase_add_test(tc, stale_pooled_connection_not_an_error);
	tcase_add_test(tc, expect_100_continue);
	tcase_add_test(tc, expect_unknown_417);
	tcase_add_test(tc, http10_client);
	suite_add_tcase(s, tc);
	return s;
}

ITEST_MAIN(proxy_suite, true)
