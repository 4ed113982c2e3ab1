/*
 * test_log_level.c -- the log level a reload changes is read by the
 * workers without a data race (issue 9, item 6).
 *
 * The main thread sets the level (log_set_level on SIGHUP) while worker
 * threads log; the level is an atomic, so this is not a data race.  Run
 * under ThreadSanitizer (meson setup -Db_sanitize=thread) the flipping
 * test reports the race on the old plain variable; without TSan it checks
 * that every message is filtered by a level that was set (never a torn or
 * stale-forever value) and that the new level is seen.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "log.h"
#include "ts_test.h"

#define NTHREADS 4
#define NMSG 20000

static uint64_t seen_debug, seen_info, seen_other;
static int stop;

/* The hook runs on the logging threads: counters are atomic. */
static void
count_hook(enum log_level level, const char *msg, void *arg)
{
	(void)msg;
	(void)arg;
	if (level == LOG_LEVEL_DEBUG)
		__atomic_add_fetch(&seen_debug, 1, __ATOMIC_RELAXED);
	else if (level == LOG_LEVEL_INFO)
		__atomic_add_fetch(&seen_info, 1, __ATOMIC_RELAXED);
	else
		__atomic_add_fetch(&seen_other, 1, __ATOMIC_RELAXED);
}

static void *
logger(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < NMSG && !__atomic_load_n(&stop, __ATOMIC_RELAXED);
	    i++) {
		log_debug("debug %d", i);
		log_info("info %d", i);
		/* What proxy.c does before building a debug line. */
		if (log_get_level() >= LOG_LEVEL_DEBUG)
			log_debug("guarded %d", i);
	}
	return NULL;
}

static void
reset(void)
{
	seen_debug = seen_info = seen_other = 0;
	stop = 0;
	log_set_hook(count_hook, NULL);
}

/* Workers log while the main thread flips the level, as reloads do. */
START_TEST(test_level_flips_while_workers_log)
{
	pthread_t t[NTHREADS];
	int i, flips = 0;

	reset();
	log_set_level(LOG_LEVEL_INFO);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, logger, NULL), 0);
	for (flips = 0; flips < 2000; flips++)
		log_set_level(flips % 2 == 0 ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	/* Info always passes; debug at most twice per iteration. */
	ck_assert_uint_eq(seen_info, (uint64_t)NTHREADS * NMSG);
	ck_assert_uint_le(seen_debug, (uint64_t)NTHREADS * NMSG * 2);
	ck_assert_uint_eq(seen_other, 0);
	log_set_level(LOG_LEVEL_INFO);
	log_set_hook(ts_test_log_hook, NULL);
}
END_TEST

/* A level set by one thread is the one every other thread filters by. */
START_TEST(test_level_seen_by_other_threads)
{
	pthread_t t[NTHREADS];
	int i;

	reset();
	log_set_level(LOG_LEVEL_INFO);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, logger, NULL), 0);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	ck_assert_uint_eq(seen_debug, 0);
	ck_assert_uint_eq(seen_info, (uint64_t)NTHREADS * NMSG);

	reset();
	log_set_level(LOG_LEVEL_DEBUG);
	ck_assert_int_eq(log_get_level(), LOG_LEVEL_DEBUG);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, logger, NULL), 0);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	ck_assert_uint_eq(seen_debug, (uint64_t)NTHREADS * NMSG * 2);

	reset();
	log_set_level(LOG_LEVEL_ERROR);
	ck_assert_int_eq(log_get_level(), LOG_LEVEL_ERROR);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, logger, NULL), 0);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	ck_assert_uint_eq(seen_debug + seen_info, 0);
	log_set_level(LOG_LEVEL_INFO);
	log_set_hook(ts_test_log_hook, NULL);
}
END_TEST

static Suite *
log_level_suite(void)
{
	Suite *s = suite_create("log_level");
	TCase *tc = tcase_create("atomic");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_level_flips_while_workers_log);
	tcase_add_test(tc, test_level_seen_by_other_threads);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(log_level_suite)
