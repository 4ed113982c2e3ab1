/*
 * health.c -- the shared health state of upstream servers, its state
 * machine and its metrics (health.h).
 *
 * The state is a handful of words per server, changed by workers with
 * relaxed or acquire/release atomics; the request counters are per
 * worker thread (struct health_counters), summed when /metrics renders.  Two workers may report failures
 * at once: the one whose compare-and-swap moves eject_until forward does
 * the ejection and counts it; the other sees the server ejected.  A
 * success costs two loads (and a store only when there was a failure
 * to clear), so a healthy server's cache line is read-shared.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "log.h"
#include "util.h"

static pthread_mutex_t health_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct upstream_server *health_list;

static void health_render(FILE *, void *);
static unsigned health_next_slot;
static __thread unsigned health_my_slot;	/* 1 + slot; 0: none yet */

/* The calling thread's slot of the per-server counters. */
static inline unsigned
health_slot(void)
{
	if (health_my_slot == 0)
		health_my_slot = 1 + __atomic_fetch_add(&health_next_slot, 1,
		    __ATOMIC_RELAXED) % HEALTH_SLOTS;
	return health_my_slot - 1;
}
static void (*health_failure_hook)(void);	/* set before workers run */

void
health_set_failure_hook(void (*fn)(void))
{
	__atomic_store_n(&health_failure_hook, fn, __ATOMIC_RELEASE);
}

/* s failed for good (ejected, or down for its checks): tell the owner. */
static void
health_failed(struct upstream_server *s)
{
	void (*fn)(void) = __atomic_load_n(&health_failure_hook,
	    __ATOMIC_ACQUIRE);

	__atomic_store_n(&s->resolve_wanted, 1, __ATOMIC_RELEASE);
	if (fn != NULL)
		fn();
}

bool
health_take_resolve(struct upstream_server *s)
{
	return __atomic_exchange_n(&s->resolve_wanted, 0,
	    __ATOMIC_ACQ_REL) != 0;
}

struct upstream_server *
health_server_get(const char *route, const char *name)
{
	struct upstream_server *s;

	metrics_add_section(health_render, NULL);
	pthread_mutex_lock(&health_mtx);
	for (s = health_list; s != NULL; s = s->next) {
		if (strcmp(s->route, route) == 0 && strcmp(s->name, name) == 0)
			break;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		if (posix_memalign((void **)&s->slots, 64, HEALTH_SLOTS *
		    sizeof *s->slots) != 0)
			fatalx("out of memory");
		memset(s->slots, 0, HEALTH_SLOTS * sizeof *s->slots);
		s->route = xstrdup(route);
		s->name = xstrdup(name);
		s->next = health_list;
		health_list = s;
	}
	s->live++;
	pthread_mutex_unlock(&health_mtx);
	return s;
}

void
health_server_put(struct upstream_server *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&health_mtx);
	if (s->live > 0)
		s->live--;
	pthread_mutex_unlock(&health_mtx);
}

void
health_free_all(void)
{
	struct upstream_server *s, *next;

	pthread_mutex_lock(&health_mtx);
	for (s = health_list; s != NULL; s = next) {
		next = s->next;
		free(s->route);
		free(s->name);
		free(s->slots);
		free(s);
	}
	health_list = NULL;
	pthread_mutex_unlock(&health_mtx);
}

bool
health_available(const struct upstream_server *s, uint64_t now_ns)
{
	return __atomic_load_n(&s->active_down, __ATOMIC_RELAXED) == 0 &&
	    __atomic_load_n(&s->eject_until_ns, __ATOMIC_RELAXED) <= now_ns;
}

enum health_state
health_state(const struct upstream_server *s, uint64_t now_ns)
{
	if (__atomic_load_n(&s->active_down, __ATOMIC_RELAXED) != 0)
		return HEALTH_UNHEALTHY;
	if (__atomic_load_n(&s->eject_until_ns, __ATOMIC_RELAXED) > now_ns)
		return HEALTH_EJECTED;
	return HEALTH_HEALTHY;
}

/* The length of ejection number level (1..): base * 2^(level-1), capped. */
static uint64_t
health_eject_ns(const struct health_params *p, uint32_t level)
{
	uint64_t d = p->base_ns;

	while (level > 1 && d < p->max_ns) {
		d *= 2;
		level--;
	}
	return d < p->max_ns ? d : p->max_ns;
}

bool
health_report(struct upstream_server *s, const struct health_params *p,
    bool ok, uint64_t now_ns)
{
	uint64_t until;
	uint32_t fails, level;

	level = __atomic_load_n(&s->level, __ATOMIC_ACQUIRE);
	until = __atomic_load_n(&s->eject_until_ns, __ATOMIC_ACQUIRE);
	if (ok) {
		if (__atomic_load_n(&s->fails, __ATOMIC_RELAXED) != 0)
			__atomic_store_n(&s->fails, 0, __ATOMIC_RELAXED);
		/* Back after its time: the ejections in a row are over. */
		if (level != 0 && until <= now_ns)
			__atomic_store_n(&s->level, 0, __ATOMIC_RELEASE);
		return false;
	}
	if (p->max_fails == 0)
		return false;
	/* Answers of requests sent before the ejection: already counted. */
	if (until > now_ns)
		return false;
	fails = __atomic_add_fetch(&s->fails, 1, __ATOMIC_RELAXED);
	/* On probation (back from an ejection): one failure is enough. */
	if (fails < p->max_fails && level == 0)
		return false;
	if (p->no_eject) {
		__atomic_store_n(&s->fails, 0, __ATOMIC_RELAXED);
		health_failed(s);
		return false;
	}
	if (!__atomic_compare_exchange_n(&s->eject_until_ns, &until,
	    now_ns + health_eject_ns(p, level + 1), false, __ATOMIC_ACQ_REL,
	    __ATOMIC_ACQUIRE))
		return false;		/* another worker ejected it */
	__atomic_store_n(&s->level, level + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&s->fails, 0, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->ejections, 1, __ATOMIC_RELAXED);
	health_failed(s);
	return true;
}

void
health_observe(struct upstream_server *s, uint64_t duration_us, bool error)
{
	struct health_counters *c = &s->slots[health_slot()];

	if (error)
		__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->buckets[metrics_bucket_of(duration_us)], 1,
	    __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->sum_us, duration_us, __ATOMIC_RELAXED);
}

/* Bucket b (or the errors, b = -1; the sum, b = -2) over the slots. */
static uint64_t
health_sum(const struct upstream_server *s, int b)
{
	uint64_t v = 0;
	unsigned k;

	for (k = 0; k < HEALTH_SLOTS; k++) {
		const struct health_counters *c = &s->slots[k];

		v += __atomic_load_n(b == -1 ? &c->errors : b == -2 ?
		    &c->sum_us : &c->buckets[b], __ATOMIC_RELAXED);
	}
	return v;
}

uint64_t
health_errors(const struct upstream_server *s)
{
	return health_sum(s, -1);
}

uint64_t
health_requests(const struct upstream_server *s)
{
	uint64_t v = 0;
	int b;

	for (b = 0; b < METRICS_NBUCKETS; b++)
		v += health_sum(s, b);
	return v;
}

void
health_set_active(struct upstream_server *s, bool down)
{
	if (__atomic_exchange_n(&s->active_down, down ? 1u : 0u,
	    __ATOMIC_RELAXED) == 0 && down)
		health_failed(s);
}

/* Label values are route names and addresses: escape \ " and newline. */
static void
health_label(FILE *fp, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(fp, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", fp);
		else
			fputc(*s, fp);
	}
}

static void
health_labels(FILE *fp, const struct upstream_server *s)
{
	fputs("route=\"", fp);
	health_label(fp, s->route);
	fputs("\",server=\"", fp);
	health_label(fp, s->name);
	fputc('"', fp);
}

/* One counter family over every live server. */
static void
health_render_counter(FILE *fp, const char *name, const char *help,
    size_t off)
{
	const struct upstream_server *s;

	fprintf(fp, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (s = health_list; s != NULL; s = s->next) {
		if (s->live == 0)
			continue;
		fprintf(fp, "%s{", name);
		health_labels(fp, s);
		fprintf(fp, "} %llu\n", (unsigned long long)__atomic_load_n(
		    (const uint64_t *)(const void *)((const char *)s + off),
		    __ATOMIC_RELAXED));
	}
}

/* The per-server families (metrics_add_section; under its lock). */
static void
health_render(FILE *fp, void *arg)
{
	const struct upstream_server *s;
	uint64_t now = util_mono_ns(), cum, v;
	unsigned b;

	(void)arg;
	pthread_mutex_lock(&health_mtx);
	/* requests_total is the histogram's count: one add less per
	 * request on a line every worker writes. */
	fputs("# HELP tracestitch_upstream_server_requests_total Requests "
	    "sent to an upstream server\n"
	    "# TYPE tracestitch_upstream_server_requests_total counter\n", fp);
	for (s = health_list; s != NULL; s = s->next) {
		if (s->live == 0)
			continue;
		fputs("tracestitch_upstream_server_requests_total{", fp);
		health_labels(fp, s);
		fprintf(fp, "} %llu\n", (unsigned long long)
		    health_requests(s));
	}
	fputs("# HELP tracestitch_upstream_server_errors_total Requests to "
	    "an upstream server that failed (connect, timeout, reset, "
	    "protocol, TLS) or got a 5xx\n"
	    "# TYPE tracestitch_upstream_server_errors_total counter\n", fp);
	for (s = health_list; s != NULL; s = s->next) {
		if (s->live == 0)
			continue;
		fputs("tracestitch_upstream_server_errors_total{", fp);
		health_labels(fp, s);
		fprintf(fp, "} %llu\n", (unsigned long long)health_errors(s));
	}
	health_render_counter(fp,
	    "tracestitch_upstream_server_ejections_total",
	    "Times an upstream server was ejected by passive health",
	    offsetof(struct upstream_server, ejections));
	fputs("# HELP tracestitch_upstream_server_healthy Whether an "
	    "upstream server takes requests (1), or not (0: ejected or "
	    "failing active checks; the state label says which)\n"
	    "# TYPE tracestitch_upstream_server_healthy gauge\n", fp);
	for (s = health_list; s != NULL; s = s->next) {
		enum health_state st;

		if (s->live == 0)
			continue;
		st = health_state(s, now);
		fputs("tracestitch_upstream_server_healthy{", fp);
		health_labels(fp, s);
		fprintf(fp, ",state=\"%s\"} %d\n", st == HEALTH_HEALTHY ?
		    "healthy" : st == HEALTH_EJECTED ? "ejected" : "unhealthy",
		    st == HEALTH_HEALTHY ? 1 : 0);
	}
	fputs("# HELP tracestitch_upstream_server_duration_seconds Time "
	    "from sending a request to an upstream server to the end of its "
	    "answer\n"
	    "# TYPE tracestitch_upstream_server_duration_seconds histogram\n",
	    fp);
	for (s = health_list; s != NULL; s = s->next) {
		if (s->live == 0)
			continue;
		cum = 0;
		for (b = 0; b < METRICS_NBUCKETS; b++) {
			cum += health_sum(s, (int)b);
			fputs("tracestitch_upstream_server_duration_seconds"
			    "_bucket{", fp);
			health_labels(fp, s);
			fprintf(fp, ",le=\"%s\"} %llu\n", metrics_bucket_le(b),
			    (unsigned long long)cum);
		}
		v = health_sum(s, -2);
		fputs("tracestitch_upstream_server_duration_seconds_sum{", fp);
		health_labels(fp, s);
		fprintf(fp, "} %llu.%06llu\n", (unsigned long long)(v /
		    1000000), (unsigned long long)(v % 1000000));
		fputs("tracestitch_upstream_server_duration_seconds_count{",
		    fp);
		health_labels(fp, s);
		fprintf(fp, "} %llu\n", (unsigned long long)cum);
	}
	pthread_mutex_unlock(&health_mtx);
}
