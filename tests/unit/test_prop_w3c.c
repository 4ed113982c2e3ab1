/*
 * test_prop_w3c.c -- traceparent (vectors in tests/data/prop/
 * w3c_traceparent.tsv), the tracestate list rules (w3c_tracestate.tsv)
 * and the dd member's decoding, encoding, escaping and limits
 * (PROPAGATION.md 3, 4).
 */
#include "ts_test.h"
#include "trace/ids.h"
#include "trace/prop_w3c.h"

#define HDR(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }
#define TP_OK "00-12345678901234567890123456789012-1234567890123456-01"

static char arena_buf[TRACE_ARENA_SIZE];

static struct trace_arena *
fresh_arena(void)
{
	static struct trace_arena a;

	trace_arena_init(&a, arena_buf, sizeof arena_buf);
	return &a;
}

/* Replace \t and \s escapes in place. */
static void
unescape(char *s)
{
	char *o = s;

	for (; *s != '\0'; s++) {
		if (s[0] == '\\' && s[1] == 't') {
			*o++ = '\t';
			s++;
		} else if (s[0] == '\\' && s[1] == 's') {
			*o++ = ' ';
			s++;
		} else
			*o++ = *s;
	}
	*o = '\0';
}

START_TEST(test_traceparent_vectors)
{
	char line[1024], want[256], hex[33], phex[17], *tab, *nl;
	struct trace_context c;
	const char *err;
	enum prop_result r;
	int lineno = 0, rows = 0, prio, rnd;
	FILE *f;

	f = fopen(ts_data_path("prop/w3c_traceparent.tsv"), "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		tab = strrchr(line, '\t');
		ck_assert_msg(tab != NULL, "line %d: no tab", lineno);
		*tab = '\0';
		unescape(line);
		trace_context_clear(&c);
		err = NULL;
		r = prop_w3c_parse_traceparent(line, strlen(line), &c, &err);
		if (strncmp(tab + 1, "ok ", 3) == 0) {
			ck_assert_msg(r == PROP_OK, "line %d: %s rejected (%s)",
			    lineno, line, err);
			ck_assert_int_eq(sscanf(tab + 4, "%32s %16s %d %d", want,
			    want + 40, &prio, &rnd), 4);
			ids_format_hex128(c.trace_id, hex);
			ids_format_hex64(c.parent_id, phex);
			ck_assert_msg(strcmp(hex, want) == 0, "line %d", lineno);
			ck_assert_msg(strcmp(phex, want + 40) == 0, "line %d",
			    lineno);
			ck_assert_msg(c.priority == prio, "line %d", lineno);
			ck_assert_msg(c.w3c_random == (rnd == 1), "line %d",
			    lineno);
		} else {
			ck_assert_msg(r == PROP_INVALID, "line %d: %s accepted",
			    lineno, line);
			ck_assert_msg(err != NULL && strcmp(err, tab + 9) == 0,
			    "line %d: error %s, want %s", lineno, err, tab + 9);
		}
		rows++;
	}
	fclose(f);
	ck_assert_int_ge(rows, 30);
}
END_TEST

START_TEST(test_dd_member_decode)
{
	static const struct trace_header h[] = {
		HDR("traceparent", TP_OK),
		HDR("tracestate", "foo=1 , dd=s:2;o:synthetics__~web_z;"
		    "t.usr.id:baz64~~;p:0123456789abcdef;x:y;;noval;ts:02;"
		    "t.dm:-4,bar=2"),
		HDR("TraceState", "baz=3,dd=s:1"),
	};
	struct trace_context c;

	ck_assert_int_eq(prop_w3c_extract(h, TS_NITEMS(h), fresh_arena(), &c),
	    PROP_OK);
	ck_assert_int_eq(c.priority, 2);
	ck_assert_str_eq(c.origin, "synthetics__=web_z");
	ck_assert_str_eq(trace_context_get_tag(&c, "_dd.p.usr.id"), "baz64==");
	ck_assert_str_eq(trace_context_get_tag(&c, "_dd.p.dm"), "-4");
	ck_assert_str_eq(trace_context_get_tag(&c, "_dd.p.ts"), "02");
	ck_assert_str_eq(c.last_dd_parent_id, "0123456789abcdef");
	ck_assert_str_eq(c.dd_unknown, "x:y");
	/* Other members in order across fields; the second dd dropped. */
	ck_assert_str_eq(c.tracestate_others, "foo=1,bar=2,baz=3");
}
END_TEST

/* Table 4.4: flag x s: -> priority, and _dd.p.dm reset. */
static const struct {
	const char	*flags;
	const char	*ts;
	int		 prio;
	const char	*dm;
} prio_rows[] = {
	{ "01", "dd=t.dm:-4", 1, "-4" },
	{ "01", "dd=s:2;t.dm:-4", 2, "-4" },
	{ "01", "dd=s:-1;t.dm:-4", 1, "-0" },
	{ "00", "dd=t.dm:-4", 0, "-4" },
	{ "00", "dd=s:-1;t.dm:-4", -1, "-4" },
	{ "00", "dd=s:2;t.dm:-4", 0, NULL },
	{ "01", "dd=s:oops", 1, NULL },
};

START_TEST(test_priority_table)
{
	char tp[64];
	struct trace_header h[2];
	struct trace_context c;
	const char *dm;

	snprintf(tp, sizeof tp,
	    "00-12345678901234567890123456789012-1234567890123456-%s",
	    prio_rows[_i].flags);
	h[0] = (struct trace_header){ "traceparent", 11, tp, strlen(tp) };
	h[1] = (struct trace_header){ "tracestate", 10, prio_rows[_i].ts,
	    strlen(prio_rows[_i].ts) };
	ck_assert_int_eq(prop_w3c_extract(h, 2, fresh_arena(), &c), PROP_OK);
	ck_assert_int_eq(c.priority, prio_rows[_i].prio);
	dm = trace_context_get_tag(&c, "_dd.p.dm");
	if (prio_rows[_i].dm == NULL)
		ck_assert_ptr_null(dm);
	else
		ck_assert_str_eq(dm, prio_rows[_i].dm);
}
END_TEST

START_TEST(test_invalid_traceparent_skips_tracestate)
{
	static const struct trace_header dup[] = {
		HDR("traceparent", TP_OK), HDR("traceparent", TP_OK),
		HDR("tracestate", "dd=o:rum"),
	};
	static const struct trace_header only_ts[] = {
		HDR("tracestate", "dd=o:rum,foo=1"),
	};
	struct trace_context c;

	ck_assert_int_eq(prop_w3c_extract(dup, TS_NITEMS(dup), fresh_arena(),
	    &c), PROP_INVALID);
	ck_assert_ptr_null(c.origin);
	ck_assert_str_eq(c.w3c_error, "malformed_traceparent");
	ck_assert_int_eq(prop_w3c_extract(only_ts, 1, fresh_arena(), &c),
	    PROP_ABSENT);
	ck_assert_ptr_null(c.tracestate_others);
}
END_TEST

START_TEST(test_oversize_dd_ignored)
{
	char ts[1024];
	struct trace_header h[2];
	struct trace_context c;

	memset(ts, 0, sizeof ts);
	strcpy(ts, "foo=1,dd=s:2;o:");
	memset(ts + strlen(ts), 'a', 600);
	strcat(ts, ",bar=2");
	h[0] = (struct trace_header){ "traceparent", 11, TP_OK,
	    strlen(TP_OK) };
	h[1] = (struct trace_header){ "tracestate", 10, ts, strlen(ts) };
	ck_assert_int_eq(prop_w3c_extract(h, 2, fresh_arena(), &c), PROP_OK);
	ck_assert_int_eq(c.priority, 1);	/* s:2 not read */
	ck_assert_ptr_null(c.origin);
	ck_assert_str_eq(c.propagation_error, "extract_max_size");
	ck_assert_str_eq(c.tracestate_others, "foo=1,bar=2");
}
END_TEST

/*
 * Decode one tracestate row's fields column in place: \t, \s, \xHH, and
 * "\n" between two header fields.  Returns the number of fields.
 */
static size_t
ts_fields(char *s, struct trace_header *h, size_t cap)
{
	char *o = s, *start = s;
	size_t n = 0;
	unsigned v;

	for (;; s++) {
		if (*s == '\0' || (s[0] == '\\' && s[1] == 'n')) {
			ck_assert_uint_lt(n, cap);
			h[n++] = (struct trace_header){ "tracestate", 10, start,
			    (size_t)(o - start) };
			if (*s == '\0')
				break;
			*o++ = '\0';
			start = o;
			s++;
		} else if (s[0] == '\\' && s[1] == 't') {
			*o++ = '\t';
			s++;
		} else if (s[0] == '\\' && s[1] == 's') {
			*o++ = ' ';
			s++;
		} else if (s[0] == '\\' && s[1] == 'x' &&
		    sscanf(s + 2, "%2x", &v) == 1) {
			*o++ = (char)v;
			s += 3;
		} else
			*o++ = *s;
	}
	*o = '\0';
	return n;
}

/* Report one mismatching row; returns 1. */
static int
ts_row_bad(int lineno, const char *what, const char *got, const char *want)
{
	fprintf(stderr, "w3c_tracestate.tsv:%d: %s %.60s%s, want %.60s%s\n",
	    lineno, what, got != NULL ? got : "(null)",
	    got != NULL && strlen(got) > 60 ? "..." : "", want,
	    strlen(want) > 60 ? "..." : "");
	return 1;
}

/* Key, value, length, member-count and duplicate rules, one row each. */
START_TEST(test_tracestate_vectors)
{
	char line[4096], *others, *err, *nl;
	struct trace_header h[9];
	struct trace_context c;
	int lineno = 0, rows = 0, bad = 0;
	size_t n;
	FILE *f;

	f = fopen(ts_data_path("prop/w3c_tracestate.tsv"), "r");
	ck_assert_ptr_nonnull(f);
	h[0] = (struct trace_header){ "traceparent", 11, TP_OK,
	    strlen(TP_OK) };
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		ck_assert_msg((nl = strchr(line, '\n')) != NULL,
		    "line %d: too long", lineno);
		*nl = '\0';
		if (line[0] == '#')
			continue;
		others = strchr(line, '\t');
		ck_assert_msg(others != NULL, "line %d: no tab", lineno);
		*others++ = '\0';
		err = strchr(others, '\t');
		ck_assert_msg(err != NULL, "line %d: no error column", lineno);
		*err++ = '\0';
		n = ts_fields(line, h + 1, TS_NITEMS(h) - 1);
		ck_assert_int_eq(prop_w3c_extract(h, n + 1, fresh_arena(), &c),
		    PROP_OK);
		rows++;
		/* Every row is checked; mismatches are listed, then fail. */
		if (strcmp(others, "-") == 0 ? c.tracestate_others != NULL :
		    (c.tracestate_others == NULL ||
		    strcmp(c.tracestate_others, others) != 0))
			bad += ts_row_bad(lineno, "others", c.tracestate_others,
			    others);
		if (strcmp(err, "-") == 0 ? c.tracestate_error != NULL :
		    (c.tracestate_error == NULL ||
		    strcmp(c.tracestate_error, err) != 0))
			bad += ts_row_bad(lineno, "error", c.tracestate_error,
			    err);
		/* Nothing of a dropped header is kept or read. */
		if (strcmp(err, "-") != 0 && (c.tracestate_raw != NULL ||
		    c.origin != NULL || c.n_tags != 0))
			bad += ts_row_bad(lineno, "raw", c.tracestate_raw,
			    "(null)");
	}
	fclose(f);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(rows, 52);
}
END_TEST

/* A dropped tracestate gives no dd data: priority from the flag alone. */
START_TEST(test_invalid_tracestate_ignores_dd)
{
	static const struct trace_header unsampled[] = {
		HDR("traceparent",
		    "00-12345678901234567890123456789012-1234567890123456-00"),
		HDR("tracestate", "dd=s:2;o:rum;t.dm:-4;p:00000000000000aa"),
		HDR("tracestate", "Bad=1"),
	};
	static const struct trace_header ok[] = {
		HDR("traceparent",
		    "00-12345678901234567890123456789012-1234567890123456-00"),
		HDR("tracestate", "dd=s:-1;o:rum;p:00000000000000aa"),
		HDR("tracestate", "good=1"),
	};
	struct trace_context c;

	ck_assert_int_eq(prop_w3c_extract(unsampled, 3, fresh_arena(), &c),
	    PROP_OK);
	ck_assert_str_eq(c.tracestate_error, "illegal_key_char");
	ck_assert_ptr_null(c.propagation_error);	/* no span tag */
	ck_assert_int_eq(c.priority, 0);
	ck_assert_ptr_null(c.origin);
	ck_assert_ptr_null(c.last_dd_parent_id);
	ck_assert_ptr_null(c.tracestate_others);
	/* The same member with a valid list is read. */
	ck_assert_int_eq(prop_w3c_extract(ok, 3, fresh_arena(), &c), PROP_OK);
	ck_assert_ptr_null(c.tracestate_error);
	ck_assert_int_eq(c.priority, -1);
	ck_assert_str_eq(c.origin, "rum");
	ck_assert_str_eq(c.last_dd_parent_id, "00000000000000aa");
	ck_assert_str_eq(c.tracestate_others, "good=1");
}
END_TEST

START_TEST(test_tid_checks)
{
	static const struct trace_header bad[] = {
		HDR("traceparent", TP_OK), HDR("tracestate", "dd=t.tid:XXXX"),
	};
	static const struct trace_header diff[] = {
		HDR("traceparent", TP_OK),
		HDR("tracestate", "dd=t.tid:1111111111111111"),
	};
	static const struct trace_header same[] = {
		HDR("traceparent", TP_OK),
		HDR("tracestate", "dd=t.tid:1234567890123456"),
	};
	struct trace_context c;

	ck_assert_int_eq(prop_w3c_extract(bad, 2, fresh_arena(), &c), PROP_OK);
	ck_assert_str_eq(c.propagation_error, "malformed_tid XXXX");
	ck_assert_int_eq(prop_w3c_extract(diff, 2, fresh_arena(), &c),
	    PROP_OK);
	ck_assert_str_eq(c.propagation_error,
	    "inconsistent_tid 1111111111111111");
	ck_assert_uint_eq(c.trace_id.high, 0x1234567890123456ULL);
	ck_assert_int_eq(prop_w3c_extract(same, 2, fresh_arena(), &c),
	    PROP_OK);
	ck_assert_ptr_null(c.propagation_error);
	ck_assert_ptr_null(trace_context_get_tag(&c, "_dd.p.tid"));
}
END_TEST

static struct span *
test_span(void)
{
	struct span *s = span_new();

	s->trace_id.high = 0x640cfd8d00000000ULL;
	s->trace_id.low = 0xabcdefab12345678ULL;
	s->span_id = 0x3ade68b1;
	s->has_priority = true;
	s->priority = 2;
	return s;
}

START_TEST(test_format)
{
	struct span *s = test_span();
	char tp[64], ts[8192];

	s->w3c_random = true;
	(void)span_set_ptag(s, "_dd.p.dm", "-4");
	(void)span_set_ptag(s, "_dd.p.usr.id", "baz64==");
	(void)span_set_ptag(s, "_dd.p.a;b=c d", "x");
	s->origin = span_strdup(s, "France, is=a; ~\xe5\x8f\xb0.");
	s->tracestate_others = span_strdup(s, "foo=1,bar=2");
	s->dd_unknown = span_strdup(s, "x:y;z:w");
	prop_w3c_format_traceparent(s, tp);
	ck_assert_str_eq(tp,
	    "00-640cfd8d00000000abcdefab12345678-000000003ade68b1-03");
	prop_w3c_format_tracestate(s, ts, sizeof ts);
	ck_assert_str_eq(ts, "dd=s:2;p:000000003ade68b1;"
	    "o:France_ is~a_ ____.;t.dm:-4;t.usr.id:baz64~~;t.a_b_c_d:x;"
	    "x:y;z:w,foo=1,bar=2");
	s->priority = 0;
	s->w3c_random = false;
	prop_w3c_format_traceparent(s, tp);
	ck_assert_str_eq(tp + 53, "00");
	span_free(s);
}
END_TEST

START_TEST(test_dd_member_truncated)
{
	struct span *s = test_span();
	char ts[8192], big[400];
	const char *comma;

	memset(big, 'o', 300);
	big[300] = '\0';
	(void)span_set_ptag(s, "_dd.p.dm", "-4");
	(void)span_set_ptag(s, "_dd.p.big", big);
	s->tracestate_others = span_strdup(s, "foo=1");
	prop_w3c_format_tracestate(s, ts, sizeof ts);
	comma = strchr(ts, ',');
	ck_assert_ptr_nonnull(comma);
	ck_assert_int_le(comma - ts, 256);
	ck_assert_str_eq(comma, ",foo=1");
	ck_assert_ptr_nonnull(strstr(ts, "dd=s:2;p:000000003ade68b1;t.dm:-4"));
	ck_assert_ptr_null(strstr(ts, "t.big"));
	span_free(s);
}
END_TEST

START_TEST(test_member_limit)
{
	struct span *s = test_span();
	char others[2048], ts[8192];
	size_t len = 0, count = 1, i;
	const char *p;

	for (i = 1; i <= 40; i++)
		len += (size_t)snprintf(others + len, sizeof others - len,
		    "%sk%zu=v", len ? "," : "", i);
	s->tracestate_others = span_strdup(s, others);
	prop_w3c_format_tracestate(s, ts, sizeof ts);
	for (p = ts; (p = strchr(p, ',')) != NULL; p++)
		count++;
	ck_assert_uint_eq(count, 32);
	ck_assert_ptr_nonnull(strstr(ts, ",k31=v"));
	ck_assert_ptr_null(strstr(ts, ",k32=v"));
	span_free(s);
}
END_TEST

static int
collect_ts(void *arg, const char *name, const char *value, size_t len)
{
	char *out = arg;

	if (strcmp(name, "tracestate") == 0)
		snprintf(out, 8192, "%.*s", (int)len, value);
	return 0;
}

START_TEST(test_inject)
{
	struct span *s = test_span();
	char ts[8192] = "";

	ck_assert_int_eq(prop_w3c_inject(s, collect_ts, ts), 0);
	ck_assert_str_eq(ts, "dd=s:2;p:000000003ade68b1");
	span_free(s);
}
END_TEST

static Suite *
w3c_suite(void)
{
	Suite *s = suite_create("prop_w3c");
	TCase *tc = tcase_create("w3c");

	tcase_add_test(tc, test_traceparent_vectors);
	tcase_add_test(tc, test_dd_member_decode);
	tcase_add_loop_test(tc, test_priority_table, 0,
	    (int)TS_NITEMS(prio_rows));
	tcase_add_test(tc, test_invalid_traceparent_skips_tracestate);
	tcase_add_test(tc, test_oversize_dd_ignored);
	tcase_add_test(tc, test_tracestate_vectors);
	tcase_add_test(tc, test_invalid_tracestate_ignores_dd);
	tcase_add_test(tc, test_tid_checks);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_dd_member_truncated);
	tcase_add_test(tc, test_member_limit);
	tcase_add_test(tc, test_inject);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(w3c_suite)
