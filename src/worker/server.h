/*
 * server.h -- the process: worker threads (one event base each, all
 * watching the same listening sockets, which the main thread binds once;
 * client connections in conn.c), the admin listener (admin/), graceful
 * drain and configuration reload.
 *
 * Ownership:
 *   struct server_gen    one per configuration generation, built by the
 *                        main thread (config, TLS contexts, metrics slots);
 *                        refcounted, shared read-only by all workers.
 *   struct worker_gen    one per (worker, generation): the worker's
 *                        upstream pools for every route.  Refcounted by
 *                        the worker and by each request started under it.
 *   struct server_conn   one per client connection (conn.h); freed by
 *                        conn_close().
 *   struct conn_front    the HTTP/1.1 front-end's per-worker context
 *                        (embedded in struct worker).
 *   struct proxy_pipeline the pipeline's per-worker context (proxy.h),
 *                        handed to the front-end as the arg of the
 *                        exchange table: server.c is the composition root
 *                        that wires a front-end to the pipeline.
 * Everything a worker owns is touched by that worker's thread only; the
 * main thread talks to workers through a pipe.
 */
#ifndef TS_SERVER_H
#define TS_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <pthread.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"
#include "conn.h"
#include "propagation.h"
#include "framing.h"
#include "metrics.h"
#include "upstream.h"
#include "group.h"
#include "proxy.h"	/* struct worker_gen, the pipeline's view of a generation */

struct proxy_pipeline;
struct exporter;
struct exporter_queue;
struct cors_policy;

/*
 * A route's servers, resolved by the main thread when the generation is
 * built: one target per address of each server (every worker's group
 * connects to these; no worker resolves).  n == 0: no server resolved,
 * error says why, and the route answers 502 until a reload resolves it.
 */
struct server_gen_upstream {
	struct upstream_target *targets;
	size_t n;
	char *error;
};

struct server_xp;

struct server_gen {
	int refs;			/* atomic */
	struct config *cfg;
	SSL_CTX *server_ssl;		/* listeners, NULL: plain HTTP */
	SSL_CTX **route_ssl;		/* per route, NULL for http:// */
	unsigned *route_slot;		/* metrics slot per route */
	struct cors_policy **route_cors; /* per route, NULL: no CORS */
	struct cors_policy *default_cors; /* top-level block, or NULL */
	struct propagation_conf *route_prop; /* per route (behavior override) */
	struct server_gen_upstream *route_up; /* per route, resolved once */
	uint64_t id;			/* generation number, 1.. */
	uint64_t busy_timeout_ms;	/* client timeout while we proxy */
	struct server_xp *xp;		/* its exporter (SIGHUP swaps it) */
};

/*
 * Accepting paused after accept() ran out of descriptors or memory: the
 * listener stays off until the timer fires (or, for a worker, one of its
 * connections closes), and the failure is logged at most once a second.
 */
struct server_backoff {
	struct event *timer;
	uint64_t delay_ms;		/* 0: not backing off */
	bool paused;
	int64_t log_sec;		/* monotonic second of the last line */
	unsigned log_n;			/* failures not logged since */
};

struct worker {
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct event **listeners;	/* on the shared sockets (srv's) */
	size_t n_listeners;
	struct server_backoff backoff;	/* accept() out of resources */
	struct conn_front front;	/* the HTTP/1.1 front-end's context */
	struct proxy_pipeline *pipeline; /* the pipeline's context */
	int cmd_fd[2];			/* main writes, worker reads */
	struct event *cmd_ev;
	struct server_gen *next_gen;	/* handed over under server lock */
	struct worker_gen *wgen;	/* current */
	struct metrics *metrics;
	uint64_t nconns;		/* open client connections */
	bool draining;
	bool accepting;			/* listener events added */
	uint64_t max_conns;		/* this worker's share */
	uint64_t max_total;		/* server.limits.max_connections */
	int64_t refuse_log_sec;		/* monotonic second of the last
					 * refusal logged */
	unsigned refuse_log_n;		/* refusals not logged since */
	struct exporter_queue *xq;	/* this worker's queue */
	struct server_xp *xp;		/* the exporter xq belongs to */
};


/*
 * Run the gateway with cfg (one reference is taken over) until a
 * SIGTERM/SIGINT drain completes.  Returns the exit status.  Before
 * serving it runs the preparation of server_check and, when that refuses
 * cfg, prints the same lines to stderr and returns 1.
 */
int server_main(struct config *cfg);

/*
 * tracestitch -n: everything server_main does with cfg before it serves
 * (CORS policies, TLS contexts, the exporter's URL, the listen addresses,
 * the access log), without binding, starting threads or creating files.
 * Refusals and warnings go to errs (config.h).  0 when cfg would start.
 */
int server_check(struct config *cfg, struct config_errors *errs)
    TS_MUSTCHECK;

#endif /* TS_SERVER_H */
