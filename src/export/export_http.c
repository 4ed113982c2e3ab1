/*
 * export_http.c -- the exporter's own tiny HTTP/1.1 client: one
 * keep-alive connection to the Agent or collector (struct export_client),
 * reused from batch to batch and opened again when the peer closed it,
 * over a bufferevent on the exporter's event base: http://host:port,
 * https://host:port (OpenSSL, verified as the upstream client verifies:
 * proto/tls.c) or a unix socket (the Agent's apm.socket).  Each exchange
 * has one overall timeout so that a stalled agent (accepts, never
 * answers) costs a timer and nothing else.  The client adds the
 * configured headers (an API key) and, for OTLP, gzips the body
 * (zlib).  Responses are read by the strict response parser of the
 * upstream client (http_response.c).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <zlib.h>

#include "config.h"
#include "export_int.h"
#include "http_response.h"
#include "log.h"
#include "tls.h"
#include "url.h"
#include "util.h"

#define EXPORT_HTTP_MAX_HEAD	65536
#define EXPORT_HTTP_MAX_BODY	(1024 * 1024)
/*
 * A body (a batch: up to 8 MiB) goes out in pieces of EXPORT_HTTP_PIECE
 * bytes: the next piece is handed to the bufferevent only once the last
 * one is written, and, when the exchange asks for it
 * (export_http_set_yield), after export_give_way().  On loopback the
 * receiver's side of each piece runs inside the sender's system call; a
 * bounded piece keeps each call short, and the pause between pieces is
 * where a worker waiting for the core gets it back: a kernel without
 * full preemption and a 4 ms tick would otherwise let this thread keep
 * the core until it blocks (issue 11, docs/architecture.md "The exporter
 * thread and the tail").  A piece and the request head fit one writev.
 */
#define EXPORT_HTTP_PIECE	(64 * 1024)
#define EXPORT_HTTP_MAX_WRITE	(EXPORT_HTTP_PIECE + 4096)

/*
 * The client of one target: its address, TLS context, extra headers and
 * compression, and the one connection it keeps (idle between exchanges,
 * or carrying the current one).
 */
struct export_client {
	struct event_base	*base;
	const struct export_url	*url;		/* the caller's */
	SSL_CTX			*ssl;		/* https, else NULL */
	char			*headers;	/* configured header lines */
	bool			 gzip;
	struct bufferevent	*bev;		/* the kept connection */
	struct export_http	*cur;		/* the exchange on it */
	uint64_t		 connects;
};

struct export_http {
	struct export_client	*c;
	struct event		*timer;
	export_http_cb		 cb;
	void			*arg;
	char			*fail;		/* deferred failure */
	struct upstream_parser	*parser;
	struct evbuffer		*rbody;		/* response body so far */
	char			*head;		/* request head, for a resend */
	const char		*body;		/* the caller's or zbody */
	size_t			 body_len;
	size_t			 body_off;	/* handed to the bufferevent */
	unsigned char		*zbody;		/* the gzipped body, owned */
	bool			 yield;		/* give way between pieces */
	bool			 reused;	/* on a kept connection */
	bool			 got_bytes;	/* the answer has begun */
};

static void client_idle_setcb(struct export_client *);
static int http_open(struct export_http *, char **why);

/*
 * Parse url (http://, https:// or unix://, url.c) with default_path when
 * it has none (always for unix sockets).
 */
int
export_url_parse(const char *url, const char *default_path,
    struct export_url *u, char **cause)
{
	struct url pu;
	const char *errstr;
	char port[8];

	memset(u, 0, sizeof *u);
	if (url_parse(url, URL_UNIX, &pu, &errstr) != 0) {
		if (pu.scheme == URL_SCHEME_UNIX)
			xasprintf(cause, "%s: bad unix socket path", url);
		else
			xasprintf(cause, "%s: %s", url,
			    pu.scheme == URL_SCHEME_NONE ? "only http://, "
			    "https:// and unix:// are supported" : errstr);
		return -1;
	}
	if (pu.scheme == URL_SCHEME_UNIX && strlen(pu.host) >=
	    sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
		url_clear(&pu);
		xasprintf(cause, "%s: bad unix socket path", url);
		return -1;
	}
	u->unix_socket = pu.scheme == URL_SCHEME_UNIX;
	u->tls = pu.scheme == URL_SCHEME_HTTPS;
	snprintf(port, sizeof port, "%u", (unsigned)pu.port);
	u->port = xstrdup(u->unix_socket ? "" : port);
	u->path = xstrdup(pu.path[0] != '\0' ? pu.path : default_path);
	u->host = pu.host;
	u->host_header = pu.authority;
	pu.host = pu.authority = NULL;
	url_clear(&pu);
	return 0;
}

/* Free the strings of a parsed URL. */
void
export_url_clear(struct export_url *u)
{
	free(u->host);
	free(u->port);
	free(u->path);
	free(u->host_header);
	memset(u, 0, sizeof *u);
}

/* Free a response's strings. */
void
export_http_resp_clear(struct export_http_resp *r)
{
	free(r->body);
	free(r->error);
	memset(r, 0, sizeof *r);
}

static int
resp_error(struct export_http_resp *r, const char *why)
{
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
	free(r->error);
	r->error = xstrdup(why);
	r->status = 0;
	return -1;
}

/*
 * Parse a response from buf with the one response parser (http_response.c,
 * RFC 9112: status line, fields, interim 1xx skipped, Content-Length,
 * chunked or close-delimited body); see export_int.h.
 */
int
export_http_parse(const char *buf, size_t len, bool eof,
    struct export_http_resp *r)
{
	struct upstream_parser *p = NULL;
	struct evbuffer *body;
	enum upstream_parse pr;
	const char *errstr = NULL;
	size_t blen;
	int rv;

	memset(r, 0, sizeof *r);
	if (len == 0 && eof)
		return resp_error(r, "connection closed without a response");
	if ((body = evbuffer_new()) == NULL)
		return resp_error(r, "out of memory");
	pr = upstream_parse_buffer(buf, len, eof, body, &p, &errstr);
	if (pr == UPSTREAM_PARSE_ERROR ||
	    (eof && pr != UPSTREAM_PARSE_DONE)) {
		rv = resp_error(r, errstr);
		goto out;
	}
	if ((blen = evbuffer_get_length(body)) > EXPORT_HTTP_MAX_BODY) {
		rv = resp_error(r, "response body too long");
		goto out;
	}
	if (pr != UPSTREAM_PARSE_DONE) {
		rv = 0;			/* more to read */
		goto out;
	}
	r->status = upstream_parser_response(p)->status;
	if (upstream_parser_response(p)->body != UPSTREAM_BODY_NONE ||
	    blen > 0) {
		r->body = xmalloc(blen + 1);
		evbuffer_remove(body, r->body, blen);
		r->body[blen] = '\0';
		r->body_len = blen;
	} else if (upstream_parser_response(p)->content_length == 0 &&
	    r->status != 204 && r->status != 304)
		r->body = xstrdup("");	/* Content-Length: 0 */
	rv = 1;
out:
	upstream_parser_free(p);
	evbuffer_free(body);
	return rv;
}

/* Close the kept connection (NULL-safe as to the connection). */
static void
client_close(struct export_client *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
}

/* Free one exchange: its timer, parser and buffers, never its client. */
static void
http_free(struct export_http *h)
{
	if (h->timer != NULL)
		event_free(h->timer);
	upstream_parser_free(h->parser);
	if (h->rbody != NULL)
		evbuffer_free(h->rbody);
	free(h->head);
	free(h->zbody);
	free(h->fail);
	free(h);
}

/*
 * End the exchange: keep the connection for the next one when the answer
 * allows it, else close it; call back once and free everything.
 */
static void
http_finish(struct export_http *h, struct export_http_resp *r, bool keep)
{
	export_http_cb cb = h->cb;
	void *arg = h->arg;
	struct export_client *c = h->c;

	c->cur = NULL;
	if (keep && c->bev != NULL)
		client_idle_setcb(c);
	else
		client_close(c);
	http_free(h);
	cb(r, arg);
	export_http_resp_clear(r);
}

static void
http_fail(struct export_http *h, const char *why)
{
	struct export_http_resp r;

	memset(&r, 0, sizeof r);
	r.error = xstrdup(why);
	http_finish(h, &r, false);
}

/*
 * A kept connection failed before any byte of the answer: the peer had
 * closed it while it was idle (the close crossed our request).  Send the
 * request once more on a new connection; the request never reached a
 * peer that answers it, so the backoff and its attempts are not spent.
 * 0 when resent.
 */
static int
http_resend(struct export_http *h)
{
	char *why = NULL;

	if (!h->reused || h->got_bytes)
		return -1;
	log_debug("export: the kept connection was closed, reconnecting");
	client_close(h->c);
	h->reused = false;
	h->body_off = 0;
	upstream_parser_free(h->parser);
	if ((h->parser = upstream_parser_new(false)) == NULL)
		fatalx("export: out of memory");
	if (http_open(h, &why) != 0) {
		http_fail(h, why);
		free(why);
	}
	return 0;
}

/* Parse what arrived so far; eof: the peer closed. */
static void
http_try(struct export_http *h, bool eof)
{
	struct evbuffer *in = bufferevent_get_input(h->c->bev);
	const struct upstream_response *resp;
	struct export_http_resp r;
	enum upstream_parse pr;
	const char *errstr = NULL;
	size_t blen;
	bool keep;

	if (evbuffer_get_length(in) > 0)
		h->got_bytes = true;
	if (eof && !h->got_bytes && http_resend(h) == 0)
		return;
	do
		pr = upstream_parser_feed(h->parser, in, h->rbody, &errstr);
	while (pr == UPSTREAM_PARSE_HEAD);
	if (pr == UPSTREAM_PARSE_MORE && eof) {
		if (upstream_parser_eof(h->parser, &errstr) == 0)
			pr = UPSTREAM_PARSE_DONE;
		else
			pr = UPSTREAM_PARSE_ERROR;
	}
	if (pr == UPSTREAM_PARSE_ERROR) {
		http_fail(h, errstr != NULL ? errstr : (eof && !h->got_bytes ?
		    "connection closed without a response" :
		    "malformed response"));
		return;
	}
	if ((blen = evbuffer_get_length(h->rbody)) > EXPORT_HTTP_MAX_BODY) {
		http_fail(h, "response body too long");
		return;
	}
	if (pr != UPSTREAM_PARSE_DONE)
		return;
	resp = upstream_parser_response(h->parser);
	memset(&r, 0, sizeof r);
	r.status = resp->status;
	if (resp->body != UPSTREAM_BODY_NONE || blen > 0) {
		r.body = xmalloc(blen + 1);
		evbuffer_remove(h->rbody, r.body, blen);
		r.body[blen] = '\0';
		r.body_len = blen;
	} else if (resp->content_length == 0 && r.status != 204 &&
	    r.status != 304)
		r.body = xstrdup("");	/* Content-Length: 0 */
	/*
	 * Keep the connection when the answer says so (RFC 9112 9.3: no
	 * "Connection: close", not close-delimited), the peer did not
	 * close, and it sent nothing beyond the answer.
	 */
	keep = !eof && upstream_parser_keepalive(h->parser) &&
	    evbuffer_get_length(in) == 0 && h->body_off == h->body_len &&
	    evbuffer_get_length(bufferevent_get_output(h->c->bev)) == 0;
	http_finish(h, &r, keep);
}

static void
http_readcb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	http_try(arg, false);
}

/* Hand the next piece of the body to the bufferevent (by reference). */
static void
http_piece(struct export_http *h)
{
	size_t n = h->body_len - h->body_off;

	if (n == 0)
		return;
	if (n > EXPORT_HTTP_PIECE)
		n = EXPORT_HTTP_PIECE;
	if (evbuffer_add_reference(bufferevent_get_output(h->c->bev),
	    h->body + h->body_off, n, NULL, NULL) != 0)
		fatalx("export: out of memory");
	h->body_off += n;
}

/* The last piece is written: give the core away, then the next one. */
static void
http_writecb(struct bufferevent *bev, void *arg)
{
	struct export_http *h = arg;

	(void)bev;
	if (h->body_off == h->body_len)
		return;
	if (h->yield)
		export_give_way();
	http_piece(h);
}

/*
 * Why a TLS connection failed, when OpenSSL says it did: the certificate
 * (its verification result) or the handshake; false when the failure was
 * the socket's.
 */
static bool
http_tls_why(struct export_http *h, char *why, size_t cap)
{
	SSL *ssl = bufferevent_openssl_get_ssl(h->c->bev);
	unsigned long e;
	long vr;
	char buf[256];
	bool tls = false;

	buf[0] = '\0';
	while ((e = bufferevent_get_openssl_error(h->c->bev)) != 0) {
		ERR_error_string_n(e, buf, sizeof buf);
		tls = true;
	}
	ERR_clear_error();
	if (ssl != NULL && (vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(why, cap, "TLS certificate verification failed: %s",
		    X509_verify_cert_error_string(vr));
		return true;
	}
	if (tls)
		snprintf(why, cap, "TLS handshake failed: %s", buf);
	return tls;
}

static void
http_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct export_http *h = arg;
	char why[320];
	int err = EVUTIL_SOCKET_ERROR();

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_EOF) {
		http_try(h, true);
		return;
	}
	if (!h->got_bytes && http_resend(h) == 0)
		return;
	if (h->c->ssl == NULL || !http_tls_why(h, why, sizeof why))
		snprintf(why, sizeof why, "%s", err != 0 ?
		    evutil_socket_error_to_string(err) :
		    "connection failed");
	http_fail(h, why);
}

static void
http_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct export_http *h = arg;
	char *why;

	(void)fd;
	(void)what;
	if (h->fail != NULL) {
		why = h->fail;
		h->fail = NULL;
		http_fail(h, why);
		free(why);
		return;
	}
	http_fail(h, "timeout");
}

/* Resolve the target into ss; -1 with *why. */
static int
http_resolve(const struct export_url *u, struct sockaddr_storage *ss,
    socklen_t *sslen, char **why)
{
	struct addrinfo hints, *res;
	int rv;

	memset(ss, 0, sizeof *ss);
	if (u->unix_socket) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;

		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof sun->sun_path, "%s", u->host);
		*sslen = sizeof *sun;
		return 0;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rv = getaddrinfo(u->host, u->port, &hints, &res)) != 0) {
		xasprintf(why, "%s: %s", u->host, gai_strerror(rv));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Set the exchange's callbacks on the connection and queue the request. */
static void
http_attach(struct export_http *h)
{
	struct bufferevent *bev = h->c->bev;

	h->c->cur = h;
	bufferevent_setcb(bev, http_readcb, http_writecb, http_eventcb, h);
	/*
	 * A piece per writev (EXPORT_HTTP_PIECE), not the bufferevent's
	 * default 16 KB per loop iteration (more calls) nor the whole body
	 * in one call (a long one).
	 */
	(void)bufferevent_set_max_single_write(bev, EXPORT_HTTP_MAX_WRITE);
	evbuffer_add(bufferevent_get_output(bev), h->head, strlen(h->head));
	http_piece(h);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/*
 * Open a new connection for h (the client has none) and queue the
 * request on it; -1 with *why when that failed at once.
 */
static int
http_open(struct export_http *h, char **why)
{
	struct export_client *c = h->c;
	struct sockaddr_storage ss;
	socklen_t sslen;
	int one = 1;

	if (http_resolve(c->url, &ss, &sslen, why) != 0)
		return -1;
	if (c->ssl != NULL)
		c->bev = tls_client_bev(c->base, c->ssl, -1, c->url->host,
		    true);
	else
		c->bev = bufferevent_socket_new(c->base, -1,
		    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		xasprintf(why, "cannot set up the connection");
		return -1;
	}
	c->connects++;
	http_attach(h);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss,
	    (int)sslen) != 0) {
		xasprintf(why, "connect: %s", strerror(errno));
		client_close(c);
		return -1;
	}
	if (!c->url->unix_socket)
		(void)setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP,
		    TCP_NODELAY, &one, sizeof one);
	return 0;
}

/* The kept connection, idle: the peer closed it or sent garbage. */
static void
client_idle_readcb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	log_debug("export: unexpected bytes on the idle connection");
	client_close(arg);
}

static void
client_idle_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	log_debug("export: the peer closed the idle connection");
	client_close(arg);
}

static void
client_idle_setcb(struct export_client *c)
{
	bufferevent_setcb(c->bev, client_idle_readcb, NULL,
	    client_idle_eventcb, c);
	bufferevent_enable(c->bev, EV_READ);
}

/*
 * gzip body into *out (RFC 1952 via zlib's deflate with a gzip wrapper:
 * windowBits 15 + 16); -1 when zlib fails.
 */
static int
http_gzip(const char *body, size_t len, unsigned char **out, size_t *olen)
{
	z_stream z;
	uLong cap;
	int rv;

	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	cap = deflateBound(&z, (uLong)len) + 32;
	*out = xmalloc(cap);
	z.next_in = (Bytef *)(uintptr_t)body;
	z.avail_in = (uInt)len;
	z.next_out = *out;
	z.avail_out = (uInt)cap;
	rv = deflate(&z, Z_FINISH);
	*olen = (size_t)z.total_out;
	deflateEnd(&z);
	if (rv != Z_STREAM_END) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* New client of u (kept by reference) on base; NULL + *cause. */
struct export_client *
export_client_new(struct event_base *base, const struct export_url *u,
    const struct export_client_opts *o, char **cause)
{
	struct export_client *c;
	size_t i;

	c = xcalloc(1, sizeof *c);
	c->base = base;
	c->url = u;
	c->gzip = o != NULL && o->gzip;
	c->headers = xstrdup("");
	for (i = 0; o != NULL && i < o->n_headers; i++) {
		char *h;

		xasprintf(&h, "%s%s: %s\r\n", c->headers, o->headers[i].key,
		    o->headers[i].value);
		free(c->headers);
		c->headers = h;
	}
	if (u->tls && (c->ssl = tls_client_ctx_new(true, o != NULL ?
	    o->ca_file : NULL, cause)) == NULL) {
		export_client_free(c);
		return NULL;
	}
	return c;
}

/*
 * Whether a client of u could be made: the TLS context of https, and a
 * CA file given for it loads (also when the URL is http://: the key was
 * set for a reason).
 */
int
export_client_check(const struct export_url *u, const char *ca_file,
    char **cause)
{
	SSL_CTX *ctx;

	if (!u->tls && ca_file == NULL)
		return 0;
	if ((ctx = tls_client_ctx_new(true, ca_file, cause)) == NULL)
		return -1;
	SSL_CTX_free(ctx);
	return 0;
}

/* Close the connection and free the client (NULL-safe); no exchange may
 * run on it. */
void
export_client_free(struct export_client *c)
{
	if (c == NULL)
		return;
	client_close(c);
	if (c->ssl != NULL)
		SSL_CTX_free(c->ssl);
	free(c->headers);
	free(c);
}

/* Connections the client opened so far (tests, debug). */
uint64_t
export_client_connects(const struct export_client *c)
{
	return c->connects;
}

/* Start one request; the callback runs once, later. */
struct export_http *
export_http_start(struct export_client *c, const char *method,
    const char *headers, const char *body, size_t body_len,
    uint64_t timeout_ms, export_http_cb cb, void *arg)
{
	struct export_http *h;
	struct timeval tv;
	char *why = NULL;
	size_t zlen;

	if (c == NULL || c->cur != NULL)
		return NULL;
	h = xcalloc(1, sizeof *h);
	h->c = c;
	c->cur = h;
	h->cb = cb;
	h->arg = arg;
	h->timer = evtimer_new(c->base, http_timercb, h);
	h->rbody = evbuffer_new();
	h->parser = upstream_parser_new(false);
	if (h->timer == NULL || h->rbody == NULL || h->parser == NULL)
		fatalx("export: out of memory");
	h->body = body;
	h->body_len = body_len;
	if (c->gzip) {
		if (http_gzip(body, body_len, &h->zbody, &zlen) != 0)
			fatalx("export: zlib cannot compress");
		h->body = (const char *)h->zbody;
		h->body_len = zlen;
	}
	xasprintf(&h->head, "%s %s HTTP/1.1\r\nHost: %s\r\n"
	    "Content-Length: %zu\r\n%s%s%s\r\n", method, c->url->path,
	    c->url->host_header, h->body_len, c->gzip ?
	    "Content-Encoding: gzip\r\n" : "", headers != NULL ? headers : "",
	    c->headers);
	if (c->bev != NULL) {
		/* The kept connection, idle since the last exchange. */
		h->reused = true;
		http_attach(h);
	} else
		(void)http_open(h, &why);
	if (why != NULL) {
		/* Fail from the loop, never from inside the caller. */
		h->fail = why;
		tv.tv_sec = 0;
		tv.tv_usec = 0;
	} else {
		tv.tv_sec = (time_t)(timeout_ms / 1000);
		tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
	}
	evtimer_add(h->timer, &tv);
	return h;
}

/* Yield the core between the pieces of the body (exporter_sched). */
void
export_http_set_yield(struct export_http *h, bool yield)
{
	if (h != NULL)
		h->yield = yield;
}

/* Abort an exchange without calling back (NULL-safe); its connection is
 * closed (it may hold half a request). */
void
export_http_cancel(struct export_http *h)
{
	if (h == NULL)
		return;
	h->c->cur = NULL;
	client_close(h->c);
	http_free(h);
}

/*
 * Give the core away for a moment (exporter_sched): sleep, so that a
 * worker waiting for the core runs whatever the scheduler's accounting
 * says (sched_yield(2) would not: under EEVDF a thread owed CPU time keeps
 * the core through a yield).  The kernel's timer slack (50 us) makes
 * this some 60 us of waiting, during which the core is the workers'.
 */
#define EXPORT_GIVE_WAY_NS	10000	/* + the timer slack */

void
export_give_way(void)
{
	struct timespec ts;

	ts.tv_sec = 0;
	ts.tv_nsec = EXPORT_GIVE_WAY_NS;
	(void)nanosleep(&ts, NULL);
}
