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
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "styles.h"
#include "util.h"

#define METRICS_NCLASSES 5		/* 1xx .. 5xx */
#define METRICS_NBUCKETS 15		/* incl. +Inf */
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

struct metrics {
	struct metrics *next;		/* registry, under registry_mtx */
	char owner[32];
	uint64_t requests[METRICS_MAX_ROUTES][METRICS_NCLASSES];
	uint64_t bytes[METRICS_MAX_ROUTES];
	uint64_t upstream[METRICS_MAX_ROUTES][METRICS_UPSTREAM_NKINDS];
	uint64_t cors_preflight[METRICS_MAX_ROUTES][2];	/* allowed, refused */
	uint64_t cors_refused[METRICS_MAX_ROUTES][METRICS_CORS_NKINDS]
	    [METRICS_CORS_NHDRS];
	uint64_t cors_disallowed[METRICS_MAX_ROUTES];
	int64_t open_conns;
	int64_t open_tunnels;		/* WebSocket tunnels */
	uint64_t buckets[METRICS_NBUCKETS];	/* not cumulative */
	uint64_t duration_sum_us;
	uint64_t counters[METRICS_NCOUNTERS];
};

static pthread_mutex_t registry_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct metrics *registry;
static char *route_names[METRICS_MAX_ROUTES];
static unsigned route_count;		/* 0 until the first intern */
static metrics_section_fn section_fn;	/* under registry_mtx */
static void *section_arg;

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

/* One finished request: status class, duration, body bytes. */
void
metrics_request(struct metrics *m, unsigned route, int status,
    uint64_t duration_us, uint64_t bytes)
{
	unsigned b;

	if (route >= METRICS_MAX_ROUTES)
		route = 0;
	/* Codes outside 100..599 do not exist (RFC 9110 15): no class. */
	if (status >= 100 && status <= 599)
		util_counter_add(&m->requests[route][status / 100 - 1], 1);
	util_counter_add(&m->bytes[route], bytes);
	for (b = 0; b < METRICS_NBUCKETS - 1; b++)
		if (duration_us <= bucket_le_us[b])
			break;
	util_counter_add(&m->buckets[b], 1);
	util_counter_add(&m->duration_sum_us, duration_us);
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
	uint64_t cum = 0, sum = 0;
	int64_t conns = 0;
	unsigned b, i, j;

	for (m = registry; m != NULL; m = m->next)
		conns += __atomic_load_n(&m->open_conns, __ATOMIC_RELAXED);
	put_family(fp, "tracestitch_open_connections", "gauge",
	    "Open client connections.");
	fprintf(fp, "tracestitch_open_connections %lld\n", (long long)conns);
	conns = 0;
	for (m = registry; m != NULL; m = m->next)
		conns += __atomic_load_n(&m->open_tunnels, __ATOMIC_RELAXED);
	put_family(fp, "tracestitch_websocket_tunnels", "gauge",
	    "Open WebSocket tunnels (client connections switched after a "
	    "101).");
	fprintf(fp, "tracestitch_websocket_tunnels %lld\n", (long long)conns);

	put_family(fp, "tracestitch_request_duration_seconds", "histogram",
	    "Request duration, from the request head to the last byte sent.");
	/* _count is the +Inf bucket so that a reader racing a writer still
	 * sees count == le="+Inf" (the exposition format requires it). */
	for (b = 0; b < METRICS_NBUCKETS; b++) {
		for (m = registry; m != NULL; m = m->next)
			cum += util_counter_get(&m->buckets[b]);
		fprintf(fp, "tracestitch_request_duration_seconds_bucket"
		    "{le=\"%s\"} %llu\n", bucket_le[b],
		    (unsigned long long)cum);
	}
	for (m = registry; m != NULL; m = m->next)
		sum += util_counter_get(&m->duration_sum_us);
	fputs("tracestitch_request_duration_seconds_sum ", fp);
	put_seconds(fp, sum);
	fprintf(fp, "\ntracestitch_request_duration_seconds_count %llu\n",
	    (unsigned long long)cum);

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

/* Prometheus text exposition (format 0.0.4) of every block summed. */
char *
metrics_render(void)
{
	char *out = NULL;
	size_t len = 0;
	FILE *fp;

	if ((fp = open_memstream(&out, &len)) == NULL)
		return NULL;
	pthread_mutex_lock(&registry_mtx);
	routes_init_locked();
	render_routes(fp);
	render_cors(fp);
	render_globals(fp);
	if (section_fn != NULL)
		section_fn(fp, section_arg);
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
