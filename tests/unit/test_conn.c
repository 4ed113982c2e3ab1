/*
 * test_conn.c -- the HTTP/1.1 front-end (conn.c) through its doors.
 *
 * "alloc": conn.c's allocation failures on the request path (issue 9,
 * item 6): each one answers 503 with a JSON reason and closes, never
 * aborts (the field index used xcalloc) nor closes without a word.  The
 * real pipeline (proxy.c) is behind the connection there.
 *
 * "front": a FAKE pipeline behind the connection (a test table of
 * exchange.h callbacks): pipelining byte for byte, the guard's refusal
 * answered through the door, the header/body/idle timeouts, back-pressure
 * (stop, drained, resume), a client leaving mid-reply (gone once), a
 * half-closing client (complete, not gone), the pipeline's abort (the
 * client sees the cut), and that no pipeline callback is entered while
 * another one runs (a depth counter: the no-re-entry rule of exchange.h).
 *
 * A bare front-end context (an event base, metrics, a configuration
 * without routes: no struct worker, which conn.c does not know) owns one
 * end of a socketpair; the test writes requests
 * on the other end, runs the loop and reads what the connection answers.
 * conn_set_alloc() (conn_int.h) makes the chosen allocation fail.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "conn_int.h"
#include "metrics.h"
#include "proxy.h"
#include "ts_test.h"
#include "util.h"

static char *const no_env[] = { NULL };

static struct config *cfg;
static struct worker_gen wgen;
/* What a worker would hold for its front-end (server.c's struct worker). */
static struct {
	struct event_base *base;
	struct metrics *metrics;
	struct conn_front front;
	struct proxy_pipeline *pipeline;
	unsigned nconns;
} w;
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

/* The configuration of the next setup (short timeouts for "front"). */
static const char *setup_yaml =
    "routes:\n"
    "  - upstream: {url: \"http://127.0.0.1:9\"}\n"
    "exporter: {type: none}\n";

/* The worker's side of the front-end's events (server.c's in the gateway). */
static unsigned requests_done, conns_closed;

static void
test_request_done(void *owner)
{
	ck_assert_ptr_eq(owner, &w);
	requests_done++;
}

static void
test_closed(void *owner)
{
	ck_assert_ptr_eq(owner, &w);
	w.nconns--;
	conns_closed++;
}

static const struct conn_events test_events = {
	test_request_done,
	test_closed,
};

/* The front-end's context as a worker sets it up, requests to pipe. */
static void
front_init(const struct exchange_pipeline *pipe, void *arg)
{
	conn_front_init(&w.front, w.base, w.metrics, pipe, arg, &test_events,
	    &w);
	conn_front_set_gen(&w.front, cfg, 5000);
}

static void
setup(void)
{
	char *errors = NULL;

	if (config_load_string("t.yaml", setup_yaml, strlen(setup_yaml),
	    no_env, &cfg, &errors) != 0)
		ck_abort_msg("%s", errors);
	memset(&wgen, 0, sizeof wgen);
	memset(&w, 0, sizeof w);
	wgen.refs = 1;			/* the test's: never freed */
	wgen.cfg = cfg;			/* no routes, no CORS */
	w.base = event_base_new();
	ck_assert_ptr_nonnull(w.base);
	w.metrics = metrics_new("test");
	/* The real pipeline answers (its own 503 with JSON and CORS). */
	w.pipeline = proxy_pipeline_new(0, w.metrics, NULL, NULL);
	proxy_pipeline_set_gen(w.pipeline, &wgen);
	front_init(&proxy_exchange, w.pipeline);
	requests_done = conns_closed = 0;
	fail_what = NULL;
	fail_seen = allocs = 0;
	conn_set_alloc(test_alloc);
}

static void
teardown(void)
{
	struct server_conn *c;

	while ((c = TAILQ_FIRST(&w.front.conns)) != NULL)
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
	ck_assert_ptr_nonnull(conn_new(&w.front, sv[0], (struct sockaddr *)&ss,
	    sizeof ss, NULL, false));
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
	ck_assert_msg(TAILQ_EMPTY(&w.front.conns), "the connection is still open");
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

/*
 * The fake pipeline of the "front" cases: it records what the front-end
 * tells it and answers in one of three ways.  Every callback enters
 * through FAKE_ENTER, which fails the test when another pipeline callback
 * is still running below it on the stack.
 */
enum fake_mode {
	FAKE_ANSWER,		/* 200, the target as body, at once */
	FAKE_STREAM,		/* a chunked body of fake.total bytes */
	FAKE_HOLD,		/* a head and 10 of 100 bytes, then nothing */
	FAKE_ABORT,		/* a head and 10 of 100 bytes, then abort() */
	FAKE_UPGRADE,		/* a 101, then an echo on the stream */
};

static struct {
	enum fake_mode mode;
	unsigned starts, completes, gones, drains, refusals, stops;
	int depth;
	int refuse_status;
	char targets[8][32];
	size_t body_lens[8];
	struct exchange *x;		/* the exchange being served */
	size_t pushed, total;
	struct bufferevent *bev;	/* FAKE_UPGRADE: the client's stream */
	bool upgrade;			/* start() saw x->upgrade */
} fake;

/* FAKE_UPGRADE: what the client sends comes back (a tunnel's stand-in). */
static void
fake_echo(struct bufferevent *bev, void *arg)
{
	(void)arg;
	evbuffer_add_buffer(bufferevent_get_output(bev),
	    bufferevent_get_input(bev));
}

#define FAKE_ENTER() do {						\
	ck_assert_msg(fake.depth == 0, "a pipeline callback re-entered");\
	fake.depth++;							\
} while (0)
#define FAKE_LEAVE() fake.depth--

/* Push body bytes until the front-end says stop or all are out. */
static void
fake_push(struct exchange *x)
{
	struct evbuffer *b = evbuffer_new();
	char chunk[65536];

	memset(chunk, 'z', sizeof chunk);
	while (fake.pushed < fake.total) {
		size_t n = fake.total - fake.pushed;

		if (n > sizeof chunk)
			n = sizeof chunk;
		evbuffer_add(b, chunk, n);
		fake.pushed += n;
		if (x->front->body(x, b)) {
			fake.stops++;
			evbuffer_free(b);
			return;		/* wait for drained() */
		}
	}
	evbuffer_free(b);
	x->front->end(x);
}

static void
fake_start(void *arg, struct exchange *x)
{
	struct exchange_field f[1];
	struct exchange_head h;
	char num[16];
	unsigned i = fake.starts++;

	FAKE_ENTER();
	ck_assert_ptr_eq(arg, &fake);
	if (i < TS_NITEMS(fake.targets)) {
		snprintf(fake.targets[i], sizeof fake.targets[i], "%s",
		    x->target);
		fake.body_lens[i] = x->body != NULL ?
		    evbuffer_get_length(x->body) : 0;
	}
	ck_assert(x->body_end);
	fake.upgrade = x->upgrade;
	fake.x = x;
	x->pipe = &fake;
	memset(&h, 0, sizeof h);
	h.status = 200;
	h.fields = f;
	f[0].name = "Content-Length";
	f[0].name_len = 14;
	f[0].value = num;
	switch (fake.mode) {
	case FAKE_ANSWER:
		h.n_fields = 1;
		h.framed = true;
		h.body = x->target;
		h.body_len = strlen(x->target);
		f[0].value_len = (size_t)snprintf(num, sizeof num, "%zu",
		    h.body_len);
		x->front->head(x, &h);
		x->front->end(x);
		break;
	case FAKE_STREAM:
		x->front->head(x, &h);	/* no length: the front-end chunks */
		fake_push(x);
		break;
	case FAKE_UPGRADE:
		h.status = 101;
		h.no_body = true;
		h.framed = true;
		f[0].name = "Upgrade";
		f[0].name_len = 7;
		f[0].value = "websocket";
		f[0].value_len = 9;
		h.n_fields = 1;
		fake.bev = x->front->upgrade(x, &h);
		ck_assert_ptr_nonnull(fake.bev);
		bufferevent_setcb(fake.bev, fake_echo, NULL, NULL, NULL);
		bufferevent_enable(fake.bev, EV_READ | EV_WRITE);
		fake_echo(fake.bev, NULL);	/* bytes that came early */
		break;
	case FAKE_HOLD:
	case FAKE_ABORT:
		h.n_fields = 1;
		h.framed = true;
		f[0].value_len = (size_t)snprintf(num, sizeof num, "100");
		x->front->head(x, &h);
		{
			struct evbuffer *b = evbuffer_new();

			evbuffer_add(b, "0123456789", 10);
			ck_assert(!x->front->body(x, b));
			evbuffer_free(b);
		}
		if (fake.mode == FAKE_ABORT) {
			/* The exchange is over for both sides now. */
			x->front->abort(x);
			x->pipe = NULL;
			fake.x = NULL;
		}
		break;
	}
	FAKE_LEAVE();
}

static void
fake_drained(struct exchange *x)
{
	FAKE_ENTER();
	ck_assert_ptr_eq(x->pipe, &fake);
	fake.drains++;
	fake_push(x);
	FAKE_LEAVE();
}

static void
fake_complete(struct exchange *x)
{
	FAKE_ENTER();
	ck_assert_ptr_eq(x->pipe, &fake);
	fake.completes++;
	x->pipe = NULL;
	fake.x = NULL;
	FAKE_LEAVE();
}

static void
fake_gone(struct exchange *x)
{
	FAKE_ENTER();
	ck_assert_ptr_eq(x->pipe, &fake);
	fake.gones++;
	if (fake.bev != NULL) {
		/* The stream is the pipeline's: freeing it closes it. */
		bufferevent_free(fake.bev);
		fake.bev = NULL;
	}
	x->pipe = NULL;
	fake.x = NULL;
	FAKE_LEAVE();
}

static void
fake_refuse(void *arg, struct exchange *x, int status, const char *message)
{
	struct exchange_field f[1];
	struct exchange_head h;
	char body[128], num[16];

	FAKE_ENTER();
	ck_assert_ptr_eq(arg, &fake);
	fake.refusals++;
	fake.refuse_status = status;
	memset(&h, 0, sizeof h);
	h.status = status;
	h.close = true;
	h.framed = true;
	h.body = body;
	h.body_len = (size_t)snprintf(body, sizeof body, "refused: %s",
	    message);
	f[0].name = "Content-Length";
	f[0].name_len = 14;
	f[0].value = num;
	f[0].value_len = (size_t)snprintf(num, sizeof num, "%zu", h.body_len);
	h.fields = f;
	h.n_fields = 1;
	x->front->head(x, &h);
	x->front->end(x);
	FAKE_LEAVE();
}

static const struct exchange_pipeline fake_pipeline = {
	fake_start,
	NULL,
	fake_drained,
	fake_complete,
	fake_gone,
	fake_refuse,
};

/* Short timeouts: header, body and idle 200 ms. */
static void
setup_front(void)
{
	setup_yaml =
	    "server:\n"
	    "  limits: {header_timeout: 200ms, body_timeout: 200ms, "
	    "idle_timeout: 200ms}\n"
	    "routes:\n"
	    "  - upstream: {url: \"http://127.0.0.1:9\"}\n"
	    "exporter: {type: none}\n";
	setup();
	conn_set_alloc(NULL);
	front_init(&fake_pipeline, &fake);
	memset(&fake, 0, sizeof fake);
}

static void
teardown_front(void)
{
	ck_assert_int_eq(fake.depth, 0);
	teardown();
	/* Every exchange the front-end started was ended for the count. */
	ck_assert_uint_eq(w.front.inflight, 0);
	ck_assert_uint_eq(requests_done, fake.starts);
	ck_assert_uint_eq(conns_closed, 1);
	ck_assert_uint_eq(w.nconns, 0);
}

/* Count "HTTP/1.1 " status lines in s. */
static unsigned
status_lines(const char *s)
{
	unsigned n = 0;

	while ((s = strstr(s, "HTTP/1.1 ")) != NULL) {
		n++;
		s += 9;
	}
	return n;
}

/*
 * Run the loop and read what the client gets until want() is true of
 * it, the connection closed, or 5 s passed; got is NUL-terminated.
 */
static size_t
pump(char *got, size_t cap, bool (*want)(const char *, size_t))
{
	size_t len = 0;
	int i;

	got[0] = '\0';
	for (i = 0; i < 5000; i++) {
		struct pollfd pfd = { .fd = peer, .events = POLLIN };
		ssize_t n;

		event_base_loop(w.base, EVLOOP_NONBLOCK);
		if (want != NULL && want(got, len))
			break;
		if (poll(&pfd, 1, 1) <= 0)
			continue;
		n = read(peer, got + len, cap - 1 - len);
		if (n <= 0)
			break;		/* closed */
		len += (size_t)n;
		got[len] = '\0';
	}
	return len;
}

static bool
three_answers(const char *got, size_t len)
{
	(void)len;
	return status_lines(got) == 3 && fake.completes == 3;
}

/* Three requests in one write: each answered, in order, one at a time. */
START_TEST(test_front_pipelining)
{
	static const char raw[] =
	    "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
	    "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz";
	char got[4096];
	const char *a, *b, *c;

	connect_client();
	ck_assert_int_eq(write(peer, raw, sizeof raw - 1),
	    (ssize_t)sizeof raw - 1);
	pump(got, sizeof got, three_answers);
	ck_assert_uint_eq(fake.starts, 3);
	ck_assert_uint_eq(fake.completes, 3);
	ck_assert_str_eq(fake.targets[0], "/a");
	ck_assert_str_eq(fake.targets[1], "/b");
	ck_assert_str_eq(fake.targets[2], "/c");
	ck_assert_uint_eq(fake.body_lens[2], 3);
	a = strstr(got, "\r\n\r\n/a");
	b = strstr(got, "\r\n\r\n/b");
	c = strstr(got, "\r\n\r\n/c");
	ck_assert_msg(a != NULL && b != NULL && c != NULL && a < b && b < c,
	    "answers: %s", got);
	ck_assert_msg(strncmp(got, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "\r\n/a", 39) == 0, "answer: %s", got);
	/* Kept alive: no Connection: close, the connection is open. */
	ck_assert_ptr_null(strstr(got, "Connection"));
	ck_assert(!TAILQ_EMPTY(&w.front.conns));
	ck_assert_uint_eq(fake.gones, 0);
}
END_TEST

/*
 * The guard refuses the second request: the first is answered first,
 * the refusal is the pipeline's answer (through refuse()), then close.
 */
START_TEST(test_front_refusal_through_the_door)
{
	static const char raw[] =
	    "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /bad HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n";
	char got[4096];

	connect_client();
	ck_assert_int_eq(write(peer, raw, sizeof raw - 1),
	    (ssize_t)sizeof raw - 1);
	pump(got, sizeof got, NULL);		/* until it closes */
	ck_assert_uint_eq(fake.starts, 1);
	ck_assert_uint_eq(fake.completes, 1);
	ck_assert_uint_eq(fake.refusals, 1);
	ck_assert_int_eq(fake.refuse_status, 400);
	ck_assert_msg(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0,
	    "answer: %s", got);
	ck_assert_msg(strstr(got, "/okHTTP/1.1 400 Bad Request\r\n"
	    "Content-Length: ") != NULL, "answer: %s", got);
	ck_assert_msg(strstr(got, "\r\nConnection: close\r\n\r\nrefused: ") !=
	    NULL, "answer: %s", got);
	event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert(TAILQ_EMPTY(&w.front.conns));
}
END_TEST

/* An unfinished head is cut after header_timeout, without an answer. */
START_TEST(test_front_header_timeout)
{
	char got[256];
	uint64_t t0 = util_mono_ns();

	connect_client();
	ck_assert_int_eq(write(peer, "GET / HTTP/1.1\r\nHost", 20), 20);
	ck_assert_uint_eq(pump(got, sizeof got, NULL), 0);
	ck_assert(TAILQ_EMPTY(&w.front.conns));
	ck_assert_uint_lt((util_mono_ns() - t0) / 1000000, 3000);
	ck_assert_uint_eq(fake.starts + fake.refusals, 0);
}
END_TEST

/* A body that stalls longer than body_timeout: 408 through refuse(). */
START_TEST(test_front_body_timeout)
{
	static const char raw[] =
	    "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
	char got[1024];

	connect_client();
	ck_assert_int_eq(write(peer, raw, sizeof raw - 1),
	    (ssize_t)sizeof raw - 1);
	pump(got, sizeof got, NULL);
	ck_assert_uint_eq(fake.starts, 0);
	ck_assert_uint_eq(fake.refusals, 1);
	ck_assert_int_eq(fake.refuse_status, 408);
	ck_assert_msg(strncmp(got, "HTTP/1.1 408 Request Timeout\r\n", 30) ==
	    0, "answer: %s", got);
	event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert(TAILQ_EMPTY(&w.front.conns));
}
END_TEST

/* A connection that sends nothing is closed after idle_timeout. */
START_TEST(test_front_idle_timeout)
{
	char got[256];

	connect_client();
	ck_assert_uint_eq(pump(got, sizeof got, NULL), 0);
	event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert(TAILQ_EMPTY(&w.front.conns));
	ck_assert_uint_eq(fake.starts + fake.refusals + fake.gones, 0);
}
END_TEST

static bool
one_answer(const char *got, size_t len)
{
	(void)len;
	return fake.completes == 1 && strstr(got, "\r\n\r\n/1") != NULL;
}

static bool
two_answers(const char *got, size_t len)
{
	(void)len;
	return fake.completes == 2 && strstr(got, "\r\n\r\n/2") != NULL;
}

/*
 * Issue 16 (idle flood): between requests a keep-alive connection holds
 * no request state (framing guard, captures, buffers, timers): it went
 * back to the worker's free list with the input buffer, and the next
 * request on the connection takes it again (no new one is made), then
 * gives it back again.  A fresh connection starts without one.
 */
/* Run the loop until sk gave its request state back (2 s at most). */
static void
await_detached(struct server_conn *sk)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (sk->r != NULL) {
		event_base_loop(w.base, EVLOOP_ONCE);
		clock_gettime(CLOCK_MONOTONIC, &t);
		ck_assert_msg(t.tv_sec - t0.tv_sec < 3,
		    "the request state was not given back");
	}
}

START_TEST(test_front_idle_connection_holds_no_request_state)
{
	struct server_conn *sk;
	char got[1024];

	connect_client();
	sk = TAILQ_FIRST(&w.front.conns);
	ck_assert_ptr_nonnull(sk);
	ck_assert_ptr_null(sk->r);
	ck_assert_ptr_eq(TAILQ_FIRST(&w.front.idle), sk);
	ck_assert_uint_eq(w.front.req_free_n, 0);
	ck_assert_int_eq(write(peer, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n",
	    28), 28);
	pump(got, sizeof got, one_answer);
	ck_assert_msg(one_answer(got, strlen(got)), "answer: %s", got);
	/* It keeps the state for the next request a moment (half the idle
	 * timeout here), then gives it back. */
	event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert_ptr_nonnull(sk->r);
	await_detached(sk);
	ck_assert_ptr_eq(TAILQ_FIRST(&w.front.conns), sk);
	ck_assert_ptr_null(sk->r);
	ck_assert_ptr_eq(TAILQ_FIRST(&w.front.idle), sk);
	ck_assert_uint_eq(w.front.req_free_n, 1);
	ck_assert_uint_eq(w.front.ibuf_free_n, 1);
	ck_assert(conn_idle(sk));
	/* The next request reuses both. */
	ck_assert_int_eq(write(peer, "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
	    28), 28);
	pump(got, sizeof got, two_answers);
	ck_assert_msg(two_answers(got, strlen(got)), "answer: %s", got);
	await_detached(sk);
	ck_assert_ptr_null(sk->r);
	ck_assert_uint_eq(w.front.req_free_n, 1);
	ck_assert_uint_eq(w.front.ibuf_free_n, 1);
	ck_assert_uint_eq(fake.gones, 0);
	/* The idle timeout (200 ms) still closes it, detached. */
	ck_assert_uint_eq(pump(got, sizeof got, NULL), 0);
	event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert(TAILQ_EMPTY(&w.front.conns));
	ck_assert(TAILQ_EMPTY(&w.front.idle));
}
END_TEST

/*
 * Back-pressure: the pipeline pushes 4 MB to a client that does not
 * read; body() says stop before all of it is queued; once the client
 * reads, drained() comes and the rest follows, all of it, in order.
 */
START_TEST(test_front_back_pressure)
{
	char buf[65536], tail[6] = "";
	size_t zs = 0;
	int i;

	fake.mode = FAKE_STREAM;
	fake.total = 4 * 1024 * 1024;
	connect_client();
	ck_assert_int_eq(write(peer, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n",
	    30), 30);
	for (i = 0; i < 100 && fake.stops == 0; i++)
		event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert_uint_eq(fake.stops, 1);
	ck_assert_uint_lt(fake.pushed, fake.total);
	ck_assert_uint_eq(fake.drains, 0);
	/* The client reads: drained() resumes the pipeline. */
	for (i = 0; i < 20000 && fake.completes == 0; i++) {
		struct pollfd pfd = { .fd = peer, .events = POLLIN };
		ssize_t n, k;

		event_base_loop(w.base, EVLOOP_NONBLOCK);
		if (poll(&pfd, 1, 1) <= 0)
			continue;
		if ((n = read(peer, buf, sizeof buf)) <= 0)
			break;
		for (k = 0; k < n; k++) {
			if (buf[k] == 'z')
				zs++;
			memmove(tail, tail + 1, 4);
			tail[4] = buf[k];
		}
	}
	ck_assert_uint_ge(fake.drains, 1);
	ck_assert_uint_eq(fake.completes, 1);
	ck_assert_uint_eq(fake.pushed, fake.total);
	/* Everything still queued arrives, then the last chunk. */
	for (i = 0; i < 1000 && zs < fake.total; i++) {
		struct pollfd pfd = { .fd = peer, .events = POLLIN };
		ssize_t n, k;

		event_base_loop(w.base, EVLOOP_NONBLOCK);
		if (poll(&pfd, 1, 1) <= 0)
			continue;
		if ((n = read(peer, buf, sizeof buf)) <= 0)
			break;
		for (k = 0; k < n; k++) {
			if (buf[k] == 'z')
				zs++;
			memmove(tail, tail + 1, 4);
			tail[4] = buf[k];
		}
	}
	ck_assert_uint_eq(zs, fake.total);
	ck_assert_str_eq(tail, "0\r\n\r\n");	/* the last chunk */
	ck_assert_uint_eq(fake.gones, 0);
}
END_TEST

/*
 * A client that half-closes after its request (printf ... | nc) still
 * gets its answer, and the pipeline hears complete(), not gone().
 */
START_TEST(test_front_half_close_completes)
{
	static const char raw[] = "GET /hc HTTP/1.1\r\nHost: x\r\n\r\n";
	char got[1024];

	connect_client();
	ck_assert_int_eq(write(peer, raw, sizeof raw - 1),
	    (ssize_t)sizeof raw - 1);
	ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
	pump(got, sizeof got, NULL);		/* until it closes */
	ck_assert_msg(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0,
	    "answer: %s", got);
	ck_assert_msg(strstr(got, "\r\n\r\n/hc") != NULL, "answer: %s", got);
	ck_assert_uint_eq(fake.starts, 1);
	ck_assert_uint_eq(fake.completes, 1);
	ck_assert_uint_eq(fake.gones, 0);
}
END_TEST

/*
 * The pipeline aborts mid-reply (its upstream failed after the head): the
 * client sees the cut (10 of 100 body bytes, then EOF) and the pipeline
 * hears nothing more of that exchange.
 */
START_TEST(test_front_pipeline_aborts)
{
	char got[1024];

	fake.mode = FAKE_ABORT;
	connect_client();
	ck_assert_int_eq(write(peer, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 28),
	    28);
	pump(got, sizeof got, NULL);		/* until it closes */
	ck_assert_msg(strncmp(got, "HTTP/1.1 200 OK\r\nContent-Length: 100"
	    "\r\n\r\n0123456789", 50) == 0, "answer: %s", got);
	ck_assert_uint_eq(strlen(got), 50);
	event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert(TAILQ_EMPTY(&w.front.conns));
	ck_assert_uint_eq(fake.starts, 1);
	ck_assert_uint_eq(fake.gones + fake.completes, 0);
}
END_TEST

/* The client leaves mid-reply: gone() once, complete() never. */
START_TEST(test_front_client_gone_mid_reply)
{
	char got[1024];
	int i;

	fake.mode = FAKE_HOLD;
	connect_client();
	ck_assert_int_eq(write(peer, "GET /h HTTP/1.1\r\nHost: x\r\n\r\n", 28),
	    28);
	for (i = 0; i < 100 && fake.starts == 0; i++)
		event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert_uint_eq(fake.starts, 1);
	ck_assert_int_gt(read(peer, got, sizeof got), 0);
	close(peer);
	peer = -1;
	/*
	 * Its EOF alone may be a half-close (answered: test_front_half_
	 * close_completes); the next bytes of the reply find it gone.
	 */
	signal(SIGPIPE, SIG_IGN);	/* as the gateway does */
	for (i = 0; i < 100; i++)
		event_base_loop(w.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	ck_assert_uint_eq(fake.gones, 0);
	ck_assert_ptr_nonnull(fake.x);
	{
		struct evbuffer *b = evbuffer_new();

		evbuffer_add(b, "0123456789", 10);
		(void)fake.x->front->body(fake.x, b);
		evbuffer_free(b);
	}
	for (i = 0; i < 1000 && !TAILQ_EMPTY(&w.front.conns); i++)
		event_base_loop(w.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	ck_assert(TAILQ_EMPTY(&w.front.conns));
	ck_assert_uint_eq(fake.gones, 1);
	ck_assert_uint_eq(fake.completes, 0);
}
END_TEST

#define WS_HANDSHAKE "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" \
	"Connection: keep-alive, Upgrade\r\n\r\n"

static bool
got_hi_and_ping(const char *got, size_t len)
{
	(void)len;
	return strstr(got, "ping") != NULL;
}

/*
 * front->upgrade(): the 101 goes out, then the client's byte stream is
 * the pipeline's bufferevent, with the bytes sent behind the handshake
 * (here a WebSocket frame in the same write, which the framing guard
 * refused as a request) first; the pipeline's end() closes the
 * connection and complete() follows, once.
 */
START_TEST(test_front_upgrade_hands_the_stream_over)
{
	static const char raw[] = WS_HANDSHAKE "\x81\x02hi";
	char got[1024];
	int i;

	fake.mode = FAKE_UPGRADE;
	connect_client();
	ck_assert_int_eq(write(peer, raw, sizeof raw - 1),
	    (ssize_t)sizeof raw - 1);
	for (i = 0; i < 1000 && fake.bev == NULL; i++)
		event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert(fake.upgrade);
	ck_assert_int_eq(write(peer, "ping", 4), 4);
	pump(got, sizeof got, got_hi_and_ping);
	ck_assert_msg(strcmp(got, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\n\r\n\x81\x02hiping") == 0, "got: %s", got);
	/* The connection is still the worker's: counted, not idle. */
	ck_assert_uint_eq(w.front.inflight, 1);
	ck_assert(!conn_idle(TAILQ_FIRST(&w.front.conns)));
	/* The tunnel ends: the pipeline frees the stream, then end(). */
	FAKE_ENTER();
	bufferevent_free(fake.bev);
	fake.bev = NULL;
	fake.x->front->end(fake.x);
	FAKE_LEAVE();
	ck_assert_uint_eq(fake.completes, 0);	/* never inside end() */
	for (i = 0; i < 1000 && !TAILQ_EMPTY(&w.front.conns); i++)
		event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert(TAILQ_EMPTY(&w.front.conns));
	ck_assert_uint_eq(fake.completes, 1);
	ck_assert_uint_eq(fake.gones, 0);
	ck_assert_int_eq(read(peer, got, sizeof got), 0);	/* closed */
}
END_TEST

/* The worker closes a switched connection (exit): gone(), once. */
START_TEST(test_front_upgrade_closed_by_the_worker)
{
	int i;

	fake.mode = FAKE_UPGRADE;
	connect_client();
	ck_assert_int_eq(write(peer, WS_HANDSHAKE, sizeof WS_HANDSHAKE - 1),
	    (ssize_t)sizeof WS_HANDSHAKE - 1);
	for (i = 0; i < 1000 && fake.bev == NULL; i++)
		event_base_loop(w.base, EVLOOP_NONBLOCK);
	ck_assert_ptr_nonnull(fake.bev);
	conn_close(TAILQ_FIRST(&w.front.conns));
	ck_assert_uint_eq(fake.gones, 1);
	ck_assert_ptr_null(fake.bev);
	ck_assert_uint_eq(fake.completes, 0);
}
END_TEST

/* An upgrade request answered without a 101 ends the connection. */
START_TEST(test_front_upgrade_answered_closes)
{
	char *got;

	connect_client();
	got = exchange(WS_HANDSHAKE);
	ck_assert(fake.upgrade);
	ck_assert_msg(strstr(got, "\r\nConnection: close\r\n") != NULL,
	    "answer: %s", got);
}
END_TEST

/* Upgrade without the "upgrade" connection option asks for nothing. */
START_TEST(test_front_stray_upgrade_is_no_upgrade)
{
	static const char first[] = "GET / HTTP/1.1\r\nHost: x\r\n"
	    "Upgrade: websocket\r\n\r\n";
	char *got;

	connect_client();
	ck_assert_int_eq(write(peer, first, sizeof first - 1),
	    (ssize_t)sizeof first - 1);
	got = exchange("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	    "\r\n");
	ck_assert(!fake.upgrade);
	ck_assert_uint_eq(status_lines(got), 2);
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

	tc = tcase_create("front");
	tcase_add_checked_fixture(tc, setup_front, teardown_front);
	tcase_add_test(tc, test_front_pipelining);
	tcase_add_test(tc, test_front_refusal_through_the_door);
	tcase_add_test(tc, test_front_header_timeout);
	tcase_add_test(tc, test_front_body_timeout);
	tcase_add_test(tc, test_front_idle_timeout);
	tcase_add_test(tc, test_front_idle_connection_holds_no_request_state);
	tcase_add_test(tc, test_front_back_pressure);
	tcase_add_test(tc, test_front_client_gone_mid_reply);
	tcase_add_test(tc, test_front_upgrade_hands_the_stream_over);
	tcase_add_test(tc, test_front_upgrade_closed_by_the_worker);
	tcase_add_test(tc, test_front_upgrade_answered_closes);
	tcase_add_test(tc, test_front_stray_upgrade_is_no_upgrade);
	tcase_add_test(tc, test_front_half_close_completes);
	tcase_add_test(tc, test_front_pipeline_aborts);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(conn_suite)
