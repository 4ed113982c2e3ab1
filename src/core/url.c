/*
 * url.c -- the URL parser of the configuration, the exporter and
 * diagnose (url.h).  One pass, no allocation until the URL is valid.
 */
#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "url.h"
#include "util.h"

/* The configuration's messages (tests/data/config fixtures). */
static const char URL_E_SCHEME[] = "expected an http:// or https:// URL";
static const char URL_E_UNIX[] =
    "expected unix:// followed by an absolute socket path";
static const char URL_E_QUERY[] = "expected a URL without query or fragment";
static const char URL_E_USER[] = "expected a URL without user information";
static const char URL_E_V6[] = "expected a valid [v6] host in the URL";
static const char URL_E_HOST[] = "expected a host in the URL";
static const char URL_E_NAME[] = "expected a valid host name in the URL";
static const char URL_E_PORT[] = "expected a port from 1 to 65535 in the URL";
static const char URL_E_AFTER[] = "expected a valid host in the URL";

/* The scheme's default port. */
uint16_t
url_default_port(enum url_scheme s)
{
	switch (s) {
	case URL_SCHEME_HTTP:
		return 80;
	case URL_SCHEME_HTTPS:
		return 443;
	default:
		return 0;
	}
}

/* Free the parts of a URL. */
void
url_clear(struct url *u)
{
	free(u->host);
	free(u->authority);
	free(u->path);
	free(u->query);
	memset(u, 0, sizeof *u);
}

/* A host name character (the configuration's set, RFC 3986 unreserved
 * without "~"). */
static bool
url_is_namechar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* unix:///absolute/path: the path is the host, the Host is localhost. */
static int
url_parse_unix(const char *p, struct url *u, const char **errstr)
{
	if (p[0] != '/' || p[1] == '\0') {
		*errstr = URL_E_UNIX;
		return -1;
	}
	u->host = xstrdup(p);
	u->authority = xstrdup("localhost");
	u->path = xstrdup("");
	u->query = xstrdup("");
	return 0;
}

/* Parse an URL. */
int
url_parse(const char *s, unsigned flags, struct url *u, const char **errstr)
{
	const char *p, *h, *he, *end, *q;
	char v4[INET_ADDRSTRLEN];
	struct in_addr a4;
	uint64_t port = 0;
	bool v6 = false;
	size_t i, hl;

	memset(u, 0, sizeof *u);
	if (strncasecmp(s, "http://", 7) == 0) {
		u->scheme = URL_SCHEME_HTTP;
		p = s + 7;
	} else if (strncasecmp(s, "https://", 8) == 0) {
		u->scheme = URL_SCHEME_HTTPS;
		p = s + 8;
	} else if ((flags & URL_UNIX) && strncasecmp(s, "unix://", 7) == 0) {
		u->scheme = URL_SCHEME_UNIX;
		return url_parse_unix(s + 7, u, errstr);
	} else {
		*errstr = URL_E_SCHEME;
		return -1;
	}
	if (!(flags & URL_QUERY) && strpbrk(p, "?#") != NULL) {
		*errstr = URL_E_QUERY;
		return -1;
	}
	/* The authority ends at the path, the query or the fragment. */
	end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(end - p)) != NULL) {
		*errstr = URL_E_USER;
		return -1;
	}
	if (*p == '[') {
		/* IP-literal (RFC 3986 3.2.2): hex digits, ':' and '.' of
		 * an embedded IPv4 address. */
		h = p + 1;
		he = memchr(h, ']', (size_t)(end - h));
		if (he == NULL || he == h) {
			*errstr = URL_E_V6;
			return -1;
		}
		for (i = 0; h + i < he; i++) {
			if (strchr("0123456789abcdefABCDEF:.", h[i]) == NULL) {
				*errstr = URL_E_V6;
				return -1;
			}
		}
		v6 = true;
		p = he + 1;
	} else {
		h = p;
		he = memchr(p, ':', (size_t)(end - p));
		if (he == NULL)
			he = end;
		if (he == h) {
			*errstr = URL_E_HOST;
			return -1;
		}
		for (i = 0; h + i < he; i++) {
			if (!url_is_namechar(h[i])) {
				*errstr = URL_E_NAME;
				return -1;
			}
		}
		p = he;
	}
	if (*p == ':') {
		p++;
		if (util_parse_u64(p, (size_t)(end - p), &port) != 0 ||
		    port < 1 || port > 65535) {
			*errstr = URL_E_PORT;
			return -1;
		}
		u->explicit_port = true;
	} else if (p != end) {
		*errstr = URL_E_AFTER;		/* "[::1]x" */
		return -1;
	}
	if (!u->explicit_port)
		port = url_default_port(u->scheme);

	hl = (size_t)(he - h);
	u->host = xstrndup(h, hl);
	u->port = (uint16_t)port;
	if (v6)
		u->ip_literal = true;
	else if (hl < sizeof v4) {
		memcpy(v4, h, hl);
		v4[hl] = '\0';
		u->ip_literal = inet_pton(AF_INET, v4, &a4) == 1;
	}
	if (u->explicit_port && port != url_default_port(u->scheme))
		xasprintf(&u->authority, "%s%s%s:%u", v6 ? "[" : "", u->host,
		    v6 ? "]" : "", (unsigned)port);
	else
		xasprintf(&u->authority, "%s%s%s", v6 ? "[" : "", u->host,
		    v6 ? "]" : "");
	q = end + strcspn(end, "?#");
	u->path = xstrndup(end, (size_t)(q - end));
	u->query = xstrndup(q, *q == '?' ? strcspn(q, "#") : 0);
	return 0;
}
