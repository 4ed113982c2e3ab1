/*
 * health.h -- the health of one upstream server, shared by every worker
 * and the main thread, and its per-server metrics.
 *
 * A struct upstream_server is one address of one route ("api",
 * "127.0.0.1:8081"), interned by the main thread when it builds a
 * generation and kept until exit, so that its state and its series go on
 * across reloads and DNS changes.  Workers report the outcome of each
 * request with atomic operations on it (no lock on the request path);
 * the main thread's active checks write the active state.
 *
 * Passive health (health_report): max_fails failures in a row (connect
 * failure, timeout, reset, malformed answer, 5xx) eject the server for
 * base, doubled for each ejection in a row up to max.  When the time is
 * up the server takes requests again; its first outcome decides: a
 * success clears the ejection count, a failure ejects it again at once
 * for the next, longer time (Envoy's outlier detection grows its
 * ejections the same way; nginx's max_fails/fail_timeout does not grow).
 * Active health (health_set_active): the main thread's checks say down
 * or up; a server that is down for the checks takes no request.
 */
#ifndef TS_HEALTH_H
#define TS_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"

struct health_params {
	unsigned max_fails;		/* 0: never eject */
	uint64_t base_ns;		/* first ejection */
	uint64_t max_ns;		/* longest ejection */
	bool no_eject;			/* the route's only server: max_fails
					 * failures in a row only ask for a
					 * new lookup of its name */
};

enum health_state {
	HEALTH_HEALTHY = 0,
	HEALTH_EJECTED,			/* passive: failures in a row */
	HEALTH_UNHEALTHY,		/* active checks failed */
};

/*
 * The per-server request counters, one set per worker thread (health_
 * observe): written on every request, so each thread has its own slot on
 * its own cache lines instead of every worker adding to one shared line;
 * /metrics sums the slots.  More threads than slots share them (the adds
 * are atomic either way).
 */
#define HEALTH_SLOTS 16
struct health_counters {
	uint64_t errors;
	uint64_t buckets[METRICS_NBUCKETS];	/* requests: their sum */
	uint64_t sum_us;
} __attribute__((aligned(64)));

struct upstream_server {
	struct upstream_server *next;	/* registry */
	char *route;
	char *name;			/* "127.0.0.1:8081", "[::1]:80" */
	unsigned live;			/* generations using it */
	/* Health: atomics. */
	uint32_t fails;			/* failures in a row */
	uint32_t level;			/* ejections in a row */
	uint64_t eject_until_ns;	/* monotonic; 0: never ejected */
	uint32_t active_down;
	uint32_t resolve_wanted;	/* failed: look its name up again */
	/* Metrics: atomics. */
	uint64_t ejections;		/* shared: rare */
	struct health_counters *slots;	/* HEALTH_SLOTS, per thread */
};

/*
 * The server (route, name), created on first use; its live count is
 * taken (health_server_put drops it; a server with none is no longer
 * rendered).  Main thread.
 */
struct upstream_server *health_server_get(const char *route,
    const char *name);
void health_server_put(struct upstream_server *);

/* Whether it may take a request at now (monotonic ns). */
bool health_available(const struct upstream_server *, uint64_t now_ns);
/* Its state at now, for metrics and /readyz. */
enum health_state health_state(const struct upstream_server *,
    uint64_t now_ns);
/*
 * The outcome of one request at now.  Returns true when this report
 * ejected the server (the caller may log it).
 */
bool health_report(struct upstream_server *, const struct health_params *,
    bool ok, uint64_t now_ns);
/* Count one request to it: duration, and whether it failed (in the
 * calling thread's slot). */
void health_observe(struct upstream_server *, uint64_t duration_us,
    bool error);
/* Its errors and requests summed over the slots (metrics, tests). */
uint64_t health_errors(const struct upstream_server *);
uint64_t health_requests(const struct upstream_server *);
/* The active checks' verdict (main thread). */
void health_set_active(struct upstream_server *, bool down);

/*
 * Called (from any thread) when a server is ejected or taken out by its
 * checks, after its resolve_wanted flag was set: the owner (server.c)
 * wakes the main thread, which looks the server's name up again -- the
 * backend may have moved.  fn must be safe to call from any thread; NULL
 * removes it.
 */
void health_set_failure_hook(void (*fn)(void));
/* Take the flag (main thread): true when the name should be looked up. */
bool health_take_resolve(struct upstream_server *);

/* Free every server (tests; at exit nothing may use one after). */
void health_free_all(void);

#endif /* TS_HEALTH_H */
