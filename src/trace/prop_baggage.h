/*
 * prop_baggage.h -- W3C baggage (PROPAGATION.md section 6).
 *
 * Items are decoded (percent-decoding of keys and values) into an array
 * of string pairs whose strings live in the given arena.
 */
#ifndef TS_TRACE_PROP_BAGGAGE_H
#define TS_TRACE_PROP_BAGGAGE_H

#include "context.h"

#define PROP_BAGGAGE_MAX_ITEMS	64	/* DD_TRACE_BAGGAGE_MAX_ITEMS */
#define PROP_BAGGAGE_MAX_BYTES	8192	/* DD_TRACE_BAGGAGE_MAX_BYTES */

/*
 * Extract every baggage field (combined in order).  All or nothing: one
 * malformed member, or more than max_bytes in all, gives PROP_INVALID and
 * no items.  At most min(max_items, cap) items are kept.
 */
enum prop_result prop_baggage_extract(const struct trace_header *, size_t n,
    size_t max_items, size_t max_bytes, struct trace_arena *,
    struct trace_kv *items, size_t cap, size_t *n_items);

/*
 * Format items percent-encoded into buf, stopping (whole items only) at
 * max_items or max_bytes; returns the length (0: nothing to send).
 */
size_t prop_baggage_format(const struct trace_kv *items, size_t n,
    size_t max_items, size_t max_bytes, char *buf, size_t size);

/* Inject the baggage header if there are items; 0, or -1 if emit failed. */
int prop_baggage_inject(const struct trace_kv *items, size_t n,
    size_t max_items, size_t max_bytes, trace_emit_fn, void *arg);

#endif /* TS_TRACE_PROP_BAGGAGE_H */
