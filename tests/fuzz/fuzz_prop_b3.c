/*
 * fuzz_prop_b3.c -- libFuzzer harness for the B3 codec, single header
 * and multi-header (src/trace/prop_b3.c, openzipkin/b3-propagation;
 * PROPAGATION.md section 5).
 *
 * Input: see fuzz_prop.h (flag byte + header lines); bit 0 of the flag
 * picks the single-header extractor, else the X-B3-* one.  When
 * extraction yields a context, a span carrying it is injected in both
 * forms; every emitted value must be printable ASCII, and extracting each
 * form again must give the same trace id, the span id as parent and the
 * same sampling decision (sampled or not).  Seeds: the B3 cases of
 * tests/data/prop/propagation.json plus a few b3 values
 * (tests/fuzz/make-seeds.sh); dictionary fuzz_prop_headers.dict.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace/prop_b3.h"
#include "trace/span.h"
#include "fuzz_prop.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Re-extract one injected form and compare with the span. */
static void
fuzz_b3_back(const struct span *sp, const struct fuzz_capture *cap,
    bool single)
{
	struct trace_context c;

	trace_context_clear(&c);
	if ((single ? prop_b3_extract_single(cap->h, cap->n, &c) :
	    prop_b3_extract_multi(cap->h, cap->n, &c)) != PROP_OK)
		abort();
	if (c.trace_id.high != sp->trace_id.high ||
	    c.trace_id.low != sp->trace_id.low || c.parent_id != sp->span_id)
		abort();
	if (sp->has_priority && (!c.has_priority ||
	    (c.priority > 0) != (sp->priority > 0)))
		abort();
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct span sp;
	static struct fuzz_capture cap;
	struct trace_header h[FUZZ_MAX_HEADERS];
	struct trace_context c1;
	enum prop_result r;
	bool single;
	size_t n;

	if (size < 1)
		return 0;
	single = (data[0] & 1) != 0;
	n = fuzz_split(data + 1, size - 1, h);
	trace_context_clear(&c1);
	r = single ? prop_b3_extract_single(h, n, &c1) :
	    prop_b3_extract_multi(h, n, &c1);
	if (r == PROP_DECISION_ONLY && !c1.has_priority)
		abort();
	if (r != PROP_OK)
		return 0;

	span_init(&sp);
	sp.trace_id = c1.trace_id;
	sp.span_id = c1.parent_id != 0 ? c1.parent_id : 1;
	sp.has_priority = c1.has_priority;
	sp.priority = c1.priority;
	memset(&cap, 0, sizeof cap);
	if (prop_b3_inject_single(&sp, fuzz_capture_emit, &cap) != 0)
		abort();
	fuzz_b3_back(&sp, &cap, true);
	memset(&cap, 0, sizeof cap);
	if (prop_b3_inject_multi(&sp, fuzz_capture_emit, &cap) != 0)
		abort();
	fuzz_b3_back(&sp, &cap, false);
	span_finish(&sp, 1);
	return 0;
}
