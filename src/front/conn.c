/*
 * conn.c -- client connections: the server half of HTTP/1.1 (RFC 9112),
 * ours, on a raw non-blocking socket (or a bufferevent_openssl).
 *
 * Why not evhttp here (docs/architecture.md, "Performance decisions"):
 * the framing guard already walks every byte strictly, so parsing the
 * same bytes again with evhttp's lenient parser (a malloc per header,
 * sscanf, evbuffer_readln) doubled the work; bufferevent_socket adds an
 * ioctl(FIONREAD) per read and evhttp an epoll_ctl pair per request.
 * Here a request costs one read, one writev and no epoll_ctl: the read
 * event stays armed for the life of the connection, the write event is
 * armed only after a short write.  evhttp still serves the admin
 * listener.
 *
 * Input: bytes are read into ibuf and fed to the guard at once, so a
 * refusal is decided before anything goes upstream.  When the guard has
 * counted a complete head the indexer (framing_index) NUL-terminates it
 * in place; the body (Content-Length bytes, or chunked, decoded) is
 * collected into an evbuffer, then the request goes to the pipeline
 * through the exchange door (exchange.h): pipe->start().
 * One request at a time per connection: pipelined bytes wait in ibuf
 * (reading pauses when ibuf is full).  An EOF is a half-close: what was
 * complete is answered, then the connection closes (conn_read_cb); a
 * reset cancels the upstream exchange.
 *
 * Refusals: requests before the refused one are still answered (as
 * nginx does); the refused one and everything after it are dropped, and
 * the refusal (status, JSON, CORS headers, Connection: close) is written
 * once they are done.
 *
 * Timeouts (one timer): header (a request begun, its head incomplete),
 * body, idle (between requests), busy (a request of ours in flight: the
 * client must keep taking what we write).  The body timeout is a gap
 * between two reads that brought body bytes (nginx's client_body_timeout):
 * reads only note the time, the timer re-arms itself for what is left when
 * it fires, so a read costs no timer update.  With body_min_rate the body
 * must also average that many bytes/s once body_timeout has passed
 * (Apache mod_reqtimeout's MinRate: the allowance grows by one second per
 * body_min_rate bytes received).  Either answers 408 and closes.
 *
 * Memory: no allocation on the request path aborts.  A failed one answers
 * 503 (RFC 9110 15.6.4: a temporary overload; the client may retry, which
 * 500 would not suggest) and closes; the number of fields a head may have
 * is bounded by the guard (431), so their index is bounded too.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conn.h"
#include "conn_int.h"
#include "h2.h"
#include "log.h"
#include "metrics.h"
#include "proxy_protocol.h"
#include "tls.h"
#include "util.h"

#define CONN_IBUF_INITIAL 4096
#define CONN_IBUF_SLACK 16384		/* over max_header_bytes */
#define CONN_IBUF_CACHE 1024		/* idle buffers a worker keeps */
#define CONN_REQ_CACHE 1024		/* idle request states a worker keeps */
/*
 * A keep-alive connection keeps its request state this long after an
 * answer (or half the idle timeout when that is shorter) before giving it
 * back: a busy connection's next request comes well within it and finds
 * its state ready (no free-list round trip, no framing_init, no event
 * reassignment: about 1,000 instructions per request, make bench-ir),
 * while a connection left idle holds only its socket after a second.
 */
#define CONN_DETACH_MS 1000
/*
 * At most this many of a worker's connections keep their state between
 * requests; the others give it back at once.  A burst of connections that
 * each make one request and go idle then holds 64 states for a second,
 * not one per connection (nor, afterwards, as many on the free list).
 */
#define CONN_LINGER_MAX 64
#define CONN_SLAB_SIZE 65536		/* connection structs: slabs (mmap) */
#define CONN_FIELDS_INITIAL 64		/* the worker's first field index */
/* body() says stop when this much waits for the client. */
#define CONN_OUT_HIGH_WATER (256 * 1024)

/* What the client's Connection header(s) asked for. */
#define CONN_F_CLOSE		0x1
#define CONN_F_KEEPALIVE	0x2
#define CONN_F_UPGRADE		0x4

enum conn_state {
	CONN_ST_HEAD = 0,		/* waiting for a complete head */
	CONN_ST_BODY,			/* head indexed, collecting the body */
	CONN_ST_BUSY,			/* handed to the pipeline */
};

/*
 * What a connection holds while a request is read, served or refused
 * (conn.h: struct conn_req is what stays between requests).  Taken
 * from the worker's free list (conn_req_get) when bytes arrive on an
 * idle connection, given back (conn_detach) once its answer has left;
 * its buffers (output, body, kept field index) stay allocated with it
 * for the next connection, so a keep-alive request allocates nothing.
 */
struct conn_req {
	struct conn_front *front;	/* the worker's front-end */
	struct server_conn *sk;		/* the connection it serves */
	struct conn_req *next_free;	/* front->req_free */
	int fd;
	struct bufferevent *bev;	/* TLS only */
	struct evbuffer *out;		/* plain: own_out; TLS: the bev's */
	struct evbuffer *own_out;	/* kept with the struct */
	struct event wev;		/* plain: armed on a short write */
	struct event tev;		/* the one timeout */
	struct event dev;		/* deferred work (next loop turn) */
	struct framing_state framing;
	enum conn_state st;
	struct exchange x;		/* the request being read or served */
	bool active;			/* x is with the pipeline */

	/* Input: ibuf[ioff, ilen) is unprocessed; ibuf[0, ioff) done. */
	char *ibuf;
	size_t ioff, ilen, icap;
	uint64_t base_off;		/* stream offset of ibuf[ioff] */
	uint64_t heads_taken;		/* heads indexed so far */
	uint64_t reject_at;		/* stream offset of the refused request */

	/* The request being read (x's request, valid in CONN_ST_BODY). */
	size_t head_start, head_end;	/* of its head in ibuf */
	uint64_t body_left;		/* Content-Length bytes to come */
	uint64_t body_off;		/* stream offset of its first body byte */
	int64_t body_start_ms;		/* the body timer started (monotonic) */
	int64_t body_last_ms;		/* body bytes last arrived */
	bool body_timed;		/* body_start_ms set for this body */
	bool chunked;
	bool expect_continue;
	struct framing_dechunk dechunk;
	struct evbuffer *body;
	struct http_field *fields;	/* the head's index while its body
					 * comes (else conn_front's) */
	size_t fields_cap;

	bool tls;
	bool wpending;			/* plain: wev armed */
	bool eof;			/* the client finished sending */
	bool broken;			/* a write failed: close */
	bool rejected;			/* the guard refused the stream */
	bool refusing;			/* our refusal is being written */
	bool reply_done;		/* reply complete, output not yet */
	bool want_drain;		/* tell the pipeline when drained */
	bool complete_due;		/* run pipe->complete() (deferred) */
	bool is_head;			/* the active request is HEAD */
	bool chunking;			/* we chunk the reply's body */
	unsigned conn_flags;		/* CONN_F_* of the request */
	bool pending_close;		/* close once the active request ends */
	bool closing;			/* closed after the output drains */
	bool switched;			/* protocols switched: the socket is
					 * the pipeline's (exchange.h) */
	struct evbuffer *early;		/* bytes refused right behind a head
					 * (a WebSocket client's first frame) */
	bool h2_sniff;			/* h2c: the preface may come first */
	size_t h2_held;			/* ibuf[0, h2_held): a preface
					 * prefix, not fed to the guard */
	bool in_process;
	bool close_deferred;
	unsigned phase_timeout;		/* which timeout is armed */
	uint64_t wprogress;		/* bumped on every write */
	uint64_t wprogress_armed;
	bool pp_wait;			/* the PROXY header is still due */
	SSL_CTX *tls_pending;		/* TLS after the PROXY header: the
					 * handshake waits for it */
	uint64_t body_charged;		/* of conn_body_bytes, this body's */
};

enum conn_timeout {
	CONN_TO_NONE = 0,
	CONN_TO_IDLE,
	CONN_TO_HEADER,
	CONN_TO_BODY,
	CONN_TO_BUSY,
	CONN_TO_DETACH,		/* idle, attached: give the state back */
};

static void conn_read_cb(evutil_socket_t, short, void *);
static void conn_write_cb(evutil_socket_t, short, void *);
static void conn_timer_cb(evutil_socket_t, short, void *);
static void conn_deferred_cb(evutil_socket_t, short, void *);
static void conn_sk_read_cb(evutil_socket_t, short, void *);
static void conn_idle_timer_cb(evutil_socket_t, short, void *);
static void conn_tls_read_cb(struct bufferevent *, void *);
static void conn_tls_write_cb(struct bufferevent *, void *);
static void conn_tls_event_cb(struct bufferevent *, short, void *);
static void conn_tls_proxy_read(struct conn_req *);
static void conn_process(struct conn_req *);
static void conn_output_drained(struct conn_req *);
static void conn_reading(struct conn_req *, bool);
static void conn_answer(struct conn_req *, int, const char *, bool);
static void conn_x_head(struct exchange *, const struct exchange_head *);
static bool conn_x_body(struct exchange *, struct evbuffer *);
static void conn_x_end(struct exchange *);
static void conn_x_abort(struct exchange *);
static struct bufferevent *conn_x_upgrade(struct exchange *,
    const struct exchange_head *);

/* What the pipeline calls to answer (exchange.h). */
static const struct exchange_front conn_front_ops = {
	conn_x_head,
	conn_x_body,
	conn_x_end,
	conn_x_abort,
	conn_x_upgrade,
};

static conn_alloc_fn *conn_alloc_hook;

/* Charge n more bytes of c's body: false when they pass the budget. */
static bool
conn_body_charge(struct conn_req *c, size_t n)
{
	uint64_t max = c->front->cfg->limits.max_buffered_body_bytes;

	/*
	 * The bytes every worker's connections have collected and not yet
	 * handed to the pipeline: one atomic word (metrics.c's, rendered as
	 * tracestitch_buffered_body_bytes), untouched while the budget is 0.
	 */
	if (max == 0 || n == 0)
		return true;
	if (metrics_body_bytes_add((int64_t)n) > max) {
		(void)metrics_body_bytes_add(-(int64_t)n);
		return false;
	}
	c->body_charged += n;
	return true;
}

/* c's body left the connection (handed over, refused or dropped). */
static void
conn_body_release(struct conn_req *c)
{
	if (c->body_charged > 0) {
		(void)metrics_body_bytes_add(-(int64_t)c->body_charged);
		c->body_charged = 0;
	}
}

void
conn_set_alloc(conn_alloc_fn *fn)
{
	conn_alloc_hook = fn;
}

/* An allocation of the request path: NULL is answered, never fatal. */
static void *
conn_alloc(const char *what, size_t size)
{
	if (conn_alloc_hook != NULL)
		return conn_alloc_hook(what, size);
	return malloc(size);
}

/* Monotonic milliseconds (body timing). */
static int64_t
conn_now_ms(void)
{
	return (int64_t)(util_mono_ns() / 1000000);
}

/*
 * Input buffers: a connection holds one only while it has bytes of a
 * request or a request in flight; idle keep-alive connections give theirs
 * back to a per-worker stack (nginx frees its header buffers the same
 * way), so an idle connection costs its struct and the socket only.
 */
static bool
conn_ibuf_get(struct conn_req *c)
{
	struct conn_front *f = c->front;

	if (f->ibuf_free != NULL) {
		c->ibuf = f->ibuf_free;
		memcpy(&f->ibuf_free, c->ibuf, sizeof f->ibuf_free);
		f->ibuf_free_n--;
	} else if ((c->ibuf = conn_alloc("ibuf", CONN_IBUF_INITIAL)) == NULL)
		return false;
	c->icap = CONN_IBUF_INITIAL;
	c->ioff = c->ilen = 0;
	return true;
}

static void
conn_ibuf_put(struct conn_req *c)
{
	struct conn_front *f = c->front;

	if (c->ibuf == NULL)
		return;
	if (c->icap == CONN_IBUF_INITIAL && f->ibuf_free_n < CONN_IBUF_CACHE) {
		memcpy(c->ibuf, &f->ibuf_free, sizeof f->ibuf_free);
		f->ibuf_free = c->ibuf;
		f->ibuf_free_n++;
	} else
		free(c->ibuf);
	c->ibuf = NULL;
	c->icap = c->ioff = c->ilen = 0;
}

void
conn_front_init(struct conn_front *f, struct event_base *base,
    struct metrics *metrics, const struct exchange_pipeline *pipe, void *arg,
    const struct conn_events *events, void *owner)
{
	memset(f, 0, sizeof *f);
	f->base = base;
	f->metrics = metrics;
	f->pipe = pipe;
	f->pipe_arg = arg;
	f->events = events;
	f->owner = owner;
	TAILQ_INIT(&f->conns);
	TAILQ_INIT(&f->h2conns);
	TAILQ_INIT(&f->idle);
	LIST_INIT(&f->slabs);
	evtimer_assign(&f->idle_ev, base, conn_idle_timer_cb, f);
}

void
conn_front_set_gen(struct conn_front *f, const struct config *cfg,
    uint64_t busy_timeout_ms)
{
	f->cfg = cfg;
	f->busy_timeout_ms = busy_timeout_ms;
}

/* The active exchange of c ended, for the worker's count (drain). */
static void
conn_exchange_ended(struct conn_req *c)
{
	struct conn_front *f = c->front;

	c->active = false;
	f->inflight--;
	f->events->request_done(f->owner);
}

static void
conn_req_free(struct conn_req *c)
{
	evbuffer_free(c->own_out);
	if (c->body != NULL)
		evbuffer_free(c->body);
	free(c->fields);
	free(c);
}

void
conn_front_free(struct conn_front *f)
{
	struct conn_req *r;
	void *next;

	event_del(&f->idle_ev);
	free(f->fields);
	f->fields = NULL;
	f->fields_cap = 0;
	while (f->ibuf_free != NULL) {
		memcpy(&next, f->ibuf_free, sizeof next);
		free(f->ibuf_free);
		f->ibuf_free = next;
	}
	f->ibuf_free_n = 0;
	while ((r = f->req_free) != NULL) {
		f->req_free = r->next_free;
		conn_req_free(r);
	}
	f->req_free_n = 0;
	if (f->slab_spare != NULL)
		munmap(f->slab_spare, CONN_SLAB_SIZE);
	f->slab_spare = NULL;
}

/* Run the deferred step of c on the next loop turn. */
static void
conn_defer(struct conn_req *c)
{
	if (!event_pending(&c->dev, EV_TIMEOUT, NULL))
		event_active(&c->dev, EV_TIMEOUT, 0);
}

/* Close c from a context where the caller may still hold it. */
static void
conn_close_later(struct conn_req *c)
{
	c->close_deferred = true;
	conn_defer(c);
}

/* Close c once what it has to write has left. */
static void
conn_finish(struct conn_req *c)
{
	c->closing = true;
	conn_reading(c, false);
	if (c->broken || evbuffer_get_length(c->out) == 0)
		conn_close_later(c);
}

/* Arm the timeout that matches what we wait for. */
/*
 * Set the armed timeout's name, counting the connections that keep their
 * request state between requests (CONN_TO_DETACH) against
 * CONN_LINGER_MAX.
 */
static void
conn_phase(struct conn_req *c, unsigned ph)
{
	if (c->phase_timeout == CONN_TO_DETACH && ph != CONN_TO_DETACH)
		c->front->n_lingering--;
	else if (c->phase_timeout != CONN_TO_DETACH && ph == CONN_TO_DETACH)
		c->front->n_lingering++;
	c->phase_timeout = ph;
}

/* How long an idle connection keeps its request state (CONN_DETACH_MS). */
static uint64_t
conn_detach_ms(const struct config_limits *l)
{
	return l->idle_timeout_ms / 2 < CONN_DETACH_MS ?
	    l->idle_timeout_ms / 2 : CONN_DETACH_MS;
}

static void
conn_set_timeout(struct conn_req *c, enum conn_timeout ph)
{
	const struct conn_front *f = c->front;
	const struct config_limits *l = &f->cfg->limits;
	struct timeval tv;
	uint64_t ms;

	if (c->phase_timeout == ph)
		return;
	conn_phase(c, ph);
	ms = ph == CONN_TO_HEADER ? l->header_timeout_ms :
	    ph == CONN_TO_BODY ? l->body_timeout_ms :
	    ph == CONN_TO_BUSY ? f->busy_timeout_ms :
	    ph == CONN_TO_DETACH ? conn_detach_ms(l) : l->idle_timeout_ms;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	c->wprogress_armed = c->wprogress;
	evtimer_add(&c->tev, &tv);
}

/* Start or stop reading the client. */
static void
conn_reading(struct conn_req *c, bool on)
{
	if (c->sk->reading == on)
		return;
	c->sk->reading = on;
	if (c->tls && c->tls_pending == NULL) {
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
	} else if (on)
		event_add(&c->sk->rev, NULL);
	else
		event_del(&c->sk->rev);
}

/*
 * The connections' structs come from 64 KiB slabs of the worker's own
 * (mmap, aligned on their size), not from malloc: in the heap each one
 * sat between libevent's per-descriptor map entries, which are never
 * freed, so after a flood of idle connections closed no page of theirs
 * could go back (docs/reliability.md, idle flood).  An empty slab is
 * unmapped (one is kept for the next connections).
 */
#define CONN_SLOT ((sizeof(struct server_conn) + 63) & ~(size_t)63)

struct conn_slab {
	LIST_ENTRY(conn_slab) link;	/* front->slabs while not full */
	void *free;			/* free slots, linked through them */
	unsigned used;
};

#define CONN_SLAB_FIRST ((sizeof(struct conn_slab) + 63) & ~(size_t)63)

static struct conn_slab *
conn_slab_new(void)
{
	char *p, *a;
	size_t lead;
	struct conn_slab *s;
	void **tail;
	size_t off;

	p = mmap(NULL, 2 * CONN_SLAB_SIZE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + CONN_SLAB_SIZE - 1) &
	    ~(uintptr_t)(CONN_SLAB_SIZE - 1));
	lead = (size_t)(a - p);
	if (lead > 0)
		munmap(p, lead);
	munmap(a + CONN_SLAB_SIZE, CONN_SLAB_SIZE - lead);
	s = (struct conn_slab *)(void *)a;
	s->used = 0;
	/* Slots linked in address order: the first ones are used first. */
	tail = &s->free;
	for (off = CONN_SLAB_FIRST; off + CONN_SLOT <= CONN_SLAB_SIZE;
	    off += CONN_SLOT) {
		*tail = a + off;
		tail = (void **)(void *)(a + off);
	}
	*tail = NULL;
	return s;
}

static struct server_conn *
conn_sk_alloc(struct conn_front *f)
{
	struct conn_slab *s = LIST_FIRST(&f->slabs);
	void *p;

	if (s == NULL) {
		if ((s = f->slab_spare) != NULL)
			f->slab_spare = NULL;
		else if ((s = conn_slab_new()) == NULL)
			return NULL;
		LIST_INSERT_HEAD(&f->slabs, s, link);
	}
	p = s->free;
	memcpy(&s->free, p, sizeof s->free);
	s->used++;
	if (s->free == NULL)
		LIST_REMOVE(s, link);	/* full */
	memset(p, 0, sizeof(struct server_conn));
	return p;
}

static void
conn_sk_release(struct conn_front *f, struct server_conn *sk)
{
	struct conn_slab *s = (struct conn_slab *)(void *)((uintptr_t)sk &
	    ~(uintptr_t)(CONN_SLAB_SIZE - 1));
	bool was_full = s->free == NULL;

	memcpy(sk, &s->free, sizeof s->free);
	s->free = sk;
	s->used--;
	if (was_full)
		LIST_INSERT_HEAD(&f->slabs, s, link);
	if (s->used > 0)
		return;
	LIST_REMOVE(s, link);
	if (f->slab_spare == NULL)
		f->slab_spare = s;
	else
		munmap(s, CONN_SLAB_SIZE);
}

/* Give c's socket to nobody: the request state goes back (or is freed). */
static void
conn_req_put(struct conn_req *c)
{
	struct conn_front *f = c->front;

	conn_phase(c, CONN_TO_NONE);
	event_del(&c->tev);
	event_del(&c->dev);
	if (!c->tls)
		event_del(&c->wev);
	conn_ibuf_put(c);
	conn_body_release(c);
	if (c->early != NULL) {
		evbuffer_free(c->early);
		c->early = NULL;
	}
	if (c->sk != NULL)
		c->sk->r = NULL;
	c->sk = NULL;
	c->bev = NULL;
	evbuffer_drain(c->own_out, evbuffer_get_length(c->own_out));
	if (c->body != NULL)
		evbuffer_drain(c->body, evbuffer_get_length(c->body));
	if (f->req_free_n >= CONN_REQ_CACHE) {
		conn_req_free(c);
		return;
	}
	c->next_free = f->req_free;
	f->req_free = c;
	f->req_free_n++;
}

/*
 * A request state for sk, from the worker's free list (its buffers kept)
 * or new; NULL when out of memory.  Fresh for each request: the guard
 * starts a new stream (its offsets count from here).
 */
static struct conn_req *
conn_req_get(struct server_conn *sk)
{
	struct conn_front *f = sk->front;
	const struct config *cfg = f->cfg;
	struct framing_limits fl;
	struct conn_req *c;
	struct evbuffer *own_out, *body = NULL;
	struct http_field *fields = NULL;
	size_t fields_cap = 0;

	if ((c = f->req_free) != NULL) {
		f->req_free = c->next_free;
		f->req_free_n--;
		own_out = c->own_out;
		body = c->body;
		fields = c->fields;
		fields_cap = c->fields_cap;
	} else {
		if ((c = malloc(sizeof *c)) == NULL)
			return NULL;
		if ((own_out = evbuffer_new()) == NULL) {
			free(c);
			return NULL;
		}
	}
	memset(c, 0, sizeof *c);
	c->own_out = own_out;
	c->body = body;
	c->fields = fields;
	c->fields_cap = fields_cap;
	c->front = f;
	c->sk = sk;
	c->fd = sk->fd;
	c->tls = sk->tls;
	c->out = own_out;
	c->x.client = sk->client;
	c->x.client_ip = sk->client_ip;
	c->x.tls = sk->tls;
	c->x.protocol = EXCHANGE_P_HTTP11;
	c->x.front = &conn_front_ops;
	c->x.front_ctx = c;
	/* Only a connection's first bytes may be the h2c preface. */
	c->h2_sniff = sk->h2_sniff;
	sk->h2_sniff = false;
	fl.max_header_bytes = cfg->limits.max_header_bytes;
	fl.max_body_bytes = cfg->limits.max_body_bytes;
	fl.max_fields = (size_t)cfg->limits.max_header_fields;
	framing_init(&c->framing, &fl);
	evtimer_assign(&c->tev, f->base, conn_timer_cb, c);
	event_assign(&c->dev, f->base, -1, 0, conn_deferred_cb, c);
	if (!sk->tls)
		event_assign(&c->wev, f->base, sk->fd, EV_WRITE | EV_PERSIST,
		    conn_write_cb, c);
	sk->r = c;
	return c;
}

/* Arm the worker's idle timer for the oldest detached connection. */
static void
conn_idle_arm(struct conn_front *f, int64_t now)
{
	struct server_conn *sk = TAILQ_FIRST(&f->idle);
	struct timeval tv;
	int64_t ms;

	if (sk == NULL)
		return;
	ms = sk->idle_since_ms + (int64_t)f->cfg->limits.idle_timeout_ms - now;
	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(&f->idle_ev, &tv);
}

/* sk starts waiting between requests (detached, reading). */
static void
conn_idle_enter(struct server_conn *sk, int64_t since_ms)
{
	struct conn_front *f = sk->front;
	struct server_conn *last = TAILQ_LAST(&f->idle, server_conn_list);

	/* The list stays in idle_since order: the timer reads its head. */
	if (last != NULL && last->idle_since_ms > since_ms)
		since_ms = last->idle_since_ms;
	sk->idle_since_ms = since_ms;
	TAILQ_INSERT_TAIL(&f->idle, sk, idle_entry);
	/* A pending timer fires for an older one: this one is later. */
	if (!evtimer_pending(&f->idle_ev, NULL))
		conn_idle_arm(f, sk->idle_since_ms);
}

/* The idle timeout (server.limits.idle_timeout) of detached ones. */
static void
conn_idle_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn_front *f = arg;
	struct server_conn *sk;
	int64_t now = conn_now_ms();
	int64_t to = (int64_t)f->cfg->limits.idle_timeout_ms;

	(void)fd;
	(void)what;
	while ((sk = TAILQ_FIRST(&f->idle)) != NULL &&
	    sk->idle_since_ms + to <= now) {
		log_debug("client %s: idle timeout", sk->client);
		metrics_add(f->metrics, METRICS_REQ_TIMEOUT, 1);
		conn_close(sk);
	}
	conn_idle_arm(f, now);
}

/* Free sk (its request state already given back). */
static void
conn_sk_free(struct server_conn *sk)
{
	struct conn_front *f = sk->front;

	if (sk->rev_set)
		event_del(&sk->rev);
	if (sk->fd != -1)
		close(sk->fd);
	TAILQ_REMOVE(&f->conns, sk, entry);
	conn_sk_release(f, sk);
	f->events->closed(f->owner);
}

/*
 * Between requests with nothing of the next one read: give the request
 * state back, keep the socket and its read event (still armed: no
 * epoll_ctl).  False when c keeps it: TLS, a PROXY header or an h2c
 * preface still due, output still to write, anything else in progress.
 */
static bool
conn_detachable(const struct conn_req *c)
{
	return !(c->tls || c->active || c->in_process || c->st != CONN_ST_HEAD ||
	    c->ilen != c->ioff || !framing_idle(&c->framing) || c->eof ||
	    c->broken || c->closing || c->refusing || c->rejected ||
	    c->switched || c->pp_wait || c->h2_sniff || c->h2_held != 0 ||
	    c->wpending || c->close_deferred || c->complete_due ||
	    evbuffer_get_length(c->out) != 0);
}

/* Give the request state back now; the idle time counts from since_ms. */
static bool
conn_detach(struct conn_req *c, int64_t since_ms)
{
	struct server_conn *sk = c->sk;

	if (!conn_detachable(c))
		return false;
	conn_reading(c, true);
	conn_req_put(c);
	conn_idle_enter(sk, since_ms);
	return true;
}

/*
 * Between requests: keep the state CONN_DETACH_MS for the next request
 * (the timer gives it back) when it could be given back, else wait with
 * the idle timeout.  True when the state was given back at once (c is
 * gone: CONN_LINGER_MAX others keep theirs).
 */
static bool
conn_between_requests(struct conn_req *c)
{
	if (!conn_detachable(c))
		conn_set_timeout(c, CONN_TO_IDLE);
	else if (c->phase_timeout == CONN_TO_DETACH ||
	    c->front->n_lingering < CONN_LINGER_MAX)
		conn_set_timeout(c, CONN_TO_DETACH);
	else
		return conn_detach(c, conn_now_ms());	/* c is gone */
	return false;
}

struct server_conn *
conn_new(struct conn_front *f, int fd, const struct sockaddr *sa,
    socklen_t slen, SSL_CTX *ctx, bool proxy_protocol)
{
	const struct config *cfg = f->cfg;
	struct server_conn *sk;
	struct conn_req *c;
	char ip[INET6_ADDRSTRLEN];
	unsigned port = 0;
	bool pp;
	int one = 1;

	if ((sk = conn_sk_alloc(f)) == NULL)
		return NULL;
	sk->front = f;
	sk->fd = fd;
	sk->tls = ctx != NULL;
	ip[0] = '\0';
	if (sa->sa_family == AF_INET6 && slen >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
		port = ntohs(s6->sin6_port);
	} else if (sa->sa_family == AF_INET &&
	    slen >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
		port = ntohs(s4->sin_port);
	}
	snprintf(sk->client_ip, sizeof sk->client_ip, "%s",
	    ip[0] != '\0' ? ip : "-");
	snprintf(sk->client, sizeof sk->client,
	    strchr(sk->client_ip, ':') != NULL ? "[%s]:%u" : "%s:%u",
	    sk->client_ip, port);
	/* HTTP/2: ALPN decides on TLS, the preface on plaintext (h2.h). */
	sk->h2_sniff = ctx != NULL || cfg->http2.cleartext;
	/* nginx's tcp_nodelay: a response head and body never wait. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/*
	 * The listener's PROXY protocol: on TLS the header comes before the
	 * handshake (HAProxy's send-proxy, AWS NLB), read from the socket
	 * here; the TLS bufferevent is made once it has been taken.
	 */
	pp = proxy_protocol;
	if (ctx == NULL || pp) {
		event_assign(&sk->rev, f->base, fd, EV_READ | EV_PERSIST,
		    conn_sk_read_cb, sk);
		sk->rev_set = true;
	}
	TAILQ_INSERT_TAIL(&f->conns, sk, entry);
	if (ctx == NULL && !pp) {
		/* Idle until its first bytes: no request state yet. */
		sk->reading = true;
		event_add(&sk->rev, NULL);
		conn_idle_enter(sk, conn_now_ms());
		return sk;
	}
	if ((c = conn_req_get(sk)) == NULL) {
		TAILQ_REMOVE(&f->conns, sk, entry);
		conn_sk_release(f, sk);
		return NULL;
	}
	if (ctx != NULL && pp)
		c->tls_pending = ctx;
	else if (ctx != NULL) {
		if ((c->bev = tls_server_bev(f->base, ctx, fd)) == NULL) {
			conn_req_put(c);
			TAILQ_REMOVE(&f->conns, sk, entry);
			conn_sk_release(f, sk);
			return NULL;
		}
		c->out = bufferevent_get_output(c->bev);
		bufferevent_setcb(c->bev, conn_tls_read_cb, conn_tls_write_cb,
		    conn_tls_event_cb, c);
		bufferevent_enable(c->bev, EV_WRITE);
	}
	conn_reading(c, true);
	c->pp_wait = pp;
	conn_set_timeout(c, c->pp_wait ? CONN_TO_HEADER : CONN_TO_IDLE);
	return sk;
}

/* Close c's connection now (the exchange in flight ends with it). */
static void
conn_req_close(struct conn_req *c)
{
	struct conn_front *f = c->front;
	struct server_conn *sk = c->sk;

	if (c->active) {
		/* The exchange ends here; the pipeline calls nothing back. */
		if (c->complete_due && !c->broken)
			f->pipe->complete(&c->x);	/* it had left */
		else
			f->pipe->gone(&c->x);
		conn_exchange_ended(c);
	}
	if (c->tls && c->tls_pending == NULL) {
		if (c->bev != NULL)	/* NULL: switched (the pipeline's) */
			bufferevent_free(c->bev);	/* closes fd */
		sk->fd = -1;
	} else if (c->switched)
		sk->fd = -1;		/* the pipeline's bufferevent's */
	conn_req_put(c);
	conn_sk_free(sk);
}

void
conn_close(struct server_conn *sk)
{
	if (sk->r != NULL) {
		conn_req_close(sk->r);
		return;
	}
	TAILQ_REMOVE(&sk->front->idle, sk, idle_entry);
	conn_sk_free(sk);
}

bool
conn_idle(const struct server_conn *sk)
{
	const struct conn_req *c = sk->r;

	return c == NULL || (!c->active && c->st == CONN_ST_HEAD &&
	    c->ilen == c->ioff && framing_idle(&c->framing));
}

/* Write what is queued (plain): 0, or -1 once the client is gone. */
static int
conn_write_now(struct conn_req *c)
{
	int n;

	while (evbuffer_get_length(c->out) > 0) {
		n = evbuffer_write(c->out, c->fd);
		if (n > 0) {
			c->wprogress++;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR)) {
			if (errno == EINTR)
				continue;
			break;
		}
		return -1;
	}
	return 0;
}

/* Write what is queued now (plain sockets); the rest when writable. */
static void
conn_flush(struct conn_req *c)
{
	if (c->tls || c->broken || c->wpending)
		return;		/* TLS: the bufferevent writes by itself */
	if (conn_write_now(c) != 0) {
		c->broken = true;
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
		conn_close_later(c);
		return;
	}
	if (evbuffer_get_length(c->out) > 0) {
		c->wpending = true;
		event_add(&c->wev, NULL);
	}
}

/* CONN_F_* bits of one Connection value ("close", "keep-alive"). */
static unsigned
conn_connection_flags(const char *p)
{
	unsigned f = 0;
	size_t len;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return f;
		len = strcspn(p, " \t,");
		if (UTIL_NAME_IS(p, len, "close"))
			f |= CONN_F_CLOSE;
		else if (UTIL_NAME_IS(p, len, "keep-alive"))
			f |= CONN_F_KEEPALIVE;
		else if (UTIL_NAME_IS(p, len, "upgrade"))
			f |= CONN_F_UPGRADE;
		p += len;
	}
}

/*
 * A small write-combining buffer in front of the output: a head goes
 * into the evbuffer in one piece (one evbuffer_add, no printf per field).
 */
struct conn_hbuf {
	struct evbuffer *out;
	size_t len;
	char buf[8192];
};

static void
conn_hbuf_flush(struct conn_hbuf *hb)
{
	if (hb->len > 0) {
		evbuffer_add(hb->out, hb->buf, hb->len);
		hb->len = 0;
	}
}

static void
conn_hbuf_add(struct conn_hbuf *hb, const char *s, size_t len)
{
	if (hb->len + len > sizeof hb->buf) {
		conn_hbuf_flush(hb);
		if (len > sizeof hb->buf) {
			evbuffer_add(hb->out, s, len);
			return;
		}
	}
	memcpy(hb->buf + hb->len, s, len);
	hb->len += len;
}

/*
 * Whether the connection ends with this reply: the pipeline asks for it,
 * HTTP/1.0 without keep-alive (or a body we cannot frame for it),
 * Connection: close, a drain, a decision taken earlier, or the client
 * half-closed and this is its last complete request.
 */
static bool
conn_reply_closes(struct conn_req *c, const struct exchange_head *h,
    bool framed)
{
	return h->close || c->front->draining || c->pending_close ||
	    (c->eof && c->framing.requests <= c->heads_taken) ||
	    (c->conn_flags & CONN_F_CLOSE) != 0 || (c->x.minor == 0 &&
	    ((c->conn_flags & CONN_F_KEEPALIVE) == 0 || !framed));
}

/*
 * front->head(): the HTTP/1.1 serialisation of a response head (RFC 9112
 * 4, 6): status line, the pipeline's fields in order, our framing
 * (chunked when the length is not known and the client is 1.1) and
 * connection management, then a small complete body if one came.
 */
static void
conn_x_head(struct exchange *x, const struct exchange_head *h)
{
	struct conn_req *c = x->front_ctx;
	struct conn_hbuf hbs, *hb = &hbs;
	char line[16] = "HTTP/1.1 000 ";
	const char *reason;
	int status = h->status;
	size_t i;

	hb->out = c->out;
	hb->len = 0;
	/* Statuses are three digits (RFC 9110 15; upstream.c checks). */
	if (status < 100 || status > 999)
		status = 502;
	line[9] = (char)('0' + status / 100);
	line[10] = (char)('0' + status / 10 % 10);
	line[11] = (char)('0' + status % 10);
	conn_hbuf_add(hb, line, 13);
	reason = h->reason != NULL && *h->reason != '\0' ? h->reason :
	    exchange_reason(status);
	conn_hbuf_add(hb, reason, strlen(reason));
	conn_hbuf_add(hb, "\r\n", 2);
	for (i = 0; i < h->n_fields; i++) {
		const struct exchange_field *f = &h->fields[i];

		conn_hbuf_add(hb, f->name, f->name_len);
		conn_hbuf_add(hb, ": ", 2);
		conn_hbuf_add(hb, f->value, f->value_len);
		conn_hbuf_add(hb, "\r\n", 2);
	}
	/* Re-frame a body of unknown length for the client. */
	c->chunking = !h->framed && !h->no_body && c->x.minor >= 1;
	if (c->chunking)
		conn_hbuf_add(hb, "Transfer-Encoding: chunked\r\n", 28);
	if (conn_reply_closes(c, h, h->framed || h->no_body ||
	    c->chunking)) {
		c->pending_close = true;
		conn_hbuf_add(hb, "Connection: close\r\n", 19);
	} else if (c->x.minor == 0)
		conn_hbuf_add(hb, "Connection: keep-alive\r\n", 24);
	conn_hbuf_add(hb, "\r\n", 2);
	if (h->body_len > 0 && !c->is_head)
		conn_hbuf_add(hb, h->body, h->body_len);
	conn_hbuf_flush(hb);
}

/* front->body(): move buf out; true (stop) above the high-water mark. */
static bool
conn_x_body(struct exchange *x, struct evbuffer *buf)
{
	struct conn_req *c = x->front_ctx;
	size_t len = evbuffer_get_length(buf);
	char line[24];
	int n;

	if (len == 0 || c->is_head || c->broken) {
		evbuffer_drain(buf, len);
		return false;
	}
	if (c->chunking) {
		/* RFC 9112 7.1: chunk-size CRLF chunk-data CRLF. */
		n = snprintf(line, sizeof line, "%zx\r\n", len);
		evbuffer_prepend(buf, line, (size_t)n);
		evbuffer_add(buf, "\r\n", 2);
	}
	/* Moved, not copied; written now when the socket takes it. */
	evbuffer_add_buffer(c->out, buf);
	conn_flush(c);
	if (evbuffer_get_length(c->out) > CONN_OUT_HIGH_WATER) {
		c->want_drain = true;	/* pipe->drained() once empty */
		return true;
	}
	return false;
}

/*
 * front->end(): the reply is complete.  Once it has left, the pipeline
 * hears complete() -- from the write callback, or from the deferred step
 * when it left at once: never from inside this call (exchange.h).
 */
static void
conn_x_end(struct exchange *x)
{
	struct conn_req *c = x->front_ctx;

	if (c->switched) {
		/* The tunnel is over (the pipeline freed the stream). */
		c->complete_due = true;
		conn_close_later(c);
		return;
	}
	if (c->chunking) {
		evbuffer_add(c->out, "0\r\n\r\n", 5);
		c->chunking = false;
	}
	if (!c->active) {
		conn_flush(c);		/* a refusal: conn_answer() goes on */
		return;
	}
	c->reply_done = true;
	conn_flush(c);
	if (c->broken)
		return;		/* conn_close() ends the request */
	if (evbuffer_get_length(c->out) == 0) {
		c->complete_due = true;
		conn_defer(c);
	}
}

/* front->abort(): cut the client; the exchange is over for both sides. */
static void
conn_x_abort(struct exchange *x)
{
	struct conn_req *c = x->front_ctx;

	if (c->active)
		conn_exchange_ended(c);
	/* Nothing more is written: the client sees the cut. */
	c->broken = true;
	conn_close_later(c);
}

/*
 * front->upgrade(): the 101 head, then the connection is the pipeline's
 * as a bufferevent (exchange.h).  conn.c keeps the struct (the exchange
 * stays counted for the drain and max_connections) but no longer reads,
 * writes nor times the socket: conn_close() then frees only the struct.
 */
static struct bufferevent *
conn_x_upgrade(struct exchange *x, const struct exchange_head *h)
{
	struct conn_req *c = x->front_ctx;
	struct conn_front *f = c->front;
	struct conn_hbuf hbs, *hb = &hbs;
	struct bufferevent *bev;
	struct evbuffer *early;
	const char *reason;
	size_t i, rest;
	int rc;

	if (!c->active || !c->x.upgrade || c->broken || c->switched)
		return NULL;
	hb->out = c->out;
	hb->len = 0;
	reason = h->reason != NULL && *h->reason != '\0' ? h->reason :
	    exchange_reason(101);
	conn_hbuf_add(hb, "HTTP/1.1 101 ", 13);
	conn_hbuf_add(hb, reason, strlen(reason));
	conn_hbuf_add(hb, "\r\n", 2);
	for (i = 0; i < h->n_fields; i++) {
		conn_hbuf_add(hb, h->fields[i].name, h->fields[i].name_len);
		conn_hbuf_add(hb, ": ", 2);
		conn_hbuf_add(hb, h->fields[i].value, h->fields[i].value_len);
		conn_hbuf_add(hb, "\r\n", 2);
	}
	conn_hbuf_add(hb, "\r\n", 2);
	conn_hbuf_flush(hb);
	rest = c->ilen - c->ioff;
	/* The guard took bytes right behind the handshake for a request. */
	early = c->rejected && c->reject_at == c->base_off ? c->early : NULL;
	conn_reading(c, false);
	if (c->tls) {
		bev = c->bev;
		if (rest > 0 && evbuffer_prepend(bufferevent_get_input(bev),
		    c->ibuf + c->ioff, rest) != 0)
			return NULL;
		if (early != NULL && evbuffer_prepend_buffer(
		    bufferevent_get_input(bev), early) != 0)
			return NULL;
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		bufferevent_disable(bev, EV_READ | EV_WRITE);
		c->bev = NULL;
		c->out = NULL;
	} else {
		if ((bev = bufferevent_socket_new(f->base, c->fd,
		    BEV_OPT_CLOSE_ON_FREE)) == NULL)
			return NULL;
		/* Its input's end is frozen (the socket's only): thawed. */
		evbuffer_unfreeze(bufferevent_get_input(bev), 0);
		rc = early != NULL ? evbuffer_add_buffer(
		    bufferevent_get_input(bev), early) : 0;
		if (rc == 0 && rest > 0)
			rc = evbuffer_add(bufferevent_get_input(bev),
			    c->ibuf + c->ioff, rest);
		evbuffer_freeze(bufferevent_get_input(bev), 0);
		if (rc != 0 || evbuffer_add_buffer(bufferevent_get_output(bev),
		    c->out) != 0) {
			bufferevent_setfd(bev, -1);	/* the fd stays ours */
			bufferevent_free(bev);
			return NULL;
		}
		event_del(&c->wev);
		c->wpending = false;
	}
	event_del(&c->tev);
	conn_phase(c, CONN_TO_NONE);
	c->ioff = c->ilen = 0;
	conn_ibuf_put(c);
	c->switched = true;
	return bev;
}

/*
 * The active request ended (complete, or cut): read the next one.  True
 * when c was detached (given back: the caller must not touch it).
 */
static bool
conn_request_done(struct conn_req *c)
{
	c->st = CONN_ST_HEAD;
	if (c->pending_close || c->broken) {
		conn_finish(c);
		return false;
	}
	if (c->in_process)
		return false;	/* conn_process() goes on by itself */
	if (c->ilen > c->ioff || c->rejected || c->eof || (c->tls &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0))
		conn_defer(c);	/* pipelined bytes, or the refusal */
	else {
		conn_ibuf_put(c);
		conn_reading(c, true);
		if (conn_between_requests(c))
			return true;	/* c is gone */
	}
	return false;
}

/*
 * The active request's reply has left: tell the pipeline, go on.  Runs
 * from the event loop only (a write callback, the deferred step), never
 * inside a call from the pipeline.
 */
static bool
conn_reply_sent(struct conn_req *c)
{
	c->reply_done = false;
	c->want_drain = false;
	c->complete_due = false;
	if (c->active) {
		c->front->pipe->complete(&c->x);
		conn_exchange_ended(c);
	}
	return conn_request_done(c);
}

/* The output buffer became empty. */
static void
conn_output_drained(struct conn_req *c)
{
	if (c->closing || c->refusing) {
		if (!c->active)
			conn_close_later(c);
		else if (c->reply_done)
			(void)conn_reply_sent(c);
		return;
	}
	if (c->reply_done) {
		(void)conn_reply_sent(c);	/* c may be gone */
		return;
	}
	if (c->want_drain && c->active) {
		c->want_drain = false;
		c->front->pipe->drained(&c->x);
	}
}

/* Plain socket writable again. */
static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn_req *c = arg;

	(void)fd;
	(void)what;
	if (conn_write_now(c) != 0) {
		conn_req_close(c);
		return;
	}
	if (evbuffer_get_length(c->out) > 0)
		return;
	c->wpending = false;
	event_del(&c->wev);
	conn_output_drained(c);
}

/*
 * Answer the request being read with our own error (status, JSON reason,
 * CORS headers, Connection: close) and close once it has left.  mine: the
 * guard's captures (Host, Origin, path) are this request's, else the
 * answer goes out as for an unknown route without an Origin.  No request
 * of ours is in flight here (c->active is false).  The answer is the
 * pipeline's (pipe->refuse(): route, CORS, request id, metrics), given
 * what is known of the request: its path and its Host and Origin fields.
 */
static void
conn_answer(struct conn_req *c, int status, const char *reason, bool mine)
{
	struct conn_front *f = c->front;
	struct framing_state *fs = &c->framing;
	struct http_field kv[2];
	size_t n = 0;

	c->refusing = true;
	c->closing = true;
	conn_reading(c, false);
	if (mine && fs->host[0] != '\0') {
		kv[n].name = (char *)"Host";
		kv[n].name_len = 4;
		kv[n].value = fs->host;
		kv[n++].value_len = strlen(fs->host);
	}
	if (mine && fs->origin[0] != '\0') {
		kv[n].name = (char *)"Origin";
		kv[n].name_len = 6;
		kv[n].value = fs->origin;
		kv[n++].value_len = strlen(fs->origin);
	}
	c->x.method = EXCHANGE_M_OTHER;
	c->x.method_name = "-";
	c->x.target = mine && fs->path[0] != '\0' ? fs->path : "/";
	c->x.major = 1;
	c->x.minor = 1;
	c->x.fields = kv;
	c->x.n_fields = n;
	c->x.body = NULL;
	c->x.body_end = true;
	c->x.pipe = NULL;
	c->is_head = false;
	c->conn_flags = CONN_F_CLOSE;
	f->pipe->refuse(f->pipe_arg, &c->x, status, reason);
	c->x.fields = NULL;
	c->x.n_fields = 0;
	/* A client that does not take the answer is cut like a busy one. */
	conn_phase(c, CONN_TO_NONE);
	conn_set_timeout(c, CONN_TO_BUSY);
	conn_flush(c);
	if (!c->broken && evbuffer_get_length(c->out) == 0)
		conn_close_later(c);
}

/* Answer the guard's refusal now and close after it left. */
static void
conn_refuse(struct conn_req *c)
{
	struct framing_state *fs = &c->framing;

	conn_answer(c, fs->status, fs->reason != NULL ? fs->reason :
	    "invalid request", true);
}

/*
 * True when the guard's captures are those of the next head to be taken:
 * it is the last complete one and no byte of another request was fed.
 */
static bool
conn_captures_mine(const struct conn_req *c)
{
	const struct framing_state *fs = &c->framing;

	return fs->requests == c->heads_taken + 1 &&
	    (fs->phase == FRAMING_BODY_LENGTH ||
	    fs->phase == FRAMING_BODY_CHUNKED || framing_idle(fs));
}

/* A request-path allocation failed: 503, then close. */
static void
conn_out_of_memory(struct conn_req *c, const char *what, bool mine)
{
	log_warnx("client %s: out of memory (%s): answered 503", c->sk->client,
	    what);
	conn_answer(c, 503, "the gateway is out of memory", mine);
}

/*
 * The guard refused the stream: keep the complete requests before the
 * refused one (they are answered first), drop the rest.
 */
static void
conn_reject(struct conn_req *c)
{
	struct conn_front *f = c->front;
	struct framing_state *fs = &c->framing;
	uint64_t keep;

	c->rejected = true;
	c->reject_at = fs->req_start;
	metrics_add(f->metrics, METRICS_FRAMING_REJECTED, 1);
	if (f->reject_log_sec != (int64_t)time(NULL)) {
		f->reject_log_sec = (int64_t)time(NULL);
		f->reject_log_n = 0;
	}
	if (f->reject_log_n++ < 10) {
		log_info("client %s: refused request (%d): %s", c->sk->client,
		    fs->status, fs->reason != NULL ? fs->reason : "invalid");
	}
	/* Bytes of ibuf from ioff on are at stream offsets base_off on. */
	keep = c->reject_at > c->base_off ? c->reject_at - c->base_off : 0;
	if (keep < c->ilen - c->ioff) {
		/*
		 * What follows a WebSocket handshake in the same read is the
		 * new protocol's if the backend switches (conn_x_upgrade):
		 * kept aside, the guard's verdict stands otherwise.
		 */
		if (c->early == NULL && (c->early = evbuffer_new()) != NULL)
			evbuffer_add(c->early, c->ibuf + c->ioff + keep,
			    c->ilen - c->ioff - (size_t)keep);
		c->ilen = c->ioff + (size_t)keep;
	}
	if (c->st == CONN_ST_BODY && c->reject_at <= c->base_off) {
		/* The refused request is the one whose body we read. */
		c->st = CONN_ST_HEAD;
		if (c->body != NULL)
			evbuffer_drain(c->body, evbuffer_get_length(c->body));
		conn_body_release(c);
	}
}

/*
 * Make room for more input: 1, 0 when ibuf may not grow now (reading
 * pauses), -1 when an allocation failed (answered: stop).
 */
static int
conn_make_room(struct conn_req *c)
{
	size_t keep_from, max, ncap;
	char *nb;

	if (c->ibuf == NULL) {
		if (conn_ibuf_get(c))
			return 1;
		conn_out_of_memory(c, "input buffer", false);
		return -1;
	}
	if (c->ilen < c->icap)
		return 1;
	/* The head of a request being read stays where it is. */
	keep_from = c->st == CONN_ST_BODY ? c->head_end : 0;
	if (c->ioff > keep_from) {
		memmove(c->ibuf + keep_from, c->ibuf + c->ioff,
		    c->ilen - c->ioff);
		c->ilen -= c->ioff - keep_from;
		c->ioff = keep_from;
		return 1;
	}
	if (c->active)
		return 0;	/* pipelined bytes wait; stop reading */
	max = c->framing.limits.max_header_bytes + CONN_IBUF_SLACK;
	if (c->icap >= max)
		return 0;
	ncap = c->icap * 2 > max ? max : c->icap * 2;
	if ((nb = conn_alloc("ibuf", ncap)) == NULL) {
		conn_out_of_memory(c, "input buffer", false);
		return -1;
	}
	memcpy(nb, c->ibuf, c->ilen);
	if (c->st == CONN_ST_BODY) {
		/* Re-point the indexed head into the new buffer. */
		size_t i;

		c->x.method_name = nb + (c->x.method_name - c->ibuf);
		c->x.target = nb + (c->x.target - c->ibuf);
		for (i = 0; i < c->x.n_fields; i++) {
			struct http_field *f = &c->fields[i];

			f->name = nb + (f->name - c->ibuf);
			f->value = nb + (f->value - c->ibuf);
		}
	}
	free(c->ibuf);
	c->ibuf = nb;
	c->icap = ncap;
	return 1;
}

/* The PROXY header's source is the client (LOCAL: the socket's stays). */
static void
conn_proxy_addr(struct conn_req *c, const struct pp_header *h)
{
	struct server_conn *sk = c->sk;
	char ip[INET6_ADDRSTRLEN];

	if (h->has_addr && inet_ntop(h->family, h->src, ip, sizeof ip) !=
	    NULL) {
		snprintf(sk->client_ip, sizeof sk->client_ip, "%s", ip);
		snprintf(sk->client, sizeof sk->client, h->family == AF_INET6 ?
		    "[%s]:%u" : "%s:%u", ip, (unsigned)h->src_port);
	}
}

/*
 * The PROXY header of a TLS listener, read from the socket before the
 * handshake.  The bytes are peeked and only the header's are taken: the
 * ClientHello behind it stays in the socket for OpenSSL (while the header
 * is incomplete every byte seen is the header's, so all are taken and
 * none is left to wake the loop again).  Once it is whole, the TLS
 * bufferevent is made on the socket.
 */
static void
conn_tls_proxy_read(struct conn_req *c)
{
	struct conn_front *f = c->front;
	struct pp_header h;
	const char *why = "PROXY header too large";
	SSL_CTX *ctx = c->tls_pending;
	size_t take;
	ssize_t n;
	int rc;

	if (conn_make_room(c) != 1) {
		rc = PP_INVALID;
		goto refused;
	}
	n = recv(c->fd, c->ibuf + c->ilen, c->icap - c->ilen, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		conn_req_close(c);	/* gone before its header */
		return;
	}
	rc = proxy_protocol_parse(c->ibuf, c->ilen + (size_t)n, &h, &why);
	if (rc == PP_INVALID)
		goto refused;
	take = rc == PP_INCOMPLETE ? (size_t)n : h.len - c->ilen;
	if (read(c->fd, c->ibuf + c->ilen, take) != (ssize_t)take) {
		conn_req_close(c);
		return;
	}
	c->ilen += take;
	if (rc == PP_INCOMPLETE)
		return;
	conn_proxy_addr(c, &h);
	c->ilen = 0;
	conn_ibuf_put(c);
	conn_reading(c, false);		/* the bufferevent reads from now */
	if ((c->bev = tls_server_bev(f->base, ctx, c->fd)) == NULL) {
		log_warnx("client %s: cannot start TLS: closed", c->sk->client);
		conn_req_close(c);
		return;
	}
	c->tls_pending = NULL;
	c->pp_wait = false;
	c->out = bufferevent_get_output(c->bev);
	bufferevent_setcb(c->bev, conn_tls_read_cb, conn_tls_write_cb,
	    conn_tls_event_cb, c);
	bufferevent_enable(c->bev, EV_WRITE);
	conn_reading(c, true);
	conn_set_timeout(c, CONN_TO_IDLE);
	return;
refused:
	log_debug("client %s: %s", c->sk->client, why);
	metrics_add(f->metrics, METRICS_PROXY_PROTOCOL_REFUSED, 1);
	conn_req_close(c);
}

/*
 * server.proxy_protocol: the first bytes are the balancer's PROXY header
 * (proto/proxy_protocol.c), whose source becomes the client.  Returns
 * how many bytes follow it (moved to the start of the input, for the
 * framing guard); 0 while it is incomplete, or when it was refused and
 * the connection closed (the protocol forbids guessing).
 */
static size_t
conn_proxy_header(struct conn_req *c, size_t n)
{
	struct pp_header h;
	const char *why;
	size_t have = c->ilen + n;
	int rc;

	rc = proxy_protocol_parse(c->ibuf, have, &h, &why);
	if (rc == PP_INCOMPLETE) {
		c->ilen = have;
		return 0;
	}
	if (rc == PP_INVALID) {
		log_debug("client %s: %s", c->sk->client, why);
		metrics_add(c->front->metrics, METRICS_PROXY_PROTOCOL_REFUSED, 1);
		conn_req_close(c);
		return 0;
	}
	c->pp_wait = false;
	conn_proxy_addr(c, &h);
	have -= h.len;
	memmove(c->ibuf, c->ibuf + h.len, have);
	c->ilen = 0;
	conn_set_timeout(c, CONN_TO_IDLE);
	return have;
}

/*
 * Hand c to the HTTP/2 front-end (h2.c) with the npre bytes read so far:
 * h2.c owns the socket (and the TLS bufferevent) from here and reports
 * the close to the worker; c is freed without a word to it.
 */
static void
conn_h2_take(struct conn_req *c, const char *pre, size_t npre)
{
	struct conn_front *f = c->front;
	struct server_conn *sk = c->sk;
	int rc;

	if (!c->tls)
		event_del(&sk->rev);
	/* pre may be c's input buffer: given back after h2.c copied it. */
	rc = h2_conn_new(f, c->fd, c->bev, sk->client, sk->client_ip, pre,
	    npre);
	if (rc != 0) {
		log_warnx("client %s: cannot start HTTP/2: closed",
		    sk->client);
		if (c->tls)
			bufferevent_free(c->bev);
		else
			close(c->fd);
	}
	sk->fd = -1;
	conn_req_put(c);
	TAILQ_REMOVE(&f->conns, sk, entry);
	conn_sk_release(f, sk);
	if (rc != 0)
		f->events->closed(f->owner);
}

/*
 * h2c with prior knowledge (RFC 9113 3.3, server.http2_cleartext): the
 * first bytes of a plaintext connection are compared with the client
 * preface before the HTTP/1.1 guard sees them; a prefix of it is held
 * back (ibuf[0, h2_held)) until it is whole or differs.  n bytes were
 * just read after the held ones.  Returns how many bytes to feed the
 * guard, or 0 when c waits for more or was handed to h2.c.
 */
static size_t
conn_h2_sniff(struct conn_req *c, size_t n)
{
	size_t have = c->h2_held + n;
	size_t cmp = have < H2_PREFACE_LEN ? have : H2_PREFACE_LEN;

	c->h2_held = 0;
	if (memcmp(c->ibuf, H2_PREFACE, cmp) != 0) {
		c->h2_sniff = false;
		return have;
	}
	if (have < H2_PREFACE_LEN) {
		c->h2_held = have;
		return 0;
	}
	conn_h2_take(c, c->ibuf, have);
	return 0;
}

/* n new bytes at ibuf + ilen: vet them, then act. */
static void
conn_input(struct conn_req *c, size_t n)
{
	if (c->active && c->x.upgrade && !c->closing) {
		/* The new protocol's bytes, if it switches (exchange.h). */
		c->ilen += n;
		return;
	}
	if (c->rejected || c->closing)
		return;		/* dropped */
	if (c->pp_wait) {
		if ((n = conn_proxy_header(c, n)) == 0)
			return;
		/* h2c prior knowledge comes after the PROXY header. */
		if (c->h2_sniff && (n = conn_h2_sniff(c, n)) == 0)
			return;
	}
	if (framing_feed(&c->framing, c->ibuf + c->ilen, n) != 0) {
		c->ilen += n;
		conn_reject(c);
	} else
		c->ilen += n;
	conn_process(c);
}

/* n bytes were read at ibuf + ilen + h2_held. */
static void
conn_got(struct conn_req *c, size_t n)
{
	if (c->h2_sniff && !c->pp_wait) {
		size_t feed = conn_h2_sniff(c, n);

		if (feed > 0)
			conn_input(c, feed);
		return;
	}
	conn_input(c, n);
}

/* Plain socket readable. */
static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn_req *c = arg;
	ssize_t n;
	size_t room;

	(void)what;
	if (c->tls_pending != NULL) {
		conn_tls_proxy_read(c);
		return;
	}
	switch (conn_make_room(c)) {
	case 1:
		break;
	case 0:
		conn_reading(c, false);
		return;
	default:
		return;		/* answered 503 */
	}
	room = c->icap - c->ilen - c->h2_held;
	n = read(fd, c->ibuf + c->ilen + c->h2_held, room);
	if (n > 0) {
		conn_got(c, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	/* EOF or reset. */
	c->eof = true;
	conn_reading(c, false);
	if (n < 0 || c->closing || c->pp_wait ||
	    (c->active && c->x.upgrade)) {
		conn_req_close(c);	/* pipe->gone() for the active one */
		return;
	}
	/*
	 * A FIN is a half-close: the client finished sending (printf ... |
	 * nc, shutdown(SHUT_WR)) and may still read.  RFC 9112 9.6 lets it
	 * close its side after its last request, so the complete requests
	 * read so far are answered (Connection: close), then we close; one
	 * cut in its head or body is dropped (conn_process).  HAProxy does
	 * the same by default (its abortonclose is off); a client that is
	 * wholly gone makes the answer's write fail, which ends it.
	 */
	if (c->active)
		return;		/* conn_request_done() goes on */
	conn_process(c);
}

/*
 * A plain connection's socket is readable.  Between requests (no request
 * state) the bytes are read onto the stack first: an EOF or a reset
 * closes the connection without taking anything from the worker (before,
 * each of a flood of closing idle connections read its EOF into an input
 * buffer that then stayed in the cache); bytes take a request state and
 * an input buffer from the free lists and are copied in (a request head,
 * usually a few hundred bytes).
 */
static void
conn_sk_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_conn *sk = arg;
	struct conn_req *c;
	char buf[CONN_IBUF_INITIAL];
	ssize_t n;

	if (sk->r != NULL) {
		conn_read_cb(fd, what, sk->r);
		return;
	}
	n = read(fd, buf, sizeof buf);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		/* EOF or reset between requests: nothing to answer. */
		conn_close(sk);
		return;
	}
	TAILQ_REMOVE(&sk->front->idle, sk, idle_entry);
	if ((c = conn_req_get(sk)) == NULL) {
		log_warnx("client %s: out of memory (request state): closed",
		    sk->client);
		conn_sk_free(sk);
		return;
	}
	if (conn_make_room(c) != 1)
		return;		/* answered 503 */
	memcpy(c->ibuf, buf, (size_t)n);
	conn_got(c, (size_t)n);
}

/* TLS: decrypted bytes wait in the bufferevent's input. */
static void
conn_tls_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn_req *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;

	if (c->h2_sniff) {
		/* The handshake is over: did it select h2 (ALPN)? */
		c->h2_sniff = false;
		if (tls_alpn_is_h2(bev)) {
			conn_h2_take(c, NULL, 0);
			return;
		}
	}
	while (evbuffer_get_length(in) > 0 && !c->closing &&
	    !c->rejected) {
		int room = conn_make_room(c);

		if (room < 0)
			break;		/* answered 503: drop the rest */
		if (room == 0) {
			conn_reading(c, false);
			return;
		}
		n = (size_t)evbuffer_remove(in, c->ibuf + c->ilen,
		    c->icap - c->ilen);
		if (n == 0 || n > c->icap - c->ilen)
			break;
		conn_input(c, n);
		if (c->active && c->ilen == c->icap)
			break;
	}
	if (c->rejected || c->closing)
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void
conn_tls_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn_req *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		c->wprogress++;
		conn_output_drained(c);
	}
}

static void
conn_tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn_req *c = arg;

	(void)bev;
	/* EOF, a reset or a failed handshake: the client is gone. */
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_req_close(c);
}

/*
 * The body timer fired: re-arm it for what is left of the gap since the
 * last body bytes and of the minimum-rate allowance, or answer 408.
 */
static void
conn_body_expired(struct conn_req *c)
{
	const struct config_limits *l = &c->front->cfg->limits;
	int64_t now = conn_now_ms(), gap_end, rate_end, end;
	uint64_t got = c->base_off - c->body_off;
	const char *why = "request body timeout";
	struct timeval tv;

	gap_end = c->body_last_ms + (int64_t)l->body_timeout_ms;
	end = gap_end;
	if (l->body_min_rate > 0) {
		/* body_timeout, then a second per body_min_rate bytes. */
		rate_end = c->body_start_ms + (int64_t)l->body_timeout_ms +
		    (int64_t)(got * 1000 / l->body_min_rate);
		if (rate_end < end) {
			end = rate_end;
			why = "request body below the minimum rate";
		}
	}
	if (end > now) {
		tv.tv_sec = (time_t)((end - now) / 1000);
		tv.tv_usec = (suseconds_t)((end - now) % 1000) * 1000;
		evtimer_add(&c->tev, &tv);
		return;
	}
	log_debug("client %s: %s (%llu bytes in %lld ms)", c->sk->client, why,
	    (unsigned long long)got, (long long)(now - c->body_start_ms));
	metrics_add(c->front->metrics, end == gap_end ? METRICS_REQ_TIMEOUT :
	    METRICS_REQ_SLOW_BODY, 1);
	/* The head is indexed and its body unfinished: the captures are its. */
	conn_answer(c, 408, why, true);
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn_req *c = arg;

	(void)fd;
	(void)what;
	if (c->phase_timeout == CONN_TO_DETACH) {
		/* Idle since the timer was set: the state goes back. */
		int64_t since = conn_now_ms() -
		    (int64_t)conn_detach_ms(&c->front->cfg->limits);

		conn_phase(c, CONN_TO_NONE);
		if (!conn_detach(c, since))
			conn_set_timeout(c, CONN_TO_IDLE);
		return;
	}
	if (c->phase_timeout == CONN_TO_BUSY &&
	    c->wprogress != c->wprogress_armed) {
		/* Still writing to the client: it is not stalled. */
		conn_phase(c, CONN_TO_NONE);
		conn_set_timeout(c, CONN_TO_BUSY);
		return;
	}
	if (c->phase_timeout == CONN_TO_BODY && !c->closing) {
		conn_body_expired(c);
		return;
	}
	log_debug("client %s: %s timeout", c->sk->client,
	    c->phase_timeout == CONN_TO_HEADER ? "header" :
	    c->phase_timeout == CONN_TO_BODY ? "body" :
	    c->phase_timeout == CONN_TO_BUSY ? "busy" : "idle");
	metrics_add(c->front->metrics, METRICS_REQ_TIMEOUT, 1);
	conn_req_close(c);
}

static void
conn_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn_req *c = arg;

	(void)fd;
	(void)what;
	if (c->close_deferred) {
		conn_req_close(c);
		return;
	}
	if (c->switched)
		return;		/* the socket is the pipeline's */
	/* end() was called with the output already empty. */
	if (c->complete_due) {
		c->complete_due = false;
		if (c->reply_done && evbuffer_get_length(c->out) == 0 &&
		    conn_reply_sent(c))
			return;		/* detached: c is not ours now */
	}
	/* TLS: bytes may wait in the bufferevent (reading was paused). */
	if (c->tls && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		conn_tls_read_cb(c->bev, c);
	conn_process(c);
}

static enum exchange_method
conn_method(const char *m, size_t len)
{
	switch (len) {
	case 3:
		if (memcmp(m, "GET", 3) == 0)
			return EXCHANGE_M_GET;
		if (memcmp(m, "PUT", 3) == 0)
			return EXCHANGE_M_PUT;
		break;
	case 4:
		if (memcmp(m, "HEAD", 4) == 0)
			return EXCHANGE_M_HEAD;
		if (memcmp(m, "POST", 4) == 0)
			return EXCHANGE_M_POST;
		break;
	case 5:
		if (memcmp(m, "PATCH", 5) == 0)
			return EXCHANGE_M_PATCH;
		if (memcmp(m, "TRACE", 5) == 0)
			return EXCHANGE_M_TRACE;
		break;
	case 6:
		if (memcmp(m, "DELETE", 6) == 0)
			return EXCHANGE_M_DELETE;
		break;
	case 7:
		if (memcmp(m, "OPTIONS", 7) == 0)
			return EXCHANGE_M_OPTIONS;
		if (memcmp(m, "CONNECT", 7) == 0)
			return EXCHANGE_M_CONNECT;
		break;
	default:
		break;
	}
	return EXCHANGE_M_OTHER;
}

/*
 * Index the complete head at ibuf[ioff]; -1 with *what set when the
 * memory for it cannot be had, with *what NULL when the guard's verdict
 * and the indexer disagree (more fields than max_fields, or no complete
 * head: a broken invariant).
 */
static int
conn_take_head(struct conn_req *c, const char **what)
{
	struct conn_front *fr = c->front;
	struct framing_head h;
	bool upgrade = false;
	size_t i;

	while (framing_index(c->ibuf + c->ioff, c->ilen - c->ioff, &h,
	    fr->fields, fr->fields_cap) != 0) {
		struct http_field *nf;
		size_t want = h.n_fields;

		/*
		 * The guard let at most max_fields through (431 above); the
		 * scratch index grows to that (a reload may raise it).
		 */
		*what = NULL;
		if (want <= fr->fields_cap ||
		    want > c->framing.limits.max_fields)
			return -1;
		*what = "header field index";
		/* The first head sizes it for most heads to come (64). */
		if (want < CONN_FIELDS_INITIAL)
			want = c->framing.limits.max_fields <
			    CONN_FIELDS_INITIAL ? c->framing.limits.max_fields :
			    CONN_FIELDS_INITIAL;
		if ((nf = conn_alloc("fields", want * sizeof *nf)) == NULL)
			return -1;
		free(fr->fields);
		fr->fields = nf;
		fr->fields_cap = want;
	}
	c->heads_taken++;
	c->head_start = c->ioff;
	c->head_end = c->ioff + h.len;
	c->x.method = conn_method(h.method, h.method_len);
	c->x.method_name = h.method;
	c->x.target = h.target;
	c->x.major = 1;
	c->x.minor = h.minor;
	c->x.fields = fr->fields;
	c->x.n_fields = h.n_fields;
	c->x.head_len = h.len;
	c->x.body = NULL;
	c->x.body_end = true;
	c->x.upgrade = false;
	c->x.pipe = NULL;
	c->conn_flags = 0;
	c->body_left = 0;
	c->chunked = false;
	c->expect_continue = false;
	/* The guard vetted framing: at most one of these, well formed. */
	for (i = 0; i < h.n_fields; i++) {
		const struct http_field *f = &fr->fields[i];

		switch (f->name[0] | 0x20) {
		case 'c':
			if (UTIL_NAME_IS(f->name, f->name_len,
			    "content-length") &&
			    util_parse_u64(f->value, f->value_len,
			    &c->body_left) != 0)
				c->body_left = 0;
			else if (UTIL_NAME_IS(f->name, f->name_len,
			    "connection"))
				c->conn_flags |= conn_connection_flags(
				    f->value);
			break;
		case 't':
			if (UTIL_NAME_IS(f->name, f->name_len,
			    "transfer-encoding"))
				c->chunked = true;
			break;
		case 'e':
			if (UTIL_NAME_IS(f->name, f->name_len,
			    "expect"))
				c->expect_continue = true;
			break;
		case 'u':
			if (UTIL_NAME_IS(f->name, f->name_len,
			    "upgrade"))
				upgrade = true;
			break;
		default:
			break;
		}
	}
	/*
	 * RFC 9110 7.8: a request to switch protocols names Upgrade in
	 * Connection too; on HTTP/1.0 it is ignored.
	 */
	c->x.upgrade = upgrade && h.minor >= 1 &&
	    (c->conn_flags & CONN_F_UPGRADE) != 0;
	c->base_off += h.len;
	c->body_off = c->base_off;
	c->body_timed = false;
	c->ioff = c->head_end;
	if (c->chunked)
		framing_dechunk_init(&c->dechunk);
	if (c->chunked || c->body_left > 0) {
		*what = "request body buffer";
		if (c->body == NULL && (c->body = evbuffer_new()) == NULL)
			return -1;
		c->x.body = c->body;
	}
	return 0;
}

/*
 * The head waits for its body: its index moves from the worker's scratch
 * array (reused by every connection) into one of the connection's own.
 */
static int
conn_keep_fields(struct conn_req *c)
{
	size_t n = c->x.n_fields;

	if (c->x.fields == c->fields)
		return 0;
	if (n > c->fields_cap) {
		struct http_field *nf;

		if ((nf = conn_alloc("kept fields", n * sizeof *nf)) == NULL)
			return -1;
		free(c->fields);
		c->fields = nf;
		c->fields_cap = n;
	}
	if (n > 0)
		memcpy(c->fields, c->x.fields, n * sizeof *c->fields);
	c->x.fields = c->fields;
	return 0;
}

static void
conn_body_data(void *arg, const char *p, size_t n)
{
	evbuffer_add(arg, p, n);
}

/*
 * Move body bytes from ibuf into the body: 1 when it is complete, 0 when
 * more is to come, -1 when they pass server.limits.max_buffered_body_bytes.
 */
static int
conn_take_body(struct conn_req *c)
{
	size_t avail = c->ilen - c->ioff, used, had;
	bool done = false;

	had = evbuffer_get_length(c->body);
	if (c->chunked) {
		used = framing_dechunk(&c->dechunk, c->ibuf + c->ioff, avail,
		    conn_body_data, c->body, &done);
	} else {
		used = avail;
		if ((uint64_t)used > c->body_left)
			used = (size_t)c->body_left;
		evbuffer_add(c->body, c->ibuf + c->ioff, used);
		c->body_left -= used;
		done = c->body_left == 0;
	}
	c->ioff += used;
	c->base_off += used;
	if (!conn_body_charge(c, evbuffer_get_length(c->body) - had))
		return -1;
	if (!done && used > 0)
		c->body_last_ms = conn_now_ms();	/* the gap restarts */
	if (!done && c->ioff == c->ilen) {
		/* Everything after the head was taken: reuse the space. */
		c->ioff = c->ilen = c->head_end;
	}
	return done ? 1 : 0;
}

/* Hand the complete request to the pipeline. */
static void
conn_dispatch(struct conn_req *c)
{
	struct conn_front *f = c->front;

	c->st = CONN_ST_BUSY;
	c->active = true;
	c->is_head = c->x.method == EXCHANGE_M_HEAD;
	c->chunking = false;
	/* An upgrade answered without a 101 ends the connection. */
	if (c->x.upgrade)
		c->pending_close = true;
	f->inflight++;
	f->pipe->start(f->pipe_arg, &c->x);
	if (c->active) {
		conn_set_timeout(c, CONN_TO_BUSY);
		/* Read on (EOF cancels), but bound what piles up. */
	} else if (c->st == CONN_ST_BUSY)
		c->st = CONN_ST_HEAD;	/* aborted already */
	if (c->body != NULL)
		evbuffer_drain(c->body, evbuffer_get_length(c->body));
	conn_body_release(c);		/* the pipeline has it now */
}

/* Process what ibuf holds while no request of ours is in flight. */
static void
conn_process(struct conn_req *c)
{
	const char *what = NULL;
	bool mine, idle = false;
	int tb;

	if (c->in_process)
		return;
	c->in_process = true;
	while (!c->active && !c->closing && !c->broken) {
		if (c->st == CONN_ST_HEAD) {
			if (c->ioff == c->ilen)
				c->ioff = c->ilen = 0;
			if (c->framing.requests <= c->heads_taken ||
			    (c->rejected && c->base_off >= c->reject_at)) {
				/* No complete head (before the refusal). */
				if (c->rejected) {
					conn_refuse(c);
					break;
				}
				if (c->eof) {
					conn_finish(c);
					break;
				}
				if (framing_idle(&c->framing) &&
				    c->ilen == c->ioff) {
					conn_ibuf_put(c);
					idle = true;
				} else
					conn_set_timeout(c, CONN_TO_HEADER);
				conn_reading(c, true);
				break;
			}
			mine = conn_captures_mine(c);
			if (conn_take_head(c, &what) != 0) {
				if (what != NULL)
					conn_out_of_memory(c, what, mine);
				else {
					/* The guard vetted it: our bug. */
					log_warnx("client %s: a head the guard "
					    "accepted cannot be indexed",
					    c->sk->client);
					conn_answer(c, 500, "the request head "
					    "could not be indexed", mine);
				}
				break;
			}
			c->st = CONN_ST_BODY;
		}
		if (c->x.body != NULL && (tb = conn_take_body(c)) <= 0) {
			if (tb < 0) {
				/*
				 * RFC 9110 15.6.4: an overload the client may
				 * retry; the body's own captures answer it.
				 */
				metrics_add(c->front->metrics,
				    METRICS_BODY_BUDGET_REFUSED, 1);
				log_debug("client %s: request body over "
				    "server.limits.max_buffered_body_bytes",
				    c->sk->client);
				conn_answer(c, 503, "the gateway's memory for "
				    "request bodies is in use: retry later",
				    true);
				break;
			}
			if (conn_keep_fields(c) != 0) {
				conn_out_of_memory(c, "kept header fields",
				    true);
				break;
			}
			if (c->expect_continue && c->x.minor >= 1) {
				/* RFC 9110 10.1.1: ask for the body. */
				c->expect_continue = false;
				evbuffer_add(c->out,
				    "HTTP/1.1 100 Continue\r\n\r\n", 25);
				conn_flush(c);
			}
			if (c->eof)
				conn_finish(c);
			else {
				if (!c->body_timed) {
					/* This body's clock starts. */
					c->body_timed = true;
					c->body_start_ms = c->body_last_ms =
					    conn_now_ms();
					conn_phase(c, CONN_TO_NONE);
				}
				conn_set_timeout(c, CONN_TO_BODY);
				conn_reading(c, true);
			}
			break;
		}
		conn_dispatch(c);
	}
	c->in_process = false;
	if (idle)
		(void)conn_between_requests(c);	/* c may be gone */
}
