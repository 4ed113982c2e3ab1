/*
 * http_response.c -- the strict HTTP/1.1 response parser (RFC 9112), the
 * one every client of tracestitch reads responses with: the upstream
 * pool (upstream.c), the exporter (export_http.c) and diagnose.
 *
 * Status line, header fields (no obs-fold, no CTLs, tchar names),
 * interim 1xx heads skipped, the message body length of RFC 9112 6.3
 * (Content-Length, chunked, or until close), chunk extensions checked
 * and ignored, trailers read and discarded.  Header entries are malloc'ed
 * as evhttp allocates them and recycled for the next response.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "http_response_embed.h"
#include "util.h"

/* field-vchar / SP / HTAB (RFC 9110 5.5): no CTLs, no DEL. */
static bool
parser_is_text(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static void
parser_kv_free(struct evkeyval *kv)
{
	free(kv->key);
	free(kv->value);
	free(kv);
}

/*
 * Empty the header list.  keep: entries go to the spare list (bounded in
 * number and size) for the next response parsed by this parser.
 */
void
http_response_clear_headers(struct upstream_parser *p, bool keep)
{
	struct evkeyval *kv;
	struct parser_kv *pkv;

	while ((kv = TAILQ_FIRST(&p->headers)) != NULL) {
		TAILQ_REMOVE(&p->headers, kv, next);
		pkv = (struct parser_kv *)kv;
		if (keep && p->nspare < HTTP_RESPONSE_SPARE_KV &&
		    pkv->kcap <= HTTP_RESPONSE_SPARE_KEY_MAX &&
		    pkv->vcap <= HTTP_RESPONSE_SPARE_VALUE_MAX) {
			TAILQ_INSERT_HEAD(&p->spare, kv, next);
			p->nspare++;
		} else
			parser_kv_free(kv);
	}
}

void
http_response_free_spare(struct upstream_parser *p)
{
	struct evkeyval *kv;

	while ((kv = TAILQ_FIRST(&p->spare)) != NULL) {
		TAILQ_REMOVE(&p->spare, kv, next);
		parser_kv_free(kv);
	}
	p->nspare = 0;
}

/* Round an allocation for n bytes up, so that recycled entries fit. */
static size_t
parser_kv_cap(size_t n, size_t min)
{
	return n < min ? min : (n + 31) & ~(size_t)31;
}

/* Make *s hold at least n bytes (its allocation is *cap bytes). */
static int
parser_kv_fit(char **s, size_t *cap, size_t n, size_t min)
{
	char *t;
	size_t want;

	if (*s != NULL && *cap >= n)
		return 0;
	want = parser_kv_cap(n, min);
	if ((t = malloc(want)) == NULL)
		return -1;
	free(*s);
	*s = t;
	*cap = want;
	return 0;
}

/* A header entry for a key of klen and a value of vlen bytes. */
static struct evkeyval *
parser_kv_get(struct upstream_parser *p, size_t klen, size_t vlen)
{
	struct evkeyval *kv;
	struct parser_kv *pkv;

	if ((kv = TAILQ_FIRST(&p->spare)) != NULL) {
		TAILQ_REMOVE(&p->spare, kv, next);
		p->nspare--;
		pkv = (struct parser_kv *)kv;
	} else {
		if ((pkv = malloc(sizeof *pkv)) == NULL)
			return NULL;
		pkv->kv.key = pkv->kv.value = NULL;
		pkv->kcap = pkv->vcap = 0;
		kv = &pkv->kv;
	}
	if (parser_kv_fit(&kv->key, &pkv->kcap, klen + 1, 32) != 0 ||
	    parser_kv_fit(&kv->value, &pkv->vcap, vlen + 1, 64) != 0) {
		parser_kv_free(kv);
		return NULL;
	}
	return kv;
}

static void
parser_reset_head(struct upstream_parser *p)
{
	p->n_cl = 0;
	p->cl = 0;
	p->n_te = 0;
	p->te_chunked_last = false;
	p->te_other = false;
	p->conn_close = false;
	p->conn_keepalive = false;
	p->reason[0] = '\0';
	memset(&p->resp, 0, sizeof p->resp);
	p->resp.reason = p->reason;
	p->resp.headers = &p->headers;
}

/* Once per parser, before the first http_response_init(). */
void
http_response_setup(struct upstream_parser *p)
{
	TAILQ_INIT(&p->spare);
	p->nspare = 0;
}

void
http_response_init(struct upstream_parser *p, bool is_head)
{
	p->state = PS_STATUS;
	p->is_head = is_head;
	p->upgrade = false;
	p->keepalive = false;
	p->errstr = NULL;
	p->scanned = 0;
	p->line_bytes = 0;
	p->head_bytes = 0;
	p->trailer_bytes = 0;
	p->remaining = 0;
	TAILQ_INIT(&p->headers);
	parser_reset_head(p);
}

void
http_response_expect_upgrade(struct upstream_parser *p)
{
	p->upgrade = true;
}

static int
parser_fail(struct upstream_parser *p, const char *errstr)
{
	p->state = PS_ERROR;
	p->errstr = errstr;
	return -1;
}

size_t
http_response_src_avail(const struct http_response_src *src)
{
	return src->buf != NULL ? evbuffer_get_length(src->buf) :
	    src->len - src->off;
}

static void
src_drain(struct http_response_src *src, size_t n)
{
	if (src->buf != NULL)
		evbuffer_drain(src->buf, n);
	else
		src->off += n;
}

/* Move n bytes to body (whole evbuffer chains move without copying). */
static int
src_move(struct http_response_src *src, struct evbuffer *body, size_t n)
{
	if (src->buf != NULL)
		return evbuffer_remove_buffer(src->buf, body, n) < 0 ? -1 : 0;
	if (evbuffer_add(body, src->mem + src->off, n) != 0)
		return -1;
	src->off += n;
	return 0;
}

static size_t
src_copyout(const struct http_response_src *src, void *dst, size_t n)
{
	ev_ssize_t r;

	if (src->buf != NULL) {
		r = evbuffer_copyout(src->buf, dst, n);
		return r < 0 ? 0 : (size_t)r;
	}
	if (n > src->len - src->off)
		n = src->len - src->off;
	memcpy(dst, src->mem + src->off, n);
	return n;
}

/*
 * Find the next CRLF-terminated line in src.  Returns 1 with *line
 * (contiguous, not NUL-terminated) and *len (without the CRLF); the caller
 * drains p->line_bytes.  Returns 0 when no full line is there yet, -1
 * when counted + line would exceed max or the line ends in a bare LF.
 */
static int
parser_line(struct upstream_parser *p, struct http_response_src *src,
    size_t counted, size_t max, const char *toolong, const char **line,
    size_t *len)
{
	struct evbuffer_ptr ptr;
	size_t avail = http_response_src_avail(src), n = 0;
	const unsigned char *l = NULL, *nl;
	bool found = false;

	if (src->buf != NULL) {
		ptr.pos = -1;
		if (p->scanned < avail && evbuffer_ptr_set(src->buf, &ptr,
		    p->scanned, EVBUFFER_PTR_SET) == 0)
			ptr = evbuffer_search(src->buf, "\n", 1, &ptr);
		if (ptr.pos >= 0) {
			found = true;
			n = (size_t)ptr.pos + 1;
		}
	} else if (p->scanned < avail) {
		l = (const unsigned char *)src->mem + src->off;
		nl = memchr(l + p->scanned, '\n', avail - p->scanned);
		if (nl != NULL) {
			found = true;
			n = (size_t)(nl - l) + 1;
		}
	}
	if (!found) {
		p->scanned = avail;
		if (counted + avail > max)
			return parser_fail(p, toolong);
		return 0;
	}
	if (counted + n > max)
		return parser_fail(p, toolong);
	if (src->buf != NULL &&
	    (l = evbuffer_pullup(src->buf, (ev_ssize_t)n)) == NULL)
		return parser_fail(p, "out of memory");
	/* RFC 9112 2.2: lines end in CRLF; a bare LF is not accepted. */
	if (n < 2 || l[n - 2] != '\r')
		return parser_fail(p, "invalid line ending");
	p->scanned = 0;
	p->line_bytes = n;
	*line = (const char *)l;
	*len = n - 2;
	return 1;
}

/* RFC 9112 4: status-line = HTTP-version SP status-code SP [reason]. */
static int
parser_status(struct upstream_parser *p, const char *l, size_t len)
{
	size_t i, n;
	int status;

	if (len < 12 || memcmp(l, "HTTP/", 5) != 0)
		return parser_fail(p, "invalid status line");
	if (l[5] != '1' || l[6] != '.' || l[7] < '0' || l[7] > '9')
		return parser_fail(p, l[5] >= '0' && l[5] <= '9' &&
		    l[6] == '.' ? "unsupported HTTP version" :
		    "invalid status line");
	if (l[8] != ' ' || (len > 12 && l[12] != ' '))
		return parser_fail(p, "invalid status line");
	for (i = 9; i < 12; i++) {
		if (l[i] < '0' || l[i] > '9')
			return parser_fail(p, "invalid status line");
	}
	status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	if (status < 100 || status > 599)
		return parser_fail(p, "invalid status code");
	for (i = 13; i < len; i++) {
		if (!parser_is_text((unsigned char)l[i]))
			return parser_fail(p, "invalid reason phrase");
	}
	parser_reset_head(p);
	p->resp.status = status;
	p->resp.minor = l[7] - '0';
	n = len > 13 ? len - 13 : 0;
	if (n >= sizeof p->reason)
		n = sizeof p->reason - 1;
	memcpy(p->reason, l + 13, n);
	p->reason[n] = '\0';
	return 0;
}

static bool
parser_name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && util_strncaseeq(name, want, len);
}

/* Record what a framing-related field says. */
static int
parser_framing_field(struct upstream_parser *p, const char *name,
    size_t nlen, const char *v, size_t vlen)
{
	const char *s = v, *end = v + vlen, *e;
	uint64_t cl;
	size_t elen;

	if (parser_name_is(name, nlen, "content-length")) {
		/* RFC 9112 6.3: digits only; repeats must agree. */
		if (util_parse_u64(v, vlen, &cl) != 0)
			return parser_fail(p, "invalid Content-Length");
		if (p->n_cl > 0 && cl != p->cl)
			return parser_fail(p,
			    "conflicting Content-Length values");
		p->n_cl++;
		p->cl = cl;
	} else if (parser_name_is(name, nlen, "transfer-encoding")) {
		if (vlen == 0)
			p->n_te++;	/* present but empty: not chunked */
		while (util_list_next(&s, end, &e, &elen)) {
			p->n_te++;
			if (p->te_chunked_last)
				p->te_other = true;	/* chunked twice
							 * or not last */
			if (parser_name_is(e, elen, "chunked"))
				p->te_chunked_last = true;
			else {
				p->te_chunked_last = false;
				p->te_other = true;
			}
		}
		if (p->n_te == 0)
			p->n_te = 1;
	} else if (parser_name_is(name, nlen, "connection")) {
		while (util_list_next(&s, end, &e, &elen)) {
			if (parser_name_is(e, elen, "close"))
				p->conn_close = true;
			else if (parser_name_is(e, elen, "keep-alive"))
				p->conn_keepalive = true;
		}
	}
	return 0;
}

/*
 * RFC 9112 5: field-line = field-name ":" OWS field-value OWS.  No
 * whitespace before the colon, no obs-fold, no CTLs but HTAB in the value.
 * store: keep the entry and look at framing fields (final head only).
 */
static int
parser_field(struct upstream_parser *p, const char *l, size_t len,
    bool store)
{
	struct evkeyval *kv;
	size_t i, v, e;

	if (l[0] == ' ' || l[0] == '\t')
		return parser_fail(p, "obsolete line folding");
	for (i = 0; i < len && util_is_tchar((unsigned char)l[i]); i++)
		;
	if (i == 0 || i == len || l[i] != ':')
		return parser_fail(p, "invalid header field name");
	for (v = i + 1; v < len && (l[v] == ' ' || l[v] == '\t'); v++)
		;
	for (e = len; e > v && (l[e - 1] == ' ' || l[e - 1] == '\t'); e--)
		;
	for (size_t j = v; j < e; j++) {
		if (!parser_is_text((unsigned char)l[j]))
			return parser_fail(p, "invalid header field value");
	}
	if (!store)
		return 0;
	if (parser_framing_field(p, l, i, l + v, e - v) != 0)
		return -1;
	/* Allocated with malloc() as evhttp does, so evhttp can free it. */
	if ((kv = parser_kv_get(p, i, e - v)) == NULL)
		return parser_fail(p, "out of memory");
	memcpy(kv->key, l, i);
	kv->key[i] = '\0';
	memcpy(kv->value, l + v, e - v);
	kv->value[e - v] = '\0';
	TAILQ_INSERT_TAIL(&p->headers, kv, next);
	return 0;
}

/*
 * The empty line ended a head.  Returns 0 for an interim 1xx head (the
 * parser goes back to the status line), 1 for the final head, -1.
 * Message body length: RFC 9112 6.3.
 */
static int
parser_end_head(struct upstream_parser *p)
{
	struct upstream_response *r = &p->resp;

	if (r->status == 101) {
		if (!p->upgrade)
			return parser_fail(p,
			    "unexpected 101 Switching Protocols");
		/*
		 * RFC 9110 15.2.2: the connection switches right after the
		 * empty line; the bytes that follow are not ours to parse.
		 */
		r->body = UPSTREAM_BODY_NONE;
		p->keepalive = false;
		p->state = PS_DONE;
		return 1;
	}
	if (r->status < 200) {
		/* RFC 9110 15.2: interim responses are skipped. */
		p->state = PS_STATUS;
		return 0;
	}
	if (p->n_te > 0) {
		/* RFC 9112 6.1: faulty framing on HTTP/1.0. */
		if (r->minor == 0)
			return parser_fail(p,
			    "Transfer-Encoding in an HTTP/1.0 response");
		/* RFC 9112 6.3 (3): we refuse instead of ignoring CL. */
		if (p->n_cl > 0)
			return parser_fail(p,
			    "both Transfer-Encoding and Content-Length");
		if (!p->te_chunked_last)
			return parser_fail(p,
			    "Transfer-Encoding does not end with chunked");
		if (p->te_other)
			return parser_fail(p, "unsupported transfer coding");
	}
	p->keepalive = !p->conn_close && (r->minor >= 1 || p->conn_keepalive);
	if (p->n_cl > 0)
		r->content_length = p->cl;
	if (p->is_head || r->status == 204 || r->status == 304) {
		r->body = UPSTREAM_BODY_NONE;
		p->state = PS_DONE;
	} else if (p->n_te > 0) {
		r->body = UPSTREAM_BODY_CHUNKED;
		p->state = PS_CHUNK_SIZE;
	} else if (p->n_cl > 0) {
		r->body = p->cl == 0 ? UPSTREAM_BODY_NONE :
		    UPSTREAM_BODY_LENGTH;
		p->remaining = p->cl;
		p->state = p->cl == 0 ? PS_DONE : PS_BODY_LENGTH;
	} else {
		r->body = UPSTREAM_BODY_CLOSE;
		p->keepalive = false;
		p->state = PS_BODY_CLOSE;
	}
	return 1;
}

/*
 * RFC 9112 7.1: chunk-size [ chunk-ext ] CRLF.  Strict hex (no sign, no
 * 0x, no leading space); extensions are checked for CTLs and ignored.
 */
static int
parser_chunk_size(struct upstream_parser *p, const char *l, size_t len)
{
	uint64_t size = 0;
	size_t i;
	unsigned d;

	for (i = 0; i < len; i++) {
		char c = l[i];

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			break;
		if (size > (UINT64_MAX >> 4))
			return parser_fail(p, "chunk size overflow");
		size = (size << 4) | d;
	}
	if (i == 0)
		return parser_fail(p, "invalid chunk size");
	if (i < len) {
		/* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS val ] ) */
		size_t j = i;

		while (j < len && (l[j] == ' ' || l[j] == '\t'))
			j++;
		if (j == len || l[j] != ';')
			return parser_fail(p, "invalid chunk size");
		for (; j < len; j++) {
			if (!parser_is_text((unsigned char)l[j]))
				return parser_fail(p,
				    "invalid chunk extension");
		}
	}
	p->remaining = size;
	p->state = size == 0 ? PS_TRAILERS : PS_CHUNK_DATA;
	return 0;
}

/* Move up to p->remaining body bytes: 1 when they are all there, 0 when
 * more is needed, -1. */
static int
parser_move(struct upstream_parser *p, struct http_response_src *src,
    struct evbuffer *body)
{
	size_t n = http_response_src_avail(src);

	if ((uint64_t)n > p->remaining)
		n = (size_t)p->remaining;
	if (n > 0) {
		if (src_move(src, body, n) != 0)
			return parser_fail(p, "out of memory");
		p->remaining -= n;
	}
	return p->remaining == 0;
}

/* One step on a line-oriented state; 1 goes on, 0 wants more, -1. */
static int
parser_step_line(struct upstream_parser *p, struct http_response_src *src,
    enum upstream_parse *out)
{
	const char *l;
	size_t len;
	int r;

	switch (p->state) {
	case PS_STATUS:
	case PS_HEADERS:
		r = parser_line(p, src, p->head_bytes, UPSTREAM_MAX_HEAD_BYTES,
		    "response header section too large", &l, &len);
		if (r <= 0)
			return r;
		p->head_bytes += p->line_bytes;
		if (p->state == PS_STATUS) {
			r = parser_status(p, l, len);
			p->state = r == 0 ? PS_HEADERS : PS_ERROR;
		} else if (len == 0) {
			r = 0;
		} else
			r = parser_field(p, l, len, p->resp.status >= 200 ||
			    (p->resp.status == 101 && p->upgrade));
		src_drain(src, p->line_bytes);
		if (r != 0)
			return -1;
		if (len == 0 && p->state == PS_HEADERS) {
			r = parser_end_head(p);
			if (r < 0)
				return -1;
			if (r == 1) {
				*out = UPSTREAM_PARSE_HEAD;
				return 0;
			}
		}
		return 1;
	case PS_CHUNK_SIZE:
		r = parser_line(p, src, 0, HTTP_RESPONSE_MAX_CHUNK_LINE,
		    "chunk size line too long", &l, &len);
		if (r <= 0)
			return r;
		r = parser_chunk_size(p, l, len);
		src_drain(src, p->line_bytes);
		return r == 0 ? 1 : -1;
	case PS_TRAILERS:
		/* RFC 9112 7.1.2: trailer fields are read and discarded. */
		r = parser_line(p, src, p->trailer_bytes,
		    UPSTREAM_MAX_HEAD_BYTES, "trailer section too large", &l,
		    &len);
		if (r <= 0)
			return r;
		p->trailer_bytes += p->line_bytes;
		r = len == 0 ? 0 : parser_field(p, l, len, false);
		src_drain(src, p->line_bytes);
		if (r != 0)
			return -1;
		if (len == 0) {
			p->state = PS_DONE;
			*out = UPSTREAM_PARSE_DONE;
			return 0;
		}
		return 1;
	default:
		return parser_fail(p, "parser state");
	}
}

/* Parse what src holds (see upstream_parser_feed). */
enum upstream_parse
http_response_feed_src(struct upstream_parser *p,
    struct http_response_src *src, struct evbuffer *body,
    const char **errstr)
{
	enum upstream_parse out;
	unsigned char crlf[2];
	size_t n;
	int r;

	for (;;) {
		switch (p->state) {
		case PS_STATUS:
		case PS_HEADERS:
		case PS_CHUNK_SIZE:
		case PS_TRAILERS:
			out = UPSTREAM_PARSE_MORE;
			r = parser_step_line(p, src, &out);
			if (r < 0)
				goto fail;
			if (r == 0)
				return out;
			break;
		case PS_BODY_LENGTH:
			if ((r = parser_move(p, src, body)) < 0)
				goto fail;
			if (r == 0)
				return UPSTREAM_PARSE_MORE;
			p->state = PS_DONE;
			return UPSTREAM_PARSE_DONE;
		case PS_CHUNK_DATA:
			if ((r = parser_move(p, src, body)) < 0)
				goto fail;
			if (r == 0)
				return UPSTREAM_PARSE_MORE;
			p->state = PS_CHUNK_CRLF;
			break;
		case PS_CHUNK_CRLF:
			n = src_copyout(src, crlf, 2);
			if ((n >= 1 && crlf[0] != '\r') ||
			    (n == 2 && crlf[1] != '\n')) {
				parser_fail(p, "missing CRLF after chunk data");
				goto fail;
			}
			if (n < 2)
				return UPSTREAM_PARSE_MORE;
			src_drain(src, 2);
			p->state = PS_CHUNK_SIZE;
			break;
		case PS_BODY_CLOSE:
			if ((n = http_response_src_avail(src)) > 0 &&
			    src_move(src, body, n) != 0) {
				parser_fail(p, "out of memory");
				goto fail;
			}
			return UPSTREAM_PARSE_MORE;
		case PS_DONE:
			return UPSTREAM_PARSE_DONE;
		case PS_ERROR:
			goto fail;
		}
	}
fail:
	*errstr = p->errstr;
	return UPSTREAM_PARSE_ERROR;
}

int
http_response_eof(struct upstream_parser *p, const char **errstr)
{
	if (p->state == PS_BODY_CLOSE)
		p->state = PS_DONE;
	if (p->state == PS_DONE)
		return 0;
	if (p->state != PS_ERROR)
		parser_fail(p, "upstream closed the connection before the "
		    "response was complete");
	*errstr = p->errstr;
	return -1;
}

/* New parser for one response. */
struct upstream_parser *
upstream_parser_new(bool is_head)
{
	struct upstream_parser *p;

	if ((p = malloc(sizeof *p)) == NULL)
		return NULL;
	http_response_setup(p);
	http_response_init(p, is_head);
	return p;
}

/* Free a parser and its remaining header entries. */
void
upstream_parser_free(struct upstream_parser *p)
{
	if (p == NULL)
		return;
	http_response_clear_headers(p, false);
	http_response_free_spare(p);
	free(p);
}

/* Parse what in holds. */
enum upstream_parse
upstream_parser_feed(struct upstream_parser *p, struct evbuffer *in,
    struct evbuffer *body, const char **errstr)
{
	struct http_response_src src = { in, NULL, 0, 0 };

	return http_response_feed_src(p, &src, body, errstr);
}

/* The peer closed the connection. */
int
upstream_parser_eof(struct upstream_parser *p, const char **errstr)
{
	return http_response_eof(p, errstr);
}

/* The final response head. */
const struct upstream_response *
upstream_parser_response(const struct upstream_parser *p)
{
	return &p->resp;
}

/* Whether the connection may be reused after this response. */
bool
upstream_parser_keepalive(const struct upstream_parser *p)
{
	return p->keepalive;
}

enum upstream_parse
upstream_parse_buffer(const char *buf, size_t len, bool eof,
    struct evbuffer *body, struct upstream_parser **pp, const char **errstr)
{
	struct evbuffer *in;
	enum upstream_parse pr;
	bool head = false;

	*errstr = NULL;
	if ((*pp = upstream_parser_new(false)) == NULL ||
	    (in = evbuffer_new()) == NULL) {
		*errstr = "out of memory";
		return UPSTREAM_PARSE_ERROR;
	}
	if (evbuffer_add(in, buf, len) != 0) {
		evbuffer_free(in);
		*errstr = "out of memory";
		return UPSTREAM_PARSE_ERROR;
	}
	while ((pr = upstream_parser_feed(*pp, in, body, errstr)) ==
	    UPSTREAM_PARSE_HEAD)
		head = true;
	evbuffer_free(in);
	if (pr == UPSTREAM_PARSE_MORE && head)
		pr = UPSTREAM_PARSE_HEAD;
	if (pr == UPSTREAM_PARSE_ERROR || pr == UPSTREAM_PARSE_DONE || !eof)
		return pr;
	if (upstream_parser_eof(*pp, errstr) == 0)
		return UPSTREAM_PARSE_DONE;
	return head ? UPSTREAM_PARSE_HEAD : UPSTREAM_PARSE_ERROR;
}
