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
	int64_t reject_log_sec;		/* rate limit of refusal logs */
	unsigned reject_log_n;
};

enum conn_state {
	CONN_ST_HEAD = 0,		/* waiting for a complete head */
	CONN_ST_BODY,			/* head indexed, collecting the body */
	CONN_ST_BUSY,			/* handed to the pipeline */
};

struct server_conn {
	struct conn_front *front;	/* the worker's front-end */
	TAILQ_ENTRY(server_conn) entry;	/* the worker's connections */
	int fd;
	struct bufferevent *bev;	/* TLS only */
	struct evbuffer *out;		/* plain: ours; TLS: the bev's */
	struct event rev;		/* plain: EV_READ|EV_PERSIST */
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
	bool reading;			/* rev armed / bev reading */
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
	bool h2_sniff;			/* h2c: the preface may come first */
	size_t h2_held;			/* ibuf[0, h2_held): a preface
					 * prefix, not fed to the guard */
	bool in_process;
	bool close_deferred;
	unsigned phase_timeout;		/* which timeout is armed */
	uint64_t wprogress;		/* bumped on every write */
	uint64_t wprogress_armed;
	char client[64];		/* "ip:port" */
	char client_ip[48];
};

/* A connection accepted on fd by front f (ctx: TLS listener), or NULL. */
struct server_conn *conn_new(struct conn_front *f, int fd,
    const struct sockaddr *, socklen_t, SSL_CTX *ctx);
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
