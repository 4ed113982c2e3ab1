/*
 * export_datadog.c -- the Datadog Agent backend: a /v0.4/traces payload
 * (msgpack array of traces, each an array of span maps; PROPAGATION.md
 * 11.2) built by splicing the records the workers already packed, and
 * the request headers of 11.1.  Each gateway span is its own trace chunk
 * (11.5).  The agent's answer feeds the sampler (exporter.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "export_int.h"
#include "ts_config.h"
#include "util.h"

/* msgpack-c write callback appending to an evbuffer. */
static int
pk_evbuffer_write(void *data, const char *buf, size_t len)
{
	return evbuffer_add(data, buf, len);
}

/* The payload: [[span], [span], ...]; 0 or -1. */
int
export_datadog_body(const struct export_batch *b, struct evbuffer *out)
{
	msgpack_packer pk;
	size_t i;

	msgpack_packer_init(&pk, out, pk_evbuffer_write);
	if (msgpack_pack_array(&pk, b->n) != 0)
		return -1;
	for (i = 0; i < b->n; i++) {
		if (msgpack_pack_array(&pk, 1) != 0 ||
		    evbuffer_add(out, b->recs[i].data, b->recs[i].len) != 0)
			return -1;
	}
	return 0;
}

/* Header lines of one payload (PROPAGATION.md 11.1); caller frees. */
char *
export_datadog_headers(size_t ntraces, const struct export_proc *proc)
{
	char *h, *cid = NULL;

	if (proc->container_id != NULL)
		xasprintf(&cid, "Datadog-Container-ID: %s\r\n",
		    proc->container_id);
	xasprintf(&h, "Content-Type: application/msgpack\r\n"
	    "X-Datadog-Trace-Count: %zu\r\n"
	    "Datadog-Meta-Lang: c\r\n"
	    "Datadog-Meta-Lang-Version: %ld\r\n"
	    "Datadog-Meta-Tracer-Version: %s\r\n"
	    "Datadog-Client-Computed-Top-Level: yes\r\n"
	    "%s", ntraces, (long)__STDC_VERSION__, TS_VERSION,
	    cid != NULL ? cid : "");
	free(cid);
	return h;
}
