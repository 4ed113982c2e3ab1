/*
 * bench_util.h -- what the microbenchmarks share: a clock in nanoseconds
 * and turning a {name, value} table into trace_header lines.
 */
#ifndef TS_BENCH_UTIL_H
#define TS_BENCH_UTIL_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "context.h"

/* Nanoseconds of a clock (monotonic wall time or a CPU-time clock). */
static inline uint64_t
bench_clock(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* th[0..n) from a table of {name, value} C strings. */
static inline void
bench_headers_fill(struct trace_header *th, const char *const (*tab)[2],
    size_t n)
{
	size_t k;

	for (k = 0; k < n; k++) {
		th[k].name = tab[k][0];
		th[k].name_len = strlen(tab[k][0]);
		th[k].value = tab[k][1];
		th[k].value_len = strlen(tab[k][1]);
	}
}

#endif /* TS_BENCH_UTIL_H */
