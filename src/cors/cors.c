/*
 * cors.c -- the pure CORS engine: origin matching, preflight decisions
 * with a reason, and the response headers of preflights and actual
 * requests, all precomputed per route.
 *
 * Origins are compared as (scheme, host, port) with the host compared
 * ASCII case-insensitively and the default ports of http (80) and https
 * (443) normalised (RFC 6454 section 4 and 6.2).  Entries are an exact
 * origin, a wildcard entry whose host is "*.suffix" (one or more labels
 * below suffix; scheme and port must match), "*" (any well-formed
 * origin, never "null") and "null" (only the opaque origin, when listed
 * literally).  A request Origin that is not a
 * serialized origin (path, query, userinfo, trailing slash, bad port,
 * spaces, non-ASCII) matches nothing, not even "*": a browser never sends
 * one, so it comes from a script or an attacker.
 *
 * The preflight follows WHATWG Fetch "CORS-preflight fetch": the request
 * method must be listed or be a CORS-safelisted method (GET, HEAD, POST;
 * methods compare case-sensitively), and every name in
 * Access-Control-Request-Headers must be allowed (names compare case-
 * insensitively).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpsl.h>

#include "cors.h"
#include "styles.h"
#include "util.h"

enum cors_entry_type {
	CORS_ENTRY_EXACT = 0,
	CORS_ENTRY_WILDCARD,	/* host is the suffix after "*." */
	CORS_ENTRY_ANY,		/* "*" */
	CORS_ENTRY_NULL,	/* "null" */
};

struct cors_entry {
	enum cors_entry_type type;
	char *scheme;		/* lower case */
	char *host;		/* lower case; suffix for a wildcard */
	size_t host_len;
	unsigned port;		/* effective port, 0: none (unknown scheme) */
};

struct cors_policy {
	struct cors_entry *entries;
	size_t n_entries;

	char **methods;		/* as configured, compared exactly */
	size_t n_methods;
	char **headers;		/* allowed request headers, lower case */
	size_t *header_lens;	/* strlen of each, computed once */
	size_t n_headers;

	bool credentials;
	bool pna;
	bool tao;
	bool reject;

	/* Precomputed header values; NULL when the header is not sent. */
	char *acam;
	char *acah;
	char *aceh;
	char *max_age;
	char *vary_preflight;
};

/* A parsed serialized origin; host points into the input. */
struct cors_origin {
	const char *scheme;
	size_t scheme_len;
	const char *host;
	size_t host_len;
	unsigned port;		/* effective port, 0: none */
	bool wildcard;		/* pattern only: host was "*.suffix" */
};

/*
 * CORS-safelisted request-header names (Fetch).  Browsers only list them
 * in Access-Control-Request-Headers when their value is not safelisted
 * (e.g. Content-Type: application/json); they are always accepted and
 * always in Access-Control-Allow-Headers so the browser agrees.
 */
static const char *const cors_hdr_safelisted[] = {
	"accept", "accept-language", "content-language", "content-type",
};

static const char cors_vary_origin[] = "Origin";

/* Default port of a scheme (RFC 6454 uses the URI scheme's default). */
static unsigned
cors_default_port(const char *scheme, size_t len)
{
	if (len == 4 && util_strncaseeq(scheme, "http", 4))
		return 80;
	if (len == 5 && util_strncaseeq(scheme, "https", 5))
		return 443;
	return 0;
}

/* Is c allowed in a reg-name host label (LDH plus '_')? */
static bool
cors_is_hostchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Check a dotted reg-name: non-empty labels of host characters. */
static bool
cors_host_valid(const char *h, size_t len)
{
	size_t i, label = 0;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		if (h[i] == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!cors_is_hostchar((unsigned char)h[i]))
			return false;
		label++;
	}
	return label != 0;
}

/*
 * Parse a serialized origin "scheme://host[:port]" (RFC 6454 6.2).  With
 * allow_wildcard, the host may be "*.suffix" (configuration entries).
 * Returns 0, or -1 with *errstr set.
 */
static int
cors_origin_parse(const char *s, size_t len, bool allow_wildcard,
    struct cors_origin *o, const char **errstr)
{
	size_t i = 0, start;
	uint64_t port;

	memset(o, 0, sizeof *o);
	*errstr = "malformed origin";
	if (len == 0 || len > CORS_ORIGIN_MAX)
		return -1;

	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986) */
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return -1;
	while (i < len && (cors_is_hostchar((unsigned char)s[i]) ||
	    s[i] == '+' || s[i] == '.') && s[i] != '_')
		i++;
	if (len - i < 3 || memcmp(s + i, "://", 3) != 0)
		return -1;
	o->scheme = s;
	o->scheme_len = i;
	i += 3;

	/* host: IP-literal or reg-name, optionally "*." in a pattern */
	start = i;
	if (i < len && s[i] == '[') {
		while (i < len && s[i] != ']') {
			if (i > start && !(s[i] == ':' || s[i] == '.' ||
			    (s[i] >= '0' && s[i] <= '9') ||
			    (s[i] >= 'a' && s[i] <= 'f') ||
			    (s[i] >= 'A' && s[i] <= 'F')))
				return -1;
			i++;
		}
		if (i == len || i - start < 3)
			return -1;
		i++;	/* ']' */
		o->host = s + start;
		o->host_len = i - start;
	} else {
		if (allow_wildcard && len - i >= 2 && s[i] == '*' &&
		    s[i + 1] == '.') {
			o->wildcard = true;
			i += 2;
			start = i;
		}
		while (i < len && s[i] != ':')
			i++;
		o->host = s + start;
		o->host_len = i - start;
		if (!cors_host_valid(o->host, o->host_len))
			return -1;
	}

	/* port: ":" 1*5DIGIT, no leading zero, 1..65535 */
	o->port = cors_default_port(o->scheme, o->scheme_len);
	if (i < len) {
		if (s[i] != ':')
			return -1;
		i++;
		if (len - i == 0 || len - i > 5 || s[i] == '0' ||
		    util_parse_u64(s + i, len - i, &port) != 0 ||
		    port > 65535) {
			*errstr = "malformed origin (bad port)";
			return -1;
		}
		o->port = (unsigned)port;
	}
	*errstr = NULL;
	return 0;
}

/* Lower-case copy of len bytes. */
static char *
cors_lowerdup(const char *s, size_t len)
{
	char *p = xstrndup(s, len);
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (char)(p[i] - 'A' + 'a');
	}
	return p;
}

/* Copy src into dst (size bytes), printable ASCII only, truncated. */
static void
cors_sanitize(char *dst, size_t size, const char *src, size_t len)
{
	size_t i, n = 0;
	bool cut = false;

	if (size == 0)
		return;
	if (len > size - 1) {
		len = size - 4;	/* room for "..." */
		cut = true;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (cut) {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
}

/* Append name to a lower-case name list unless already there. */
static void
cors_names_add(char ***v, size_t *n, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		if (strlen((*v)[i]) == len && util_strncaseeq((*v)[i], name,
		    len))
			return;
	}
	*v = xrealloc(*v, (*n + 1) * sizeof **v);
	(*v)[(*n)++] = cors_lowerdup(name, len);
}

/* Join strings with ", " into a new string; NULL when n is 0. */
static char *
cors_join(char *const *v, size_t n)
{
	size_t i, total = 1;
	char *out, *p;

	if (n == 0)
		return NULL;
	for (i = 0; i < n; i++)
		total += strlen(v[i]) + 2;
	p = out = xmalloc(total);
	for (i = 0; i < n; i++) {
		size_t l = strlen(v[i]);

		if (i > 0) {
			memcpy(p, ", ", 2);
			p += 2;
		}
		memcpy(p, v[i], l);
		p += l;
	}
	*p = '\0';
	return out;
}

/* The request headers a style adds: the style table's (styles.h). */
size_t
cors_style_headers(enum config_style style, const char *const **names)
{
	return styles_headers(style, names);
}

/* The "header" metric label of a request header name (styles.h). */
const char *
cors_header_class(const char *name, size_t len)
{
	return styles_header_class(name, len);
}

/* Public Suffix List membership (cors.h). */
bool
cors_is_public_suffix(const char *domain)
{
	psl_ctx_t *psl;
	bool rc;

	/*
	 * The newer of libpsl's built-in list and Debian's publicsuffix
	 * package (/usr/share/publicsuffix); loaded per call because policies
	 * are built only at start and reload, and cors.c keeps no globals.
	 */
	if ((psl = psl_latest(NULL)) == NULL)
		return false;
	rc = psl_is_public_suffix2(psl, domain, PSL_TYPE_ANY |
	    PSL_TYPE_NO_STAR_RULE) != 0;
	psl_free(psl);
	return rc;
}

/* One problem of a policy: "key[i]" and a message, to report. */
static void TS_PRINTFLIKE(6, 7)
cors_report(cors_report_fn *report, void *arg, bool fatal, const char *key,
    size_t idx, const char *fmt, ...)
{
	char k[64], *msg;
	va_list ap;

	if (report == NULL)
		return;
	snprintf(k, sizeof k, "%s[%zu]", key, idx);
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		abort();
	va_end(ap);
	report(arg, fatal, k, msg);
	free(msg);
}

/*
 * Parse allowed_origins[idx] into e.  Returns 0, or -1 after reporting
 * why it is refused.
 */
static int
cors_entry_parse(const char *text, size_t idx, bool credentials,
    struct cors_entry *e, cors_report_fn *report, void *arg)
{
	struct cors_origin o;
	const char *errstr;
	char *suffix;
	size_t i, len = strlen(text);
	bool public;

	memset(e, 0, sizeof *e);
	if (strcmp(text, "*") == 0) {
		/* Fetch CORS check: "*" never works with credentials. */
		if (credentials) {
			cors_report(report, arg, true, "allowed_origins", idx,
			    "\"*\" cannot be combined with allow_credentials: "
			    "true (browsers refuse it); list the origins");
			return -1;
		}
		e->type = CORS_ENTRY_ANY;
		return 0;
	}
	if (strcmp(text, "null") == 0) {
		e->type = CORS_ENTRY_NULL;
		return 0;
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)text[i] >= 0x80) {
			cors_report(report, arg, true, "allowed_origins", idx,
			    "non-ASCII host in \"%s\"; write it in punycode "
			    "(xn--...)", text);
			return -1;
		}
	}
	if (cors_origin_parse(text, len, true, &o, &errstr) != 0) {
		cors_report(report, arg, true, "allowed_origins", idx,
		    "%s: expected scheme://host[:port] (port 1 to 65535, no "
		    "leading zero) without path or trailing slash, "
		    "scheme://*.domain, \"*\" or \"null\", got \"%s\"", errstr,
		    text);
		return -1;
	}
	if (o.wildcard) {
		/*
		 * "*.co.uk" would allow every site registered under co.uk:
		 * the fixed part must be a registrable domain or below one.
		 */
		suffix = cors_lowerdup(o.host, o.host_len);
		public = cors_is_public_suffix(suffix);
		free(suffix);
		if (public) {
			cors_report(report, arg, true, "allowed_origins", idx,
			    "\"%s\" allows every site under the public suffix "
			    "\"%.*s\" (Public Suffix List); use your own "
			    "domain, e.g. \"%.*s*.example.%s\"", text,
			    (int)o.host_len, o.host, (int)(o.host - text - 2),
			    text, o.host);
			return -1;
		}
		if (credentials)
			cors_report(report, arg, false, "allowed_origins", idx,
			    "wildcard origin \"%s\" with allow_credentials: "
			    "true lets any subdomain, including one taken over "
			    "(a dangling DNS record, user content), read "
			    "credentialed responses; list the origins if you "
			    "can", text);
	}
	e->type = o.wildcard ? CORS_ENTRY_WILDCARD : CORS_ENTRY_EXACT;
	e->scheme = cors_lowerdup(o.scheme, o.scheme_len);
	e->host = cors_lowerdup(o.host, o.host_len);
	e->host_len = o.host_len;
	e->port = o.port;
	return 0;
}

/* Report every item of a list that is not a token or is "*". */
static int
cors_check_tokens(const struct config_strv *v, const char *key,
    const char *what, cors_report_fn *report, void *arg)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < v->n; i++) {
		if (strcmp(v->v[i], "*") == 0) {
			cors_report(report, arg, true, key, i, "\"*\" is not "
			    "supported; list the names");
			rc = -1;
		} else if (!util_is_token(v->v[i], strlen(v->v[i]))) {
			cors_report(report, arg, true, key, i, "expected a %s "
			    "(an RFC 9110 token: no spaces, no separators), "
			    "got \"%s\"", what, v->v[i]);
			rc = -1;
		}
	}
	return rc;
}

/* Build the policy of one route. */
struct cors_policy *
cors_policy_new(const struct config_cors *cc, const enum config_style *styles,
    size_t n_styles, cors_report_fn *report, void *arg)
{
	struct cors_policy *p;
	const char *const *names;
	char **exposed = NULL;
	size_t i, j, n, n_exposed = 0;
	int rc = 0;

	if (cors_check_tokens(&cc->allowed_methods, "allowed_methods",
	    "method name", report, arg) != 0)
		rc = -1;
	if (cors_check_tokens(&cc->allowed_headers, "allowed_headers",
	    "header name", report, arg) != 0)
		rc = -1;
	if (cors_check_tokens(&cc->exposed_headers, "exposed_headers",
	    "header name", report, arg) != 0)
		rc = -1;

	p = xcalloc(1, sizeof *p);
	p->credentials = cc->allow_credentials;
	p->pna = cc->allow_private_network;
	p->tao = cc->timing_allow_origin;
	p->reject = cc->on_disallowed == CONFIG_CORS_REJECT;

	p->entries = xcalloc(cc->allowed_origins.n + 1, sizeof *p->entries);
	for (i = 0; i < cc->allowed_origins.n; i++) {
		if (cors_entry_parse(cc->allowed_origins.v[i], i,
		    p->credentials, &p->entries[p->n_entries], report,
		    arg) != 0)
			rc = -1;
		else
			p->n_entries++;
	}
	if (rc != 0)
		goto fail;

	p->methods = xcalloc(cc->allowed_methods.n + 1, sizeof *p->methods);
	for (i = 0; i < cc->allowed_methods.n; i++) {
		for (j = 0; j < p->n_methods; j++) {
			if (strcmp(p->methods[j], cc->allowed_methods.v[i]) ==
			    0)
				break;
		}
		if (j == p->n_methods)
			p->methods[p->n_methods++] =
			    xstrdup(cc->allowed_methods.v[i]);
	}

	for (i = 0; i < cc->allowed_headers.n; i++)
		cors_names_add(&p->headers, &p->n_headers,
		    cc->allowed_headers.v[i], strlen(cc->allowed_headers.v[i]));
	for (i = 0; i < TS_NITEMS(cors_hdr_safelisted); i++)
		cors_names_add(&p->headers, &p->n_headers,
		    cors_hdr_safelisted[i], strlen(cors_hdr_safelisted[i]));
	for (i = 0; i < n_styles; i++) {
		n = cors_style_headers(styles[i], &names);
		for (j = 0; j < n; j++)
			cors_names_add(&p->headers, &p->n_headers, names[j],
			    strlen(names[j]));
	}
	for (i = 0; i < cc->exposed_headers.n; i++)
		cors_names_add(&exposed, &n_exposed, cc->exposed_headers.v[i],
		    strlen(cc->exposed_headers.v[i]));

	p->acam = cors_join(p->methods, p->n_methods);
	p->acah = cors_join(p->headers, p->n_headers);
	p->header_lens = xcalloc(p->n_headers + 1, sizeof *p->header_lens);
	for (i = 0; i < p->n_headers; i++)
		p->header_lens[i] = strlen(p->headers[i]);
	p->aceh = cors_join(exposed, n_exposed);
	for (i = 0; i < n_exposed; i++)
		free(exposed[i]);
	free(exposed);
	xasprintf(&p->max_age, "%llu", (unsigned long long)cc->max_age);
	xasprintf(&p->vary_preflight, "Origin, Access-Control-Request-Method, "
	    "Access-Control-Request-Headers%s", p->pna ?
	    ", Access-Control-Request-Private-Network" : "");
	return p;

fail:
	cors_policy_free(p);
	return NULL;
}

/* Free a policy; NULL does nothing. */
void
cors_policy_free(struct cors_policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n_entries; i++) {
		free(p->entries[i].scheme);
		free(p->entries[i].host);
	}
	free(p->entries);
	for (i = 0; i < p->n_methods; i++)
		free(p->methods[i]);
	free(p->methods);
	for (i = 0; i < p->n_headers; i++)
		free(p->headers[i]);
	free(p->headers);
	free(p->header_lens);
	free(p->acam);
	free(p->acah);
	free(p->aceh);
	free(p->max_age);
	free(p->vary_preflight);
	free(p);
}

/* True when a refused preflight is answered 403. */
bool
cors_policy_rejects(const struct cors_policy *p)
{
	return p->reject;
}

/* True when a request is a CORS preflight (Fetch). */
bool
cors_is_preflight(const char *method, bool has_origin, bool has_acrm)
{
	return has_origin && has_acrm && method != NULL &&
	    strcmp(method, "OPTIONS") == 0;
}

/*
 * Find the entry matching an origin.  Returns the entry, or NULL with
 * *errstr set.
 */
static const struct cors_entry *
cors_match(const struct cors_policy *p, const char *s, size_t len,
    const char **errstr)
{
	const struct cors_entry *e;
	struct cors_origin o;
	size_t i, off;
	bool is_null;

	/* The opaque origin serializes as "null" (RFC 6454 6.2). */
	is_null = len == 4 && memcmp(s, "null", 4) == 0;
	if (!is_null && cors_origin_parse(s, len, false, &o, errstr) != 0)
		return NULL;
	for (i = 0; i < p->n_entries; i++) {
		e = &p->entries[i];
		switch (e->type) {
		case CORS_ENTRY_NULL:
			if (is_null)
				return e;
			break;
		case CORS_ENTRY_ANY:
			if (!is_null)
				return e;
			break;
		case CORS_ENTRY_EXACT:
			if (is_null || e->port != o.port ||
			    strlen(e->scheme) != o.scheme_len ||
			    !util_strncaseeq(e->scheme, o.scheme,
			    o.scheme_len) || e->host_len != o.host_len ||
			    !util_memcaseeq(e->host, o.host, o.host_len))
				break;
			return e;
		case CORS_ENTRY_WILDCARD:
			/* one or more whole labels in front of ".suffix" */
			if (is_null || e->port != o.port ||
			    strlen(e->scheme) != o.scheme_len ||
			    !util_strncaseeq(e->scheme, o.scheme,
			    o.scheme_len) || o.host_len < e->host_len + 2)
				break;
			off = o.host_len - e->host_len;
			if (o.host[off - 1] != '.' ||
			    !util_memcaseeq(o.host + off, e->host,
			    e->host_len))
				break;
			return e;
		}
	}
	*errstr = "origin not allowed";
	return NULL;
}

/* Match one Origin value against the policy's allowed origins. */
bool
cors_origin_allowed(const struct cors_policy *p, const char *origin,
    size_t len, const char **errstr)
{
	return cors_match(p, origin, len, errstr) != NULL;
}

/* Append one response header to an answer. */
static void
cors_add(struct cors_answer *out, const char *name, const char *value,
    size_t len)
{
	if (out->n_headers == CORS_MAX_HEADERS)
		return;	/* cannot happen: at most 7 are added */
	out->headers[out->n_headers].name = name;
	out->headers[out->n_headers].value = value;
	out->headers[out->n_headers].value_len = len;
	out->n_headers++;
}

/* Append a NUL-terminated header value. */
static void
cors_add_str(struct cors_answer *out, const char *name, const char *value)
{
	cors_add(out, name, value, strlen(value));
}

/* Reset an answer. */
static void
cors_answer_init(struct cors_answer *out)
{
	out->result = CORS_ALLOWED;
	out->kind = CORS_KIND_NONE;
	out->header_class = "";
	out->malformed = false;
	out->reason[0] = '\0';
	out->detail[0] = '\0';
	out->n_headers = 0;
	out->origin[0] = '\0';
}

/* Mark an answer refused and format its reason. */
static void
cors_refuse(struct cors_answer *out, enum cors_kind kind, bool malformed,
    const char *value, size_t len, const char *hint)
{
	const char *what = cors_kind_name(kind);

	out->result = CORS_REFUSED;
	out->kind = kind;
	out->malformed = malformed;
	cors_sanitize(out->detail, sizeof out->detail, value, len);
	if (malformed && kind == CORS_KIND_HEADER)
		snprintf(out->reason, sizeof out->reason, "malformed "
		    "Access-Control-Request-Headers item \"%s\"",
		    out->detail);
	else if (malformed)
		snprintf(out->reason, sizeof out->reason, "malformed %s \"%s\"",
		    what, out->detail);
	else
		snprintf(out->reason, sizeof out->reason, "%s %s is not "
		    "allowed%s", what, out->detail, hint);
}

/* Set ACAO (and the echo buffer) for a matched entry. */
static const char *
cors_acao(const struct cors_entry *e, const char *origin, size_t len,
    struct cors_answer *out)
{
	if (e->type == CORS_ENTRY_ANY) {
		cors_add_str(out, "Access-Control-Allow-Origin", "*");
		return "*";
	}
	memcpy(out->origin, origin, len);	/* len <= CORS_ORIGIN_MAX */
	out->origin[len] = '\0';
	cors_add(out, "Access-Control-Allow-Origin", out->origin, len);
	return out->origin;
}

/* Check the origin; on refusal fill *out and return NULL. */
static const struct cors_entry *
cors_check_origin(const struct cors_policy *p, const char *origin,
    size_t len, struct cors_answer *out)
{
	const struct cors_entry *e;
	const char *errstr;

	e = cors_match(p, origin, len, &errstr);
	if (e == NULL)
		cors_refuse(out, CORS_KIND_ORIGIN,
		    strncmp(errstr, "malformed", 9) == 0, origin, len, "");
	return e;
}

/* Is a request method allowed (Fetch CORS-preflight fetch step 7.5)? */
static bool
cors_method_allowed(const struct cors_policy *p, const char *m, size_t len,
    const char **hint)
{
	static const char *const safelisted[] = { "GET", "HEAD", "POST" };
	size_t i;

	*hint = "";
	for (i = 0; i < TS_NITEMS(safelisted); i++) {
		if (strlen(safelisted[i]) == len &&
		    memcmp(safelisted[i], m, len) == 0)
			return true;
	}
	for (i = 0; i < p->n_methods; i++) {
		if (strlen(p->methods[i]) == len &&
		    memcmp(p->methods[i], m, len) == 0)
			return true;
	}
	for (i = 0; i < p->n_methods; i++) {
		if (strlen(p->methods[i]) == len &&
		    util_strncaseeq(p->methods[i], m, len))
			*hint = " (methods are case-sensitive)";
	}
	return false;
}

/* Is a request header name allowed (case-insensitive)? */
static bool
cors_header_allowed(const struct cors_policy *p, const char *name,
    size_t len)
{
	size_t i;

	for (i = 0; i < p->n_headers; i++) {
		if (p->header_lens[i] == len &&
		    util_memcaseeq(p->headers[i], name, len))
			return true;
	}
	return false;
}

/*
 * Walk Access-Control-Request-Headers: a comma-separated list of field
 * names with optional whitespace; empty items are ignored (RFC 9110 5.6.1).
 * Returns false and fills *out at the first refused or malformed item.
 */
static bool
cors_check_headers(const struct cors_policy *p, const char *acrh,
    size_t len, struct cors_answer *out)
{
	size_t i = 0, start, end;

	while (i < len) {
		while (i < len && (acrh[i] == ' ' || acrh[i] == '\t'))
			i++;
		start = i;
		while (i < len && acrh[i] != ',')
			i++;
		end = i;
		while (end > start && (acrh[end - 1] == ' ' ||
		    acrh[end - 1] == '\t'))
			end--;
		i++;	/* the comma */
		if (end == start)
			continue;
		/*
		 * An allowed name is a token (checked at build) and matches
		 * only bytes equal to its own up to ASCII case: a name found
		 * needs no token check of its own.
		 */
		if (cors_header_allowed(p, acrh + start, end - start))
			continue;
		if (!util_is_token(acrh + start, end - start)) {
			cors_refuse(out, CORS_KIND_HEADER, true, acrh + start,
			    end - start, "");
			out->header_class = "other";
			return false;
		}
		cors_refuse(out, CORS_KIND_HEADER, false, acrh + start,
		    end - start, "");
		out->header_class = cors_header_class(acrh + start,
		    end - start);
		return false;
	}
	return true;
}

/* Decide a preflight. */
int
cors_preflight(const struct cors_policy *p, const char *origin,
    size_t origin_len, const char *acrm, size_t acrm_len, const char *acrh,
    size_t acrh_len, bool pna_requested, struct cors_answer *out)
{
	const struct cors_entry *e;
	const char *hint;

	cors_answer_init(out);
	e = cors_check_origin(p, origin, origin_len, out);
	if (e == NULL)
		goto refused;
	if (!util_is_token(acrm, acrm_len)) {
		cors_refuse(out, CORS_KIND_METHOD, true, acrm, acrm_len, "");
		goto refused;
	}
	if (!cors_method_allowed(p, acrm, acrm_len, &hint)) {
		cors_refuse(out, CORS_KIND_METHOD, false, acrm, acrm_len,
		    hint);
		goto refused;
	}
	if (acrh != NULL && !cors_check_headers(p, acrh, acrh_len, out))
		goto refused;

	(void)cors_acao(e, origin, origin_len, out);
	if (p->credentials)
		cors_add_str(out, "Access-Control-Allow-Credentials", "true");
	if (p->acam != NULL)
		cors_add_str(out, "Access-Control-Allow-Methods", p->acam);
	if (p->acah != NULL)
		cors_add_str(out, "Access-Control-Allow-Headers", p->acah);
	cors_add_str(out, "Access-Control-Max-Age", p->max_age);
	/* WICG Private Network Access: answer only when asked and enabled. */
	if (pna_requested && p->pna)
		cors_add_str(out, "Access-Control-Allow-Private-Network",
		    "true");
	cors_add_str(out, "Vary", p->vary_preflight);
	return 0;

refused:
	out->n_headers = 0;
	cors_add_str(out, "Vary", p->vary_preflight);
	return 0;
}

/* Decide an actual request of a CORS route. */
int
cors_actual(const struct cors_policy *p, const char *origin,
    size_t origin_len, struct cors_answer *out)
{
	const struct cors_entry *e;
	const char *acao;

	cors_answer_init(out);
	if (origin == NULL) {
		out->result = CORS_NO_ORIGIN;
		cors_add_str(out, "Vary", cors_vary_origin);
		return 0;
	}
	e = cors_check_origin(p, origin, origin_len, out);
	if (e == NULL) {
		cors_add_str(out, "Vary", cors_vary_origin);
		return 0;
	}
	acao = cors_acao(e, origin, origin_len, out);
	if (p->credentials)
		cors_add_str(out, "Access-Control-Allow-Credentials", "true");
	if (p->aceh != NULL)
		cors_add_str(out, "Access-Control-Expose-Headers", p->aceh);
	/* W3C Resource Timing: lets RUM read this resource's timings. */
	if (p->tao)
		cors_add_str(out, "Timing-Allow-Origin", acao);
	cors_add_str(out, "Vary", cors_vary_origin);
	return 0;
}

/* A bounded writer that keeps counting past the end (snprintf rule). */
struct cors_out {
	char *buf;
	size_t size;
	size_t len;
};

/* Append bytes to a cors_out. */
static void
cors_out_put(struct cors_out *o, const char *s, size_t n)
{
	size_t room;

	if (o->len < o->size) {
		room = o->size - o->len;
		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

/* Append a JSON string literal (RFC 8259 section 7). */
static void
cors_out_json(struct cors_out *o, const char *s)
{
	char esc[8];

	cors_out_put(o, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			cors_out_put(o, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			cors_out_put(o, esc, 6);
		} else
			cors_out_put(o, s, 1);
	}
	cors_out_put(o, "\"", 1);
}

/* Build the JSON body of a 403 refusal. */
size_t
cors_refusal_json(const struct cors_answer *a, char *buf, size_t size)
{
	struct cors_out o = { buf, size, 0 };

	cors_out_put(&o, "{\"error\":\"cors_refused\",\"kind\":", 31);
	cors_out_json(&o, cors_kind_name(a->kind));
	cors_out_put(&o, ",\"reason\":", 10);
	cors_out_json(&o, a->reason);
	if (a->kind == CORS_KIND_HEADER) {
		cors_out_put(&o, ",\"header\":", 10);
		cors_out_json(&o, a->detail);
	}
	cors_out_put(&o, "}", 1);
	if (size > 0)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return o.len;
}

/* True when a response header belongs to CORS. */
bool
cors_is_cors_header(const char *name, size_t len)
{
	return (len > 15 && util_strncaseeq(name, "access-control-", 15)) ||
	    (len == 19 && util_strncaseeq(name, "timing-allow-origin", 19));
}

/* Next member of a comma list; false at the end. */
static bool
cors_list_next(const char *s, size_t len, size_t *pos, const char **item,
    size_t *item_len)
{
	size_t i = *pos, start, end;

	while (i < len) {
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		start = i;
		while (i < len && s[i] != ',')
			i++;
		end = i;
		while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
			end--;
		if (i < len)
			i++;
		if (end > start) {
			*pos = i;
			*item = s + start;
			*item_len = end - start;
			return true;
		}
	}
	*pos = i;
	return false;
}

/* True when a comma list contains name (case-insensitive). */
static bool
cors_list_has(const char *s, size_t len, const char *name, size_t nlen)
{
	const char *item;
	size_t pos = 0, ilen;

	while (cors_list_next(s, len, &pos, &item, &ilen)) {
		if (ilen == nlen && util_strncaseeq(item, name, nlen))
			return true;
	}
	return false;
}

/* Merge the upstream's Vary value with ours (RFC 9110 12.5.5). */
int
cors_vary_merge(const char *upstream, size_t upstream_len, const char *ours,
    char *buf, size_t size)
{
	struct cors_out o = { buf, size, 0 };
	const char *item;
	size_t pos = 0, ilen, olen = strlen(ours);

	if (upstream == NULL)
		upstream_len = 0;
	if (cors_list_has(upstream, upstream_len, "*", 1)) {
		cors_out_put(&o, "*", 1);
		goto done;
	}
	while (cors_list_next(upstream, upstream_len, &pos, &item, &ilen)) {
		if (o.len > 0)
			cors_out_put(&o, ", ", 2);
		cors_out_put(&o, item, ilen);
	}
	pos = 0;
	while (cors_list_next(ours, olen, &pos, &item, &ilen)) {
		if (cors_list_has(upstream, upstream_len, item, ilen))
			continue;
		if (o.len > 0)
			cors_out_put(&o, ", ", 2);
		cors_out_put(&o, item, ilen);
	}
done:
	if (o.len >= size) {
		if (size > 0)
			buf[0] = '\0';
		return -1;
	}
	buf[o.len] = '\0';
	return (int)o.len;
}

/* Vary of preflight answers. */
const char *
cors_vary_preflight(const struct cors_policy *p)
{
	return p->vary_preflight;
}

/* Vary of every other response of a CORS route. */
const char *
cors_vary_actual(void)
{
	return cors_vary_origin;
}

/* The precomputed Access-Control-Allow-Headers value. */
const char *
cors_allow_headers(const struct cors_policy *p)
{
	return p->acah != NULL ? p->acah : "";
}

/* The "kind" metric label. */
const char *
cors_kind_name(enum cors_kind kind)
{
	switch (kind) {
	case CORS_KIND_ORIGIN:
		return "origin";
	case CORS_KIND_METHOD:
		return "method";
	case CORS_KIND_HEADER:
		return "header";
	case CORS_KIND_NONE:
		break;
	}
	return "";
}

/* The "result" metric label. */
const char *
cors_result_name(enum cors_result r)
{
	switch (r) {
	case CORS_ALLOWED:
		return "allowed";
	case CORS_REFUSED:
		return "refused";
	case CORS_NO_ORIGIN:
		return "no_origin";
	}
	return "";
}
