/*
 * ddforward.c -- the strict decoder of the Browser SDK's ddforward
 * parameter (ddforward.h, docs/rum-relay.md).
 *
 * One decoding, then an exact match of the path against the table.  The
 * order of the checks only chooses which reason a value gets when it has
 * several faults; any one of them refuses it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ddforward.h"

/*
 * The intake tracks of the Browser SDK: the trackType of each endpoint
 * builder in @datadog/browser-core 6.x, src/domain/configuration/
 * transportConfiguration.ts (rum, logs, replay, profile, exposures and
 * flagevaluation), each sent to `/api/v2/${trackType}`
 * (endpointBuilder.ts).  The order is the metrics' label order.
 */
const struct ddforward_track ddforward_tracks[DDFORWARD_NTRACKS] = {
	{ "rum", "/api/v2/rum" },
	{ "logs", "/api/v2/logs" },
	{ "replay", "/api/v2/replay" },
	{ "profile", "/api/v2/profile" },
	{ "exposures", "/api/v2/exposures" },
	{ "flagevaluation", "/api/v2/flagevaluation" },
};

static const struct {
	const char *name;
	const char *text;
} ddf_reasons[DDF_NREASONS] = {
	[DDF_OK] = { "ok", "" },
	[DDF_MISSING] = { "missing", "the ddforward parameter is missing" },
	[DDF_DUPLICATE] = { "duplicate", "ddforward is given more than once" },
	[DDF_NAME] = { "name", "a parameter name that decodes to ddforward "
	    "must be written ddforward" },
	[DDF_EMPTY] = { "empty", "ddforward is empty" },
	[DDF_OVERLONG] = { "overlong", "ddforward is longer than the relay "
	    "accepts" },
	[DDF_PERCENT] = { "percent", "ddforward has a '%' that is not "
	    "followed by two hex digits" },
	[DDF_PLUS] = { "plus", "ddforward has a '+' (a space or a plus: "
	    "ambiguous; the SDK encodes it as %2B)" },
	[DDF_CONTROL] = { "control", "ddforward holds a control byte" },
	[DDF_NON_ASCII] = { "non_ascii", "ddforward holds a byte outside "
	    "ASCII" },
	[DDF_BACKSLASH] = { "backslash", "ddforward holds a backslash" },
	[DDF_ABSOLUTE] = { "absolute", "ddforward is an absolute URL: only "
	    "an intake path is forwarded" },
	[DDF_SCHEME_RELATIVE] = { "scheme_relative", "ddforward is a "
	    "scheme-relative URL (//host): only an intake path is "
	    "forwarded" },
	[DDF_NOT_PATH] = { "not_path", "ddforward does not start with '/'" },
	[DDF_ENCODED_PATH] = { "encoded_path", "the intake path in "
	    "ddforward is percent-encoded twice" },
	[DDF_DOT_SEGMENT] = { "dot_segment", "the path in ddforward has a "
	    "'.' or '..' segment" },
	[DDF_USERINFO] = { "userinfo", "the path in ddforward has an '@'" },
	[DDF_UNKNOWN_PATH] = { "unknown_path", "the path in ddforward is not "
	    "an intake path (/api/v2/rum, /api/v2/logs, /api/v2/replay, "
	    "/api/v2/profile, /api/v2/exposures, /api/v2/flagevaluation)" },
	[DDF_BAD_CHAR] = { "bad_char", "the query in ddforward holds a "
	    "character a URL may not (space, '#', quotes, brackets, ...)" },
	[DDF_NESTED] = { "nested", "the query in ddforward has a ddforward "
	    "parameter of its own" },
};

const char *
ddforward_reason_text(enum ddforward_reason r)
{
	return (unsigned)r < DDF_NREASONS ? ddf_reasons[r].text : "?";
}

const char *
ddforward_reason_name(enum ddforward_reason r)
{
	return (unsigned)r < DDF_NREASONS ? ddf_reasons[r].name : "?";
}

static int
ddf_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * RFC 3986 3.4: query = *( pchar / "/" / "?" ), pchar = unreserved /
 * pct-encoded / sub-delims / ":" / "@".  '%' is checked by the callers.
 */
static bool
ddf_query_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("-._~!$&'()*+,;=:@/?", c) != NULL;
}

/* Raw bytes other than a query character, by class (0: none). */
static enum ddforward_reason
ddf_byte_class(unsigned char c)
{
	if (c < 0x20 || c == 0x7f)
		return DDF_CONTROL;
	if (c >= 0x80)
		return DDF_NON_ASCII;
	if (c == '\\')
		return DDF_BACKSLASH;
	if (!ddf_query_char(c) && c != '%')
		return DDF_BAD_CHAR;
	return DDF_OK;
}

/*
 * Does the parameter name n (len bytes, as sent) decode to "ddforward",
 * case aside?  *exact: it is written "ddforward".
 */
static bool
ddf_is_ddforward(const char *n, size_t len, bool *exact)
{
	static const char want[] = "ddforward";
	size_t i, k;
	int hi, lo;
	unsigned char c;

	*exact = len == 9 && memcmp(n, want, 9) == 0;
	if (*exact)
		return true;
	for (i = 0, k = 0; i < len; i++, k++) {
		c = (unsigned char)n[i];
		/* A '%' that decodes nothing is no letter of the name. */
		if (c == '%' && i + 2 < len && (hi = ddf_hex(
		    (unsigned char)n[i + 1])) >= 0 && (lo = ddf_hex(
		    (unsigned char)n[i + 2])) >= 0) {
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (k >= 9 || (c | 0x20) != want[k])
			return false;
	}
	return k == 9;
}

/* The path of the decoded value: its checks, then the table. */
static enum ddforward_reason
ddf_check_path(const char *p, size_t len, int *track)
{
	size_t i, seg;
	int t;

	for (i = 0; i < len; i++) {
		if (p[i] == '%')
			return DDF_ENCODED_PATH;
		if (p[i] == '@')
			return DDF_USERINFO;
	}
	/* RFC 3986 3.3: a segment "." or ".." (5.2.4 would remove it). */
	for (i = 0; i < len; i = seg) {
		size_t n;

		seg = i + 1;
		while (seg < len && p[seg] != '/')
			seg++;
		n = seg - i - 1;
		if ((n == 1 && p[i + 1] == '.') || (n == 2 && p[i + 1] == '.' &&
		    p[i + 2] == '.'))
			return DDF_DOT_SEGMENT;
	}
	for (t = 0; t < DDFORWARD_NTRACKS; t++) {
		if (strlen(ddforward_tracks[t].path) == len &&
		    memcmp(ddforward_tracks[t].path, p, len) == 0) {
			*track = t;
			return DDF_OK;
		}
	}
	return DDF_UNKNOWN_PATH;
}

/* The query of the decoded value (after its first '?'). */
static enum ddforward_reason
ddf_check_query(const char *q, size_t len)
{
	size_t i, start;
	bool exact;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)q[i];

		if (c == '%') {
			if (i + 2 >= len || ddf_hex((unsigned char)q[i + 1])
			    < 0 || ddf_hex((unsigned char)q[i + 2]) < 0)
				return DDF_PERCENT;
			continue;
		}
		if (!ddf_query_char(c))
			return DDF_BAD_CHAR;
	}
	/* No ddforward of its own: a second relay would follow it. */
	for (start = 0; start <= len; start = i + 1) {
		size_t nlen;

		for (i = start; i < len && q[i] != '&'; i++)
			;
		for (nlen = 0; start + nlen < i && q[start + nlen] != '=';
		    nlen++)
			;
		if (ddf_is_ddforward(q + start, nlen, &exact))
			return DDF_NESTED;
	}
	return DDF_OK;
}

/* Decode raw (checked) once into out; the decoded bytes' checks. */
static enum ddforward_reason
ddf_decode(const char *raw, size_t len, struct ddforward *out)
{
	size_t i, n = 0;
	int hi, lo;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)raw[i];
		enum ddforward_reason r;

		if ((r = ddf_byte_class(c)) != DDF_OK)
			return r;
		if (c == '+')
			return DDF_PLUS;
		if (c == '%') {
			if (i + 2 >= len || (hi = ddf_hex(
			    (unsigned char)raw[i + 1])) < 0 ||
			    (lo = ddf_hex((unsigned char)raw[i + 2])) < 0)
				return DDF_PERCENT;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (n >= DDFORWARD_MAX)
			return DDF_OVERLONG;
		out->target[n++] = (char)c;
	}
	out->target[n] = '\0';
	out->target_len = n;
	/* What the decoding produced: no byte a request line may not hold. */
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out->target[i];

		if (c < 0x20 || c == 0x7f)
			return DDF_CONTROL;
		if (c >= 0x80)
			return DDF_NON_ASCII;
		if (c == '\\')
			return DDF_BACKSLASH;
	}
	return DDF_OK;
}

/* The decoded value: a path of the table and a plain query. */
static enum ddforward_reason
ddf_check_target(struct ddforward *out)
{
	const char *t = out->target, *q;
	size_t n = out->target_len, plen, i;
	enum ddforward_reason r;

	if (n == 0)
		return DDF_EMPTY;
	/* RFC 3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	if ((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z') {
		for (i = 1; i < n && (((t[i] | 0x20) >= 'a' &&
		    (t[i] | 0x20) <= 'z') || (t[i] >= '0' && t[i] <= '9') ||
		    t[i] == '+' || t[i] == '-' || t[i] == '.'); i++)
			;
		if (i < n && t[i] == ':')
			return DDF_ABSOLUTE;
	}
	if (n >= 2 && t[0] == '/' && t[1] == '/')
		return DDF_SCHEME_RELATIVE;
	if (t[0] != '/')
		return DDF_NOT_PATH;
	q = memchr(t, '?', n);
	plen = q != NULL ? (size_t)(q - t) : n;
	if ((r = ddf_check_path(t, plen, &out->track)) != DDF_OK)
		return r;
	if (q != NULL && (r = ddf_check_query(q + 1, n - plen - 1)) != DDF_OK)
		return r;
	return DDF_OK;
}

int
ddforward_parse(const char *query, size_t len, struct ddforward *out)
{
	const char *val = NULL;
	size_t i, start, vlen = 0;
	unsigned found = 0;
	bool exact, all_exact = true;

	out->reason = DDF_OK;
	out->track = -1;
	out->target[0] = '\0';
	out->target_len = 0;
	/* Parameters of the proxy URL: find every name that is ddforward. */
	for (start = 0; start <= len; start = i + 1) {
		size_t nlen;

		for (i = start; i < len && query[i] != '&'; i++)
			;
		for (nlen = 0; start + nlen < i && query[start + nlen] != '=';
		    nlen++)
			;
		if (!ddf_is_ddforward(query + start, nlen, &exact))
			continue;
		found++;
		all_exact = all_exact && exact;
		val = start + nlen < i ? query + start + nlen + 1 : query + i;
		vlen = (size_t)(query + i - val);
	}
	if (found == 0)
		out->reason = DDF_MISSING;
	else if (found > 1)
		out->reason = DDF_DUPLICATE;
	else if (!all_exact)
		out->reason = DDF_NAME;
	else if (vlen > DDFORWARD_MAX_RAW)
		out->reason = DDF_OVERLONG;
	else if ((out->reason = ddf_decode(val, vlen, out)) == DDF_OK)
		out->reason = ddf_check_target(out);
	return out->reason == DDF_OK ? 0 : -1;
}
