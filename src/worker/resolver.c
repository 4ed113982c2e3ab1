/*
 * resolver.c -- background lookups of upstream host names (resolver.h).
 *
 * One entry per host:port, kept until exit (a handful per configuration).
 * An entry's timer starts a lookup (evdns_getaddrinfo, AF_UNSPEC: A and
 * AAAA); its answer is sorted and compared with the cached set.  A
 * different set replaces it and, through a zero-delay event so that the
 * names of one round give one new generation, calls changed().  A failed
 * lookup (SERVFAIL, timeout, no address) keeps the last good set -- a DNS
 * hiccup must not empty a route -- and is retried after 1 s, doubled up
 * to the interval (nginx keeps the old answer too).
 *
 * The next lookup after a good answer comes at the answer's TTL, as
 * nginx's resolver does, bounded below by RESOLVER_MIN_TTL_MS (a TTL of
 * 0 must not turn into a lookup per loop turn) and above by the name's
 * resolve_interval, which plays the part of nginx's `valid=`: a record
 * that says an hour is still looked at every resolve_interval.
 * evdns_getaddrinfo, which gives the addresses (/etc/hosts, A and AAAA,
 * the search list), does not give the TTL: each round also asks for the
 * name's A records with evdns_base_resolve_ipv4, whose answer carries it
 * (the lowest TTL of its records).  A name with no A record (IPv6 only,
 * or only in /etc/hosts) has no TTL and is looked up every
 * resolve_interval.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "log.h"
#include "resolver.h"
#include "util.h"

#define RESOLVER_RETRY_MS 1000
#define RESOLVER_MIN_TTL_MS 1000	/* the floor of a TTL */

struct resolver_entry {
	struct resolver_entry *next;
	struct resolver *r;
	char *host;
	uint16_t port;
	struct upstream_addr *addrs;	/* sorted; NULL: none yet */
	size_t n;
	uint64_t interval_ms;
	uint64_t retry_ms;		/* after a failure, 0: none */
	bool watched;
	bool pending;			/* a lookup is out */
	bool ttl_pending;		/* its TTL query is out */
	int64_t ttl_s;			/* the round's A TTL, -1: none */
	uint64_t next_ms;		/* the round's own delay (interval,
					 * or the retry after a failure) */
	bool next_ttl;			/* the TTL may shorten next_ms */
	uint64_t done_ns;		/* monotonic, the last answer */
	struct evdns_getaddrinfo_request *req;
	struct event *timer;
};

struct resolver {
	struct event_base *base;
	struct evdns_base *dns;
	struct resolver_entry *entries;
	void (*changed)(void *);
	void *arg;
	struct event *notify;		/* zero-delay: changed() */
	bool dying;
	bool stopped;			/* resolver_stop: no new lookup */
};

static void resolver_timer_cb(evutil_socket_t, short, void *);

static void
resolver_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct resolver *r = arg;

	(void)fd;
	(void)what;
	r->changed(r->arg);
}

struct resolver *
resolver_new(struct event_base *base, const struct config *cfg,
    void (*changed)(void *), void *arg, char **cause)
{
	struct resolver *r = xcalloc(1, sizeof *r);
	size_t i;

	r->base = base;
	r->changed = changed;
	r->arg = arg;
	r->dns = evdns_base_new(base, cfg->resolvers.n == 0 ?
	    EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE :
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (r->dns == NULL) {
		xasprintf(cause, "cannot start the DNS resolver");
		free(r);
		return NULL;
	}
	if (cfg->resolvers.n > 0) {
		for (i = 0; i < cfg->resolvers.n; i++) {
			if (evdns_base_nameserver_ip_add(r->dns,
			    cfg->resolvers.v[i]) != 0) {
				xasprintf(cause, "server.resolvers: cannot use "
				    "%s", cfg->resolvers.v[i]);
				evdns_base_free(r->dns, 0);
				free(r);
				return NULL;
			}
		}
		/* The names of /etc/hosts still win, as with getaddrinfo. */
		(void)evdns_base_load_hosts(r->dns, NULL);
	}
	/* A slow server must not hold a name for long: 2 s, twice. */
	(void)evdns_base_set_option(r->dns, "timeout", "2");
	(void)evdns_base_set_option(r->dns, "attempts", "2");
	r->notify = evtimer_new(base, resolver_notify_cb, r);
	if (r->notify == NULL)
		fatalx("out of memory");
	return r;
}

void
resolver_stop(struct resolver *r)
{
	struct resolver_entry *e;

	if (r == NULL)
		return;
	r->stopped = true;
	for (e = r->entries; e != NULL; e = e->next)
		evtimer_del(e->timer);
}

void
resolver_free(struct resolver *r)
{
	struct resolver_entry *e, *next;

	if (r == NULL)
		return;
	r->dying = true;
	for (e = r->entries; e != NULL; e = e->next) {
		/* The callback runs with EVUTIL_EAI_CANCEL, at once. */
		if (e->pending && e->req != NULL)
			evdns_getaddrinfo_cancel(e->req);
	}
	evdns_base_free(r->dns, 0);
	for (e = r->entries; e != NULL; e = next) {
		next = e->next;
		event_free(e->timer);
		free(e->addrs);
		free(e->host);
		free(e);
	}
	event_free(r->notify);
	free(r);
}

static struct resolver_entry *
resolver_find(struct resolver *r, const char *host, uint16_t port,
    bool create)
{
	struct resolver_entry *e;

	for (e = r->entries; e != NULL; e = e->next) {
		if (e->port == port && strcmp(e->host, host) == 0)
			return e;
	}
	if (!create)
		return NULL;
	e = xcalloc(1, sizeof *e);
	e->r = r;
	e->host = xstrdup(host);
	e->port = port;
	e->timer = evtimer_new(r->base, resolver_timer_cb, e);
	if (e->timer == NULL)
		fatalx("out of memory");
	e->next = r->entries;
	r->entries = e;
	return e;
}

static int
resolver_addr_cmp(const void *a, const void *b)
{
	const struct upstream_addr *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(&x->ss, &y->ss, x->len);
}

/* Replace e's set with a sorted copy of addrs; true when it changed. */
static bool
resolver_set(struct resolver_entry *e, const struct upstream_addr *addrs,
    size_t n)
{
	struct upstream_addr *a = xcalloc(n, sizeof *a);
	size_t i;

	for (i = 0; i < n; i++) {
		/* Compared as bytes: no stray padding. */
		memset(&a[i], 0, sizeof a[i]);
		memcpy(&a[i].ss, &addrs[i].ss, addrs[i].len);
		a[i].len = addrs[i].len;
	}
	qsort(a, n, sizeof *a, resolver_addr_cmp);
	if (e->addrs != NULL && e->n == n && memcmp(e->addrs, a,
	    n * sizeof *a) == 0) {
		free(a);
		return false;
	}
	free(e->addrs);
	e->addrs = a;
	e->n = n;
	return true;
}

int
resolver_cached(struct resolver *r, const char *host, uint16_t port,
    struct upstream_addr **addrs, size_t *n)
{
	struct resolver_entry *e = resolver_find(r, host, port, false);

	if (e == NULL || e->addrs == NULL)
		return -1;
	*addrs = xcalloc(e->n, sizeof **addrs);
	memcpy(*addrs, e->addrs, e->n * sizeof **addrs);
	*n = e->n;
	return 0;
}

void
resolver_store(struct resolver *r, const char *host, uint16_t port,
    const struct upstream_addr *addrs, size_t n)
{
	if (n > 0)
		(void)resolver_set(resolver_find(r, host, port, true), addrs,
		    n);
}

static void
resolver_arm(struct resolver_entry *e, uint64_t ms)
{
	struct timeval tv;

	if (e->r->stopped)
		return;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(e->timer, &tv);
}

/*
 * The delay before the next lookup after a good answer with a TTL of
 * ttl_s seconds (-1: none known): the TTL, at least RESOLVER_MIN_TTL_MS,
 * at most interval_ms.
 */
uint64_t
resolver_next_ms(int64_t ttl_s, uint64_t interval_ms)
{
	uint64_t ms;

	if (ttl_s < 0)
		return interval_ms;
	ms = (uint64_t)ttl_s * 1000;
	if (ms < RESOLVER_MIN_TTL_MS)
		ms = RESOLVER_MIN_TTL_MS;
	return ms < interval_ms ? ms : interval_ms;
}

/* Both answers of a round are in: arm the next lookup. */
static void
resolver_round_done(struct resolver_entry *e)
{
	uint64_t ms = e->next_ms;

	if (e->pending || e->ttl_pending || !e->watched)
		return;
	if (e->next_ttl) {
		ms = resolver_next_ms(e->ttl_s, e->interval_ms);
		log_debug("upstream host %s: next lookup in %llu ms (TTL %lld)",
		    e->host, (unsigned long long)ms, (long long)e->ttl_s);
	}
	resolver_arm(e, ms);
}

/* A lookup failed: keep the old set, try again sooner than usual. */
static void
resolver_failed(struct resolver_entry *e, const char *why)
{
	if (e->retry_ms == 0)
		log_warnx("upstream host %s: cannot resolve: %s (keeping %zu "
		    "address%s)", e->host, why, e->n, e->n == 1 ? "" : "es");
	e->retry_ms = e->retry_ms == 0 ? RESOLVER_RETRY_MS : e->retry_ms * 2;
	if (e->retry_ms > e->interval_ms)
		e->retry_ms = e->interval_ms;
	e->next_ms = e->retry_ms;
	e->next_ttl = false;
	resolver_round_done(e);
}

/* The A records' answer of a round: its TTL. */
static void
resolver_ttl_cb(int result, char type, int count, int ttl, void *addrs,
    void *arg)
{
	struct resolver_entry *e = arg;

	(void)type;
	(void)addrs;
	e->ttl_pending = false;
	if (e->r->dying || result == DNS_ERR_CANCEL ||
	    result == DNS_ERR_SHUTDOWN)
		return;
	e->ttl_s = result == DNS_ERR_NONE && count > 0 && ttl >= 0 ? ttl : -1;
	resolver_round_done(e);
}

static void
resolver_answer_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct resolver_entry *e = arg;
	struct resolver *r = e->r;
	struct timeval now = {0, 0};
	struct evutil_addrinfo *ai;
	struct upstream_addr *a;
	size_t n = 0, i = 0;

	e->pending = false;
	e->req = NULL;
	e->done_ns = util_mono_ns();
	if (result == EVUTIL_EAI_CANCEL || r->dying) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	if (result != 0) {
		resolver_failed(e, evutil_gai_strerror(result));
		return;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next)
		n++;
	a = xcalloc(n > 0 ? n : 1, sizeof *a);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof a[i].ss ||
		    (ai->ai_family != AF_INET && ai->ai_family != AF_INET6))
			continue;
		memcpy(&a[i].ss, ai->ai_addr, ai->ai_addrlen);
		a[i].len = (socklen_t)ai->ai_addrlen;
		i++;
	}
	evutil_freeaddrinfo(res);
	if (i == 0) {
		free(a);
		resolver_failed(e, "no address");
		return;
	}
	if (e->retry_ms != 0)
		log_info("upstream host %s resolves again", e->host);
	e->retry_ms = 0;
	if (resolver_set(e, a, i)) {
		log_info("upstream host %s now resolves to %zu address%s",
		    e->host, i, i == 1 ? "" : "es");
		evtimer_add(r->notify, &now);
	}
	free(a);
	e->next_ms = e->interval_ms;
	e->next_ttl = true;
	resolver_round_done(e);
}

static void
resolver_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct resolver_entry *e = arg;
	struct evutil_addrinfo hints;
	struct evdns_getaddrinfo_request *req;
	char port[8];

	(void)fd;
	(void)what;
	if (e->pending || e->ttl_pending || !e->watched)
		return;
	/* The TTL first: an answer from /etc/hosts may come at once. */
	e->ttl_s = -1;
	e->ttl_pending = true;
	if (evdns_base_resolve_ipv4(e->r->dns, e->host, 0, resolver_ttl_cb,
	    e) == NULL)
		e->ttl_pending = false;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* As upstream_resolve asks getaddrinfo: the same set, or every
	 * lookup would look like a change (localhost: ::1 or not). */
	hints.ai_flags = EVUTIL_AI_NUMERICSERV | EVUTIL_AI_ADDRCONFIG;
	snprintf(port, sizeof port, "%u", (unsigned)e->port);
	e->pending = true;
	/* May answer at once (hosts file, an error): then NULL. */
	req = evdns_getaddrinfo(e->r->dns, e->host, port, &hints,
	    resolver_answer_cb, e);
	if (e->pending)
		e->req = req;
}

/* Is s an IPv4 or IPv6 literal (no lookup needed)? */
static bool
resolver_literal(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 ||
	    inet_pton(AF_INET6, s, buf) == 1;
}

void
resolver_watch(struct resolver *r, const struct config *cfg)
{
	struct resolver_entry *e;
	size_t i, j;

	for (e = r->entries; e != NULL; e = e->next) {
		e->watched = false;
		e->interval_ms = 0;
	}
	for (i = 0; i < cfg->n_routes; i++) {
		const struct config_upstream *u = &cfg->routes[i].upstream;

		for (j = 0; j < u->n_servers; j++) {
			const struct config_upstream *s = &u->servers[j].up;

			if (resolver_literal(s->host))
				continue;
			e = resolver_find(r, s->host, s->port, true);
			if (!e->watched || u->resolve_interval_ms <
			    e->interval_ms)
				e->interval_ms = u->resolve_interval_ms;
			e->watched = true;
		}
	}
	for (e = r->entries; e != NULL; e = e->next) {
		if (!e->watched) {
			evtimer_del(e->timer);
			continue;
		}
		/* Not known yet (the first lookup failed): at once. */
		if (!e->pending && !e->ttl_pending)
			resolver_arm(e, e->addrs == NULL ? 0 : e->interval_ms);
	}
}

void
resolver_refresh(struct resolver *r, const char *host, uint16_t port)
{
	struct resolver_entry *e = resolver_find(r, host, port, false);
	uint64_t now = util_mono_ns(), next = e != NULL ? e->done_ns +
	    1000000000ULL : 0;

	if (e == NULL || !e->watched || e->pending || e->ttl_pending)
		return;
	log_info("upstream host %s: a server failed: looking it up again",
	    e->host);
	/* A failing backend fails many requests: one lookup a second. */
	resolver_arm(e, next > now ? (next - now) / 1000000 + 1 : 0);
}
