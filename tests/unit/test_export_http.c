/*
 * test_export_http.c -- the exporter's HTTP client (export_http.c) against
 * the in-process fake agent in keep-alive mode: one connection carries
 * every exchange, an agent that closes it after an answer costs one new
 * connection and no failed exchange, a close that crosses a request is
 * retried once on a new connection, an answer with "Connection: close"
 * is not reused; the configured headers are sent and a gzip body
 * inflates to the original (issue 14 items 2 and 3).
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <zlib.h>

#include "config.h"
#include "export_int.h"
#include "ts_test.h"
#include "support/fake_agent_core.h"

static struct fa_agent agent;

static void
setup(void)
{
	ck_assert_int_eq(fa_init(&agent, 0, NULL), 0);
	agent.keepalive = true;
}

static void
teardown(void)
{
	fa_fini(&agent);
}

/* The outcome of one exchange, set by its callback. */
struct outcome {
	bool	 done;
	int	 status;
	char	 error[128];
	char	 body[128];
};

static void
done_cb(const struct export_http_resp *r, void *arg)
{
	struct outcome *o = arg;

	o->done = true;
	o->status = r->status;
	snprintf(o->error, sizeof o->error, "%s", r->error != NULL ?
	    r->error : "");
	snprintf(o->body, sizeof o->body, "%s", r->body != NULL ? r->body :
	    "");
}

/* A client of the agent on its own base. */
struct rig {
	struct event_base	*base;
	struct export_url	 url;
	struct export_client	*c;
};

static void
rig_init(struct rig *r, const struct export_client_opts *o)
{
	char u[64], *cause = NULL;

	snprintf(u, sizeof u, "http://127.0.0.1:%d", agent.port);
	r->base = event_base_new();
	ck_assert_ptr_nonnull(r->base);
	ck_assert_int_eq(export_url_parse(u, "/v0.4/traces", &r->url,
	    &cause), 0);
	r->c = export_client_new(r->base, &r->url, o, &cause);
	ck_assert_msg(r->c != NULL, "%s", cause);
}

static void
rig_fini(struct rig *r)
{
	export_client_free(r->c);
	export_url_clear(&r->url);
	event_base_free(r->base);
}

/* One exchange, run to its end on the rig's loop (5 s at most). */
static void
exchange(struct rig *r, const char *body, struct outcome *o)
{
	struct export_http *h;
	int i;

	memset(o, 0, sizeof *o);
	h = export_http_start(r->c, "PUT", "Content-Type: text/plain\r\n",
	    body, strlen(body), 5000, done_cb, o);
	ck_assert_ptr_nonnull(h);
	for (i = 0; i < 5000 && !o->done; i++)
		event_base_loop(r->base, EVLOOP_ONCE);
	ck_assert_msg(o->done, "the exchange did not end");
}

/* Run the rig's loop for a while (callbacks of an idle connection). */
static void
settle(struct rig *r, unsigned ms)
{
	struct timeval tv = { 0, (suseconds_t)ms * 1000 };

	event_base_loopexit(r->base, &tv);
	event_base_dispatch(r->base);
}

/* N exchanges, one connection. */
START_TEST(test_keepalive_reuse)
{
	struct rig r;
	struct outcome o;
	int i;

	fa_start(&agent);
	rig_init(&r, NULL);
	for (i = 0; i < 5; i++) {
		exchange(&r, "batch", &o);
		ck_assert_msg(o.status == 200, "exchange %d: %d %s", i,
		    o.status, o.error);
		settle(&r, 5);
	}
	ck_assert_uint_eq(fa_count(&agent), 5);
	pthread_mutex_lock(&agent.mu);
	ck_assert_uint_eq(agent.nconns, 1);
	pthread_mutex_unlock(&agent.mu);
	ck_assert_uint_eq(export_client_connects(r.c), 1);
	/* HTTP/1.1 keep-alive: the client never asks for a close. */
	ck_assert_ptr_null(strstr(agent.reqs[0].head, "Connection:"));
	rig_fini(&r);
}
END_TEST

/* The agent closes after each answer: a new connection, no failure. */
START_TEST(test_agent_closes)
{
	struct rig r;
	struct outcome o;
	int i;

	agent.close_after = 2;
	fa_start(&agent);
	rig_init(&r, NULL);
	for (i = 0; i < 4; i++) {
		exchange(&r, "batch", &o);
		ck_assert_msg(o.status == 200, "exchange %d: %d %s", i,
		    o.status, o.error);
		settle(&r, 20);
	}
	ck_assert_uint_eq(fa_count(&agent), 4);
	pthread_mutex_lock(&agent.mu);
	ck_assert_uint_eq(agent.nconns, 2);
	pthread_mutex_unlock(&agent.mu);
	ck_assert_uint_eq(export_client_connects(r.c), 2);
	rig_fini(&r);
}
END_TEST

/*
 * The agent closes the kept connection as the second request arrives
 * (its idle close crossed the request): the client sends it again on a
 * new connection within the same exchange, which succeeds.
 */
START_TEST(test_close_crosses_request)
{
	struct rig r;
	struct outcome o;

	agent.drop_request = 2;
	fa_start(&agent);
	rig_init(&r, NULL);
	exchange(&r, "one", &o);
	ck_assert_int_eq(o.status, 200);
	exchange(&r, "two", &o);
	ck_assert_msg(o.status == 200, "%d %s", o.status, o.error);
	ck_assert_uint_eq(export_client_connects(r.c), 2);
	/* one, two (dropped), two again. */
	ck_assert_uint_eq(fa_count(&agent), 3);
	ck_assert_str_eq(agent.reqs[2].body, "two");
	rig_fini(&r);
}
END_TEST

/* "Connection: close" in the answer: the next exchange reconnects. */
START_TEST(test_answer_close_not_reused)
{
	struct rig r;
	struct outcome o;

	agent.keepalive = false;
	fa_start(&agent);
	rig_init(&r, NULL);
	exchange(&r, "one", &o);
	ck_assert_int_eq(o.status, 200);
	exchange(&r, "two", &o);
	ck_assert_int_eq(o.status, 200);
	ck_assert_uint_eq(export_client_connects(r.c), 2);
	rig_fini(&r);
}
END_TEST

/* A failed exchange (500) keeps a keep-alive connection usable. */
START_TEST(test_error_answer_keeps_connection)
{
	struct rig r;
	struct outcome o;

	fa_start(&agent);
	rig_init(&r, NULL);
	fa_set(&agent, FA_500, NULL);
	exchange(&r, "one", &o);
	ck_assert_int_eq(o.status, 500);
	fa_set(&agent, FA_NORMAL, NULL);
	exchange(&r, "two", &o);
	ck_assert_int_eq(o.status, 200);
	ck_assert_uint_eq(export_client_connects(r.c), 1);
	rig_fini(&r);
}
END_TEST

/* Configured headers go out; gzip bodies inflate to the original. */
START_TEST(test_headers_gzip)
{
	struct config_kv hv[] = {
		{ "X-Api-Key", "s3cret" },
		{ "X-Tenant", "a b" },
	};
	struct export_client_opts co;
	struct rig r;
	struct outcome o;
	char buf[128], body[4096], out[8192];
	z_stream z;
	size_t i;

	memset(&co, 0, sizeof co);
	co.headers = hv;
	co.n_headers = 2;
	co.gzip = true;
	for (i = 0; i < sizeof body - 1; i++)
		body[i] = (char)('a' + i % 7);
	body[sizeof body - 1] = '\0';
	fa_start(&agent);
	rig_init(&r, &co);
	exchange(&r, body, &o);
	ck_assert_int_eq(o.status, 200);
	ck_assert_str_eq(fa_header(agent.reqs[0].head, "X-Api-Key", buf,
	    sizeof buf), "s3cret");
	ck_assert_str_eq(fa_header(agent.reqs[0].head, "X-Tenant", buf,
	    sizeof buf), "a b");
	ck_assert_str_eq(fa_header(agent.reqs[0].head, "Content-Encoding",
	    buf, sizeof buf), "gzip");
	ck_assert_str_eq(fa_header(agent.reqs[0].head, "Content-Type", buf,
	    sizeof buf), "text/plain");
	ck_assert_uint_lt(agent.reqs[0].body_len, strlen(body) / 4);
	/* A gzip member (RFC 1952: 1f 8b), inflated by zlib. */
	ck_assert_int_eq((unsigned char)agent.reqs[0].body[0], 0x1f);
	ck_assert_int_eq((unsigned char)agent.reqs[0].body[1], 0x8b);
	memset(&z, 0, sizeof z);
	ck_assert_int_eq(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)agent.reqs[0].body;
	z.avail_in = (uInt)agent.reqs[0].body_len;
	z.next_out = (Bytef *)out;
	z.avail_out = sizeof out;
	ck_assert_int_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
	ck_assert_uint_eq(z.total_out, strlen(body));
	ck_assert(memcmp(out, body, strlen(body)) == 0);
	inflateEnd(&z);
	rig_fini(&r);
}
END_TEST

/* https: a CA file that does not load is refused up front. */
START_TEST(test_https_bad_ca)
{
	struct export_url u;
	char *cause = NULL;

	ck_assert_int_eq(export_url_parse("https://127.0.0.1:1/v1/traces",
	    "/v1/traces", &u, &cause), 0);
	ck_assert(u.tls);
	ck_assert_int_eq(export_client_check(&u, "/nonexistent/ca.pem",
	    &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "/nonexistent/ca.pem"));
	free(cause);
	cause = NULL;
	ck_assert_int_eq(export_client_check(&u, ts_data_path("tls/ca.pem"),
	    &cause), 0);
	export_url_clear(&u);
}
END_TEST

static Suite *
export_http_suite(void)
{
	Suite *s = suite_create("export_http");
	TCase *tc = tcase_create("keepalive");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_keepalive_reuse);
	tcase_add_test(tc, test_agent_closes);
	tcase_add_test(tc, test_close_crosses_request);
	tcase_add_test(tc, test_answer_close_not_reused);
	tcase_add_test(tc, test_error_answer_keeps_connection);
	tcase_add_test(tc, test_headers_gzip);
	tcase_add_test(tc, test_https_bad_ca);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(export_http_suite)
