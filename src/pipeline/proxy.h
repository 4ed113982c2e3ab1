/*
 * proxy.h -- the request pipeline: route match, CORS, trace glue,
 * upstream request building, streaming the response back, the gateway's
 * own replies, access log and metrics.  The pipeline side of the exchange
 * door (exchange.h): it never sees a connection.
 *
 * One struct proxy_pipeline per worker (created by server.c, handed to
 * the front-ends as the arg of proxy_exchange) owns what every request of
 * that worker reuses: the request id counter, the id generator, trace
 * extraction state, the span pool, scratch buffers, the CORS log limiter
 * and the Date cache.  One struct proxy_req per request, created by
 * start() and freed by its single teardown function proxy_req_close(),
 * which logs the access line, counts metrics and releases everything.
 */
#ifndef TS_PROXY_H
#define TS_PROXY_H

#include "exchange.h"
#include "server.h"

struct exporter;
struct exporter_queue;
struct metrics;
struct proxy_pipeline;

/* The callback table the front-ends call (arg: a struct proxy_pipeline). */
extern const struct exchange_pipeline proxy_exchange;

/*
 * The pipeline of worker id, counting into metrics.  xq: the worker's
 * exporter queue (NULL: none); exporter: for agent sampling rates (NULL:
 * none).  Fatal when out of memory at startup.  It serves nothing until
 * proxy_pipeline_set_gen() gave it a generation.
 */
struct proxy_pipeline *proxy_pipeline_new(unsigned id, struct metrics *,
    struct exporter *exporter, struct exporter_queue *xq);
/*
 * The worker generation new requests start under (the worker keeps its
 * reference; each request takes its own).  Called at start and reload.
 */
void proxy_pipeline_set_gen(struct proxy_pipeline *, struct worker_gen *);
/* Free the pipeline (worker exit; no request in flight).  NULL-safe. */
void proxy_pipeline_free(struct proxy_pipeline *);

/* Find the route for host (may be NULL) and path; NULL if none. */
const struct worker_route *proxy_route_find(const struct worker_gen *,
    const char *host, const char *path);

/* Short error code for a status ("bad_request", "no_route", ...). */
const char *proxy_error_code(int status);

#endif /* TS_PROXY_H */
