/*
 * upstream.h -- per-worker keep-alive connections to one backend, spoken
 * to by our own strict HTTP/1.1 client (plain sockets driven directly,
 * bufferevent_openssl for https), not evhttp_connection (see "Performance
 * decisions" in ARCHITECTURE.md).
 *
 * One struct upstream_pool exists per (worker, route, config generation).
 * It owns its idle connections (at most config_upstream.keepalive).  An
 * exchange is started with upstream_request() and reported through three
 * callbacks; all of them run on the worker's event base, never from inside
 * upstream_request() itself.
 *
 * Callback contract:
 *   head(): the final response head (1xx responses are read and skipped).
 *           The headers list belongs to the exchange, but entries may be
 *           moved out with TAILQ_REMOVE; whoever removes an entry owns it
 *           (entries are malloc'ed exactly as evhttp allocates them, so
 *           they can be inserted into an evhttp header list and freed by
 *           evhttp).  Entries must not be inserted into the list nor
 *           changed in place: what is left in it is recycled for later
 *           responses.  Return 0 to go on, -1 to abort: the exchange is
 *           then cancelled as by upstream_req_cancel() and no callback
 *           follows.
 *   body(): de-chunked body bytes are in buf; move or drain what you take.
 *           Data not taken stays for the next call.  May be called many
 *           times; never after done().
 *   done(): the exchange is over.  err is UPSTREAM_OK when the whole
 *           response was read, else the failure and a static errstr.
 *           head_sent tells whether head() ran before the failure.  The
 *           struct upstream_req is freed right after done() returns.
 * After upstream_req_cancel() no callback runs at all.
 */
#ifndef TS_UPSTREAM_H
#define TS_UPSTREAM_H

#include <sys/queue.h>	/* TAILQ_* for the header lists */
#include <sys/socket.h>	/* struct sockaddr_storage */

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "common.h"
#include "config.h"
#include "http_response.h"	/* the response, its parser */

struct upstream_pool;
struct upstream_req;

enum upstream_err {
	UPSTREAM_OK = 0,
	UPSTREAM_ERR_CONNECT,	/* refused, unreachable, DNS: 502 */
	UPSTREAM_ERR_TIMEOUT,	/* connect or response timeout: 504 */
	UPSTREAM_ERR_RESET,	/* closed or reset mid-exchange: 502 */
	UPSTREAM_ERR_PROTOCOL,	/* malformed response: 502 */
	UPSTREAM_ERR_TLS,	/* handshake or verification failed: 502 */
	UPSTREAM_ERR_NOMEM,	/* 503 */
};

struct upstream_cbs {
	int (*head)(struct upstream_req *, const struct upstream_response *,
	    void *arg);
	void (*body)(struct upstream_req *, struct evbuffer *buf, void *arg);
	void (*done)(struct upstream_req *, enum upstream_err,
	    const char *errstr, bool head_sent, void *arg);
};

/* One resolved address of a backend. */
struct upstream_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/*
 * Resolve conf's host and port: a literal IPv4 / IPv6 address without a
 * lookup, a name by getaddrinfo (blocking), every address in the order
 * getaddrinfo gives.  *addrs is a new array (caller frees) of *n >= 1
 * entries.  -1 with *cause set (caller frees) when the host does not
 * resolve.  The main thread calls it when it builds a generation
 * (server.c; later lookups are worker/resolver.c's); the workers never
 * resolve.
 */
int upstream_resolve(const struct config_upstream *conf,
    struct upstream_addr **addrs, size_t *n, char **cause) TS_MUSTCHECK;

/*
 * Create a pool for one backend on base, connecting to the n_addrs
 * addresses (from upstream_resolve; the pool keeps a copy of them all and
 * connects to the first; group.c gives each pool one address).  ssl_ctx is the client context for https
 * upstreams (from tls_client_ctx_new), NULL for http; the pool takes a
 * reference.  Returns NULL with *cause set (caller frees) when conf has no
 * host, n_addrs is 0 or https lacks a context.
 */
struct upstream_pool *upstream_pool_new(struct event_base *base,
    const struct config_upstream *conf, const struct upstream_addr *addrs,
    size_t n_addrs, SSL_CTX *ssl_ctx, char **cause);
/* Close idle connections; in-flight exchanges keep the pool alive until
 * they finish (the last one frees it).  NULL-safe. */
void upstream_pool_free(struct upstream_pool *);

/*
 * Start an exchange.  request holds the complete request as it goes on
 * the wire (head and body, framed with Content-Length); its contents are
 * moved out.  is_head: the method is HEAD (no response body).  retryable:
 * the request may be sent again on a new connection when a reused
 * keep-alive connection turns out to be closed before any response byte
 * arrived.  Returns NULL only when out of memory.
 */
struct upstream_req *upstream_request(struct upstream_pool *,
    struct evbuffer *request, bool is_head, bool retryable,
    const struct upstream_cbs *cbs, void *arg);

/*
 * The request asks to switch protocols (Upgrade: websocket, RFC 9110 7.8):
 * a 101 Switching Protocols may then be its final response (otherwise a
 * 101 fails the exchange as malformed).  Call right after
 * upstream_request().  head() sees the 101 (body UPSTREAM_BODY_NONE) and
 * must take the connection with upstream_req_detach() from inside the
 * call; if it does not, done() follows with UPSTREAM_ERR_PROTOCOL.
 */
void upstream_req_expect_upgrade(struct upstream_req *);
/*
 * From inside head() of a 101 only: the exchange ends (no callback
 * follows, req is not to be used again) and its connection leaves the
 * pool for good, as a bufferevent the caller owns and frees (closing the
 * socket): a socket bufferevent (http) or the bufferevent_openssl
 * (https), disabled and without callbacks, the bytes that followed the
 * 101 head in its input.  NULL when out of memory (the connection is
 * closed and the exchange ended all the same) or when not in that call.
 */
struct bufferevent *upstream_req_detach(struct upstream_req *);

/*
 * Give the exchange ms (0: no limit) from now to get its response head;
 * then it fails with UPSTREAM_ERR_TIMEOUT ("upstream per-try timeout"),
 * whatever the pool's timeouts (routes[].upstream.retry.per_try_timeout).
 */
void upstream_req_set_try_timeout(struct upstream_req *, uint64_t ms);
/*
 * From inside done() of a failed exchange: copy the request's bytes,
 * whole, to dst, for sending them to another server.  False when no
 * longer possible: a response byte arrived, or the bytes left (an https
 * exchange not started retryable).
 */
bool upstream_req_take_request(struct upstream_req *, struct evbuffer *dst);

/* Stop / restart reading the response (client back-pressure). */
void upstream_req_pause(struct upstream_req *);
void upstream_req_resume(struct upstream_req *);
/*
 * Abandon the exchange: no more callbacks, req is not to be used again.
 * When the whole request is out on a connection the pool would keep, the
 * response is still read and dropped in the background (up to 64 KiB,
 * gaps up to 1 s), then the connection goes back to the pool; otherwise
 * it is closed now.
 */
void upstream_req_cancel(struct upstream_req *);

/* Timings for the span: when the connection was ready (request written
 * start) and when the first response byte arrived, monotonic ns; 0 if
 * not yet. */
uint64_t upstream_req_sent_ns(const struct upstream_req *);
uint64_t upstream_req_first_byte_ns(const struct upstream_req *);
/* True when the exchange ran on a reused keep-alive connection. */
bool upstream_req_reused(const struct upstream_req *);
/* Times the request was sent: 2 after a retry on a new connection. */
unsigned upstream_req_attempts(const struct upstream_req *);

/* Connections opened by this pool since creation (tests, metrics). */
uint64_t upstream_pool_connects(const struct upstream_pool *);
/* Idle connections currently kept. */
unsigned upstream_pool_idle(const struct upstream_pool *);

/* Human text for an error kind ("connect", "timeout", ...). */
const char *upstream_err_name(enum upstream_err);

/* Close idle connections after ms without use (default 60000). */
void upstream_pool_set_idle_timeout(struct upstream_pool *, uint64_t ms);

#endif /* TS_UPSTREAM_H */
