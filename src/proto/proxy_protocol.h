/*
 * proxy_protocol.h -- the PROXY protocol header, versions 1 and 2
 * (HAProxy's proxy-protocol.txt), that an L4 balancer (AWS NLB, HAProxy
 * "send-proxy", ...) writes before the client's first byte so that the
 * server learns the client's address.
 *
 * A pure function over bytes: no socket, no allocation.  Strict: a
 * listener that expects the header takes nothing else (the protocol
 * says a receiver must not guess), so every malformed header is refused
 * with a reason.
 */
#ifndef TS_PROXY_PROTOCOL_H
#define TS_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

enum pp_status {
	PP_INVALID = -1,	/* *why says what is wrong */
	PP_INCOMPLETE = 0,	/* a valid prefix: read more */
	PP_DONE = 1,		/* a whole header of h->len bytes */
};

/* The longest v1 line, "PROXY" to CRLF (proxy-protocol.txt 2.1). */
#define PP_V1_MAX	107
/* Our bound on a v2 header, TLVs included (the format allows 16 + 65535). */
#define PP_V2_MAX	(16 + 4096)

struct pp_header {
	size_t len;		/* header bytes: the client's stream follows */
	int version;		/* 1 or 2 */
	/*
	 * false: v1 UNKNOWN, v2 LOCAL (a health check of the balancer), or
	 * an address family we do not use (v2 UNSPEC, UNIX): the socket's
	 * own addresses stand.
	 */
	bool has_addr;
	int family;		/* AF_INET or AF_INET6 when has_addr */
	uint8_t src[16];	/* network order; IPv4 in the first 4 */
	uint8_t dst[16];
	uint16_t src_port;
	uint16_t dst_port;
};

/*
 * Parse the header at the start of buf[0, len).  PP_DONE fills *h;
 * PP_INVALID sets *why (static text).  The answer for a prefix never
 * changes once it is PP_DONE or PP_INVALID, whatever bytes follow.
 */
int proxy_protocol_parse(const void *buf, size_t len, struct pp_header *h,
    const char **why);

#endif /* TS_PROXY_PROTOCOL_H */
