/*
 * conn.h -- a client connection of a worker: our own HTTP/1.1 server
 * side (reading, the framing guard, request heads and bodies, pipelining,
 * keep-alive, timeouts, writing), on a raw non-blocking socket, or on a
 * bufferevent_openssl for TLS listeners.
 *
 * Every byte a client sends goes through the strict framing guard
 * (framing.c) once; a complete, accepted head is then indexed in place
 * (no copy, no allocation per header) and handed to proxy_handle() with
 * its whole body.  proxy.c writes the response into conn_output() and
 * calls conn_reply_end(); the connection tells proxy.c when the reply
 * left (proxy_client_complete), when the output drained
 * (proxy_client_drained) and when the client went away
 * (proxy_client_gone).
 *
 * Ownership: struct server_conn is created at accept and freed by its one
 * teardown, conn_close(), which is never run from inside a call from
 * proxy.c (it is deferred to the next loop turn there).
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

#include "framing.h"

struct worker;
struct proxy_req;

enum conn_method {
	CONN_M_GET = 0,
	CONN_M_HEAD,
	CONN_M_POST,
	CONN_M_PUT,
	CONN_M_DELETE,
	CONN_M_OPTIONS,
	CONN_M_TRACE,
	CONN_M_CONNECT,
	CONN_M_PATCH,
	CONN_M_OTHER,
};

/* The request handed to proxy_handle(); valid during that call only. */
struct conn_request {
	enum conn_method method;
	const char *method_name;	/* as sent (a token) */
	const char *target;		/* request-target as sent */
	int minor;			/* HTTP/1.minor */
	const struct framing_field *fields;
	size_t n_fields;
	struct evbuffer *body;		/* the whole body (dechunked); NULL
					 * when there is none */
};

enum conn_state {
	CONN_ST_HEAD = 0,		/* waiting for a complete head */
	CONN_ST_BODY,			/* head indexed, collecting the body */
	CONN_ST_BUSY,			/* handed to proxy.c */
};

struct server_conn {
	struct worker *worker;
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
	struct proxy_req *active;	/* request being processed, or NULL */

	/* Input: ibuf[ioff, ilen) is unprocessed; ibuf[0, ioff) done. */
	char *ibuf;
	size_t ioff, ilen, icap;
	uint64_t base_off;		/* stream offset of ibuf[ioff] */
	uint64_t heads_taken;		/* heads indexed so far */
	uint64_t reject_at;		/* stream offset of the refused request */

	/* The request being read (valid in CONN_ST_BODY). */
	struct conn_request req;
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
	struct framing_field *fields;	/* the head's index while its body
					 * comes (else the worker's) */
	size_t fields_cap;

	bool tls;
	bool reading;			/* rev armed / bev reading */
	bool wpending;			/* plain: wev armed */
	bool eof;			/* the client finished sending */
	bool broken;			/* a write failed: close */
	bool rejected;			/* the guard refused the stream */
	bool refusing;			/* our refusal is being written */
	bool reply_done;		/* reply complete, output not yet */
	bool want_drain;		/* tell proxy.c when output drained */
	bool pending_close;		/* close once the active request ends */
	bool closing;			/* closed after the output drains */
	bool in_process;
	bool close_deferred;
	unsigned phase_timeout;		/* which timeout is armed */
	uint64_t wprogress;		/* bumped on every write */
	uint64_t wprogress_armed;
	char client[64];		/* "ip:port" */
	char client_ip[48];
};

TAILQ_HEAD(server_conn_list, server_conn);

/* A connection accepted on fd by w (ctx: TLS listener), or NULL. */
struct server_conn *conn_new(struct worker *, int fd, const struct sockaddr *,
    socklen_t, SSL_CTX *ctx);
/* Tear c down now (worker exit, drain of an idle connection). */
void conn_close(struct server_conn *);
/* True when c has no request in progress (nothing of one read). */
bool conn_idle(const struct server_conn *);

/* Where proxy.c writes the response of the active request. */
struct evbuffer *conn_output(struct server_conn *);
/* Write what is queued now (plain sockets); the rest when writable. */
void conn_flush(struct server_conn *);
/*
 * The response of the active request is complete in conn_output().
 * Once it has left, proxy_client_complete() runs (maybe from inside this
 * call); close: the connection ends after it.
 */
void conn_reply_end(struct server_conn *, bool close);
/* Call proxy_client_drained() once the output is empty. */
void conn_want_drain(struct server_conn *);
/* Cut the connection (the response cannot be completed). */
void conn_abort(struct server_conn *);
/* Called by server.c when the active request of c finished. */
void conn_request_done(struct server_conn *);

#endif /* TS_CONN_H */
