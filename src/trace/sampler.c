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

#define SAMPLER_MAX_TAGS	8

/* One user rule; NULL patterns match everything. */
struct sampler_rule {
	char	*service;
	char	*name;
	char	*resource;
	char	*tag_key[SAMPLER_MAX_TAGS];
	char	*tag_glob[SAMPLER_MAX_TAGS];
	size_t	 n_tags;
	double	 rate;
};

struct sampler {
	struct sampler_rule *rules;
	size_t	 n_rules;
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

static void
sampler_rule_clear(struct sampler_rule *r)
{
	size_t i;

	free(r->service);
	free(r->name);
	free(r->resource);
	for (i = 0; i < r->n_tags; i++) {
		free(r->tag_key[i]);
		free(r->tag_glob[i]);
	}
	memset(r, 0, sizeof *r);
}

/* A pattern field of rule j: NULL when absent or "*" (matches all). */
static int
sampler_rule_pattern(json_t *rule, const char *field, size_t j, char **out,
    char **cause)
{
	json_t *v = json_object_get(rule, field);

	*out = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		xasprintf(cause, "rule %zu: %s: expected a string (a glob)", j,
		    field);
		return -1;
	}
	if (strcmp(json_string_value(v), "*") != 0)
		*out = xstrdup(json_string_value(v));
	return 0;
}

/* Parse rule j of the array into r (r is cleared on error). */
static int
sampler_rule_parse(json_t *rule, size_t j, struct sampler_rule *r,
    char **cause)
{
	json_t *v;
	const char *k;

	memset(r, 0, sizeof *r);
	r->rate = 1.0;
	if (!json_is_object(rule)) {
		xasprintf(cause, "rule %zu: expected an object", j);
		return -1;
	}
	json_object_foreach(rule, k, v) {
		if (strcmp(k, "service") != 0 && strcmp(k, "name") != 0 &&
		    strcmp(k, "resource") != 0 && strcmp(k, "tags") != 0 &&
		    strcmp(k, "sample_rate") != 0) {
			xasprintf(cause, "rule %zu: unknown key \"%s\" (expected "
			    "service, name, resource, tags, sample_rate)", j, k);
			return -1;
		}
	}
	if (sampler_rule_pattern(rule, "service", j, &r->service, cause) != 0 ||
	    sampler_rule_pattern(rule, "name", j, &r->name, cause) != 0 ||
	    sampler_rule_pattern(rule, "resource", j, &r->resource,
	    cause) != 0)
		goto fail;
	if ((v = json_object_get(rule, "sample_rate")) != NULL) {
		if (!json_is_number(v) || json_number_value(v) < 0 ||
		    json_number_value(v) > 1) {
			xasprintf(cause, "rule %zu: sample_rate: expected a "
			    "number from 0 to 1", j);
			goto fail;
		}
		r->rate = json_number_value(v);
	}
	if ((v = json_object_get(rule, "tags")) != NULL) {
		json_t *g;

		if (!json_is_object(v)) {
			xasprintf(cause, "rule %zu: tags: expected an object of "
			    "tag globs", j);
			goto fail;
		}
		json_object_foreach(v, k, g) {
			if (!json_is_string(g)) {
				xasprintf(cause, "rule %zu: tags.%s: expected a "
				    "string (a glob)", j, k);
				goto fail;
			}
			if (r->n_tags == SAMPLER_MAX_TAGS) {
				xasprintf(cause, "rule %zu: tags: at most %d",
				    j, SAMPLER_MAX_TAGS);
				goto fail;
			}
			r->tag_key[r->n_tags] = xstrdup(k);
			r->tag_glob[r->n_tags] = xstrdup(json_string_value(g));
			r->n_tags++;
		}
	}
	return 0;
fail:
	sampler_rule_clear(r);
	return -1;
}

/* Parse a rules array; *rules (n) on success. */
static int
sampler_rules_parse(const char *json, struct sampler_rule **rules, size_t *n,
    char **cause)
{
	json_error_t jerr;
	json_t *root, *rule;
	struct sampler_rule *rs;
	size_t j;

	*rules = NULL;
	*n = 0;
	if ((root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		xasprintf(cause, "invalid JSON (%s at column %d)", jerr.text,
		    jerr.column);
		return -1;
	}
	if (!json_is_array(root)) {
		xasprintf(cause, "expected a JSON array of rules");
		json_decref(root);
		return -1;
	}
	rs = xcalloc(json_array_size(root) + 1, sizeof *rs);
	json_array_foreach(root, j, rule) {
		if (sampler_rule_parse(rule, j, &rs[j], cause) != 0) {
			while (j-- > 0)
				sampler_rule_clear(&rs[j]);
			free(rs);
			json_decref(root);
			return -1;
		}
	}
	*n = json_array_size(root);
	*rules = rs;
	json_decref(root);
	return 0;
}

int
sampler_rules_check(const char *json, char **cause)
{
	struct sampler_rule *rs;
	size_t n, i;

	if (sampler_rules_parse(json, &rs, &n, cause) != 0)
		return -1;
	for (i = 0; i < n; i++)
		sampler_rule_clear(&rs[i]);
	free(rs);
	return 0;
}

static inline char
sampler_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool
sampler_glob_match(const char *pattern, const char *subject)
{
	/*
	 * Backtracking over the last '*' (linear for these patterns):
	 * on a mismatch, let the last star swallow one more character.
	 */
	const char *p = pattern, *s = subject, *star = NULL, *star_s = NULL;

	while (*s != '\0') {
		if (*p == '*') {
			star = p++;
			star_s = s;
		} else if (*p != '\0' && (*p == '?' ||
		    sampler_lower(*p) == sampler_lower(*s))) {
			p++;
			s++;
		} else if (star != NULL) {
			p = star + 1;
			s = ++star_s;
		} else
			return false;
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

bool
sampler_has_rules(const struct sampler *s)
{
	return s != NULL && s->n_rules > 0;
}

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
	if (conf->rules_json != NULL) {
		char *cause = NULL;

		/* config.c checked the rules; a bad value means none. */
		if (sampler_rules_parse(conf->rules_json, &s->rules,
		    &s->n_rules, &cause) != 0)
			free(cause);
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
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n_rules; i++)
		sampler_rule_clear(&s->rules[i]);
	free(s->rules);
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

/* Does one glob of a rule match (NULL pattern: yes; no subject: no)? */
static bool
sampler_field_match(const char *pattern, const char *subject)
{
	if (pattern == NULL)
		return true;
	return subject != NULL && sampler_glob_match(pattern, subject);
}

/*
 * The first rule matching span's service (the sampler's when the span
 * has none), name, resource and tags (key present, value matching), as
 * dd-trace-cpp's SpanMatcher.
 */
static const struct sampler_rule *
sampler_match(const struct sampler *s, const struct span *sp)
{
	size_t i, t;

	for (i = 0; i < s->n_rules; i++) {
		const struct sampler_rule *r = &s->rules[i];

		if (!sampler_field_match(r->service, sp->service != NULL ?
		    sp->service : s->service) ||
		    !sampler_field_match(r->name, sp->name) ||
		    !sampler_field_match(r->resource, sp->resource))
			continue;
		for (t = 0; t < r->n_tags; t++) {
			if (!sampler_field_match(r->tag_glob[t],
			    span_get_meta(sp, r->tag_key[t])))
				break;
		}
		if (t == r->n_tags)
			return r;
	}
	return NULL;
}

/* Decide for a span without an upstream decision (PROPAGATION.md 9). */
void
sampler_decide(struct sampler *s, struct span *sp, uint64_t now_ns)
{
	const struct sampler_rule *rule;
	char dm[24], ksr[32];
	double rate, eff;
	bool keep;

	if (sp->has_priority)
		return;		/* honour upstream [cpp-tracer] */
	if ((rule = sampler_match(s, sp)) != NULL || s->has_sample_rate) {
		/* A user rule, or sample_rate: the rule matching all. */
		rate = rule != NULL ? rule->rate : s->sample_rate;
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
		/* "-" then the mechanism: "-0" for the default one. */
		dm[0] = '-';
		(void)util_fmt_u64((uint64_t)sp->mechanism, dm + 1);
		(void)span_set_ptag(sp, "_dd.p.dm", dm);
	} else
		span_remove_ptag(sp, "_dd.p.dm");
	if (sp->mechanism != SPAN_MECH_DEFAULT) {
		sampler_format_rate(rate, ksr, sizeof ksr);
		(void)span_set_ptag(sp, "_dd.p.ksr", ksr);
	}
}
