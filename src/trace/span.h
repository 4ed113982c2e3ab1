/*
 * span.h -- the gateway span: ids, timings, string and numeric tags,
 * error flag, links, and the propagation state the injectors write
 * (sampling priority, origin, _dd.p.* tags, tracestate carry-over,
 * baggage).  PROPAGATION.md sections 1, 8 and 11.4.
 *
 * Ownership: a span owns its strings; they live in one fixed arena
 * inside the struct, so setting a tag never calls malloc.  Setters copy
 * their arguments and return -1 when the arena or the array is full (the
 * tag is then dropped).  The one exception, span_add_meta_static(),
 * borrows strings that outlive the span's export (literals, the
 * configuration the request holds).  span_new/span_free allocate the struct itself;
 * span_init works on caller storage (embedded in a request).
 */
#ifndef TS_TRACE_SPAN_H
#define TS_TRACE_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "context.h"

#define SPAN_MAX_META		64
#define SPAN_MAX_METRICS	16
#define SPAN_ARENA_SIZE		24576

/* Sampling mechanisms (PROPAGATION.md 2.6); _dd.p.dm = "-<mechanism>". */
enum span_mechanism {
	SPAN_MECH_EXTRACTED = -1,	/* decision came from upstream */
	SPAN_MECH_DEFAULT = 0,
	SPAN_MECH_AGENT_RATE = 1,
	SPAN_MECH_RULE = 3,
	SPAN_MECH_MANUAL = 4,
};

/* Sampling priorities (PROPAGATION.md 2.2). */
#define SPAN_PRIORITY_USER_REJECT	(-1)
#define SPAN_PRIORITY_AUTO_REJECT	0
#define SPAN_PRIORITY_AUTO_KEEP		1
#define SPAN_PRIORITY_USER_KEEP		2

struct span_metric {
	const char	*key;
	double		 value;
};

struct span {
	struct trace_id		 trace_id;
	uint64_t		 span_id;
	uint64_t		 parent_id;	/* 0: local root of a new trace */
	const char		*name;
	const char		*resource;
	const char		*service;
	const char		*type;		/* "web" */
	uint64_t		 start_ns;	/* unix epoch nanoseconds */
	uint64_t		 duration_ns;
	bool			 error;

	struct trace_kv		 meta[SPAN_MAX_META];
	size_t			 n_meta;
	struct span_metric	 metrics[SPAN_MAX_METRICS];
	size_t			 n_metrics;
	struct trace_link	 links[TRACE_MAX_LINKS];
	size_t			 n_links;

	/* Propagation state written downstream. */
	bool			 has_priority;
	int			 priority;
	int			 mechanism;	/* enum span_mechanism */
	const char		*origin;
	struct trace_kv		 ptags[TRACE_MAX_TAGS];	/* _dd.p.* but tid */
	size_t			 n_ptags;
	const char		*tracestate_others;
	const char		*dd_unknown;
	bool			 w3c_random;	/* keep traceparent flag 0x02 */
	struct trace_kv		 baggage[TRACE_MAX_BAGGAGE];
	size_t			 n_baggage;

	struct trace_arena	 arena;
	char			 arena_buf[SPAN_ARENA_SIZE];

	/*
	 * strlen of meta[i].key and meta[i].value for i < n_meta, kept by
	 * the setters (strings live in the arena, so they fit 16 bits);
	 * after arena_buf so that span_init does not clear them.
	 */
	uint16_t		 meta_klen[SPAN_MAX_META];
	uint16_t		 meta_vlen[SPAN_MAX_META];
};

/* Allocate an empty span; NULL on out of memory. */
struct span *span_new(void);
/* Free a span from span_new (NULL-safe). */
void span_free(struct span *);
/* Reset caller storage to an empty span. */
void span_init(struct span *);

/* Set a string field (name, resource, service, type) by copying. */
int span_set_name(struct span *, const char *);
int span_set_resource(struct span *, const char *);
int span_set_service(struct span *, const char *);
int span_set_type(struct span *, const char *);

/* Set or replace a meta tag (copied); -1 if full. */
int span_set_meta(struct span *, const char *key, const char *value);
/* Same with an explicit value length. */
int span_set_meta_len(struct span *, const char *key, const char *value,
    size_t len);
/*
 * Append a meta tag that is not set yet, borrowing key and value (they
 * must outlive the span's export: literals, the request's configuration);
 * -1 if full.
 */
int span_add_meta_static(struct span *, const char *key, size_t klen,
    const char *value, size_t vlen);
/* Borrowed meta value or NULL. */
const char *span_get_meta(const struct span *, const char *key);
/* Remove a meta tag. */
void span_remove_meta(struct span *, const char *key);
/* Set or replace a numeric tag; -1 if full. */
int span_set_metric(struct span *, const char *key, double value);
/* Numeric tag: true and *out when present. */
bool span_get_metric(const struct span *, const char *key, double *out);

/* Set, get and remove a propagated _dd.p.* tag (copied). */
int span_set_ptag(struct span *, const char *key, const char *value);
const char *span_get_ptag(const struct span *, const char *key);
void span_remove_ptag(struct span *, const char *key);

/* Add a link (strings copied); -1 if full. */
int span_add_link(struct span *, const struct trace_link *);
/* Add a baggage item (copied); -1 if full. */
int span_add_baggage(struct span *, const char *key, const char *value);

/* Copy a string into the span's arena (NULL stays NULL, or if full). */
const char *span_strdup(struct span *, const char *);

/*
 * Finish: duration = end_ns - start_ns, and copy the trace-level state
 * into meta/metrics for export: every _dd.p.* tag, _dd.p.tid (high != 0),
 * _dd.origin and _sampling_priority_v1 (PROPAGATION.md 11.4).
 */
void span_finish(struct span *, uint64_t end_ns);

#endif /* TS_TRACE_SPAN_H */
