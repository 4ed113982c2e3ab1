/*
 * group.h -- the servers of one route as one worker sees them: a
 * keep-alive pool per server address (upstream.h), the balancer that
 * picks one (balancer.h) and the shared health of each (health.h); and
 * the active health checks the main thread runs for a route.
 *
 * The main thread resolves the route's servers into targets (one per
 * address of each server) when it builds a generation; each worker
 * makes its struct upstream_group from them; requests pick a target,
 * start on its pool and report how it went.  Worker thread only, except
 * struct upstream_checker (main thread).
 */
#ifndef TS_GROUP_H
#define TS_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"
#include "health.h"
#include "upstream.h"

/* One address of one server of a route (built by the main thread). */
struct upstream_target {
	struct upstream_addr addr;
	const struct config_upstream *conf;	/* the server's (servers[j].up) */
	unsigned weight;
	struct upstream_server *server;		/* shared health, metrics */
	char name[64];				/* "127.0.0.1:8081" */
};

/* "ip:port" or "[v6]:port" of an address. */
void upstream_addr_name(const struct upstream_addr *, char *buf,
    size_t size);

struct upstream_group;

/*
 * The group of a route (conf: the route's upstream block) on base over
 * the n targets (kept by reference: the generation owns them); ssl_ctx
 * for https (NULL for http).  NULL with *cause when no pool can be made.
 */
struct upstream_group *upstream_group_new(struct event_base *,
    const struct config_upstream *conf, const struct upstream_target *,
    size_t n, SSL_CTX *ssl_ctx, uint64_t seed, char **cause);
/* Pools close their idle connections; requests in flight finish.  NULL-safe. */
void upstream_group_free(struct upstream_group *);

/*
 * The target for the next request (hash: the request's key hash for
 * balance hash), counted as started; -1 when no server is healthy.
 */
int upstream_group_pick(struct upstream_group *, uint64_t hash,
    uint64_t now_ns);
/*
 * The target for a retry of a request: as upstream_group_pick, passing
 * over the targets of tried (bit i: target i, for i < 64); -1 when no
 * other takes requests.  Not counted as a request of the route's retry
 * budget.
 */
int upstream_group_pick_retry(struct upstream_group *, uint64_t hash,
    uint64_t tried, uint64_t now_ns);
/*
 * Whether the route's retry budget in this worker allows one more retry
 * now (percent % of the requests of the last second plus min_milli / 1000
 * per second, retry.h); counted when it does.
 */
bool upstream_group_retry_budget(struct upstream_group *, unsigned percent,
    uint64_t min_milli, uint64_t now_ns);
struct upstream_pool *upstream_group_pool(const struct upstream_group *,
    int i);
const struct upstream_target *upstream_group_target(
    const struct upstream_group *, int i);
/*
 * The request on target i is over.  outcome: 1 it went well, 0 it failed
 * (connect, timeout, reset, protocol, TLS, a 5xx), -1 unknown (the
 * client left first: only the balancer hears of it).  duration_us: from
 * sending to the end.  Returns true when this outcome ejected the server.
 */
bool upstream_group_done(struct upstream_group *, int i, int outcome,
    uint64_t duration_us, uint64_t now_ns);

/* Whether any of the n targets takes requests (main thread, /readyz). */
bool upstream_targets_available(const struct upstream_target *, size_t n,
    uint64_t now_ns);

struct upstream_checker;

/*
 * Active checks of a route's n targets on the main thread's base: a GET
 * of conf->health_check.path on each every interval; healthy_threshold
 * 2xx/3xx answers in a row bring a target back, unhealthy_threshold
 * failures in a row take it out (health_set_active).  NULL when the
 * route has no checks.
 */
struct upstream_checker *upstream_checker_new(struct event_base *,
    const struct config_upstream *conf, const struct upstream_target *,
    size_t n, SSL_CTX *ssl_ctx);
void upstream_checker_free(struct upstream_checker *);

#endif /* TS_GROUP_H */
