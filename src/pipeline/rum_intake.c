/*
 * rum_intake.c -- the RUM intake relay (rum_intake.h, docs/rum-relay.md):
 * the checks of a relay request, the request sent to the intake, and the
 * tracestitch_rum_intake_* metrics.
 *
 * What Datadog asks of a relay (docs.datadoghq.com, "Proxy Your Browser
 * RUM Data", Browser SDK >= 4.34.0): build the intake URL from its own
 * intake origin and the ddforward path; add X-Forwarded-For with the
 * client address (the intake's geolocation); forward with POST and the
 * body unchanged, binary included; remove sensitive headers such as
 * Cookie.  The host is never taken from the request (ddforward.c).
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "propagation.h"
#include "rum_intake.h"
#include "util.h"

int
rum_intake_check(const struct config_route *route, const struct exchange *req,
    const char *uri, struct ddforward *d, const char **why)
{
	const char *q = strchr(uri, '?');
	size_t blen;

	d->track = -1;
	if (req->method != EXCHANGE_M_POST) {
		*why = "the RUM intake relay takes POST only";
		return 405;
	}
	if (ddforward_parse(q != NULL ? q + 1 : "", q != NULL ?
	    strlen(q + 1) : 0, d) != 0) {
		*why = ddforward_reason_text(d->reason);
		return 400;
	}
	blen = req->body != NULL ? evbuffer_get_length(req->body) : 0;
	if (blen > route->rum.max_body_bytes) {
		*why = "the batch is larger than rum_intake.max_body_bytes";
		return 413;
	}
	*why = NULL;
	return 0;
}

/* Is name one of the connection options of the request (RFC 9110 7.6.1)? */
static bool
rum_connection_option(const struct exchange *req, const char *name,
    size_t nlen)
{
	size_t i;

	for (i = 0; i < req->n_fields; i++) {
		const char *p, *e;

		if (req->fields[i].name_len != 10 ||
		    !util_strcaseeq(req->fields[i].name, "connection"))
			continue;
		for (p = req->fields[i].value; *p != '\0'; p = e) {
			while (*p == ' ' || *p == '\t' || *p == ',')
				p++;
			for (e = p; *e != '\0' && *e != ',' && *e != ' ' &&
			    *e != '\t'; e++)
				;
			if ((size_t)(e - p) == nlen && util_strncaseeq(p, name,
			    nlen))
				return true;
		}
	}
	return false;
}

/*
 * A request field the intake does not get: hop-by-hop (RFC 9110 7.6.1),
 * ours to write (Host, Content-Length, X-Forwarded-For), credentials of
 * the page's origin, tracing context, or a client's claim about the
 * forwarding path.
 */
static bool
rum_field_dropped(const struct exchange *req, const struct http_field *f)
{
	static const char *const names[] = {
		"connection", "keep-alive", "proxy-connection", "te",
		"trailer", "transfer-encoding", "upgrade", "host",
		"content-length", "expect", "cookie", "authorization",
		"proxy-authorization", "forwarded", "x-real-ip",
	};
	size_t i;

	for (i = 0; i < TS_NITEMS(names); i++) {
		if (util_strcaseeq(f->name, names[i]))
			return true;
	}
	if (util_strncaseeq(f->name, "x-forwarded-", 12))
		return true;
	if (propagation_is_known_header(f->name, f->name_len))
		return true;
	return rum_connection_option(req, f->name, f->name_len);
}

void
rum_intake_request(const struct config_upstream *intake,
    const struct exchange *req, const struct ddforward *d,
    const char *client_ip, struct evbuffer *out)
{
	struct evbuffer *body = req->body;
	size_t i, blen = body != NULL ? evbuffer_get_length(body) : 0;

	evbuffer_add_printf(out, "POST %s%s HTTP/1.1\r\nHost: %s\r\n",
	    intake->base_path, d->target, intake->authority);
	for (i = 0; i < req->n_fields; i++) {
		const struct http_field *f = &req->fields[i];

		if (rum_field_dropped(req, f))
			continue;
		evbuffer_add(out, f->name, f->name_len);
		evbuffer_add(out, ": ", 2);
		evbuffer_add(out, f->value, f->value_len);
		evbuffer_add(out, "\r\n", 2);
	}
	evbuffer_add_printf(out, "X-Forwarded-For: %s\r\nContent-Length: %zu"
	    "\r\n\r\n", client_ip, blen);
	if (blen > 0)
		evbuffer_add_buffer(out, body);
}

/*
 * The counters, shared by the workers: relaxed atomic adds (a relay
 * request is one of a few per page view, not the proxied hot path).
 * Row DDFORWARD_NTRACKS is track "none": refused before a track was
 * known.
 */
#define RUM_NROWS (DDFORWARD_NTRACKS + 1)

static uint64_t rum_requests[RUM_NROWS][RUM_INTAKE_NRESULTS];
static uint64_t rum_bytes[RUM_NROWS];
static uint64_t rum_buckets[RUM_NROWS][METRICS_NBUCKETS];
static uint64_t rum_sum_us[RUM_NROWS];
static bool rum_series;		/* a relay route was configured */

static const char *const rum_result_names[RUM_INTAKE_NRESULTS] = {
	"forwarded", "rejected", "refused", "failed",
};

static const char *
rum_track_name(unsigned row)
{
	return row < DDFORWARD_NTRACKS ? ddforward_tracks[row].name : "none";
}

void
rum_intake_count(int track, enum rum_intake_result result, uint64_t bytes,
    uint64_t duration_us)
{
	unsigned row = track >= 0 && track < DDFORWARD_NTRACKS ?
	    (unsigned)track : DDFORWARD_NTRACKS;

	if ((unsigned)result >= RUM_INTAKE_NRESULTS)
		return;
	__atomic_fetch_add(&rum_requests[row][result], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&rum_bytes[row], bytes, __ATOMIC_RELAXED);
	__atomic_fetch_add(&rum_buckets[row][metrics_bucket_of(duration_us)],
	    1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&rum_sum_us[row], duration_us, __ATOMIC_RELAXED);
}

static uint64_t
rum_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* The families (metrics_add_section; under the registry's lock). */
static void
rum_render(FILE *fp, void *arg)
{
	unsigned row, r, b;
	uint64_t cum;
	bool series;

	(void)arg;
	series = __atomic_load_n(&rum_series, __ATOMIC_RELAXED);
	fputs("# HELP tracestitch_rum_intake_requests_total Requests to the "
	    "RUM intake relay, by intake track and result\n"
	    "# TYPE tracestitch_rum_intake_requests_total counter\n", fp);
	for (row = 0; series && row < RUM_NROWS; row++)
		for (r = 0; r < RUM_INTAKE_NRESULTS; r++)
			fprintf(fp, "tracestitch_rum_intake_requests_total{"
			    "track=\"%s\",result=\"%s\"} %llu\n",
			    rum_track_name(row), rum_result_names[r],
			    (unsigned long long)rum_load(
			    &rum_requests[row][r]));
	fputs("# HELP tracestitch_rum_intake_bytes_total Body bytes of the "
	    "batches sent to the RUM intake\n"
	    "# TYPE tracestitch_rum_intake_bytes_total counter\n", fp);
	for (row = 0; series && row < DDFORWARD_NTRACKS; row++)
		fprintf(fp, "tracestitch_rum_intake_bytes_total{track=\"%s\"} "
		    "%llu\n", rum_track_name(row),
		    (unsigned long long)rum_load(&rum_bytes[row]));
	fputs("# HELP tracestitch_rum_intake_duration_seconds Time from a "
	    "relay request to the end of its answer\n"
	    "# TYPE tracestitch_rum_intake_duration_seconds histogram\n", fp);
	for (row = 0; row < RUM_NROWS; row++) {
		for (b = 0, cum = 0; b < METRICS_NBUCKETS; b++)
			cum += rum_load(&rum_buckets[row][b]);
		if (cum == 0)
			continue;
		for (b = 0, cum = 0; b < METRICS_NBUCKETS; b++) {
			cum += rum_load(&rum_buckets[row][b]);
			fprintf(fp, "tracestitch_rum_intake_duration_seconds_"
			    "bucket{track=\"%s\",le=\"%s\"} %llu\n",
			    rum_track_name(row), metrics_bucket_le(b),
			    (unsigned long long)cum);
		}
		fprintf(fp, "tracestitch_rum_intake_duration_seconds_sum{"
		    "track=\"%s\"} %.6f\n", rum_track_name(row),
		    (double)rum_load(&rum_sum_us[row]) / 1e6);
		fprintf(fp, "tracestitch_rum_intake_duration_seconds_count{"
		    "track=\"%s\"} %llu\n", rum_track_name(row),
		    (unsigned long long)cum);
	}
}

void
rum_intake_metrics_register(void)
{
	metrics_add_section(rum_render, NULL);
}

void
rum_intake_metrics_on(void)
{
	__atomic_store_n(&rum_series, true, __ATOMIC_RELAXED);
}
