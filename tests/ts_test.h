/*
 * ts_test.h -- shared helpers for the Check suites.
 *
 * TS_TEST_MAIN(suite_fn) gives each test executable its one-line main
 * (libinput test-utils.c model).  Tests stay silent: a log hook fails the
 * test on any warning that was not declared with ts_expect_warning()
 * (libevdev test_logfunc_abort_on_error).  TS_TEST_DATA is the path of
 * tests/data, set by meson.
 */
#ifndef TS_TEST_H
#define TS_TEST_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define TS_SKIP 77

static char ts_expected_warning[256] TS_UNUSED;
static int ts_warnings_seen TS_UNUSED;

/* Fail on any warning or error unless it contains the expected text. */
static TS_UNUSED void
ts_test_log_hook(enum log_level level, const char *msg, void *arg)
{
	(void)arg;
	if (level > LOG_LEVEL_WARN)
		return;
	if (ts_expected_warning[0] != '\0' &&
	    strstr(msg, ts_expected_warning) != NULL) {
		ts_warnings_seen++;
		return;
	}
	ck_abort_msg("unexpected log message: %s", msg);
}

/* Declare the next warnings (substring match) as expected. */
static TS_UNUSED void
ts_expect_warning(const char *substring)
{
	snprintf(ts_expected_warning, sizeof ts_expected_warning, "%s",
	    substring == NULL ? "" : substring);
	ts_warnings_seen = 0;
}

/* Path of a file under tests/data (static buffer). */
static TS_UNUSED const char *
ts_data_path(const char *rel)
{
	static char buf[4096];
	const char *dir = getenv("TS_TEST_DATA");

	snprintf(buf, sizeof buf, "%s/%s", dir != NULL ? dir : "tests/data",
	    rel);
	return buf;
}

#define TS_TEST_MAIN(suite_fn)						\
	int								\
	main(void)							\
	{								\
		SRunner *sr;						\
		int failed;						\
									\
		log_set_hook(ts_test_log_hook, NULL);			\
		sr = srunner_create(suite_fn());			\
		srunner_run_all(sr, CK_NORMAL);				\
		failed = srunner_ntests_failed(sr);			\
		srunner_free(sr);					\
		return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;	\
	}

#endif /* TS_TEST_H */
