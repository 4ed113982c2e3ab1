/*
 * retry.h -- the retry budget of a route in one worker: how many retries
 * it may send now, so that a sick backend is never hit by a retry storm
 * (Envoy's retry budget, docs/upstreams.md "Retries").  Pure: no clock,
 * no libevent; the caller passes monotonic time.
 *
 * A retry is allowed while the retries of the last second stay below
 * percent % of the requests of the last second, plus min_per_sec.  "The
 * last second" is a sliding window estimated from two fixed one-second
 * windows (the current one, and the previous one weighted by how much of
 * it is still inside the sliding second), as rate limiters do: no list
 * of time stamps, a few words of state.
 */
#ifndef TS_RETRY_H
#define TS_RETRY_H

#include <stdbool.h>
#include <stdint.h>

struct retry_budget {
	uint64_t win_ns;		/* start of the current window */
	uint32_t req[2];		/* requests: current, previous window */
	uint32_t ret[2];		/* retries, likewise */
};

/* A request (its first attempt) at now. */
void retry_budget_request(struct retry_budget *, uint64_t now_ns);
/*
 * Whether one more retry at now stays within percent % of the requests
 * plus min_milli / 1000 retries per second; when it does, it is counted.
 */
bool retry_budget_take(struct retry_budget *, unsigned percent,
    uint64_t min_milli, uint64_t now_ns);

#endif /* TS_RETRY_H */
