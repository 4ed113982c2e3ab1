/*
 * metrics.h -- per-worker counters and histograms, rendered as Prometheus
 * text for /metrics.
 *
 * Each worker owns one struct metrics and is its only writer (plain
 * relaxed atomic stores: no locks, no RMW on the request path).  The admin
 * thread sums all registered blocks on read.  Route names are interned
 * into small integer slots at configuration load time (main thread) so
 * the request path only indexes arrays.  The list of plain counters is one
 * X-macro (memcached's THREAD_STATS_FIELDS model): adding a counter is one
 * line there.
 */
#ifndef TS_METRICS_H
#define TS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "config.h"		/* CONFIG_MAX_STYLES */

#define METRICS_MAX_ROUTES 128	/* slot 0 is "unmatched" */
#define METRICS_NBUCKETS 15		/* duration buckets, incl. +Inf */

/* Upstream error kinds, labels of tracestitch_upstream_errors_total. */
enum metrics_upstream_err {
	METRICS_UPSTREAM_CONNECT = 0,
	METRICS_UPSTREAM_TIMEOUT,
	METRICS_UPSTREAM_RESET,
	METRICS_UPSTREAM_PROTOCOL,
	METRICS_UPSTREAM_TLS,
	METRICS_UPSTREAM_NKINDS,
};

/*
 * Reasons of a retry, labels of tracestitch_upstream_retries_total: the
 * bit positions of CONFIG_RETRY_* (connect_failure, reset, timeout, 502,
 * 503, 504).
 */
#define METRICS_RETRY_NREASONS 6

/*
 * Plain counters: X(enum suffix, metric name, label text or "", help).
 * Metrics sharing a name with different labels are rendered as one family.
 */
#define METRICS_COUNTERS(X)						\
	X(CONN_ACCEPTED, "tracestitch_connections_accepted_total", "",	\
	    "Client connections accepted")				\
	X(CONN_REFUSED, "tracestitch_connections_refused_total",	\
	    "reason=\"max_connections\"",				\
	    "Client connections closed at once over server.limits.max_connections") \
	X(FRAMING_REJECTED, "tracestitch_framing_rejected_total", "",	\
	    "Requests refused by the framing guard")			\
	X(REQ_TIMEOUT, "tracestitch_client_timeouts_total", "",		\
	    "Client connections closed by a header, body or idle timeout") \
	X(REQ_SLOW_BODY, "tracestitch_client_slow_bodies_total", "",	\
	    "Request bodies cut below server.limits.body_min_rate (408)") \
	X(RELOADS_OK, "tracestitch_config_reloads_total", "result=\"ok\"", \
	    "Configuration reloads")					\
	X(RELOADS_FAILED, "tracestitch_config_reloads_total",		\
	    "result=\"failed\"", "Configuration reloads")			\
	X(ACCEPT_EMFILE, "tracestitch_accept_errors_total",		\
	    "reason=\"emfile\"", "Failed accept() calls, by errno") \
	X(ACCEPT_ENFILE, "tracestitch_accept_errors_total",		\
	    "reason=\"enfile\"", "Failed accept() calls, by errno") \
	X(ACCEPT_ENOBUFS, "tracestitch_accept_errors_total",		\
	    "reason=\"enobufs\"", "Failed accept() calls, by errno") \
	X(ACCEPT_ENOMEM, "tracestitch_accept_errors_total",		\
	    "reason=\"enomem\"", "Failed accept() calls, by errno") \
	X(ACCEPT_OTHER, "tracestitch_accept_errors_total",		\
	    "reason=\"other\"", "Failed accept() calls, by errno")	\
	X(REQ_H1, "tracestitch_requests_by_protocol_total",		\
	    "protocol=\"http/1.1\"", "Requests, by client protocol")	\
	X(REQ_H2, "tracestitch_requests_by_protocol_total",		\
	    "protocol=\"h2\"", "Requests, by client protocol")		\
	X(H2_CONNS, "tracestitch_http2_connections_total", "",		\
	    "Client connections that spoke HTTP/2 (ALPN h2 or h2c)")	\
	H2_REFUSED(X, FIELD_NAME, "field_name")				\
	H2_REFUSED(X, FIELD_VALUE, "field_value")			\
	H2_REFUSED(X, PSEUDO, "pseudo_header")				\
	H2_REFUSED(X, AUTHORITY, "authority")				\
	H2_REFUSED(X, CONNECTION, "connection_specific")		\
	H2_REFUSED(X, TE, "te")						\
	H2_REFUSED(X, CL, "content_length")				\
	H2_REFUSED(X, METHOD, "method")				\
	H2_REFUSED(X, HEADER_LIST, "header_list")			\
	H2_REFUSED(X, BODY, "body_too_large")				\
	H2_REFUSED(X, TRAILERS, "trailers")				\
	X(H2_TRAILERS_DROPPED,						\
	    "tracestitch_http2_request_trailers_dropped_total", "",	\
	    "HTTP/2 request trailer sections not forwarded to the HTTP/1.1 upstream") \
	H2_DEFENCE(X, RAPID_RESET, "rapid_reset")			\
	H2_DEFENCE(X, CONTINUATION, "continuation_flood")		\
	H2_DEFENCE(X, SETTINGS, "settings_flood")			\
	H2_DEFENCE(X, PING, "ping_flood")				\
	H2_DEFENCE(X, EMPTY, "empty_frames")				\
	H2_DEFENCE(X, STREAMS, "max_concurrent_streams")		\
	H2_DEFENCE(X, PROTOCOL, "protocol_error")			\
	H2_DEFENCE(X, TIMEOUT, "timeout")				\
	H2_DEFENCE(X, GOAWAY, "goaway")	\
	X(PROXY_PROTOCOL_REFUSED,					\
	    "tracestitch_proxy_protocol_refused_total", "",		\
	    "Connections closed for a missing or malformed PROXY header") \
	X(BODY_BUDGET_REFUSED, "tracestitch_body_budget_refusals_total", "", \
	    "Requests answered 503 over server.limits.max_buffered_body_bytes")

/* HTTP/2 streams refused by the translation rules (h2_msg.h), by class. */
#define H2_REFUSED(X, id, label)					\
	X(H2_REFUSED_##id, "tracestitch_http2_refused_total",		\
	    "reason=\"" label "\"",						\
	    "HTTP/2 streams refused by the translation to HTTP/1.1")
/* HTTP/2 defences that fired (RST_STREAM or GOAWAY), by defence. */
#define H2_DEFENCE(X, id, label)					\
	X(H2_DEF_##id, "tracestitch_http2_defences_total",		\
	    "defence=\"" label "\"",					\
	    "HTTP/2 denial-of-service defences that fired")

enum metrics_counter {
#define METRICS_ENUM(id, name, labels, help) METRICS_##id,
	METRICS_COUNTERS(METRICS_ENUM)
#undef METRICS_ENUM
	METRICS_NCOUNTERS,
};

struct metrics;

/*
 * Histograms per route: the request's duration, the upstream connect
 * time (new connections only) and the upstream's time to the first
 * response byte.  Buckets 0.5 ms to 10 s.
 */
enum metrics_hist {
	METRICS_H_REQUEST = 0,
	METRICS_H_UPSTREAM_CONNECT,
	METRICS_H_UPSTREAM_RESPONSE,
	METRICS_NHISTS,
};

/*
 * Propagation outcomes (PROPAGATION.md 1), per worker: written by
 * trace/propagation.c through metrics_prop_stats() on the worker that
 * owns the block (util_counter_add: relaxed, so the admin thread may read
 * them), rendered as the tracestitch_propagation_* families.  Indexed by
 * enum config_style.
 */
struct prop_stats {
	uint64_t	extracted[CONFIG_MAX_STYLES];	/* valid contexts */
	uint64_t	invalid[CONFIG_MAX_STYLES];	/* malformed headers */
	uint64_t	continued;
	uint64_t	new_traces;
	uint64_t	restarted;
	uint64_t	links;		/* conflicting contexts linked */
};

/* A block for one worker (or the main thread), registered for rendering.
 * Blocks are never unregistered before exit. */
struct metrics *metrics_new(const char *owner);

/* Free every block and route name: at exit (workers stopped) or between
 * tests.  Nothing may use a block afterwards. */
void metrics_free_all(void);

/* Intern a route name (main thread only); returns its slot, 1..  NULL,
 * "" and "unmatched" are slot 0 (label route="unmatched"), and so is any
 * name past METRICS_MAX_ROUTES - 1 (with a warning). */
unsigned metrics_route_slot(const char *name);

/* One finished request: route slot, status code, duration, body bytes
 * sent to the client.  A status outside 100..599 counts in the duration
 * histogram and bytes only. */
void metrics_request(struct metrics *, unsigned route, int status,
    uint64_t duration_us, uint64_t bytes);
void metrics_upstream_error(struct metrics *, unsigned route,
    enum metrics_upstream_err);
/* A retry of a route's request for reason (0..METRICS_RETRY_NREASONS-1);
 * one refused by the route's retry budget. */
void metrics_upstream_retry(struct metrics *, unsigned route,
    unsigned reason);
void metrics_retry_budget_exhausted(struct metrics *, unsigned route);
/*
 * CORS: a preflight answered (allowed) or refused, and a refusal with its
 * kind ("origin", "method", "header") and header class (a tracing header
 * name, "other", or "" for origin/method).  preflight false: an actual
 * request whose Origin is not allowed (kind is "origin").
 */
void metrics_cors_preflight(struct metrics *, unsigned route, bool allowed);
void metrics_cors_refusal(struct metrics *, unsigned route, bool preflight,
    const char *kind, const char *header_class);

/* One observation of a per-route histogram, microseconds. */
void metrics_observe(struct metrics *, enum metrics_hist, unsigned route,
    uint64_t us);
/*
 * The trace of an observation just made (metrics_request or
 * metrics_observe with the same value): kept as the OpenMetrics exemplar
 * of its bucket, the last one per bucket.  unix_ms: when.
 */
void metrics_exemplar(struct metrics *, enum metrics_hist, unsigned route,
    uint64_t us, uint64_t trace_hi, uint64_t trace_lo, uint64_t unix_ms);
/* The block's propagation counters (the worker's extraction writes). */
struct prop_stats *metrics_prop_stats(struct metrics *);

/* Open client connections: +1 on accept, -1 on close. */
void metrics_conn(struct metrics *, int delta);
/* Open WebSocket tunnels: +1 at the 101, -1 when the tunnel ends. */
void metrics_tunnel(struct metrics *, int delta);
/*
 * Request-body bytes the HTTP/1.1 front-end holds, process-wide, while
 * server.limits.max_buffered_body_bytes is on (conn.c charges and
 * releases them): add delta, return the new total.
 */
uint64_t metrics_body_bytes_add(int64_t delta);
void metrics_add(struct metrics *, enum metrics_counter, uint64_t n);

/*
 * An extra section appended to every rendering by a module that keeps
 * its own counters (the exporter); fn runs under the registry lock and
 * must not call back into metrics.  fn NULL removes it if arg is the
 * current one, and returns only once no rendering uses it.
 */
typedef void (*metrics_section_fn)(FILE *, void *arg);
void metrics_set_section(metrics_section_fn, void *arg);
/*
 * A section rendered until exit (upstream/health.c's per-server
 * families), besides the one above; the same fn is added once.
 */
void metrics_add_section(metrics_section_fn, void *arg);

/*
 * The request duration buckets, for a module rendering its own
 * histogram with the same bounds: the bucket (0..METRICS_NBUCKETS-1) of
 * a duration and the "le" label of a bucket ("0.0005" .. "+Inf").
 */
unsigned metrics_bucket_of(uint64_t duration_us);
const char *metrics_bucket_le(unsigned bucket);

/* Prometheus text exposition (format 0.0.4) of every block summed;
 * caller frees.  Thread-safe against concurrent writers. */
char *metrics_render(void);
/*
 * The same in the OpenMetrics text format 1.0.0 (a scraper that sends
 * Accept: application/openmetrics-text): counter families named without
 * _total, exemplars with the trace id on the duration histograms, # EOF.
 */
char *metrics_render_openmetrics(void);

/* Content types of the two renderings. */
#define METRICS_CTYPE_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_CTYPE_OPENMETRICS \
	"application/openmetrics-text; version=1.0.0; charset=utf-8"

#endif /* TS_METRICS_H */
