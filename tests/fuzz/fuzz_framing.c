/*
 * fuzz_framing.c -- libFuzzer harness for the framing guard.
 *
 * The input is a raw client stream.  It is fed three ways: whole, one
 * byte at a time, and cut at points derived from the input itself; the
 * three verdicts (accepted or status + reason, heads completed, idleness)
 * must agree, which is the property server.c relies on since a socket
 * may deliver the stream in any pieces.  Any disagreement aborts.
 * Then the stream (or, when refused, the requests before the refused
 * one) is walked as conn.c walks it: each head the guard counted must be
 * indexed by framing_index() with NUL-free, CR/LF-free fields of the
 * stated lengths, bodies taken by Content-Length or framing_dechunk(),
 * and an accepted idle stream must be used up exactly.
 * Seeds: the bytes column of tests/data/framing/cases.txt (decoded);
 * dictionary: tests/fuzz/framing.dict.
 *
 * Build (clang): clang -g -O1 -fsanitize=fuzzer,address,undefined
 *   -Isrc -Isrc/core -Isrc/proto tests/fuzz/fuzz_framing.c src/front/framing.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "front/framing.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const struct framing_limits fuzz_limits = {
	.max_header_bytes = 1024,
	.max_body_bytes = 4096,
};

/* Feed data in pieces of at most step bytes (step 0: sizes from the
 * data).  Returns the last framing_feed result. */
static int
feed(struct framing_state *f, const uint8_t *data, size_t size,
    size_t step)
{
	size_t off = 0;
	int rc = 0;

	framing_init(f, &fuzz_limits);
	while (off < size && rc == 0) {
		size_t n = step != 0 ? step : 1 + (size_t)(data[off] % 17);

		if (n > size - off)
			n = size - off;
		rc = framing_feed(f, (const char *)data + off, n);
		off += n;
	}
	return rc;
}

/* Same verdict, same counts. */
static void
same(const struct framing_state *a, int ra, const struct framing_state *b,
    int rb)
{
	if (ra != rb || a->requests != b->requests ||
	    framing_idle(a) != framing_idle(b))
		abort();
	if (ra != 0 && (a->status != b->status ||
	    strcmp(a->reason, b->reason) != 0))
		abort();
	if (ra == 0 && a->phase != b->phase)
		abort();
}

static void
walk_data(void *arg, const char *p, size_t n)
{
	(void)p;
	*(size_t *)arg += n;
}

/* conn.c's walk over the heads the guard counted in data[0..limit). */
static void
walk(const struct framing_state *f, int rc, const uint8_t *data,
    size_t size)
{
	static struct http_field fields[512];
	size_t off = 0, nheads = 0, limit = size, i;
	char *buf;

	if (rc != 0)
		limit = f->req_start < size ? (size_t)f->req_start : size;
	if ((buf = malloc(size + 1)) == NULL)
		return;
	memcpy(buf, data, size);
	for (;;) {
		struct framing_head h;
		uint64_t cl = 0;
		bool chunked = false;

		/* Empty lines before a request belong to no request. */
		while (off < limit && (buf[off] == '\r' || buf[off] == '\n'))
			off++;
		if (nheads == f->requests || off >= limit)
			break;
		if (framing_index(buf + off, limit - off, &h, fields,
		    sizeof fields / sizeof fields[0]) != 0)
			abort();
		nheads++;
		for (i = 0; i < h.n_fields; i++) {
			const struct http_field *ff = &fields[i];

			if (strlen(ff->name) != ff->name_len ||
			    strlen(ff->value) != ff->value_len ||
			    strpbrk(ff->value, "\r\n") != NULL ||
			    ff->name_len == 0)
				abort();
			if (ff->name_len == 14 &&
			    strcasecmp(ff->name, "content-length") == 0)
				cl = strtoull(ff->value, NULL, 10);
			if (ff->name_len == 17 &&
			    strcasecmp(ff->name, "transfer-encoding") == 0)
				chunked = true;
		}
		off += h.len;
		if (chunked) {
			struct framing_dechunk d;
			size_t got = 0;
			bool done = false;

			framing_dechunk_init(&d);
			off += framing_dechunk(&d, buf + off, limit - off,
			    walk_data, &got, &done);
			if (!done)
				break;
		} else {
			if (cl > limit - off)
				break;
			off += (size_t)cl;
		}
	}
	if (rc == 0 && framing_idle(f)) {
		if (nheads != f->requests)
			abort();
		for (; off < size; off++)
			if (data[off] != '\r' && data[off] != '\n')
				abort();
	}
	free(buf);
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct framing_state whole, bytes, cut;
	int rw, rb, rc;

	rw = feed(&whole, data, size, size == 0 ? 1 : size);
	rb = feed(&bytes, data, size, 1);
	rc = feed(&cut, data, size, 0);
	same(&whole, rw, &bytes, rb);
	same(&whole, rw, &cut, rc);
	/* Captures are always NUL-terminated within their buffers. */
	if (memchr(whole.path, '\0', sizeof whole.path) == NULL ||
	    memchr(whole.host, '\0', sizeof whole.host) == NULL ||
	    memchr(whole.origin, '\0', sizeof whole.origin) == NULL ||
	    memchr(whole.method, '\0', sizeof whole.method) == NULL)
		abort();
	if (rw != 0 && (whole.status < 400 || whole.status > 599 ||
	    whole.reason == NULL))
		abort();
	walk(&whole, rw, data, size);
	return 0;
}
