/*
 * proxy_trace.c -- the gateway span of a request: extraction of the
 * incoming context from every header line, the span's tags (PROPAGATION.md
 * 11.4 and 11.6), injection toward the upstream, and the finish that hands
 * the span to the exporter.  The pure work is src/trace/; this file only
 * maps a request onto it.
 */
#include <sys/queue.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exporter.h"
#include "log.h"
#include "metrics.h"
#include "propagation.h"
#include "proxy.h"
#include "proxy_int.h"
#include "sampler.h"
#include "span.h"
#include "util.h"

/* Header-count cap for extraction; later lines are not looked at. */
#define PROXY_MAX_TRACE_HEADERS 128

/* Injection sink: one "Name: value" line into the head buffer. */
static int
proxy_emit_cb(void *arg, const char *name, const char *value, size_t len)
{
	struct proxy_hbuf *hb = arg;

	proxy_hbuf_str(hb, name);
	proxy_hbuf_add(hb, ": ", 2);
	proxy_hbuf_add(hb, value, len);
	proxy_hbuf_add(hb, "\r\n", 2);
	return 0;
}

/* True for a path segment that varies per request (id, UUID, hash). */
static bool
proxy_segment_is_id(const char *p, size_t len)
{
	size_t i, digits = 0, hex = 0, dashes = 0;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		char c = p[i];

		if (c >= '0' && c <= '9')
			digits++;
		else if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
			hex++;
		else if (c == '-')
			dashes++;
		else
			return false;
	}
	if (digits == len)
		return true;
	/* 8-4-4-4-12 UUIDs and long hex ids. */
	if (len == 36 && dashes == 4)
		return true;
	return dashes == 0 && len >= 16 && digits > 0;
}

/* "GET /users/?/orders": the method and the path with ids as '?'. */
static void
proxy_resource(const struct proxy_req *pr, char *out, size_t size)
{
	const char *p = pr->pr_client.path;
	size_t n = strlen(pr->pr_client.method_name);

	if (n + 2 > size)
		n = size - 2;
	memcpy(out, pr->pr_client.method_name, n);
	out[n++] = ' ';
	while (*p != '\0' && n + 2 < size) {
		size_t seg;

		if (*p == '/') {
			out[n++] = *p++;
			continue;
		}
		seg = strcspn(p, "/");
		if (proxy_segment_is_id(p, seg))
			out[n++] = '?';
		else {
			if (n + seg + 1 > size)
				seg = size - n - 1;
			memcpy(out + n, p, seg);
			n += seg;
		}
		p += seg;
	}
	out[n] = '\0';
}

/* Borrowed tags: a literal value, or a configuration string. */
#define SPAN_ADD_LIT(sp, k, v)						\
	(void)span_add_meta_static((sp), (k), sizeof(k) - 1, (v),	\
	    sizeof(v) - 1)
#define SPAN_ADD_CONF(sp, k, v)						\
	(void)span_add_meta_static((sp), (k), sizeof(k) - 1, (v),	\
	    strlen(v))

/* Spans kept for reuse by a pipeline (a span is 2 KB and more). */
#define PROXY_SPAN_POOL_MAX 256

/* A span from the pipeline's pool (span_init'ed), or NULL. */
static struct span *
proxy_span_get(struct proxy_pipeline *pl)
{
	struct span *sp = pl->span_pool;

	if (sp != NULL) {
		memcpy(&pl->span_pool, sp->arena_buf, sizeof pl->span_pool);
		pl->span_pool_n--;
		span_init(sp);
		return sp;
	}
	return span_new();
}

/* Return a span to the pool. */
static void
proxy_span_put(struct proxy_pipeline *pl, struct span *sp)
{
	if (sp == NULL)
		return;
	if (pl->span_pool_n >= PROXY_SPAN_POOL_MAX) {
		span_free(sp);
		return;
	}
	/* The free list runs through the first bytes of the arena. */
	memcpy(sp->arena_buf, &pl->span_pool, sizeof pl->span_pool);
	pl->span_pool = sp;
	pl->span_pool_n++;
}

void
proxy_trace_pool_free(struct proxy_pipeline *pl)
{
	struct span *sp;

	while ((sp = pl->span_pool) != NULL) {
		memcpy(&pl->span_pool, sp->arena_buf, sizeof pl->span_pool);
		span_free(sp);
	}
	pl->span_pool_n = 0;
}

/* Install new agent sampling rates in the generation's sampler, if any. */
static void
proxy_sampler_refresh(struct proxy_req *pr)
{
	struct worker_gen *wg = pr->wgen;
	struct exporter *x = pr->pl->exporter;
	struct sampler_rate *rates = NULL;
	size_t n = 0;
	uint64_t v;

	if (x == NULL || wg->sampler == NULL ||
	    exporter_rates_version(x) == wg->rates_version)
		return;
	v = exporter_rates_copy(x, &rates, &n);
	sampler_set_agent_rates(wg->sampler, rates, n);
	sampler_rates_free(rates, n);
	wg->rates_version = v;
}

/* Extract the incoming context and start the gateway span. */
void
proxy_trace_start(struct proxy_req *pr, const struct proxy_hdrs *h,
    bool preflight)
{
	struct proxy_pipeline *pl = pr->pl;
	const struct exchange *req = pr->pr_client.req;
	const struct config *cfg = pr->wgen->cfg;
	struct trace_header th[PROXY_MAX_TRACE_HEADERS];
	struct span *sp;
	char buf[1024];
	const char *ua = NULL;
	size_t n = 0, i;
	uint64_t mono = util_mono_ns();

	if ((sp = proxy_span_get(pl)) == NULL)
		return;
	proxy_sampler_refresh(pr);
	for (i = 0; i < req->n_fields && n < TS_NITEMS(th); i++) {
		const struct http_field *f = &req->fields[i];

		if (ua == NULL && f->name_len == 10 &&
		    util_strcaseeq(f->name, "user-agent")) {
			ua = f->value;
			continue;
		}
		/* Extraction looks at tracing headers only. */
		if (!propagation_is_known_header(f->name, f->name_len))
			continue;
		if (i < 64)
			pr->trace_fields |= (uint64_t)1 << i;

		th[n].name = f->name;
		th[n].name_len = f->name_len;
		th[n].value = f->value;
		th[n].value_len = f->value_len;
		n++;
	}
	pr->trace_classified = i;
	propagation_extract(pr->route->prop, th, n, pl->extract,
	    metrics_prop_stats(pl->metrics));
	propagation_start_span(pr->route->prop, pl->extract, pr->wgen->sampler,
	    &pl->rng, (uint64_t)((int64_t)pr->start_ns + pl->wall_offset_ns),
	    mono, sp);
	pr->span = sp;

	(void)span_set_name(sp, cfg->tracing.span_name);
	(void)span_set_service(sp, cfg->tracing.service);
	(void)span_set_type(sp, "web");
	proxy_resource(pr, buf, sizeof buf);
	(void)span_set_resource(sp, buf);
	/*
	 * Constant strings and the generation's configuration (pr holds a
	 * reference until the span is exported) are borrowed, not copied;
	 * propagation_start_span() set none of these keys.
	 */
	SPAN_ADD_LIT(sp, "span.kind", "server");
	SPAN_ADD_LIT(sp, "component", "tracestitch");
	SPAN_ADD_LIT(sp, "language", "c");
	if (cfg->tracing.env[0] != '\0')
		SPAN_ADD_CONF(sp, "env", cfg->tracing.env);
	if (cfg->tracing.version[0] != '\0')
		SPAN_ADD_CONF(sp, "version", cfg->tracing.version);
	SPAN_ADD_CONF(sp, "http.method", pr->pr_client.method_name);
	{
		/* scheme://host/target, bounded (no printf per request). */
		const char *parts[3];
		size_t k, len = 0, plen;

		parts[0] = req->tls ? "https://" : "http://";
		parts[1] = h->host != NULL ? h->host :
		    pr->route->conf->upstream.authority;
		parts[2] = cfg->tracing.redact_query ? pr->pr_client.path :
		    proxy_origin_form(req->target);
		for (k = 0; k < TS_NITEMS(parts); k++) {
			plen = strlen(parts[k]);
			if (plen > sizeof buf - 1 - len)
				plen = sizeof buf - 1 - len;
			memcpy(buf + len, parts[k], plen);
			len += plen;
		}
		buf[len] = '\0';
	}
	(void)span_set_meta(sp, "http.url", buf);
	if (h->host != NULL)
		(void)span_set_meta(sp, "http.host", h->host);
	if (ua != NULL)
		(void)span_set_meta(sp, "http.useragent", ua);
	if (h->origin != NULL)
		(void)span_set_meta(sp, "http.request.headers.origin",
		    h->origin);
	SPAN_ADD_CONF(sp, "http.route", pr->route->conf->path_prefix);
	SPAN_ADD_CONF(sp, "upstream.name", pr->route->conf->name);
	SPAN_ADD_CONF(sp, "upstream.address", pr->route->conf->upstream.url);
	/*
	 * The client, through trusted proxies and the PROXY protocol
	 * (proxy.c); Datadog's client IP tag is opt-in
	 * (DD_TRACE_CLIENT_IP_ENABLED).
	 */
	(void)span_set_meta(sp, "network.client.ip", pr->pr_log.client_ip);
	if (cfg->tracing.client_ip)
		(void)span_set_meta(sp, "http.client_ip",
		    pr->pr_log.client_ip);
	if (preflight)
		(void)span_set_meta(sp, "cors.preflight", "true");
	for (i = 0; i < cfg->tracing.n_tags; i++)
		(void)span_set_meta(sp, cfg->tracing.tags[i].key,
		    cfg->tracing.tags[i].value);
	(void)span_set_metric(sp, "_dd.measured", 1);
	/* _dd.top_level and process_id: the exporter adds both (11.4). */
	/* Sampling rules match service, name, resource, tags: now. */
	if (sampler_has_rules(pr->wgen->sampler))
		sampler_decide(pr->wgen->sampler, sp, mono);
}

/* Close the span: status, error, timings; hand it to the exporter. */
void
proxy_trace_finish(struct proxy_req *pr)
{
	struct proxy_pipeline *pl = pr->pl;
	struct span *sp = pr->span;
	uint64_t end = util_mono_ns();
	char num[16];

	if (sp == NULL)
		return;
	pr->span = NULL;
	if (pr->status >= 100 && pr->status <= 999) {
		num[0] = (char)('0' + pr->status / 100);
		num[1] = (char)('0' + pr->status / 10 % 10);
		num[2] = (char)('0' + pr->status % 10);
		num[3] = '\0';
		(void)span_set_meta(sp, "http.status_code", num);
	}
	if (pr->error_type != NULL) {
		sp->error = true;
		(void)span_set_meta(sp, "error.type", pr->error_type);
		(void)span_set_meta(sp, "error.message", pr->error_msg);
	} else if (pr->status >= 500) {
		sp->error = true;
		(void)span_set_meta(sp, "error.type", "http.server_error");
		snprintf(pr->error_msg, sizeof pr->error_msg,
		    "the upstream answered %d", pr->status);
		(void)span_set_meta(sp, "error.message", pr->error_msg);
	}
	if (pr->up_sent_ns != 0)
		(void)span_set_metric(sp, "upstream.connect_ms",
		    (double)(pr->up_sent_ns - pr->start_ns) / 1e6);
	if (pr->up_first_ns != 0 && pr->up_sent_ns != 0)
		(void)span_set_metric(sp, "upstream.ttfb_ms",
		    (double)(pr->up_first_ns - pr->up_sent_ns) / 1e6);
	span_finish(sp, (uint64_t)((int64_t)end + pl->wall_offset_ns));
	if (pl->xq != NULL)
		(void)exporter_submit(pl->xq, sp);	/* drops are counted */
	proxy_span_put(pl, sp);
}

/* Write the gateway span's context in every inject style into hb. */
void
proxy_trace_inject(struct proxy_req *pr, struct proxy_hbuf *hb)
{
	(void)propagation_inject(pr->route->prop, pr->span, proxy_emit_cb, hb);
}
