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

#include "export_int.h"
#include "ts_config.h"
#include "util.h"

/*
 * The payload [[span], [span], ...] framed in place: the spare byte
 * before each record becomes its trace's fixarray-of-one header (0x91),
 * and the outer array header (the smallest form, as msgpack-c packs it:
 * fixarray, array16 0xdc or array32 0xdd) ends right before the first
 * one.  The records are back to back, so the payload is one contiguous
 * range of buf.
 */
const char *
export_datadog_frame(char *buf, const struct export_batch *b, size_t *len)
{
	unsigned char *h;
	size_t i, n = b->n, hl;

	for (i = 0; i < n; i++)
		((char *)b->recs[i].data)[-1] = (char)0x91;
	hl = n < 16 ? 1 : n < 65536 ? 3 : 5;
	h = (unsigned char *)buf + EXPORT_BATCH_RESERVE - hl;
	if (n < 16)
		h[0] = (unsigned char)(0x90 | n);
	else if (n < 65536) {
		h[0] = 0xdc;
		h[1] = (unsigned char)(n >> 8);
		h[2] = (unsigned char)n;
	} else {
		h[0] = 0xdd;
		h[1] = (unsigned char)(n >> 24);
		h[2] = (unsigned char)(n >> 16);
		h[3] = (unsigned char)(n >> 8);
		h[4] = (unsigned char)n;
	}
	*len = n == 0 ? hl : (size_t)(b->recs[n - 1].data +
	    b->recs[n - 1].len - (const char *)h);
	return (const char *)h;
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
