/*
 * diagnose.h -- `tracestitch diagnose`: send the CORS preflight a browser
 * running Datadog RUM would send to any URL, and say, header by header,
 * whether the browser would let the tracing headers through.
 *
 * The evaluation is pure (diagnose_evaluate: status and response headers
 * in, verdicts out) and follows the WHATWG Fetch "CORS check" and
 * "CORS-preflight fetch" steps; the network part (blocking sockets,
 * OpenSSL with SNI and verification) is thin and lives in diagnose.c.
 *
 * Ownership: the pointers in a struct diagnose_report are borrowed from
 * the struct diagnose_input it was computed from (or static), so the
 * input's strings must outlive the report; its char arrays (reason,
 * console text, findings, verdict) are its own.  diagnose_rum_headers returns an owned
 * array (diagnose_strv_free).
 */
#ifndef TS_DIAGNOSE_H
#define TS_DIAGNOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "config.h"

#define DIAGNOSE_MAX_HEADERS 64		/* requested header names */
#define DIAGNOSE_MAX_WARNINGS 8
#define DIAGNOSE_MAX_RESPONSE_HEADERS 128
#define DIAGNOSE_MAX_FINDINGS 6

/* Exit codes of diagnose_main. */
#define DIAGNOSE_EXIT_OK 0		/* every tracing header would pass */
#define DIAGNOSE_EXIT_REFUSED 1		/* the browser would block something */
#define DIAGNOSE_EXIT_ERROR 2		/* usage or network error */
/*
 * The browser would pass this credentialed preflight, but the server also
 * grants credentials to an origin it cannot mean (a reflected Origin, or a
 * wildcard over a public suffix): see diagnose_mark_unsafe.
 */
#define DIAGNOSE_EXIT_UNSAFE 3

/* One response header (borrowed strings). */
struct diagnose_header {
	const char *name;
	const char *value;
};

/* What was asked and what came back. */
struct diagnose_input {
	const char *url;		/* as the page calls it (console) */
	const char *origin;
	const char *method;
	bool credentials;		/* evaluate a credentialed request */
	const char *const *requested;	/* names sent in ACRH, lower case,
					   in the order sent */
	size_t n_requested;
	const enum config_style *styles; /* --propagators (fix texts) */
	size_t n_styles;
	int status;
	const struct diagnose_header *headers;
	size_t n_headers;
	const char *body;		/* response body, NULL when none */
	size_t body_len;
};

/*
 * The verdict on one item (origin, method, requested header).  For an
 * answer of another server it is diagnose's own judgement of the response
 * headers (browser rules); for tracestitch's own 403 it is the gateway's,
 * which stops at the first refusal: what comes after was not evaluated.
 */
enum diagnose_state {
	DIAGNOSE_ALLOWED = 0,
	DIAGNOSE_REFUSED,
	DIAGNOSE_NOT_EVALUATED,
};

struct diagnose_verdict {
	const char *name;		/* borrowed from the input */
	bool tracing;			/* a known tracing header */
	enum diagnose_state state;
};

/*
 * One thing to fix: the response header at fault ("status" for the
 * status, "tracestitch" for the gateway's refusal), what is wrong, and
 * the one-line fixes ("" when none applies).
 */
struct diagnose_finding {
	const char *header;		/* static */
	char problem[512];
	char fix_nginx[1024];
	char fix_tracestitch[512];
};

struct diagnose_report {
	bool status_ok;			/* 200-299 (Fetch "ok status") */
	bool origin_ok;			/* browser view of ACAO */
	const char *origin_note;	/* why not, static; "" when ok */
	const char *acao;		/* borrowed, NULL when absent */
	bool method_ok;			/* browser view of ACAM */
	const char *acam;		/* borrowed, NULL when absent */
	const char *acah;		/* borrowed, NULL when absent */
	const char *acac_value;		/* borrowed, NULL when absent */
	bool acac;			/* Access-Control-Allow-Credentials: true */
	bool credentials_ok;		/* true unless a credentialed check fails */
	const char *vary;		/* borrowed, NULL when absent */
	bool vary_has_origin;
	bool has_max_age;
	uint64_t max_age;
	const char *server;		/* Server header (borrowed), NULL */
	enum diagnose_state origin_state;
	enum diagnose_state method_state;
	struct diagnose_verdict headers[DIAGNOSE_MAX_HEADERS];
	size_t n_headers;
	size_t n_refused;
	size_t n_tracing_refused;
	size_t n_not_evaluated;
	/* tracestitch's own refusal (403 {"error":"cors_refused",...}) */
	bool gateway;
	char gateway_kind[16];		/* "origin", "method", "header" */
	char gateway_reason[384];
	char gateway_header[256];	/* the refused header, kind "header" */
	/* What Chromium prints in the console; "" when it would pass. */
	char console[1024];
	struct diagnose_finding findings[DIAGNOSE_MAX_FINDINGS];
	size_t n_findings;
	/* Another origin the server also trusts (diagnose_mark_unsafe). */
	char unsafe_origin[300];
	const char *warnings[DIAGNOSE_MAX_WARNINGS];	/* static texts */
	size_t n_warnings;
	int exit_code;			/* DIAGNOSE_EXIT_* */
	char verdict[768];
};

/*
 * Evaluate a preflight answer the way a browser would.  Returns 0, or -1
 * when more than DIAGNOSE_MAX_HEADERS names were requested.
 */
int diagnose_evaluate(const struct diagnose_input *,
    struct diagnose_report *) TS_MUSTCHECK;

/*
 * The origins diagnose also sends, with credentials, when the server
 * passed a credentialed preflight by echoing the origin: one no server
 * can mean (https://tracestitch-diagnose-probe.invalid, RFC 6761) and a
 * made-up site under the origin's public suffix (Public Suffix List via
 * libpsl: https://evil.com gives https://tracestitch-diagnose-probe.com).
 * Same scheme and port as origin.  Returns how many were written (0 for
 * a malformed origin or "null"); each is at most size bytes.
 */
size_t diagnose_probe_origins(const char *origin, char out[][300],
    size_t max);

/*
 * The server also passed a credentialed preflight from probe (one of
 * diagnose_probe_origins): the browser passes, but any page on such an
 * origin could read the user's responses.  Sets exit_code
 * DIAGNOSE_EXIT_UNSAFE, the verdict and a finding.
 */
void diagnose_mark_unsafe(struct diagnose_report *,
    const struct diagnose_input *, const char *probe);

/*
 * True when an Origin value is a serialized origin a browser could send
 * (judged by the CORS engine's own origin parser, cors.c: any well-formed
 * origin passes a "*" policy) or "null".
 */
bool diagnose_origin_wellformed(const char *origin, size_t len);

/*
 * Parse a propagator list ("datadog,tracecontext b3") with the
 * configuration's style parser (config_styles_parse); an empty list
 * ("none") is an error here.  Returns 0, or -1 with *errstr (static)
 * naming the problem.
 */
int diagnose_parse_styles(const char *list, enum config_style *out,
    size_t max, size_t *n, const char **errstr) TS_MUSTCHECK;

/*
 * The request headers RUM adds for these propagators (PROPAGATION.md: no
 * x-datadog-tags, no x-b3-parentspanid/-flags; baggage when listed) plus
 * extra names: lower case, sorted, deduplicated, the way Chromium lists
 * them in Access-Control-Request-Headers.  *out is owned (free with
 * diagnose_strv_free).
 */
void diagnose_rum_headers(const enum config_style *, size_t n_styles,
    const char *const *extra, size_t n_extra, char ***out, size_t *n_out);
/* Free an array from diagnose_rum_headers. */
void diagnose_strv_free(char **, size_t);

/*
 * Parse a response with the strict response parser (http_response.c)
 * and lay it out again in buf, which holds len + 1 bytes: names and
 * values NUL-terminated, then the body.  Skips interim 1xx responses.
 * Returns 0 with *status, the headers and the body (*body_off: its
 * offset in buf, *body_len: its de-chunked length, to Content-Length when
 * there is one, else what followed the head; NUL-terminated), or -1 with
 * *errstr (static).  A body cut short is accepted when the head is whole.
 */
int diagnose_parse_response(char *buf, size_t len, int *status,
    struct diagnose_header *headers, size_t max, size_t *n,
    size_t *body_off, size_t *body_len, const char **errstr) TS_MUSTCHECK;

/* `tracestitch diagnose ...` (argv[0] is "diagnose"); returns the exit code. */
int diagnose_main(int argc, char **argv);

#endif /* TS_DIAGNOSE_H */
