/*
 * prop_codec.h -- one propagation style's codec, as propagation.c runs it
 * (PROPAGATION.md 7 and 8).
 *
 * Each codec file exports its struct prop_codec; prop_codecs.c lists them
 * by style, and propagation.c dispatches through that list only.  Adding
 * a style is its row of core's styles_table (names, headers: what
 * configuration, CORS presets, metrics and diagnose read) and its codec
 * here (the file and its line in prop_codecs.c).
 */
#ifndef TS_PROP_CODEC_H
#define TS_PROP_CODEC_H

#include <stddef.h>

#include "context.h"
#include "span.h"
#include "styles.h"

struct propagation_conf;

struct prop_codec {
	enum config_style style;
	/*
	 * Extract this style's trace context from the request header lines;
	 * NULL for a style that carries none (baggage: propagation.c reads
	 * it apart, PROPAGATION.md 7.2 step 8).
	 */
	enum prop_result (*extract)(const struct propagation_conf *,
	    const struct trace_header *, size_t n, struct trace_arena *,
	    struct trace_context *);
	/* Write the span's context in this style; a diagnostic goes on the
	 * span as a tag.  0, or -1 when emit failed. */
	int (*inject)(const struct propagation_conf *, struct span *,
	    trace_emit_fn, void *arg);
};

/* The codec of style s, or NULL (none). */
const struct prop_codec *prop_codec_get(enum config_style s);

extern const struct prop_codec prop_datadog_codec;
extern const struct prop_codec prop_w3c_codec;
extern const struct prop_codec prop_b3_codec;
extern const struct prop_codec prop_b3multi_codec;
extern const struct prop_codec prop_baggage_codec;

#endif /* TS_PROP_CODEC_H */
