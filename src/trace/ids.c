/*
 * ids.c -- per-thread id generator and id codecs.
 *
 * The generator is xoshiro256** (Blackman and Vigna, public-domain
 * algorithm description), seeded from getrandom(2) or, for tests, from a
 * splitmix64 expansion of one 64-bit seed.  New 128-bit trace ids carry
 * the unix time in seconds in bits 127-96, zeros in 95-64 and random low
 * bits (PROPAGATION.md 10, dd-trace-cpp id_generator.cpp); span ids have
 * the top bit cleared.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "ids.h"
#include "util.h"

/* One splitmix64 step. */
static uint64_t
ids_splitmix64(uint64_t *x)
{
	uint64_t z;

	z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t
ids_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* Deterministic seed (tests, fuzzers), expanded with splitmix64. */
void
ids_rng_seed(struct ids_rng *r, uint64_t seed)
{
	int i;

	for (i = 0; i < 4; i++)
		r->s[i] = ids_splitmix64(&seed);
}

/* Seed from getrandom(2); 0, or -1 with *errstr if no entropy. */
int
ids_rng_init(struct ids_rng *r, const char **errstr)
{
	uint8_t *p = (uint8_t *)r->s;
	size_t got = 0;
	ssize_t n;

	while (got < sizeof r->s) {
		n = getrandom(p + got, sizeof r->s - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errstr != NULL)
				*errstr = "getrandom failed";
			return -1;
		}
		got += (size_t)n;
	}
	if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
		ids_rng_seed(r, 1);	/* the all-zero state is a fixed point */
	return 0;
}

/* Next 64 random bits (xoshiro256**). */
uint64_t
ids_next(struct ids_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result, t;

	result = ids_rotl(s[1] * 5, 7) * 9;
	t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = ids_rotl(s[3], 45);
	return result;
}

/* A span id: random, top bit cleared, never 0 (PROPAGATION.md 10). */
uint64_t
ids_span_id(struct ids_rng *r)
{
	uint64_t v;

	do
		v = ids_next(r) & 0x7fffffffffffffffULL;
	while (v == 0);
	return v;
}

/* A new trace id (PROPAGATION.md 10). */
struct trace_id
ids_trace_id(struct ids_rng *r, bool bits128, uint64_t unix_seconds)
{
	struct trace_id t;

	if (bits128) {
		t.high = (unix_seconds & 0xffffffffULL) << 32;
		do
			t.low = ids_next(r);
		while (t.low == 0);
	} else {
		t.high = 0;
		t.low = ids_span_id(r);
	}
	return t;
}

/* Value of one lower-case hex digit, or -1. */
static int
ids_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parse exactly len lower-case hex digits (1..16) into *out. */
int
ids_parse_hex64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;
	int d;

	if (len == 0 || len > 16)
		return -1;
	for (i = 0; i < len; i++) {
		if ((d = ids_hexval(s[i])) < 0)
			return -1;
		v = (v << 4) | (uint64_t)d;
	}
	*out = v;
	return 0;
}

/* Parse 16 or 32 lower-case hex digits as a 128-bit id. */
int
ids_parse_hex128(const char *s, size_t len, struct trace_id *out)
{
	struct trace_id t = { 0, 0 };

	if (len == 16) {
		if (ids_parse_hex64(s, 16, &t.low) != 0)
			return -1;
	} else if (len == 32) {
		if (ids_parse_hex64(s, 16, &t.high) != 0 ||
		    ids_parse_hex64(s + 16, 16, &t.low) != 0)
			return -1;
	} else
		return -1;
	*out = t;
	return 0;
}

/* Parse an unsigned 64-bit decimal (digits only, no sign, no overflow). */
int
ids_parse_dec64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0, d;
	size_t i;

	if (len == 0 || len > 20)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Write 16 lower-case hex digits and a NUL (17 bytes). */
void
ids_format_hex64(uint64_t v, char *out)
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 15; i >= 0; i--) {
		out[i] = hex[v & 0xf];
		v >>= 4;
	}
	out[16] = '\0';
}

/* Write 32 lower-case hex digits and a NUL (33 bytes). */
void
ids_format_hex128(struct trace_id t, char *out)
{
	ids_format_hex64(t.high, out);
	ids_format_hex64(t.low, out + 16);
}

/* Write a decimal and a NUL (21 bytes); returns the length. */
size_t
ids_format_dec64(uint64_t v, char *out)
{
	return util_fmt_u64(v, out);
}
