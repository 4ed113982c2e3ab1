/*
 * tunnel.c -- a switched connection's two-way byte tunnel (tunnel.h), and
 * the check of a request that asks to switch.
 *
 * The relay is libevent's classic one (le-proxy in its samples): each
 * side's read callback moves its input to the other side's output; above
 * the high-water mark the reading side is disabled and the other side's
 * write low-water mark set, so that its write callback enables reading
 * again once half of what waited has left.
 */
#include <sys/socket.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "tunnel.h"
#include "util.h"

struct tunnel_side {
	struct tunnel *t;
	struct bufferevent *bev;
	struct tunnel_side *peer;
	const char *name;		/* "client", "upstream" */
	uint64_t bytes;			/* read from this side */
	bool tls;			/* cannot be half-closed */
	bool eof;			/* this side finished sending */
	bool paused;			/* not read: the peer's output full */
	bool shut;			/* we finished writing to this side */
};

struct tunnel {
	struct tunnel_side client;
	struct tunnel_side upstream;
	struct event *idle;
	uint64_t idle_ns;
	uint64_t last_ns;		/* the last byte read, monotonic */
	size_t idle_out[2];		/* output lengths at the last check */
	tunnel_done_fn *done;
	void *arg;
	bool finished;
};

static void tunnel_read_cb(struct bufferevent *, void *);
static void tunnel_write_cb(struct bufferevent *, void *);
static void tunnel_event_cb(struct bufferevent *, short, void *);

/* The end: stop both sides, tell the owner (who may free t). */
static void
tunnel_finish(struct tunnel *t, const char *why, bool error)
{
	if (t->finished)
		return;
	t->finished = true;
	bufferevent_disable(t->client.bev, EV_READ | EV_WRITE);
	bufferevent_disable(t->upstream.bev, EV_READ | EV_WRITE);
	event_del(t->idle);
	t->done(t, t->arg, why, error);
}

/* Both directions are over: the tunnel too. */
static bool
tunnel_check_done(struct tunnel *t)
{
	if (t->client.eof && t->upstream.eof && t->client.shut &&
	    t->upstream.shut) {
		tunnel_finish(t, "closed", false);
		return true;
	}
	return false;
}

/*
 * Everything for s has left and its peer will send no more: pass the EOF
 * on (SHUT_WR), or end the tunnel for a TLS side.  True when t ended.
 */
static bool
tunnel_shut(struct tunnel_side *s)
{
	if (s->shut || !s->peer->eof ||
	    evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return false;
	s->shut = true;
	if (s->tls) {
		tunnel_finish(s->t, "closed", false);
		return true;
	}
	(void)shutdown(bufferevent_getfd(s->bev), SHUT_WR);
	return tunnel_check_done(s->t);
}

/* Move what s has read to its peer; stop reading s above the mark. */
static void
tunnel_pass(struct tunnel_side *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer *out = bufferevent_get_output(s->peer->bev);
	size_t n = evbuffer_get_length(in);

	if (n == 0)
		return;
	s->bytes += n;
	s->t->last_ns = util_mono_ns();
	evbuffer_add_buffer(out, in);
	if (!s->paused && evbuffer_get_length(out) >= TUNNEL_HIGH_WATER) {
		s->paused = true;
		bufferevent_disable(s->bev, EV_READ);
		/* The peer's write callback once half of it has left. */
		bufferevent_setwatermark(s->peer->bev, EV_WRITE,
		    TUNNEL_HIGH_WATER / 2, 0);
	}
}

static void
tunnel_read_cb(struct bufferevent *bev, void *arg)
{
	struct tunnel_side *s = arg;

	(void)bev;
	tunnel_pass(s);
}

/* The output of s went below its low-water mark (0: empty). */
static void
tunnel_write_cb(struct bufferevent *bev, void *arg)
{
	struct tunnel_side *s = arg;
	struct tunnel_side *p = s->peer;

	if (p->paused) {
		p->paused = false;
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		if (!p->eof)
			bufferevent_enable(p->bev, EV_READ);
	}
	(void)tunnel_shut(s);
}

static void
tunnel_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tunnel_side *s = arg;
	struct tunnel *t = s->t;

	(void)bev;
	if (what & BEV_EVENT_ERROR) {
		tunnel_finish(t, s == &t->client ? "client reset" :
		    "upstream reset", true);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		tunnel_pass(s);		/* what came with the EOF */
		s->eof = true;
		bufferevent_disable(s->bev, EV_READ);
		if (tunnel_shut(s->peer))
			return;
		(void)tunnel_check_done(t);
	}
}

/*
 * Nothing moved for idle_ns: end; else wait for what is left.  Reads
 * note their time; writes are seen here, as a change of what waits in an
 * output since the last check (a slow reader still taking queued bytes
 * while the sender is quiet is not idle).
 */
static void
tunnel_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;
	size_t oc = evbuffer_get_length(bufferevent_get_output(t->client.bev));
	size_t ou = evbuffer_get_length(
	    bufferevent_get_output(t->upstream.bev));
	uint64_t now = util_mono_ns(), end;
	uint64_t left_us;
	struct timeval tv;

	(void)fd;
	(void)what;
	if (oc != t->idle_out[0] || ou != t->idle_out[1]) {
		t->idle_out[0] = oc;
		t->idle_out[1] = ou;
		t->last_ns = now;
	}
	end = t->last_ns + t->idle_ns;
	if (now >= end) {
		tunnel_finish(t, "idle timeout", false);
		return;
	}
	left_us = (end - now) / 1000 + 1;
	tv.tv_sec = (time_t)(left_us / 1000000);
	tv.tv_usec = (suseconds_t)(left_us % 1000000);
	evtimer_add(t->idle, &tv);
}

static void
tunnel_side_init(struct tunnel *t, struct tunnel_side *s,
    struct bufferevent *bev, struct tunnel_side *peer, const char *name)
{
	s->t = t;
	s->bev = bev;
	s->peer = peer;
	s->name = name;
	s->tls = bufferevent_openssl_get_ssl(bev) != NULL;
	bufferevent_setwatermark(bev, EV_READ | EV_WRITE, 0, 0);
	bufferevent_setcb(bev, tunnel_read_cb, tunnel_write_cb,
	    tunnel_event_cb, s);
}

struct tunnel *
tunnel_new(struct bufferevent *client, struct bufferevent *upstream,
    uint64_t idle_ms, tunnel_done_fn *done, void *arg)
{
	struct event_base *base = bufferevent_get_base(client);
	struct tunnel *t;
	struct timeval tv;

	if ((t = calloc(1, sizeof *t)) == NULL)
		return NULL;
	if ((t->idle = evtimer_new(base, tunnel_idle_cb, t)) == NULL) {
		free(t);
		return NULL;
	}
	t->done = done;
	t->arg = arg;
	t->idle_ns = idle_ms * 1000000;
	t->last_ns = util_mono_ns();
	tunnel_side_init(t, &t->client, client, &t->upstream, "client");
	tunnel_side_init(t, &t->upstream, upstream, &t->client, "upstream");
	/* Bytes that came with the handshake, each way. */
	tunnel_pass(&t->client);
	tunnel_pass(&t->upstream);
	bufferevent_enable(client, EV_WRITE | (t->client.paused ? 0 :
	    EV_READ));
	bufferevent_enable(upstream, EV_WRITE | (t->upstream.paused ? 0 :
	    EV_READ));
	tv.tv_sec = (time_t)(idle_ms / 1000);
	tv.tv_usec = (suseconds_t)(idle_ms % 1000) * 1000;
	evtimer_add(t->idle, &tv);
	return t;
}

void
tunnel_free(struct tunnel *t)
{
	if (t == NULL)
		return;
	event_free(t->idle);
	bufferevent_free(t->client.bev);	/* closes the sockets */
	bufferevent_free(t->upstream.bev);
	free(t);
}

uint64_t
tunnel_bytes_up(const struct tunnel *t)
{
	return t->client.bytes;
}

uint64_t
tunnel_bytes_down(const struct tunnel *t)
{
	return t->upstream.bytes;
}

/* Whether the comma-separated list value has the token tok (any case). */
static bool
tunnel_list_has(const char *v, size_t vlen, const char *tok)
{
	const char *p = v, *e;
	size_t elen, tlen = strlen(tok);

	while (util_list_next(&p, v + vlen, &e, &elen)) {
		if (elen == tlen && util_strncaseeq(e, tok, tlen))
			return true;
	}
	return false;
}

enum tunnel_upgrade
tunnel_upgrade_check(const struct exchange *req, int *status,
    const char **why)
{
	const struct http_field *f;
	bool upgrade = false, conn_upgrade = false, websocket = false;
	bool h2c = false, key = false, version = false;
	const char *p, *e;
	size_t i, elen;

	/*
	 * On every request: names compared by length first (a strcaseeq per
	 * name measured 1.7% of a traced GET's CPU, issue 11).
	 */
#define TUNNEL_NAME_IS(f, lit) ((f)->name_len == sizeof(lit) - 1 &&	\
	util_strncaseeq((f)->name, (lit), sizeof(lit) - 1))
	for (i = 0; i < req->n_fields; i++) {
		f = &req->fields[i];
		if (TUNNEL_NAME_IS(f, "upgrade")) {
			upgrade = true;
			/* protocol-name ["/" protocol-version], RFC 9110 7.8 */
			p = f->value;
			while (util_list_next(&p, f->value + f->value_len, &e,
			    &elen)) {
				if (elen == 9 && util_strncaseeq(e, "websocket",
				    9))
					websocket = true;
				else if (elen >= 3 && util_strncaseeq(e, "h2c",
				    3) && (elen == 3 || e[3] == '/'))
					h2c = true;
			}
		} else if (TUNNEL_NAME_IS(f, "connection")) {
			if (tunnel_list_has(f->value, f->value_len, "upgrade"))
				conn_upgrade = true;
		} else if (TUNNEL_NAME_IS(f, "sec-websocket-key"))
			key = true;
		else if (TUNNEL_NAME_IS(f, "sec-websocket-version"))
			version = true;
	}
#undef TUNNEL_NAME_IS
	/*
	 * RFC 9110 7.8: Upgrade is a request only with the "upgrade"
	 * connection option; without it, or on HTTP/1.0, it is a stray
	 * hop-by-hop field (dropped like the others).
	 */
	if (!upgrade || !conn_upgrade || req->major != 1 || req->minor == 0)
		return TUNNEL_UPGRADE_NONE;
	*status = 400;
	if (!websocket) {
		*status = 501;
		*why = h2c ? "upgrading to HTTP/2 (h2c) is not supported" :
		    "only the websocket protocol can be upgraded to";
	} else if (req->method != EXCHANGE_M_GET)
		*why = "a WebSocket opening handshake is a GET (RFC 6455 4.1)";
	else if (!key || !version)
		*why = "a WebSocket opening handshake needs Sec-WebSocket-Key "
		    "and Sec-WebSocket-Version (RFC 6455 4.1)";
	else
		return TUNNEL_UPGRADE_WEBSOCKET;
	return TUNNEL_UPGRADE_REFUSED;
}
