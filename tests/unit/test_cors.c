/*
 * test_cors.c -- the CORS engine: origin matching (vectors in
 * tests/data/cors/origins.tsv), preflight decisions and their reasons,
 * the tracing-header presets, actual-request headers, Vary merging and
 * the refusal JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cors/cors.h"
#include "ts_test.h"
#include "util.h"

/* ---- helpers ---------------------------------------------------------- */

/* A config_strv over a static, NULL-terminated array. */
static struct config_strv
strv(const char **v)
{
	struct config_strv s;

	s.v = (char **)v;
	for (s.n = 0; v[s.n] != NULL; s.n++)
		;
	return s;
}

static const char *def_origins[] = { "https://www.example.com",
	"https://*.example.com", "null", NULL };
static const char *def_methods[] = { "GET", "HEAD", "POST", "PUT", "PATCH",
	"DELETE", NULL };
static const char *def_headers[] = { "Content-Type", "Authorization",
	"X-Requested-With", NULL };
static const char *no_strings[] = { NULL };
static const char *def_exposed[] = { "X-Request-Id", "Server-Timing", NULL };

static const enum config_style def_styles[] = { CONFIG_STYLE_DATADOG,
	CONFIG_STYLE_TRACECONTEXT, CONFIG_STYLE_BAGGAGE,
	CONFIG_STYLE_DATADOG, CONFIG_STYLE_TRACECONTEXT };

/* The default configuration of the tests. */
static struct config_cors
def_config(void)
{
	struct config_cors cc;

	memset(&cc, 0, sizeof cc);
	cc.allowed_origins = strv(def_origins);
	cc.allowed_methods = strv(def_methods);
	cc.allowed_headers = strv(def_headers);
	cc.exposed_headers = strv(def_exposed);
	cc.allow_credentials = true;
	cc.max_age = 600;
	cc.allow_private_network = true;
	cc.timing_allow_origin = true;
	cc.on_disallowed = CONFIG_CORS_REJECT;
	return cc;
}

/* What cors_policy_new reported: "E key: msg\n" / "W key: msg\n" lines. */
struct reports {
	char text[8192];
	unsigned fatal, warnings;
};

static void
collect_cb(void *arg, bool fatal, const char *key, const char *msg)
{
	struct reports *r = arg;
	size_t l = strlen(r->text);

	snprintf(r->text + l, sizeof r->text - l, "%c %s: %s\n",
	    fatal ? 'E' : 'W', key, msg);
	if (fatal)
		r->fatal++;
	else
		r->warnings++;
}

/* A policy that must build without a fatal report. */
static struct cors_policy *
policy(const struct config_cors *cc, const enum config_style *st, size_t n)
{
	struct cors_policy *p;
	struct reports r;

	memset(&r, 0, sizeof r);
	p = cors_policy_new(cc, st, n, collect_cb, &r);
	ck_assert_msg(p != NULL, "policy: %s", r.text);
	ck_assert_uint_eq(r.fatal, 0);
	return p;
}

/* The value of a header in an answer, or NULL. */
static const char *
hdr(const struct cors_answer *a, const char *name)
{
	size_t i;

	for (i = 0; i < a->n_headers; i++) {
		if (util_strcaseeq(a->headers[i].name, name)) {
			ck_assert_uint_eq(strlen(a->headers[i].value),
			    a->headers[i].value_len);
			return a->headers[i].value;
		}
	}
	return NULL;
}

/* Decode \xHH escapes in place; returns the length. */
static size_t
unescape(char *s)
{
	char *r = s, *w = s;

	while (*r != '\0') {
		if (r[0] == '\\' && r[1] == 'x' && r[2] != '\0' &&
		    r[3] != '\0') {
			char hex[3] = { r[2], r[3], '\0' };

			*w++ = (char)strtol(hex, NULL, 16);
			r += 4;
		} else
			*w++ = *r++;
	}
	*w = '\0';
	return (size_t)(w - s);
}

/* ---- origin matching (data-driven) ------------------------------------ */

struct origin_row {
	char pattern[1024];
	char origin[1024];
	size_t origin_len;
	char expect[16];
	int line;
};

static struct origin_row origin_rows[256];
static int n_origin_rows;

/* Load tests/data/cors/origins.tsv once (before the suite is built). */
static void
load_origins(void)
{
	char line[1024], *tab1, *tab2, *nl;
	FILE *f;
	int lineno = 0;

	f = fopen(ts_data_path("cors/origins.tsv"), "r");
	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL &&
	    n_origin_rows < (int)TS_NITEMS(origin_rows)) {
		struct origin_row *r = &origin_rows[n_origin_rows];

		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		tab1 = strchr(line, '\t');
		tab2 = tab1 != NULL ? strchr(tab1 + 1, '\t') : NULL;
		if (tab2 == NULL)
			continue;
		*tab1 = *tab2 = '\0';
		snprintf(r->pattern, sizeof r->pattern, "%s", line);
		snprintf(r->origin, sizeof r->origin, "%s", tab1 + 1);
		r->origin_len = unescape(r->origin);
		snprintf(r->expect, sizeof r->expect, "%s", tab2 + 1);
		r->line = lineno;
		n_origin_rows++;
	}
	fclose(f);
}

START_TEST(test_origin_table)
{
	const struct origin_row *r = &origin_rows[_i];
	const char *pat[] = { r->pattern, NULL };
	struct config_cors cc = def_config();
	struct cors_policy *p;
	struct cors_answer a;
	const char *errstr = NULL;
	bool ok;

	cc.allowed_origins = strv(pat);
	cc.allow_credentials = false;
	p = policy(&cc, def_styles, 3);
	ok = cors_origin_allowed(p, r->origin, r->origin_len, &errstr);
	if (strcmp(r->expect, "yes") == 0) {
		ck_assert_msg(ok, "line %d: %s vs %s: %s", r->line,
		    r->pattern, r->origin, errstr);
		/* The actual-request answer agrees. */
		ck_assert_int_eq(cors_actual(p, r->origin, r->origin_len, &a),
		    0);
		ck_assert_int_eq(a.result, CORS_ALLOWED);
		ck_assert_str_eq(hdr(&a, "Access-Control-Allow-Origin"),
		    strcmp(r->pattern, "*") == 0 ? "*" : r->origin);
	} else {
		ck_assert_msg(!ok, "line %d: %s vs %s matched", r->line,
		    r->pattern, r->origin);
		ck_assert_msg((strncmp(errstr, "malformed", 9) == 0) ==
		    (strcmp(r->expect, "malformed") == 0),
		    "line %d: %s: %s", r->line, r->origin, errstr);
		ck_assert_int_eq(cors_actual(p, r->origin, r->origin_len, &a),
		    0);
		ck_assert_int_eq(a.result, CORS_REFUSED);
		ck_assert_int_eq(a.kind, CORS_KIND_ORIGIN);
		ck_assert(a.malformed == (strcmp(r->expect, "malformed") == 0));
		ck_assert_ptr_null(hdr(&a, "Access-Control-Allow-Origin"));
		ck_assert_str_eq(hdr(&a, "Vary"), "Origin");
		/* Reasons are printable ASCII whatever the input. */
		for (const char *c = a.reason; *c != '\0'; c++)
			ck_assert(*c >= 0x20 && *c < 0x7f);
	}
	cors_policy_free(p);
}
END_TEST

START_TEST(test_origin_table_loaded)
{
	ck_assert_int_gt(n_origin_rows, 80);
}
END_TEST

/* ---- policy construction ---------------------------------------------- */

static const struct {
	const char *origin;
	bool credentials;
	const char *method;	/* extra method entry, or NULL */
	const char *header;	/* extra header entry, or NULL */
	const char *cause;	/* expected substring */
} bad_policies[] = {
	{ "*", true, NULL, NULL, "allow_credentials" },
	{ "https://a.com/", false, NULL, NULL, "malformed origin" },
	{ "https://a.com/path", false, NULL, NULL, "malformed origin" },
	{ "a.com", false, NULL, NULL, "malformed origin" },
	{ "https://a.com:70000", false, NULL, NULL, "bad port" },
	{ "https://b\xc3\xbc" "cher.example", false, NULL, NULL, "punycode" },
	{ "https://*.[::1]", false, NULL, NULL, "malformed" },
	{ "https://*", false, NULL, NULL, "malformed" },
	{ "https://a.*.com", false, NULL, NULL, "malformed" },
	{ "https://www.example.com", false, "GET POST", NULL,
	  "E allowed_methods[1]: expected a method name" },
	{ "https://www.example.com", false, "*", NULL, "\"*\" is not supported" },
	{ "https://www.example.com", false, NULL, "X Foo",
	  "E allowed_headers[1]: expected a header name" },
	{ "https://www.example.com", false, NULL, "*", "\"*\" is not supported" },
	{ "https://www.example.com", false, NULL, "", "RFC 9110 token" },
	{ "https://*.com", false, NULL, NULL,
	  "E allowed_origins[0]: \"https://*.com\" allows every site under "
	  "the public suffix \"com\"" },
};

START_TEST(test_policy_refused)
{
	const char *origins[] = { bad_policies[_i].origin, NULL };
	const char *methods[] = { "GET", bad_policies[_i].method, NULL };
	const char *headers[] = { "Content-Type", bad_policies[_i].header,
		NULL };
	struct config_cors cc = def_config();
	struct reports r;

	memset(&r, 0, sizeof r);
	cc.allowed_origins = strv(origins);
	cc.allowed_methods = strv(methods);
	cc.allowed_headers = strv(headers);
	cc.allow_credentials = bad_policies[_i].credentials;
	ck_assert_ptr_null(cors_policy_new(&cc, def_styles, 3, collect_cb,
	    &r));
	ck_assert_uint_eq(r.fatal, 1);
	ck_assert_msg(strstr(r.text, bad_policies[_i].cause) != NULL,
	    "reports: %s", r.text);
	/* Without a report callback the refusal is the NULL alone. */
	ck_assert_ptr_null(cors_policy_new(&cc, def_styles, 3, NULL, NULL));
}
END_TEST

/* Every refusal of one block is reported, each at its own key. */
START_TEST(test_policy_reports_all)
{
	const char *origins[] = { "https://www.example.com:99999",
		"https://ok.example.com", "https://example.com:080",
		"http://localhost:*", "https://*.co.uk", NULL };
	const char *methods[] = { "GET", "FE TCH", NULL };
	const char *headers[] = { "X Bad Header", "*", "X-Ok", NULL };
	const char *exposed[] = { "Server Timing", NULL };
	struct config_cors cc = def_config();
	struct reports r;

	memset(&r, 0, sizeof r);
	cc.allowed_origins = strv(origins);
	cc.allowed_methods = strv(methods);
	cc.allowed_headers = strv(headers);
	cc.exposed_headers = strv(exposed);
	ck_assert_ptr_null(cors_policy_new(&cc, def_styles, 3, collect_cb,
	    &r));
	ck_assert_str_eq(r.text,
	    "E allowed_methods[1]: expected a method name (an RFC 9110 "
	    "token: no spaces, no separators), got \"FE TCH\"\n"
	    "E allowed_headers[0]: expected a header name (an RFC 9110 "
	    "token: no spaces, no separators), got \"X Bad Header\"\n"
	    "E allowed_headers[1]: \"*\" is not supported; list the names\n"
	    "E exposed_headers[0]: expected a header name (an RFC 9110 "
	    "token: no spaces, no separators), got \"Server Timing\"\n"
	    "E allowed_origins[0]: malformed origin (bad port): expected "
	    "scheme://host[:port] (port 1 to 65535, no leading zero) without "
	    "path or trailing slash, scheme://*.domain, \"*\" or \"null\", "
	    "got \"https://www.example.com:99999\"\n"
	    "E allowed_origins[2]: malformed origin (bad port): expected "
	    "scheme://host[:port] (port 1 to 65535, no leading zero) without "
	    "path or trailing slash, scheme://*.domain, \"*\" or \"null\", "
	    "got \"https://example.com:080\"\n"
	    "E allowed_origins[3]: malformed origin (bad port): expected "
	    "scheme://host[:port] (port 1 to 65535, no leading zero) without "
	    "path or trailing slash, scheme://*.domain, \"*\" or \"null\", "
	    "got \"http://localhost:*\"\n"
	    "E allowed_origins[4]: \"https://*.co.uk\" allows every site "
	    "under the public suffix \"co.uk\" (Public Suffix List); use your "
	    "own domain, e.g. \"https://*.example.co.uk\"\n");
	ck_assert_uint_eq(r.fatal, 8);
	ck_assert_uint_eq(r.warnings, 0);
}
END_TEST

/*
 * The Public Suffix List (libpsl with Debian's publicsuffix list): ICANN
 * suffixes and private ones (github.io) are suffixes; registrable
 * domains, names below them and unlisted internal names are not.
 */
static const struct {
	const char *domain;
	bool suffix;
} psl_rows[] = {
	{ "com", true },
	{ "co.uk", true },
	{ "uk", true },
	{ "github.io", true },		/* private section */
	{ "herokuapp.com", true },	/* private section */
	{ "io", true },
	{ "example.com", false },
	{ "www.example.com", false },
	{ "example.co.uk", false },
	{ "foo.github.io", false },
	{ "corp", false },		/* not listed: no implicit "*" rule */
	{ "internal.example", false },
};

START_TEST(test_public_suffix_table)
{
	size_t i;

	for (i = 0; i < TS_NITEMS(psl_rows); i++)
		ck_assert_msg(cors_is_public_suffix(psl_rows[i].domain) ==
		    psl_rows[i].suffix, "%s", psl_rows[i].domain);
	ck_assert_uint_eq(i, 12);
}
END_TEST

/* Wildcard entries over a public suffix are refused, others built. */
static const struct {
	const char *origin;
	bool refused;
} wildcard_rows[] = {
	{ "https://*.com", true },
	{ "https://*.co.uk", true },
	{ "https://*.github.io", true },
	{ "http://*.herokuapp.com:8080", true },
	{ "https://*.example.com", false },
	{ "https://*.example.co.uk", false },
	{ "https://*.me.github.io", false },
	{ "https://*.corp", false },
};

START_TEST(test_wildcard_public_suffix)
{
	const char *origins[] = { wildcard_rows[_i].origin, NULL };
	struct config_cors cc = def_config();
	struct cors_policy *p;
	struct reports r;

	memset(&r, 0, sizeof r);
	cc.allowed_origins = strv(origins);
	cc.allow_credentials = false;
	p = cors_policy_new(&cc, def_styles, 3, collect_cb, &r);
	if (wildcard_rows[_i].refused) {
		ck_assert_ptr_null(p);
		ck_assert_uint_eq(r.fatal, 1);
		ck_assert_msg(strncmp(r.text, "E allowed_origins[0]: ", 22) ==
		    0 && strstr(r.text, "public suffix") != NULL, "%s",
		    r.text);
		/* The example keeps the scheme and the port. */
		if (strstr(wildcard_rows[_i].origin, ":8080") != NULL)
			ck_assert_msg(strstr(r.text, "e.g. \"http://*.example."
			    "herokuapp.com:8080\"") != NULL, "%s", r.text);
	} else {
		ck_assert_msg(p != NULL, "%s", r.text);
		ck_assert_str_eq(r.text, "");
	}
	cors_policy_free(p);
}
END_TEST

/* A wildcard with credentials builds, with a warning naming the risk. */
START_TEST(test_wildcard_credentials_warns)
{
	struct config_cors cc = def_config();
	struct cors_policy *p;
	struct reports r;

	memset(&r, 0, sizeof r);
	ck_assert(cc.allow_credentials);
	p = cors_policy_new(&cc, def_styles, 3, collect_cb, &r);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(r.fatal, 0);
	ck_assert_uint_eq(r.warnings, 1);
	ck_assert_str_eq(r.text, "W allowed_origins[1]: wildcard origin "
	    "\"https://*.example.com\" with allow_credentials: true lets any "
	    "subdomain, including one taken over (a dangling DNS record, user "
	    "content), read credentialed responses; list the origins if you "
	    "can\n");
	cors_policy_free(p);

	memset(&r, 0, sizeof r);
	cc.allow_credentials = false;
	p = cors_policy_new(&cc, def_styles, 3, collect_cb, &r);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(r.text, "");
	cors_policy_free(p);
}
END_TEST

START_TEST(test_policy_free_null)
{
	cors_policy_free(NULL);
}
END_TEST

START_TEST(test_star_without_credentials)
{
	const char *origins[] = { "*", NULL };
	struct config_cors cc = def_config();
	struct cors_policy *p;
	struct cors_answer a;

	cc.allowed_origins = strv(origins);
	cc.allow_credentials = false;
	p = policy(&cc, def_styles, 3);
	ck_assert_int_eq(cors_preflight(p, "https://x.test", 14, "PUT", 3,
	    "traceparent", 11, false, &a), 0);
	ck_assert_int_eq(a.result, CORS_ALLOWED);
	ck_assert_str_eq(hdr(&a, "Access-Control-Allow-Origin"), "*");
	ck_assert_ptr_null(hdr(&a, "Access-Control-Allow-Credentials"));
	ck_assert_int_eq(cors_actual(p, "https://x.test", 14, &a), 0);
	ck_assert_str_eq(hdr(&a, "Access-Control-Allow-Origin"), "*");
	ck_assert_str_eq(hdr(&a, "Timing-Allow-Origin"), "*");
	ck_assert_ptr_null(hdr(&a, "Access-Control-Allow-Credentials"));
	cors_policy_free(p);
}
END_TEST

/* ---- tracing header presets --------------------------------------------- */

static const struct {
	enum config_style styles[4];
	size_t n;
	const char *acah;
} presets[] = {
	{ { CONFIG_STYLE_DATADOG }, 1,
	  "content-type, authorization, x-requested-with, accept, "
	  "accept-language, content-language, x-datadog-trace-id, "
	  "x-datadog-parent-id, x-datadog-origin, "
	  "x-datadog-sampling-priority, x-datadog-tags" },
	{ { CONFIG_STYLE_TRACECONTEXT, CONFIG_STYLE_BAGGAGE }, 2,
	  "content-type, authorization, x-requested-with, accept, "
	  "accept-language, content-language, traceparent, tracestate, "
	  "baggage" },
	{ { CONFIG_STYLE_B3, CONFIG_STYLE_B3MULTI, CONFIG_STYLE_B3 }, 3,
	  "content-type, authorization, x-requested-with, accept, "
	  "accept-language, content-language, b3, x-b3-traceid, "
	  "x-b3-spanid, x-b3-parentspanid, x-b3-sampled, x-b3-flags" },
	{ { CONFIG_STYLE_NONE }, 1,
	  "content-type, authorization, x-requested-with, accept, "
	  "accept-language, content-language" },
	{ { CONFIG_STYLE_DATADOG, CONFIG_STYLE_TRACECONTEXT,
	    CONFIG_STYLE_BAGGAGE, CONFIG_STYLE_DATADOG }, 4,
	  "content-type, authorization, x-requested-with, accept, "
	  "accept-language, content-language, x-datadog-trace-id, "
	  "x-datadog-parent-id, x-datadog-origin, "
	  "x-datadog-sampling-priority, x-datadog-tags, traceparent, "
	  "tracestate, baggage" },
};

START_TEST(test_presets)
{
	struct config_cors cc = def_config();
	struct cors_policy *p;
	struct cors_answer a;

	p = policy(&cc, presets[_i].styles, presets[_i].n);
	ck_assert_str_eq(cors_allow_headers(p), presets[_i].acah);
	ck_assert_int_eq(cors_preflight(p, "https://www.example.com", 23,
	    "PUT", 3, NULL, 0, false, &a), 0);
	ck_assert_int_eq(a.result, CORS_ALLOWED);
	ck_assert_str_eq(hdr(&a, "Access-Control-Allow-Headers"),
	    presets[_i].acah);
	/* Precomputed: the very same string every time. */
	ck_assert_ptr_eq(hdr(&a, "Access-Control-Allow-Headers"),
	    cors_allow_headers(p));
	cors_policy_free(p);
}
END_TEST

START_TEST(test_preset_dedup_case)
{
	const char *headers[] = { "TraceParent", "content-type",
		"X-Datadog-Trace-Id", "Content-Type", NULL };
	struct config_cors cc = def_config();
	struct cors_policy *p;

	cc.allowed_headers = strv(headers);
	p = policy(&cc, def_styles, 2);
	ck_assert_str_eq(cors_allow_headers(p), "traceparent, content-type, "
	    "x-datadog-trace-id, accept, accept-language, content-language, "
	    "x-datadog-parent-id, x-datadog-origin, "
	    "x-datadog-sampling-priority, x-datadog-tags, tracestate");
	cors_policy_free(p);
}
END_TEST

START_TEST(test_style_headers)
{
	const char *const *names;

	ck_assert_uint_eq(cors_style_headers(CONFIG_STYLE_DATADOG, &names), 5);
	ck_assert_str_eq(names[4], "x-datadog-tags");
	ck_assert_uint_eq(cors_style_headers(CONFIG_STYLE_B3MULTI, &names), 5);
	ck_assert_uint_eq(cors_style_headers(CONFIG_STYLE_NONE, &names), 0);
	ck_assert_str_eq(cors_header_class("X-B3-Flags", 10), "x-b3-flags");
	ck_assert_str_eq(cors_header_class("baggage", 7), "baggage");
	ck_assert_str_eq(cors_header_class("x-foo", 5), "other");
	ck_assert_str_eq(cors_header_class("traceparentx", 12), "other");
}
END_TEST

/* ---- preflight decisions ------------------------------------------------ */

static const struct {
	const char *origin;
	const char *acrm;
	const char *acrh;	/* NULL: no header */
	bool pna;
	enum cors_result result;
	enum cors_kind kind;
	const char *header_class;
	const char *reason;
} preflights[] = {
	{ "https://www.example.com", "PUT", NULL, false, CORS_ALLOWED,
	  CORS_KIND_NONE, "", "" },
	{ "https://www.example.com", "GET",
	  "baggage,traceparent,tracestate,x-datadog-origin,"
	  "x-datadog-parent-id,x-datadog-sampling-priority,x-datadog-trace-id",
	  false, CORS_ALLOWED, CORS_KIND_NONE, "", "" },
	{ "https://app.example.com", "DELETE",
	  " X-Datadog-Trace-Id ,\tTRACEPARENT, ,,content-type ,", false,
	  CORS_ALLOWED, CORS_KIND_NONE, "", "" },
	{ "https://app.example.com", "POST", "", false, CORS_ALLOWED,
	  CORS_KIND_NONE, "", "" },
	{ "https://app.example.com", "POST", "accept, accept-language, "
	  "content-language", false, CORS_ALLOWED, CORS_KIND_NONE, "", "" },
	{ "null", "GET", NULL, false, CORS_ALLOWED, CORS_KIND_NONE, "", "" },
	/* Safelisted methods are always allowed (Fetch). */
	{ "https://www.example.com", "HEAD", NULL, false, CORS_ALLOWED,
	  CORS_KIND_NONE, "", "" },
	/* origin refusals */
	{ "https://evil.com", "GET", NULL, false, CORS_REFUSED,
	  CORS_KIND_ORIGIN, "", "origin https://evil.com is not allowed" },
	{ "https://example.com.evil.net", "GET", NULL, false, CORS_REFUSED,
	  CORS_KIND_ORIGIN, "",
	  "origin https://example.com.evil.net is not allowed" },
	{ "https://www.example.com/", "GET", NULL, false, CORS_REFUSED,
	  CORS_KIND_ORIGIN, "", "malformed origin \"https://www.example.com/\"" },
	{ "https://www.example.com\r\n", "GET", NULL, false, CORS_REFUSED,
	  CORS_KIND_ORIGIN, "",
	  "malformed origin \"https://www.example.com??\"" },
	/* method refusals: case-sensitive, token check */
	{ "https://www.example.com", "PURGE", NULL, false, CORS_REFUSED,
	  CORS_KIND_METHOD, "", "method PURGE is not allowed" },
	{ "https://www.example.com", "patch", NULL, false, CORS_REFUSED,
	  CORS_KIND_METHOD, "",
	  "method patch is not allowed (methods are case-sensitive)" },
	{ "https://www.example.com", "get", NULL, false, CORS_REFUSED,
	  CORS_KIND_METHOD, "",
	  "method get is not allowed (methods are case-sensitive)" },
	{ "https://www.example.com", "post", NULL, false, CORS_REFUSED,
	  CORS_KIND_METHOD, "",
	  "method post is not allowed (methods are case-sensitive)" },
	{ "https://www.example.com", "GE T", NULL, false, CORS_REFUSED,
	  CORS_KIND_METHOD, "", "malformed method \"GE T\"" },
	{ "https://www.example.com", "", NULL, false, CORS_REFUSED,
	  CORS_KIND_METHOD, "", "malformed method \"\"" },
	/* header refusals and their classification */
	{ "https://www.example.com", "GET", "traceparent, x-foo", false,
	  CORS_REFUSED, CORS_KIND_HEADER, "other",
	  "header x-foo is not allowed" },
	{ "https://www.example.com", "GET", "traceparent,B3", false,
	  CORS_REFUSED, CORS_KIND_HEADER, "b3", "header B3 is not allowed" },
	{ "https://www.example.com", "GET", "x-b3-traceid,x-b3-spanid", false,
	  CORS_REFUSED, CORS_KIND_HEADER, "x-b3-traceid",
	  "header x-b3-traceid is not allowed" },
	{ "https://www.example.com", "GET", "traceparent, x(y)", false,
	  CORS_REFUSED, CORS_KIND_HEADER, "other",
	  "malformed Access-Control-Request-Headers item \"x(y)\"" },
	{ "https://www.example.com", "GET", "trace parent", false,
	  CORS_REFUSED, CORS_KIND_HEADER, "other",
	  "malformed Access-Control-Request-Headers item \"trace parent\"" },
	/* the origin is checked first, then the method, then headers */
	{ "https://evil.com", "PURGE", "x-foo", false, CORS_REFUSED,
	  CORS_KIND_ORIGIN, "", "origin https://evil.com is not allowed" },
	{ "https://www.example.com", "PURGE", "x-foo", false, CORS_REFUSED,
	  CORS_KIND_METHOD, "", "method PURGE is not allowed" },
};

START_TEST(test_preflight_table)
{
	struct config_cors cc = def_config();
	struct cors_policy *p;
	struct cors_answer a;
	const char *acrh = preflights[_i].acrh;

	p = policy(&cc, def_styles, TS_NITEMS(def_styles));
	ck_assert_int_eq(cors_preflight(p, preflights[_i].origin,
	    strlen(preflights[_i].origin), preflights[_i].acrm,
	    strlen(preflights[_i].acrm), acrh, acrh ? strlen(acrh) : 0,
	    preflights[_i].pna, &a), 0);
	ck_assert_int_eq(a.result, preflights[_i].result);
	ck_assert_int_eq(a.kind, preflights[_i].kind);
	ck_assert_str_eq(a.header_class, preflights[_i].header_class);
	ck_assert_str_eq(a.reason, preflights[_i].reason);
	ck_assert_str_eq(hdr(&a, "Vary"), "Origin, "
	    "Access-Control-Request-Method, Access-Control-Request-Headers, "
	    "Access-Control-Request-Private-Network");
	if (a.result == CORS_ALLOWED) {
		ck_assert_str_eq(hdr(&a, "Access-Control-Allow-Origin"),
		    preflights[_i].origin);
		ck_assert_str_eq(hdr(&a, "Access-Control-Allow-Credentials"),
		    "true");
		ck_assert_str_eq(hdr(&a, "Access-Control-Allow-Methods"),
		    "GET, HEAD, POST, PUT, PATCH, DELETE");
		ck_assert_str_eq(hdr(&a, "Access-Control-Max-Age"), "600");
		ck_assert_ptr_null(hdr(&a,
		    "Access-Control-Allow-Private-Network"));
		ck_assert_uint_eq(a.n_headers, 6);
	} else {
		/* A refusal carries Vary and nothing else. */
		ck_assert_uint_eq(a.n_headers, 1);
	}
	cors_policy_free(p);
}
END_TEST

START_TEST(test_preflight_pna)
{
	struct config_cors cc = def_config();
	struct cors_policy *p;
	struct cors_answer a;

	p = policy(&cc, def_styles, 3);
	ck_assert_int_eq(cors_preflight(p, "https://www.example.com", 23,
	    "GET", 3, NULL, 0, true, &a), 0);
	ck_assert_str_eq(hdr(&a, "Access-Control-Allow-Private-Network"),
	    "true");
	ck_assert_uint_eq(a.n_headers, 7);
	cors_policy_free(p);

	cc.allow_private_network = false;
	cc.allow_credentials = false;
	p = policy(&cc, def_styles, 3);
	ck_assert_int_eq(cors_preflight(p, "https://www.example.com", 23,
	    "GET", 3, NULL, 0, true, &a), 0);
	ck_assert_int_eq(a.result, CORS_ALLOWED);
	ck_assert_ptr_null(hdr(&a, "Access-Control-Allow-Private-Network"));
	ck_assert_ptr_null(hdr(&a, "Access-Control-Allow-Credentials"));
	ck_assert_str_eq(hdr(&a, "Vary"), "Origin, "
	    "Access-Control-Request-Method, Access-Control-Request-Headers");
	ck_assert_str_eq(cors_vary_preflight(p), hdr(&a, "Vary"));
	cors_policy_free(p);
}
END_TEST

START_TEST(test_preflight_echo_is_request_bytes)
{
	struct config_cors cc = def_config();
	struct cors_policy *p;
	struct cors_answer a;
	char origin[] = "https://shop.example.com:443";

	p = policy(&cc, def_styles, 3);
	ck_assert_int_eq(cors_preflight(p, origin, strlen(origin), "GET", 3,
	    NULL, 0, false, &a), 0);
	/* The echo is a copy: the request buffer may go away. */
	origin[8] = 'X';
	ck_assert_str_eq(hdr(&a, "Access-Control-Allow-Origin"),
	    "https://shop.example.com:443");
	cors_policy_free(p);
}
END_TEST

START_TEST(test_is_preflight)
{
	ck_assert(cors_is_preflight("OPTIONS", true, true));
	ck_assert(!cors_is_preflight("OPTIONS", false, true));
	ck_assert(!cors_is_preflight("OPTIONS", true, false));
	ck_assert(!cors_is_preflight("GET", true, true));
	ck_assert(!cors_is_preflight("options", true, true));
	ck_assert(!cors_is_preflight(NULL, true, true));
}
END_TEST

START_TEST(test_rejects)
{
	struct config_cors cc = def_config();
	struct cors_policy *p;

	p = policy(&cc, def_styles, 3);
	ck_assert(cors_policy_rejects(p));
	cors_policy_free(p);
	cc.on_disallowed = CONFIG_CORS_PASS;
	p = policy(&cc, def_styles, 3);
	ck_assert(!cors_policy_rejects(p));
	cors_policy_free(p);
}
END_TEST

/* ---- actual requests ---------------------------------------------------- */

START_TEST(test_actual)
{
	struct config_cors cc = def_config();
	struct cors_policy *p;
	struct cors_answer a;

	p = policy(&cc, def_styles, 3);
	ck_assert_int_eq(cors_actual(p, "https://a.example.com", 21, &a), 0);
	ck_assert_int_eq(a.result, CORS_ALLOWED);
	ck_assert_uint_eq(a.n_headers, 5);
	ck_assert_str_eq(hdr(&a, "Access-Control-Allow-Origin"),
	    "https://a.example.com");
	ck_assert_str_eq(hdr(&a, "Access-Control-Allow-Credentials"), "true");
	ck_assert_str_eq(hdr(&a, "Access-Control-Expose-Headers"),
	    "x-request-id, server-timing");
	ck_assert_str_eq(hdr(&a, "Timing-Allow-Origin"),
	    "https://a.example.com");
	ck_assert_str_eq(hdr(&a, "Vary"), "Origin");

	ck_assert_int_eq(cors_actual(p, NULL, 0, &a), 0);
	ck_assert_int_eq(a.result, CORS_NO_ORIGIN);
	ck_assert_uint_eq(a.n_headers, 1);
	ck_assert_str_eq(hdr(&a, "Vary"), "Origin");

	ck_assert_int_eq(cors_actual(p, "https://evil.com", 16, &a), 0);
	ck_assert_int_eq(a.result, CORS_REFUSED);
	ck_assert_int_eq(a.kind, CORS_KIND_ORIGIN);
	ck_assert_str_eq(a.reason, "origin https://evil.com is not allowed");
	ck_assert_uint_eq(a.n_headers, 1);
	ck_assert_str_eq(hdr(&a, "Vary"), "Origin");
	cors_policy_free(p);

	/* No exposed headers, no TAO, no credentials. */
	cc.exposed_headers = strv(no_strings);
	cc.timing_allow_origin = false;
	cc.allow_credentials = false;
	p = policy(&cc, def_styles, 3);
	ck_assert_int_eq(cors_actual(p, "https://a.example.com", 21, &a), 0);
	ck_assert_uint_eq(a.n_headers, 2);
	ck_assert_ptr_nonnull(hdr(&a, "Access-Control-Allow-Origin"));
	ck_assert_str_eq(hdr(&a, "Vary"), cors_vary_actual());
	cors_policy_free(p);
}
END_TEST

START_TEST(test_is_cors_header)
{
	ck_assert(cors_is_cors_header("Access-Control-Allow-Origin", 27));
	ck_assert(cors_is_cors_header("access-control-expose-headers", 29));
	ck_assert(cors_is_cors_header("ACCESS-CONTROL-MAX-AGE", 22));
	ck_assert(cors_is_cors_header("Timing-Allow-Origin", 19));
	ck_assert(!cors_is_cors_header("Access-Control-", 15));
	ck_assert(!cors_is_cors_header("Vary", 4));
	ck_assert(!cors_is_cors_header("Timing-Allow-Originx", 20));
	ck_assert(!cors_is_cors_header("Access-Controlled", 17));
	/* Length-bounded: the name need not be NUL-terminated. */
	ck_assert(cors_is_cors_header("Timing-Allow-Origin: x", 19));
}
END_TEST

/* ---- Vary merging ------------------------------------------------------- */

static const struct {
	const char *upstream;	/* NULL: none */
	const char *ours;
	const char *merged;
} varies[] = {
	{ NULL, "Origin", "Origin" },
	{ "", "Origin", "Origin" },
	{ "Accept-Encoding", "Origin", "Accept-Encoding, Origin" },
	{ "accept-encoding,origin", "Origin", "accept-encoding, origin" },
	{ "Origin", "Origin", "Origin" },
	{ " ORIGIN ", "Origin", "ORIGIN" },
	{ "*", "Origin", "*" },
	{ "Accept, *", "Origin", "*" },
	{ "Accept-Encoding, , Cookie", "Origin", "Accept-Encoding, Cookie, "
	  "Origin" },
	{ "Origins", "Origin", "Origins, Origin" },
	{ "Origin", "Origin, Access-Control-Request-Method, "
	  "Access-Control-Request-Headers", "Origin, "
	  "Access-Control-Request-Method, Access-Control-Request-Headers" },
};

START_TEST(test_vary_merge)
{
	char buf[256];
	const char *up = varies[_i].upstream;
	int n;

	n = cors_vary_merge(up, up ? strlen(up) : 0, varies[_i].ours, buf,
	    sizeof buf);
	ck_assert_str_eq(buf, varies[_i].merged);
	ck_assert_int_eq(n, (int)strlen(varies[_i].merged));
}
END_TEST

START_TEST(test_vary_merge_small)
{
	char buf[8];

	ck_assert_int_eq(cors_vary_merge("Accept-Encoding", 15, "Origin", buf,
	    sizeof buf), -1);
	ck_assert_int_eq(cors_vary_merge(NULL, 0, "Origin", buf, 7), 6);
	ck_assert_int_eq(cors_vary_merge(NULL, 0, "Origin", buf, 6), -1);
}
END_TEST

/* ---- refusal JSON ------------------------------------------------------- */

START_TEST(test_refusal_json)
{
	struct config_cors cc = def_config();
	struct cors_policy *p;
	struct cors_answer a;
	char buf[1024], small[16];
	json_t *j;
	json_error_t err;
	size_t n;
	const char *acrh = "x-\"q\\";	/* not a token: malformed */

	p = policy(&cc, def_styles, 3);
	ck_assert_int_eq(cors_preflight(p, "https://www.example.com", 23,
	    "GET", 3, "traceparent, x-foo", 18, false, &a), 0);
	n = cors_refusal_json(&a, buf, sizeof buf);
	ck_assert_str_eq(buf, "{\"error\":\"cors_refused\",\"kind\":\"header\","
	    "\"reason\":\"header x-foo is not allowed\",\"header\":\"x-foo\"}");
	ck_assert_uint_eq(n, strlen(buf));

	/* Quotes and backslashes from the request are escaped. */
	ck_assert_int_eq(cors_preflight(p, "https://www.example.com", 23,
	    "GET", 3, acrh, strlen(acrh), false, &a), 0);
	n = cors_refusal_json(&a, buf, sizeof buf);
	j = json_loads(buf, 0, &err);
	ck_assert_msg(j != NULL, "%s: %s", buf, err.text);
	ck_assert_str_eq(json_string_value(json_object_get(j, "header")),
	    "x-\"q\\");
	ck_assert_str_eq(json_string_value(json_object_get(j, "reason")),
	    "malformed Access-Control-Request-Headers item \"x-\"q\\\"");
	json_decref(j);

	/* Origin refusal: no "header" member; control bytes never leak. */
	ck_assert_int_eq(cors_preflight(p, "https://e\x01vil\"", 14, "GET", 3,
	    NULL, 0, false, &a), 0);
	n = cors_refusal_json(&a, buf, sizeof buf);
	j = json_loads(buf, 0, &err);
	ck_assert_msg(j != NULL, "%s: %s", buf, err.text);
	ck_assert_str_eq(json_string_value(json_object_get(j, "kind")),
	    "origin");
	ck_assert_ptr_null(json_object_get(j, "header"));
	ck_assert_str_eq(json_string_value(json_object_get(j, "reason")),
	    "malformed origin \"https://e?vil\"\"");
	json_decref(j);

	/* snprintf rule: truncated but NUL-terminated, full length back. */
	ck_assert_uint_eq(cors_refusal_json(&a, small, sizeof small), n);
	ck_assert_uint_eq(strlen(small), sizeof small - 1);
	ck_assert_uint_eq(cors_refusal_json(&a, NULL, 0), n);
	cors_policy_free(p);
}
END_TEST

START_TEST(test_long_values)
{
	struct config_cors cc = def_config();
	struct cors_policy *p;
	struct cors_answer a;
	char hdrname[1000], origin[600];

	memset(hdrname, 'x', sizeof hdrname);
	memcpy(origin, "https://", 8);
	memset(origin + 8, 'a', sizeof origin - 8);
	p = policy(&cc, def_styles, 3);
	ck_assert_int_eq(cors_preflight(p, "https://www.example.com", 23,
	    "GET", 3, hdrname, sizeof hdrname, false, &a), 0);
	ck_assert_int_eq(a.kind, CORS_KIND_HEADER);
	ck_assert_uint_eq(strlen(a.detail), CORS_DETAIL_MAX - 1);
	ck_assert(strstr(a.detail, "...") != NULL);
	ck_assert_int_eq(cors_actual(p, origin, sizeof origin, &a), 0);
	ck_assert_int_eq(a.result, CORS_REFUSED);
	ck_assert(a.malformed);
	cors_policy_free(p);
}
END_TEST

START_TEST(test_labels)
{
	ck_assert_str_eq(cors_kind_name(CORS_KIND_ORIGIN), "origin");
	ck_assert_str_eq(cors_kind_name(CORS_KIND_METHOD), "method");
	ck_assert_str_eq(cors_kind_name(CORS_KIND_HEADER), "header");
	ck_assert_str_eq(cors_kind_name(CORS_KIND_NONE), "");
	ck_assert_str_eq(cors_result_name(CORS_ALLOWED), "allowed");
	ck_assert_str_eq(cors_result_name(CORS_REFUSED), "refused");
}
END_TEST

static Suite *
cors_suite(void)
{
	Suite *s = suite_create("cors");
	TCase *tc;

	load_origins();

	tc = tcase_create("origin");
	tcase_add_test(tc, test_origin_table_loaded);
	tcase_add_loop_test(tc, test_origin_table, 0, n_origin_rows);
	suite_add_tcase(s, tc);

	tc = tcase_create("policy");
	tcase_add_loop_test(tc, test_policy_refused, 0,
	    TS_NITEMS(bad_policies));
	tcase_add_test(tc, test_policy_free_null);
	tcase_add_test(tc, test_policy_reports_all);
	tcase_add_test(tc, test_public_suffix_table);
	tcase_add_loop_test(tc, test_wildcard_public_suffix, 0,
	    (int)TS_NITEMS(wildcard_rows));
	tcase_add_test(tc, test_wildcard_credentials_warns);
	tcase_add_test(tc, test_star_without_credentials);
	tcase_add_test(tc, test_rejects);
	tcase_add_test(tc, test_labels);
	suite_add_tcase(s, tc);

	tc = tcase_create("presets");
	tcase_add_loop_test(tc, test_presets, 0, TS_NITEMS(presets));
	tcase_add_test(tc, test_preset_dedup_case);
	tcase_add_test(tc, test_style_headers);
	suite_add_tcase(s, tc);

	tc = tcase_create("preflight");
	tcase_add_loop_test(tc, test_preflight_table, 0,
	    TS_NITEMS(preflights));
	tcase_add_test(tc, test_preflight_pna);
	tcase_add_test(tc, test_preflight_echo_is_request_bytes);
	tcase_add_test(tc, test_is_preflight);
	tcase_add_test(tc, test_long_values);
	suite_add_tcase(s, tc);

	tc = tcase_create("actual");
	tcase_add_test(tc, test_actual);
	tcase_add_test(tc, test_is_cors_header);
	suite_add_tcase(s, tc);

	tc = tcase_create("vary");
	tcase_add_loop_test(tc, test_vary_merge, 0, TS_NITEMS(varies));
	tcase_add_test(tc, test_vary_merge_small);
	suite_add_tcase(s, tc);

	tc = tcase_create("json");
	tcase_add_test(tc, test_refusal_json);
	suite_add_tcase(s, tc);

	return s;
}

TS_TEST_MAIN(cors_suite)
