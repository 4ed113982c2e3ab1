/*
 * cidr.c -- address blocks and the membership test (cidr.h).  Addresses
 * are read by inet_pton(3): dotted quad for IPv4 (no shorthand forms),
 * RFC 4291 2.2 text for IPv6.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <string.h>

#include "cidr.h"

int
cidr_addr(const char *s, size_t len, int *family, uint8_t addr[16])
{
	static const uint8_t mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
	};
	char tmp[48];

	if (len == 0 || len >= sizeof tmp)
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, tmp, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, addr) != 1)
		return -1;
	/* RFC 4291 2.5.5.2: the IPv4 client of a dual-stack socket. */
	if (memcmp(addr, mapped, sizeof mapped) == 0) {
		memmove(addr, addr + 12, 4);
		memset(addr + 4, 0, 12);
		*family = AF_INET;
		return 0;
	}
	*family = AF_INET6;
	return 0;
}

int
cidr_parse(const char *s, struct cidr *out, const char **err)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned long bits, max;
	unsigned i;

	memset(out, 0, sizeof *out);
	if (cidr_addr(s, alen, &out->family, out->addr) != 0) {
		*err = "expected an IPv4 or IPv6 address or block "
		    "(10.0.0.0/8, 2001:db8::/32)";
		return -1;
	}
	/* A mapped address was folded to IPv4: its block is too. */
	max = out->family == AF_INET ? 32 : 128;
	if (slash == NULL) {
		out->bits = (unsigned)max;
		return 0;
	}
	if (strchr(s, ':') != NULL && out->family == AF_INET) {
		*err = "write an IPv4-mapped block as IPv4 (a.b.c.d/n)";
		return -1;
	}
	if (slash[1] < '0' || slash[1] > '9' || (slash[1] == '0' &&
	    slash[2] != '\0') || strlen(slash + 1) > 3) {
		*err = "expected a prefix length after \"/\"";
		return -1;
	}
	for (bits = 0, i = 1; slash[i] != '\0'; i++) {
		if (slash[i] < '0' || slash[i] > '9') {
			*err = "expected a prefix length after \"/\"";
			return -1;
		}
		bits = bits * 10 + (unsigned long)(slash[i] - '0');
	}
	if (bits > max) {
		*err = out->family == AF_INET ? "an IPv4 prefix is 0 to 32 "
		    "bits" : "an IPv6 prefix is 0 to 128 bits";
		return -1;
	}
	out->bits = (unsigned)bits;
	for (i = 0; i < max / 8; i++) {
		unsigned keep = out->bits >= (i + 1) * 8 ? 8 :
		    out->bits > i * 8 ? out->bits - i * 8 : 0;
		uint8_t mask = (uint8_t)(0xff << (8 - keep));

		if (keep == 0)
			mask = 0;
		if ((out->addr[i] & (uint8_t)~mask) != 0) {
			*err = "host bits are set: write the network address "
			    "of the block";
			return -1;
		}
	}
	return 0;
}

bool
cidr_match(const struct cidr *blocks, size_t n, int family,
    const uint8_t *addr)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct cidr *c = &blocks[i];
		unsigned full = c->bits / 8, rest = c->bits % 8;

		if (c->family != family)
			continue;
		if (memcmp(c->addr, addr, full) != 0)
			continue;
		if (rest != 0 && ((c->addr[full] ^ addr[full]) &
		    (uint8_t)(0xff << (8 - rest))) != 0)
			continue;
		return true;
	}
	return false;
}

bool
cidr_match_text(const struct cidr *blocks, size_t n, const char *s,
    size_t len)
{
	uint8_t addr[16];
	int family;

	if (n == 0 || cidr_addr(s, len, &family, addr) != 0)
		return false;
	return cidr_match(blocks, n, family, addr);
}
