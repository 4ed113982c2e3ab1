/*
 * test_balancer.c -- src/upstream/balancer.c (distributions of the three
 * ways of choosing a server) and src/upstream/health.c (the passive
 * health state machine, the active verdict) and src/upstream/retry.c
 * (the retry budget's arithmetic).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer.h"
#include "health.h"
#include "metrics.h"
#include "resolver.h"
#include "retry.h"
#include "ts_test.h"

#define NPICKS 30000

/* Peers down in the current test (bit i: peer i is down). */
static unsigned down_mask;

static bool
up_fn(void *arg, size_t i)
{
	(void)arg;
	return (down_mask & (1u << i)) == 0;
}

static const char *const keys5[] = {
	"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80",
	"10.0.0.5:80",
};

/* Weights 5, 1, 1: exactly in proportion, spread (nginx's sequence). */
START_TEST(test_rr_weights)
{
	static const unsigned w[] = { 5, 1, 1 };
	struct balancer *b = balancer_new(CONFIG_BALANCE_ROUND_ROBIN, w,
	    keys5, 3, 1);
	char seq[8];
	unsigned count[3] = { 0 }, i;
	int p;

	down_mask = 0;
	for (i = 0; i < 7; i++) {
		p = balancer_pick(b, 0, up_fn, NULL);
		ck_assert_int_ge(p, 0);
		seq[i] = (char)('a' + p);
	}
	seq[7] = '\0';
	/* The smooth order of nginx's comment: a a b a c a a. */
	ck_assert_str_eq(seq, "aabacaa");
	for (i = 0; i < 7 * 1000; i++)
		count[balancer_pick(b, 0, up_fn, NULL)]++;
	ck_assert_uint_eq(count[0], 5000);
	ck_assert_uint_eq(count[1], 1000);
	ck_assert_uint_eq(count[2], 1000);
	balancer_free(b);
}
END_TEST

/* A peer that is down gets nothing; its share goes to the others. */
START_TEST(test_rr_skips_down)
{
	static const unsigned w[] = { 1, 1, 1 };
	struct balancer *b = balancer_new(CONFIG_BALANCE_ROUND_ROBIN, w,
	    keys5, 3, 1);
	unsigned count[3] = { 0 }, i;

	down_mask = 1u << 1;
	for (i = 0; i < 3000; i++)
		count[balancer_pick(b, 0, up_fn, NULL)]++;
	ck_assert_uint_eq(count[1], 0);
	ck_assert_uint_eq(count[0], 1500);
	ck_assert_uint_eq(count[2], 1500);
	down_mask = 7;
	ck_assert_int_eq(balancer_pick(b, 0, up_fn, NULL), -1);
	down_mask = 0;
	balancer_free(b);
}
END_TEST

/* Two choices: the loaded peer loses every comparison it is in. */
START_TEST(test_p2c_prefers_less_loaded)
{
	static const unsigned w[] = { 1, 1, 1 };
	struct balancer *b = balancer_new(CONFIG_BALANCE_LEAST_REQUEST, w,
	    keys5, 3, 42);
	unsigned count[3] = { 0 }, i;
	int p;

	down_mask = 0;
	for (i = 0; i < 10; i++)
		balancer_start(b, 0);		/* peer 0: 10 in flight */
	ck_assert_uint_eq(balancer_inflight(b, 0), 10);
	for (i = 0; i < NPICKS; i++) {
		p = balancer_pick(b, 0, up_fn, NULL);
		count[p]++;
	}
	/* Peer 0 is picked only in a pair with itself: never (distinct). */
	ck_assert_uint_eq(count[0], 0);
	/* The two idle ones share the rest, about evenly (+-5%). */
	ck_assert_uint_gt(count[1], NPICKS / 2 * 95 / 100);
	ck_assert_uint_gt(count[2], NPICKS / 2 * 95 / 100);
	for (i = 0; i < 10; i++)
		balancer_done(b, 0);
	ck_assert_uint_eq(balancer_inflight(b, 0), 0);
	/* All idle: each gets a third, within 5%. */
	memset(count, 0, sizeof count);
	for (i = 0; i < NPICKS; i++)
		count[balancer_pick(b, 0, up_fn, NULL)]++;
	for (i = 0; i < 3; i++) {
		ck_assert_uint_gt(count[i], NPICKS / 3 * 95 / 100);
		ck_assert_uint_lt(count[i], NPICKS / 3 * 105 / 100);
	}
	balancer_free(b);
}
END_TEST

/*
 * Two choices with weights 3, 1: idle peers share 3:1 (within 5%); a
 * peer with 3 requests in flight for weight 3 ties with 1 for weight 1.
 */
START_TEST(test_p2c_weights)
{
	static const unsigned w[] = { 3, 1 };
	struct balancer *b = balancer_new(CONFIG_BALANCE_LEAST_REQUEST, w,
	    keys5, 2, 7);
	unsigned count[2] = { 0 }, i;

	down_mask = 0;
	for (i = 0; i < NPICKS; i++)
		count[balancer_pick(b, 0, up_fn, NULL)]++;
	ck_assert_uint_gt(count[0], NPICKS * 3 / 4 * 95 / 100);
	ck_assert_uint_lt(count[0], NPICKS * 3 / 4 * 105 / 100);
	/* Peer 0 has 4 in flight (4/3 per weight), peer 1 has 1 (1/1): 1. */
	for (i = 0; i < 4; i++)
		balancer_start(b, 0);
	balancer_start(b, 1);
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(balancer_pick(b, 0, up_fn, NULL), 1);
	balancer_free(b);
}
END_TEST

/* The hash of key number i. */
static uint64_t
key_hash(unsigned i)
{
	char k[32];

	snprintf(k, sizeof k, "session-%u", i);
	return balancer_hash(k, strlen(k));
}

/*
 * Consistent hash: the same key goes to the same peer every time and in
 * a second balancer (another worker); weights are respected within 15%;
 * removing a peer moves only the keys it had.
 */
START_TEST(test_hash_stable_minimal_movement)
{
	static const unsigned w5[] = { 1, 1, 1, 1, 1 };
	static const unsigned wr[] = { 3, 1 };
	struct balancer *a = balancer_new(CONFIG_BALANCE_HASH, w5, keys5, 5,
	    1);
	struct balancer *a2 = balancer_new(CONFIG_BALANCE_HASH, w5, keys5, 5,
	    99);
	/* The same servers without the third one (a DNS change, a reload). */
	static const char *const keys4[] = {
		"10.0.0.1:80", "10.0.0.2:80", "10.0.0.4:80", "10.0.0.5:80",
	};
	struct balancer *r = balancer_new(CONFIG_BALANCE_HASH, w5, keys4, 4,
	    1);
	struct balancer *wb;
	static const size_t map4[] = { 0, 1, 3, 4 };	/* r's peer -> a's */
	unsigned count[5] = { 0 }, moved = 0, i;
	int p, q;

	down_mask = 0;
	for (i = 0; i < NPICKS; i++) {
		p = balancer_pick(a, key_hash(i), up_fn, NULL);
		ck_assert_int_eq(p, balancer_pick(a, key_hash(i), up_fn, NULL));
		ck_assert_int_eq(p, balancer_pick(a2, key_hash(i), up_fn,
		    NULL));
		count[p]++;
		q = (int)map4[balancer_pick(r, key_hash(i), up_fn, NULL)];
		if (p != 2)
			ck_assert_msg(p == q, "key %u moved from %d to %d "
			    "though its server stayed", i, p, q);
		else
			moved++;
	}
	/* Each peer owns about a fifth of the keys (+-20%; the ring is fixed, so is the share). */
	for (i = 0; i < 5; i++) {
		ck_assert_uint_gt(count[i], NPICKS / 5 * 80 / 100);
		ck_assert_uint_lt(count[i], NPICKS / 5 * 120 / 100);
	}
	ck_assert_uint_eq(moved, count[2]);
	/* A peer that is down: its keys go elsewhere, the others stay. */
	down_mask = 1u << 2;
	for (i = 0; i < NPICKS; i++) {
		down_mask = 0;
		p = balancer_pick(a, key_hash(i), up_fn, NULL);
		down_mask = 1u << 2;
		q = balancer_pick(a, key_hash(i), up_fn, NULL);
		ck_assert_int_ne(q, 2);
		if (p != 2)
			ck_assert_int_eq(p, q);
	}
	down_mask = 0;
	/* Weights 3:1 give 75%:25% of the keys, within 20%. */
	wb = balancer_new(CONFIG_BALANCE_HASH, wr, keys5, 2, 1);
	memset(count, 0, sizeof count);
	for (i = 0; i < NPICKS; i++)
		count[balancer_pick(wb, key_hash(i), up_fn, NULL)]++;
	ck_assert_uint_gt(count[0], NPICKS * 3 / 4 * 80 / 100);
	ck_assert_uint_gt(count[1], NPICKS / 4 * 80 / 100);
	ck_assert_uint_lt(count[1], NPICKS / 4 * 120 / 100);
	balancer_free(wb);
	balancer_free(a);
	balancer_free(a2);
	balancer_free(r);
}
END_TEST

#define SEC 1000000000ULL

/*
 * Passive health: max_fails failures in a row eject for base; a success
 * in between resets the count; back after the time, one failure ejects
 * again for twice as long (capped); a success on return clears it.
 */
START_TEST(test_health_machine)
{
	struct health_params hp = { 3, 10 * SEC, 25 * SEC, false };
	struct upstream_server *s = health_server_get("r", "10.0.0.1:80");
	uint64_t t = 1000 * SEC;

	ck_assert(health_available(s, t));
	ck_assert(!health_report(s, &hp, false, t));
	ck_assert(!health_report(s, &hp, false, t));
	ck_assert(!health_report(s, &hp, true, t));	/* resets */
	ck_assert(!health_report(s, &hp, false, t));
	ck_assert(!health_report(s, &hp, false, t));
	ck_assert(health_available(s, t));
	ck_assert(health_report(s, &hp, false, t));	/* third in a row */
	ck_assert(!health_available(s, t));
	ck_assert_int_eq(health_state(s, t), HEALTH_EJECTED);
	ck_assert_uint_eq(s->ejections, 1);
	/* Answers of requests sent before: no second ejection. */
	ck_assert(!health_report(s, &hp, false, t + 1));
	ck_assert_uint_eq(s->ejections, 1);
	ck_assert(!health_available(s, t + 10 * SEC - 1));
	t += 10 * SEC;
	ck_assert(health_available(s, t));
	/* On probation: one failure, ejected for 20 s. */
	ck_assert(health_report(s, &hp, false, t));
	ck_assert(!health_available(s, t + 20 * SEC - 1));
	t += 20 * SEC;
	ck_assert(health_available(s, t));
	/* Again: 40 s capped at 25 s. */
	ck_assert(health_report(s, &hp, false, t));
	ck_assert(!health_available(s, t + 25 * SEC - 1));
	t += 25 * SEC;
	ck_assert(health_available(s, t));
	/* Back and fine: the count of ejections in a row is over. */
	ck_assert(!health_report(s, &hp, true, t));
	ck_assert_uint_eq(s->level, 0);
	ck_assert(!health_report(s, &hp, false, t));
	ck_assert(health_available(s, t));
	ck_assert_uint_eq(s->ejections, 3);
	/* Active verdict: down wins over passive health. */
	health_set_active(s, true);
	ck_assert(!health_available(s, t));
	ck_assert_int_eq(health_state(s, t), HEALTH_UNHEALTHY);
	health_set_active(s, false);
	ck_assert(health_available(s, t));
	/* max_fails 0: never ejected. */
	hp.max_fails = 0;
	ck_assert(!health_report(s, &hp, false, t));
	ck_assert(!health_report(s, &hp, false, t));
	ck_assert(health_available(s, t));
	/* The same (route, name) is the same server; another is not. */
	ck_assert_ptr_eq(health_server_get("r", "10.0.0.1:80"), s);
	ck_assert_ptr_ne(health_server_get("r2", "10.0.0.1:80"), s);
	health_free_all();
}
END_TEST

/*
 * A route's only server (no_eject, upstream_group_new's rule for a group
 * of one): max_fails failures in a row never eject it, they only ask for
 * a new lookup of its name, once per max_fails in a row.
 */
START_TEST(test_health_single_server)
{
	struct health_params hp = { 2, 10 * SEC, 25 * SEC, true };
	struct upstream_server *s = health_server_get("one", "10.0.0.9:80");
	uint64_t t = 1000 * SEC;
	int i;

	for (i = 0; i < 10; i++) {
		ck_assert(!health_report(s, &hp, false, t + (uint64_t)i));
		ck_assert(health_available(s, t + (uint64_t)i));
		ck_assert_int_eq(health_state(s, t), HEALTH_HEALTHY);
		/* Every second failure in a row asks for a lookup. */
		ck_assert(health_take_resolve(s) == (i % 2 == 1));
	}
	ck_assert_uint_eq(s->ejections, 0);
	/* Active checks still take it out. */
	health_set_active(s, true);
	ck_assert(!health_available(s, t));
	health_free_all();
}
END_TEST

/* The per-server families, with the duration histogram. */
START_TEST(test_health_metrics)
{
	struct upstream_server *s = health_server_get("api", "127.0.0.1:81");
	char *text;

	health_observe(s, 700, false);
	health_observe(s, 3000000, true);
	text = metrics_render();
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "tracestitch_upstream_server_"
	    "requests_total{route=\"api\",server=\"127.0.0.1:81\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text, "tracestitch_upstream_server_"
	    "errors_total{route=\"api\",server=\"127.0.0.1:81\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "tracestitch_upstream_server_"
	    "duration_seconds_bucket{route=\"api\",server=\"127.0.0.1:81\","
	    "le=\"0.001\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "tracestitch_upstream_server_"
	    "duration_seconds_count{route=\"api\",server=\"127.0.0.1:81\"} "
	    "2\n"));
	ck_assert_ptr_nonnull(strstr(text, "tracestitch_upstream_server_"
	    "healthy{route=\"api\",server=\"127.0.0.1:81\",state=\"healthy\"}"
	    " 1\n"));
	free(text);
	/* No generation uses it any more: not rendered. */
	health_server_put(s);
	text = metrics_render();
	ck_assert_ptr_null(strstr(text, "127.0.0.1:81"));
	free(text);
	health_free_all();
	metrics_free_all();
}
END_TEST

static void *
observe_thread(void *arg)
{
	struct upstream_server *s = arg;
	int i;

	for (i = 0; i < 10000; i++)
		health_observe(s, 700, i % 10 == 0);
	return NULL;
}

/*
 * The request counters are per thread: two workers counting at once
 * write two different slots (their own cache lines), and /metrics sums
 * them to the exact totals.
 */
START_TEST(test_health_per_worker_counters)
{
	struct upstream_server *s = health_server_get("api", "127.0.0.1:82");
	pthread_t th[2];
	unsigned k, used = 0;
	char *text;
	int i;

	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, observe_thread,
		    s), 0);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	for (k = 0; k < HEALTH_SLOTS; k++)
		used += s->slots[k].buckets[metrics_bucket_of(700)] != 0;
	ck_assert_uint_eq(used, 2);
	ck_assert_uint_eq(health_requests(s), 20000);
	ck_assert_uint_eq(health_errors(s), 2000);
	text = metrics_render();
	ck_assert_ptr_nonnull(strstr(text, "tracestitch_upstream_server_"
	    "requests_total{route=\"api\",server=\"127.0.0.1:82\"} 20000\n"));
	ck_assert_ptr_nonnull(strstr(text, "tracestitch_upstream_server_"
	    "errors_total{route=\"api\",server=\"127.0.0.1:82\"} 2000\n"));
	ck_assert_ptr_nonnull(strstr(text, "tracestitch_upstream_server_"
	    "duration_seconds_sum{route=\"api\",server=\"127.0.0.1:82\"} "
	    "14.000000\n"));
	free(text);
	health_free_all();
	metrics_free_all();
}
END_TEST

#define MS 1000000ULL

/*
 * The budget: 20% of the requests of the last second plus 3 per second.
 * With no request, 3 retries and no fourth; with 100 requests in the
 * window, 20 + 3 = 23 and no 24th.
 */
START_TEST(test_budget_arithmetic)
{
	struct retry_budget b;
	uint64_t t = 5000 * MS;
	int i, n;

	memset(&b, 0, sizeof b);
	for (n = 0; retry_budget_take(&b, 20, 3000, t); n++)
		ck_assert_int_lt(n, 1000);
	ck_assert_int_eq(n, 3);

	memset(&b, 0, sizeof b);
	for (i = 0; i < 100; i++)
		retry_budget_request(&b, t + (uint64_t)i * MS);
	for (n = 0; retry_budget_take(&b, 20, 3000, t + 200 * MS); n++)
		ck_assert_int_lt(n, 1000);
	ck_assert_int_eq(n, 23);
	/* A refused retry is not counted: still refused, still 23. */
	ck_assert(!retry_budget_take(&b, 20, 3000, t + 300 * MS));
	ck_assert_uint_eq(b.ret[0], 23);

	/* 0% and no floor: never. */
	memset(&b, 0, sizeof b);
	for (i = 0; i < 100; i++)
		retry_budget_request(&b, t);
	ck_assert(!retry_budget_take(&b, 0, 0, t));
	/* A fraction of the floor (a worker's share of 3 over 2): 1. */
	memset(&b, 0, sizeof b);
	ck_assert(retry_budget_take(&b, 0, 1500, t));
	ck_assert(!retry_budget_take(&b, 0, 1500, t));
}
END_TEST

/*
 * The window slides: the previous second counts in proportion to how
 * much of it is still inside the last second, and two quiet seconds
 * forget everything.
 */
START_TEST(test_budget_window)
{
	struct retry_budget b;
	uint64_t t = 7000 * MS;
	int i, n;

	memset(&b, 0, sizeof b);
	retry_budget_request(&b, t);	/* the window starts at t */
	for (i = 1; i < 100; i++)
		retry_budget_request(&b, t + 10 * MS);
	/* 100 requests, 20 + 0 retries, all taken in the first window. */
	for (n = 0; retry_budget_take(&b, 20, 0, t + 20 * MS); n++)
		;
	ck_assert_int_eq(n, 20);
	/*
	 * 1.5 s in: half of the first window is still in the last second:
	 * 50 requests and 10 retries count, so 10 - 10 = 0 more; with a
	 * floor of 3 per second, 3 more.
	 */
	ck_assert(!retry_budget_take(&b, 20, 0, t + 1500 * MS));
	for (n = 0; retry_budget_take(&b, 20, 3000, t + 1500 * MS); n++)
		;
	ck_assert_int_eq(n, 3);
	/* 3.5 s in: nothing left of either window. */
	for (n = 0; retry_budget_take(&b, 20, 3000, t + 3500 * MS); n++)
		;
	ck_assert_int_eq(n, 3);
	ck_assert_uint_eq(b.req[0] + b.req[1], 0);
}
END_TEST

/* The next lookup of a name: its TTL, at least 1 s, at most the
 * interval; without a TTL, the interval. */
START_TEST(test_resolver_next_ms)
{
	ck_assert_uint_eq(resolver_next_ms(-1, 30000), 30000);
	ck_assert_uint_eq(resolver_next_ms(5, 30000), 5000);
	ck_assert_uint_eq(resolver_next_ms(0, 30000), 1000);
	ck_assert_uint_eq(resolver_next_ms(3600, 30000), 30000);
	/* An interval below the floor wins (it is the ceiling). */
	ck_assert_uint_eq(resolver_next_ms(0, 200), 200);
	ck_assert_uint_eq(resolver_next_ms(60, 3600000), 60000);
}
END_TEST

static Suite *
balancer_suite(void)
{
	Suite *s = suite_create("balancer");
	TCase *tc = tcase_create("balancer");
	TCase *th = tcase_create("health");
	TCase *tr;

	tcase_add_test(tc, test_rr_weights);
	tcase_add_test(tc, test_rr_skips_down);
	tcase_add_test(tc, test_p2c_prefers_less_loaded);
	tcase_add_test(tc, test_p2c_weights);
	tcase_add_test(tc, test_hash_stable_minimal_movement);
	suite_add_tcase(s, tc);
	tcase_add_test(th, test_health_machine);
	tcase_add_test(th, test_health_single_server);
	tcase_add_test(th, test_health_metrics);
	tcase_add_test(th, test_health_per_worker_counters);
	suite_add_tcase(s, th);
	tr = tcase_create("retry");
	tcase_add_test(tr, test_budget_arithmetic);
	tcase_add_test(tr, test_budget_window);
	tcase_add_test(tr, test_resolver_next_ms);
	suite_add_tcase(s, tr);
	return s;
}

TS_TEST_MAIN(balancer_suite)
