/*
 * test_propagation.c -- the propagation vectors (tests/data/prop/
 * propagation.json, PROPAGATION.md 15) run through extract, the gateway
 * span and inject, plus table tests of conflict resolution, behaviours,
 * style parsing and header hygiene.
 *
 * Every vector's "config" (DD_* names) is mapped onto a struct
 * propagation_conf; "request_headers" arrays become repeated header
 * lines.  Each expectation key of section 15 is checked, and in every
 * case each outgoing parent id must be the gateway span's own id.
 */
#include <jansson.h>
#include <regex.h>

#include "ts_test.h"
#include "trace/ids.h"
#include "trace/propagation.h"
#include "trace/prop_codec.h"
#include "styles.h"

#define MAX_IN	64
#define MAX_OUT	32

struct out_headers {
	char	*name[MAX_OUT];
	char	*value[MAX_OUT];
	size_t	 n;
};

static json_t *vectors;

static int
collect(void *arg, const char *name, const char *value, size_t len)
{
	struct out_headers *o = arg;

	ck_assert_uint_lt(o->n, MAX_OUT);
	ck_assert_uint_eq(strlen(value), len);
	o->name[o->n] = strdup(name);
	o->value[o->n] = strndup(value, len);
	o->n++;
	return 0;
}

static void
out_clear(struct out_headers *o)
{
	size_t i;

	for (i = 0; i < o->n; i++) {
		free(o->name[i]);
		free(o->value[i]);
	}
	o->n = 0;
}

static const char *
out_get(const struct out_headers *o, const char *name)
{
	size_t i;

	for (i = 0; i < o->n; i++)
		if (strcmp(o->name[i], name) == 0)
			return o->value[i];
	return NULL;
}

/* Full-match an extended regex. */
static bool
full_match(const char *pattern, const char *s)
{
	char buf[1024];
	regex_t re;
	int rc;

	snprintf(buf, sizeof buf, "^(%s)$", pattern);
	ck_assert_int_eq(regcomp(&re, buf, REG_EXTENDED | REG_NOSUB), 0);
	rc = regexec(&re, s, 0, NULL, 0);
	regfree(&re);
	return rc == 0;
}

/* Is item (exact) one of the sep-separated parts of list? */
static bool
list_has(const char *list, char sep, const char *item)
{
	const char *p = list, *e;
	size_t il = strlen(item);

	if (list == NULL)
		return false;
	for (;;) {
		e = strchr(p, sep);
		if (e == NULL)
			e = p + strlen(p);
		if ((size_t)(e - p) == il && memcmp(p, item, il) == 0)
			return true;
		if (*e == '\0')
			return false;
		p = e + 1;
	}
}

/* Has list a part starting with "key<kv>"? */
static bool
list_has_key(const char *list, char sep, const char *key, char kv)
{
	const char *p = list, *e;
	size_t kl = strlen(key);

	if (list == NULL)
		return false;
	for (;;) {
		e = strchr(p, sep);
		if (e == NULL)
			e = p + strlen(p);
		if ((size_t)(e - p) > kl && memcmp(p, key, kl) == 0 &&
		    p[kl] == kv)
			return true;
		if (*e == '\0')
			return false;
		p = e + 1;
	}
}

/* The dd member's value in an outgoing tracestate (static buffer). */
static const char *
dd_member(const char *ts)
{
	static char buf[512];
	const char *e;

	if (ts == NULL || strncmp(ts, "dd=", 3) != 0)
		return NULL;
	e = strchr(ts, ',');
	snprintf(buf, sizeof buf, "%.*s",
	    (int)(e == NULL ? strlen(ts) - 3 : (size_t)(e - ts) - 3), ts + 3);
	return buf;
}

static int
hexv(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
pct_decode(const char *s, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len && hexv(s[i + 1]) >= 0 &&
		    hexv(s[i + 2]) >= 0) {
			out[o++] = (char)(hexv(s[i + 1]) << 4 | hexv(s[i + 2]));
			i += 2;
		} else
			out[o++] = s[i];
	}
	out[o] = '\0';
}

/* Value of a decoded baggage item in an outgoing header, static buffer. */
static const char *
baggage_get(const char *hdr, const char *key)
{
	static char val[8192];
	char k[8192];
	const char *p = hdr, *e, *eq;

	for (;;) {
		e = strchr(p, ',');
		if (e == NULL)
			e = p + strlen(p);
		eq = memchr(p, '=', (size_t)(e - p));
		if (eq != NULL) {
			pct_decode(p, (size_t)(eq - p), k);
			if (strcmp(k, key) == 0) {
				pct_decode(eq + 1, (size_t)(e - eq - 1), val);
				return val;
			}
		}
		if (*e == '\0')
			return NULL;
		p = e + 1;
	}
}

/* The binary's own parser (config.c), as for DD_TRACE_PROPAGATION_STYLE. */
static void
apply_styles(const char *v, enum config_style *out, size_t *n)
{
	struct config_styles l;
	char msg[256];

	ck_assert_msg(config_styles_parse(v, &l, msg, sizeof msg) == 0,
	    "styles %s: %s", v, msg);
	memcpy(out, l.v, l.n * sizeof l.v[0]);
	*n = l.n;
}

/* Map a vector's DD_* config onto a propagation_conf. */
static void
apply_config(json_t *cfg, struct propagation_conf *pc,
    struct sampler_conf *sc)
{
	const char *k, *v;
	json_t *jv;

	propagation_conf_defaults(pc);
	memset(sc, 0, sizeof *sc);
	sc->service = "tracestitch";
	sc->env = "";
	sc->rate_limit = 100;
	if ((jv = json_object_get(cfg, "DD_TRACE_PROPAGATION_STYLE")) != NULL) {
		apply_styles(json_string_value(jv), pc->extract,
		    &pc->n_extract);
		apply_styles(json_string_value(jv), pc->inject, &pc->n_inject);
	}
	json_object_foreach(cfg, k, jv) {
		v = json_string_value(jv);
		ck_assert_ptr_nonnull(v);
		if (strcmp(k, "DD_TRACE_PROPAGATION_STYLE_EXTRACT") == 0)
			apply_styles(v, pc->extract, &pc->n_extract);
		else if (strcmp(k, "DD_TRACE_PROPAGATION_STYLE_INJECT") == 0)
			apply_styles(v, pc->inject, &pc->n_inject);
		else if (strcmp(k, "DD_TRACE_PROPAGATION_STYLE") == 0)
			continue;
		else if (strcmp(k,
		    "DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED") == 0)
			pc->trace_id_128bit = strcmp(v, "true") == 0;
		else if (strcmp(k, "DD_TRACE_PROPAGATION_BEHAVIOR_EXTRACT") == 0)
			pc->behavior = strcmp(v, "restart") == 0 ?
			    CONFIG_BEHAVIOR_RESTART : strcmp(v, "ignore") == 0 ?
			    CONFIG_BEHAVIOR_IGNORE : CONFIG_BEHAVIOR_CONTINUE;
		else if (strcmp(k, "DD_TRACE_PROPAGATION_EXTRACT_FIRST") == 0)
			pc->extract_first = strcmp(v, "true") == 0;
		else if (strcmp(k, "DD_TRACE_X_DATADOG_TAGS_MAX_LENGTH") == 0)
			pc->tags_max_length = strtoul(v, NULL, 10);
		else if (strcmp(k, "DD_TRACE_SAMPLE_RATE") == 0) {
			sc->has_sample_rate = true;
			sc->sample_rate = strtod(v, NULL);
		} else
			ck_abort_msg("vector config %s not mapped", k);
	}
}

/* Build header lines from request_headers (arrays = repeated lines). */
static size_t
build_headers(json_t *obj, struct trace_header *h)
{
	const char *k;
	json_t *v, *item;
	size_t n = 0, i;

	json_object_foreach(obj, k, v) {
		if (json_is_array(v)) {
			json_array_foreach(v, i, item) {
				ck_assert_uint_lt(n, MAX_IN);
				h[n].name = k;
				h[n].name_len = strlen(k);
				h[n].value = json_string_value(item);
				h[n].value_len = json_string_length(item);
				n++;
			}
		} else {
			ck_assert_uint_lt(n, MAX_IN);
			h[n].name = k;
			h[n].name_len = strlen(k);
			h[n].value = json_string_value(v);
			h[n].value_len = json_string_length(v);
			n++;
		}
	}
	return n;
}

/* The x-datadog-tags list seen downstream, or the span's own tags. */
static const char *
tags_list(const struct out_headers *o, const struct span *sp, char *buf,
    size_t size)
{
	const char *t = out_get(o, "x-datadog-tags");
	size_t len = 0, i;
	char tid[17];

	if (t != NULL)
		return t;
	buf[0] = '\0';
	for (i = 0; i < sp->n_ptags; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s=%s",
		    len ? "," : "", sp->ptags[i].key, sp->ptags[i].value);
	if (sp->trace_id.high != 0) {
		ids_format_hex64(sp->trace_id.high, tid);
		snprintf(buf + len, size - len, "%s_dd.p.tid=%s",
		    len ? "," : "", tid);
	}
	return buf;
}

/* Every outgoing parent id is the span's id; priority consistent. */
static void
check_invariants(const char *id, const struct out_headers *o,
    const struct span *sp)
{
	char dec[24], hex[17], pfx[24];
	const char *v, *dd;
	size_t i;

	ids_format_dec64(sp->span_id, dec);
	ids_format_hex64(sp->span_id, hex);
	ck_assert_msg(sp->span_id != 0 && (sp->span_id >> 63) == 0,
	    "%s: span id", id);
	ck_assert_msg(sp->has_priority, "%s: no priority", id);
	if ((v = out_get(o, "x-datadog-parent-id")) != NULL)
		ck_assert_msg(strcmp(v, dec) == 0, "%s: x-datadog-parent-id", id);
	if ((v = out_get(o, "x-datadog-sampling-priority")) != NULL)
		ck_assert_msg(atoi(v) == sp->priority, "%s: dd priority", id);
	if ((v = out_get(o, "traceparent")) != NULL) {
		ck_assert_msg(strlen(v) == 55 && strncmp(v + 36, hex, 16) == 0,
		    "%s: traceparent parent %s", id, v);
		ck_assert_msg(((hexv(v[54]) & 1) != 0) == (sp->priority > 0),
		    "%s: traceparent flags %s", id, v);
	}
	if ((dd = dd_member(out_get(o, "tracestate"))) != NULL) {
		snprintf(pfx, sizeof pfx, "p:%s", hex);
		ck_assert_msg(list_has(dd, ';', pfx), "%s: tracestate p: %s",
		    id, dd);
		snprintf(pfx, sizeof pfx, "s:%d", sp->priority);
		ck_assert_msg(list_has(dd, ';', pfx), "%s: tracestate s: %s",
		    id, dd);
	}
	if ((v = out_get(o, "b3")) != NULL) {
		ck_assert_msg(strstr(v, hex) != NULL, "%s: b3 %s", id, v);
		i = strlen(v);
		ck_assert_msg(v[i - 1] == (sp->priority > 0 ? '1' : '0'),
		    "%s: b3 sampled", id);
	}
	if ((v = out_get(o, "x-b3-spanid")) != NULL)
		ck_assert_msg(strcmp(v, hex) == 0, "%s: x-b3-spanid", id);
	if ((v = out_get(o, "x-b3-sampled")) != NULL)
		ck_assert_msg(strcmp(v, sp->priority > 0 ? "1" : "0") == 0,
		    "%s: x-b3-sampled", id);
	if (sp->priority > 0 && sp->mechanism != SPAN_MECH_EXTRACTED)
		ck_assert_msg(span_get_ptag(sp, "_dd.p.dm") != NULL,
		    "%s: local keep without _dd.p.dm", id);
	if (sp->priority <= 0 && sp->mechanism != SPAN_MECH_EXTRACTED)
		ck_assert_msg(span_get_ptag(sp, "_dd.p.dm") == NULL,
		    "%s: local drop with _dd.p.dm", id);
}

static void
check_links(const char *id, json_t *want, const struct span *sp)
{
	json_t *l, *attrs;
	char dec[24], hex[17];
	size_t i;

	ck_assert_msg(json_array_size(want) == sp->n_links,
	    "%s: %zu links, want %zu", id, sp->n_links,
	    json_array_size(want));
	json_array_foreach(want, i, l) {
		const struct trace_link *g = &sp->links[i];
		const char *s;

		if ((s = json_string_value(json_object_get(l,
		    "trace_id_low_dec"))) != NULL) {
			ids_format_dec64(g->trace_id.low, dec);
			ck_assert_msg(strcmp(dec, s) == 0, "%s: link low", id);
		}
		if ((s = json_string_value(json_object_get(l,
		    "trace_id_high_hex"))) != NULL) {
			ids_format_hex64(g->trace_id.high, hex);
			ck_assert_msg(strcmp(hex, s) == 0, "%s: link high", id);
		}
		if ((s = json_string_value(json_object_get(l,
		    "span_id_dec"))) != NULL) {
			ids_format_dec64(g->span_id, dec);
			ck_assert_msg(strcmp(dec, s) == 0, "%s: link span", id);
		}
		attrs = json_object_get(l, "attributes");
		if ((s = json_string_value(json_object_get(attrs,
		    "reason"))) != NULL)
			ck_assert_msg(g->reason != NULL &&
			    strcmp(g->reason, s) == 0, "%s: link reason", id);
		if ((s = json_string_value(json_object_get(attrs,
		    "context_headers"))) != NULL)
			ck_assert_msg(g->context_headers != NULL &&
			    strcmp(g->context_headers, s) == 0,
			    "%s: link context_headers", id);
	}
}

static void
check_tracestate(const char *id, json_t *e, const struct out_headers *o)
{
	const char *ts = out_get(o, "tracestate"), *dd, *p, *c;
	json_t *v, *item;
	size_t i, count;
	char key[64];

	dd = dd_member(ts);
	if ((v = json_object_get(e, "tracestate_dd_contains")) != NULL) {
		ck_assert_msg(dd != NULL, "%s: no dd member", id);
		json_array_foreach(v, i, item)
			ck_assert_msg(list_has(dd, ';', json_string_value(item)),
			    "%s: dd=%s lacks %s", id, dd,
			    json_string_value(item));
	}
	if ((v = json_object_get(e, "tracestate_dd_absent_keys")) != NULL) {
		json_array_foreach(v, i, item) {
			snprintf(key, sizeof key, "%s", json_string_value(item));
			ck_assert_msg(!list_has_key(dd, ';', key, ':'),
			    "%s: dd=%s has %s", id, dd, key);
		}
	}
	if ((v = json_object_get(e, "tracestate_member_count")) != NULL) {
		ck_assert_msg(ts != NULL, "%s: no tracestate", id);
		for (count = 1, p = ts; (c = strchr(p, ',')) != NULL;
		    p = c + 1)
			count++;
		ck_assert_msg(count == (size_t)json_integer_value(v),
		    "%s: %zu members: %s", id, count, ts);
	}
	if ((v = json_object_get(e, "tracestate_other_members")) != NULL) {
		char want[8192];
		size_t len = 0;

		ck_assert_msg(ts != NULL, "%s: no tracestate", id);
		want[0] = '\0';
		json_array_foreach(v, i, item)
			len += (size_t)snprintf(want + len, sizeof want - len,
			    "%s%s", len ? "," : "", json_string_value(item));
		p = strncmp(ts, "dd=", 3) == 0 ? strchr(ts, ',') : ts;
		p = p == NULL ? "" : (*p == ',' ? p + 1 : p);
		ck_assert_msg(strcmp(p, want) == 0, "%s: others '%s' want '%s'",
		    id, p, want);
	}
}

static void
run_vector(json_t *vec)
{
	struct trace_header h[MAX_IN];
	struct propagation_conf pc;
	struct sampler_conf sc;
	struct out_headers o = { .n = 0 };
	struct trace_extract *ex;
	struct sampler *smp;
	struct ids_rng rng;
	struct span *sp;
	const char *id, *v, *s, *k, *tags;
	json_t *e, *jv, *item;
	char buf[64], tbuf[4096];
	size_t n, i;
	bool continued;

	id = json_string_value(json_object_get(vec, "id"));
	e = json_object_get(vec, "expect");
	apply_config(json_object_get(vec, "config"), &pc, &sc);
	n = build_headers(json_object_get(vec, "request_headers"), h);

	ex = malloc(sizeof *ex);
	sp = span_new();
	ck_assert_ptr_nonnull(ex);
	ck_assert_ptr_nonnull(sp);
	smp = sampler_new(&sc);
	ids_rng_seed(&rng, 42);
	(void)propagation_extract(&pc, h, n, ex, NULL);
	continued = ex->continued;
	propagation_start_span(&pc, ex, smp, &rng, 1700000000ULL * 1000000000,
	    1, sp);
	ck_assert_int_eq(propagation_inject(&pc, sp, collect, &o), 0);
	span_finish(sp, 1700000000ULL * 1000000000 + 5000);
	check_invariants(id, &o, sp);

	if ((jv = json_object_get(e, "new_trace")) != NULL) {
		ck_assert_msg(continued == !json_is_true(jv),
		    "%s: continued=%d", id, continued);
		if (json_is_true(jv))
			ck_assert_msg(sp->parent_id == 0, "%s: parent", id);
	}
	if ((s = json_string_value(json_object_get(e,
	    "trace_id_hex128"))) != NULL) {
		char hex[33];

		ids_format_hex128(sp->trace_id, hex);
		ck_assert_msg(strcmp(hex, s) == 0, "%s: trace id %s", id, hex);
	}
	if ((s = json_string_value(json_object_get(e,
	    "trace_id_low_dec"))) != NULL) {
		ids_format_dec64(sp->trace_id.low, buf);
		ck_assert_msg(strcmp(buf, s) == 0, "%s: low %s", id, buf);
		if ((v = out_get(&o, "x-datadog-trace-id")) != NULL)
			ck_assert_msg(strcmp(v, s) == 0, "%s: header low", id);
	}
	tags = tags_list(&o, sp, tbuf, sizeof tbuf);
	if ((jv = json_object_get(e, "tid")) != NULL) {
		if (json_is_null(jv)) {
			ck_assert_msg(sp->trace_id.high == 0, "%s: high", id);
			ck_assert_msg(span_get_meta(sp, "_dd.p.tid") == NULL,
			    "%s: tid meta", id);
			ck_assert_msg(!list_has_key(tags, ',', "_dd.p.tid",
			    '='), "%s: tid tag", id);
		} else {
			ids_format_hex64(sp->trace_id.high, buf);
			ck_assert_msg(strcmp(buf, json_string_value(jv)) == 0,
			    "%s: tid %s", id, buf);
		}
	}
	if ((s = json_string_value(json_object_get(e, "tid_pattern"))) !=
	    NULL) {
		ids_format_hex64(sp->trace_id.high, buf);
		ck_assert_msg(full_match(s, buf), "%s: tid %s", id, buf);
	}
	if ((s = json_string_value(json_object_get(e,
	    "exported_parent_id_dec"))) != NULL) {
		ids_format_dec64(sp->parent_id, buf);
		ck_assert_msg(strcmp(buf, s) == 0, "%s: parent %s", id, buf);
	}
	if ((jv = json_object_get(e, "sampling_priority")) != NULL) {
		if (json_is_string(jv)) {
			ck_assert_str_eq(json_string_value(jv), "local");
			ck_assert_msg(sp->mechanism != SPAN_MECH_EXTRACTED &&
			    sp->priority == 1, "%s: not local", id);
		} else
			ck_assert_msg(sp->priority == json_integer_value(jv),
			    "%s: priority %d", id, sp->priority);
	}
	if ((jv = json_object_get(e, "origin")) != NULL) {
		v = out_get(&o, "x-datadog-origin");
		if (json_is_null(jv)) {
			ck_assert_msg(sp->origin == NULL && v == NULL,
			    "%s: origin", id);
			ck_assert_ptr_null(span_get_meta(sp, "_dd.origin"));
		} else {
			ck_assert_msg(sp->origin != NULL && strcmp(sp->origin,
			    json_string_value(jv)) == 0, "%s: origin", id);
			if (v != NULL)
				ck_assert_str_eq(v, json_string_value(jv));
		}
	}
	json_array_foreach(json_object_get(e, "propagated_tags_contains"), i,
	    item)
		ck_assert_msg(list_has(tags, ',', json_string_value(item)),
		    "%s: tags '%s' lack %s", id, tags, json_string_value(item));
	json_array_foreach(json_object_get(e, "propagated_tags_absent_keys"),
	    i, item)
		ck_assert_msg(!list_has_key(tags, ',', json_string_value(item),
		    '='), "%s: tags '%s' have %s", id, tags,
		    json_string_value(item));
	json_array_foreach(json_object_get(e, "propagated_tags_absent_items"),
	    i, item)
		ck_assert_msg(!list_has(tags, ',', json_string_value(item)),
		    "%s: tags have %s", id, json_string_value(item));
	if ((s = json_string_value(json_object_get(e,
	    "traceparent_pattern"))) != NULL) {
		v = out_get(&o, "traceparent");
		ck_assert_msg(v != NULL && full_match(s, v),
		    "%s: traceparent %s", id, v != NULL ? v : "(none)");
	}
	if ((s = json_string_value(json_object_get(e, "b3_pattern"))) != NULL) {
		v = out_get(&o, "b3");
		ck_assert_msg(v != NULL && full_match(s, v), "%s: b3 %s", id,
		    v != NULL ? v : "(none)");
	}
	if ((s = json_string_value(json_object_get(e,
	    "b3m_traceid_pattern"))) != NULL) {
		v = out_get(&o, "x-b3-traceid");
		ck_assert_msg(v != NULL && full_match(s, v), "%s: x-b3-traceid",
		    id);
	}
	if ((s = json_string_value(json_object_get(e, "b3m_sampled"))) !=
	    NULL) {
		v = out_get(&o, "x-b3-sampled");
		ck_assert_msg(v != NULL && strcmp(v, s) == 0, "%s: sampled", id);
	}
	check_tracestate(id, e, &o);
	json_object_foreach(json_object_get(e, "span_meta"), k, jv) {
		v = span_get_meta(sp, k);
		if (json_is_null(jv))
			ck_assert_msg(v == NULL, "%s: meta %s=%s", id, k, v);
		else
			ck_assert_msg(v != NULL && strcmp(v,
			    json_string_value(jv)) == 0, "%s: meta %s=%s", id,
			    k, v != NULL ? v : "(none)");
	}
	json_array_foreach(json_object_get(e, "headers_absent"), i, item)
		ck_assert_msg(out_get(&o, json_string_value(item)) == NULL,
		    "%s: %s present", id, json_string_value(item));
	json_array_foreach(json_object_get(e, "headers_present"), i, item)
		ck_assert_msg(out_get(&o, json_string_value(item)) != NULL,
		    "%s: %s absent", id, json_string_value(item));
	json_object_foreach(json_object_get(e, "headers_equal"), k, jv) {
		v = out_get(&o, k);
		ck_assert_msg(v != NULL && strcmp(v, json_string_value(jv)) == 0,
		    "%s: %s=%s", id, k, v != NULL ? v : "(none)");
	}
	if ((jv = json_object_get(e, "baggage_items_out")) != NULL) {
		v = out_get(&o, "baggage");
		if (json_is_null(jv))
			ck_assert_msg(v == NULL, "%s: baggage %s", id, v);
		else {
			ck_assert_msg(v != NULL, "%s: no baggage", id);
			json_object_foreach(jv, k, item) {
				s = baggage_get(v, k);
				ck_assert_msg(s != NULL && strcmp(s,
				    json_string_value(item)) == 0,
				    "%s: baggage %s in %s", id, k, v);
			}
		}
	}
	if ((jv = json_object_get(e, "span_links")) != NULL)
		check_links(id, jv, sp);

	out_clear(&o);
	sampler_free(smp);
	span_free(sp);
	free(ex);
}

START_TEST(test_vector)
{
	run_vector(json_array_get(vectors, (size_t)_i));
}
END_TEST

/* Run headers through the whole pipeline with the default conf. */
static void
pipeline(const struct propagation_conf *pc, const struct trace_header *h,
    size_t n, struct trace_extract *ex, struct span *sp,
    struct out_headers *o)
{
	struct ids_rng rng;

	ids_rng_seed(&rng, 7);
	(void)propagation_extract(pc, h, n, ex, NULL);
	span_init(sp);
	propagation_start_span(pc, ex, NULL, &rng, 1700000000000000000ULL, 1,
	    sp);
	ck_assert_int_eq(propagation_inject(pc, sp, collect, o), 0);
}

#define HDR(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }

START_TEST(test_ignore_drops_everything)
{
	static const struct trace_header h[] = {
		HDR("x-datadog-trace-id", "5"), HDR("x-datadog-parent-id", "6"),
		HDR("baggage", "a=b"),
	};
	struct propagation_conf pc;
	struct trace_extract *ex = malloc(sizeof *ex);
	struct span *sp = span_new();
	struct out_headers o = { .n = 0 };

	propagation_conf_defaults(&pc);
	pc.behavior = CONFIG_BEHAVIOR_IGNORE;
	pipeline(&pc, h, TS_NITEMS(h), ex, sp, &o);
	ck_assert(!ex->continued);
	ck_assert_uint_eq(sp->parent_id, 0);
	ck_assert_uint_ne(sp->trace_id.low, 5);
	ck_assert_ptr_null(out_get(&o, "baggage"));
	ck_assert_uint_eq(sp->n_links, 0);
	out_clear(&o);
	span_free(sp);
	free(ex);
}
END_TEST

/* An invalid tracestate: the trace goes on, only our dd member goes out. */
/*
 * Every style of core's table has its codec (prop_codecs.c), under its
 * own style, and every codec injects; extraction is every style's but
 * baggage's (read apart, 7.2 step 8).  Adding a style without its codec
 * fails here.
 */
START_TEST(test_every_style_has_a_codec)
{
	const struct style_desc *rows;
	const struct prop_codec *c;
	size_t i, n;

	n = styles_all(&rows);
	ck_assert_uint_ge(n, 6);
	for (i = 0; i < n; i++) {
		if (rows[i].style == CONFIG_STYLE_NONE)
			continue;	/* "none": an empty list, no codec */
		c = prop_codec_get(rows[i].style);
		ck_assert_msg(c != NULL, "style %s has no codec", rows[i].name);
		ck_assert_int_eq(c->style, rows[i].style);
		ck_assert_ptr_nonnull(c->inject);
		if (rows[i].style == CONFIG_STYLE_BAGGAGE)
			ck_assert_ptr_null(c->extract);
		else
			ck_assert_ptr_nonnull(c->extract);
	}
	ck_assert_ptr_null(prop_codec_get(CONFIG_STYLE_NONE));
}
END_TEST

START_TEST(test_invalid_tracestate_not_forwarded)
{
	static const struct trace_header h[] = {
		HDR("traceparent",
		    "00-12345678901234567890123456789012-1234567890123456-01"),
		HDR("tracestate", "dd=s:2;o:rum,foo=1"),
		HDR("tracestate", "bar=2,foo.bar=3"),
	};
	struct propagation_conf pc;
	struct trace_extract *ex = malloc(sizeof *ex);
	struct span *sp = span_new();
	struct out_headers o = { .n = 0 };
	const char *ts;

	propagation_conf_defaults(&pc);
	pipeline(&pc, h, TS_NITEMS(h), ex, sp, &o);
	ck_assert(ex->continued);
	ck_assert_uint_eq(sp->trace_id.low, 0x7890123456789012ULL);
	ck_assert_ptr_nonnull(ts = out_get(&o, "tracestate"));
	ck_assert_msg(full_match("dd=s:1;p:[0-9a-f]{16}", ts), "%s", ts);
	ck_assert_ptr_null(sp->origin);
	out_clear(&o);
	span_free(sp);
	free(ex);
}
END_TEST

START_TEST(test_restart_links_primary)
{
	static const struct trace_header h[] = {
		HDR("x-datadog-trace-id", "5"), HDR("x-datadog-parent-id", "6"),
		HDR("x-datadog-sampling-priority", "2"),
		HDR("x-datadog-origin", "rum"), HDR("baggage", "a=b"),
	};
	struct propagation_conf pc;
	struct trace_extract *ex = malloc(sizeof *ex);
	struct span *sp = span_new();
	struct out_headers o = { .n = 0 };

	propagation_conf_defaults(&pc);
	pc.behavior = CONFIG_BEHAVIOR_RESTART;
	pipeline(&pc, h, TS_NITEMS(h), ex, sp, &o);
	ck_assert(ex->restart && !ex->continued);
	ck_assert_uint_eq(sp->parent_id, 0);
	ck_assert_ptr_null(sp->origin);
	ck_assert_int_eq(sp->priority, 1);
	ck_assert_str_eq(span_get_ptag(sp, "_dd.p.dm"), "-0");
	ck_assert_uint_eq(sp->n_links, 1);
	ck_assert_uint_eq(sp->links[0].trace_id.low, 5);
	ck_assert_uint_eq(sp->links[0].span_id, 6);
	ck_assert_uint_eq(sp->links[0].flags, 1);
	ck_assert_str_eq(sp->links[0].reason, "propagation_behavior_extract");
	ck_assert_str_eq(sp->links[0].context_headers, "datadog");
	ck_assert_str_eq(out_get(&o, "baggage"), "a=b");
	/* New 128-bit id: unix seconds in the top 32 bits (10). */
	ck_assert_uint_eq(sp->trace_id.high, 1700000000ULL << 32);
	out_clear(&o);
	span_free(sp);
	free(ex);
}
END_TEST

START_TEST(test_extract_first)
{
	static const struct trace_header h[] = {
		HDR("x-datadog-trace-id", "5"), HDR("x-datadog-parent-id", "6"),
		HDR("traceparent",
		    "00-000000000000000000000000000000aa-00000000000000bb-01"),
		HDR("tracestate", "foo=1"),
	};
	struct propagation_conf pc;
	struct trace_extract *ex = malloc(sizeof *ex);
	struct span *sp = span_new();
	struct out_headers o = { .n = 0 };

	propagation_conf_defaults(&pc);
	pc.extract_first = true;
	pipeline(&pc, h, TS_NITEMS(h), ex, sp, &o);
	ck_assert(ex->continued);
	ck_assert_uint_eq(sp->trace_id.low, 5);
	ck_assert_uint_eq(sp->n_links, 0);	/* W3C never looked at */
	ck_assert_ptr_null(strstr(out_get(&o, "tracestate"), "foo=1"));
	out_clear(&o);
	span_free(sp);
	free(ex);
}
END_TEST

START_TEST(test_same_trace_parent_differs_p)
{
	/* [st-tc] test_tracestate_w3c_p_extract_datadog_w3c: p: wins. */
	static const struct trace_header h[] = {
		HDR("x-datadog-trace-id", "4"), HDR("x-datadog-parent-id", "10"),
		HDR("traceparent",
		    "00-00000000000000000000000000000004-000000003ade68b1-01"),
		HDR("tracestate", "dd=s:2;p:000000000000000b,foo=1"),
	};
	struct propagation_conf pc;
	struct trace_extract *ex = malloc(sizeof *ex);
	struct span *sp = span_new();
	struct out_headers o = { .n = 0 };

	propagation_conf_defaults(&pc);
	pipeline(&pc, h, TS_NITEMS(h), ex, sp, &o);
	ck_assert_uint_eq(sp->parent_id, 987654321);
	ck_assert_str_eq(span_get_meta(sp, "_dd.parent_id"),
	    "000000000000000b");
	ck_assert_uint_eq(sp->n_links, 0);
	ck_assert_ptr_nonnull(strstr(out_get(&o, "tracestate"), ",foo=1"));
	out_clear(&o);
	span_free(sp);
	free(ex);
}
END_TEST

START_TEST(test_known_headers)
{
	static const char *yes[] = {
		"x-datadog-trace-id", "X-Datadog-Parent-Id", "x-datadog-tags",
		"x-datadog-origin", "x-datadog-sampling-priority", "traceparent",
		"TraceState", "b3", "B3", "x-b3-traceid", "X-B3-Flags",
		"x-b3-parentspanid", "baggage",
	};
	static const char *no[] = {
		"trace-parent", "b3x", "x-b3", "content-type", "baggages",
		"x-datadog", "",
	};
	size_t i;

	for (i = 0; i < TS_NITEMS(yes); i++)
		ck_assert_msg(propagation_is_known_header(yes[i],
		    strlen(yes[i])), "%s", yes[i]);
	for (i = 0; i < TS_NITEMS(no); i++)
		ck_assert_msg(!propagation_is_known_header(no[i],
		    strlen(no[i])), "%s", no[i]);
}
END_TEST

START_TEST(test_stats_counted)
{
	static const struct trace_header h[] = {
		HDR("x-datadog-trace-id", "abc"),
		HDR("traceparent", "00-zz-00"),
		HDR("baggage", "novalue"),
	};
	struct propagation_conf pc;
	struct prop_stats st;
	struct trace_extract *ex = malloc(sizeof *ex);

	memset(&st, 0, sizeof st);
	propagation_conf_defaults(&pc);
	ck_assert_int_eq(propagation_extract(&pc, h, TS_NITEMS(h), ex, &st),
	    PROP_ABSENT);
	ck_assert_uint_eq(st.invalid[CONFIG_STYLE_DATADOG], 1);
	ck_assert_uint_eq(st.invalid[CONFIG_STYLE_TRACECONTEXT], 1);
	ck_assert_uint_eq(st.invalid[CONFIG_STYLE_BAGGAGE], 1);
	ck_assert_uint_eq(st.new_traces, 1);
	free(ex);
}
END_TEST

START_TEST(test_no_leak_between_requests)
{
	/* [st-tc] test_tracestate_w3c_context_leak: reuse ex and span. */
	static const struct trace_header h1[] = {
		HDR("traceparent",
		    "00-12345678901234567890123456789012-1234567890123456-01"),
		HDR("tracestate", "dd=o:x;t.usr.id:1,foo=1"),
	};
	static const struct trace_header h2[] = {
		HDR("x-datadog-trace-id", "7"), HDR("x-datadog-parent-id", "8"),
	};
	struct propagation_conf pc;
	struct trace_extract *ex = malloc(sizeof *ex);
	struct span *sp = span_new();
	struct out_headers o = { .n = 0 };

	propagation_conf_defaults(&pc);
	pipeline(&pc, h1, TS_NITEMS(h1), ex, sp, &o);
	out_clear(&o);
	pipeline(&pc, h2, TS_NITEMS(h2), ex, sp, &o);
	ck_assert_uint_eq(sp->trace_id.high, 0);
	ck_assert_ptr_null(sp->origin);
	ck_assert_ptr_null(span_get_ptag(sp, "_dd.p.usr.id"));
	ck_assert_ptr_null(strstr(out_get(&o, "tracestate"), "foo"));
	ck_assert_str_eq(out_get(&o, "x-datadog-tags"), "_dd.p.dm=-0");
	out_clear(&o);
	span_free(sp);
	free(ex);
}
END_TEST

static Suite *
propagation_suite(void)
{
	json_error_t err;
	Suite *s;
	TCase *tc;

	vectors = json_load_file(ts_data_path("prop/propagation.json"), 0,
	    &err);
	if (vectors == NULL || !json_is_array(vectors)) {
		fprintf(stderr, "cannot load vectors: %s\n", err.text);
		exit(EXIT_FAILURE);
	}
	s = suite_create("propagation");
	tc = tcase_create("vectors");
	tcase_add_loop_test(tc, test_vector, 0, (int)json_array_size(vectors));
	suite_add_tcase(s, tc);
	tc = tcase_create("pipeline");
	tcase_add_test(tc, test_ignore_drops_everything);
	tcase_add_test(tc, test_invalid_tracestate_not_forwarded);
	tcase_add_test(tc, test_every_style_has_a_codec);
	tcase_add_test(tc, test_restart_links_primary);
	tcase_add_test(tc, test_extract_first);
	tcase_add_test(tc, test_same_trace_parent_differs_p);
	tcase_add_test(tc, test_known_headers);
	tcase_add_test(tc, test_stats_counted);
	tcase_add_test(tc, test_no_leak_between_requests);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(propagation_suite)
