/*
 * proxy_protocol.c -- the PROXY protocol v1 and v2 header (the format:
 * HAProxy's doc/proxy-protocol.txt; sections cited below).
 *
 * v1 (2.1): "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport
 * CRLF, or "PROXY UNKNOWN" and anything up to CRLF; at most 107 bytes.
 * Single spaces, addresses as inet_pton reads them (dotted quad, RFC 4291
 * text for IPv6), ports decimal 0..65535 without leading zeros.
 *
 * v2 (2.2): the 12-byte signature, ver_cmd (version 2; LOCAL or PROXY),
 * fam (AF_UNSPEC / INET / INET6 / UNIX, transport UNSPEC / STREAM /
 * DGRAM), a 16-bit length of what follows, the addresses (12, 36 or 216
 * bytes), then TLVs (type, 16-bit length, value) that must fill the rest
 * exactly.  We take STREAM only: the client is on TCP.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <string.h>

#include "proxy_protocol.h"

static const uint8_t pp_v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

static int
pp_fail(const char **why, const char *msg)
{
	*why = msg;
	return PP_INVALID;
}

/* A v1 port: 1 to 5 digits, no leading zero, at most 65535. */
static bool
pp_v1_port(const char *s, size_t n, uint16_t *out)
{
	unsigned long v = 0;
	size_t i;

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

/* A v1 address of family af (INET6_ADDRSTRLEN bounds the text). */
static bool
pp_v1_addr(int af, const char *s, size_t n, uint8_t *out)
{
	char tmp[48];

	if (n == 0 || n >= sizeof tmp)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(af, tmp, out) == 1;
}

static int
pp_v1(const char *b, size_t len, struct pp_header *h, const char **why)
{
	const char *f[6], *end;
	size_t flen[6], n = 0, i;
	size_t max = len < PP_V1_MAX - 1 ? len : PP_V1_MAX - 1;
	const char *p;

	/*
	 * The line ends at the first CRLF; a lone CR or LF is refused.  The
	 * 107 bytes include the CRLF (proxy-protocol.txt 2.1), so the CR is
	 * one of the first 106: a CR at byte 107 made a 108-byte header
	 * (fuzz_proxy_protocol, crashes/proxy_protocol/).
	 */
	for (i = 0; i < max; i++) {
		if (b[i] == '\n')
			return pp_fail(why, "PROXY v1: LF without CR");
		if (b[i] == '\r')
			break;
	}
	if (i == max)
		return len >= PP_V1_MAX - 1 ? pp_fail(why,
		    "PROXY v1: no CRLF in the first 107 bytes") : PP_INCOMPLETE;
	if (i + 1 >= len)
		return PP_INCOMPLETE;
	if (b[i + 1] != '\n')
		return pp_fail(why, "PROXY v1: CR without LF");
	end = b + i;
	memset(h, 0, sizeof *h);
	h->version = 1;
	h->len = i + 2;
	/* Fields split on single spaces; after UNKNOWN, nothing matters. */
	for (p = b; n < 6; ) {
		const char *sp = memchr(p, ' ', (size_t)(end - p));

		f[n] = p;
		flen[n] = (size_t)((sp != NULL ? sp : end) - p);
		n++;
		if (sp == NULL || (n == 2 && flen[1] == 7 &&
		    memcmp(f[1], "UNKNOWN", 7) == 0))
			break;
		p = sp + 1;
	}
	if (n < 2 || flen[0] != 5 || memcmp(f[0], "PROXY", 5) != 0)
		return pp_fail(why, "PROXY v1: not a PROXY line");
	if (flen[1] == 7 && memcmp(f[1], "UNKNOWN", 7) == 0)
		return PP_DONE;	/* 2.1: the rest of the line is ignored */
	if (flen[1] == 4 && memcmp(f[1], "TCP4", 4) == 0)
		h->family = AF_INET;
	else if (flen[1] == 4 && memcmp(f[1], "TCP6", 4) == 0)
		h->family = AF_INET6;
	else
		return pp_fail(why, "PROXY v1: protocol is not TCP4, TCP6 or "
		    "UNKNOWN");
	if (n != 6 || f[5] + flen[5] != end)
		return pp_fail(why, "PROXY v1: expected 4 fields after the "
		    "protocol");
	for (i = 2; i < 6; i++)
		if (flen[i] == 0)
			return pp_fail(why, "PROXY v1: empty field");
	if (!pp_v1_addr(h->family, f[2], flen[2], h->src) ||
	    !pp_v1_addr(h->family, f[3], flen[3], h->dst))
		return pp_fail(why, "PROXY v1: bad address");
	if (!pp_v1_port(f[4], flen[4], &h->src_port) ||
	    !pp_v1_port(f[5], flen[5], &h->dst_port))
		return pp_fail(why, "PROXY v1: bad port");
	h->has_addr = true;
	return PP_DONE;
}

static int
pp_v2(const uint8_t *b, size_t len, struct pp_header *h, const char **why)
{
	size_t rlen, total, alen, off;
	unsigned ver, cmd, fam, proto;

	if (len < 16)
		return PP_INCOMPLETE;
	ver = b[12] >> 4;
	cmd = b[12] & 0x0f;
	fam = b[13] >> 4;
	proto = b[13] & 0x0f;
	if (ver != 2)
		return pp_fail(why, "PROXY v2: version is not 2");
	if (cmd > 1)
		return pp_fail(why, "PROXY v2: command is not LOCAL or PROXY");
	if (fam > 3)
		return pp_fail(why, "PROXY v2: unknown address family");
	if (proto > 2)
		return pp_fail(why, "PROXY v2: unknown transport");
	rlen = (size_t)b[14] << 8 | b[15];
	total = 16 + rlen;
	if (total > PP_V2_MAX)
		return pp_fail(why, "PROXY v2: header longer than 4112 bytes");
	if (len < total)
		return PP_INCOMPLETE;
	memset(h, 0, sizeof *h);
	h->version = 2;
	h->len = total;
	/* 2.2: the address block's size follows from the family. */
	alen = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
	if (rlen < alen)
		return pp_fail(why, "PROXY v2: address block too short");
	if (cmd == 1 && proto == 2)
		return pp_fail(why, "PROXY v2: a datagram client on a stream "
		    "listener");
	/* TLVs fill what follows the addresses exactly (2.2.7). */
	for (off = 16 + alen; off < total; ) {
		size_t vlen;

		if (total - off < 3)
			return pp_fail(why, "PROXY v2: truncated TLV");
		vlen = (size_t)b[off + 1] << 8 | b[off + 2];
		if (total - off - 3 < vlen)
			return pp_fail(why, "PROXY v2: TLV past the header");
		off += 3 + vlen;
	}
	/* LOCAL: the balancer's own connection (a health check). */
	if (cmd == 0 || proto == 0 || fam == 0 || fam == 3)
		return PP_DONE;
	h->has_addr = true;
	if (fam == 1) {
		h->family = AF_INET;
		memcpy(h->src, b + 16, 4);
		memcpy(h->dst, b + 20, 4);
		h->src_port = (uint16_t)(b[24] << 8 | b[25]);
		h->dst_port = (uint16_t)(b[26] << 8 | b[27]);
	} else {
		h->family = AF_INET6;
		memcpy(h->src, b + 16, 16);
		memcpy(h->dst, b + 32, 16);
		h->src_port = (uint16_t)(b[48] << 8 | b[49]);
		h->dst_port = (uint16_t)(b[50] << 8 | b[51]);
	}
	return PP_DONE;
}

int
proxy_protocol_parse(const void *buf, size_t len, struct pp_header *h,
    const char **why)
{
	const uint8_t *b = buf;
	size_t n;

	*why = NULL;
	/* Which version: the first bytes decide (2.1 and 2.2). */
	n = len < sizeof pp_v2_sig ? len : sizeof pp_v2_sig;
	if (n > 0 && b[0] == pp_v2_sig[0]) {
		if (memcmp(b, pp_v2_sig, n) != 0)
			return pp_fail(why, "not a PROXY protocol header");
		return n < sizeof pp_v2_sig ? PP_INCOMPLETE : pp_v2(b, len, h,
		    why);
	}
	n = len < 6 ? len : 6;
	if (memcmp(b, "PROXY ", n) != 0)
		return pp_fail(why, "not a PROXY protocol header");
	if (n < 6)
		return PP_INCOMPLETE;
	return pp_v1((const char *)b, len, h, why);
}
