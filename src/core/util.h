/*
 * util.h -- allocation that aborts on failure (startup and config paths
 * only), bounded string and number parsing, hex, time.
 *
 * Everything returned by x*() is owned by the caller.  Parsers return 0 on
 * success and -1 on failure and never read past the given length.
 */
#ifndef TS_UTIL_H
#define TS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Abort-on-failure allocation, for startup and configuration only. */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
int xasprintf(char **, const char *, ...) TS_PRINTFLIKE(2, 3);

/* Parse an unsigned decimal of exactly len bytes (digits only, no sign). */
int util_parse_u64(const char *s, size_t len, uint64_t *out) TS_MUSTCHECK;
/* Parse a duration "250ms", "5s", "2m" (a bare number is seconds). */
int util_parse_duration_ms(const char *s, uint64_t *out_ms) TS_MUSTCHECK;
/* Parse a size "512", "16k", "10m", "1g" (powers of 1024). */
int util_parse_size(const char *s, uint64_t *out) TS_MUSTCHECK;

/*
 * RFC 9110 5.6.2 tchar, one byte per character: the only copy of the
 * token check (framing, the upstream response parser, CORS and baggage
 * read it).  A table lookup, because the request framing guard runs it
 * over every header name.
 */
extern const unsigned char util_tchar[256];

/* Is c an RFC 9110 tchar? */
static inline bool
util_is_tchar(unsigned char c)
{
	return util_tchar[c] != 0;
}

/* True when s[0..len) is an RFC 9110 token (1*tchar, so not empty). */
bool util_is_token(const char *s, size_t len);
/*
 * The next element of a comma-separated list in [*sp, end) (RFC 9110
 * 5.6.1): empty elements and the OWS around each are skipped.  true with
 * the element at *e, *elen bytes, and *sp past it; false at the end.
 */
bool util_list_next(const char **sp, const char *end, const char **e,
    size_t *elen);

/*
 * ASCII case-insensitive compare of len bytes / of two C strings.
 * util_strncaseeq stops at the first difference (a shorter C string is
 * safe: its NUL differs); util_memcaseeq compares 8 bytes per step and
 * needs len readable bytes on both sides.
 */
bool util_strncaseeq(const char *a, const char *b, size_t len);
bool util_memcaseeq(const char *a, const char *b, size_t len);
bool util_strcaseeq(const char *a, const char *b);
/*
 * Is the field name [name, name + len) the lower-case literal lit (any
 * ASCII case)?  The lengths first: most names differ there, and a
 * literal's length is known at compile time (no strlen per compare).
 */
#define UTIL_NAME_IS(name, len, lit)					\
	((len) == sizeof(lit) - 1 && util_memcaseeq((name), (lit),	\
	    sizeof(lit) - 1))

/*
 * Decimal of v / of a signed v into out (at least 21 bytes), NUL-terminated;
 * returns the length.  For the request path, where snprintf's format
 * parsing cost more than the digits (issue 11's profile).
 */
size_t util_fmt_u64(uint64_t v, char *out);
size_t util_fmt_i64(int64_t v, char *out);

/* Lower-case hex of len bytes into out (2*len + 1 bytes). */
void util_hex_encode(const uint8_t *in, size_t len, char *out);

/* Wall clock in microseconds / monotonic clock in nanoseconds. */
uint64_t util_now_us(void);
uint64_t util_mono_ns(void);

/* Number of online CPUs, at least 1. */
int util_ncpu(void);

/*
 * Counters with one writer thread and readers anywhere: a relaxed load
 * and store (no read-modify-write on the hot path), a relaxed read.
 */
static inline void
util_counter_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n,
	    __ATOMIC_RELAXED);
}

static inline uint64_t
util_counter_get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

#endif /* TS_UTIL_H */
