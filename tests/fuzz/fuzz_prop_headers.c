/*
 * fuzz_prop_headers.c -- libFuzzer harness for trace-context extraction
 * and injection.
 *
 * The input is a list of "name: value" lines (LF-separated); every line
 * becomes one struct trace_header (repeats kept).  Extraction runs with
 * every style and each behaviour (chosen by the first byte), then the
 * gateway span is started and injected in every style.  The code must
 * never crash or read past the given lengths (ASan), and every emitted
 * header value must be printable ASCII, never containing CR, LF or NUL.
 * Seeds: the request headers of tests/data/prop/propagation.json and the
 * inputs of tests/data/prop/w3c_traceparent.tsv; dictionary
 * fuzz_prop_headers.dict.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace/propagation.h"
#include "fuzz_prop.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Every outgoing value must be safe to put on the wire. */
static int
fuzz_emit(void *arg, const char *name, const char *value, size_t len)
{
	size_t i;

	(void)arg;
	if (!propagation_is_known_header(name, strlen(name)))
		abort();
	/* RFC 9110 field-value: VCHAR, SP and obs-text; no controls. */
	for (i = 0; i < len; i++)
		if ((unsigned char)value[i] < 0x20 ||
		    (unsigned char)value[i] == 0x7f)
			abort();
	if (value[len] != '\0')
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum config_style all[] = { CONFIG_STYLE_DATADOG,
		CONFIG_STYLE_TRACECONTEXT, CONFIG_STYLE_B3,
		CONFIG_STYLE_B3MULTI, CONFIG_STYLE_BAGGAGE };
	static struct trace_extract ex;
	static struct span sp;
	struct trace_header h[FUZZ_MAX_HEADERS];
	struct propagation_conf pc;
	struct ids_rng rng;
	const char *p, *end, *nl, *colon;
	size_t n = 0;

	if (size < 1)
		return 0;
	propagation_conf_defaults(&pc);
	memcpy(pc.extract, all, sizeof all);
	memcpy(pc.inject, all, sizeof all);
	pc.n_extract = pc.n_inject = TS_NITEMS(all);
	pc.behavior = (enum config_behavior)(data[0] % 3);
	pc.extract_first = (data[0] & 0x4) != 0;
	pc.trace_id_128bit = (data[0] & 0x8) != 0;
	p = (const char *)data + 1;
	end = (const char *)data + size;
	while (p < end && n < FUZZ_MAX_HEADERS) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if ((colon = memchr(p, ':', (size_t)(nl - p))) != NULL) {
			h[n].name = p;
			h[n].name_len = (size_t)(colon - p);
			h[n].value = colon + 1;
			h[n].value_len = (size_t)(nl - colon - 1);
			n++;
		}
		p = nl + 1;
	}
	if (fuzz_known_bug(h, n))
		return 0;
	ids_rng_seed(&rng, 1);
	(void)propagation_extract(&pc, h, n, &ex, NULL);
	span_init(&sp);
	propagation_start_span(&pc, &ex, NULL, &rng, 1700000000000000000ULL, 1,
	    &sp);
	(void)propagation_inject(&pc, &sp, fuzz_emit, NULL);
	span_finish(&sp, 1700000000000001000ULL);
	return 0;
}
