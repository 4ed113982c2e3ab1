/*
 * test_propagation_e2e.c -- placeholder.
 */
#include "itest.h"

static Suite *
s_fn(void)
{
	return suite_create("x");
}

ITEST_MAIN(s_fn, true)
