/*
 * test_conn.c -- conn.c's allocation failures on the request path
 * (issue 9, item 6): each one answers 503 with a JSON reason and closes,
 * never aborts (the field index used xcalloc) nor closes without a word.
 *
 * A bare worker (an event base, a configuration generation without
 * routes, metrics) owns one end of a socketpair; the test writes requests
 * on the other end, runs the loop and reads what the connection answers.
 * conn_set_alloc() (conn_int.h) makes the chosen allocation fail.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "conn_int.h"
#include "metrics.h"
#include "proxy.h"
#include "server.h"
#include "ts_test.h"

static char *const no_env[] = { NULL };

static struct config *cfg;
static struct server_gen gen;
static struct worker_gen wgen;
static struct worker w;
static int peer = -1;
static const char *fail_what;	/* the allocation that fails */
static unsigned fail_seen, allocs;

static void *
test_alloc(const char *what, size_t size)
{
	allocs++;
	if (fail_what != NULL && strcmp(what, fail_what) == 0) {
		fail_seen++;
		return NULL;
	}
	return malloc(size);
}

static void
setup(void)
{
	static const char yaml[] =
	    "routes:\n"
	    "  - upstream: {url: \"http://127.0.0.1:9\"}\n"
	    "exporter: {type: none}\n";
	char *errors = NULL;

	if (config_load_string("t.yaml", yaml, sizeof yaml - 1, no_env, &cfg,
	    &errors) != 0)
		ck_abort_msg("%s", errors);
	memset(&gen, 0, sizeof gen);
	memset(&wgen, 0, sizeof wgen);
	memset(&w, 0, sizeof w);
	gen.cfg = cfg;
	gen.busy_timeout_ms = 5000;
	wgen.gen = &gen;		/* no routes, no CORS */
	w.wgen = &wgen;
	w.base = event_base_new();
	ck_assert_ptr_nonnull(w.base);
	w.metrics = metrics_new("test");
	w.max_conns = 10;
	w.accepting = true;
	TAILQ_INIT(&w.conns);
	/* The real pipeline answers (its own 503 with JSON and CORS). */
	w.pipeline = proxy_pipeline_new(&w, NULL, NULL);
	conn_front_init(&w.front, &proxy_exchange, w.pipeline);
	fail_what = NULL;
	fail_seen = allocs = 0;
	conn_set_alloc(test_alloc);
}

static void
teardown(void)
{
	struct server_conn *c;

	while ((c = TAILQ_FIRST(&w.conns)) != NULL)
		conn_close(c);
	conn_set_alloc(NULL);
	if (peer != -1)
		close(peer);
	peer = -1;
	conn_front_free(&w.front);
	proxy_pipeline_free(w.pipeline);
	event_base_free(w.base);
	config_unref(cfg);
	metrics_free_all();
}

/* A connection of w on a socketpair; peer is the client's end. */
static void
connect_client(void)
{
	struct sockaddr_storage ss;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX;
	w.nconns++;
	ck_assert_ptr_nonnull(conn_new(&w, sv[0], (struct sockaddr *)&ss,
	    sizeof ss, NULL));
	peer = sv[1];
}

/*
 * Send raw, run the worker's loop until the connection closed (EOF at
 * the peer) or 5 s passed; returns what the client received.
 */
static char *
exchange(const char *raw)
{
	static char got[8192];
	size_t len = 0;
	int i;

	ck_assert_int_eq(write(peer, raw, strlen(raw)), (ssize_t)strlen(raw));
	for (i = 0; i < 5000; i++) {
		struct pollfd pfd = { .fd = peer, .events = POLLIN };
		ssize_t n;

		event_base_loop(w.base, EVLOOP_NONBLOCK);
		if (poll(&pfd, 1, 1) <= 0)
			continue;
		n = read(peer, got + len, sizeof got - 1 - len);
		if (n <= 0)
			break;		/* closed */
		len += (size_t)n;
	}
	got[len] = '\0';
	/* The connection is gone: no loop turn left it half closed. */
	event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert_msg(TAILQ_EMPTY(&w.conns), "the connection is still open");
	return got;
}

/* got is our 503 with its JSON reason. */
static void
assert_503(const char *got)
{
	ck_assert_msg(strncmp(got, "HTTP/1.1 503 Service Unavailable\r\n",
	    34) == 0, "answer: %s", got);
	ck_assert_msg(strstr(got, "\r\nConnection: close\r\n") != NULL,
	    "answer: %s", got);
	ck_assert_msg(strstr(got, "\"error\":\"unavailable\"") != NULL,
	    "answer: %s", got);
	ck_assert_msg(strstr(got, "\"message\":\"the gateway is out of "
	    "memory\"") != NULL, "answer: %s", got);
}

/* The head's field index cannot grow (it was xcalloc: an abort). */
START_TEST(test_field_index_alloc_fails)
{
	fail_what = "fields";
	connect_client();
	ts_expect_warning("out of memory (header field index)");
	assert_503(exchange("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n"));
	ck_assert_uint_eq(fail_seen, 1);
	ck_assert_int_eq(ts_warnings_seen, 1);
}
END_TEST

/* No input buffer for a new request. */
START_TEST(test_input_buffer_alloc_fails)
{
	fail_what = "ibuf";
	connect_client();
	ts_expect_warning("out of memory (input buffer)");
	assert_503(exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
	ck_assert_uint_eq(fail_seen, 1);
}
END_TEST

/* The head's fields cannot be kept while its body comes. */
START_TEST(test_kept_fields_alloc_fails)
{
	const char *got;

	fail_what = "kept fields";
	connect_client();
	ts_expect_warning("out of memory (kept header fields)");
	got = exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
	    "\r\nabc");
	assert_503(got);
	ck_assert_uint_eq(fail_seen, 1);
}
END_TEST

/* The guard refuses more fields than max_header_fields before indexing. */
START_TEST(test_too_many_fields_refused_before_the_index)
{
	char raw[4096];
	const char *got;
	size_t n;
	int i;

	connect_client();
	n = (size_t)snprintf(raw, sizeof raw, "GET / HTTP/1.1\r\nHost: x\r\n");
	for (i = 0; i < 100; i++)
		n += (size_t)snprintf(raw + n, sizeof raw - n, "F%d: v\r\n", i);
	snprintf(raw + n, sizeof raw - n, "\r\n");
	got = exchange(raw);
	ck_assert_msg(strncmp(got, "HTTP/1.1 431 ", 13) == 0, "answer: %s",
	    got);
	ck_assert_msg(strstr(got, "too many request header fields") != NULL,
	    "answer: %s", got);
	/* Nothing was indexed: no field index was allocated. */
	ck_assert_ptr_null(w.front.fields);
}
END_TEST

static Suite *
conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("alloc");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_field_index_alloc_fails);
	tcase_add_test(tc, test_input_buffer_alloc_fails);
	tcase_add_test(tc, test_kept_fields_alloc_fails);
	tcase_add_test(tc, test_too_many_fields_refused_before_the_index);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(conn_suite)
