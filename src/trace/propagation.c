/*
 * propagation.c -- extraction across the configured styles, the gateway
 * span as a participant, and injection (PROPAGATION.md 7 and 8).
 *
 * Extraction runs every trace-context style in configured order (or stops
 * at the first context with extract_first); the first valid one is the
 * primary.  A tracecontext context with the same 128-bit trace id lends
 * the primary its tracestate and, when the parents differ, its parent id
 * (_dd.parent_id records the Datadog-side parent, [cpp-ext merge]);
 * every valid context with a different trace id becomes a span link
 * "terminated_context" [js-tm].  Behaviour restart starts a new trace
 * linked to the primary; ignore skips everything, baggage included
 * [st-beh].  The gateway span is the child of the result; every parent id
 * injected downstream is the span's own id [cpp-seg].
 */
#include <string.h>

#include "ids.h"
#include "prop_baggage.h"
#include "prop_codec.h"
#include "prop_w3c.h"
#include "propagation.h"
#include "styles.h"
#include "util.h"

#define PROP_ZERO_PARENT "0000000000000000"

/* Defaults: datadog,tracecontext,baggage both ways, continue, 512. */
void
propagation_conf_defaults(struct propagation_conf *pc)
{
	static const char *const tag_keys[] = {
		"user.id", "session.id", "account.id"
	};
	static const enum config_style dflt[] = {
		CONFIG_STYLE_DATADOG, CONFIG_STYLE_TRACECONTEXT,
		CONFIG_STYLE_BAGGAGE
	};

	memset(pc, 0, sizeof *pc);
	memcpy(pc->extract, dflt, sizeof dflt);
	memcpy(pc->inject, dflt, sizeof dflt);
	pc->n_extract = pc->n_inject = TS_NITEMS(dflt);
	pc->behavior = CONFIG_BEHAVIOR_CONTINUE;
	pc->tags_max_length = 512;
	pc->baggage_max_items = PROP_BAGGAGE_MAX_ITEMS;
	pc->baggage_max_bytes = PROP_BAGGAGE_MAX_BYTES;
	pc->baggage_tag_keys = tag_keys;
	pc->n_baggage_tag_keys = TS_NITEMS(tag_keys);
	pc->trace_id_128bit = true;
}

/* From a loaded configuration (borrows its strings). */
void
propagation_conf_init(struct propagation_conf *pc, const struct config *cf)
{
	const struct config_propagation *p = &cf->propagation;
	size_t n;

	propagation_conf_defaults(pc);
	n = TS_MIN(p->n_extract, (size_t)CONFIG_MAX_STYLES);
	memcpy(pc->extract, p->extract, n * sizeof p->extract[0]);
	pc->n_extract = n;
	n = TS_MIN(p->n_inject, (size_t)CONFIG_MAX_STYLES);
	memcpy(pc->inject, p->inject, n * sizeof p->inject[0]);
	pc->n_inject = n;
	pc->extract_first = p->extract_first;
	pc->behavior = p->behavior;
	pc->tags_max_length = (size_t)p->tags_max_length;
	pc->baggage_tag_keys =
	    (const char *const *)cf->tracing.baggage_tag_keys.v;
	pc->n_baggage_tag_keys = cf->tracing.baggage_tag_keys.n;
	pc->trace_id_128bit = cf->tracing.trace_id_128bit;
}

/* Style name as used in span links ("datadog", "tracecontext", ...). */
const char *
propagation_style_name(enum config_style s)
{
	const struct style_desc *d = styles_get(s);

	return d != NULL ? d->name : "none";
}

/* True when the list holds style s. */
static bool
prop_has_style(const enum config_style *v, size_t n, enum config_style s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] == s)
			return true;
	return false;
}

static bool
prop_same_trace(const struct trace_id *a, const struct trace_id *b)
{
	return a->high == b->high && a->low == b->low;
}

/* A link to a discarded or restarted context. */
static void
prop_add_link(struct trace_extract *ex, const struct trace_context *c,
    const char *reason)
{
	struct trace_link *l;

	if (ex->n_links == TRACE_MAX_LINKS)
		return;
	l = &ex->links[ex->n_links++];
	memset(l, 0, sizeof *l);
	l->trace_id = c->trace_id;
	l->span_id = c->parent_id;
	l->tracestate = c->tracestate_raw;
	l->has_flags = c->has_priority;
	l->flags = (c->has_priority && c->priority > 0) ? 1 : 0;
	l->reason = reason;
	l->context_headers = propagation_style_name(
	    (enum config_style)c->style);
}

/* Run one style's extractor. */
static enum prop_result
prop_extract_style(const struct propagation_conf *pc, enum config_style s,
    const struct trace_header *h, size_t n, struct trace_arena *a,
    struct trace_context *c)
{
	const struct prop_codec *codec = prop_codec_get(s);
	enum prop_result r;

	if (codec != NULL && codec->extract != NULL)
		r = codec->extract(pc, h, n, a, c);
	else {
		trace_context_clear(c);
		r = PROP_ABSENT;
	}
	c->style = (int)s;
	return r;
}

/* Fold a same-trace tracecontext context into the primary (7.2 step 4). */
static void
prop_reconcile_w3c(struct trace_extract *ex, const struct trace_context *tc)
{
	struct trace_context *c = &ex->ctx;
	char hex[17];

	c->tracestate_others = tc->tracestate_others;
	c->dd_unknown = tc->dd_unknown;
	c->tracestate_raw = tc->tracestate_raw;
	c->w3c_random = tc->w3c_random;
	if (tc->parent_id == c->parent_id)
		return;
	/* A W3C-only hop sat in between: its parent wins [cpp-ext merge]. */
	if (tc->last_dd_parent_id != NULL &&
	    strcmp(tc->last_dd_parent_id, PROP_ZERO_PARENT) != 0)
		ex->parent_id_tag = tc->last_dd_parent_id;
	else {
		ids_format_hex64(c->parent_id, hex);
		ex->parent_id_tag = trace_arena_strdup(&ex->arena, hex);
	}
	c->parent_id = tc->parent_id;
}

/* Extract from all request header lines (PROPAGATION.md 7.2). */
enum prop_result
propagation_extract(const struct propagation_conf *pc,
    const struct trace_header *h, size_t n, struct trace_extract *ex,
    struct prop_stats *st)
{
	struct trace_context cand[CONFIG_MAX_STYLES];
	bool valid[CONFIG_MAX_STYLES];
	enum prop_result r;
	enum config_style s;
	int primary = -1, tc = -1;
	size_t i;

	memset(ex, 0, offsetof(struct trace_extract, arena_buf));
	trace_arena_init(&ex->arena, ex->arena_buf, sizeof ex->arena_buf);
	trace_context_clear(&ex->ctx);
	if (pc->behavior == CONFIG_BEHAVIOR_IGNORE) {
		if (st != NULL)
			util_counter_add(&st->new_traces, 1);
		return PROP_ABSENT;
	}
	/* Baggage is independent of the trace context (7.2 step 8). */
	if (prop_has_style(pc->extract, pc->n_extract, CONFIG_STYLE_BAGGAGE)) {
		r = prop_baggage_extract(h, n, pc->baggage_max_items,
		    pc->baggage_max_bytes, &ex->arena, ex->baggage,
		    TRACE_MAX_BAGGAGE, &ex->n_baggage);
		if (st != NULL && r == PROP_INVALID)
			util_counter_add(&st->invalid[CONFIG_STYLE_BAGGAGE], 1);
	}
	for (i = 0; i < pc->n_extract && i < CONFIG_MAX_STYLES; i++) {
		valid[i] = false;
		s = pc->extract[i];
		if (s == CONFIG_STYLE_BAGGAGE || s == CONFIG_STYLE_NONE)
			continue;
		if (pc->extract_first && primary >= 0)
			continue;
		r = prop_extract_style(pc, s, h, n, &ex->arena, &cand[i]);
		if (cand[i].w3c_error != NULL && ex->w3c_error == NULL)
			ex->w3c_error = cand[i].w3c_error;
		switch (r) {
		case PROP_OK:
			valid[i] = true;
			if (st != NULL)
				util_counter_add(&st->extracted[s], 1);
			if (primary < 0)
				primary = (int)i;
			if (s == CONFIG_STYLE_TRACECONTEXT && tc < 0)
				tc = (int)i;
			break;
		case PROP_INVALID:
			if (st != NULL)
				util_counter_add(&st->invalid[s], 1);
			break;
		case PROP_DECISION_ONLY:
			if (!ex->has_decision) {
				ex->has_decision = true;
				ex->decision = cand[i].priority;
			}
			break;
		case PROP_ABSENT:
			break;
		}
	}
	if (primary < 0) {
		/* No context: new trace; a B3 decision still counts (7.2.7). */
		if (st != NULL)
			util_counter_add(&st->new_traces, 1);
		return PROP_ABSENT;
	}
	ex->ctx = cand[primary];
	ex->propagation_error = ex->ctx.propagation_error;
	ex->has_decision = false;
	if (tc >= 0 && tc != primary &&
	    prop_same_trace(&cand[tc].trace_id, &ex->ctx.trace_id))
		prop_reconcile_w3c(ex, &cand[tc]);
	else if (tc == primary && ex->ctx.last_dd_parent_id != NULL &&
	    strcmp(ex->ctx.last_dd_parent_id, PROP_ZERO_PARENT) != 0)
		ex->parent_id_tag = ex->ctx.last_dd_parent_id;	/* 7.3 */
	if (tc != primary) {
		/* Incoming tracestate only follows a matching traceparent. */
		if (tc < 0 || !prop_same_trace(&cand[tc].trace_id,
		    &ex->ctx.trace_id)) {
			ex->ctx.tracestate_others = NULL;
			ex->ctx.dd_unknown = NULL;
			ex->ctx.w3c_random = false;
		}
	}
	/* Other valid contexts of a different trace become links (7.2.5). */
	for (i = 0; i < pc->n_extract && i < CONFIG_MAX_STYLES; i++) {
		if (!valid[i] || (int)i == primary ||
		    prop_same_trace(&cand[i].trace_id, &ex->ctx.trace_id))
			continue;
		prop_add_link(ex, &cand[i], "terminated_context");
		if (st != NULL)
			util_counter_add(&st->links, 1);
	}
	if (pc->behavior == CONFIG_BEHAVIOR_RESTART) {
		/* New trace linked to the primary (7.4). */
		ex->n_links = 0;
		prop_add_link(ex, &ex->ctx, "propagation_behavior_extract");
		ex->parent_id_tag = NULL;
		ex->restart = true;
		if (st != NULL)
			util_counter_add(&st->restarted, 1);
		return PROP_ABSENT;
	}
	ex->continued = true;
	if (st != NULL)
		util_counter_add(&st->continued, 1);
	return PROP_OK;
}

/* True if key is listed in the baggage tag keys ("*" = all). */
static bool
prop_baggage_tagged(const struct propagation_conf *pc, const char *key)
{
	size_t i;

	for (i = 0; i < pc->n_baggage_tag_keys; i++)
		if (strcmp(pc->baggage_tag_keys[i], "*") == 0 ||
		    strcmp(pc->baggage_tag_keys[i], key) == 0)
			return true;
	return false;
}

/* Fill the gateway span from the extraction (PROPAGATION.md 1, 8, 10). */
void
propagation_start_span(const struct propagation_conf *pc,
    const struct trace_extract *ex, struct sampler *smp, struct ids_rng *rng,
    uint64_t now_ns, uint64_t mono_ns, struct span *sp)
{
	const struct trace_context *c = &ex->ctx;
	char key[300];
	size_t i;

	sp->start_ns = now_ns;
	sp->span_id = ids_span_id(rng);
	if (ex->continued) {
		sp->trace_id = c->trace_id;
		sp->parent_id = c->parent_id;
		if (c->has_priority) {
			sp->has_priority = true;
			sp->priority = c->priority;
			sp->mechanism = SPAN_MECH_EXTRACTED;
		}
		sp->origin = span_strdup(sp, c->origin);
		for (i = 0; i < c->n_tags; i++)
			(void)span_set_ptag(sp, c->tags[i].key,
			    c->tags[i].value);
		sp->tracestate_others = span_strdup(sp, c->tracestate_others);
		sp->dd_unknown = span_strdup(sp, c->dd_unknown);
		sp->w3c_random = c->w3c_random;
	} else {
		sp->trace_id = ids_trace_id(rng, pc->trace_id_128bit,
		    now_ns / 1000000000ULL);
		sp->parent_id = 0;
		if (ex->has_decision) {
			sp->has_priority = true;
			sp->priority = ex->decision;
			sp->mechanism = SPAN_MECH_EXTRACTED;
		}
	}
	for (i = 0; i < ex->n_links; i++)
		(void)span_add_link(sp, &ex->links[i]);
	for (i = 0; i < ex->n_baggage; i++) {
		(void)span_add_baggage(sp, ex->baggage[i].key,
		    ex->baggage[i].value);
		if (prop_baggage_tagged(pc, ex->baggage[i].key) &&
		    strlen(ex->baggage[i].key) + 9 < sizeof key) {
			memcpy(key, "baggage.", 8);
			strcpy(key + 8, ex->baggage[i].key);
			(void)span_set_meta(sp, key, ex->baggage[i].value);
		}
	}
	if (ex->parent_id_tag != NULL)
		(void)span_set_meta(sp, "_dd.parent_id", ex->parent_id_tag);
	if (ex->propagation_error != NULL)
		(void)span_set_meta(sp, "_dd.propagation_error",
		    ex->propagation_error);
	if (ex->w3c_error != NULL)
		(void)span_set_meta(sp, "_dd.w3c_extraction_error",
		    ex->w3c_error);
	if (sampler_has_rules(smp))
		;	/* the caller decides once the span is named */
	else if (smp != NULL)
		sampler_decide(smp, sp, mono_ns);
	else if (!sp->has_priority) {
		sp->has_priority = true;
		sp->priority = SPAN_PRIORITY_AUTO_KEEP;
		sp->mechanism = SPAN_MECH_DEFAULT;
		(void)span_set_ptag(sp, "_dd.p.dm", "-0");
	}
}

/* Write the span's context in every inject style, in order (8). */
int
propagation_inject(const struct propagation_conf *pc, struct span *sp,
    trace_emit_fn emit, void *arg)
{
	const struct prop_codec *codec;
	size_t i;
	int rc = 0;

	for (i = 0; i < pc->n_inject && rc == 0; i++) {
		if ((codec = prop_codec_get(pc->inject[i])) != NULL)
			rc = codec->inject(pc, sp, emit, arg);
	}
	return rc;
}

/* True for every header some style reads or writes: the style table. */
bool
propagation_is_known_header(const char *name, size_t len)
{
	return styles_is_header(name, len);
}
