/*
 * test_sampler.c -- sampling decisions (PROPAGATION.md 9): upstream
 * decisions kept, default keep, sample_rate with the token-bucket rate
 * limit, agent rate_by_service with the default-key fallback, and the
 * agent response parser.
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
	struct sampler_conf c = { "svc", "prod", true, 0.0, 100 };
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
	struct sampler_conf c = { "svc", "", false, 0, 100 };
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
	struct sampler_conf c = { "svc", "", true, 1.0, 5 };
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
	struct sampler_conf c = { "svc", "", true, 0.0, 100 };
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
	struct sampler_conf c = { "svc", "prod", false, 0, 100 };
	struct sampler_conf c2 = { "svc", "staging", false, 0, 100 };
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
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(sampler_suite)
