/*
 * url.h -- the one URL parser (issue #10 item 4): the upstream URL and
 * the exporter endpoints in the configuration, the exporter's HTTP
 * client and `tracestitch diagnose` all read URLs through it.
 *
 *	URL       = ( "http" / "https" ) "://" authority path [ "?" query ]
 *	          / "unix://" absolute-path		(URL_UNIX only)
 *	authority = host [ ":" port ]			(RFC 3986 3.2)
 *	host      = "[" IPv6 "]" / IPv4 / name of ALPHA DIGIT "-" "." "_"
 *	port      = 1*DIGIT, 1 to 65535
 *
 * The scheme is case-insensitive.  User information is refused, so is
 * a query or fragment unless URL_QUERY (a fragment is then dropped, as a
 * client never sends it, RFC 9110 7.1).  Errors are static strings, the
 * configuration's wording ("expected a host in the URL").
 */
#ifndef TS_URL_H
#define TS_URL_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"

enum url_scheme {
	URL_SCHEME_NONE = 0,	/* not recognised */
	URL_SCHEME_HTTP,
	URL_SCHEME_HTTPS,
	URL_SCHEME_UNIX,
};

/* url_parse flags. */
#define URL_UNIX	0x01	/* accept unix:///socket/path */
#define URL_QUERY	0x02	/* accept ?query (kept), #fragment (dropped) */

struct url {
	/* Set as soon as the scheme is read, also when parsing fails. */
	enum url_scheme	 scheme;
	char		*host;		/* no brackets; unix: the socket path */
	uint16_t	 port;		/* explicit, or 80/443; unix: 0 */
	bool		 explicit_port;	/* ":port" was written */
	bool		 ip_literal;	/* [IPv6] or dotted IPv4 */
	/* Host header value: brackets kept, the port unless it is the
	 * scheme's default (RFC 9110 7.2); unix: "localhost". */
	char		*authority;
	char		*path;		/* as written, "" when none */
	char		*query;		/* "?..." with URL_QUERY, else "" */
};

/*
 * Parse s into u (owned strings, url_clear frees them).  0, or -1 with
 * *errstr (static) and nothing allocated.
 */
int url_parse(const char *s, unsigned flags, struct url *u,
    const char **errstr) TS_MUSTCHECK;
/* Free the strings of u (also after a failed parse); u is then empty. */
void url_clear(struct url *u);
/* The scheme's default port: 80, 443, or 0 for unix. */
uint16_t url_default_port(enum url_scheme);

#endif /* TS_URL_H */
