/*
 * framing.c -- the request-smuggling guard: a strict, incremental,
 * allocation-free shadow parser of what a client sends (RFC 9112).
 *
 * server.c feeds every byte range read from a client, in order, to
 * framing_feed() before evhttp sees it.  The parser walks request line,
 * header section, body (Content-Length bytes or a chunked body with its
 * trailer section) and the next pipelined request, and stops at the first
 * byte that makes the stream ambiguous or oversized.  Ranges may be split
 * anywhere: the verdict is the same whether the stream comes whole or one
 * byte at a time, because the head size limit is checked at the exact
 * byte where it is exceeded and every check happens at a fixed point of
 * the grammar.
 *
 * Speed: runs of ordinary bytes (method, request-target, field names,
 * field values of fields we do not interpret) are skipped with tight
 * table loops, body and chunk data in O(1) per call.  Only the few fields
 * that decide framing or routing (Content-Length, Transfer-Encoding,
 * Host, Origin, Expect) are copied, into fixed buffers in the state.
 *
 * Decisions (where RFC 9112 leaves a choice, we follow nginx or stricter):
 * - A bare LF ends a line (RFC 9112 2.2 allows it; nginx does); a CR not
 *   followed by LF is rejected everywhere.
 * - Up to FRAMING_MAX_EMPTY empty lines before a request line are skipped
 *   (RFC 9112 2.2 "SHOULD ignore at least one").
 * - Head too large -> 431 for the request line too (no 414): one limit,
 *   one status, and the bytes of the request line count toward it.  The
 *   trailer section of a chunked body counts toward the same limit.
 * - Transfer-Encoding other than exactly "chunked" -> 400, not 501: an
 *   unknown coding is as ambiguous for framing as a malformed one.
 * - Several Content-Length fields -> 400 even when equal (nginx).
 * - An empty Host, or a port separator without digits, -> 400: the
 *   gateway routes on Host, so an authority it cannot route is refused.
 * - A request-target is origin-form, absolute-form ("scheme://..."), "*"
 *   for OPTIONS only, or authority-form for CONNECT only.
 */
#include <string.h>

#include "framing.h"
#include "util.h"

#define FRAMING_MAX_EMPTY 4		/* empty lines before a request */
#define FRAMING_MAX_CHUNK_LINE 1024	/* bytes of a chunk-size line */
#define FRAMING_DEF_HEADER 16384
#define FRAMING_DEF_BODY (10ULL * 1024 * 1024)
#define FRAMING_DEF_FIELDS 100		/* Apache's LimitRequestFields, Envoy's
					 * max_headers_count */

/* Fine-grained parser states (f->st). */
enum {
	ST_START = 0,		/* before a request line */
	ST_START_LF,		/* CR of an empty line seen */
	ST_METHOD,
	ST_TARGET,
	ST_VERSION,
	ST_RL_LF,		/* CR after the version seen */
	ST_FIELD_START,		/* start of a header or trailer line */
	ST_FIELD_NAME,
	ST_FIELD_OWS,
	ST_FIELD_VALUE,
	ST_FIELD_LF,		/* CR after a field value seen */
	ST_SECTION_LF,		/* CR of the line ending a section seen */
	/* Everything above is counted against max_header_bytes. */
	ST_BODY,		/* Content-Length bytes */
	ST_CK_SIZE,
	ST_CK_SIZE_BWS,		/* whitespace after the size: ';' must follow */
	ST_CK_EXT_NAME0,	/* after ';' */
	ST_CK_EXT_NAME,
	ST_CK_EXT_NAME_BWS,	/* whitespace after a name: '=' or ';' */
	ST_CK_EXT_VAL0,		/* after '=' */
	ST_CK_EXT_VAL,
	ST_CK_EXT_QVAL,
	ST_CK_EXT_QPAIR,
	ST_CK_EXT_VAL_BWS,	/* whitespace after a value: ';' must follow */
	ST_CK_SIZE_LF,		/* CR at the end of the chunk-size line seen */
	ST_CK_DATA,
	ST_CK_DATA_CR,
	ST_CK_DATA_LF,
};
#define ST_LAST_HEAD ST_SECTION_LF

/* Flags (f->flags). */
#define F_TRAILER	0x0001	/* the field section is the trailer */
#define F_TE		0x0002	/* Transfer-Encoding: chunked seen */
#define F_QUERY		0x0004	/* '?' seen in the request-target */
#define F_VAL_LONG	0x0008	/* the copied value did not fit */
#define F_EXPECT_BAD	0x0010	/* an Expect other than 100-continue */

/* Fields we interpret (f->kind). */
enum {
	K_OTHER = 0,
	K_CONTENT_LENGTH,
	K_TRANSFER_ENCODING,
	K_HOST,
	K_ORIGIN,
	K_EXPECT,
};

/*
 * Character classes, RFC 9110 5.5 (field-vchar), RFC 3986.  tchar (RFC
 * 9110 5.6.2) is util_tchar, the one token table.
 */
#define C_VALUE		0x02	/* field-vchar, SP, HTAB, obs-text */
#define C_TARGET	0x04	/* any VCHAR or obs-text */
#define C_HEX		0x08
#define C_REGNAME	0x10	/* unreserved, sub-delims, '%' */
#define C_QDTEXT	0x20	/* RFC 9110 5.6.4 qdtext */

#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_VAL(c) ((c) == '\t' || ((c) >= 0x20 && (c) != 0x7f))
#define IS_TGT(c) ((c) > 0x20 && (c) != 0x7f)
#define IS_HEX(c) (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') ||		\
	((c) >= 'A' && (c) <= 'F'))
#define IS_REG(c) (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '-' ||		\
	(c) == '.' || (c) == '_' || (c) == '~' || (c) == '!' ||		\
	(c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' ||	\
	(c) == ')' || (c) == '*' || (c) == '+' || (c) == ',' ||		\
	(c) == ';' || (c) == '=' || (c) == '%')
#define IS_QDT(c) ((c) == '\t' || (c) == ' ' || (c) == 0x21 ||		\
	((c) >= 0x23 && (c) <= 0x5b) || ((c) >= 0x5d && (c) <= 0x7e) ||	\
	(c) >= 0x80)
#define CLS(c) ((IS_VAL(c) ? C_VALUE : 0) |				\
	(IS_TGT(c) ? C_TARGET : 0) | (IS_HEX(c) ? C_HEX : 0) |		\
	(IS_REG(c) ? C_REGNAME : 0) | (IS_QDT(c) ? C_QDTEXT : 0))
#define CLS4(c) CLS(c), CLS((c) + 1), CLS((c) + 2), CLS((c) + 3)
#define CLS16(c) CLS4(c), CLS4((c) + 4), CLS4((c) + 8), CLS4((c) + 12)
#define CLS64(c) CLS16(c), CLS16((c) + 16), CLS16((c) + 32), CLS16((c) + 48)

static const unsigned char cls[256] = {
	CLS64(0), CLS64(64), CLS64(128), CLS64(192)
};

/* Reasons, named in the JSON body of the error response. */
static const char R_BARE_CR[] = "bare CR";
static const char R_EMPTY[] = "too many empty lines before the request line";
static const char R_METHOD[] = "invalid method";
static const char R_METHOD_NS[] = "method not supported by the gateway";
static const char R_TARGET[] = "invalid request-target";
static const char R_VERSION[] = "invalid HTTP version";
static const char R_VERSION_NS[] = "HTTP version not supported";
static const char R_FOLD[] = "obs-fold or whitespace at the start of a "
    "header line";
static const char R_NAME_EMPTY[] = "empty header field name";
static const char R_NAME_WS[] = "whitespace in or before the colon of a "
    "header field name";
static const char R_NAME_CHAR[] = "invalid character in header field name";
static const char R_NO_COLON[] = "header line without a colon";
static const char R_VALUE_CHAR[] = "control character in header field value";
static const char R_CL_SEVERAL[] = "several Content-Length fields";
static const char R_CL_BAD[] = "invalid Content-Length";
static const char R_TE_SEVERAL[] = "several Transfer-Encoding fields";
static const char R_TE_BAD[] = "Transfer-Encoding other than chunked";
static const char R_TE_10[] = "Transfer-Encoding on HTTP/1.0";
static const char R_CL_TE[] = "both Content-Length and Transfer-Encoding";
static const char R_HOST_MISSING[] = "missing Host";
static const char R_HOST_SEVERAL[] = "several Host fields";
static const char R_HOST_BAD[] = "invalid Host";
static const char R_EXPECT[] = "unsupported Expect";
static const char R_HEAD_LARGE[] = "request header fields too large";
static const char R_FIELDS_MANY[] = "too many request header fields";
static const char R_BODY_LARGE[] = "Content-Length over the body limit";
static const char R_CHUNKED_LARGE[] = "chunked body over the body limit";
static const char R_CK_SIZE[] = "invalid chunk size";
static const char R_CK_OVERFLOW[] = "chunk size overflow";
static const char R_CK_LINE[] = "chunk-size line too long";
static const char R_CK_EXT[] = "invalid chunk extension";
static const char R_CK_CRLF[] = "missing CRLF after chunk data";

/* Mark the stream rejected (sticky); always NULL for the callers. */
static const unsigned char *
reject(struct framing_state *f, int status, const char *reason)
{
	f->phase = FRAMING_REJECTED;
	f->status = status;
	f->reason = reason;
	return NULL;
}

/* Initialise for a new connection. */
void
framing_init(struct framing_state *f, const struct framing_limits *limits)
{
	memset(f, 0, sizeof *f);
	if (limits != NULL)
		f->limits = *limits;
	if (f->limits.max_header_bytes == 0)
		f->limits.max_header_bytes = FRAMING_DEF_HEADER;
	if (f->limits.max_body_bytes == 0)
		f->limits.max_body_bytes = FRAMING_DEF_BODY;
	if (f->limits.max_fields == 0)
		f->limits.max_fields = FRAMING_DEF_FIELDS;
	f->phase = FRAMING_REQLINE;
	f->st = ST_START;
}

/* True when the current position is between requests. */
bool
framing_idle(const struct framing_state *f)
{
	return f->phase == FRAMING_REQLINE && f->st == ST_START;
}

/*
 * A method the gateway proxies: RFC 9110 9.1 allows any token; like
 * nginx we take upper-case letters, '-' and '_' (so "get" is not taken
 * for GET by a lenient backend), and at most 15 of them (the capture).
 */
static bool
method_supported(const char *m, size_t len)
{
	size_t i;

	if (len == 0 || len >= sizeof ((struct framing_state *)0)->method)
		return false;
	for (i = 0; i < len; i++) {
		if (!((m[i] >= 'A' && m[i] <= 'Z') || m[i] == '-' ||
		    m[i] == '_'))
			return false;
	}
	return true;
}

/* Forget everything about the previous request: a request line starts. */
static void
request_begin(struct framing_state *f)
{
	f->flags = 0;
	f->kind = K_OTHER;
	f->n_host = f->n_cl = 0;
	f->n_fields = 0;
	f->content_length = f->remaining = f->body_total = 0;
	f->chunk_size = 0;
	f->minor = 0;
	f->tok_len = f->method_len = f->path_len = 0;
	f->host_len = f->origin_len = 0;
	f->host[0] = f->origin[0] = f->path[0] = f->method[0] = '\0';
}

/* The whole request (head and body) is done: wait for the next one. */
static void
request_end(struct framing_state *f)
{
	f->st = ST_START;
	f->phase = FRAMING_REQLINE;
	f->head_bytes = 0;
	f->empty_lines = 0;
}

/* Append n bytes to a capture buffer, truncating; keeps it NUL-ended. */
static void
capture(char *dst, size_t size, size_t *len, const unsigned char *src,
    size_t n)
{
	if (*len + 1 < size) {
		size_t k = TS_MIN(n, size - 1 - *len);

		memcpy(dst + *len, src, k);
		*len += k;
		dst[*len] = '\0';
	}
}

/* Validate the request-target once the request line's second SP is seen
 * (RFC 9112 3.2).  Uses the captured target, which stops at '?'. */
static bool
target_ok(const struct framing_state *f)
{
	const char *t = f->path;
	bool connect = strcmp(f->method, "CONNECT") == 0;
	size_t i;

	if (f->tok_len == 0)
		return false;
	if (t[0] == '/')			/* origin-form, 3.2.1 */
		return !connect;
	if (t[0] == '*' && f->tok_len == 1)	/* asterisk-form, 3.2.4 */
		return strcmp(f->method, "OPTIONS") == 0;
	if (connect) {				/* authority-form, 3.2.3 */
		const char *colon;

		if ((f->flags & F_QUERY) || f->tok_len >= sizeof f->path)
			return false;
		colon = strrchr(t, ':');
		if (colon == NULL || colon[1] == '\0')
			return false;
		for (i = 0; t[i] != '\0'; i++)
			if (t[i] == '/' || t[i] == '#')
				return false;
		return true;
	}
	/* absolute-form, 3.2.2: scheme "://" ... (RFC 3986 3.1; only
	 * hierarchical URIs such as http: and https: name a resource we can
	 * route, and this keeps "host:port" out of non-CONNECT requests). */
	if (!IS_ALPHA(t[0]))
		return false;
	for (i = 1; t[i] != '\0' && t[i] != ':'; i++)
		if (!IS_ALPHA(t[i]) && !IS_DIGIT(t[i]) && t[i] != '+' &&
		    t[i] != '-' && t[i] != '.')
			return false;
	return strncmp(t + i, "://", 3) == 0;
}

/* The version is in f->value (f->tok_len bytes): RFC 9112 2.3. */
static const unsigned char *
version_end(struct framing_state *f)
{
	const char *v = f->value;

	if (f->tok_len == 8 && memcmp(v, "HTTP/", 5) == 0 &&
	    IS_DIGIT(v[5]) && v[6] == '.' && IS_DIGIT(v[7])) {
		if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
			return reject(f, 505, R_VERSION_NS);
		f->minor = v[7] - '0';
		f->st = ST_FIELD_START;
		f->phase = FRAMING_HEADERS;
		return (const unsigned char *)v;	/* non-NULL */
	}
	return reject(f, 400, R_VERSION);
}

/* RFC 9110 7.2 Host = uri-host [ ":" port ], RFC 3986 3.2.2. */
static bool
host_ok(const char *h, size_t len)
{
	size_t i = 0, port;

	if (len == 0)
		return false;
	if (h[0] == '[') {			/* IP-literal */
		for (i = 1; i < len && h[i] != ']'; i++)
			if (!IS_HEX(h[i]) && h[i] != ':' && h[i] != '.')
				return false;
		if (i == len || i == 1)
			return false;
		i++;
	} else {				/* IPv4address / reg-name */
		while (i < len && (cls[(unsigned char)h[i]] & C_REGNAME))
			i++;
		if (i == 0)
			return false;
	}
	if (i == len)
		return true;
	if (h[i] != ':')
		return false;
	for (port = ++i; i < len; i++)
		if (!IS_DIGIT(h[i]))
			return false;
	return len - port >= 1 && len - port <= 5;
}

/* Which field the lower-cased name in f->name is. */
static unsigned
field_kind(const struct framing_state *f)
{
	static const struct {
		const char *name;
		size_t len;
		unsigned kind;
	} known[] = {
		{ "content-length", 14, K_CONTENT_LENGTH },
		{ "transfer-encoding", 17, K_TRANSFER_ENCODING },
		{ "host", 4, K_HOST },
		{ "origin", 6, K_ORIGIN },
		{ "expect", 6, K_EXPECT },
	};
	size_t i;

	if (f->flags & F_TRAILER)	/* RFC 9110 6.5.1: never framing */
		return K_OTHER;
	for (i = 0; i < TS_NITEMS(known); i++)
		if (f->name_len == known[i].len &&
		    memcmp(f->name, known[i].name, known[i].len) == 0)
			return known[i].kind;
	return K_OTHER;
}

/* Where the value of an interpreted field is copied. */
static char *
value_buf(struct framing_state *f, size_t *size, size_t **len)
{
	switch (f->kind) {
	case K_HOST:
		*size = sizeof f->host;
		*len = &f->host_len;
		return f->host;
	case K_ORIGIN:
		*size = sizeof f->origin;
		*len = &f->origin_len;
		return f->origin;
	default:
		*size = sizeof f->value;
		*len = &f->value_len;
		return f->value;
	}
}

/* Copy one non-OWS value byte, with the OWS held back before it. */
static void
value_put(struct framing_state *f, unsigned char c)
{
	size_t size, *len;
	char *dst = value_buf(f, &size, &len);

	if (*len + f->value_ws + 1 >= size) {
		if (f->kind != K_ORIGIN)	/* origin: truncated capture */
			f->flags |= F_VAL_LONG;
		for (; f->value_ws > 0 && *len + 1 < size; f->value_ws--)
			dst[(*len)++] = ' ';
		dst[*len] = '\0';
		f->value_ws = 0;
		return;
	}
	for (; f->value_ws > 0; f->value_ws--)
		dst[(*len)++] = ' ';
	dst[(*len)++] = (char)c;
	dst[*len] = '\0';
}

/* Case-insensitive equality of the copied value with a literal. */
static bool
value_is(const struct framing_state *f, const char *lit)
{
	size_t i, n = strlen(lit);

	if (f->value_len != n || (f->flags & F_VAL_LONG))
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)f->value[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c != (unsigned char)lit[i])
			return false;
	}
	return true;
}

/* A complete field line: apply the framing rules (RFC 9112 6). */
static const unsigned char *
field_end(struct framing_state *f)
{
	uint64_t v = 0;
	size_t i;

	/*
	 * RFC 6585 5: 431 for too many fields as for too many bytes.  conn.c
	 * indexes every field of a head, so this bounds that index (trailer
	 * fields are dropped, not indexed: they are not counted).
	 */
	if (!(f->flags & F_TRAILER) && ++f->n_fields > f->limits.max_fields)
		return reject(f, 431, R_FIELDS_MANY);
	switch (f->kind) {
	case K_CONTENT_LENGTH:		/* RFC 9112 6.3, RFC 9110 8.6 */
		if (f->n_cl++ > 0)
			return reject(f, 400, R_CL_SEVERAL);
		if (f->flags & F_TE)
			return reject(f, 400, R_CL_TE);
		if (f->value_len == 0 || (f->flags & F_VAL_LONG))
			return reject(f, 400, R_CL_BAD);
		for (i = 0; i < f->value_len; i++) {
			unsigned d = (unsigned)(f->value[i] - '0');

			if (!IS_DIGIT(f->value[i]) || v > (UINT64_MAX - d) / 10)
				return reject(f, 400, R_CL_BAD);
			v = v * 10 + d;
		}
		f->content_length = v;
		break;
	case K_TRANSFER_ENCODING:	/* RFC 9112 6.1 */
		if (f->flags & F_TE)
			return reject(f, 400, R_TE_SEVERAL);
		if (f->minor == 0)
			return reject(f, 400, R_TE_10);
		if (!value_is(f, "chunked"))
			return reject(f, 400, R_TE_BAD);
		if (f->n_cl > 0)
			return reject(f, 400, R_CL_TE);
		f->flags |= F_TE;
		break;
	case K_HOST:			/* RFC 9112 3.2 */
		if (f->n_host++ > 0)
			return reject(f, 400, R_HOST_SEVERAL);
		if ((f->flags & F_VAL_LONG) || !host_ok(f->host, f->host_len))
			return reject(f, 400, R_HOST_BAD);
		break;
	case K_EXPECT:			/* RFC 9110 10.1.1 */
		if (!value_is(f, "100-continue"))
			f->flags |= F_EXPECT_BAD;
		break;
	default:
		break;
	}
	f->st = ST_FIELD_START;
	return (const unsigned char *)f;	/* non-NULL */
}

/* The empty line after the header section: decide the body. */
static const unsigned char *
head_end(struct framing_state *f)
{
	if (f->minor == 1 && f->n_host == 0)
		return reject(f, 400, R_HOST_MISSING);
	if (!(f->flags & F_TE) &&
	    f->content_length > f->limits.max_body_bytes)
		return reject(f, 413, R_BODY_LARGE);
	if (f->flags & F_EXPECT_BAD)
		return reject(f, 417, R_EXPECT);
	f->requests++;
	if (f->flags & F_TE) {
		f->st = ST_CK_SIZE;
		f->phase = FRAMING_BODY_CHUNKED;
		f->chunk_size = 0;
		f->tok_len = f->line_len = 0;
	} else if (f->content_length > 0) {
		f->st = ST_BODY;
		f->phase = FRAMING_BODY_LENGTH;
		f->remaining = f->content_length;
	} else
		request_end(f);
	return (const unsigned char *)f;	/* non-NULL */
}

/*
 * Parse head bytes (request line, header or trailer section) in [p, end).
 * Returns where it stopped -- at end, or just after the section's last
 * byte -- or NULL once rejected.  Bytes are added to head_bytes unless the
 * request ended (then head_bytes starts again at 0).
 */
static const unsigned char *
head_parse(struct framing_state *f, const unsigned char *p,
    const unsigned char *end)
{
	const unsigned char *start = p, *q;
	unsigned char c;

	while (p < end) {
		c = *p;
		switch (f->st) {
		case ST_START:
			if (c == '\r' || c == '\n') {
				if (++f->empty_lines > FRAMING_MAX_EMPTY)
					return reject(f, 400, R_EMPTY);
				f->st = c == '\r' ? ST_START_LF : ST_START;
				p++;
				break;
			}
			request_begin(f);
			f->req_start = f->fed + (uint64_t)((const char *)p -
			    f->feed_base);
			f->st = ST_METHOD;
			break;
		case ST_START_LF:
			if (c != '\n')
				return reject(f, 400, R_BARE_CR);
			f->st = ST_START;
			p++;
			break;
		case ST_METHOD:		/* RFC 9112 3.1: method = token */
			for (q = p; q < end && util_is_tchar(*q); q++)
				;
			capture(f->method, sizeof f->method, &f->method_len,
			    p, (size_t)(q - p));
			f->tok_len += (size_t)(q - p);
			if ((p = q) == end)
				break;
			if (*p != ' ' || f->tok_len == 0)
				return reject(f, 400, R_METHOD);
			/* WebDAV, PURGE, ... go upstream; odd ones get 501. */
			if (!method_supported(f->method, f->tok_len))
				return reject(f, 501, R_METHOD_NS);
			f->tok_len = 0;
			f->st = ST_TARGET;
			p++;
			break;
		case ST_TARGET:
			for (q = p; q < end && (cls[*q] & C_TARGET); q++)
				;
			if (!(f->flags & F_QUERY) && q > p) {
				const unsigned char *qm;

				qm = memchr(p, '?', (size_t)(q - p));
				capture(f->path, sizeof f->path, &f->path_len,
				    p, (size_t)((qm != NULL ? qm : q) - p));
				if (qm != NULL)
					f->flags |= F_QUERY;
			}
			f->tok_len += (size_t)(q - p);
			if ((p = q) == end)
				break;
			if (*p != ' ' || !target_ok(f))
				return reject(f, 400, R_TARGET);
			f->tok_len = 0;
			f->st = ST_VERSION;
			p++;
			break;
		case ST_VERSION:
			if (c == '\r') {
				f->st = ST_RL_LF;
				p++;
				break;
			}
			if (c == '\n') {
				p++;
				if (version_end(f) == NULL)
					return NULL;
				break;
			}
			if (f->tok_len >= 8)
				return reject(f, 400, R_VERSION);
			f->value[f->tok_len++] = (char)c;
			p++;
			break;
		case ST_RL_LF:
			if (c != '\n')
				return reject(f, 400, R_BARE_CR);
			p++;
			if (version_end(f) == NULL)
				return NULL;
			break;
		case ST_FIELD_START:
			if (c == '\r') {
				f->st = ST_SECTION_LF;
				p++;
				break;
			}
			if (c == '\n') {
				p++;
				goto section_end;
			}
			if (c == ' ' || c == '\t')	/* RFC 9112 5.2, 2.2 */
				return reject(f, 400, R_FOLD);
			if (c == ':')
				return reject(f, 400, R_NAME_EMPTY);
			if (!util_is_tchar(c))
				return reject(f, 400, R_NAME_CHAR);
			f->name_len = 0;
			f->st = ST_FIELD_NAME;
			break;
		case ST_FIELD_NAME:	/* RFC 9110 5.1: field-name = token */
			for (q = p; q < end && util_is_tchar(*q); q++) {
				if (f->name_len < sizeof f->name - 1) {
					c = *q;
					if (c >= 'A' && c <= 'Z')
						c = (unsigned char)(c + 32);
					f->name[f->name_len] = (char)c;
				}
				f->name_len++;
			}
			if ((p = q) == end)
				break;
			c = *p++;
			if (c == ':') {
				if (f->name_len < sizeof f->name)
					f->name[f->name_len] = '\0';
				f->kind = field_kind(f);
				f->value_len = f->value_ws = 0;
				f->flags &= ~(unsigned)F_VAL_LONG;
				if (f->kind == K_HOST) {
					f->host_len = 0;
					f->host[0] = '\0';
				}
				f->st = ST_FIELD_OWS;
				break;
			}
			if (c == ' ' || c == '\t')	/* RFC 9112 5.1 */
				return reject(f, 400, R_NAME_WS);
			if (c == '\r' || c == '\n')
				return reject(f, 400, R_NO_COLON);
			return reject(f, 400, R_NAME_CHAR);
		case ST_FIELD_OWS:
			if (c == ' ' || c == '\t') {
				p++;
				break;
			}
			f->st = ST_FIELD_VALUE;
			break;
		case ST_FIELD_VALUE:	/* RFC 9110 5.5 */
			if (f->kind == K_OTHER) {
				for (q = p; q < end && (cls[*q] & C_VALUE); q++)
					;
				p = q;
			} else {
				for (; p < end && (cls[*p] & C_VALUE); p++) {
					if (*p == ' ' || *p == '\t')
						f->value_ws++;
					else
						value_put(f, *p);
				}
			}
			if (p == end)
				break;
			c = *p++;
			if (c == '\r') {
				f->st = ST_FIELD_LF;
				break;
			}
			if (c != '\n')
				return reject(f, 400, R_VALUE_CHAR);
			if (field_end(f) == NULL)
				return NULL;
			break;
		case ST_FIELD_LF:
			if (c != '\n')
				return reject(f, 400, R_BARE_CR);
			p++;
			if (field_end(f) == NULL)
				return NULL;
			break;
		case ST_SECTION_LF:
			if (c != '\n')
				return reject(f, 400, R_BARE_CR);
			p++;
			goto section_end;
		default:
			return reject(f, 500, "framing: bad state");
		}
	}
	f->head_bytes += (size_t)(p - start);
	return p;

section_end:
	f->head_bytes += (size_t)(p - start);
	if (f->flags & F_TRAILER) {	/* RFC 9112 7.1.2 */
		request_end(f);
		return p;
	}
	if (head_end(f) == NULL)
		return NULL;
	return p;
}

/* The chunk-size line is complete (RFC 9112 7.1). */
static const unsigned char *
chunk_line_end(struct framing_state *f)
{
	uint64_t size = f->chunk_size;

	if (size == 0) {		/* last-chunk: the trailer section */
		f->flags |= F_TRAILER;
		f->st = ST_FIELD_START;
		return (const unsigned char *)f;
	}
	if (size > f->limits.max_body_bytes - f->body_total)
		return reject(f, 413, R_CHUNKED_LARGE);
	f->body_total += size;
	f->remaining = size;
	f->st = ST_CK_DATA;
	return (const unsigned char *)f;
}

/* One byte of a chunk extension (RFC 9112 7.1.1):
 * chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted ) ] ). */
static const unsigned char *
chunk_ext_byte(struct framing_state *f, unsigned char c)
{
	bool ws = c == ' ' || c == '\t', tch = util_is_tchar(c);

	switch (f->st) {
	case ST_CK_SIZE_BWS:
		if (ws)
			return (const unsigned char *)f;
		if (c != ';')
			return reject(f, 400, R_CK_SIZE);
		f->st = ST_CK_EXT_NAME0;
		return (const unsigned char *)f;
	case ST_CK_EXT_NAME0:
		if (ws)
			return (const unsigned char *)f;
		if (!tch)
			return reject(f, 400, R_CK_EXT);
		f->st = ST_CK_EXT_NAME;
		return (const unsigned char *)f;
	case ST_CK_EXT_NAME:
	case ST_CK_EXT_NAME_BWS:
		if (tch && f->st == ST_CK_EXT_NAME)
			return (const unsigned char *)f;
		if (ws)
			f->st = ST_CK_EXT_NAME_BWS;
		else if (c == '=')
			f->st = ST_CK_EXT_VAL0;
		else if (c == ';')
			f->st = ST_CK_EXT_NAME0;
		else
			return reject(f, 400, R_CK_EXT);
		return (const unsigned char *)f;
	case ST_CK_EXT_VAL0:
		if (ws)
			return (const unsigned char *)f;
		if (c == '"')
			f->st = ST_CK_EXT_QVAL;
		else if (tch)
			f->st = ST_CK_EXT_VAL;
		else
			return reject(f, 400, R_CK_EXT);
		return (const unsigned char *)f;
	case ST_CK_EXT_VAL:
	case ST_CK_EXT_VAL_BWS:
		if (tch && f->st == ST_CK_EXT_VAL)
			return (const unsigned char *)f;
		if (ws)
			f->st = ST_CK_EXT_VAL_BWS;
		else if (c == ';')
			f->st = ST_CK_EXT_NAME0;
		else
			return reject(f, 400, R_CK_EXT);
		return (const unsigned char *)f;
	case ST_CK_EXT_QVAL:	/* RFC 9110 5.6.4 */
		if (c == '"')
			f->st = ST_CK_EXT_VAL_BWS;
		else if (c == '\\')
			f->st = ST_CK_EXT_QPAIR;
		else if (!(cls[c] & C_QDTEXT))
			return reject(f, 400, R_CK_EXT);
		return (const unsigned char *)f;
	case ST_CK_EXT_QPAIR:
		if (c != '\t' && (c < 0x20 || c == 0x7f))
			return reject(f, 400, R_CK_EXT);
		f->st = ST_CK_EXT_QVAL;
		return (const unsigned char *)f;
	default:
		return reject(f, 500, "framing: bad state");
	}
}

/*
 * Parse body bytes in [p, end): Content-Length data, or a chunked body up
 * to its last-chunk.  Returns where it stopped (at end, or where the head
 * parser must take over again), or NULL once rejected.
 */
static const unsigned char *
body_parse(struct framing_state *f, const unsigned char *p,
    const unsigned char *end)
{
	unsigned char c;
	uint64_t n;

	while (p < end) {
		c = *p;
		switch (f->st) {
		case ST_BODY:
			n = TS_MIN(f->remaining, (uint64_t)(end - p));
			p += n;
			if ((f->remaining -= n) == 0) {
				request_end(f);
				return p;
			}
			break;
		case ST_CK_DATA:
			n = TS_MIN(f->remaining, (uint64_t)(end - p));
			p += n;
			if ((f->remaining -= n) == 0)
				f->st = ST_CK_DATA_CR;
			break;
		case ST_CK_DATA_CR:
			if (c != '\r' && c != '\n')
				return reject(f, 400, R_CK_CRLF);
			f->st = c == '\r' ? ST_CK_DATA_LF : ST_CK_SIZE;
			f->chunk_size = 0;
			f->tok_len = f->line_len = 0;
			p++;
			break;
		case ST_CK_DATA_LF:
			if (c != '\n')
				return reject(f, 400, R_CK_CRLF);
			f->st = ST_CK_SIZE;
			p++;
			break;
		default:
			/* The chunk-size line, byte by byte: it is short. */
			if (++f->line_len > FRAMING_MAX_CHUNK_LINE)
				return reject(f, 400, R_CK_LINE);
			p++;
			if (f->st == ST_CK_SIZE_LF) {
				if (c != '\n')
					return reject(f, 400, R_BARE_CR);
				if (chunk_line_end(f) == NULL)
					return NULL;
				if (f->st == ST_FIELD_START)
					return p;
				break;
			}
			if (c == '\r' || c == '\n') {
				if (f->tok_len == 0 || f->st == ST_CK_SIZE_BWS ||
				    f->st == ST_CK_EXT_NAME0 ||
				    f->st == ST_CK_EXT_NAME_BWS ||
				    f->st == ST_CK_EXT_VAL0 ||
				    f->st == ST_CK_EXT_VAL_BWS ||
				    f->st == ST_CK_EXT_QVAL ||
				    f->st == ST_CK_EXT_QPAIR)
					return reject(f, 400,
					    f->st == ST_CK_SIZE ||
					    f->st == ST_CK_SIZE_BWS ?
					    R_CK_SIZE : R_CK_EXT);
				if (c == '\r') {
					f->st = ST_CK_SIZE_LF;
					break;
				}
				if (chunk_line_end(f) == NULL)
					return NULL;
				if (f->st == ST_FIELD_START)
					return p;
				break;
			}
			if (f->st == ST_CK_SIZE) {
				if (cls[c] & C_HEX) {
					if (f->chunk_size >> 60 != 0)
						return reject(f, 400,
						    R_CK_OVERFLOW);
					f->chunk_size = f->chunk_size << 4 |
					    (uint64_t)(IS_DIGIT(c) ? c - '0' :
					    (c | 0x20) - 'a' + 10);
					f->tok_len++;
					break;
				}
				if (f->tok_len == 0)
					return reject(f, 400, R_CK_SIZE);
				if (c == ';') {
					f->st = ST_CK_EXT_NAME0;
					break;
				}
				if (c != ' ' && c != '\t')
					return reject(f, 400, R_CK_SIZE);
				f->st = ST_CK_SIZE_BWS;
				break;
			}
			if (chunk_ext_byte(f, c) == NULL)
				return NULL;
			break;
		}
	}
	return p;
}

/* Feed bytes that just arrived, in order: 0 while acceptable, else -1. */
int
framing_feed(struct framing_state *f, const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf, *end = p + len;

	if (f->phase == FRAMING_REJECTED)
		return -1;
	f->feed_base = buf;
	while (p < end) {
		if (f->st <= ST_LAST_HEAD) {
			size_t room;
			const unsigned char *lim;

			/* RFC 9110 15.5.20 / 6585: the limit is checked at
			 * the byte that exceeds it, so splits do not matter. */
			if (f->head_bytes >= f->limits.max_header_bytes) {
				reject(f, 431, R_HEAD_LARGE);
				f->fed += len;
				return -1;
			}
			room = f->limits.max_header_bytes - f->head_bytes;
			lim = (size_t)(end - p) > room ? p + room : end;
			p = head_parse(f, p, lim);
		} else
			p = body_parse(f, p, end);
		if (p == NULL) {
			f->fed += len;
			return -1;
		}
	}
	f->fed += len;
	return 0;
}

/*
 * The indexer and the decoder below run only on bytes framing_feed()
 * accepted, so they trust the grammar and only look for boundaries:
 * LF ends a line (a CR before it is part of the line ending), the first
 * ':' ends a field name, SP and HTAB around a value are OWS.
 */

/* Length of the complete head at buf, or 0. */
size_t
framing_head_len(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *lf;

	/* Leading empty lines (RFC 9112 2.2). */
	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	while (p < end && (lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p = lf + 1;
		if (p < end && *p == '\n')
			return (size_t)(p + 1 - buf);
		if (p + 1 < end && p[0] == '\r' && p[1] == '\n')
			return (size_t)(p + 2 - buf);
	}
	return 0;
}

/* One line [p, lf) without its CR; returns the length. */
static size_t
line_len(const char *p, const char *lf)
{
	size_t n = (size_t)(lf - p);

	if (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

int
framing_index(char *buf, size_t len, struct framing_head *h,
    struct http_field *fields, size_t max)
{
	char *p = buf, *end, *lf, *sp, *colon, *v, *ve;
	size_t n, nf = 0;

	memset(h, 0, sizeof *h);
	if ((h->len = framing_head_len(buf, len)) == 0)
		return -1;
	end = buf + h->len;
	while (*p == '\r' || *p == '\n')
		p++;
	/* Count the fields first: nothing is written when they do not fit. */
	lf = memchr(p, '\n', (size_t)(end - p));
	for (v = lf + 1; v < end; v = ve + 1) {
		ve = memchr(v, '\n', (size_t)(end - v));
		if (line_len(v, ve) > 0)
			nf++;
	}
	h->n_fields = nf;
	if (nf > max)
		return -1;
	h->fields = fields;

	/* Request line: method SP target SP HTTP/1.d */
	n = line_len(p, lf);
	sp = memchr(p, ' ', n);
	h->method = p;
	h->method_len = (size_t)(sp - p);
	*sp = '\0';
	h->target = sp + 1;
	sp = memchr(h->target, ' ', (size_t)(p + n - h->target));
	h->target_len = (size_t)(sp - h->target);
	*sp = '\0';
	h->minor = sp[8] - '0';		/* " HTTP/1.d" */
	p[n] = '\0';

	nf = 0;
	for (p = lf + 1; p < end; p = lf + 1) {
		struct http_field *f;

		lf = memchr(p, '\n', (size_t)(end - p));
		if ((n = line_len(p, lf)) == 0)
			break;
		f = &fields[nf++];
		colon = memchr(p, ':', n);
		f->name = p;
		f->name_len = (size_t)(colon - p);
		*colon = '\0';
		v = colon + 1;
		ve = p + n;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		*ve = '\0';
		f->value = v;
		f->value_len = (size_t)(ve - v);
	}
	return 0;
}

/* Decoder states. */
enum {
	DC_SIZE = 0,		/* hex digits of a chunk size */
	DC_EXT,			/* rest of the size line, to its LF */
	DC_DATA,
	DC_DATA_END,		/* the CRLF after chunk data, to its LF */
	DC_TRAILER,		/* trailer lines until an empty one */
	DC_DONE,
};

void
framing_dechunk_init(struct framing_dechunk *d)
{
	memset(d, 0, sizeof *d);
}

size_t
framing_dechunk(struct framing_dechunk *d, const char *buf, size_t len,
    framing_data_fn *fn, void *arg, bool *done)
{
	const char *p = buf, *end = buf + len;

	*done = d->st == DC_DONE;
	while (p < end && d->st != DC_DONE) {
		char c = *p;

		switch (d->st) {
		case DC_SIZE:
			if (c >= '0' && c <= '9')
				d->left = d->left * 16 + (uint64_t)(c - '0');
			else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
				d->left = d->left * 16 +
				    (uint64_t)((c | 0x20) - 'a' + 10);
			else {
				d->st = DC_EXT;
				continue;
			}
			p++;
			break;
		case DC_EXT:
			p++;
			if (c == '\n') {
				d->st = d->left > 0 ? DC_DATA : DC_TRAILER;
				d->line_len = 0;
			}
			break;
		case DC_DATA: {
			size_t take = (size_t)(end - p);

			if ((uint64_t)take > d->left)
				take = (size_t)d->left;
			fn(arg, p, take);
			p += take;
			if ((d->left -= take) == 0)
				d->st = DC_DATA_END;
			break;
		}
		case DC_DATA_END:
			p++;
			if (c == '\n')
				d->st = DC_SIZE;
			break;
		case DC_TRAILER:
			p++;
			if (c == '\n') {
				if (d->line_len == 0)
					d->st = DC_DONE;
				d->line_len = 0;
			} else if (c != '\r')
				d->line_len++;
			break;
		default:
			break;
		}
	}
	*done = d->st == DC_DONE;
	return (size_t)(p - buf);
}
