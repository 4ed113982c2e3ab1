/*
 * test_ddforward.c -- the ddforward decoder of the RUM intake relay
 * (src/proto/ddforward.c) against tests/data/ddforward/values.tsv: what
 * the Browser SDK sends for each track is accepted and decoded once, and
 * every hostile value is refused with the reason of its class.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddforward.h"
#include "ts_test.h"

/* The rows of values.tsv: a lost or cut file fails. */
#define DDF_ROWS 96
/* Of which hostile (refused): the issue asks for 40 at least. */
#define DDF_MIN_HOSTILE 80

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Expand \xHH and \{N}c of the table into out; its length. */
static size_t
expand(const char *in, char *out, size_t size, int lineno)
{
	size_t n = 0;

	while (*in != '\0') {
		if (in[0] == '\\' && in[1] == 'x' && hexval(in[2]) >= 0 &&
		    hexval(in[3]) >= 0) {
			ck_assert_msg(n < size, "line %d: too long", lineno);
			out[n++] = (char)(hexval(in[2]) << 4 | hexval(in[3]));
			in += 4;
		} else if (in[0] == '\\' && in[1] == '{') {
			char *end;
			unsigned long k = strtoul(in + 2, &end, 10);

			ck_assert_msg(*end == '}' && end[1] != '\0',
			    "line %d: bad \\{N}c", lineno);
			ck_assert_msg(n + k < size, "line %d: too long", lineno);
			memset(out + n, end[1], k);
			n += k;
			in = end + 2;
		} else {
			ck_assert_msg(n < size, "line %d: too long", lineno);
			out[n++] = *in++;
		}
	}
	out[n] = '\0';
	return n;
}

START_TEST(test_values)
{
	static char line[16384], query[16384], want[16384];
	static struct ddforward d;
	char *nl, *cls, *exp, *q;
	size_t qlen;
	FILE *f;
	int lineno = 0, rows = 0, hostile = 0, rc;

	f = fopen(ts_data_path("ddforward/values.tsv"), "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		cls = line;
		exp = strchr(cls, '\t');
		ck_assert_msg(exp != NULL, "line %d: no tab", lineno);
		*exp++ = '\0';
		q = strchr(exp, '\t');
		ck_assert_msg(q != NULL, "line %d: no second tab", lineno);
		*q++ = '\0';
		qlen = expand(q, query, sizeof query - 1, lineno);
		rc = ddforward_parse(query, qlen, &d);
		if (strncmp(exp, "ok ", 3) == 0) {
			const char *sp = strchr(exp + 3, ' ');

			ck_assert_msg(sp != NULL, "line %d: ok TRACK TARGET",
			    lineno);
			ck_assert_msg(rc == 0, "line %d (%s): refused: %s",
			    lineno, cls, ddforward_reason_name(d.reason));
			ck_assert_int_ge(d.track, 0);
			ck_assert_msg(strncmp(ddforward_tracks[d.track].name,
			    exp + 3, (size_t)(sp - exp - 3)) == 0 &&
			    ddforward_tracks[d.track].name[sp - exp - 3] ==
			    '\0', "line %d: track %s", lineno,
			    ddforward_tracks[d.track].name);
			expand(sp + 1, want, sizeof want - 1, lineno);
			ck_assert_msg(strcmp(d.target, want) == 0 &&
			    d.target_len == strlen(want),
			    "line %d: target %s, want %s", lineno, d.target,
			    want);
		} else {
			ck_assert_msg(rc == -1, "line %d (%s): accepted as %s",
			    lineno, cls, d.target);
			ck_assert_msg(strcmp(ddforward_reason_name(d.reason),
			    exp) == 0, "line %d (%s): refused as %s, want %s",
			    lineno, cls, ddforward_reason_name(d.reason), exp);
			ck_assert_str_ne(ddforward_reason_text(d.reason), "");
			hostile++;
		}
		rows++;
	}
	fclose(f);
	ck_assert_int_eq(rows, DDF_ROWS);
	ck_assert_int_ge(hostile, DDF_MIN_HOSTILE);
}
END_TEST

/* Every refusal has a name and a sentence; the table is whole. */
START_TEST(test_tables)
{
	int r, t;

	for (r = DDF_OK + 1; r < DDF_NREASONS; r++) {
		ck_assert_str_ne(ddforward_reason_name(r), "?");
		ck_assert_uint_gt(strlen(ddforward_reason_text(r)), 10);
	}
	ck_assert_str_eq(ddforward_reason_name(DDF_NREASONS), "?");
	for (t = 0; t < DDFORWARD_NTRACKS; t++) {
		ck_assert_ptr_nonnull(ddforward_tracks[t].name);
		ck_assert_int_eq(strncmp(ddforward_tracks[t].path, "/api/v2/",
		    8), 0);
		ck_assert_str_eq(ddforward_tracks[t].path + 8,
		    ddforward_tracks[t].name);
	}
}
END_TEST

/* The query is not NUL-terminated where len says it ends. */
START_TEST(test_len_bounds)
{
	static struct ddforward d;
	const char q[] = "ddforward=%2Fapi%2Fv2%2Frum%2F..";

	/* Cut before "%2F..": a good value. */
	ck_assert_int_eq(ddforward_parse(q, sizeof q - 1 - 5, &d), 0);
	ck_assert_str_eq(d.target, "/api/v2/rum");
	ck_assert_int_eq(ddforward_parse(q, sizeof q - 1, &d), -1);
	ck_assert_int_eq(d.reason, DDF_DOT_SEGMENT);
	/* Cut inside a %XX. */
	ck_assert_int_eq(ddforward_parse(q, sizeof q - 1 - 4, &d), -1);
	ck_assert_int_eq(d.reason, DDF_PERCENT);
}
END_TEST

static Suite *
ddforward_suite(void)
{
	Suite *s = suite_create("ddforward");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_values);
	tcase_add_test(tc, test_tables);
	tcase_add_test(tc, test_len_bounds);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(ddforward_suite)
