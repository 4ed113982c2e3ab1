/*
 * debug.h -- GET /debug/propagation on the admin listener (admin.debug):
 * for the headers sent to it, what the gateway would extract (style by
 * style and reconciled), the gateway span it would start, and the exact
 * headers it would inject, as JSON.  It is how an operator sees why a
 * trace split between the browser and the backend.
 *
 * debug_propagation_json and debug_propagation_json_route are pure
 * (headers in, JSON text out) and run the same propagation_extract /
 * propagation_start_span / propagation_inject sequence as the request
 * pipeline, with a local id generator and sampler: nothing is counted,
 * nothing is exported.  debug_propagation_reply is the evhttp glue the
 * admin handler calls.
 *
 * Ownership: *json_out is allocated (jansson, malloc); the caller frees
 * it with free().  The headers and the config are borrowed for the call.
 */
#ifndef TS_DEBUG_H
#define TS_DEBUG_H

#include <stddef.h>

#include "common.h"
#include "config.h"
#include "context.h"

struct evhttp_request;

/* The JSON answer for these headers with the global propagation config. */
int debug_propagation_json(const struct config *,
    const struct trace_header *, size_t n, char **json_out) TS_MUSTCHECK;

/*
 * Same for the route named route (NULL: global config): its behavior
 * override applies.  0, or -1 with *errstr ("unknown route", ...).
 */
int debug_propagation_json_route(const struct config *, const char *route,
    const struct trace_header *, size_t n, char **json_out,
    const char **errstr) TS_MUSTCHECK;

/*
 * Answer req (GET or POST /debug/propagation[?route=NAME]): 404 unless
 * cfg->admin_debug, 405 for other methods, 404 for an unknown route,
 * else 200 with the JSON.  The request is answered in every case.
 */
void debug_propagation_reply(struct evhttp_request *, const struct config *);

#endif /* TS_DEBUG_H */
