/*
 * export_stdout.c -- the stdout backend (the embedded default of
 * `make run`): one compact JSON object per span per line, decoded from
 * the worker's msgpack record.  Ids are hex (trace_id 32 digits with the
 * _dd.p.tid half, span_id and parent_id 16) so a line can be matched
 * against the access log and a W3C traceparent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "export_int.h"
#include "util.h"

/* A msgpack scalar as JSON: str, integers, floats, bool; else null. */
static json_t *
obj_json(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		return json_stringn(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return o->via.u64 > INT64_MAX ? json_real((double)o->via.u64)
		    : json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	default:
		return json_null();
	}
}

/* A map of scalars as a JSON object (str keys only). */
static json_t *
map_json(const msgpack_object *m)
{
	json_t *o = json_object();
	char key[256];
	uint32_t i;

	if (m == NULL || m->type != MSGPACK_OBJECT_MAP)
		return o;
	for (i = 0; i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];

		if (kv->key.type != MSGPACK_OBJECT_STR)
			continue;
		json_object_set_new(o, export_obj_str(&kv->key, key,
		    sizeof key), obj_json(&kv->val));
	}
	return o;
}

static json_t *
hex64(uint64_t v)
{
	char b[17];

	snprintf(b, sizeof b, "%016" PRIx64, v);
	return json_string(b);
}

static json_t *
hex128(uint64_t hi, uint64_t lo)
{
	char b[33];

	snprintf(b, sizeof b, "%016" PRIx64 "%016" PRIx64, hi, lo);
	return json_string(b);
}

/* The span_links array as JSON. */
static json_t *
links_json(const msgpack_object *links)
{
	json_t *a = json_array();
	uint32_t i;

	for (i = 0; i < links->via.array.size; i++) {
		const msgpack_object *l = &links->via.array.ptr[i], *v;
		json_t *o = json_object();

		json_object_set_new(o, "trace_id", hex128(export_obj_u64(
		    export_map_get(l, "trace_id_high")), export_obj_u64(
		    export_map_get(l, "trace_id"))));
		json_object_set_new(o, "span_id", hex64(export_obj_u64(
		    export_map_get(l, "span_id"))));
		if ((v = export_map_get(l, "attributes")) != NULL)
			json_object_set_new(o, "attributes", map_json(v));
		if ((v = export_map_get(l, "tracestate")) != NULL)
			json_object_set_new(o, "tracestate", obj_json(v));
		if ((v = export_map_get(l, "flags")) != NULL)
			json_object_set_new(o, "flags", json_integer(
			    (json_int_t)(export_obj_u64(v) & 0xff)));
		json_array_append_new(a, o);
	}
	return a;
}

/* One record as a JSON object line (no newline); caller frees. */
char *
export_stdout_line(const struct export_rec *r)
{
	static const char *const strs[] = {
		"name", "resource", "service", "type",
	};
	msgpack_zone zone;
	msgpack_object span;
	const msgpack_object *v;
	json_t *o;
	char *line = NULL;
	size_t i;

	msgpack_zone_init(&zone, 2048);
	if (export_rec_unpack(r, &zone, &span) != 0)
		goto out;
	o = json_object();
	json_object_set_new(o, "trace_id", hex128(export_rec_tid_high(&span),
	    export_obj_u64(export_map_get(&span, "trace_id"))));
	json_object_set_new(o, "span_id", hex64(export_obj_u64(
	    export_map_get(&span, "span_id"))));
	json_object_set_new(o, "parent_id", hex64(export_obj_u64(
	    export_map_get(&span, "parent_id"))));
	for (i = 0; i < TS_NITEMS(strs); i++)
		if ((v = export_map_get(&span, strs[i])) != NULL)
			json_object_set_new(o, strs[i], obj_json(v));
	if ((v = export_map_get(&span, "start")) != NULL)
		json_object_set_new(o, "start", obj_json(v));
	if ((v = export_map_get(&span, "duration")) != NULL)
		json_object_set_new(o, "duration", obj_json(v));
	if ((v = export_map_get(&span, "error")) != NULL)
		json_object_set_new(o, "error", obj_json(v));
	json_object_set_new(o, "meta", map_json(export_map_get(&span,
	    "meta")));
	json_object_set_new(o, "metrics", map_json(export_map_get(&span,
	    "metrics")));
	if ((v = export_map_get(&span, "span_links")) != NULL &&
	    v->type == MSGPACK_OBJECT_ARRAY)
		json_object_set_new(o, "span_links", links_json(v));
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
out:
	msgpack_zone_destroy(&zone);
	return line;
}

/* Write all of buf to fd; -1 on error. */
static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One JSON line per record on fd; returns the spans written. */
size_t
export_stdout_write(int fd, const struct export_batch *b)
{
	size_t i, n = 0;

	for (i = 0; i < b->n; i++) {
		char *line = export_stdout_line(&b->recs[i]);
		size_t len;

		if (line == NULL)
			continue;
		len = strlen(line);
		line = xrealloc(line, len + 2);
		line[len++] = '\n';
		if (write_all(fd, line, len) == 0)
			n++;
		free(line);
	}
	return n;
}
