/*
 * test_ids.c -- id generation (PROPAGATION.md 10) and the id codecs.
 */
#include "ts_test.h"
#include "trace/ids.h"

START_TEST(test_generation)
{
	struct ids_rng r;
	struct trace_id t;
	uint64_t prev = 0, v;
	const char *err = NULL;
	int i;

	ck_assert_int_eq(ids_rng_init(&r, &err), 0);
	for (i = 0; i < 10000; i++) {
		v = ids_span_id(&r);
		ck_assert_uint_ne(v, 0);
		ck_assert_uint_eq(v >> 63, 0);
		ck_assert_uint_ne(v, prev);
		prev = v;
	}
	t = ids_trace_id(&r, true, 1700000000);
	ck_assert_uint_eq(t.high, 1700000000ULL << 32);
	ck_assert_uint_eq(t.high & 0xffffffffULL, 0);
	ck_assert_uint_ne(t.low, 0);
	t = ids_trace_id(&r, false, 1700000000);
	ck_assert_uint_eq(t.high, 0);
	ck_assert_uint_eq(t.low >> 63, 0);
}
END_TEST

START_TEST(test_seeded_repeatable)
{
	struct ids_rng a, b;
	int i;

	ids_rng_seed(&a, 99);
	ids_rng_seed(&b, 99);
	for (i = 0; i < 100; i++)
		ck_assert_uint_eq(ids_next(&a), ids_next(&b));
	ids_rng_seed(&b, 100);
	ck_assert_uint_ne(ids_next(&a), ids_next(&b));
}
END_TEST

START_TEST(test_codecs)
{
	struct trace_id t;
	uint64_t v;
	char buf[40];

	ck_assert_int_eq(ids_parse_dec64("18446744073709551615", 20, &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	ck_assert_int_eq(ids_parse_dec64("18446744073709551616", 20, &v), -1);
	ck_assert_int_eq(ids_parse_dec64("99999999999999999999999", 23, &v),
	    -1);
	ck_assert_int_eq(ids_parse_dec64("+1", 2, &v), -1);
	ck_assert_int_eq(ids_parse_dec64("", 0, &v), -1);
	ck_assert_int_eq(ids_parse_hex64("00f067aa0ba902b7", 16, &v), 0);
	ck_assert_uint_eq(v, 67667974448284343ULL);
	ck_assert_int_eq(ids_parse_hex64("00F067AA0BA902B7", 16, &v), -1);
	ck_assert_int_eq(ids_parse_hex64("0x1", 3, &v), -1);
	ck_assert_int_eq(ids_parse_hex128("4bf92f3577b34da6a3ce929d0e0e4736",
	    32, &t), 0);
	ids_format_hex128(t, buf);
	ck_assert_str_eq(buf, "4bf92f3577b34da6a3ce929d0e0e4736");
	ck_assert_int_eq(ids_parse_hex128("abc", 3, &t), -1);
	ck_assert_uint_eq(ids_format_dec64(0, buf), 1);
	ck_assert_str_eq(buf, "0");
	ids_format_dec64(UINT64_MAX, buf);
	ck_assert_str_eq(buf, "18446744073709551615");
	ids_format_hex64(10, buf);
	ck_assert_str_eq(buf, "000000000000000a");
}
END_TEST

static Suite *
ids_suite(void)
{
	Suite *s = suite_create("ids");
	TCase *tc = tcase_create("ids");

	tcase_add_test(tc, test_generation);
	tcase_add_test(tc, test_seeded_repeatable);
	tcase_add_test(tc, test_codecs);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(ids_suite)
