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

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "exchange.h"

struct cors_policy;
struct exporter;
struct exporter_queue;
struct metrics;
struct propagation_conf;
struct proxy_pipeline;
struct sampler;
struct server_gen;
struct upstream_group;

/*
 * The generation a worker serves, as the pipeline sees it: built by the
 * worker (server.c) for each configuration generation, one per worker;
 * refcounted by the worker and by each request started under it (worker
 * thread only).  The last reference frees it through its own free
 * function, so the pipeline calls nothing in the worker.
 */
struct worker_route {
	const struct config_route *conf;
	struct upstream_group *group;	/* NULL: no server resolved */
	unsigned slot;			/* metrics slot */
	const struct cors_policy *cors;	/* NULL: no CORS on this route */
	const struct propagation_conf *prop;
};

struct worker_gen {
	int refs;			/* worker thread only */
	/* Frees it when the last reference goes (server.c's). */
	void (*free)(struct worker_gen *);
	struct server_gen *gen;		/* the worker's (opaque here) */
	const struct config *cfg;	/* gen's configuration */
	struct worker_route *routes;
	size_t n_routes;
	/* The top-level cors block, for responses that match no route. */
	const struct cors_policy *default_cors;
	struct sampler *sampler;	/* this worker's, for this generation */
	uint64_t rates_version;		/* agent rates installed in sampler */
};

static inline struct worker_gen *
worker_gen_ref(struct worker_gen *wg)
{
	wg->refs++;
	return wg;
}

static inline void
worker_gen_unref(struct worker_gen *wg)
{
	if (wg != NULL && --wg->refs == 0)
		wg->free(wg);
}

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
 * Move the pipeline to another exporter (a reload that changed it,
 * server.c): spans finished from now on go to xq, agent rates come from
 * exporter.  Either may be NULL (exporter.type none).
 */
void proxy_pipeline_set_exporter(struct proxy_pipeline *,
    struct exporter *exporter, struct exporter_queue *xq);
/*
 * The worker generation new requests start under (the worker keeps its
 * reference; each request takes its own).  Called at start and reload.
 */
void proxy_pipeline_set_gen(struct proxy_pipeline *, struct worker_gen *);
/*
 * The answer of /debug/propagation (admin/debug.h's
 * debug_propagation_json_route, which the worker gives: the admin layer is
 * above this one): the JSON for these headers on the route named route
 * (NULL: the global configuration), or -1 with *errstr.
 */
struct trace_header;
typedef int (*proxy_debug_fn)(const struct config *, const char *route,
    const struct trace_header *, size_t n, char **json_out,
    const char **errstr);
/*
 * With admin.debug and admin.debug_listeners, a GET or POST of
 * /debug/propagation on a proxy listener is answered by fn (HTTP/1.1 and
 * HTTP/2 alike: the headers as the pipeline got them, after h2.c's
 * translation) instead of going upstream.  NULL: never.
 */
void proxy_pipeline_set_debug(struct proxy_pipeline *, proxy_debug_fn fn);
/* Free the pipeline (worker exit; no request in flight).  NULL-safe. */
void proxy_pipeline_free(struct proxy_pipeline *);

/* Find the route for host (may be NULL) and path; NULL if none. */
const struct worker_route *proxy_route_find(const struct worker_gen *,
    const char *host, const char *path);

/* Short error code for a status ("bad_request", "no_route", ...). */
const char *proxy_error_code(int status);

#endif /* TS_PROXY_H */
