/*
 * test_prop_b3.c -- B3 single and multi extraction rows (good and
 * malformed) and injection (PROPAGATION.md 5).
 */
#include "ts_test.h"
#include "trace/prop_b3.h"

static const struct {
	const char	*b3;
	enum prop_result r;
	uint64_t	 high, low, span;
	int		 prio;		/* 99: none */
} single[] = {
	{
	    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
	    PROP_OK, 0x80f198ee56343ba8ULL, 0x64fe8b2a57d3eff7ULL,
	    0xe457b5a2e4d86bd1ULL, 1 },
	{ "000000000000000a-000000000000000b-d", PROP_OK, 0, 10, 11, 2 },
	{ "000000000000000a-000000000000000b", PROP_OK, 0, 10, 11, 99 },
	{ " 000000000000000a-000000000000000b-0 ", PROP_OK, 0, 10, 11, 0 },
	{ "0", PROP_DECISION_ONLY, 0, 0, 0, 0 },
	{ "d", PROP_DECISION_ONLY, 0, 0, 0, 2 },
	{ "0-0-1", PROP_INVALID, 0, 0, 0, 99 },
	{ "0000000000000000-000000000000000b-1", PROP_INVALID, 0, 0, 0, 99 },
	{ "000000000000000a-0000000000000000-1", PROP_INVALID, 0, 0, 0, 99 },
	{ "000000000000000A-000000000000000b-1", PROP_INVALID, 0, 0, 0, 99 },
	{ "abc-000000000000000b-1", PROP_INVALID, 0, 0, 0, 99 },
	{ "000000000000000a-000000000000000b-x", PROP_INVALID, 0, 0, 0, 99 },
	{ "000000000000000a-000000000000000b-1-zz", PROP_INVALID, 0, 0, 0, 99 },
	{ "x", PROP_INVALID, 0, 0, 0, 99 },
};

START_TEST(test_single)
{
	struct trace_header h = { "B3", 2, single[_i].b3,
	    strlen(single[_i].b3) };
	struct trace_context c;

	ck_assert_int_eq(prop_b3_extract_single(&h, 1, &c), single[_i].r);
	if (single[_i].r == PROP_INVALID)
		return;
	if (single[_i].r == PROP_OK) {
		ck_assert_uint_eq(c.trace_id.high, single[_i].high);
		ck_assert_uint_eq(c.trace_id.low, single[_i].low);
		ck_assert_uint_eq(c.parent_id, single[_i].span);
	}
	if (single[_i].prio == 99)
		ck_assert(!c.has_priority);
	else
		ck_assert_int_eq(c.priority, single[_i].prio);
}
END_TEST

static const struct {
	const char	*tid, *sid, *sampled, *flags;
	enum prop_result r;
	uint64_t	 low;
	int		 prio;
} multi[] = {
	{ "000000000000000000000000075bcd15", "000000003ade68b1", "1", NULL,
	    PROP_OK, 123456789, 1 },
	{ "00000000075bcd15", "000000003ade68b1", "true", NULL, PROP_OK,
	    123456789, 1 },
	{ "00000000075bcd15", "000000003ade68b1", "false", NULL, PROP_OK,
	    123456789, 0 },
	{ "00000000075bcd15", "000000003ade68b1", "0", "1", PROP_OK, 123456789,
	    2 },
	{ "00000000075bcd15", "000000003ade68b1", NULL, NULL, PROP_OK,
	    123456789, 99 },
	{ "00000000000000000000000000000000", "000000003ade68b1", "1", NULL,
	    PROP_INVALID, 0, 99 },
	{ "00000000075bcd15", "0000000000000000", "1", NULL, PROP_INVALID, 0,
	    99 },
	{ "abc", "000000003ade68b1", "1", NULL, PROP_INVALID, 0, 99 },
	{ "00000000075bcd15", "3ade68b1", "1", NULL, PROP_INVALID, 0, 99 },
	{ "00000000075BCD15", "000000003ade68b1", "1", NULL, PROP_INVALID, 0,
	    99 },
	{ NULL, "000000003ade68b1", "1", NULL, PROP_INVALID, 0, 99 },
	{ NULL, NULL, "0", NULL, PROP_DECISION_ONLY, 0, 0 },
	{ NULL, NULL, NULL, NULL, PROP_ABSENT, 0, 99 },
};

START_TEST(test_multi)
{
	struct trace_header h[4];
	struct trace_context c;
	size_t n = 0;

#define ADD(name, v) if ((v) != NULL) h[n++] = (struct trace_header){ \
	name, strlen(name), (v), strlen(v) }
	ADD("X-B3-TraceId", multi[_i].tid);
	ADD("X-B3-SpanId", multi[_i].sid);
	ADD("X-B3-Sampled", multi[_i].sampled);
	ADD("X-B3-Flags", multi[_i].flags);
#undef ADD
	ck_assert_int_eq(prop_b3_extract_multi(h, n, &c), multi[_i].r);
	if (multi[_i].r == PROP_OK)
		ck_assert_uint_eq(c.trace_id.low, multi[_i].low);
	if (multi[_i].r == PROP_OK || multi[_i].r == PROP_DECISION_ONLY) {
		if (multi[_i].prio == 99)
			ck_assert(!c.has_priority);
		else
			ck_assert_int_eq(c.priority, multi[_i].prio);
	}
}
END_TEST

static int
collect(void *arg, const char *name, const char *value, size_t len)
{
	char *out = arg;
	size_t l = strlen(out);

	snprintf(out + l, 512 - l, "%s: %.*s\n", name, (int)len, value);
	return 0;
}

START_TEST(test_inject)
{
	struct span *s = span_new();
	char out[512] = "";

	s->trace_id.low = 10;
	s->span_id = 11;
	s->has_priority = true;
	s->priority = 2;
	ck_assert_int_eq(prop_b3_inject_single(s, collect, out), 0);
	ck_assert_int_eq(prop_b3_inject_multi(s, collect, out), 0);
	ck_assert_str_eq(out, "b3: 000000000000000a-000000000000000b-1\n"
	    "x-b3-traceid: 000000000000000a\n"
	    "x-b3-spanid: 000000000000000b\n"
	    "x-b3-sampled: 1\n");
	out[0] = '\0';
	s->trace_id.high = 1;
	s->priority = 0;
	ck_assert_int_eq(prop_b3_inject_single(s, collect, out), 0);
	ck_assert_str_eq(out, "b3: 0000000000000001000000000000000a-"
	    "000000000000000b-0\n");
	span_free(s);
}
END_TEST

static Suite *
b3_suite(void)
{
	Suite *s = suite_create("prop_b3");
	TCase *tc = tcase_create("b3");

	tcase_add_loop_test(tc, test_single, 0, (int)TS_NITEMS(single));
	tcase_add_loop_test(tc, test_multi, 0, (int)TS_NITEMS(multi));
	tcase_add_test(tc, test_inject);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(b3_suite)
