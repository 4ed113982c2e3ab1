/*
 * sampler.c -- priority sampling (PROPAGATION.md 9, dd-trace-cpp
 * trace_sampler.cpp and sampling_util.h).
 *
 * Keep test: low * 1111111111111111111 (mod 2^64) <= rate * (2^64 - 1),
 * so every tracer reaches the same decision for the same trace id.  The
 * rate limiter is a token bucket (capacity and refill = rate_limit per
 * second) owned by the sampler, i.e. by one worker.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"
#include "util.h"

#define SAMPLER_KNUTH_FACTOR	1111111111111111111ULL
#define SAMPLER_NS		1000000000.0

struct sampler {
	char	*service;
	char	*env;
	bool	 has_sample_rate;
	double	 sample_rate;
	double	 rate_limit;

	bool	 has_agent_rate;
	double	 agent_rate;

	/* Token bucket. */
	double	 tokens;
	uint64_t last_ns;
	bool	 started;
	/* Effective-rate window for _dd.limit_psr. */
	uint64_t window_start_ns;
	uint64_t window_seen;
	uint64_t window_allowed;
};

/* Create a sampler; NULL on out of memory. */
struct sampler *
sampler_new(const struct sampler_conf *conf)
{
	struct sampler *s;

	if ((s = calloc(1, sizeof *s)) == NULL)
		return NULL;
	s->service = strdup(conf->service != NULL ? conf->service : "");
	s->env = strdup(conf->env != NULL ? conf->env : "");
	if (s->service == NULL || s->env == NULL) {
		sampler_free(s);
		return NULL;
	}
	s->has_sample_rate = conf->has_sample_rate;
	s->sample_rate = conf->sample_rate;
	s->rate_limit = conf->rate_limit;
	s->tokens = conf->rate_limit;
	return s;
}

/* Free (NULL-safe). */
void
sampler_free(struct sampler *s)
{
	if (s == NULL)
		return;
	free(s->service);
	free(s->env);
	free(s);
}

/* Install a rate_by_service table: keep our key's rate, else default. */
void
sampler_set_agent_rates(struct sampler *s, const struct sampler_rate *rates,
    size_t n)
{
	char key[512];
	const struct sampler_rate *dflt = NULL, *mine = NULL;
	size_t i;

	snprintf(key, sizeof key, "service:%s,env:%s", s->service, s->env);
	for (i = 0; i < n; i++) {
		if (strcmp(rates[i].key, key) == 0)
			mine = &rates[i];
		else if (strcmp(rates[i].key, "service:,env:") == 0)
			dflt = &rates[i];
	}
	if (mine == NULL)
		mine = dflt;
	s->has_agent_rate = mine != NULL;
	s->agent_rate = mine != NULL ? mine->rate : 1.0;
}

/* Free a table from sampler_parse_agent_rates. */
void
sampler_rates_free(struct sampler_rate *r, size_t n)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < n; i++)
		free(r[i].key);
	free(r);
}

/* Parse {"rate_by_service": {"service:S,env:E": rate, ...}}. */
int
sampler_parse_agent_rates(const char *json, size_t len,
    struct sampler_rate **rates, size_t *n, char **cause)
{
	json_t *root, *rbs, *v;
	json_error_t err;
	struct sampler_rate *r;
	const char *k;
	size_t i = 0;
	double d;

	*rates = NULL;
	*n = 0;
	if ((root = json_loadb(json, len, 0, &err)) == NULL) {
		xasprintf(cause, "agent response: %s (line %d)", err.text,
		    err.line);
		return -1;
	}
	rbs = json_object_get(root, "rate_by_service");
	if (!json_is_object(rbs)) {
		json_decref(root);
		xasprintf(cause, "agent response: no rate_by_service object");
		return -1;
	}
	r = xcalloc(json_object_size(rbs) + 1, sizeof *r);
	json_object_foreach(rbs, k, v) {
		if (!json_is_number(v))
			continue;
		d = json_number_value(v);
		if (d < 0.0 || d > 1.0)
			continue;
		r[i].key = xstrdup(k);
		r[i].rate = d;
		i++;
	}
	json_decref(root);
	*rates = r;
	*n = i;
	return 0;
}

/* The Knuth-hash keep test on the low 64 bits of the trace id. */
bool
sampler_keep(uint64_t low, double rate)
{
	double limit;

	if (rate >= 1.0)
		return true;
	if (rate <= 0.0)
		return false;
	limit = rate * 18446744073709551615.0;
	if (limit >= 18446744073709551615.0)
		return true;
	return low * SAMPLER_KNUTH_FACTOR <= (uint64_t)limit;
}

/* Token bucket: true if one more kept trace is allowed now. */
static bool
sampler_allow(struct sampler *s, uint64_t now_ns, double *effective)
{
	bool ok;

	if (s->rate_limit <= 0.0) {
		*effective = 1.0;
		return true;
	}
	if (!s->started) {
		s->started = true;
		s->last_ns = now_ns;
		s->window_start_ns = now_ns;
	}
	if (now_ns > s->last_ns) {
		s->tokens += (double)(now_ns - s->last_ns) / SAMPLER_NS *
		    s->rate_limit;
		if (s->tokens > s->rate_limit)
			s->tokens = s->rate_limit;
		s->last_ns = now_ns;
	}
	if (now_ns - s->window_start_ns >= (uint64_t)SAMPLER_NS ||
	    now_ns < s->window_start_ns) {
		s->window_start_ns = now_ns;
		s->window_seen = s->window_allowed = 0;
	}
	ok = s->tokens >= 1.0;
	if (ok)
		s->tokens -= 1.0;
	s->window_seen++;
	if (ok)
		s->window_allowed++;
	*effective = (double)s->window_allowed / (double)s->window_seen;
	return ok;
}

/* "0.5", "0.123457", "1": at most 6 decimals, trailing zeros stripped. */
static void
sampler_format_rate(double rate, char *buf, size_t size)
{
	size_t len;

	snprintf(buf, size, "%.6f", rate);
	len = strlen(buf);
	while (len > 0 && buf[len - 1] == '0')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '.')
		buf[--len] = '\0';
}

/* Decide for a span without an upstream decision (PROPAGATION.md 9). */
void
sampler_decide(struct sampler *s, struct span *sp, uint64_t now_ns)
{
	char dm[8], ksr[32];
	double rate, eff;
	bool keep;

	if (sp->has_priority)
		return;		/* honour upstream [cpp-tracer] */
	if (s->has_sample_rate) {
		rate = s->sample_rate;
		keep = sampler_keep(sp->trace_id.low, rate);
		sp->mechanism = SPAN_MECH_RULE;
		(void)span_set_metric(sp, "_dd.rule_psr", rate);
		if (keep) {
			keep = sampler_allow(s, now_ns, &eff);
			(void)span_set_metric(sp, "_dd.limit_psr", eff);
		}
		sp->priority = keep ? SPAN_PRIORITY_USER_KEEP :
		    SPAN_PRIORITY_USER_REJECT;
	} else {
		rate = s->has_agent_rate ? s->agent_rate : 1.0;
		sp->mechanism = s->has_agent_rate ? SPAN_MECH_AGENT_RATE :
		    SPAN_MECH_DEFAULT;
		keep = sampler_keep(sp->trace_id.low, rate);
		(void)span_set_metric(sp, "_dd.agent_psr", rate);
		sp->priority = keep ? SPAN_PRIORITY_AUTO_KEEP :
		    SPAN_PRIORITY_AUTO_REJECT;
	}
	sp->has_priority = true;
	/* _dd.p.dm on keep, removed on drop [cpp-seg]. */
	if (keep) {
		snprintf(dm, sizeof dm, "-%d", sp->mechanism);
		(void)span_set_ptag(sp, "_dd.p.dm", dm);
	} else
		span_remove_ptag(sp, "_dd.p.dm");
	if (sp->mechanism != SPAN_MECH_DEFAULT) {
		sampler_format_rate(rate, ksr, sizeof ksr);
		(void)span_set_ptag(sp, "_dd.p.ksr", ksr);
	}
}
