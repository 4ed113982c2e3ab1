/*
 * prop_datadog.h -- the Datadog headers: x-datadog-trace-id, -parent-id,
 * -sampling-priority, -origin, -tags (PROPAGATION.md section 2).
 *
 * extract fills a trace_context whose strings go into the given arena;
 * inject writes the span's context through the emit callback.
 */
#ifndef TS_TRACE_PROP_DATADOG_H
#define TS_TRACE_PROP_DATADOG_H

#include "context.h"
#include "span.h"

/*
 * Extract.  tags_max is DD_TRACE_X_DATADOG_TAGS_MAX_LENGTH (0: tags are
 * ignored).  PROP_OK also when only the tags were unusable (then
 * c->propagation_error says why).
 */
enum prop_result prop_datadog_extract(const struct trace_header *, size_t n,
    size_t tags_max, struct trace_arena *, struct trace_context *c);

/*
 * Encode the x-datadog-tags value of a span (its _dd.p.* tags, then
 * _dd.p.tid when the trace id's high half is not 0) into buf.  Returns the
 * length, 0 when there is nothing to write, or -1 when it does not fit in
 * min(size - 1, max).
 */
int prop_datadog_format_tags(const struct span *, size_t max, char *buf,
    size_t size);

/*
 * Inject.  *errstr is set to "inject_max_size" when x-datadog-tags was
 * left out for its size (the caller tags the span).  Returns 0, or -1 if
 * emit failed.
 */
int prop_datadog_inject(const struct span *, size_t tags_max,
    trace_emit_fn, void *arg, const char **errstr);

/* Parse a decimal int with optional '-' (priorities); 0 or -1. */
int prop_datadog_parse_int(const char *, size_t, int *out) TS_MUSTCHECK;

#endif /* TS_TRACE_PROP_DATADOG_H */
