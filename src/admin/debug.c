/*
 * debug.c -- GET /debug/propagation (admin.debug): the propagation
 * pipeline run on the headers of the debug request, reported as JSON.
 *
 * The answer has four parts: "extracted" (the reconciled context the
 * gateway would continue, the styles that contributed, every diagnostic
 * and, style by style, what each header set alone carries), "gateway_span"
 * (the span the gateway would start: ids, sampling, tags), "inject" (the
 * exact header lines that would go upstream, in order) and "config" (the
 * propagation settings used, with the route's behavior override).
 *
 * The same calls as the request pipeline (pipeline/proxy.c) are made, in the
 * same order (PROPAGATION.md 7 and 8), but with a local id generator
 * seeded from getrandom(2) and a local sampler built from the tracing
 * block: the debug request is not counted, not sampled by the worker's
 * rate limiter and not exported.  Ids are written as hex and as decimal
 * strings (JSON numbers lose precision above 2^53).
 */
#include <sys/queue.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>

#include "debug.h"
#include "ids.h"
#include "propagation.h"
#include "sampler.h"
#include "span.h"
#include "util.h"

#define DEBUG_MAX_HEADERS 256	/* header lines read from the request */

static const char *const debug_behavior_names[] = {
	"continue", "restart", "ignore"
};

/* Per-style outcome of extracting that style alone. */
struct debug_style {
	enum config_style	 style;
	const char		*result;	/* ok invalid absent ... */
	bool			 ok;
	struct trace_id		 trace_id;
};

/* Behavior name as in the YAML. */
static const char *
debug_behavior_name(enum config_behavior b)
{
	if ((size_t)b >= TS_NITEMS(debug_behavior_names))
		return "unknown";
	return debug_behavior_names[b];
}

/* A JSON string, or null for NULL. */
static json_t *
debug_str(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* A 64-bit id as {"hex": 16 digits, "dec": decimal string}. */
static json_t *
debug_id64(uint64_t id)
{
	char hex[17], dec[21];

	ids_format_hex64(id, hex);
	(void)ids_format_dec64(id, dec);
	return json_pack("{s:s, s:s}", "hex", hex, "dec", dec);
}

/* A trace id as {"hex": 32 digits, "low": decimal of the low half}. */
static json_t *
debug_trace_id(struct trace_id tid)
{
	char hex[33], dec[21];

	ids_format_hex128(tid, hex);
	(void)ids_format_dec64(tid.low, dec);
	return json_pack("{s:s, s:s}", "hex", hex, "low", dec);
}

/* A string-pair array as a JSON object (order kept). */
static json_t *
debug_kv(const struct trace_kv *kv, size_t n)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < n; i++)
		json_object_set_new(o, kv[i].key, json_string(kv[i].value));
	return o;
}

/* Span links as a JSON array. */
static json_t *
debug_links(const struct trace_link *l, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "trace_id", debug_trace_id(l[i].trace_id));
		json_object_set_new(o, "span_id", debug_id64(l[i].span_id));
		json_object_set_new(o, "tracestate", debug_str(l[i].tracestate));
		json_object_set_new(o, "flags", l[i].has_flags ?
		    json_integer(l[i].flags) : json_null());
		json_object_set_new(o, "reason", debug_str(l[i].reason));
		json_object_set_new(o, "context_headers",
		    debug_str(l[i].context_headers));
		json_array_append_new(a, o);
	}
	return a;
}

/* A style list as a JSON array of names. */
static json_t *
debug_styles(const enum config_style *s, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != CONFIG_STYLE_NONE)
			json_array_append_new(a,
			    json_string(propagation_style_name(s[i])));
	return a;
}

/* Append a printf-formatted note to the notes array. */
static void TS_PRINTFLIKE(2, 3)
debug_note(json_t *notes, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	json_array_append_new(notes, json_string(buf));
}

/*
 * Extract each configured style alone (behavior continue) into tmp and
 * describe it; fills ds[] (one per extract style) for the reconciliation
 * report and adds notes about unusable headers.
 */
static json_t *
debug_by_style(const struct propagation_conf *pc,
    const struct trace_header *h, size_t n, struct trace_extract *tmp,
    struct debug_style *ds, json_t *notes)
{
	struct propagation_conf one = *pc;
	struct prop_stats st;
	json_t *a = json_array(), *o;
	enum config_style s;
	size_t i;

	for (i = 0; i < pc->n_extract; i++) {
		s = pc->extract[i];
		ds[i].style = s;
		ds[i].ok = false;
		ds[i].result = "absent";
		if (s == CONFIG_STYLE_NONE)
			continue;
		one.extract[0] = s;
		one.n_extract = 1;
		one.extract_first = false;
		one.behavior = CONFIG_BEHAVIOR_CONTINUE;
		memset(&st, 0, sizeof st);
		(void)propagation_extract(&one, h, n, tmp, &st);
		o = json_object();
		json_object_set_new(o, "style",
		    json_string(propagation_style_name(s)));
		if (s == CONFIG_STYLE_BAGGAGE) {
			if (st.invalid[s] > 0)
				ds[i].result = "invalid";
			else if (tmp->n_baggage > 0)
				ds[i].result = "ok";
			json_object_set_new(o, "result",
			    json_string(ds[i].result));
			json_object_set_new(o, "items",
			    json_integer((json_int_t)tmp->n_baggage));
			if (st.invalid[s] > 0)
				debug_note(notes, "baggage: header present but "
				    "malformed or over the limits; all of it "
				    "is dropped");
			json_array_append_new(a, o);
			continue;
		}
		if (tmp->continued) {
			ds[i].result = "ok";
			ds[i].ok = true;
			ds[i].trace_id = tmp->ctx.trace_id;
		} else if (st.invalid[s] > 0)
			ds[i].result = "invalid";
		else if (tmp->has_decision)
			ds[i].result = "decision_only";
		json_object_set_new(o, "result", json_string(ds[i].result));
		if (ds[i].ok) {
			json_object_set_new(o, "trace_id",
			    debug_trace_id(tmp->ctx.trace_id));
			json_object_set_new(o, "parent_id",
			    debug_id64(tmp->ctx.parent_id));
			json_object_set_new(o, "sampling_priority",
			    tmp->ctx.has_priority ?
			    json_integer(tmp->ctx.priority) : json_null());
			json_object_set_new(o, "origin",
			    debug_str(tmp->ctx.origin));
		} else if (tmp->has_decision)
			json_object_set_new(o, "sampling_priority",
			    json_integer(tmp->decision));
		json_object_set_new(o, "propagation_error",
		    debug_str(tmp->propagation_error != NULL ?
		    tmp->propagation_error : tmp->ctx.propagation_error));
		json_object_set_new(o, "w3c_extraction_error",
		    debug_str(tmp->w3c_error));
		if (!ds[i].ok && st.invalid[s] > 0)
			debug_note(notes, "%s: headers present but unusable%s%s",
			    propagation_style_name(s),
			    tmp->w3c_error != NULL ? ": " : "",
			    tmp->w3c_error != NULL ? tmp->w3c_error : "");
		json_array_append_new(a, o);
	}
	return a;
}

/* The "extracted" object. */
static json_t *
debug_extracted(const struct propagation_conf *pc,
    const struct trace_extract *ex, const struct debug_style *ds,
    json_t *by_style, json_t *notes)
{
	const struct trace_context *c = &ex->ctx;
	json_t *o = json_object(), *d = json_object(), *used = json_array();
	bool found = ex->continued || ex->restart;
	size_t i;

	json_object_set_new(o, "continued", json_boolean(ex->continued));
	json_object_set_new(o, "restart", json_boolean(ex->restart));
	json_object_set_new(o, "style", found ? json_string(
	    propagation_style_name((enum config_style)c->style)) : json_null());
	if (found) {
		json_array_append_new(used, json_string(
		    propagation_style_name((enum config_style)c->style)));
		/* A matching traceparent lends its tracestate (7.2.4). */
		for (i = 0; i < pc->n_extract && !pc->extract_first; i++) {
			if (ds[i].style != CONFIG_STYLE_TRACECONTEXT ||
			    !ds[i].ok || c->style == CONFIG_STYLE_TRACECONTEXT)
				continue;
			if (ds[i].trace_id.high == c->trace_id.high &&
			    ds[i].trace_id.low == c->trace_id.low)
				json_array_append_new(used,
				    json_string("tracecontext"));
		}
	}
	if (ex->n_baggage > 0)
		json_array_append_new(used, json_string("baggage"));
	json_object_set_new(o, "styles", used);
	if (found) {
		json_object_set_new(o, "trace_id", debug_trace_id(c->trace_id));
		json_object_set_new(o, "parent_id", debug_id64(c->parent_id));
		json_object_set_new(o, "sampling_priority", c->has_priority ?
		    json_integer(c->priority) : json_null());
		json_object_set_new(o, "origin", debug_str(c->origin));
		json_object_set_new(o, "propagated_tags",
		    debug_kv(c->tags, c->n_tags));
		json_object_set_new(o, "tracestate_others",
		    debug_str(c->tracestate_others));
		json_object_set_new(o, "tracestate_dd_unknown",
		    debug_str(c->dd_unknown));
	} else {
		json_object_set_new(o, "trace_id", json_null());
		json_object_set_new(o, "parent_id", json_null());
		json_object_set_new(o, "sampling_priority", ex->has_decision ?
		    json_integer(ex->decision) : json_null());
		json_object_set_new(o, "origin", json_null());
		json_object_set_new(o, "propagated_tags", json_object());
		json_object_set_new(o, "tracestate_others", json_null());
		json_object_set_new(o, "tracestate_dd_unknown", json_null());
	}
	json_object_set_new(o, "baggage", debug_kv(ex->baggage, ex->n_baggage));
	json_object_set_new(o, "links", debug_links(ex->links, ex->n_links));

	json_object_set_new(d, "_dd.propagation_error",
	    debug_str(ex->propagation_error));
	json_object_set_new(d, "_dd.w3c_extraction_error",
	    debug_str(ex->w3c_error));
	json_object_set_new(d, "_dd.parent_id", debug_str(ex->parent_id_tag));
	{
		json_t *inv = json_array();

		for (i = 0; i < pc->n_extract; i++)
			if (strcmp(ds[i].result, "invalid") == 0)
				json_array_append_new(inv, json_string(
				    propagation_style_name(ds[i].style)));
		json_object_set_new(d, "invalid_styles", inv);
	}

	/* Plain-language notes on why the trace continues or splits. */
	if (pc->behavior == CONFIG_BEHAVIOR_IGNORE)
		debug_note(notes, "behavior ignore: no header is read, every "
		    "request starts a new trace");
	else if (ex->restart)
		debug_note(notes, "behavior restart: a new trace is started "
		    "and linked to the %s context",
		    propagation_style_name((enum config_style)c->style));
	else if (!found && ex->has_decision)
		debug_note(notes, "sampling decision without ids: a new trace "
		    "keeps priority %d", ex->decision);
	else if (!found)
		debug_note(notes, "no usable trace context: the gateway starts "
		    "a new trace, the backend will not join the browser's");
	for (i = 0; i < ex->n_links && !ex->restart; i++) {
		char hex[33];

		ids_format_hex128(ex->links[i].trace_id, hex);
		debug_note(notes, "%s carries another trace id (%s): it is not "
		    "continued, only linked (%s)",
		    ex->links[i].context_headers != NULL ?
		    ex->links[i].context_headers : "a style", hex,
		    ex->links[i].reason != NULL ? ex->links[i].reason : "link");
	}
	if (ex->parent_id_tag != NULL && c->style != CONFIG_STYLE_TRACECONTEXT)
		debug_note(notes, "traceparent names another parent than the "
		    "Datadog headers: a W3C-only service sat in between; its "
		    "parent wins and _dd.parent_id=%s", ex->parent_id_tag);
	if (ex->propagation_error != NULL)
		debug_note(notes, "_dd.propagation_error=%s",
		    ex->propagation_error);
	json_object_set_new(d, "notes", notes);
	json_object_set_new(o, "diagnostics", d);
	json_object_set_new(o, "by_style", by_style);
	return o;
}

/* The "gateway_span" object, after injection. */
static json_t *
debug_gateway_span(const struct span *sp)
{
	json_t *o = json_object(), *m;
	size_t i;

	json_object_set_new(o, "trace_id", debug_trace_id(sp->trace_id));
	json_object_set_new(o, "span_id", debug_id64(sp->span_id));
	json_object_set_new(o, "parent_id", debug_id64(sp->parent_id));
	json_object_set_new(o, "sampling_priority", sp->has_priority ?
	    json_integer(sp->priority) : json_null());
	json_object_set_new(o, "sampling_mechanism", json_integer(
	    sp->mechanism));
	json_object_set_new(o, "origin", debug_str(sp->origin));
	json_object_set_new(o, "propagated_tags", debug_kv(sp->ptags,
	    sp->n_ptags));
	json_object_set_new(o, "meta", debug_kv(sp->meta, sp->n_meta));
	m = json_object();
	for (i = 0; i < sp->n_metrics; i++)
		json_object_set_new(m, sp->metrics[i].key,
		    json_real(sp->metrics[i].value));
	json_object_set_new(o, "metrics", m);
	json_object_set_new(o, "links", debug_links(sp->links, sp->n_links));
	return o;
}

/* trace_emit_fn: append [name, value] to a JSON array. */
static int
debug_emit(void *arg, const char *name, const char *value, size_t len)
{
	json_t *pair;

	pair = json_pack("[s, s%]", name, value, len);
	if (pair == NULL)
		return -1;
	return json_array_append_new(arg, pair);
}

/* The "config" object. */
static json_t *
debug_config(const struct propagation_conf *pc, const char *route)
{
	return json_pack("{s:o, s:o, s:o, s:b, s:s, s:I, s:b}",
	    "route", debug_str(route),
	    "extract", debug_styles(pc->extract, pc->n_extract),
	    "inject", debug_styles(pc->inject, pc->n_inject),
	    "extract_first", pc->extract_first,
	    "behavior", debug_behavior_name(pc->behavior),
	    "tags_max_length", (json_int_t)pc->tags_max_length,
	    "trace_id_128bit", pc->trace_id_128bit);
}

/* The JSON answer for these headers with the global propagation config. */
int
debug_propagation_json(const struct config *cfg,
    const struct trace_header *h, size_t n, char **json_out)
{
	const char *errstr;

	return debug_propagation_json_route(cfg, NULL, h, n, json_out,
	    &errstr);
}

/* Same for a named route (its behavior override applies). */
int
debug_propagation_json_route(const struct config *cfg, const char *route,
    const struct trace_header *h, size_t n, char **json_out,
    const char **errstr)
{
	struct debug_style ds[CONFIG_MAX_STYLES];
	struct propagation_conf pc;
	struct sampler_conf sc;
	struct trace_extract *ex = NULL, *tmp = NULL;
	struct sampler *smp = NULL;
	struct span *sp = NULL;
	struct ids_rng rng;
	json_t *root = NULL, *inject, *notes, *by_style;
	const struct config_route *r = NULL;
	size_t i;
	int rc = -1;

	*json_out = NULL;
	if (route != NULL) {
		for (i = 0; i < cfg->n_routes && r == NULL; i++)
			if (strcmp(cfg->routes[i].name, route) == 0)
				r = &cfg->routes[i];
		if (r == NULL) {
			*errstr = "unknown route";
			return -1;
		}
	}
	propagation_conf_init(&pc, cfg);
	if (r != NULL && r->has_behavior)
		pc.behavior = r->behavior;
	if (ids_rng_init(&rng, errstr) != 0)
		return -1;
	memset(&sc, 0, sizeof sc);
	sc.service = cfg->tracing.service;
	sc.env = cfg->tracing.env;
	sc.has_sample_rate = cfg->tracing.has_sample_rate;
	sc.sample_rate = cfg->tracing.sample_rate;
	sc.rate_limit = cfg->tracing.rate_limit;
	sc.rules_json = cfg->tracing.sampling_rules;
	*errstr = "out of memory";
	ex = malloc(sizeof *ex);
	tmp = malloc(sizeof *tmp);
	sp = span_new();
	smp = sampler_new(&sc);
	if (ex == NULL || tmp == NULL || sp == NULL || smp == NULL)
		goto out;

	/* The pipeline, exactly as pipeline/proxy.c runs it. */
	(void)propagation_extract(&pc, h, n, ex, NULL);
	propagation_start_span(&pc, ex, smp, &rng, util_now_us() * 1000,
	    util_mono_ns(), sp);
	/* With sampling rules the decision waits for service and name
	 * (proxy_trace.c has the resource too; here rules on it never
	 * match). */
	(void)span_set_service(sp, cfg->tracing.service);
	(void)span_set_name(sp, cfg->tracing.span_name);
	sampler_decide(smp, sp, util_mono_ns());
	if ((inject = json_array()) == NULL)
		goto out;
	if (propagation_inject(&pc, sp, debug_emit, inject) != 0) {
		json_decref(inject);
		goto out;
	}

	notes = json_array();
	by_style = debug_by_style(&pc, h, n, tmp, ds, notes);
	root = json_object();
	json_object_set_new(root, "extracted",
	    debug_extracted(&pc, ex, ds, by_style, notes));
	json_object_set_new(root, "gateway_span", debug_gateway_span(sp));
	json_object_set_new(root, "inject", inject);
	json_object_set_new(root, "config", debug_config(&pc,
	    r != NULL ? r->name : NULL));
	*json_out = json_dumps(root, JSON_INDENT(2));
	if (*json_out != NULL) {
		*errstr = NULL;
		rc = 0;
	}
out:
	json_decref(root);
	sampler_free(smp);
	span_free(sp);
	free(tmp);
	free(ex);
	return rc;
}

/* Send a small JSON error body. */
static void
debug_send_error(struct evhttp_request *req, int code, const char *reason,
    const char *error)
{
	struct evbuffer *body = evbuffer_new();
	json_t *o;
	char *text;

	if (body == NULL) {
		evhttp_send_error(req, 503, NULL);
		return;
	}
	o = json_pack("{s:s}", "error", error);
	text = o != NULL ? json_dumps(o, 0) : NULL;
	if (text != NULL)
		evbuffer_add_printf(body, "%s\n", text);
	free(text);
	json_decref(o);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply(req, code, reason, body);
	evbuffer_free(body);
}

/* Answer GET or POST /debug/propagation[?route=NAME]. */
void
debug_propagation_reply(struct evhttp_request *req, const struct config *cfg)
{
	struct trace_header th[DEBUG_MAX_HEADERS];
	struct evkeyvalq params;
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *query, *route = NULL, *errstr = NULL;
	struct evkeyval *kv;
	struct evbuffer *body;
	char *json = NULL;
	size_t n = 0;
	int rc;

	if (cfg == NULL || !cfg->admin_debug) {
		debug_send_error(req, 404, "Not Found", "not_found");
		return;
	}
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_POST:
		break;
	default:
		evhttp_add_header(out, "Allow", "GET, POST");
		debug_send_error(req, 405, "Method Not Allowed",
		    "method_not_allowed");
		return;
	}
	TAILQ_INIT(&params);
	query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	if (query != NULL && evhttp_parse_query_str(query, &params) != 0) {
		debug_send_error(req, 400, "Bad Request", "bad_query");
		return;
	}
	route = evhttp_find_header(&params, "route");
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next) {
		if (n == TS_NITEMS(th))
			break;
		th[n].name = kv->key;
		th[n].name_len = strlen(kv->key);
		th[n].value = kv->value;
		th[n].value_len = strlen(kv->value);
		n++;
	}
	rc = debug_propagation_json_route(cfg, route, th, n, &json, &errstr);
	evhttp_clear_headers(&params);
	if (rc != 0) {
		if (errstr != NULL && strcmp(errstr, "unknown route") == 0)
			debug_send_error(req, 404, "Not Found",
			    "unknown_route");
		else
			debug_send_error(req, 503, "Service Unavailable",
			    errstr != NULL ? errstr : "error");
		return;
	}
	if ((body = evbuffer_new()) == NULL) {
		free(json);
		evhttp_send_error(req, 503, NULL);
		return;
	}
	evbuffer_add(body, json, strlen(json));
	evbuffer_add(body, "\n", 1);
	free(json);
	evhttp_add_header(out, "Content-Type", "application/json");
	evhttp_add_header(out, "Cache-Control", "no-store");
	evhttp_send_reply(req, 200, "OK", body);
	evbuffer_free(body);
}
