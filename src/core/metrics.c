/*
 * metrics.c -- per-worker counters and the request duration histogram,
 * summed and rendered in the Prometheus text exposition format 0.0.4.
 *
 * Every worker writes only its own struct metrics, so an update is a
 * relaxed atomic load, an add and a relaxed atomic store: no lock prefix
 * and no shared cache line on the request path (memcached's per-thread
 * stats model).  The render path (admin thread) takes the registry mutex,
 * which guards only the list of blocks and the route names, and reads
 * every field with relaxed atomic loads; a reader may see one counter
 * updated before another, never a torn value.
 *
 * Routes are interned into slots by metrics_route_slot() when the
 * configuration is loaded (main thread); slot 0 is "unmatched".  Slots
 * are never reused, so a reload keeps the series of an unchanged route.
 */
#include <sys/resource.h>

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "styles.h"
#include "ts_commit.h"
#include "ts_config.h"
#include "util.h"

#define METRICS_NCLASSES 5		/* 1xx .. 5xx */
#define METRICS_UNMATCHED "unmatched"

/* Upper bounds of the duration buckets, microseconds (+Inf last). */
static const uint64_t bucket_le_us[METRICS_NBUCKETS - 1] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
	500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const bucket_le[METRICS_NBUCKETS] = {
	"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
	"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
};
static const char *const upstream_kind[METRICS_UPSTREAM_NKINDS] = {
	"connect", "timeout", "reset", "protocol", "tls",
};
static const char *const retry_reason[METRICS_RETRY_NREASONS] = {
	"connect_failure", "reset", "timeout", "502", "503", "504",
};

/* Values of the "kind" and "header" labels of CORS refusals. */
#define METRICS_CORS_NKINDS 3
/* "", "other" and every header of the style table (styles_label). */
#define METRICS_CORS_NHDRS STYLES_MAX_LABELS
static const char *const cors_kinds[METRICS_CORS_NKINDS] = {
	"origin", "method", "header",
};

struct metrics_counter_def {
	const char *name;
	const char *labels;
	const char *help;
};

static const struct metrics_counter_def counter_defs[METRICS_NCOUNTERS] = {
#define METRICS_DEF(id, n, l, h) [METRICS_##id] = { n, l, h },
	METRICS_COUNTERS(METRICS_DEF)
#undef METRICS_DEF
};

/* A histogram of one route in one block; buckets not cumulative. */
struct metrics_hist_data {
	uint64_t buckets[METRICS_NBUCKETS];
	uint64_t sum_us;
};

/*
 * The last traced observation of a bucket.  One writer (the block's
 * worker), read by the admin thread: seq is odd while the writer changes
 * the fields (a seqlock), and a reader that sees it odd or changed skips
 * the exemplar rather than print a torn one.
 */
struct metrics_exemplar_data {
	uint64_t seq;
	uint64_t trace_hi;
	uint64_t trace_lo;
	uint64_t value_us;
	uint64_t unix_ms;
};

struct metrics {
	struct metrics *next;		/* registry, under registry_mtx */
	char owner[32];
	uint64_t requests[METRICS_MAX_ROUTES][METRICS_NCLASSES];
	uint64_t bytes[METRICS_MAX_ROUTES];
	uint64_t upstream[METRICS_MAX_ROUTES][METRICS_UPSTREAM_NKINDS];
	uint64_t retries[METRICS_MAX_ROUTES][METRICS_RETRY_NREASONS];
	uint64_t retry_exhausted[METRICS_MAX_ROUTES];
	uint64_t cors_preflight[METRICS_MAX_ROUTES][2];	/* allowed, refused */
	uint64_t cors_refused[METRICS_MAX_ROUTES][METRICS_CORS_NKINDS]
	    [METRICS_CORS_NHDRS];
	uint64_t cors_disallowed[METRICS_MAX_ROUTES];
	int64_t open_conns;
	int64_t open_tunnels;		/* WebSocket tunnels */
	uint64_t counters[METRICS_NCOUNTERS];
	struct prop_stats prop;
	struct metrics_hist_data hist[METRICS_NHISTS][METRICS_MAX_ROUTES];
	struct metrics_exemplar_data ex[METRICS_NHISTS][METRICS_MAX_ROUTES]
	    [METRICS_NBUCKETS];
};

/* The histogram families, by enum metrics_hist. */
static const struct {
	const char *name;
	const char *help;
} hist_defs[METRICS_NHISTS] = {
	{ "tracestitch_request_duration_seconds",
	  "Request duration, from the request to the last byte sent, by "
	  "route." },
	{ "tracestitch_upstream_connect_duration_seconds",
	  "Time to open a new upstream connection (TLS included), by route." },
	{ "tracestitch_upstream_response_duration_seconds",
	  "Time from the request sent upstream to the first response byte, "
	  "by route." },
};

static pthread_mutex_t registry_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct metrics *registry;
static char *route_names[METRICS_MAX_ROUTES];
static unsigned route_count;		/* 0 until the first intern */
static metrics_section_fn section_fn;	/* under registry_mtx */
static void *section_arg;
/* Sections for the life of the process (metrics_add_section). */
#define METRICS_MAX_SECTIONS 4
static metrics_section_fn more_fn[METRICS_MAX_SECTIONS];
static void *more_arg[METRICS_MAX_SECTIONS];
static size_t n_more;

/* Slot 0 exists from the start; called with registry_mtx held. */
static void
routes_init_locked(void)
{
	if (route_count == 0) {
		route_names[0] = xstrdup(METRICS_UNMATCHED);
		route_count = 1;
	}
}

/* A block for one worker (or the main thread), registered for rendering. */
struct metrics *
metrics_new(const char *owner)
{
	struct metrics *m = xcalloc(1, sizeof *m);

	snprintf(m->owner, sizeof m->owner, "%s",
	    owner != NULL ? owner : "");
	pthread_mutex_lock(&registry_mtx);
	routes_init_locked();
	m->next = registry;
	registry = m;
	pthread_mutex_unlock(&registry_mtx);
	return m;
}

/* Free every block and route name: at exit or between tests, only once
 * no thread writes any block any more. */
void
metrics_free_all(void)
{
	struct metrics *m, *next;
	unsigned i;

	pthread_mutex_lock(&registry_mtx);
	for (m = registry; m != NULL; m = next) {
		next = m->next;
		free(m);
	}
	registry = NULL;
	for (i = 0; i < route_count; i++) {
		free(route_names[i]);
		route_names[i] = NULL;
	}
	route_count = 0;
	pthread_mutex_unlock(&registry_mtx);
}

/* Intern a route name (main thread only); returns its slot, 1.. */
unsigned
metrics_route_slot(const char *name)
{
	unsigned i, slot = 0;

	if (name == NULL || *name == '\0' || strcmp(name, METRICS_UNMATCHED)
	    == 0)
		return 0;
	pthread_mutex_lock(&registry_mtx);
	routes_init_locked();
	for (i = 1; i < route_count; i++) {
		if (strcmp(route_names[i], name) == 0) {
			slot = i;
			goto out;
		}
	}
	if (route_count == METRICS_MAX_ROUTES) {
		pthread_mutex_unlock(&registry_mtx);
		log_warnx("metrics: more than %d routes, \"%s\" counted as "
		    "%s", METRICS_MAX_ROUTES - 1, name, METRICS_UNMATCHED);
		return 0;
	}
	slot = route_count;
	route_names[slot] = xstrdup(name);
	route_count++;
out:
	pthread_mutex_unlock(&registry_mtx);
	return slot;
}

void
metrics_observe(struct metrics *m, enum metrics_hist h, unsigned route,
    uint64_t us)
{
	struct metrics_hist_data *d;

	if ((unsigned)h >= METRICS_NHISTS)
		return;
	if (route >= METRICS_MAX_ROUTES)
		route = 0;
	d = &m->hist[h][route];
	util_counter_add(&d->buckets[metrics_bucket_of(us)], 1);
	util_counter_add(&d->sum_us, us);
}

void
metrics_exemplar(struct metrics *m, enum metrics_hist h, unsigned route,
    uint64_t us, uint64_t trace_hi, uint64_t trace_lo, uint64_t unix_ms)
{
	struct metrics_exemplar_data *e;
	uint64_t seq;

	if ((unsigned)h >= METRICS_NHISTS)
		return;
	if (route >= METRICS_MAX_ROUTES)
		route = 0;
	e = &m->ex[h][route][metrics_bucket_of(us)];
	seq = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&e->seq, seq + 1, __ATOMIC_RELAXED);
	/* The odd seq is visible before any field changes. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&e->trace_hi, trace_hi, __ATOMIC_RELAXED);
	__atomic_store_n(&e->trace_lo, trace_lo, __ATOMIC_RELAXED);
	__atomic_store_n(&e->value_us, us, __ATOMIC_RELAXED);
	__atomic_store_n(&e->unix_ms, unix_ms, __ATOMIC_RELAXED);
	__atomic_store_n(&e->seq, seq + 2, __ATOMIC_RELEASE);
}

struct prop_stats *
metrics_prop_stats(struct metrics *m)
{
	return &m->prop;
}

/* One finished request: status class, duration, body bytes. */
void
metrics_request(struct metrics *m, unsigned route, int status,
    uint64_t duration_us, uint64_t bytes)
{
	if (route >= METRICS_MAX_ROUTES)
		route = 0;
	/* Codes outside 100..599 do not exist (RFC 9110 15): no class. */
	if (status >= 100 && status <= 599)
		util_counter_add(&m->requests[route][status / 100 - 1], 1);
	util_counter_add(&m->bytes[route], bytes);
	metrics_observe(m, METRICS_H_REQUEST, route, duration_us);
}

/* One failed upstream exchange of a route. */
void
metrics_upstream_error(struct metrics *m, unsigned route,
    enum metrics_upstream_err kind)
{
	if (route >= METRICS_MAX_ROUTES)
		route = 0;
	if ((unsigned)kind >= METRICS_UPSTREAM_NKINDS)
		return;
	util_counter_add(&m->upstream[route][kind], 1);
}

void
metrics_upstream_retry(struct metrics *m, unsigned route, unsigned reason)
{
	if (route >= METRICS_MAX_ROUTES)
		route = 0;
	if (reason >= METRICS_RETRY_NREASONS)
		return;
	util_counter_add(&m->retries[route][reason], 1);
}

void
metrics_retry_budget_exhausted(struct metrics *m, unsigned route)
{
	if (route >= METRICS_MAX_ROUTES)
		route = 0;
	util_counter_add(&m->retry_exhausted[route], 1);
}

void
metrics_cors_preflight(struct metrics *m, unsigned route, bool allowed)
{
	if (route >= METRICS_MAX_ROUTES)
		route = 0;
	util_counter_add(&m->cors_preflight[route][allowed ? 0 : 1], 1);
}

void
metrics_cors_refusal(struct metrics *m, unsigned route, bool preflight,
    const char *kind, const char *header_class)
{
	unsigned k, h, nh;

	if (route >= METRICS_MAX_ROUTES)
		route = 0;
	if (!preflight) {
		util_counter_add(&m->cors_disallowed[route], 1);
		return;
	}
	for (k = 0; k < METRICS_CORS_NKINDS; k++)
		if (kind != NULL && strcmp(kind, cors_kinds[k]) == 0)
			break;
	if (k == METRICS_CORS_NKINDS)
		return;
	nh = (unsigned)styles_label_count();
	for (h = 0; h < nh; h++)
		if (strcmp(header_class != NULL ? header_class : "",
		    styles_label(h)) == 0)
			break;
	if (h == nh)
		h = 1;	/* "other" */
	util_counter_add(&m->cors_refused[route][k][h], 1);
}

/* Open client connections: +1 on accept, -1 on close. */
void
metrics_conn(struct metrics *m, int delta)
{
	int64_t v = __atomic_load_n(&m->open_conns, __ATOMIC_RELAXED);

	__atomic_store_n(&m->open_conns, v + delta, __ATOMIC_RELAXED);
}

static uint64_t body_bytes;	/* metrics_body_bytes_add() */

uint64_t
metrics_body_bytes_add(int64_t delta)
{
	return __atomic_add_fetch(&body_bytes, (uint64_t)delta,
	    __ATOMIC_RELAXED);
}

/* Open WebSocket tunnels: +1 at the 101, -1 when the tunnel ends. */
void
metrics_tunnel(struct metrics *m, int delta)
{
	int64_t v = __atomic_load_n(&m->open_tunnels, __ATOMIC_RELAXED);

	__atomic_store_n(&m->open_tunnels, v + delta, __ATOMIC_RELAXED);
}

/* Add n to one of the METRICS_COUNTERS. */
void
metrics_add(struct metrics *m, enum metrics_counter c, uint64_t n)
{
	if ((unsigned)c >= METRICS_NCOUNTERS)
		return;
	util_counter_add(&m->counters[c], n);
}

/* A label value, escaped per the exposition format: \\ \" \n. */
static void
put_label(FILE *fp, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\\\", fp);
		else if (*s == '"')
			fputs("\\\"", fp);
		else if (*s == '\n')
			fputs("\\n", fp);
		else
			fputc(*s, fp);
	}
}

/* Microseconds as decimal seconds without trailing zeros. */
static void
put_seconds(FILE *fp, uint64_t us)
{
	char frac[8];
	int n;

	fprintf(fp, "%llu", (unsigned long long)(us / 1000000));
	if (us % 1000000 == 0)
		return;
	n = snprintf(frac, sizeof frac, "%06llu",
	    (unsigned long long)(us % 1000000));
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	fprintf(fp, ".%s", frac);
}

static void
put_family(FILE *fp, const char *name, const char *type, const char *help)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One counter of one block, by route and label index. */
typedef uint64_t (*metrics_get_fn)(const struct metrics *, unsigned route,
    unsigned k);

static uint64_t
get_requests(const struct metrics *m, unsigned r, unsigned k)
{
	return util_counter_get(&m->requests[r][k]);
}

static uint64_t
get_bytes(const struct metrics *m, unsigned r, unsigned k)
{
	(void)k;
	return util_counter_get(&m->bytes[r]);
}

static uint64_t
get_upstream(const struct metrics *m, unsigned r, unsigned k)
{
	return util_counter_get(&m->upstream[r][k]);
}

static uint64_t
get_retries(const struct metrics *m, unsigned r, unsigned k)
{
	return util_counter_get(&m->retries[r][k]);
}

static uint64_t
get_retry_exhausted(const struct metrics *m, unsigned r, unsigned k)
{
	(void)k;
	return util_counter_get(&m->retry_exhausted[r]);
}

static uint64_t
get_preflight(const struct metrics *m, unsigned r, unsigned k)
{
	return util_counter_get(&m->cors_preflight[r][k]);
}

static uint64_t
get_disallowed(const struct metrics *m, unsigned r, unsigned k)
{
	(void)k;
	return util_counter_get(&m->cors_disallowed[r]);
}

/*
 * A per-route counter family summed over every block: one sample per
 * route, or per route and value of a second label (lkey, lvals[n]) when
 * n > 0.  Called with registry_mtx held.
 */
static void
render_route_family(FILE *fp, const char *name, const char *help,
    const char *lkey, const char *const *lvals, unsigned n, metrics_get_fn get)
{
	const struct metrics *m;
	unsigned r, k;

	put_family(fp, name, "counter", help);
	for (r = 0; r < route_count; r++) {
		for (k = 0; k < (n > 0 ? n : 1); k++) {
			uint64_t v = 0;

			for (m = registry; m != NULL; m = m->next)
				v += get(m, r, k);
			fprintf(fp, "%s{route=\"", name);
			put_label(fp, route_names[r]);
			if (n > 0)
				fprintf(fp, "\",%s=\"%s", lkey, lvals[k]);
			fprintf(fp, "\"} %llu\n", (unsigned long long)v);
		}
	}
}

/* The per-route families; called with registry_mtx held. */
static void
render_routes(FILE *fp)
{
	static const char *const classes[METRICS_NCLASSES] = {
		"1xx", "2xx", "3xx", "4xx", "5xx",
	};

	render_route_family(fp, "tracestitch_requests_total",
	    "Requests answered, by route and status class.", "code", classes,
	    METRICS_NCLASSES, get_requests);
	render_route_family(fp, "tracestitch_response_bytes_total",
	    "Response body bytes sent to clients, by route.", NULL, NULL, 0,
	    get_bytes);
	render_route_family(fp, "tracestitch_upstream_errors_total",
	    "Failed upstream exchanges, by route and kind.", "kind",
	    upstream_kind, METRICS_UPSTREAM_NKINDS, get_upstream);
	render_route_family(fp, "tracestitch_upstream_retries_total",
	    "Requests sent again to a server after a failed attempt, by "
	    "route and reason.", "reason", retry_reason,
	    METRICS_RETRY_NREASONS, get_retries);
	render_route_family(fp,
	    "tracestitch_upstream_retry_budget_exhausted_total",
	    "Retries not sent because the route's retry budget was spent, "
	    "by route.", NULL, NULL, 0, get_retry_exhausted);
}

/* The CORS families; refusal series only once non-zero. */
static void
render_cors(FILE *fp)
{
	static const char *const results[2] = {"allowed", "refused"};
	const struct metrics *m;
	unsigned r, k, h;

	render_route_family(fp, "tracestitch_cors_preflights_total",
	    "CORS preflights answered by the gateway, by route and result.",
	    "result", results, 2, get_preflight);
	put_family(fp, "tracestitch_cors_refusals_total", "counter",
	    "Refused CORS preflights, by route, kind and refused header.");
	for (r = 0; r < route_count; r++) {
		for (k = 0; k < METRICS_CORS_NKINDS; k++) {
			for (h = 0; h < (unsigned)styles_label_count(); h++) {
				uint64_t v = 0;

				for (m = registry; m != NULL; m = m->next)
					v += util_counter_get(
					    &m->cors_refused[r][k][h]);
				if (v == 0)
					continue;
				fputs("tracestitch_cors_refusals_total{route=\"",
				    fp);
				put_label(fp, route_names[r]);
				fprintf(fp, "\",kind=\"%s\",header=\"%s\"} "
				    "%llu\n", cors_kinds[k], styles_label(h),
				    (unsigned long long)v);
			}
		}
	}
	render_route_family(fp, "tracestitch_cors_disallowed_origin_total",
	    "Actual requests of a CORS route whose Origin is not allowed.",
	    NULL, NULL, 0, get_disallowed);
}

/* Gauge, histogram and the X-macro counters; registry_mtx held. */
static void
render_globals(FILE *fp)
{
	const struct metrics *m;
	int64_t conns = 0;
	unsigned i, j;

	for (m = registry; m != NULL; m = m->next)
		conns += __atomic_load_n(&m->open_conns, __ATOMIC_RELAXED);
	put_family(fp, "tracestitch_open_connections", "gauge",
	    "Open client connections.");
	fprintf(fp, "tracestitch_open_connections %lld\n", (long long)conns);
	put_family(fp, "tracestitch_buffered_body_bytes", "gauge",
	    "Request-body bytes held against "
	    "server.limits.max_buffered_body_bytes.");
	fprintf(fp, "tracestitch_buffered_body_bytes %llu\n",
	    (unsigned long long)__atomic_load_n(&body_bytes,
	    __ATOMIC_RELAXED));
	conns = 0;
	for (m = registry; m != NULL; m = m->next)
		conns += __atomic_load_n(&m->open_tunnels, __ATOMIC_RELAXED);
	put_family(fp, "tracestitch_websocket_tunnels", "gauge",
	    "Open WebSocket tunnels (client connections switched after a "
	    "101).");
	fprintf(fp, "tracestitch_websocket_tunnels %lld\n", (long long)conns);

	for (i = 0; i < METRICS_NCOUNTERS; i++) {
		bool seen = false;

		for (j = 0; j < i && !seen; j++)
			seen = strcmp(counter_defs[j].name,
			    counter_defs[i].name) == 0;
		if (seen)
			continue;
		put_family(fp, counter_defs[i].name, "counter",
		    counter_defs[i].help);
		for (j = i; j < METRICS_NCOUNTERS; j++) {
			uint64_t v = 0;

			if (strcmp(counter_defs[j].name, counter_defs[i].name)
			    != 0)
				continue;
			for (m = registry; m != NULL; m = m->next)
				v += util_counter_get(&m->counters[j]);
			fputs(counter_defs[j].name, fp);
			if (counter_defs[j].labels[0] != '\0')
				fprintf(fp, "{%s}", counter_defs[j].labels);
			fprintf(fp, " %llu\n", (unsigned long long)v);
		}
	}
}

/* A trace id as an exemplar: {trace_id="<32 hex>"} value timestamp. */
static void
put_exemplar(FILE *fp, const struct metrics_exemplar_data *e)
{
	fprintf(fp, " # {trace_id=\"%016llx%016llx\"} ",
	    (unsigned long long)e->trace_hi, (unsigned long long)e->trace_lo);
	put_seconds(fp, e->value_us);
	fprintf(fp, " %llu.%03llu", (unsigned long long)(e->unix_ms / 1000),
	    (unsigned long long)(e->unix_ms % 1000));
}

/*
 * The newest consistent exemplar of bucket b of histogram h, route r, over
 * every block; false when there is none (or only one being written).
 */
static bool
find_exemplar(enum metrics_hist h, unsigned r, unsigned b,
    struct metrics_exemplar_data *out)
{
	const struct metrics *m;
	bool found = false;

	for (m = registry; m != NULL; m = m->next) {
		const struct metrics_exemplar_data *e = &m->ex[h][r][b];
		struct metrics_exemplar_data c;
		uint64_t s1, s2;

		s1 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
		if (s1 == 0 || (s1 & 1) != 0)
			continue;
		c.trace_hi = __atomic_load_n(&e->trace_hi, __ATOMIC_RELAXED);
		c.trace_lo = __atomic_load_n(&e->trace_lo, __ATOMIC_RELAXED);
		c.value_us = __atomic_load_n(&e->value_us, __ATOMIC_RELAXED);
		c.unix_ms = __atomic_load_n(&e->unix_ms, __ATOMIC_RELAXED);
		/* The fields are read before seq is read again. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
		if (s1 != s2)
			continue;
		if (!found || c.unix_ms > out->unix_ms) {
			*out = c;
			found = true;
		}
	}
	return found;
}

/*
 * The per-route histograms, with exemplars when om (OpenMetrics).  _count
 * is the +Inf bucket so that a reader racing a writer still sees count ==
 * le="+Inf" (the exposition format requires it).  registry_mtx held.
 */
static void
render_hists(FILE *fp, bool om)
{
	const struct metrics *m;
	unsigned h, r, b;

	for (h = 0; h < METRICS_NHISTS; h++) {
		const char *name = hist_defs[h].name;

		put_family(fp, name, "histogram", hist_defs[h].help);
		for (r = 0; r < route_count; r++) {
			uint64_t cum = 0, sum = 0;

			for (b = 0; b < METRICS_NBUCKETS; b++) {
				struct metrics_exemplar_data e = { 0 };

				for (m = registry; m != NULL; m = m->next)
					cum += util_counter_get(
					    &m->hist[h][r].buckets[b]);
				fprintf(fp, "%s_bucket{route=\"", name);
				put_label(fp, route_names[r]);
				fprintf(fp, "\",le=\"%s\"} %llu", bucket_le[b],
				    (unsigned long long)cum);
				if (om && find_exemplar(h, r, b, &e))
					put_exemplar(fp, &e);
				fputc('\n', fp);
			}
			for (m = registry; m != NULL; m = m->next)
				sum += util_counter_get(&m->hist[h][r].sum_us);
			fprintf(fp, "%s_sum{route=\"", name);
			put_label(fp, route_names[r]);
			fputs("\"} ", fp);
			put_seconds(fp, sum);
			fprintf(fp, "\n%s_count{route=\"", name);
			put_label(fp, route_names[r]);
			fprintf(fp, "\"} %llu\n", (unsigned long long)cum);
		}
	}
}

/* The propagation families (struct prop_stats); registry_mtx held. */
static void
render_propagation(FILE *fp)
{
	static const char *const results[2] = { "valid", "invalid" };
	static const char *const outcomes[3] = {
		"continued", "new", "restarted",
	};
	const struct metrics *m;
	unsigned s, k;

	put_family(fp, "tracestitch_propagation_extracted_total", "counter",
	    "Incoming trace contexts by propagation style and result.");
	for (s = 0; s < CONFIG_STYLE_NONE; s++) {
		for (k = 0; k < 2; k++) {
			uint64_t v = 0;

			for (m = registry; m != NULL; m = m->next)
				v += util_counter_get(k == 0 ?
				    &m->prop.extracted[s] :
				    &m->prop.invalid[s]);
			fprintf(fp, "tracestitch_propagation_extracted_total"
			    "{style=\"%s\",result=\"%s\"} %llu\n",
			    styles_name((enum config_style)s), results[k],
			    (unsigned long long)v);
		}
	}
	put_family(fp, "tracestitch_propagation_traces_total", "counter",
	    "Gateway spans by what extraction decided: a continued trace, a "
	    "new one, or a new one linked to the incoming (restart).");
	for (k = 0; k < 3; k++) {
		uint64_t v = 0;

		for (m = registry; m != NULL; m = m->next)
			v += util_counter_get(k == 0 ? &m->prop.continued :
			    k == 1 ? &m->prop.new_traces : &m->prop.restarted);
		fprintf(fp, "tracestitch_propagation_traces_total"
		    "{outcome=\"%s\"} %llu\n", outcomes[k],
		    (unsigned long long)v);
	}
	put_family(fp, "tracestitch_propagation_conflicts_total", "counter",
	    "Valid incoming contexts of another trace than the one continued, "
	    "kept as span links.");
	{
		uint64_t v = 0;

		for (m = registry; m != NULL; m = m->next)
			v += util_counter_get(&m->prop.links);
		fprintf(fp, "tracestitch_propagation_conflicts_total %llu\n",
		    (unsigned long long)v);
	}
}

/* When the process started, unix seconds (procfs; 0 when unknown). */
static double
process_start_time(void)
{
	static double start;	/* under registry_mtx */
	unsigned long long ticks = 0, btime = 0;
	char buf[1024], *p;
	FILE *f;
	int i;
	size_t n;

	if (start != 0)
		return start;
	/* /proc/self/stat: field 22 is starttime, ticks after boot (proc(5)). */
	if ((f = fopen("/proc/self/stat", "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The name (field 2) may hold spaces: count from its ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	for (i = 2; i < 22 && p != NULL; i++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p + 1, "%llu", &ticks) != 1)
		return 0;
	if ((f = fopen("/proc/stat", "r")) == NULL)
		return 0;
	while (fgets(buf, sizeof buf, f) != NULL)
		if (sscanf(buf, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	if (btime == 0)
		return 0;
	start = (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
	return start;
}

/* Open file descriptors: the entries of /proc/self/fd but our own. */
static long
process_open_fds(void)
{
	struct dirent *de;
	DIR *d;
	long n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;		/* the directory's own descriptor */
}

/*
 * tracestitch_build_info and Prometheus's standard process metrics (the
 * names client libraries use: process_cpu_seconds_total, ...).
 */
static void
render_process(FILE *fp)
{
	unsigned long long vsize = 0, rss = 0;
	struct rusage ru;
	struct rlimit rl;
	FILE *f;
	long fds;

	put_family(fp, "tracestitch_build_info", "gauge",
	    "Always 1: the version and the commit of the running binary.");
	fputs("tracestitch_build_info{version=\"", fp);
	put_label(fp, TS_VERSION);
	fputs("\",commit=\"", fp);
	put_label(fp, TS_COMMIT);
	fputs("\"} 1\n", fp);

	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		put_family(fp, "process_cpu_seconds_total", "counter",
		    "Total user and system CPU time spent in seconds.");
		fprintf(fp, "process_cpu_seconds_total %.6f\n",
		    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	}
	if ((f = fopen("/proc/self/statm", "r")) != NULL) {
		if (fscanf(f, "%llu %llu", &vsize, &rss) == 2) {
			long page = sysconf(_SC_PAGESIZE);

			put_family(fp, "process_resident_memory_bytes", "gauge",
			    "Resident memory size in bytes.");
			fprintf(fp, "process_resident_memory_bytes %llu\n",
			    rss * (unsigned long long)page);
			put_family(fp, "process_virtual_memory_bytes", "gauge",
			    "Virtual memory size in bytes.");
			fprintf(fp, "process_virtual_memory_bytes %llu\n",
			    vsize * (unsigned long long)page);
		}
		fclose(f);
	}
	if ((fds = process_open_fds()) >= 0) {
		put_family(fp, "process_open_fds", "gauge",
		    "Number of open file descriptors.");
		fprintf(fp, "process_open_fds %ld\n", fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		put_family(fp, "process_max_fds", "gauge",
		    "Maximum number of open file descriptors.");
		fprintf(fp, "process_max_fds %llu\n", rl.rlim_cur ==
		    RLIM_INFINITY ? 0ULL : (unsigned long long)rl.rlim_cur);
	}
	if (process_start_time() != 0) {
		put_family(fp, "process_start_time_seconds", "gauge",
		    "Start time of the process since unix epoch in seconds.");
		fprintf(fp, "process_start_time_seconds %.2f\n",
		    process_start_time());
	}
}

/* Set the extra section, or clear it (fn NULL) if arg is the current. */
void
metrics_set_section(metrics_section_fn fn, void *arg)
{
	pthread_mutex_lock(&registry_mtx);
	if (fn != NULL || section_arg == arg) {
		section_fn = fn;
		section_arg = fn != NULL ? arg : NULL;
	}
	pthread_mutex_unlock(&registry_mtx);
}

/* A section kept until exit; the same fn twice is added once. */
void
metrics_add_section(metrics_section_fn fn, void *arg)
{
	size_t i;

	pthread_mutex_lock(&registry_mtx);
	for (i = 0; i < n_more && more_fn[i] != fn; i++)
		;
	if (i == n_more && n_more < METRICS_MAX_SECTIONS) {
		more_fn[n_more] = fn;
		more_arg[n_more++] = arg;
	}
	pthread_mutex_unlock(&registry_mtx);
}

/* The duration bucket of a time, and a bucket's le label (metrics.h). */
unsigned
metrics_bucket_of(uint64_t duration_us)
{
	unsigned b;

	for (b = 0; b < METRICS_NBUCKETS - 1; b++)
		if (duration_us <= bucket_le_us[b])
			break;
	return b;
}

const char *
metrics_bucket_le(unsigned b)
{
	return b < METRICS_NBUCKETS ? bucket_le[b] : "+Inf";
}


/*
 * OpenMetrics 1.0.0 from our text rendering: a counter family is named
 * without its _total suffix in # HELP and # TYPE (the samples keep it),
 * and the exposition ends with # EOF.  Everything else (gauges,
 * histograms, label syntax, escaping) is the same in both formats; the
 * exemplars were written by render_hists.  Every counter we render ends
 * in _total.
 */
static char *
to_openmetrics(const char *text)
{
	char *out = NULL;
	size_t len = 0;
	const char *p = text;
	FILE *fp;

	if ((fp = open_memstream(&out, &len)) == NULL)
		return NULL;
	while (*p != '\0') {
		const char *eol = strchr(p, '\n'), *name, *nend, *next;
		size_t n = eol != NULL ? (size_t)(eol - p) : strlen(p);
		bool counter = false;

		/* # HELP x ... precedes its # TYPE x counter. */
		if (strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) ==
		    0) {
			name = p + 7;
			nend = strchr(name, ' ');
			next = eol != NULL ? eol + 1 : p + n;
			if (p[2] == 'T')
				counter = strncmp(nend, " counter\n", 9) == 0 ||
				    strcmp(nend, " counter") == 0;
			else if (strncmp(next, "# TYPE ", 7) == 0 &&
			    strncmp(next + 7, name, (size_t)(nend - name)) ==
			    0 && strncmp(next + 7 + (nend - name), " counter",
			    8) == 0)
				counter = true;
			if (counter && nend - name > 6 &&
			    strncmp(nend - 6, "_total", 6) == 0) {
				fwrite(p, 1, (size_t)(nend - 6 - p), fp);
				fwrite(nend, 1, (size_t)(p + n - nend), fp);
				fputc('\n', fp);
				p += n + (eol != NULL);
				continue;
			}
		}
		fwrite(p, 1, n, fp);
		fputc('\n', fp);
		p += n + (eol != NULL);
	}
	fputs("# EOF\n", fp);
	if (fclose(fp) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Every family, in the text format (exemplars when om). */
static char *
render(bool om)
{
	char *out = NULL;
	size_t len = 0;
	FILE *fp;

	if ((fp = open_memstream(&out, &len)) == NULL)
		return NULL;
	pthread_mutex_lock(&registry_mtx);
	routes_init_locked();
	render_process(fp);
	render_routes(fp);
	render_hists(fp, om);
	render_cors(fp);
	render_propagation(fp);
	render_globals(fp);
	if (section_fn != NULL)
		section_fn(fp, section_arg);
	for (size_t i = 0; i < n_more; i++)
		more_fn[i](fp, more_arg[i]);
	pthread_mutex_unlock(&registry_mtx);
	if (ferror(fp)) {
		fclose(fp);
		free(out);
		return NULL;
	}
	if (fclose(fp) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Prometheus text exposition (format 0.0.4) of every block summed. */
char *
metrics_render(void)
{
	return render(false);
}

/* The same as OpenMetrics 1.0.0, with exemplars. */
char *
metrics_render_openmetrics(void)
{
	char *text = render(true), *om;

	if (text == NULL)
		return NULL;
	om = to_openmetrics(text);
	free(text);
	return om;
}
