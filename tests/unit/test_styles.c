/*
 * test_styles.c -- the table of propagation styles (styles.c) and that
 * configuration, propagation, CORS, metrics and diagnose all read it.
 */
#include <ctype.h>
#include <string.h>

#include "config.h"
#include "cors/cors.h"
#include "cli/diagnose.h"
#include "ids.h"
#include "propagation.h"
#include "styles.h"
#include "ts_test.h"
#include "util.h"

/* Number of header names of a row. */
static size_t
nheaders(const char *const *v)
{
	size_t n = 0;

	while (n < STYLES_MAX_HEADERS && v[n] != NULL)
		n++;
	return n;
}

/* Every enum value has one row; every style but none has headers. */
START_TEST(test_rows)
{
	const struct style_desc *rows, *d;
	size_t n, i, j, seen[CONFIG_STYLE_NONE + 1] = { 0 };

	n = styles_all(&rows);
	ck_assert_uint_eq(n, CONFIG_STYLE_NONE + 1);
	for (i = 0; i < n; i++) {
		d = &rows[i];
		ck_assert_uint_le(d->style, CONFIG_STYLE_NONE);
		seen[d->style]++;
		ck_assert_ptr_eq(styles_get(d->style), d);
		ck_assert_ptr_nonnull(d->name);
		ck_assert(util_is_token(d->name, strlen(d->name)));
		if (d->style == CONFIG_STYLE_NONE) {
			ck_assert_uint_eq(nheaders(d->headers), 0);
			continue;
		}
		ck_assert_uint_gt(nheaders(d->headers), 0);
		for (j = 0; d->headers[j] != NULL; j++) {
			const char *h = d->headers[j];
			size_t k;

			ck_assert(util_is_token(h, strlen(h)));
			for (k = 0; h[k] != '\0'; k++)
				ck_assert_msg(!isupper((unsigned char)h[k]),
				    "%s is not lower-case", h);
			ck_assert_ptr_eq(styles_of_header(h, strlen(h)), d);
			ck_assert(styles_is_header(h, strlen(h)));
			if (d->prefix != NULL)
				ck_assert(strncmp(h, d->prefix,
				    strlen(d->prefix)) == 0);
		}
		/* RUM sends a subset of what the gateway reads. */
		ck_assert_uint_gt(nheaders(d->rum_headers), 0);
		for (j = 0; d->rum_headers[j] != NULL; j++)
			ck_assert_ptr_eq(styles_of_header(d->rum_headers[j],
			    strlen(d->rum_headers[j])), d);
	}
	for (i = 0; i <= CONFIG_STYLE_NONE; i++)
		ck_assert_uint_eq(seen[i], 1);
	ck_assert_ptr_null(styles_get((enum config_style)42));
	ck_assert_str_eq(styles_name((enum config_style)42), "unknown");
}
END_TEST

/* Name -> enum -> name, through the table and the configuration parser. */
START_TEST(test_names_round_trip)
{
	const struct style_desc *rows;
	struct config_styles cs;
	enum config_style st;
	char msg[256], upper[64];
	size_t n, i, k;

	n = styles_all(&rows);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(styles_lookup(rows[i].name,
		    strlen(rows[i].name), &st), 0);
		ck_assert_int_eq(st, rows[i].style);
		ck_assert_str_eq(config_style_name(st), rows[i].name);
		ck_assert_str_eq(propagation_style_name(st), rows[i].name);
		for (k = 0; rows[i].name[k] != '\0'; k++)
			upper[k] = (char)toupper(
			    (unsigned char)rows[i].name[k]);
		upper[k] = '\0';
		ck_assert_int_eq(config_styles_parse(upper, &cs, msg,
		    sizeof msg), 0);
		if (rows[i].style == CONFIG_STYLE_NONE) {
			ck_assert(cs.none);
			ck_assert_uint_eq(cs.n, 0);
		} else {
			ck_assert_uint_eq(cs.n, 1);
			ck_assert_int_eq(cs.v[0], rows[i].style);
		}
		if (rows[i].alias != NULL) {
			ck_assert_int_eq(config_styles_parse(rows[i].alias,
			    &cs, msg, sizeof msg), 0);
			ck_assert_uint_eq(cs.n, 1);
			ck_assert_int_eq(cs.v[0], rows[i].style);
		}
	}
	ck_assert_int_eq(styles_lookup("w3c", 3, &st), -1);
	ck_assert_int_eq(styles_lookup("b3 single header", 16, &st), -1);
	ck_assert_str_eq(styles_get(CONFIG_STYLE_B3)->alias,
	    "b3 single header");
	/* The message lists the table's names (fixture bad_style.err). */
	ck_assert_int_eq(config_styles_parse("w3c", &cs, msg, sizeof msg),
	    -1);
	ck_assert_str_eq(msg, "expected a propagation style (datadog, "
	    "tracecontext, b3, b3multi, baggage or none), got \"w3c\"");
}
END_TEST

/* Known headers: every listed name and each style's prefix. */
START_TEST(test_known_headers)
{
	ck_assert(propagation_is_known_header("X-Datadog-Unknown", 17));
	ck_assert(propagation_is_known_header("x-b3-other", 10));
	ck_assert(propagation_is_known_header("TraceState", 10));
	ck_assert(!propagation_is_known_header("x-datadog", 9));
	ck_assert(!propagation_is_known_header("baggages", 8));
	ck_assert_ptr_null(styles_of_header("x-datadog-unknown", 17));
}
END_TEST

/* The CORS preset of a style is its table row. */
START_TEST(test_cors_presets)
{
	static char *origins[] = { (char *)"https://app.example" };
	static char *methods[] = { (char *)"GET" };
	const struct style_desc *rows;
	const char *const *names;
	struct config_cors cc;
	struct cors_policy *p;
	const char *acah;
	size_t n, i, j;

	memset(&cc, 0, sizeof cc);
	cc.allowed_origins.v = origins;
	cc.allowed_origins.n = 1;
	cc.allowed_methods.v = methods;
	cc.allowed_methods.n = 1;
	n = styles_all(&rows);
	for (i = 0; i < n; i++) {
		ck_assert_uint_eq(cors_style_headers(rows[i].style, &names),
		    nheaders(rows[i].headers));
		if (rows[i].style == CONFIG_STYLE_NONE)
			continue;
		ck_assert_ptr_eq(names, rows[i].headers);
		p = cors_policy_new(&cc, &rows[i].style, 1, NULL, NULL);
		ck_assert_ptr_nonnull(p);
		acah = cors_allow_headers(p);
		for (j = 0; rows[i].headers[j] != NULL; j++)
			ck_assert_msg(strstr(acah, rows[i].headers[j]) != NULL,
			    "%s: %s not in %s", rows[i].name,
			    rows[i].headers[j], acah);
		cors_policy_free(p);
	}
}
END_TEST

/* The metrics "header" labels: "", "other", then every table header. */
START_TEST(test_metric_labels)
{
	const struct style_desc *rows;
	size_t n, i, total = 2;

	n = styles_all(&rows);
	for (i = 0; i < n; i++)
		total += nheaders(rows[i].headers);
	ck_assert_uint_eq(styles_label_count(), total);
	ck_assert_uint_le(total, STYLES_MAX_LABELS);
	ck_assert_str_eq(styles_label(0), "");
	ck_assert_str_eq(styles_label(1), "other");
	for (i = 2; i < total; i++)
		ck_assert_str_eq(styles_header_class(styles_label(i),
		    strlen(styles_label(i))), styles_label(i));
	ck_assert_str_eq(styles_header_class("X-B3-Flags", 10), "x-b3-flags");
	ck_assert_str_eq(styles_header_class("x-foo", 5), "other");
	ck_assert_str_eq(cors_header_class("Traceparent", 11), "traceparent");
}
END_TEST

/* What one style's codec emitted. */
struct emitted {
	enum config_style	 style;
	size_t			 n;
};

/* Every header a codec emits is one its table row lists. */
static int
emit_check(void *arg, const char *name, const char *value, size_t len)
{
	struct emitted *e = arg;
	const struct style_desc *d = styles_of_header(name, strlen(name));

	(void)value;
	(void)len;
	ck_assert_msg(d != NULL && d->style == e->style,
	    "%s emitted %s, not in its row", styles_name(e->style), name);
	e->n++;
	return 0;
}

#define TH(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }

/* The codecs and the table agree: a style injects only its own headers. */
START_TEST(test_codecs_inject_table_headers)
{
	static const struct trace_header in[] = {
		TH("x-datadog-trace-id", "1234"),
		TH("x-datadog-parent-id", "5678"),
		TH("x-datadog-sampling-priority", "2"),
		TH("x-datadog-origin", "rum"),
		TH("x-datadog-tags", "_dd.p.dm=-4,_dd.p.tid=640cfd8d00000000"),
		TH("baggage", "user.id=42"),
	};
	const struct style_desc *rows;
	struct propagation_conf pc;
	struct trace_extract *ex;
	struct emitted e;
	struct ids_rng rng;
	struct span *sp;
	size_t n, i;

	propagation_conf_defaults(&pc);
	ex = malloc(sizeof *ex);
	ck_assert_ptr_nonnull(ex);
	sp = span_new();
	ck_assert_ptr_nonnull(sp);
	ids_rng_seed(&rng, 7);
	(void)propagation_extract(&pc, in, TS_NITEMS(in), ex, NULL);
	propagation_start_span(&pc, ex, NULL, &rng, 1700000000ULL *
	    1000000000, 1, sp);
	n = styles_all(&rows);
	for (i = 0; i < n; i++) {
		pc.inject[0] = rows[i].style;
		pc.n_inject = 1;
		e.style = rows[i].style;
		e.n = 0;
		ck_assert_int_eq(propagation_inject(&pc, sp, emit_check, &e),
		    0);
		if (rows[i].style == CONFIG_STYLE_NONE)
			ck_assert_uint_eq(e.n, 0);
		else
			ck_assert_msg(e.n > 0, "%s emitted nothing",
			    rows[i].name);
	}
	span_free(sp);
	free(ex);
}
END_TEST

/* diagnose's RUM header list is the union of the rows' RUM headers. */
START_TEST(test_diagnose_rum)
{
	const struct style_desc *rows;
	enum config_style all[CONFIG_STYLE_NONE];
	char **out;
	size_t n, i, j, k, n_out, total = 0;

	n = styles_all(&rows);
	for (i = 0, k = 0; i < n; i++) {
		if (rows[i].style == CONFIG_STYLE_NONE)
			continue;
		all[k++] = rows[i].style;
		total += nheaders(rows[i].rum_headers);
	}
	diagnose_rum_headers(all, k, NULL, 0, &out, &n_out);
	ck_assert_uint_eq(n_out, total);
	for (i = 0; i < n; i++)
		for (j = 0; rows[i].rum_headers[j] != NULL; j++) {
			for (k = 0; k < n_out; k++)
				if (strcmp(out[k], rows[i].rum_headers[j]) == 0)
					break;
			ck_assert_uint_lt(k, n_out);
		}
	diagnose_strv_free(out, n_out);
}
END_TEST

static Suite *
styles_suite(void)
{
	Suite *s = suite_create("styles");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_rows);
	tcase_add_test(tc, test_names_round_trip);
	tcase_add_test(tc, test_known_headers);
	tcase_add_test(tc, test_cors_presets);
	tcase_add_test(tc, test_metric_labels);
	tcase_add_test(tc, test_diagnose_rum);
	tcase_add_test(tc, test_codecs_inject_table_headers);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(styles_suite)
