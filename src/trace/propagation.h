/*
 * propagation.h -- trace-context extraction and injection across the
 * configured styles (PROPAGATION.md sections 7 and 8).
 *
 * The pipeline a caller runs per request:
 *
 *	propagation_extract(&conf, headers, n, ex, &stats);
 *	propagation_start_span(&conf, ex, sampler, rng, now_ns, mono_ns, span);
 *	... remove every header propagation_is_known_header() accepts ...
 *	propagation_inject(&conf, span, emit, arg);
 *
 * Nothing here touches globals: configuration, statistics, the random
 * generator and the sampler are all passed in.  struct trace_extract is
 * large (it holds its own string arena); embed it in the request or keep
 * it on the stack, and reuse it: propagation_extract clears it.
 */
#ifndef TS_TRACE_PROPAGATION_H
#define TS_TRACE_PROPAGATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "config.h"
#include "context.h"
#include "metrics.h"
#include "ids.h"
#include "sampler.h"
#include "span.h"

/* What extraction and injection need, built from struct config or by hand. */
struct propagation_conf {
	enum config_style	 extract[CONFIG_MAX_STYLES];
	size_t			 n_extract;
	enum config_style	 inject[CONFIG_MAX_STYLES];
	size_t			 n_inject;
	bool			 extract_first;
	enum config_behavior	 behavior;
	size_t			 tags_max_length;	/* 0: no x-datadog-tags */
	size_t			 baggage_max_items;
	size_t			 baggage_max_bytes;
	const char *const	*baggage_tag_keys;	/* borrowed; "*" = all */
	size_t			 n_baggage_tag_keys;
	bool			 trace_id_128bit;
};

/*
 * Malformed-header and outcome counters, owned by the caller (a worker):
 * struct prop_stats is in metrics.h, which renders them.
 */

/* The outcome of extraction (PROPAGATION.md 1). */
struct trace_extract {
	bool			 continued;	/* ctx is continued */
	bool			 restart;	/* behavior restart applied */
	struct trace_context	 ctx;		/* primary, reconciled */
	bool			 has_decision;	/* B3 decision without ids */
	int			 decision;
	const char		*parent_id_tag;		/* _dd.parent_id */
	const char		*propagation_error;	/* _dd.propagation_error */
	const char		*w3c_error;	/* _dd.w3c_extraction_error */
	struct trace_kv		 baggage[TRACE_MAX_BAGGAGE];
	size_t			 n_baggage;
	struct trace_link	 links[TRACE_MAX_LINKS];
	size_t			 n_links;
	struct trace_arena	 arena;
	char			 arena_buf[TRACE_ARENA_SIZE];
};

/* Defaults: datadog,tracecontext,baggage both ways, continue, 512, 128-bit. */
void propagation_conf_defaults(struct propagation_conf *);
/* From a loaded configuration (borrows its strings). */
void propagation_conf_init(struct propagation_conf *, const struct config *);
/* Style name as used in span links ("datadog", "tracecontext", ...). */
const char *propagation_style_name(enum config_style);

/*
 * Extract from all request header lines (arrival order, repeats kept).
 * Returns PROP_OK when a context is continued (ex->continued), else
 * PROP_ABSENT (new trace; ex may still carry a decision, baggage, links
 * and diagnostics).  Never fails: bad headers are counted in stats.
 */
enum prop_result propagation_extract(const struct propagation_conf *,
    const struct trace_header *, size_t n, struct trace_extract *ex,
    struct prop_stats *stats);

/*
 * Fill span (span_init'ed by the caller) as the gateway span: child of
 * the extracted context or the root of a new trace, new span id, the
 * propagation state, links, diagnostic and baggage.* tags, start_ns =
 * now_ns (unix ns), and the sampling decision (sampler may be NULL: keep,
 * mechanism 0).  mono_ns feeds the rate limiter.  A sampler with user
 * rules (sampler_has_rules) is not consulted here: rules match the
 * span's service, name, resource and tags, so the caller sets those and
 * then calls sampler_decide() itself, before injecting.
 */
void propagation_start_span(const struct propagation_conf *,
    const struct trace_extract *, struct sampler *, struct ids_rng *,
    uint64_t now_ns, uint64_t mono_ns, struct span *);

/*
 * Write the span's context in every inject style, in order.  May tag the
 * span (_dd.propagation_error=inject_max_size).  0, or -1 if emit failed.
 */
int propagation_inject(const struct propagation_conf *, struct span *,
    trace_emit_fn, void *arg);

/* True for every header some style reads or writes (case-insensitive). */
bool propagation_is_known_header(const char *name, size_t len);

#endif /* TS_TRACE_PROPAGATION_H */
