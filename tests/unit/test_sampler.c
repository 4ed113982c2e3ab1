/*
 * test_sampler.c -- sampling decisions (PROPAGATION.md 9): upstream
 * decisions kept, default keep, sample_rate with the token-bucket rate
 * limit, agent rate_by_service with the default-key fallback, the
 * agent response parser, and DD_TRACE_SAMPLING_RULES: the glob, first
 * match on service / name / resource / tags, rules before sample_rate and
 * the agent, and the messages for bad rules.
 */
#include "ts_test.h"
#include "trace/sampler.h"

static struct span *
fresh(uint64_t low)
{
	struct span *s = span_new();

	ck_assert_ptr_nonnull(s);
	s->trace_id.low = low;
	return s;
}

START_TEST(test_upstream_kept)
{
	struct sampler_conf c = { "svc", "prod", true, 0.0, 100, NULL };
	struct sampler *smp = sampler_new(&c);
	struct span *s = fresh(1);

	s->has_priority = true;
	s->priority = 2;
	s->mechanism = SPAN_MECH_EXTRACTED;
	(void)span_set_ptag(s, "_dd.p.dm", "-4");
	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->priority, 2);
	ck_assert_str_eq(span_get_ptag(s, "_dd.p.dm"), "-4");
	span_free(s);
	sampler_free(smp);
}
END_TEST

START_TEST(test_default_keep)
{
	struct sampler_conf c = { "svc", "", false, 0, 100, NULL };
	struct sampler *smp = sampler_new(&c);
	struct span *s = fresh(12345);
	double v;

	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->priority, 1);
	ck_assert_int_eq(s->mechanism, SPAN_MECH_DEFAULT);
	ck_assert_str_eq(span_get_ptag(s, "_dd.p.dm"), "-0");
	ck_assert_ptr_null(span_get_ptag(s, "_dd.p.ksr"));
	ck_assert(span_get_metric(s, "_dd.agent_psr", &v) && v == 1.0);
	span_free(s);
	sampler_free(smp);
}
END_TEST

START_TEST(test_knuth)
{
	int kept = 0, i;

	ck_assert(sampler_keep(0, 0.5));
	ck_assert(sampler_keep(UINT64_MAX, 1.0));
	ck_assert(!sampler_keep(1, 0.0));
	for (i = 1; i <= 10000; i++)
		kept += sampler_keep((uint64_t)i * 0x9e3779b97f4a7c15ULL, 0.3);
	ck_assert_int_gt(kept, 2700);
	ck_assert_int_lt(kept, 3300);
}
END_TEST

START_TEST(test_rate_limit)
{
	struct sampler_conf c = { "svc", "", true, 1.0, 5, NULL };
	struct sampler *smp = sampler_new(&c);
	struct span *s;
	int kept = 0, i;
	double v;

	/* 20 traces at one instant: the bucket holds 5. */
	for (i = 0; i < 20; i++) {
		s = fresh((uint64_t)i + 1);
		sampler_decide(smp, s, 1000);
		ck_assert_int_eq(s->mechanism, SPAN_MECH_RULE);
		if (s->priority == 2) {
			kept++;
			ck_assert_str_eq(span_get_ptag(s, "_dd.p.dm"), "-3");
			ck_assert_str_eq(span_get_ptag(s, "_dd.p.ksr"), "1");
		} else {
			ck_assert_int_eq(s->priority, -1);
			ck_assert_ptr_null(span_get_ptag(s, "_dd.p.dm"));
		}
		ck_assert(span_get_metric(s, "_dd.rule_psr", &v) && v == 1.0);
		span_free(s);
	}
	ck_assert_int_eq(kept, 5);
	/* 400 ms later two tokens are back. */
	kept = 0;
	for (i = 0; i < 5; i++) {
		s = fresh((uint64_t)i + 100);
		sampler_decide(smp, s, 1000 + 400000000ULL);
		kept += s->priority == 2;
		span_free(s);
	}
	ck_assert_int_eq(kept, 2);
	sampler_free(smp);
}
END_TEST

START_TEST(test_sample_rate_zero)
{
	struct sampler_conf c = { "svc", "", true, 0.0, 100, NULL };
	struct sampler *smp = sampler_new(&c);
	struct span *s = fresh(77);

	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->priority, -1);
	ck_assert_ptr_null(span_get_ptag(s, "_dd.p.dm"));
	span_free(s);
	sampler_free(smp);
}
END_TEST

START_TEST(test_agent_rates)
{
	static const char body[] = "{\"rate_by_service\": {"
	    "\"service:svc,env:prod\": 0, \"service:,env:\": 1,"
	    "\"service:other,env:\": 0.5, \"bad\": \"x\"}}";
	struct sampler_conf c = { "svc", "prod", false, 0, 100, NULL };
	struct sampler_conf c2 = { "svc", "staging", false, 0, 100, NULL };
	struct sampler *smp = sampler_new(&c), *smp2 = sampler_new(&c2);
	struct sampler_rate *rates;
	struct span *s;
	char *cause = NULL;
	size_t n;
	double v;

	ck_assert_int_eq(sampler_parse_agent_rates(body, strlen(body), &rates,
	    &n, &cause), 0);
	ck_assert_uint_eq(n, 3);
	sampler_set_agent_rates(smp, rates, n);
	sampler_set_agent_rates(smp2, rates, n);
	sampler_rates_free(rates, n);

	s = fresh(5);
	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->priority, 0);
	ck_assert_int_eq(s->mechanism, SPAN_MECH_AGENT_RATE);
	ck_assert_ptr_null(span_get_ptag(s, "_dd.p.dm"));
	ck_assert(span_get_metric(s, "_dd.agent_psr", &v) && v == 0.0);
	span_free(s);

	/* Default key for an env not in the table. */
	s = fresh(5);
	sampler_decide(smp2, s, 0);
	ck_assert_int_eq(s->priority, 1);
	ck_assert_str_eq(span_get_ptag(s, "_dd.p.dm"), "-1");
	ck_assert_str_eq(span_get_ptag(s, "_dd.p.ksr"), "1");
	span_free(s);

	/* Removing the table goes back to mechanism 0. */
	sampler_set_agent_rates(smp, NULL, 0);
	s = fresh(5);
	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->mechanism, SPAN_MECH_DEFAULT);
	span_free(s);

	ck_assert_int_eq(sampler_parse_agent_rates("{", 1, &rates, &n, &cause),
	    -1);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	sampler_free(smp);
	sampler_free(smp2);
	sampler_free(NULL);
}
END_TEST

/* Datadog's glob: the reference cases of dd-trace-cpp's glob test. */
static const struct {
	const char *pattern, *subject;
	bool match;
} globs[] = {
	{ "foo", "foo", true },
	{ "foo.*", "foo.you", true },
	{ "foo.*", "snafoo.", false },
	{ "hi*there", "hithere", true },
	{ "*stuff", "lots of stuff", true },
	{ "*stuff", "stuff to think about", false },
	{ "*a*a*a*a*a*a", "aaaaaaaaaaaaaaaaaaaaaaaaaax", false },
	{ "*a*a*a*a*a*a", "aaaaaaaaaaaaaaaaaaaaaaaaaaa", true },
	{ "?", "a", true },
	{ "?", "", false },
	{ "??", "a", false },
	{ "*", "", true },
	{ "", "", true },
	{ "", "a", false },
	{ "GET /health*", "get /healthz", true },	/* ASCII case */
	{ "a*b*c", "aXbYc", true },
	{ "a*b", "aXc", false },
	{ "x?z", "xyz", true },
};

START_TEST(test_glob)
{
	ck_assert_msg(sampler_glob_match(globs[_i].pattern,
	    globs[_i].subject) == globs[_i].match, "\"%s\" vs \"%s\"",
	    globs[_i].pattern, globs[_i].subject);
}
END_TEST

/* A span as the gateway names it before the decision. */
static struct span *
named(uint64_t low, const char *service, const char *resource)
{
	struct span *s = fresh(low);

	if (service != NULL)
		ck_assert_int_eq(span_set_service(s, service), 0);
	ck_assert_int_eq(span_set_name(s, "tracestitch.request"), 0);
	ck_assert_int_eq(span_set_resource(s, resource), 0);
	ck_assert_int_eq(span_set_meta(s, "http.method", "GET"), 0);
	return s;
}

/* First match wins; rules before sample_rate; agent rates after. */
START_TEST(test_rules)
{
	static const char rules[] = "["
	    "{\"resource\": \"GET /health*\", \"sample_rate\": 0},"
	    "{\"service\": \"billing-*\", \"tags\": {\"http.method\": \"POST\"},"
	    " \"sample_rate\": 0},"
	    "{\"service\": \"billing-*\", \"name\": \"tracestitch.*\"}]";
	struct sampler_conf c = { "svc", "", true, 0.0, 100, rules };
	struct sampler *smp = sampler_new(&c);
	struct span *s;
	double v;

	ck_assert(sampler_has_rules(smp));
	/* Rule 0: dropped by the user (priority -1, mechanism 3). */
	s = named(12345, NULL, "GET /healthz");
	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->priority, SPAN_PRIORITY_USER_REJECT);
	ck_assert_int_eq(s->mechanism, SPAN_MECH_RULE);
	ck_assert(span_get_metric(s, "_dd.rule_psr", &v) && v == 0.0);
	ck_assert_ptr_null(span_get_ptag(s, "_dd.p.dm"));
	span_free(s);
	/* Rule 1 needs http.method POST: a GET falls to rule 2 (rate 1). */
	s = named(12345, "billing-api", "GET /invoices");
	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->priority, SPAN_PRIORITY_USER_KEEP);
	ck_assert_str_eq(span_get_ptag(s, "_dd.p.dm"), "-3");
	ck_assert(span_get_metric(s, "_dd.rule_psr", &v) && v == 1.0);
	ck_assert(span_get_metric(s, "_dd.limit_psr", &v));
	span_free(s);
	/* A tag that is absent never matches: rule 1 is skipped. */
	s = named(12345, "billing-api", "POST /invoices");
	span_remove_meta(s, "http.method");
	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->priority, SPAN_PRIORITY_USER_KEEP);
	span_free(s);
	s = named(12345, "billing-api", "POST /invoices");
	(void)span_set_meta(s, "http.method", "post");	/* case */
	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->priority, SPAN_PRIORITY_USER_REJECT);
	span_free(s);
	/* No rule matches: sample_rate 0 (the rule matching all). */
	s = named(12345, "other", "GET /");
	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->priority, SPAN_PRIORITY_USER_REJECT);
	ck_assert_int_eq(s->mechanism, SPAN_MECH_RULE);
	span_free(s);
	/* An upstream decision is never overridden by a rule. */
	s = named(12345, NULL, "GET /healthz");
	s->has_priority = true;
	s->priority = SPAN_PRIORITY_AUTO_KEEP;
	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->priority, SPAN_PRIORITY_AUTO_KEEP);
	span_free(s);
	sampler_free(smp);
}
END_TEST

/* Without sample_rate, a span no rule matches gets the agent's rate. */
START_TEST(test_rules_then_agent)
{
	struct sampler_conf c = { "svc", "", false, 0, 100,
	    "[{\"service\": \"nope\", \"sample_rate\": 0}]" };
	struct sampler *smp = sampler_new(&c);
	struct span *s = named(99, NULL, "GET /");

	sampler_decide(smp, s, 0);
	ck_assert_int_eq(s->priority, SPAN_PRIORITY_AUTO_KEEP);
	ck_assert_int_eq(s->mechanism, SPAN_MECH_DEFAULT);
	span_free(s);
	sampler_free(smp);
}
END_TEST

/* Every bad rule is named with its index and field. */
static const struct {
	const char *json, *cause;
} bad_rules[] = {
	{ "[{\"sample_rate\": 2}]",
	  "rule 0: sample_rate: expected a number from 0 to 1" },
	{ "[{}, {\"sample_rate\": \"0.5\"}]",
	  "rule 1: sample_rate: expected a number from 0 to 1" },
	{ "[{\"service\": 3}]", "rule 0: service: expected a string (a glob)" },
	{ "[1]", "rule 0: expected an object" },
	{ "[{\"tags\": [\"a\"]}]",
	  "rule 0: tags: expected an object of tag globs" },
	{ "[{\"tags\": {\"env\": 1}}]",
	  "rule 0: tags.env: expected a string (a glob)" },
	{ "[{\"max_per_second\": 10}]", "rule 0: unknown key "
	  "\"max_per_second\" (expected service, name, resource, tags, "
	  "sample_rate)" },
	{ "{}", "expected a JSON array of rules" },
};

START_TEST(test_rules_check)
{
	char *cause = NULL;

	ck_assert_int_eq(sampler_rules_check(bad_rules[_i].json, &cause), -1);
	ck_assert_str_eq(cause, bad_rules[_i].cause);
	free(cause);
}
END_TEST

START_TEST(test_rules_check_ok)
{
	char *cause = NULL;

	ck_assert_int_eq(sampler_rules_check("[]", &cause), 0);
	ck_assert_int_eq(sampler_rules_check("[{\"service\": \"*\", "
	    "\"name\": \"a?\", \"resource\": \"GET *\", \"tags\": "
	    "{\"env\": \"prod\"}, \"sample_rate\": 0.25}]", &cause), 0);
	ck_assert_ptr_null(cause);
}
END_TEST

static Suite *
sampler_suite(void)
{
	Suite *s = suite_create("sampler");
	TCase *tc = tcase_create("sampler");

	tcase_add_test(tc, test_upstream_kept);
	tcase_add_test(tc, test_default_keep);
	tcase_add_test(tc, test_knuth);
	tcase_add_test(tc, test_rate_limit);
	tcase_add_test(tc, test_sample_rate_zero);
	tcase_add_test(tc, test_agent_rates);
	tcase_add_loop_test(tc, test_glob, 0, (int)TS_NITEMS(globs));
	tcase_add_test(tc, test_rules);
	tcase_add_test(tc, test_rules_then_agent);
	tcase_add_loop_test(tc, test_rules_check, 0, (int)TS_NITEMS(bad_rules));
	tcase_add_test(tc, test_rules_check_ok);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(sampler_suite)
