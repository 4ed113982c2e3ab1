/*
 * exchange.h -- the one door between a client front-end (the HTTP/1.1
 * connection of conn.c today, an HTTP/2 stream later) and the request
 * pipeline (proxy.c): one struct exchange per request/response, and two
 * small callback tables, modelled on upstream.h's.
 *
 * The front-end creates the exchange (conn.c keeps one inside each
 * connection: no allocation per request), fills in the request and hands
 * it to the pipeline through struct exchange_pipeline.  The pipeline
 * answers through struct exchange_front, which travels in the exchange.
 * Neither side sees the other's objects: the pipeline never sees a
 * connection, the front-end never sees a route, a CORS policy or a span.
 * The composition root (server.c) wires the two together.
 *
 * Front-end calls, in order (struct exchange_pipeline, arg: the
 * pipeline's per-worker context):
 *   start(): the request head and (today) its whole body (body_end set).
 *            The head (method, target, fields) is valid during the call
 *            only.  The pipeline keeps its per-request state in x->pipe;
 *            the exchange lasts until complete(), gone() or the
 *            pipeline's abort(), whichever comes first.
 *   body():  more body bytes (end: the last); for a streaming front-end,
 *            never called while body_end is set.  Unused by conn.c today.
 *   drained(): the output went below the mark after body() said stop.
 *   complete(): the reply (after end()) has left; the exchange is over.
 *   gone():  the client went away before complete(); the exchange is over.
 *   refuse(): an answer for a request the front-end refused before it
 *            existed (the framing guard, a body timeout, memory): x
 *            holds what is known (target, Host and Origin fields); the
 *            pipeline answers through x->front within the call and keeps
 *            nothing (x->pipe NULL).
 *
 * Pipeline calls (struct exchange_front):
 *   head():  the response head (status, fields, body length); a small
 *            complete body may come with it (head->body).
 *   body():  body bytes in buf (moved out); returns true when the
 *            front-end's output is above its mark: the pipeline stops
 *            producing until drained() (back-pressure).
 *   end():   the reply is complete; complete() follows once it left.
 *   abort(): the reply cannot be completed (cut the client); the
 *            exchange is over for both sides, no pipeline callback
 *            follows for it.
 *
 * The rule against re-entry: no call chain comes back to the object that
 * started it on the same stack.  A front-end callback (head, body, end,
 * abort) only queues bytes or schedules work: it never runs a pipeline
 * callback from inside itself (end() defers complete() to the next loop
 * step, a failed write defers the close and its gone(), abort() the
 * close).  The
 * pipeline may answer from inside start() or refuse() (that is the
 * front-end's callbacks, which come back to nothing), but never calls the
 * front-end from complete() or gone().  So neither side's teardown can
 * run while the other still holds it.  Teardown stays single: the
 * exchange's pipeline state ends in the pipeline's one close function
 * (after complete(), gone() or its own abort()), the connection in
 * conn_close(); the exchange struct itself is the front-end's.
 * test_conn's "front" cases check the rule with a depth counter.
 */
#ifndef TS_EXCHANGE_H
#define TS_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "common.h"

struct exchange;

/*
 * One header field of a request or response, as the front-end indexed it:
 * name and value NUL-terminated (lengths without the NUL), the name as
 * sent (compare it ASCII case-insensitively), the value without its
 * surrounding OWS.  The bytes belong to whoever made the array.
 */
struct http_field {
	char *name;
	char *value;
	size_t name_len;
	size_t value_len;
};

enum exchange_method {
	EXCHANGE_M_GET = 0,
	EXCHANGE_M_HEAD,
	EXCHANGE_M_POST,
	EXCHANGE_M_PUT,
	EXCHANGE_M_DELETE,
	EXCHANGE_M_OPTIONS,
	EXCHANGE_M_TRACE,
	EXCHANGE_M_CONNECT,
	EXCHANGE_M_PATCH,
	EXCHANGE_M_OTHER,
};

/* The client's protocol: access-log field, metrics label. */
enum exchange_protocol {
	EXCHANGE_P_HTTP11 = 0,		/* conn.c (HTTP/1.0 and 1.1) */
	EXCHANGE_P_H2,			/* h2.c: one stream */
};

/* A response field: borrowed name and value (not NUL-terminated). */
struct exchange_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* A response head; everything borrowed for the call only. */
struct exchange_head {
	int status;			/* 100..999 */
	const char *reason;		/* NULL: the standard phrase */
	const struct exchange_field *fields;	/* end-to-end fields only */
	size_t n_fields;
	/*
	 * Body bytes that follow: the fields carry Content-Length when
	 * framed is set (or there is no body), else the front-end frames
	 * the body itself (HTTP/1.1 chunked, an HTTP/2 END_STREAM).
	 */
	bool no_body;			/* HEAD, 204, 304, or empty */
	bool framed;
	bool close;			/* end the client connection after */
	const char *body;		/* a complete small body, or NULL */
	size_t body_len;
};

struct exchange_front {
	void (*head)(struct exchange *, const struct exchange_head *);
	bool (*body)(struct exchange *, struct evbuffer *buf);
	void (*end)(struct exchange *);
	void (*abort)(struct exchange *);
};

struct exchange_pipeline {
	void (*start)(void *arg, struct exchange *);
	void (*body)(struct exchange *, struct evbuffer *buf, bool end);
	void (*drained)(struct exchange *);
	void (*complete)(struct exchange *);
	void (*gone)(struct exchange *);
	void (*refuse)(void *arg, struct exchange *, int status,
	    const char *message);
};

struct exchange {
	/* The request (valid until start() returns, except as noted). */
	enum exchange_method method;
	const char *method_name;	/* as sent (a token) */
	const char *target;		/* request-target as sent */
	int major, minor;		/* HTTP/major.minor */
	const struct http_field *fields;
	size_t n_fields;
	struct evbuffer *body;		/* body bytes so far, or NULL */
	bool body_end;			/* body holds the whole body */

	/* The client (valid for the life of the exchange). */
	const char *client;		/* "ip:port", for logs */
	const char *client_ip;
	bool tls;
	const char *sni;		/* NULL when unknown (conn.c: */
	const char *alpn;		/* not filled in yet) */
	enum exchange_protocol protocol;

	const struct exchange_front *front;
	void *front_ctx;		/* the front-end's (conn.c: connection) */
	void *pipe;			/* the pipeline's per-request state */
};

/* The standard reason phrase of status ("Not Found"), or "Error". */
const char *exchange_reason(int status);
/* "http/1.1" or "h2" (the ALPN names, RFC 7301 and RFC 9113 3.1). */
const char *exchange_protocol_name(enum exchange_protocol);

#endif /* TS_EXCHANGE_H */
