/*
 * fuzz_upstream_parser.c -- libFuzzer harness for the strict upstream
 * response parser (src/proto/http_response.c, RFC 9112).
 *
 * Input: one flag byte, then the raw response stream.  Bit 0 of the flag
 * says the request was HEAD; bits 1-7 pick how the stream is cut (0: one
 * byte at a time, else pieces of that many bytes).  The stream is parsed
 * twice, whole and cut, and the two runs must agree on everything the
 * proxy acts on: the verdict (done, error with the same static errstr,
 * incomplete at EOF), the final head (status, body kind, length,
 * keep-alive) and the de-chunked body bytes.  Whatever arrives, a head
 * that was accepted must be sane: status 200..599 (1xx are skipped),
 * header names are RFC 9110 tokens and values hold no CR, LF or NUL, and
 * a Content-Length body that completed has exactly that many bytes.
 * Seeds: the input column of tests/data/upstream/responses.tsv
 * (tests/fuzz/make-seeds.sh); dictionary upstream_parser.dict.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "upstream/upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* What one run saw. */
struct run {
	enum upstream_parse last;	/* last feed result (DONE/ERROR/MORE) */
	int heads;			/* UPSTREAM_PARSE_HEAD returns */
	int eof_rc;			/* upstream_parser_eof, 1 if not called */
	const char *errstr;
	int status;
	enum upstream_body body_kind;
	uint64_t content_length;
	bool keepalive;
	size_t left;			/* bytes left unconsumed in "in" */
	struct evbuffer *body;
};

/* RFC 9110 5.6.2 tchar. */
static bool
fuzz_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The accepted head must be sane. */
static void
fuzz_check_head(const struct upstream_response *r)
{
	const struct evkeyval *kv;
	const char *p;

	if (r == NULL || r->status < 200 || r->status > 599 ||
	    r->reason == NULL || r->headers == NULL)
		abort();
	if (r->body != UPSTREAM_BODY_NONE && r->body != UPSTREAM_BODY_LENGTH &&
	    r->body != UPSTREAM_BODY_CHUNKED && r->body != UPSTREAM_BODY_CLOSE)
		abort();
	for (p = r->reason; *p != '\0'; p++)
		if (*p == '\r' || *p == '\n')
			abort();
	TAILQ_FOREACH(kv, r->headers, next) {
		if (kv->key == NULL || kv->value == NULL || kv->key[0] == '\0')
			abort();
		for (p = kv->key; *p != '\0'; p++)
			if (!fuzz_tchar((unsigned char)*p))
				abort();
		for (p = kv->value; *p != '\0'; p++)
			if (*p == '\r' || *p == '\n')
				abort();
	}
}

/* Parse data cut in pieces of step bytes (step >= 1). */
static void
fuzz_run(const uint8_t *data, size_t size, size_t step, bool is_head,
    struct run *r)
{
	struct upstream_parser *p;
	struct evbuffer *in;
	const struct upstream_response *resp;
	size_t off = 0, n;
	enum upstream_parse rc = UPSTREAM_PARSE_MORE;

	memset(r, 0, sizeof *r);
	r->eof_rc = 1;
	if ((p = upstream_parser_new(is_head)) == NULL ||
	    (in = evbuffer_new()) == NULL ||
	    (r->body = evbuffer_new()) == NULL)
		abort();
	while (rc != UPSTREAM_PARSE_DONE && rc != UPSTREAM_PARSE_ERROR) {
		if (off < size) {
			n = size - off < step ? size - off : step;
			evbuffer_add(in, data + off, n);
			off += n;
		}
		for (;;) {
			rc = upstream_parser_feed(p, in, r->body, &r->errstr);
			if (rc != UPSTREAM_PARSE_HEAD)
				break;
			if (++r->heads > 1)
				abort();	/* HEAD is returned once */
			fuzz_check_head(upstream_parser_response(p));
		}
		if (off == size)
			break;
	}
	r->last = rc;
	if (rc == UPSTREAM_PARSE_ERROR && r->errstr == NULL)
		abort();
	if (rc == UPSTREAM_PARSE_MORE)
		r->eof_rc = upstream_parser_eof(p, &r->errstr);
	if (rc == UPSTREAM_PARSE_DONE && r->heads != 1)
		abort();
	if (r->heads == 1) {
		resp = upstream_parser_response(p);
		fuzz_check_head(resp);
		r->status = resp->status;
		r->body_kind = resp->body;
		r->content_length = resp->content_length;
		r->keepalive = upstream_parser_keepalive(p);
		if (rc == UPSTREAM_PARSE_DONE &&
		    resp->body == UPSTREAM_BODY_LENGTH &&
		    evbuffer_get_length(r->body) != resp->content_length)
			abort();
		if (resp->body == UPSTREAM_BODY_NONE &&
		    evbuffer_get_length(r->body) != 0)
			abort();
	}
	r->left = evbuffer_get_length(in) + (size - off);
	evbuffer_free(in);
	upstream_parser_free(p);
}

/* Both runs must have come to the same conclusion. */
static void
fuzz_same(const struct run *a, const struct run *b)
{
	size_t n;

	if (a->last != b->last || a->heads != b->heads ||
	    a->eof_rc != b->eof_rc)
		abort();
	if ((a->errstr == NULL) != (b->errstr == NULL) ||
	    (a->errstr != NULL && strcmp(a->errstr, b->errstr) != 0))
		abort();
	if (a->heads == 1 && (a->status != b->status ||
	    a->body_kind != b->body_kind ||
	    a->content_length != b->content_length ||
	    a->keepalive != b->keepalive))
		abort();
	/* A finished response leaves the same pipelined remainder. */
	if (a->last == UPSTREAM_PARSE_DONE && a->left != b->left)
		abort();
	n = evbuffer_get_length(a->body);
	if (a->last != UPSTREAM_PARSE_ERROR &&
	    (n != evbuffer_get_length(b->body) || (n > 0 &&
	    memcmp(evbuffer_pullup(a->body, -1), evbuffer_pullup(b->body, -1),
	    n) != 0)))
		abort();
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, cut;
	size_t step;
	bool is_head;

	if (size < 1)
		return 0;
	is_head = (data[0] & 1) != 0;
	step = data[0] >> 1;
	if (step == 0)
		step = 1;
	data++;
	size--;
	fuzz_run(data, size, size == 0 ? 1 : size, is_head, &whole);
	fuzz_run(data, size, step, is_head, &cut);
	fuzz_same(&whole, &cut);
	evbuffer_free(whole.body);
	evbuffer_free(cut.body);
	return 0;
}
