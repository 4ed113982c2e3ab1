/*
 * conn.h -- a client connection of a worker: our own HTTP/1.1 server
 * side (reading, the framing guard, request heads and bodies, pipelining,
 * keep-alive, timeouts, writing), on a raw non-blocking socket, or on a
 * bufferevent_openssl for TLS listeners.  The HTTP/1.1 front-end of the
 * exchange door (exchange.h).
 *
 * Every byte a client sends goes through the strict framing guard
 * (framing.c) once; a complete, accepted head is then indexed in place
 * (no copy, no allocation per header) and handed, with its whole body,
 * to the pipeline through the struct exchange_pipeline table the worker
 * was wired with (server.c).  The pipeline answers through the
 * connection's struct exchange_front; conn.c serialises the head it gets
 * (status, fields, framing) into HTTP/1.1 bytes itself.
 *
 * Ownership: struct server_conn is created at accept and freed by its one
 * teardown, conn_close(), which is never run from inside a call from the
 * pipeline (it is deferred to the next loop turn there).  struct
 * conn_front is the front-end's per-worker context (scratch field index,
 * idle input buffers, the refusal log limiter, the pipeline it talks to).
 */
#ifndef TS_CONN_H
#define TS_CONN_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>

#include "config.h"
#include "exchange.h"
#include "framing.h"

struct metrics;
struct server_conn;
TAILQ_HEAD(server_conn_list, server_conn);
struct h2_conn;
TAILQ_HEAD(h2_conn_list, h2_conn);
struct conn_slab;
LIST_HEAD(conn_slab_list, conn_slab);

/*
 * What the worker hears from its connections (server.c's, so that conn.c
 * calls nothing in server.c by name); owner is conn_front.owner.
 */
struct conn_events {
	/* An exchange handed to the pipeline ended (inflight is down). */
	void (*request_done)(void *owner);
	/* A connection was closed and freed. */
	void (*closed)(void *owner);
};

/*
 * The front-end's per-worker context (embedded in struct worker, touched
 * by that worker's thread only): what its connections share.  The worker
 * sets it up with conn_front_init() and hands it each configuration
 * generation's limits with conn_front_set_gen().
 */
struct conn_front {
	struct event_base *base;		/* the worker's loop */
	struct metrics *metrics;		/* the worker's counters */
	const struct exchange_pipeline *pipe;	/* wired by server.c */
	void *pipe_arg;			/* the pipeline's worker context */
	const struct conn_events *events;	/* wired by server.c */
	void *owner;			/* events' argument (the worker) */
	const struct config *cfg;	/* current generation's (limits) */
	uint64_t busy_timeout_ms;	/* client timeout while we proxy */
	struct server_conn_list conns;	/* open connections */
	struct h2_conn_list h2conns;	/* open HTTP/2 connections (h2.c) */
	uint64_t inflight;		/* exchanges with the pipeline */
	bool draining;			/* close each connection after its
					 * reply */
	struct http_field *fields;	/* scratch: the head being indexed */
	size_t fields_cap;
	void *ibuf_free;		/* idle input buffers */
	size_t ibuf_free_n;
	struct conn_req *req_free;	/* request states not in use */
	size_t req_free_n;
	size_t n_lingering;		/* states kept between requests */
	struct server_conn_list idle;	/* detached, oldest first */
	struct conn_slab_list slabs;	/* of server_conns, with a free slot */
	struct conn_slab *slab_spare;	/* one empty slab kept */
	struct event idle_ev;		/* closes the expired ones */
	int64_t reject_log_sec;		/* rate limit of refusal logs */
	unsigned reject_log_n;
};

/*
 * A client connection as the worker holds it between requests (nginx's
 * idle keep-alive connection: the socket, a small struct, a read event).
 * Everything a request needs (the framing guard and its captures, the
 * input buffer, the exchange, the output buffer, the timers) is a
 * struct conn_req (conn.c) that the connection takes from the worker's
 * free list when bytes arrive and gives back once the answer has left
 * and nothing of a next request was read; a TLS connection keeps its
 * own for its life (its bufferevent is not taken apart between
 * requests).  While detached, the connection waits in conn_front.idle,
 * oldest first, and one timer of the worker closes the ones whose
 * idle_timeout has passed.
 */
struct conn_req;
struct server_conn {
	struct conn_front *front;	/* the worker's front-end */
	TAILQ_ENTRY(server_conn) entry;	/* the worker's connections */
	TAILQ_ENTRY(server_conn) idle_entry; /* front->idle (r == NULL) */
	struct conn_req *r;		/* the request state, or NULL: idle */
	struct event rev;		/* plain: EV_READ|EV_PERSIST */
	int fd;
	bool tls;
	bool rev_set;			/* rev assigned (plain, or TLS behind
					 * a PROXY header) */
	bool reading;			/* rev armed / bev reading */
	bool h2_sniff;			/* no byte read yet: h2c may come */
	int64_t idle_since_ms;		/* detached then (monotonic) */
	char client[56];		/* "ip:port" ("[v6]:port": 55 bytes) */
	char client_ip[48];
};

/*
 * A connection accepted on fd by front f (ctx: TLS listener), or NULL.
 * proxy_protocol: its first bytes are a PROXY v1/v2 header (read before
 * the TLS handshake on a TLS listener); without one it is closed.
 */
struct server_conn *conn_new(struct conn_front *f, int fd,
    const struct sockaddr *, socklen_t, SSL_CTX *ctx, bool proxy_protocol);
/* Tear c down now (worker exit, drain of an idle connection). */
void conn_close(struct server_conn *);
/* True when c has no request in progress (nothing of one read). */
bool conn_idle(const struct server_conn *);

/*
 * The front-end's context: set up on base, counting into metrics
 * (requests go to pipe with arg, owner hears events), then given the
 * configuration of each generation (limits, timeouts); free its caches.
 */
void conn_front_init(struct conn_front *, struct event_base *,
    struct metrics *, const struct exchange_pipeline *, void *arg,
    const struct conn_events *, void *owner);
void conn_front_set_gen(struct conn_front *, const struct config *,
    uint64_t busy_timeout_ms);
void conn_front_free(struct conn_front *);

#endif /* TS_CONN_H */
