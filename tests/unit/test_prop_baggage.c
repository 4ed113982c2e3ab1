/*
 * test_prop_baggage.c -- W3C baggage extraction (all or nothing,
 * percent-decoding, limits) and injection (encoding, limits)
 * (PROPAGATION.md 6).
 */
#include "ts_test.h"
#include "trace/prop_baggage.h"

static char abuf[TRACE_ARENA_SIZE];

static const struct {
	const char	*in;
	enum prop_result r;
	size_t		 n;
	const char	*k0, *v0;
} rows[] = {
	{ "foo=bar", PROP_OK, 1, "foo", "bar" },
	{ " a = 1 ; prop=x , b=2", PROP_OK, 2, "a", "1" },
	{ "userId=Am%C3%A9lie", PROP_OK, 1, "userId", "Am\xc3\xa9lie" },
	{ "%22%2C=%20x", PROP_OK, 1, "\",", " x" },
	{ "no-equal-sign", PROP_INVALID, 0, NULL, NULL },
	{ "=no-key", PROP_INVALID, 0, NULL, NULL },
	{ "no-value=", PROP_INVALID, 0, NULL, NULL },
	{ "a=b,=", PROP_INVALID, 0, NULL, NULL },
	{ "a=b c", PROP_INVALID, 0, NULL, NULL },
	{ "a=%zz", PROP_INVALID, 0, NULL, NULL },
	{ "a=%2", PROP_INVALID, 0, NULL, NULL },
	{ "a b=c", PROP_INVALID, 0, NULL, NULL },
	{ "user.id=,session.id=x", PROP_INVALID, 0, NULL, NULL },
};

START_TEST(test_extract_rows)
{
	struct trace_header h = { "Baggage", 7, rows[_i].in,
	    strlen(rows[_i].in) };
	struct trace_kv items[8];
	struct trace_arena a;
	size_t n;

	trace_arena_init(&a, abuf, sizeof abuf);
	ck_assert_int_eq(prop_baggage_extract(&h, 1, 64, 8192, &a, items, 8,
	    &n), rows[_i].r);
	ck_assert_uint_eq(n, rows[_i].n);
	if (rows[_i].k0 != NULL) {
		ck_assert_str_eq(items[0].key, rows[_i].k0);
		ck_assert_str_eq(items[0].value, rows[_i].v0);
	}
}
END_TEST

START_TEST(test_extract_limits)
{
	static char big[9000];
	struct trace_header h[2] = {
		{ "baggage", 7, "a=1,b=2", 7 }, { "baggage", 7, "c=3", 3 },
	};
	struct trace_kv items[8];
	struct trace_arena a;
	size_t n;

	trace_arena_init(&a, abuf, sizeof abuf);
	/* Repeated fields combine in order. */
	ck_assert_int_eq(prop_baggage_extract(h, 2, 64, 8192, &a, items, 8, &n),
	    PROP_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(items[2].key, "c");
	/* Item limit keeps the first ones. */
	ck_assert_int_eq(prop_baggage_extract(h, 2, 2, 8192, &a, items, 8, &n),
	    PROP_OK);
	ck_assert_uint_eq(n, 2);
	/* Over max bytes: rejected. */
	memset(big, 'x', sizeof big - 1);
	big[0] = 'k';
	big[1] = '=';
	h[0].value = big;
	h[0].value_len = strlen(big);
	ck_assert_int_eq(prop_baggage_extract(h, 1, 64, 8192, &a, items, 8, &n),
	    PROP_INVALID);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_format)
{
	struct trace_kv items[] = {
		{ "foo", "bar" }, { "userId", "Am\xc3\xa9lie" },
		{ "serverNode", "DF 28" }, { "k,=", "50%;\"" },
	};
	char buf[256];
	size_t len;

	len = prop_baggage_format(items, 4, 64, 8192, buf, sizeof buf);
	ck_assert_str_eq(buf, "foo=bar,userId=Am%C3%A9lie,serverNode=DF%2028,"
	    "k%2C%3D=50%25%3B%22");
	ck_assert_uint_eq(len, strlen(buf));
	/* Item and byte limits: complete items only. */
	prop_baggage_format(items, 4, 2, 8192, buf, sizeof buf);
	ck_assert_str_eq(buf, "foo=bar,userId=Am%C3%A9lie");
	prop_baggage_format(items, 4, 64, 20, buf, sizeof buf);
	ck_assert_str_eq(buf, "foo=bar");
	ck_assert_uint_eq(prop_baggage_format(items, 0, 64, 8192, buf,
	    sizeof buf), 0);
}
END_TEST

static Suite *
baggage_suite(void)
{
	Suite *s = suite_create("prop_baggage");
	TCase *tc = tcase_create("baggage");

	tcase_add_loop_test(tc, test_extract_rows, 0, (int)TS_NITEMS(rows));
	tcase_add_test(tc, test_extract_limits);
	tcase_add_test(tc, test_format);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(baggage_suite)
