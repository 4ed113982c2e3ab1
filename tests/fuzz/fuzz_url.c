/*
 * fuzz_url.c -- libFuzzer harness for the one URL parser (src/core/url.c).
 *
 * Input: one flag byte (bit 0: URL_UNIX, bit 1: URL_QUERY), then the URL
 * (up to the first NUL).  A refused URL must leave nothing allocated and
 * a static message.  An accepted one must be sane -- a host, a port in
 * range (0 only for unix), a path that is empty or starts with "/" and
 * holds no "?" or "#", a query only with URL_QUERY -- and must round-trip:
 * scheme "://" authority path query parses again to the same parts.
 * Seeds: the url column of tests/data/url/vectors.tsv
 * (tests/fuzz/make-seeds.sh).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The parts must agree. */
static void
fuzz_same(const struct url *a, const struct url *b)
{
	if (a->scheme != b->scheme || a->port != b->port ||
	    strcmp(a->host, b->host) != 0 ||
	    strcmp(a->authority, b->authority) != 0 ||
	    strcmp(a->path, b->path) != 0 || strcmp(a->query, b->query) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const scheme[] = { "", "http", "https", "unix" };
	struct url u, again;
	const char *errstr = NULL;
	unsigned flags;
	char *s, *rebuilt;
	size_t len;

	if (size < 1)
		return 0;
	flags = (data[0] & 1 ? URL_UNIX : 0) | (data[0] & 2 ? URL_QUERY : 0);
	len = strnlen((const char *)data + 1, size - 1);
	if ((s = malloc(len + 1)) == NULL)
		return 0;
	memcpy(s, data + 1, len);
	s[len] = '\0';
	if (url_parse(s, flags, &u, &errstr) != 0) {
		if (errstr == NULL || u.host != NULL || u.authority != NULL ||
		    u.path != NULL || u.query != NULL)
			abort();
		url_clear(&u);
		free(s);
		return 0;
	}
	if (u.scheme == URL_SCHEME_NONE || u.host == NULL ||
	    u.host[0] == '\0' || u.authority == NULL || u.path == NULL ||
	    u.query == NULL)
		abort();
	if (u.scheme == URL_SCHEME_UNIX) {
		if (!(flags & URL_UNIX) || u.host[0] != '/' || u.port != 0 ||
		    strcmp(u.authority, "localhost") != 0)
			abort();
		url_clear(&u);
		free(s);
		return 0;
	}
	if (u.port == 0 || strstr(u.authority, u.host) == NULL ||
	    (u.path[0] != '\0' && u.path[0] != '/') ||
	    strpbrk(u.path, "?#") != NULL || strchr(u.query, '#') != NULL ||
	    (u.query[0] != '\0' && (u.query[0] != '?' ||
	    !(flags & URL_QUERY))))
		abort();
	len = strlen(u.authority) + strlen(u.path) + strlen(u.query) + 16;
	if ((rebuilt = malloc(len)) == NULL)
		abort();
	snprintf(rebuilt, len, "%s://%s%s%s", scheme[u.scheme], u.authority,
	    u.path, u.query);
	if (url_parse(rebuilt, flags, &again, &errstr) != 0)
		abort();
	fuzz_same(&u, &again);
	url_clear(&again);
	url_clear(&u);
	free(rebuilt);
	free(s);
	return 0;
}
