/*
 * prop_w3c.c -- W3C Trace Context (traceparent, tracestate) and the
 * Datadog tracestate member.
 *
 * traceparent: "W3C Trace Context, traceparent header" -- lower-case hex
 * only, version ff and malformed future versions rejected, version 00
 * exactly 55 characters, all-zero ids invalid, a duplicated field invalid
 * (PROPAGATION.md 3).  tracestate is only read when traceparent is valid;
 * repeated fields are combined in order; the "dd" member is decoded per
 * dd-trace-cpp w3c_propagation.cpp (4.2-4.5) and re-encoded first on
 * output, at most 256 characters, before the other vendors' members, at
 * most 32 members in all ("Mutating the tracestate Field").
 */
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "prop_datadog.h"
#include "prop_w3c.h"
#include "prop_codec.h"
#include "propagation.h"
#include "util.h"

#define W3C_BUF 8192

/* Parse one traceparent value (PROPAGATION.md 3, steps 1-7). */
enum prop_result
prop_w3c_parse_traceparent(const char *v, size_t len, struct trace_context *c,
    const char **errstr)
{
	uint64_t ver, flags;
	struct trace_id t;

	trace_trim_ows(&v, &len);
	*errstr = "malformed_traceparent";
	if (len < PROP_W3C_TRACEPARENT_LEN)
		return PROP_INVALID;
	if (ids_parse_hex64(v, 2, &ver) != 0 || v[2] != '-' || ver == 0xff) {
		*errstr = "invalid_version";
		return PROP_INVALID;
	}
	/* 00: exactly 55; later versions: end or '-' after the flags. */
	if (ver == 0 && len != PROP_W3C_TRACEPARENT_LEN)
		return PROP_INVALID;
	if (len > PROP_W3C_TRACEPARENT_LEN && v[PROP_W3C_TRACEPARENT_LEN] != '-')
		return PROP_INVALID;
	if (v[35] != '-' || ids_parse_hex128(v + 3, 32, &t) != 0 ||
	    (t.high == 0 && t.low == 0)) {
		*errstr = "malformed_traceid";
		return PROP_INVALID;
	}
	if (v[52] != '-' || ids_parse_hex64(v + 36, 16, &c->parent_id) != 0 ||
	    c->parent_id == 0) {
		*errstr = "malformed_parentid";
		return PROP_INVALID;
	}
	if (ids_parse_hex64(v + 53, 2, &flags) != 0) {
		*errstr = "malformed_traceflags";
		return PROP_INVALID;
	}
	c->trace_id = t;
	c->has_priority = true;
	c->priority = (flags & 0x01) ? 1 : 0;
	c->w3c_random = (flags & 0x02) != 0;
	*errstr = NULL;
	return PROP_OK;
}

/* Copy with '~' decoded to '=' (4.3). */
static char *
w3c_untilde(struct trace_arena *a, const char *s, size_t len)
{
	char *p;
	size_t i;

	if ((p = trace_arena_strndup(a, s, len)) == NULL)
		return NULL;
	for (i = 0; i < len; i++)
		if (p[i] == '~')
			p[i] = '=';
	return p;
}

/* Append "sep + s" to a bounded buffer; false if it does not fit. */
static bool
w3c_append(char *buf, size_t size, size_t *len, char sep, const char *s,
    size_t slen)
{
	size_t need = slen + (*len > 0 && sep != '\0' ? 1 : 0);

	if (*len + need + 1 > size)
		return false;
	if (*len > 0 && sep != '\0')
		buf[(*len)++] = sep;
	memcpy(buf + *len, s, slen);
	*len += slen;
	buf[*len] = '\0';
	return true;
}

/* Decode the dd member value (4.2, 4.4). */
static void
w3c_parse_dd(const char *v, size_t len, struct trace_arena *a,
    struct trace_context *c, bool sampled)
{
	const char *p = v, *end = v + len, *semi, *colon, *val;
	char unknown[PROP_W3C_DD_MAX_IN + 1], key[300], errbuf[160];
	size_t ulen = 0, sl, kl, vl;
	bool has_s = false, flag_wins = false;
	uint64_t tid, ts;
	int s = 0, n;
	char *tv;

	if (len > PROP_W3C_DD_MAX_IN) {
		/* Ignored, not forwarded [cpp-w3c] (dd-trace-cpp only). */
		c->propagation_error = "extract_max_size";
		return;
	}
	while (p < end) {
		if ((semi = memchr(p, ';', (size_t)(end - p))) == NULL)
			semi = end;
		sl = (size_t)(semi - p);
		colon = memchr(p, ':', sl);
		if (sl == 0 || colon == NULL || colon == p)
			goto next;	/* empty or without ':' [cpp-test] */
		kl = (size_t)(colon - p);
		val = colon + 1;
		vl = sl - kl - 1;
		if (kl == 1 && p[0] == 's') {
			if (prop_datadog_parse_int(val, vl, &s) == 0)
				has_s = true;
		} else if (kl == 1 && p[0] == 'o') {
			/* Trailing blanks are not part of it (they could not
			 * travel at the end of a member, 3.3.1.3.2). */
			while (vl > 0 && (val[vl - 1] == ' ' || val[vl - 1] == '\t'))
				vl--;
			if (vl > 0)
				c->origin = w3c_untilde(a, val, vl);
		} else if (kl == 1 && p[0] == 'p') {
			c->last_dd_parent_id = trace_arena_strndup(a, val, vl);
		} else if (kl == 2 && memcmp(p, "ts", 2) == 0) {
			if (vl == 2 && ids_parse_hex64(val, 2, &ts) == 0)
				(void)trace_context_set_tag(c, "_dd.p.ts",
				    trace_arena_strndup(a, val, vl));
		} else if (kl == 5 && memcmp(p, "t.tid", 5) == 0) {
			/* Consistency check only (2.5). */
			c->tid_seen = true;
			c->tid_text = trace_arena_strndup(a, val, vl);
			if (vl != 16 || ids_parse_hex64(val, 16, &tid) != 0)
				n = snprintf(errbuf, sizeof errbuf,
				    "malformed_tid %.*s", (int)TS_MIN(vl, 128),
				    val);
			else if (tid != c->trace_id.high)
				n = snprintf(errbuf, sizeof errbuf,
				    "inconsistent_tid %.*s", (int)vl, val);
			else
				n = 0;
			if (n > 0)
				c->propagation_error = trace_arena_strndup(a,
				    errbuf, TS_MIN((size_t)n,
				    sizeof errbuf - 1));
		} else if (kl > 2 && p[0] == 't' && p[1] == '.' &&
		    kl - 2 + 6 < sizeof key) {
			n = snprintf(key, sizeof key, "_dd.p.%.*s",
			    (int)(kl - 2), p + 2);
			if ((tv = w3c_untilde(a, val, vl)) != NULL)
				(void)trace_context_set_tag(c,
				    trace_arena_strndup(a, key, (size_t)n),
				    tv);
		} else
			(void)w3c_append(unknown, sizeof unknown, &ulen, ';',
			    p, sl);
next:
		p = semi + 1;
	}
	if (ulen > 0)
		c->dd_unknown = trace_arena_strndup(a, unknown, ulen);
	/* Table 4.4: the sampled flag wins when it disagrees with s:. */
	if (has_s) {
		if (sampled && s <= 0)
			flag_wins = true;
		else if (!sampled && s > 0)
			flag_wins = true;
		else
			c->priority = s;
	}
	/* Reset _dd.p.dm when the flag overrode s: ([st-tsdd], 2.6). */
	if (flag_wins) {
		if (sampled)
			(void)trace_context_set_tag(c, "_dd.p.dm", "-0");
		else
			trace_context_remove_tag(c, "_dd.p.dm");
	}
}

/*
 * W3C Trace Context Level 2, 3.3.1.3.1: key = (lcalpha / DIGIT)
 * 0*255(keychar), keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@".
 * Level 1's simple-key and tenant@system keys are all of this form; the
 * Level 1 tenant (241) and system (14) limits are not applied, as the W3C
 * test suite expects ("t" * 242 + "@v" and "t@" + "v" * 15 are kept).
 */
static const char *
w3c_key_check(const char *k, size_t len)
{
	size_t i;

	if (len == 0)
		return "empty_key";
	if (len > PROP_W3C_KEY_MAX)
		return "key_too_long";
	for (i = 0; i < len; i++) {
		if ((k[i] >= 'a' && k[i] <= 'z') ||
		    (k[i] >= '0' && k[i] <= '9'))
			continue;
		if (i > 0 && (k[i] == '_' || k[i] == '-' || k[i] == '*' ||
		    k[i] == '/' || k[i] == '@'))
			continue;
		return "illegal_key_char";
	}
	return NULL;
}

/*
 * 3.3.1.3.2: value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr;
 * nblk-chr = %x21-2B / %x2D-3C / %x3E-7E.  So 1 to 256 characters of
 * 0x20-0x7E except "," and "=", the last one not a space.  The dd member
 * is exempt from the length (PROPAGATION.md 4.2: up to 512 is read, longer
 * is ignored with extract_max_size); it is never forwarded as received.
 */
static const char *
w3c_value_check(const char *v, size_t len, bool dd)
{
	size_t i;

	if (len == 0)
		return "empty_value";
	if (len > PROP_W3C_VALUE_MAX && !dd)
		return "value_too_long";
	for (i = 0; i < len; i++)
		if (v[i] < 0x20 || v[i] > 0x7e || v[i] == ',' || v[i] == '=')
			return "illegal_value_char";
	if (v[len - 1] == ' ')
		return "illegal_value_char";
	return NULL;
}

/* One OWS-trimmed list member: key "=" value (3.3.1.3). */
static const char *
w3c_member_check(const char *m, size_t len, size_t *klen)
{
	const char *eq, *err;

	if ((eq = memchr(m, '=', len)) == NULL)
		return "missing_equals";
	*klen = (size_t)(eq - m);
	if ((err = w3c_key_check(m, *klen)) != NULL)
		return err;
	return w3c_value_check(eq + 1, len - *klen - 1,
	    *klen == 2 && m[0] == 'd' && m[1] == 'd');
}

/*
 * Walk every tracestate field and member in order (4.1).  The combined
 * list is checked first: one member that breaks the grammar, or more than
 * 32 members, and the whole header is discarded, as the W3C processing
 * model allows for a tracestate that cannot be parsed; nothing of it is
 * read or forwarded and c->tracestate_error says why.  A repeated key
 * keeps its first member: the spec lets a vendor pass or drop duplicates,
 * and dropping them means we never send one (4.1 "duplicate keys must not
 * be produced").
 */
static void
w3c_parse_tracestate(const struct trace_header *h, size_t n,
    struct trace_arena *a, struct trace_context *c, bool sampled)
{
	struct {
		const char	*m;
		size_t		 len, klen;
	} mem[PROP_W3C_MAX_MEMBERS];
	char others[W3C_BUF], raw[W3C_BUF];
	size_t olen = 0, rlen = 0, nm = 0, i, j, ml, kl;
	const char *p, *end, *comma, *m, *err;

	for (i = 0; i < n; i++) {
		if (!trace_header_is_n(&h[i], "tracestate", 10))
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
			if (ml == 0)
				continue;	/* empty members are allowed */
			if ((err = w3c_member_check(m, ml, &kl)) != NULL) {
				c->tracestate_error = err;
				return;
			}
			if (nm == PROP_W3C_MAX_MEMBERS) {
				c->tracestate_error = "too_many_members";
				return;
			}
			mem[nm].m = m;
			mem[nm].len = ml;
			mem[nm++].klen = kl;
		}
	}
	for (i = 0; i < nm; i++) {
		for (j = 0; j < i; j++)
			if (mem[j].klen == mem[i].klen &&
			    memcmp(mem[j].m, mem[i].m, mem[i].klen) == 0)
				break;
		if (j < i)
			continue;	/* a repeated key: the first one wins */
		m = mem[i].m;
		ml = mem[i].len;
		(void)w3c_append(raw, sizeof raw, &rlen, ',', m, ml);
		if (mem[i].klen == 2 && m[0] == 'd' && m[1] == 'd') {
			/* Our own member: decoded, re-encoded on output. */
			w3c_parse_dd(m + 3, ml - 3, a, c, sampled);
			continue;
		}
		(void)w3c_append(others, sizeof others, &olen, ',', m, ml);
	}
	if (olen > 0)
		c->tracestate_others = trace_arena_strndup(a, others, olen);
	if (rlen > 0)
		c->tracestate_raw = trace_arena_strndup(a, raw, rlen);
}

/* Extract traceparent and tracestate (PROPAGATION.md 3, 4). */
enum prop_result
prop_w3c_extract(const struct trace_header *h, size_t n,
    struct trace_arena *a, struct trace_context *c)
{
	const struct trace_header *tp;
	const char *err = NULL;
	size_t count;

	trace_context_clear(c);
	if ((tp = trace_header_find(h, n, "traceparent", &count)) == NULL)
		return PROP_ABSENT;
	/* More than one field is invalid [st-tc] test_traceparent_duplicated. */
	if (count > 1) {
		c->w3c_error = "malformed_traceparent";
		return PROP_INVALID;
	}
	if (prop_w3c_parse_traceparent(tp->value, tp->value_len, c, &err) !=
	    PROP_OK) {
		trace_context_clear(c);
		c->w3c_error = err;
		return PROP_INVALID;
	}
	w3c_parse_tracestate(h, n, a, c, c->priority > 0);
	return PROP_OK;
}

/* Format the outgoing traceparent (56 bytes with the NUL). */
void
prop_w3c_format_traceparent(const struct span *s, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned flags;

	memcpy(out, "00-", 3);
	ids_format_hex128(s->trace_id, out + 3);
	out[35] = '-';
	ids_format_hex64(s->span_id, out + 36);
	out[52] = '-';
	flags = (s->has_priority && s->priority > 0) ? 0x01 : 0x00;
	if (s->w3c_random)
		flags |= 0x02;	/* Level 2 random flag kept (3) */
	out[53] = hex[flags >> 4];
	out[54] = hex[flags & 0xf];
	out[55] = '\0';
}

/* Escape a dd value: '_' for bad bytes and ",;~", then '=' -> '~'. */
static size_t
w3c_escape_value(const char *in, char *out, size_t size)
{
	size_t n = 0;
	unsigned char ch;

	for (; *in != '\0' && n + 1 < size; in++) {
		ch = (unsigned char)*in;
		if (ch < 0x20 || ch > 0x7e || ch == ',' || ch == ';' ||
		    ch == '~')
			ch = '_';
		else if (ch == '=')
			ch = '~';
		out[n++] = (char)ch;
	}
	out[n] = '\0';
	return n;
}

/* Escape a dd tag key: '_' for bad bytes and " ,;=". */
static size_t
w3c_escape_key(const char *in, char *out, size_t size)
{
	size_t n = 0;
	unsigned char ch;

	for (; *in != '\0' && n + 1 < size; in++) {
		ch = (unsigned char)*in;
		if (ch <= 0x20 || ch > 0x7e || ch == ',' || ch == ';' ||
		    ch == '=')
			ch = '_';
		out[n++] = (char)ch;
	}
	out[n] = '\0';
	return n;
}

/* Add one dd sub-member unless the member would exceed 256 chars. */
static bool
w3c_add_sub(char *buf, size_t *len, const char *sub, size_t sl)
{
	if (*len + 1 + sl > PROP_W3C_DD_MAX_OUT)
		return false;
	return w3c_append(buf, PROP_W3C_DD_MAX_OUT + 1, len, ';', sub, sl);
}

/*
 * prefix, a, then (when b is set) ':' and b into out (size bytes, NUL-
 * terminated); the length, or 0 when it does not fit.
 */
static size_t
w3c_join(char *out, size_t size, const char *prefix, const char *a,
    const char *b)
{
	size_t pl = strlen(prefix), al = strlen(a), bl = 0, n;

	if (b != NULL)
		bl = strlen(b) + 1;
	n = pl + al + bl;
	if (n >= size)
		return 0;
	memcpy(out, prefix, pl);
	memcpy(out + pl, a, al);
	if (b != NULL) {
		out[pl + al] = ':';
		memcpy(out + pl + al + 1, b, bl - 1);
	}
	out[n] = '\0';
	return n;
}

/* Build "dd=..." (4.2): s, p, o, t.*, unknown; whole subs dropped. */
static size_t
w3c_format_dd(const struct span *s, char *dd)
{
	char sub[PROP_W3C_DD_MAX_OUT + 8], ek[PROP_W3C_DD_MAX_OUT];
	char ev[PROP_W3C_DD_MAX_OUT];
	const char *p, *end, *semi;
	size_t len = 0, i, n;
	bool full = false;

	memcpy(dd, "dd=", 4);
	len = 3;
	/* Each sub-key built by hand: snprintf here cost more per request
	 * than the rest of the injection (issue 11's profile). */
	if (s->has_priority) {
		memcpy(sub, "s:", 2);
		n = 2 + util_fmt_i64(s->priority, sub + 2);
		(void)w3c_append(dd, PROP_W3C_DD_MAX_OUT + 1, &len, '\0', sub,
		    n);
	}
	memcpy(sub, "p:", 2);
	ids_format_hex64(s->span_id, sub + 2);
	n = 2 + 16;
	if (len == 3)
		(void)w3c_append(dd, PROP_W3C_DD_MAX_OUT + 1, &len, '\0', sub,
		    n);
	else
		(void)w3c_add_sub(dd, &len, sub, n);
	if (s->origin != NULL) {
		w3c_escape_value(s->origin, ev, sizeof ev);
		n = w3c_join(sub, sizeof sub, "o:", ev, NULL);
		if (n == 0 || !w3c_add_sub(dd, &len, sub, n))
			full = true;
	}
	for (i = 0; i < s->n_ptags && !full; i++) {
		if (strncmp(s->ptags[i].key, "_dd.p.", 6) != 0)
			continue;
		w3c_escape_key(s->ptags[i].key + 6, ek, sizeof ek);
		w3c_escape_value(s->ptags[i].value, ev, sizeof ev);
		n = w3c_join(sub, sizeof sub, "t.", ek, ev);
		if (n == 0 || !w3c_add_sub(dd, &len, sub, n))
			full = true;
	}
	if (s->dd_unknown != NULL && !full) {
		p = s->dd_unknown;
		end = p + strlen(p);
		while (p < end) {
			if ((semi = memchr(p, ';', (size_t)(end - p))) == NULL)
				semi = end;
			if (semi > p && !w3c_add_sub(dd, &len, p,
			    (size_t)(semi - p)))
				break;
			p = semi + 1;
		}
	}
	/*
	 * W3C trace-context 3.3.1.3.2: a member value ends with a non-blank
	 * character (nblk-chr).  A sub-member value may end with SP ("o:a "
	 * from an incoming dd member, a tag value); when it lands last, the
	 * next hop would trim it, so those blanks become '_' here, as every
	 * other byte the member cannot carry does.
	 */
	for (i = len; i > 3 && dd[i - 1] == ' '; i--)
		dd[i - 1] = '_';
	return len;
}

/* Format the outgoing tracestate into buf; returns its length. */
size_t
prop_w3c_format_tracestate(const struct span *s, char *buf, size_t size)
{
	char dd[PROP_W3C_DD_MAX_OUT + 1];
	const char *p, *end, *comma;
	size_t len = 0, ddlen, members = 1;

	ddlen = w3c_format_dd(s, dd);
	if (size == 0)
		return 0;
	buf[0] = '\0';
	if (!w3c_append(buf, size, &len, '\0', dd, ddlen))
		return 0;
	if (s->tracestate_others == NULL)
		return len;
	/* Others keep their order; evict right-most past 32 (4.1). */
	p = s->tracestate_others;
	end = p + strlen(p);
	while (p < end && members < PROP_W3C_MAX_MEMBERS) {
		if ((comma = memchr(p, ',', (size_t)(end - p))) == NULL)
			comma = end;
		if (comma > p && !(comma - p >= 3 && p[0] == 'd' &&
		    p[1] == 'd' && p[2] == '=')) {
			if (!w3c_append(buf, size, &len, ',', p,
			    (size_t)(comma - p)))
				break;
			members++;
		}
		p = comma + 1;
	}
	return len;
}

/* Inject traceparent and tracestate (PROPAGATION.md 8). */
int
prop_w3c_inject(const struct span *s, trace_emit_fn emit, void *arg)
{
	char tp[PROP_W3C_TRACEPARENT_LEN + 1], ts[W3C_BUF];
	size_t len;

	prop_w3c_format_traceparent(s, tp);
	if (emit(arg, "traceparent", tp, PROP_W3C_TRACEPARENT_LEN) != 0)
		return -1;
	len = prop_w3c_format_tracestate(s, ts, sizeof ts);
	if (len > 0 && emit(arg, "tracestate", ts, len) != 0)
		return -1;
	return 0;
}

/* The codec (prop_codec.h). */
static enum prop_result
prop_w3c_codec_extract(const struct propagation_conf *pc,
    const struct trace_header *h, size_t n, struct trace_arena *a,
    struct trace_context *c)
{
	(void)pc;
	return prop_w3c_extract(h, n, a, c);
}

static int
prop_w3c_codec_inject(const struct propagation_conf *pc, struct span *sp,
    trace_emit_fn emit, void *arg)
{
	(void)pc;
	return prop_w3c_inject(sp, emit, arg);
}

const struct prop_codec prop_w3c_codec = {
	CONFIG_STYLE_TRACECONTEXT, prop_w3c_codec_extract,
	prop_w3c_codec_inject,
};
