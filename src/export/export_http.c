/*
 * export_http.c -- the exporter's own tiny HTTP/1.1 client: one request
 * per connection (Connection: close) over a bufferevent on the exporter's
 * event base, to http://host:port or a unix socket (the Agent's
 * apm.socket), with one overall timeout so that a stalled agent (accepts,
 * never answers) costs a timer and nothing else.  Responses are parsed
 * strictly enough for an agent or collector answer: status line, headers,
 * Content-Length, chunked (RFC 9112 7.1) or close-delimited bodies.
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
#include "log.h"
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

/* Parse url (http:// or unix://) with default_path for unix sockets. */
int
export_url_parse(const char *url, const char *default_path,
    struct export_url *u, char **cause)
{
	const char *p, *host, *hend, *port = NULL, *path;
	size_t hlen;

	memset(u, 0, sizeof *u);
	if (strncmp(url, "unix://", 7) == 0) {
		if (url[7] != '/' || strlen(url + 7) >= sizeof(
		    ((struct sockaddr_un *)NULL)->sun_path)) {
			xasprintf(cause, "%s: bad unix socket path", url);
			return -1;
		}
		u->unix_socket = true;
		u->host = xstrdup(url + 7);
		u->port = xstrdup("");
		u->path = xstrdup(default_path);
		u->host_header = xstrdup("localhost");
		return 0;
	}
	if (strncmp(url, "http://", 7) != 0) {
		xasprintf(cause, "%s: only http:// and unix:// are supported",
		    url);
		return -1;
	}
	host = url + 7;
	path = host + strcspn(host, "/?#");
	if (*host == '[') {
		if ((hend = memchr(host, ']', (size_t)(path - host))) == NULL)
			goto bad;
		p = hend + 1;
		host++;
	} else {
		hend = memchr(host, ':', (size_t)(path - host));
		if (hend == NULL)
			hend = path;
		p = hend;
	}
	if (p < path) {
		if (*p != ':' || p + 1 == path)
			goto bad;
		port = p + 1;
		if (strspn(port, "0123456789") != (size_t)(path - port))
			goto bad;
	}
	hlen = (size_t)(hend - host);
	if (hlen == 0)
		goto bad;
	u->host = xstrndup(host, hlen);
	u->port = port != NULL ? xstrndup(port, (size_t)(path - port)) :
	    xstrdup("80");
	u->path = xstrdup(*path == '/' ? path :
	    (*path == '\0' ? default_path : "/"));
	u->host_header = xstrndup(url + 7, (size_t)(path - (url + 7)));
	return 0;
bad:
	xasprintf(cause, "%s: bad URL", url);
	return -1;
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

/* Find "\r\n" in [p, end); NULL if absent. */
static const char *
find_crlf(const char *p, const char *end)
{
	for (; p + 1 < end; p++)
		if (p[0] == '\r' && p[1] == '\n')
			return p;
	return NULL;
}

static int
resp_error(struct export_http_resp *r, const char *why)
{
	free(r->error);
	r->error = xstrdup(why);
	r->status = 0;
	return -1;
}

/* Decode a chunked body (RFC 9112 7.1); 1 done, 0 more, -1 bad. */
static int
parse_chunked(const char *p, const char *end, struct export_http_resp *r)
{
	char *out = NULL;
	size_t olen = 0;
	const char *line;

	for (;;) {
		uint64_t size = 0;
		const char *q;

		if ((line = find_crlf(p, end)) == NULL)
			goto more;
		for (q = p; q < line && *q != ';'; q++) {
			int d;

			if (*q >= '0' && *q <= '9')
				d = *q - '0';
			else if (*q >= 'a' && *q <= 'f')
				d = *q - 'a' + 10;
			else if (*q >= 'A' && *q <= 'F')
				d = *q - 'A' + 10;
			else
				goto bad;
			if (size > EXPORT_HTTP_MAX_BODY)
				goto bad;
			size = size * 16 + (uint64_t)d;
		}
		if (q == p)
			goto bad;
		p = line + 2;
		if (size == 0) {
			/* Trailer section: lines until an empty one. */
			for (;;) {
				if ((line = find_crlf(p, end)) == NULL)
					goto more;
				if (line == p)
					break;
				p = line + 2;
			}
			break;
		}
		if (olen + size > EXPORT_HTTP_MAX_BODY)
			goto bad;
		if ((uint64_t)(end - p) < size + 2)
			goto more;
		if (p[size] != '\r' || p[size + 1] != '\n')
			goto bad;
		out = xrealloc(out, olen + size + 1);
		memcpy(out + olen, p, size);
		olen += size;
		p += size + 2;
	}
	r->body = out != NULL ? out : xstrdup("");
	r->body[olen] = '\0';
	r->body_len = olen;
	return 1;
more:
	free(out);
	return 0;
bad:
	free(out);
	return resp_error(r, "bad chunked body");
}

/* Parse a response from buf; see export_int.h. */
int
export_http_parse(const char *buf, size_t len, bool eof,
    struct export_http_resp *r)
{
	const char *end = buf + len, *line, *p, *hend;
	bool chunked = false, has_cl = false;
	uint64_t cl = 0;
	int status;

	memset(r, 0, sizeof *r);
	/* The head ends at the first empty line. */
	hend = NULL;
	for (p = buf; (line = find_crlf(p, end)) != NULL; p = line + 2) {
		if (line == p && p != buf) {
			hend = line + 2;
			break;
		}
	}
	if (hend == NULL) {
		if (len > EXPORT_HTTP_MAX_HEAD)
			return resp_error(r, "response head too long");
		if (eof)
			return resp_error(r, len == 0 ?
			    "connection closed without a response" :
			    "truncated response head");
		return 0;
	}
	if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 ||
	    (buf[7] != '0' && buf[7] != '1') || buf[8] != ' ' ||
	    buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
	    buf[11] < '0' || buf[11] > '9' || (buf[12] != ' ' &&
	    buf[12] != '\r'))
		return resp_error(r, "malformed status line");
	status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + buf[11] - '0';
	line = find_crlf(buf, end);
	for (p = line + 2; p < hend - 2; p = line + 2) {
		const char *colon, *v, *ve;

		line = find_crlf(p, end);
		if ((colon = memchr(p, ':', (size_t)(line - p))) == NULL ||
		    colon == p)
			return resp_error(r, "malformed header line");
		v = colon + 1;
		ve = line;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if ((size_t)(colon - p) == 14 &&
		    util_strncaseeq(p, "content-length", 14)) {
			if (has_cl || util_parse_u64(v, (size_t)(ve - v), &cl)
			    != 0 || cl > EXPORT_HTTP_MAX_BODY)
				return resp_error(r, "bad Content-Length");
			has_cl = true;
		} else if ((size_t)(colon - p) == 17 &&
		    util_strncaseeq(p, "transfer-encoding", 17)) {
			if ((size_t)(ve - v) != 7 ||
			    !util_strncaseeq(v, "chunked", 7))
				return resp_error(r,
				    "unsupported Transfer-Encoding");
			chunked = true;
		}
	}
	if (chunked && has_cl)
		return resp_error(r, "both Content-Length and chunked");
	if (status == 204 || status == 304 || status < 200) {
		if (status < 200)
			return resp_error(r, "unexpected 1xx response");
		r->status = status;
		return 1;
	}
	if (chunked) {
		int rv = parse_chunked(hend, end, r);

		if (rv == 0 && eof)
			return resp_error(r, "truncated chunked body");
		if (rv == 1)
			r->status = status;
		return rv;
	}
	if (has_cl) {
		if ((uint64_t)(end - hend) < cl)
			return eof ? resp_error(r, "truncated body") : 0;
	} else {
		if (!eof)
			return (size_t)(end - hend) > EXPORT_HTTP_MAX_BODY ?
			    resp_error(r, "response body too long") : 0;
		cl = (uint64_t)(end - hend);
	}
	r->body = xstrndup(hend, cl);
	r->body_len = cl;
	r->status = status;
	return 1;
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
