/*
 * balancer.c -- the three ways of choosing a server (balancer.h).
 *
 * round_robin: nginx's smooth weighted round robin
 * (ngx_http_upstream_get_peer in ngx_http_upstream_round_robin.c): each
 * pick adds every available peer's weight to its current value, takes the
 * peer with the largest current value and subtracts the total from it.
 * With weights 5, 1, 1 the order is a a b a c a a: the heavy peer is
 * spread out rather than sent five requests in a row.  A peer that is
 * down is skipped and its share goes to the others.
 *
 * least_request: power of two choices (Mitzenmacher; Envoy's
 * LEAST_REQUEST): two distinct available peers drawn in proportion to
 * their weights, the one with fewer requests in flight on this worker
 * per unit of weight wins (the first drawn on a tie, so idle peers share
 * by weight).  It avoids the herd that "least of all" causes when every
 * worker sees the same idle peer, at two draws per request.
 *
 * hash: a ring of points (ketama, as nginx's "hash ... consistent"): each
 * peer owns 256 points per unit of weight, placed by hashing "key#j";
 * a request goes to the owner of the first point at or after its hash,
 * walking on past peers that are down.  Removing a peer moves only the
 * keys it owned (about 1/n of them); the others stay where they were.
 * Maglev's table would spread more evenly but is rebuilt whole; jump hash
 * cannot skip a peer that is down without moving others.  The ring is
 * built from the peers' keys only, so every worker and every generation
 * with the same servers agrees on where a key goes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer.h"
#include "util.h"

#define BALANCER_POINTS_PER_WEIGHT 256
#define BALANCER_MAX_POINTS (1u << 20)

struct balancer_point {
	uint64_t hash;
	size_t peer;
};

struct balancer {
	enum config_balance kind;
	size_t n;
	unsigned *weight;
	int64_t *current;		/* round_robin */
	unsigned *inflight;		/* least_request (and metrics) */
	uint64_t rng;			/* least_request: xorshift64* */
	struct balancer_point *ring;	/* hash */
	size_t n_ring;
};

/* FNV-1a, then the murmur3 finaliser: FNV alone is weak in the low bits. */
uint64_t
balancer_hash(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static int
balancer_point_cmp(const void *a, const void *b)
{
	const struct balancer_point *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	/* Equal hashes (rare): a stable order all workers agree on. */
	return x->peer < y->peer ? -1 : x->peer > y->peer;
}

/* The ring of kind hash. */
static void
balancer_ring_build(struct balancer *b, const char *const *keys)
{
	size_t i, j, per, total = 0;
	char buf[320];
	int len;

	for (i = 0; i < b->n; i++)
		total += (size_t)b->weight[i] * BALANCER_POINTS_PER_WEIGHT;
	/* Many heavy servers: fewer points each, in proportion. */
	per = BALANCER_POINTS_PER_WEIGHT;
	while (total > BALANCER_MAX_POINTS && per > 1) {
		per /= 2;
		total = 0;
		for (i = 0; i < b->n; i++)
			total += (size_t)b->weight[i] * per;
	}
	b->ring = xcalloc(total, sizeof *b->ring);
	for (i = 0; i < b->n; i++) {
		for (j = 0; j < (size_t)b->weight[i] * per; j++) {
			len = snprintf(buf, sizeof buf, "%s#%zu", keys[i], j);
			if (len < 0 || (size_t)len >= sizeof buf)
				len = (int)sizeof buf - 1;
			b->ring[b->n_ring].hash = balancer_hash(buf,
			    (size_t)len);
			b->ring[b->n_ring].peer = i;
			b->n_ring++;
		}
	}
	qsort(b->ring, b->n_ring, sizeof *b->ring, balancer_point_cmp);
}

struct balancer *
balancer_new(enum config_balance kind, const unsigned *weights,
    const char *const *keys, size_t n, uint64_t seed)
{
	struct balancer *b = xcalloc(1, sizeof *b);
	size_t i;

	b->kind = kind;
	b->n = n;
	b->weight = xcalloc(n, sizeof *b->weight);
	b->current = xcalloc(n, sizeof *b->current);
	b->inflight = xcalloc(n, sizeof *b->inflight);
	for (i = 0; i < n; i++)
		b->weight[i] = weights[i] > 0 ? weights[i] : 1;
	b->rng = seed != 0 ? seed : 0x9e3779b97f4a7c15ULL;
	if (kind == CONFIG_BALANCE_HASH)
		balancer_ring_build(b, keys);
	return b;
}

void
balancer_free(struct balancer *b)
{
	if (b == NULL)
		return;
	free(b->weight);
	free(b->current);
	free(b->inflight);
	free(b->ring);
	free(b);
}

/* xorshift64* (Vigna): enough for picking two peers. */
static uint64_t
balancer_rand(struct balancer *b)
{
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 0x2545f4914f6cdd1dULL;
}

static int
balancer_pick_rr(struct balancer *b, balancer_up_fn *up, void *arg)
{
	int64_t total = 0;
	size_t i;
	int best = -1;

	for (i = 0; i < b->n; i++) {
		if (!up(arg, i))
			continue;
		b->current[i] += b->weight[i];
		total += b->weight[i];
		if (best < 0 || b->current[i] > b->current[best])
			best = (int)i;
	}
	if (best >= 0)
		b->current[best] -= total;
	return best;
}

/* An available peer drawn in proportion to its weight, skipping skip. */
static size_t
balancer_draw(struct balancer *b, const size_t *list, size_t na,
    uint64_t total, size_t skip)
{
	uint64_t r = balancer_rand(b) % total;
	size_t k;

	for (k = 0; k < na; k++) {
		if (list[k] == skip)
			continue;
		if (r < b->weight[list[k]])
			return list[k];
		r -= b->weight[list[k]];
	}
	return list[na - 1] != skip ? list[na - 1] : list[0];
}

static int
balancer_pick_p2c(struct balancer *b, balancer_up_fn *up, void *arg)
{
	size_t avail[64], *list = avail, na = 0, i, x, y;
	uint64_t total = 0;
	int best;

	if (b->n > TS_NITEMS(avail))
		list = xcalloc(b->n, sizeof *list);
	for (i = 0; i < b->n; i++) {
		if (up(arg, i)) {
			list[na++] = i;
			total += b->weight[i];
		}
	}
	if (na == 0)
		best = -1;
	else if (na == 1)
		best = (int)list[0];
	else {
		/*
		 * Two distinct peers, each drawn in proportion to its weight;
		 * the one with fewer requests in flight per unit of weight
		 * wins, the first drawn on a tie (so idle peers share by
		 * weight).
		 */
		x = balancer_draw(b, list, na, total, SIZE_MAX);
		y = balancer_draw(b, list, na, total - b->weight[x], x);
		best = (int)((uint64_t)b->inflight[y] * b->weight[x] <
		    (uint64_t)b->inflight[x] * b->weight[y] ? y : x);
	}
	if (list != avail)
		free(list);
	return best;
}

static int
balancer_pick_hash(struct balancer *b, uint64_t hash, balancer_up_fn *up,
    void *arg)
{
	size_t lo = 0, hi = b->n_ring, k, i;

	/* None up: say so now rather than after walking the whole ring. */
	for (i = 0; i < b->n && !up(arg, i); i++)
		;
	if (i == b->n || b->n_ring == 0)
		return -1;
	/* The first point at or after hash (wrapping to the start). */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (b->ring[mid].hash < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (k = 0; k < b->n_ring; k++) {
		i = (lo + k) % b->n_ring;
		if (up(arg, b->ring[i].peer))
			return (int)b->ring[i].peer;
	}
	return -1;
}

int
balancer_pick(struct balancer *b, uint64_t hash, balancer_up_fn *up,
    void *arg)
{
	switch (b->kind) {
	case CONFIG_BALANCE_LEAST_REQUEST:
		return balancer_pick_p2c(b, up, arg);
	case CONFIG_BALANCE_HASH:
		return balancer_pick_hash(b, hash, up, arg);
	case CONFIG_BALANCE_ROUND_ROBIN:
	default:
		return balancer_pick_rr(b, up, arg);
	}
}

void
balancer_start(struct balancer *b, size_t i)
{
	if (i < b->n)
		b->inflight[i]++;
}

void
balancer_done(struct balancer *b, size_t i)
{
	if (i < b->n && b->inflight[i] > 0)
		b->inflight[i]--;
}

unsigned
balancer_inflight(const struct balancer *b, size_t i)
{
	return i < b->n ? b->inflight[i] : 0;
}
