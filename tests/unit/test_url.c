/*
 * test_url.c -- the one URL parser (url.c) against tests/data/url/
 * vectors.tsv: good URLs with every part, bad ones with the exact
 * message the configuration reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_test.h"
#include "url.h"

/* The table has this many rows at least: a lost file fails. */
#define URL_MIN_ROWS 40

static const char *
scheme_name(enum url_scheme s)
{
	switch (s) {
	case URL_SCHEME_HTTP:
		return "http";
	case URL_SCHEME_HTTPS:
		return "https";
	case URL_SCHEME_UNIX:
		return "unix";
	default:
		return "none";
	}
}

START_TEST(test_vectors)
{
	char line[1024], got[1024], *nl, *t1, *t2;
	const char *errstr;
	unsigned flags;
	struct url u;
	FILE *f;
	int lineno = 0, rows = 0, rc;

	f = fopen(ts_data_path("url/vectors.tsv"), "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		t1 = strchr(line, '\t');
		ck_assert_msg(t1 != NULL, "line %d: no tab", lineno);
		*t1++ = '\0';
		t2 = strchr(t1, '\t');
		ck_assert_msg(t2 != NULL, "line %d: no second tab", lineno);
		*t2++ = '\0';
		flags = 0;
		if (strstr(line, "unix") != NULL)
			flags |= URL_UNIX;
		if (strstr(line, "query") != NULL)
			flags |= URL_QUERY;
		errstr = NULL;
		rc = url_parse(t1, flags, &u, &errstr);
		if (strncmp(t2, "ok ", 3) == 0) {
			ck_assert_msg(rc == 0, "line %d: %s refused: %s",
			    lineno, t1, errstr);
			snprintf(got, sizeof got, "%s|%s|%u|%d|%d|%s|%s|%s",
			    scheme_name(u.scheme), u.host, (unsigned)u.port,
			    u.explicit_port, u.ip_literal, u.authority, u.path,
			    u.query);
			ck_assert_msg(strcmp(got, t2 + 3) == 0,
			    "line %d: %s gave %s, want %s", lineno, t1, got,
			    t2 + 3);
			url_clear(&u);
		} else {
			ck_assert_msg(strncmp(t2, "error ", 6) == 0,
			    "line %d: expected ok or error", lineno);
			ck_assert_msg(rc == -1, "line %d: %s accepted", lineno,
			    t1);
			ck_assert_msg(errstr != NULL &&
			    strcmp(errstr, t2 + 6) == 0,
			    "line %d: %s: \"%s\", want \"%s\"", lineno, t1,
			    errstr, t2 + 6);
			ck_assert_ptr_null(u.host);
			ck_assert_ptr_null(u.authority);
			url_clear(&u);
		}
		rows++;
	}
	fclose(f);
	ck_assert_int_ge(rows, URL_MIN_ROWS);
}
END_TEST

/* Default ports by scheme (RFC 9110 4.2.1, 4.2.2). */
START_TEST(test_default_port)
{
	ck_assert_uint_eq(url_default_port(URL_SCHEME_HTTP), 80);
	ck_assert_uint_eq(url_default_port(URL_SCHEME_HTTPS), 443);
	ck_assert_uint_eq(url_default_port(URL_SCHEME_UNIX), 0);
	ck_assert_uint_eq(url_default_port(URL_SCHEME_NONE), 0);
}
END_TEST

static Suite *
url_suite(void)
{
	Suite *s = suite_create("url");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_vectors);
	tcase_add_test(tc, test_default_port);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(url_suite)
