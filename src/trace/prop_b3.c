/*
 * prop_b3.c -- B3 propagation ("B3 single-header format" and "Multiple
 * Headers" of openzipkin/b3-propagation).
 *
 * Ids are strict: 16 or 32 lower-case hex digits for the trace id, 16 for
 * the span id, neither all zero (PROPAGATION.md 5.1, recommendation in
 * 14).  Sampling: "1"/"true" keep (1), "0"/"false" drop (0), debug ("d",
 * X-B3-Flags: 1) user keep (2), as dd-trace-js does [js-tm _getPriority].
 */
#include <string.h>

#include "ids.h"
#include "prop_b3.h"
#include "prop_codec.h"
#include "propagation.h"

/* Sampling state: 1 / 0 / 2 (debug), or -1 if not understood. */
static int
b3_sampling(const char *s, size_t len, bool allow_debug)
{
	if (len == 1 && s[0] == '1')
		return 1;
	if (len == 1 && s[0] == '0')
		return 0;
	if (allow_debug && len == 1 && s[0] == 'd')
		return 2;
	if (len == 4 && memcmp(s, "true", 4) == 0)
		return 1;
	if (len == 5 && memcmp(s, "false", 5) == 0)
		return 0;
	return -1;
}

/* Parse trace id and span id; false if invalid or zero. */
static bool
b3_ids(const char *tid, size_t tlen, const char *sid, size_t slen,
    struct trace_context *c)
{
	if (ids_parse_hex128(tid, tlen, &c->trace_id) != 0 ||
	    (c->trace_id.high == 0 && c->trace_id.low == 0))
		return false;
	if (slen != 16 || ids_parse_hex64(sid, 16, &c->parent_id) != 0 ||
	    c->parent_id == 0)
		return false;
	return true;
}

/* Extract the single "b3" header (PROPAGATION.md 5.2). */
enum prop_result
prop_b3_extract_single(const struct trace_header *h, size_t n,
    struct trace_context *c)
{
	const char *v, *d1, *d2, *d3, *end;
	size_t len;
	uint64_t parent;
	int st;

	trace_context_clear(c);
	if ((v = trace_header_value(h, n, "b3", &len)) == NULL)
		return PROP_ABSENT;
	end = v + len;
	if ((d1 = memchr(v, '-', len)) == NULL) {
		/* Only a sampling state: a decision without ids. */
		if ((st = b3_sampling(v, len, true)) < 0)
			return PROP_INVALID;
		c->has_priority = true;
		c->priority = st;
		return PROP_DECISION_ONLY;
	}
	if ((d2 = memchr(d1 + 1, '-', (size_t)(end - d1 - 1))) == NULL)
		d2 = end;
	if (!b3_ids(v, (size_t)(d1 - v), d1 + 1, (size_t)(d2 - d1 - 1), c))
		goto bad;
	if (d2 == end)
		return PROP_OK;
	if ((d3 = memchr(d2 + 1, '-', (size_t)(end - d2 - 1))) == NULL)
		d3 = end;
	if ((st = b3_sampling(d2 + 1, (size_t)(d3 - d2 - 1), true)) < 0)
		goto bad;
	c->has_priority = true;
	c->priority = st;
	if (d3 != end && ((size_t)(end - d3 - 1) != 16 ||
	    ids_parse_hex64(d3 + 1, 16, &parent) != 0))
		goto bad;
	return PROP_OK;
bad:
	trace_context_clear(c);
	return PROP_INVALID;
}

/* Extract the X-B3-* headers (PROPAGATION.md 5.1). */
enum prop_result
prop_b3_extract_multi(const struct trace_header *h, size_t n,
    struct trace_context *c)
{
	const char *tid, *sid, *sampled, *flags;
	size_t tlen = 0, slen = 0, samp_len = 0, flen = 0;
	int st = -1;

	trace_context_clear(c);
	tid = trace_header_value(h, n, "x-b3-traceid", &tlen);
	sid = trace_header_value(h, n, "x-b3-spanid", &slen);
	sampled = trace_header_value(h, n, "x-b3-sampled", &samp_len);
	flags = trace_header_value(h, n, "x-b3-flags", &flen);
	if (flags != NULL && flen == 1 && flags[0] == '1')
		st = 2;		/* debug implies accept [b3] */
	else if (sampled != NULL)
		st = b3_sampling(sampled, samp_len, false);
	if (tid == NULL && sid == NULL) {
		if (st < 0)
			return PROP_ABSENT;
		c->has_priority = true;
		c->priority = st;
		return PROP_DECISION_ONLY;
	}
	if (tid == NULL || sid == NULL ||
	    !b3_ids(tid, tlen, sid, slen, c)) {
		trace_context_clear(c);
		return PROP_INVALID;
	}
	if (st >= 0) {
		c->has_priority = true;
		c->priority = st;
	}
	return PROP_OK;
}

/* Trace id as 32 hex when the high half is set, else 16; returns len. */
static size_t
b3_format_trace(const struct span *s, char *out)
{
	if (s->trace_id.high != 0) {
		ids_format_hex128(s->trace_id, out);
		return 32;
	}
	ids_format_hex64(s->trace_id.low, out);
	return 16;
}

/* Inject "b3: {trace}-{span16}-{1|0}" [js-tm _injectB3SingleHeader]. */
int
prop_b3_inject_single(const struct span *s, trace_emit_fn emit, void *arg)
{
	char buf[64];
	size_t len;

	len = b3_format_trace(s, buf);
	buf[len++] = '-';
	ids_format_hex64(s->span_id, buf + len);
	len += 16;
	buf[len++] = '-';
	buf[len++] = (s->has_priority && s->priority > 0) ? '1' : '0';
	buf[len] = '\0';
	return emit(arg, "b3", buf, len) != 0 ? -1 : 0;
}

/* Inject x-b3-traceid, x-b3-spanid (16 hex), x-b3-sampled. */
int
prop_b3_inject_multi(const struct span *s, trace_emit_fn emit, void *arg)
{
	char buf[40];
	size_t len;

	len = b3_format_trace(s, buf);
	if (emit(arg, "x-b3-traceid", buf, len) != 0)
		return -1;
	ids_format_hex64(s->span_id, buf);
	if (emit(arg, "x-b3-spanid", buf, 16) != 0)
		return -1;
	if (emit(arg, "x-b3-sampled",
	    (s->has_priority && s->priority > 0) ? "1" : "0", 1) != 0)
		return -1;
	return 0;
}

/* The codecs (prop_codec.h): the single b3 header, and X-B3-*. */
static enum prop_result
prop_b3_codec_extract(const struct propagation_conf *pc,
    const struct trace_header *h, size_t n, struct trace_arena *a,
    struct trace_context *c)
{
	(void)pc;
	(void)a;
	return prop_b3_extract_single(h, n, c);
}

static int
prop_b3_codec_inject(const struct propagation_conf *pc, struct span *sp,
    trace_emit_fn emit, void *arg)
{
	(void)pc;
	return prop_b3_inject_single(sp, emit, arg);
}

static enum prop_result
prop_b3multi_codec_extract(const struct propagation_conf *pc,
    const struct trace_header *h, size_t n, struct trace_arena *a,
    struct trace_context *c)
{
	(void)pc;
	(void)a;
	return prop_b3_extract_multi(h, n, c);
}

static int
prop_b3multi_codec_inject(const struct propagation_conf *pc,
    struct span *sp, trace_emit_fn emit, void *arg)
{
	(void)pc;
	return prop_b3_inject_multi(sp, emit, arg);
}

const struct prop_codec prop_b3_codec = {
	CONFIG_STYLE_B3, prop_b3_codec_extract, prop_b3_codec_inject,
};

const struct prop_codec prop_b3multi_codec = {
	CONFIG_STYLE_B3MULTI, prop_b3multi_codec_extract,
	prop_b3multi_codec_inject,
};
