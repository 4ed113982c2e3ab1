/*
 * test_framing.c -- the request-smuggling guard against the vectors in
 * tests/data/framing/cases.txt, each fed whole, byte by byte and split at
 * pseudo-random points (fixed seed): the verdict must not depend on how
 * the stream is cut.  Plus captures, stickiness, idleness and limits.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "front/framing.h"
#include "ts_test.h"

#define MAX_CASES 256
#define MAX_BYTES 8192
#define RANDOM_SPLITS 16

struct fcase {
	char name[80];
	int status;
	uint64_t requests;
	char reason[128];
	char bytes[MAX_BYTES];
	size_t len;
	int line;
};

static struct fcase cases[MAX_CASES];
static int ncases;

static const struct framing_limits test_limits = {
	.max_header_bytes = 512,
	.max_body_bytes = 64,
	.max_fields = 8,
};

/* Trim spaces at both ends in place. */
static char *
trim(char *s)
{
	char *e;

	while (*s == ' ')
		s++;
	e = s + strlen(s);
	while (e > s && e[-1] == ' ')
		*--e = '\0';
	return s;
}

/* Decode the bytes column: \r \n \t \0 \\ \xHH \{N,c}. */
static size_t
unescape(const char *s, char *out, size_t size, int line)
{
	size_t n = 0;

	while (*s != '\0') {
		char c = *s++;

		if (c == '\\') {
			c = *s++;
			switch (c) {
			case 'r': c = '\r'; break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case '0': c = '\0'; break;
			case '\\': c = '\\'; break;
			case 'x': {
				char hex[3] = { s[0], s[1], '\0' };

				c = (char)strtoul(hex, NULL, 16);
				s += 2;
				break;
			}
			case '{': {
				char *e;
				unsigned long k = strtoul(s, &e, 10);

				ck_assert_msg(*e == ',' && e[2] == '}',
				    "line %d: bad \\{N,c}", line);
				ck_assert_msg(n + k <= size, "line %d: too long",
				    line);
				memset(out + n, e[1], k);
				n += k;
				s = e + 3;
				continue;
			}
			default:
				ck_abort_msg("line %d: bad escape \\%c", line, c);
			}
		}
		ck_assert_msg(n < size, "line %d: too long", line);
		out[n++] = c;
	}
	return n;
}

/* Load the vector file once, before the suite runs. */
static void
load_cases(void)
{
	FILE *fp;
	char buf[16384];
	int line = 0;

	fp = fopen(ts_data_path("framing/cases.txt"), "r");
	if (fp == NULL) {
		fprintf(stderr, "%s: %s\n", ts_data_path("framing/cases.txt"),
		    strerror(errno));
		exit(EXIT_FAILURE);
	}
	while (fgets(buf, sizeof buf, fp) != NULL) {
		struct fcase *c;
		char *field[5], *p = buf;
		int i;

		line++;
		buf[strcspn(buf, "\n")] = '\0';
		if (buf[0] == '#' || buf[0] == '\0')
			continue;
		if (ncases == MAX_CASES) {
			fprintf(stderr, "cases.txt: too many cases\n");
			exit(EXIT_FAILURE);
		}
		for (i = 0; i < 4; i++) {
			char *sep = strstr(p, " | ");

			if (sep == NULL) {
				fprintf(stderr, "cases.txt:%d: want 5 fields\n",
				    line);
				exit(EXIT_FAILURE);
			}
			*sep = '\0';
			field[i] = p;
			p = sep + 3;
		}
		field[4] = p;
		c = &cases[ncases++];
		c->line = line;
		snprintf(c->name, sizeof c->name, "%s", trim(field[0]));
		c->status = atoi(field[1]);
		c->requests = strtoull(field[2], NULL, 10);
		snprintf(c->reason, sizeof c->reason, "%s", trim(field[3]));
		c->len = 0;
		/* The bytes are decoded in the test so errors fail it. */
		snprintf(c->bytes, sizeof c->bytes, "%s", field[4]);
	}
	fclose(fp);
}

/* xorshift64: a fixed, portable sequence for the split points. */
static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Feed the case cut by a split mode; 0 whole, 1 bytewise, 2+ random. */
static void
feed_case(const struct fcase *c, const char *raw, size_t len, int mode,
    uint64_t seed)
{
	struct framing_state f;
	size_t off = 0;
	int rc = 0;

	framing_init(&f, &test_limits);
	while (off < len) {
		size_t n;

		if (mode == 0)
			n = len;
		else if (mode == 1)
			n = 1;
		else
			n = 1 + (size_t)(next_rand(&seed) % 24);
		n = TS_MIN(n, len - off);
		rc = framing_feed(&f, raw + off, n);
		off += n;
		if (rc != 0)
			break;
	}
	if (c->status == 0) {
		ck_assert_msg(rc == 0, "%s (line %d, mode %d): rejected %d "
		    "\"%s\"", c->name, c->line, mode, f.status,
		    f.reason != NULL ? f.reason : "");
		ck_assert_msg(framing_idle(&f), "%s (line %d, mode %d): not "
		    "idle at the end", c->name, c->line, mode);
	} else {
		ck_assert_msg(rc == -1, "%s (line %d, mode %d): accepted",
		    c->name, c->line, mode);
		ck_assert_msg(f.status == c->status, "%s (line %d, mode %d): "
		    "status %d, want %d (\"%s\")", c->name, c->line, mode,
		    f.status, c->status, f.reason);
		ck_assert_msg(f.phase == FRAMING_REJECTED, "%s: phase",
		    c->name);
		ck_assert_msg(strstr(f.reason, c->reason) != NULL,
		    "%s (line %d, mode %d): reason \"%s\", want \"%s\"",
		    c->name, c->line, mode, f.reason, c->reason);
		ck_assert_int_eq(framing_feed(&f, "GET", 3), -1);
		ck_assert(!framing_idle(&f));
	}
	ck_assert_msg(f.requests == c->requests, "%s (line %d, mode %d): "
	    "%llu requests, want %llu", c->name, c->line, mode,
	    (unsigned long long)f.requests, (unsigned long long)c->requests);
}

START_TEST(test_vectors)
{
	const struct fcase *c = &cases[_i];
	static char raw[MAX_BYTES];
	size_t len;
	int mode;

	len = unescape(c->bytes, raw, sizeof raw, c->line);
	ck_assert_msg(len > 0, "line %d: empty case", c->line);
	for (mode = 0; mode < 2 + RANDOM_SPLITS; mode++)
		feed_case(c, raw, len, mode, 0x9e3779b97f4a7c15ULL +
		    (uint64_t)mode * 7919 + (uint64_t)_i);
}
END_TEST

/* Enough cases, and the corpus classes the guard must cover. */
START_TEST(test_vector_count)
{
	int i, rejects = 0, passes = 0;

	ck_assert_int_ge(ncases, 60);
	for (i = 0; i < ncases; i++) {
		if (cases[i].status == 0)
			passes++;
		else
			rejects++;
	}
	ck_assert_int_ge(passes, 15);
	ck_assert_int_ge(rejects, 40);
}
END_TEST

START_TEST(test_captures)
{
	static const char req1[] =
	    "POST /api/v1/items?secret=1 HTTP/1.1\r\n"
	    "HOST:  api.example.com:8443 \r\n"
	    "Origin: https://app.example.com\r\n"
	    "Content-Length: 2\r\n\r\nhi";
	static const char req2[] = "GET /next HTTP/1.0\r\n\r\n";
	struct framing_state f;

	framing_init(&f, &test_limits);
	ck_assert_int_eq(framing_feed(&f, req1, sizeof req1 - 1), 0);
	ck_assert_str_eq(f.method, "POST");
	ck_assert_str_eq(f.path, "/api/v1/items");
	ck_assert_str_eq(f.host, "api.example.com:8443");
	ck_assert_str_eq(f.origin, "https://app.example.com");
	ck_assert_int_eq(f.minor, 1);
	ck_assert_uint_eq(f.requests, 1);
	/* A new request line resets the captures. */
	ck_assert_int_eq(framing_feed(&f, req2, sizeof req2 - 1), 0);
	ck_assert_str_eq(f.method, "GET");
	ck_assert_str_eq(f.path, "/next");
	ck_assert_str_eq(f.host, "");
	ck_assert_str_eq(f.origin, "");
	ck_assert_int_eq(f.minor, 0);
	ck_assert_uint_eq(f.requests, 2);
}
END_TEST

START_TEST(test_capture_truncation)
{
	static char req[2048];
	struct framing_limits lim = { 4096, 64, 0 };
	struct framing_state f;
	int n;

	n = snprintf(req, sizeof req, "OPTIONS /%0400d "
	    "HTTP/1.1\r\nHost: a\r\nOrigin: https://%0400d\r\n\r\n", 7, 9);
	framing_init(&f, &lim);
	ck_assert_int_eq(framing_feed(&f, req, (size_t)n), 0);
	ck_assert_str_eq(f.method, "OPTIONS");
	ck_assert_uint_eq(strlen(f.path), FRAMING_CAPTURE - 1);
	ck_assert_uint_eq(strlen(f.origin), FRAMING_CAPTURE - 1);
	ck_assert(strncmp(f.origin, "https://000", 11) == 0);

	/* A method longer than the capture is refused as unsupported. */
	n = snprintf(req, sizeof req, "VERYLONGMETHODNAMEXYZ / HTTP/1.1\r\n"
	    "Host: a\r\n\r\n");
	framing_init(&f, &lim);
	ck_assert_int_eq(framing_feed(&f, req, (size_t)n), -1);
	ck_assert_int_eq(f.status, 501);
	ck_assert_uint_eq(strlen(f.method), sizeof f.method - 1);
}
END_TEST

/* The rejection captures the request it rejects (for the JSON body). */
START_TEST(test_capture_on_reject)
{
	static const char req[] = "GET /a?b HTTP/1.1\r\nHost: h\r\n"
	    "Origin: https://o\r\nX@: y\r\n\r\n";
	struct framing_state f;

	framing_init(&f, &test_limits);
	ck_assert_int_eq(framing_feed(&f, req, sizeof req - 1), -1);
	ck_assert_int_eq(f.status, 400);
	ck_assert_str_eq(f.path, "/a");
	ck_assert_str_eq(f.host, "h");
	ck_assert_str_eq(f.origin, "https://o");
}
END_TEST

START_TEST(test_idle_and_phases)
{
	struct framing_state f;

	framing_init(&f, &test_limits);
	ck_assert(framing_idle(&f));
	ck_assert_int_eq(f.phase, FRAMING_REQLINE);
	ck_assert_int_eq(framing_feed(&f, "PO", 2), 0);
	ck_assert(!framing_idle(&f));
	ck_assert_int_eq(framing_feed(&f, "ST / HTTP/1.1\r\nHost: a\r\n", 24),
	    0);
	ck_assert_int_eq(f.phase, FRAMING_HEADERS);
	ck_assert_int_eq(framing_feed(&f, "Content-Length: 3\r\n\r\nab", 23),
	    0);
	ck_assert_int_eq(f.phase, FRAMING_BODY_LENGTH);
	ck_assert_uint_eq(f.requests, 1);
	ck_assert(!framing_idle(&f));
	ck_assert_int_eq(framing_feed(&f, "c", 1), 0);
	ck_assert(framing_idle(&f));
	ck_assert_int_eq(framing_feed(&f, "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", 56), 0);
	ck_assert_int_eq(f.phase, FRAMING_BODY_CHUNKED);
	ck_assert_int_eq(framing_feed(&f, "0\r\n", 3), 0);
	ck_assert(!framing_idle(&f));
	ck_assert_int_eq(framing_feed(&f, "\r\n", 2), 0);
	ck_assert(framing_idle(&f));
	ck_assert_uint_eq(f.requests, 2);
	/* An empty feed changes nothing. */
	ck_assert_int_eq(framing_feed(&f, "", 0), 0);
	ck_assert(framing_idle(&f));
}
END_TEST

/* Body bytes are skipped without looking at them, in large ranges. */
START_TEST(test_large_body)
{
	static char junk[65536];
	struct framing_limits lim = { 1024, 1ULL << 40, 0 };
	struct framing_state f;
	static const char head[] = "PUT /up HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 1048576\r\n\r\n";
	int i;

	memset(junk, '\r', sizeof junk);	/* would be bare CRs in a head */
	framing_init(&f, &lim);
	ck_assert_int_eq(framing_feed(&f, head, sizeof head - 1), 0);
	for (i = 0; i < 16; i++)
		ck_assert_int_eq(framing_feed(&f, junk, sizeof junk), 0);
	ck_assert(framing_idle(&f));
	ck_assert_uint_eq(f.requests, 1);
}
END_TEST

START_TEST(test_defaults)
{
	struct framing_state f;
	static char big[20000];
	int n;

	framing_init(&f, NULL);
	ck_assert_uint_eq(f.limits.max_header_bytes, 16384);
	ck_assert_uint_eq(f.limits.max_body_bytes, 10ULL * 1024 * 1024);
	n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\nX: %017000d"
	    "\r\n\r\n", 0);
	ck_assert_int_eq(framing_feed(&f, big, (size_t)n), -1);
	ck_assert_int_eq(f.status, 431);
}
END_TEST

/* The head indexer: boundaries, OWS, NUL termination, limits. */
START_TEST(test_index_fields)
{
	char buf[] = "\r\nPOST /a?b=1 HTTP/1.0\r\nHost:  h.example \r\n"
	    "X-Empty:\r\nx-tab:\tv 1\t\nCookie: a=b; c=d\r\n\r\nBODY";
	struct http_field fields[8];
	struct framing_head h;

	ck_assert_uint_eq(framing_head_len(buf, strlen(buf)),
	    strlen(buf) - 4);
	ck_assert_int_eq(framing_index(buf, strlen(buf), &h, fields, 8), 0);
	ck_assert_uint_eq(h.len, sizeof buf - 1 - 4);
	ck_assert_str_eq(h.method, "POST");
	ck_assert_uint_eq(h.method_len, 4);
	ck_assert_str_eq(h.target, "/a?b=1");
	ck_assert_uint_eq(h.target_len, 6);
	ck_assert_int_eq(h.minor, 0);
	ck_assert_uint_eq(h.n_fields, 4);
	ck_assert_str_eq(fields[0].name, "Host");
	ck_assert_str_eq(fields[0].value, "h.example");
	ck_assert_uint_eq(fields[0].value_len, 9);
	ck_assert_str_eq(fields[1].name, "X-Empty");
	ck_assert_str_eq(fields[1].value, "");
	ck_assert_uint_eq(fields[1].value_len, 0);
	ck_assert_str_eq(fields[2].name, "x-tab");
	ck_assert_str_eq(fields[2].value, "v 1");
	ck_assert_str_eq(fields[3].value, "a=b; c=d");
	ck_assert_uint_eq(fields[3].name_len, 6);
	/* The body after the head is not touched. */
	ck_assert_str_eq(buf + h.len, "BODY");
}
END_TEST

START_TEST(test_index_limits)
{
	char buf[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
	char copy[sizeof buf];
	struct http_field fields[2];
	struct framing_head h;

	memcpy(copy, buf, sizeof buf);
	/* Too many fields: the count is told, nothing is written. */
	ck_assert_int_eq(framing_index(buf, strlen(buf), &h, fields, 2), -1);
	ck_assert_uint_eq(h.n_fields, 3);
	ck_assert_mem_eq(buf, copy, sizeof buf);
	/* Incomplete heads are not indexed. */
	ck_assert_uint_eq(framing_head_len(buf, strlen(buf) - 1), 0);
	ck_assert_uint_eq(framing_head_len(buf, strlen(buf) - 2), 0);
	ck_assert_uint_eq(framing_head_len("\r\n\r\n", 4), 0);
	ck_assert_int_eq(framing_index(buf, strlen(buf) - 2, &h, fields, 2),
	    -1);
	/* Bare LF line ends. */
	ck_assert_uint_eq(framing_head_len("GET / HTTP/1.1\nHost: a\n\nX",
	    25), 24);
}
END_TEST

/* Decoded data of a chunked body and bytes consumed. */
struct dc_out {
	char data[256];
	size_t len;
};

static void
dc_data(void *arg, const char *p, size_t n)
{
	struct dc_out *o = arg;

	ck_assert_uint_le(o->len + n, sizeof o->data);
	memcpy(o->data + o->len, p, n);
	o->len += n;
}

/* The same decoding whatever the pieces: every split point, twice. */
START_TEST(test_dechunk_splits)
{
	static const char body[] = "5;ext=\"q\"\r\nhello\r\n"
	    "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\nNEXT";
	size_t len = sizeof body - 1 - 4, a, b;

	for (a = 0; a <= len; a++) {
		for (b = a; b <= len; b += 7) {
			struct framing_dechunk d;
			struct dc_out o = { .len = 0 };
			size_t used = 0;
			bool done = false;

			framing_dechunk_init(&d);
			used += framing_dechunk(&d, body, a, dc_data, &o,
			    &done);
			ck_assert(!done || a == len);
			used += framing_dechunk(&d, body + used, b - used,
			    dc_data, &o, &done);
			used += framing_dechunk(&d, body + used,
			    sizeof body - 1 - used, dc_data, &o, &done);
			ck_assert(done);
			ck_assert_uint_eq(used, len);
			ck_assert_uint_eq(o.len, 31);
			ck_assert_mem_eq(o.data,
			    "helloabcdefghijklmnopqrstuvwxyz", 31);
		}
	}
}
END_TEST

/*
 * conn.c's walk over every accepted vector: index each completed head,
 * take its body (Content-Length or dechunked), go on.  The heads found
 * must be the guard's count, and an idle stream must be used up exactly.
 */
START_TEST(test_walk_vectors)
{
	const struct fcase *fc = &cases[_i];
	static char buf[MAX_BYTES];
	struct http_field fields[64];
	struct framing_state f;
	size_t off = 0, nheads = 0;

	if (fc->status != 0)
		return;
	framing_init(&f, &test_limits);
	ck_assert_int_eq(framing_feed(&f, fc->bytes, fc->len), 0);
	memcpy(buf, fc->bytes, fc->len);
	while (nheads < f.requests) {
		struct framing_head h;
		uint64_t cl = 0;
		bool chunked = false;
		size_t i;

		ck_assert_msg(framing_index(buf + off, fc->len - off, &h,
		    fields, TS_NITEMS(fields)) == 0, "%s: head %zu", fc->name,
		    nheads);
		nheads++;
		for (i = 0; i < h.n_fields; i++) {
			ck_assert_uint_eq(strlen(fields[i].name),
			    fields[i].name_len);
			ck_assert_uint_eq(strlen(fields[i].value),
			    fields[i].value_len);
			ck_assert(strpbrk(fields[i].value, "\r\n") == NULL);
			if (strcasecmp(fields[i].name, "content-length") == 0)
				cl = strtoull(fields[i].value, NULL, 10);
			if (strcasecmp(fields[i].name,
			    "transfer-encoding") == 0)
				chunked = true;
		}
		off += h.len;
		if (chunked) {
			struct framing_dechunk d;
			struct dc_out o = { .len = 0 };
			bool done = false;

			framing_dechunk_init(&d);
			off += framing_dechunk(&d, buf + off, fc->len - off,
			    dc_data, &o, &done);
			if (!done)
				break;
		} else {
			if (cl > fc->len - off)
				break;
			off += (size_t)cl;
		}
	}
	ck_assert_uint_eq(nheads, f.requests);
	if (framing_idle(&f)) {
		/* Only empty lines may be left. */
		for (; off < fc->len; off++)
			ck_assert(fc->bytes[off] == '\r' ||
			    fc->bytes[off] == '\n');
	}
}
END_TEST

static Suite *
framing_suite(void)
{
	Suite *s = suite_create("framing");
	TCase *tc;

	load_cases();
	tc = tcase_create("vectors");
	tcase_add_loop_test(tc, test_vectors, 0, ncases);
	tcase_add_test(tc, test_vector_count);
	suite_add_tcase(s, tc);

	tc = tcase_create("state");
	tcase_add_test(tc, test_captures);
	tcase_add_test(tc, test_capture_truncation);
	tcase_add_test(tc, test_capture_on_reject);
	tcase_add_test(tc, test_idle_and_phases);
	tcase_add_test(tc, test_large_body);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_index_fields);
	tcase_add_test(tc, test_index_limits);
	tcase_add_test(tc, test_dechunk_splits);
	tcase_add_loop_test(tc, test_walk_vectors, 0, ncases);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(framing_suite)
