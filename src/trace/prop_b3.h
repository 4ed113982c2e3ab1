/*
 * prop_b3.h -- Zipkin B3 propagation, single header "b3" and the
 * multi-header X-B3-* form (PROPAGATION.md section 5).
 */
#ifndef TS_TRACE_PROP_B3_H
#define TS_TRACE_PROP_B3_H

#include "context.h"
#include "span.h"

/*
 * Extract "b3: {trace}-{span}[-{state}[-{parent}]]" or "b3: {state}".
 * A state-only header gives PROP_DECISION_ONLY with the priority set.
 */
enum prop_result prop_b3_extract_single(const struct trace_header *,
    size_t n, struct trace_context *c);
/* Extract X-B3-TraceId, -SpanId, -Sampled, -Flags. */
enum prop_result prop_b3_extract_multi(const struct trace_header *,
    size_t n, struct trace_context *c);

/* Inject "b3"; 0, or -1 if emit failed. */
int prop_b3_inject_single(const struct span *, trace_emit_fn, void *arg);
/* Inject x-b3-traceid, x-b3-spanid, x-b3-sampled. */
int prop_b3_inject_multi(const struct span *, trace_emit_fn, void *arg);

#endif /* TS_TRACE_PROP_B3_H */
