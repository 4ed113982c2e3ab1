/*
 * export_otlp.c -- the OTLP/HTTP backend: an ExportTraceServiceRequest
 * in OTLP/JSON (PROPAGATION.md 12, the dd-trace-js mapping): hex ids,
 * kind from span.kind, attributes from meta and metrics, status from the
 * error flag, links, and the resource attributes service.name,
 * deployment.environment, service.version.  Unsampled traces (priority
 * <= 0) are not sent: there is no agent-side sampling behind a collector.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "export_int.h"
#include "ts_config.h"
#include "util.h"

static json_t *
hexid(uint64_t hi, uint64_t lo, bool wide)
{
	char b[33];

	if (wide)
		snprintf(b, sizeof b, "%016" PRIx64 "%016" PRIx64, hi, lo);
	else
		snprintf(b, sizeof b, "%016" PRIx64, lo);
	return json_string(b);
}

/* {"key": k, "value": {"stringValue": v}} */
static json_t *
attr_str(const char *k, const char *v, size_t vlen)
{
	return json_pack("{s:s, s:{s:s%}}", "key", k, "value", "stringValue",
	    v, vlen);
}

static void
attrs_add_str(json_t *a, const char *k, const char *v)
{
	json_array_append_new(a, attr_str(k, v, strlen(v)));
}

/* A number: intValue (as a string, OTLP/JSON int64) when integral. */
static json_t *
attr_num(const char *k, double v)
{
	char b[32];

	if (isfinite(v) && v == floor(v) && fabs(v) < 9e15) {
		snprintf(b, sizeof b, "%lld", (long long)v);
		return json_pack("{s:s, s:{s:s}}", "key", k, "value",
		    "intValue", b);
	}
	return json_pack("{s:s, s:{s:f}}", "key", k, "value", "doubleValue",
	    v);
}

static double
obj_double(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return o->via.f64;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return (double)o->via.u64;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return (double)o->via.i64;
	default:
		return 0;
	}
}

/* SpanKind from meta span.kind [js-otlp]. */
static int
span_kind(const char *k)
{
	static const char *const kinds[] = {
		"", "internal", "server", "client", "producer", "consumer",
	};
	size_t i;

	for (i = 1; i < TS_NITEMS(kinds); i++)
		if (strcmp(k, kinds[i]) == 0)
			return (int)i;
	return 0;
}

/* Links of a record: traceId, spanId, traceState, attributes, flags. */
static json_t *
links_json(const msgpack_object *links)
{
	json_t *a = json_array();
	uint32_t i, j;
	char kb[256];

	for (i = 0; i < links->via.array.size; i++) {
		const msgpack_object *l = &links->via.array.ptr[i], *v;
		json_t *o = json_object(), *attrs = json_array();

		json_object_set_new(o, "traceId", hexid(export_obj_u64(
		    export_map_get(l, "trace_id_high")), export_obj_u64(
		    export_map_get(l, "trace_id")), true));
		json_object_set_new(o, "spanId", hexid(0, export_obj_u64(
		    export_map_get(l, "span_id")), false));
		if ((v = export_map_get(l, "tracestate")) != NULL &&
		    v->type == MSGPACK_OBJECT_STR)
			json_object_set_new(o, "traceState", json_stringn(
			    v->via.str.ptr, v->via.str.size));
		if ((v = export_map_get(l, "attributes")) != NULL &&
		    v->type == MSGPACK_OBJECT_MAP) {
			for (j = 0; j < v->via.map.size; j++) {
				const msgpack_object_kv *kv =
				    &v->via.map.ptr[j];

				if (kv->val.type != MSGPACK_OBJECT_STR)
					continue;
				json_array_append_new(attrs, attr_str(
				    export_obj_str(&kv->key, kb, sizeof kb),
				    kv->val.via.str.ptr, kv->val.via.str.size));
			}
		}
		json_object_set_new(o, "attributes", attrs);
		if ((v = export_map_get(l, "flags")) != NULL)
			json_object_set_new(o, "flags", json_integer(
			    (json_int_t)(export_obj_u64(v) & 0xff)));
		json_array_append_new(a, o);
	}
	return a;
}

/* One record as an OTLP span; NULL when it does not decode. */
static json_t *
span_json(const msgpack_object *sp)
{
	const msgpack_object *meta, *metrics, *v;
	json_t *o, *attrs, *status;
	char name[512], b[256], kb[256], ns[24], etype[256];
	char emsg[1024];
	uint64_t start, dur, parent;
	uint32_t i;

	meta = export_map_get(sp, "meta");
	metrics = export_map_get(sp, "metrics");
	o = json_object();
	json_object_set_new(o, "traceId", hexid(export_rec_tid_high(sp),
	    export_obj_u64(export_map_get(sp, "trace_id")), true));
	json_object_set_new(o, "spanId", hexid(0, export_obj_u64(
	    export_map_get(sp, "span_id")), false));
	if ((parent = export_obj_u64(export_map_get(sp, "parent_id"))) != 0)
		json_object_set_new(o, "parentSpanId", hexid(0, parent, false));
	/* dd-trace-js names the OTLP span after the resource. */
	json_object_set_new(o, "name", json_string(export_obj_str(
	    export_map_get(sp, "resource"), name, sizeof name)));
	json_object_set_new(o, "kind", json_integer(span_kind(export_obj_str(
	    export_map_get(meta, "span.kind"), b, sizeof b))));
	start = export_obj_u64(export_map_get(sp, "start"));
	dur = export_obj_u64(export_map_get(sp, "duration"));
	snprintf(ns, sizeof ns, "%" PRIu64, start);
	json_object_set_new(o, "startTimeUnixNano", json_string(ns));
	snprintf(ns, sizeof ns, "%" PRIu64, start + dur);
	json_object_set_new(o, "endTimeUnixNano", json_string(ns));

	attrs = json_array();
	attrs_add_str(attrs, "service.name", export_obj_str(export_map_get(sp,
	    "service"), b, sizeof b));
	attrs_add_str(attrs, "operation.name", export_obj_str(
	    export_map_get(sp, "name"), b, sizeof b));
	attrs_add_str(attrs, "resource.name", name);
	attrs_add_str(attrs, "span.type", export_obj_str(export_map_get(sp,
	    "type"), b, sizeof b));
	for (i = 0; meta != NULL && meta->type == MSGPACK_OBJECT_MAP &&
	    i < meta->via.map.size; i++) {
		const msgpack_object_kv *kv = &meta->via.map.ptr[i];

		export_obj_str(&kv->key, kb, sizeof kb);
		if (kv->val.type != MSGPACK_OBJECT_STR ||
		    strcmp(kb, "_dd.span_links") == 0 ||
		    strcmp(kb, "span.kind") == 0 ||
		    strcmp(kb, "_dd.p.tid") == 0)
			continue;
		json_array_append_new(attrs, attr_str(kb, kv->val.via.str.ptr,
		    kv->val.via.str.size));
	}
	for (i = 0; metrics != NULL && metrics->type == MSGPACK_OBJECT_MAP &&
	    i < metrics->via.map.size; i++) {
		const msgpack_object_kv *kv = &metrics->via.map.ptr[i];

		json_array_append_new(attrs, attr_num(export_obj_str(&kv->key,
		    kb, sizeof kb), obj_double(&kv->val)));
	}
	json_object_set_new(o, "attributes", attrs);

	status = json_object();
	if (export_obj_u64(export_map_get(sp, "error")) != 0) {
		export_obj_str(export_map_get(meta, "error.type"), etype,
		    sizeof etype);
		export_obj_str(export_map_get(meta, "error.message"), b,
		    sizeof b);
		snprintf(emsg, sizeof emsg, "%s%s%s", etype,
		    etype[0] != '\0' && b[0] != '\0' ? ": " : "", b);
		json_object_set_new(status, "code", json_integer(2));
		if (emsg[0] != '\0')
			json_object_set_new(status, "message",
			    json_string(emsg));
	} else
		json_object_set_new(status, "code", json_integer(0));
	json_object_set_new(o, "status", status);
	if ((v = export_map_get(sp, "span_links")) != NULL &&
	    v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size > 0)
		json_object_set_new(o, "links", links_json(v));
	return o;
}

/* The JSON body of the sampled records; counts sent and unsampled. */
char *
export_otlp_body(const struct export_batch *b, const struct export_proc *proc,
    size_t *n_sent, size_t *n_unsampled)
{
	json_t *root, *rattrs, *spans;
	msgpack_zone zone;
	char *out;
	size_t i;

	*n_sent = *n_unsampled = 0;
	spans = json_array();
	msgpack_zone_init(&zone, 4096);
	for (i = 0; i < b->n; i++) {
		msgpack_object sp;
		double prio;

		msgpack_zone_clear(&zone);
		if (export_rec_unpack(&b->recs[i], &zone, &sp) != 0)
			continue;
		if (export_rec_priority(&sp, &prio) && prio <= 0) {
			(*n_unsampled)++;
			continue;
		}
		json_array_append_new(spans, span_json(&sp));
		(*n_sent)++;
	}
	msgpack_zone_destroy(&zone);

	rattrs = json_array();
	attrs_add_str(rattrs, "service.name", proc->service);
	if (proc->env != NULL && proc->env[0] != '\0')
		attrs_add_str(rattrs, "deployment.environment", proc->env);
	if (proc->version != NULL && proc->version[0] != '\0')
		attrs_add_str(rattrs, "service.version", proc->version);
	attrs_add_str(rattrs, "telemetry.sdk.name", "tracestitch");
	attrs_add_str(rattrs, "telemetry.sdk.language", "c");
	attrs_add_str(rattrs, "telemetry.sdk.version", TS_VERSION);
	root = json_pack("{s:[{s:{s:o}, s:[{s:{s:s, s:s}, s:o}]}]}",
	    "resourceSpans", "resource", "attributes", rattrs, "scopeSpans",
	    "scope", "name", "tracestitch", "version", TS_VERSION, "spans",
	    spans);
	out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return out;
}
