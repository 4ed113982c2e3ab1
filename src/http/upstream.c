/*
 * upstream.c -- our own HTTP/1.1 client for the backends.
 *
 * Each worker holds one struct upstream_pool per route: the resolved
 * backend address, the client TLS context (https) and a LIFO list of idle
 * keep-alive connections.  An exchange (struct upstream_req) takes an idle
 * connection or opens a new one with a non-blocking connect, writes the
 * request the caller serialized, and parses the response with the strict
 * RFC 9112 parser at the top of this file, handing the head and the
 * de-chunked body to the caller's callbacks as they arrive.
 *
 * Every connection has one struct event: first it waits for the connect
 * to finish (with the connect timeout), then it is the timer for the TLS
 * handshake, the response timeout (head wait and gaps between body reads)
 * and the idle timeout.  Read interest stays enabled for the life of a
 * connection (an idle connection that turns readable is closed), which
 * keeps epoll_ctl calls off the request path.
 *
 * https connections are bufferevent_openssl.  http connections have no
 * bufferevent: per exchange the socket sees one sendmsg() of the request
 * (straight from the caller's buffer, kept for a retry) and one recv()
 * into the pool's scratch buffer, from which the response head is parsed
 * in place (no FIONREAD, no evbuffer chain, no epoll_ctl).  Header entries
 * are recycled with the exchange structures, so a steady stream of
 * similar responses allocates none.
 *
 * Lifetimes: the pool is reference counted by its owner, its connections
 * and its exchanges; upstream_pool_free() drops the owner's reference.  An
 * exchange is freed right after done() or by upstream_req_cancel(); a
 * callback that cancels is detected through the busy counter and the free
 * happens when the callback has returned.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "log.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"

#define UPSTREAM_MAX_CHUNK_LINE	4096	/* chunk size + extensions */
#define UPSTREAM_REASON_MAX	128	/* longer reasons are cut */
#define UPSTREAM_IDLE_MS	60000	/* when conf has none (0) */
#define UPSTREAM_FREE_REQS	16	/* spare exchanges per pool */
#define UPSTREAM_READ_SIZE	16384	/* one socket read at most */
#define UPSTREAM_WRITE_IOV	16
#define UPSTREAM_SPARE_KV	32	/* recycled header entries, each */
#define UPSTREAM_SPARE_KEY_MAX	64	/* largest recycled key, value */
#define UPSTREAM_SPARE_VALUE_MAX 512
#define UPSTREAM_DRAIN_MAX	65536	/* response bytes an orphan may read */
#define UPSTREAM_DRAIN_MS	1000	/* and the gap it may wait */

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
	char reason[UPSTREAM_REASON_MAX];
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
struct parser_src {
	struct evbuffer *buf;
	const char *mem;
	size_t len;
	size_t off;
};

enum conn_state {
	CONN_CONNECTING = 0,	/* c->ev waits for writability */
	CONN_HANDSHAKE,		/* TLS, before BEV_EVENT_CONNECTED */
	CONN_BUSY,		/* carrying an exchange */
	CONN_IDLE,		/* in pool->idle */
};

/*
 * A connection.  https: a bufferevent_openssl owns the socket.  http: we
 * drive the socket ourselves (no bufferevent): rev stays armed from the
 * connect to the close (paused exchanges excepted), wev only while a
 * request is partly written, and reads go to the pool's scratch buffer,
 * or to in when earlier bytes are still unparsed.
 */
struct upstream_conn {
	struct upstream_pool *pool;
	enum conn_state state;
	int fd;				/* http: always; https: until the
					 * bev owns it */
	struct bufferevent *bev;	/* https only */
	struct event ev;		/* connect wait, then the timer */
	struct event rev;		/* http: EV_READ | EV_PERSIST */
	struct event wev;		/* http: EV_WRITE | EV_PERSIST */
	struct evbuffer *in;		/* http: read, not yet parsed */
	bool sock_events;		/* http: rev and wev assigned */
	bool rev_on;
	bool wev_on;
	int werr;			/* http: the request write failed */
	struct upstream_req *req;	/* when busy */
	short eof_pending;		/* https: EOF/error seen while
					 * paused */
	TAILQ_ENTRY(upstream_conn) entry;	/* idle list */
};

enum req_state {
	REQ_CONNECTING = 0,
	REQ_WAIT_HEAD,
	REQ_BODY,
	REQ_DONE,		/* inside done() */
	REQ_CANCELLED,
};

struct upstream_req {
	struct upstream_pool *pool;
	struct upstream_conn *conn;
	const struct upstream_cbs *cbs;
	void *arg;
	enum req_state state;
	struct evbuffer *reqbuf;	/* request bytes (kept while retry
					 * is possible) */
	struct evbuffer *body;		/* de-chunked body for body() */
	struct event defer;		/* work for the next loop turn */
	enum upstream_err pending_err;	/* reported by defer */
	const char *pending_errstr;
	unsigned busy;			/* callback nesting depth */
	bool is_head;
	bool retryable;
	bool retried;
	bool reused;
	bool paused;
	bool head_sent;
	bool got_byte;
	bool keep_copy;			/* https: output references
					 * reqbuf */
	bool orphan;			/* cancelled, finishing for the pool */
	size_t drained;			/* orphan: response bytes dropped */
	size_t wrote;			/* http: reqbuf bytes written */
	uint64_t sent_ns;
	uint64_t first_byte_ns;
	struct upstream_parser parser;
	TAILQ_ENTRY(upstream_req) entry;	/* pool->free_reqs */
};

TAILQ_HEAD(upstream_conn_list, upstream_conn);
TAILQ_HEAD(upstream_req_list, upstream_req);

struct upstream_pool {
	struct event_base *base;
	unsigned refs;			/* owner + conns + reqs */
	bool dying;			/* upstream_pool_free() was called */
	char *name;			/* "host:port", for logs */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	SSL_CTX *ssl_ctx;		/* NULL: plain http */
	char *server_name;		/* SNI and verified name */
	bool verify;
	struct timeval connect_tv;
	struct timeval timeout_tv;
	struct timeval idle_tv;
	bool has_connect_tv;
	bool has_timeout_tv;
	unsigned keepalive;
	struct upstream_conn_list idle;
	unsigned nidle;
	struct upstream_req_list free_reqs;
	unsigned nfree;
	struct upstream_req_list orphans;	/* cancelled, still reading */
	uint64_t connects;
	char *scratch;			/* http reads, UPSTREAM_READ_SIZE */
};

struct parser_src;

static void	upstream_connect_cb(evutil_socket_t, short, void *);
static void	upstream_read_cb(struct bufferevent *, void *);
static void	upstream_event_cb(struct bufferevent *, short, void *);
static void	upstream_timer_cb(evutil_socket_t, short, void *);
static void	upstream_defer_cb(evutil_socket_t, short, void *);

static void	upstream_sock_read_cb(evutil_socket_t, short, void *);
static void	upstream_sock_write_cb(evutil_socket_t, short, void *);

static int	req_read(struct upstream_req *, struct parser_src *);
static void	req_finish(struct upstream_req *, enum upstream_err,
		    const char *);
static void	req_abandon(struct upstream_req *, const char *);

/*
 * Response parser.
 */

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
static void
parser_clear_headers(struct upstream_parser *p, bool keep)
{
	struct evkeyval *kv;
	struct parser_kv *pkv;

	while ((kv = TAILQ_FIRST(&p->headers)) != NULL) {
		TAILQ_REMOVE(&p->headers, kv, next);
		pkv = (struct parser_kv *)kv;
		if (keep && p->nspare < UPSTREAM_SPARE_KV &&
		    pkv->kcap <= UPSTREAM_SPARE_KEY_MAX &&
		    pkv->vcap <= UPSTREAM_SPARE_VALUE_MAX) {
			TAILQ_INSERT_HEAD(&p->spare, kv, next);
			p->nspare++;
		} else
			parser_kv_free(kv);
	}
}

static void
parser_free_spare(struct upstream_parser *p)
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

/* Once per parser, before the first parser_init(). */
static void
parser_setup(struct upstream_parser *p)
{
	TAILQ_INIT(&p->spare);
	p->nspare = 0;
}

static void
parser_init(struct upstream_parser *p, bool is_head)
{
	p->state = PS_STATUS;
	p->is_head = is_head;
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

static int
parser_fail(struct upstream_parser *p, const char *errstr)
{
	p->state = PS_ERROR;
	p->errstr = errstr;
	return -1;
}

static size_t
src_avail(const struct parser_src *src)
{
	return src->buf != NULL ? evbuffer_get_length(src->buf) :
	    src->len - src->off;
}

static void
src_drain(struct parser_src *src, size_t n)
{
	if (src->buf != NULL)
		evbuffer_drain(src->buf, n);
	else
		src->off += n;
}

/* Move n bytes to body (whole evbuffer chains move without copying). */
static int
src_move(struct parser_src *src, struct evbuffer *body, size_t n)
{
	if (src->buf != NULL)
		return evbuffer_remove_buffer(src->buf, body, n) < 0 ? -1 : 0;
	if (evbuffer_add(body, src->mem + src->off, n) != 0)
		return -1;
	src->off += n;
	return 0;
}

static size_t
src_copyout(const struct parser_src *src, void *dst, size_t n)
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
parser_line(struct upstream_parser *p, struct parser_src *src,
    size_t counted, size_t max, const char *toolong, const char **line,
    size_t *len)
{
	struct evbuffer_ptr ptr;
	size_t avail = src_avail(src), n = 0;
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

/* Iterate the elements of a comma-separated list (RFC 9110 5.6.1),
 * skipping empty ones; returns false when there are no more. */
static bool
parser_list_next(const char **sp, const char *end, const char **e,
    size_t *elen)
{
	const char *s = *sp, *t;

	for (;;) {
		while (s < end && (*s == ' ' || *s == '\t' || *s == ','))
			s++;
		if (s == end) {
			*sp = s;
			return false;
		}
		t = s;
		while (t < end && *t != ',')
			t++;
		*sp = t;
		while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		*e = s;
		*elen = (size_t)(t - s);
		return true;
	}
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
		while (parser_list_next(&s, end, &e, &elen)) {
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
		while (parser_list_next(&s, end, &e, &elen)) {
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

	if (r->status == 101)
		return parser_fail(p, "unexpected 101 Switching Protocols");
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
parser_move(struct upstream_parser *p, struct parser_src *src,
    struct evbuffer *body)
{
	size_t n = src_avail(src);

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
parser_step_line(struct upstream_parser *p, struct parser_src *src,
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
			r = parser_field(p, l, len, p->resp.status >= 200);
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
		r = parser_line(p, src, 0, UPSTREAM_MAX_CHUNK_LINE,
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

static enum upstream_parse
parser_feed(struct upstream_parser *p, struct parser_src *src,
    struct evbuffer *body, const char **errstr)
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
			if ((n = src_avail(src)) > 0 &&
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

static int
parser_eof(struct upstream_parser *p, const char **errstr)
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
	parser_setup(p);
	parser_init(p, is_head);
	return p;
}

/* Free a parser and its remaining header entries. */
void
upstream_parser_free(struct upstream_parser *p)
{
	if (p == NULL)
		return;
	parser_clear_headers(p, false);
	parser_free_spare(p);
	free(p);
}

/* Parse what in holds. */
enum upstream_parse
upstream_parser_feed(struct upstream_parser *p, struct evbuffer *in,
    struct evbuffer *body, const char **errstr)
{
	struct parser_src src = { in, NULL, 0, 0 };

	return parser_feed(p, &src, body, errstr);
}

/* The peer closed the connection. */
int
upstream_parser_eof(struct upstream_parser *p, const char **errstr)
{
	return parser_eof(p, errstr);
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

/*
 * Pool and connections.
 */

static void
ms_to_tv(uint64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

static void
pool_unref(struct upstream_pool *pool)
{
	struct upstream_req *req;

	if (--pool->refs > 0)
		return;
	while ((req = TAILQ_FIRST(&pool->free_reqs)) != NULL) {
		TAILQ_REMOVE(&pool->free_reqs, req, entry);
		parser_free_spare(&req->parser);
		evbuffer_free(req->reqbuf);
		evbuffer_free(req->body);
		free(req);
	}
	free(pool->scratch);
	if (pool->ssl_ctx != NULL)
		SSL_CTX_free(pool->ssl_ctx);
	free(pool->server_name);
	free(pool->name);
	free(pool);
}

static int
pool_resolve(struct upstream_pool *pool, const struct config_upstream *conf,
    char **cause)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&pool->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&pool->addr;
	struct addrinfo hints, *res;
	char port[8];
	int rc;

	memset(&pool->addr, 0, sizeof pool->addr);
	if (inet_pton(AF_INET, conf->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(conf->port);
		pool->addrlen = sizeof *sin;
		return 0;
	}
	if (inet_pton(AF_INET6, conf->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(conf->port);
		pool->addrlen = sizeof *sin6;
		return 0;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
	snprintf(port, sizeof port, "%u", (unsigned)conf->port);
	if ((rc = getaddrinfo(conf->host, port, &hints, &res)) != 0) {
		xasprintf(cause, "cannot resolve upstream host %s: %s",
		    conf->host, gai_strerror(rc));
		return -1;
	}
	/* The first address only (documented). */
	memcpy(&pool->addr, res->ai_addr, res->ai_addrlen);
	pool->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Create the pool for one backend on base. */
struct upstream_pool *
upstream_pool_new(struct event_base *base, const struct config_upstream *conf,
    SSL_CTX *ssl_ctx, char **cause)
{
	struct upstream_pool *pool;

	if (conf->host == NULL || conf->host[0] == '\0') {
		xasprintf(cause, "upstream %s: no host", conf->url != NULL ?
		    conf->url : "(null)");
		return NULL;
	}
	if (conf->scheme == CONFIG_SCHEME_HTTPS && ssl_ctx == NULL) {
		xasprintf(cause, "upstream %s: https without a TLS context",
		    conf->host);
		return NULL;
	}
	pool = xcalloc(1, sizeof *pool);
	if (pool_resolve(pool, conf, cause) != 0) {
		free(pool);
		return NULL;
	}
	pool->base = base;
	pool->refs = 1;
	xasprintf(&pool->name, "%s:%u", conf->host, (unsigned)conf->port);
	if (ssl_ctx != NULL) {
		SSL_CTX_up_ref(ssl_ctx);
		pool->ssl_ctx = ssl_ctx;
		pool->server_name = xstrdup(conf->tls_server_name != NULL ?
		    conf->tls_server_name : conf->host);
		pool->verify = conf->tls_verify;
	}
	pool->has_connect_tv = conf->connect_timeout_ms > 0;
	ms_to_tv(conf->connect_timeout_ms, &pool->connect_tv);
	pool->has_timeout_tv = conf->timeout_ms > 0;
	ms_to_tv(conf->timeout_ms, &pool->timeout_tv);
	/* routes[].upstream.idle_timeout; a reload builds new pools. */
	ms_to_tv(conf->idle_timeout_ms > 0 ? conf->idle_timeout_ms :
	    UPSTREAM_IDLE_MS, &pool->idle_tv);
	pool->keepalive = conf->keepalive;
	TAILQ_INIT(&pool->idle);
	TAILQ_INIT(&pool->free_reqs);
	TAILQ_INIT(&pool->orphans);
	return pool;
}

/* Close idle connections after ms without use. */
void
upstream_pool_set_idle_timeout(struct upstream_pool *pool, uint64_t ms)
{
	ms_to_tv(ms, &pool->idle_tv);
}

static void
conn_close(struct upstream_conn *c, const char *why)
{
	struct upstream_pool *pool = c->pool;

	log_debug("upstream %s: closing connection: %s", pool->name, why);
	if (c->state == CONN_IDLE) {
		TAILQ_REMOVE(&pool->idle, c, entry);
		pool->nidle--;
	}
	event_del(&c->ev);
	if (c->sock_events) {
		event_del(&c->rev);
		event_del(&c->wev);
	}
	if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	else if (c->fd != -1)
		close(c->fd);
	free(c);
	pool_unref(pool);
}

/* Close idle connections; the last exchange frees the pool. */
void
upstream_pool_free(struct upstream_pool *pool)
{
	struct upstream_conn *c;

	struct upstream_req *req;

	if (pool == NULL)
		return;
	pool->dying = true;
	while ((c = TAILQ_FIRST(&pool->idle)) != NULL)
		conn_close(c, "pool freed");
	/* Nobody waits for the orphans' responses: no reason to wait. */
	while ((req = TAILQ_FIRST(&pool->orphans)) != NULL)
		req_abandon(req, "pool freed");
	pool_unref(pool);
}

static void
conn_arm(struct upstream_conn *c, const struct timeval *tv, bool has)
{
	if (has)
		event_add(&c->ev, tv);
	else
		event_del(&c->ev);
}

static const char *
connect_errstr(int error)
{
	switch (error) {
	case ECONNREFUSED:
		return "upstream connection refused";
	case ENETUNREACH:
	case EHOSTUNREACH:
		return "upstream unreachable";
	default:
		return "upstream connect failed";
	}
}

/* Open a new connection for req; -1 with *errstr when it failed at once. */
static int
conn_open(struct upstream_req *req, const char **errstr)
{
	struct upstream_pool *pool = req->pool;
	struct upstream_conn *c;
	int fd, one = 1;

	pool->connects++;
	fd = socket(pool->addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_debug("upstream %s: socket: %s", pool->name,
		    strerror(errno));
		*errstr = "upstream connect failed";
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&pool->addr, pool->addrlen) == -1 &&
	    errno != EINPROGRESS) {
		log_debug("upstream %s: connect: %s", pool->name,
		    strerror(errno));
		*errstr = connect_errstr(errno);
		close(fd);
		return -1;
	}
	if ((c = calloc(1, sizeof *c)) == NULL) {
		close(fd);
		*errstr = "out of memory";
		return -1;
	}
	c->pool = pool;
	c->fd = fd;
	c->state = CONN_CONNECTING;
	event_assign(&c->ev, pool->base, fd, EV_WRITE, upstream_connect_cb,
	    c);
	event_add(&c->ev, pool->has_connect_tv ? &pool->connect_tv : NULL);
	pool->refs++;
	c->req = req;
	req->conn = c;
	req->state = REQ_CONNECTING;
	return 0;
}

/* http: read interest on or off (epoll_ctl only when it changes). */
static void
conn_rev(struct upstream_conn *c, bool on)
{
	if (c->rev_on == on)
		return;
	c->rev_on = on;
	if (on)
		event_add(&c->rev, NULL);
	else
		event_del(&c->rev);
}

static void
conn_wev(struct upstream_conn *c, bool on)
{
	if (c->wev_on == on)
		return;
	c->wev_on = on;
	if (on)
		event_add(&c->wev, NULL);
	else
		event_del(&c->wev);
}

/*
 * http: write what is left of the request, straight from reqbuf (nothing
 * is drained: the bytes stay for a retry); wev is armed only while some
 * is left.  A failed write is reported by the read side, which the
 * failure makes readable (EOF or reset); the read callback is activated
 * in case it is not.
 */
static void
conn_flush(struct upstream_conn *c)
{
	struct upstream_req *req = c->req;
	struct evbuffer_iovec v[UPSTREAM_WRITE_IOV];
	struct iovec iov[UPSTREAM_WRITE_IOV];
	struct evbuffer_ptr ptr;
	struct msghdr msg;
	size_t total = evbuffer_get_length(req->reqbuf);
	ssize_t w;
	int n, i;

	while (req->wrote < total && c->werr == 0) {
		if (req->wrote == 0)
			n = evbuffer_peek(req->reqbuf, -1, NULL, v,
			    UPSTREAM_WRITE_IOV);
		else {
			if (evbuffer_ptr_set(req->reqbuf, &ptr, req->wrote,
			    EVBUFFER_PTR_SET) != 0)
				break;
			n = evbuffer_peek(req->reqbuf, -1, &ptr, v,
			    UPSTREAM_WRITE_IOV);
		}
		if (n > UPSTREAM_WRITE_IOV)
			n = UPSTREAM_WRITE_IOV;
		for (i = 0; i < n; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		memset(&msg, 0, sizeof msg);
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)n;
		w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (w > 0) {
			req->wrote += (size_t)w;
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			conn_wev(c, true);
			return;
		}
		c->werr = w == -1 ? errno : EPIPE;
		log_debug("upstream %s: write: %s", c->pool->name,
		    strerror(c->werr));
		event_active(&c->rev, EV_READ, 1);
	}
	conn_wev(c, false);
}

/* Write the request on the attached connection and wait for the head. */
static void
req_send(struct upstream_req *req)
{
	struct upstream_conn *c = req->conn;
	struct evbuffer *out;

	req->state = REQ_WAIT_HEAD;
	if (c->bev == NULL) {
		/*
		 * http: write now instead of waiting a loop turn for
		 * writability; wev is armed only on a short write.
		 */
		req->wrote = 0;
		conn_flush(c);
		return;
	}
	out = bufferevent_get_output(c->bev);
	if (req->reused && req->retryable && !req->retried) {
		/* Shared, not copied: resent if the connection was stale. */
		evbuffer_add_buffer_reference(out, req->reqbuf);
		req->keep_copy = true;
	} else
		evbuffer_add_buffer(out, req->reqbuf);
}

static void
conn_ready(struct upstream_conn *c)
{
	struct upstream_req *req = c->req;
	struct upstream_pool *pool = c->pool;

	c->state = CONN_BUSY;
	req->sent_ns = util_mono_ns();
	if (req->paused) {
		if (c->bev != NULL)
			bufferevent_disable(c->bev, EV_READ);
		else
			conn_rev(c, false);
		event_del(&c->ev);
	} else
		conn_arm(c, &pool->timeout_tv, pool->has_timeout_tv);
}

static void
upstream_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_conn *c = arg;
	struct upstream_pool *pool = c->pool;
	struct upstream_req *req = c->req;
	socklen_t len = sizeof(int);
	int error = 0;

	if (what & EV_TIMEOUT) {
		req_finish(req, UPSTREAM_ERR_TIMEOUT,
		    "upstream connect timed out");
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		log_debug("upstream %s: connect: %s", pool->name,
		    strerror(error));
		req_finish(req, UPSTREAM_ERR_CONNECT, connect_errstr(error));
		return;
	}
	if (pool->ssl_ctx == NULL) {
		/* http: our own events on the socket, for its whole life. */
		if ((c->in = evbuffer_new()) == NULL || (pool->scratch ==
		    NULL && (pool->scratch = malloc(UPSTREAM_READ_SIZE)) ==
		    NULL)) {
			req_finish(req, UPSTREAM_ERR_NOMEM,
			    "cannot set up the upstream connection");
			return;
		}
		event_assign(&c->rev, pool->base, fd, EV_READ | EV_PERSIST,
		    upstream_sock_read_cb, c);
		event_assign(&c->wev, pool->base, fd, EV_WRITE | EV_PERSIST,
		    upstream_sock_write_cb, c);
		c->sock_events = true;
		event_assign(&c->ev, pool->base, -1, 0, upstream_timer_cb, c);
		conn_rev(c, true);
		req_send(req);
		conn_ready(c);
		return;
	}
	c->bev = tls_client_bev(pool->base, pool->ssl_ctx, fd,
	    pool->server_name, pool->verify);
	if (c->bev == NULL) {
		req_finish(req, UPSTREAM_ERR_NOMEM,
		    "cannot set up the upstream connection");
		return;
	}
	c->fd = -1;
	bufferevent_setcb(c->bev, upstream_read_cb, NULL, upstream_event_cb,
	    c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	event_assign(&c->ev, pool->base, -1, 0, upstream_timer_cb, c);
	req_send(req);
	/* The request waits in the output during the handshake. */
	c->state = CONN_HANDSHAKE;
	conn_arm(c, &pool->connect_tv, pool->has_connect_tv);
}

/* Put a connection whose exchange completed back on the idle list. */
static void
conn_idle(struct upstream_conn *c)
{
	struct upstream_pool *pool = c->pool;

	c->state = CONN_IDLE;
	c->req = NULL;
	TAILQ_INSERT_HEAD(&pool->idle, c, entry);	/* LIFO */
	pool->nidle++;
	event_add(&c->ev, &pool->idle_tv);
}

static void
req_release_conn(struct upstream_req *req, bool keep, const char *why)
{
	struct upstream_conn *c = req->conn;

	if (c == NULL)
		return;
	req->conn = NULL;
	c->req = NULL;
	if (keep)
		conn_idle(c);
	else
		conn_close(c, why);
}

static void
req_free(struct upstream_req *req)
{
	struct upstream_pool *pool = req->pool;

	event_del(&req->defer);
	if (req->orphan) {
		TAILQ_REMOVE(&pool->orphans, req, entry);
		req->orphan = false;
	}
	if (pool->dying || pool->nfree >= UPSTREAM_FREE_REQS) {
		parser_clear_headers(&req->parser, false);
		parser_free_spare(&req->parser);
		evbuffer_free(req->reqbuf);
		evbuffer_free(req->body);
		free(req);
	} else {
		/* Kept with its buffers and header entries for the next
		 * exchange. */
		parser_clear_headers(&req->parser, true);
		evbuffer_drain(req->reqbuf, evbuffer_get_length(req->reqbuf));
		evbuffer_drain(req->body, evbuffer_get_length(req->body));
		TAILQ_INSERT_HEAD(&pool->free_reqs, req, entry);
		pool->nfree++;
	}
	pool_unref(pool);
}

/* End the exchange: state DONE, done(), free. */
static void
req_done(struct upstream_req *req, enum upstream_err err, const char *errstr)
{
	req->state = REQ_DONE;
	event_del(&req->defer);
	req->busy++;
	req->cbs->done(req, err, errstr, req->head_sent, req->arg);
	req->busy--;
	req_free(req);
}

static void
req_finish(struct upstream_req *req, enum upstream_err err,
    const char *errstr)
{
	log_debug("upstream %s: %s: %s", req->pool->name,
	    upstream_err_name(err), errstr);
	req_release_conn(req, false, errstr);
	req_done(req, err, errstr);
}

/* Report a failure on the next loop turn (never from upstream_request). */
static void
req_fail_later(struct upstream_req *req, enum upstream_err err,
    const char *errstr)
{
	req->pending_err = err;
	req->pending_errstr = errstr;
	event_active(&req->defer, EV_TIMEOUT, 1);
}

/* src: what the exchange was reading (bytes left there: not reusable). */
static void
req_complete(struct upstream_req *req, const struct parser_src *src)
{
	struct upstream_conn *c = req->conn;
	struct upstream_pool *pool = req->pool;
	bool keep;

	keep = upstream_parser_keepalive(&req->parser) && !pool->dying &&
	    pool->nidle < pool->keepalive &&
	    (src == NULL || src_avail(src) == 0);
	if (keep && c->bev != NULL)
		keep = evbuffer_get_length(bufferevent_get_input(c->bev)) ==
		    0 && evbuffer_get_length(bufferevent_get_output(c->bev)) ==
		    0;
	else if (keep)
		keep = evbuffer_get_length(c->in) == 0 && c->werr == 0 &&
		    req->wrote == evbuffer_get_length(req->reqbuf);
	if (req->orphan)
		log_debug("upstream %s: a departed client's response was read; "
		    "connection %s", pool->name, keep ? "kept" : "closed");
	req_release_conn(req, keep, "not reusable");
	req_done(req, UPSTREAM_OK, NULL);
}

/* Returns false when the exchange ended inside the callback. */
static bool
req_call_head(struct upstream_req *req)
{
	int rc;

	req->busy++;
	rc = req->cbs->head(req, &req->parser.resp, req->arg);
	req->busy--;
	if (req->state == REQ_CANCELLED) {
		if (req->busy == 0)
			req_free(req);
		return false;
	}
	if (rc != 0) {
		upstream_req_cancel(req);
		return false;
	}
	return true;
}

static bool
req_call_body(struct upstream_req *req)
{
	req->busy++;
	req->cbs->body(req, req->body, req->arg);
	req->busy--;
	if (req->state == REQ_CANCELLED) {
		if (req->busy == 0)
			req_free(req);
		return false;
	}
	return true;
}

/*
 * Run the parser over what the connection has read.  Returns 0 while the
 * exchange goes on, 1 when it ended (req may be gone).
 */
static int
req_process(struct upstream_req *req, struct parser_src *src)
{
	enum upstream_parse rc;
	const char *errstr = NULL;

	for (;;) {
		if (req->paused)
			return 0;
		rc = parser_feed(&req->parser, src, req->body, &errstr);
		if (rc == UPSTREAM_PARSE_ERROR) {
			req_finish(req, UPSTREAM_ERR_PROTOCOL, errstr);
			return 1;
		}
		if (rc == UPSTREAM_PARSE_HEAD) {
			req->state = REQ_BODY;
			req->head_sent = true;
			if (!req_call_head(req))
				return 1;
			continue;
		}
		if (evbuffer_get_length(req->body) > 0 &&
		    req->cbs->body != NULL) {
			if (!req_call_body(req))
				return 1;
			if (req->paused)
				return 0;
		}
		if (rc == UPSTREAM_PARSE_DONE) {
			req_complete(req, src);
			return 1;
		}
		return 0;
	}
}

static int
req_read(struct upstream_req *req, struct parser_src *src)
{
	struct upstream_conn *c = req->conn;
	struct upstream_pool *pool = req->pool;

	if (!req->got_byte) {
		if (src_avail(src) == 0)
			return 0;
		req->got_byte = true;
		req->first_byte_ns = util_mono_ns();
		if (req->keep_copy) {
			/* No retry from now on: drop our reference. */
			evbuffer_drain(req->reqbuf,
			    evbuffer_get_length(req->reqbuf));
			req->keep_copy = false;
		}
	}
	if (req->orphan) {
		struct timeval tv = { UPSTREAM_DRAIN_MS / 1000,
		    (UPSTREAM_DRAIN_MS % 1000) * 1000 };

		conn_arm(c, &tv, true);
	} else if (!req->paused)
		conn_arm(c, &pool->timeout_tv, pool->has_timeout_tv);
	return req_process(req, src);
}

/* The input of a connection as a parser source. */
static void
conn_src(struct upstream_conn *c, struct parser_src *src)
{
	src->buf = c->bev != NULL ? bufferevent_get_input(c->bev) : c->in;
	src->mem = NULL;
	src->len = src->off = 0;
}

static void
upstream_read_cb(struct bufferevent *bev, void *arg)
{
	struct upstream_conn *c = arg;

	if (c->state == CONN_IDLE) {
		/* RFC 9112 9.3: unsolicited bytes or EOF; not reusable. */
		conn_close(c, "idle connection readable");
		return;
	}
	if (c->req != NULL && c->state == CONN_BUSY) {
		struct parser_src src;

		conn_src(c, &src);
		(void)req_read(c->req, &src);
	}
}

/* The peer closed (or reset) the connection of a busy exchange. */
static void
req_eof(struct upstream_req *req, short what, int err)
{
	const char *errstr;
	bool reset = (what & BEV_EVENT_ERROR) != 0;

	if (!req->got_byte && req->reused && req->retryable &&
	    !req->retried) {
		/* A stale keep-alive connection: send again, once. */
		log_debug("upstream %s: reused connection closed, retrying",
		    req->pool->name);
		req_release_conn(req, false, "stale keep-alive connection");
		req->retried = true;
		req->reused = false;
		req->keep_copy = false;
		if (conn_open(req, &errstr) != 0)
			req_done(req, UPSTREAM_ERR_CONNECT, errstr);
		return;
	}
	if (!reset && parser_eof(&req->parser, &errstr) == 0) {
		req_complete(req, NULL);
		return;
	}
	if (reset) {
		log_debug("upstream %s: connection error: %s",
		    req->pool->name, strerror(err));
		errstr = "upstream connection reset";
	} else
		errstr = "upstream closed the connection before the response "
		    "was complete";
	req_finish(req, UPSTREAM_ERR_RESET, errstr);
}

static const char *
tls_failure(struct upstream_conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	unsigned long e;
	long vr;
	char *errs;

	while ((e = bufferevent_get_openssl_error(c->bev)) != 0) {
		char buf[256];

		ERR_error_string_n(e, buf, sizeof buf);
		log_debug("upstream %s: TLS: %s", c->pool->name, buf);
	}
	if (ERR_peek_error() != 0) {
		errs = tls_errors();
		log_debug("upstream %s: TLS: %s", c->pool->name, errs);
		free(errs);
	}
	if (ssl != NULL && (vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		log_debug("upstream %s: certificate: %s", c->pool->name,
		    X509_verify_cert_error_string(vr));
		return "upstream TLS certificate verification failed";
	}
	return "upstream TLS handshake failed";
}

static void
upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct upstream_conn *c = arg;
	struct upstream_req *req = c->req;
	struct parser_src src;

	if (c->state == CONN_IDLE) {
		conn_close(c, "idle connection closed by the upstream");
		return;
	}
	if (c->state == CONN_HANDSHAKE) {
		if (what & BEV_EVENT_CONNECTED) {
			conn_ready(c);
			return;
		}
		req_finish(req, UPSTREAM_ERR_TLS, tls_failure(c));
		return;
	}
	if (what & BEV_EVENT_CONNECTED)
		return;
	conn_src(c, &src);
	if (src_avail(&src) > 0 && !req->paused && req_read(req, &src) != 0)
		return;
	if (req->paused) {
		/* Seen again when the caller resumes. */
		c->eof_pending = what;
		return;
	}
	req_eof(req, what, errno);
}

/*
 * http: the socket is readable.  Reads go to the pool's scratch buffer
 * and are parsed from there when nothing older waits in c->in and the
 * parser is reading lines (the common case: the whole response head, no
 * evbuffer chain allocated for it); body reads, and reads after a partial
 * line or a pause, go to c->in, whose chains then move to the body
 * without copying.  What the exchange leaves unparsed is kept in c->in.
 */
static void
upstream_sock_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_conn *c = arg;
	struct upstream_pool *pool = c->pool;
	struct upstream_req *req = c->req;
	struct evbuffer_iovec v[2];
	struct parser_src src;
	enum parser_state ps;
	ssize_t n;
	int nv, err;

	if (c->state == CONN_IDLE) {
		/* RFC 9112 9.3: unsolicited bytes or EOF; not reusable. */
		conn_close(c, "idle connection readable");
		return;
	}
	if (req == NULL || c->state != CONN_BUSY || req->paused)
		return;
	ps = req->parser.state;
	if (evbuffer_get_length(c->in) == 0 && (ps == PS_STATUS ||
	    ps == PS_HEADERS || ps == PS_CHUNK_SIZE || ps == PS_TRAILERS)) {
		do
			n = recv(fd, pool->scratch, UPSTREAM_READ_SIZE, 0);
		while (n == -1 && errno == EINTR);
		src.buf = NULL;
		src.mem = pool->scratch;
		src.len = n > 0 ? (size_t)n : 0;
		src.off = 0;
	} else {
		nv = evbuffer_reserve_space(c->in, UPSTREAM_READ_SIZE, v, 2);
		if (nv <= 0) {
			req_finish(req, UPSTREAM_ERR_NOMEM, "out of memory");
			return;
		}
		do
			n = readv(fd, (struct iovec *)v, nv);
		while (n == -1 && errno == EINTR);
		if (n > 0) {
			if (v[0].iov_len > (size_t)n) {
				v[0].iov_len = (size_t)n;
				nv = 1;
			} else
				v[1].iov_len = (size_t)n - v[0].iov_len;
		}
		evbuffer_commit_space(c->in, v, n > 0 ? nv : 0);
		conn_src(c, &src);
	}
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		if (c->werr == 0)
			return;
		/* The request could not be written: as a reset. */
		req_eof(req, BEV_EVENT_ERROR, c->werr);
		return;
	}
	if (n <= 0) {
		err = n == 0 ? 0 : errno;
		req_eof(req, n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR, err);
		return;
	}
	if (req_read(req, &src) != 0)
		return;
	if (src.buf == NULL && src.off < src.len &&
	    evbuffer_add(c->in, src.mem + src.off, src.len - src.off) != 0)
		req_finish(req, UPSTREAM_ERR_NOMEM, "out of memory");
}

/* http: the rest of the request can be written. */
static void
upstream_sock_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_conn *c = arg;

	if (c->req == NULL || c->state != CONN_BUSY) {
		conn_wev(c, false);
		return;
	}
	conn_flush(c);
}

static void
upstream_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_conn *c = arg;

	if (c->state == CONN_IDLE) {
		conn_close(c, "idle timeout");
		return;
	}
	req_finish(c->req, UPSTREAM_ERR_TIMEOUT,
	    c->state == CONN_HANDSHAKE ? "upstream TLS handshake timed out" :
	    "upstream response timed out");
}

static void
upstream_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_req *req = arg;
	struct upstream_conn *c = req->conn;
	struct parser_src src;
	short eof;

	if (req->pending_errstr != NULL) {
		req_done(req, req->pending_err, req->pending_errstr);
		return;
	}
	/* Resumed: parse what was read while paused, then a pending EOF. */
	if (c == NULL || c->state != CONN_BUSY || req->paused)
		return;
	conn_src(c, &src);
	if (req_read(req, &src) != 0 || req->paused)
		return;
	if ((eof = c->eof_pending) != 0) {
		c->eof_pending = 0;
		req_eof(req, eof, errno);
	}
}

/* Start an exchange. */
struct upstream_req *
upstream_request(struct upstream_pool *pool, struct evbuffer *request,
    bool is_head, bool retryable, const struct upstream_cbs *cbs, void *arg)
{
	struct upstream_req *req;
	struct upstream_conn *c;
	const char *errstr;

	if ((req = TAILQ_FIRST(&pool->free_reqs)) != NULL) {
		TAILQ_REMOVE(&pool->free_reqs, req, entry);
		pool->nfree--;
	} else {
		if ((req = malloc(sizeof *req)) == NULL)
			return NULL;
		parser_setup(&req->parser);
		req->reqbuf = evbuffer_new();
		req->body = evbuffer_new();
		if (req->reqbuf == NULL || req->body == NULL) {
			if (req->reqbuf != NULL)
				evbuffer_free(req->reqbuf);
			if (req->body != NULL)
				evbuffer_free(req->body);
			free(req);
			return NULL;
		}
	}
	req->pool = pool;
	req->conn = NULL;
	req->cbs = cbs;
	req->arg = arg;
	req->state = REQ_CONNECTING;
	req->pending_err = UPSTREAM_OK;
	req->pending_errstr = NULL;
	req->busy = 0;
	req->is_head = is_head;
	req->retryable = retryable;
	req->retried = false;
	req->reused = false;
	req->paused = false;
	req->head_sent = false;
	req->got_byte = false;
	req->keep_copy = false;
	req->orphan = false;
	req->drained = 0;
	req->wrote = 0;
	req->sent_ns = 0;
	req->first_byte_ns = 0;
	parser_init(&req->parser, is_head);
	event_assign(&req->defer, pool->base, -1, 0, upstream_defer_cb, req);
	pool->refs++;
	evbuffer_add_buffer(req->reqbuf, request);

	if ((c = TAILQ_FIRST(&pool->idle)) != NULL) {
		TAILQ_REMOVE(&pool->idle, c, entry);
		pool->nidle--;
		c->state = CONN_BUSY;
		c->req = req;
		c->eof_pending = 0;
		req->conn = c;
		req->reused = true;
		req_send(req);
		conn_ready(c);
	} else if (conn_open(req, &errstr) != 0)
		req_fail_later(req, UPSTREAM_ERR_CONNECT, errstr);
	return req;
}

/* Stop reading the response. */
void
upstream_req_pause(struct upstream_req *req)
{
	struct upstream_conn *c = req->conn;

	if (req->paused || req->state >= REQ_DONE)
		return;
	req->paused = true;
	if (c != NULL && c->state == CONN_BUSY) {
		if (c->bev != NULL)
			bufferevent_disable(c->bev, EV_READ);
		else
			conn_rev(c, false);
		event_del(&c->ev);
	}
}

/* Read again; what was read meanwhile is handled on the next turn. */
void
upstream_req_resume(struct upstream_req *req)
{
	struct upstream_conn *c = req->conn;
	struct upstream_pool *pool = req->pool;

	if (!req->paused || req->state >= REQ_DONE)
		return;
	req->paused = false;
	if (c != NULL && c->state == CONN_BUSY) {
		if (c->bev != NULL)
			bufferevent_enable(c->bev, EV_READ);
		else
			conn_rev(c, true);
		conn_arm(c, &pool->timeout_tv, pool->has_timeout_tv);
		event_active(&req->defer, EV_TIMEOUT, 1);
	}
}

/*
 * The callbacks of an orphan: the client is gone, the response is read and
 * dropped so that the connection can go back to the pool.
 */
static int
orphan_head_cb(struct upstream_req *req, const struct upstream_response *r,
    void *arg)
{
	(void)req;
	(void)r;
	(void)arg;
	return 0;
}

static void
orphan_body_cb(struct upstream_req *req, struct evbuffer *buf, void *arg)
{
	size_t n = evbuffer_get_length(buf);

	(void)arg;
	evbuffer_drain(buf, n);
	req->drained += n;
	if (req->drained > UPSTREAM_DRAIN_MAX)	/* cheaper to close */
		req_abandon(req, "orphan response too large");
}

static void
orphan_done_cb(struct upstream_req *req, enum upstream_err err,
    const char *errstr, bool head_sent, void *arg)
{
	(void)req;
	(void)err;
	(void)errstr;
	(void)head_sent;
	(void)arg;
}

static const struct upstream_cbs orphan_cbs = {
	orphan_head_cb, orphan_body_cb, orphan_done_cb,
};

/*
 * Whether a cancelled exchange should rather finish without its owner:
 * its request is all out on a live connection that the pool would keep.
 * Closing it there (as we did) cost a new connection for every client
 * that went away with a request in flight, e.g. each of a load
 * generator's connections at the end of a run (issue 11: 498 upstream
 * connections where nginx, which reads the response first, opened 40).
 */
static bool
req_can_orphan(const struct upstream_req *req)
{
	const struct upstream_conn *c = req->conn;
	const struct upstream_pool *pool = req->pool;

	if (req->busy > 0 || req->orphan || c == NULL ||
	    c->state != CONN_BUSY || pool->dying ||
	    pool->nidle >= pool->keepalive ||
	    (req->state != REQ_WAIT_HEAD && req->state != REQ_BODY))
		return false;
	if (c->bev != NULL)
		return evbuffer_get_length(bufferevent_get_output(c->bev)) ==
		    0;
	return c->werr == 0 && req->wrote == evbuffer_get_length(req->reqbuf);
}

/*
 * Abandon the exchange without further callbacks.  When the connection is
 * worth keeping, the response is still read (at most UPSTREAM_DRAIN_MAX
 * bytes, gaps of UPSTREAM_DRAIN_MS) and dropped, then the connection goes
 * back to the pool; otherwise it is closed now.
 */
void
upstream_req_cancel(struct upstream_req *req)
{
	if (req == NULL || req->state >= REQ_DONE || req->orphan)
		return;
	if (req_can_orphan(req)) {
		struct timeval tv = { UPSTREAM_DRAIN_MS / 1000,
		    (UPSTREAM_DRAIN_MS % 1000) * 1000 };

		log_debug("upstream %s: exchange cancelled, reading the "
		    "response for the pool", req->pool->name);
		req->orphan = true;
		TAILQ_INSERT_TAIL(&req->pool->orphans, req, entry);
		req->retryable = false;
		req->cbs = &orphan_cbs;
		req->arg = NULL;
		if (req->paused)
			upstream_req_resume(req);
		conn_arm(req->conn, &tv, true);
		return;
	}
	req_abandon(req, "exchange cancelled");
}

/* End the exchange now, without callbacks; its connection is closed. */
static void
req_abandon(struct upstream_req *req, const char *why)
{
	req->state = REQ_CANCELLED;
	req_release_conn(req, false, why);
	event_del(&req->defer);
	if (req->busy == 0)
		req_free(req);
}

/* When the request started going out on a ready connection. */
uint64_t
upstream_req_sent_ns(const struct upstream_req *req)
{
	return req->sent_ns;
}

/* When the first response byte arrived. */
uint64_t
upstream_req_first_byte_ns(const struct upstream_req *req)
{
	return req->first_byte_ns;
}

/* Whether the exchange ran on a reused connection. */
bool
upstream_req_reused(const struct upstream_req *req)
{
	return req->reused;
}

/* Connections opened since the pool was created. */
uint64_t
upstream_pool_connects(const struct upstream_pool *pool)
{
	return pool->connects;
}

/* Idle connections kept now. */
unsigned
upstream_pool_idle(const struct upstream_pool *pool)
{
	return pool->nidle;
}

/* Text for an error kind. */
const char *
upstream_err_name(enum upstream_err err)
{
	switch (err) {
	case UPSTREAM_OK:
		return "ok";
	case UPSTREAM_ERR_CONNECT:
		return "connect";
	case UPSTREAM_ERR_TIMEOUT:
		return "timeout";
	case UPSTREAM_ERR_RESET:
		return "reset";
	case UPSTREAM_ERR_PROTOCOL:
		return "protocol";
	case UPSTREAM_ERR_TLS:
		return "tls";
	case UPSTREAM_ERR_NOMEM:
		return "nomem";
	}
	return "unknown";
}
