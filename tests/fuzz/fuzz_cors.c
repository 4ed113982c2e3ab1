/*
 * fuzz_cors.c -- libFuzzer harness for the CORS engine.
 *
 * The input is split at the first two newlines into Origin,
 * Access-Control-Request-Method and Access-Control-Request-Headers; each
 * goes through cors_preflight, cors_actual, the refusal JSON and the Vary
 * merge.  Seeds: the origin column of tests/data/cors/origins.tsv.  The
 * engine must never crash, never read past the given lengths (ASan) and
 * always produce NUL-terminated, printable reasons.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cors/cors.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct cors_policy *fuzz_policy;

/* Build the policy once: a mix of exact, wildcard and null entries. */
static void
fuzz_init(void)
{
	static const char *origins[] = { "https://www.example.com",
		"https://*.example.com", "http://localhost:3000", "null",
		"http://[::1]:8080" };
	static const char *methods[] = { "GET", "PUT", "DELETE" };
	static const char *headers[] = { "Content-Type", "Authorization" };
	static const enum config_style styles[] = { CONFIG_STYLE_DATADOG,
		CONFIG_STYLE_TRACECONTEXT, CONFIG_STYLE_BAGGAGE,
		CONFIG_STYLE_B3, CONFIG_STYLE_B3MULTI };
	struct config_cors cc;

	memset(&cc, 0, sizeof cc);
	cc.allowed_origins.v = (char **)origins;
	cc.allowed_origins.n = 5;
	cc.allowed_methods.v = (char **)methods;
	cc.allowed_methods.n = 3;
	cc.allowed_headers.v = (char **)headers;
	cc.allowed_headers.n = 2;
	cc.allow_credentials = true;
	cc.allow_private_network = true;
	cc.timing_allow_origin = true;
	cc.max_age = 600;
	fuzz_policy = cors_policy_new(&cc, styles, 5, NULL, NULL);
	if (fuzz_policy == NULL)
		abort();
}

/* One input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *m = "GET", *h = NULL;
	const char *nl1, *nl2;
	size_t olen = size, mlen = 3, hlen = 0, i;
	struct cors_answer a;
	char buf[2048];

	if (fuzz_policy == NULL)
		fuzz_init();
	nl1 = memchr(s, '\n', size);
	if (nl1 != NULL) {
		olen = (size_t)(nl1 - s);
		m = nl1 + 1;
		mlen = size - olen - 1;
		nl2 = memchr(m, '\n', mlen);
		if (nl2 != NULL) {
			h = nl2 + 1;
			hlen = mlen - (size_t)(nl2 - m) - 1;
			mlen = (size_t)(nl2 - m);
		}
	}
	(void)cors_preflight(fuzz_policy, s, olen, m, mlen, h, hlen,
	    size & 1, &a);
	for (i = 0; a.reason[i] != '\0'; i++) {
		if (a.reason[i] < 0x20 || a.reason[i] > 0x7e)
			abort();
	}
	(void)cors_refusal_json(&a, buf, sizeof buf);
	(void)cors_actual(fuzz_policy, s, olen, &a);
	for (i = 0; i < a.n_headers; i++) {
		if (strlen(a.headers[i].value) != a.headers[i].value_len)
			abort();
	}
	if (cors_vary_merge(s, olen, "Origin", buf, sizeof buf) >= 0 &&
	    strlen(buf) >= sizeof buf)
		abort();
	(void)cors_is_cors_header(s, olen);
	return 0;
}
