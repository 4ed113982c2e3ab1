/*
 * test_h2_msg.c -- the HTTP/2 -> HTTP/1.1 translation rules (h2_msg.c,
 * RFC 9113 8.1.1, 8.2, 8.3) as a table: one request head (and body
 * lengths) per row, the verdict it must get.  The integration suite
 * test_h2_rules.py sends the same cases through the real gateway.
 */
#include <stdbool.h>
#include <string.h>

#include "h2_msg.h"
#include "ts_test.h"

#define MAXF 8

struct fv {
	const char *n, *v;
	size_t vlen;		/* 0: strlen(v) */
};

struct row {
	const char *what;
	struct fv f[MAXF];	/* up to the first NULL name */
	bool end;		/* END_STREAM on HEADERS */
	long data[4];		/* DATA lengths, -1 ends */
	enum h2_msg_verdict want;
	enum h2_msg_kind kind;	/* of the last field, when want is OK */
};

#define M { ":method", "GET", 0 }
#define MP { ":method", "POST", 0 }
#define S { ":scheme", "https", 0 }
#define A { ":authority", "api.example", 0 }
#define PA { ":path", "/x", 0 }
#define BASE M, S, A, PA
#define NODATA { -1 }

static const struct row rows[] = {
	{ "plain GET", { BASE }, true, NODATA, H2_MSG_OK, H2_MSG_K_PATH },
	{ "regular field", { BASE, { "x-a", "1", 0 } }, true, NODATA,
	    H2_MSG_OK, H2_MSG_K_FIELD },
	{ "cookie crumb", { BASE, { "cookie", "a=1", 0 } }, true, NODATA,
	    H2_MSG_OK, H2_MSG_K_COOKIE },
	{ "te trailers", { BASE, { "te", "trailers", 0 } }, true, NODATA,
	    H2_MSG_OK, H2_MSG_K_TE },
	{ "host agrees", { BASE, { "host", "API.example", 0 } }, true, NODATA,
	    H2_MSG_OK, H2_MSG_K_HOST },
	{ "host only", { M, S, PA, { "host", "api.example", 0 } }, true,
	    NODATA, H2_MSG_OK, H2_MSG_K_HOST },
	{ "OPTIONS *", { { ":method", "OPTIONS", 0 }, S, A,
	    { ":path", "*", 0 } }, true, NODATA, H2_MSG_OK, H2_MSG_K_PATH },
	{ "empty value", { BASE, { "x-a", "", 0 } }, true, NODATA, H2_MSG_OK,
	    H2_MSG_K_FIELD },
	{ "inner space and tab", { BASE, { "x-a", "a b\tc", 0 } }, true,
	    NODATA, H2_MSG_OK, H2_MSG_K_FIELD },
	{ "obs-text", { BASE, { "x-a", "caf\xc3\xa9", 0 } }, true, NODATA,
	    H2_MSG_OK, H2_MSG_K_FIELD },
	{ "content-length matches", { MP, S, A, PA,
	    { "content-length", "5", 0 } }, false, { 2, 3, -1 }, H2_MSG_OK,
	    H2_MSG_K_CONTENT_LENGTH },
	{ "same content-length twice", { MP, S, A, PA,
	    { "content-length", "5", 0 }, { "content-length", "5", 0 } },
	    false, { 5, -1 }, H2_MSG_OK, H2_MSG_K_CONTENT_LENGTH },
	{ "body without content-length", { MP, S, A, PA }, false,
	    { 100, 0, -1 }, H2_MSG_OK, H2_MSG_K_PATH },

	{ "empty name", { BASE, { "", "1", 0 } }, true, NODATA,
	    H2_MSG_NAME_EMPTY, H2_MSG_K_FIELD },
	{ "upper-case name", { BASE, { "X-A", "1", 0 } }, true, NODATA,
	    H2_MSG_NAME_UPPER, H2_MSG_K_FIELD },
	{ "upper-case pseudo", { { ":Method", "GET", 0 } }, true, NODATA,
	    H2_MSG_NAME_UPPER, H2_MSG_K_FIELD },
	{ "space in name", { BASE, { "x a", "1", 0 } }, true, NODATA,
	    H2_MSG_NAME_CHAR, H2_MSG_K_FIELD },
	{ "colon in name", { BASE, { "x:a", "1", 0 } }, true, NODATA,
	    H2_MSG_NAME_CHAR, H2_MSG_K_FIELD },
	{ "CR in value", { BASE, { "x-a", "a\rb", 0 } }, true, NODATA,
	    H2_MSG_VALUE_CRLFNUL, H2_MSG_K_FIELD },
	{ "LF in value", { BASE, { "x-a", "a\nb", 0 } }, true, NODATA,
	    H2_MSG_VALUE_CRLFNUL, H2_MSG_K_FIELD },
	{ "NUL in value", { BASE, { "x-a", "a\0b", 3 } }, true, NODATA,
	    H2_MSG_VALUE_CRLFNUL, H2_MSG_K_FIELD },
	{ "CRLF in :path", { M, S, A, { ":path", "/x\r\nHost: y", 0 } }, true,
	    NODATA, H2_MSG_VALUE_CRLFNUL, H2_MSG_K_FIELD },
	{ "SOH in value", { BASE, { "x-a", "a\x01", 0 } }, true, NODATA,
	    H2_MSG_VALUE_CTL, H2_MSG_K_FIELD },
	{ "DEL in value", { BASE, { "x-a", "a\x7f", 0 } }, true, NODATA,
	    H2_MSG_VALUE_CTL, H2_MSG_K_FIELD },
	{ "leading space", { BASE, { "x-a", " a", 0 } }, true, NODATA,
	    H2_MSG_VALUE_WS, H2_MSG_K_FIELD },
	{ "trailing tab", { BASE, { "x-a", "a\t", 0 } }, true, NODATA,
	    H2_MSG_VALUE_WS, H2_MSG_K_FIELD },
	{ "pseudo after regular", { M, S, { "x-a", "1", 0 }, A, PA }, true,
	    NODATA, H2_MSG_PSEUDO_AFTER, H2_MSG_K_FIELD },
	{ "duplicated :method", { M, M, S, A, PA }, true, NODATA,
	    H2_MSG_PSEUDO_DUP, H2_MSG_K_FIELD },
	{ "duplicated :authority", { BASE, A }, true, NODATA,
	    H2_MSG_PSEUDO_DUP, H2_MSG_K_FIELD },
	{ "unknown pseudo", { BASE, { ":protocol", "websocket", 0 } }, true,
	    NODATA, H2_MSG_PSEUDO_UNKNOWN, H2_MSG_K_FIELD },
	{ "response pseudo", { { ":status", "200", 0 } }, true, NODATA,
	    H2_MSG_PSEUDO_UNKNOWN, H2_MSG_K_FIELD },
	{ "no :method", { S, A, PA }, true, NODATA, H2_MSG_PSEUDO_MISSING, H2_MSG_K_FIELD },
	{ "no :scheme", { M, A, PA }, true, NODATA, H2_MSG_PSEUDO_MISSING, H2_MSG_K_FIELD },
	{ "no :path", { M, S, A }, true, NODATA, H2_MSG_PSEUDO_MISSING, H2_MSG_K_FIELD },
	{ "empty :path", { M, S, A, { ":path", "", 0 } }, true, NODATA,
	    H2_MSG_PSEUDO_EMPTY, H2_MSG_K_FIELD },
	{ "method with a space", { { ":method", "GET /a HTTP/1.1", 0 } },
	    true, NODATA, H2_MSG_METHOD, H2_MSG_K_FIELD },
	{ "scheme ftp", { M, { ":scheme", "ftp", 0 } }, true, NODATA,
	    H2_MSG_SCHEME, H2_MSG_K_FIELD },
	{ "path with a space", { M, S, A, { ":path", "/a b", 0 } }, true,
	    NODATA, H2_MSG_PATH, H2_MSG_K_FIELD },
	{ "absolute path", { M, S, A, { ":path", "http://x/", 0 } }, true,
	    NODATA, H2_MSG_PATH, H2_MSG_K_FIELD },
	{ "* for GET", { M, S, A, { ":path", "*", 0 } }, true, NODATA,
	    H2_MSG_PATH, H2_MSG_K_FIELD },
	{ "userinfo", { M, S, { ":authority", "u@api.example", 0 } }, true,
	    NODATA, H2_MSG_AUTHORITY, H2_MSG_K_FIELD },
	{ "slash in authority", { M, S, { ":authority", "a/b", 0 } }, true,
	    NODATA, H2_MSG_AUTHORITY, H2_MSG_K_FIELD },
	{ "empty authority", { M, S, { ":authority", "", 0 } }, true, NODATA,
	    H2_MSG_AUTHORITY, H2_MSG_K_FIELD },
	{ "no authority nor host", { M, S, PA }, true, NODATA,
	    H2_MSG_NO_AUTHORITY, H2_MSG_K_FIELD },
	{ "host disagrees", { BASE, { "host", "evil.example", 0 } }, true,
	    NODATA, H2_MSG_HOST_MISMATCH, H2_MSG_K_FIELD },
	{ "two hosts", { M, S, PA, { "host", "a", 0 }, { "host", "a", 0 } },
	    true, NODATA, H2_MSG_HOST_DUP, H2_MSG_K_FIELD },
	{ "connection", { BASE, { "connection", "close", 0 } }, true, NODATA,
	    H2_MSG_CONNECTION, H2_MSG_K_FIELD },
	{ "keep-alive", { BASE, { "keep-alive", "5", 0 } }, true, NODATA,
	    H2_MSG_CONNECTION, H2_MSG_K_FIELD },
	{ "proxy-connection", { BASE, { "proxy-connection", "x", 0 } }, true,
	    NODATA, H2_MSG_CONNECTION, H2_MSG_K_FIELD },
	{ "transfer-encoding", { BASE, { "transfer-encoding", "chunked", 0 } },
	    true, NODATA, H2_MSG_CONNECTION, H2_MSG_K_FIELD },
	{ "upgrade", { BASE, { "upgrade", "h2c", 0 } }, true, NODATA,
	    H2_MSG_CONNECTION, H2_MSG_K_FIELD },
	{ "te gzip", { BASE, { "te", "gzip", 0 } }, true, NODATA, H2_MSG_TE, H2_MSG_K_FIELD },
	{ "te trailers,gzip", { BASE, { "te", "trailers, gzip", 0 } }, true,
	    NODATA, H2_MSG_TE, H2_MSG_K_FIELD },
	{ "content-length letters", { BASE, { "content-length", "1a", 0 } },
	    true, NODATA, H2_MSG_CL_INVALID, H2_MSG_K_FIELD },
	{ "content-length list", { BASE, { "content-length", "1,1", 0 } },
	    true, NODATA, H2_MSG_CL_INVALID, H2_MSG_K_FIELD },
	{ "content-lengths disagree", { BASE, { "content-length", "1", 0 },
	    { "content-length", "2", 0 } }, true, NODATA, H2_MSG_CL_INVALID, H2_MSG_K_FIELD },
	{ "content-length over 19 digits", { BASE,
	    { "content-length", "12345678901234567890", 0 } }, true, NODATA,
	    H2_MSG_CL_INVALID, H2_MSG_K_FIELD },
	{ "content-length with END_STREAM", { BASE,
	    { "content-length", "3", 0 } }, true, NODATA, H2_MSG_CL_MISMATCH, H2_MSG_K_FIELD },
	{ "DATA above content-length", { MP, S, A, PA,
	    { "content-length", "3", 0 } }, false, { 2, 2, -1 },
	    H2_MSG_CL_MISMATCH, H2_MSG_K_FIELD },
	{ "DATA below content-length", { MP, S, A, PA,
	    { "content-length", "3", 0 } }, false, { 2, -1 },
	    H2_MSG_CL_MISMATCH, H2_MSG_K_FIELD },
	{ "lower-case method", { { ":method", "get", 0 } }, true, NODATA,
	    H2_MSG_METHOD_NS, H2_MSG_K_FIELD },
	{ "16-byte method", { { ":method", "ABCDEFGHIJKLMNOP", 0 } }, true,
	    NODATA, H2_MSG_METHOD_NS, H2_MSG_K_FIELD },
	{ "extension method", { { ":method", "PROPFIND", 0 }, S, A, PA },
	    true, NODATA, H2_MSG_OK, H2_MSG_K_PATH },
	{ "CONNECT", { { ":method", "CONNECT", 0 }, A }, true, NODATA,
	    H2_MSG_CONNECT, H2_MSG_K_FIELD },
};

/* Run one row; the verdict of its first refusal, or OK. */
static enum h2_msg_verdict
run(const struct row *r, enum h2_msg_kind *last)
{
	struct h2_msg m;
	enum h2_msg_verdict v;
	size_t i;

	h2_msg_init(&m);
	for (i = 0; i < MAXF && r->f[i].n != NULL; i++) {
		const struct fv *f = &r->f[i];
		size_t vlen = f->vlen != 0 ? f->vlen : strlen(f->v);

		v = h2_msg_field(&m, (const uint8_t *)f->n, strlen(f->n),
		    (const uint8_t *)f->v, vlen, last);
		if (v != H2_MSG_OK)
			return v;
	}
	if ((v = h2_msg_end(&m, r->end)) != H2_MSG_OK)
		return v;
	if (r->end)
		return H2_MSG_OK;
	for (i = 0; r->data[i] >= 0; i++) {
		if ((v = h2_msg_data(&m, (size_t)r->data[i])) != H2_MSG_OK)
			return v;
	}
	return h2_msg_data_end(&m);
}

START_TEST(test_table)
{
	enum h2_msg_kind kind = H2_MSG_K_FIELD, last;
	size_t i, n = 0;

	for (i = 0; i < TS_NITEMS(rows); i++) {
		const struct row *r = &rows[i];
		enum h2_msg_verdict v = run(r, &kind);

		ck_assert_msg(v == r->want, "%s: verdict %d (%s), want %d (%s)",
		    r->what, v, h2_msg_reason(v), r->want,
		    h2_msg_reason(r->want));
		if (v == H2_MSG_OK) {
			last = kind;
			ck_assert_msg(last == r->kind, "%s: kind %d, want %d",
			    r->what, last, r->kind);
		}
		n++;
	}
	/* A lost row fails. */
	ck_assert_uint_eq(n, 64);
}
END_TEST

/* A trailer section's fields (RFC 9113 8.1, 8.2), one verdict each. */
START_TEST(test_trailers)
{
	static const struct {
		const char *n, *v;
		enum h2_msg_verdict want;
	} t[] = {
		{ "x-checksum", "abc", H2_MSG_OK },
		{ "grpc-status", "0", H2_MSG_OK },
		{ "x-empty", "", H2_MSG_OK },
		{ ":path", "/x", H2_MSG_TRAILER_PSEUDO },
		{ ":status", "200", H2_MSG_TRAILER_PSEUDO },
		{ "", "x", H2_MSG_NAME_EMPTY },
		{ "X-Checksum", "abc", H2_MSG_NAME_UPPER },
		{ "x checksum", "abc", H2_MSG_NAME_CHAR },
		{ "x-a", "a\r\nb", H2_MSG_VALUE_CRLFNUL },
		{ "x-a", "a\x01", H2_MSG_VALUE_CTL },
		{ "x-a", " a", H2_MSG_VALUE_WS },
		{ "x-a", "a\t", H2_MSG_VALUE_WS },
		{ "connection", "close", H2_MSG_CONNECTION },
		{ "transfer-encoding", "chunked", H2_MSG_CONNECTION },
		{ "upgrade", "h2c", H2_MSG_CONNECTION },
		{ "te", "trailers", H2_MSG_TE },
	};
	size_t i, n = 0;

	for (i = 0; i < TS_NITEMS(t); i++) {
		enum h2_msg_verdict v = h2_msg_trailer_field(
		    (const uint8_t *)t[i].n, strlen(t[i].n),
		    (const uint8_t *)t[i].v, strlen(t[i].v));

		ck_assert_msg(v == t[i].want, "%s: %s: verdict %d (%s), "
		    "want %d", t[i].n, t[i].v, v, h2_msg_reason(v),
		    t[i].want);
		n++;
	}
	ck_assert_uint_eq(n, 16);
	ck_assert_str_eq(h2_msg_class(H2_MSG_TRAILER_PSEUDO), "trailers");
	ck_assert_str_eq(h2_msg_class(H2_MSG_TRAILER_NO_END), "trailers");
}
END_TEST

/* Every verdict has its reason, class and status. */
START_TEST(test_texts)
{
	int v;

	for (v = 1; v < H2_MSG_NVERDICTS; v++) {
		ck_assert_ptr_nonnull(h2_msg_reason(v));
		ck_assert_str_ne(h2_msg_reason(v), "?");
		ck_assert_str_ne(h2_msg_class(v), "ok");
		ck_assert_int_eq(h2_msg_status(v), v == H2_MSG_CONNECT ||
		    v == H2_MSG_METHOD_NS ? 501 : 400);
	}
}
END_TEST

static Suite *
h2_msg_suite(void)
{
	Suite *s = suite_create("h2_msg");
	TCase *tc = tcase_create("rules");

	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_texts);
	tcase_add_test(tc, test_trailers);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(h2_msg_suite)
