/*
 * retry.c -- a route's retry budget (retry.h).
 */
#include <string.h>

#include "retry.h"

#define RETRY_WIN_NS	1000000000ULL

/* Move the windows on to the one that holds now. */
static void
retry_budget_roll(struct retry_budget *b, uint64_t now_ns)
{
	uint64_t age;

	if (b->win_ns == 0 || now_ns < b->win_ns) {
		if (b->win_ns == 0)
			b->win_ns = now_ns;
		return;
	}
	age = now_ns - b->win_ns;
	if (age < RETRY_WIN_NS)
		return;
	if (age < 2 * RETRY_WIN_NS) {
		b->req[1] = b->req[0];
		b->ret[1] = b->ret[0];
		b->win_ns += RETRY_WIN_NS;
	} else {
		/* Nothing in the last full window. */
		b->req[1] = b->ret[1] = 0;
		b->win_ns = now_ns - age % RETRY_WIN_NS;
	}
	b->req[0] = b->ret[0] = 0;
}

void
retry_budget_request(struct retry_budget *b, uint64_t now_ns)
{
	retry_budget_roll(b, now_ns);
	if (b->req[0] != UINT32_MAX)
		b->req[0]++;
}

bool
retry_budget_take(struct retry_budget *b, unsigned percent,
    uint64_t min_milli, uint64_t now_ns)
{
	double left, reqs, rets;

	retry_budget_roll(b, now_ns);
	/* The share of the previous window still in the last second. */
	left = now_ns >= b->win_ns ? 1.0 - (double)(now_ns - b->win_ns) /
	    (double)RETRY_WIN_NS : 1.0;
	reqs = b->req[0] + b->req[1] * left;
	rets = b->ret[0] + b->ret[1] * left;
	if (rets + 1.0 > reqs * percent / 100.0 + (double)min_milli / 1000.0)
		return false;
	if (b->ret[0] != UINT32_MAX)
		b->ret[0]++;
	return true;
}
