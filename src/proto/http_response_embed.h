/*
 * http_response_embed.h -- proto's second door to the response parser:
 * its state, for a client that embeds it in its own exchange structure
 * and feeds it from memory as well as from an evbuffer (upstream.c parses
 * a socket read in place).  Everyone else uses http_response.h.
 */
#ifndef TS_HTTP_RESPONSE_EMBED_H
#define TS_HTTP_RESPONSE_EMBED_H

#include "http_response.h"

#define HTTP_RESPONSE_MAX_CHUNK_LINE	4096	/* chunk size + extensions */
#define HTTP_RESPONSE_REASON_MAX	128	/* longer reasons are cut */
#define HTTP_RESPONSE_SPARE_KV	32	/* recycled header entries, each */
#define HTTP_RESPONSE_SPARE_KEY_MAX	64	/* largest recycled key, */
#define HTTP_RESPONSE_SPARE_VALUE_MAX 512	/* value */

/* Parser states, in the order of a response. */
enum parser_state {
	PS_STATUS = 0,
	PS_HEADERS,
	PS_BODY_LENGTH,
	PS_CHUNK_SIZE,
	PS_CHUNK_DATA,
	PS_CHUNK_CRLF,
	PS_TRAILERS,
	PS_BODY_CLOSE,
	PS_DONE,
	PS_ERROR,
};

struct upstream_parser {
	enum parser_state state;
	bool is_head;
	bool upgrade;			/* a 101 may be the final head */
	bool keepalive;
	const char *errstr;		/* sticky, once PS_ERROR */
	size_t scanned;			/* pending line bytes searched */
	size_t line_bytes;		/* length of the line just found */
	size_t head_bytes;		/* all heads so far, 1xx included */
	size_t trailer_bytes;
	uint64_t remaining;		/* of the body or of the chunk */
	/* Framing fields of the head being parsed. */
	unsigned n_cl;
	uint64_t cl;
	unsigned n_te;			/* transfer codings seen */
	bool te_chunked_last;
	bool te_other;
	bool conn_close;
	bool conn_keepalive;
	struct upstream_response resp;
	struct evkeyvalq headers;
	struct evkeyvalq spare;		/* recycled entries (struct
					 * parser_kv) for the next head */
	unsigned nspare;
	char reason[HTTP_RESPONSE_REASON_MAX];
};

/*
 * A header entry as the parser allocates it: the evkeyval first, so that
 * free(kv), free(kv->key) and free(kv->value) release it as evhttp does,
 * then the sizes of the key and value allocations, so that an entry still
 * in the list when the exchange ends can carry a later header without new
 * allocations.
 */
struct parser_kv {
	struct evkeyval kv;
	size_t kcap;
	size_t vcap;
};

/*
 * Where the parser reads from: an evbuffer (the public API, TLS, bytes
 * kept across reads) or plain memory (a socket read into the pool's
 * scratch buffer); off is what was consumed from mem.
 */
struct http_response_src {
	struct evbuffer *buf;
	const char *mem;
	size_t len;
	size_t off;
};


/* Once per embedded parser, before the first http_response_init(). */
void http_response_setup(struct upstream_parser *);
/* Start a response; is_head: the request was HEAD. */
void http_response_init(struct upstream_parser *, bool is_head);
/*
 * The request asked to switch protocols (RFC 9110 7.8): a 101 is then the
 * final head (UPSTREAM_PARSE_HEAD, body UPSTREAM_BODY_NONE, not
 * keep-alive) and the parser stops right after its empty line: what
 * follows belongs to the new protocol.  Without it a 101 is an error.
 * Call after http_response_init().
 */
void http_response_expect_upgrade(struct upstream_parser *);
/* upstream_parser_feed() over a memory or evbuffer source. */
enum upstream_parse http_response_feed_src(struct upstream_parser *,
    struct http_response_src *, struct evbuffer *body, const char **errstr);
/* upstream_parser_eof(). */
int http_response_eof(struct upstream_parser *, const char **errstr);
/* Empty the header list; keep: recycle the entries for the next head. */
void http_response_clear_headers(struct upstream_parser *, bool keep);
/* Free the recycled entries. */
void http_response_free_spare(struct upstream_parser *);
/* Bytes a source still holds. */
size_t http_response_src_avail(const struct http_response_src *);

#endif /* TS_HTTP_RESPONSE_EMBED_H */
