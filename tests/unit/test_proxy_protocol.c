/*
 * test_proxy_protocol.c -- the PROXY protocol parser (proto/
 * proxy_protocol.c) against tests/data/proxy_protocol/vectors.tsv: good
 * v1 and v2 headers with their addresses and length, prefixes that need
 * more bytes, and hostile ones with their reason.  Every good header is
 * also fed byte by byte: each shorter prefix must be incomplete, never
 * refused or accepted early, and bytes after it change nothing.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_protocol.h"
#include "ts_test.h"

/* The table has this many rows: a lost or cut file fails. */
#define PP_ROWS 65

/* Decode the table's escapes into out; returns the length. */
static size_t
unescape(const char *s, uint8_t *out, size_t size)
{
	size_t n = 0;

	while (*s != '\0' && n < size) {
		if (*s != '\\' || s[1] == '\0') {
			out[n++] = (uint8_t)*s++;
			continue;
		}
		switch (s[1]) {
		case 'r':
			out[n++] = '\r';
			break;
		case 'n':
			out[n++] = '\n';
			break;
		case '0':
			out[n++] = '\0';
			break;
		case 's':
			out[n++] = ' ';
			break;
		case '\\':
			out[n++] = '\\';
			break;
		case 'x': {
			char hex[3] = { s[2], s[3], '\0' };

			out[n++] = (uint8_t)strtoul(hex, NULL, 16);
			s += 2;
			break;
		}
		case '{': {
			/* \{N,c}: c repeated N times. */
			char *comma;
			unsigned long k = strtoul(s + 2, &comma, 10);

			ck_assert(*comma == ',' && comma[2] == '}');
			while (k-- > 0 && n < size)
				out[n++] = (uint8_t)comma[1];
			s = comma + 3 - 2;
			break;
		}
		default:
			ck_abort_msg("bad escape \\%c", s[1]);
		}
		s += 2;
	}
	return n;
}

/* "ip:port", "[v6]:port" or "-". */
static void
fmt_addr(const struct pp_header *h, const uint8_t *a, uint16_t port,
    char *out, size_t size)
{
	char ip[64];

	if (!h->has_addr) {
		snprintf(out, size, "-");
		return;
	}
	ck_assert_ptr_nonnull(inet_ntop(h->family, a, ip, sizeof ip));
	snprintf(out, size, h->family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip,
	    port);
}

/* Split line on tabs into f (at most max); returns the count. */
static int
split(char *line, char **f, int max)
{
	int n = 0;

	f[n++] = line;
	while (n < max && (line = strchr(line, '\t')) != NULL) {
		*line++ = '\0';
		f[n++] = line;
	}
	return n;
}

START_TEST(test_vectors)
{
	char line[2048], *f[6], *nl, src[80], dst[80];
	static uint8_t buf[8192];
	struct pp_header h;
	const char *why;
	size_t len, i;
	int lineno = 0, rows = 0, n, rc;
	FILE *fp;

	fp = fopen(ts_data_path("proxy_protocol/vectors.tsv"), "r");
	ck_assert_ptr_nonnull(fp);
	while (fgets(line, sizeof line, fp) != NULL) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		n = split(line, f, 6);
		ck_assert_msg(n >= 2, "line %d: no expectation", lineno);
		len = unescape(f[0], buf, sizeof buf);
		rc = proxy_protocol_parse(buf, len, &h, &why);
		rows++;
		if (strcmp(f[1], "incomplete") == 0) {
			ck_assert_msg(rc == PP_INCOMPLETE, "line %d: %d (%s)",
			    lineno, rc, why != NULL ? why : "");
			continue;
		}
		if (strcmp(f[1], "invalid") == 0) {
			ck_assert_msg(n == 3, "line %d: columns", lineno);
			ck_assert_msg(rc == PP_INVALID && why != NULL &&
			    strstr(why, f[2]) != NULL,
			    "line %d: want invalid \"%s\", got %d (%s)", lineno,
			    f[2], rc, why != NULL ? why : "");
			continue;
		}
		ck_assert_msg(strcmp(f[1], "ok") == 0 && n == 6,
		    "line %d: bad row", lineno);
		ck_assert_msg(rc == PP_DONE, "line %d: %d (%s)", lineno, rc,
		    why != NULL ? why : "");
		ck_assert_int_eq(h.version, atoi(f[2]));
		ck_assert_msg(h.len == strtoul(f[3], NULL, 10),
		    "line %d: length %zu", lineno, h.len);
		fmt_addr(&h, h.src, h.src_port, src, sizeof src);
		fmt_addr(&h, h.dst, h.dst_port, dst, sizeof dst);
		ck_assert_msg(strcmp(src, f[4]) == 0 && strcmp(dst, f[5]) == 0,
		    "line %d: %s -> %s", lineno, src, dst);
		/* Every shorter prefix only asks for more. */
		for (i = 0; i < h.len; i++) {
			struct pp_header p;

			rc = proxy_protocol_parse(buf, i, &p, &why);
			ck_assert_msg(rc == PP_INCOMPLETE,
			    "line %d: prefix of %zu bytes: %d (%s)", lineno, i,
			    rc, why != NULL ? why : "");
		}
		/* What follows the header is the client's, not ours. */
		memset(buf + len, 'G', 64);
		rc = proxy_protocol_parse(buf, len + 64, &h, &why);
		ck_assert_msg(rc == PP_DONE && h.len == strtoul(f[3], NULL,
		    10), "line %d: trailing bytes changed the header", lineno);
	}
	fclose(fp);
	ck_assert_int_eq(rows, PP_ROWS);
}
END_TEST

static Suite *
proxy_protocol_suite(void)
{
	Suite *s = suite_create("proxy_protocol");
	TCase *tc = tcase_create("vectors");

	tcase_add_test(tc, test_vectors);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(proxy_protocol_suite)
