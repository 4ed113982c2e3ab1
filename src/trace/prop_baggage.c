/*
 * prop_baggage.c -- W3C Baggage header (w3c/baggage HTTP_HEADER_FORMAT).
 *
 * list-member = key OWS "=" OWS value *( OWS ";" OWS property ); keys are
 * RFC 7230 tokens, values baggage-octets with everything else
 * percent-encoded.  Properties are ignored.  Extraction is all or nothing
 * ([st-bag] D012-D015, [cpp-bag]); injection stops at the item and byte
 * limits with complete items only ([st-bag] D016/D017).
 */
#include <stdio.h>
#include <string.h>

#include "prop_baggage.h"
#include "prop_codec.h"
#include "propagation.h"
#include "util.h"

#define BAG_BUF	(PROP_BAGGAGE_MAX_BYTES * 3 + 16)

/* W3C baggage-octet: 0x21, 0x23-0x2B, 0x2D-0x3A, 0x3C-0x5B, 0x5D-0x7E. */
static bool
bag_octet(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c <= 0x2b) ||
	    (c >= 0x2d && c <= 0x3a) || (c >= 0x3c && c <= 0x5b) ||
	    (c >= 0x5d && c <= 0x7e);
}

static int
bag_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode into the arena; NULL on a bad escape or a full arena. */
static char *
bag_decode(struct trace_arena *a, const char *s, size_t len)
{
	char *out;
	size_t i, o = 0;
	int hi, lo;

	if ((out = trace_arena_strndup(a, s, len)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (i + 2 >= len || (hi = bag_hexval(s[i + 1])) < 0 ||
		    (lo = bag_hexval(s[i + 2])) < 0)
			return NULL;
		/* %00 cannot live in a C string: it would cut the item
		 * (found by fuzz_prop_baggage).  Treat it as a bad escape. */
		if (hi == 0 && lo == 0)
			return NULL;
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	return out;
}

/* Parse one member into items; false if malformed. */
static bool
bag_member(const char *m, size_t ml, struct trace_arena *a,
    struct trace_kv *item)
{
	const char *semi, *eq, *k, *v;
	size_t kl, vl, i;

	if ((semi = memchr(m, ';', ml)) != NULL)
		ml = (size_t)(semi - m);	/* properties ignored */
	if ((eq = memchr(m, '=', ml)) == NULL)
		return false;
	k = m;
	kl = (size_t)(eq - m);
	v = eq + 1;
	vl = ml - kl - 1;
	trace_trim_ows(&k, &kl);
	trace_trim_ows(&v, &vl);
	if (kl == 0 || vl == 0)
		return false;
	for (i = 0; i < kl; i++)
		if (!util_is_tchar((unsigned char)k[i]))
			return false;
	for (i = 0; i < vl; i++)
		if (!bag_octet((unsigned char)v[i]))
			return false;
	if ((item->key = bag_decode(a, k, kl)) == NULL ||
	    (item->value = bag_decode(a, v, vl)) == NULL)
		return false;
	return true;
}

/* Extract every baggage field (combined in order). */
enum prop_result
prop_baggage_extract(const struct trace_header *h, size_t n, size_t max_items,
    size_t max_bytes, struct trace_arena *a, struct trace_kv *items,
    size_t cap, size_t *n_items)
{
	const char *p, *end, *comma, *m;
	size_t i, ml, total = 0, count = 0, keep, saved;
	bool seen = false;
	struct trace_kv tmp;

	*n_items = 0;
	keep = TS_MIN(max_items, cap);
	for (i = 0; i < n; i++) {
		if (trace_header_is_n(&h[i], "baggage", 7)) {
			seen = true;
			total += h[i].value_len + (total > 0 ? 1 : 0);
		}
	}
	if (!seen)
		return PROP_ABSENT;
	if (total > max_bytes)
		return PROP_INVALID;	/* MAXIMUM_BYTES_REACHED [cpp-bag] */
	saved = a->len;
	for (i = 0; i < n; i++) {
		if (!trace_header_is_n(&h[i], "baggage", 7))
			continue;
		p = h[i].value;
		end = p + h[i].value_len;
		while (p < end) {
			if ((comma = memchr(p, ',', (size_t)(end - p))) == NULL)
				comma = end;
			m = p;
			ml = (size_t)(comma - p);
			p = comma + 1;
			trace_trim_ows(&m, &ml);
			if (ml == 0 && comma == end)
				continue;	/* empty field */
			if (ml == 0 || !bag_member(m, ml, a, &tmp))
				goto bad;
			if (count < keep)
				items[count++] = tmp;
		}
	}
	*n_items = count;
	return PROP_OK;
bad:
	a->len = saved;
	*n_items = 0;
	return PROP_INVALID;
}

/* Percent-encode s, keeping bytes ok() accepts except '%'. */
static size_t
bag_encode(const char *s, bool (*ok)(unsigned char), char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	unsigned char c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (ok(c) && c != '%')
			out[n++] = (char)c;
		else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 0xf];
		}
	}
	return n;
}

/* Format items percent-encoded into buf within the limits. */
size_t
prop_baggage_format(const struct trace_kv *items, size_t n, size_t max_items,
    size_t max_bytes, char *buf, size_t size)
{
	char item[BAG_BUF];
	size_t len = 0, il, i, limit;

	if (size == 0)
		return 0;
	limit = TS_MIN(max_bytes, size - 1);
	buf[0] = '\0';
	for (i = 0; i < n && i < max_items; i++) {
		if (3 * (strlen(items[i].key) + strlen(items[i].value)) + 2 >
		    sizeof item)
			break;
		il = bag_encode(items[i].key, util_is_tchar, item);
		item[il++] = '=';
		il += bag_encode(items[i].value, bag_octet, item + il);
		if (len + il + (len > 0 ? 1 : 0) > limit)
			break;		/* complete items only */
		if (len > 0)
			buf[len++] = ',';
		memcpy(buf + len, item, il);
		len += il;
		buf[len] = '\0';
	}
	return len;
}

/* Inject the baggage header if there are items. */
int
prop_baggage_inject(const struct trace_kv *items, size_t n, size_t max_items,
    size_t max_bytes, trace_emit_fn emit, void *arg)
{
	char buf[PROP_BAGGAGE_MAX_BYTES + 1];
	size_t len;

	len = prop_baggage_format(items, n, max_items,
	    TS_MIN(max_bytes, (size_t)PROP_BAGGAGE_MAX_BYTES), buf,
	    sizeof buf);
	if (len == 0)
		return 0;
	return emit(arg, "baggage", buf, len) != 0 ? -1 : 0;
}

/* The codec (prop_codec.h): no trace context to extract (baggage is read
 * apart, PROPAGATION.md 7.2 step 8); the span's baggage, bounded. */
static int
prop_baggage_codec_inject(const struct propagation_conf *pc, struct span *sp,
    trace_emit_fn emit, void *arg)
{
	return prop_baggage_inject(sp->baggage, sp->n_baggage,
	    pc->baggage_max_items, pc->baggage_max_bytes, emit, arg);
}

const struct prop_codec prop_baggage_codec = {
	CONFIG_STYLE_BAGGAGE, NULL, prop_baggage_codec_inject,
};
