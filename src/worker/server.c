/*
 * server.c -- workers, listeners, client connections, admin, drain and
 * reload.
 *
 * Threads (ARCHITECTURE.md "Threads"): the main thread owns signals, the
 * admin listener and configuration loading; each worker owns an event
 * base (epoll changelist, no locks), its client connections (conn.c), its
 * upstream pools and its metrics block.  The main thread hands new
 * configuration generations and drain orders to workers through a pipe;
 * nothing on the request path takes a lock.
 *
 * Listening sockets: the main thread binds one socket per listen address
 * before any worker starts, without SO_REUSEPORT, so an address has one
 * owner: a second gateway (or anything else) on it fails to start instead
 * of silently taking part of the traffic.  Every worker watches every
 * socket in its own event base and accepts itself (accept4, a bounded
 * batch per wakeup; no evconnlistener, which would re-call listen() with
 * its own backlog), then hands the socket to conn.c, our HTTP/1.1 server
 * side built on the framing guard; evhttp serves only the admin listener
 * of the main thread.  When accept() runs out of descriptors or memory
 * the worker stops watching for a while (server_backoff) instead of
 * being woken again at once for the same pending connection.
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
#include <event2/listener.h>

#include "conn.h"
#include "h2.h"
#include "cors.h"
#include "admin.h"
#include "debug.h"
#include "exporter.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "sdnotify.h"
#include "server.h"
#include "tls.h"
#include "upstream.h"
#include "group.h"
#include "health.h"
#include "resolver.h"
#include "util.h"

#define SERVER_CMD_RELOAD 'R'
#define SERVER_CMD_DRAIN 'D'
#define SERVER_CMD_EXIT 'X'

/*
 * Accepts per wakeup of one listener.  Bounded so that a burst of
 * connections does not keep one worker from its existing clients, and
 * leaves the rest of the queue to the other workers woken by the same
 * readiness (all of them watch the socket; level-triggered, so what is
 * left wakes us again at the next loop).  libevent's listener and nginx
 * (multi_accept off: one per event) bound it too.
 */
#define SERVER_ACCEPT_BATCH 16
/*
 * Back-off after accept() failed for lack of descriptors or memory: the
 * first pause is 10 ms (a closing connection often frees a descriptor
 * that soon), doubled on each failure in a row up to 1 s, and reset by a
 * successful accept.  One retry a second at worst costs nothing, while
 * the pending connections wait in the listen queue as they would behind
 * a busy server.  nginx disables its accept events for
 * accept_mutex_delay (500 ms) on EMFILE; we retry sooner at first and
 * also resume as soon as one of the worker's own connections closes.
 */
#define SERVER_BACKOFF_MIN_MS 10
#define SERVER_BACKOFF_MAX_MS 1000

/* The process-wide state of the main thread. */
static struct {
	pthread_mutex_t lock;		/* gen and workers' next_gen */
	struct server_gen *gen;		/* current generation */
	struct worker *workers;
	unsigned n_workers;
	struct event_base *base;
	struct admin *admin;		/* admin/: the admin listener */
	bool ready;
	bool draining;
	uint64_t gen_counter;
	int done_fd[2];			/* workers write when they exit */
	struct event *done_ev;
	unsigned workers_done;
	struct event *drain_timer;
	struct config_addr *bound_addrs;	/* resolved listen ports */
	int *listen_fds;		/* one per server.listen, shared */
	char **listen_names;		/* "host:port" as bound, for logs */
	size_t n_listen_fds;
	char *admin_name;		/* "host:port" as bound */
	struct server_backoff admin_backoff;
	struct metrics *metrics;	/* main thread's block */
	struct exporter *exporter;	/* spans off the request path: the
					   current generation's (xp) */
	struct resolver *resolver;	/* upstream names, main thread */
	int failed_fd[2];		/* health_failed wakes main */
	struct event *failed_ev;
	/* Active health checks of srv.gen's routes (main thread). */
	struct upstream_checker **checkers;
	size_t n_checkers;
	uint64_t nconns;		/* client connections of every worker
					 * (__atomic: workers add and
					 * subtract, each reads) */
} srv = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/*
 * The exporter of a generation (issue 14 item 7).  A reload that changes
 * what the exporter was built from makes a new one; each worker moves to
 * it when it takes the new generation (its spans from then on go there),
 * and the old one is retired once nothing refers to it: neither a worker
 * nor a generation (server_xp_unref).  Retiring is exporter_free, which
 * sends what its queues hold before its thread ends, on a thread of its
 * own so that neither the main loop nor a worker waits for the Agent;
 * server_main joins those threads before it exits.  A span is queued in
 * exactly one exporter and sent by that one: a swap loses none.
 */
struct server_xp {
	int refs;			/* atomic: generations + workers */
	struct exporter *x;		/* NULL: exporter.type none */
};

static struct {
	pthread_mutex_t lock;
	pthread_t *threads;		/* retiring exporters, to join */
	size_t n;
} server_retiring = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

static struct server_xp *
server_xp_new(struct exporter *x)
{
	struct server_xp *xp = xcalloc(1, sizeof *xp);

	xp->refs = 1;
	xp->x = x;
	return xp;
}

static struct server_xp *
server_xp_ref(struct server_xp *xp)
{
	__atomic_add_fetch(&xp->refs, 1, __ATOMIC_RELAXED);
	return xp;
}

static void *
server_xp_retire_main(void *arg)
{
	exporter_free(arg);
	return NULL;
}

/* Drop a reference (any thread); the last one retires the exporter. */
static void
server_xp_unref(struct server_xp *xp)
{
	pthread_t t;

	if (xp == NULL ||
	    __atomic_sub_fetch(&xp->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (xp->x != NULL) {
		pthread_mutex_lock(&server_retiring.lock);
		if (pthread_create(&t, NULL, server_xp_retire_main,
		    xp->x) != 0)
			exporter_free(xp->x);	/* here, then */
		else {
			server_retiring.threads = xrealloc(
			    server_retiring.threads,
			    (server_retiring.n + 1) * sizeof t);
			server_retiring.threads[server_retiring.n++] = t;
		}
		pthread_mutex_unlock(&server_retiring.lock);
	}
	free(xp);
}

/* Wait for every retired exporter to have sent its spans (exit). */
static void
server_retiring_join(void)
{
	size_t i;

	pthread_mutex_lock(&server_retiring.lock);
	for (i = 0; i < server_retiring.n; i++)
		pthread_join(server_retiring.threads[i], NULL);
	free(server_retiring.threads);
	server_retiring.threads = NULL;
	server_retiring.n = 0;
	pthread_mutex_unlock(&server_retiring.lock);
}

/* Two strings equal, NULL equal to NULL. */
static bool
server_streq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether b's exporter would be built as a's (exporter_new reads these). */
static bool
server_exporter_same(const struct config *a, const struct config *b)
{
	const struct config_exporter *x = &a->exporter, *y = &b->exporter;
	size_t i;

	if (x->type != y->type || x->flush_interval_ms != y->flush_interval_ms ||
	    x->max_queue_spans != y->max_queue_spans ||
	    x->thread_nice != y->thread_nice ||
	    x->otlp_protocol != y->otlp_protocol ||
	    x->compression != y->compression ||
	    x->timeout_ms != y->timeout_ms || x->n_headers != y->n_headers ||
	    !server_streq(x->datadog_url, y->datadog_url) ||
	    !server_streq(x->otlp_endpoint, y->otlp_endpoint) ||
	    !server_streq(x->tls_ca_file, y->tls_ca_file) ||
	    !server_streq(a->tracing.service, b->tracing.service) ||
	    !server_streq(a->tracing.env, b->tracing.env) ||
	    !server_streq(a->tracing.version, b->tracing.version))
		return false;
	for (i = 0; i < x->n_headers; i++) {
		if (!server_streq(x->headers[i].key, y->headers[i].key) ||
		    !server_streq(x->headers[i].value, y->headers[i].value))
			return false;
	}
	return true;
}

/* The exporter for cfg: NULL + *cause when it cannot be built. */
static struct server_xp *
server_xp_for(const struct config *cfg, char **cause)
{
	struct exporter *x = NULL;

	if (cfg->exporter.type != CONFIG_EXPORTER_NONE &&
	    (x = exporter_new(cfg, cause)) == NULL)
		return NULL;
	return server_xp_new(x);
}

/* Where spans go: the exporter type and its URL, for the logs. */
static const char *
server_exporter_target(const struct config *cfg)
{
	switch (cfg->exporter.type) {
	case CONFIG_EXPORTER_DATADOG:
		return cfg->exporter.datadog_url;
	case CONFIG_EXPORTER_OTLP:
		return cfg->exporter.otlp_endpoint;
	case CONFIG_EXPORTER_STDOUT:
		return "stdout";
	default:
		return "none";
	}
}

/* Tell the service manager (sdnotify.c); a failure is only logged. */
static void
server_notify(const char *state)
{
	char *cause = NULL;

	if (sdnotify(state, &cause) != 0) {
		log_warnx("%s", cause);
		free(cause);
	}
}

static void server_accept_cb(evutil_socket_t, short, void *);
static void server_cmd_cb(evutil_socket_t, short, void *);
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
	/* make chaos's reload storm counts these against the reloads. */
	log_debug("configuration generation %llu freed",
	    (unsigned long long)g->id);
	for (i = 0; i < g->cfg->n_routes; i++) {
		if (g->route_ssl[i] != NULL)
			SSL_CTX_free(g->route_ssl[i]);
	}
	if (g->server_ssl != NULL)
		SSL_CTX_free(g->server_ssl);
	for (i = 0; i < g->cfg->n_routes; i++) {
		/* Routes without their own cors block share the default. */
		if (g->route_cors[i] != g->default_cors)
			cors_policy_free(g->route_cors[i]);
	}
	for (i = 0; i < g->cfg->n_routes; i++) {
		size_t t;

		for (t = 0; t < g->route_up[i].n; t++)
			health_server_put(g->route_up[i].targets[t].server);
		free(g->route_up[i].targets);
		free(g->route_up[i].error);
	}
	free(g->route_up);
	free(g->route_prop);
	cors_policy_free(g->default_cors);
	free(g->route_ssl);
	free(g->route_slot);
	free(g->route_cors);
	server_xp_unref(g->xp);
	config_unref(g->cfg);
	free(g);
}

/* Where cors_policy_new's reports go: one cors block's key prefix. */
struct server_cors_report {
	struct config_errors *errs;
	const char *prefix;		/* "cors", "routes[2].cors" */
};

/* A CORS policy problem, positioned at its key in the file. */
static void
server_cors_report_cb(void *arg, bool fatal, const char *key,
    const char *msg)
{
	struct server_cors_report *r = arg;
	char *full;

	xasprintf(&full, "%s.%s", r->prefix, key);
	if (fatal)
		config_error_at(r->errs, full, "%s", msg);
	else
		config_warn_at(r->errs, full, "%s", msg);
	free(full);
}

/*
 * The addresses of one server: an IP literal as is; a name from the
 * background resolver's cache once it knows it (so that building a
 * generation after a DNS change does not block on the same lookup again),
 * else by the blocking lookup of upstream_resolve (startup, reload, -n),
 * which then seeds the cache.
 */
static int
server_resolve(const struct config_upstream *up, struct upstream_addr **addrs,
    size_t *n, char **cause)
{
	if (srv.resolver != NULL && resolver_cached(srv.resolver, up->host,
	    up->port, addrs, n) == 0)
		return 0;
	if (upstream_resolve(up, addrs, n, cause) != 0)
		return -1;
	if (srv.resolver != NULL)
		resolver_store(srv.resolver, up->host, up->port, *addrs, *n);
	return 0;
}

/*
 * Resolve every server of route r into targets (one per address), each
 * with its shared health (health.c), on the main thread.  A server that
 * does not resolve is left out with a warning; when none does, up->error
 * says why.
 */
static void
server_gen_targets(struct server_gen_upstream *up,
    const struct config_route *r)
{
	const struct config_upstream *u = &r->upstream;
	struct upstream_addr *addrs;
	char *cause = NULL;
	size_t j, k, n;

	for (j = 0; j < u->n_servers; j++) {
		const struct config_server *sv = &u->servers[j];

		if (server_resolve(&sv->up, &addrs, &n, &cause) != 0) {
			if (u->n_servers > 1)
				log_warnx("route %s: server %s: %s", r->name,
				    sv->up.url, cause);
			if (up->error == NULL)
				up->error = cause;
			else
				free(cause);
			cause = NULL;
			continue;
		}
		up->targets = xrealloc(up->targets, (up->n + n) *
		    sizeof *up->targets);
		for (k = 0; k < n; k++) {
			struct upstream_target *t = &up->targets[up->n++];

			memset(t, 0, sizeof *t);
			t->addr = addrs[k];
			t->conf = &sv->up;
			t->weight = sv->weight;
			upstream_addr_name(&t->addr, t->name, sizeof t->name);
			t->server = health_server_get(r->name, t->name);
		}
		free(addrs);
	}
}

/*
 * Build a generation from cfg (main thread): TLS contexts, CORS policies,
 * metrics slots.  Takes its own reference on cfg (the caller keeps and
 * drops its own, whatever happens).  Every refusal goes to errs; NULL
 * when there was any.
 */
static struct server_gen *
server_gen_new(struct config *cfg, struct config_errors *errs)
{
	enum config_style styles[2 * CONFIG_MAX_STYLES];
	struct server_cors_report rep;
	struct server_gen *g;
	const char *which;
	char *cause = NULL, key[64];
	unsigned nerrors = errs->nerrors;
	size_t i, n_styles;

	g = xcalloc(1, sizeof *g);
	g->refs = 1;
	g->cfg = config_ref(cfg);
	g->id = ++srv.gen_counter;
	g->route_ssl = xcalloc(cfg->n_routes, sizeof *g->route_ssl);
	g->route_slot = xcalloc(cfg->n_routes, sizeof *g->route_slot);
	g->route_cors = xcalloc(cfg->n_routes, sizeof *g->route_cors);
	g->route_prop = xcalloc(cfg->n_routes, sizeof *g->route_prop);
	g->route_up = xcalloc(cfg->n_routes, sizeof *g->route_up);
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
		g->server_ssl = tls_server_ctx_load(cfg->tls.cert, cfg->tls.key,
		    &which, &cause);
		if (g->server_ssl == NULL) {
			config_error_at(errs, strcmp(which, "key") == 0 ?
			    "server.tls.key" : "server.tls.cert", "%s", cause);
			free(cause);
			cause = NULL;
		} else
			tls_server_ctx_set_h2(g->server_ssl,
			    cfg->http2.enabled);
	}
	/* CORS: the tracing headers of every style we extract or inject. */
	n_styles = 0;
	for (i = 0; i < cfg->propagation.n_extract; i++)
		styles[n_styles++] = cfg->propagation.extract[i];
	for (i = 0; i < cfg->propagation.n_inject; i++)
		styles[n_styles++] = cfg->propagation.inject[i];
	rep.errs = errs;
	if (cfg->has_cors) {
		rep.prefix = "cors";
		g->default_cors = cors_policy_new(&cfg->cors, styles, n_styles,
		    server_cors_report_cb, &rep);
	}
	for (i = 0; i < cfg->n_routes; i++) {
		const struct config_upstream *up = &cfg->routes[i].upstream;

		g->route_slot[i] = metrics_route_slot(cfg->routes[i].name);
		/*
		 * Once per generation, here on the main thread: a blocking
		 * lookup in a worker would stall its clients at every reload.
		 * A host that does not resolve is not a refusal (DNS may
		 * recover: the resolver looks it up again in the background,
		 * and a reload does): the workers warn and the route answers
		 * 502 meanwhile.
		 */
		server_gen_targets(&g->route_up[i], &cfg->routes[i]);
		if (cfg->routes[i].cors == &cfg->cors)
			g->route_cors[i] = g->default_cors;
		else if (cfg->routes[i].cors != NULL) {
			snprintf(key, sizeof key, "routes[%zu].cors", i);
			rep.prefix = key;
			g->route_cors[i] = cors_policy_new(cfg->routes[i].cors,
			    styles, n_styles, server_cors_report_cb, &rep);
		}
		if (up->scheme != CONFIG_SCHEME_HTTPS)
			continue;
		g->route_ssl[i] = tls_client_ctx_new(up->tls_verify,
		    up->tls_ca_file, &cause);
		if (g->route_ssl[i] == NULL) {
			snprintf(key, sizeof key, "routes[%zu].upstream.%s", i,
			    up->tls_ca_file != NULL ? "tls_ca_file" : "url");
			config_error_at(errs, key, "%s", cause);
			free(cause);
			cause = NULL;
		}
	}
	if (errs->nerrors != nerrors) {
		server_gen_unref(g);
		return NULL;
	}
	return g;
}

/* How server_prepare treats what has effects beyond the process. */
enum server_prep {
	SERVER_PREP_CHECK,	/* tracestitch -n: create and keep nothing */
	SERVER_PREP_START,	/* startup: open the access log for good */
};

/* A listen address that getaddrinfo cannot turn into a socket address. */
static void
server_check_addr(const struct config_addr *a, const char *key,
    struct config_errors *errs)
{
	struct addrinfo hints, *res = NULL;
	char pbuf[8];
	int rc;

	/* The lookup server_listen_socket does, without the socket. */
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(pbuf, sizeof pbuf, "%u", (unsigned)a->port);
	if ((rc = getaddrinfo(a->host, pbuf, &hints, &res)) != 0)
		config_error_at(errs, key, "cannot use host \"%s\": %s",
		    a->host, gai_strerror(rc));
	else
		freeaddrinfo(res);
}

/*
 * Everything done with cfg before serving, except binding: the generation
 * (TLS contexts, CORS policies), the exporter's URL, the listen
 * addresses and the access log.  The one path of tracestitch -n and of
 * startup (reload builds the generation alone: the rest cannot change).
 * All refusals go to errs; 0 when there was none, and then with
 * SERVER_PREP_START *gp holds the generation and the access log is open.
 */
static int
server_prepare(struct config *cfg, enum server_prep mode,
    struct config_errors *errs, struct server_gen **gp)
{
	struct server_gen *g;
	const char *key;
	char *cause = NULL, akey[48];
	size_t a;

	if (gp != NULL)
		*gp = NULL;
	g = server_gen_new(cfg, errs);
	if (exporter_check(cfg, &key, &cause) != 0) {
		config_error_at(errs, key, "%s", cause);
		free(cause);
		cause = NULL;
	}
	for (a = 0; a < cfg->n_listen; a++) {
		snprintf(akey, sizeof akey, "server.listen[%zu]", a);
		server_check_addr(&cfg->listen[a], akey, errs);
	}
	if (cfg->has_admin)
		server_check_addr(&cfg->admin_listen, "admin.listen", errs);
	/* Create the access log only when the start goes on. */
	if ((mode == SERVER_PREP_START && errs->nerrors == 0) ?
	    log_access_open(cfg->logging.access_log, &cause) != 0 :
	    log_access_check(cfg->logging.access_log, &cause) != 0) {
		config_error_at(errs, "logging.access_log", "%s", cause);
		free(cause);
	}
	if (errs->nerrors != 0 || mode == SERVER_PREP_CHECK || gp == NULL) {
		server_gen_unref(g);
		return errs->nerrors != 0 ? -1 : 0;
	}
	*gp = g;
	return 0;
}

/* tracestitch -n (server.h). */
int
server_check(struct config *cfg, struct config_errors *errs)
{
	return server_prepare(cfg, SERVER_PREP_CHECK, errs, NULL);
}

/* Log every line of text as a warning. */
static void
server_log_lines(const char *text)
{
	const char *p, *nl;

	if (text == NULL)
		return;
	for (p = text; *p != '\0'; p = *nl != '\0' ? nl + 1 : nl) {
		nl = p + strcspn(p, "\n");
		log_warnx("%.*s", (int)(nl - p), p);
	}
}

/* The last reference to wg went: free it (wg->free). */
static void
server_wgen_free(struct worker_gen *wg)
{
	size_t i;

	for (i = 0; i < wg->n_routes; i++)
		upstream_group_free(wg->routes[i].group);
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
	wg->free = server_wgen_free;
	wg->gen = server_gen_ref(g);
	wg->cfg = g->cfg;
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
		sc.rules_json = g->cfg->tracing.sampling_rules;
		wg->sampler = sampler_new(&sc);
	}
	for (i = 0; i < wg->n_routes; i++) {
		struct worker_route *r = &wg->routes[i];
		char *cause = NULL;

		r->conf = &g->cfg->routes[i];
		r->slot = g->route_slot[i];
		r->cors = g->route_cors[i];
		r->prop = &g->route_prop[i];
		/* The addresses the main thread resolved (server_gen_new). */
		if (g->route_up[i].n == 0)
			cause = xstrdup(g->route_up[i].error);
		else
			r->group = upstream_group_new(w->base,
			    &r->conf->upstream, g->route_up[i].targets,
			    g->route_up[i].n, g->route_ssl[i],
			    ((uint64_t)w->id << 32) ^ g->id ^ (uint64_t)i, &cause);
		if (r->group == NULL) {
			log_warnx("worker %u: route %s: upstream %s: %s", w->id,
			    r->conf->name, r->conf->upstream.url,
			    cause != NULL ? cause : "cannot create pool");
			free(cause);
		}
	}
	return wg;
}

/*
 * w's limits from cfg: server.limits.max_connections is the process's
 * (max_total); w's share, ceil(max_total / workers), only balances: a
 * worker at its share stops watching the sockets so that the others take
 * the new connections, as long as the process is under max_total.
 */
static void
server_worker_limits(struct worker *w, const struct config *cfg)
{
	w->max_total = cfg->limits.max_connections;
	w->max_conns = (w->max_total + cfg->workers - 1) / cfg->workers;
	if (w->max_conns == 0)
		w->max_conns = 1;
}

/*
 * Add or remove w's listener events to match what it may do now: accept
 * unless it is draining, backing off, or at its share of
 * max_connections while the process is under the limit.  When the
 * process is at max_connections, a worker at its share keeps watching:
 * what it accepts then it refuses at once (server_accept_cb), so that a
 * connection over the limit is closed instead of waiting in the listen
 * queue with no one to take it.  Since the shares add up to at least
 * max_connections, the last worker to reach its share sees the process at
 * the limit: no state leaves every worker away from the sockets.
 */
static void
server_worker_accepting(struct worker *w)
{
	bool on = !w->draining && !w->backoff.paused &&
	    (w->nconns < w->max_conns ||
	    __atomic_load_n(&srv.nconns, __ATOMIC_ACQUIRE) >= w->max_total);
	size_t i;

	if (w->accepting == on)
		return;
	w->accepting = on;
	for (i = 0; i < w->n_listeners; i++) {
		if (on)
			event_add(w->listeners[i], NULL);
		else
			event_del(w->listeners[i]);
	}
}

/* The counter of an accept() errno. */
static enum metrics_counter
server_accept_reason(int err)
{
	switch (err) {
	case EMFILE:
		return METRICS_ACCEPT_EMFILE;
	case ENFILE:
		return METRICS_ACCEPT_ENFILE;
	case ENOBUFS:
		return METRICS_ACCEPT_ENOBUFS;
	case ENOMEM:
		return METRICS_ACCEPT_ENOMEM;
	default:
		return METRICS_ACCEPT_OTHER;
	}
}

/*
 * accept() on what (a listen address) failed with err: count it, log it
 * at most once a second (with the failures not logged since), and arm
 * b's timer with the next delay.  The caller has stopped listening.
 */
static void
server_backoff_start(struct server_backoff *b, struct metrics *m,
    const char *who, const char *what, int err)
{
	struct timespec now;
	struct timeval tv;
	int64_t sec;

	clock_gettime(CLOCK_MONOTONIC, &now);
	sec = (int64_t)now.tv_sec;
	metrics_add(m, server_accept_reason(err), 1);
	if (b->delay_ms == 0)
		b->delay_ms = SERVER_BACKOFF_MIN_MS;
	else if ((b->delay_ms *= 2) > SERVER_BACKOFF_MAX_MS)
		b->delay_ms = SERVER_BACKOFF_MAX_MS;
	b->paused = true;
	if (sec != b->log_sec) {
		if (b->log_n > 0)
			log_warnx("%s: accept on %s: %s: not accepting for "
			    "%llu ms (%u more failures since the last report)",
			    who, what, strerror(err),
			    (unsigned long long)b->delay_ms, b->log_n);
		else
			log_warnx("%s: accept on %s: %s: not accepting for "
			    "%llu ms", who, what, strerror(err),
			    (unsigned long long)b->delay_ms);
		b->log_sec = sec;
		b->log_n = 0;
	} else
		b->log_n++;
	tv.tv_sec = (time_t)(b->delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(b->delay_ms % 1000) * 1000;
	evtimer_add(b->timer, &tv);
}

/* The back-off delay of a worker is over: accept again. */
static void
server_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	w->backoff.paused = false;
	server_worker_accepting(w);
}

/*
 * The process is at server.limits.max_connections: close fd, just
 * accepted, at once (nginx closes a connection over worker_connections,
 * Envoy one over its listener and global connection limits, the same
 * way).  No answer: reading a request to send a 503 with CORS headers
 * would give the connection the buffers the limit is there to bound.
 * The client sees the connection closed (or reset, if its request had
 * come); counted, logged at most once a second.
 */
static void
server_refuse(struct worker *w, int fd)
{
	struct timespec now;

	close(fd);
	metrics_add(w->metrics, METRICS_CONN_REFUSED, 1);
	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((int64_t)now.tv_sec == w->refuse_log_sec) {
		w->refuse_log_n++;
		return;
	}
	if (w->refuse_log_n > 0)
		log_warnx("worker %u: server.limits.max_connections (%llu) "
		    "reached: refusing new connections (%u more refused since "
		    "the last report)", w->id,
		    (unsigned long long)w->max_total, w->refuse_log_n);
	else
		log_warnx("worker %u: server.limits.max_connections (%llu) "
		    "reached: refusing new connections", w->id,
		    (unsigned long long)w->max_total);
	w->refuse_log_sec = (int64_t)now.tv_sec;
	w->refuse_log_n = 0;
}

/*
 * Whether connections on listening socket lfd start with a PROXY header:
 * server.proxy_protocol (every listener, reloadable) or its
 * server.listen item's proxy_protocol.
 */
static bool
server_listen_pp(const struct worker *w, evutil_socket_t lfd)
{
	const struct config *cfg = w->front.cfg;
	size_t i;

	if (cfg->proxy_protocol)
		return true;
	for (i = 0; i < srv.n_listen_fds && i < cfg->n_listen; i++) {
		if (srv.listen_fds[i] == lfd)
			return cfg->listen[i].proxy_protocol;
	}
	return false;
}

/* Client connections are waiting on the shared listening socket lfd. */
static void
server_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct worker *w = arg;
	struct sockaddr_storage ss;
	socklen_t sl;
	char who[32];
	size_t i, n;
	int fd, err;

	(void)what;
	for (n = 0; n < SERVER_ACCEPT_BATCH && w->accepting; n++) {
		sl = sizeof ss;
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			switch (errno) {
			case EAGAIN:
#if EAGAIN != EWOULDBLOCK
			case EWOULDBLOCK:
#endif
				/* Another worker took it. */
				return;
			case EINTR:
			case ECONNABORTED:
			case EPROTO:
			case EPERM:
				/* This one went away (or a firewall
				 * refused it); the next may be fine. */
				continue;
			case EINVAL:
				/* Shut down by server_drain: stop watching
				 * it; the drain command follows. */
				for (i = 0; i < w->n_listeners; i++) {
					if (event_get_fd(w->listeners[i]) ==
					    lfd)
						event_del(w->listeners[i]);
				}
				return;
			default:
				/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the
				 * connection stays queued and would wake us
				 * at once again; pause. */
				err = errno;
				for (i = 0; i < w->n_listeners; i++) {
					if (event_get_fd(w->listeners[i]) ==
					    lfd)
						break;
				}
				w->backoff.paused = true;
				server_worker_accepting(w);
				snprintf(who, sizeof who, "worker %u", w->id);
				server_backoff_start(&w->backoff, w->metrics,
				    who, i < w->n_listeners ?
				    srv.listen_names[i] : "?", err);
				return;
			}
		}
		w->backoff.delay_ms = 0;
		if (__atomic_add_fetch(&srv.nconns, 1, __ATOMIC_ACQ_REL) >
		    w->max_total) {
			__atomic_sub_fetch(&srv.nconns, 1, __ATOMIC_ACQ_REL);
			server_refuse(w, fd);
			continue;
		}
		if (conn_new(&w->front, fd, (struct sockaddr *)&ss, sl,
		    w->wgen->gen->server_ssl, server_listen_pp(w, lfd)) ==
		    NULL) {
			__atomic_sub_fetch(&srv.nconns, 1, __ATOMIC_ACQ_REL);
			close(fd);
			continue;
		}
		w->nconns++;
		metrics_conn(w->metrics, 1);
		metrics_add(w->metrics, METRICS_CONN_ACCEPTED, 1);
		server_worker_accepting(w);
	}
}

/* conn.c: a client connection of w was closed. */
static void
server_conn_gone(void *arg)
{
	struct worker *w = arg;

	w->nconns--;
	__atomic_sub_fetch(&srv.nconns, 1, __ATOMIC_ACQ_REL);
	metrics_conn(w->metrics, -1);
	/* A descriptor is free again: no need to wait out a back-off. */
	if (w->backoff.paused) {
		evtimer_del(w->backoff.timer);
		w->backoff.paused = false;
	}
	server_worker_accepting(w);
}

/* conn.c: an exchange ended (inflight is down): a drain may be over. */
static void
server_request_done(void *arg)
{
	struct worker *w = arg;

	if (w->draining && w->front.inflight == 0)
		event_base_loopexit(w->base, NULL);
}

/* What the worker hears from its HTTP/1.1 front-end. */
static const struct conn_events server_conn_events = {
	server_request_done,
	server_conn_gone,
};

/* Commands from the main thread. */
static void
server_cmd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct server_conn *c, *cnext;
	struct server_gen *g;
	char cmd[16];
	ssize_t n, i;
	size_t b;
	bool goaway;

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
			/* Compared only, never read: the old generation's
			 * configuration (a DNS change keeps it). */
			goaway = h2_front_gen_goaway(w->front.cfg, g->cfg);
			worker_gen_unref(w->wgen);
			w->wgen = server_wgen_new(w, g);
			proxy_pipeline_set_gen(w->pipeline, w->wgen);
			if (g->xp != w->xp) {
				/* Spans from now on go to the new exporter;
				 * the old one sends what it has. */
				struct server_xp *old = w->xp;

				w->xp = server_xp_ref(g->xp);
				w->xq = w->xp->x != NULL ?
				    exporter_queue_new(w->xp->x) : NULL;
				proxy_pipeline_set_exporter(w->pipeline,
				    w->xp->x, w->xq);
				server_xp_unref(old);
			}
			conn_front_set_gen(&w->front, g->cfg,
			    g->busy_timeout_ms);
			/* HTTP/2 clients reconnect under the new settings
			 * (their streams in flight finish first); not on a
			 * generation a DNS change made (h2.c says why). */
			if (goaway)
				h2_front_goaway(&w->front);
			/* max_connections reloads (before, the share of
			 * the first generation stayed). */
			server_worker_limits(w, g->cfg);
			server_worker_accepting(w);
			server_gen_unref(g);
			break;
		case SERVER_CMD_DRAIN:
			if (w->draining)
				break;
			w->draining = true;
			w->front.draining = true;
			/* The sockets are the main thread's (it shuts them
			 * down): only our events go. */
			for (b = 0; b < w->n_listeners; b++)
				event_free(w->listeners[b]);
			w->n_listeners = 0;
			evtimer_del(w->backoff.timer);
			/* Idle keep-alive connections end now (nginx too). */
			for (c = TAILQ_FIRST(&w->front.conns); c != NULL; c = cnext) {
				cnext = TAILQ_NEXT(c, entry);
				if (conn_idle(c))
					conn_close(c);
			}
			/* HTTP/2: GOAWAY; streams in flight finish. */
			h2_front_goaway(&w->front);
			if (w->front.inflight == 0)
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
	size_t b;

	event_base_dispatch(w->base);
	while (!TAILQ_EMPTY(&w->front.conns))
		conn_close(TAILQ_FIRST(&w->front.conns));
	h2_front_close_all(&w->front);
	for (b = 0; b < w->n_listeners; b++)
		event_free(w->listeners[b]);
	w->n_listeners = 0;
	event_free(w->backoff.timer);
	w->backoff.timer = NULL;
	event_free(w->cmd_ev);
	conn_front_free(&w->front);
	proxy_pipeline_free(w->pipeline);
	w->pipeline = NULL;
	worker_gen_unref(w->wgen);
	w->wgen = NULL;
	event_base_free(w->base);
	w->base = NULL;
	(void)!write(srv.done_fd[1], &one, 1);
	return NULL;
}

/*
 * Open a listening socket on host:port with a listen queue of backlog;
 * *bound gets the port (port 0: the kernel's choice).  No SO_REUSEPORT:
 * the address must have a single owner, and bind() failing with
 * EADDRINUSE is how we learn that another process has it.  SO_REUSEADDR
 * only lets us rebind over connections of a previous run in TIME_WAIT;
 * on Linux it does not share a port with another listening socket.
 * what names the address in messages ("listen 127.0.0.1:8080").
 */
static int
server_listen_socket(const char *what, const char *host, uint16_t port,
    int backlog, uint16_t *bound, char **cause)
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
		xasprintf(cause, "%s: %s", what, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, backlog) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
		if (errno == EADDRINUSE)
			xasprintf(cause, "%s: address already in use (another "
			    "process owns it)", what);
		else
			xasprintf(cause, "%s: %s", what, strerror(errno));
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

/* The kernel's cap on listen queues (net.core.somaxconn), or 0. */
static long
server_somaxconn(void)
{
	FILE *fp = fopen("/proc/sys/net/core/somaxconn", "re");
	long v = 0;

	if (fp == NULL)
		return 0;
	if (fscanf(fp, "%ld", &v) != 1)
		v = 0;
	fclose(fp);
	return v;
}

/*
 * Bind every server.listen address once (main thread, before the workers
 * exist); the workers share the sockets.  srv.bound_addrs gets the ports.
 */
static int
server_listeners_open(const struct config *cfg, char **cause)
{
	long cap = server_somaxconn();
	size_t a;

	if (cap > 0 && (uint64_t)cap < cfg->backlog)
		log_info("server.backlog %llu: the kernel caps listen queues "
		    "at net.core.somaxconn = %ld",
		    (unsigned long long)cfg->backlog, cap);
	srv.listen_fds = xcalloc(cfg->n_listen, sizeof *srv.listen_fds);
	srv.listen_names = xcalloc(cfg->n_listen, sizeof *srv.listen_names);
	for (a = 0; a < cfg->n_listen; a++) {
		char *what;
		uint16_t port;
		int fd;

		xasprintf(&what, "listen %s", cfg->listen[a].text);
		fd = server_listen_socket(what, cfg->listen[a].host,
		    cfg->listen[a].port, (int)cfg->backlog, &port, cause);
		free(what);
		if (fd == -1)
			return -1;
		srv.listen_fds[srv.n_listen_fds] = fd;
		xasprintf(&srv.listen_names[srv.n_listen_fds++], "%s%s%s:%u",
		    strchr(cfg->listen[a].host, ':') != NULL ? "[" : "",
		    cfg->listen[a].host,
		    strchr(cfg->listen[a].host, ':') != NULL ? "]" : "",
		    (unsigned)port);
		srv.bound_addrs[a].port = port;
	}
	return 0;
}

/*
 * Drain: stop listening, so that new clients are refused at once rather
 * than queued until we exit.  shutdown() rather than close(): workers
 * may still have the descriptor in their epoll set, and a closed number
 * could be reused by a new socket under them; after shutdown their
 * accept() fails with EINVAL and they drop the event.
 */
static void
server_listeners_shutdown(void)
{
	size_t i;

	for (i = 0; i < srv.n_listen_fds; i++)
		(void)shutdown(srv.listen_fds[i], SHUT_RDWR);
}

/* Close the shared sockets (every worker has exited). */
static void
server_listeners_close(void)
{
	size_t i;

	for (i = 0; i < srv.n_listen_fds; i++) {
		close(srv.listen_fds[i]);
		free(srv.listen_names[i]);
	}
	free(srv.listen_fds);
	free(srv.listen_names);
	srv.listen_fds = NULL;
	srv.listen_names = NULL;
	srv.n_listen_fds = 0;
}

/* Create worker i (base, front-end, pipeline) without starting its thread. */
static int
server_worker_init(struct worker *w, unsigned i, struct server_gen *g,
    char **cause)
{
	const struct config *cfg = g->cfg;
	struct event_config *ec;
	size_t a;

	w->id = i;
	if ((ec = event_config_new()) == NULL)
		fatalx("event_config_new failed");
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK |
	    EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (w->base == NULL)
		fatalx("cannot create an event base");
	w->metrics = metrics_new("worker");
	w->xp = server_xp_ref(g->xp);
	if (srv.exporter != NULL)
		w->xq = exporter_queue_new(srv.exporter);
	w->wgen = server_wgen_new(w, g);
	/* The composition root: the h1 front-end talks to this pipeline. */
	w->pipeline = proxy_pipeline_new(w->id, w->metrics, srv.exporter,
	    w->xq);
	proxy_pipeline_set_gen(w->pipeline, w->wgen);
	/* /debug/propagation on the proxy listeners (admin.debug_listeners). */
	proxy_pipeline_set_debug(w->pipeline, debug_propagation_json_route);
	conn_front_init(&w->front, w->base, w->metrics, &proxy_exchange,
	    w->pipeline, &server_conn_events, w);
	conn_front_set_gen(&w->front, g->cfg, g->busy_timeout_ms);
	server_worker_limits(w, cfg);
	w->accepting = true;

	/* Every worker watches every shared socket (level-triggered: what
	 * one worker leaves in the queue wakes it or another again). */
	w->listeners = xcalloc(srv.n_listen_fds, sizeof *w->listeners);
	for (a = 0; a < srv.n_listen_fds; a++) {
		w->listeners[a] = event_new(w->base, srv.listen_fds[a],
		    EV_READ | EV_PERSIST, server_accept_cb, w);
		if (w->listeners[a] == NULL) {
			xasprintf(cause, "%s: cannot accept",
			    cfg->listen[a].text);
			return -1;
		}
		event_add(w->listeners[a], NULL);
		w->n_listeners++;
	}
	w->backoff.timer = evtimer_new(w->base, server_backoff_cb, w);
	if (w->backoff.timer == NULL)
		fatalx("worker %u: out of memory", i);
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

/*
 * What a generation brings beside server_gen_new's: its exporter (the
 * current one when nothing it is built from changed) and the access log
 * (reopened when its path changed).  0, or -1 with *cause; the running
 * ones are untouched then.
 */
static int
server_reload_parts(struct server_gen *g, char **cause)
{
	const struct config *old = srv.gen->cfg, *cfg = g->cfg;
	const char *key;
	char *why = NULL;
	bool new_log;

	if (exporter_check(cfg, &key, &why) != 0) {
		xasprintf(cause, "%s: %s", key, why);
		free(why);
		return -1;
	}
	/*
	 * The access log first: it can be put back.  A new exporter last:
	 * exporter_new takes over the /metrics section, which a retired
	 * unused one would leave empty.
	 */
	new_log = !server_streq(old->logging.access_log,
	    cfg->logging.access_log);
	if (new_log && log_access_open(cfg->logging.access_log, &why) != 0) {
		xasprintf(cause, "logging.access_log: %s", why);
		free(why);
		return -1;
	}
	if (server_exporter_same(old, cfg))
		g->xp = server_xp_ref(srv.gen->xp);
	else if ((g->xp = server_xp_for(cfg, &why)) == NULL) {
		xasprintf(cause, "exporter: %s", why);
		free(why);
		if (new_log && log_access_open(old->logging.access_log,
		    &why) != 0) {
			log_warnx("access log: cannot reopen %s: %s",
			    old->logging.access_log, why);
			free(why);
		}
		return -1;
	} else
		log_info("exporter: now %s %s (the previous one sends what "
		    "it holds)", config_exporter_name(cfg->exporter.type),
		    server_exporter_target(cfg));
	if (new_log)
		log_info("access log: now %s", cfg->logging.access_log);
	return 0;
}

/*
 * The active health checks follow the current generation: the old
 * generation's stop and g's start, on the main base (one place for the
 * whole process, not one per worker).  The verdicts live in the shared
 * server state (health.c), so a server that was down stays down until
 * the new checks bring it back.
 */
static void
server_checkers_set(struct server_gen *g)
{
	size_t i;

	for (i = 0; i < srv.n_checkers; i++)
		upstream_checker_free(srv.checkers[i]);
	free(srv.checkers);
	srv.checkers = NULL;
	srv.n_checkers = 0;
	if (g == NULL)
		return;
	srv.checkers = xcalloc(g->cfg->n_routes, sizeof *srv.checkers);
	srv.n_checkers = g->cfg->n_routes;
	for (i = 0; i < g->cfg->n_routes; i++)
		srv.checkers[i] = upstream_checker_new(srv.base,
		    &g->cfg->routes[i].upstream, g->route_up[i].targets,
		    g->route_up[i].n, g->route_ssl[i]);
}

/*
 * Make g the current generation (our reference goes to srv.gen): every
 * worker gets it through the command pipe, the health checks follow it.
 */
static void
server_gen_install(struct server_gen *g)
{
	unsigned i;

	/* The old checks point into the old generation: they go first. */
	server_checkers_set(NULL);
	pthread_mutex_lock(&srv.lock);
	for (i = 0; i < srv.n_workers; i++) {
		if (srv.workers[i].next_gen != NULL)
			server_gen_unref(srv.workers[i].next_gen);
		srv.workers[i].next_gen = server_gen_ref(g);
	}
	server_gen_unref(srv.gen);
	srv.gen = g;
	srv.exporter = g->xp->x;
	pthread_mutex_unlock(&srv.lock);
	server_tell_workers(SERVER_CMD_RELOAD);
	server_checkers_set(g);
}

/*
 * The resolver saw an upstream name change its addresses: a generation
 * of the same configuration on the new addresses (from the resolver's
 * cache), handed over as a reload is; requests in flight finish on the
 * old one.
 */
static void
server_dns_changed(void *arg)
{
	struct config_errors errs;
	struct server_gen *g;

	(void)arg;
	if (srv.draining)
		return;
	/* The configuration's warnings were logged when it was loaded. */
	config_errors_init(&errs, srv.gen->cfg);
	g = server_gen_new(srv.gen->cfg, &errs);
	if (g == NULL)
		server_log_lines(errs.errors);
	config_errors_clear(&errs);
	if (g == NULL)
		return;
	/* The same configuration: the same exporter. */
	g->xp = server_xp_ref(srv.gen->xp);
	server_gen_install(g);
	log_info("upstream addresses changed (generation %llu)",
	    (unsigned long long)g->id);
}

/* A server failed (any thread: health.c's hook): wake the main thread. */
static void
server_server_failed(void)
{
	char one = 1;

	/* Full pipe: a wakeup is already pending, which is enough. */
	(void)!write(srv.failed_fd[1], &one, 1);
}

/* Main thread: look up again the names of servers that failed. */
static void
server_failed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_gen *g = srv.gen;
	char buf[64];
	size_t i, t;

	(void)what;
	(void)arg;
	while (read(fd, buf, sizeof buf) > 0)
		;
	for (i = 0; i < g->cfg->n_routes; i++) {
		for (t = 0; t < g->route_up[i].n; t++) {
			const struct upstream_target *tg =
			    &g->route_up[i].targets[t];

			if (health_take_resolve(tg->server) &&
			    srv.resolver != NULL)
				resolver_refresh(srv.resolver, tg->conf->host,
				    tg->conf->port);
		}
	}
}

/* Seed the resolver with the addresses g was built on, then watch. */
static void
server_resolver_start(struct server_gen *g)
{
	char *cause = NULL;
	size_t i, j, k, n;

	if (pipe2(srv.failed_fd, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe");
	srv.failed_ev = event_new(srv.base, srv.failed_fd[0],
	    EV_READ | EV_PERSIST, server_failed_cb, NULL);
	if (srv.failed_ev == NULL)
		fatalx("out of memory");
	event_add(srv.failed_ev, NULL);
	health_set_failure_hook(server_server_failed);
	srv.resolver = resolver_new(srv.base, g->cfg, server_dns_changed, NULL,
	    &cause);
	if (srv.resolver == NULL) {
		log_warnx("%s: upstream names will not be looked up again",
		    cause);
		free(cause);
		return;
	}
	for (i = 0; i < g->cfg->n_routes; i++) {
		const struct config_upstream *u = &g->cfg->routes[i].upstream;
		const struct server_gen_upstream *up = &g->route_up[i];

		for (j = 0; j < u->n_servers; j++) {
			struct upstream_addr *a = xcalloc(up->n + 1,
			    sizeof *a);

			for (k = n = 0; k < up->n; k++) {
				if (up->targets[k].conf == &u->servers[j].up)
					a[n++] = up->targets[k].addr;
			}
			resolver_store(srv.resolver, u->servers[j].up.host,
			    u->servers[j].up.port, a, n);
			free(a);
		}
	}
	resolver_watch(srv.resolver, g->cfg);
}

/* SIGHUP: load, validate, swap; keep the old config on any error. */
static void
server_reload_apply(void)
{
	struct config_errors errs;
	struct config *cfg = NULL;
	struct server_gen *g;
	char *errors = NULL, *cause = NULL, *line, *save = NULL;
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
	if (config_check_reload(srv.gen->cfg, cfg, &cause) != 0) {
		log_warnx("configuration reload failed: %s", cause);
		free(cause);
		config_unref(cfg);
		metrics_add(srv.metrics, METRICS_RELOADS_FAILED, 1);
		return;
	}
	/* One owner each: g takes its own reference, ours goes below. */
	config_errors_init(&errs, cfg);
	g = server_gen_new(cfg, &errs);
	server_log_lines(errs.warnings);
	if (g == NULL) {
		log_warnx("configuration reload failed: keeping the running "
		    "configuration");
		server_log_lines(errs.errors);
	}
	config_errors_clear(&errs);
	config_unref(cfg);
	if (g == NULL) {
		metrics_add(srv.metrics, METRICS_RELOADS_FAILED, 1);
		return;
	}
	if (server_reload_parts(g, &cause) != 0) {
		log_warnx("configuration reload failed: %s", cause);
		free(cause);
		server_gen_unref(g);
		metrics_add(srv.metrics, METRICS_RELOADS_FAILED, 1);
		return;
	}
	server_gen_install(g);
	if (srv.resolver != NULL)
		resolver_watch(srv.resolver, g->cfg);
	if (g->cfg->logging.level >= 0)
		log_set_level((enum log_level)g->cfg->logging.level);
	metrics_add(srv.metrics, METRICS_RELOADS_OK, 1);
	log_info("configuration reloaded (generation %llu)",
	    (unsigned long long)g->id);
}

/*
 * SIGHUP, bracketed for the service manager: RELOADING=1 with the time
 * (sd_notify(3): MONOTONIC_USEC lets Type=notify-reload match it), then
 * READY=1 whether the reload took or the old configuration stays.
 */
static void
server_reload(void)
{
	struct timespec now;
	char msg[64];

	clock_gettime(CLOCK_MONOTONIC, &now);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)now.tv_sec * 1000000ULL +
	    (unsigned long long)now.tv_nsec / 1000);
	server_notify(msg);
	server_reload_apply();
	server_notify("READY=1");
}

/* SIGUSR1: reopen the access log file (logrotate: rename, signal). */
static void
server_reopen_logs(void)
{
	char *cause = NULL;

	if (log_access_reopen(&cause) != 0) {
		log_warnx("access log: reopen failed, still writing the old "
		    "file: %s", cause);
		free(cause);
		return;
	}
	log_info("access log reopened");
}


/* Start draining: not ready, stop accepting, finish in-flight requests. */
static void
server_drain(void)
{
	/* server.drain_timeout: requests and WebSocket tunnels alike. */
	uint64_t ms = srv.gen->cfg->drain_timeout_ms;
	struct timeval tv;

	if (srv.draining)
		return;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	srv.draining = true;
	server_notify("STOPPING=1");
	log_info("draining: finishing in-flight requests");
	server_tell_workers(SERVER_CMD_DRAIN);
	server_listeners_shutdown();
	resolver_stop(srv.resolver);	/* lookups out finish, none start */
	srv.drain_timer = evtimer_new(srv.base, server_drain_timeout_cb, NULL);
	evtimer_add(srv.drain_timer, &tv);
}

static void
server_drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	log_warnx("drain timed out after %llu ms: closing remaining requests "
	    "and tunnels",
	    (unsigned long long)srv.gen->cfg->drain_timeout_ms);
	server_tell_workers(SERVER_CMD_EXIT);
}

static void
server_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	if (sig == SIGHUP)
		server_reload();
	else if (sig == SIGUSR1)
		server_reopen_logs();
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

/* The admin back-off delay is over: accept again. */
static void
server_admin_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	srv.admin_backoff.paused = false;
	admin_resume(srv.admin);
}

/* What admin/ reads of the process, and hears from it. */
static bool
server_admin_draining(void *arg)
{
	(void)arg;
	return srv.draining;
}

static bool
server_admin_ready(void *arg)
{
	(void)arg;
	return srv.ready;
}

/*
 * server.readyz_requires_upstreams: the first route without a server
 * that takes requests (ejected or failing its checks), or NULL.
 */
static const char *
server_admin_unready(void *arg)
{
	struct server_gen *g = srv.gen;
	uint64_t now = util_mono_ns();
	size_t i;

	(void)arg;
	if (!g->cfg->readyz_requires_upstreams)
		return NULL;
	for (i = 0; i < g->cfg->n_routes; i++) {
		if (!upstream_targets_available(g->route_up[i].targets,
		    g->route_up[i].n, now))
			return g->cfg->routes[i].name;
	}
	return NULL;
}

static const struct config *
server_admin_config(void *arg)
{
	(void)arg;
	return srv.gen->cfg;
}

static void
server_admin_accepted(void *arg)
{
	(void)arg;
	srv.admin_backoff.delay_ms = 0;
}

/* Same back-off as the workers'. */
static void
server_admin_accept_error(void *arg, int err)
{
	(void)arg;
	server_backoff_start(&srv.admin_backoff, srv.metrics, "admin",
	    srv.admin_name, err);
}

static const struct admin_hooks server_admin_hooks = {
	server_admin_draining,
	server_admin_ready,
	server_admin_config,
	server_admin_accepted,
	server_admin_accept_error,
	server_admin_unready,
};

/* The admin listener on the main base. */
static int
server_admin_start(const struct config *cfg, char **cause)
{
	char *what;
	uint16_t port;
	int fd;

	if (!cfg->has_admin)
		return 0;
	xasprintf(&what, "admin.listen %s", cfg->admin_listen.text);
	fd = server_listen_socket(what, cfg->admin_listen.host,
	    cfg->admin_listen.port, (int)cfg->backlog, &port, cause);
	free(what);
	if (fd == -1)
		return -1;
	srv.admin = admin_new(srv.base, fd, &server_admin_hooks, NULL, cause);
	if (srv.admin == NULL)
		return -1;
	srv.admin_backoff.timer = evtimer_new(srv.base,
	    server_admin_backoff_cb, NULL);
	if (srv.admin_backoff.timer == NULL)
		fatalx("out of memory");
	xasprintf(&srv.admin_name, "%s%s%s:%u",
	    strchr(cfg->admin_listen.host, ':') ? "[" : "",
	    cfg->admin_listen.host,
	    strchr(cfg->admin_listen.host, ':') ? "]" : "", (unsigned)port);
	log_info("admin listening on http://%s", srv.admin_name);
	return 0;
}

/*
 * One info line at start (issue 14 item 7): the listeners as bound, the
 * routes, the styles extracted and injected, and where spans go.
 */
static void
server_log_summary(const struct server_gen *g)
{
	const struct config *cfg = g->cfg;
	char *line = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&line, &len);

	if (f == NULL)
		return;
	fputs("serving: listeners", f);
	for (i = 0; i < srv.n_listen_fds; i++)
		fprintf(f, "%s%s://%s", i == 0 ? " " : ", ",
		    g->server_ssl != NULL ? "https" : "http",
		    srv.listen_names[i]);
	fputs("; routes", f);
	for (i = 0; i < cfg->n_routes; i++) {
		const struct config_route *r = &cfg->routes[i];

		fprintf(f, "%s%s %s%s -> %s", i == 0 ? " " : ", ", r->name,
		    r->host != NULL ? r->host : "", r->path_prefix,
		    r->upstream.url);
	}
	fputs("; extract", f);
	for (i = 0; i < cfg->propagation.n_extract; i++)
		fprintf(f, "%s%s", i == 0 ? " " : ",",
		    config_style_name(cfg->propagation.extract[i]));
	if (cfg->propagation.n_extract == 0)
		fputs(" none", f);
	fputs("; inject", f);
	for (i = 0; i < cfg->propagation.n_inject; i++)
		fprintf(f, "%s%s", i == 0 ? " " : ",",
		    config_style_name(cfg->propagation.inject[i]));
	if (cfg->propagation.n_inject == 0)
		fputs(" none", f);
	fprintf(f, "; exporter %s %s",
	    config_exporter_name(cfg->exporter.type),
	    server_exporter_target(cfg));
	fclose(f);
	log_info("%s", line);
	free(line);
}

int
server_main(struct config *cfg)
{
	struct event *sig_term, *sig_int, *sig_hup, *sig_usr1;
	struct server_gen *g;
	struct rlimit rl;
	struct config_errors errs;
	sigset_t set, old;
	char *cause = NULL;
	unsigned i;
	size_t a;
	int rc;

	event_set_log_callback(server_libevent_log_cb);
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)(util_now_us() ^ (uint64_t)getpid()));
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}

	/* The same preparation as tracestitch -n, then the same lines. */
	config_errors_init(&errs, cfg);
	rc = server_prepare(cfg, SERVER_PREP_START, &errs, &g);
	server_log_lines(errs.warnings);
	if (rc != 0) {
		if (errs.errors != NULL)
			fputs(errs.errors, stderr);
		config_errors_clear(&errs);
		config_unref(cfg);
		return 1;
	}
	config_errors_clear(&errs);
	srv.gen = g;
	srv.metrics = metrics_new("main");
	if ((g->xp = server_xp_for(cfg, &cause)) == NULL) {
		log_warnx("exporter: %s", cause);
		free(cause);
		return 1;
	}
	srv.exporter = g->xp->x;
	if ((srv.base = event_base_new()) == NULL)
		fatalx("cannot create the main event base");
	if (pipe2(srv.done_fd, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe");

	/* Workers inherit a blocked signal mask: signals go to main. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, &old);

	srv.bound_addrs = xcalloc(cfg->n_listen, sizeof *srv.bound_addrs);
	for (a = 0; a < cfg->n_listen; a++)
		srv.bound_addrs[a].port = cfg->listen[a].port;
	if (server_listeners_open(cfg, &cause) != 0 ||
	    server_admin_start(cfg, &cause) != 0) {
		log_warnx("%s", cause);
		free(cause);
		return 1;
	}
	srv.n_workers = cfg->workers;
	srv.workers = xcalloc(srv.n_workers, sizeof *srv.workers);
	for (i = 0; i < srv.n_workers; i++) {
		if (server_worker_init(&srv.workers[i], i, g, &cause) != 0) {
			log_warnx("cannot listen: %s", cause);
			free(cause);
			return 1;
		}
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
	sig_usr1 = evsignal_new(srv.base, SIGUSR1, server_signal_cb, NULL);
	evsignal_add(sig_usr1, NULL);
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
	server_log_summary(g);
	server_checkers_set(g);
	server_resolver_start(g);
	srv.ready = true;
	log_info("ready (%u workers)", srv.n_workers);
	server_notify("READY=1");

	event_base_dispatch(srv.base);

	for (i = 0; i < srv.n_workers; i++)
		pthread_join(srv.workers[i].thread, NULL);
	/* Every worker is gone: flush what is queued, then stop.  The
	 * exporters a reload replaced are sent by their own threads. */
	for (i = 0; i < srv.n_workers; i++) {
		server_xp_unref(srv.workers[i].xp);
		srv.workers[i].xp = NULL;
	}
	exporter_free(srv.gen->xp->x);
	srv.gen->xp->x = NULL;
	server_checkers_set(NULL);
	resolver_free(srv.resolver);
	srv.resolver = NULL;
	health_set_failure_hook(NULL);
	if (srv.failed_ev != NULL) {
		event_free(srv.failed_ev);
		close(srv.failed_fd[0]);
		close(srv.failed_fd[1]);
	}
	srv.exporter = NULL;
	server_retiring_join();
	log_info("stopped");
	event_free(sig_usr1);
	event_free(sig_term);
	event_free(sig_int);
	event_free(sig_hup);
	event_free(srv.done_ev);
	if (srv.drain_timer != NULL)
		event_free(srv.drain_timer);
	admin_free(srv.admin);
	if (srv.admin_backoff.timer != NULL)
		event_free(srv.admin_backoff.timer);
	free(srv.admin_name);
	server_listeners_close();
	for (i = 0; i < srv.n_workers; i++) {
		struct worker *w = &srv.workers[i];

		if (w->next_gen != NULL)
			server_gen_unref(w->next_gen);
		close(w->cmd_fd[0]);
		close(w->cmd_fd[1]);
		free(w->listeners);
	}
	free(srv.workers);
	free(srv.bound_addrs);
	server_gen_unref(srv.gen);
	server_retiring_join();		/* generations no worker took */
	config_unref(cfg);
	event_base_free(srv.base);
	close(srv.done_fd[0]);
	close(srv.done_fd[1]);
	return 0;
}
