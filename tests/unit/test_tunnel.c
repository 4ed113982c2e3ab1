/*
 * test_tunnel.c -- the WebSocket pieces that need no gateway: the check
 * of a request that asks to switch protocols (tunnel_upgrade_check, a
 * table), the response parser's 101 (only when the request asked, and
 * nothing after its head consumed), and the tunnel itself on socket pairs
 * (bytes both ways, half-close passed on, the end when both sides are
 * done, the idle timeout, a reset).
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "exchange.h"
#include "http_response_embed.h"
#include "ts_test.h"
#include "tunnel.h"
#include "util.h"

/* A request of the table: method, version, fields "Name: value". */
struct upgrade_row {
	enum exchange_method method;
	int minor;
	const char *fields[6];
	enum tunnel_upgrade want;
	int status;
	const char *why;		/* substring of the reason */
};

#define WS_KEY	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
#define WS_VER	"Sec-WebSocket-Version: 13"

static const struct upgrade_row upgrade_rows[] = {
	{ EXCHANGE_M_GET, 1, { "Host: a" }, TUNNEL_UPGRADE_NONE, 0, NULL },
	{ EXCHANGE_M_GET, 1, { "Upgrade: websocket", "Connection: Upgrade",
	    WS_KEY, WS_VER }, TUNNEL_UPGRADE_WEBSOCKET, 0, NULL },
	/* Token lists, any case (RFC 9110 5.6.1, 7.8). */
	{ EXCHANGE_M_GET, 1, { "upgrade: WebSocket", "connection: "
	    "keep-alive, upgrade", WS_KEY, WS_VER },
	    TUNNEL_UPGRADE_WEBSOCKET, 0, NULL },
	{ EXCHANGE_M_GET, 1, { "Upgrade: foo/2, websocket",
	    "Connection: Upgrade", WS_KEY, WS_VER },
	    TUNNEL_UPGRADE_WEBSOCKET, 0, NULL },
	/* Without the connection option, or on HTTP/1.0: not a request. */
	{ EXCHANGE_M_GET, 1, { "Upgrade: websocket", "Connection: close",
	    WS_KEY, WS_VER }, TUNNEL_UPGRADE_NONE, 0, NULL },
	{ EXCHANGE_M_GET, 0, { "Upgrade: websocket", "Connection: Upgrade",
	    WS_KEY, WS_VER }, TUNNEL_UPGRADE_NONE, 0, NULL },
	{ EXCHANGE_M_GET, 1, { "Connection: Upgrade" }, TUNNEL_UPGRADE_NONE,
	    0, NULL },
	/* Other protocols. */
	{ EXCHANGE_M_GET, 1, { "Upgrade: h2c", "Connection: Upgrade, "
	    "HTTP2-Settings", "HTTP2-Settings: AAMAAABk" },
	    TUNNEL_UPGRADE_REFUSED, 501, "h2c" },
	{ EXCHANGE_M_GET, 1, { "Upgrade: h2c/1", "Connection: upgrade" },
	    TUNNEL_UPGRADE_REFUSED, 501, "h2c" },
	{ EXCHANGE_M_GET, 1, { "Upgrade: TLS/1.0", "Connection: Upgrade" },
	    TUNNEL_UPGRADE_REFUSED, 501, "only the websocket" },
	{ EXCHANGE_M_GET, 1, { "Upgrade: websockets", "Connection: Upgrade",
	    WS_KEY, WS_VER }, TUNNEL_UPGRADE_REFUSED, 501,
	    "only the websocket" },
	/* Malformed WebSocket handshakes (RFC 6455 4.1). */
	{ EXCHANGE_M_POST, 1, { "Upgrade: websocket", "Connection: Upgrade",
	    WS_KEY, WS_VER }, TUNNEL_UPGRADE_REFUSED, 400, "is a GET" },
	{ EXCHANGE_M_GET, 1, { "Upgrade: websocket", "Connection: Upgrade",
	    WS_VER }, TUNNEL_UPGRADE_REFUSED, 400, "Sec-WebSocket-Key" },
	{ EXCHANGE_M_GET, 1, { "Upgrade: websocket", "Connection: Upgrade",
	    WS_KEY }, TUNNEL_UPGRADE_REFUSED, 400, "Sec-WebSocket-Version" },
};

START_TEST(test_upgrade_check_table)
{
	static char store[6][128];
	struct http_field f[6];
	struct exchange x;
	size_t i, j, rows = 0;

	for (i = 0; i < TS_NITEMS(upgrade_rows); i++) {
		const struct upgrade_row *r = &upgrade_rows[i];
		const char *why = NULL;
		int status = 0;
		enum tunnel_upgrade got;

		memset(&x, 0, sizeof x);
		x.method = r->method;
		x.major = 1;
		x.minor = r->minor;
		for (j = 0; j < 6 && r->fields[j] != NULL; j++) {
			char *colon;

			snprintf(store[j], sizeof store[j], "%s", r->fields[j]);
			colon = strchr(store[j], ':');
			*colon = '\0';
			f[j].name = store[j];
			f[j].name_len = strlen(store[j]);
			f[j].value = colon + 2;
			f[j].value_len = strlen(colon + 2);
		}
		x.fields = f;
		x.n_fields = j;
		got = tunnel_upgrade_check(&x, &status, &why);
		ck_assert_msg(got == r->want, "row %zu: got %d, want %d", i,
		    (int)got, (int)r->want);
		if (got == TUNNEL_UPGRADE_REFUSED) {
			ck_assert_int_eq(status, r->status);
			ck_assert_msg(why != NULL &&
			    strstr(why, r->why) != NULL,
			    "row %zu: reason \"%s\"", i, why);
		}
		rows++;
	}
	ck_assert_uint_eq(rows, 14);
}
END_TEST

/* Parse a response held in text with a fresh parser; upgrade: asked. */
static enum upstream_parse
parse_101(const char *text, bool upgrade, struct evbuffer *in,
    struct upstream_parser *p, const char **errstr)
{
	struct evbuffer *body = evbuffer_new();
	enum upstream_parse rc;

	http_response_setup(p);
	http_response_init(p, false);
	if (upgrade)
		http_response_expect_upgrade(p);
	evbuffer_add(in, text, strlen(text));
	rc = upstream_parser_feed(p, in, body, errstr);
	ck_assert_uint_eq(evbuffer_get_length(body), 0);
	evbuffer_free(body);
	return rc;
}

START_TEST(test_parser_101)
{
	static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
	    "\x81\x05hello";
	struct upstream_parser p;
	struct evbuffer *in = evbuffer_new();
	const char *errstr = NULL;
	struct evkeyval *kv;
	char frame[8];
	unsigned n = 0;

	/* Asked: the final head, its fields, the frame left unread. */
	ck_assert_int_eq(parse_101(resp, true, in, &p, &errstr),
	    UPSTREAM_PARSE_HEAD);
	ck_assert_int_eq(p.resp.status, 101);
	ck_assert_int_eq(p.resp.body, UPSTREAM_BODY_NONE);
	ck_assert(!upstream_parser_keepalive(&p));
	TAILQ_FOREACH(kv, p.resp.headers, next)
		n++;
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(evbuffer_get_length(in), 7);
	evbuffer_copyout(in, frame, 7);
	ck_assert(memcmp(frame, "\x81\x05hello", 7) == 0);
	http_response_clear_headers(&p, false);
	http_response_free_spare(&p);
	evbuffer_drain(in, evbuffer_get_length(in));

	/* Not asked: a protocol error, as before. */
	ck_assert_int_eq(parse_101(resp, false, in, &p, &errstr),
	    UPSTREAM_PARSE_ERROR);
	ck_assert_str_eq(errstr, "unexpected 101 Switching Protocols");
	http_response_clear_headers(&p, false);
	http_response_free_spare(&p);
	evbuffer_drain(in, evbuffer_get_length(in));

	/* Other 1xx are still skipped when a 101 may come. */
	ck_assert_int_eq(parse_101("HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, in, &p,
	    &errstr), UPSTREAM_PARSE_HEAD);
	ck_assert_int_eq(p.resp.status, 200);
	http_response_clear_headers(&p, false);
	http_response_free_spare(&p);
	evbuffer_free(in);
}
END_TEST

/*
 * The tunnel on two socket pairs: cl[0] is the client's end (the test),
 * cl[1] the gateway's; up[0] the gateway's, up[1] the backend's.
 */
struct tpair {
	struct event_base *base;
	int cl[2], up[2];
	struct tunnel *t;
	const char *why;
	bool error;
	int done;
};

static void
tp_done(struct tunnel *t, void *arg, const char *why, bool error)
{
	struct tpair *tp = arg;

	tp->why = why;
	tp->error = error;
	tp->done++;
	tunnel_free(t);
	tp->t = NULL;
	event_base_loopbreak(tp->base);
}

static void
tp_setup(struct tpair *tp, uint64_t idle_ms)
{
	struct bufferevent *a, *b;

	memset(tp, 0, sizeof *tp);
	tp->base = event_base_new();
	ck_assert_ptr_nonnull(tp->base);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, tp->cl), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, tp->up), 0);
	fcntl(tp->cl[1], F_SETFL, O_NONBLOCK);
	fcntl(tp->up[0], F_SETFL, O_NONBLOCK);
	a = bufferevent_socket_new(tp->base, tp->cl[1], BEV_OPT_CLOSE_ON_FREE);
	b = bufferevent_socket_new(tp->base, tp->up[0], BEV_OPT_CLOSE_ON_FREE);
	/* Bytes that came with the handshake, each way. */
	evbuffer_unfreeze(bufferevent_get_input(a), 0);
	evbuffer_unfreeze(bufferevent_get_input(b), 0);
	evbuffer_add(bufferevent_get_input(a), "early-up", 8);
	evbuffer_add(bufferevent_get_input(b), "early-down", 10);
	evbuffer_freeze(bufferevent_get_input(a), 0);
	evbuffer_freeze(bufferevent_get_input(b), 0);
	tp->t = tunnel_new(a, b, idle_ms, tp_done, tp);
	ck_assert_ptr_nonnull(tp->t);
}

static void
tp_teardown(struct tpair *tp)
{
	tunnel_free(tp->t);
	close(tp->cl[0]);
	if (tp->up[1] != -1)
		close(tp->up[1]);
	event_base_free(tp->base);
}

/* Run the loop until fd has want bytes (read into buf) or EOF. */
static size_t
tp_read(struct tpair *tp, int fd, char *buf, size_t want)
{
	size_t got = 0;
	ssize_t n;
	int i;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (i = 0; i < 2000 && got < want; i++) {
		event_base_loop(tp->base, EVLOOP_NONBLOCK);
		n = read(fd, buf + got, want - got);
		if (n == 0)
			break;
		if (n > 0)
			got += (size_t)n;
		else
			usleep(1000);
	}
	return got;
}

/* True once fd reads EOF (after draining want bytes at most). */
static bool
tp_eof(struct tpair *tp, int fd)
{
	char c;
	int i;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (i = 0; i < 2000; i++) {
		event_base_loop(tp->base, EVLOOP_NONBLOCK);
		if (read(fd, &c, 1) == 0)
			return true;
		usleep(1000);
	}
	return false;
}

START_TEST(test_tunnel_both_ways_and_half_close)
{
	struct tpair tp;
	char buf[64];

	tp_setup(&tp, 60000);
	ck_assert_uint_eq(tp_read(&tp, tp.up[1], buf, 8), 8);
	ck_assert(memcmp(buf, "early-up", 8) == 0);
	ck_assert_uint_eq(tp_read(&tp, tp.cl[0], buf, 10), 10);
	ck_assert(memcmp(buf, "early-down", 10) == 0);
	ck_assert_int_eq(write(tp.cl[0], "ping", 4), 4);
	ck_assert_uint_eq(tp_read(&tp, tp.up[1], buf, 4), 4);
	ck_assert(memcmp(buf, "ping", 4) == 0);
	ck_assert_int_eq(write(tp.up[1], "pong!", 5), 5);
	ck_assert_uint_eq(tp_read(&tp, tp.cl[0], buf, 5), 5);
	ck_assert(memcmp(buf, "pong!", 5) == 0);

	/* The client is done sending: the backend sees EOF, and still
	 * answers through the half-open tunnel. */
	shutdown(tp.cl[0], SHUT_WR);
	ck_assert(tp_eof(&tp, tp.up[1]));
	ck_assert_int_eq(tp.done, 0);
	ck_assert_int_eq(write(tp.up[1], "last", 4), 4);
	ck_assert_uint_eq(tp_read(&tp, tp.cl[0], buf, 4), 4);
	ck_assert(memcmp(buf, "last", 4) == 0);
	/* Then the backend finishes too: the tunnel ends, cleanly. */
	shutdown(tp.up[1], SHUT_WR);
	ck_assert(tp_eof(&tp, tp.cl[0]));
	ck_assert_int_eq(tp.done, 1);
	ck_assert_str_eq(tp.why, "closed");
	ck_assert(!tp.error);
	tp_teardown(&tp);
}
END_TEST

START_TEST(test_tunnel_idle_timeout)
{
	struct tpair tp;
	char buf[16];

	tp_setup(&tp, 50);
	ck_assert_uint_eq(tp_read(&tp, tp.up[1], buf, 8), 8);
	event_base_dispatch(tp.base);	/* until done() breaks it */
	ck_assert_int_eq(tp.done, 1);
	ck_assert_str_eq(tp.why, "idle timeout");
	ck_assert(!tp.error);
	/* Both sides were closed. */
	ck_assert(tp_eof(&tp, tp.cl[0]));
	ck_assert(tp_eof(&tp, tp.up[1]));
	tp_teardown(&tp);
}
END_TEST

/*
 * Writes are progress too: the backend sends 512 KiB at once and goes
 * quiet; the client takes them 16 KiB at a time, well past the idle
 * timeout (500 ms) in all, and the tunnel stays open while it does.
 */
START_TEST(test_tunnel_slow_reader_is_not_idle)
{
	static char block[16384];
	struct tpair tp;
	size_t sent = 0, got = 0;
	uint64_t t0;
	ssize_t n;
	int i;

	tp_setup(&tp, 500);
	fcntl(tp.up[1], F_SETFL, O_NONBLOCK);
	ck_assert_uint_eq(tp_read(&tp, tp.up[1], block, 8), 8);
	ck_assert_uint_eq(tp_read(&tp, tp.cl[0], block, 10), 10);
	memset(block, 'b', sizeof block);
	for (i = 0; i < 100000 && sent < 512 * 1024; i++) {
		n = write(tp.up[1], block, sizeof block);
		if (n > 0)
			sent += (size_t)n;
		event_base_loop(tp.base, EVLOOP_NONBLOCK);
	}
	ck_assert_uint_eq(sent, 512 * 1024);
	t0 = util_mono_ns();
	fcntl(tp.cl[0], F_SETFL, O_NONBLOCK);
	while (got < sent && tp.done == 0) {
		struct timeval tv = { 0, 40000 };

		/* 16 KiB per 40 ms at most: about 1.3 s for it all. */
		n = read(tp.cl[0], block, sizeof block);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			break;
		event_base_loopexit(tp.base, &tv);
		event_base_dispatch(tp.base);
	}
	ck_assert_uint_eq(got, sent);
	ck_assert_int_eq(tp.done, 0);
	ck_assert_uint_gt(util_mono_ns() - t0, 1000 * 1000000ULL);
	/* Then nothing moves: idle. */
	event_base_dispatch(tp.base);
	ck_assert_int_eq(tp.done, 1);
	ck_assert_str_eq(tp.why, "idle timeout");
	tp_teardown(&tp);
}
END_TEST

START_TEST(test_tunnel_reset)
{
	struct tpair tp;
	char buf[16];

	signal(SIGPIPE, SIG_IGN);	/* as the gateway does */
	tp_setup(&tp, 60000);
	ck_assert_uint_eq(tp_read(&tp, tp.up[1], buf, 8), 8);
	ck_assert_uint_eq(tp_read(&tp, tp.cl[0], buf, 10), 10);
	/* The backend goes away: its EOF reaches the client ... */
	close(tp.up[1]);
	tp.up[1] = -1;
	ck_assert(tp_eof(&tp, tp.cl[0]));
	ck_assert_int_eq(tp.done, 0);
	/* ... which writes on: the write to the backend fails. */
	ck_assert_int_eq(write(tp.cl[0], "x", 1), 1);
	event_base_dispatch(tp.base);
	ck_assert_int_eq(tp.done, 1);
	ck_assert_str_eq(tp.why, "upstream reset");
	ck_assert(tp.error);
	tp_teardown(&tp);
}
END_TEST

static Suite *
tunnel_suite(void)
{
	Suite *s = suite_create("tunnel");
	TCase *tc = tcase_create("tunnel");

	tcase_add_test(tc, test_upgrade_check_table);
	tcase_add_test(tc, test_parser_101);
	tcase_add_test(tc, test_tunnel_both_ways_and_half_close);
	tcase_add_test(tc, test_tunnel_idle_timeout);
	tcase_add_test(tc, test_tunnel_slow_reader_is_not_idle);
	tcase_add_test(tc, test_tunnel_reset);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(tunnel_suite)
