/*
 * prop_datadog.c -- Datadog propagation headers (PROPAGATION.md 2).
 *
 * Ids are unsigned 64-bit decimals, trimmed of SP/HTAB [cpp-ext]; a bad
 * or zero trace id makes the context unusable; a missing parent id is
 * accepted only with an origin (Synthetics, [cpp-tracer]).  A priority
 * that is not an integer is ignored (the gateway decides, 14).
 * x-datadog-tags keeps only _dd.p.* keys; _dd.p.tid supplies the upper
 * 64 bits of the trace id (2.5).  Diagnostics follow dd-trace-cpp's
 * _dd.propagation_error values.
 */
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "prop_datadog.h"
#include "prop_codec.h"
#include "propagation.h"
#include "util.h"

#define DD_TID_KEY	"_dd.p.tid"

/* The trimmed value of the first header named lname, or NULL. */
/* True when no byte is a control character (RFC 9110 field-value:
 * VCHAR, SP, HTAB and obs-text only; HTAB is refused too). */
static bool
dd_printable(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return false;
	}
	return true;
}

/* Parse a decimal int with optional '-' (priorities); 0 or -1. */
int
prop_datadog_parse_int(const char *s, size_t len, int *out)
{
	bool neg = false;
	long v = 0;
	size_t i = 0;

	if (len > 0 && s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == len || len - i > 9)
		return -1;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = (int)(neg ? -v : v);
	return 0;
}

/* Tag key: printable, no space, ',' or '=' ([cpp-tagprop] eBNF). */
static bool
dd_tag_key_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] <= 0x20 || s[i] > 0x7e || s[i] == ',' || s[i] == '=')
			return false;
	return true;
}

/* Tag value: printable 0x20-0x7e, no ','; '=' allowed. */
static bool
dd_tag_value_ok(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == ',')
			return false;
	return true;
}

/* Record "<what> <value>" as the propagation error. */
static void
dd_set_error_value(struct trace_arena *a, struct trace_context *c,
    const char *what, const char *v, size_t len)
{
	char buf[160];
	int n;

	n = snprintf(buf, sizeof buf, "%s %.*s", what,
	    (int)TS_MIN(len, 128), v);
	if (n > 0)
		c->propagation_error = trace_arena_strndup(a, buf,
		    TS_MIN((size_t)n, sizeof buf - 1));
}

/* Decode x-datadog-tags into c; all or nothing (2.4). */
static void
dd_decode_tags(const char *v, size_t len, size_t max, struct trace_arena *a,
    struct trace_context *c)
{
	struct trace_kv tmp[TRACE_MAX_TAGS];
	const char *p = v, *end = v + len, *comma, *eq, *tk, *tv;
	const char *tid = NULL;
	size_t ntmp = 0, kl, vl, tid_len = 0, i;
	char *key, *val;

	if (max == 0 || len == 0)
		return;
	if (len > max) {
		c->propagation_error = "extract_max_size";
		return;
	}
	while (p < end) {
		if ((comma = memchr(p, ',', (size_t)(end - p))) == NULL)
			comma = end;
		tk = p;
		kl = (size_t)(comma - p);
		trace_trim_ows(&tk, &kl);
		p = comma + 1;
		if (kl == 0 && comma == end && ntmp > 0)
			break;		/* tolerate one trailing comma */
		if ((eq = memchr(tk, '=', kl)) == NULL)
			goto bad;
		tv = eq + 1;
		vl = kl - (size_t)(tv - tk);
		kl = (size_t)(eq - tk);
		if (!dd_tag_key_ok(tk, kl) || !dd_tag_value_ok(tv, vl))
			goto bad;
		/* Keys without the _dd.p. prefix are dropped [cpp-ext]. */
		if (kl < 6 || memcmp(tk, "_dd.p.", 6) != 0)
			continue;
		if (kl == strlen(DD_TID_KEY) && memcmp(tk, DD_TID_KEY, kl) == 0) {
			tid = tv;
			tid_len = vl;
			continue;
		}
		if (ntmp == TRACE_MAX_TAGS)
			continue;
		if ((key = trace_arena_strndup(a, tk, kl)) == NULL ||
		    (val = trace_arena_strndup(a, tv, vl)) == NULL)
			continue;
		tmp[ntmp].key = key;
		tmp[ntmp].value = val;
		ntmp++;
	}
	for (i = 0; i < ntmp; i++)
		(void)trace_context_set_tag(c, tmp[i].key, tmp[i].value);
	if (tid != NULL) {
		c->tid_seen = true;
		c->tid_text = trace_arena_strndup(a, tid, tid_len);
		/* Exactly 16 lower-case hex digits (2.5). */
		if (tid_len != 16 ||
		    ids_parse_hex64(tid, 16, &c->trace_id.high) != 0) {
			c->trace_id.high = 0;
			dd_set_error_value(a, c, "malformed_tid", tid, tid_len);
		}
	}
	return;
bad:
	c->propagation_error = "decoding_error";
}

/* Extract the Datadog context (PROPAGATION.md 2.1-2.5). */
enum prop_result
prop_datadog_extract(const struct trace_header *h, size_t n, size_t tags_max,
    struct trace_arena *a, struct trace_context *c)
{
	const char *tid, *pid, *prio, *origin, *tags;
	size_t tid_len = 0, pid_len = 0, prio_len = 0, origin_len = 0;
	size_t tags_len = 0;
	int p;

	trace_context_clear(c);
	tid = trace_header_value(h, n, "x-datadog-trace-id", &tid_len);
	pid = trace_header_value(h, n, "x-datadog-parent-id", &pid_len);
	prio = trace_header_value(h, n, "x-datadog-sampling-priority", &prio_len);
	origin = trace_header_value(h, n, "x-datadog-origin", &origin_len);
	tags = trace_header_value(h, n, "x-datadog-tags", &tags_len);

	if (tid == NULL)
		return pid != NULL ? PROP_INVALID : PROP_ABSENT;
	/* Unsigned 64-bit decimal; 0 is invalid [cpp-ext] [cpp-tracer]. */
	if (ids_parse_dec64(tid, tid_len, &c->trace_id.low) != 0 ||
	    c->trace_id.low == 0)
		return PROP_INVALID;
	/*
	 * Origin is free text, but it is re-sent in x-datadog-origin (and,
	 * escaped, in tracestate o:), so a control character makes it
	 * unusable; the trace itself continues.
	 */
	if (origin != NULL && origin_len > 0 &&
	    dd_printable(origin, origin_len))
		c->origin = trace_arena_strndup(a, origin, origin_len);
	if (pid != NULL) {
		if (ids_parse_dec64(pid, pid_len, &c->parent_id) != 0)
			return PROP_INVALID;
	}
	/* No (or zero) parent: only with an origin (2.1, Synthetics). */
	if (c->parent_id == 0 && c->origin == NULL)
		return PROP_INVALID;
	if (prio != NULL && prop_datadog_parse_int(prio, prio_len, &p) == 0) {
		c->has_priority = true;
		c->priority = p;
	}
	if (tags != NULL)
		dd_decode_tags(tags, tags_len, tags_max, a, c);
	return PROP_OK;
}

/* Append "k=v" with a ',' separator; -1 if it does not fit. */
static int
dd_append_tag(char *buf, size_t limit, size_t *len, const char *k,
    const char *v)
{
	size_t kl = strlen(k), vl = strlen(v), need;

	need = kl + 1 + vl + (*len > 0 ? 1 : 0);
	if (*len + need > limit)
		return -1;
	if (*len > 0)
		buf[(*len)++] = ',';
	memcpy(buf + *len, k, kl);
	*len += kl;
	buf[(*len)++] = '=';
	memcpy(buf + *len, v, vl);
	*len += vl;
	buf[*len] = '\0';
	return 0;
}

/* Encode the x-datadog-tags value of a span. */
int
prop_datadog_format_tags(const struct span *s, size_t max, char *buf,
    size_t size)
{
	size_t len = 0, limit, i;
	char tid[17];

	if (size == 0)
		return -1;
	limit = TS_MIN(size - 1, max);
	buf[0] = '\0';
	for (i = 0; i < s->n_ptags; i++)
		if (dd_append_tag(buf, limit, &len, s->ptags[i].key,
		    s->ptags[i].value) != 0)
			return -1;
	if (s->trace_id.high != 0) {
		ids_format_hex64(s->trace_id.high, tid);
		if (dd_append_tag(buf, limit, &len, DD_TID_KEY, tid) != 0)
			return -1;
	}
	return (int)len;
}

/* Inject the Datadog headers (PROPAGATION.md 8). */
int
prop_datadog_inject(const struct span *s, size_t tags_max, trace_emit_fn emit,
    void *arg, const char **errstr)
{
	char num[24], tags[4096];
	size_t len;
	int n;

	len = ids_format_dec64(s->trace_id.low, num);
	if (emit(arg, "x-datadog-trace-id", num, len) != 0)
		return -1;
	len = ids_format_dec64(s->span_id, num);
	if (emit(arg, "x-datadog-parent-id", num, len) != 0)
		return -1;
	if (s->has_priority) {
		len = util_fmt_i64(s->priority, num);
		if (emit(arg, "x-datadog-sampling-priority", num, len) != 0)
			return -1;
	}
	if (s->origin != NULL && emit(arg, "x-datadog-origin", s->origin,
	    strlen(s->origin)) != 0)
		return -1;
	if (tags_max == 0)
		return 0;
	n = prop_datadog_format_tags(s, tags_max, tags, sizeof tags);
	if (n < 0) {
		/* Too long: omit the header [cpp-seg inject_trace_tags]. */
		if (errstr != NULL)
			*errstr = "inject_max_size";
		return 0;
	}
	if (n > 0 && emit(arg, "x-datadog-tags", tags, (size_t)n) != 0)
		return -1;
	return 0;
}

/* The codec (prop_codec.h): DD_TRACE_X_DATADOG_TAGS_MAX_LENGTH both ways;
 * tags left out for their size are said on the span. */
static enum prop_result
prop_datadog_codec_extract(const struct propagation_conf *pc,
    const struct trace_header *h, size_t n, struct trace_arena *a,
    struct trace_context *c)
{
	return prop_datadog_extract(h, n, pc->tags_max_length, a, c);
}

static int
prop_datadog_codec_inject(const struct propagation_conf *pc, struct span *sp,
    trace_emit_fn emit, void *arg)
{
	const char *err = NULL;
	int rc;

	rc = prop_datadog_inject(sp, pc->tags_max_length, emit, arg, &err);
	if (err != NULL)
		(void)span_set_meta(sp, "_dd.propagation_error", err);
	return rc;
}

const struct prop_codec prop_datadog_codec = {
	CONFIG_STYLE_DATADOG, prop_datadog_codec_extract,
	prop_datadog_codec_inject,
};
