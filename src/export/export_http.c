/*
 * export_http.c -- the exporter's own tiny HTTP/1.1 client: one request
 * per connection (Connection: close) over a bufferevent on the exporter's
 * event base, to http://host:port or a unix socket (the Agent's
 * apm.socket), with one overall timeout so that a stalled agent (accepts,
 * never answers) costs a timer and nothing else.  Responses are read by
 * the strict response parser of the upstream client (http_response.c).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <netdb.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "export_int.h"
#include "http_response.h"
#include "log.h"
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

struct export_http {
	struct bufferevent	*bev;
	struct event		*timer;
	export_http_cb		 cb;
	void			*arg;
	char			*fail;		/* deferred failure */
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const char		*body;		/* the caller's, by reference */
	size_t			 body_len;
	size_t			 body_off;	/* handed to the bufferevent */
	bool			 yield;		/* give way between pieces */
};

/*
 * Parse url (http:// or unix://, url.c) with default_path when it has
 * none (always for unix sockets).  No TLS here: https is refused.
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
			    pu.scheme == URL_SCHEME_NONE ?
			    "only http:// and unix:// are supported" : errstr);
		return -1;
	}
	if (pu.scheme == URL_SCHEME_HTTPS) {
		url_clear(&pu);
		xasprintf(cause, "%s: only http:// and unix:// are supported",
		    url);
		return -1;
	}
	if (pu.scheme == URL_SCHEME_UNIX && strlen(pu.host) >=
	    sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
		url_clear(&pu);
		xasprintf(cause, "%s: bad unix socket path", url);
		return -1;
	}
	u->unix_socket = pu.scheme == URL_SCHEME_UNIX;
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

/* End the exchange: call back once and free everything. */
static void
http_finish(struct export_http *h, struct export_http_resp *r)
{
	export_http_cb cb = h->cb;
	void *arg = h->arg;

	export_http_cancel(h);
	cb(r, arg);
	export_http_resp_clear(r);
}

static void
http_fail(struct export_http *h, const char *why)
{
	struct export_http_resp r;

	memset(&r, 0, sizeof r);
	r.error = xstrdup(why);
	http_finish(h, &r);
}

/* Try to parse what arrived so far. */
static void
http_try(struct export_http *h, bool eof)
{
	struct evbuffer *in = bufferevent_get_input(h->bev);
	struct export_http_resp r;
	size_t len = evbuffer_get_length(in);
	const char *buf = (const char *)evbuffer_pullup(in, -1);
	int rv;

	rv = export_http_parse(buf != NULL ? buf : "", len, eof, &r);
	if (rv == 0) {
		if (len > EXPORT_HTTP_MAX_HEAD + EXPORT_HTTP_MAX_BODY)
			http_fail(h, "response too long");
		return;
	}
	http_finish(h, &r);
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
	if (evbuffer_add_reference(bufferevent_get_output(h->bev),
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

static void
http_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct export_http *h = arg;
	char why[128];

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_EOF) {
		http_try(h, true);
		return;
	}
	snprintf(why, sizeof why, "%s",
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
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

/* Resolve the target into h->ss; -1 with *why. */
static int
http_resolve(struct export_http *h, const struct export_url *u, char **why)
{
	struct addrinfo hints, *res;
	int rv;

	memset(&h->ss, 0, sizeof h->ss);
	if (u->unix_socket) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&h->ss;

		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof sun->sun_path, "%s", u->host);
		h->sslen = sizeof *sun;
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
	memcpy(&h->ss, res->ai_addr, res->ai_addrlen);
	h->sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Start one request; the callback runs once, later. */
struct export_http *
export_http_start(struct event_base *base, const struct export_url *u,
    const char *method, const char *headers, const char *body,
    size_t body_len, uint64_t timeout_ms, export_http_cb cb, void *arg)
{
	struct export_http *h;
	struct evbuffer *out;
	struct timeval tv;
	char *why = NULL;

	if (base == NULL)
		return NULL;
	h = xcalloc(1, sizeof *h);
	h->cb = cb;
	h->arg = arg;
	h->timer = evtimer_new(base, http_timercb, h);
	h->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (h->timer == NULL || h->bev == NULL)
		fatalx("export: out of memory");
	bufferevent_setcb(h->bev, http_readcb, http_writecb, http_eventcb, h);
	/*
	 * A piece per writev (EXPORT_HTTP_PIECE), not the bufferevent's
	 * default 16 KB per loop iteration (more calls) nor the whole body
	 * in one call (a long one).
	 */
	(void)bufferevent_set_max_single_write(h->bev, EXPORT_HTTP_MAX_WRITE);
	out = bufferevent_get_output(h->bev);
	evbuffer_add_printf(out, "%s %s HTTP/1.1\r\nHost: %s\r\n"
	    "Connection: close\r\nContent-Length: %zu\r\n%s\r\n", method,
	    u->path, u->host_header, body_len, headers != NULL ? headers : "");
	h->body = body;
	h->body_len = body_len;
	http_piece(h);
	if (http_resolve(h, u, &why) == 0 &&
	    bufferevent_socket_connect(h->bev, (struct sockaddr *)&h->ss,
	    (int)h->sslen) != 0)
		xasprintf(&why, "connect: %s", strerror(errno));
	if (why != NULL) {
		/* Fail from the loop, never from inside the caller. */
		h->fail = why;
		tv.tv_sec = 0;
		tv.tv_usec = 0;
	} else {
		bufferevent_enable(h->bev, EV_READ | EV_WRITE);
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

/* Abort an exchange without calling back (NULL-safe). */
void
export_http_cancel(struct export_http *h)
{
	if (h == NULL)
		return;
	if (h->bev != NULL)
		bufferevent_free(h->bev);
	if (h->timer != NULL)
		event_free(h->timer);
	free(h->fail);
	free(h);
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
