/*
 * cors.h -- the pure CORS policy of one route: origin matching, the
 * preflight decision with its reason, the response headers of preflights
 * and of actual requests.
 *
 * A policy is built once per route from its struct config_cors and the
 * propagation styles (extract and inject, joined): every header value that
 * does not depend on the request (Access-Control-Allow-Methods, -Allow-
 * Headers with the tracing headers of every style, -Max-Age, -Expose-
 * Headers, Vary) is formatted there, so answering a request only picks
 * pointers and, at most, copies the request's Origin for the echo.
 *
 * Ownership: cors_policy_new returns an owned policy, freed with
 * cors_policy_free (NULL-safe); a policy is immutable and may be shared by
 * threads.  A struct cors_answer is caller storage (usually on the stack);
 * the name/value pointers in it are borrowed from the policy, from static
 * strings, or from the answer's own origin buffer, so they stay valid as
 * long as both the policy and the answer do.  Nothing here allocates per
 * request, logs or reads globals.
 *
 * Specifications: WHATWG Fetch (CORS protocol, CORS-preflight fetch, CORS
 * check, CORS-safelisted methods and request headers), RFC 6454 (origin
 * serialization), RFC 9110 (tokens, Vary), WICG Private Network Access.
 */
#ifndef TS_CORS_H
#define TS_CORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "config.h"

/* Response headers an answer may carry (preflight: at most 7). */
#define CORS_MAX_HEADERS 8
/* Longest Origin accepted; a longer one is malformed. */
#define CORS_ORIGIN_MAX 512
/* Longest human reason; the offending value is truncated to fit. */
#define CORS_REASON_MAX 384
/* Longest offending value (origin, method, header name) kept verbatim. */
#define CORS_DETAIL_MAX 256

enum cors_result {
	CORS_ALLOWED = 0,	/* add out->headers to the response */
	CORS_REFUSED,		/* see kind, reason; out->headers holds Vary */
	CORS_NO_ORIGIN,		/* actual request without Origin: Vary only */
};

/* Why a request was refused; the metric label is cors_kind_name(). */
enum cors_kind {
	CORS_KIND_NONE = 0,
	CORS_KIND_ORIGIN,
	CORS_KIND_METHOD,
	CORS_KIND_HEADER,
};

/* One response header to add; both strings are borrowed. */
struct cors_header {
	const char *name;
	const char *value;
	size_t value_len;
};

struct cors_answer {
	enum cors_result result;
	enum cors_kind kind;		/* CORS_KIND_NONE unless refused */
	/*
	 * For a refused header: the lower-case tracing header name when the
	 * refused header is a known tracing header of any style, else
	 * "other".  "" otherwise.  Static; the value of the "header" label.
	 */
	const char *header_class;
	bool malformed;			/* the Origin/ACRM/ACRH did not parse */
	/* "origin https://evil.com is not allowed", ... (printable ASCII). */
	char reason[CORS_REASON_MAX];
	/* The offending value, printable ASCII (others become '?'). */
	char detail[CORS_DETAIL_MAX];
	struct cors_header headers[CORS_MAX_HEADERS];
	size_t n_headers;
	char origin[CORS_ORIGIN_MAX + 1];	/* the echo, when echoed */
};

struct cors_policy;

/*
 * Receives each problem found while building a policy: a fatal one
 * refuses the policy, the others are warnings.  key is relative to the
 * cors block ("allowed_origins[2]", "allowed_headers[0]"), msg a sentence
 * without the key; both are valid during the call only.
 */
typedef void cors_report_fn(void *arg, bool fatal, const char *key,
    const char *msg);

/*
 * Build the policy of one route.  styles is propagation.extract joined with
 * propagation.inject (duplicates and CONFIG_STYLE_NONE are fine).  Every
 * problem is reported, not only the first; the policy is refused (NULL)
 * when any was fatal: an origin entry that does not parse, "*" together
 * with allow_credentials, a wildcard whose fixed part is a public suffix
 * (hosts "*.co.uk", "*.github.io": the Public Suffix List through
 * libpsl), a method or header name that is not an RFC 9110 token, and "*"
 * in allowed_methods/allowed_headers/exposed_headers (not supported: list
 * them).  A wildcard origin with allow_credentials is a warning.  report
 * may be NULL (problems are then only counted by the NULL result).
 */
struct cors_policy *cors_policy_new(const struct config_cors *,
    const enum config_style *styles, size_t n_styles, cors_report_fn *report,
    void *arg);
/*
 * True when domain (lower case, ASCII/punycode) is a public suffix on the
 * Public Suffix List, ICANN or private section ("com", "co.uk",
 * "github.io"), without the list's implicit "*" rule, so that unlisted
 * internal names ("corp", "internal") are not suffixes.
 */
bool cors_is_public_suffix(const char *domain);
/* Free a policy; NULL does nothing. */
void cors_policy_free(struct cors_policy *);
/* True when a refused preflight is answered 403 (on_disallowed: reject). */
bool cors_policy_rejects(const struct cors_policy *);

/*
 * True when a request is a CORS preflight: OPTIONS with both Origin and
 * Access-Control-Request-Method (Fetch "CORS-preflight request").  An
 * OPTIONS without either is an ordinary request.
 */
bool cors_is_preflight(const char *method, bool has_origin, bool has_acrm);

/*
 * Decide a preflight.  origin and acrm are the header values (not NUL-
 * terminated), acrh may be NULL.  Fills *out and returns 0; the result is
 * CORS_ALLOWED (answer 204 with out->headers) or CORS_REFUSED (answer 403
 * with cors_refusal_json() and out->headers, which then hold Vary only,
 * or forward without CORS headers when the policy passes).
 */
int cors_preflight(const struct cors_policy *, const char *origin,
    size_t origin_len, const char *acrm, size_t acrm_len, const char *acrh,
    size_t acrh_len, bool pna_requested, struct cors_answer *out);

/*
 * Decide an actual (non-preflight) request of a CORS route.  origin may be
 * NULL (no Origin header): CORS_NO_ORIGIN.  out->headers always holds
 * "Vary: Origin"; when allowed also ACAO, ACAC, ACEH, Timing-Allow-Origin.
 * A refused origin (CORS_REFUSED) is counted by the caller.
 */
int cors_actual(const struct cors_policy *, const char *origin,
    size_t origin_len, struct cors_answer *out);

/*
 * Match one Origin value against the policy's allowed origins.  Returns
 * true when allowed; *errstr (static) says "malformed origin" or "origin
 * not allowed" otherwise.  cors_preflight and cors_actual use this.
 */
bool cors_origin_allowed(const struct cors_policy *, const char *origin,
    size_t len, const char **errstr);

/*
 * The JSON body of a 403 refusal, e.g.
 * {"error":"cors_refused","kind":"header","reason":"header x-foo is not
 * allowed","header":"x-foo"}.  Writes at most size bytes including the
 * NUL; returns the length the full body needs (snprintf rule).
 */
size_t cors_refusal_json(const struct cors_answer *, char *buf,
    size_t size);

/*
 * True when a response header belongs to CORS (access-control-*,
 * timing-allow-origin): the proxy strips these from the upstream response
 * so the gateway's own are never duplicated.  Case-insensitive.
 */
bool cors_is_cors_header(const char *name, size_t len);

/*
 * Merge the upstream's Vary value with ours ("Origin" or the preflight
 * list): upstream members first, then each of ours not already present
 * (case-insensitive).  An upstream "*" stays "*".  upstream may be NULL.
 * Several upstream Vary lines can be joined with ", " first.  Writes the
 * NUL-terminated result into buf; returns its length, or -1 when size is
 * too small.
 */
int cors_vary_merge(const char *upstream, size_t upstream_len,
    const char *ours, char *buf, size_t size) TS_MUSTCHECK;

/* Vary of preflight answers / of every other response of a CORS route. */
const char *cors_vary_preflight(const struct cors_policy *);
const char *cors_vary_actual(void);

/* The precomputed Access-Control-Allow-Headers value (tests, /debug). */
const char *cors_allow_headers(const struct cors_policy *);

/*
 * The request headers a style adds (lower-case, static).  Returns their
 * number and sets *names.  0 for CONFIG_STYLE_NONE.
 */
size_t cors_style_headers(enum config_style, const char *const **names);

/* The "header" metric label of a request header name: itself, or "other". */
const char *cors_header_class(const char *name, size_t len);

/* "origin", "method", "header", "" -- the "kind" metric label. */
const char *cors_kind_name(enum cors_kind);
/* "allowed", "refused", "no_origin" -- the "result" metric label. */
const char *cors_result_name(enum cors_result);

#endif /* TS_CORS_H */
