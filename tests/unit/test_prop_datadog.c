/*
 * test_prop_datadog.c -- Datadog header extraction (table of good and
 * malformed rows) and injection incl. x-datadog-tags limits
 * (PROPAGATION.md 2).
 */
#include "ts_test.h"
#include "trace/prop_datadog.h"

static const struct {
	const char	*tid, *pid, *prio, *origin, *tags;
	enum prop_result r;
	uint64_t	 low, high, parent;
	int		 priority;	/* 99: none */
	const char	*error;		/* _dd.propagation_error */
	const char	*tag_dm;
} rows[] = {
	{ "123", "456", "2", "rum", "_dd.p.dm=-4", PROP_OK, 123, 0, 456, 2,
	    NULL, "-4" },
	{ " 123\t", " 456 ", " 1 ", NULL, NULL, PROP_OK, 123, 0, 456, 1, NULL,
	    NULL },
	{ "18446744073709551615", "1", NULL, NULL, NULL, PROP_OK, UINT64_MAX,
	    0, 1, 99, NULL, NULL },
	{ "18446744073709551616", "1", NULL, NULL, NULL, PROP_INVALID, 0, 0, 0,
	    99, NULL, NULL },
	{ "-1", "1", NULL, NULL, NULL, PROP_INVALID, 0, 0, 0, 99, NULL, NULL },
	{ "0x10", "1", NULL, NULL, NULL, PROP_INVALID, 0, 0, 0, 99, NULL, NULL },
	{ "f", "1", NULL, NULL, NULL, PROP_INVALID, 0, 0, 0, 99, NULL, NULL },
	{ "0", "1", "2", NULL, "_dd.p.dm=-4", PROP_INVALID, 0, 0, 0, 99, NULL,
	    NULL },
	{ "", "1", NULL, NULL, NULL, PROP_INVALID, 0, 0, 0, 99, NULL, NULL },
	{ "12 3", "1", NULL, NULL, NULL, PROP_INVALID, 0, 0, 0, 99, NULL, NULL },
	{ "1", "abc", NULL, NULL, NULL, PROP_INVALID, 0, 0, 0, 99, NULL, NULL },
	{ "1", NULL, NULL, NULL, NULL, PROP_INVALID, 0, 0, 0, 99, NULL, NULL },
	{ "1", "0", NULL, NULL, NULL, PROP_INVALID, 0, 0, 0, 99, NULL, NULL },
	{ "1", NULL, NULL, "synthetics", NULL, PROP_OK, 1, 0, 0, 99, NULL,
	    NULL },
	{ NULL, "1", NULL, NULL, NULL, PROP_INVALID, 0, 0, 0, 99, NULL, NULL },
	{ NULL, NULL, "1", "rum", NULL, PROP_ABSENT, 0, 0, 0, 99, NULL, NULL },
	{ "1", "2", "keep", NULL, NULL, PROP_OK, 1, 0, 2, 99, NULL, NULL },
	{ "1", "2", "-2", NULL, NULL, PROP_OK, 1, 0, 2, -2, NULL, NULL },
	{ "1", "2", NULL, NULL, "_dd.p.tid=640cfd8d00000000,_dd.p.x=a=b",
	    PROP_OK, 1, 0x640cfd8d00000000ULL, 2, 99, NULL, NULL },
	{ "1", "2", NULL, NULL, "_dd.p.tid=640CFD8D00000000", PROP_OK, 1, 0, 2,
	    99, "malformed_tid 640CFD8D00000000", NULL },
	{ "1", "2", NULL, NULL, "_dd.p.tid=640cfd8d", PROP_OK, 1, 0, 2, 99,
	    "malformed_tid 640cfd8d", NULL },
	{ "1", "2", NULL, NULL, "this is missing an equal sign", PROP_OK, 1, 0,
	    2, 99, "decoding_error", NULL },
	{ "1", "2", NULL, NULL, "_dd.p.dm=-4,other=1", PROP_OK, 1, 0, 2, 99,
	    NULL, "-4" },
	{ "1", "2", NULL, NULL, "_dd.p.dm=-4,_dd.p.bad=\x01", PROP_OK, 1, 0, 2,
	    99, "decoding_error", NULL },
};

START_TEST(test_extract_rows)
{
	struct trace_header h[5];
	size_t n = 0;
	static char buf[8192];
	struct trace_arena a;
	struct trace_context c;
	enum prop_result r;

#define ADD(name, v) if ((v) != NULL) h[n++] = (struct trace_header){ \
	name, strlen(name), (v), strlen(v) }
	ADD("X-Datadog-Trace-Id", rows[_i].tid);
	ADD("x-datadog-parent-id", rows[_i].pid);
	ADD("x-datadog-sampling-priority", rows[_i].prio);
	ADD("x-datadog-origin", rows[_i].origin);
	ADD("x-datadog-tags", rows[_i].tags);
#undef ADD
	trace_arena_init(&a, buf, sizeof buf);
	r = prop_datadog_extract(h, n, 512, &a, &c);
	ck_assert_int_eq(r, rows[_i].r);
	if (r != PROP_OK)
		return;
	ck_assert_uint_eq(c.trace_id.low, rows[_i].low);
	ck_assert_uint_eq(c.trace_id.high, rows[_i].high);
	ck_assert_uint_eq(c.parent_id, rows[_i].parent);
	if (rows[_i].priority == 99)
		ck_assert(!c.has_priority);
	else
		ck_assert_int_eq(c.priority, rows[_i].priority);
	if (rows[_i].error == NULL)
		ck_assert_ptr_null(c.propagation_error);
	else
		ck_assert_str_eq(c.propagation_error, rows[_i].error);
	if (rows[_i].tag_dm != NULL)
		ck_assert_str_eq(trace_context_get_tag(&c, "_dd.p.dm"),
		    rows[_i].tag_dm);
	ck_assert_ptr_null(trace_context_get_tag(&c, "_dd.p.tid"));
	ck_assert_ptr_null(trace_context_get_tag(&c, "other"));
}
END_TEST

START_TEST(test_tags_limits)
{
	char tags[700];
	struct trace_header h[3];
	static char buf[8192];
	struct trace_arena a;
	struct trace_context c;

	strcpy(tags, "_dd.p.x=");
	memset(tags + 8, 'a', 600);
	tags[608] = '\0';
	h[0] = (struct trace_header){ "x-datadog-trace-id", 18, "1", 1 };
	h[1] = (struct trace_header){ "x-datadog-parent-id", 19, "1", 1 };
	h[2] = (struct trace_header){ "x-datadog-tags", 14, tags,
	    strlen(tags) };
	trace_arena_init(&a, buf, sizeof buf);
	ck_assert_int_eq(prop_datadog_extract(h, 3, 512, &a, &c), PROP_OK);
	ck_assert_str_eq(c.propagation_error, "extract_max_size");
	ck_assert_uint_eq(c.n_tags, 0);
	ck_assert_int_eq(prop_datadog_extract(h, 3, 1024, &a, &c), PROP_OK);
	ck_assert_uint_eq(c.n_tags, 1);
	/* 0 disables tag propagation. */
	ck_assert_int_eq(prop_datadog_extract(h, 3, 0, &a, &c), PROP_OK);
	ck_assert_uint_eq(c.n_tags, 0);
	ck_assert_ptr_null(c.propagation_error);
}
END_TEST

struct seen {
	char	names[8][32];
	char	values[8][1024];
	int	n;
};

static int
collect(void *arg, const char *name, const char *value, size_t len)
{
	struct seen *s = arg;

	snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
	snprintf(s->values[s->n], sizeof s->values[0], "%.*s", (int)len, value);
	s->n++;
	return 0;
}

START_TEST(test_inject)
{
	struct span *sp = span_new();
	struct seen s = { .n = 0 };
	const char *err = NULL;
	char big[600];

	sp->trace_id.high = 0x640cfd8d00000000ULL;
	sp->trace_id.low = UINT64_MAX;
	sp->span_id = 42;
	sp->has_priority = true;
	sp->priority = -1;
	sp->origin = span_strdup(sp, "synthetics~;=web,z");
	(void)span_set_ptag(sp, "_dd.p.usr.id", "baz64==");
	ck_assert_int_eq(prop_datadog_inject(sp, 512, collect, &s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(s.n, 5);
	ck_assert_str_eq(s.values[0], "18446744073709551615");
	ck_assert_str_eq(s.values[1], "42");
	ck_assert_str_eq(s.values[2], "-1");
	ck_assert_str_eq(s.values[3], "synthetics~;=web,z");
	ck_assert_str_eq(s.names[4], "x-datadog-tags");
	ck_assert_str_eq(s.values[4],
	    "_dd.p.usr.id=baz64==,_dd.p.tid=640cfd8d00000000");
	/* Over the limit: omitted, inject_max_size. */
	memset(big, 'b', 590);
	big[590] = '\0';
	(void)span_set_ptag(sp, "_dd.p.big", big);
	s.n = 0;
	ck_assert_int_eq(prop_datadog_inject(sp, 512, collect, &s, &err), 0);
	ck_assert_str_eq(err, "inject_max_size");
	ck_assert_int_eq(s.n, 4);
	span_free(sp);
}
END_TEST

static Suite *
datadog_suite(void)
{
	Suite *s = suite_create("prop_datadog");
	TCase *tc = tcase_create("datadog");

	tcase_add_loop_test(tc, test_extract_rows, 0, (int)TS_NITEMS(rows));
	tcase_add_test(tc, test_tags_limits);
	tcase_add_test(tc, test_inject);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(datadog_suite)
