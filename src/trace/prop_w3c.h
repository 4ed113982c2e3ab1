/*
 * prop_w3c.h -- W3C trace-context: traceparent and tracestate with the
 * Datadog "dd" member (PROPAGATION.md sections 3 and 4).
 */
#ifndef TS_TRACE_PROP_W3C_H
#define TS_TRACE_PROP_W3C_H

#include "context.h"
#include "span.h"

#define PROP_W3C_TRACEPARENT_LEN	55
#define PROP_W3C_MAX_MEMBERS		32	/* W3C tracestate limit */
#define PROP_W3C_KEY_MAX		256	/* member key, 3.3.1.3.1 */
#define PROP_W3C_VALUE_MAX		256	/* member value, 3.3.1.3.2 */
#define PROP_W3C_DD_MAX_OUT		256	/* outgoing "dd=..." member */
#define PROP_W3C_DD_MAX_IN		512	/* incoming dd value */

/*
 * Parse one traceparent value (trimmed here).  PROP_OK fills trace id,
 * parent, priority (from the sampled flag) and w3c_random; PROP_INVALID
 * sets *errstr to dd-trace-cpp's _dd.w3c_extraction_error value.
 */
enum prop_result prop_w3c_parse_traceparent(const char *, size_t,
    struct trace_context *, const char **errstr);

/*
 * Extract traceparent (exactly one field) and, only when it is valid, the
 * combined tracestate fields.  A tracestate that breaks the W3C grammar
 * (key, value, more than 32 members) is dropped whole: the context is
 * still PROP_OK, with no dd data, no members to forward and
 * c->tracestate_error set to a fixed reason ("illegal_key_char",
 * "key_too_long", "empty_key", "missing_equals", "empty_value",
 * "value_too_long", "illegal_value_char", "too_many_members").
 */
enum prop_result prop_w3c_extract(const struct trace_header *, size_t n,
    struct trace_arena *, struct trace_context *c);

/* Format the outgoing traceparent (56 bytes with the NUL). */
void prop_w3c_format_traceparent(const struct span *, char *out);
/* Format the outgoing tracestate into buf; returns its length. */
size_t prop_w3c_format_tracestate(const struct span *, char *buf,
    size_t size);

/* Inject traceparent and tracestate; 0, or -1 if emit failed. */
int prop_w3c_inject(const struct span *, trace_emit_fn, void *arg);

#endif /* TS_TRACE_PROP_W3C_H */
