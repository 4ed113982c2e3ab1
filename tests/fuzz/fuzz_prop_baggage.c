/*
 * fuzz_prop_baggage.c -- libFuzzer harness for the W3C baggage codec
 * (src/trace/prop_baggage.c, W3C Baggage section 3; PROPAGATION.md
 * section 6).
 *
 * Input: see fuzz_prop.h (flag byte + header lines).  The flag picks the
 * limits: max_items 1..64 from its low six bits, max_bytes 8192 when bit
 * 7 is set, else 16..1024.  Extraction is all or nothing.  When it yields
 * items they are formatted and injected with the same limits; the value
 * must be printable ASCII and equal to what prop_baggage_format returned,
 * and extracting it again (without limits) must give a prefix of the
 * original items, key and value byte for byte (percent-encoding round
 * trip).  Seeds: the baggage cases of tests/data/prop/propagation.json
 * plus a few values (tests/fuzz/make-seeds.sh); dictionary
 * fuzz_prop_headers.dict.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace/prop_baggage.h"
#include "fuzz_prop.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_capture cap;
	static char abuf1[TRACE_ARENA_SIZE], abuf2[TRACE_ARENA_SIZE];
	static char fbuf[FUZZ_CAPTURE_SIZE];
	struct trace_header h[FUZZ_MAX_HEADERS];
	struct trace_kv it1[TRACE_MAX_BAGGAGE], it2[TRACE_MAX_BAGGAGE];
	struct trace_arena a1, a2;
	size_t n, n1 = 0, n2 = 0, i, max_items, max_bytes, len;

	if (size < 1)
		return 0;
	max_items = 1 + (data[0] & 0x3f);
	max_bytes = (data[0] & 0x80) ? 8192 : 16 + (size_t)(data[0] & 0x3f) * 16;
	n = fuzz_split(data + 1, size - 1, h);
	if (fuzz_known_bug(h, n))
		return 0;
	trace_arena_init(&a1, abuf1, sizeof abuf1);
	if (prop_baggage_extract(h, n, max_items, max_bytes, &a1, it1,
	    TRACE_MAX_BAGGAGE, &n1) != PROP_OK)
		return 0;
	if (n1 > max_items)
		abort();

	len = prop_baggage_format(it1, n1, max_items, max_bytes, fbuf,
	    sizeof fbuf);
	if (len >= sizeof fbuf || len > max_bytes || strlen(fbuf) != len)
		abort();
	memset(&cap, 0, sizeof cap);
	if (prop_baggage_inject(it1, n1, max_items, max_bytes,
	    fuzz_capture_emit, &cap) != 0)
		abort();
	if (len == 0) {
		if (cap.n != 0)
			abort();
		return 0;
	}
	if (cap.n != 1 || cap.h[0].value_len != len ||
	    memcmp(cap.h[0].value, fbuf, len) != 0)
		abort();

	trace_arena_init(&a2, abuf2, sizeof abuf2);
	if (prop_baggage_extract(cap.h, cap.n, TRACE_MAX_BAGGAGE, 8192, &a2,
	    it2, TRACE_MAX_BAGGAGE, &n2) != PROP_OK)
		abort();
	if (n2 == 0 || n2 > n1)
		abort();
	for (i = 0; i < n2; i++)
		if (!fuzz_streq(it1[i].key, it2[i].key) ||
		    !fuzz_streq(it1[i].value, it2[i].value))
			abort();
	return 0;
}
