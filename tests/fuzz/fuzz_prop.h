/*
 * fuzz_prop.h -- helpers shared by the per-codec propagation harnesses
 * (fuzz_prop_datadog.c, fuzz_prop_w3c.c, fuzz_prop_b3.c,
 * fuzz_prop_baggage.c).
 *
 * Input format (the same as fuzz_prop_headers.c): one flag byte, then
 * "name: value" lines separated by LF; every line with a colon becomes a
 * struct trace_header, repeats kept.  fuzz_capture is a trace_emit_fn that
 * checks each emitted value (printable ASCII, no CR, LF or NUL inside,
 * NUL right after) and keeps a copy, so a harness can extract again from
 * what it injected and compare (round trip).
 */
#ifndef TS_FUZZ_PROP_H
#define TS_FUZZ_PROP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "trace/context.h"

#define FUZZ_MAX_HEADERS 64
#define FUZZ_CAPTURE_SIZE 16384

/* Emitted headers, copied. */
struct fuzz_capture {
	struct trace_header	h[FUZZ_MAX_HEADERS];
	size_t			n;
	char			buf[FUZZ_CAPTURE_SIZE];
	size_t			len;
};

/* Split data into header lines; returns how many. */
static inline size_t
fuzz_split(const uint8_t *data, size_t size, struct trace_header *h)
{
	const char *p = (const char *)data, *end = p + size, *nl, *colon;
	size_t n = 0;

	while (p < end && n < FUZZ_MAX_HEADERS) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if ((colon = memchr(p, ':', (size_t)(nl - p))) != NULL) {
			h[n].name = p;
			h[n].name_len = (size_t)(colon - p);
			h[n].value = colon + 1;
			h[n].value_len = (size_t)(nl - colon - 1);
			n++;
		}
		p = nl + 1;
	}
	return n;
}

/* trace_emit_fn: check the value and keep a copy of name and value. */
static inline int
fuzz_capture_emit(void *arg, const char *name, const char *value, size_t len)
{
	struct fuzz_capture *c = arg;
	size_t i, nlen = strlen(name);

	for (i = 0; i < len; i++)
		if ((unsigned char)value[i] < 0x20 ||
		    (unsigned char)value[i] > 0x7e)
			abort();
	if (value[len] != '\0' || nlen == 0)
		abort();
	if (c->n == FUZZ_MAX_HEADERS ||
	    c->len + nlen + len + 2 > sizeof c->buf)
		abort();	/* a codec never emits that much */
	c->h[c->n].name = memcpy(c->buf + c->len, name, nlen + 1);
	c->h[c->n].name_len = nlen;
	c->len += nlen + 1;
	c->h[c->n].value = memcpy(c->buf + c->len, value, len);
	c->buf[c->len + len] = '\0';
	c->h[c->n].value_len = len;
	c->len += len + 1;
	c->n++;
	return 0;
}

/* Equal C strings, NULL equal only to NULL. */
static inline int
fuzz_streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * Known, reported bugs that the fuzzer would otherwise hit again and again,
 * hiding new ones.  Only builds with -DFUZZ_SKIP_KNOWN_BUGS skip them (the
 * long libFuzzer runs); the replay tests never do, so the seeds that show
 * a bug keep failing until it is fixed.
 *   1. prop_datadog.c keeps x-datadog-origin verbatim (prop_datadog_extract)
 *      and prop_datadog_inject re-emits it: control bytes and non-ASCII
 *      bytes go to the upstream in x-datadog-origin (tracestate "o:" is
 *      sanitised).  Skip inputs whose origin holds such a byte.
 *   2. prop_w3c.c accepts a tracestate dd sub-member value that ends with
 *      a space ("dd=o:abc ;s:1") and w3c_format_dd writes it back last
 *      in the member ("dd=s:1;p:..;o:abc ,foo=1"): the member value then
 *      ends with SP, which W3C trace-context 3.3.1.3.2 forbids (nblk-chr),
 *      and the next hop trims it, so the origin changes on the way.  Skip
 *      contexts whose origin ends with a space (fuzz_known_bug_ctx).
 */
static inline int
fuzz_known_bug(const struct trace_header *h, size_t n)
{
#ifdef FUZZ_SKIP_KNOWN_BUGS
	size_t i, j;

	for (i = 0; i < n; i++) {
		if (h[i].name_len != 16 ||
		    strncasecmp(h[i].name, "x-datadog-origin", 16) != 0)
			continue;
		for (j = 0; j < h[i].value_len; j++)
			if ((unsigned char)h[i].value[j] < 0x20 ||
			    (unsigned char)h[i].value[j] > 0x7e)
				return 1;
	}
#else
	(void)h;
	(void)n;
#endif
	return 0;
}

/* Known bugs visible only after extraction (see above). */
static inline int
fuzz_known_bug_ctx(const struct trace_context *c)
{
#ifdef FUZZ_SKIP_KNOWN_BUGS
	size_t len;

	if (c->origin != NULL && (len = strlen(c->origin)) > 0 &&
	    c->origin[len - 1] == ' ')
		return 1;
#else
	(void)c;
#endif
	return 0;
}

#endif /* TS_FUZZ_PROP_H */
