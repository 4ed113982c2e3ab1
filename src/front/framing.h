/*
 * framing.h -- the request-smuggling guard: a strict shadow parser of the
 * raw bytes a client sends, run before evhttp parses them.
 *
 * libevent 2.1's parser is lenient (ARCHITECTURE.md, "Reliability"), so
 * server.c feeds every byte read from a client connection through
 * framing_feed() first.  The parser follows RFC 9112 strictly: request
 * line, header field syntax (RFC 9110 token names, no obs-fold, no
 * control characters), message framing (Content-Length vs
 * Transfer-Encoding), then skips the body (Content-Length bytes or a
 * strictly parsed chunked body with trailers) and starts again on the
 * next pipelined request.  It builds nothing: it only says "fine so far"
 * or "reject with this status and reason", before the body is read and
 * before any byte goes upstream.
 *
 * Pure: no libevent types, no allocation, no globals.  The state is a
 * plain struct the connection embeds.
 */
#ifndef TS_FRAMING_H
#define TS_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "exchange.h"	/* struct http_field */

struct framing_limits {
	size_t max_header_bytes;	/* request line + headers, incl. CRLFs */
	uint64_t max_body_bytes;	/* Content-Length or sum of chunks */
	size_t max_fields;		/* header fields of one head (431 above) */
};

enum framing_phase {
	FRAMING_REQLINE = 0,	/* waiting for / inside the request line */
	FRAMING_HEADERS,
	FRAMING_BODY_LENGTH,
	FRAMING_BODY_CHUNKED,	/* sub-state in the struct */
	FRAMING_REJECTED,	/* sticky */
};

#define FRAMING_CAPTURE 256

struct framing_state {
	struct framing_limits limits;
	enum framing_phase phase;
	/* Outcome, valid once phase == FRAMING_REJECTED. */
	int status;		/* 400, 413, 417, 431, 501, 505 */
	const char *reason;	/* static text, e.g. "both Content-Length and
				 * Transfer-Encoding" */
	/* Per request, reset when a new request line starts. */
	uint64_t requests;	/* request heads completed on this stream */
	uint64_t fed;		/* bytes fed so far (stream offset) */
	uint64_t req_start;	/* stream offset of the current request's
				 * first byte (valid once it began) */
	size_t head_bytes;	/* bytes of the current head so far */
	int minor;		/* HTTP/1.minor of the current request */
	/* Captured for the error response (may be truncated, NUL-ended). */
	char host[FRAMING_CAPTURE];
	char origin[FRAMING_CAPTURE];
	char path[FRAMING_CAPTURE];
	char method[16];
	/* Internal parser state: do not touch. */
	unsigned st;		/* fine-grained state (framing.c) */
	unsigned flags;
	unsigned kind;		/* meaning of the current field */
	unsigned n_host;
	unsigned n_cl;
	size_t n_fields;	/* header fields of the current head */
	unsigned empty_lines;	/* empty lines before this request line */
	uint64_t content_length;
	uint64_t remaining;	/* body or chunk-data bytes left */
	uint64_t body_total;	/* sum of chunk sizes so far */
	uint64_t chunk_size;
	size_t line_len;	/* bytes of the current chunk-size line */
	size_t tok_len;		/* bytes of the current element */
	size_t method_len;
	size_t path_len;
	size_t host_len;
	size_t origin_len;
	size_t value_ws;	/* OWS bytes held back (maybe trailing) */
	size_t name_len;
	char name[32];		/* the current header name (lower-case,
				 * truncated) */
	char value[64];		/* the current value's first bytes */
	size_t value_len;
	const char *feed_base;	/* start of the buffer being fed */
};

/* Initialise for a new connection.  NULL limits, or a limit of 0, mean
 * the defaults (16 KiB of head, 10 MiB of body, 100 fields). */
void framing_init(struct framing_state *, const struct framing_limits *);

/*
 * Feed len bytes that just arrived, in order.  Returns 0 while the stream
 * is acceptable, -1 once it must be rejected (then status and reason are
 * set and every later call returns -1 at once).  The caller sees how
 * many heads were completed through the requests field.
 */
int framing_feed(struct framing_state *, const char *buf, size_t len)
    TS_MUSTCHECK;

/* True when the current position is between requests (nothing of the
 * next request seen yet). */
bool framing_idle(const struct framing_state *);

/*
 * After framing_feed() accepted a complete head, conn.c indexes it in
 * place: the bytes are known to follow the grammar, so this only finds
 * boundaries.  Method, target, every field name and value are
 * NUL-terminated in the buffer (over the SP, ':' and line ends), values
 * without their surrounding OWS.
 */
struct framing_head {
	char *method;
	size_t method_len;
	char *target;
	size_t target_len;
	int minor;			/* HTTP/1.minor */
	size_t len;			/* bytes through the empty line */
	struct http_field *fields;	/* the caller's array */
	size_t n_fields;
};

/*
 * Length of the complete head at buf (leading empty lines included, its
 * final empty line included), or 0 when buf holds no complete head.
 */
size_t framing_head_len(const char *buf, size_t len);

/*
 * Index the complete, accepted head at buf[0..len) into h, with up to max
 * fields in the fields array.  Returns 0, or -1 when the head has more
 * than max fields (h->n_fields is then the number needed and buf is
 * untouched) or is not a complete head.
 */
int framing_index(char *buf, size_t len, struct framing_head *h,
    struct http_field *fields, size_t max);

/*
 * Decoder of a chunked body that framing_feed() accepted (RFC 9112 7.1):
 * chunk data goes to the callback, sizes, extensions, the final CRLFs and
 * the trailer section are consumed and dropped.
 */
struct framing_dechunk {
	unsigned st;
	uint64_t left;			/* data bytes of the current chunk */
	size_t line_len;		/* bytes of the current trailer line */
};

typedef void framing_data_fn(void *, const char *, size_t);

void framing_dechunk_init(struct framing_dechunk *);
/*
 * Decode from buf[0..len): returns how many bytes were consumed; *done
 * becomes true (and decoding stops) right after the body's last byte.
 */
size_t framing_dechunk(struct framing_dechunk *, const char *buf, size_t len,
    framing_data_fn *, void *arg, bool *done);

#endif /* TS_FRAMING_H */
