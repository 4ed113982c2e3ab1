/*
 * h2_msg.c -- the rules an HTTP/2 request head and body must follow
 * before they become an HTTP/1.1 request upstream (h2_msg.h).
 *
 * RFC 9113 8.2.1: field names are lower case and tokens, values carry no
 * NUL, CR or LF and no leading or trailing whitespace; 8.2.2: no
 * connection-specific fields, TE only "trailers"; 8.3: the four request
 * pseudo-headers, each once, before every regular field, :method, :scheme
 * and :path present (CONNECT aside), :authority without userinfo and
 * agreeing with Host; 8.1.1: content-length equal to the sum of the DATA
 * payloads.  On top of the RFC, the bytes that would be ambiguous in the
 * HTTP/1.1 request we write are refused as the HTTP/1.1 side's framing
 * guard refuses them: control bytes in values (RFC 9110 5.5 allows only
 * VCHAR, obs-text, SP and HTAB), a :path byte outside VCHAR, a :method
 * that is not a token.  Each of these is one of the "HTTP/2 downgrade"
 * request smuggling vectors published against other proxies (a CRLF or
 * a space in :path or :method writes a second request line; a
 * content-length or transfer-encoding that disagrees with the DATA
 * frames desyncs the backend).
 */
#include <string.h>

#include "h2_msg.h"
#include "util.h"

#define BIT(k) (1u << (k))

static const struct {
	const char *reason;
	const char *class;
} h2_msg_text[H2_MSG_NVERDICTS] = {
	[H2_MSG_OK] = { "ok", "ok" },
	[H2_MSG_NAME_EMPTY] = { "empty field name", "field_name" },
	[H2_MSG_NAME_UPPER] = { "upper-case field name (RFC 9113 8.2.1)",
	    "field_name" },
	[H2_MSG_NAME_CHAR] = { "invalid byte in a field name", "field_name" },
	[H2_MSG_VALUE_CRLFNUL] = { "CR, LF or NUL in a field value "
	    "(RFC 9113 8.2.1)", "field_value" },
	[H2_MSG_VALUE_CTL] = { "control byte in a field value",
	    "field_value" },
	[H2_MSG_VALUE_WS] = { "leading or trailing whitespace in a field "
	    "value (RFC 9113 8.2.1)", "field_value" },
	[H2_MSG_PSEUDO_AFTER] = { "pseudo-header after a regular field "
	    "(RFC 9113 8.3)", "pseudo_header" },
	[H2_MSG_PSEUDO_DUP] = { "duplicated pseudo-header (RFC 9113 8.3.1)",
	    "pseudo_header" },
	[H2_MSG_PSEUDO_UNKNOWN] = { "unknown pseudo-header (RFC 9113 8.3)",
	    "pseudo_header" },
	[H2_MSG_PSEUDO_MISSING] = { "missing :method, :scheme or :path "
	    "(RFC 9113 8.3.1)", "pseudo_header" },
	[H2_MSG_PSEUDO_EMPTY] = { "empty pseudo-header value "
	    "(RFC 9113 8.3.1)", "pseudo_header" },
	[H2_MSG_METHOD] = { ":method is not a token", "pseudo_header" },
	[H2_MSG_SCHEME] = { ":scheme is not http or https",
	    "pseudo_header" },
	[H2_MSG_PATH] = { ":path is not an origin-form target",
	    "pseudo_header" },
	[H2_MSG_AUTHORITY] = { "invalid :authority (RFC 9113 8.3.1)",
	    "authority" },
	[H2_MSG_NO_AUTHORITY] = { "neither :authority nor host",
	    "authority" },
	[H2_MSG_HOST_MISMATCH] = { ":authority disagrees with host "
	    "(RFC 9113 8.3.1)", "authority" },
	[H2_MSG_HOST_DUP] = { "more than one host field", "authority" },
	[H2_MSG_CONNECTION] = { "connection-specific field "
	    "(RFC 9113 8.2.2)", "connection_specific" },
	[H2_MSG_TE] = { "te other than \"trailers\" (RFC 9113 8.2.2)", "te" },
	[H2_MSG_CL_INVALID] = { "invalid content-length", "content_length" },
	[H2_MSG_CL_MISMATCH] = { "content-length disagrees with the DATA "
	    "frames (RFC 9113 8.1.1)", "content_length" },
	[H2_MSG_CONNECT] = { "CONNECT is not proxied by this gateway",
	    "method" },
	[H2_MSG_METHOD_NS] = { "method not supported by the gateway",
	    "method" },
	[H2_MSG_TRAILER_PSEUDO] = { "pseudo-header in a trailer section "
	    "(RFC 9113 8.1)", "trailers" },
	[H2_MSG_TRAILER_NO_END] = { "trailer section without END_STREAM "
	    "(RFC 9113 8.1)", "trailers" },
};

const char *
h2_msg_reason(enum h2_msg_verdict v)
{
	return (unsigned)v < H2_MSG_NVERDICTS ? h2_msg_text[v].reason : "?";
}

const char *
h2_msg_class(enum h2_msg_verdict v)
{
	return (unsigned)v < H2_MSG_NVERDICTS ? h2_msg_text[v].class : "?";
}

int
h2_msg_status(enum h2_msg_verdict v)
{
	/* RFC 9110 15.6.2: a method the server does not support. */
	return v == H2_MSG_CONNECT || v == H2_MSG_METHOD_NS ? 501 : 400;
}

void
h2_msg_init(struct h2_msg *m)
{
	memset(m, 0, sizeof *m);
}

static bool
h2_msg_eq(const uint8_t *p, size_t len, const char *s)
{
	size_t n = strlen(s);

	return len == n && memcmp(p, s, n) == 0;
}

/*
 * The class of a value byte: 0 allowed (VCHAR, obs-text, SP, HTAB), 1 CR,
 * LF or NUL, 2 another control byte.  One table lookup a byte: this runs
 * on every byte of every field of every stream (it was two passes, the
 * largest of h2.c's own costs in a profile of the traced GET).
 */
static const uint8_t h2_msg_vclass[256] = {
	[0x00] = 1, [0x01] = 2, [0x02] = 2, [0x03] = 2, [0x04] = 2,
	[0x05] = 2, [0x06] = 2, [0x07] = 2, [0x08] = 2, [0x0a] = 1,
	[0x0b] = 2, [0x0c] = 2, [0x0d] = 1, [0x0e] = 2, [0x0f] = 2,
	[0x10] = 2, [0x11] = 2, [0x12] = 2, [0x13] = 2, [0x14] = 2,
	[0x15] = 2, [0x16] = 2, [0x17] = 2, [0x18] = 2, [0x19] = 2,
	[0x1a] = 2, [0x1b] = 2, [0x1c] = 2, [0x1d] = 2, [0x1e] = 2,
	[0x1f] = 2, [0x7f] = 2,
};

/* RFC 9110 5.5 field-value, and RFC 9113 8.2.1's stricter edges. */
static enum h2_msg_verdict
h2_msg_value(const uint8_t *v, size_t len)
{
	unsigned worst = 0;
	size_t i;

	/* CR, LF or NUL anywhere wins over another control byte. */
	for (i = 0; i < len; i++)
		worst |= h2_msg_vclass[v[i]];
	if (worst & 1)
		return H2_MSG_VALUE_CRLFNUL;
	if (worst & 2)
		return H2_MSG_VALUE_CTL;
	if (len > 0 && (v[0] == ' ' || v[0] == '\t' || v[len - 1] == ' ' ||
	    v[len - 1] == '\t'))
		return H2_MSG_VALUE_WS;
	return H2_MSG_OK;
}

/* RFC 3986 reg-name / IP-literal / IPv4 with an optional port; no '@'. */
static bool
h2_msg_authority_ok(const uint8_t *p, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = p[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (strchr("-._~!$&'()*+,;=%:[]", c) == NULL || c == '\0')
			return false;
	}
	return true;
}

/* RFC 9113 8.2.1: a lower-case token (from byte i on). */
static enum h2_msg_verdict
h2_msg_name(const uint8_t *name, size_t name_len, size_t i)
{
	if (name_len == 0)
		return H2_MSG_NAME_EMPTY;
	for (; i < name_len; i++) {
		if (name[i] >= 'A' && name[i] <= 'Z')
			return H2_MSG_NAME_UPPER;
		if (!util_is_tchar(name[i]))
			return H2_MSG_NAME_CHAR;
	}
	return H2_MSG_OK;
}

/* RFC 9113 8.2.2: fields HTTP/2 does not carry (TE aside). */
static bool
h2_msg_conn_specific(const uint8_t *name, size_t name_len)
{
	return h2_msg_eq(name, name_len, "connection") ||
	    h2_msg_eq(name, name_len, "keep-alive") ||
	    h2_msg_eq(name, name_len, "proxy-connection") ||
	    h2_msg_eq(name, name_len, "transfer-encoding") ||
	    h2_msg_eq(name, name_len, "upgrade");
}

enum h2_msg_verdict
h2_msg_field(struct h2_msg *m, const uint8_t *name, size_t name_len,
    const uint8_t *value, size_t value_len, enum h2_msg_kind *kind)
{
	enum h2_msg_verdict v;
	enum h2_msg_kind k;
	size_t i;

	*kind = H2_MSG_K_FIELD;
	if (name_len == 0)
		return H2_MSG_NAME_EMPTY;
	if ((v = h2_msg_name(name, name_len, name[0] == ':' ? 1 : 0)) !=
	    H2_MSG_OK)
		return v;
	if ((v = h2_msg_value(value, value_len)) != H2_MSG_OK)
		return v;
	if (name[0] == ':') {
		if (m->regular_seen)
			return H2_MSG_PSEUDO_AFTER;
		if (h2_msg_eq(name, name_len, ":method"))
			k = H2_MSG_K_METHOD;
		else if (h2_msg_eq(name, name_len, ":scheme"))
			k = H2_MSG_K_SCHEME;
		else if (h2_msg_eq(name, name_len, ":authority"))
			k = H2_MSG_K_AUTHORITY;
		else if (h2_msg_eq(name, name_len, ":path"))
			k = H2_MSG_K_PATH;
		else
			return H2_MSG_PSEUDO_UNKNOWN;
		if (m->seen & BIT(k))
			return H2_MSG_PSEUDO_DUP;
		m->seen |= BIT(k);
		if (value_len == 0 && k != H2_MSG_K_AUTHORITY)
			return H2_MSG_PSEUDO_EMPTY;
		switch (k) {
		case H2_MSG_K_METHOD:
			if (!util_is_token((const char *)value, value_len))
				return H2_MSG_METHOD;
			/*
			 * As the HTTP/1.1 side (framing.c): upper-case
			 * letters, '-' and '_', at most 15 (so "get" is not
			 * taken for GET by a lenient backend, and the
			 * pipeline's copy of the name is never cut).
			 */
			if (value_len > 15)
				return H2_MSG_METHOD_NS;
			for (i = 0; i < value_len; i++) {
				if (!((value[i] >= 'A' && value[i] <= 'Z') ||
				    value[i] == '-' || value[i] == '_'))
					return H2_MSG_METHOD_NS;
			}
			m->is_connect = h2_msg_eq(value, value_len,
			    "CONNECT");
			m->is_options = h2_msg_eq(value, value_len,
			    "OPTIONS");
			break;
		case H2_MSG_K_SCHEME:
			if (!h2_msg_eq(value, value_len, "http") &&
			    !h2_msg_eq(value, value_len, "https"))
				return H2_MSG_SCHEME;
			break;
		case H2_MSG_K_AUTHORITY:
			if (!h2_msg_authority_ok(value, value_len))
				return H2_MSG_AUTHORITY;
			m->authority = (const char *)value;
			m->authority_len = value_len;
			break;
		default:
			/* :path: VCHAR only; its form is checked at the end,
			 * once :method is known. */
			for (i = 0; i < value_len; i++) {
				if (value[i] <= 0x20 || value[i] >= 0x7f)
					return H2_MSG_PATH;
			}
			m->path = (const char *)value;
			m->path_len = value_len;
			break;
		}
		*kind = k;
		return H2_MSG_OK;
	}
	m->regular_seen = true;
	switch (name[0]) {
	case 'c':
		if (h2_msg_eq(name, name_len, "connection"))
			return H2_MSG_CONNECTION;
		if (h2_msg_eq(name, name_len, "cookie")) {
			*kind = H2_MSG_K_COOKIE;
			return H2_MSG_OK;
		}
		if (h2_msg_eq(name, name_len, "content-length")) {
			uint64_t n = 0;

			if (value_len == 0 || value_len > 19)
				return H2_MSG_CL_INVALID;
			for (i = 0; i < value_len; i++) {
				if (value[i] < '0' || value[i] > '9')
					return H2_MSG_CL_INVALID;
				n = n * 10 + (uint64_t)(value[i] - '0');
			}
			if (m->has_cl && m->cl != n)
				return H2_MSG_CL_INVALID;
			m->has_cl = true;
			m->cl = n;
			*kind = H2_MSG_K_CONTENT_LENGTH;
			return H2_MSG_OK;
		}
		break;
	case 'h':
		if (h2_msg_eq(name, name_len, "host")) {
			if (m->host != NULL)
				return H2_MSG_HOST_DUP;
			if (!h2_msg_authority_ok(value, value_len))
				return H2_MSG_AUTHORITY;
			m->host = (const char *)value;
			m->host_len = value_len;
			*kind = H2_MSG_K_HOST;
			return H2_MSG_OK;
		}
		break;
	case 'k':
		if (h2_msg_eq(name, name_len, "keep-alive"))
			return H2_MSG_CONNECTION;
		break;
	case 'p':
		if (h2_msg_eq(name, name_len, "proxy-connection"))
			return H2_MSG_CONNECTION;
		break;
	case 't':
		if (h2_msg_eq(name, name_len, "transfer-encoding"))
			return H2_MSG_CONNECTION;
		if (h2_msg_eq(name, name_len, "te")) {
			if (!h2_msg_eq(value, value_len, "trailers"))
				return H2_MSG_TE;
			*kind = H2_MSG_K_TE;
			return H2_MSG_OK;
		}
		break;
	case 'u':
		if (h2_msg_eq(name, name_len, "upgrade"))
			return H2_MSG_CONNECTION;
		break;
	default:
		break;
	}
	return H2_MSG_OK;
}

enum h2_msg_verdict
h2_msg_end(struct h2_msg *m, bool end_stream)
{
	if (!(m->seen & BIT(H2_MSG_K_METHOD)))
		return H2_MSG_PSEUDO_MISSING;
	if (m->is_connect)
		return H2_MSG_CONNECT;
	if (!(m->seen & BIT(H2_MSG_K_SCHEME)) ||
	    !(m->seen & BIT(H2_MSG_K_PATH)))
		return H2_MSG_PSEUDO_MISSING;
	/* :path is origin-form, or "*" for OPTIONS (RFC 9113 8.3.1). */
	if (m->path_len == 1 && m->path[0] == '*' ? !m->is_options :
	    m->path[0] != '/')
		return H2_MSG_PATH;
	if (m->authority == NULL && m->host == NULL)
		return H2_MSG_NO_AUTHORITY;
	if (m->authority != NULL && m->host != NULL &&
	    (m->authority_len != m->host_len ||
	    !util_strncaseeq(m->authority, m->host, m->host_len)))
		return H2_MSG_HOST_MISMATCH;
	if (end_stream && m->has_cl && m->cl != 0)
		return H2_MSG_CL_MISMATCH;
	return H2_MSG_OK;
}

enum h2_msg_verdict
h2_msg_data(struct h2_msg *m, size_t n)
{
	m->data += n;
	if (m->has_cl && m->data > m->cl)
		return H2_MSG_CL_MISMATCH;
	return H2_MSG_OK;
}

enum h2_msg_verdict
h2_msg_data_end(const struct h2_msg *m)
{
	if (m->has_cl && m->data != m->cl)
		return H2_MSG_CL_MISMATCH;
	return H2_MSG_OK;
}

/*
 * RFC 9113 8.1: "Trailers MUST NOT include pseudo-header fields"; the
 * field rules of 8.2 hold for every field block.  te is a request
 * header (RFC 9110 10.1.4), never a trailer: refused as any te that is
 * not "trailers" is.
 */
enum h2_msg_verdict
h2_msg_trailer_field(const uint8_t *name, size_t name_len,
    const uint8_t *value, size_t value_len)
{
	enum h2_msg_verdict v;

	if (name_len > 0 && name[0] == ':')
		return H2_MSG_TRAILER_PSEUDO;
	if ((v = h2_msg_name(name, name_len, 0)) != H2_MSG_OK)
		return v;
	if ((v = h2_msg_value(value, value_len)) != H2_MSG_OK)
		return v;
	if (h2_msg_conn_specific(name, name_len))
		return H2_MSG_CONNECTION;
	if (h2_msg_eq(name, name_len, "te"))
		return H2_MSG_TE;
	return H2_MSG_OK;
}
