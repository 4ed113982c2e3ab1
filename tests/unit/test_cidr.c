/*
 * test_cidr.c -- address blocks (core/cidr.c): a table of blocks that
 * parse or are refused with their message, and a table of addresses
 * matched against a list of blocks (IPv4, IPv6, IPv4-mapped, prefix
 * boundaries, /0).
 */
#include <sys/socket.h>

#include <string.h>

#include "cidr.h"
#include "ts_test.h"

static const struct {
	const char *in;
	const char *err;	/* NULL: accepted */
	int family;
	unsigned bits;
} parse_rows[] = {
	{ "10.0.0.0/8", NULL, AF_INET, 8 },
	{ "192.0.2.7", NULL, AF_INET, 32 },
	{ "0.0.0.0/0", NULL, AF_INET, 0 },
	{ "172.16.0.0/12", NULL, AF_INET, 12 },
	{ "192.0.2.128/25", NULL, AF_INET, 25 },
	{ "2001:db8::/32", NULL, AF_INET6, 32 },
	{ "::/0", NULL, AF_INET6, 0 },
	{ "::1", NULL, AF_INET6, 128 },
	{ "fe80::/10", NULL, AF_INET6, 10 },
	{ "::ffff:192.0.2.1", NULL, AF_INET, 32 },
	{ "10.0.0.1/8", "host bits are set", 0, 0 },
	{ "192.0.2.129/25", "host bits are set", 0, 0 },
	{ "fe80::1/10", "host bits are set", 0, 0 },
	{ "1.2.3.4/33", "0 to 32 bits", 0, 0 },
	{ "::/129", "0 to 128 bits", 0, 0 },
	{ "10.0.0.0/", "prefix length", 0, 0 },
	{ "10.0.0.0/08", "prefix length", 0, 0 },
	{ "10.0.0.0/+8", "prefix length", 0, 0 },
	{ "10.0.0.0/8 ", "prefix length", 0, 0 },
	{ "10.0.0.0/1000", "prefix length", 0, 0 },
	{ "10.0.0.0/8/8", "prefix length", 0, 0 },
	{ " 10.0.0.0/8", "expected an IPv4 or IPv6", 0, 0 },
	{ "10.0.0/8", "expected an IPv4 or IPv6", 0, 0 },
	{ "010.0.0.0/8", "expected an IPv4 or IPv6", 0, 0 },
	{ "[::1]", "expected an IPv4 or IPv6", 0, 0 },
	{ "localhost", "expected an IPv4 or IPv6", 0, 0 },
	{ "", "expected an IPv4 or IPv6", 0, 0 },
	{ "/8", "expected an IPv4 or IPv6", 0, 0 },
	{ "::ffff:10.0.0.0/104", "IPv4-mapped", 0, 0 },
};

START_TEST(test_parse)
{
	struct cidr c;
	const char *err = NULL;
	int rc;

	rc = cidr_parse(parse_rows[_i].in, &c, &err);
	if (parse_rows[_i].err == NULL) {
		ck_assert_msg(rc == 0, "\"%s\": %s", parse_rows[_i].in, err);
		ck_assert_int_eq(c.family, parse_rows[_i].family);
		ck_assert_uint_eq(c.bits, parse_rows[_i].bits);
	} else {
		ck_assert_msg(rc == -1 && err != NULL &&
		    strstr(err, parse_rows[_i].err) != NULL,
		    "\"%s\": rc %d, %s", parse_rows[_i].in, rc,
		    err != NULL ? err : "(no message)");
	}
}
END_TEST

static const char *const blocks[] = {
	"10.0.0.0/8", "192.0.2.128/25", "198.51.100.7", "2001:db8::/33",
	"fe80::/10",
};

static const struct {
	const char *addr;
	bool in;
} match_rows[] = {
	{ "10.0.0.1", true },
	{ "10.255.255.255", true },
	{ "11.0.0.0", false },
	{ "9.255.255.255", false },
	{ "192.0.2.128", true },
	{ "192.0.2.255", true },
	{ "192.0.2.127", false },
	{ "198.51.100.7", true },
	{ "198.51.100.8", false },
	{ "::ffff:10.1.2.3", true },
	{ "::ffff:11.1.2.3", false },
	{ "2001:db8::1", true },
	{ "2001:db8:7fff:ffff::1", true },
	{ "2001:db8:8000::1", false },
	{ "2001:db9::1", false },
	{ "fe80::1", true },
	{ "febf:ffff::1", true },
	{ "fec0::1", false },
	{ "::1", false },
	{ "127.0.0.1", false },
	{ "not-an-ip", false },
	{ "10.0.0.1:80", false },
	{ "", false },
};

/* The tables, counted: a row lost in an edit fails the build. */
_Static_assert(TS_NITEMS(parse_rows) == 29, "rows of parse_rows");
_Static_assert(TS_NITEMS(match_rows) == 23, "rows of match_rows");

START_TEST(test_match)
{
	struct cidr list[TS_NITEMS(blocks)];
	const char *err;
	size_t i;

	for (i = 0; i < TS_NITEMS(blocks); i++)
		ck_assert_int_eq(cidr_parse(blocks[i], &list[i], &err), 0);
	ck_assert_msg(cidr_match_text(list, TS_NITEMS(list),
	    match_rows[_i].addr, strlen(match_rows[_i].addr)) ==
	    match_rows[_i].in, "%s", match_rows[_i].addr);
	/* No blocks: nothing is trusted. */
	ck_assert(!cidr_match_text(list, 0, match_rows[_i].addr,
	    strlen(match_rows[_i].addr)));
}
END_TEST

/* /0 takes every address of its family and none of the other. */
START_TEST(test_match_all)
{
	struct cidr any4, any6;
	const char *err;

	ck_assert_int_eq(cidr_parse("0.0.0.0/0", &any4, &err), 0);
	ck_assert_int_eq(cidr_parse("::/0", &any6, &err), 0);
	ck_assert(cidr_match_text(&any4, 1, "203.0.113.9", 11));
	ck_assert(!cidr_match_text(&any4, 1, "2001:db8::1", 11));
	ck_assert(cidr_match_text(&any6, 1, "2001:db8::1", 11));
	ck_assert(!cidr_match_text(&any6, 1, "203.0.113.9", 11));
}
END_TEST

static Suite *
cidr_suite(void)
{
	Suite *s = suite_create("cidr");
	TCase *tc = tcase_create("table");

	tcase_add_loop_test(tc, test_parse, 0, TS_NITEMS(parse_rows));
	tcase_add_loop_test(tc, test_match, 0, TS_NITEMS(match_rows));
	tcase_add_test(tc, test_match_all);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(cidr_suite)
