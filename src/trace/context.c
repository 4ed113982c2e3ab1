/*
 * context.c -- the trace-context model: arena strings, _dd.p.* tag list
 * and header-list lookups shared by the propagation codecs.
 *
 * Header names are compared case-insensitively (RFC 9110 5.1); values
 * are trimmed of optional whitespace (RFC 9110 5.6.3) by the codecs.
 */
#include <string.h>

#include "context.h"
#include "util.h"

/* Initialise an arena over caller storage. */
void
trace_arena_init(struct trace_arena *a, char *buf, size_t cap)
{
	a->buf = buf;
	a->cap = cap;
	a->len = 0;
}

/* Copy len bytes plus a NUL; NULL when the arena is full. */
char *
trace_arena_strndup(struct trace_arena *a, const char *s, size_t len)
{
	char *p;

	if (a->buf == NULL || len >= a->cap - a->len)
		return NULL;
	p = a->buf + a->len;
	if (len != 0)
		memcpy(p, s, len);
	p[len] = '\0';
	a->len += len + 1;
	return p;
}

/* Copy a C string (NULL stays NULL). */
char *
trace_arena_strdup(struct trace_arena *a, const char *s)
{
	if (s == NULL)
		return NULL;
	return trace_arena_strndup(a, s, strlen(s));
}

/* Reset a context to "nothing extracted". */
void
trace_context_clear(struct trace_context *c)
{
	memset(c, 0, sizeof *c);
	c->style = -1;
}

/* Find key in an ordered pair array; borrowed value or NULL. */
const char *
trace_kv_find(const struct trace_kv *kv, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(kv[i].key, key) == 0)
			return kv[i].value;
	return NULL;
}

/* Replace the value of key or append the pair; -1 when full. */
int
trace_kv_set(struct trace_kv *kv, size_t *n, size_t cap, const char *key,
    const char *value)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		if (strcmp(kv[i].key, key) == 0) {
			kv[i].value = value;
			return 0;
		}
	}
	if (*n == cap)
		return -1;
	kv[*n].key = key;
	kv[*n].value = value;
	(*n)++;
	return 0;
}

/* Remove key if present, keeping the order of the others. */
void
trace_kv_remove(struct trace_kv *kv, size_t *n, const char *key)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		if (strcmp(kv[i].key, key) == 0) {
			memmove(&kv[i], &kv[i + 1],
			    (*n - i - 1) * sizeof kv[0]);
			(*n)--;
			return;
		}
	}
}

/* Find a _dd.p.* tag; borrowed value or NULL. */
const char *
trace_context_get_tag(const struct trace_context *c, const char *key)
{
	return trace_kv_find(c->tags, c->n_tags, key);
}

/* Set (replace or append) a tag; key and value must outlive the context. */
int
trace_context_set_tag(struct trace_context *c, const char *key,
    const char *value)
{
	return trace_kv_set(c->tags, &c->n_tags, TRACE_MAX_TAGS, key, value);
}

/* Remove a tag if present. */
void
trace_context_remove_tag(struct trace_context *c, const char *key)
{
	trace_kv_remove(c->tags, &c->n_tags, key);
}

/* Case-insensitive match of h's name against lname of llen bytes. */
bool
trace_header_is_n(const struct trace_header *h, const char *lname,
    size_t llen)
{
	if (h->name_len != llen)
		return false;	/* most names differ in length: no loop */
	/* lname is lower case: folding it too changes nothing. */
	return util_memcaseeq(h->name, lname, llen);
}

/* Case-insensitive header-name match against a lower-case name. */
bool
trace_header_is(const struct trace_header *h, const char *lname)
{
	return trace_header_is_n(h, lname, strlen(lname));
}

/* First header with that name, or NULL; *count gets the number found. */
const struct trace_header *
trace_header_find(const struct trace_header *h, size_t n, const char *lname,
    size_t *count)
{
	const struct trace_header *first = NULL;
	size_t i, found = 0, llen = strlen(lname);

	for (i = 0; i < n; i++) {
		if (trace_header_is_n(&h[i], lname, llen)) {
			if (first == NULL)
				first = &h[i];
			found++;
		}
	}
	if (count != NULL)
		*count = found;
	return first;
}

/* The OWS-trimmed value of the first header named lname, or NULL. */
const char *
trace_header_value(const struct trace_header *h, size_t n, const char *lname,
    size_t *len)
{
	const struct trace_header *f;
	const char *v;

	if ((f = trace_header_find(h, n, lname, NULL)) == NULL)
		return NULL;
	v = f->value;
	*len = f->value_len;
	trace_trim_ows(&v, len);
	return v;
}

/* Trim SP/HTAB around [*s, *s + *len). */
void
trace_trim_ows(const char **s, size_t *len)
{
	while (*len > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}
