/*
 * fake_agent_core.h -- a scriptable fake Datadog Agent / OTLP collector
 * shared by tests/support/fake_agent.c and the exporter unit tests.
 *
 * A raw HTTP/1.1 server on an evconnlistener (not evhttp, so that it can
 * also answer garbage or nothing at all): it reads one request per
 * connection (head + Content-Length body), records method, target,
 * headers and body, and answers according to its mode:
 *   FA_NORMAL  200 with the configured body (rate_by_service JSON)
 *   FA_500     500 with a short body
 *   FA_GARBAGE bytes that are not HTTP, then close
 *   FA_STALL   accept, read, never answer
 *   FA_SLOW    answer like FA_NORMAL after delay_ms
 * With keepalive set, FA_NORMAL and FA_500 answers leave the connection
 * open for the next request (no "Connection: close"), and close_after > 0
 * closes it right after its close_after-th answer, as an agent's idle
 * timeout would; drop_request > 0 closes a connection, unanswered, when
 * its drop_request-th request arrives (an idle close that crossed the
 * request: the request is recorded all the same); nconns counts the
 * connections accepted.
 * Requests to /control/... are always answered 200 "{}" at once,
 * whatever the mode (fake_agent.c uses them to change mode and answer).
 * All static: each includer gets its own copy.
 */
#ifndef TS_FAKE_AGENT_CORE_H
#define TS_FAKE_AGENT_CORE_H

#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

enum fa_mode {
	FA_NORMAL = 0,
	FA_500,
	FA_GARBAGE,
	FA_STALL,
	FA_SLOW,
};

struct fa_request {
	char	*method;
	char	*target;
	char	*head;		/* raw header lines after the request line */
	char	*body;
	size_t	 body_len;
};

struct fa_agent;
typedef void (*fa_request_fn)(struct fa_agent *, const struct fa_request *);

struct fa_agent {
	struct event_base	*base;
	struct evconnlistener	*listener;
	pthread_t		 thread;
	bool			 threaded;
	int			 port;
	char			 unix_path[108];
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	enum fa_mode		 mode;		/* under mu */
	char			*answer;	/* under mu */
	unsigned		 delay_ms;
	struct fa_request	*reqs;		/* under mu */
	size_t			 nreqs;
	size_t			 nconns;
	fa_request_fn		 on_request;	/* loop thread */
	bool			 discard_bodies; /* keep heads only (benches) */
	bool			 keepalive;	/* set before fa_start */
	unsigned		 close_after;	/* answers per connection */
	unsigned		 drop_request;	/* close at this request */
	struct event		*stop_ev;
	int			 stop;		/* atomic */
	struct fa_conn		*conns;		/* loop thread */
};

struct fa_conn {
	struct fa_agent		*fa;
	struct fa_conn		*next, **prevp;
	struct bufferevent	*bev;
	struct event		*delay;
	bool			 answered;
	bool			 closing;	/* close once written */
	unsigned		 nanswers;
	unsigned		 nrequests;
};

static void fa_readcb(struct bufferevent *, void *);

/* Header value of name in a raw head block, copied into buf, or NULL. */
static __attribute__((unused)) const char *
fa_header(const char *head, const char *name, char *buf, size_t cap)
{
	size_t nlen = strlen(name);
	const char *p = head;

	while (p != NULL && *p != '\0') {
		const char *eol = strstr(p, "\r\n");

		if (eol == NULL)
			eol = p + strlen(p);
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
		    strncasecmp(p, name, nlen) == 0) {
			const char *v = p + nlen + 1;
			size_t n;

			while (*v == ' ' || *v == '\t')
				v++;
			n = (size_t)(eol - v);
			if (n >= cap)
				n = cap - 1;
			memcpy(buf, v, n);
			buf[n] = '\0';
			return buf;
		}
		p = *eol != '\0' ? eol + 2 : NULL;
	}
	return NULL;
}

static void
fa_conn_free(struct fa_conn *c)
{
	if ((*c->prevp = c->next) != NULL)
		c->next->prevp = c->prevp;
	if (c->delay != NULL)
		event_free(c->delay);
	bufferevent_free(c->bev);
	free(c);
}

static void
fa_writecb(struct bufferevent *bev, void *arg)
{
	struct fa_conn *c = arg;

	if (!c->answered || evbuffer_get_length(bufferevent_get_output(bev))
	    != 0)
		return;
	if (c->closing) {
		fa_conn_free(c);
		return;
	}
	/* Keep-alive: the next request (maybe already read). */
	c->answered = false;
	fa_readcb(bev, c);
}

static void
fa_answer(struct fa_conn *c, enum fa_mode mode, const char *answer)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	c->answered = true;
	c->nanswers++;
	c->closing = mode == FA_GARBAGE || !c->fa->keepalive ||
	    (c->fa->close_after > 0 && c->nanswers >= c->fa->close_after);
	if (c->fa->keepalive && (mode == FA_NORMAL || mode == FA_500)) {
		if (mode == FA_500)
			evbuffer_add_printf(out, "HTTP/1.1 500 Internal Server "
			    "Error\r\nContent-Length: 5\r\n\r\noops\n");
		else
			evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
			    "Content-Type: application/json\r\n"
			    "Content-Length: %zu\r\n\r\n%s", strlen(answer),
			    answer);
	} else if (mode == FA_GARBAGE)
		evbuffer_add_printf(out, "THIS IS NOT HTTP\r\n\r\n{{{");
	else if (mode == FA_500)
		evbuffer_add_printf(out, "HTTP/1.1 500 Internal Server Error"
		    "\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops\n");
	else
		evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\nConnection: "
		    "close\r\n\r\n%s", strlen(answer), answer);
}

static void
fa_delaycb(evutil_socket_t fd, short what, void *arg)
{
	struct fa_conn *c = arg;
	char *answer;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&c->fa->mu);
	answer = strdup(c->fa->answer);
	pthread_mutex_unlock(&c->fa->mu);
	event_free(c->delay);
	c->delay = NULL;
	fa_answer(c, FA_NORMAL, answer);
	free(answer);
}

static void
fa_readcb(struct bufferevent *bev, void *arg)
{
	struct fa_conn *c = arg;
	struct fa_agent *fa = c->fa;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end;
	struct fa_request r;
	char *head, *sp1, *sp2, *eol, cl[32], *answer;
	size_t hlen, blen = 0;
	enum fa_mode mode;

	if (c->answered || c->delay != NULL)
		return;
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0)
		return;
	hlen = (size_t)end.pos + 4;
	head = malloc(hlen + 1);
	evbuffer_copyout(in, head, hlen);
	head[hlen] = '\0';
	eol = strstr(head, "\r\n");
	if (fa_header(eol + 2, "Content-Length", cl, sizeof cl) != NULL)
		blen = strtoul(cl, NULL, 10);
	if (evbuffer_get_length(in) < hlen + blen) {
		free(head);
		return;
	}
	memset(&r, 0, sizeof r);
	*eol = '\0';
	sp1 = strchr(head, ' ');
	sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 != NULL && sp2 != NULL) {
		r.method = strndup(head, (size_t)(sp1 - head));
		r.target = strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	} else {
		r.method = strdup("");
		r.target = strdup("");
	}
	r.head = strdup(eol + 2);
	free(head);
	evbuffer_drain(in, hlen);
	r.body = malloc(blen + 1);
	evbuffer_remove(in, r.body, blen);
	r.body[blen] = '\0';
	r.body_len = blen;
	if (fa->on_request != NULL)
		fa->on_request(fa, &r);
	if (fa->discard_bodies) {
		free(r.body);
		r.body = strdup("");
		r.body_len = 0;
	}
	pthread_mutex_lock(&fa->mu);
	fa->reqs = realloc(fa->reqs, (fa->nreqs + 1) * sizeof *fa->reqs);
	fa->reqs[fa->nreqs++] = r;
	mode = fa->mode;
	answer = strdup(fa->answer);
	pthread_cond_broadcast(&fa->cv);
	pthread_mutex_unlock(&fa->mu);
	/* fake_agent's control requests are always answered at once. */
	if (strncmp(r.target, "/control/", 9) == 0) {
		mode = FA_NORMAL;
		free(answer);
		answer = strdup("{}");
	}
	if (fa->drop_request > 0 && ++c->nrequests == fa->drop_request) {
		free(answer);
		fa_conn_free(c);
		return;
	}
	if (mode == FA_STALL) {
		/* Keep the connection open and never answer. */
	} else if (mode == FA_SLOW) {
		struct timeval tv;

		tv.tv_sec = fa->delay_ms / 1000;
		tv.tv_usec = (fa->delay_ms % 1000) * 1000;
		c->delay = evtimer_new(fa->base, fa_delaycb, c);
		evtimer_add(c->delay, &tv);
	} else
		fa_answer(c, mode, answer);
	free(answer);
}

static void
fa_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		fa_conn_free(arg);
}

static void
fa_acceptcb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct fa_agent *fa = arg;
	struct fa_conn *c = calloc(1, sizeof *c);

	(void)l;
	(void)sa;
	(void)salen;
	c->fa = fa;
	if ((c->next = fa->conns) != NULL)
		c->next->prevp = &c->next;
	fa->conns = c;
	c->prevp = &fa->conns;
	c->bev = bufferevent_socket_new(fa->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, fa_readcb, fa_writecb, fa_eventcb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	pthread_mutex_lock(&fa->mu);
	fa->nconns++;
	pthread_mutex_unlock(&fa->mu);
}

/* Listen on 127.0.0.1:port (0: any) or on unix_path if given; 0 or -1. */
static __attribute__((unused)) int
fa_init(struct fa_agent *fa, int port, const char *unix_path)
{
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE;

	memset(fa, 0, sizeof *fa);
	pthread_mutex_init(&fa->mu, NULL);
	pthread_cond_init(&fa->cv, NULL);
	fa->answer = strdup("{\"rate_by_service\":{\"service:,env:\":1}}");
	fa->delay_ms = 500;
	if ((fa->base = event_base_new()) == NULL)
		return -1;
	if (unix_path != NULL) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof sun.sun_path, "%s", unix_path);
		snprintf(fa->unix_path, sizeof fa->unix_path, "%s", unix_path);
		unlink(unix_path);
		fa->listener = evconnlistener_new_bind(fa->base, fa_acceptcb,
		    fa, flags, 16, (struct sockaddr *)&sun, sizeof sun);
	} else {
		struct sockaddr_in sin;
		socklen_t len = sizeof sin;

		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fa->listener = evconnlistener_new_bind(fa->base, fa_acceptcb,
		    fa, flags, 16, (struct sockaddr *)&sin, sizeof sin);
		if (fa->listener != NULL) {
			getsockname(evconnlistener_get_fd(fa->listener),
			    (struct sockaddr *)&sin, &len);
			fa->port = ntohs(sin.sin_port);
		}
	}
	return fa->listener != NULL ? 0 : -1;
}

static void
fa_stopcb(evutil_socket_t fd, short what, void *arg)
{
	struct fa_agent *fa = arg;

	(void)fd;
	(void)what;
	if (__atomic_load_n(&fa->stop, __ATOMIC_ACQUIRE))
		event_base_loopbreak(fa->base);
}

static void *
fa_main(void *arg)
{
	struct fa_agent *fa = arg;

	event_base_loop(fa->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Run the loop on a thread of its own (unit tests). */
static __attribute__((unused)) void
fa_start(struct fa_agent *fa)
{
	struct timeval tv = {0, 10000};

	fa->stop_ev = event_new(fa->base, -1, EV_PERSIST, fa_stopcb, fa);
	event_add(fa->stop_ev, &tv);
	fa->threaded = pthread_create(&fa->thread, NULL, fa_main, fa) == 0;
}

/* Set the mode and the 200 answer body (NULL: keep). */
static __attribute__((unused)) void
fa_set(struct fa_agent *fa, enum fa_mode mode, const char *answer)
{
	pthread_mutex_lock(&fa->mu);
	fa->mode = mode;
	if (answer != NULL) {
		free(fa->answer);
		fa->answer = strdup(answer);
	}
	pthread_mutex_unlock(&fa->mu);
}

/* Wait until n requests were recorded; false on timeout. */
static __attribute__((unused)) bool
fa_wait(struct fa_agent *fa, size_t n, unsigned timeout_ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&fa->mu);
	while (fa->nreqs < n)
		if (pthread_cond_timedwait(&fa->cv, &fa->mu, &ts) != 0)
			break;
	ok = fa->nreqs >= n;
	pthread_mutex_unlock(&fa->mu);
	return ok;
}

/* Number of requests recorded so far. */
static __attribute__((unused)) size_t
fa_count(struct fa_agent *fa)
{
	size_t n;

	pthread_mutex_lock(&fa->mu);
	n = fa->nreqs;
	pthread_mutex_unlock(&fa->mu);
	return n;
}

/* Stop the thread and free everything (open connections are closed). */
static __attribute__((unused)) void
fa_fini(struct fa_agent *fa)
{
	size_t i;

	/* Twice is fine: a test kills its agent, the teardown again. */
	if (fa->base == NULL)
		return;
	if (fa->threaded) {
		__atomic_store_n(&fa->stop, 1, __ATOMIC_RELEASE);
		pthread_join(fa->thread, NULL);
	}
	while (fa->conns != NULL)
		fa_conn_free(fa->conns);
	if (fa->stop_ev != NULL)
		event_free(fa->stop_ev);
	if (fa->listener != NULL)
		evconnlistener_free(fa->listener);
	if (fa->base != NULL)
		event_base_free(fa->base);
	if (fa->unix_path[0] != '\0')
		unlink(fa->unix_path);
	for (i = 0; i < fa->nreqs; i++) {
		free(fa->reqs[i].method);
		free(fa->reqs[i].target);
		free(fa->reqs[i].head);
		free(fa->reqs[i].body);
	}
	free(fa->reqs);
	free(fa->answer);
	pthread_mutex_destroy(&fa->mu);
	pthread_cond_destroy(&fa->cv);
	memset(fa, 0, sizeof *fa);
}

#endif /* TS_FAKE_AGENT_CORE_H */
