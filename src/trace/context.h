/*
 * context.h -- the trace-context model shared by every propagation codec
 * (PROPAGATION.md section 1) and the header-list interface.
 *
 * Input headers come as an array of every request header line in arrival
 * order (repeats kept, names compared case-insensitively); the array and
 * its strings are borrowed for the duration of a call.  Output headers go
 * through a trace_emit_fn callback so the caller adds them without an
 * intermediate allocation.
 *
 * Ownership: every string a struct trace_context points to lives in a
 * struct trace_arena (a fixed buffer owned by the enclosing object, e.g.
 * struct trace_extract); nothing here is allocated with malloc.
 */
#ifndef TS_TRACE_CONTEXT_H
#define TS_TRACE_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define TRACE_MAX_TAGS		32	/* _dd.p.* tags kept per context */
#define TRACE_MAX_LINKS		8	/* span links per span */
#define TRACE_MAX_BAGGAGE	64	/* hard cap on baggage items */
#define TRACE_ARENA_SIZE	24576	/* string storage per extraction */

/* One request header line; value not NUL-terminated. */
struct trace_header {
	const char	*name;
	size_t		 name_len;
	const char	*value;
	size_t		 value_len;
};

/*
 * Called once per outgoing header.  name is a lower-case C string; value
 * is len bytes (also NUL-terminated, but the terminator is not counted).
 * Both are only valid during the call.  Return 0 to go on, -1 to stop
 * injection (propagation_inject then returns -1).
 */
typedef int (*trace_emit_fn)(void *arg, const char *name, const char *value,
    size_t len);

/* A 128-bit trace id: low is Datadog's "trace id", high is _dd.p.tid. */
struct trace_id {
	uint64_t	high;
	uint64_t	low;
};

/* A string pair (tag, baggage item); both point into an arena. */
struct trace_kv {
	const char	*key;
	const char	*value;
};

/* A span link (PROPAGATION.md 7.4, 11.2). */
struct trace_link {
	struct trace_id	 trace_id;
	uint64_t	 span_id;
	const char	*tracestate;		/* NULL: none */
	bool		 has_flags;
	uint32_t	 flags;			/* W3C flags: 1 sampled */
	const char	*reason;		/* attribute "reason" */
	const char	*context_headers;	/* attribute "context_headers" */
};

/* Bounded string storage; strings are NUL-terminated. */
struct trace_arena {
	char	*buf;
	size_t	 cap;
	size_t	 len;
};

/* Result of one codec's extraction. */
enum prop_result {
	PROP_ABSENT = 0,	/* none of the style's headers */
	PROP_OK,		/* a usable context */
	PROP_INVALID,		/* headers present but unusable */
	PROP_DECISION_ONLY,	/* a sampling decision without ids (B3 "0") */
};

/*
 * One extracted context (PROPAGATION.md section 1).  Strings point into
 * the arena the extraction was given.
 */
struct trace_context {
	int		 style;			/* enum config_style */
	struct trace_id	 trace_id;
	uint64_t	 parent_id;		/* 0: origin without parent */
	bool		 has_priority;
	int		 priority;
	const char	*origin;		/* NULL: none */
	struct trace_kv	 tags[TRACE_MAX_TAGS];	/* _dd.p.* except tid */
	size_t		 n_tags;
	const char	*dd_unknown;		/* unknown dd sub-members */
	const char	*tracestate_others;	/* non-dd members, ','-joined */
	const char	*tracestate_raw;	/* combined incoming value */
	const char	*tracestate_error;	/* why tracestate was dropped */
	const char	*last_dd_parent_id;	/* p: verbatim, NULL: absent */
	bool		 w3c_random;		/* traceparent flag 0x02 */
	bool		 tid_seen;		/* a tid tag/t.tid was present */
	const char	*tid_text;		/* its text (for diagnostics) */
	const char	*propagation_error;	/* _dd.propagation_error */
	const char	*w3c_error;		/* _dd.w3c_extraction_error */
};

/* Ordered string-pair arrays: find, set (replace or append), remove. */
const char *trace_kv_find(const struct trace_kv *, size_t n, const char *key);
int trace_kv_set(struct trace_kv *, size_t *n, size_t cap, const char *key,
    const char *value);
void trace_kv_remove(struct trace_kv *, size_t *n, const char *key);

/* Initialise an arena over caller storage. */
void trace_arena_init(struct trace_arena *, char *buf, size_t cap);
/* Copy len bytes plus a NUL; NULL when the arena is full. */
char *trace_arena_strndup(struct trace_arena *, const char *, size_t);
/* Copy a C string (NULL stays NULL). */
char *trace_arena_strdup(struct trace_arena *, const char *);

/* Reset a context to "nothing extracted". */
void trace_context_clear(struct trace_context *);
/* Find a _dd.p.* tag; borrowed value or NULL. */
const char *trace_context_get_tag(const struct trace_context *,
    const char *key);
/* Set (replace or append) a tag; key and value must outlive the context. */
int trace_context_set_tag(struct trace_context *, const char *key,
    const char *value);
/* Remove a tag if present. */
void trace_context_remove_tag(struct trace_context *, const char *key);

/* Case-insensitive header-name match against a lower-case name. */
bool trace_header_is(const struct trace_header *, const char *lname);
/* The same with the length of lname given (lengths compared first). */
bool trace_header_is_n(const struct trace_header *, const char *lname,
    size_t llen);
/* First header with that name, or NULL; *count gets the number found. */
const struct trace_header *trace_header_find(const struct trace_header *,
    size_t n, const char *lname, size_t *count);

/* Trim SP/HTAB around [*s, *s + *len). */
void trace_trim_ows(const char **s, size_t *len);
/* The OWS-trimmed value of the first header named lname (lower-case), or
 * NULL; *len is its length. */
const char *trace_header_value(const struct trace_header *, size_t n,
    const char *lname, size_t *len);

#endif /* TS_TRACE_CONTEXT_H */
