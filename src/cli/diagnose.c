/*
 * diagnose.c -- `tracestitch diagnose`: send the preflight a browser
 * running Datadog RUM would send (OPTIONS with Origin, Access-Control-
 * Request-Method and the RUM tracing headers in Access-Control-Request-
 * Headers) to any http or https URL, and report what a browser would do
 * with the answer: origin, method, each requested header, credentials,
 * Vary and max-age, then a verdict and an exit code.
 *
 * The evaluation (diagnose_evaluate) is pure and follows WHATWG Fetch:
 * "CORS check" (ACAO must be "*" or byte-equal to the origin; "*" never
 * passes a credentialed request, which also needs ACAC "true") and
 * "CORS-preflight fetch" (ok status; method listed, "*" or safelisted;
 * each requested header listed case-insensitively, or "*" for
 * non-credentialed requests except Authorization).  The network part
 * uses blocking sockets with timeouts, getaddrinfo and OpenSSL with SNI
 * and certificate verification.
 *
 * What it says is meant to be true: tracestitch's own 403 (the body of
 * cors_refusal_json) is shown with its reason, and what the gateway did
 * not look at is "not evaluated", never "refused"; for any other server
 * each response header at fault is named with the one-line nginx and
 * tracestitch fixes; the console line is the one Chromium prints, in its
 * order and words; and a credentialed pass by an echoed origin is asked
 * again from origins the server cannot mean (diagnose_probe_origins).
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libpsl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cors.h"
#include "diagnose.h"
#include "http_response.h"
#include "styles.h"
#include "ts_config.h"
#include "url.h"
#include "util.h"

#define DIAGNOSE_RESPONSE_MAX 65536
#define DIAGNOSE_TIMEOUT_MS 5000

/* A parsed http(s) URL. */
struct diagnose_url {
	bool https;
	char host[256];		/* without brackets */
	char port[8];
	char authority[300];	/* Host header value */
	char path[2048];	/* path and query, at least "/" */
	bool ip_literal;
};

/* Find the only value of a response header; *count gets the number. */
static const char *
diagnose_find(const struct diagnose_input *in, const char *name,
    size_t *count)
{
	const char *v = NULL;
	size_t i, c = 0;

	for (i = 0; i < in->n_headers; i++) {
		if (util_strcaseeq(in->headers[i].name, name)) {
			if (v == NULL)
				v = in->headers[i].value;
			c++;
		}
	}
	if (count != NULL)
		*count = c;
	return v;
}

/* Does a comma list contain item (exact or case-insensitive)? */
static bool
diagnose_list_has(const char *list, const char *item, bool nocase)
{
	const char *p = list, *end, *e;
	size_t len = strlen(item), elen;

	if (list == NULL)
		return false;
	end = list + strlen(list);
	while (util_list_next(&p, end, &e, &elen)) {
		if (elen == len && (nocase ? util_strncaseeq(e, item, len) :
		    memcmp(e, item, len) == 0))
			return true;
	}
	return false;
}

/* Add a warning (static text) to a report. */
static void
diagnose_warn(struct diagnose_report *r, const char *text)
{
	if (r->n_warnings < DIAGNOSE_MAX_WARNINGS)
		r->warnings[r->n_warnings++] = text;
}

/* Evaluate the origin part (Fetch "CORS check"). */
static void
diagnose_check_origin(const struct diagnose_input *in,
    struct diagnose_report *r)
{
	size_t n;

	r->acao = diagnose_find(in, "Access-Control-Allow-Origin", &n);
	r->origin_note = "";
	if (r->acao == NULL) {
		r->origin_note = "no Access-Control-Allow-Origin";
		return;
	}
	if (n > 1 || strchr(r->acao, ',') != NULL) {
		r->origin_note = "several Access-Control-Allow-Origin values";
		return;
	}
	if (strcmp(r->acao, "*") == 0) {
		if (in->credentials) {
			r->origin_note = "\"*\" is refused for credentialed "
			    "requests";
			return;
		}
		r->origin_ok = true;
		return;
	}
	if (strcmp(r->acao, in->origin) != 0) {
		r->origin_note = util_strcaseeq(r->acao, in->origin) ?
		    "Access-Control-Allow-Origin differs in case (the "
		    "comparison is byte-exact)" :
		    "Access-Control-Allow-Origin names another origin";
		return;
	}
	r->origin_ok = true;
}

/* Append to a NUL-terminated buffer, truncating (snprintf rule). */
static void __attribute__((format(printf, 3, 4)))
diagnose_cat(char *buf, size_t size, const char *fmt, ...)
{
	size_t len = strnlen(buf, size);
	va_list ap;

	if (len + 1 >= size)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(buf + len, size - len, fmt, ap);
	va_end(ap);
}

/* Every value of a response header joined with ", " (Fetch "get"). */
static void
diagnose_joined(const struct diagnose_input *in, const char *name, char *buf,
    size_t size)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < in->n_headers; i++) {
		if (util_strcaseeq(in->headers[i].name, name))
			diagnose_cat(buf, size, "%s%s", buf[0] != '\0' ?
			    ", " : "", in->headers[i].value);
	}
}

/*
 * True when every member of an Access-Control-Allow-* list is a token
 * (Fetch "extracting header list values"; Chromium refuses the whole
 * preflight otherwise: preflight_result.cc ParseAccessControlAllowList).
 */
static bool
diagnose_list_valid(const char *list)
{
	const char *p = list, *end, *e;
	size_t elen;

	if (list == NULL)
		return true;
	end = list + strlen(list);
	while (util_list_next(&p, end, &e, &elen)) {
		if (!util_is_token(e, elen))
			return false;
	}
	return true;
}

/* Copy a JSON string as printable ASCII (others become '?'). */
static void
diagnose_copy_printable(char *dst, size_t size, const char *src)
{
	size_t i;

	for (i = 0; src[i] != '\0' && i + 1 < size; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
}

/*
 * Recognise tracestitch's own refusal: a 403 whose body is the JSON that
 * cors_refusal_json() writes, {"error":"cors_refused","kind":...,
 * "reason":...[,"header":...]}.  No other server sends that body.
 */
static bool
diagnose_gateway_refusal(const struct diagnose_input *in,
    struct diagnose_report *r)
{
	json_t *j;
	const char *err, *kind, *reason, *header;
	bool ok;

	if (in->status != 403 || in->body == NULL || in->body_len == 0)
		return false;
	if ((j = json_loadb(in->body, in->body_len, 0, NULL)) == NULL)
		return false;
	err = json_string_value(json_object_get(j, "error"));
	kind = json_string_value(json_object_get(j, "kind"));
	reason = json_string_value(json_object_get(j, "reason"));
	header = json_string_value(json_object_get(j, "header"));
	ok = err != NULL && strcmp(err, "cors_refused") == 0 &&
	    kind != NULL && reason != NULL && (strcmp(kind, "origin") == 0 ||
	    strcmp(kind, "method") == 0 || (strcmp(kind, "header") == 0 &&
	    header != NULL));
	if (ok) {
		r->gateway = true;
		diagnose_copy_printable(r->gateway_kind,
		    sizeof r->gateway_kind, kind);
		diagnose_copy_printable(r->gateway_reason,
		    sizeof r->gateway_reason, reason);
		diagnose_copy_printable(r->gateway_header,
		    sizeof r->gateway_header, header != NULL ? header : "");
	}
	json_decref(j);
	return ok;
}

/*
 * The gateway checks the origin, then the method, then each name of
 * Access-Control-Request-Headers in the order sent, and stops at the
 * first refusal (cors.c cors_preflight): what follows was not evaluated.
 */
static void
diagnose_gateway_states(struct diagnose_report *r)
{
	enum diagnose_state next;
	size_t i;

	r->origin_state = r->method_state = DIAGNOSE_ALLOWED;
	if (strcmp(r->gateway_kind, "origin") == 0) {
		r->origin_state = DIAGNOSE_REFUSED;
		r->method_state = DIAGNOSE_NOT_EVALUATED;
		next = DIAGNOSE_NOT_EVALUATED;
	} else if (strcmp(r->gateway_kind, "method") == 0) {
		r->method_state = DIAGNOSE_REFUSED;
		next = DIAGNOSE_NOT_EVALUATED;
	} else {
		/* Allowed up to the refused name; none of ours: none judged. */
		next = DIAGNOSE_NOT_EVALUATED;
		for (i = 0; i < r->n_headers; i++) {
			if (util_strcaseeq(r->headers[i].name,
			    r->gateway_header))
				next = DIAGNOSE_ALLOWED;
		}
	}
	for (i = 0; i < r->n_headers; i++) {
		struct diagnose_verdict *v = &r->headers[i];

		if (next == DIAGNOSE_ALLOWED && util_strcaseeq(v->name,
		    r->gateway_header)) {
			v->state = DIAGNOSE_REFUSED;
			next = DIAGNOSE_NOT_EVALUATED;
		} else
			v->state = next;
	}
}

/*
 * The console message of Chromium for this answer, or "" when it passes.
 * Order and texts: services/network/public/cpp/cors/cors.cc CheckAccess
 * (the ACAO and ACAC checks, which come before the status check of
 * CheckPreflightAccess), services/network/cors/preflight_result.cc
 * (list syntax, then the method, then the first header in the sorted
 * request header names), and third_party/blink/renderer/platform/loader/
 * cors/cors_error_string.cc (the wording, for a fetch() initiator).
 */
static void
diagnose_console(const struct diagnose_input *in, struct diagnose_report *r,
    const char *acao_all)
{
	static const char preflight[] = "Response to preflight request "
	    "doesn't pass access control check: ";
	static const char no_cors[] = " Have the server send the header "
	    "with a valid value, or, if an opaque response serves your "
	    "needs, set the request's mode to 'no-cors' to fetch the "
	    "resource with CORS disabled.";
	char *c = r->console;
	size_t size = sizeof r->console, i;
	const char *u = in->url != NULL ? in->url : "";
	const char *slash = strstr(u, "://");

	/* The URL as Chromium serializes it: an empty path becomes "/". */
	snprintf(c, size, "Access to fetch at '%s%s' from origin '%s' has "
	    "been blocked by CORS policy: ", u, slash != NULL &&
	    strcspn(slash + 3, "/?#") == strlen(slash + 3) ? "/" : "",
	    in->origin);
	if (r->acao == NULL) {
		diagnose_cat(c, size, "%sNo 'Access-Control-Allow-Origin' "
		    "header is present on the requested resource. If an "
		    "opaque response serves your needs, set the request's "
		    "mode to 'no-cors' to fetch the resource with CORS "
		    "disabled.", preflight);
		return;
	}
	if (strcmp(acao_all, "*") == 0) {
		if (in->credentials) {
			diagnose_cat(c, size, "%sThe value of the "
			    "'Access-Control-Allow-Origin' header in the "
			    "response must not be the wildcard '*' when the "
			    "request's credentials mode is 'include'.",
			    preflight);
			return;
		}
	} else if (strcmp(acao_all, in->origin) != 0) {
		if (strpbrk(acao_all, " ,") != NULL)
			diagnose_cat(c, size, "%sThe 'Access-Control-Allow-"
			    "Origin' header contains multiple values '%s', but "
			    "only one is allowed.%s", preflight, acao_all,
			    no_cors);
		else if (strcmp(acao_all, "null") != 0 &&
		    strstr(acao_all, "://") == NULL)
			diagnose_cat(c, size, "%sThe 'Access-Control-Allow-"
			    "Origin' header contains the invalid value '%s'.%s",
			    preflight, acao_all, no_cors);
		else
			diagnose_cat(c, size, "%sThe 'Access-Control-Allow-"
			    "Origin' header has a value '%s' that is not equal "
			    "to the supplied origin.%s", preflight, acao_all,
			    no_cors);
		return;
	}
	if (in->credentials && !r->acac) {
		diagnose_cat(c, size, "%sThe value of the 'Access-Control-"
		    "Allow-Credentials' header in the response is '%s' which "
		    "must be 'true' when the request's credentials mode is "
		    "'include'.", preflight, r->acac_value != NULL ?
		    r->acac_value : "");
		return;
	}
	if (!r->status_ok) {
		diagnose_cat(c, size, "%sIt does not have HTTP ok status.",
		    preflight);
		return;
	}
	if (r->acam != NULL && !diagnose_list_valid(r->acam)) {
		diagnose_cat(c, size, "Cannot parse Access-Control-Allow-"
		    "Methods response header field in preflight response.");
		return;
	}
	if (r->acah != NULL && !diagnose_list_valid(r->acah)) {
		diagnose_cat(c, size, "Cannot parse Access-Control-Allow-"
		    "Headers response header field in preflight response.");
		return;
	}
	if (!r->method_ok) {
		diagnose_cat(c, size, "Method %s is not allowed by "
		    "Access-Control-Allow-Methods in preflight response.",
		    in->method);
		return;
	}
	for (i = 0; i < r->n_headers; i++) {
		if (r->headers[i].state != DIAGNOSE_ALLOWED) {
			diagnose_cat(c, size, "Request header field %s is not "
			    "allowed by Access-Control-Allow-Headers in "
			    "preflight response.", r->headers[i].name);
			return;
		}
	}
	c[0] = '\0';	/* it passes */
}

/* A new finding, or NULL when the report is full. */
static struct diagnose_finding *
diagnose_finding(struct diagnose_report *r, const char *header)
{
	struct diagnose_finding *f;

	if (r->n_findings == DIAGNOSE_MAX_FINDINGS)
		return NULL;
	f = &r->findings[r->n_findings++];
	memset(f, 0, sizeof *f);
	f->header = header;
	return f;
}

/* The propagation style whose request headers include name, or NULL. */
static const char *
diagnose_style_of(const char *name)
{
	const struct style_desc *d = styles_of_header(name, strlen(name));

	return d != NULL ? d->name : NULL;
}

/* The --propagators list as the YAML flow sequence "[a, b]". */
static void
diagnose_styles_yaml(const struct diagnose_input *in, char *buf,
    size_t size)
{
	size_t i;

	snprintf(buf, size, "[");
	for (i = 0; i < in->n_styles; i++)
		diagnose_cat(buf, size, "%s%s", i ? ", " : "",
		    config_style_name(in->styles[i]));
	diagnose_cat(buf, size, "]");
}

/* The finding of tracestitch's own refusal, with the key to change. */
static void
diagnose_gateway_finding(const struct diagnose_input *in,
    struct diagnose_report *r)
{
	struct diagnose_finding *f = diagnose_finding(r, "tracestitch");
	const char *style;

	if (f == NULL)
		return;
	snprintf(f->problem, sizeof f->problem, "tracestitch refused the "
	    "preflight (403): %s", r->gateway_reason);
	if (strcmp(r->gateway_kind, "origin") == 0) {
		if (strncmp(r->gateway_reason, "malformed", 9) == 0)
			diagnose_cat(f->problem, sizeof f->problem, " (a "
			    "browser never sends such an Origin)");
		else
			snprintf(f->fix_tracestitch, sizeof f->fix_tracestitch,
			    "cors.allowed_origins: [..., \"%s\"]", in->origin);
	} else if (strcmp(r->gateway_kind, "method") == 0) {
		if (strstr(r->gateway_reason, "case-sensitive") != NULL)
			snprintf(f->fix_tracestitch, sizeof f->fix_tracestitch,
			    "none: send the method in upper case from the page "
			    "(fetch() does not upper-case %s)", in->method);
		else
			snprintf(f->fix_tracestitch, sizeof f->fix_tracestitch,
			    "cors.allowed_methods: [..., %s]", in->method);
	} else if ((style = diagnose_style_of(r->gateway_header)) != NULL)
		snprintf(f->fix_tracestitch, sizeof f->fix_tracestitch,
		    "propagation.extract: [..., %s]  (or propagation.inject: "
		    "both allow the style's headers)", style);
	else if (util_is_token(r->gateway_header, strlen(r->gateway_header)))
		snprintf(f->fix_tracestitch, sizeof f->fix_tracestitch,
		    "cors.allowed_headers: [..., %s]", r->gateway_header);
}

/* The findings of another server's answer: every header at fault. */
static void
diagnose_server_findings(const struct diagnose_input *in,
    struct diagnose_report *r, const char *acao_all)
{
	struct diagnose_finding *f;
	char list[512], styles[128], other[384];
	bool tracing = false;
	size_t i;

	if (!r->origin_ok && (f = diagnose_finding(r,
	    "Access-Control-Allow-Origin")) != NULL) {
		if (r->acao == NULL)
			snprintf(f->problem, sizeof f->problem, "no "
			    "Access-Control-Allow-Origin in the answer");
		else if (strpbrk(acao_all, " ,") != NULL)
			snprintf(f->problem, sizeof f->problem,
			    "Access-Control-Allow-Origin has several values "
			    "(%s); a browser accepts exactly one", acao_all);
		else if (strcmp(acao_all, "*") == 0)
			snprintf(f->problem, sizeof f->problem,
			    "Access-Control-Allow-Origin is \"*\", which a "
			    "browser never accepts for a credentialed request");
		else
			snprintf(f->problem, sizeof f->problem,
			    "Access-Control-Allow-Origin is %s, not %s (%s)",
			    acao_all, in->origin, r->origin_note);
		if (r->acao != NULL && strpbrk(acao_all, " ,") != NULL)
			snprintf(f->fix_nginx, sizeof f->fix_nginx,
			    "proxy_hide_header Access-Control-Allow-Origin;  "
			    "(drop the upstream's copy; keep one add_header)");
		else
			snprintf(f->fix_nginx, sizeof f->fix_nginx,
			    "add_header Access-Control-Allow-Origin \"%s\" "
			    "always;", in->origin);
		snprintf(f->fix_tracestitch, sizeof f->fix_tracestitch,
		    "cors.allowed_origins: [..., \"%s\"]", in->origin);
	}
	if (in->credentials && !r->acac && (f = diagnose_finding(r,
	    "Access-Control-Allow-Credentials")) != NULL) {
		snprintf(f->problem, sizeof f->problem, "Access-Control-Allow-"
		    "Credentials is %s%s%s; a credentialed request needs "
		    "\"true\"", r->acac_value != NULL ? "\"" : "absent",
		    r->acac_value != NULL ? r->acac_value : "",
		    r->acac_value != NULL ? "\"" : "");
		snprintf(f->fix_nginx, sizeof f->fix_nginx, "add_header "
		    "Access-Control-Allow-Credentials \"true\" always;");
		snprintf(f->fix_tracestitch, sizeof f->fix_tracestitch,
		    "cors.allow_credentials: true");
	}
	if (!r->status_ok && (f = diagnose_finding(r, "status")) != NULL) {
		snprintf(f->problem, sizeof f->problem, "the preflight "
		    "(OPTIONS) was answered %d; a browser needs a 2xx status",
		    in->status);
		snprintf(f->fix_nginx, sizeof f->fix_nginx, "if "
		    "($request_method = OPTIONS) { return 204; }  (in the "
		    "location, with the add_header lines marked always)");
		snprintf(f->fix_tracestitch, sizeof f->fix_tracestitch,
		    "cors.allowed_origins: [\"%s\"]  (a route with a cors "
		    "block answers preflights itself)", in->origin);
	}
	if (!r->method_ok && (f = diagnose_finding(r,
	    "Access-Control-Allow-Methods")) != NULL) {
		snprintf(f->problem, sizeof f->problem, "Access-Control-Allow-"
		    "Methods (%s) does not list %s", r->acam != NULL ?
		    r->acam : "absent", in->method);
		snprintf(f->fix_nginx, sizeof f->fix_nginx, "add_header "
		    "Access-Control-Allow-Methods \"%s%s%s\" always;",
		    r->acam != NULL ? r->acam : "", r->acam != NULL &&
		    r->acam[0] != '\0' ? ", " : "", in->method);
		snprintf(f->fix_tracestitch, sizeof f->fix_tracestitch,
		    "cors.allowed_methods: [..., %s]", in->method);
	}
	list[0] = other[0] = '\0';
	for (i = 0; i < r->n_headers; i++) {
		if (r->headers[i].state == DIAGNOSE_ALLOWED)
			continue;
		diagnose_cat(list, sizeof list, "%s%s", list[0] ? ", " : "",
		    r->headers[i].name);
		if (r->headers[i].tracing)
			tracing = true;
		else
			diagnose_cat(other, sizeof other, "%s%s", other[0] ?
			    ", " : "", r->headers[i].name);
	}
	if (list[0] != '\0' && (f = diagnose_finding(r,
	    "Access-Control-Allow-Headers")) != NULL) {
		snprintf(f->problem, sizeof f->problem, "Access-Control-Allow-"
		    "Headers (%s) does not list %s", r->acah != NULL ?
		    r->acah : "absent", list);
		snprintf(f->fix_nginx, sizeof f->fix_nginx, "add_header "
		    "Access-Control-Allow-Headers \"%s%s%s\" always;",
		    r->acah != NULL ? r->acah : "", r->acah != NULL &&
		    r->acah[0] != '\0' ? ", " : "", list);
		/* tracestitch allows the tracing headers of its styles */
		diagnose_styles_yaml(in, styles, sizeof styles);
		snprintf(f->fix_tracestitch, sizeof f->fix_tracestitch,
		    "%s%s%s%s%s", tracing ? "propagation.extract: " : "",
		    tracing ? styles : "", tracing && other[0] ? "; " : "",
		    other[0] ? "cors.allowed_headers: [..., " : "",
		    other[0] ? other : "");
		if (other[0] != '\0')
			diagnose_cat(f->fix_tracestitch,
			    sizeof f->fix_tracestitch, "]");
	}
}

/* Format the verdict line. */
static void
diagnose_verdict_line(struct diagnose_report *r,
    const struct diagnose_input *in)
{
	char list[384];
	size_t i;

	list[0] = '\0';
	for (i = 0; i < r->n_headers; i++) {
		if (r->headers[i].state == DIAGNOSE_REFUSED)
			diagnose_cat(list, sizeof list, "%s%s", list[0] ?
			    ", " : "", r->headers[i].name);
	}
	if (r->exit_code == DIAGNOSE_EXIT_OK)
		snprintf(r->verdict, sizeof r->verdict, "OK: a browser at %s "
		    "would pass this preflight; every tracing header would be "
		    "sent", in->origin);
	else if (r->gateway)
		snprintf(r->verdict, sizeof r->verdict, "FAIL: tracestitch "
		    "refused the preflight: %s (the browser blocks the whole "
		    "request; %zu item%s not evaluated)", r->gateway_reason,
		    r->n_not_evaluated, r->n_not_evaluated == 1 ? " was" :
		    "s were");
	else if (!r->origin_ok)
		snprintf(r->verdict, sizeof r->verdict, "FAIL: origin %s is "
		    "refused (%s)", in->origin, r->origin_note);
	else if (!r->credentials_ok)
		snprintf(r->verdict, sizeof r->verdict, "FAIL: credentialed "
		    "requests need Access-Control-Allow-Credentials: true");
	else if (!r->status_ok)
		snprintf(r->verdict, sizeof r->verdict, "FAIL: the preflight "
		    "was answered %d; browsers need a 2xx status", in->status);
	else if (!r->method_ok)
		snprintf(r->verdict, sizeof r->verdict, "FAIL: method %s is "
		    "refused", in->method);
	else if (list[0] != '\0')
		snprintf(r->verdict, sizeof r->verdict, "FAIL: %s refused: %s "
		    "(the browser blocks the whole request%s)",
		    r->n_refused > 1 ? "headers" : "header", list,
		    r->n_tracing_refused > 0 ? "; RUM traces will not link "
		    "to APM" : "");
	else
		snprintf(r->verdict, sizeof r->verdict, "FAIL: the browser "
		    "cannot parse the answer's Access-Control-Allow-* lists");
}

/* Evaluate a preflight answer the way a browser would. */
int
diagnose_evaluate(const struct diagnose_input *in, struct diagnose_report *r)
{
	const char *ma;
	char acao_all[512];
	bool star_h, star_m;
	size_t i;

	memset(r, 0, sizeof *r);
	if (in->n_requested > DIAGNOSE_MAX_HEADERS)
		return -1;
	r->status_ok = in->status >= 200 && in->status <= 299;
	r->server = diagnose_find(in, "Server", NULL);
	diagnose_check_origin(in, r);
	diagnose_joined(in, "Access-Control-Allow-Origin", acao_all,
	    sizeof acao_all);

	/* Fetch: ACAC must be the byte sequence `true` (case-sensitive). */
	r->acac_value = diagnose_find(in, "Access-Control-Allow-Credentials",
	    NULL);
	r->acac = r->acac_value != NULL && strcmp(r->acac_value, "true") == 0;
	r->credentials_ok = !in->credentials || r->acac;
	if (r->acao != NULL && strcmp(r->acao, "*") == 0 && r->acac &&
	    !in->credentials)
		diagnose_warn(r, "Access-Control-Allow-Origin \"*\" with "
		    "credentials: credentialed requests (fetch credentials: "
		    "include, XHR withCredentials) would be refused");

	/* Fetch CORS-preflight fetch: methods. */
	r->acam = diagnose_find(in, "Access-Control-Allow-Methods", NULL);
	star_m = r->acam != NULL && !in->credentials &&
	    diagnose_list_has(r->acam, "*", false);
	r->method_ok = strcmp(in->method, "GET") == 0 ||
	    strcmp(in->method, "HEAD") == 0 ||
	    strcmp(in->method, "POST") == 0 || star_m ||
	    (r->acam != NULL && diagnose_list_has(r->acam, in->method,
	    false));

	/* Headers: case-insensitive; "*" never covers Authorization. */
	r->acah = diagnose_find(in, "Access-Control-Allow-Headers", NULL);
	star_h = r->acah != NULL && !in->credentials &&
	    diagnose_list_has(r->acah, "*", false);
	for (i = 0; i < in->n_requested; i++) {
		struct diagnose_verdict *v = &r->headers[r->n_headers++];
		const char *name = in->requested[i];

		v->name = name;
		v->tracing = strcmp(cors_header_class(name, strlen(name)),
		    "other") != 0;
		v->state = (r->acah != NULL && diagnose_list_has(r->acah,
		    name, true)) || (star_h &&
		    !util_strcaseeq(name, "authorization")) ?
		    DIAGNOSE_ALLOWED : DIAGNOSE_REFUSED;
	}
	r->origin_state = r->origin_ok && r->credentials_ok ?
	    DIAGNOSE_ALLOWED : DIAGNOSE_REFUSED;
	r->method_state = r->method_ok ? DIAGNOSE_ALLOWED : DIAGNOSE_REFUSED;

	/* What the browser prints depends on the response alone. */
	diagnose_console(in, r, acao_all);

	/* tracestitch's 403: its own judgement replaces ours per item. */
	if (diagnose_gateway_refusal(in, r)) {
		diagnose_gateway_states(r);
		diagnose_gateway_finding(in, r);
	}
	for (i = 0; i < r->n_headers; i++) {
		if (r->headers[i].state == DIAGNOSE_REFUSED) {
			r->n_refused++;
			if (r->headers[i].tracing)
				r->n_tracing_refused++;
		} else if (r->headers[i].state == DIAGNOSE_NOT_EVALUATED)
			r->n_not_evaluated++;
	}
	if (r->method_state == DIAGNOSE_NOT_EVALUATED)
		r->n_not_evaluated++;

	r->vary = diagnose_find(in, "Vary", NULL);
	r->vary_has_origin = r->vary != NULL &&
	    (diagnose_list_has(r->vary, "Origin", true) ||
	    diagnose_list_has(r->vary, "*", false));
	if (!r->vary_has_origin && r->acao != NULL &&
	    strcmp(r->acao, "*") != 0)
		diagnose_warn(r, "Vary lacks Origin: a shared cache may serve "
		    "this answer to another origin");

	ma = diagnose_find(in, "Access-Control-Max-Age", NULL);
	if (ma != NULL && util_parse_u64(ma, strlen(ma), &r->max_age) == 0)
		r->has_max_age = true;
	else if (ma != NULL)
		diagnose_warn(r, "Access-Control-Max-Age is not a number");
	if (!r->has_max_age && r->status_ok)
		diagnose_warn(r, "no Access-Control-Max-Age: browsers cache "
		    "the preflight for 5 seconds only");
	else if (r->has_max_age && r->max_age > 7200)
		diagnose_warn(r, "Chromium caps Access-Control-Max-Age at "
		    "7200 seconds");

	r->exit_code = r->console[0] == '\0' ? DIAGNOSE_EXIT_OK :
	    DIAGNOSE_EXIT_REFUSED;
	if (r->exit_code != DIAGNOSE_EXIT_OK && !r->gateway)
		diagnose_server_findings(in, r, acao_all);
	diagnose_verdict_line(r, in);
	return 0;
}

/* A serialized origin a browser could send (the CORS engine judges). */
bool
diagnose_origin_wellformed(const char *origin, size_t len)
{
	static const char *const any[] = { "*" };
	static const enum config_style st[] = { CONFIG_STYLE_DATADOG };
	struct config_cors cc;
	struct cors_policy *p;
	const char *errstr = NULL;
	bool ok;

	if (len == 4 && memcmp(origin, "null", 4) == 0)
		return true;
	memset(&cc, 0, sizeof cc);
	cc.allowed_origins.v = (char **)any;
	cc.allowed_origins.n = 1;
	if ((p = cors_policy_new(&cc, st, 1, NULL, NULL)) == NULL)
		return false;
	ok = cors_origin_allowed(p, origin, len, &errstr) ||
	    strncmp(errstr, "malformed", 9) != 0;
	cors_policy_free(p);
	return ok;
}

/* Origins no configuration should grant credentials to. */
size_t
diagnose_probe_origins(const char *origin, char out[][300], size_t max)
{
	static const char label[] = "tracestitch-diagnose-probe";
	psl_ctx_t *psl;
	const char *h, *port, *reg, *suffix;
	char host[256];
	size_t n = 0, hl, sl, sl2;

	if (max == 0 || !diagnose_origin_wellformed(origin, strlen(origin)) ||
	    strcmp(origin, "null") == 0 || (h = strstr(origin, "://")) == NULL)
		return 0;
	sl = (size_t)(h - origin);
	h += 3;
	if (*h == '[') {		/* IPv6: no suffix to probe */
		port = strstr(h, "]:");
		port = port != NULL ? port + 1 : "";
	} else
		port = h + strcspn(h, ":");
	/* RFC 6761 6.4: .invalid names never resolve to a real site. */
	snprintf(out[n++], 300, "%.*s://%s.invalid%s", (int)sl, origin,
	    label, port);
	if (*h == '[' || n == max)
		return n;
	hl = (size_t)(port - h);
	if (hl >= sizeof host)
		return n;
	memcpy(host, h, hl);
	host[hl] = '\0';
	for (sl2 = 0; host[sl2] != '\0'; sl2++) {
		if (host[sl2] >= 'A' && host[sl2] <= 'Z')
			host[sl2] = (char)(host[sl2] - 'A' + 'a');
	}
	/* A made-up site under the origin's public suffix (PSL). */
	if ((psl = psl_latest(NULL)) == NULL)
		return n;
	/*
	 * Names under localhost are the user's own machine (RFC 6761 6.3),
	 * whatever the PSL's default rule makes of them: no other site.
	 */
	reg = psl_registrable_domain(psl, host);
	if (reg != NULL && (suffix = strchr(reg, '.')) != NULL &&
	    strcmp(suffix, ".localhost") != 0)
		snprintf(out[n++], 300, "%.*s://%s%s%s", (int)sl, origin,
		    label, suffix, port);
	psl_free(psl);
	return n;
}

/* The server also trusts probe with credentials. */
void
diagnose_mark_unsafe(struct diagnose_report *r,
    const struct diagnose_input *in, const char *probe)
{
	struct diagnose_finding *f;

	snprintf(r->unsafe_origin, sizeof r->unsafe_origin, "%s", probe);
	r->exit_code = DIAGNOSE_EXIT_UNSAFE;
	snprintf(r->verdict, sizeof r->verdict, "UNSAFE: a browser at %s "
	    "would pass this credentialed preflight, and so would one at "
	    "%s: the server grants credentials to origins it cannot mean "
	    "(a reflected Origin, or a wildcard over a public suffix), so "
	    "any such site can read responses made with the user's cookies",
	    in->origin, probe);
	if ((f = diagnose_finding(r, "Access-Control-Allow-Origin")) == NULL)
		return;
	snprintf(f->problem, sizeof f->problem, "Access-Control-Allow-Origin "
	    "echoes %s with Access-Control-Allow-Credentials: true", probe);
	snprintf(f->fix_nginx, sizeof f->fix_nginx, "add_header "
	    "Access-Control-Allow-Origin \"%s\" always;  (a fixed origin, "
	    "not $http_origin)", in->origin);
	snprintf(f->fix_tracestitch, sizeof f->fix_tracestitch,
	    "cors.allowed_origins: [\"%s\"]  (list the sites; no wildcard "
	    "over a public suffix)", in->origin);
}

/* Parse a comma-separated propagator list. */
int
diagnose_parse_styles(const char *list, enum config_style *out, size_t max,
    size_t *n, const char **errstr)
{
	static char msg[256];
	struct config_styles cs;
	size_t i;

	/* The configuration's own parser (PROPAGATION.md 7.1): commas and/or
	 * blanks, any case, each name once. */
	*n = 0;
	if (config_styles_parse(list, &cs, msg, sizeof msg) != 0) {
		*errstr = msg;
		return -1;
	}
	if (cs.n == 0) {
		*errstr = "empty propagator list";
		return -1;
	}
	if (cs.n > max) {
		*errstr = "too many propagators";
		return -1;
	}
	for (i = 0; i < cs.n; i++)
		out[i] = cs.v[i];
	*n = cs.n;
	return 0;
}

/* qsort comparator for strings. */
static int
diagnose_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add a lower-case copy of name unless present. */
static void
diagnose_add_name(char ***v, size_t *n, const char *name)
{
	char *l;
	size_t i;

	for (i = 0; i < *n; i++) {
		if (util_strcaseeq((*v)[i], name))
			return;
	}
	l = xstrdup(name);
	for (i = 0; l[i] != '\0'; i++) {
		if (l[i] >= 'A' && l[i] <= 'Z')
			l[i] = (char)(l[i] - 'A' + 'a');
	}
	*v = xrealloc(*v, (*n + 1) * sizeof **v);
	(*v)[(*n)++] = l;
}

/* The request headers RUM adds for these propagators, Chromium order. */
void
diagnose_rum_headers(const enum config_style *styles, size_t n_styles,
    const char *const *extra, size_t n_extra, char ***out, size_t *n_out)
{
	const struct style_desc *d;
	size_t i, j;

	*out = NULL;
	*n_out = 0;
	for (i = 0; i < n_styles; i++) {
		/* RUM's own subset of the style's headers (styles.h). */
		d = styles_get(styles[i]);
		for (j = 0; d != NULL && j < STYLES_MAX_HEADERS &&
		    d->rum_headers[j] != NULL; j++)
			diagnose_add_name(out, n_out, d->rum_headers[j]);
	}
	for (i = 0; i < n_extra; i++)
		diagnose_add_name(out, n_out, extra[i]);
	if (*n_out > 1)
		qsort(*out, *n_out, sizeof **out, diagnose_strcmp);
}

/* Free an array from diagnose_rum_headers. */
void
diagnose_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * Parse a response with the one response parser (http_response.c), then
 * lay the names, values and de-chunked body out again in buf (the parser
 * works on a copy): each field line shrinks to name NUL value NUL and a
 * chunked body loses its framing, so all of it fits in len bytes.
 */
int
diagnose_parse_response(char *buf, size_t len, int *status,
    struct diagnose_header *headers, size_t max, size_t *n,
    size_t *body_off, size_t *body_len, const char **errstr)
{
	struct upstream_parser *p = NULL;
	struct evbuffer *body;
	const struct upstream_response *r;
	struct evkeyval *kv;
	enum upstream_parse pr;
	size_t off = 0, kl, vl;
	int rc = -1;

	*n = 0;
	*body_off = *body_len = 0;
	if ((body = evbuffer_new()) == NULL) {
		*errstr = "out of memory";
		return -1;
	}
	/*
	 * We sent Connection: close and read to the end or to our buffer's
	 * limit: a close-delimited body ends here, and a body cut at the
	 * limit still has the head diagnose is about.
	 */
	pr = upstream_parse_buffer(buf, len, true, body, &p, errstr);
	if (pr == UPSTREAM_PARSE_ERROR)
		goto out;
	r = upstream_parser_response(p);
	*status = r->status;
	TAILQ_FOREACH(kv, r->headers, next) {
		if (*n == max)
			break;
		kl = strlen(kv->key);
		vl = strlen(kv->value);
		memcpy(buf + off, kv->key, kl + 1);
		headers[*n].name = buf + off;
		off += kl + 1;
		memcpy(buf + off, kv->value, vl + 1);
		headers[*n].value = buf + off;
		off += vl + 1;
		(*n)++;
	}
	/* Never past len: a field line is longer than name NUL value NUL,
	 * and a body is never longer than its framed bytes. */
	*body_off = off;
	*body_len = TS_MIN(evbuffer_get_length(body), len - off);
	if (*body_len > 0 &&
	    evbuffer_remove(body, buf + off, *body_len) != (int)*body_len) {
		*errstr = "out of memory";
		goto out;
	}
	buf[off + *body_len] = '\0';
	rc = 0;
out:
	upstream_parser_free(p);
	evbuffer_free(body);
	return rc;
}

/* ---- network ---------------------------------------------------------- */

/* Parse an http(s) URL (url.c); -1 with *errstr. */
static int
diagnose_url_parse(const char *url, struct diagnose_url *u,
    const char **errstr)
{
	struct url pu;
	int n;

	memset(u, 0, sizeof *u);
	if (url_parse(url, URL_QUERY, &pu, errstr) != 0)
		return -1;
	u->https = pu.scheme == URL_SCHEME_HTTPS;
	u->ip_literal = pu.ip_literal;
	snprintf(u->port, sizeof u->port, "%u", (unsigned)pu.port);
	/* The request target: the path, at least "/", and the query. */
	n = snprintf(u->path, sizeof u->path, "%s%s%s",
	    pu.path[0] == '\0' ? "/" : "", pu.path, pu.query);
	if (strlen(pu.host) >= sizeof u->host ||
	    strlen(pu.authority) >= sizeof u->authority ||
	    n < 0 || (size_t)n >= sizeof u->path) {
		url_clear(&pu);
		*errstr = "URL too long";
		return -1;
	}
	snprintf(u->host, sizeof u->host, "%s", pu.host);
	snprintf(u->authority, sizeof u->authority, "%s", pu.authority);
	url_clear(&pu);
	*errstr = NULL;
	return 0;
}

/* Connect with a timeout; returns the fd or -1 with *cause. */
static int
diagnose_connect(const struct diagnose_url *u, int timeout_ms, char **cause)
{
	struct addrinfo hints, *res, *ai;
	struct timeval tv;
	struct pollfd pfd;
	socklen_t sl;
	int fd = -1, rc, err, flags;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(u->host, u->port, &hints, &res);
	if (rc != 0) {
		xasprintf(cause, "%s: %s", u->host, gai_strerror(rc));
		return -1;
	}
	err = ETIMEDOUT;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1) {
			err = errno;
			continue;
		}
		flags = fcntl(fd, F_GETFL);
		(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			goto connected;
		if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			rc = poll(&pfd, 1, timeout_ms);
			sl = sizeof err;
			if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
			    &sl) == 0 && err == 0)
				goto connected;
			if (rc == 0)
				err = ETIMEDOUT;
		} else
			err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	xasprintf(cause, "connect to %s port %s: %s", u->host, u->port,
	    strerror(err));
	return -1;

connected:
	freeaddrinfo(res);
	(void)fcntl(fd, F_SETFL, flags);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

/*
 * Feed the n bytes just read to the response parser (http_response.c):
 * true once the final response is complete (its Content-Length, the end
 * of a chunked body, at once for 204 and 304) or cannot be one, so the
 * reading stops; a close-delimited body ends when the server closes (we
 * sent Connection: close).  The body bytes are dropped here:
 * diagnose_parse_response reads them again from the buffer.
 */
static bool
diagnose_response_complete(struct upstream_parser *p, struct evbuffer *in,
    struct evbuffer *body, const char *data, size_t n)
{
	enum upstream_parse pr;
	const char *errstr;

	if (evbuffer_add(in, data, n) != 0)
		return true;
	while ((pr = upstream_parser_feed(p, in, body, &errstr)) ==
	    UPSTREAM_PARSE_HEAD)
		;
	(void)evbuffer_drain(body, evbuffer_get_length(body));
	return pr != UPSTREAM_PARSE_MORE;
}

/* The first OpenSSL error as text. */
static const char *
diagnose_ssl_error(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "TLS handshake failed";
	ERR_error_string_n(e, buf, size);
	return buf;
}

/*
 * Send req and read the response (head and body: see
 * diagnose_response_complete; at most DIAGNOSE_RESPONSE_MAX bytes).
 * Returns the length or -1 with *cause.
 */
static ssize_t
diagnose_exchange(const struct diagnose_url *u, bool insecure,
    int timeout_ms, const char *req, char *buf, size_t size, char **cause)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	struct upstream_parser *p = NULL;
	struct evbuffer *in = NULL, *body = NULL;
	char ebuf[256];
	ssize_t n, total = -1;
	size_t len = 0, reqlen = strlen(req);
	bool done = false;
	int fd;
	long vr;

	if ((fd = diagnose_connect(u, timeout_ms, cause)) == -1)
		return -1;
	if (u->https) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (ctx == NULL) {
			xasprintf(cause, "TLS: %s", diagnose_ssl_error(ebuf,
			    sizeof ebuf));
			goto out;
		}
		(void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		if (!insecure) {
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
			if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
				xasprintf(cause, "TLS: no CA certificates");
				goto out;
			}
		}
		ssl = SSL_new(ctx);
		if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
			xasprintf(cause, "TLS: %s", diagnose_ssl_error(ebuf,
			    sizeof ebuf));
			goto out;
		}
		/* SNI is for names only (RFC 6066 section 3). */
		if (!u->ip_literal)
			(void)SSL_set_tlsext_host_name(ssl, u->host);
		if (!insecure) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

			X509_VERIFY_PARAM_set_hostflags(vp,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if ((u->ip_literal ? X509_VERIFY_PARAM_set1_ip_asc(vp,
			    u->host) : X509_VERIFY_PARAM_set1_host(vp, u->host,
			    0)) != 1) {
				xasprintf(cause, "TLS: cannot verify %s",
				    u->host);
				goto out;
			}
		}
		if (SSL_connect(ssl) != 1) {
			vr = SSL_get_verify_result(ssl);
			xasprintf(cause, "TLS handshake with %s: %s", u->host,
			    vr != X509_V_OK ? X509_verify_cert_error_string(vr) :
			    diagnose_ssl_error(ebuf, sizeof ebuf));
			goto out;
		}
	}

	while (len < reqlen) {
		n = ssl != NULL ? SSL_write(ssl, req + len, (int)(reqlen - len)) :
		    write(fd, req + len, reqlen - len);
		if (n <= 0) {
			xasprintf(cause, "send: %s", errno == EAGAIN ?
			    "timeout" : strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	len = 0;
	p = upstream_parser_new(false);
	in = evbuffer_new();
	body = evbuffer_new();
	if (p == NULL || in == NULL || body == NULL) {
		xasprintf(cause, "out of memory");
		goto out;
	}
	while (len < size - 1 && !done) {
		errno = 0;
		n = ssl != NULL ? SSL_read(ssl, buf + len, (int)(size - 1 -
		    len)) : read(fd, buf + len, size - 1 - len);
		if (n == 0 || (n < 0 && len > 0))
			break;	/* EOF (or a TLS close without close_notify) */
		if (n < 0) {
			xasprintf(cause, "receive: %s", errno == EAGAIN ||
			    errno == EWOULDBLOCK ? "timeout" : errno != 0 ?
			    strerror(errno) : diagnose_ssl_error(ebuf,
			    sizeof ebuf));
			goto out;
		}
		done = diagnose_response_complete(p, in, body, buf + len,
		    (size_t)n);
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (len == 0) {
		xasprintf(cause, "the server closed the connection without "
		    "an answer");
		goto out;
	}
	total = (ssize_t)len;
out:
	if (ssl != NULL) {
		(void)SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	SSL_CTX_free(ctx);
	close(fd);
	upstream_parser_free(p);
	if (in != NULL)
		evbuffer_free(in);
	if (body != NULL)
		evbuffer_free(body);
	return total;
}

/* ---- output ----------------------------------------------------------- */

/* "allowed", "REFUSED", "not evaluated" (JSON: lower case, underscore). */
static const char *
diagnose_state_name(enum diagnose_state s, bool json)
{
	switch (s) {
	case DIAGNOSE_ALLOWED:
		return "allowed";
	case DIAGNOSE_REFUSED:
		return json ? "refused" : "REFUSED";
	case DIAGNOSE_NOT_EVALUATED:
		return json ? "not_evaluated" : "not evaluated";
	}
	return "?";
}

/* Print the human-readable report. */
static void
diagnose_print(FILE *f, const struct diagnose_input *in,
    const struct diagnose_report *r, const char *acrh)
{
	size_t i;

	fprintf(f, "preflight  OPTIONS %s\n", in->url);
	fprintf(f, "  Origin: %s\n", in->origin);
	fprintf(f, "  Access-Control-Request-Method: %s\n", in->method);
	fprintf(f, "  Access-Control-Request-Headers: %s\n\n", acrh);
	if (r->gateway)
		fprintf(f, "%-30s tracestitch (its own 403 refusal)\n",
		    "answered by");
	else
		fprintf(f, "%-30s %s\n", "answered by", r->server != NULL ?
		    r->server : "(no Server header)");
	fprintf(f, "%-30s %-13s %d\n", "status", r->status_ok ? "ok" : "FAIL",
	    in->status);
	if (r->gateway)
		fprintf(f, "%-30s %-13s %s\n", "origin",
		    diagnose_state_name(r->origin_state, false),
		    r->origin_state == DIAGNOSE_REFUSED ? r->gateway_reason :
		    "accepted by the gateway");
	else
		fprintf(f, "%-30s %-13s Access-Control-Allow-Origin: %s%s%s\n",
		    "origin", diagnose_state_name(r->origin_state, false),
		    r->acao ? r->acao : "(none)", r->origin_ok ? "" : " -- ",
		    r->origin_note);
	if (r->gateway)
		fprintf(f, "%-30s %-13s %s\n", in->method,
		    diagnose_state_name(r->method_state, false),
		    r->method_state == DIAGNOSE_REFUSED ? r->gateway_reason :
		    "");
	else
		fprintf(f, "%-30s %-13s Access-Control-Allow-Methods: %s\n",
		    in->method, diagnose_state_name(r->method_state, false),
		    r->acam ? r->acam : "(none)");
	for (i = 0; i < r->n_headers; i++)
		fprintf(f, "%-30s %-13s %s\n", r->headers[i].name,
		    diagnose_state_name(r->headers[i].state, false),
		    r->headers[i].tracing ? "tracing header" : "");
	fprintf(f, "%-30s %-13s Access-Control-Allow-Credentials: %s%s\n",
	    "credentials", r->credentials_ok ? (r->acac ? "yes" : "no") :
	    "REFUSED", r->acac_value ? r->acac_value : "(absent)",
	    in->credentials ? " (credentialed request)" : "");
	fprintf(f, "%-30s %-13s %s\n", "vary", r->vary_has_origin ? "ok" :
	    "WARN", r->vary ? r->vary : "(none)");
	if (r->has_max_age)
		fprintf(f, "%-30s %-13llu seconds\n", "max-age",
		    (unsigned long long)r->max_age);
	else
		fprintf(f, "%-30s %-13s\n", "max-age", "(none)");
	for (i = 0; i < r->n_warnings; i++)
		fprintf(f, "warning: %s\n", r->warnings[i]);
	if (r->gateway && r->n_not_evaluated > 0)
		fprintf(f, "\nnot evaluated: the gateway stops at the first "
		    "refusal, so %zu item%s after it %s not judged\n",
		    r->n_not_evaluated, r->n_not_evaluated == 1 ? "" : "s",
		    r->n_not_evaluated == 1 ? "was" : "were");
	if (r->console[0] != '\0')
		fprintf(f, "\nconsole (Chromium): %s\n", r->console);
	for (i = 0; i < r->n_findings; i++) {
		const struct diagnose_finding *fd = &r->findings[i];

		fprintf(f, "\nproblem: %s\n", fd->problem);
		if (fd->fix_nginx[0] != '\0')
			fprintf(f, "  fix (nginx):       %s\n", fd->fix_nginx);
		if (fd->fix_tracestitch[0] != '\0')
			fprintf(f, "  fix (tracestitch): %s\n",
			    fd->fix_tracestitch);
	}
	fprintf(f, "\n%s\n", r->verdict);
}

/* Print the JSON report. */
static void
diagnose_print_json(FILE *f, const struct diagnose_input *in,
    const struct diagnose_report *r, const char *error)
{
	json_t *o = json_object(), *h = json_array(), *w = json_array();
	json_t *ne = json_array(), *fs = json_array(), *g;
	char *s;
	size_t i;

	json_object_set_new(o, "url", json_string(in->url));
	json_object_set_new(o, "origin", json_string(in->origin));
	json_object_set_new(o, "method", json_string(in->method));
	if (error != NULL) {
		json_object_set_new(o, "error", json_string(error));
		json_object_set_new(o, "exit_code",
		    json_integer(DIAGNOSE_EXIT_ERROR));
		goto print;
	}
	json_object_set_new(o, "answered_by", json_string(r->gateway ?
	    "tracestitch" : "other"));
	json_object_set_new(o, "server", r->server ? json_string(r->server) :
	    json_null());
	json_object_set_new(o, "status", json_integer(in->status));
	json_object_set_new(o, "status_ok", json_boolean(r->status_ok));
	g = json_null();
	if (r->gateway) {
		json_decref(g);
		g = json_pack("{s:s,s:s}", "kind", r->gateway_kind, "reason",
		    r->gateway_reason);
		if (r->gateway_header[0] != '\0')
			json_object_set_new(g, "header",
			    json_string(r->gateway_header));
	}
	json_object_set_new(o, "gateway", g);
	json_object_set_new(o, "origin_state",
	    json_string(diagnose_state_name(r->origin_state, true)));
	json_object_set_new(o, "origin_allowed", json_boolean(r->origin_ok));
	json_object_set_new(o, "origin_note", json_string(r->origin_note));
	json_object_set_new(o, "allow_origin",
	    r->acao ? json_string(r->acao) : json_null());
	json_object_set_new(o, "method_state",
	    json_string(diagnose_state_name(r->method_state, true)));
	json_object_set_new(o, "method_allowed", json_boolean(r->method_ok));
	json_object_set_new(o, "allow_credentials", json_boolean(r->acac));
	json_object_set_new(o, "credentials_ok",
	    json_boolean(r->credentials_ok));
	for (i = 0; i < r->n_headers; i++) {
		json_array_append_new(h, json_pack("{s:s,s:b,s:s,s:b}", "name",
		    r->headers[i].name, "tracing", r->headers[i].tracing,
		    "state", diagnose_state_name(r->headers[i].state, true),
		    "allowed", r->headers[i].state == DIAGNOSE_ALLOWED));
		if (r->headers[i].state == DIAGNOSE_NOT_EVALUATED)
			json_array_append_new(ne,
			    json_string(r->headers[i].name));
	}
	if (r->method_state == DIAGNOSE_NOT_EVALUATED)
		json_array_insert_new(ne, 0, json_string(in->method));
	json_object_set(o, "headers", h);
	json_object_set(o, "not_evaluated", ne);
	json_object_set_new(o, "vary", r->vary ? json_string(r->vary) :
	    json_null());
	json_object_set_new(o, "vary_has_origin",
	    json_boolean(r->vary_has_origin));
	json_object_set_new(o, "max_age", r->has_max_age ?
	    json_integer((json_int_t)r->max_age) : json_null());
	for (i = 0; i < r->n_warnings; i++)
		json_array_append_new(w, json_string(r->warnings[i]));
	json_object_set(o, "warnings", w);
	json_object_set_new(o, "console", r->console[0] != '\0' ?
	    json_string(r->console) : json_null());
	for (i = 0; i < r->n_findings; i++) {
		const struct diagnose_finding *fd = &r->findings[i];

		json_array_append_new(fs, json_pack("{s:s,s:s,s:o,s:o}",
		    "header", fd->header, "problem", fd->problem, "fix_nginx",
		    fd->fix_nginx[0] ? json_string(fd->fix_nginx) :
		    json_null(), "fix_tracestitch", fd->fix_tracestitch[0] ?
		    json_string(fd->fix_tracestitch) : json_null()));
	}
	json_object_set(o, "findings", fs);
	json_object_set_new(o, "unsafe_origin", r->unsafe_origin[0] ?
	    json_string(r->unsafe_origin) : json_null());
	json_object_set_new(o, "verdict", json_string(r->verdict));
	json_object_set_new(o, "exit_code", json_integer(r->exit_code));
print:
	s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (s != NULL)
		fprintf(f, "%s\n", s);
	free(s);
	json_decref(h);
	json_decref(w);
	json_decref(ne);
	json_decref(fs);
	json_decref(o);
}

/* Usage text. */
static void
diagnose_usage(FILE *f)
{
	const struct style_desc *rows;
	size_t i, n;

	fprintf(f, "usage: tracestitch diagnose --origin ORIGIN --url URL "
	    "[--propagators LIST]\n"
	    "           [--method M] [--header NAME ...] [--credentials] "
	    "[--insecure]\n"
	    "           [--timeout MS] [--json]\n"
	    "  --propagators  ");
	/* The names with headers, from the style table. */
	n = styles_all(&rows);
	for (i = 0; i < n; i++)
		if (rows[i].headers[0] != NULL)
			fprintf(f, "%s%s", i ? "," : "", rows[i].name);
	fprintf(f, " (default datadog,tracecontext,baggage)\n"
	    "  exit status: 0 all tracing headers pass, 1 the browser would "
	    "block, 2 usage or network error,\n"
	    "               3 passes, but the server grants credentials to "
	    "any origin\n");
}

/*
 * Send one preflight from origin and read the answer into buf (hdrs and
 * the body point into it).  0, or -1 with *cause.
 */
static int
diagnose_fetch(const struct diagnose_url *u, bool insecure, int timeout_ms,
    const char *origin, const char *method, const char *acrh, char *buf,
    struct diagnose_header *hdrs, size_t max, struct diagnose_input *in,
    char **cause)
{
	const char *errstr;
	char *req = NULL;
	size_t off, blen;
	ssize_t len;

	xasprintf(&req, "OPTIONS %s HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: tracestitch-diagnose/%s\r\nAccept: */*\r\n"
	    "Origin: %s\r\nAccess-Control-Request-Method: %s\r\n"
	    "%s%s%s"
	    "Connection: close\r\n\r\n", u->path, u->authority, TS_VERSION,
	    origin, method, acrh[0] ? "Access-Control-Request-Headers: " : "",
	    acrh, acrh[0] ? "\r\n" : "");
	len = diagnose_exchange(u, insecure, timeout_ms, req, buf,
	    DIAGNOSE_RESPONSE_MAX, cause);
	free(req);
	if (len < 0)
		return -1;
	if (diagnose_parse_response(buf, (size_t)len, &in->status, hdrs, max,
	    &in->n_headers, &off, &blen, &errstr) != 0) {
		xasprintf(cause, "bad response: %s", errstr);
		return -1;
	}
	in->headers = hdrs;
	in->body = blen > 0 ? buf + off : NULL;
	in->body_len = blen;
	return 0;
}

/* `tracestitch diagnose ...`. */
int
diagnose_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "origin", required_argument, NULL, 'o' },
		{ "url", required_argument, NULL, 'u' },
		{ "propagators", required_argument, NULL, 'p' },
		{ "method", required_argument, NULL, 'm' },
		{ "header", required_argument, NULL, 'H' },
		{ "credentials", no_argument, NULL, 'c' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum config_style styles[CONFIG_MAX_STYLES];
	struct diagnose_header hdrs[DIAGNOSE_MAX_RESPONSE_HEADERS];
	struct diagnose_header phdrs[DIAGNOSE_MAX_RESPONSE_HEADERS];
	struct diagnose_input in, pin;
	struct diagnose_report rep, prep;
	struct diagnose_url u;
	const char *origin = NULL, *url = NULL, *method = "GET";
	const char *props = "datadog,tracecontext,baggage", *errstr;
	const char *extra[DIAGNOSE_MAX_HEADERS];
	char **names = NULL, *acrh = NULL, *cause = NULL;
	char *buf = NULL, *pbuf = NULL, probes[2][300];
	size_t n_styles, n_extra = 0, n_names = 0, i, off, n_probes;
	uint64_t timeout = DIAGNOSE_TIMEOUT_MS;
	bool insecure = false, json = false, credentials = false;
	int ch, rc = DIAGNOSE_EXIT_ERROR;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "o:u:p:m:H:ckt:jh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'o':
			origin = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 'p':
			props = optarg;
			break;
		case 'm':
			method = optarg;
			break;
		case 'H':
			if (n_extra == TS_NITEMS(extra) ||
			    !util_is_token(optarg, strlen(optarg))) {
				fprintf(stderr, "diagnose: bad --header %s\n",
				    optarg);
				return DIAGNOSE_EXIT_ERROR;
			}
			extra[n_extra++] = optarg;
			break;
		case 'c':
			credentials = true;
			break;
		case 'k':
			insecure = true;
			break;
		case 't':
			if (util_parse_u64(optarg, strlen(optarg), &timeout) !=
			    0 || timeout == 0 || timeout > 600000) {
				fprintf(stderr, "diagnose: bad --timeout\n");
				return DIAGNOSE_EXIT_ERROR;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			diagnose_usage(stdout);
			return DIAGNOSE_EXIT_OK;
		default:
			diagnose_usage(stderr);
			return DIAGNOSE_EXIT_ERROR;
		}
	}
	if (origin == NULL || url == NULL || optind != argc) {
		diagnose_usage(stderr);
		return DIAGNOSE_EXIT_ERROR;
	}
	if (!util_is_token(method, strlen(method)) ||
	    strpbrk(origin, "\r\n") != NULL) {
		fprintf(stderr, "diagnose: bad --method or --origin\n");
		return DIAGNOSE_EXIT_ERROR;
	}
	if (diagnose_parse_styles(props, styles, TS_NITEMS(styles), &n_styles,
	    &errstr) != 0) {
		fprintf(stderr, "diagnose: --propagators %s: %s\n", props,
		    errstr);
		return DIAGNOSE_EXIT_ERROR;
	}
	if (diagnose_url_parse(url, &u, &errstr) != 0) {
		fprintf(stderr, "diagnose: --url %s: %s\n", url, errstr);
		return DIAGNOSE_EXIT_ERROR;
	}
	/* Browsers send serialized origins only (judged by cors.c). */
	if (!diagnose_origin_wellformed(origin, strlen(origin)) && !json)
		fprintf(stderr, "diagnose: warning: --origin %s is not a "
		    "serialized origin; a browser never sends it\n", origin);

	diagnose_rum_headers(styles, n_styles, extra, n_extra, &names,
	    &n_names);
	acrh = xcalloc(1, 1);
	for (i = 0, off = 0; i < n_names; i++) {
		size_t l = strlen(names[i]);

		acrh = xrealloc(acrh, off + l + 2);
		if (i > 0)
			acrh[off++] = ',';	/* Chromium joins with "," */
		memcpy(acrh + off, names[i], l + 1);
		off += l;
	}

	memset(&in, 0, sizeof in);
	in.url = url;
	in.origin = origin;
	in.method = method;
	in.credentials = credentials;
	in.requested = (const char *const *)names;
	in.n_requested = n_names;
	in.styles = styles;
	in.n_styles = n_styles;

	buf = xmalloc(DIAGNOSE_RESPONSE_MAX);
	if (diagnose_fetch(&u, insecure, (int)timeout, origin, method, acrh,
	    buf, hdrs, TS_NITEMS(hdrs), &in, &cause) != 0) {
		if (json)
			diagnose_print_json(stdout, &in, &rep, cause);
		else
			fprintf(stderr, "diagnose: %s\n", cause);
		goto out;
	}
	if (diagnose_evaluate(&in, &rep) != 0) {
		fprintf(stderr, "diagnose: too many headers\n");
		goto out;
	}

	/*
	 * A credentialed pass with the origin echoed: does the server grant
	 * the same to origins it cannot mean?  The browser's rules are the
	 * same for them (diagnose_evaluate), so ask with each probe.
	 */
	if (credentials && rep.exit_code == DIAGNOSE_EXIT_OK &&
	    rep.acao != NULL && strcmp(rep.acao, "*") != 0) {
		n_probes = diagnose_probe_origins(origin, probes,
		    TS_NITEMS(probes));
		pbuf = xmalloc(DIAGNOSE_RESPONSE_MAX);
		for (i = 0; i < n_probes; i++) {
			pin = in;
			pin.origin = probes[i];
			if (diagnose_fetch(&u, insecure, (int)timeout,
			    probes[i], method, acrh, pbuf, phdrs,
			    TS_NITEMS(phdrs), &pin, &cause) != 0) {
				/* no answer: nothing to show */
				free(cause);
				cause = NULL;
				continue;
			}
			if (diagnose_evaluate(&pin, &prep) == 0 &&
			    prep.exit_code == DIAGNOSE_EXIT_OK) {
				diagnose_mark_unsafe(&rep, &in, probes[i]);
				break;
			}
		}
	}
	if (json)
		diagnose_print_json(stdout, &in, &rep, NULL);
	else
		diagnose_print(stdout, &in, &rep, acrh);
	rc = rep.exit_code;
out:
	free(cause);
	free(buf);
	free(pbuf);
	free(acrh);
	diagnose_strv_free(names, n_names);
	return rc;
}
