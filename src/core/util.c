/*
 * util.c -- allocation helpers that abort, bounded parsing, hex and clocks.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/*
 * Out of memory where the helpers below may not fail: say so and exit(1)
 * as fatalx() would.  util.c is the ground of core/ (log.c uses it), so it
 * writes to stderr itself instead of calling the log.
 */
static TS_NORETURN void
util_oom(const char *what, size_t a, size_t b)
{
	fprintf(stderr, "tracestitch: fatal: out of memory %s (%zu x %zu "
	    "bytes)\n", what, a, b);
	exit(1);
}

/*
 * tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA   (RFC 9110 5.6.2)
 */
#define UT_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define UT_TCH(c) (UT_ALPHA(c) || ((c) >= '0' && (c) <= '9') ||		\
	(c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||		\
	(c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' ||	\
	(c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' ||		\
	(c) == '`' || (c) == '|' || (c) == '~')
#define UT_T4(c) UT_TCH(c), UT_TCH((c) + 1), UT_TCH((c) + 2), UT_TCH((c) + 3)
#define UT_T16(c) UT_T4(c), UT_T4((c) + 4), UT_T4((c) + 8), UT_T4((c) + 12)
#define UT_T64(c) UT_T16(c), UT_T16((c) + 16), UT_T16((c) + 32),	\
	UT_T16((c) + 48)

const unsigned char util_tchar[256] = {
	UT_T64(0), UT_T64(64), UT_T64(128), UT_T64(192)
};

/* A non-empty run of tchar. */
bool
util_is_token(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
		if (!util_is_tchar((unsigned char)s[i]))
			return false;
	return true;
}

bool
util_list_next(const char **sp, const char *end, const char **e,
    size_t *elen)
{
	const char *s = *sp, *t;

	while (s < end && (*s == ' ' || *s == '\t' || *s == ','))
		s++;
	if (s == end) {
		*sp = s;
		return false;
	}
	t = s;
	while (t < end && *t != ',')
		t++;
	*sp = t;
	while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
		t--;
	*e = s;
	*elen = (size_t)(t - s);
	return true;
}

/* Allocate or die: startup and configuration paths only. */
void *
xmalloc(size_t n)
{
	void *p;

	if ((p = malloc(n == 0 ? 1 : n)) == NULL)
		util_oom("allocating", 1, n);
	return p;
}

/* Zeroed allocation or die. */
void *
xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if ((p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size)) == NULL)
		util_oom("allocating", nmemb, size);
	return p;
}

/* Reallocate or die. */
void *
xrealloc(void *old, size_t n)
{
	void *p;

	if ((p = realloc(old, n == 0 ? 1 : n)) == NULL)
		util_oom("reallocating", 1, n);
	return p;
}

/* Duplicate a string or die. */
char *
xstrdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		util_oom("duplicating a string", 1, 0);
	return p;
}

/* Duplicate at most n bytes of a string or die. */
char *
xstrndup(const char *s, size_t n)
{
	char *p;

	if ((p = strndup(s, n)) == NULL)
		util_oom("duplicating a string", 1, 0);
	return p;
}

/* asprintf or die. */
int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n < 0)
		util_oom("formatting a string", 1, 0);
	return n;
}

int
util_parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int
util_parse_duration_ms(const char *s, uint64_t *out_ms)
{
	size_t n = 0, len = strlen(s);
	uint64_t v, mult;
	const char *unit;

	while (n < len && s[n] >= '0' && s[n] <= '9')
		n++;
	if (util_parse_u64(s, n, &v) != 0)
		return -1;
	unit = s + n;
	if (*unit == '\0' || strcmp(unit, "s") == 0)
		mult = 1000;
	else if (strcmp(unit, "ms") == 0)
		mult = 1;
	else if (strcmp(unit, "m") == 0)
		mult = 60000;
	else
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*out_ms = v * mult;
	return 0;
}

int
util_parse_size(const char *s, uint64_t *out)
{
	size_t n = 0, len = strlen(s);
	uint64_t v, mult = 1;
	const char *unit;

	while (n < len && s[n] >= '0' && s[n] <= '9')
		n++;
	if (util_parse_u64(s, n, &v) != 0)
		return -1;
	unit = s + n;
	if (*unit == '\0')
		mult = 1;
	else if (strcasecmp(unit, "k") == 0 || strcasecmp(unit, "kb") == 0)
		mult = 1024;
	else if (strcasecmp(unit, "m") == 0 || strcasecmp(unit, "mb") == 0)
		mult = 1024 * 1024;
	else if (strcasecmp(unit, "g") == 0 || strcasecmp(unit, "gb") == 0)
		mult = 1024 * 1024 * 1024;
	else
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

/*
 * Two digits per division (a 200-byte table of "00".."99"), written from
 * the end of a 20-byte scratch: half the divisions of a digit loop, and
 * ids are 19-20 digits.
 */
size_t
util_fmt_u64(uint64_t v, char *out)
{
	static const char pairs[201] =
	    "00010203040506070809101112131415161718192021222324"
	    "25262728293031323334353637383940414243444546474849"
	    "50515253545556575859606162636465666768697071727374"
	    "75767778798081828384858687888990919293949596979899";
	char tmp[20];
	size_t i = sizeof tmp, n;
	unsigned d;

	while (v >= 100) {
		d = (unsigned)(v % 100) * 2;
		v /= 100;
		tmp[--i] = pairs[d + 1];
		tmp[--i] = pairs[d];
	}
	if (v >= 10) {
		d = (unsigned)v * 2;
		tmp[--i] = pairs[d + 1];
		tmp[--i] = pairs[d];
	} else
		tmp[--i] = (char)('0' + v);
	n = sizeof tmp - i;
	memcpy(out, tmp + i, n);
	out[n] = '\0';
	return n;
}

size_t
util_fmt_i64(int64_t v, char *out)
{
	if (v >= 0)
		return util_fmt_u64((uint64_t)v, out);
	out[0] = '-';
	/* -(v + 1) + 1 avoids negating INT64_MIN. */
	return 1 + util_fmt_u64((uint64_t)(-(v + 1)) + 1, out + 1);
}

/*
 * ASCII case folding of eight bytes at once: every byte in 'A'..'Z' gets
 * 0x20.  Per byte, on its low seven bits h: h + (0x80 - 'A') has its top
 * bit set when h >= 'A', h + (0x80 - 'Z' - 1) when h > 'Z'; neither sum
 * carries into the next byte (0x7f + 0x3f < 0x100).  Bytes with their own
 * top bit set are left alone.  Header names of known length are compared
 * this way on every request (CORS, trace headers, hop-by-hop), 8 bytes per
 * step (util_memcaseeq).
 */
static inline uint64_t
util_fold8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ULL;
	uint64_t h = x & (0x7f * ones);
	uint64_t up = (h + (0x80 - 'A') * ones) & ~(h + (0x80 - 'Z' - 1) *
	    ones) & ~x & (0x80 * ones);

	return x | (up >> 2);
}

bool
util_memcaseeq(const char *a, const char *b, size_t len)
{
	uint64_t wa, wb;
	size_t i;

	if (len < 8) {
		for (i = 0; i < len; i++) {
			unsigned char ca = (unsigned char)a[i];
			unsigned char cb = (unsigned char)b[i];

			if (ca != cb && (ca | 0x20) != (cb | 0x20))
				return false;
			if (ca != cb && ((ca | 0x20) < 'a' || (ca | 0x20) > 'z'))
				return false;
		}
		return true;
	}
	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&wa, a + i, 8);
		memcpy(&wb, b + i, 8);
		if (wa != wb && util_fold8(wa) != util_fold8(wb))
			return false;
	}
	if (i == len)
		return true;
	/* The last 8 bytes, overlapping what was compared. */
	memcpy(&wa, a + len - 8, 8);
	memcpy(&wb, b + len - 8, 8);
	return wa == wb || util_fold8(wa) == util_fold8(wb);
}

/*
 * Byte by byte, and stops at the first difference: callers compare a
 * prefix of a C string that may be shorter than len (its NUL differs
 * and ends the loop), so this must never read ahead.
 */
bool
util_strncaseeq(const char *a, const char *b, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ca = (unsigned char)a[i], cb = (unsigned char)b[i];

		if (ca >= 'A' && ca <= 'Z')
			ca += 32;
		if (cb >= 'A' && cb <= 'Z')
			cb += 32;
		if (ca != cb)
			return false;
	}
	return true;
}

bool
util_strcaseeq(const char *a, const char *b)
{
	size_t la = strlen(a);

	return la == strlen(b) && util_strncaseeq(a, b, la);
}

void
util_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

uint64_t
util_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
util_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

int
util_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (int)n;
}
