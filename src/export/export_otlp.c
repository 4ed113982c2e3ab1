/*
 * export_otlp.c -- the OTLP/HTTP backend: an ExportTraceServiceRequest
 * (PROPAGATION.md 12, the dd-trace-js mapping): 128-bit trace ids, kind
 * from span.kind, attributes from meta and metrics, status from the error
 * flag, links, and the resource attributes service.name,
 * deployment.environment, service.version.  Unsampled traces (priority
 * <= 0) are not sent: there is no agent-side sampling behind a collector.
 *
 * Each record is read once into a struct otlp_span (references into the
 * record), which one of two writers turns into the body: http/protobuf
 * (the OpenTelemetry SDKs' default) packed by protobuf-c with the code
 * protoc-c generates from the .proto files in proto/, or http/json
 * (jansson; the OTLP/JSON rules: hex ids, 64-bit integers as strings,
 * enums as numbers).  So both bodies carry the same fields by
 * construction.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "export_int.h"
#include "trace_service.pb-c.h"
#include "ts_config.h"
#include "util.h"

/* One attribute: a string, or a number (int when integral). */
struct otlp_attr {
	const char	*key;
	size_t		 klen;
	bool		 num;
	const char	*s;
	size_t		 slen;
	double		 d;
};

struct otlp_link {
	uint64_t		 thi, tlo, sid;
	const char		*ts;		/* tracestate, NULL none */
	size_t			 tslen;
	struct otlp_attr	*attrs;
	size_t			 nattrs;
	bool			 has_flags;
	uint32_t		 flags;
};

/* One record as OTLP sees it; strings point into the record's zone. */
struct otlp_span {
	uint64_t		 thi, tlo, sid, parent;
	const char		*name;		/* the resource */
	size_t			 nlen;
	int			 kind;
	uint64_t		 start, end;
	struct otlp_attr	*attrs;
	size_t			 nattrs;
	bool			 error;
	char			 emsg[1088];	/* "type: message" */
	struct otlp_link	*links;
	size_t			 nlinks;
};

/* A str object's bytes (NULL + 0 when it is not a string). */
static const char *
obj_ref(const msgpack_object *o, size_t *len)
{
	if (o == NULL || o->type != MSGPACK_OBJECT_STR) {
		*len = 0;
		return "";
	}
	*len = o->via.str.size;
	return o->via.str.ptr;
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

/* A number is sent as an integer when it is one (and fits). */
static bool
is_integral(double v)
{
	return isfinite(v) && v == floor(v) && fabs(v) < 9e15;
}

/* SpanKind from meta span.kind [js-otlp]. */
static int
span_kind(const char *k, size_t len)
{
	static const char *const kinds[] = {
		"", "internal", "server", "client", "producer", "consumer",
	};
	size_t i;

	for (i = 1; i < TS_NITEMS(kinds); i++)
		if (strlen(kinds[i]) == len && memcmp(k, kinds[i], len) == 0)
			return (int)i;
	return 0;
}

static bool
key_is(const msgpack_object *k, const char *s)
{
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size ==
	    strlen(s) && memcmp(k->via.str.ptr, s, k->via.str.size) == 0;
}

static void
attr_set_str(struct otlp_attr *a, const char *k, const char *v, size_t vlen)
{
	a->key = k;
	a->klen = strlen(k);
	a->num = false;
	a->s = v;
	a->slen = vlen;
}

/* Links of a record: traceId, spanId, traceState, attributes, flags. */
static void
links_read(const msgpack_object *links, struct otlp_span *s)
{
	uint32_t i, j;

	s->nlinks = links->via.array.size;
	s->links = xcalloc(s->nlinks, sizeof *s->links);
	for (i = 0; i < links->via.array.size; i++) {
		const msgpack_object *l = &links->via.array.ptr[i], *v;
		struct otlp_link *ol = &s->links[i];

		ol->thi = export_obj_u64(export_map_get(l, "trace_id_high"));
		ol->tlo = export_obj_u64(export_map_get(l, "trace_id"));
		ol->sid = export_obj_u64(export_map_get(l, "span_id"));
		if ((v = export_map_get(l, "tracestate")) != NULL &&
		    v->type == MSGPACK_OBJECT_STR)
			ol->ts = obj_ref(v, &ol->tslen);
		if ((v = export_map_get(l, "attributes")) != NULL &&
		    v->type == MSGPACK_OBJECT_MAP) {
			ol->attrs = xcalloc(v->via.map.size + 1,
			    sizeof *ol->attrs);
			for (j = 0; j < v->via.map.size; j++) {
				const msgpack_object_kv *kv =
				    &v->via.map.ptr[j];
				struct otlp_attr *a = &ol->attrs[ol->nattrs];

				if (kv->val.type != MSGPACK_OBJECT_STR ||
				    kv->key.type != MSGPACK_OBJECT_STR)
					continue;
				a->key = obj_ref(&kv->key, &a->klen);
				a->s = obj_ref(&kv->val, &a->slen);
				ol->nattrs++;
			}
		}
		if ((v = export_map_get(l, "flags")) != NULL) {
			ol->has_flags = true;
			ol->flags = (uint32_t)(export_obj_u64(v) & 0xff);
		}
	}
}

/* Read one record into s (free with span_clear). */
static void
span_read(const msgpack_object *sp, struct otlp_span *s)
{
	const msgpack_object *meta, *metrics, *v;
	const char *p;
	size_t len, n, cap;
	uint32_t i;
	char etype[256], emsg[768];

	memset(s, 0, sizeof *s);
	meta = export_map_get(sp, "meta");
	metrics = export_map_get(sp, "metrics");
	if (meta != NULL && meta->type != MSGPACK_OBJECT_MAP)
		meta = NULL;
	if (metrics != NULL && metrics->type != MSGPACK_OBJECT_MAP)
		metrics = NULL;
	s->thi = export_rec_tid_high(sp);
	s->tlo = export_obj_u64(export_map_get(sp, "trace_id"));
	s->sid = export_obj_u64(export_map_get(sp, "span_id"));
	s->parent = export_obj_u64(export_map_get(sp, "parent_id"));
	/* dd-trace-js names the OTLP span after the resource. */
	s->name = obj_ref(export_map_get(sp, "resource"), &s->nlen);
	p = obj_ref(export_map_get(meta, "span.kind"), &len);
	s->kind = span_kind(p, len);
	s->start = export_obj_u64(export_map_get(sp, "start"));
	s->end = s->start + export_obj_u64(export_map_get(sp, "duration"));

	cap = 4 + (meta != NULL ? meta->via.map.size : 0) +
	    (metrics != NULL ? metrics->via.map.size : 0);
	s->attrs = xcalloc(cap, sizeof *s->attrs);
	p = obj_ref(export_map_get(sp, "service"), &len);
	attr_set_str(&s->attrs[0], "service.name", p, len);
	p = obj_ref(export_map_get(sp, "name"), &len);
	attr_set_str(&s->attrs[1], "operation.name", p, len);
	attr_set_str(&s->attrs[2], "resource.name", s->name, s->nlen);
	p = obj_ref(export_map_get(sp, "type"), &len);
	attr_set_str(&s->attrs[3], "span.type", p, len);
	n = 4;
	for (i = 0; meta != NULL && i < meta->via.map.size; i++) {
		const msgpack_object_kv *kv = &meta->via.map.ptr[i];

		if (kv->val.type != MSGPACK_OBJECT_STR ||
		    kv->key.type != MSGPACK_OBJECT_STR ||
		    key_is(&kv->key, "_dd.span_links") ||
		    key_is(&kv->key, "span.kind") ||
		    key_is(&kv->key, "_dd.p.tid"))
			continue;
		s->attrs[n].key = obj_ref(&kv->key, &s->attrs[n].klen);
		s->attrs[n].s = obj_ref(&kv->val, &s->attrs[n].slen);
		n++;
	}
	for (i = 0; metrics != NULL && i < metrics->via.map.size; i++) {
		const msgpack_object_kv *kv = &metrics->via.map.ptr[i];

		if (kv->key.type != MSGPACK_OBJECT_STR)
			continue;
		s->attrs[n].key = obj_ref(&kv->key, &s->attrs[n].klen);
		s->attrs[n].num = true;
		s->attrs[n].d = obj_double(&kv->val);
		n++;
	}
	s->nattrs = n;

	if (export_obj_u64(export_map_get(sp, "error")) != 0) {
		s->error = true;
		export_obj_str(export_map_get(meta, "error.type"), etype,
		    sizeof etype);
		export_obj_str(export_map_get(meta, "error.message"), emsg,
		    sizeof emsg);
		snprintf(s->emsg, sizeof s->emsg, "%s%s%s", etype,
		    etype[0] != '\0' && emsg[0] != '\0' ? ": " : "", emsg);
	}
	if ((v = export_map_get(sp, "span_links")) != NULL &&
	    v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size > 0)
		links_read(v, s);
}

static void
span_clear(struct otlp_span *s)
{
	size_t i;

	for (i = 0; i < s->nlinks; i++)
		free(s->links[i].attrs);
	free(s->links);
	free(s->attrs);
}

/* The resource attributes of every body. */
static size_t
resource_attrs(const struct export_proc *proc, struct otlp_attr a[6])
{
	size_t n = 0;

	attr_set_str(&a[n++], "service.name", proc->service,
	    strlen(proc->service));
	if (proc->env != NULL && proc->env[0] != '\0')
		attr_set_str(&a[n++], "deployment.environment", proc->env,
		    strlen(proc->env));
	if (proc->version != NULL && proc->version[0] != '\0')
		attr_set_str(&a[n++], "service.version", proc->version,
		    strlen(proc->version));
	attr_set_str(&a[n++], "telemetry.sdk.name", "tracestitch",
	    strlen("tracestitch"));
	attr_set_str(&a[n++], "telemetry.sdk.language", "c", 1);
	attr_set_str(&a[n++], "telemetry.sdk.version", TS_VERSION,
	    strlen(TS_VERSION));
	return n;
}

/* ---- http/json (OTLP/JSON) ---------------------------------------- */

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

/* {"key": k, "value": {"stringValue": v} or intValue / doubleValue}. */
static json_t *
attr_json(const struct otlp_attr *a)
{
	char b[32];

	if (!a->num)
		return json_pack("{s:s%, s:{s:s%}}", "key", a->key, a->klen,
		    "value", "stringValue", a->s, a->slen);
	if (is_integral(a->d)) {
		/* OTLP/JSON: int64 as a decimal string. */
		snprintf(b, sizeof b, "%lld", (long long)a->d);
		return json_pack("{s:s%, s:{s:s}}", "key", a->key, a->klen,
		    "value", "intValue", b);
	}
	return json_pack("{s:s%, s:{s:f}}", "key", a->key, a->klen, "value",
	    "doubleValue", a->d);
}

static json_t *
attrs_json(const struct otlp_attr *a, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(arr, attr_json(&a[i]));
	return arr;
}

static json_t *
span_json(const struct otlp_span *s)
{
	json_t *o, *status, *links;
	char ns[24];
	size_t i;

	o = json_object();
	json_object_set_new(o, "traceId", hexid(s->thi, s->tlo, true));
	json_object_set_new(o, "spanId", hexid(0, s->sid, false));
	if (s->parent != 0)
		json_object_set_new(o, "parentSpanId", hexid(0, s->parent,
		    false));
	json_object_set_new(o, "name", json_stringn(s->name, s->nlen));
	json_object_set_new(o, "kind", json_integer(s->kind));
	snprintf(ns, sizeof ns, "%" PRIu64, s->start);
	json_object_set_new(o, "startTimeUnixNano", json_string(ns));
	snprintf(ns, sizeof ns, "%" PRIu64, s->end);
	json_object_set_new(o, "endTimeUnixNano", json_string(ns));
	json_object_set_new(o, "attributes", attrs_json(s->attrs, s->nattrs));
	status = json_object();
	json_object_set_new(status, "code", json_integer(s->error ? 2 : 0));
	if (s->error && s->emsg[0] != '\0')
		json_object_set_new(status, "message", json_string(s->emsg));
	json_object_set_new(o, "status", status);
	if (s->nlinks > 0) {
		links = json_array();
		for (i = 0; i < s->nlinks; i++) {
			const struct otlp_link *l = &s->links[i];
			json_t *lo = json_object();

			json_object_set_new(lo, "traceId", hexid(l->thi,
			    l->tlo, true));
			json_object_set_new(lo, "spanId", hexid(0, l->sid,
			    false));
			if (l->ts != NULL)
				json_object_set_new(lo, "traceState",
				    json_stringn(l->ts, l->tslen));
			json_object_set_new(lo, "attributes", attrs_json(
			    l->attrs, l->nattrs));
			if (l->has_flags)
				json_object_set_new(lo, "flags",
				    json_integer(l->flags));
			json_array_append_new(links, lo);
		}
		json_object_set_new(o, "links", links);
	}
	return o;
}

/* ---- http/protobuf ------------------------------------------------- */

typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue pb_any;
typedef Opentelemetry__Proto__Trace__V1__Span pb_span;
typedef Opentelemetry__Proto__Trace__V1__Span__Link pb_link;
typedef Opentelemetry__Proto__Trace__V1__Status pb_status;

/*
 * protobuf-c wants NUL-terminated strings and messages that live until
 * the request is packed, while a record's strings live only until the
 * next record is read: everything of one body is allocated from one
 * arena of blocks, freed at once after packing.
 */
struct pb_block {
	struct pb_block	*next;
	size_t		 used, cap;
	max_align_t	 data[];
};

struct pb_arena {
	struct pb_block	*head;
};

#define PB_BLOCK	(64 * 1024)

static void *
pa_alloc(struct pb_arena *pa, size_t n)
{
	struct pb_block *b = pa->head;
	void *p;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (b == NULL || b->cap - b->used < n) {
		size_t cap = n > PB_BLOCK ? n : PB_BLOCK;

		b = xmalloc(sizeof *b + cap);
		b->used = 0;
		b->cap = cap;
		b->next = pa->head;
		pa->head = b;
	}
	p = (char *)b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

static char *
pa_strn(struct pb_arena *pa, const char *s, size_t n)
{
	char *p = pa_alloc(pa, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void
pa_free(struct pb_arena *pa)
{
	struct pb_block *b, *next;

	for (b = pa->head; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	pa->head = NULL;
}

/* An id as bytes, big-endian (the hex of OTLP/JSON, read as bytes). */
static ProtobufCBinaryData
pb_id(struct pb_arena *pa, uint64_t hi, uint64_t lo, bool wide)
{
	ProtobufCBinaryData d;
	uint8_t *p;
	size_t n = wide ? 16 : 8, i;

	p = pa_alloc(pa, n);
	for (i = 0; i < 8; i++) {
		if (wide)
			p[i] = (uint8_t)(hi >> (56 - 8 * i));
		p[n - 8 + i] = (uint8_t)(lo >> (56 - 8 * i));
	}
	d.len = n;
	d.data = p;
	return d;
}

static pb_kv **
pb_attrs(struct pb_arena *pa, const struct otlp_attr *a, size_t n)
{
	pb_kv **kvs = pa_alloc(pa, (n + 1) * sizeof *kvs);
	size_t i;

	for (i = 0; i < n; i++) {
		pb_kv *kv = pa_alloc(pa, sizeof *kv);
		pb_any *v = pa_alloc(pa, sizeof *v);

		opentelemetry__proto__common__v1__key_value__init(kv);
		opentelemetry__proto__common__v1__any_value__init(v);
		kv->key = pa_strn(pa, a[i].key, a[i].klen);
		kv->value = v;
		if (!a[i].num) {
			v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
			v->string_value = pa_strn(pa, a[i].s, a[i].slen);
		} else if (is_integral(a[i].d)) {
			v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
			v->int_value = (int64_t)a[i].d;
		} else {
			v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
			v->double_value = a[i].d;
		}
		kvs[i] = kv;
	}
	return kvs;
}

static pb_span *
span_pb(struct pb_arena *pa, const struct otlp_span *s)
{
	pb_span *p = pa_alloc(pa, sizeof *p);
	pb_status *st = pa_alloc(pa, sizeof *st);
	size_t i;

	opentelemetry__proto__trace__v1__span__init(p);
	opentelemetry__proto__trace__v1__status__init(st);
	p->trace_id = pb_id(pa, s->thi, s->tlo, true);
	p->span_id = pb_id(pa, 0, s->sid, false);
	if (s->parent != 0)
		p->parent_span_id = pb_id(pa, 0, s->parent, false);
	p->name = pa_strn(pa, s->name, s->nlen);
	p->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)s->kind;
	p->start_time_unix_nano = s->start;
	p->end_time_unix_nano = s->end;
	p->attributes = pb_attrs(pa, s->attrs, s->nattrs);
	p->n_attributes = s->nattrs;
	st->code = s->error ?
	    OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR :
	    OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_UNSET;
	if (s->error && s->emsg[0] != '\0')
		st->message = pa_strn(pa, s->emsg, strlen(s->emsg));
	p->status = st;
	if (s->nlinks > 0) {
		p->links = pa_alloc(pa, s->nlinks * sizeof *p->links);
		p->n_links = s->nlinks;
		for (i = 0; i < s->nlinks; i++) {
			const struct otlp_link *l = &s->links[i];
			pb_link *pl = pa_alloc(pa, sizeof *pl);

			opentelemetry__proto__trace__v1__span__link__init(pl);
			pl->trace_id = pb_id(pa, l->thi, l->tlo, true);
			pl->span_id = pb_id(pa, 0, l->sid, false);
			if (l->ts != NULL)
				pl->trace_state = pa_strn(pa, l->ts,
				    l->tslen);
			pl->attributes = pb_attrs(pa, l->attrs, l->nattrs);
			pl->n_attributes = l->nattrs;
			pl->flags = l->flags;
			p->links[i] = pl;
		}
	}
	return p;
}

/* ---- the body ------------------------------------------------------ */

/* The body of the sampled records; counts sent and unsampled. */
char *
export_otlp_body(const struct export_batch *b, const struct export_proc *proc,
    bool protobuf, size_t *len, size_t *n_sent, size_t *n_unsampled)
{
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest
	    req = OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
	Opentelemetry__Proto__Trace__V1__ResourceSpans rs =
	    OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT, *rsp = &rs;
	Opentelemetry__Proto__Trace__V1__ScopeSpans ss =
	    OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT, *ssp = &ss;
	Opentelemetry__Proto__Resource__V1__Resource res =
	    OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
	Opentelemetry__Proto__Common__V1__InstrumentationScope scope =
	    OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
	struct pb_arena pa = { NULL };
	struct otlp_attr ra[6];
	json_t *root = NULL, *spans = NULL;
	msgpack_zone zone;
	char *out;
	size_t i, nra;

	*n_sent = *n_unsampled = 0;
	if (protobuf)
		ss.spans = xcalloc(b->n + 1, sizeof *ss.spans);
	else
		spans = json_array();
	msgpack_zone_init(&zone, 4096);
	for (i = 0; i < b->n; i++) {
		struct otlp_span s;
		msgpack_object sp;
		double prio;

		msgpack_zone_clear(&zone);
		if (export_rec_unpack(&b->recs[i], &zone, &sp) != 0)
			continue;
		if (export_rec_priority(&sp, &prio) && prio <= 0) {
			(*n_unsampled)++;
			continue;
		}
		span_read(&sp, &s);
		if (protobuf)
			ss.spans[ss.n_spans++] = span_pb(&pa, &s);
		else
			json_array_append_new(spans, span_json(&s));
		span_clear(&s);
		(*n_sent)++;
	}
	msgpack_zone_destroy(&zone);

	nra = resource_attrs(proc, ra);
	if (!protobuf) {
		root = json_pack("{s:[{s:{s:o}, s:[{s:{s:s, s:s}, s:o}]}]}",
		    "resourceSpans", "resource", "attributes", attrs_json(ra,
		    nra), "scopeSpans", "scope", "name", "tracestitch",
		    "version", TS_VERSION, "spans", spans);
		out = json_dumps(root, JSON_COMPACT);
		json_decref(root);
		*len = out != NULL ? strlen(out) : 0;
		return out;
	}
	res.attributes = pb_attrs(&pa, ra, nra);
	res.n_attributes = nra;
	scope.name = (char *)"tracestitch";
	scope.version = (char *)TS_VERSION;
	rs.resource = &res;
	ss.scope = &scope;
	rs.scope_spans = &ssp;
	rs.n_scope_spans = 1;
	req.resource_spans = &rsp;
	req.n_resource_spans = 1;
	*len = opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
	    &req);
	out = xmalloc(*len + 1);
	(void)opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(
	    &req, (uint8_t *)out);
	free(ss.spans);
	pa_free(&pa);
	return out;
}

/*
 * The collector's answer: an ExportTraceServiceResponse whose
 * partial_success says how many spans it rejected and why (OTLP
 * specification, "Partial Success": the request is not retried; the
 * SDKs log it).  In the request's encoding (protobuf, or OTLP/JSON
 * "partialSuccess": {"rejectedSpans", "errorMessage"}).  true when the
 * answer reports one (*rejected and msg set); an empty or unreadable
 * answer reports none.
 */
bool
export_otlp_partial(const char *body, size_t len, bool protobuf,
    int64_t *rejected, char *msg, size_t cap)
{
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse
	    *resp;
	json_t *root, *ps, *v;
	bool found = false;

	*rejected = 0;
	msg[0] = '\0';
	if (body == NULL || len == 0)
		return false;
	if (protobuf) {
		resp = opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
		    NULL, len, (const uint8_t *)body);
		if (resp == NULL)
			return false;
		if (resp->partial_success != NULL) {
			*rejected = resp->partial_success->rejected_spans;
			snprintf(msg, cap, "%s",
			    resp->partial_success->error_message);
			found = *rejected != 0 || msg[0] != '\0';
		}
		opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
		    resp, NULL);
		return found;
	}
	if ((root = json_loadb(body, len, 0, NULL)) == NULL)
		return false;
	if ((ps = json_object_get(root, "partialSuccess")) != NULL) {
		/* int64 is a decimal string in OTLP/JSON; a number is read
		 * too. */
		v = json_object_get(ps, "rejectedSpans");
		if (json_is_string(v))
			*rejected = strtoll(json_string_value(v), NULL, 10);
		else if (json_is_integer(v))
			*rejected = json_integer_value(v);
		if (json_is_string(v = json_object_get(ps, "errorMessage")))
			snprintf(msg, cap, "%s", json_string_value(v));
		found = *rejected != 0 || msg[0] != '\0';
	}
	json_decref(root);
	return found;
}
