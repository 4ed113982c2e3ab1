/*
 * fuzz_prop_w3c.c -- libFuzzer harness for the W3C trace-context codec
 * (src/trace/prop_w3c.c: traceparent and tracestate, W3C Trace Context
 * Level 2 sections 3.2 and 3.3; PROPAGATION.md section 3).
 *
 * Input: see fuzz_prop.h (flag byte + header lines).  The value of the
 * first line also goes straight to prop_w3c_parse_traceparent.  When
 * extraction yields a context, a span carrying it is injected; every
 * emitted value must be printable ASCII, and extracting again from the
 * emitted headers must give the same 128-bit trace id, the span id as
 * parent, the same random flag, sampling priority and origin (an origin
 * may be left out only when "o:" no longer fits in the 256-character dd
 * member, W3C trace-context 3.3.1.3.2 and PROPAGATION.md 4.2).  Seeds: the
 * traceparent/tracestate cases of tests/data/prop/propagation.json and
 * tests/data/prop/w3c_traceparent.tsv; dictionary fuzz_prop_headers.dict.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace/prop_w3c.h"
#include "trace/span.h"
#include "fuzz_prop.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The dd member emitted ("dd=s:..;p:..") had no room left for "o:". */
static int
fuzz_origin_did_not_fit(const struct fuzz_capture *cap, const char *origin)
{
	const char *comma;
	size_t i, ddlen;

	for (i = 0; i < cap->n; i++) {
		if (strcmp(cap->h[i].name, "tracestate") != 0)
			continue;
		if (strncmp(cap->h[i].value, "dd=", 3) != 0)
			return 0;
		comma = memchr(cap->h[i].value, ',', cap->h[i].value_len);
		ddlen = comma != NULL ? (size_t)(comma - cap->h[i].value) :
		    cap->h[i].value_len;
		return ddlen + 3 + strlen(origin) > 256;
	}
	return 0;
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct span sp;
	static struct fuzz_capture cap;
	static char abuf1[TRACE_ARENA_SIZE], abuf2[TRACE_ARENA_SIZE];
	struct trace_header h[FUZZ_MAX_HEADERS];
	struct trace_context c1, c2;
	struct trace_arena a1, a2;
	const char *errstr = NULL;
	size_t n, i;

	if (size < 1)
		return 0;
	n = fuzz_split(data + 1, size - 1, h);
	if (n > 0) {
		trace_context_clear(&c1);
		if (prop_w3c_parse_traceparent(h[0].value, h[0].value_len, &c1,
		    &errstr) == PROP_INVALID && errstr == NULL)
			abort();
	}
	trace_arena_init(&a1, abuf1, sizeof abuf1);
	trace_context_clear(&c1);
	if (prop_w3c_extract(h, n, &a1, &c1) != PROP_OK)
		return 0;
	if (fuzz_known_bug_ctx(&c1))
		return 0;

	span_init(&sp);
	sp.trace_id = c1.trace_id;
	sp.span_id = c1.parent_id != 0 ? c1.parent_id : 1;
	sp.has_priority = c1.has_priority;
	sp.priority = c1.priority;
	sp.origin = span_strdup(&sp, c1.origin);
	for (i = 0; i < c1.n_tags; i++)
		(void)span_set_ptag(&sp, c1.tags[i].key, c1.tags[i].value);
	sp.tracestate_others = span_strdup(&sp, c1.tracestate_others);
	sp.dd_unknown = span_strdup(&sp, c1.dd_unknown);
	sp.w3c_random = c1.w3c_random;
	memset(&cap, 0, sizeof cap);
	if (prop_w3c_inject(&sp, fuzz_capture_emit, &cap) != 0)
		abort();

	trace_arena_init(&a2, abuf2, sizeof abuf2);
	trace_context_clear(&c2);
	if (prop_w3c_extract(cap.h, cap.n, &a2, &c2) != PROP_OK)
		abort();
	if (c2.trace_id.high != sp.trace_id.high ||
	    c2.trace_id.low != sp.trace_id.low ||
	    c2.parent_id != sp.span_id || c2.w3c_random != sp.w3c_random)
		abort();
	if (sp.has_priority && (!c2.has_priority ||
	    c2.priority != sp.priority))
		abort();
	if (!fuzz_streq(c2.origin, sp.origin) &&
	    !(c2.origin == NULL && fuzz_origin_did_not_fit(&cap, sp.origin)))
		abort();
	span_finish(&sp, 1);
	return 0;
}
