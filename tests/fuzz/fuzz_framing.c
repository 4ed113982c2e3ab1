/*
 * fuzz_framing.c -- libFuzzer harness for the framing guard.
 *
 * The input is a raw client stream.  It is fed three ways: whole, one
 * byte at a time, and cut at points derived from the input itself; the
 * three verdicts (accepted or status + reason, heads completed, idleness)
 * must agree, which is the property server.c relies on since a socket
 * may deliver the stream in any pieces.  Any disagreement aborts.
 * Seeds: the bytes column of tests/data/framing/cases.txt (decoded);
 * dictionary: tests/fuzz/framing.dict.
 *
 * Build (clang): clang -g -O1 -fsanitize=fuzzer,address,undefined
 *   -Isrc -Isrc/core tests/fuzz/fuzz_framing.c src/http/framing.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/framing.h"

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
	return 0;
}
