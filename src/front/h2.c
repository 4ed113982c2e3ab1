/*
 * h2.c -- the HTTP/2 client front-end (RFC 9113) on nghttp2's server
 * session API, beside conn.c's HTTP/1.1: the second front-end of the
 * exchange door (exchange.h).  nghttp2 does the frames, HPACK, stream
 * states and flow-control accounting; we do the rest.
 *
 * Objects and lifetimes:
 * - struct h2_conn: one client connection, taken over from conn.c
 *   (h2_conn_new) with its socket (plaintext: a bufferevent_socket made
 *   here for the output that waits, the reads and the first write of a
 *   flush done directly on the socket (h2_sock_read_cb, h2_flush); TLS:
 *   conn.c's bufferevent_openssl, callbacks replaced).  It owns
 *   the nghttp2 session and its streams, and is freed by its one
 *   teardown, h2_close(), never from inside an nghttp2 callback or a call
 *   from the pipeline (those set c->dead and the event callback that ran
 *   the session closes on its way out).
 * - struct h2_stream: one client stream, created at its first HEADERS
 *   (on_begin_headers), freed when nghttp2 closes the stream
 *   (on_stream_close) or with the connection.  It embeds the stream's
 *   struct exchange.  The request head is kept in the stream (a copy of
 *   every field, checked by h2_msg.c as it comes); the body is collected
 *   whole (bounded by server.limits.max_body_bytes, 413 above) and the
 *   exchange is handed to the pipeline (pipe->start, body_end set) when
 *   END_STREAM arrives, as conn.c does for HTTP/1.1 bodies.  The stream
 *   is "active" from start() until complete(), gone() or the pipeline's
 *   abort(): it counts in f->inflight (drain waits for it).
 *
 * Calls (the door's rule against re-entry): nghttp2 runs only from our
 * event callbacks (read, write, timer, deferred).  Its callbacks may call
 * the pipeline (start, refuse, complete, gone); the pipeline's calls into
 * us (head, body, end, abort) only submit to the session or queue bytes
 * and schedule the deferred step (c->dev), which runs
 * nghttp2_session_send() on the next loop turn: so complete() and gone()
 * (from on_stream_close) never run inside a pipeline call.
 *
 * Back-pressure, response direction: the pipeline's body() moves bytes
 * into the stream's out buffer, read by the stream's data provider as the
 * client's flow-control windows allow (nghttp2 calls it only when the
 * stream and connection windows are open); body() says stop above
 * H2_STREAM_HIGH bytes waiting, and the pipeline pauses its upstream
 * (upstream_req_pause) until drained(), which the deferred step calls once
 * the provider took the buffer below H2_STREAM_LOW.  A data provider with
 * nothing to give defers (NGHTTP2_ERR_DEFERRED) and body()/end() resume
 * it.  The socket: the send callback stops (WOULDBLOCK) above
 * H2_OUT_HIGH bytes queued and reading stops until the write callback
 * sees the output drain, so a client that does not read cannot make us
 * queue without bound (nor with PING or SETTINGS acks).  Request
 * direction: SETTINGS_INITIAL_WINDOW_SIZE (server.http2_stream_window)
 * and the body limit bound what a stream may send.
 *
 * Defences (docs/configuration.md, server.http2_*; each counted in
 * tracestitch_http2_defences_total): RST_STREAM, SETTINGS/PING and empty
 * frames counted per connection per server.http2_flood_interval,
 * CONTINUATION frames per header block, each cap answered with GOAWAY
 * ENHANCE_YOUR_CALM; the decoded header list bounded by
 * server.limits.max_header_bytes and max_header_fields (431);
 * SETTINGS_MAX_CONCURRENT_STREAMS; the header, body, idle and busy
 * timeouts of server.limits.
 */
#include <sys/mman.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "conn.h"
#include "h2.h"
#include "h2_msg.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define H2_STREAM_HIGH (64 * 1024)	/* body() says stop above */
#define H2_STREAM_LOW (16 * 1024)	/* drained() below */
#define H2_OUT_HIGH (64 * 1024)		/* socket output we queue */
/* A browser's request head (names and values, NULs) fits: no realloc. */
#define H2_HBUF_INITIAL 2048
#define H2_FL_INITIAL 32
/*
 * Streams a worker keeps for reuse (h2_pool), with their head buffers,
 * each at most H2_POOL_HBUF bytes: a stream costs no allocation but its
 * nghttp2 state and the pipeline's.  Per worker, not per connection, so
 * that an idle connection holds none.
 */
#define H2_POOL_MAX 64
#define H2_POOL_HBUF (4 * H2_HBUF_INITIAL)
/*
 * Idle memory.  nghttp2 gives each session a frame buffer of 16 KiB
 * (NGHTTP2_FRAMEBUF_CHUNKLEN), which it only writes while serializing
 * frames: our allocator (h2_mem) gives it whole pages, and a connection
 * without a stream for H2_TRIM_MS hands them back to the kernel
 * (MADV_DONTNEED: they come back zeroed at the next frame).  The other
 * buffers of an idle connection are empty already (libevent frees drained
 * chains).
 */
#define H2_FBUF_MIN 16384
#define H2_PAGE 4096
#define H2_TRIM_MS 1000
/* Fields of a head or response built on the stack; more: malloc. */
#define H2_STACK_FIELDS 48
#define H2_STACK_BYTES 2048
/* How long a closing connection reads (and drops) what the client still
 * sends after our GOAWAY, so that the close does not reset the
 * connection before the client read the GOAWAY (nginx's lingering
 * close). */
#define H2_LINGER_MS 2000
/* Fields ignored after the head became too large, before we give up
 * decoding it into a 431 and reset the stream. */
#define H2_IGNORED_MAX 10000

/* One field of a request head, as offsets into the stream's hbuf. */
struct h2_fld {
	uint32_t noff, nlen, voff, vlen;
	enum h2_msg_kind kind;
};

struct h2_stream {
	struct h2_conn *c;
	TAILQ_ENTRY(h2_stream) entry;
	int32_t id;
	struct exchange x;

	/* The request. */
	struct h2_msg msg;
	enum h2_msg_verdict verdict;	/* the first refusal, or OK */
	int status;			/* a refusal's status (431, 413) */
	const char *why;		/* ... and reason, when status */
	char *hbuf;			/* names and values, NUL-terminated */
	size_t hlen, hcap;
	struct h2_fld *fl;
	size_t nfl, flcap;
	uint64_t hsize;			/* decoded size (RFC 9113 6.5.2) */
	size_t nignored;
	/* The trailer section, checked and dropped (h2_trailers_done). */
	enum h2_msg_verdict tverdict;	/* its first refusal, or OK */
	uint64_t tsize;			/* its decoded size */
	size_t ntrailers;		/* its fields */
	struct evbuffer *body;
	int64_t start_ms;		/* the stream began */
	int64_t last_ms;		/* its last request bytes */
	bool head_done;			/* the request head is complete */
	bool req_done;			/* END_STREAM received */
	bool answered;			/* dispatched or refused */
	bool active;			/* with the pipeline */

	/* The response. */
	struct evbuffer *out;		/* body bytes for the provider */
	bool submitted;			/* response HEADERS submitted */
	bool out_end;			/* end() came */
	bool deferred;			/* the provider waits for bytes */
	bool want_drain;		/* body() said stop */
	bool drain_due;			/* run pipe->drained() */
	bool sent_end;			/* END_STREAM left for the client */
	bool aborted;			/* the pipeline's abort() */
};

TAILQ_HEAD(h2_stream_list, h2_stream);

/* The worker's free streams (each worker is one thread): h2_stream_new
 * takes from here, h2_stream_free gives back, h2_front_close_all empties
 * it at the worker's exit. */
static __thread struct h2_stream *h2_pool[H2_POOL_MAX];
static __thread size_t h2_pool_n;

/*
 * Plaintext output: the frames one h2_flush() serializes, written to the
 * socket at once when nothing waits before them, and given to the
 * bufferevent only for what the socket did not take.  Through the
 * bufferevent, every answer registered a write event (epoll_ctl), waited
 * a loop turn for it and unregistered it (epoll_ctl again): two system
 * calls and a wakeup per answer, as nginx does not.  Per worker, empty
 * between two calls of h2_flush().  TLS output goes through its
 * bufferevent (the encryption is there).
 */
static __thread struct evbuffer *h2_wbuf;

struct h2_conn {
	struct conn_front *front;
	TAILQ_ENTRY(h2_conn) entry;
	struct bufferevent *bev;
	nghttp2_session *s;
	struct event tev;		/* the one timer */
	struct event rev;		/* plaintext: the socket's reads */
	struct event dev;		/* deferred step */
	struct h2_stream_list streams;
	size_t nstreams;
	bool tls;
	bool dead;			/* close on the way out */
	bool closing;			/* close once the output left */
	bool calm;			/* GOAWAY ENHANCE_YOUR_CALM sent */
	bool goaway;			/* GOAWAY (drain) submitted */
	bool reading;
	bool in_recv;			/* inside nghttp2_session_mem_recv */
	bool lingering;			/* our side shut: reading to EOF */
	bool trimmed;			/* fbuf's pages given back */
	void *fbuf;			/* nghttp2's frame buffer (h2_mem) */
	size_t fbuf_cap;		/* its pages' length */
	size_t held;			/* streams complete, their bytes not
					 * yet written: still in inflight */
	int64_t last_frame_ms;		/* a HEADERS or DATA frame arrived */
	int64_t last_write_ms;		/* output made progress */
	int64_t timer_at_ms;		/* the timer's deadline, 0: none */
	/* Flood counters, per server.http2_flood_interval. */
	int64_t flood_start_ms;
	uint64_t n_resets, n_control, n_empty;
	uint64_t n_continuations;	/* of the current header block */
	char client[64];
	char client_ip[48];
};

static void h2_x_head(struct exchange *, const struct exchange_head *);
static bool h2_x_body(struct exchange *, struct evbuffer *);
static void h2_x_end(struct exchange *);
static void h2_x_abort(struct exchange *);
static void h2_flush(struct h2_conn *);
static void h2_close(struct h2_conn *);
static void h2_timer_want(struct h2_conn *, int64_t at_ms);
static void h2_linger(struct h2_conn *);
static void h2_release(struct h2_conn *);
static void h2_trim(struct h2_conn *);

/* No upgrade(): a WebSocket handshake over h2 (RFC 8441) is answered
 * 501 by the pipeline. */
static const struct exchange_front h2_front_ops = {
	.head = h2_x_head,
	.body = h2_x_body,
	.end = h2_x_end,
	.abort = h2_x_abort,
	.upgrade = NULL,
};

/*
 * The clock, read once per event callback (h2_tick at each entry: read,
 * write, deferred, timer, a new connection, a GOAWAY) rather than at
 * every frame: the timeouts count in milliseconds, and the reads were 2%
 * of a preflight's profile.
 */
static __thread int64_t h2_clock_ms;

static void
h2_tick(void)
{
	h2_clock_ms = (int64_t)(util_mono_ns() / 1000000);
}

static int64_t
h2_now_ms(void)
{
	return h2_clock_ms;
}

static const struct config *
h2_cfg(const struct h2_conn *c)
{
	return c->front->cfg;
}

/* Run the deferred step on the next loop turn. */
static void
h2_schedule(struct h2_conn *c)
{
	if (!event_pending(&c->dev, EV_TIMEOUT, NULL))
		event_active(&c->dev, EV_TIMEOUT, 0);
}

/* Log a refusal or a defence, at most 10 lines a second per worker. */
static void TS_PRINTFLIKE(2, 3)
h2_log(struct h2_conn *c, const char *fmt, ...)
{
	struct conn_front *f = c->front;
	char msg[512];
	va_list ap;

	if (f->reject_log_sec != (int64_t)time(NULL)) {
		f->reject_log_sec = (int64_t)time(NULL);
		f->reject_log_n = 0;
	}
	if (f->reject_log_n++ >= 10)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_info("client %s: h2: %s", c->client, msg);
}

/*
 * A defence fired: count it, log it, and end the connection with
 * GOAWAY ENHANCE_YOUR_CALM (RFC 9113 7): nothing more is read.
 */
static void
h2_calm(struct h2_conn *c, enum metrics_counter m, const char *what)
{
	if (c->calm)
		return;
	c->calm = true;
	metrics_add(c->front->metrics, m, 1);
	h2_log(c, "%s: GOAWAY ENHANCE_YOUR_CALM", what);
	nghttp2_session_terminate_session(c->s, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* Count one frame of a flood class; true when the cap is passed. */
static bool
h2_flood(struct h2_conn *c, uint64_t *n, uint64_t cap)
{
	const struct config *cfg = h2_cfg(c);
	int64_t now = h2_now_ms();

	if (now - c->flood_start_ms >= (int64_t)cfg->http2.flood_interval_ms) {
		c->flood_start_ms = now;
		c->n_resets = c->n_control = c->n_empty = 0;
	}
	return ++*n > cap;
}

/* The metric counting refusals of v's class. */
static enum metrics_counter
h2_refused_counter(enum h2_msg_verdict v)
{
	switch (v) {
	case H2_MSG_NAME_EMPTY:
	case H2_MSG_NAME_UPPER:
	case H2_MSG_NAME_CHAR:
		return METRICS_H2_REFUSED_FIELD_NAME;
	case H2_MSG_VALUE_CRLFNUL:
	case H2_MSG_VALUE_CTL:
	case H2_MSG_VALUE_WS:
		return METRICS_H2_REFUSED_FIELD_VALUE;
	case H2_MSG_AUTHORITY:
	case H2_MSG_NO_AUTHORITY:
	case H2_MSG_HOST_MISMATCH:
	case H2_MSG_HOST_DUP:
		return METRICS_H2_REFUSED_AUTHORITY;
	case H2_MSG_CONNECTION:
		return METRICS_H2_REFUSED_CONNECTION;
	case H2_MSG_TE:
		return METRICS_H2_REFUSED_TE;
	case H2_MSG_CL_INVALID:
	case H2_MSG_CL_MISMATCH:
		return METRICS_H2_REFUSED_CL;
	case H2_MSG_CONNECT:
	case H2_MSG_METHOD_NS:
		return METRICS_H2_REFUSED_METHOD;
	case H2_MSG_TRAILER_PSEUDO:
	case H2_MSG_TRAILER_NO_END:
		return METRICS_H2_REFUSED_TRAILERS;
	default:
		return METRICS_H2_REFUSED_PSEUDO;
	}
}

/* ---- streams ---------------------------------------------------------- */

static struct h2_stream *
h2_stream_new(struct h2_conn *c, int32_t id)
{
	struct h2_stream *st;
	char *hbuf = NULL;
	struct h2_fld *fl = NULL;
	size_t hcap = 0, flcap = 0;

	if (h2_pool_n > 0) {
		st = h2_pool[--h2_pool_n];
		hbuf = st->hbuf;
		hcap = st->hcap;
		fl = st->fl;
		flcap = st->flcap;
		memset(st, 0, sizeof *st);
	} else if ((st = calloc(1, sizeof *st)) == NULL)
		return NULL;
	st->hbuf = hbuf;
	st->hcap = hcap;
	st->fl = fl;
	st->flcap = flcap;
	st->c = c;
	st->id = id;
	h2_msg_init(&st->msg);
	st->start_ms = st->last_ms = h2_now_ms();
	st->x.client = c->client;
	st->x.client_ip = c->client_ip;
	st->x.tls = c->tls;
	st->x.alpn = c->tls ? "h2" : NULL;
	st->x.protocol = EXCHANGE_P_H2;
	st->x.major = 2;
	st->x.minor = 0;
	st->x.front = &h2_front_ops;
	st->x.front_ctx = st;
	TAILQ_INSERT_TAIL(&c->streams, st, entry);
	c->nstreams++;
	return st;
}

/* The exchange of st is over for the pipeline: the drain count. */
static void
h2_stream_ended(struct h2_stream *st)
{
	struct conn_front *f = st->c->front;

	st->active = false;
	f->inflight--;
	f->events->request_done(f->owner);
}

/* The streams' replies have left: they leave the drain's count. */
static void
h2_release(struct h2_conn *c)
{
	struct conn_front *f = c->front;

	while (c->held > 0) {
		c->held--;
		f->inflight--;
		f->events->request_done(f->owner);
	}
}

/* Free st; the pipeline hears complete() or gone() if it still has it. */
static void
h2_stream_free(struct h2_stream *st)
{
	struct h2_conn *c = st->c;
	struct conn_front *f = c->front;

	if (st->active) {
		if (st->sent_end) {
			/*
			 * The pipeline is done; the drain waits until the
			 * bytes left (h2_release), as conn.c's complete()
			 * waits for its output to drain.
			 */
			f->pipe->complete(&st->x);
			st->active = false;
			c->held++;
		} else {
			f->pipe->gone(&st->x);
			h2_stream_ended(st);
		}
	}
	if (c->s != NULL)
		nghttp2_session_set_stream_user_data(c->s, st->id, NULL);
	TAILQ_REMOVE(&c->streams, st, entry);
	c->nstreams--;
	/* The last stream: the timer trims the idle connection (h2_trim). */
	if (c->nstreams == 0 && !c->trimmed && c->s != NULL)
		h2_timer_want(c, c->last_frame_ms + H2_TRIM_MS);
	if (st->body != NULL)
		evbuffer_free(st->body);
	if (st->out != NULL)
		evbuffer_free(st->out);
	if (h2_pool_n < H2_POOL_MAX) {
		/* Kept with its buffers, unless a large head grew them. */
		if (st->hcap > H2_POOL_HBUF) {
			free(st->hbuf);
			st->hbuf = NULL;
			st->hcap = 0;
		}
		if (st->flcap > 4 * H2_FL_INITIAL) {
			free(st->fl);
			st->fl = NULL;
			st->flcap = 0;
		}
		h2_pool[h2_pool_n++] = st;
		return;
	}
	free(st->hbuf);
	free(st->fl);
	free(st);
}

/* Append s (len bytes) and a NUL to st's hbuf; its offset, or -1. */
static int64_t
h2_hbuf_add(struct h2_stream *st, const void *s, size_t len)
{
	size_t off = st->hlen, ncap;
	char *nb;

	if (st->hlen + len + 1 > st->hcap) {
		ncap = st->hcap > 0 ? st->hcap : H2_HBUF_INITIAL;
		while (ncap < st->hlen + len + 1)
			ncap *= 2;
		if ((nb = realloc(st->hbuf, ncap)) == NULL)
			return -1;
		st->hbuf = nb;
		st->hcap = ncap;
	}
	memcpy(st->hbuf + off, s, len);
	st->hbuf[off + len] = '\0';
	st->hlen += len + 1;
	return (int64_t)off;
}

/* Keep one field of st's head; false when memory ran out. */
static bool
h2_keep(struct h2_stream *st, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen, enum h2_msg_kind kind)
{
	struct h2_fld *fl;
	int64_t no, vo;

	if (st->nfl == st->flcap) {
		size_t ncap = st->flcap > 0 ? st->flcap * 2 : H2_FL_INITIAL;

		if ((fl = realloc(st->fl, ncap * sizeof *fl)) == NULL)
			return false;
		st->fl = fl;
		st->flcap = ncap;
	}
	if ((no = h2_hbuf_add(st, name, nlen)) < 0 ||
	    (vo = h2_hbuf_add(st, value, vlen)) < 0)
		return false;
	fl = &st->fl[st->nfl++];
	fl->noff = (uint32_t)no;
	fl->nlen = (uint32_t)nlen;
	fl->voff = (uint32_t)vo;
	fl->vlen = (uint32_t)vlen;
	fl->kind = kind;
	return true;
}

/* The first kept field of kind k, or NULL. */
static const struct h2_fld *
h2_find(const struct h2_stream *st, enum h2_msg_kind k)
{
	size_t i;

	for (i = 0; i < st->nfl; i++) {
		if (st->fl[i].kind == k)
			return &st->fl[i];
	}
	return NULL;
}

static enum exchange_method
h2_method(const char *m)
{
	static const struct {
		const char *name;
		enum exchange_method m;
	} t[] = {
		{ "GET", EXCHANGE_M_GET }, { "HEAD", EXCHANGE_M_HEAD },
		{ "POST", EXCHANGE_M_POST }, { "PUT", EXCHANGE_M_PUT },
		{ "DELETE", EXCHANGE_M_DELETE },
		{ "OPTIONS", EXCHANGE_M_OPTIONS },
		{ "TRACE", EXCHANGE_M_TRACE },
		{ "CONNECT", EXCHANGE_M_CONNECT },
		{ "PATCH", EXCHANGE_M_PATCH },
	};
	size_t i;

	for (i = 0; i < TS_NITEMS(t); i++) {
		if (strcmp(m, t[i].name) == 0)
			return t[i].m;
	}
	return EXCHANGE_M_OTHER;
}

/*
 * The HTTP/1.1 view of st's head in fields (cap entries): Host first
 * (the Host field, else :authority), the regular fields in order, the
 * cookie crumbs joined into one field with "; " (RFC 9113 8.2.3) where
 * the first crumb was; no pseudo-headers, no TE.  cookie: scratch for
 * the joined value.  Returns the count.
 */
static size_t
h2_fields(struct h2_stream *st, struct http_field *fields, size_t cap,
    char *cookie, size_t cookie_cap)
{
	const struct h2_fld *host;
	size_t i, n = 0, clen = 0;
	bool cookie_placed = false;

	host = h2_find(st, H2_MSG_K_HOST);
	if (host == NULL)
		host = h2_find(st, H2_MSG_K_AUTHORITY);
	if (host != NULL && n < cap) {
		fields[n].name = (char *)"host";
		fields[n].name_len = 4;
		fields[n].value = st->hbuf + host->voff;
		fields[n++].value_len = host->vlen;
	}
	for (i = 0; i < st->nfl; i++) {
		const struct h2_fld *fl = &st->fl[i];

		if (fl->kind != H2_MSG_K_COOKIE)
			continue;
		if (clen > 0 && clen + 2 < cookie_cap) {
			memcpy(cookie + clen, "; ", 2);
			clen += 2;
		}
		if (clen + fl->vlen < cookie_cap) {
			memcpy(cookie + clen, st->hbuf + fl->voff, fl->vlen);
			clen += fl->vlen;
		}
	}
	if (cookie_cap > 0)
		cookie[clen < cookie_cap ? clen : cookie_cap - 1] = '\0';
	for (i = 0; i < st->nfl && n < cap; i++) {
		const struct h2_fld *fl = &st->fl[i];

		switch (fl->kind) {
		case H2_MSG_K_FIELD:
		case H2_MSG_K_CONTENT_LENGTH:
			fields[n].name = st->hbuf + fl->noff;
			fields[n].name_len = fl->nlen;
			fields[n].value = st->hbuf + fl->voff;
			fields[n++].value_len = fl->vlen;
			break;
		case H2_MSG_K_COOKIE:
			if (cookie_placed)
				break;
			cookie_placed = true;
			fields[n].name = (char *)"cookie";
			fields[n].name_len = 6;
			fields[n].value = cookie;
			fields[n++].value_len = strlen(cookie);
			break;
		default:
			break;
		}
	}
	return n;
}

/* The cookie scratch: every crumb and its separator. */
static size_t
h2_cookie_size(const struct h2_stream *st)
{
	size_t i, n = 1;

	for (i = 0; i < st->nfl; i++) {
		if (st->fl[i].kind == H2_MSG_K_COOKIE)
			n += st->fl[i].vlen + 2;
	}
	return n;
}

/* Fill x's request from st's head (fields, cookie: the caller's). */
static void
h2_fill(struct h2_stream *st, struct http_field *fields, size_t n)
{
	const struct h2_fld *m = h2_find(st, H2_MSG_K_METHOD);
	const struct h2_fld *p = h2_find(st, H2_MSG_K_PATH);

	st->x.method_name = m != NULL ? st->hbuf + m->voff : "-";
	st->x.method = m != NULL ? h2_method(st->x.method_name) :
	    EXCHANGE_M_OTHER;
	st->x.target = p != NULL ? st->hbuf + p->voff : "/";
	st->x.fields = fields;
	st->x.n_fields = n;
}

/*
 * Refuse st with our own answer (status, reason): the pipeline's
 * refuse() answers through st's exchange (route's CORS headers, JSON).
 */
static void
h2_refuse(struct h2_stream *st, int status, const char *why)
{
	struct h2_conn *c = st->c;
	struct conn_front *f = c->front;
	struct http_field sfields[H2_STACK_FIELDS], *fields = sfields;
	size_t cap = st->nfl + 1, csize = h2_cookie_size(st), n;
	char scookie[H2_STACK_BYTES], *cookie = scookie;

	if (st->answered)
		return;
	st->answered = true;
	h2_log(c, "stream %d refused (%d): %s", st->id, status, why);
	if (cap > TS_NITEMS(sfields))
		fields = malloc(cap * sizeof *fields);
	if (csize > sizeof scookie)
		cookie = malloc(csize);
	if (fields == NULL || cookie == NULL) {
		if (fields != sfields)
			free(fields);
		if (cookie != scookie)
			free(cookie);
		nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id,
		    NGHTTP2_INTERNAL_ERROR);
		return;
	}
	n = h2_fields(st, fields, cap, cookie, csize);
	h2_fill(st, fields, n);
	st->x.method = EXCHANGE_M_OTHER;
	st->x.method_name = "-";
	st->x.body = NULL;
	st->x.body_end = true;
	st->x.pipe = NULL;
	f->pipe->refuse(f->pipe_arg, &st->x, status, why);
	st->x.fields = NULL;
	st->x.n_fields = 0;
	if (fields != sfields)
		free(fields);
	if (cookie != scookie)
		free(cookie);
}

/* Refuse st for the rule v broke (RFC 9113 8.2-8.3). */
static void
h2_refuse_rule(struct h2_stream *st, enum h2_msg_verdict v)
{
	metrics_add(st->c->front->metrics, h2_refused_counter(v), 1);
	h2_refuse(st, h2_msg_status(v), h2_msg_reason(v));
}

/* The request of st is complete and valid: hand it to the pipeline. */
static void
h2_dispatch(struct h2_stream *st)
{
	struct h2_conn *c = st->c;
	struct conn_front *f = c->front;
	struct http_field sfields[H2_STACK_FIELDS], *fields = sfields;
	size_t cap = st->nfl + 1, csize = h2_cookie_size(st), n;
	char scookie[H2_STACK_BYTES], *cookie = scookie;

	/* A browser's head fits on the stack: no allocation per stream. */
	if (cap > TS_NITEMS(sfields))
		fields = malloc(cap * sizeof *fields);
	if (csize > sizeof scookie)
		cookie = malloc(csize);
	if (fields == NULL || cookie == NULL) {
		if (fields != sfields)
			free(fields);
		if (cookie != scookie)
			free(cookie);
		h2_refuse(st, 503, "the gateway is out of memory");
		return;
	}
	st->answered = true;
	n = h2_fields(st, fields, cap, cookie, csize);
	h2_fill(st, fields, n);
	st->x.body = st->body;
	st->x.body_end = true;
	st->active = true;
	f->inflight++;
	f->pipe->start(f->pipe_arg, &st->x);
	/* The head was valid during the call only. */
	st->x.fields = NULL;
	st->x.n_fields = 0;
	st->x.body = NULL;
	if (fields != sfields)
		free(fields);
	if (cookie != scookie)
		free(cookie);
}

/* The head of st is complete (end: END_STREAM came with it). */
static void
h2_head_done(struct h2_stream *st, bool end)
{
	const struct h2_fld *fl;
	enum h2_msg_verdict v;
	size_t i;

	st->head_done = true;
	st->req_done = end;
	st->last_ms = h2_now_ms();
	if (st->status != 0) {
		if (st->status == 431)
			metrics_add(st->c->front->metrics,
			    METRICS_H2_REFUSED_HEADER_LIST, 1);
		h2_refuse(st, st->status, st->why);
		return;
	}
	if (st->verdict != H2_MSG_OK) {
		h2_refuse_rule(st, st->verdict);
		return;
	}
	/* h2_msg_end compares our copies, not nghttp2's gone buffers. */
	st->msg.authority = st->msg.host = st->msg.path = NULL;
	for (i = 0; i < st->nfl; i++) {
		fl = &st->fl[i];
		if (fl->kind == H2_MSG_K_AUTHORITY)
			st->msg.authority = st->hbuf + fl->voff;
		else if (fl->kind == H2_MSG_K_HOST)
			st->msg.host = st->hbuf + fl->voff;
		else if (fl->kind == H2_MSG_K_PATH)
			st->msg.path = st->hbuf + fl->voff;
	}
	if ((v = h2_msg_end(&st->msg, end)) != H2_MSG_OK) {
		h2_refuse_rule(st, v);
		return;
	}
	if (end)
		h2_dispatch(st);
}

/*
 * Request trailers.  The HTTP/1.1 request upstream is written with a
 * Content-Length (the body is collected whole), which has no place for
 * a trailer section (RFC 9110 6.5: only the chunked coding carries
 * one): a valid trailer section is dropped, counted and logged at
 * debug, as Envoy's HTTP/1 codec drops the trailers it proxies unless
 * told otherwise (http_protocol_options.enable_trailers).  An invalid
 * one refuses the stream as a bad head does (RFC 9113 8.1: a malformed
 * request), so that a client learns its trailers were wrong rather than
 * lost.
 */
static int
h2_trailer_field(struct h2_stream *st, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen)
{
	const struct config_limits *l = &h2_cfg(st->c)->limits;
	enum h2_msg_verdict v;

	if (st->answered)
		return 0;	/* refused already: nothing goes upstream */
	/* The head's bound holds for every field block (RFC 9113 6.5.2):
	 * nothing is kept, but an HPACK bomb still costs its decoding. */
	st->tsize += nlen + vlen + 32;
	if (st->status == 431 || st->tsize > l->max_header_bytes ||
	    ++st->ntrailers > l->max_header_fields) {
		if (st->status == 0) {
			st->status = 431;
			st->why = "request trailer section too large "
			    "(server.limits.max_header_bytes, "
			    "max_header_fields)";
		}
		if (++st->nignored > H2_IGNORED_MAX) {
			metrics_add(st->c->front->metrics,
			    METRICS_H2_REFUSED_HEADER_LIST, 1);
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		}
		return 0;
	}
	if (st->tverdict == H2_MSG_OK &&
	    (v = h2_msg_trailer_field(name, nlen, value, vlen)) != H2_MSG_OK)
		st->tverdict = v;
	return 0;
}

/* The trailer section of st is complete: false when st was refused. */
static bool
h2_trailers_done(struct h2_stream *st, bool end)
{
	struct h2_conn *c = st->c;
	char why[160];

	st->last_ms = h2_now_ms();
	/* END_STREAM came: a refusal needs no RST_STREAM to stop a body. */
	st->req_done = end;
	if (st->status != 0) {
		metrics_add(c->front->metrics, METRICS_H2_REFUSED_HEADER_LIST,
		    1);
		h2_refuse(st, st->status, st->why);
		return false;
	}
	if (st->tverdict == H2_MSG_TRAILER_PSEUDO) {
		h2_refuse_rule(st, st->tverdict);
		return false;
	}
	if (st->tverdict != H2_MSG_OK) {
		/* The head's rule, said of the trailers (the reason is
		 * copied into the answer during the call). */
		snprintf(why, sizeof why, "%s, in the trailer section",
		    h2_msg_reason(st->tverdict));
		metrics_add(c->front->metrics,
		    h2_refused_counter(st->tverdict), 1);
		h2_refuse(st, h2_msg_status(st->tverdict), why);
		return false;
	}
	if (!end) {
		h2_refuse_rule(st, H2_MSG_TRAILER_NO_END);
		return false;
	}
	metrics_add(c->front->metrics, METRICS_H2_TRAILERS_DROPPED, 1);
	log_debug("client %s: h2: stream %d: %zu trailer field(s) not "
	    "forwarded (an HTTP/1.1 request with a content-length has no "
	    "trailer section)", c->client, st->id, st->ntrailers);
	return true;
}

/* ---- nghttp2 callbacks ------------------------------------------------ */

static ssize_t
h2_send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags,
    void *arg)
{
	struct h2_conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t queued = evbuffer_get_length(out);

	(void)s;
	(void)flags;
	c->trimmed = false;	/* the frame buffer was written */
	if (!c->tls) {
		queued += evbuffer_get_length(h2_wbuf);
		out = h2_wbuf;
	}
	if (queued >= H2_OUT_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (evbuffer_add(out, data, len) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return (ssize_t)len;
}

static int
h2_begin_frame_cb(nghttp2_session *s, const nghttp2_frame_hd *hd, void *arg)
{
	struct h2_conn *c = arg;
	const struct config *cfg = h2_cfg(c);

	(void)s;
	if (c->calm)
		return 0;
	if (hd->type == NGHTTP2_HEADERS)
		c->n_continuations = 0;
	else if (hd->type == NGHTTP2_CONTINUATION &&
	    ++c->n_continuations > cfg->http2.max_continuations) {
		h2_calm(c, METRICS_H2_DEF_CONTINUATION,
		    "CONTINUATION flood (server.http2_max_continuations)");
		return 0;
	}
	/*
	 * Frames that carry nothing and end nothing (CVE-2019-9518): an
	 * empty DATA without END_STREAM, an empty HEADERS or CONTINUATION
	 * without END_HEADERS.
	 */
	if (hd->length == 0 && ((hd->type == NGHTTP2_DATA &&
	    !(hd->flags & NGHTTP2_FLAG_END_STREAM)) ||
	    ((hd->type == NGHTTP2_HEADERS ||
	    hd->type == NGHTTP2_CONTINUATION) &&
	    !(hd->flags & NGHTTP2_FLAG_END_HEADERS))) &&
	    h2_flood(c, &c->n_empty, cfg->http2.max_empty_frames))
		h2_calm(c, METRICS_H2_DEF_EMPTY,
		    "empty frame flood (server.http2_max_empty_frames)");
	return 0;
}

static int
h2_begin_headers_cb(nghttp2_session *s, const nghttp2_frame *frame,
    void *arg)
{
	struct h2_conn *c = arg;
	struct h2_stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST || c->calm)
		return 0;
	if ((st = h2_stream_new(c, frame->hd.stream_id)) == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, st);
	h2_timer_want(c, st->start_ms +
	    (int64_t)h2_cfg(c)->limits.header_timeout_ms);
	return 0;
}

static int
h2_header_cb(nghttp2_session *s, const nghttp2_frame *frame,
    const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen,
    uint8_t flags, void *arg)
{
	struct h2_conn *c = arg;
	const struct config_limits *l = &h2_cfg(c)->limits;
	struct h2_stream *st;
	enum h2_msg_verdict v;
	enum h2_msg_kind kind;

	(void)flags;
	st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
	if (st == NULL || c->calm)
		return 0;
	if (st->head_done)
		return h2_trailer_field(st, name, nlen, value, vlen);
	/*
	 * The decoded header list (RFC 9113 6.5.2: name, value and 32 per
	 * field) is bounded like an HTTP/1.1 head: 431 above.  An HPACK
	 * bomb references one large table entry many times: nothing of it
	 * is copied past the bound, and past H2_IGNORED_MAX fields the
	 * stream is reset.
	 */
	st->hsize += nlen + vlen + 32;
	if (st->status == 431 || st->hsize > l->max_header_bytes ||
	    st->nfl >= l->max_header_fields) {
		if (st->status == 0) {
			st->status = 431;
			st->why = st->hsize > l->max_header_bytes ?
			    "request header list too large "
			    "(server.limits.max_header_bytes)" :
			    "too many request header fields "
			    "(server.limits.max_header_fields)";
		}
		if (++st->nignored > H2_IGNORED_MAX) {
			metrics_add(c->front->metrics,
			    METRICS_H2_REFUSED_HEADER_LIST, 1);
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		}
		return 0;
	}
	v = h2_msg_field(&st->msg, name, nlen, value, vlen, &kind);
	if (v != H2_MSG_OK) {
		if (st->verdict == H2_MSG_OK)
			st->verdict = v;
		return 0;
	}
	if (!h2_keep(st, name, nlen, value, vlen, kind))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

static int
h2_data_chunk_cb(nghttp2_session *s, uint8_t flags, int32_t id,
    const uint8_t *data, size_t len, void *arg)
{
	struct h2_conn *c = arg;
	const struct config_limits *l = &h2_cfg(c)->limits;
	struct h2_stream *st;
	enum h2_msg_verdict v;

	(void)flags;
	st = nghttp2_session_get_stream_user_data(s, id);
	if (st == NULL || st->answered || c->calm)
		return 0;
	st->last_ms = h2_now_ms();
	if ((v = h2_msg_data(&st->msg, len)) != H2_MSG_OK) {
		h2_refuse_rule(st, v);
		return 0;
	}
	if (st->msg.data > l->max_body_bytes) {
		metrics_add(c->front->metrics, METRICS_H2_REFUSED_BODY, 1);
		h2_refuse(st, 413, "request body too large "
		    "(server.limits.max_body_bytes)");
		return 0;
	}
	if (st->body == NULL && (st->body = evbuffer_new()) == NULL) {
		h2_refuse(st, 503, "the gateway is out of memory");
		return 0;
	}
	if (evbuffer_add(st->body, data, len) != 0)
		h2_refuse(st, 503, "the gateway is out of memory");
	return 0;
}

static int
h2_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
	struct h2_conn *c = arg;
	const struct config *cfg = h2_cfg(c);
	struct h2_stream *st;
	bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
	enum h2_msg_verdict v;

	/*
	 * Only requests keep a connection from its idle timeout: a client
	 * sending PING or WINDOW_UPDATE now and then does not hold it.
	 */
	if (frame->hd.type == NGHTTP2_HEADERS ||
	    frame->hd.type == NGHTTP2_DATA)
		c->last_frame_ms = h2_now_ms();
	if (c->calm)
		return 0;
	switch (frame->hd.type) {
	case NGHTTP2_RST_STREAM:
		/* Rapid reset (CVE-2023-44487): each reset stream may
		 * have cost us an upstream request. */
		if (h2_flood(c, &c->n_resets, cfg->http2.max_resets))
			h2_calm(c, METRICS_H2_DEF_RAPID_RESET,
			    "rapid reset (server.http2_max_resets)");
		return 0;
	case NGHTTP2_SETTINGS:
	case NGHTTP2_PING:
		if (frame->hd.flags & NGHTTP2_FLAG_ACK)
			return 0;
		if (h2_flood(c, &c->n_control, cfg->http2.max_control_frames))
			h2_calm(c, frame->hd.type == NGHTTP2_PING ?
			    METRICS_H2_DEF_PING : METRICS_H2_DEF_SETTINGS,
			    frame->hd.type == NGHTTP2_PING ? "PING flood "
			    "(server.http2_max_control_frames)" :
			    "SETTINGS flood "
			    "(server.http2_max_control_frames)");
		return 0;
	case NGHTTP2_HEADERS:
		st = nghttp2_session_get_stream_user_data(s,
		    frame->hd.stream_id);
		if (st == NULL)
			return 0;
		if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
			h2_head_done(st, end);
			return 0;
		}
		/* Trailers: they end the body (when they are valid). */
		if (st->answered || !st->head_done || !h2_trailers_done(st,
		    end))
			return 0;
		break;
	case NGHTTP2_DATA:
		st = nghttp2_session_get_stream_user_data(s,
		    frame->hd.stream_id);
		if (st == NULL)
			return 0;
		break;
	default:
		return 0;
	}
	if (!end || st->answered || !st->head_done)
		return 0;
	st->req_done = true;
	if ((v = h2_msg_data_end(&st->msg)) != H2_MSG_OK) {
		h2_refuse_rule(st, v);
		return 0;
	}
	h2_dispatch(st);
	return 0;
}

static int
h2_frame_send_cb(nghttp2_session *s, const nghttp2_frame *frame, void *arg)
{
	struct h2_conn *c = arg;
	struct h2_stream *st;

	c->last_write_ms = h2_now_ms();
	if (frame->hd.type == NGHTTP2_RST_STREAM) {
		st = nghttp2_session_get_stream_user_data(s,
		    frame->hd.stream_id);
		/* A stream nghttp2 refused itself: over the concurrent
		 * stream limit, or a frame error on a stream. */
		(void)st;
		return 0;
	}
	if ((frame->hd.type != NGHTTP2_HEADERS &&
	    frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
	if (st == NULL)
		return 0;
	st->sent_end = true;
	/*
	 * Our answer is complete while the client still sends (a refusal,
	 * a 413): RST_STREAM NO_ERROR tells it to stop (RFC 9113 8.1).
	 */
	if (!st->req_done)
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id,
		    NGHTTP2_NO_ERROR);
	return 0;
}

/*
 * nghttp2 found a frame invalid: a connection or stream error it answers
 * itself.  A HEADERS that opens a stream over the limit the client
 * acknowledged is a connection error in nghttp2 (GOAWAY PROTOCOL_ERROR;
 * before the acknowledgement, RST_STREAM REFUSED_STREAM): counted as
 * the max_concurrent_streams defence.
 */
static int
h2_invalid_frame_cb(nghttp2_session *s, const nghttp2_frame *frame,
    int lib_error, void *arg)
{
	struct h2_conn *c = arg;
	uint32_t max = nghttp2_session_get_local_settings(s,
	    NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);

	if (frame->hd.type == NGHTTP2_HEADERS &&
	    nghttp2_session_get_stream_user_data(s, frame->hd.stream_id) ==
	    NULL && (lib_error == NGHTTP2_ERR_REFUSED_STREAM ||
	    c->nstreams >= max)) {
		metrics_add(c->front->metrics, METRICS_H2_DEF_STREAMS, 1);
		h2_log(c, "stream %d over max_concurrent_streams (%u)",
		    frame->hd.stream_id, max);
	} else {
		metrics_add(c->front->metrics, METRICS_H2_DEF_PROTOCOL, 1);
		h2_log(c, "invalid frame (type %u) on stream %d: %s",
		    (unsigned)frame->hd.type, frame->hd.stream_id,
		    nghttp2_strerror(lib_error));
	}
	/*
	 * A stream error is a reset the client provoked (the "MadeYouReset"
	 * variant of rapid reset, CVE-2025-8671): it counts against the
	 * same cap as the client's own RST_STREAM frames.
	 */
	if (frame->hd.stream_id != 0 && !c->calm &&
	    h2_flood(c, &c->n_resets, h2_cfg(c)->http2.max_resets))
		h2_calm(c, METRICS_H2_DEF_RAPID_RESET,
		    "provoked resets (server.http2_max_resets)");
	return 0;
}

static int
h2_stream_close_cb(nghttp2_session *s, int32_t id, uint32_t error,
    void *arg)
{
	struct h2_stream *st;

	(void)arg;
	(void)error;
	st = nghttp2_session_get_stream_user_data(s, id);
	if (st != NULL)
		h2_stream_free(st);
	return 0;
}

/* The data provider of a response body: what the pipeline gave. */
static ssize_t
h2_data_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct h2_stream *st = src->ptr;
	struct h2_conn *c = arg;
	int n;

	(void)s;
	(void)id;
	n = evbuffer_remove(st->out, buf, len);
	if (n < 0)
		n = 0;
	if (evbuffer_get_length(st->out) == 0) {
		if (st->out_end)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		else if (n == 0) {
			st->deferred = true;
			return NGHTTP2_ERR_DEFERRED;
		}
	}
	if (st->want_drain && evbuffer_get_length(st->out) < H2_STREAM_LOW) {
		st->want_drain = false;
		st->drain_due = true;
		h2_schedule(c);
	}
	return n;
}

/* ---- the door: the pipeline's calls ------------------------------------ */

/*
 * Connection-specific response fields HTTP/2 forbids (RFC 9113 8.2.2),
 * told apart by length first: this runs on every field of every
 * response.
 */
static bool
h2_resp_skip(const char *name, size_t len)
{
	switch (len) {
	case 7:
		return util_strncaseeq(name, "upgrade", 7);
	case 10:
		return util_strncaseeq(name, "connection", 10) ||
		    util_strncaseeq(name, "keep-alive", 10);
	case 16:
		return util_strncaseeq(name, "proxy-connection", 16);
	case 17:
		return util_strncaseeq(name, "transfer-encoding", 17);
	default:
		return false;
	}
}

/* front->head(): the response HEADERS (lower-case names, :status). */
static void
h2_x_head(struct exchange *x, const struct exchange_head *h)
{
	struct h2_stream *st = x->front_ctx;
	struct h2_conn *c = st->c;
	nghttp2_data_provider prd;
	nghttp2_nv snv[H2_STACK_FIELDS], *nv = snv;
	char status[4], snames[H2_STACK_BYTES], *names = snames;
	size_t i, n = 0, nlen = 0, off = 0;
	int code = h->status;
	bool body;

	if (st->submitted || c->dead)
		return;
	st->submitted = true;
	if (code < 200 || code > 999)
		code = 502;	/* no 1xx through here */
	status[0] = (char)('0' + code / 100);
	status[1] = (char)('0' + code / 10 % 10);
	status[2] = (char)('0' + code % 10);
	status[3] = '\0';
	for (i = 0; i < h->n_fields; i++)
		nlen += h->fields[i].name_len;
	/* The head is built on the stack unless it is large (nghttp2
	 * copies it during the submit). */
	if (h->n_fields + 1 > TS_NITEMS(snv))
		nv = malloc((h->n_fields + 1) * sizeof *nv);
	if (nlen + 1 > sizeof snames)
		names = malloc(nlen + 1);
	if ((st->out = evbuffer_new()) == NULL || nv == NULL ||
	    names == NULL) {
		if (nv != snv)
			free(nv);
		if (names != snames)
			free(names);
		nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id,
		    NGHTTP2_INTERNAL_ERROR);
		h2_schedule(c);
		return;
	}
	nv[n].name = (uint8_t *)":status";
	nv[n].namelen = 7;
	nv[n].value = (uint8_t *)status;
	nv[n].valuelen = 3;
	nv[n++].flags = NGHTTP2_NV_FLAG_NONE;
	for (i = 0; i < h->n_fields; i++) {
		const struct exchange_field *f = &h->fields[i];
		size_t j;

		if (h2_resp_skip(f->name, f->name_len))
			continue;
		for (j = 0; j < f->name_len; j++) {
			char ch = f->name[j];

			names[off + j] = ch >= 'A' && ch <= 'Z' ?
			    (char)(ch + 32) : ch;
		}
		nv[n].name = (uint8_t *)names + off;
		nv[n].namelen = f->name_len;
		nv[n].value = (uint8_t *)f->value;
		nv[n].valuelen = f->value_len;
		nv[n++].flags = NGHTTP2_NV_FLAG_NONE;
		off += f->name_len;
	}
	body = !h->no_body;
	if (body && h->body_len > 0)
		evbuffer_add(st->out, h->body, h->body_len);
	prd.source.ptr = st;
	prd.read_callback = h2_data_read_cb;
	/* nghttp2 copies the fields (no NO_COPY flag). */
	if (nghttp2_submit_response(c->s, st->id, nv, n,
	    body ? &prd : NULL) != 0)
		nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id,
		    NGHTTP2_INTERNAL_ERROR);
	if (!body)
		st->out_end = true;
	if (nv != snv)
		free(nv);
	if (names != snames)
		free(names);
	h2_schedule(c);
}

/* front->body(): move buf out; true (stop) above the stream's mark. */
static bool
h2_x_body(struct exchange *x, struct evbuffer *buf)
{
	struct h2_stream *st = x->front_ctx;
	struct h2_conn *c = st->c;

	if (st->out == NULL || st->out_end || c->dead) {
		evbuffer_drain(buf, evbuffer_get_length(buf));
		return false;
	}
	evbuffer_add_buffer(st->out, buf);
	if (st->deferred) {
		st->deferred = false;
		nghttp2_session_resume_data(c->s, st->id);
	}
	h2_schedule(c);
	if (evbuffer_get_length(st->out) > H2_STREAM_HIGH) {
		st->want_drain = true;
		return true;
	}
	return false;
}

/* front->end(): the body is complete; complete() once END_STREAM left. */
static void
h2_x_end(struct exchange *x)
{
	struct h2_stream *st = x->front_ctx;
	struct h2_conn *c = st->c;

	if (st->out_end)
		return;
	st->out_end = true;
	if (st->deferred && !c->dead) {
		st->deferred = false;
		nghttp2_session_resume_data(c->s, st->id);
	}
	h2_schedule(c);
}

/* front->abort(): cut this stream only; the exchange is over. */
static void
h2_x_abort(struct exchange *x)
{
	struct h2_stream *st = x->front_ctx;
	struct h2_conn *c = st->c;

	if (st->active)
		h2_stream_ended(st);
	st->aborted = true;
	st->x.pipe = NULL;
	if (!c->dead)
		nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id,
		    NGHTTP2_INTERNAL_ERROR);
	h2_schedule(c);
}

/* ---- the connection ---------------------------------------------------- */

static void
h2_reading(struct h2_conn *c, bool on)
{
	if (c->reading == on)
		return;
	c->reading = on;
	if (!c->tls) {
		if (on)
			event_add(&c->rev, NULL);
		else
			event_del(&c->rev);
	} else if (on)
		bufferevent_enable(c->bev, EV_READ);
	else
		bufferevent_disable(c->bev, EV_READ);
}

/* Arm the timer for at_ms unless it fires sooner already. */
static void
h2_timer_want(struct h2_conn *c, int64_t at_ms)
{
	int64_t now = h2_now_ms(), d = at_ms > now ? at_ms - now : 0;
	struct timeval tv;

	if (c->timer_at_ms != 0 && c->timer_at_ms <= at_ms &&
	    evtimer_pending(&c->tev, NULL))
		return;
	c->timer_at_ms = at_ms;
	tv.tv_sec = (time_t)(d / 1000);
	tv.tv_usec = (suseconds_t)(d % 1000) * 1000;
	evtimer_add(&c->tev, &tv);
}

/*
 * Run the session's output, then close when it is over: both sides done
 * (nghttp2 wants neither to read nor to write) and the bytes left.
 */
static void
h2_flush(struct h2_conn *c)
{
	struct evbuffer *out;

	if (c->dead)
		return;
	if (!c->tls && h2_wbuf == NULL && (h2_wbuf = evbuffer_new()) == NULL) {
		c->dead = true;
		return;
	}
	if (nghttp2_session_send(c->s) != 0) {
		if (!c->tls)
			evbuffer_drain(h2_wbuf, evbuffer_get_length(h2_wbuf));
		c->dead = true;
		return;
	}
	out = bufferevent_get_output(c->bev);
	if (!c->tls && evbuffer_get_length(h2_wbuf) > 0) {
		/* Behind bytes already waiting: after them, in order.  An
		 * error is the bufferevent's to find (its event callback
		 * closes). */
		if (evbuffer_get_length(out) == 0 &&
		    evbuffer_write(h2_wbuf, bufferevent_getfd(c->bev)) > 0)
			c->last_write_ms = h2_now_ms();
		if (evbuffer_get_length(h2_wbuf) > 0)
			evbuffer_add_buffer(out, h2_wbuf);
	}
	/* A client that does not read stops being read. */
	h2_reading(c, evbuffer_get_length(out) < H2_OUT_HIGH &&
	    !c->closing);
	if (evbuffer_get_length(out) == 0)
		h2_release(c);
	if (!nghttp2_session_want_read(c->s) &&
	    !nghttp2_session_want_write(c->s)) {
		c->closing = true;
		h2_reading(c, false);
		if (evbuffer_get_length(out) == 0)
			h2_linger(c);
	}
}

/* The streams' deferred work, then the output. */
static void
h2_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *c = arg;
	struct h2_stream *st, *next;

	(void)fd;
	(void)what;
	h2_tick();
	for (st = TAILQ_FIRST(&c->streams); st != NULL; st = next) {
		next = TAILQ_NEXT(st, entry);
		if (st->drain_due && st->active) {
			st->drain_due = false;
			c->front->pipe->drained(&st->x);
		}
	}
	h2_flush(c);
	if (c->dead)
		h2_close(c);
}

/*
 * Give nghttp2 len bytes from the client: how many it took (all of them
 * unless the connection ended; the rest is then dropped).
 */
static size_t
h2_input(struct h2_conn *c, const uint8_t *p, size_t len)
{
	ssize_t rv;

	if (c->dead || c->calm)
		return 0;
	c->in_recv = true;
	rv = nghttp2_session_mem_recv(c->s, p, len);
	c->in_recv = false;
	if (rv >= 0)
		return (size_t)rv;
	if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
		h2_calm(c, METRICS_H2_DEF_CONTINUATION,
		    "CONTINUATION flood (nghttp2)");
	else if (rv == NGHTTP2_ERR_FLOODED)
		h2_calm(c, METRICS_H2_DEF_PING,
		    "control frame flood (nghttp2)");
	else {
		metrics_add(c->front->metrics, METRICS_H2_DEF_PROTOCOL, 1);
		h2_log(c, "connection error: %s", nghttp2_strerror((int)rv));
		c->calm = true;
	}
	return 0;
}

/*
 * Plaintext reads: recv(2) into the stack and straight to nghttp2.
 * Through the bufferevent, each read asked the kernel how much was
 * readable (an ioctl(FIONREAD)) and went through an evbuffer chain
 * that was allocated, parsed and drained (2 to 3% of a profile).
 */
static void
h2_sock_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *c = arg;
	uint8_t buf[16384];
	ssize_t n;

	(void)what;
	h2_tick();
	n = recv(fd, buf, sizeof buf, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		/* EOF or a reset: every stream's client is gone. */
		h2_close(c);
		return;
	}
	if (c->lingering)
		return;		/* read and dropped until EOF */
	(void)h2_input(c, buf, (size_t)n);
	h2_flush(c);
	if (c->dead)
		h2_close(c);
}

static void
h2_read_cb(struct bufferevent *bev, void *arg)
{
	struct h2_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec v;
	size_t took;

	h2_tick();
	if (c->lingering) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while (evbuffer_get_length(in) > 0 && !c->dead && !c->calm) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		took = h2_input(c, v.iov_base, v.iov_len);
		if (c->dead || c->calm)
			break;
		evbuffer_drain(in, took);
	}
	if (c->calm)
		evbuffer_drain(in, evbuffer_get_length(in));
	h2_flush(c);
	if (c->dead)
		h2_close(c);
}

static void
h2_write_cb(struct bufferevent *bev, void *arg)
{
	struct h2_conn *c = arg;

	h2_tick();
	c->last_write_ms = h2_now_ms();
	if (c->lingering)
		return;
	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) ==
	    0) {
		h2_linger(c);
		if (c->dead)
			h2_close(c);
		return;
	}
	h2_flush(c);
	if (c->dead)
		h2_close(c);
}

static void
h2_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct h2_conn *c = arg;

	(void)bev;
	/* EOF or a reset: every stream's client is gone. */
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		h2_close(c);
}

/*
 * The timer: the idle timeout (no stream, no HEADERS or DATA), the header
 * timeout of a stream whose head has not come, the body timeout (a gap
 * between two DATA frames of a stream we read), the busy timeout (our
 * output does not move).  Re-armed for the nearest deadline left.
 */
static void
h2_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *c = arg;
	const struct config_limits *l = &h2_cfg(c)->limits;
	struct h2_stream *st, *next;
	int64_t now, next_at, at;
	bool out_pending;

	h2_tick();
	now = h2_now_ms();
	(void)fd;
	(void)what;
	c->timer_at_ms = 0;
	if (c->lingering) {
		h2_close(c);
		return;
	}
	out_pending = evbuffer_get_length(bufferevent_get_output(c->bev)) > 0;
	if (out_pending && now - c->last_write_ms >=
	    (int64_t)c->front->busy_timeout_ms) {
		metrics_add(c->front->metrics, METRICS_REQ_TIMEOUT, 1);
		metrics_add(c->front->metrics, METRICS_H2_DEF_TIMEOUT, 1);
		h2_log(c, "busy timeout: the client does not read");
		h2_close(c);
		return;
	}
	next_at = out_pending ? c->last_write_ms +
	    (int64_t)c->front->busy_timeout_ms : INT64_MAX;
	if (c->nstreams == 0 && !out_pending && !c->trimmed) {
		at = c->last_frame_ms + H2_TRIM_MS;
		if (now >= at)
			h2_trim(c);
		else if (at < next_at)
			next_at = at;
	}
	if (c->nstreams == 0) {
		at = c->last_frame_ms + (int64_t)l->idle_timeout_ms;
		if (now >= at) {
			metrics_add(c->front->metrics, METRICS_REQ_TIMEOUT,
			    1);
			h2_log(c, "idle timeout: GOAWAY");
			nghttp2_session_terminate_session(c->s,
			    NGHTTP2_NO_ERROR);
			h2_flush(c);
			if (c->dead)
				h2_close(c);
			return;
		}
		if (at < next_at)
			next_at = at;
	}
	for (st = TAILQ_FIRST(&c->streams); st != NULL; st = next) {
		next = TAILQ_NEXT(st, entry);
		if (st->answered)
			continue;
		if (!st->head_done) {
			at = st->start_ms + (int64_t)l->header_timeout_ms;
			if (now >= at) {
				/* Inside a header block nothing else can
				 * come on the connection. */
				metrics_add(c->front->metrics,
				    METRICS_REQ_TIMEOUT, 1);
				metrics_add(c->front->metrics,
				    METRICS_H2_DEF_TIMEOUT, 1);
				h2_log(c, "stream %d: header timeout: GOAWAY",
				    st->id);
				nghttp2_session_terminate_session(c->s,
				    NGHTTP2_NO_ERROR);
				c->calm = true;
				break;
			}
		} else {
			at = st->last_ms + (int64_t)l->body_timeout_ms;
			if (now >= at) {
				metrics_add(c->front->metrics,
				    METRICS_REQ_TIMEOUT, 1);
				h2_refuse(st, 408, "request body timeout");
				continue;
			}
		}
		if (at < next_at)
			next_at = at;
	}
	h2_flush(c);
	if (c->dead) {
		h2_close(c);
		return;
	}
	/* Nothing due: look again in an idle timeout (the streams left
	 * may end, and the idle timeout starts from their last frame). */
	if (next_at == INT64_MAX)
		next_at = now + (int64_t)l->idle_timeout_ms;
	h2_timer_want(c, next_at);
}

/*
 * The session is over and its last bytes left: shut our side and read
 * (dropping it) what the client still sends until its EOF or
 * H2_LINGER_MS, then close.
 */
static void
h2_linger(struct h2_conn *c)
{
	struct timeval tv = { H2_LINGER_MS / 1000, H2_LINGER_MS % 1000 * 1000 };

	if (c->lingering)
		return;
	c->lingering = true;
	h2_release(c);
	if (shutdown(bufferevent_getfd(c->bev), SHUT_WR) != 0) {
		c->dead = true;		/* the caller closes */
		return;
	}
	c->reading = false;
	h2_reading(c, true);
	c->timer_at_ms = 0;
	evtimer_add(&c->tev, &tv);
}

/* The one teardown of c. */
static void
h2_close(struct h2_conn *c)
{
	struct conn_front *f = c->front;

	while (!TAILQ_EMPTY(&c->streams))
		h2_stream_free(TAILQ_FIRST(&c->streams));
	h2_release(c);
	nghttp2_session_del(c->s);
	c->s = NULL;
	event_del(&c->tev);
	event_del(&c->dev);
	if (!c->tls)
		event_del(&c->rev);
	bufferevent_free(c->bev);	/* closes the socket */
	TAILQ_REMOVE(&f->h2conns, c, entry);
	free(c);
	f->events->closed(f->owner);
}

/* nghttp2's allocator: malloc, but its frame buffer on whole pages. */
static void *
h2_mem_malloc(size_t size, void *arg)
{
	struct h2_conn *c = arg;
	size_t cap;
	void *p;

	if (size < H2_FBUF_MIN || c->fbuf != NULL)
		return malloc(size);
	cap = (size + H2_PAGE - 1) & ~(size_t)(H2_PAGE - 1);
	if ((p = aligned_alloc(H2_PAGE, cap)) != NULL) {
		c->fbuf = p;
		c->fbuf_cap = cap;
	}
	return p;
}

static void
h2_mem_free(void *p, void *arg)
{
	struct h2_conn *c = arg;

	if (p != NULL && p == c->fbuf)
		c->fbuf = NULL;
	free(p);
}

static void *
h2_mem_calloc(size_t n, size_t size, void *arg)
{
	(void)arg;
	return calloc(n, size);
}

static void *
h2_mem_realloc(void *p, size_t size, void *arg)
{
	struct h2_conn *c = arg;

	if (p == NULL)
		return h2_mem_malloc(size, arg);
	if (p == c->fbuf)
		c->fbuf = NULL;	/* moved: no longer ours to trim */
	return realloc(p, size);
}

/*
 * c had no stream for H2_TRIM_MS and nothing to send: nghttp2's frame
 * buffer holds no frame (it is only written while want_write), so its
 * pages go back to the kernel until the next frame.
 */
static void
h2_trim(struct h2_conn *c)
{
	if (c->trimmed || c->fbuf == NULL || nghttp2_session_want_write(c->s))
		return;
	c->trimmed = true;
	(void)madvise(c->fbuf, c->fbuf_cap, MADV_DONTNEED);
}

int
h2_conn_new(struct conn_front *f, int fd, struct bufferevent *tls_bev,
    const char *client, const char *client_ip, const void *pre, size_t npre)
{
	const struct config *cfg = f->cfg;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[4];
	nghttp2_mem mem;
	struct h2_conn *c;
	ssize_t rv;
	int r;

	h2_tick();
	if ((c = calloc(1, sizeof *c)) == NULL)
		return -1;
	c->front = f;
	TAILQ_INIT(&c->streams);
	snprintf(c->client, sizeof c->client, "%s", client);
	snprintf(c->client_ip, sizeof c->client_ip, "%s", client_ip);
	c->tls = tls_bev != NULL;
	if (nghttp2_session_callbacks_new(&cbs) != 0) {
		free(c);
		return -1;
	}
	nghttp2_session_callbacks_set_send_callback(cbs, h2_send_cb);
	nghttp2_session_callbacks_set_on_begin_frame_callback(cbs,
	    h2_begin_frame_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
	    h2_begin_headers_cb);
	nghttp2_session_callbacks_set_on_header_callback(cbs, h2_header_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
	    h2_data_chunk_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
	    h2_frame_recv_cb);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs,
	    h2_frame_send_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
	    h2_stream_close_cb);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs,
	    h2_invalid_frame_cb);
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cbs);
		free(c);
		return -1;
	}
	/* The message rules are h2_msg.c's, each with its own reason. */
	nghttp2_option_set_no_http_messaging(opt, 1);
	/* Ours count and answer first; nghttp2's stay as a backstop. */
	nghttp2_option_set_max_continuations(opt,
	    (size_t)cfg->http2.max_continuations + 1);
	nghttp2_option_set_stream_reset_rate_limit(opt,
	    cfg->http2.max_resets * 2 + 1000, cfg->http2.max_resets + 33);
	/* Closed streams are kept only for RFC 7540 priorities, which RFC
	 * 9113 deprecated and we do not use: a few hundred bytes each. */
	nghttp2_option_set_no_closed_streams(opt, 1);
	mem.mem_user_data = c;
	mem.malloc = h2_mem_malloc;
	mem.free = h2_mem_free;
	mem.calloc = h2_mem_calloc;
	mem.realloc = h2_mem_realloc;
	r = nghttp2_session_server_new3(&c->s, cbs, c, opt, &mem);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (r != 0) {
		free(c);
		return -1;
	}
	if (tls_bev != NULL)
		c->bev = tls_bev;
	else if ((c->bev = bufferevent_socket_new(f->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		nghttp2_session_del(c->s);
		free(c);
		return -1;
	}
	bufferevent_setcb(c->bev, h2_read_cb, h2_write_cb, h2_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, H2_OUT_HIGH / 4, 0);
	bufferevent_enable(c->bev, EV_WRITE);
	evtimer_assign(&c->tev, f->base, h2_timer_cb, c);
	event_assign(&c->dev, f->base, -1, 0, h2_deferred_cb, c);
	/* Plaintext: our reads, the bufferevent writes (h2_sock_read_cb). */
	if (!c->tls)
		event_assign(&c->rev, f->base, bufferevent_getfd(c->bev),
		    EV_READ | EV_PERSIST, h2_sock_read_cb, c);
	TAILQ_INSERT_TAIL(&f->h2conns, c, entry);
	metrics_add(f->metrics, METRICS_H2_CONNS, 1);
	c->last_frame_ms = c->last_write_ms = c->flood_start_ms = h2_now_ms();

	iv[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
	iv[0].value = (uint32_t)cfg->http2.max_concurrent_streams;
	iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
	iv[1].value = (uint32_t)cfg->http2.stream_window;
	/* Advisory (RFC 9113 6.5.2); h2_header_cb enforces it. */
	iv[2].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE;
	iv[2].value = (uint32_t)cfg->limits.max_header_bytes;
	iv[3].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
	iv[3].value = 0;
	(void)nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 4);
	h2_timer_want(c, c->last_frame_ms + (int64_t)cfg->limits.idle_timeout_ms);
	if (npre > 0) {
		rv = nghttp2_session_mem_recv(c->s, pre, npre);
		if (rv < 0) {
			metrics_add(f->metrics, METRICS_H2_DEF_PROTOCOL, 1);
			c->calm = true;
		}
	}
	h2_reading(c, !c->calm);
	h2_flush(c);
	if (c->dead) {
		/* Ours now: the caller must not close it. */
		h2_close(c);
		return 0;
	}
	/* TLS: bytes may already wait, decrypted, in the bufferevent. */
	if (tls_bev != NULL &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		h2_read_cb(c->bev, c);
	return 0;
}

/*
 * A DNS change makes a generation of the same configuration object
 * (server.c's server_dns_changed) and may come every resolve_interval or
 * TTL: a GOAWAY for each would make every browser open a new connection
 * (a TCP and TLS handshake, an empty HPACK table) that often, for upstream
 * addresses its connection never sees.  A reload is the operator's, and
 * rare: the SETTINGS we sent (server.http2_*, max_header_bytes) may have
 * changed, and a certificate rotated under the same path cannot be told
 * apart, so its clients reconnect (nginx's reload does the same: the old
 * workers send GOAWAY).  The limits and caps h2.c reads from the
 * configuration apply to open connections at once either way.
 */
bool
h2_front_gen_goaway(const struct config *old, const struct config *cur)
{
	return old != cur;
}

void
h2_front_goaway(struct conn_front *f)
{
	struct h2_conn *c, *next;

	h2_tick();
	for (c = TAILQ_FIRST(&f->h2conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->goaway || c->dead)
			continue;
		c->goaway = true;
		metrics_add(f->metrics, METRICS_H2_DEF_GOAWAY, 1);
		/* Streams up to the last one begun are finished. */
		nghttp2_submit_goaway(c->s, NGHTTP2_FLAG_NONE,
		    nghttp2_session_get_last_proc_stream_id(c->s),
		    NGHTTP2_NO_ERROR, NULL, 0);
		h2_flush(c);
		if (c->dead)
			h2_close(c);
	}
}

void
h2_front_close_all(struct conn_front *f)
{
	struct h2_stream *st;

	while (!TAILQ_EMPTY(&f->h2conns))
		h2_close(TAILQ_FIRST(&f->h2conns));
	if (h2_wbuf != NULL) {
		evbuffer_free(h2_wbuf);
		h2_wbuf = NULL;
	}
	/* The worker exits: its pool goes too. */
	while (h2_pool_n > 0) {
		st = h2_pool[--h2_pool_n];
		free(st->hbuf);
		free(st->fl);
		free(st);
	}
}

size_t
h2_front_count(const struct conn_front *f)
{
	const struct h2_conn *c;
	size_t n = 0;

	TAILQ_FOREACH(c, &f->h2conns, entry)
		n++;
	return n;
}
