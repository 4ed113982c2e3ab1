/*
 * proxy.h -- the per-request pipeline: route match, (CORS), upstream
 * request building, streaming the response back, access log and metrics.
 *
 * One struct proxy_req per request, created by proxy_handle() and freed
 * by its single teardown function proxy_req_close(), which logs the
 * access line, counts metrics and releases everything.  The client half
 * (conn.c connection) and the upstream half (upstream exchange) are kept in
 * two sub-structs.
 */
#ifndef TS_PROXY_H
#define TS_PROXY_H

#include "conn.h"
#include "server.h"

/* Handle one request conn.c read on conn (worker thread). */
void proxy_handle(struct worker *, struct server_conn *,
    const struct conn_request *);

/* The client connection of the active request went away. */
void proxy_client_gone(struct proxy_req *);
/* The reply of pr has left (conn_reply_end() was called): finish pr. */
void proxy_client_complete(struct proxy_req *);
/* The client's output drained (after conn_want_drain()). */
void proxy_client_drained(struct proxy_req *);

/*
 * Write a complete gateway-generated error response (status line,
 * headers, JSON body) into out, for the framing guard, which answers
 * before there is a request.  cors is the policy that applies (the
 * route's, or the top-level one when no route matched), or NULL.
 */
struct evbuffer;
void proxy_format_raw_error(struct worker *, struct evbuffer *out,
    int status, const char *message, const struct cors_policy *cors,
    const char *origin, const char *request_id);

/* Find the route for host (may be NULL) and path; NULL if none. */
const struct worker_route *proxy_route_find(const struct worker_gen *,
    const char *host, const char *path);

/* Make a request id into buf (at least 17 bytes). */
void proxy_request_id(struct worker *, char *buf);

/* Short error code for a status ("bad_request", "no_route", ...). */
const char *proxy_error_code(int status);
const char *proxy_reason(int status);

#endif /* TS_PROXY_H */
