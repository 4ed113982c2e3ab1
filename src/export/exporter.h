/*
 * exporter.h -- the span exporter: per-worker lock-free queues, one
 * exporter thread with its own event base, batching on a flush timer,
 * retry with backoff, drop counting, and the agent's rate_by_service
 * table published to the workers (ARCHITECTURE.md "Threads",
 * PROPAGATION.md sections 11 and 12).
 *
 * A worker encodes each finished span on its own thread into a compact
 * record (the Datadog v0.4 span map, packed with msgpack-c) and copies it
 * into its own single-producer/single-consumer queue, a chain of chunks
 * that grows with the backlog and shrinks when it is drained.  Submitting
 * never blocks and never locks; it allocates only in a burst that the
 * exporter thread's ready chunks do not cover.  When the queue is full
 * the span is dropped and counted.  The exporter thread drains every
 * queue on its flush timer and hands the batch to the configured backend
 * (datadog, otlp, stdout); "none" keeps no thread at all.
 */
#ifndef TS_EXPORT_EXPORTER_H
#define TS_EXPORT_EXPORTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct config;
struct span;
struct sampler_rate;
struct exporter;
struct exporter_queue;

/* Counters of one exporter, summed over its queues (tests, /debug). */
struct exporter_stats {
	uint64_t submitted;		/* records accepted into a queue */
	uint64_t exported;		/* spans the backend accepted */
	uint64_t dropped_queue_full;	/* queue full or span too large */
	uint64_t dropped_agent_error;	/* backend failed after retries */
	uint64_t dropped_unsampled;	/* priority <= 0, OTLP only */
	uint64_t requests;		/* export requests answered 2xx */
	uint64_t errors;		/* failed export attempts */
	uint64_t queued;		/* records in the queues now */
	uint64_t inflight;		/* taken from the queues, being sent
					   or waiting for a retry */
	uint64_t queue_bytes;		/* memory the queues hold now */
};

/* Knobs the tests turn; exporter_new uses the defaults (all 0). */
struct exporter_opts {
	int		 stdout_fd;	/* stdout exporter: fd + 1 (0: 1) */
	uint64_t	 timeout_ms;	/* per request (0: 2000) */
	uint64_t	 retry_ms;	/* first backoff (0: 200) */
	unsigned	 retries;	/* retries after a failure (0: 2) */
	bool		 no_retry;	/* retries = 0 */
	uint64_t	 tick_ms;	/* queue poll tick (0: 50) */
};

/*
 * What exporter_new would refuse in cfg (the backend URL), without
 * starting anything (tracestitch -n, startup): 0, or -1 with *key the
 * config key and *cause the reason (caller frees).
 */
int exporter_check(const struct config *, const char **key, char **cause)
    TS_MUSTCHECK;
/* Create the exporter for cfg and start its thread; NULL + *cause. */
struct exporter *exporter_new(const struct config *, char **cause);
/* Same with test options. */
struct exporter *exporter_new_opts(const struct config *,
    const struct exporter_opts *, char **cause);
/*
 * Flush what is queued (bounded by the request timeout), stop and join
 * the thread, free every queue (NULL-safe).  No worker may submit any
 * more.
 */
void exporter_free(struct exporter *);

/* A queue for one worker thread (owned by the exporter); never NULL. */
struct exporter_queue *exporter_queue_new(struct exporter *);
/*
 * Encode a finished span into the worker's queue.  Never blocks; false
 * when the span was dropped (queue full, too large, exporter "none").
 * Only the queue's own worker may call it.
 */
bool exporter_submit(struct exporter_queue *, const struct span *);

/* Version of the published agent rates (0: none yet); relaxed load. */
uint64_t exporter_rates_version(const struct exporter *);
/*
 * Copy the current rates table (free with sampler_rates_free); returns
 * its version (>= 1), or 0 with *rates NULL and *n 0 when there is none.
 */
uint64_t exporter_rates_copy(struct exporter *, struct sampler_rate **,
    size_t *n);

/* Snapshot of the counters (relaxed reads). */
void exporter_get_stats(const struct exporter *, struct exporter_stats *);
/* Ask the thread to flush now (tests; thread-safe). */
void exporter_flush(struct exporter *);

#endif /* TS_EXPORT_EXPORTER_H */
