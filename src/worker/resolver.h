/*
 * resolver.h -- upstream host names looked up again in the background,
 * on the main thread's event base (libevent's evdns), never blocking a
 * thread: at the answer's TTL (at least 1 s, at most
 * routes[].upstream.resolve_interval), sooner after a
 * failed lookup, and at once when one of the name's servers fails
 * (resolver_refresh).  The last good addresses of each name are cached; when
 * a lookup brings a different set, the resolver tells its owner
 * (server.c), which builds a new generation from the same configuration
 * and hands it to the workers as a reload does.
 */
#ifndef TS_RESOLVER_H
#define TS_RESOLVER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"
#include "upstream.h"

struct resolver;

/*
 * A resolver on base asking the DNS servers of cfg->resolvers (none:
 * /etc/resolv.conf; /etc/hosts is read either way).  changed(arg) runs
 * on base, once per round in which some name's addresses changed.  NULL
 * with *cause when evdns cannot start.
 */
struct resolver *resolver_new(struct event_base *, const struct config *cfg,
    void (*changed)(void *), void *arg, char **cause);
void resolver_free(struct resolver *);
/*
 * No new lookup from now on (the drain): the ones out finish while the
 * loop runs, instead of being cancelled at exit, where libevent cannot
 * deliver (or free) their answers any more.  NULL-safe.
 */
void resolver_stop(struct resolver *);

/*
 * The cached addresses of host:port, a copy (caller frees): 0, or -1 when
 * the name has none yet.
 */
int resolver_cached(struct resolver *, const char *host, uint16_t port,
    struct upstream_addr **addrs, size_t *n);
/* Seed the cache with a lookup made elsewhere (the blocking first one). */
void resolver_store(struct resolver *, const char *host, uint16_t port,
    const struct upstream_addr *addrs, size_t n);

/*
 * Look up every host name of cfg's servers (IP literals need no lookup)
 * every resolve_interval of its route (the shortest, for a name several
 * routes use); names cfg no longer has are no longer looked up.
 */
void resolver_watch(struct resolver *, const struct config *cfg);

/*
 * Look host:port up again now (a server of it failed: the backend may
 * have moved), or a second after the last answer if that is later; not
 * while a lookup is out.  Only names resolver_watch watches.
 */
void resolver_refresh(struct resolver *, const char *host, uint16_t port);

/*
 * The delay before the next lookup of a name after a good answer whose
 * A records had a TTL of ttl_s seconds (-1: no TTL known): the TTL,
 * at least 1 s, at most the name's resolve_interval (interval_ms).
 */
uint64_t resolver_next_ms(int64_t ttl_s, uint64_t interval_ms);

#endif /* TS_RESOLVER_H */
