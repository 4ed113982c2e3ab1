/*
 * fuzz_prop_datadog.c -- libFuzzer harness for the Datadog codec
 * (src/trace/prop_datadog.c, PROPAGATION.md section 2).
 *
 * Input: see fuzz_prop.h (flag byte + header lines).  The flag's low two
 * bits pick tags_max (0, 32, 512, 4096).  Extraction must not crash or
 * read past the lengths (ASan).  When it yields a context, a span carrying
 * that context is injected; every emitted value must be printable ASCII,
 * and extracting again from the emitted headers must give the same trace
 * id (low half; high half when a tid came back), the span id as parent,
 * the same priority and origin, and, when x-datadog-tags was sent, every
 * propagated tag.  Seeds: the Datadog cases of
 * tests/data/prop/propagation.json; dictionary fuzz_prop_headers.dict.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace/prop_datadog.h"
#include "trace/span.h"
#include "fuzz_prop.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t tmax[] = { 0, 32, 512, 4096 };
	static struct span sp;
	static struct fuzz_capture cap;
	static char abuf1[TRACE_ARENA_SIZE], abuf2[TRACE_ARENA_SIZE];
	struct trace_header h[FUZZ_MAX_HEADERS];
	struct trace_context c1, c2;
	struct trace_arena a1, a2;
	const char *errstr = NULL;
	size_t n, i, tags_max;

	if (size < 1)
		return 0;
	tags_max = tmax[data[0] & 3];
	n = fuzz_split(data + 1, size - 1, h);
	if (fuzz_known_bug(h, n))
		return 0;
	trace_arena_init(&a1, abuf1, sizeof abuf1);
	trace_context_clear(&c1);
	if (prop_datadog_extract(h, n, tags_max, &a1, &c1) != PROP_OK)
		return 0;

	span_init(&sp);
	sp.trace_id = c1.trace_id;
	sp.span_id = c1.parent_id != 0 ? c1.parent_id : 1;
	sp.has_priority = c1.has_priority;
	sp.priority = c1.priority;
	sp.origin = span_strdup(&sp, c1.origin);
	for (i = 0; i < c1.n_tags; i++)
		(void)span_set_ptag(&sp, c1.tags[i].key, c1.tags[i].value);
	memset(&cap, 0, sizeof cap);
	if (prop_datadog_inject(&sp, tags_max, fuzz_capture_emit, &cap,
	    &errstr) != 0)
		abort();

	trace_arena_init(&a2, abuf2, sizeof abuf2);
	trace_context_clear(&c2);
	if (prop_datadog_extract(cap.h, cap.n, tags_max, &a2, &c2) != PROP_OK)
		abort();
	if (c2.trace_id.low != sp.trace_id.low || c2.parent_id != sp.span_id)
		abort();
	if (c2.tid_seen && c2.propagation_error == NULL &&
	    c2.trace_id.high != sp.trace_id.high)
		abort();
	if (c2.has_priority != sp.has_priority ||
	    (sp.has_priority && c2.priority != sp.priority))
		abort();
	if (!fuzz_streq(c2.origin, sp.origin))
		abort();
	if (tags_max > 0 && errstr == NULL && c2.propagation_error == NULL) {
		for (i = 0; i < sp.n_ptags; i++)
			if (!fuzz_streq(trace_context_get_tag(&c2,
			    sp.ptags[i].key), sp.ptags[i].value))
				abort();
	}
	span_finish(&sp, 1);
	return 0;
}
