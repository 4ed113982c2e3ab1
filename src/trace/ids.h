/*
 * ids.h -- trace-id and span-id generation and the hex/decimal id codecs
 * (PROPAGATION.md section 10).
 *
 * struct ids_rng is a xoshiro256** generator owned by one worker thread
 * (no locks, no globals); seed it once with ids_rng_init (getrandom) and
 * again after fork.  Tests use ids_rng_seed for repeatable ids.
 */
#ifndef TS_TRACE_IDS_H
#define TS_TRACE_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "context.h"

struct ids_rng {
	uint64_t	s[4];
};

/* Seed from getrandom(2); 0, or -1 with *errstr if no entropy. */
int ids_rng_init(struct ids_rng *, const char **errstr) TS_MUSTCHECK;
/* Deterministic seed (tests, fuzzers), expanded with splitmix64. */
void ids_rng_seed(struct ids_rng *, uint64_t seed);
/* Next 64 random bits. */
uint64_t ids_next(struct ids_rng *);

/* A span id: random, top bit cleared, never 0. */
uint64_t ids_span_id(struct ids_rng *);
/*
 * A new trace id.  128-bit: high = unix seconds << 32, low = 64 random
 * bits (never 0).  64-bit: high = 0, low = 63 random bits (never 0).
 */
struct trace_id ids_trace_id(struct ids_rng *, bool bits128,
    uint64_t unix_seconds);

/* Parse exactly len lower-case hex digits (1..16) into *out. */
int ids_parse_hex64(const char *, size_t len, uint64_t *out) TS_MUSTCHECK;
/* Parse 16 or 32 lower-case hex digits as a 128-bit id. */
int ids_parse_hex128(const char *, size_t len, struct trace_id *out)
    TS_MUSTCHECK;
/* Parse an unsigned 64-bit decimal (digits only, no sign, no overflow). */
int ids_parse_dec64(const char *, size_t len, uint64_t *out) TS_MUSTCHECK;
/* Write 16 lower-case hex digits and a NUL (17 bytes). */
void ids_format_hex64(uint64_t, char *out);
/* Write 32 lower-case hex digits and a NUL (33 bytes). */
void ids_format_hex128(struct trace_id, char *out);
/* Write a decimal and a NUL (21 bytes); returns the length. */
size_t ids_format_dec64(uint64_t, char *out);

#endif /* TS_TRACE_IDS_H */
