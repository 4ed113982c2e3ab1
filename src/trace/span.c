/*
 * span.c -- the gateway span model: fixed-capacity tag arrays whose
 * strings live in one arena inside the span (no per-tag malloc), and the
 * finishing step that copies the trace-level state into meta/metrics the
 * way dd-trace-cpp does for a chunk's local root (PROPAGATION.md 11.4,
 * [cpp-seg]).
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "span.h"

/* Reset caller storage to an empty span. */
void
span_init(struct span *s)
{
	memset(s, 0, offsetof(struct span, arena_buf));
	trace_arena_init(&s->arena, s->arena_buf, sizeof s->arena_buf);
	s->mechanism = SPAN_MECH_DEFAULT;
}

/* Allocate an empty span; NULL on out of memory. */
struct span *
span_new(void)
{
	struct span *s;

	if ((s = malloc(sizeof *s)) == NULL)
		return NULL;
	span_init(s);
	return s;
}

/* Free a span from span_new (NULL-safe). */
void
span_free(struct span *s)
{
	free(s);
}

/* Copy a string into the span's arena (NULL stays NULL, or if full). */
const char *
span_strdup(struct span *s, const char *str)
{
	return trace_arena_strdup(&s->arena, str);
}

/* Copy str into *field; -1 if the arena is full. */
static int
span_set_field(struct span *s, const char **field, const char *str)
{
	const char *p;

	if ((p = span_strdup(s, str)) == NULL && str != NULL)
		return -1;
	*field = p;
	return 0;
}

/* Set the operation name. */
int
span_set_name(struct span *s, const char *v)
{
	return span_set_field(s, &s->name, v);
}

/* Set the resource. */
int
span_set_resource(struct span *s, const char *v)
{
	return span_set_field(s, &s->resource, v);
}

/* Set the service. */
int
span_set_service(struct span *s, const char *v)
{
	return span_set_field(s, &s->service, v);
}

/* Set the span type. */
int
span_set_type(struct span *s, const char *v)
{
	return span_set_field(s, &s->type, v);
}

/* Index of meta key (klen bytes) or -1: lengths first, then bytes. */
static ssize_t
meta_find(const struct span *s, const char *key, size_t klen)
{
	size_t i;

	for (i = 0; i < s->n_meta; i++)
		if (s->meta_klen[i] == klen &&
		    memcmp(s->meta[i].key, key, klen) == 0)
			return (ssize_t)i;
	return -1;
}

/* Set or replace a meta tag whose value is exactly vlen bytes long. */
static int
meta_set(struct span *s, const char *key, const char *value, size_t vlen)
{
	const char *k, *v;
	size_t klen = strlen(key);
	ssize_t i;

	if ((v = trace_arena_strndup(&s->arena, value, vlen)) == NULL)
		return -1;
	if ((i = meta_find(s, key, klen)) >= 0) {
		s->meta[i].value = v;
		s->meta_vlen[i] = (uint16_t)vlen;
		return 0;
	}
	if (s->n_meta == SPAN_MAX_META)
		return -1;
	if ((k = trace_arena_strndup(&s->arena, key, klen)) == NULL)
		return -1;
	s->meta[s->n_meta].key = k;
	s->meta[s->n_meta].value = v;
	s->meta_klen[s->n_meta] = (uint16_t)klen;
	s->meta_vlen[s->n_meta] = (uint16_t)vlen;
	s->n_meta++;
	return 0;
}

/*
 * Append a meta tag known not to be set yet, borrowing key and value
 * (no copy, no search): for strings that outlive the span's export, such
 * as literals and the configuration of the request's generation.
 */
int
span_add_meta_static(struct span *s, const char *key, size_t klen,
    const char *value, size_t vlen)
{
	if (s->n_meta == SPAN_MAX_META || klen > UINT16_MAX ||
	    vlen > UINT16_MAX)
		return -1;
	s->meta[s->n_meta].key = key;
	s->meta[s->n_meta].value = value;
	s->meta_klen[s->n_meta] = (uint16_t)klen;
	s->meta_vlen[s->n_meta] = (uint16_t)vlen;
	s->n_meta++;
	return 0;
}

/* Set or replace a meta tag with an explicit value length. */
int
span_set_meta_len(struct span *s, const char *key, const char *value,
    size_t len)
{
	/* The stored copy ends at the first NUL, if value has one. */
	return meta_set(s, key, value, strnlen(value, len));
}

/* Set or replace a meta tag (copied); -1 if full. */
int
span_set_meta(struct span *s, const char *key, const char *value)
{
	return meta_set(s, key, value, strlen(value));
}

/* Borrowed meta value or NULL. */
const char *
span_get_meta(const struct span *s, const char *key)
{
	ssize_t i = meta_find(s, key, strlen(key));

	return i >= 0 ? s->meta[i].value : NULL;
}

/* Remove a meta tag, keeping the order of the others. */
void
span_remove_meta(struct span *s, const char *key)
{
	ssize_t i = meta_find(s, key, strlen(key));
	size_t rest;

	if (i < 0)
		return;
	rest = s->n_meta - (size_t)i - 1;
	memmove(&s->meta[i], &s->meta[i + 1], rest * sizeof s->meta[0]);
	memmove(&s->meta_klen[i], &s->meta_klen[i + 1],
	    rest * sizeof s->meta_klen[0]);
	memmove(&s->meta_vlen[i], &s->meta_vlen[i + 1],
	    rest * sizeof s->meta_vlen[0]);
	s->n_meta--;
}

/* Set or replace a numeric tag; -1 if full. */
int
span_set_metric(struct span *s, const char *key, double value)
{
	const char *k;
	size_t i;

	for (i = 0; i < s->n_metrics; i++) {
		if (strcmp(s->metrics[i].key, key) == 0) {
			s->metrics[i].value = value;
			return 0;
		}
	}
	if (s->n_metrics == SPAN_MAX_METRICS ||
	    (k = span_strdup(s, key)) == NULL)
		return -1;
	s->metrics[s->n_metrics].key = k;
	s->metrics[s->n_metrics].value = value;
	s->n_metrics++;
	return 0;
}

/* Numeric tag: true and *out when present. */
bool
span_get_metric(const struct span *s, const char *key, double *out)
{
	size_t i;

	for (i = 0; i < s->n_metrics; i++) {
		if (strcmp(s->metrics[i].key, key) == 0) {
			if (out != NULL)
				*out = s->metrics[i].value;
			return true;
		}
	}
	return false;
}

/* Set a propagated _dd.p.* tag (copied). */
int
span_set_ptag(struct span *s, const char *key, const char *value)
{
	const char *k, *v;
	size_t i;

	if ((v = span_strdup(s, value)) == NULL)
		return -1;
	for (i = 0; i < s->n_ptags; i++) {
		if (strcmp(s->ptags[i].key, key) == 0) {
			s->ptags[i].value = v;
			return 0;
		}
	}
	if ((k = span_strdup(s, key)) == NULL)
		return -1;
	return trace_kv_set(s->ptags, &s->n_ptags, TRACE_MAX_TAGS, k, v);
}

/* Borrowed propagated tag or NULL. */
const char *
span_get_ptag(const struct span *s, const char *key)
{
	return trace_kv_find(s->ptags, s->n_ptags, key);
}

/* Remove a propagated tag. */
void
span_remove_ptag(struct span *s, const char *key)
{
	trace_kv_remove(s->ptags, &s->n_ptags, key);
}

/* Add a link (strings copied); -1 if full. */
int
span_add_link(struct span *s, const struct trace_link *l)
{
	struct trace_link *d;

	if (s->n_links == TRACE_MAX_LINKS)
		return -1;
	d = &s->links[s->n_links];
	*d = *l;
	d->tracestate = span_strdup(s, l->tracestate);
	d->reason = span_strdup(s, l->reason);
	d->context_headers = span_strdup(s, l->context_headers);
	s->n_links++;
	return 0;
}

/* Add a baggage item (copied); -1 if full. */
int
span_add_baggage(struct span *s, const char *key, const char *value)
{
	const char *k, *v;

	if (s->n_baggage == TRACE_MAX_BAGGAGE)
		return -1;
	if ((k = span_strdup(s, key)) == NULL ||
	    (v = span_strdup(s, value)) == NULL)
		return -1;
	s->baggage[s->n_baggage].key = k;
	s->baggage[s->n_baggage].value = v;
	s->n_baggage++;
	return 0;
}

/* Finish the span and copy trace-level state into meta and metrics. */
void
span_finish(struct span *s, uint64_t end_ns)
{
	char tid[17];
	size_t i;

	s->duration_ns = end_ns > s->start_ns ? end_ns - s->start_ns : 0;
	/* [cpp-seg]: _dd.p.* on the local root; tid iff high != 0 [st-128]. */
	for (i = 0; i < s->n_ptags; i++)
		(void)span_set_meta(s, s->ptags[i].key, s->ptags[i].value);
	if (s->trace_id.high != 0) {
		ids_format_hex64(s->trace_id.high, tid);
		(void)span_set_meta(s, "_dd.p.tid", tid);
	} else
		span_remove_meta(s, "_dd.p.tid");
	if (s->origin != NULL)
		(void)span_set_meta(s, "_dd.origin", s->origin);
	if (s->has_priority)
		(void)span_set_metric(s, "_sampling_priority_v1",
		    (double)s->priority);
}
