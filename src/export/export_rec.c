/*
 * export_rec.c -- reading back the records the workers encode (a Datadog
 * v0.4 span map, PROPAGATION.md 11.2) with msgpack-c, for the backends
 * that do not send msgpack (OTLP, stdout) and for the drop decisions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_int.h"

/* Unpack a record into zone; -1 when it is not a map. */
int
export_rec_unpack(const struct export_rec *r, msgpack_zone *zone,
    msgpack_object *obj)
{
	size_t off = 0;

	if (msgpack_unpack(r->data, r->len, &off, zone, obj) !=
	    MSGPACK_UNPACK_SUCCESS || obj->type != MSGPACK_OBJECT_MAP)
		return -1;
	return 0;
}

/* Value of key in a msgpack map, or NULL. */
const msgpack_object *
export_map_get(const msgpack_object *map, const char *key)
{
	size_t klen = strlen(key);
	uint32_t i;

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
		    memcmp(k->via.str.ptr, key, klen) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

/* A str object as a NUL-terminated copy in buf; "" if not a str. */
const char *
export_obj_str(const msgpack_object *o, char *buf, size_t cap)
{
	size_t n;

	if (cap == 0)
		return "";
	if (o == NULL || o->type != MSGPACK_OBJECT_STR) {
		buf[0] = '\0';
		return buf;
	}
	n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
	memcpy(buf, o->via.str.ptr, n);
	buf[n] = '\0';
	return buf;
}

/* Unsigned integer value (0 if not a non-negative integer). */
uint64_t
export_obj_u64(const msgpack_object *o)
{
	if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return 0;
	return o->via.u64;
}

/* High 64 bits of the trace id from meta _dd.p.tid (0: absent or bad). */
uint64_t
export_rec_tid_high(const msgpack_object *span)
{
	char b[32], *end;
	const char *s;
	uint64_t v;

	s = export_obj_str(export_map_get(export_map_get(span, "meta"),
	    "_dd.p.tid"), b, sizeof b);
	if (strlen(s) != 16)
		return 0;
	errno = 0;
	v = strtoull(s, &end, 16);
	return errno == 0 && *end == '\0' ? v : 0;
}

/* _sampling_priority_v1 of a record; true when present. */
bool
export_rec_priority(const msgpack_object *span, double *out)
{
	const msgpack_object *m, *v;

	m = export_map_get(span, "metrics");
	if ((v = export_map_get(m, "_sampling_priority_v1")) == NULL)
		return false;
	switch (v->type) {
	case MSGPACK_OBJECT_FLOAT64:
	case MSGPACK_OBJECT_FLOAT32:
		*out = v->via.f64;
		return true;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*out = (double)v->via.u64;
		return true;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*out = (double)v->via.i64;
		return true;
	default:
		return false;
	}
}
