/*
 * sampler.h -- the sampling decision for a trace the gateway starts or
 * continues without an upstream decision (PROPAGATION.md section 9).
 *
 * Order: an extracted priority is kept as is; else the first matching
 * user rule of DD_TRACE_SAMPLING_RULES, then sample_rate as a rule
 * matching everything (priority 2 / -1, mechanism 3), limited by a token
 * bucket of rate_limit traces per second; else the agent's rate for
 * "service:S,env:E" or the default key "service:,env:" (priority 1 / 0,
 * mechanism 1); else keep everything (priority 1, mechanism 0).
 *
 * One sampler per worker thread: no locks.  The caller delivers agent
 * rates to each worker (e.g. with a message to its event base) and calls
 * sampler_set_agent_rates there.
 */
#ifndef TS_TRACE_SAMPLER_H
#define TS_TRACE_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "span.h"

struct sampler_conf {
	const char	*service;	/* copied by sampler_new */
	const char	*env;		/* "" or NULL: unset */
	bool		 has_sample_rate;
	double		 sample_rate;	/* 0..1 */
	double		 rate_limit;	/* kept traces/s; <= 0: unlimited */
	/*
	 * DD_TRACE_SAMPLING_RULES (NULL: none): a JSON array of
	 * {"service", "name", "resource": glob, "tags": {key: glob},
	 * "sample_rate": 0..1 (default 1)}; config.c validated it.
	 */
	const char	*rules_json;
};

/* One entry of the agent's rate_by_service table. */
struct sampler_rate {
	char	*key;		/* "service:S,env:E" */
	double	 rate;
};

struct sampler;

/* Create a sampler; NULL on out of memory. */
struct sampler *sampler_new(const struct sampler_conf *);
/* Free (NULL-safe). */
void sampler_free(struct sampler *);

/*
 * Install a rate_by_service table (n = 0 removes it).  The sampler keeps
 * only the rate for its own service/env key, else the default key.
 */
void sampler_set_agent_rates(struct sampler *, const struct sampler_rate *,
    size_t n);

/*
 * Parse an agent /v0.4/traces response body ({"rate_by_service": {...}}).
 * On success *rates (free with sampler_rates_free) and *n are set and 0 is
 * returned; else -1 with *cause (caller frees).
 */
int sampler_parse_agent_rates(const char *json, size_t len,
    struct sampler_rate **rates, size_t *n, char **cause) TS_MUSTCHECK;
/* Free a table from sampler_parse_agent_rates. */
void sampler_rates_free(struct sampler_rate *, size_t n);

/*
 * Decide for span unless it already has a priority: sets priority and
 * mechanism, _dd.p.dm (keep) or removes it (drop), _dd.p.ksr when the
 * mechanism is not the default, and the _dd.agent_psr / _dd.rule_psr /
 * _dd.limit_psr metrics.  now_ns is any monotonic clock (token bucket).
 */
void sampler_decide(struct sampler *, struct span *, uint64_t now_ns);

/*
 * True when the sampler has user rules: they match on the span's
 * service, name, resource and tags, so decide only once those are set
 * (propagation_start_span leaves the decision to the caller then).
 */
bool sampler_has_rules(const struct sampler *);

/*
 * Datadog's rule glob (dd-trace-cpp glob.h): '*' any run, '?' one
 * character, everything else itself, ASCII case-insensitively.
 */
bool sampler_glob_match(const char *pattern, const char *subject);

/*
 * Check a DD_TRACE_SAMPLING_RULES value: 0, or -1 with *cause (caller
 * frees) naming the first bad rule and field.
 */
int sampler_rules_check(const char *json, char **cause) TS_MUSTCHECK;

/* The Knuth-hash keep test on the low 64 bits of the trace id. */
bool sampler_keep(uint64_t trace_id_low, double rate);

#endif /* TS_TRACE_SAMPLER_H */
