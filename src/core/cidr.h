/*
 * cidr.h -- address blocks ("10.0.0.0/8", "2001:db8::/32", a bare
 * address) for server.trusted_proxies, and the membership test of a
 * client address.
 */
#ifndef TS_CIDR_H
#define TS_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct cidr {
	int family;		/* AF_INET or AF_INET6 */
	unsigned bits;		/* prefix length: 0..32 or 0..128 */
	uint8_t addr[16];	/* network order, host bits zero */
};

/*
 * Parse "address[/bits]" (a bare address is /32 or /128).  Strict: no
 * spaces, bits in decimal without a sign or leading zeros, no host bits
 * set ("10.0.0.1/8" is refused: write 10.0.0.0/8).  0, or -1 with *err
 * a static message.
 */
int cidr_parse(const char *s, struct cidr *out, const char **err);

/*
 * Parse an address literal of len bytes (no prefix; IPv6 without
 * brackets) into family and addr; an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) becomes the IPv4 address.  0 or -1.
 */
int cidr_addr(const char *s, size_t len, int *family, uint8_t addr[16]);

/* Is the address (family, addr) in one of the n blocks? */
bool cidr_match(const struct cidr *blocks, size_t n, int family,
    const uint8_t *addr);

/* The same for an address literal; false when it is no address. */
bool cidr_match_text(const struct cidr *blocks, size_t n, const char *s,
    size_t len);

#endif /* TS_CIDR_H */
