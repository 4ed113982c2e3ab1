/*
 * fuzz_proxy_protocol.c -- libFuzzer harness for the PROXY protocol
 * parser (src/proto/proxy_protocol.c).
 *
 * Input: the bytes a client sends first.  Properties (abort otherwise):
 * a refusal has a reason; an accepted header is version 1 or 2, no longer
 * than the input or than PP_V2_MAX, with an address family when it has
 * addresses; the verdict on the header's own bytes is the same, and one
 * byte less only asks for more; an input still incomplete is shorter
 * than PP_V2_MAX; and no prefix of a refused input is accepted.
 * Seeds: the input column of tests/data/proxy_protocol/vectors.tsv
 * (tests/fuzz/make-seeds.sh).
 */
#include <sys/socket.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_header h, again;
	const char *why = NULL;
	size_t i;
	int rc;

	rc = proxy_protocol_parse(data, size, &h, &why);
	if (rc == PP_INVALID) {
		if (why == NULL)
			abort();
		/* Refused: no prefix was a whole header. */
		for (i = 0; i < size && i < 256; i++)
			if (proxy_protocol_parse(data, i, &again, &why) ==
			    PP_DONE)
				abort();
		return 0;
	}
	if (rc == PP_INCOMPLETE) {
		if (size >= PP_V2_MAX)
			abort();
		return 0;
	}
	if (rc != PP_DONE || h.len == 0 || h.len > size || h.len > PP_V2_MAX ||
	    (h.version != 1 && h.version != 2) ||
	    (h.version == 1 && h.len > PP_V1_MAX) ||
	    (h.has_addr && h.family != AF_INET && h.family != AF_INET6))
		abort();
	if (proxy_protocol_parse(data, h.len, &again, &why) != PP_DONE ||
	    again.len != h.len || again.has_addr != h.has_addr ||
	    memcmp(again.src, h.src, sizeof h.src) != 0 ||
	    again.src_port != h.src_port)
		abort();
	if (proxy_protocol_parse(data, h.len - 1, &again, &why) !=
	    PP_INCOMPLETE)
		abort();
	return 0;
}
