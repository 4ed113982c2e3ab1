/*
 * server.c -- workers, listeners, client connections, admin, drain and
 * reload.
 *
 * Threads (ARCHITECTURE.md "Threads"): the main thread owns signals, the
 * admin listener and configuration loading; each worker owns an event
 * base (epoll changelist, no locks), an evhttp on its own SO_REUSEPORT
 * listening sockets, its upstream pools and its metrics block.  The main
 * thread hands new configuration generations and drain orders to workers
 * through a pipe; nothing on the request path takes a lock.
 *
 * Client connections: evhttp creates the bufferevent through our bevcb,
 * which hangs the framing guard (framing.c) on the input buffer, so every
 * byte a client sends is vetted by the strict parser before evhttp's
 * lenient one sees it.  A refused stream is answered by us (status, JSON
 * body, Connection: close) with evhttp's callbacks unhooked, then the
 * connection is freed on the next loop turn.  evhttp's close callback is
 * the one teardown of struct server_conn.
 */
#include <sys/resource.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "cors.h"
#include "debug.h"
#include "debug.h"
#include "exporter.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "server.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"

#define SERVER_DRAIN_TIMEOUT_S 30
#define SERVER_CMD_RELOAD 'R'
#define SERVER_CMD_DRAIN 'D'
#define SERVER_CMD_EXIT 'X'

enum server_timeout_phase {
	SERVER_TO_IDLE = 0,
	SERVER_TO_HEADER,
	SERVER_TO_BODY,
	SERVER_TO_BUSY,		/* a request of ours is in flight */
};

/* The process-wide state of the main thread. */
static struct {
	pthread_mutex_t lock;		/* gen and workers' next_gen */
	struct server_gen *gen;		/* current generation */
	struct worker *workers;
	unsigned n_workers;
	struct event_base *base;
	struct evhttp *admin;
	bool ready;
	bool draining;
	uint64_t gen_counter;
	int done_fd[2];			/* workers write when they exit */
	struct event *done_ev;
	unsigned workers_done;
	struct event *drain_timer;
	struct config_addr *bound_addrs;	/* resolved listen ports */
	struct metrics *metrics;	/* main thread's block */
	struct exporter *exporter;	/* spans off the request path */
} srv = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/* Client connections by file descriptor (each owned by one worker). */
static struct server_conn **server_conns;
static size_t server_nconns_max;

static struct bufferevent *server_bev_cb(struct event_base *, void *);
static void server_bind_cb(evutil_socket_t, short, void *);
static void server_input_cb(struct evbuffer *, const struct evbuffer_cb_info *,
    void *);
static void server_request_cb(struct evhttp_request *, void *);
static void server_conn_close_cb(struct evhttp_connection *, void *);
static void server_output_cb(struct evbuffer *, const struct evbuffer_cb_info *,
    void *);
static void server_conn_kill_cb(evutil_socket_t, short, void *);
static void server_conn_refuse_cb(evutil_socket_t, short, void *);
static void server_cmd_cb(evutil_socket_t, short, void *);
static void server_admin_cb(struct evhttp_request *, void *);
static void server_signal_cb(evutil_socket_t, short, void *);
static void server_done_cb(evutil_socket_t, short, void *);
static void server_drain_timeout_cb(evutil_socket_t, short, void *);

/* Take a reference on a generation (any thread). */
static struct server_gen *
server_gen_ref(struct server_gen *g)
{
	__atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
	return g;
}

/* Drop a reference; the last one frees TLS contexts and the config. */
static void
server_gen_unref(struct server_gen *g)
{
	size_t i;

	if (g == NULL || __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	for (i = 0; i < g->cfg->n_routes; i++) {
		if (g->route_ssl[i] != NULL)
			SSL_CTX_free(g->route_ssl[i]);
	}
	if (g->server_ssl != NULL)
		SSL_CTX_free(g->server_ssl);
	for (i = 0; i < g->cfg->n_routes; i++)
		cors_policy_free(g->route_cors[i]);
	free(g->route_prop);
	cors_policy_free(g->default_cors);
	free(g->route_ssl);
	free(g->route_slot);
	free(g->route_cors);
	config_unref(g->cfg);
	free(g);
}

/* Build a generation from cfg (main thread); takes over cfg's ref. */
static struct server_gen *
server_gen_new(struct config *cfg, char **cause)
{
	enum config_style styles[2 * CONFIG_MAX_STYLES];
	struct server_gen *g;
	char *why = NULL;
	size_t i, n_styles;

	g = xcalloc(1, sizeof *g);
	g->refs = 1;
	g->cfg = cfg;
	g->id = ++srv.gen_counter;
	g->route_ssl = xcalloc(cfg->n_routes, sizeof *g->route_ssl);
	g->route_slot = xcalloc(cfg->n_routes, sizeof *g->route_slot);
	g->route_cors = xcalloc(cfg->n_routes, sizeof *g->route_cors);
	g->route_prop = xcalloc(cfg->n_routes, sizeof *g->route_prop);
	/* While we proxy, the client may wait for the slowest upstream. */
	g->busy_timeout_ms = cfg->limits.idle_timeout_ms;
	for (i = 0; i < cfg->n_routes; i++) {
		uint64_t t = cfg->routes[i].upstream.timeout_ms +
		    cfg->routes[i].upstream.connect_timeout_ms + 1000;

		if (t > g->busy_timeout_ms)
			g->busy_timeout_ms = t;
	}
	for (i = 0; i < cfg->n_routes; i++) {
		propagation_conf_init(&g->route_prop[i], cfg);
		if (cfg->routes[i].has_behavior)
			g->route_prop[i].behavior = cfg->routes[i].behavior;
	}
	if (cfg->tls.cert != NULL) {
		g->server_ssl = tls_server_ctx_new(cfg->tls.cert, cfg->tls.key,
		    cause);
		if (g->server_ssl == NULL)
			goto fail;
	}
	/* CORS: the tracing headers of every style we extract or inject. */
	n_styles = 0;
	for (i = 0; i < cfg->propagation.n_extract; i++)
		styles[n_styles++] = cfg->propagation.extract[i];
	for (i = 0; i < cfg->propagation.n_inject; i++)
		styles[n_styles++] = cfg->propagation.inject[i];
	if (cfg->has_cors) {
		g->default_cors = cors_policy_new(&cfg->cors, styles, n_styles,
		    &why);
		if (g->default_cors == NULL) {
			xasprintf(cause, "cors: %s", why);
			free(why);
			goto fail;
		}
	}
	for (i = 0; i < cfg->n_routes; i++) {
		const struct config_upstream *up = &cfg->routes[i].upstream;

		g->route_slot[i] = metrics_route_slot(cfg->routes[i].name);
		if (cfg->routes[i].cors != NULL) {
			g->route_cors[i] = cors_policy_new(cfg->routes[i].cors,
			    styles, n_styles, &why);
			if (g->route_cors[i] == NULL) {
				xasprintf(cause, "routes[%zu].cors: %s", i,
				    why);
				free(why);
				goto fail;
			}
		}
		if (up->scheme != CONFIG_SCHEME_HTTPS)
			continue;
		g->route_ssl[i] = tls_client_ctx_new(up->tls_verify,
		    up->tls_ca_file, cause);
		if (g->route_ssl[i] == NULL)
			goto fail;
	}
	return g;
fail:
	server_gen_unref(g);
	return NULL;
}

struct worker_gen *
server_wgen_ref(struct worker_gen *wg)
{
	wg->refs++;
	return wg;
}

void
server_wgen_unref(struct worker_gen *wg)
{
	size_t i;

	if (wg == NULL || --wg->refs > 0)
		return;
	for (i = 0; i < wg->n_routes; i++)
		upstream_pool_free(wg->routes[i].pool);
	free(wg->routes);
	sampler_free(wg->sampler);
	server_gen_unref(wg->gen);
	free(wg);
}

/* The worker's view of a generation: its own upstream pools. */
static struct worker_gen *
server_wgen_new(struct worker *w, struct server_gen *g)
{
	struct worker_gen *wg;
	size_t i;

	wg = xcalloc(1, sizeof *wg);
	wg->refs = 1;
	wg->gen = server_gen_ref(g);
	wg->n_routes = g->cfg->n_routes;
	wg->routes = xcalloc(wg->n_routes, sizeof *wg->routes);
	wg->default_cors = g->default_cors;
	{
		struct sampler_conf sc;

		memset(&sc, 0, sizeof sc);
		sc.service = g->cfg->tracing.service;
		sc.env = g->cfg->tracing.env;
		sc.has_sample_rate = g->cfg->tracing.has_sample_rate;
		sc.sample_rate = g->cfg->tracing.sample_rate;
		sc.rate_limit = g->cfg->tracing.rate_limit;
		wg->sampler = sampler_new(&sc);
	}
	for (i = 0; i < wg->n_routes; i++) {
		struct worker_route *r = &wg->routes[i];
		char *cause = NULL;

		r->conf = &g->cfg->routes[i];
		r->slot = g->route_slot[i];
		r->cors = g->route_cors[i];
		r->prop = &g->route_prop[i];
		r->pool = upstream_pool_new(w->base, &r->conf->upstream,
		    g->route_ssl[i], &cause);
		if (r->pool == NULL) {
			log_warnx("worker %u: route %s: upstream %s: %s", w->id,
			    r->conf->name, r->conf->upstream.url,
			    cause != NULL ? cause : "cannot create pool");
			free(cause);
		}
	}
	return wg;
}

#define SERVER_SPAN_POOL_MAX 256

void
server_span_export(struct worker *w, const struct span *sp)
{
	if (w->xq != NULL)
		(void)exporter_submit(w->xq, sp);	/* drops are counted */
}

void
server_sampler_refresh(struct worker *w)
{
	struct worker_gen *wg = w->wgen;
	struct sampler_rate *rates = NULL;
	size_t n = 0;
	uint64_t v;

	if (w->exporter == NULL || wg->sampler == NULL ||
	    exporter_rates_version(w->exporter) == wg->rates_version)
		return;
	v = exporter_rates_copy(w->exporter, &rates, &n);
	sampler_set_agent_rates(wg->sampler, rates, n);
	sampler_rates_free(rates, n);
	wg->rates_version = v;
}

struct span *
server_span_get(struct worker *w)
{
	struct span *sp = w->span_pool;

	if (sp != NULL) {
		memcpy(&w->span_pool, sp->arena_buf, sizeof w->span_pool);
		w->span_pool_n--;
		span_init(sp);
		return sp;
	}
	return span_new();
}

void
server_span_put(struct worker *w, struct span *sp)
{
	if (sp == NULL)
		return;
	if (w->span_pool_n >= SERVER_SPAN_POOL_MAX) {
		span_free(sp);
		return;
	}
	/* The free list runs through the first bytes of the arena. */
	memcpy(sp->arena_buf, &w->span_pool, sizeof w->span_pool);
	w->span_pool = sp;
	w->span_pool_n++;
}

/* Free every pooled span (worker exit). */
static void
server_span_pool_free(struct worker *w)
{
	struct span *sp;

	while ((sp = w->span_pool) != NULL) {
		memcpy(&w->span_pool, sp->arena_buf, sizeof w->span_pool);
		span_free(sp);
	}
	w->span_pool_n = 0;
}

const char *
server_date(struct worker *w)
{
	time_t now = time(NULL);

	if ((int64_t)now != w->date_sec) {
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT",
		    &tm);
		w->date_sec = (int64_t)now;
	}
	return w->date;
}

/* Arm the connection timeout that matches what we wait for. */
static void
server_conn_timeout(struct server_conn *c, enum server_timeout_phase ph)
{
	const struct config_limits *l = &c->worker->wgen->gen->cfg->limits;
	struct timeval tv;
	uint64_t ms;

	if (c->phase_timeout == ph || c->evcon == NULL)
		return;
	c->phase_timeout = ph;
	ms = ph == SERVER_TO_HEADER ? l->header_timeout_ms :
	    ph == SERVER_TO_BODY ? l->body_timeout_ms :
	    ph == SERVER_TO_BUSY ? c->worker->wgen->gen->busy_timeout_ms :
	    l->idle_timeout_ms;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evhttp_connection_set_timeout_tv(c->evcon, &tv);
}

/* evhttp asks for a bufferevent for a new client connection. */
static struct bufferevent *
server_bev_cb(struct event_base *base, void *arg)
{
	struct worker *w = arg;
	struct server_gen *g = w->wgen->gen;
	struct bufferevent *bev;
	struct server_conn *c;
	struct framing_limits fl;

	if (g->server_ssl != NULL)
		bev = tls_server_bev(base, g->server_ssl, -1);
	else
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL;
	if ((c = calloc(1, sizeof *c)) == NULL)
		return bev;	/* served without the guard's bookkeeping */
	c->worker = w;
	c->bev = bev;
	c->fd = -1;
	c->tls = g->server_ssl != NULL;
	c->phase_timeout = SERVER_TO_IDLE;
	fl.max_header_bytes = g->cfg->limits.max_header_bytes;
	fl.max_body_bytes = g->cfg->limits.max_body_bytes;
	framing_init(&c->framing, &fl);
	/*
	 * evhttp builds its connection around bev right after we return.
	 * Keep bev alive with a reference until the bind pass (later in
	 * this loop turn) attaches our close callback to that connection.
	 */
	bufferevent_incref(bev);
	evbuffer_add_cb(bufferevent_get_input(bev), server_input_cb, c);
	c->pending_next = w->unbound;
	w->unbound = c;
	event_active(w->bind_ev, EV_TIMEOUT, 0);
	return bev;
}

/* Pause or resume accepting on this worker's listeners. */
static void
server_worker_accepting(struct worker *w, bool on)
{
	size_t i;

	if (w->accepting == on || w->draining)
		return;
	w->accepting = on;
	for (i = 0; i < w->n_bound; i++) {
		struct evconnlistener *l;

		l = evhttp_bound_socket_get_listener(w->bound[i]);
		if (on)
			evconnlistener_enable(l);
		else
			evconnlistener_disable(l);
	}
}

/* Attach new connections to their evhttp connection objects. */
static void
server_bind_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct server_conn *c, *next;

	(void)fd;
	(void)what;
	for (c = w->unbound, w->unbound = NULL; c != NULL; c = next) {
		bufferevent_data_cb rcb;
		void *cbarg = NULL;
		char *addr = NULL;
		ev_uint16_t port = 0;

		next = c->pending_next;
		c->pending_next = NULL;
		bufferevent_getcb(c->bev, &rcb, NULL, NULL, &cbarg);
		if (rcb == NULL || cbarg == NULL) {
			/* evhttp dropped it already. */
			bufferevent_decref(c->bev);
			free(c);
			continue;
		}
		c->evcon = cbarg;
		c->fd = bufferevent_getfd(c->bev);
		evhttp_connection_set_closecb(c->evcon, server_conn_close_cb, c);
		evhttp_connection_get_peer(c->evcon, &addr, &port);
		snprintf(c->client_ip, sizeof c->client_ip, "%s",
		    addr != NULL ? addr : "-");
		snprintf(c->client, sizeof c->client,
		    strchr(c->client_ip, ':') != NULL ? "[%s]:%u" : "%s:%u",
		    c->client_ip, (unsigned)port);
		if (c->fd >= 0 && (size_t)c->fd < server_nconns_max)
			server_conns[c->fd] = c;
		bufferevent_decref(c->bev);
		w->nconns++;
		metrics_conn(w->metrics, 1);
		metrics_add(w->metrics, METRICS_CONN_ACCEPTED, 1);
		if (w->nconns >= w->max_conns)
			server_worker_accepting(w, false);
	}
}

/* Answer the refusal of c now: unhook evhttp, write, free after flush. */
static void
server_conn_refuse(struct server_conn *c)
{
	struct worker *w = c->worker;
	struct framing_state *fs = &c->framing;
	bufferevent_event_cb ecb;
	const struct worker_route *route;
	char id[24];
	void *cbarg;

	evbuffer_drain(bufferevent_get_input(c->bev),
	    evbuffer_get_length(bufferevent_get_input(c->bev)));
	bufferevent_getcb(c->bev, NULL, NULL, &ecb, &cbarg);
	bufferevent_setcb(c->bev, NULL, NULL, ecb, cbarg);
	bufferevent_disable(c->bev, EV_READ);
	route = proxy_route_find(w->wgen, fs->host[0] != '\0' ? fs->host : NULL,
	    fs->path[0] != '\0' ? fs->path : "/");
	proxy_request_id(w, id);
	/* The route's CORS policy, or the top-level one (as for a 404). */
	proxy_format_raw_error(w, bufferevent_get_output(c->bev), fs->status,
	    fs->reason != NULL ? fs->reason : "invalid request",
	    route != NULL ? route->cors : w->wgen->default_cors,
	    fs->origin[0] != '\0' ? fs->origin : NULL, id);
	metrics_request(w->metrics, route != NULL ? route->slot : 0,
	    fs->status, 0, 0);
	evbuffer_add_cb(bufferevent_get_output(c->bev), server_output_cb, c);
	bufferevent_enable(c->bev, EV_WRITE);
}

/* Deferred refusal (after the valid pipelined requests were answered). */
static void
server_conn_refuse_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->active == NULL)
		server_conn_refuse(c);
}

/* Arm the connection's one deferred event with cb. */
static void
server_conn_defer(struct server_conn *c, event_callback_fn cb)
{
	if (c->kill_ev != NULL)
		event_free(c->kill_ev);
	c->kill_ev = event_new(c->worker->base, -1, 0, cb, c);
	if (c->kill_ev != NULL)
		event_active(c->kill_ev, EV_TIMEOUT, 0);
}

/*
 * The guard refused the stream of c.  Requests before the refused one
 * that are already in the buffer are still answered (as nginx does);
 * the refused one and everything after it is dropped, and the refusal is
 * answered once those are done.
 */
static void
server_conn_reject(struct server_conn *c, struct evbuffer *in)
{
	struct worker *w = c->worker;
	struct framing_state *fs = &c->framing;
	uint64_t buf_off, keep = 0;
	size_t len = evbuffer_get_length(in);

	c->rejected = true;
	metrics_add(w->metrics, METRICS_FRAMING_REJECTED, 1);
	if (w->reject_log_sec != (int64_t)time(NULL)) {
		w->reject_log_sec = (int64_t)time(NULL);
		w->reject_log_n = 0;
	}
	if (w->reject_log_n++ < 10) {
		log_info("client %s: refused request (%d): %s", c->client,
		    fs->status, fs->reason != NULL ? fs->reason : "invalid");
	}
	/* Every byte in the buffer has been fed: buffer[0] is at buf_off. */
	buf_off = fs->fed - len;
	if (fs->req_start > buf_off && fs->req_start - buf_off < len)
		keep = fs->req_start - buf_off;
	if (keep > 0) {
		struct evbuffer *tmp = evbuffer_new();

		if (tmp != NULL) {
			evbuffer_remove_buffer(in, tmp, (size_t)keep);
			evbuffer_drain(in, evbuffer_get_length(in));
			evbuffer_add_buffer(in, tmp);
			evbuffer_free(tmp);
		} else
			keep = 0;
	}
	if (keep == 0)
		evbuffer_drain(in, evbuffer_get_length(in));
	if (keep > 0 || c->active != NULL) {
		c->pending_reject = true;
		return;
	}
	server_conn_refuse(c);
}

/* Our answer to a refused stream left the output buffer: close. */
static void
server_output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct server_conn *c = arg;

	if (info->n_deleted == 0 || evbuffer_get_length(buf) > 0)
		return;
	server_conn_defer(c, server_conn_kill_cb);
}

/* Free the connection of c (next loop turn after the decision). */
static void
server_conn_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->evcon != NULL)
		evhttp_connection_free(c->evcon);	/* -> close cb */
}

/* Every byte a client sends passes here before evhttp parses it. */
static void
server_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct server_conn *c = arg;
	struct evbuffer_iovec vec[8];
	struct evbuffer_ptr ptr;
	size_t len, start;
	int i, n;

	if (info->n_added == 0 || c->in_scan)
		return;
	if (c->rejected) {
		c->in_scan = true;
		evbuffer_drain(buf, evbuffer_get_length(buf));
		c->in_scan = false;
		return;
	}
	len = evbuffer_get_length(buf);
	start = len - info->n_added;
	if (evbuffer_ptr_set(buf, &ptr, start, EVBUFFER_PTR_SET) != 0)
		return;
	c->in_scan = true;
	while (start < len) {
		n = evbuffer_peek(buf, (ev_ssize_t)(len - start), &ptr, vec,
		    (int)TS_NITEMS(vec));
		if (n <= 0)
			break;
		for (i = 0; i < n && i < (int)TS_NITEMS(vec); i++) {
			size_t take = vec[i].iov_len;

			if (take > len - start)
				take = len - start;
			if (framing_feed(&c->framing, vec[i].iov_base,
			    take) != 0) {
				server_conn_reject(c, buf);
				c->in_scan = false;
				return;
			}
			start += take;
		}
		if (evbuffer_ptr_set(buf, &ptr, start, EVBUFFER_PTR_SET) != 0)
			break;
	}
	c->in_scan = false;
	if (c->active != NULL) {
		/*
		 * A request of ours is in flight and the connection keeps
		 * reading (see server_request_cb): bound what a client can
		 * pile up meanwhile; evhttp reads again after the reply.
		 */
		if (len > c->framing.limits.max_header_bytes + 65536)
			bufferevent_disable(c->bev, EV_READ);
	} else {
		if (framing_idle(&c->framing))
			server_conn_timeout(c, SERVER_TO_IDLE);
		else if (c->framing.phase == FRAMING_BODY_LENGTH ||
		    c->framing.phase == FRAMING_BODY_CHUNKED)
			server_conn_timeout(c, SERVER_TO_BODY);
		else
			server_conn_timeout(c, SERVER_TO_HEADER);
	}
}

/* A request evhttp parsed (after the guard accepted its bytes). */
static void
server_request_cb(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	int fd = bufferevent_getfd(bev);
	struct server_conn *c = NULL;

	if (fd >= 0 && (size_t)fd < server_nconns_max)
		c = server_conns[fd];
	if (c == NULL || c->bev != bev) {
		/* Not ours (allocation failed at accept): minimal answer. */
		evhttp_send_error(req, 503, "Service Unavailable");
		return;
	}
	/*
	 * evhttp stopped reading the connection before calling us; that
	 * costs two epoll_ctl calls per request (off now, on again after
	 * the reply).  Keep reading instead, with no read callback: bytes
	 * that arrive meanwhile wait in the input buffer (the guard still
	 * sees them; evhttp parses them after the reply), and an EOF or
	 * reset reaches evhttp's event callback, which frees the
	 * connection -- so a client that goes away cancels its upstream
	 * exchange at once.
	 */
	{
		bufferevent_data_cb wcb;
		bufferevent_event_cb ecb;
		void *cbarg;

		bufferevent_getcb(bev, NULL, &wcb, &ecb, &cbarg);
		bufferevent_setcb(bev, NULL, wcb, ecb, cbarg);
		bufferevent_enable(bev, EV_READ);
	}
	server_conn_timeout(c, SERVER_TO_BUSY);
	proxy_handle(w, c, req);
}

void
server_request_done(struct worker *w, struct server_conn *c)
{
	w->inflight--;
	if (c != NULL) {
		c->active = NULL;
		/* Waiting for the next request: the idle timeout applies. */
		server_conn_timeout(c, SERVER_TO_IDLE);
		if (c->pending_reject && evbuffer_get_length(
		    bufferevent_get_input(c->bev)) == 0)
			server_conn_defer(c, server_conn_refuse_cb);
		else if (c->pending_close)
			server_conn_defer(c, server_conn_kill_cb);
	}
	if (w->draining && w->inflight == 0)
		event_base_loopexit(w->base, NULL);
}

/* evhttp is freeing the connection: the one teardown of c. */
static void
server_conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct server_conn *c = arg;
	struct worker *w = c->worker;

	(void)evcon;
	if (c->active != NULL)
		proxy_client_gone(c->active);
	if (c->fd >= 0 && (size_t)c->fd < server_nconns_max &&
	    server_conns[c->fd] == c)
		server_conns[c->fd] = NULL;
	if (c->kill_ev != NULL)
		event_free(c->kill_ev);
	w->nconns--;
	metrics_conn(w->metrics, -1);
	if (w->nconns < w->max_conns)
		server_worker_accepting(w, true);
	free(c);
}

/* Commands from the main thread. */
static void
server_cmd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct server_gen *g;
	char cmd[16];
	ssize_t n, i;
	size_t b;

	(void)what;
	if ((n = read(fd, cmd, sizeof cmd)) <= 0)
		return;
	for (i = 0; i < n; i++) {
		switch (cmd[i]) {
		case SERVER_CMD_RELOAD:
			pthread_mutex_lock(&srv.lock);
			g = w->next_gen;
			w->next_gen = NULL;
			pthread_mutex_unlock(&srv.lock);
			if (g == NULL)
				break;
			server_wgen_unref(w->wgen);
			w->wgen = server_wgen_new(w, g);
			server_gen_unref(g);
			break;
		case SERVER_CMD_DRAIN:
			if (w->draining)
				break;
			server_worker_accepting(w, true);
			w->draining = true;
			for (b = 0; b < w->n_bound; b++)
				evhttp_del_accept_socket(w->http, w->bound[b]);
			w->n_bound = 0;
			if (w->inflight == 0)
				event_base_loopexit(w->base, NULL);
			break;
		case SERVER_CMD_EXIT:
			event_base_loopbreak(w->base);
			break;
		default:
			break;
		}
	}
}

/* Worker thread body. */
static void *
server_worker_main(void *arg)
{
	struct worker *w = arg;
	char one = 1;

	event_base_dispatch(w->base);
	evhttp_free(w->http);
	w->http = NULL;
	event_free(w->cmd_ev);
	event_free(w->bind_ev);
	server_bind_cb(-1, 0, w);
	server_wgen_unref(w->wgen);
	w->wgen = NULL;
	server_span_pool_free(w);
	free(w->extract);
	w->extract = NULL;
	evbuffer_free(w->ubuf);
	w->ubuf = NULL;
	event_base_free(w->base);
	w->base = NULL;
	(void)!write(srv.done_fd[1], &one, 1);
	return NULL;
}

/* Open a listening socket on a (SO_REUSEPORT); *port gets the port. */
static int
server_listen_socket(const char *host, uint16_t port, uint16_t *bound,
    char **cause)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char pbuf[8];
	int fd, one = 1, rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(pbuf, sizeof pbuf, "%u", (unsigned)port);
	if ((rc = getaddrinfo(host, pbuf, &hints, &res)) != 0) {
		xasprintf(cause, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == -1 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, 1024) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
		xasprintf(cause, "%s:%u: %s", host, (unsigned)port,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	if (ss.ss_family == AF_INET6)
		*bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		*bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* Create worker i (base, evhttp, sockets) without starting its thread. */
static int
server_worker_init(struct worker *w, unsigned i, struct server_gen *g,
    char **cause)
{
	const struct config *cfg = g->cfg;
	struct event_config *ec;
	const char *errstr = NULL;
	size_t a;

	w->id = i;
	w->pid = (int)getpid();
	w->id_salt = (uint32_t)random();
	if (ids_rng_init(&w->rng, &errstr) != 0)
		fatalx("worker %u: %s", i, errstr);
	w->extract = xmalloc(sizeof *w->extract);
	if ((w->ubuf = evbuffer_new()) == NULL)
		fatalx("worker %u: out of memory", i);
	{
		struct timespec rt, mt;

		clock_gettime(CLOCK_REALTIME, &rt);
		clock_gettime(CLOCK_MONOTONIC, &mt);
		w->wall_offset_ns = ((int64_t)rt.tv_sec - (int64_t)mt.tv_sec) *
		    1000000000 + ((int64_t)rt.tv_nsec - (int64_t)mt.tv_nsec);
	}
	if ((ec = event_config_new()) == NULL)
		fatalx("event_config_new failed");
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK |
	    EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (w->base == NULL)
		fatalx("cannot create an event base");
	if ((w->http = evhttp_new(w->base)) == NULL)
		fatalx("cannot create an evhttp server");
	w->metrics = metrics_new("worker");
	w->exporter = srv.exporter;
	if (srv.exporter != NULL)
		w->xq = exporter_queue_new(srv.exporter);
	w->wgen = server_wgen_new(w, g);
	w->max_conns = cfg->limits.max_connections / cfg->workers;
	if (w->max_conns == 0)
		w->max_conns = 1;
	w->accepting = true;
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(w->http, NULL);
	/* The guard enforces the real limits first; these are backstops. */
	evhttp_set_max_headers_size(w->http,
	    (ev_ssize_t)cfg->limits.max_header_bytes + 4096);
	evhttp_set_max_body_size(w->http,
	    (ev_ssize_t)cfg->limits.max_body_bytes + 65536);
	{
		struct timeval tv;

		tv.tv_sec = (time_t)(cfg->limits.idle_timeout_ms / 1000);
		tv.tv_usec = (suseconds_t)(cfg->limits.idle_timeout_ms % 1000) *
		    1000;
		evhttp_set_timeout_tv(w->http, &tv);
	}
	evhttp_set_bevcb(w->http, server_bev_cb, w);
	evhttp_set_gencb(w->http, server_request_cb, w);
	w->bind_ev = event_new(w->base, -1, 0, server_bind_cb, w);

	w->bound = xcalloc(cfg->n_listen, sizeof *w->bound);
	for (a = 0; a < cfg->n_listen; a++) {
		uint16_t port;
		int fd;

		fd = server_listen_socket(cfg->listen[a].host,
		    srv.bound_addrs[a].port, &port, cause);
		if (fd == -1)
			return -1;
		srv.bound_addrs[a].port = port;
		w->bound[a] = evhttp_accept_socket_with_handle(w->http, fd);
		if (w->bound[a] == NULL) {
			xasprintf(cause, "%s: cannot accept", cfg->listen[a].text);
			close(fd);
			return -1;
		}
		w->n_bound++;
	}
	if (pipe2(w->cmd_fd, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe");
	w->cmd_ev = event_new(w->base, w->cmd_fd[0], EV_READ | EV_PERSIST,
	    server_cmd_cb, w);
	event_add(w->cmd_ev, NULL);
	return 0;
}

/* Send a command byte to every worker. */
static void
server_tell_workers(char cmd)
{
	unsigned i;

	for (i = 0; i < srv.n_workers; i++)
		(void)!write(srv.workers[i].cmd_fd[1], &cmd, 1);
}

/* SIGHUP: load, validate, swap; keep the old config on any error. */
static void
server_reload(void)
{
	struct config *cfg = NULL;
	struct server_gen *g;
	char *errors = NULL, *cause = NULL, *line, *save = NULL;
	unsigned i;
	extern char **environ;

	if (config_load(srv.gen->cfg->path, environ, &cfg, &errors) != 0) {
		log_warnx("configuration reload failed: keeping the running "
		    "configuration");
		for (line = strtok_r(errors, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			log_warnx("%s", line);
		free(errors);
		metrics_add(srv.metrics, METRICS_RELOADS_FAILED, 1);
		return;
	}
	if (config_check_reload(srv.gen->cfg, cfg, &cause) != 0 ||
	    (g = server_gen_new(cfg, &cause)) == NULL) {
		log_warnx("configuration reload failed: %s", cause);
		free(cause);
		if (cfg != NULL && srv.gen->cfg != cfg)
			config_unref(cfg);
		metrics_add(srv.metrics, METRICS_RELOADS_FAILED, 1);
		return;
	}
	pthread_mutex_lock(&srv.lock);
	for (i = 0; i < srv.n_workers; i++) {
		if (srv.workers[i].next_gen != NULL)
			server_gen_unref(srv.workers[i].next_gen);
		srv.workers[i].next_gen = server_gen_ref(g);
	}
	server_gen_unref(srv.gen);
	srv.gen = g;
	pthread_mutex_unlock(&srv.lock);
	server_tell_workers(SERVER_CMD_RELOAD);
	if (g->cfg->logging.level >= 0)
		log_set_level((enum log_level)g->cfg->logging.level);
	metrics_add(srv.metrics, METRICS_RELOADS_OK, 1);
	log_info("configuration reloaded (generation %llu)",
	    (unsigned long long)g->id);
}

/* Admin endpoints: /healthz /readyz /metrics. */
static void
server_admin_cb(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *body = evbuffer_new();
	size_t plen = strcspn(uri, "?");
	int code = 200;

	(void)arg;
	if (body == NULL) {
		evhttp_send_error(req, 503, NULL);
		return;
	}
	if (plen == 8 && strncmp(uri, "/healthz", 8) == 0) {
		evhttp_add_header(out, "Content-Type", "application/json");
		evbuffer_add_printf(body, "{\"status\":\"ok\"}\n");
	} else if (plen == 7 && strncmp(uri, "/readyz", 7) == 0) {
		evhttp_add_header(out, "Content-Type", "application/json");
		if (srv.draining) {
			code = 503;
			evbuffer_add_printf(body, "{\"status\":\"draining\"}\n");
		} else if (!srv.ready) {
			code = 503;
			evbuffer_add_printf(body, "{\"status\":\"starting\"}\n");
		} else
			evbuffer_add_printf(body, "{\"status\":\"ready\"}\n");
	} else if (plen == 8 && strncmp(uri, "/metrics", 8) == 0) {
		char *text = metrics_render();

		evhttp_add_header(out, "Content-Type",
		    "text/plain; version=0.0.4; charset=utf-8");
		if (text != NULL) {
			evbuffer_add(body, text, strlen(text));
			free(text);
		}
	} else if (plen == 18 && strncmp(uri, "/debug/propagation", 18) == 0) {
		evbuffer_free(body);
		debug_propagation_reply(req, srv.gen->cfg);
		return;
	} else if (plen == 18 && strncmp(uri, "/debug/propagation", 18) == 0) {
		/* Answers 404 itself unless admin.debug is on. */
		evbuffer_free(body);
		debug_propagation_reply(req, srv.gen->cfg);
		return;
	} else {
		code = 404;
		evhttp_add_header(out, "Content-Type", "application/json");
		evbuffer_add_printf(body, "{\"error\":\"not_found\"}\n");
	}
	evhttp_send_reply(req, code, code == 200 ? "OK" : code == 404 ?
	    "Not Found" : "Service Unavailable", body);
	evbuffer_free(body);
}

/* Start draining: not ready, stop accepting, finish in-flight requests. */
static void
server_drain(void)
{
	struct timeval tv = {SERVER_DRAIN_TIMEOUT_S, 0};

	if (srv.draining)
		return;
	srv.draining = true;
	log_info("draining: finishing in-flight requests");
	server_tell_workers(SERVER_CMD_DRAIN);
	srv.drain_timer = evtimer_new(srv.base, server_drain_timeout_cb, NULL);
	evtimer_add(srv.drain_timer, &tv);
}

static void
server_drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_warnx("drain timed out after %d s: closing remaining requests",
	    SERVER_DRAIN_TIMEOUT_S);
	server_tell_workers(SERVER_CMD_EXIT);
}

static void
server_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	if (sig == SIGHUP)
		server_reload();
	else
		server_drain();
}

/* A worker thread ended; when all have, leave the main loop. */
static void
server_done_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];
	ssize_t n;

	(void)what;
	(void)arg;
	if ((n = read(fd, buf, sizeof buf)) > 0)
		srv.workers_done += (unsigned)n;
	if (srv.workers_done >= srv.n_workers)
		event_base_loopexit(srv.base, NULL);
}

/* Log "libevent: ..." messages through our logger. */
static void
server_libevent_log_cb(int severity, const char *msg)
{
	if (severity == EVENT_LOG_DEBUG)
		log_debug("libevent: %s", msg);
	else if (severity == EVENT_LOG_MSG)
		log_info("libevent: %s", msg);
	else
		log_warnx("libevent: %s", msg);
}

/* The admin listener on the main base. */
static int
server_admin_start(const struct config *cfg, char **cause)
{
	uint16_t port;
	int fd;

	if (!cfg->has_admin)
		return 0;
	fd = server_listen_socket(cfg->admin_listen.host,
	    cfg->admin_listen.port, &port, cause);
	if (fd == -1)
		return -1;
	if ((srv.admin = evhttp_new(srv.base)) == NULL ||
	    evhttp_accept_socket_with_handle(srv.admin, fd) == NULL) {
		xasprintf(cause, "admin: cannot listen");
		close(fd);
		return -1;
	}
	evhttp_set_gencb(srv.admin, server_admin_cb, NULL);
	log_info("admin listening on http://%s%s%s:%u",
	    strchr(cfg->admin_listen.host, ':') ? "[" : "",
	    cfg->admin_listen.host,
	    strchr(cfg->admin_listen.host, ':') ? "]" : "", (unsigned)port);
	return 0;
}

int
server_main(struct config *cfg)
{
	struct event *sig_term, *sig_int, *sig_hup;
	struct server_gen *g;
	struct rlimit rl;
	sigset_t set, old;
	char *cause = NULL;
	unsigned i;
	size_t a;

	event_set_log_callback(server_libevent_log_cb);
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)(util_now_us() ^ (uint64_t)getpid()));
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	server_nconns_max = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (1u << 22) ?
	    (size_t)rl.rlim_cur : (1u << 20);
	server_conns = xcalloc(server_nconns_max, sizeof *server_conns);

	if ((g = server_gen_new(cfg, &cause)) == NULL) {
		log_warnx("%s", cause);
		free(cause);
		return 1;
	}
	srv.gen = g;
	srv.metrics = metrics_new("main");
	if (cfg->exporter.type != CONFIG_EXPORTER_NONE) {
		srv.exporter = exporter_new(cfg, &cause);
		if (srv.exporter == NULL) {
			log_warnx("exporter: %s", cause);
			free(cause);
			return 1;
		}
	}
	if ((srv.base = event_base_new()) == NULL)
		fatalx("cannot create the main event base");
	if (pipe2(srv.done_fd, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe");

	/* Workers inherit a blocked signal mask: signals go to main. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, &old);

	srv.bound_addrs = xcalloc(cfg->n_listen, sizeof *srv.bound_addrs);
	for (a = 0; a < cfg->n_listen; a++)
		srv.bound_addrs[a].port = cfg->listen[a].port;
	srv.n_workers = cfg->workers;
	srv.workers = xcalloc(srv.n_workers, sizeof *srv.workers);
	for (i = 0; i < srv.n_workers; i++) {
		if (server_worker_init(&srv.workers[i], i, g, &cause) != 0) {
			log_warnx("cannot listen: %s", cause);
			free(cause);
			return 1;
		}
	}
	if (server_admin_start(cfg, &cause) != 0) {
		log_warnx("cannot start the admin listener: %s", cause);
		free(cause);
		return 1;
	}
	for (i = 0; i < srv.n_workers; i++) {
		if (pthread_create(&srv.workers[i].thread, NULL,
		    server_worker_main, &srv.workers[i]) != 0)
			fatal("pthread_create");
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	sig_term = evsignal_new(srv.base, SIGTERM, server_signal_cb, NULL);
	sig_int = evsignal_new(srv.base, SIGINT, server_signal_cb, NULL);
	sig_hup = evsignal_new(srv.base, SIGHUP, server_signal_cb, NULL);
	evsignal_add(sig_term, NULL);
	evsignal_add(sig_int, NULL);
	evsignal_add(sig_hup, NULL);
	srv.done_ev = event_new(srv.base, srv.done_fd[0], EV_READ | EV_PERSIST,
	    server_done_cb, NULL);
	event_add(srv.done_ev, NULL);

	for (a = 0; a < cfg->n_listen; a++) {
		const char *h = cfg->listen[a].host;

		log_info("listening on %s://%s%s%s:%u",
		    g->server_ssl != NULL ? "https" : "http",
		    strchr(h, ':') ? "[" : "", h, strchr(h, ':') ? "]" : "",
		    (unsigned)srv.bound_addrs[a].port);
	}
	srv.ready = true;
	log_info("ready (%u workers)", srv.n_workers);

	event_base_dispatch(srv.base);

	for (i = 0; i < srv.n_workers; i++)
		pthread_join(srv.workers[i].thread, NULL);
	/* Every worker is gone: flush what is queued, then stop. */
	exporter_free(srv.exporter);
	srv.exporter = NULL;
	log_info("stopped");
	event_free(sig_term);
	event_free(sig_int);
	event_free(sig_hup);
	event_free(srv.done_ev);
	if (srv.drain_timer != NULL)
		event_free(srv.drain_timer);
	if (srv.admin != NULL)
		evhttp_free(srv.admin);
	for (i = 0; i < srv.n_workers; i++) {
		struct worker *w = &srv.workers[i];

		if (w->next_gen != NULL)
			server_gen_unref(w->next_gen);
		close(w->cmd_fd[0]);
		close(w->cmd_fd[1]);
		free(w->bound);
	}
	free(srv.workers);
	free(srv.bound_addrs);
	server_gen_unref(srv.gen);
	event_base_free(srv.base);
	close(srv.done_fd[0]);
	close(srv.done_fd[1]);
	free(server_conns);
	return 0;
}
