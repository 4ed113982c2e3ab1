/*
 * fuzz_ddforward.c -- libFuzzer harness for the ddforward decoder of the
 * RUM intake relay (src/proto/ddforward.c).
 *
 * Input: the query of a relay request (the bytes after '?'), as is.
 * A refused value must carry a reason.  An accepted one must be what the
 * relay may put after the intake origin in a request line: a path of the
 * track table, exactly, then nothing or '?' and a query of printable
 * ASCII without '#', '\' or a '%' not followed by two hex digits; and it
 * must round-trip: encoded again as the SDK encodes it
 * (encodeURIComponent) it decodes to the same target and track.
 * Seeds: the query column of tests/data/ddforward/values.tsv
 * (tests/fuzz/make-seeds.sh).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddforward.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* encodeURIComponent: everything but A-Z a-z 0-9 - _ . ! ~ * ' ( ). */
static size_t
fuzz_encode(const char *s, size_t n, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c) || strchr("-_.!~*'()", c) != NULL) {
			out[k++] = (char)c;
			continue;
		}
		out[k++] = '%';
		out[k++] = hex[c >> 4];
		out[k++] = hex[c & 15];
	}
	return k;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ddforward d, again;
	static char q[10 + 3 * DDFORWARD_MAX];
	const char *t, *path;
	size_t plen, i, n;

	if (ddforward_parse((const char *)data, size, &d) != 0) {
		if (d.reason == DDF_OK || d.reason >= DDF_NREASONS ||
		    ddforward_reason_text(d.reason)[0] == '\0')
			abort();
		return 0;
	}
	t = d.target;
	if (d.reason != DDF_OK || d.track < 0 || d.track >= DDFORWARD_NTRACKS ||
	    d.target_len != strlen(t) || d.target_len > DDFORWARD_MAX)
		abort();
	path = ddforward_tracks[d.track].path;
	plen = strlen(path);
	if (strncmp(t, path, plen) != 0 || (t[plen] != '\0' && t[plen] != '?'))
		abort();
	for (i = plen; t[i] != '\0'; i++) {
		unsigned char c = (unsigned char)t[i];

		if (c <= 0x20 || c >= 0x7f || c == '#' || c == '\\' ||
		    c == '"' || c == '<' || c == '>')
			abort();
		if (c == '%' && (!isxdigit((unsigned char)t[i + 1]) ||
		    !isxdigit((unsigned char)t[i + 2])))
			abort();
	}
	memcpy(q, "ddforward=", 10);
	n = 10 + fuzz_encode(t, d.target_len, q + 10);
	if (ddforward_parse(q, n, &again) != 0 || again.track != d.track ||
	    strcmp(again.target, t) != 0)
		abort();
	return 0;
}
