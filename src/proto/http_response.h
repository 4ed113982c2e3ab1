/*
 * http_response.h -- the one HTTP/1.1 response parser (RFC 9112): the
 * upstream client reads every backend response with it, the exporter's
 * HTTP client its agent's and collector's, `tracestitch diagnose` the
 * preflight answers (issue #10 item 4).
 *
 * The parser is pure apart from libevent's evbuffer and evkeyvalq types:
 * bytes in, a head (status, reason, version, fields in arrival order) and
 * de-chunked body bytes out, no socket and no event base.  Its public
 * names keep the upstream_parser_ / upstream_response prefix they had
 * when it lived in upstream.c (the tests, the fuzzer and the upstream
 * callbacks use them); http_response_embed.h is the door for a client that
 * embeds the parser (upstream.c).
 */
#ifndef TS_HTTP_RESPONSE_H
#define TS_HTTP_RESPONSE_H

#include <sys/queue.h>	/* TAILQ_* for the header lists */

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "common.h"

enum upstream_body {
	UPSTREAM_BODY_NONE = 0,	/* HEAD, 204, 304, or Content-Length: 0 */
	UPSTREAM_BODY_LENGTH,	/* Content-Length bytes */
	UPSTREAM_BODY_CHUNKED,	/* chunked (delivered de-chunked) */
	UPSTREAM_BODY_CLOSE,	/* until the server closes */
};

struct upstream_response {
	int status;			/* 200..599 */
	const char *reason;		/* reason phrase, NUL-terminated */
	int minor;			/* HTTP/1.minor */
	struct evkeyvalq *headers;	/* in arrival order, repeats kept */
	enum upstream_body body;
	uint64_t content_length;	/* when body == UPSTREAM_BODY_LENGTH */
};

/*
 * The strict response parser (RFC 9112), used by every exchange and
 * exposed for the unit tests and the fuzzer.  It reads from in (consuming
 * what it parsed), moves de-chunked body bytes to body, and never
 * allocates except the header entries of the final response head.
 *
 * upstream_parser_feed() returns UPSTREAM_PARSE_HEAD once when the final
 * head is complete (interim 1xx heads are skipped), UPSTREAM_PARSE_DONE
 * when the whole response was read (then and afterwards), _MORE when it
 * needs more input (body may have grown), _ERROR with a static *errstr.
 * upstream_parser_eof() is called when the peer closed: 0 when that ends
 * the response (close-delimited body, or already done), -1 with *errstr.
 */
enum upstream_parse {
	UPSTREAM_PARSE_ERROR = -1,
	UPSTREAM_PARSE_MORE = 0,
	UPSTREAM_PARSE_HEAD,
	UPSTREAM_PARSE_DONE,
};

/* Largest response head accepted (status line, fields, CRLFs, summed
 * over interim 1xx heads), also the limit of a trailer section. */
#define UPSTREAM_MAX_HEAD_BYTES (64 * 1024)

struct upstream_parser;

/* New parser for one response; is_head: the request was HEAD. */
struct upstream_parser *upstream_parser_new(bool is_head);
/* Free the parser and the header entries still in its list. NULL-safe. */
void upstream_parser_free(struct upstream_parser *);
/* Parse what in holds; see above. */
enum upstream_parse upstream_parser_feed(struct upstream_parser *,
    struct evbuffer *in, struct evbuffer *body, const char **errstr);
/* The peer closed the connection. */
int upstream_parser_eof(struct upstream_parser *, const char **errstr);
/* The final head (valid after UPSTREAM_PARSE_HEAD). */
const struct upstream_response *upstream_parser_response(
    const struct upstream_parser *);
/* Whether the connection may carry another exchange (valid after the
 * head): no "Connection: close", HTTP/1.1 or 1.0 with keep-alive, and the
 * body is not close-delimited. */
bool upstream_parser_keepalive(const struct upstream_parser *);

/*
 * A whole response held in memory (the exporter's and diagnose's
 * clients read into a buffer): buf is fed to a new parser (*pp, freed by
 * the caller, holding the head), its de-chunked body moved to body; eof:
 * the peer closed after these bytes.  Returns UPSTREAM_PARSE_DONE when
 * the response is complete (a close-delimited body ended by eof too),
 * _HEAD when the head is complete but the body is not (with eof, *errstr
 * says why it is cut), _MORE when the head is not complete yet (without
 * eof), _ERROR with *errstr (also when *pp could not be made).
 */
enum upstream_parse upstream_parse_buffer(const char *buf, size_t len,
    bool eof, struct evbuffer *body, struct upstream_parser **pp,
    const char **errstr);

#endif /* TS_HTTP_RESPONSE_H */
