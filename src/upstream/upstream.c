/*
 * upstream.c -- our own HTTP/1.1 client for the backends.
 *
 * Each worker holds one struct upstream_pool per route: the backend's
 * addresses (resolved by the main thread, upstream_resolve), the client
 * TLS context (https) and a LIFO list of idle keep-alive connections.
 * An exchange (struct upstream_req) takes an idle
 * connection or opens a new one with a non-blocking connect, writes the
 * request the caller serialized, and parses the response with the strict
 * RFC 9112 parser of http_response.c, handing the head and the
 * de-chunked body to the caller's callbacks as they arrive.
 *
 * Every connection has one struct event: first it waits for the connect
 * to finish (with the connect timeout), then it is the timer for the TLS
 * handshake, the response timeout (head wait and gaps between body reads)
 * and the idle timeout.  Read interest stays enabled for the life of a
 * connection (an idle connection that turns readable is closed), which
 * keeps epoll_ctl calls off the request path.
 *
 * https connections are bufferevent_openssl.  http connections have no
 * bufferevent: per exchange the socket sees one sendmsg() of the request
 * (straight from the caller's buffer, kept for a retry) and one recv()
 * into the pool's scratch buffer, from which the response head is parsed
 * in place (no FIONREAD, no evbuffer chain, no epoll_ctl).  Header entries
 * are recycled with the exchange structures, so a steady stream of
 * similar responses allocates none.
 *
 * Lifetimes: the pool is reference counted by its owner, its connections
 * and its exchanges; upstream_pool_free() drops the owner's reference.  An
 * exchange is freed right after done() or by upstream_req_cancel(); a
 * callback that cancels is detected through the busy counter and the free
 * happens when the callback has returned.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "http_response_embed.h"
#include "log.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"

#define UPSTREAM_IDLE_MS	60000	/* when conf has none (0) */
#define UPSTREAM_FREE_REQS	16	/* spare exchanges per pool */
#define UPSTREAM_READ_SIZE	16384	/* one socket read at most */
#define UPSTREAM_WRITE_IOV	16
#define UPSTREAM_DRAIN_MAX	65536	/* response bytes an orphan may read */
#define UPSTREAM_DRAIN_MS	1000	/* and the gap it may wait */

enum conn_state {
	CONN_CONNECTING = 0,	/* c->ev waits for writability */
	CONN_HANDSHAKE,		/* TLS, before BEV_EVENT_CONNECTED */
	CONN_BUSY,		/* carrying an exchange */
	CONN_IDLE,		/* in pool->idle */
};

/*
 * A connection.  https: a bufferevent_openssl owns the socket.  http: we
 * drive the socket ourselves (no bufferevent): rev stays armed from the
 * connect to the close (paused exchanges excepted), wev only while a
 * request is partly written, and reads go to the pool's scratch buffer,
 * or to in when earlier bytes are still unparsed.
 */
struct upstream_conn {
	struct upstream_pool *pool;
	enum conn_state state;
	int fd;				/* http: always; https: until the
					 * bev owns it */
	struct bufferevent *bev;	/* https only */
	struct event ev;		/* connect wait, then the timer */
	struct event rev;		/* http: EV_READ | EV_PERSIST */
	struct event wev;		/* http: EV_WRITE | EV_PERSIST */
	struct evbuffer *in;		/* http: read, not yet parsed */
	bool sock_events;		/* http: rev and wev assigned */
	bool rev_on;
	bool wev_on;
	int werr;			/* http: the request write failed */
	struct upstream_req *req;	/* when busy */
	short eof_pending;		/* https: EOF/error seen while
					 * paused */
	TAILQ_ENTRY(upstream_conn) entry;	/* idle list */
};

enum req_state {
	REQ_CONNECTING = 0,
	REQ_WAIT_HEAD,
	REQ_BODY,
	REQ_DONE,		/* inside done() */
	REQ_CANCELLED,
};

struct upstream_req {
	struct upstream_pool *pool;
	struct upstream_conn *conn;
	const struct upstream_cbs *cbs;
	void *arg;
	enum req_state state;
	struct evbuffer *reqbuf;	/* request bytes (kept while retry
					 * is possible) */
	struct evbuffer *body;		/* de-chunked body for body() */
	struct event defer;		/* work for the next loop turn */
	enum upstream_err pending_err;	/* reported by defer */
	const char *pending_errstr;
	unsigned busy;			/* callback nesting depth */
	bool is_head;
	bool retryable;
	bool retried;
	bool reused;
	bool paused;
	bool head_sent;
	bool got_byte;
	bool keep_copy;			/* https: output references
					 * reqbuf */
	bool orphan;			/* cancelled, finishing for the pool */
	bool upgrade;			/* a 101 may answer (a tunnel) */
	size_t drained;			/* orphan: response bytes dropped */
	size_t wrote;			/* http: reqbuf bytes written */
	uint64_t sent_ns;
	uint64_t first_byte_ns;
	size_t reqlen;			/* the request's bytes in all */
	struct event try_ev;		/* per-try timeout, while try_armed */
	bool try_armed;
	struct upstream_parser parser;
	TAILQ_ENTRY(upstream_req) entry;	/* pool->free_reqs */
};

TAILQ_HEAD(upstream_conn_list, upstream_conn);
TAILQ_HEAD(upstream_req_list, upstream_req);

struct upstream_pool {
	struct event_base *base;
	unsigned refs;			/* owner + conns + reqs */
	bool dying;			/* upstream_pool_free() was called */
	char *name;			/* "host:port", for logs */
	struct upstream_addr *addrs;	/* every address, resolved by the
					 * main thread; we connect to [0] */
	size_t n_addrs;
	SSL_CTX *ssl_ctx;		/* NULL: plain http */
	char *server_name;		/* SNI and verified name */
	bool verify;
	struct timeval connect_tv;
	struct timeval timeout_tv;
	struct timeval idle_tv;
	bool has_connect_tv;
	bool has_timeout_tv;
	unsigned keepalive;
	struct upstream_conn_list idle;
	unsigned nidle;
	struct upstream_req_list free_reqs;
	unsigned nfree;
	struct upstream_req_list orphans;	/* cancelled, still reading */
	uint64_t connects;
	char *scratch;			/* http reads, UPSTREAM_READ_SIZE */
};

struct http_response_src;

static void	upstream_connect_cb(evutil_socket_t, short, void *);
static void	upstream_read_cb(struct bufferevent *, void *);
static void	upstream_event_cb(struct bufferevent *, short, void *);
static void	upstream_timer_cb(evutil_socket_t, short, void *);
static void	upstream_defer_cb(evutil_socket_t, short, void *);

static void	upstream_sock_read_cb(evutil_socket_t, short, void *);
static void	upstream_sock_write_cb(evutil_socket_t, short, void *);

static int	req_read(struct upstream_req *, struct http_response_src *);
static void	req_finish(struct upstream_req *, enum upstream_err,
		    const char *);
static void	req_abandon(struct upstream_req *, const char *);

/*
 * Pool and connections.
 */

static void
ms_to_tv(uint64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

static void
pool_unref(struct upstream_pool *pool)
{
	struct upstream_req *req;

	if (--pool->refs > 0)
		return;
	while ((req = TAILQ_FIRST(&pool->free_reqs)) != NULL) {
		TAILQ_REMOVE(&pool->free_reqs, req, entry);
		http_response_free_spare(&req->parser);
		evbuffer_free(req->reqbuf);
		evbuffer_free(req->body);
		free(req);
	}
	free(pool->scratch);
	if (pool->ssl_ctx != NULL)
		SSL_CTX_free(pool->ssl_ctx);
	free(pool->server_name);
	free(pool->name);
	free(pool->addrs);
	free(pool);
}

/* Resolve a backend's host once (upstream.h). */
int
upstream_resolve(const struct config_upstream *conf,
    struct upstream_addr **addrs, size_t *n, char **cause)
{
	struct upstream_addr *a = xcalloc(1, sizeof *a);
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
	struct addrinfo hints, *res, *ai;
	char port[8];
	size_t i;
	int rc;

	*addrs = NULL;
	*n = 0;
	if (inet_pton(AF_INET, conf->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(conf->port);
		a->len = sizeof *sin;
		*addrs = a;
		*n = 1;
		return 0;
	}
	if (inet_pton(AF_INET6, conf->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(conf->port);
		a->len = sizeof *sin6;
		*addrs = a;
		*n = 1;
		return 0;
	}
	free(a);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
	snprintf(port, sizeof port, "%u", (unsigned)conf->port);
	if ((rc = getaddrinfo(conf->host, port, &hints, &res)) != 0) {
		xasprintf(cause, "cannot resolve upstream host %s: %s",
		    conf->host, gai_strerror(rc));
		return -1;
	}
	/* Every address, in getaddrinfo's (RFC 6724) order. */
	for (ai = res, i = 0; ai != NULL; ai = ai->ai_next)
		i++;
	a = xcalloc(i, sizeof *a);
	for (ai = res, i = 0; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof a[i].ss)
			continue;
		memcpy(&a[i].ss, ai->ai_addr, ai->ai_addrlen);
		a[i].len = ai->ai_addrlen;
		i++;
	}
	freeaddrinfo(res);
	if (i == 0) {
		free(a);
		xasprintf(cause, "cannot resolve upstream host %s: no "
		    "address", conf->host);
		return -1;
	}
	*addrs = a;
	*n = i;
	return 0;
}

/* Create the pool for one backend on base. */
struct upstream_pool *
upstream_pool_new(struct event_base *base, const struct config_upstream *conf,
    const struct upstream_addr *addrs, size_t n_addrs, SSL_CTX *ssl_ctx,
    char **cause)
{
	struct upstream_pool *pool;

	if (conf->host == NULL || conf->host[0] == '\0') {
		xasprintf(cause, "upstream %s: no host", conf->url != NULL ?
		    conf->url : "(null)");
		return NULL;
	}
	if (n_addrs == 0) {
		xasprintf(cause, "upstream %s: no address", conf->host);
		return NULL;
	}
	if (conf->scheme == CONFIG_SCHEME_HTTPS && ssl_ctx == NULL) {
		xasprintf(cause, "upstream %s: https without a TLS context",
		    conf->host);
		return NULL;
	}
	pool = xcalloc(1, sizeof *pool);
	/* A copy: the pool may outlive the generation (orphans, retries). */
	pool->addrs = xcalloc(n_addrs, sizeof *pool->addrs);
	memcpy(pool->addrs, addrs, n_addrs * sizeof *pool->addrs);
	pool->n_addrs = n_addrs;
	pool->base = base;
	pool->refs = 1;
	xasprintf(&pool->name, "%s:%u", conf->host, (unsigned)conf->port);
	if (ssl_ctx != NULL) {
		SSL_CTX_up_ref(ssl_ctx);
		pool->ssl_ctx = ssl_ctx;
		pool->server_name = xstrdup(conf->tls_server_name != NULL ?
		    conf->tls_server_name : conf->host);
		pool->verify = conf->tls_verify;
	}
	pool->has_connect_tv = conf->connect_timeout_ms > 0;
	ms_to_tv(conf->connect_timeout_ms, &pool->connect_tv);
	pool->has_timeout_tv = conf->timeout_ms > 0;
	ms_to_tv(conf->timeout_ms, &pool->timeout_tv);
	/* routes[].upstream.idle_timeout; a reload builds new pools. */
	ms_to_tv(conf->idle_timeout_ms > 0 ? conf->idle_timeout_ms :
	    UPSTREAM_IDLE_MS, &pool->idle_tv);
	pool->keepalive = conf->keepalive;
	TAILQ_INIT(&pool->idle);
	TAILQ_INIT(&pool->free_reqs);
	TAILQ_INIT(&pool->orphans);
	return pool;
}

/* Close idle connections after ms without use. */
void
upstream_pool_set_idle_timeout(struct upstream_pool *pool, uint64_t ms)
{
	ms_to_tv(ms, &pool->idle_tv);
}

static void
conn_close(struct upstream_conn *c, const char *why)
{
	struct upstream_pool *pool = c->pool;

	log_debug("upstream %s: closing connection: %s", pool->name, why);
	if (c->state == CONN_IDLE) {
		TAILQ_REMOVE(&pool->idle, c, entry);
		pool->nidle--;
	}
	event_del(&c->ev);
	if (c->sock_events) {
		event_del(&c->rev);
		event_del(&c->wev);
	}
	if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	else if (c->fd != -1)
		close(c->fd);
	free(c);
	pool_unref(pool);
}

/* Close idle connections; the last exchange frees the pool. */
void
upstream_pool_free(struct upstream_pool *pool)
{
	struct upstream_conn *c;

	struct upstream_req *req;

	if (pool == NULL)
		return;
	pool->dying = true;
	while ((c = TAILQ_FIRST(&pool->idle)) != NULL)
		conn_close(c, "pool freed");
	/* Nobody waits for the orphans' responses: no reason to wait. */
	while ((req = TAILQ_FIRST(&pool->orphans)) != NULL)
		req_abandon(req, "pool freed");
	pool_unref(pool);
}

static void
conn_arm(struct upstream_conn *c, const struct timeval *tv, bool has)
{
	if (has)
		event_add(&c->ev, tv);
	else
		event_del(&c->ev);
}

static const char *
connect_errstr(int error)
{
	switch (error) {
	case ECONNREFUSED:
		return "upstream connection refused";
	case ENETUNREACH:
	case EHOSTUNREACH:
		return "upstream unreachable";
	default:
		return "upstream connect failed";
	}
}

/* Open a new connection for req; -1 with *errstr when it failed at once. */
static int
conn_open(struct upstream_req *req, const char **errstr)
{
	struct upstream_pool *pool = req->pool;
	struct upstream_conn *c;
	int fd, one = 1;

	pool->connects++;
	fd = socket(pool->addrs[0].ss.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_debug("upstream %s: socket: %s", pool->name,
		    strerror(errno));
		*errstr = "upstream connect failed";
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&pool->addrs[0].ss,
	    pool->addrs[0].len) == -1 && errno != EINPROGRESS) {
		log_debug("upstream %s: connect: %s", pool->name,
		    strerror(errno));
		*errstr = connect_errstr(errno);
		close(fd);
		return -1;
	}
	if ((c = calloc(1, sizeof *c)) == NULL) {
		close(fd);
		*errstr = "out of memory";
		return -1;
	}
	c->pool = pool;
	c->fd = fd;
	c->state = CONN_CONNECTING;
	event_assign(&c->ev, pool->base, fd, EV_WRITE, upstream_connect_cb,
	    c);
	event_add(&c->ev, pool->has_connect_tv ? &pool->connect_tv : NULL);
	pool->refs++;
	c->req = req;
	req->conn = c;
	req->state = REQ_CONNECTING;
	return 0;
}

/* http: read interest on or off (epoll_ctl only when it changes). */
static void
conn_rev(struct upstream_conn *c, bool on)
{
	if (c->rev_on == on)
		return;
	c->rev_on = on;
	if (on)
		event_add(&c->rev, NULL);
	else
		event_del(&c->rev);
}

static void
conn_wev(struct upstream_conn *c, bool on)
{
	if (c->wev_on == on)
		return;
	c->wev_on = on;
	if (on)
		event_add(&c->wev, NULL);
	else
		event_del(&c->wev);
}

/*
 * http: write what is left of the request, straight from reqbuf (nothing
 * is drained: the bytes stay for a retry); wev is armed only while some
 * is left.  A failed write is reported by the read side, which the
 * failure makes readable (EOF or reset); the read callback is activated
 * in case it is not.
 */
static void
conn_flush(struct upstream_conn *c)
{
	struct upstream_req *req = c->req;
	struct evbuffer_iovec v[UPSTREAM_WRITE_IOV];
	struct iovec iov[UPSTREAM_WRITE_IOV];
	struct evbuffer_ptr ptr;
	struct msghdr msg;
	size_t total = evbuffer_get_length(req->reqbuf);
	ssize_t w;
	int n, i;

	while (req->wrote < total && c->werr == 0) {
		if (req->wrote == 0)
			n = evbuffer_peek(req->reqbuf, -1, NULL, v,
			    UPSTREAM_WRITE_IOV);
		else {
			if (evbuffer_ptr_set(req->reqbuf, &ptr, req->wrote,
			    EVBUFFER_PTR_SET) != 0)
				break;
			n = evbuffer_peek(req->reqbuf, -1, &ptr, v,
			    UPSTREAM_WRITE_IOV);
		}
		if (n > UPSTREAM_WRITE_IOV)
			n = UPSTREAM_WRITE_IOV;
		for (i = 0; i < n; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		memset(&msg, 0, sizeof msg);
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)n;
		w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (w > 0) {
			req->wrote += (size_t)w;
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			conn_wev(c, true);
			return;
		}
		c->werr = w == -1 ? errno : EPIPE;
		log_debug("upstream %s: write: %s", c->pool->name,
		    strerror(c->werr));
		event_active(&c->rev, EV_READ, 1);
	}
	conn_wev(c, false);
}

/* Write the request on the attached connection and wait for the head. */
static void
req_send(struct upstream_req *req)
{
	struct upstream_conn *c = req->conn;
	struct evbuffer *out;

	req->state = REQ_WAIT_HEAD;
	if (c->bev == NULL) {
		/*
		 * http: write now instead of waiting a loop turn for
		 * writability; wev is armed only on a short write.
		 */
		req->wrote = 0;
		conn_flush(c);
		return;
	}
	out = bufferevent_get_output(c->bev);
	if (req->retryable) {
		/*
		 * Shared, not copied: resent if the connection was stale, or
		 * taken back for another server (upstream_req_take_request).
		 */
		evbuffer_add_buffer_reference(out, req->reqbuf);
		req->keep_copy = true;
	} else
		evbuffer_add_buffer(out, req->reqbuf);
}

static void
conn_ready(struct upstream_conn *c)
{
	struct upstream_req *req = c->req;
	struct upstream_pool *pool = c->pool;

	c->state = CONN_BUSY;
	req->sent_ns = util_mono_ns();
	if (req->paused) {
		if (c->bev != NULL)
			bufferevent_disable(c->bev, EV_READ);
		else
			conn_rev(c, false);
		event_del(&c->ev);
	} else
		conn_arm(c, &pool->timeout_tv, pool->has_timeout_tv);
}

static void
upstream_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_conn *c = arg;
	struct upstream_pool *pool = c->pool;
	struct upstream_req *req = c->req;
	socklen_t len = sizeof(int);
	int error = 0;

	if (what & EV_TIMEOUT) {
		req_finish(req, UPSTREAM_ERR_TIMEOUT,
		    "upstream connect timed out");
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		log_debug("upstream %s: connect: %s", pool->name,
		    strerror(error));
		req_finish(req, UPSTREAM_ERR_CONNECT, connect_errstr(error));
		return;
	}
	if (pool->ssl_ctx == NULL) {
		/* http: our own events on the socket, for its whole life. */
		if ((c->in = evbuffer_new()) == NULL || (pool->scratch ==
		    NULL && (pool->scratch = malloc(UPSTREAM_READ_SIZE)) ==
		    NULL)) {
			req_finish(req, UPSTREAM_ERR_NOMEM,
			    "cannot set up the upstream connection");
			return;
		}
		event_assign(&c->rev, pool->base, fd, EV_READ | EV_PERSIST,
		    upstream_sock_read_cb, c);
		event_assign(&c->wev, pool->base, fd, EV_WRITE | EV_PERSIST,
		    upstream_sock_write_cb, c);
		c->sock_events = true;
		event_assign(&c->ev, pool->base, -1, 0, upstream_timer_cb, c);
		conn_rev(c, true);
		req_send(req);
		conn_ready(c);
		return;
	}
	c->bev = tls_client_bev(pool->base, pool->ssl_ctx, fd,
	    pool->server_name, pool->verify);
	if (c->bev == NULL) {
		req_finish(req, UPSTREAM_ERR_NOMEM,
		    "cannot set up the upstream connection");
		return;
	}
	c->fd = -1;
	bufferevent_setcb(c->bev, upstream_read_cb, NULL, upstream_event_cb,
	    c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	event_assign(&c->ev, pool->base, -1, 0, upstream_timer_cb, c);
	req_send(req);
	/* The request waits in the output during the handshake. */
	c->state = CONN_HANDSHAKE;
	conn_arm(c, &pool->connect_tv, pool->has_connect_tv);
}

/* Put a connection whose exchange completed back on the idle list. */
static void
conn_idle(struct upstream_conn *c)
{
	struct upstream_pool *pool = c->pool;

	c->state = CONN_IDLE;
	c->req = NULL;
	TAILQ_INSERT_HEAD(&pool->idle, c, entry);	/* LIFO */
	pool->nidle++;
	event_add(&c->ev, &pool->idle_tv);
}

static void
req_release_conn(struct upstream_req *req, bool keep, const char *why)
{
	struct upstream_conn *c = req->conn;

	if (c == NULL)
		return;
	req->conn = NULL;
	c->req = NULL;
	if (keep)
		conn_idle(c);
	else
		conn_close(c, why);
}

static void
req_free(struct upstream_req *req)
{
	struct upstream_pool *pool = req->pool;

	event_del(&req->defer);
	if (req->try_armed) {
		event_del(&req->try_ev);
		req->try_armed = false;
	}
	if (req->orphan) {
		TAILQ_REMOVE(&pool->orphans, req, entry);
		req->orphan = false;
	}
	if (pool->dying || pool->nfree >= UPSTREAM_FREE_REQS) {
		http_response_clear_headers(&req->parser, false);
		http_response_free_spare(&req->parser);
		evbuffer_free(req->reqbuf);
		evbuffer_free(req->body);
		free(req);
	} else {
		/* Kept with its buffers and header entries for the next
		 * exchange. */
		http_response_clear_headers(&req->parser, true);
		evbuffer_drain(req->reqbuf, evbuffer_get_length(req->reqbuf));
		evbuffer_drain(req->body, evbuffer_get_length(req->body));
		TAILQ_INSERT_HEAD(&pool->free_reqs, req, entry);
		pool->nfree++;
	}
	pool_unref(pool);
}

/* End the exchange: state DONE, done(), free. */
static void
req_done(struct upstream_req *req, enum upstream_err err, const char *errstr)
{
	req->state = REQ_DONE;
	event_del(&req->defer);
	req->busy++;
	req->cbs->done(req, err, errstr, req->head_sent, req->arg);
	req->busy--;
	req_free(req);
}

static void
req_finish(struct upstream_req *req, enum upstream_err err,
    const char *errstr)
{
	log_debug("upstream %s: %s: %s", req->pool->name,
	    upstream_err_name(err), errstr);
	req_release_conn(req, false, errstr);
	req_done(req, err, errstr);
}

/* Report a failure on the next loop turn (never from upstream_request). */
static void
req_fail_later(struct upstream_req *req, enum upstream_err err,
    const char *errstr)
{
	req->pending_err = err;
	req->pending_errstr = errstr;
	event_active(&req->defer, EV_TIMEOUT, 1);
}

/* src: what the exchange was reading (bytes left there: not reusable). */
static void
req_complete(struct upstream_req *req, const struct http_response_src *src)
{
	struct upstream_conn *c = req->conn;
	struct upstream_pool *pool = req->pool;
	bool keep;

	keep = upstream_parser_keepalive(&req->parser) && !pool->dying &&
	    pool->nidle < pool->keepalive &&
	    (src == NULL || http_response_src_avail(src) == 0);
	if (keep && c->bev != NULL)
		keep = evbuffer_get_length(bufferevent_get_input(c->bev)) ==
		    0 && evbuffer_get_length(bufferevent_get_output(c->bev)) ==
		    0;
	else if (keep)
		keep = evbuffer_get_length(c->in) == 0 && c->werr == 0 &&
		    req->wrote == evbuffer_get_length(req->reqbuf);
	if (req->orphan)
		log_debug("upstream %s: a departed client's response was read; "
		    "connection %s", pool->name, keep ? "kept" : "closed");
	req_release_conn(req, keep, "not reusable");
	req_done(req, UPSTREAM_OK, NULL);
}

/* Returns false when the exchange ended inside the callback. */
static bool
req_call_head(struct upstream_req *req)
{
	int rc;

	if (req->try_armed) {
		/* The head is here: the attempt is no longer at stake. */
		event_del(&req->try_ev);
		req->try_armed = false;
	}
	req->busy++;
	rc = req->cbs->head(req, &req->parser.resp, req->arg);
	req->busy--;
	if (req->state == REQ_CANCELLED) {
		if (req->busy == 0)
			req_free(req);
		return false;
	}
	if (rc != 0) {
		upstream_req_cancel(req);
		return false;
	}
	return true;
}

static bool
req_call_body(struct upstream_req *req)
{
	req->busy++;
	req->cbs->body(req, req->body, req->arg);
	req->busy--;
	if (req->state == REQ_CANCELLED) {
		if (req->busy == 0)
			req_free(req);
		return false;
	}
	return true;
}

/*
 * A 101 answered a request that asked to switch protocols (the parser
 * accepts it only then): the bytes after its head are the new protocol's,
 * so they are kept on the connection (c->in, or the bufferevent's input)
 * for upstream_req_detach().  head() must take the connection; if it does
 * not, the exchange fails as a malformed response.  Returns 1 (ended).
 */
static int
req_switched(struct upstream_req *req, struct http_response_src *src)
{
	struct upstream_conn *c = req->conn;

	req->state = REQ_BODY;
	req->head_sent = true;
	if (src->buf == NULL && src->off < src->len) {
		if (evbuffer_add(c->in, src->mem + src->off,
		    src->len - src->off) != 0) {
			req_finish(req, UPSTREAM_ERR_NOMEM, "out of memory");
			return 1;
		}
		src->off = src->len;
	}
	if (!req_call_head(req))
		return 1;	/* detached (or cancelled) */
	req_finish(req, UPSTREAM_ERR_PROTOCOL,
	    "101 Switching Protocols not taken");
	return 1;
}

/*
 * Run the parser over what the connection has read.  Returns 0 while the
 * exchange goes on, 1 when it ended (req may be gone).
 */
static int
req_process(struct upstream_req *req, struct http_response_src *src)
{
	enum upstream_parse rc;
	const char *errstr = NULL;

	for (;;) {
		if (req->paused)
			return 0;
		rc = http_response_feed_src(&req->parser, src, req->body,
		    &errstr);
		if (rc == UPSTREAM_PARSE_ERROR) {
			req_finish(req, UPSTREAM_ERR_PROTOCOL, errstr);
			return 1;
		}
		if (rc == UPSTREAM_PARSE_HEAD && req->parser.resp.status == 101)
			return req_switched(req, src);
		if (rc == UPSTREAM_PARSE_HEAD) {
			req->state = REQ_BODY;
			req->head_sent = true;
			if (!req_call_head(req))
				return 1;
			continue;
		}
		if (evbuffer_get_length(req->body) > 0 &&
		    req->cbs->body != NULL) {
			if (!req_call_body(req))
				return 1;
			if (req->paused)
				return 0;
		}
		if (rc == UPSTREAM_PARSE_DONE) {
			req_complete(req, src);
			return 1;
		}
		return 0;
	}
}

static int
req_read(struct upstream_req *req, struct http_response_src *src)
{
	struct upstream_conn *c = req->conn;
	struct upstream_pool *pool = req->pool;

	if (!req->got_byte) {
		if (http_response_src_avail(src) == 0)
			return 0;
		req->got_byte = true;
		req->first_byte_ns = util_mono_ns();
		if (req->keep_copy) {
			/* No retry from now on: drop our reference. */
			evbuffer_drain(req->reqbuf,
			    evbuffer_get_length(req->reqbuf));
			req->keep_copy = false;
		}
	}
	if (req->orphan) {
		struct timeval tv = { UPSTREAM_DRAIN_MS / 1000,
		    (UPSTREAM_DRAIN_MS % 1000) * 1000 };

		conn_arm(c, &tv, true);
	} else if (!req->paused)
		conn_arm(c, &pool->timeout_tv, pool->has_timeout_tv);
	return req_process(req, src);
}

/* The input of a connection as a parser source. */
static void
conn_src(struct upstream_conn *c, struct http_response_src *src)
{
	src->buf = c->bev != NULL ? bufferevent_get_input(c->bev) : c->in;
	src->mem = NULL;
	src->len = src->off = 0;
}

static void
upstream_read_cb(struct bufferevent *bev, void *arg)
{
	struct upstream_conn *c = arg;

	if (c->state == CONN_IDLE) {
		/* RFC 9112 9.3: unsolicited bytes or EOF; not reusable. */
		conn_close(c, "idle connection readable");
		return;
	}
	if (c->req != NULL && c->state == CONN_BUSY) {
		struct http_response_src src;

		conn_src(c, &src);
		(void)req_read(c->req, &src);
	}
}

/* The peer closed (or reset) the connection of a busy exchange. */
static void
req_eof(struct upstream_req *req, short what, int err)
{
	const char *errstr;
	bool reset = (what & BEV_EVENT_ERROR) != 0;

	if (!req->got_byte && req->reused && req->retryable &&
	    !req->retried) {
		/* A stale keep-alive connection: send again, once. */
		log_debug("upstream %s: reused connection closed, retrying",
		    req->pool->name);
		req_release_conn(req, false, "stale keep-alive connection");
		req->retried = true;
		req->reused = false;
		req->keep_copy = false;
		if (conn_open(req, &errstr) != 0)
			req_done(req, UPSTREAM_ERR_CONNECT, errstr);
		return;
	}
	if (!reset && http_response_eof(&req->parser, &errstr) == 0) {
		req_complete(req, NULL);
		return;
	}
	if (reset) {
		log_debug("upstream %s: connection error: %s",
		    req->pool->name, strerror(err));
		errstr = "upstream connection reset";
	} else
		errstr = "upstream closed the connection before the response "
		    "was complete";
	req_finish(req, UPSTREAM_ERR_RESET, errstr);
}

static const char *
tls_failure(struct upstream_conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	unsigned long e;
	long vr;
	char *errs;

	while ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
		char buf[256];

		ERR_error_string_n(e, buf, sizeof buf);
		log_debug("upstream %s: TLS: %s", c->pool->name, buf);
	}
	if (ERR_peek_error() != 0) {
		errs = tls_errors();
		log_debug("upstream %s: TLS: %s", c->pool->name, errs);
		free(errs);
	}
	if (ssl != NULL && (vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		log_debug("upstream %s: certificate: %s", c->pool->name,
		    X509_verify_cert_error_string(vr));
		return "upstream TLS certificate verification failed";
	}
	return "upstream TLS handshake failed";
}

static void
upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct upstream_conn *c = arg;
	struct upstream_req *req = c->req;
	struct http_response_src src;

	if (c->state == CONN_IDLE) {
		conn_close(c, "idle connection closed by the upstream");
		return;
	}
	if (c->state == CONN_HANDSHAKE) {
		if (what & BEV_EVENT_CONNECTED) {
			conn_ready(c);
			return;
		}
		req_finish(req, UPSTREAM_ERR_TLS, tls_failure(c));
		return;
	}
	if (what & BEV_EVENT_CONNECTED)
		return;
	conn_src(c, &src);
	if (http_response_src_avail(&src) > 0 && !req->paused &&
	    req_read(req, &src) != 0)
		return;
	if (req->paused) {
		/* Seen again when the caller resumes. */
		c->eof_pending = what;
		return;
	}
	req_eof(req, what, errno);
}

/*
 * http: the socket is readable.  Reads go to the pool's scratch buffer
 * and are parsed from there when nothing older waits in c->in and the
 * parser is reading lines (the common case: the whole response head, no
 * evbuffer chain allocated for it); body reads, and reads after a partial
 * line or a pause, go to c->in, whose chains then move to the body
 * without copying.  What the exchange leaves unparsed is kept in c->in.
 */
static void
upstream_sock_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_conn *c = arg;
	struct upstream_pool *pool = c->pool;
	struct upstream_req *req = c->req;
	struct evbuffer_iovec v[2];
	struct http_response_src src;
	enum parser_state ps;
	ssize_t n;
	int nv, err;

	if (c->state == CONN_IDLE) {
		/* RFC 9112 9.3: unsolicited bytes or EOF; not reusable. */
		conn_close(c, "idle connection readable");
		return;
	}
	if (req == NULL || c->state != CONN_BUSY || req->paused)
		return;
	ps = req->parser.state;
	if (evbuffer_get_length(c->in) == 0 && (ps == PS_STATUS ||
	    ps == PS_HEADERS || ps == PS_CHUNK_SIZE || ps == PS_TRAILERS)) {
		do
			n = recv(fd, pool->scratch, UPSTREAM_READ_SIZE, 0);
		while (n == -1 && errno == EINTR);
		src.buf = NULL;
		src.mem = pool->scratch;
		src.len = n > 0 ? (size_t)n : 0;
		src.off = 0;
	} else {
		nv = evbuffer_reserve_space(c->in, UPSTREAM_READ_SIZE, v, 2);
		if (nv <= 0) {
			req_finish(req, UPSTREAM_ERR_NOMEM, "out of memory");
			return;
		}
		do
			n = readv(fd, (struct iovec *)v, nv);
		while (n == -1 && errno == EINTR);
		if (n > 0) {
			if (v[0].iov_len > (size_t)n) {
				v[0].iov_len = (size_t)n;
				nv = 1;
			} else
				v[1].iov_len = (size_t)n - v[0].iov_len;
		}
		evbuffer_commit_space(c->in, v, n > 0 ? nv : 0);
		conn_src(c, &src);
	}
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		if (c->werr == 0)
			return;
		/* The request could not be written: as a reset. */
		req_eof(req, BEV_EVENT_ERROR, c->werr);
		return;
	}
	if (n <= 0) {
		err = n == 0 ? 0 : errno;
		req_eof(req, n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR, err);
		return;
	}
	if (req_read(req, &src) != 0)
		return;
	if (src.buf == NULL && src.off < src.len &&
	    evbuffer_add(c->in, src.mem + src.off, src.len - src.off) != 0)
		req_finish(req, UPSTREAM_ERR_NOMEM, "out of memory");
}

/* http: the rest of the request can be written. */
static void
upstream_sock_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_conn *c = arg;

	if (c->req == NULL || c->state != CONN_BUSY) {
		conn_wev(c, false);
		return;
	}
	conn_flush(c);
}

static void
upstream_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_conn *c = arg;

	if (c->state == CONN_IDLE) {
		conn_close(c, "idle timeout");
		return;
	}
	req_finish(c->req, UPSTREAM_ERR_TIMEOUT,
	    c->state == CONN_HANDSHAKE ? "upstream TLS handshake timed out" :
	    "upstream response timed out");
}

static void
upstream_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_req *req = arg;
	struct upstream_conn *c = req->conn;
	struct http_response_src src;
	short eof;

	if (req->pending_errstr != NULL) {
		req_done(req, req->pending_err, req->pending_errstr);
		return;
	}
	/* Resumed: parse what was read while paused, then a pending EOF. */
	if (c == NULL || c->state != CONN_BUSY || req->paused)
		return;
	conn_src(c, &src);
	if (req_read(req, &src) != 0 || req->paused)
		return;
	if ((eof = c->eof_pending) != 0) {
		c->eof_pending = 0;
		req_eof(req, eof, errno);
	}
}

/* Start an exchange. */
struct upstream_req *
upstream_request(struct upstream_pool *pool, struct evbuffer *request,
    bool is_head, bool retryable, const struct upstream_cbs *cbs, void *arg)
{
	struct upstream_req *req;
	struct upstream_conn *c;
	const char *errstr;

	if ((req = TAILQ_FIRST(&pool->free_reqs)) != NULL) {
		TAILQ_REMOVE(&pool->free_reqs, req, entry);
		pool->nfree--;
	} else {
		if ((req = malloc(sizeof *req)) == NULL)
			return NULL;
		http_response_setup(&req->parser);
		req->reqbuf = evbuffer_new();
		req->body = evbuffer_new();
		if (req->reqbuf == NULL || req->body == NULL) {
			if (req->reqbuf != NULL)
				evbuffer_free(req->reqbuf);
			if (req->body != NULL)
				evbuffer_free(req->body);
			free(req);
			return NULL;
		}
	}
	req->pool = pool;
	req->conn = NULL;
	req->cbs = cbs;
	req->arg = arg;
	req->state = REQ_CONNECTING;
	req->pending_err = UPSTREAM_OK;
	req->pending_errstr = NULL;
	req->busy = 0;
	req->is_head = is_head;
	req->retryable = retryable;
	req->retried = false;
	req->reused = false;
	req->paused = false;
	req->head_sent = false;
	req->got_byte = false;
	req->keep_copy = false;
	req->orphan = false;
	req->upgrade = false;
	req->drained = 0;
	req->wrote = 0;
	req->sent_ns = 0;
	req->first_byte_ns = 0;
	req->try_armed = false;
	http_response_init(&req->parser, is_head);
	event_assign(&req->defer, pool->base, -1, 0, upstream_defer_cb, req);
	pool->refs++;
	evbuffer_add_buffer(req->reqbuf, request);
	req->reqlen = evbuffer_get_length(req->reqbuf);

	if ((c = TAILQ_FIRST(&pool->idle)) != NULL) {
		TAILQ_REMOVE(&pool->idle, c, entry);
		pool->nidle--;
		c->state = CONN_BUSY;
		c->req = req;
		c->eof_pending = 0;
		req->conn = c;
		req->reused = true;
		req_send(req);
		conn_ready(c);
	} else if (conn_open(req, &errstr) != 0)
		req_fail_later(req, UPSTREAM_ERR_CONNECT, errstr);
	return req;
}

/* Stop reading the response. */
void
upstream_req_pause(struct upstream_req *req)
{
	struct upstream_conn *c = req->conn;

	if (req->paused || req->state >= REQ_DONE)
		return;
	req->paused = true;
	if (c != NULL && c->state == CONN_BUSY) {
		if (c->bev != NULL)
			bufferevent_disable(c->bev, EV_READ);
		else
			conn_rev(c, false);
		event_del(&c->ev);
	}
}

/* Read again; what was read meanwhile is handled on the next turn. */
void
upstream_req_resume(struct upstream_req *req)
{
	struct upstream_conn *c = req->conn;
	struct upstream_pool *pool = req->pool;

	if (!req->paused || req->state >= REQ_DONE)
		return;
	req->paused = false;
	if (c != NULL && c->state == CONN_BUSY) {
		if (c->bev != NULL)
			bufferevent_enable(c->bev, EV_READ);
		else
			conn_rev(c, true);
		conn_arm(c, &pool->timeout_tv, pool->has_timeout_tv);
		event_active(&req->defer, EV_TIMEOUT, 1);
	}
}

/*
 * The callbacks of an orphan: the client is gone, the response is read and
 * dropped so that the connection can go back to the pool.
 */
static int
orphan_head_cb(struct upstream_req *req, const struct upstream_response *r,
    void *arg)
{
	(void)req;
	(void)r;
	(void)arg;
	return 0;
}

static void
orphan_body_cb(struct upstream_req *req, struct evbuffer *buf, void *arg)
{
	size_t n = evbuffer_get_length(buf);

	(void)arg;
	evbuffer_drain(buf, n);
	req->drained += n;
	if (req->drained > UPSTREAM_DRAIN_MAX)	/* cheaper to close */
		req_abandon(req, "orphan response too large");
}

static void
orphan_done_cb(struct upstream_req *req, enum upstream_err err,
    const char *errstr, bool head_sent, void *arg)
{
	(void)req;
	(void)err;
	(void)errstr;
	(void)head_sent;
	(void)arg;
}

static const struct upstream_cbs orphan_cbs = {
	orphan_head_cb, orphan_body_cb, orphan_done_cb,
};

/*
 * Whether a cancelled exchange should rather finish without its owner:
 * its request is all out on a live connection that the pool would keep.
 * Closing it there (as we did) cost a new connection for every client
 * that went away with a request in flight, e.g. each of a load
 * generator's connections at the end of a run (issue 11: 498 upstream
 * connections where nginx, which reads the response first, opened 40).
 */
static bool
req_can_orphan(const struct upstream_req *req)
{
	const struct upstream_conn *c = req->conn;
	const struct upstream_pool *pool = req->pool;

	if (req->busy > 0 || req->orphan || c == NULL ||
	    c->state != CONN_BUSY || pool->dying ||
	    pool->nidle >= pool->keepalive ||
	    (req->state != REQ_WAIT_HEAD && req->state != REQ_BODY))
		return false;
	if (c->bev != NULL)
		return evbuffer_get_length(bufferevent_get_output(c->bev)) ==
		    0;
	return c->werr == 0 && req->wrote == evbuffer_get_length(req->reqbuf);
}

/*
 * Abandon the exchange without further callbacks.  When the connection is
 * worth keeping, the response is still read (at most UPSTREAM_DRAIN_MAX
 * bytes, gaps of UPSTREAM_DRAIN_MS) and dropped, then the connection goes
 * back to the pool; otherwise it is closed now.
 */
void
upstream_req_cancel(struct upstream_req *req)
{
	if (req == NULL || req->state >= REQ_DONE || req->orphan)
		return;
	if (req->try_armed) {
		event_del(&req->try_ev);
		req->try_armed = false;
	}
	if (req_can_orphan(req)) {
		struct timeval tv = { UPSTREAM_DRAIN_MS / 1000,
		    (UPSTREAM_DRAIN_MS % 1000) * 1000 };

		log_debug("upstream %s: exchange cancelled, reading the "
		    "response for the pool", req->pool->name);
		req->orphan = true;
		TAILQ_INSERT_TAIL(&req->pool->orphans, req, entry);
		req->retryable = false;
		req->cbs = &orphan_cbs;
		req->arg = NULL;
		if (req->paused)
			upstream_req_resume(req);
		conn_arm(req->conn, &tv, true);
		return;
	}
	req_abandon(req, "exchange cancelled");
}

/* End the exchange now, without callbacks; its connection is closed. */
static void
req_abandon(struct upstream_req *req, const char *why)
{
	req->state = REQ_CANCELLED;
	req_release_conn(req, false, why);
	event_del(&req->defer);
	if (req->busy == 0)
		req_free(req);
}

/* A 101 may answer this exchange (upstream.h). */
void
upstream_req_expect_upgrade(struct upstream_req *req)
{
	req->upgrade = true;
	http_response_expect_upgrade(&req->parser);
}

/*
 * Inside head() of a 101: the connection leaves the pool for good, as a
 * bufferevent the caller owns (upstream.h).  http: a new socket
 * bufferevent on the descriptor, with the bytes read after the head;
 * https: the connection's own bufferevent_openssl, those bytes already in
 * its input.  The exchange ends like a cancelled one, without closing.
 */
struct bufferevent *
upstream_req_detach(struct upstream_req *req)
{
	struct upstream_conn *c = req->conn;
	struct upstream_pool *pool = req->pool;
	struct bufferevent *bev;
	int rc;

	if (c == NULL || !req->upgrade || req->state != REQ_BODY ||
	    req->parser.resp.status != 101)
		return NULL;
	event_del(&c->ev);
	if (c->bev != NULL) {
		bev = c->bev;
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		bufferevent_disable(bev, EV_READ | EV_WRITE);
		c->bev = NULL;
	} else {
		if (c->sock_events) {
			event_del(&c->rev);
			event_del(&c->wev);
			c->sock_events = false;
		}
		bev = bufferevent_socket_new(pool->base, c->fd,
		    BEV_OPT_CLOSE_ON_FREE);
		if (bev == NULL) {
			req_abandon(req, "out of memory for a tunnel");
			return NULL;
		}
		/* A bufferevent's input takes bytes only from its socket
		 * (its end is frozen): thawed for the ones we read. */
		evbuffer_unfreeze(bufferevent_get_input(bev), 0);
		rc = evbuffer_add_buffer(bufferevent_get_input(bev), c->in);
		evbuffer_freeze(bufferevent_get_input(bev), 0);
		if (rc != 0) {
			bufferevent_free(bev);	/* closes the descriptor */
			c->fd = -1;
			req_abandon(req, "out of memory for a tunnel");
			return NULL;
		}
	}
	c->fd = -1;
	log_debug("upstream %s: connection switched protocols", pool->name);
	req_abandon(req, "switched protocols");	/* frees c, not the socket */
	return bev;
}

/* When the request started going out on a ready connection. */
uint64_t
upstream_req_sent_ns(const struct upstream_req *req)
{
	return req->sent_ns;
}

/* When the first response byte arrived. */
uint64_t
upstream_req_first_byte_ns(const struct upstream_req *req)
{
	return req->first_byte_ns;
}

/* Whether the exchange ran on a reused connection. */
bool
upstream_req_reused(const struct upstream_req *req)
{
	return req->reused;
}

unsigned
upstream_req_attempts(const struct upstream_req *req)
{
	return req->retried ? 2 : 1;
}

/* Connections opened since the pool was created. */
uint64_t
upstream_pool_connects(const struct upstream_pool *pool)
{
	return pool->connects;
}

/* Idle connections kept now. */
unsigned
upstream_pool_idle(const struct upstream_pool *pool)
{
	return pool->nidle;
}

/* Text for an error kind. */
const char *
upstream_err_name(enum upstream_err err)
{
	switch (err) {
	case UPSTREAM_OK:
		return "ok";
	case UPSTREAM_ERR_CONNECT:
		return "connect";
	case UPSTREAM_ERR_TIMEOUT:
		return "timeout";
	case UPSTREAM_ERR_RESET:
		return "reset";
	case UPSTREAM_ERR_PROTOCOL:
		return "protocol";
	case UPSTREAM_ERR_TLS:
		return "tls";
	case UPSTREAM_ERR_NOMEM:
		return "nomem";
	}
	return "unknown";
}

/* The per-try timeout fired before the response head. */
static void
upstream_try_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_req *req = arg;

	(void)fd;
	(void)what;
	req->try_armed = false;
	if (req->state >= REQ_BODY || req->orphan)
		return;
	req_finish(req, UPSTREAM_ERR_TIMEOUT, "upstream per-try timeout");
}

void
upstream_req_set_try_timeout(struct upstream_req *req, uint64_t ms)
{
	struct timeval tv;

	if (ms == 0 || req->state >= REQ_BODY)
		return;
	ms_to_tv(ms, &tv);
	if (!req->try_armed)
		evtimer_assign(&req->try_ev, req->pool->base, upstream_try_cb,
		    req);
	req->try_armed = evtimer_add(&req->try_ev, &tv) == 0;
}

bool
upstream_req_take_request(struct upstream_req *req, struct evbuffer *dst)
{
	struct evbuffer_iovec v;

	if (req->got_byte || req->reqlen == 0 ||
	    evbuffer_get_length(req->reqbuf) != req->reqlen)
		return false;
	/*
	 * Copied, not moved: on https a closed connection's output may
	 * still reference these chains.  A retry is rare; the copy is one
	 * request.
	 */
	if (evbuffer_reserve_space(dst, (ev_ssize_t)req->reqlen, &v, 1) != 1)
		return false;
	if (evbuffer_copyout(req->reqbuf, v.iov_base, req->reqlen) !=
	    (ev_ssize_t)req->reqlen)
		return false;
	v.iov_len = req->reqlen;
	return evbuffer_commit_space(dst, &v, 1) == 0;
}
