/*
 * group.c -- a route's servers in a worker, and the main thread's active
 * health checks (group.h).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "balancer.h"
#include "group.h"
#include "log.h"
#include "retry.h"
#include "util.h"

struct upstream_group {
	const struct config_upstream *conf;
	const struct upstream_target *t;
	size_t n;
	struct upstream_pool **pools;	/* per target; NULL: none */
	struct balancer *bal;
	struct health_params hp;
	uint64_t now_ns;		/* of the current pick */
	uint64_t skip;			/* targets a retry passes over */
	struct retry_budget budget;	/* the route's, in this worker */
};

void
upstream_addr_name(const struct upstream_addr *a, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)&a->ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
		snprintf(buf, size, "[%s]:%u", ip,
		    (unsigned)ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 =
		    (const struct sockaddr_in *)&a->ss;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
		snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
	}
}

struct upstream_group *
upstream_group_new(struct event_base *base, const struct config_upstream *conf,
    const struct upstream_target *t, size_t n, SSL_CTX *ssl_ctx,
    uint64_t seed, char **cause)
{
	struct upstream_group *g;
	unsigned *weights;
	const char **keys;
	size_t i, made = 0;
	char *why = NULL;

	if (n == 0) {
		xasprintf(cause, "no server address");
		return NULL;
	}
	g = xcalloc(1, sizeof *g);
	g->conf = conf;
	g->t = t;
	g->n = n;
	g->pools = xcalloc(n, sizeof *g->pools);
	/*
	 * A route's only server is never ejected by passive health: with
	 * nowhere else to send the request, an ejection turns a backend's
	 * blip (a restart, one slow answer that timed out) into seconds of
	 * 503s for every request.  nginx ignores max_fails for a group of
	 * one server for the same reason; active checks still take it out,
	 * and its failures still have its name looked up again.
	 */
	g->hp.max_fails = conf->max_fails;
	g->hp.no_eject = n == 1;
	g->hp.base_ns = conf->eject_base_ms * 1000000;
	g->hp.max_ns = conf->eject_max_ms * 1000000;
	if (g->hp.max_ns < g->hp.base_ns)
		g->hp.max_ns = g->hp.base_ns;
	weights = xcalloc(n, sizeof *weights);
	keys = xcalloc(n, sizeof *keys);
	for (i = 0; i < n; i++) {
		weights[i] = t[i].weight;
		keys[i] = t[i].name;
		/* One address per pool: the target is the address. */
		g->pools[i] = upstream_pool_new(base, t[i].conf, &t[i].addr, 1,
		    ssl_ctx, &why);
		if (g->pools[i] != NULL)
			made++;
		else {
			free(*cause);
			*cause = why;
			why = NULL;
		}
	}
	g->bal = balancer_new(conf->balance, weights, keys, n, seed);
	free(weights);
	free(keys);
	if (made == 0) {
		upstream_group_free(g);
		return NULL;
	}
	return g;
}

void
upstream_group_free(struct upstream_group *g)
{
	size_t i;

	if (g == NULL)
		return;
	for (i = 0; i < g->n; i++)
		upstream_pool_free(g->pools[i]);
	free(g->pools);
	balancer_free(g->bal);
	free(g);
}

/* balancer_up_fn: a pool, and the shared health says yes. */
static bool
upstream_group_up(void *arg, size_t i)
{
	struct upstream_group *g = arg;

	return g->pools[i] != NULL && (i >= 64 || (g->skip >> i & 1) == 0) &&
	    health_available(g->t[i].server, g->now_ns);
}

int
upstream_group_pick(struct upstream_group *g, uint64_t hash, uint64_t now_ns)
{
	int i;

	g->now_ns = now_ns;
	g->skip = 0;
	retry_budget_request(&g->budget, now_ns);
	if ((i = balancer_pick(g->bal, hash, upstream_group_up, g)) >= 0)
		balancer_start(g->bal, (size_t)i);
	return i;
}

int
upstream_group_pick_retry(struct upstream_group *g, uint64_t hash,
    uint64_t tried, uint64_t now_ns)
{
	int i;

	g->now_ns = now_ns;
	g->skip = tried;
	/*
	 * Every server that takes requests was tried: none, as nginx's
	 * proxy_next_upstream (a one-server route does not retry; the
	 * server that just failed would meet the request again at once).
	 */
	i = balancer_pick(g->bal, hash, upstream_group_up, g);
	g->skip = 0;
	if (i >= 0)
		balancer_start(g->bal, (size_t)i);
	return i;
}

bool
upstream_group_retry_budget(struct upstream_group *g, unsigned percent,
    uint64_t min_milli, uint64_t now_ns)
{
	return retry_budget_take(&g->budget, percent, min_milli, now_ns);
}

struct upstream_pool *
upstream_group_pool(const struct upstream_group *g, int i)
{
	return i >= 0 && (size_t)i < g->n ? g->pools[i] : NULL;
}

const struct upstream_target *
upstream_group_target(const struct upstream_group *g, int i)
{
	return i >= 0 && (size_t)i < g->n ? &g->t[i] : NULL;
}

bool
upstream_group_done(struct upstream_group *g, int i, int outcome,
    uint64_t duration_us, uint64_t now_ns)
{
	struct upstream_server *s;
	bool ejected;

	if (i < 0 || (size_t)i >= g->n)
		return false;
	balancer_done(g->bal, (size_t)i);
	if (outcome < 0)
		return false;
	s = g->t[i].server;
	health_observe(s, duration_us, outcome == 0);
	ejected = health_report(s, &g->hp, outcome == 1, now_ns);
	if (ejected)
		log_warnx("upstream %s (%s): server ejected (%u in a row)",
		    g->t[i].conf->url, g->t[i].name,
		    __atomic_load_n(&s->level, __ATOMIC_RELAXED));
	return ejected;
}

bool
upstream_targets_available(const struct upstream_target *t, size_t n,
    uint64_t now_ns)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (health_available(t[i].server, now_ns))
			return true;
	}
	return false;
}

/*
 * Active checks.  Each target has its own pool (no keep-alive: a check
 * opens a connection, as a new client would) on the main base, and one
 * check at a time; the next is armed when one ends, interval later.
 */
struct upstream_check {
	struct upstream_checker *ck;
	const struct upstream_target *t;
	struct upstream_pool *pool;
	struct event *timer;
	struct upstream_req *req;	/* in flight, or NULL */
	int status;
	unsigned ok_run, fail_run;
	bool down;
};

struct upstream_checker {
	struct config_upstream conf;	/* the route's, check timeouts */
	const char *path;
	char *request;			/* "GET path HTTP/1.1..." */
	struct upstream_check *checks;
	size_t n;
	struct timeval interval;
};

static int
upstream_check_head(struct upstream_req *req,
    const struct upstream_response *resp, void *arg)
{
	struct upstream_check *c = arg;

	(void)req;
	c->status = resp->status;
	return 0;
}

static void
upstream_check_body(struct upstream_req *req, struct evbuffer *buf,
    void *arg)
{
	(void)req;
	(void)arg;
	evbuffer_drain(buf, evbuffer_get_length(buf));
}

static void
upstream_check_done(struct upstream_req *req, enum upstream_err err,
    const char *errstr, bool head_sent, void *arg)
{
	struct upstream_check *c = arg;
	unsigned up_n = c->ck->conf.health_check.healthy_threshold;
	unsigned down_n = c->ck->conf.health_check.unhealthy_threshold;
	bool ok = err == UPSTREAM_OK && c->status >= 200 && c->status < 400;

	(void)req;
	(void)head_sent;
	c->req = NULL;
	if (ok) {
		c->fail_run = 0;
		if (++c->ok_run >= up_n && c->down) {
			c->down = false;
			health_set_active(c->t->server, false);
			log_info("upstream %s: server %s passes its health "
			    "check again", c->ck->conf.url, c->t->name);
		}
	} else {
		c->ok_run = 0;
		if (++c->fail_run >= down_n && !c->down) {
			c->down = true;
			health_set_active(c->t->server, true);
			if (err != UPSTREAM_OK)
				log_warnx("upstream %s: server %s fails its "
				    "health check: %s", c->ck->conf.url,
				    c->t->name, errstr != NULL ? errstr :
				    upstream_err_name(err));
			else
				log_warnx("upstream %s: server %s fails its "
				    "health check: status %d", c->ck->conf.url,
				    c->t->name, c->status);
		}
	}
	evtimer_add(c->timer, &c->ck->interval);
}

static const struct upstream_cbs upstream_check_cbs = {
	upstream_check_head,
	upstream_check_body,
	upstream_check_done,
};

static void
upstream_check_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_check *c = arg;
	struct evbuffer *b;

	(void)fd;
	(void)what;
	if (c->req != NULL || c->pool == NULL)
		return;
	if ((b = evbuffer_new()) == NULL) {
		evtimer_add(c->timer, &c->ck->interval);
		return;
	}
	evbuffer_add_printf(b, "GET %s%s HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: tracestitch-health-check\r\nConnection: close\r\n"
	    "\r\n", c->t->conf->base_path, c->ck->path,
	    c->t->conf->authority);
	c->status = 0;
	c->req = upstream_request(c->pool, b, false, false,
	    &upstream_check_cbs, c);
	evbuffer_free(b);
	if (c->req == NULL)
		evtimer_add(c->timer, &c->ck->interval);
}

struct upstream_checker *
upstream_checker_new(struct event_base *base,
    const struct config_upstream *conf, const struct upstream_target *t,
    size_t n, SSL_CTX *ssl_ctx)
{
	struct upstream_checker *ck;
	struct timeval first = {0, 0};
	char *cause = NULL;
	size_t i;

	if (conf->health_check.path == NULL || n == 0)
		return NULL;
	ck = xcalloc(1, sizeof *ck);
	ck->conf = *conf;
	ck->conf.connect_timeout_ms = conf->health_check.timeout_ms;
	ck->conf.timeout_ms = conf->health_check.timeout_ms;
	ck->conf.keepalive = 0;
	ck->path = conf->health_check.path;
	ck->interval.tv_sec = (time_t)(conf->health_check.interval_ms / 1000);
	ck->interval.tv_usec = (suseconds_t)(conf->health_check.interval_ms %
	    1000) * 1000;
	ck->checks = xcalloc(n, sizeof *ck->checks);
	ck->n = n;
	for (i = 0; i < n; i++) {
		struct upstream_check *c = &ck->checks[i];
		struct config_upstream sc = *t[i].conf;

		c->ck = ck;
		c->t = &t[i];
		/* The server's URL parts, the check's timeouts. */
		sc.connect_timeout_ms = ck->conf.connect_timeout_ms;
		sc.timeout_ms = ck->conf.timeout_ms;
		sc.keepalive = 0;
		c->pool = upstream_pool_new(base, &sc, &t[i].addr, 1, ssl_ctx,
		    &cause);
		if (c->pool == NULL) {
			log_warnx("upstream %s: server %s: no health check: %s",
			    conf->url, t[i].name, cause);
			free(cause);
			cause = NULL;
		}
		/* The verdict of the last generation's checks holds until
		 * this one's thresholds are met. */
		c->down = __atomic_load_n(&t[i].server->active_down,
		    __ATOMIC_RELAXED) != 0;
		c->timer = evtimer_new(base, upstream_check_timer_cb, c);
		if (c->timer == NULL)
			fatalx("out of memory");
		evtimer_add(c->timer, &first);
	}
	return ck;
}

void
upstream_checker_free(struct upstream_checker *ck)
{
	size_t i;

	if (ck == NULL)
		return;
	for (i = 0; i < ck->n; i++) {
		struct upstream_check *c = &ck->checks[i];

		if (c->req != NULL)
			upstream_req_cancel(c->req);
		if (c->timer != NULL)
			event_free(c->timer);
		upstream_pool_free(c->pool);
	}
	free(ck->checks);
	free(ck);
}
