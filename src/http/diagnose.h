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
 * Ownership: everything in a struct diagnose_report is borrowed from the
 * struct diagnose_input it was computed from (or static), so the input's
 * strings must outlive the report.  diagnose_rum_headers returns an owned
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

/* Exit codes of diagnose_main. */
#define DIAGNOSE_EXIT_OK 0		/* every tracing header would pass */
#define DIAGNOSE_EXIT_REFUSED 1		/* the browser would block something */
#define DIAGNOSE_EXIT_ERROR 2		/* usage or network error */

/* One response header (borrowed strings). */
struct diagnose_header {
	const char *name;
	const char *value;
};

/* What was asked and what came back. */
struct diagnose_input {
	const char *origin;
	const char *method;
	bool credentials;		/* evaluate a credentialed request */
	const char *const *requested;	/* names sent in ACRH, lower case */
	size_t n_requested;
	int status;
	const struct diagnose_header *headers;
	size_t n_headers;
};

struct diagnose_verdict {
	const char *name;		/* borrowed from the input */
	bool tracing;			/* a known tracing header */
	bool allowed;
};

struct diagnose_report {
	bool status_ok;			/* 200-299 (Fetch "ok status") */
	bool origin_ok;
	const char *origin_note;	/* why not, static; "" when ok */
	const char *acao;		/* borrowed, NULL when absent */
	bool method_ok;
	const char *acam;		/* borrowed, NULL when absent */
	const char *acah;		/* borrowed, NULL when absent */
	bool acac;			/* Access-Control-Allow-Credentials: true */
	bool credentials_ok;		/* true unless a credentialed check fails */
	const char *vary;		/* borrowed, NULL when absent */
	bool vary_has_origin;
	bool has_max_age;
	uint64_t max_age;
	struct diagnose_verdict headers[DIAGNOSE_MAX_HEADERS];
	size_t n_headers;
	size_t n_refused;
	size_t n_tracing_refused;
	const char *warnings[DIAGNOSE_MAX_WARNINGS];	/* static texts */
	size_t n_warnings;
	int exit_code;			/* DIAGNOSE_EXIT_OK or _REFUSED */
	char verdict[512];
};

/*
 * Evaluate a preflight answer the way a browser would.  Returns 0, or -1
 * when more than DIAGNOSE_MAX_HEADERS names were requested.
 */
int diagnose_evaluate(const struct diagnose_input *,
    struct diagnose_report *) TS_MUSTCHECK;

/*
 * Parse a comma-separated propagator list ("datadog,tracecontext,b3").
 * Returns 0, or -1 with *errstr (static) naming the problem.
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
 * Parse a response head in place (NUL-terminating names and values).
 * Skips interim 1xx responses.  Returns 0 with *status and the headers,
 * or -1 with *errstr (static).
 */
int diagnose_parse_response(char *buf, size_t len, int *status,
    struct diagnose_header *headers, size_t max, size_t *n,
    const char **errstr) TS_MUSTCHECK;

/* `tracestitch diagnose ...` (argv[0] is "diagnose"); returns the exit code. */
int diagnose_main(int argc, char **argv);

#endif /* TS_DIAGNOSE_H */
