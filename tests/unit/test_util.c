/*
 * test_util.c -- bounded number, duration and size parsing; the token check.
 */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "ts_test.h"
#include "util.h"

START_TEST(test_u64)
{
	uint64_t v;

	ck_assert_int_eq(util_parse_u64("0", 1, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(util_parse_u64("18446744073709551615", 20, &v), 0);
	ck_assert(v == UINT64_MAX);
	ck_assert_int_eq(util_parse_u64("18446744073709551616", 20, &v), -1);
	ck_assert_int_eq(util_parse_u64("+5", 2, &v), -1);
	ck_assert_int_eq(util_parse_u64(" 5", 2, &v), -1);
	ck_assert_int_eq(util_parse_u64("", 0, &v), -1);
	ck_assert_int_eq(util_parse_u64("12a", 3, &v), -1);
	ck_assert_int_eq(util_parse_u64("12a", 2, &v), 0);
	ck_assert_uint_eq(v, 12);
}
END_TEST

/* The request path's decimal formatting agrees with printf's. */
START_TEST(test_fmt)
{
	static const int64_t v[] = { 0, 1, -1, 9, 10, -10, 99, 100, 12345,
	    -98765, INT64_MAX, INT64_MIN, INT64_MIN + 1 };
	char got[24], want[24];
	size_t i, n;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		n = util_fmt_i64(v[i], got);
		snprintf(want, sizeof want, "%" PRId64, v[i]);
		ck_assert_str_eq(got, want);
		ck_assert_uint_eq(n, strlen(want));
	}
	n = util_fmt_u64(UINT64_MAX, got);
	ck_assert_str_eq(got, "18446744073709551615");
	ck_assert_uint_eq(n, 20);
	ck_assert_uint_eq(i, 13);
	{
		/* Every digit count, at each power of ten and beside it,
		 * and a pseudo-random walk (two digits per step inside). */
		uint64_t p10 = 1, x = 0x9e3779b97f4a7c15ULL, u;
		size_t k, checked = 0;

		for (k = 0; k < 20; k++, p10 *= 10) {
			const uint64_t near[] = { p10 - 1, p10, p10 + 1,
			    p10 * 5 + 7 };

			for (i = 0; i < 4; i++, checked++) {
				u = near[i];
				n = util_fmt_u64(u, got);
				snprintf(want, sizeof want, "%" PRIu64, u);
				ck_assert_str_eq(got, want);
				ck_assert_uint_eq(n, strlen(want));
			}
			if (p10 > UINT64_MAX / 10)
				break;
		}
		for (k = 0; k < 10000; k++, checked++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			u = x >> (k % 64);
			n = util_fmt_u64(u, got);
			snprintf(want, sizeof want, "%" PRIu64, u);
			ck_assert_str_eq(got, want);
			ck_assert_uint_eq(n, strlen(want));
		}
		ck_assert_uint_eq(checked, 20 * 4 + 10000);
	}
}
END_TEST

START_TEST(test_duration)
{
	uint64_t v;

	ck_assert_int_eq(util_parse_duration_ms("250ms", &v), 0);
	ck_assert_uint_eq(v, 250);
	ck_assert_int_eq(util_parse_duration_ms("5s", &v), 0);
	ck_assert_uint_eq(v, 5000);
	ck_assert_int_eq(util_parse_duration_ms("2m", &v), 0);
	ck_assert_uint_eq(v, 120000);
	ck_assert_int_eq(util_parse_duration_ms("7", &v), 0);
	ck_assert_uint_eq(v, 7000);
	ck_assert_int_eq(util_parse_duration_ms("fast", &v), -1);
	ck_assert_int_eq(util_parse_duration_ms("5h", &v), -1);
	ck_assert_int_eq(util_parse_duration_ms("-5s", &v), -1);
	ck_assert_int_eq(util_parse_duration_ms("s", &v), -1);
}
END_TEST

START_TEST(test_size)
{
	uint64_t v;

	ck_assert_int_eq(util_parse_size("16384", &v), 0);
	ck_assert_uint_eq(v, 16384);
	ck_assert_int_eq(util_parse_size("16k", &v), 0);
	ck_assert_uint_eq(v, 16384);
	ck_assert_int_eq(util_parse_size("10m", &v), 0);
	ck_assert_uint_eq(v, 10485760);
	ck_assert_int_eq(util_parse_size("1x", &v), -1);
}
END_TEST

START_TEST(test_case)
{
	char hex[9];
	const uint8_t b[] = {0xde, 0xad, 0x0b, 0x1f};

	ck_assert(util_strcaseeq("Content-Length", "content-length"));
	ck_assert(!util_strcaseeq("Content-Length", "content-lengt"));
	ck_assert(util_strncaseeq("HOST", "host:", 4));
	util_hex_encode(b, sizeof b, hex);
	ck_assert_str_eq(hex, "dead0b1f");
}
END_TEST

/*
 * Every byte against RFC 9110 5.6.2's tchar, written out here as the
 * spec lists it: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" /
 * "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
 */
/*
 * util_memcaseeq folds eight bytes at a time: check it against the byte
 * definition (ASCII A-Z only) for every pair of byte values at every
 * position of strings up to 24 bytes, so that the word step, the
 * overlapping tail and the short loop are all covered.
 */
static bool
ref_caseeq(const unsigned char *a, const unsigned char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned ca = a[i], cb = b[i];

		if (ca >= 'A' && ca <= 'Z')
			ca += 32;
		if (cb >= 'A' && cb <= 'Z')
			cb += 32;
		if (ca != cb)
			return false;
	}
	return true;
}

START_TEST(test_case_words)
{
	unsigned char a[24], b[24];
	size_t len, pos, k, checked = 0, equal = 0;
	unsigned x, y;

	for (len = 1; len <= sizeof a; len += len < 10 ? 1 : 7) {
		for (pos = 0; pos < len; pos += (len > 8 ? 3 : 1)) {
			for (x = 0; x < 256; x++) {
				/* y: the same byte, its case partner, the
				 * bytes 0x20 away and next to it, and bytes
				 * around the letter ranges. */
				const unsigned ys[] = { x, x ^ 0x20, x + 1,
				    x - 1, 'A', 'Z', 'a', 'z', '@', '[', '`',
				    '{', 0xc1, 0xe1, 0, 0x7f };

				for (k = 0; k < TS_NITEMS(ys); k++) {
					y = ys[k] & 0xff;
					memset(a, 'k', sizeof a);
					memset(b, 'K', sizeof b);
					a[pos] = (unsigned char)x;
					b[pos] = (unsigned char)y;
					ck_assert_int_eq(util_memcaseeq(
					    (char *)a, (char *)b, len),
					    ref_caseeq(a, b, len));
					equal += ref_caseeq(a, b, len);
					checked++;
				}
			}
		}
	}
	/* Letters match their other case, and nothing else crosses. */
	ck_assert(util_memcaseeq("X-DATADOG-TRACE-ID", "x-datadog-trace-id",
	    18));
	ck_assert(!util_memcaseeq("x-datadog-trace-i^", "x-datadog-trace-i~",
	    18));
	ck_assert(!util_memcaseeq("x-datadog-trace-i@", "x-datadog-trace-i`",
	    18));
	ck_assert(!util_memcaseeq("x-datadog-trace-i\xc1",
	    "x-datadog-trace-i\xe1", 18));
	/* util_strncaseeq stops at a shorter string's NUL (ASan checks it
	 * reads no further): a prefix test on a short name is safe. */
	{
		char *te = strdup("te");

		ck_assert(!util_strncaseeq(te, "x-forwarded-", 12));
		ck_assert(!util_strncaseeq(te, "tea-for-two-and-more", 20));
		free(te);
	}
	ck_assert_uint_eq(checked, 57 * 256 * 16);
	ck_assert_uint_gt(equal, 1000);	/* both answers were exercised */
}
END_TEST

START_TEST(test_tchar)
{
	static const char tchars[] = "!#$%&'*+-.^_`|~0123456789"
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	unsigned c, n = 0;

	for (c = 0; c < 256; c++) {
		bool want = c != 0 && strchr(tchars, (int)c) != NULL;

		ck_assert_msg(util_is_tchar((unsigned char)c) == want,
		    "tchar 0x%02x", c);
		n += want;
	}
	ck_assert_uint_eq(n, 15 + 10 + 52);
}
END_TEST

/* A token is one or more tchar. */
START_TEST(test_token)
{
	ck_assert(util_is_token("x-datadog-trace-id", 18));
	ck_assert(util_is_token("!#$%&'*+-.^_`|~", 15));
	ck_assert(!util_is_token("", 0));
	ck_assert(!util_is_token("a:b", 3));
	ck_assert(!util_is_token("a b", 3));
	ck_assert(!util_is_token("a\0b", 3));
	ck_assert(!util_is_token("\xc3\xa9", 2));
	ck_assert(util_is_token("GET x", 3));
}
END_TEST

/* RFC 9110 5.6.1 lists: elements joined with "|" as util_list_next
 * returns them (empty ones and OWS skipped, inner blanks kept). */
static const struct {
	const char *in, *want;
} list_vec[] = {
	{ "", "" },
	{ " , ,\t", "" },
	{ "a", "a" },
	{ "a,b", "a|b" },
	{ " a , b ", "a|b" },
	{ "a,,b,", "a|b" },
	{ "\ta b\t,c", "a b|c" },
	{ "keep-alive, Upgrade", "keep-alive|Upgrade" },
};

START_TEST(test_list_next)
{
	const char *p = list_vec[_i].in, *end = p + strlen(p), *e;
	char got[64] = "";
	size_t len;

	while (util_list_next(&p, end, &e, &len)) {
		if (got[0] != '\0')
			strcat(got, "|");
		strncat(got, e, len);
	}
	ck_assert_ptr_eq(p, end);
	ck_assert_str_eq(got, list_vec[_i].want);
}
END_TEST

static Suite *
util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_u64);
	tcase_add_test(tc, test_fmt);
	tcase_add_test(tc, test_duration);
	tcase_add_test(tc, test_size);
	tcase_add_test(tc, test_case);
	tcase_add_test(tc, test_case_words);
	tcase_add_test(tc, test_tchar);
	tcase_add_test(tc, test_token);
	tcase_add_loop_test(tc, test_list_next, 0, (int)TS_NITEMS(list_vec));
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(util_suite)
