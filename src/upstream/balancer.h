/*
 * balancer.h -- choosing a server of a route: smooth weighted round robin
 * (nginx's, the default), least requests as power of two choices, and a
 * consistent hash ring for sticky sessions.  Pure: no libevent, no
 * sockets, no clock; one struct balancer per (worker, route), used by
 * that worker's thread only.  Peers are numbered 0..n-1 by the caller
 * (upstream/group.c: one per resolved address of each server).
 */
#ifndef TS_BALANCER_H
#define TS_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"	/* enum config_balance */

struct balancer;

/* Whether peer i may take a request now (health, ejection). */
typedef bool balancer_up_fn(void *arg, size_t i);

/*
 * A balancer of kind over n >= 1 peers with weights (1..1000) and keys
 * (stable names such as "10.0.0.1:8080", placing the peers on the hash
 * ring, so that every worker and every generation builds the same ring).
 * seed varies the random choices of least_request.  Never NULL.
 */
struct balancer *balancer_new(enum config_balance kind,
    const unsigned *weights, const char *const *keys, size_t n,
    uint64_t seed);
void balancer_free(struct balancer *);

/*
 * The peer for the next request among those up() accepts, or -1 when
 * none does.  hash is the request's key hash (balancer_hash) for kind
 * hash, ignored otherwise.
 */
int balancer_pick(struct balancer *, uint64_t hash, balancer_up_fn *up,
    void *arg);

/* A request went to peer i / is over: least_request counts them. */
void balancer_start(struct balancer *, size_t i);
void balancer_done(struct balancer *, size_t i);
unsigned balancer_inflight(const struct balancer *, size_t i);

/* 64-bit FNV-1a with a final mix, for hash keys and ring points. */
uint64_t balancer_hash(const void *data, size_t len);

#endif /* TS_BALANCER_H */
