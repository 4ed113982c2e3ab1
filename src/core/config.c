/*
 * config.c -- stage 2 of configuration loading: the schema table, the
 * validating walk of the yaml_tree, the DD_* / OTEL_* environment
 * overrides and the cross-field checks.
 *
 * Every key is one row of cfg_schema[] (tmux options-table.c, pgbouncer
 * bouncer_params): its dotted path ("routes[].upstream.url" for list
 * items), type, where it is stored, range, default (YAML text, parsed by
 * the same setter as file values, like pgbouncer's string defaults),
 * reloadable flag and help text.  docs/configuration.md and
 * conf/tracestitch.yaml follow the table order.
 *
 * Loading never stops at the first problem: every error is appended as
 * "file:line:col: key.path: message" (environment errors as
 * "env:NAME: key.path: message") up to CFG_MAX_ERRORS, and a config with
 * any error is freed, never returned half-applied.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "log.h"
#include "url.h"
#include "util.h"
#include "yaml_tree.h"

#define CFG_MAX_ERRORS 50
#define CFG_MAX_FILE (4 * 1024 * 1024)

enum cfg_type {
	CT_UINT,		/* uint64_t */
	CT_UNSIGNED,		/* unsigned */
	CT_DURATION,		/* uint64_t, milliseconds */
	CT_SIZE,		/* uint64_t, bytes */
	CT_BOOL,		/* bool */
	CT_FLOAT,		/* double; nullable: bool at .has */
	CT_STRING,		/* char *; nullable: NULL */
	CT_ENUM,		/* int-sized enum, index into .choices */
	CT_STRV,		/* struct config_strv */
	CT_STYLES,		/* enum config_style[], count at .cnt */
	CT_MAP,			/* struct config_kv *, count at .cnt */
	CT_ADDR,		/* struct config_addr */
	CT_ADDRV,		/* struct config_addr *, count at .cnt */
	CT_WORKERS,		/* unsigned: "auto" or a number */
	CT_URL,			/* struct config_upstream (URL parts) */
	CT_ROUTE_CORS,		/* false or a map over cors.*; resolved last */
	CT_NTYPES
};

enum cfg_base {
	CB_CONFIG,		/* struct config */
	CB_ROUTE,		/* struct config_route */
	CB_CORS,		/* struct config_cors (top level or route) */
};

#define CF_NORELOAD	0x1	/* cannot change on SIGHUP */
#define CF_NULLABLE	0x2	/* null is a value: NULL / has = false */

struct cfg_row {
	const char *path;
	enum cfg_type type;
	enum cfg_base base;
	size_t off;
	size_t cnt;		/* count field of arrays */
	size_t has;		/* offset + 1 of a bool set when given */
	size_t on;		/* offset + 1 of a bool: the key's section is
				 * present (admin.listen: has_admin) */
	int flags;
	uint64_t min, max;
	const char *def;	/* YAML text; NULL: no default */
	const char *const *choices;
	const char *(*check)(const char *);
	const char *env;	/* environment overrides, for the docs */
	const char *help;
};

/* DD_TRACE_SAMPLING_RULES checker (config.h). */
static config_rules_check_fn *config_rules_check;

void
config_set_rules_check(config_rules_check_fn *fn)
{
	config_rules_check = fn;
}

static const char *const cfg_behavior_names[] = {
	"continue", "restart", "ignore", NULL
};
static const char *const cfg_on_disallowed_names[] = {
	"reject", "pass", NULL
};
static const char *const cfg_exporter_names[] = {
	"datadog", "otlp", "stdout", "none", NULL
};
static const char *const cfg_level_names[] = {
	"error", "warn", "info", "debug", NULL
};
static const char *cfg_check_origin(const char *);
static const char *cfg_check_path_prefix(const char *);
static const char *cfg_check_agent_url(const char *);
static const char *cfg_check_http_url(const char *);
static const char *cfg_check_format(const char *);

#define C(f) .base = CB_CONFIG, .off = offsetof(struct config, f)
#define CN(f, n) C(f), .cnt = offsetof(struct config, n)
#define R(f) .base = CB_ROUTE, .off = offsetof(struct config_route, f)
#define K(f) .base = CB_CORS, .off = offsetof(struct config_cors, f)
#define MAXU UINT64_MAX

static const struct cfg_row cfg_schema[] = {
	{ "server.listen", CT_ADDRV, CN(listen, n_listen),
	  .flags = CF_NORELOAD, .def = "[\"0.0.0.0:8080\"]",
	  .help = "addresses to accept requests on, \"host:port\" or "
	  "\"[v6]:port\"" },
	{ "server.tls.cert", CT_STRING, C(tls.cert),
	  .flags = CF_NORELOAD | CF_NULLABLE, .min = 1,
	  .help = "PEM certificate chain; with key, serve HTTPS on every "
	  "listen address" },
	{ "server.tls.key", CT_STRING, C(tls.key),
	  .flags = CF_NORELOAD | CF_NULLABLE, .min = 1,
	  .help = "PEM private key of server.tls.cert" },
	{ "server.workers", CT_WORKERS, C(workers), .flags = CF_NORELOAD,
	  .min = 1, .max = 256, .def = "auto",
	  .help = "worker threads, \"auto\" for one per CPU" },
	{ "server.backlog", CT_UINT, C(backlog), .flags = CF_NORELOAD,
	  .min = 1, .max = 65535, .def = "1024",
	  .help = "listen queue of each listen address (connections the "
	  "kernel completes before we accept them); Linux caps it at "
	  "net.core.somaxconn" },
	{ "server.limits.max_header_bytes", CT_SIZE,
	  C(limits.max_header_bytes), .min = 1024, .max = 1024 * 1024,
	  .def = "16384", .help = "largest request line plus headers (431 "
	  "above)" },
	{ "server.limits.max_header_fields", CT_UINT,
	  C(limits.max_header_fields), .min = 1, .max = 10000, .def = "100",
	  .help = "most request header fields in one head (431 above)" },
	{ "server.limits.max_body_bytes", CT_SIZE, C(limits.max_body_bytes),
	  .min = 0, .max = (uint64_t)1 << 40, .def = "10485760",
	  .help = "largest request body (413 above)" },
	{ "server.limits.header_timeout", CT_DURATION,
	  C(limits.header_timeout_ms), .min = 1, .max = 3600000,
	  .def = "10s", .help = "time allowed to receive the request head" },
	{ "server.limits.body_timeout", CT_DURATION,
	  C(limits.body_timeout_ms), .min = 1, .max = 3600000,
	  .def = "30s", .help = "gap allowed between two reads of the request "
	  "body" },
	{ "server.limits.body_min_rate", CT_SIZE, C(limits.body_min_rate),
	  .min = 0, .max = (uint64_t)1 << 30, .def = "0",
	  .help = "bytes/s a request body must average once body_timeout has "
	  "passed (408 below); 0: off" },
	{ "server.limits.idle_timeout", CT_DURATION,
	  C(limits.idle_timeout_ms), .min = 1, .max = 3600000,
	  .def = "60s", .help = "keep-alive time of an idle client "
	  "connection" },
	{ "server.limits.max_connections", CT_UINT,
	  C(limits.max_connections), .min = 1, .max = 1000000,
	  .def = "10000", .help = "client connections kept open at once" },
	{ "server.http2", CT_BOOL, C(http2.enabled), .def = "true",
	  .help = "offer HTTP/2 (ALPN h2, then http/1.1) on TLS listeners" },
	{ "server.http2_cleartext", CT_BOOL, C(http2.cleartext),
	  .def = "false", .help = "accept HTTP/2 with prior knowledge (h2c, "
	  "the client preface first) on plaintext listeners; no Upgrade" },
	{ "server.http2_max_concurrent_streams", CT_UINT,
	  C(http2.max_concurrent_streams), .min = 1, .max = 10000,
	  .def = "100", .help = "SETTINGS_MAX_CONCURRENT_STREAMS: streams a "
	  "client may have open on one connection (RST_STREAM "
	  "REFUSED_STREAM above)" },
	{ "server.http2_stream_window", CT_SIZE, C(http2.stream_window),
	  .min = 1024, .max = 2147483647, .def = "65535",
	  .help = "SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a client "
	  "may send on a stream before we read them" },
	{ "server.http2_flood_interval", CT_DURATION,
	  C(http2.flood_interval_ms), .min = 1, .max = 3600000, .def = "1s",
	  .help = "the interval the http2_max_resets, _control_frames and "
	  "_empty_frames caps count in, per connection" },
	{ "server.http2_max_resets", CT_UINT, C(http2.max_resets),
	  .min = 1, .max = 1000000, .def = "100",
	  .help = "RST_STREAM frames a client may send, and stream errors it "
	  "may provoke, per interval (rapid reset, CVE-2023-44487 and "
	  "CVE-2025-8671; GOAWAY ENHANCE_YOUR_CALM above)" },
	{ "server.http2_max_control_frames", CT_UINT,
	  C(http2.max_control_frames), .min = 1, .max = 1000000,
	  .def = "100", .help = "SETTINGS and PING frames a client may send "
	  "per interval (GOAWAY ENHANCE_YOUR_CALM above)" },
	{ "server.http2_max_empty_frames", CT_UINT,
	  C(http2.max_empty_frames), .min = 1, .max = 1000000, .def = "100",
	  .help = "empty DATA, HEADERS and CONTINUATION frames without "
	  "END_STREAM a client may send per interval (GOAWAY "
	  "ENHANCE_YOUR_CALM above)" },
	{ "server.http2_max_continuations", CT_UINT,
	  C(http2.max_continuations), .min = 1, .max = 1000, .def = "8",
	  .help = "CONTINUATION frames after one HEADERS (CONTINUATION flood, "
	  "CVE-2024-27316; GOAWAY ENHANCE_YOUR_CALM above)" },
	{ "admin.listen", CT_ADDR, C(admin_listen), .flags = CF_NORELOAD,
	  .on = offsetof(struct config, has_admin) + 1,
	  .def = "\"127.0.0.1:9901\"",
	  .help = "address of /healthz /readyz /metrics; omit the admin "
	  "block to disable them" },
	{ "admin.debug", CT_BOOL, C(admin_debug), .def = "false",
	  .help = "answer GET /debug/propagation on the admin listener "
	  "(what was extracted and what would be injected)" },

	{ "routes[].name", CT_STRING, R(name), .min = 1,
	  .help = "unique route name used in logs and metrics (default "
	  "\"route<N>\", N counted from 0)" },
	{ "routes[].host", CT_STRING, R(host), .flags = CF_NULLABLE, .min = 1,
	  .help = "Host header to match, case-insensitively; null matches "
	  "any host" },
	{ "routes[].path_prefix", CT_STRING, R(path_prefix), .min = 1,
	  .def = "/", .check = cfg_check_path_prefix,
	  .help = "path prefix to match; the first matching route wins" },
	{ "routes[].upstream.url", CT_URL, R(upstream),
	  .help = "backend base URL, http:// or https://, required" },
	{ "routes[].upstream.connect_timeout", CT_DURATION,
	  R(upstream.connect_timeout_ms), .min = 1, .max = 600000,
	  .def = "2s", .help = "time allowed to connect to the backend" },
	{ "routes[].upstream.timeout", CT_DURATION, R(upstream.timeout_ms),
	  .min = 1, .max = 3600000, .def = "30s",
	  .help = "time allowed for the response head and between body "
	  "reads (504 above)" },
	{ "routes[].upstream.keepalive", CT_UNSIGNED, R(upstream.keepalive),
	  .min = 0, .max = 10000, .def = "64",
	  .help = "idle backend connections kept per worker" },
	{ "routes[].upstream.idle_timeout", CT_DURATION,
	  R(upstream.idle_timeout_ms), .min = 1, .max = 3600000, .def = "60s",
	  .help = "time an idle keep-alive backend connection is kept" },
	{ "routes[].upstream.tls_verify", CT_BOOL, R(upstream.tls_verify),
	  .def = "true", .help = "https: verify the backend certificate and "
	  "name" },
	{ "routes[].upstream.tls_ca_file", CT_STRING, R(upstream.tls_ca_file),
	  .flags = CF_NULLABLE, .min = 1,
	  .help = "https: CA bundle to verify with; null: system default" },
	{ "routes[].upstream.tls_server_name", CT_STRING,
	  R(upstream.tls_server_name), .flags = CF_NULLABLE, .min = 1,
	  .help = "https: SNI and verified name; null: the URL host" },
	{ "routes[].cors", CT_ROUTE_CORS, R(cors),
	  .help = "map overriding keys of the cors block for this route, or "
	  "false to disable CORS on it" },
	{ "routes[].propagation.behavior", CT_ENUM, R(behavior),
	  .has = offsetof(struct config_route, has_behavior) + 1,
	  .choices = cfg_behavior_names,
	  .help = "per-route propagation.behavior (default: the global one)" },

	{ "cors.allowed_origins", CT_STRV, K(allowed_origins), .def = "[]",
	  .check = cfg_check_origin,
	  .help = "origins allowed, exact or with a \"*.\" host wildcard, or "
	  "\"*\"" },
	{ "cors.allowed_methods", CT_STRV, K(allowed_methods),
	  .def = "[GET, HEAD, POST, PUT, PATCH, DELETE]",
	  .help = "methods answered in Access-Control-Allow-Methods" },
	{ "cors.allowed_headers", CT_STRV, K(allowed_headers),
	  .def = "[Content-Type, Authorization]",
	  .help = "request headers allowed; tracing headers are always added" },
	{ "cors.exposed_headers", CT_STRV, K(exposed_headers), .def = "[]",
	  .help = "response headers in Access-Control-Expose-Headers" },
	{ "cors.allow_credentials", CT_BOOL, K(allow_credentials),
	  .def = "false", .help = "send Access-Control-Allow-Credentials: "
	  "true (not with origin \"*\")" },
	{ "cors.max_age", CT_UINT, K(max_age), .min = 0, .max = 86400,
	  .def = "600", .help = "seconds a browser may cache a preflight" },
	{ "cors.allow_private_network", CT_BOOL, K(allow_private_network),
	  .def = "false", .help = "answer Private Network Access preflights" },
	{ "cors.timing_allow_origin", CT_BOOL, K(timing_allow_origin),
	  .def = "true", .help = "send Timing-Allow-Origin for allowed origins "
	  "(RUM resource timings)" },
	{ "cors.on_disallowed", CT_ENUM, K(on_disallowed), .def = "reject",
	  .choices = cfg_on_disallowed_names,
	  .help = "reject: 403 with a reason; pass: forward without CORS "
	  "headers" },

	{ "propagation.extract", CT_STYLES,
	  CN(propagation.extract, propagation.n_extract),
	  .def = "[datadog, tracecontext, baggage]",
	  .env = "DD_TRACE_PROPAGATION_STYLE_EXTRACT, "
	  "DD_TRACE_PROPAGATION_STYLE",
	  .help = "styles read from requests, in order" },
	{ "propagation.inject", CT_STYLES,
	  CN(propagation.inject, propagation.n_inject),
	  .def = "[datadog, tracecontext, baggage]",
	  .env = "DD_TRACE_PROPAGATION_STYLE_INJECT, "
	  "DD_TRACE_PROPAGATION_STYLE",
	  .help = "styles written toward the backend" },
	{ "propagation.extract_first", CT_BOOL,
	  C(propagation.extract_first), .def = "false",
	  .env = "DD_TRACE_PROPAGATION_EXTRACT_FIRST",
	  .help = "stop at the first style that yields a context" },
	{ "propagation.behavior", CT_ENUM, C(propagation.behavior),
	  .def = "continue", .choices = cfg_behavior_names,
	  .env = "DD_TRACE_PROPAGATION_BEHAVIOR_EXTRACT",
	  .help = "continue the incoming trace, restart it (with a span link) "
	  "or ignore it" },
	{ "propagation.tags_max_length", CT_UINT,
	  C(propagation.tags_max_length), .min = 0, .max = 65536,
	  .def = "512", .env = "DD_TRACE_X_DATADOG_TAGS_MAX_LENGTH",
	  .help = "x-datadog-tags size limit in bytes, 0 disables the header" },

	{ "tracing.service", CT_STRING, C(tracing.service), .min = 1,
	  .def = "tracestitch", .env = "DD_SERVICE",
	  .help = "service name of the gateway span" },
	{ "tracing.env", CT_STRING, C(tracing.env), .def = "\"\"",
	  .env = "DD_ENV", .help = "env tag; empty: none" },
	{ "tracing.version", CT_STRING, C(tracing.version), .def = "\"\"",
	  .env = "DD_VERSION", .help = "version tag; empty: none" },
	{ "tracing.span_name", CT_STRING, C(tracing.span_name), .min = 1,
	  .def = "tracestitch.request", .help = "operation name of the gateway "
	  "span" },
	{ "tracing.sample_rate", CT_FLOAT, C(tracing.sample_rate),
	  .has = offsetof(struct config, tracing.has_sample_rate) + 1,
	  .flags = CF_NULLABLE, .min = 0, .max = 1, .def = "null",
	  .env = "DD_TRACE_SAMPLE_RATE",
	  .help = "null: honour the upstream decision, else agent rates; "
	  "0..1: keep this share of new traces" },
	{ "tracing.rate_limit", CT_FLOAT, C(tracing.rate_limit), .min = 0,
	  .max = 1000000, .def = "100", .env = "DD_TRACE_RATE_LIMIT",
	  .help = "traces per second kept by sample_rate and sampling rules" },
	{ "tracing.trace_preflights", CT_BOOL, C(tracing.trace_preflights),
	  .def = "false", .help = "create spans for CORS preflights too" },
	{ "tracing.trace_id_128bit", CT_BOOL, C(tracing.trace_id_128bit),
	  .def = "true", .env = "DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED",
	  .help = "generate 128-bit trace ids for new traces" },
	{ "tracing.redact_query", CT_BOOL, C(tracing.redact_query),
	  .def = "true", .help = "drop the query string from http.url" },
	{ "tracing.baggage_tag_keys", CT_STRV, C(tracing.baggage_tag_keys),
	  .def = "[user.id, session.id, account.id]",
	  .env = "DD_TRACE_BAGGAGE_TAG_KEYS",
	  .help = "baggage keys copied to span tags baggage.<key>; \"*\": all" },
	{ "tracing.tags", CT_MAP, CN(tracing.tags, tracing.n_tags),
	  .def = "{}", .help = "extra tags on every gateway span" },

	{ "exporter.type", CT_ENUM, C(exporter.type), .def = "datadog",
	  .choices = cfg_exporter_names,
	  .flags = CF_NORELOAD,
	  .help = "datadog: Agent msgpack; otlp: OTLP/HTTP JSON; stdout: one "
	  "JSON line per span; none" },
	{ "exporter.datadog_url", CT_STRING, C(exporter.datadog_url),
	  .def = "http://localhost:8126", .check = cfg_check_agent_url,
	  .env = "DD_TRACE_AGENT_URL, DD_AGENT_HOST + DD_TRACE_AGENT_PORT",
	  .flags = CF_NORELOAD,
	  .help = "Datadog Agent, http://host:port or unix:///path" },
	{ "exporter.otlp_endpoint", CT_STRING, C(exporter.otlp_endpoint),
	  .def = "http://localhost:4318/v1/traces", .check = cfg_check_http_url,
	  .env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "
	  "OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces)",
	  .flags = CF_NORELOAD,
	  .help = "full OTLP/HTTP traces URL" },
	{ "exporter.flush_interval", CT_DURATION,
	  C(exporter.flush_interval_ms), .min = 10, .max = 60000, .def = "1s",
	  .flags = CF_NORELOAD,
	  .help = "how often batched spans are sent" },
	{ "exporter.max_queue_spans", CT_UINT, C(exporter.max_queue_spans),
	  .min = 1, .max = 10000000, .def = "100000",
	  .flags = CF_NORELOAD,
	  .help = "spans queued for export before new ones are dropped" },
	{ "exporter.thread_nice", CT_UINT, C(exporter.thread_nice),
	  .min = 0, .max = 19, .def = "10", .flags = CF_NORELOAD,
	  .help = "added to the exporter thread's nice value, so that the "
	  "workers preempt it at once" },

	{ "logging.level", CT_ENUM, C(logging.level), .def = "info",
	  .choices = cfg_level_names, .help = "error log level" },
	{ "logging.access_log", CT_STRING, C(logging.access_log), .min = 1,
	  .def = "stdout", .flags = CF_NORELOAD,
	  .help = "stdout, stderr, off or a file path" },
	{ "logging.format", CT_STRING, C(logging.format), .def = "json",
	  .check = cfg_check_format, .help = "access log format (json)" },
};
#define CFG_NROWS TS_NITEMS(cfg_schema)

/* Per-route state needed until the end of the load. */
struct cfg_route_scratch {
	const struct yaml_tree_node *node;	/* the route's map */
	const struct yaml_tree_node *cors;	/* override map */
	bool cors_off;
	const struct yaml_tree_node *seen[CFG_NROWS];
	const struct yaml_tree_node *seen_cors[CFG_NROWS];
};

struct cfg_ctx {
	struct config *cfg;
	struct yaml_tree_node fallback;		/* file:1:1 */
	const struct yaml_tree_node *routes_node;
	struct cfg_route_scratch *rs;
	const struct yaml_tree_node *seen[CFG_NROWS];
	bool in_env;
	bool in_defaults;		/* defaults have no position */
	char *errors;
	size_t errlen;
	unsigned nerrors;
};

/* Where a walk stores values: one pointer per base kind. */
struct cfg_target {
	struct config_route *route;
	struct config_cors *cors;
	const struct yaml_tree_node **seen;
};

static void cfg_free_contents(struct config *);

/* Remember where key was written (config_pos); a later one wins. */
static void
cfg_pos_add(struct cfg_ctx *ctx, const char *key,
    const struct yaml_tree_node *at)
{
	struct config *cfg = ctx->cfg;
	struct config_pos *p;

	if (ctx->in_defaults || at == NULL)
		return;
	cfg->pos = xrealloc(cfg->pos, (cfg->n_pos + 1) * sizeof *cfg->pos);
	p = &cfg->pos[cfg->n_pos++];
	p->key = xstrdup(key);
	p->file = at->file == NULL || strcmp(at->file, cfg->path) == 0 ?
	    NULL : xstrdup(at->file);
	p->line = at->line;
	p->col = at->col;
}

/* Append one positioned error (see the top of this file). */
static void TS_PRINTFLIKE(4, 5)
cfg_error(struct cfg_ctx *ctx, const struct yaml_tree_node *at,
    const char *path, const char *fmt, ...)
{
	va_list ap;
	char *msg, *l;
	size_t n;

	if (ctx->nerrors++ >= CFG_MAX_ERRORS)
		return;
	if (at == NULL)
		at = &ctx->fallback;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		abort();
	va_end(ap);
	if (at->line == 0)
		xasprintf(&l, "%s: %s: %s\n", at->file, path, msg);
	else
		xasprintf(&l, "%s:%u:%u: %s: %s\n", at->file, at->line,
		    at->col, path, msg);
	free(msg);
	n = strlen(l);
	ctx->errors = xrealloc(ctx->errors, ctx->errlen + n + 1);
	memcpy(ctx->errors + ctx->errlen, l, n + 1);
	ctx->errlen += n;
	free(l);
}

/* Append errors that are already formatted lines. */
static void
cfg_error_lines(struct cfg_ctx *ctx, const char *lines)
{
	size_t n = strlen(lines);

	ctx->nerrors++;
	ctx->errors = xrealloc(ctx->errors, ctx->errlen + n + 1);
	memcpy(ctx->errors + ctx->errlen, lines, n + 1);
	ctx->errlen += n;
}

/* Format a duration for messages: "250ms", "5s", "2m". */
static void
cfg_fmt_duration(uint64_t ms, char *buf, size_t size)
{
	if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, size, "%llum", (unsigned long long)(ms / 60000));
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, size, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(buf, size, "%llums", (unsigned long long)ms);
}

/* Format a size for messages: "512", "16k", "10m". */
static void
cfg_fmt_size(uint64_t v, char *buf, size_t size)
{
	const char *u = "kmgt";
	int i = -1;

	while (v != 0 && v % 1024 == 0 && i < 3) {
		v /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(buf, size, "%llu", (unsigned long long)v);
	else
		snprintf(buf, size, "%llu%c", (unsigned long long)v, u[i]);
}

/* "a, b or c" from a NULL-terminated list (static buffer). */
static const char *
cfg_fmt_choices(const char *const *choices)
{
	static __thread char buf[256];
	size_t i, n;

	buf[0] = '\0';
	for (n = 0; choices[n] != NULL; n++)
		;
	for (i = 0; i < n; i++) {
		size_t l = strlen(buf);

		snprintf(buf + l, sizeof buf - l, "%s%s",
		    i == 0 ? "" : i + 1 == n ? " or " : ", ", choices[i]);
	}
	return buf;
}

/* Parse "http[s]://host[:port][/path]" into u (url.c); NULL or a message. */
static const char *
cfg_parse_url(const char *s, struct config_upstream *u)
{
	struct url pu;
	const char *errstr;
	size_t plen;

	if (url_parse(s, 0, &pu, &errstr) != 0)
		return errstr;
	u->scheme = pu.scheme == URL_SCHEME_HTTPS ? CONFIG_SCHEME_HTTPS :
	    CONFIG_SCHEME_HTTP;
	free(u->host);
	free(u->authority);
	free(u->base_path);
	u->host = pu.host;
	u->port = pu.port;
	u->authority = pu.authority;
	plen = strlen(pu.path);
	while (plen > 0 && pu.path[plen - 1] == '/')
		plen--;
	u->base_path = xstrndup(pu.path, plen);
	pu.host = pu.authority = NULL;
	url_clear(&pu);
	return NULL;
}

/* Free the parts of an upstream URL. */
static void
cfg_upstream_clear(struct config_upstream *u)
{
	free(u->url);
	free(u->host);
	free(u->authority);
	free(u->base_path);
	free(u->tls_ca_file);
	free(u->tls_server_name);
	memset(u, 0, sizeof *u);
}

/* An http(s) URL with a host (url.c). */
static const char *
cfg_check_http_url(const char *s)
{
	struct url u;
	const char *e;

	if (url_parse(s, 0, &u, &e) != 0)
		return e;
	url_clear(&u);
	return NULL;
}

/* The Agent: an http(s) URL or unix:///absolute/path (url.c). */
static const char *
cfg_check_agent_url(const char *s)
{
	struct url u;
	const char *e;

	if (url_parse(s, URL_UNIX, &u, &e) == 0) {
		url_clear(&u);
		return NULL;
	}
	if (u.scheme == URL_SCHEME_UNIX)
		return e;
	return "expected an http://host:port or unix:///path URL";
}

/* "*", or scheme://host[:port] where host may start with "*.". */
static const char *
cfg_check_origin(const char *s)
{
	const char *p;

	if (strcmp(s, "*") == 0 || strcmp(s, "null") == 0)
		return NULL;
	p = strstr(s, "://");
	if (p == NULL || p == s || p[3] == '\0' || strchr(p + 3, '/') != NULL)
		return "expected an origin such as \"https://app.example.com\" "
		    "or \"*\"";
	return NULL;
}

/* A path prefix starts with '/'. */
static const char *
cfg_check_path_prefix(const char *s)
{
	return s[0] == '/' ? NULL : "expected a path starting with \"/\"";
}

/* The access log format. */
static const char *
cfg_check_format(const char *s)
{
	return strcmp(s, "json") == 0 ? NULL : "expected json";
}

/* Parse "host:port" or "[v6]:port" into a; NULL or a message. */
static const char *
cfg_parse_addr(const char *s, struct config_addr *a)
{
	const char *h, *he, *p;
	uint64_t port;

	if (s[0] == '[') {
		h = s + 1;
		he = strchr(h, ']');
		if (he == NULL || he == h || he[1] != ':')
			return "";
		p = he + 2;
	} else {
		h = s;
		he = strrchr(s, ':');
		if (he == NULL || he == h || memchr(h, ':',
		    (size_t)(he - h)) != NULL)
			return "";
		p = he + 1;
	}
	if (util_parse_u64(p, strlen(p), &port) != 0 || port > 65535)
		return "port";
	free(a->host);
	free(a->text);
	a->host = xstrndup(h, (size_t)(he - h));
	a->port = (uint16_t)port;
	a->text = xstrdup(s);
	return NULL;
}

/* Free an address. */
static void
cfg_addr_clear(struct config_addr *a)
{
	free(a->host);
	free(a->text);
	memset(a, 0, sizeof *a);
}

/* Free a string list. */
static void
cfg_strv_clear(struct config_strv *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

/* Deep copy of a string list. */
static void
cfg_strv_copy(struct config_strv *dst, const struct config_strv *src)
{
	size_t i;

	dst->n = src->n;
	dst->v = xcalloc(src->n + 1, sizeof *dst->v);
	for (i = 0; i < src->n; i++)
		dst->v[i] = xstrdup(src->v[i]);
}

/* Free the lists of a CORS policy. */
static void
cfg_cors_clear(struct config_cors *c)
{
	cfg_strv_clear(&c->allowed_origins);
	cfg_strv_clear(&c->allowed_methods);
	cfg_strv_clear(&c->allowed_headers);
	cfg_strv_clear(&c->exposed_headers);
}

/* Deep copy of a CORS policy. */
static void
cfg_cors_copy(struct config_cors *dst, const struct config_cors *src)
{
	*dst = *src;
	cfg_strv_copy(&dst->allowed_origins, &src->allowed_origins);
	cfg_strv_copy(&dst->allowed_methods, &src->allowed_methods);
	cfg_strv_copy(&dst->allowed_headers, &src->allowed_headers);
	cfg_strv_copy(&dst->exposed_headers, &src->exposed_headers);
}

static char cfg_style_expected_buf[256];
static pthread_once_t cfg_style_expected_once = PTHREAD_ONCE_INIT;

/* Build the message below once, from the style table in its order. */
static void
cfg_style_expected_init(void)
{
	const struct style_desc *rows;
	char *buf = cfg_style_expected_buf;
	size_t i, n, off, size = sizeof cfg_style_expected_buf;

	n = styles_all(&rows);
	off = (size_t)snprintf(buf, size, "expected a propagation style (");
	for (i = 0; i < n && off < size; i++)
		off += (size_t)snprintf(buf + off, size - off, "%s%s",
		    i == 0 ? "" : i + 1 == n ? " or " : ", ", rows[i].name);
	if (off < size)
		snprintf(buf + off, size - off, ")");
}

/* "expected a propagation style (datadog, ..., baggage or none)". */
static const char *
cfg_style_expected(void)
{
	pthread_once(&cfg_style_expected_once, cfg_style_expected_init);
	return cfg_style_expected_buf;
}
#define CFG_STYLE_EXPECTED cfg_style_expected()

/* True when s[*i..len) starts with the words of alias (blanks between
 * them, any case); *i is then past the last word. */
static bool
cfg_style_alias(const char *alias, const char *s, size_t len, size_t *pos)
{
	size_t i = *pos, k, n = strlen(alias);

	for (k = 0; i < len && k < n; k++) {
		if (alias[k] == ' ') {
			if (s[i] != ' ' && s[i] != '\t')
				return false;
			while (i < len && (s[i] == ' ' || s[i] == '\t'))
				i++;
		} else if (util_strncaseeq(&s[i], &alias[k], 1))
			i++;
		else
			return false;
	}
	if (k < n)
		return false;
	*pos = i;
	return true;
}

/* Separators in a style list: comma and blanks [cpp-cfg] (7.1). */
static bool
cfg_style_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t';
}

/* An empty style list. */
void
config_styles_init(struct config_styles *l)
{
	memset(l, 0, sizeof *l);
}

/*
 * The next name of a style list (PROPAGATION.md 7.1): words between
 * commas and blanks, compared without case.  "b3 single header", the name
 * other Datadog tracers have for b3, is three words here; they are taken
 * as one name when they follow each other with only blanks between.
 */
int
config_styles_next(struct config_styles *l, const char *s, size_t len,
    size_t *pos, char *msg, size_t size)
{
	const struct style_desc *rows;
	enum config_style st = CONFIG_STYLE_NONE;
	size_t w, e, i, n;
	bool found = false;

	for (w = *pos; w < len && cfg_style_sep(s[w]); w++)
		;
	if (w == len) {
		*pos = len;
		return 0;
	}
	for (e = w; e < len && !cfg_style_sep(s[e]); e++)
		;
	/* An alias of several words ("b3 single header") first. */
	n = styles_all(&rows);
	for (i = 0; !found && i < n; i++) {
		size_t a = w;

		if (rows[i].alias != NULL &&
		    cfg_style_alias(rows[i].alias, s, len, &a) &&
		    (a == len || cfg_style_sep(s[a]))) {
			e = a;
			st = rows[i].style;
			found = true;
		}
	}
	if (!found && styles_lookup(s + w, e - w, &st) == 0)
		found = true;
	*pos = e;
	if (!found) {
		snprintf(msg, size, "%s, got \"%.*s\"", CFG_STYLE_EXPECTED,
		    (int)TS_MIN(e - w, 64), s + w);
		return -1;
	}
	for (i = 0; i < l->n && l->v[i] != st; i++)
		;
	if (i < l->n || (st == CONFIG_STYLE_NONE && l->none)) {
		snprintf(msg, size, "expected each style once, got %s twice",
		    config_style_name(st));
		return -1;
	}
	l->names++;
	if (st == CONFIG_STYLE_NONE)
		l->none = true;
	else if (l->n < CONFIG_MAX_STYLES)	/* 5 distinct names */
		l->v[l->n++] = st;
	return 1;
}

/* "none" disables a direction, so it cannot come with a style. */
int
config_styles_finish(const struct config_styles *l, char *msg, size_t size)
{
	if (l->none && l->n > 0) {
		snprintf(msg, size, "expected \"none\" alone, got it with "
		    "other styles");
		return -1;
	}
	return 0;
}

/* A whole list; the first problem ends it. */
int
config_styles_parse(const char *s, struct config_styles *l, char *msg,
    size_t size)
{
	size_t pos = 0, len = strlen(s);
	int rc;

	config_styles_init(l);
	while ((rc = config_styles_next(l, s, len, &pos, msg, size)) == 1)
		;
	if (rc < 0)
		return -1;
	if (l->names == 0) {
		snprintf(msg, size, "%s, got \"%.*s\"", CFG_STYLE_EXPECTED,
		    (int)TS_MIN(len, 64), s);
		return -1;
	}
	return config_styles_finish(l, msg, size);
}

/* Path of list item i ("x[2]"), or the list itself for environment. */
static char *
cfg_item_path(const struct cfg_ctx *ctx, const char *dpath, size_t i)
{
	char *p;

	if (ctx->in_env)
		return xstrdup(dpath);
	xasprintf(&p, "%s[%zu]", dpath, i);
	return p;
}

/* Items of a list node; a null node is an empty list. */
static int
cfg_list_items(struct cfg_ctx *ctx, const struct yaml_tree_node *v,
    const char *dpath, struct yaml_tree_node *const **items, size_t *n)
{
	char buf[80];

	if (yaml_tree_is_null(v)) {
		*items = NULL;
		*n = 0;
		return 0;
	}
	if (v->type != YAML_TREE_SEQ) {
		cfg_error(ctx, v, dpath, "expected a list, got %s",
		    yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	*items = v->items;
	*n = v->n;
	return 0;
}

/* Check that v is a non-null scalar; report "expected <what>" if not. */
static int
cfg_scalar(struct cfg_ctx *ctx, const struct yaml_tree_node *v,
    const char *dpath, const char *what)
{
	char buf[80];

	if (v->type == YAML_TREE_SCALAR && !yaml_tree_is_null(v))
		return 0;
	cfg_error(ctx, v, dpath, "expected %s, got %s", what,
	    yaml_tree_describe(v, buf, sizeof buf));
	return -1;
}

/*
 * One setter and one comparison per value type, chosen by the row's type
 * through cfg_types[] (tmux options-table.c keeps one such switch; a table
 * keeps each type's code short and lets config_check_reload compare any
 * row).  A setter stores the value node v at the row's field in base and
 * reports any problem at dpath.  It returns -1 after an error, 0 when a
 * value was stored (the row's "has" flag is then set) and CFG_SET_NULL when
 * null was stored in a nullable row (the flag stays false).
 */
#define CFG_SET_NULL 1

typedef int cfg_set_fn(struct cfg_ctx *, const struct cfg_row *, void *base,
    const struct yaml_tree_node *v, const char *dpath);
/* Whether the row's values in bases a and b are the same. */
typedef bool cfg_eq_fn(const struct cfg_row *, const void *a, const void *b);

#define CFG_FIELD(r, base, type) ((type *)(void *)((char *)(base) + (r)->off))
#define CFG_CFIELD(r, base, type)					\
	((const type *)(const void *)((const char *)(base) + (r)->off))
#define CFG_COUNT(r, base)						\
	(*(const size_t *)(const void *)((const char *)(base) + (r)->cnt))

/* An integer in the row's range, or an error naming the range. */
static int
cfg_get_uint(struct cfg_ctx *ctx, const struct cfg_row *r,
    const struct yaml_tree_node *v, const char *dpath, uint64_t *u)
{
	char buf[80];

	if (v->type != YAML_TREE_SCALAR || yaml_tree_is_null(v) ||
	    util_parse_u64(v->str, v->len, u) != 0 || *u < r->min ||
	    *u > r->max) {
		cfg_error(ctx, v, dpath, "expected an integer from %llu to "
		    "%llu, got %s", (unsigned long long)r->min,
		    (unsigned long long)r->max,
		    yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	return 0;
}

static int
cfg_set_uint(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	uint64_t u;

	if (cfg_get_uint(ctx, r, v, dpath, &u) != 0)
		return -1;
	*CFG_FIELD(r, base, uint64_t) = u;
	return 0;
}

static int
cfg_set_unsigned(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	uint64_t u;

	if (cfg_get_uint(ctx, r, v, dpath, &u) != 0)
		return -1;
	*CFG_FIELD(r, base, unsigned) = (unsigned)u;
	return 0;
}

/* A duration or a size: the same checks, units apart ("5s" / "16k"). */
static int
cfg_set_units(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath, bool dur)
{
	const char *what = dur ? "duration" : "size";
	const char *eg = dur ? "\"5s\"" : "\"16k\"";
	char kind[48], buf[80], lo[32], hi[32];
	uint64_t u;

	snprintf(kind, sizeof kind, "a %s such as %s", what, eg);
	if (cfg_scalar(ctx, v, dpath, kind) != 0)
		return -1;
	if ((dur ? util_parse_duration_ms(v->str, &u) :
	    util_parse_size(v->str, &u)) != 0) {
		cfg_error(ctx, v, dpath, "expected %s, got %s", kind,
		    yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	if (u < r->min || u > r->max) {
		(dur ? cfg_fmt_duration : cfg_fmt_size)(r->min, lo, sizeof lo);
		(dur ? cfg_fmt_duration : cfg_fmt_size)(r->max, hi, sizeof hi);
		cfg_error(ctx, v, dpath, "expected a %s from %s to %s, got %s",
		    what, lo, hi, yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	*CFG_FIELD(r, base, uint64_t) = u;
	return 0;
}

static int
cfg_set_duration(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	return cfg_set_units(ctx, r, base, v, dpath, true);
}

static int
cfg_set_size(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	return cfg_set_units(ctx, r, base, v, dpath, false);
}

/* true or false, unquoted, in the three spellings YAML 1.2 core has. */
static int
cfg_set_bool(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	char buf[80];

	if (v->type == YAML_TREE_SCALAR && !v->quoted &&
	    (strcmp(v->str, "true") == 0 || strcmp(v->str, "True") == 0 ||
	    strcmp(v->str, "TRUE") == 0))
		*CFG_FIELD(r, base, bool) = true;
	else if (v->type == YAML_TREE_SCALAR && !v->quoted &&
	    (strcmp(v->str, "false") == 0 || strcmp(v->str, "False") == 0 ||
	    strcmp(v->str, "FALSE") == 0))
		*CFG_FIELD(r, base, bool) = false;
	else {
		cfg_error(ctx, v, dpath, "expected true or false, got %s",
		    yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	return 0;
}

static int
cfg_set_float(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	char buf[80], *endp = NULL;
	double d = 0;

	if ((r->flags & CF_NULLABLE) && yaml_tree_is_null(v)) {
		*(bool *)((char *)base + r->has - 1) = false;
		*CFG_FIELD(r, base, double) = 0;
		return CFG_SET_NULL;
	}
	if (v->type == YAML_TREE_SCALAR && !yaml_tree_is_null(v)) {
		errno = 0;
		d = strtod(v->str, &endp);
	}
	if (endp == NULL || endp == v->str || *endp != '\0' || errno != 0 ||
	    !isfinite(d) || d < (double)r->min || d > (double)r->max) {
		cfg_error(ctx, v, dpath, "expected a number from %llu to "
		    "%llu%s, got %s", (unsigned long long)r->min,
		    (unsigned long long)r->max,
		    (r->flags & CF_NULLABLE) ? " or null" : "",
		    yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	*CFG_FIELD(r, base, double) = d;
	return 0;
}

static int
cfg_set_string(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	char **field = CFG_FIELD(r, base, char *), buf[80];
	const char *e;

	if ((r->flags & CF_NULLABLE) && yaml_tree_is_null(v)) {
		free(*field);
		*field = NULL;
		return CFG_SET_NULL;
	}
	if (cfg_scalar(ctx, v, dpath, "a string") != 0)
		return -1;
	if (v->len < r->min) {
		cfg_error(ctx, v, dpath, "expected a non-empty string, got "
		    "\"\"");
		return -1;
	}
	if (r->check != NULL && (e = r->check(v->str)) != NULL) {
		cfg_error(ctx, v, dpath, "%s, got %s", e,
		    yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	free(*field);
	*field = xstrdup(v->str);
	return 0;
}

/* One of .choices, stored as its index. */
static int
cfg_set_enum(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	char buf[80];
	size_t i;

	for (i = 0; v->type == YAML_TREE_SCALAR && r->choices[i] != NULL; i++) {
		if (strcmp(v->str, r->choices[i]) == 0)
			break;
	}
	if (v->type != YAML_TREE_SCALAR || r->choices[i] == NULL) {
		cfg_error(ctx, v, dpath, "expected %s, got %s",
		    cfg_fmt_choices(r->choices),
		    yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	*CFG_FIELD(r, base, int) = (int)i;
	return 0;
}

/* A list of strings, each passing .check; all or nothing. */
static int
cfg_set_strv(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	struct yaml_tree_node *const *items;
	struct config_strv sv;
	char *ipath, buf[80];
	const char *e;
	size_t i, n;
	int rc = 0;

	if (cfg_list_items(ctx, v, dpath, &items, &n) != 0)
		return -1;
	sv.v = xcalloc(n + 1, sizeof *sv.v);
	sv.n = 0;
	for (i = 0; i < n; i++) {
		ipath = cfg_item_path(ctx, dpath, i);
		cfg_pos_add(ctx, ipath, items[i]);
		if (cfg_scalar(ctx, items[i], ipath, "a string") != 0)
			rc = -1;
		else if (r->check != NULL &&
		    (e = r->check(items[i]->str)) != NULL) {
			cfg_error(ctx, items[i], ipath, "%s, got %s", e,
			    yaml_tree_describe(items[i], buf, sizeof buf));
			rc = -1;
		} else
			sv.v[sv.n++] = xstrdup(items[i]->str);
		free(ipath);
	}
	if (rc != 0) {
		cfg_strv_clear(&sv);
		return -1;
	}
	cfg_strv_clear(CFG_FIELD(r, base, struct config_strv));
	*CFG_FIELD(r, base, struct config_strv) = sv;
	return 0;
}

static int
cfg_set_styles(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	/* The one style parser (config_styles_next), item by item. */
	struct yaml_tree_node *const *items;
	struct config_styles sl;
	char *ipath, buf[80], msg[256];
	size_t i, n, pos, words;
	int rc = 0, r2;

	if (cfg_list_items(ctx, v, dpath, &items, &n) != 0)
		return -1;
	config_styles_init(&sl);
	for (i = 0; i < n; i++) {
		ipath = cfg_item_path(ctx, dpath, i);
		cfg_pos_add(ctx, ipath, items[i]);
		if (items[i]->type != YAML_TREE_SCALAR) {
			cfg_error(ctx, items[i], ipath, "%s, got %s",
			    CFG_STYLE_EXPECTED, yaml_tree_describe(items[i],
			    buf, sizeof buf));
			rc = -1;
			free(ipath);
			continue;
		}
		pos = words = 0;
		while ((r2 = config_styles_next(&sl, items[i]->str,
		    items[i]->len, &pos, msg, sizeof msg)) != 0) {
			words++;
			if (r2 < 0) {
				cfg_error(ctx, items[i], ipath, "%s", msg);
				rc = -1;
			}
		}
		if (words == 0) {
			/* "", " , ": an item without a name. */
			cfg_error(ctx, items[i], ipath, "%s, got %s",
			    CFG_STYLE_EXPECTED, yaml_tree_describe(items[i],
			    buf, sizeof buf));
			rc = -1;
		}
		free(ipath);
	}
	if (rc == 0 && config_styles_finish(&sl, msg, sizeof msg) != 0) {
		cfg_error(ctx, v, dpath, "%s", msg);
		rc = -1;
	}
	if (rc != 0)
		return -1;
	memcpy(CFG_FIELD(r, base, enum config_style), sl.v,
	    sl.n * sizeof sl.v[0]);
	*(size_t *)(void *)((char *)base + r->cnt) = sl.n;
	return 0;
}

/* A map of strings; the good pairs are kept even when one is bad. */
static int
cfg_set_map(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	struct config_kv **kvp = CFG_FIELD(r, base, struct config_kv *);
	size_t *np = (size_t *)(void *)((char *)base + r->cnt);
	struct config_kv *kv;
	char *ipath, buf[80];
	size_t i, j, n;
	int rc = 0;

	if (!yaml_tree_is_null(v) && v->type != YAML_TREE_MAP) {
		cfg_error(ctx, v, dpath, "expected a map, got %s",
		    yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	n = yaml_tree_is_null(v) ? 0 : v->n;
	kv = xcalloc(n + 1, sizeof *kv);
	for (i = 0, j = 0; i < n; i++) {
		xasprintf(&ipath, "%s.%s", dpath, v->pairs[i].key->str);
		if (cfg_scalar(ctx, v->pairs[i].value, ipath, "a string") != 0)
			rc = -1;
		else {
			kv[j].key = xstrdup(v->pairs[i].key->str);
			kv[j].value = xstrdup(v->pairs[i].value->str);
			j++;
		}
		free(ipath);
	}
	for (i = 0; i < *np; i++) {
		free((*kvp)[i].key);
		free((*kvp)[i].value);
	}
	free(*kvp);
	*kvp = kv;
	*np = j;
	return rc;
}

/*
 * Parse the n address nodes of items into a new array (*out); list: the
 * nodes are items of a list (their paths are numbered).  All or nothing.
 */
static int
cfg_parse_addrs(struct cfg_ctx *ctx, struct yaml_tree_node *const *items,
    size_t n, bool list, const char *dpath, struct config_addr **out)
{
	struct config_addr *av;
	char *ipath, buf[80];
	const char *e;
	size_t i;
	int rc = 0;

	av = xcalloc(n, sizeof *av);
	for (i = 0; i < n; i++) {
		ipath = list ? cfg_item_path(ctx, dpath, i) : xstrdup(dpath);
		cfg_pos_add(ctx, ipath, items[i]);
		if (cfg_scalar(ctx, items[i], ipath,
		    "an address \"host:port\"") != 0)
			rc = -1;
		else if ((e = cfg_parse_addr(items[i]->str, &av[i])) != NULL) {
			cfg_error(ctx, items[i], ipath, *e == 'p' ?
			    "expected a port from 0 to 65535, got %s" :
			    "expected \"host:port\" or \"[v6]:port\", got %s",
			    yaml_tree_describe(items[i], buf, sizeof buf));
			rc = -1;
		}
		free(ipath);
	}
	if (rc != 0) {
		for (i = 0; i < n; i++)
			cfg_addr_clear(&av[i]);
		free(av);
		return -1;
	}
	*out = av;
	return 0;
}

static int
cfg_set_addr(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	struct config_addr *field = CFG_FIELD(r, base, struct config_addr);
	struct config_addr *av;

	if (cfg_parse_addrs(ctx, (struct yaml_tree_node *const *)&v, 1, false,
	    dpath, &av) != 0)
		return -1;
	cfg_addr_clear(field);
	*field = av[0];
	free(av);
	return 0;
}

/* A list of addresses, or one address alone. */
static int
cfg_set_addrv(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	struct config_addr **old = CFG_FIELD(r, base, struct config_addr *);
	size_t *np = (size_t *)(void *)((char *)base + r->cnt);
	struct yaml_tree_node *const *items;
	struct config_addr *av;
	bool list = v->type == YAML_TREE_SEQ;
	size_t i, n;

	if (list) {
		items = v->items;
		n = v->n;
	} else {
		items = (struct yaml_tree_node *const *)&v;
		n = 1;
	}
	if (n == 0) {
		cfg_error(ctx, v, dpath, "expected at least one address, got "
		    "an empty list");
		return -1;
	}
	if (cfg_parse_addrs(ctx, items, n, list, dpath, &av) != 0)
		return -1;
	for (i = 0; i < *np; i++)
		cfg_addr_clear(&(*old)[i]);
	free(*old);
	*old = av;
	*np = n;
	return 0;
}

/* "auto" (one per CPU, within the range) or an integer. */
static int
cfg_set_workers(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	unsigned *field = CFG_FIELD(r, base, unsigned);
	char buf[80];
	uint64_t u;
	int nc;

	if (v->type == YAML_TREE_SCALAR && strcmp(v->str, "auto") == 0) {
		nc = util_ncpu();
		*field = nc < 1 ? 1u : nc > (int)r->max ? (unsigned)r->max :
		    (unsigned)nc;
		return 0;
	}
	if (v->type != YAML_TREE_SCALAR || yaml_tree_is_null(v) ||
	    util_parse_u64(v->str, v->len, &u) != 0 || u < r->min ||
	    u > r->max) {
		cfg_error(ctx, v, dpath, "expected \"auto\" or an integer from "
		    "%llu to %llu, got %s", (unsigned long long)r->min,
		    (unsigned long long)r->max,
		    yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	*field = (unsigned)u;
	return 0;
}

static int
cfg_set_url(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	struct config_upstream *up = CFG_FIELD(r, base,
	    struct config_upstream);
	const char *e;
	char buf[80];

	if (cfg_scalar(ctx, v, dpath, "an http:// or https:// URL") != 0)
		return -1;
	if ((e = cfg_parse_url(v->str, up)) != NULL) {
		cfg_error(ctx, v, dpath, "%s, got %s", e,
		    yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	free(up->url);
	up->url = xstrdup(v->str);
	return 0;
}

/* Handled by the walk (cfg_route_cors: it needs the route's scratch). */
static int
cfg_set_route_cors(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	(void)ctx;
	(void)r;
	(void)base;
	(void)v;
	(void)dpath;
	return 0;
}

static bool cfg_row_eq(const struct cfg_row *, const void *, const void *);

/* NULL-safe string equality. */
static bool
cfg_streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
cfg_eq_string(const struct cfg_row *r, const void *a, const void *b)
{
	return cfg_streq(*CFG_CFIELD(r, a, char *), *CFG_CFIELD(r, b, char *));
}

static bool
cfg_eq_strv(const struct cfg_row *r, const void *a, const void *b)
{
	const struct config_strv *x = CFG_CFIELD(r, a, struct config_strv);
	const struct config_strv *y = CFG_CFIELD(r, b, struct config_strv);
	size_t i;

	if (x->n != y->n)
		return false;
	for (i = 0; i < x->n; i++) {
		if (strcmp(x->v[i], y->v[i]) != 0)
			return false;
	}
	return true;
}

static bool
cfg_eq_styles(const struct cfg_row *r, const void *a, const void *b)
{
	size_t n = CFG_COUNT(r, a);

	return n == CFG_COUNT(r, b) && memcmp(CFG_CFIELD(r, a,
	    enum config_style), CFG_CFIELD(r, b, enum config_style),
	    n * sizeof(enum config_style)) == 0;
}

static bool
cfg_eq_map(const struct cfg_row *r, const void *a, const void *b)
{
	const struct config_kv *x = *CFG_CFIELD(r, a, struct config_kv *);
	const struct config_kv *y = *CFG_CFIELD(r, b, struct config_kv *);
	size_t i, n = CFG_COUNT(r, a);

	if (n != CFG_COUNT(r, b))
		return false;
	for (i = 0; i < n; i++) {
		if (strcmp(x[i].key, y[i].key) != 0 ||
		    strcmp(x[i].value, y[i].value) != 0)
			return false;
	}
	return true;
}

/* Addresses compare as written ("localhost:80" is not "127.0.0.1:80"). */
static bool
cfg_eq_addr(const struct cfg_row *r, const void *a, const void *b)
{
	return cfg_streq(CFG_CFIELD(r, a, struct config_addr)->text,
	    CFG_CFIELD(r, b, struct config_addr)->text);
}

static bool
cfg_eq_addrv(const struct cfg_row *r, const void *a, const void *b)
{
	const struct config_addr *x = *CFG_CFIELD(r, a, struct config_addr *);
	const struct config_addr *y = *CFG_CFIELD(r, b, struct config_addr *);
	size_t i, n = CFG_COUNT(r, a);

	if (n != CFG_COUNT(r, b))
		return false;
	for (i = 0; i < n; i++) {
		if (!cfg_streq(x[i].text, y[i].text))
			return false;
	}
	return true;
}

/* The URL text decides every part cfg_parse_url derives from it. */
static bool
cfg_eq_url(const struct cfg_row *r, const void *a, const void *b)
{
	return cfg_streq(CFG_CFIELD(r, a, struct config_upstream)->url,
	    CFG_CFIELD(r, b, struct config_upstream)->url);
}

/* A route's resolved CORS block: off on both, or the same cors.* rows. */
static bool
cfg_eq_route_cors(const struct cfg_row *r, const void *a, const void *b)
{
	const struct config_cors *x = *CFG_CFIELD(r, a, struct config_cors *);
	const struct config_cors *y = *CFG_CFIELD(r, b, struct config_cors *);
	size_t i;

	if (x == NULL || y == NULL)
		return x == y;
	for (i = 0; i < CFG_NROWS; i++) {
		if (cfg_schema[i].base == CB_CORS &&
		    !cfg_row_eq(&cfg_schema[i], x, y))
			return false;
	}
	return true;
}

/* eq NULL: the value is plain data of size bytes, compared as such. */
static const struct cfg_type_ops {
	cfg_set_fn *set;
	cfg_eq_fn *eq;
	size_t size;
} cfg_types[] = {
	[CT_UINT] = { cfg_set_uint, NULL, sizeof(uint64_t) },
	[CT_UNSIGNED] = { cfg_set_unsigned, NULL, sizeof(unsigned) },
	[CT_DURATION] = { cfg_set_duration, NULL, sizeof(uint64_t) },
	[CT_SIZE] = { cfg_set_size, NULL, sizeof(uint64_t) },
	[CT_BOOL] = { cfg_set_bool, NULL, sizeof(bool) },
	[CT_FLOAT] = { cfg_set_float, NULL, sizeof(double) },
	[CT_STRING] = { cfg_set_string, cfg_eq_string, 0 },
	[CT_ENUM] = { cfg_set_enum, NULL, sizeof(int) },
	[CT_STRV] = { cfg_set_strv, cfg_eq_strv, 0 },
	[CT_STYLES] = { cfg_set_styles, cfg_eq_styles, 0 },
	[CT_MAP] = { cfg_set_map, cfg_eq_map, 0 },
	[CT_ADDR] = { cfg_set_addr, cfg_eq_addr, 0 },
	[CT_ADDRV] = { cfg_set_addrv, cfg_eq_addrv, 0 },
	[CT_WORKERS] = { cfg_set_workers, NULL, sizeof(unsigned) },
	[CT_URL] = { cfg_set_url, cfg_eq_url, 0 },
	[CT_ROUTE_CORS] = { cfg_set_route_cors, cfg_eq_route_cors, 0 },
};
_Static_assert(TS_NITEMS(cfg_types) == CT_NTYPES,
    "every cfg_type has a setter and a comparison");

/*
 * Whether a row has the same value in bases a and b: its "has" flag
 * (given or not) and, when in effect, its value.  A row whose whole
 * section can be absent (.on: admin.listen) is the same when absent on
 * both sides, whatever its default.
 */
static bool
cfg_row_eq(const struct cfg_row *r, const void *a, const void *b)
{
	const struct cfg_type_ops *ops = &cfg_types[r->type];
	bool on_a, on_b;

	if (r->on != 0) {
		on_a = *(const bool *)((const char *)a + r->on - 1);
		on_b = *(const bool *)((const char *)b + r->on - 1);
		if (on_a != on_b)
			return false;
		if (!on_a)
			return true;
	}
	if (r->has != 0 && *(const bool *)((const char *)a + r->has - 1) !=
	    *(const bool *)((const char *)b + r->has - 1))
		return false;
	if (ops->eq != NULL)
		return ops->eq(r, a, b);
	return memcmp((const char *)a + r->off, (const char *)b + r->off,
	    ops->size) == 0;
}

/* Set one row's value in base from node v (file, default or env). */
static int
cfg_set(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	int rc;

	rc = cfg_types[r->type].set(ctx, r, base, v, dpath);
	if (rc < 0)
		return -1;
	if (rc == 0 && r->has != 0)
		*(bool *)((char *)base + r->has - 1) = true;
	return 0;
}

/* The row of a schema path, or NULL. */
static const struct cfg_row *
cfg_find_row(const char *spath)
{
	size_t i;

	for (i = 0; i < CFG_NROWS; i++) {
		if (strcmp(cfg_schema[i].path, spath) == 0)
			return &cfg_schema[i];
	}
	return NULL;
}

/* 1: spath is a map section, 2: a list section, 0: neither. */
static int
cfg_section(const char *spath)
{
	size_t i, l = strlen(spath);

	for (i = 0; i < CFG_NROWS; i++) {
		const char *p = cfg_schema[i].path;

		if (strncmp(p, spath, l) != 0)
			continue;
		if (p[l] == '.')
			return 1;
		if (p[l] == '[' && p[l + 1] == ']' && p[l + 2] == '.')
			return 2;
	}
	return 0;
}

/* Edit distance of two short strings (capped at 9). */
static unsigned
cfg_distance(const char *a, const char *b)
{
	unsigned d[33][33];
	size_t la = strlen(a), lb = strlen(b), i, j;

	if (la > 32 || lb > 32)
		return 9;
	for (i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			unsigned c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);

			c = TS_MIN(c, d[i - 1][j] + 1);
			c = TS_MIN(c, d[i][j - 1] + 1);
			d[i][j] = c;
		}
	}
	return d[la][lb];
}

/* The known key under section spath closest to key, within 2 edits. */
static char *
cfg_suggest(const char *spath, const char *key)
{
	size_t i, l = strlen(spath), kl;
	unsigned best = 3, dist;
	char *out = NULL, name[64];

	for (i = 0; i < CFG_NROWS; i++) {
		const char *p = cfg_schema[i].path;

		if (l > 0 && (strncmp(p, spath, l) != 0 || p[l] != '.'))
			continue;
		p += l > 0 ? l + 1 : 0;
		kl = strcspn(p, ".[");
		if (kl >= sizeof name)
			continue;
		memcpy(name, p, kl);
		name[kl] = '\0';
		dist = cfg_distance(name, key);
		if (dist < best) {
			best = dist;
			free(out);
			out = xstrdup(name);
		}
	}
	return out;
}

/* Join a dotted path. */
static char *
cfg_join(const char *a, const char *b)
{
	char *p;

	xasprintf(&p, "%s%s%s", a, *a ? "." : "", b);
	return p;
}

static void cfg_walk_map(struct cfg_ctx *, const struct yaml_tree_node *,
    const char *, const char *, struct cfg_target *);

/* Apply the defaults of every row of one base kind. */
static void
cfg_defaults(struct cfg_ctx *ctx, enum cfg_base kind, void *base)
{
	struct yaml_tree *t;
	char *cause;
	bool saved = ctx->in_defaults;
	size_t i;

	ctx->in_defaults = true;
	for (i = 0; i < CFG_NROWS; i++) {
		const struct cfg_row *r = &cfg_schema[i];

		if (r->base != kind || r->def == NULL)
			continue;
		t = yaml_tree_parse("default", r->def, strlen(r->def), &cause);
		if (t == NULL || t->root == NULL ||
		    cfg_set(ctx, r, base, t->root, r->path) != 0)
			fatalx("config: bad default for %s", r->path);
		yaml_tree_free(t);
	}
	ctx->in_defaults = saved;
}

/* Walk one route item. */
static void
cfg_walk_route(struct cfg_ctx *ctx, const struct yaml_tree_node *item,
    size_t idx)
{
	struct config *cfg = ctx->cfg;
	struct config_route *route = &cfg->routes[idx];
	struct cfg_route_scratch *rs = &ctx->rs[idx];
	struct cfg_target t;
	char *dpath, buf[80];

	xasprintf(&dpath, "routes[%zu]", idx);
	rs->node = item;
	cfg_pos_add(ctx, dpath, item);
	cfg_defaults(ctx, CB_ROUTE, route);
	if (item->type != YAML_TREE_MAP) {
		cfg_error(ctx, item, dpath, "expected a map, got %s",
		    yaml_tree_describe(item, buf, sizeof buf));
		free(dpath);
		return;
	}
	t.route = route;
	t.cors = NULL;
	t.seen = rs->seen;
	cfg_walk_map(ctx, item, "routes[]", dpath, &t);
	free(dpath);
}

/* Walk the routes list. */
static void
cfg_walk_routes(struct cfg_ctx *ctx, const struct yaml_tree_node *v)
{
	struct config *cfg = ctx->cfg;
	char buf[80];
	size_t i;

	ctx->routes_node = v;
	if (yaml_tree_is_null(v))
		return;
	if (v->type != YAML_TREE_SEQ) {
		cfg_error(ctx, v, "routes", "expected a list of routes, got %s",
		    yaml_tree_describe(v, buf, sizeof buf));
		return;
	}
	if (cfg->routes != NULL)
		return;
	cfg->routes = xcalloc(v->n + 1, sizeof *cfg->routes);
	ctx->rs = xcalloc(v->n + 1, sizeof *ctx->rs);
	cfg->n_routes = v->n;
	for (i = 0; i < v->n; i++)
		cfg_walk_route(ctx, v->items[i], i);
}

/* The per-route "cors" key: false, true, null or an override map. */
static void
cfg_route_cors(struct cfg_ctx *ctx, struct cfg_target *t,
    const struct yaml_tree_node *v, const char *dpath)
{
	struct cfg_route_scratch *rs = &ctx->rs[t->route - ctx->cfg->routes];
	char buf[80];

	if (yaml_tree_is_null(v))
		return;
	if (v->type == YAML_TREE_MAP) {
		rs->cors = v;
		return;
	}
	if (v->type == YAML_TREE_SCALAR && !v->quoted &&
	    strcmp(v->str, "false") == 0) {
		rs->cors_off = true;
		return;
	}
	if (v->type == YAML_TREE_SCALAR && !v->quoted &&
	    strcmp(v->str, "true") == 0)
		return;
	cfg_error(ctx, v, dpath, "expected a map or false, got %s",
	    yaml_tree_describe(v, buf, sizeof buf));
}

/* Walk a map against the schema: spath with "[]", dpath with "[N]". */
static void
cfg_walk_map(struct cfg_ctx *ctx, const struct yaml_tree_node *map,
    const char *spath, const char *dpath, struct cfg_target *t)
{
	struct config *cfg = ctx->cfg;
	const struct cfg_row *r;
	char *sp, *dp, *hint, buf[80];
	void *base;
	size_t i;
	int sect;

	for (i = 0; i < map->n; i++) {
		const struct yaml_tree_node *k = map->pairs[i].key;
		const struct yaml_tree_node *v = map->pairs[i].value;

		sp = cfg_join(spath, k->str);
		dp = cfg_join(dpath, k->str);
		cfg_pos_add(ctx, dp, v);
		if ((r = cfg_find_row(sp)) != NULL) {
			t->seen[r - cfg_schema] = v;
			base = r->base == CB_CONFIG ? (void *)cfg :
			    r->base == CB_ROUTE ? (void *)t->route :
			    (void *)t->cors;
			if (r->type == CT_ROUTE_CORS)
				cfg_route_cors(ctx, t, v, dp);
			else if (base != NULL)
				(void)cfg_set(ctx, r, base, v, dp);
		} else if ((sect = cfg_section(sp)) == 2) {
			cfg_walk_routes(ctx, v);
		} else if (sect == 1) {
			if (yaml_tree_is_null(v))
				;
			else if (v->type != YAML_TREE_MAP)
				cfg_error(ctx, v, dp, "expected a map, got %s",
				    yaml_tree_describe(v, buf, sizeof buf));
			else {
				if (strcmp(sp, "admin") == 0)
					cfg->has_admin = true;
				else if (strcmp(sp, "cors") == 0 &&
				    t->route == NULL)
					cfg->has_cors = true;
				cfg_walk_map(ctx, v, sp, dp, t);
			}
		} else {
			hint = cfg_suggest(spath, k->str);
			if (hint != NULL)
				cfg_error(ctx, k, dp, "unknown key, did you "
				    "mean \"%s\"?", hint);
			else
				cfg_error(ctx, k, dp, "unknown key");
			free(hint);
		}
		free(sp);
		free(dp);
	}
}

/* Value of NAME in a "NAME=value" array, or NULL. */
static const char *
cfg_getenv(char *const *env, const char *name)
{
	size_t l = strlen(name);

	for (; env != NULL && *env != NULL; env++) {
		if (strncmp(*env, name, l) == 0 && (*env)[l] == '=')
			return *env + l + 1;
	}
	return NULL;
}

/* A synthetic scalar node standing for an environment value. */
static void
cfg_env_node(struct yaml_tree_node *n, const char *label, const char *value)
{
	memset(n, 0, sizeof *n);
	n->type = YAML_TREE_SCALAR;
	n->file = label;
	n->str = (char *)(uintptr_t)value;
	n->len = strlen(value);
	n->quoted = true;
}

/* Set row path from environment variable name's value. */
static int
cfg_env_set(struct cfg_ctx *ctx, const char *name, const char *value,
    const char *path, int kind)
{
	const struct cfg_row *r = cfg_find_row(path);
	struct yaml_tree_node n, seq, *items[CONFIG_MAX_STYLES * 8];
	struct yaml_tree_node parts[CONFIG_MAX_STYLES * 8];
	char label[96], *copy = NULL, *p, *tok;
	size_t ni = 0;
	int rc;

	snprintf(label, sizeof label, "env:%s", name);
	cfg_env_node(&n, label, value);
	cfg_pos_add(ctx, path, &n);
	if (kind == 'b') {
		if (util_strcaseeq(value, "true") || strcmp(value, "1") == 0)
			n.str = (char *)(uintptr_t)"true";
		else if (util_strcaseeq(value, "false") ||
		    strcmp(value, "0") == 0)
			n.str = (char *)(uintptr_t)"false";
		else {
			cfg_error(ctx, &n, path, "expected true, false, 1 or "
			    "0, got \"%s\"", value);
			return -1;
		}
		n.len = strlen(n.str);
		n.quoted = false;
	}
	ctx->in_env = true;
	if (kind == 'y') {
		/* A style list: the whole value is one item, split by the
		 * style parser itself (commas and/or blanks, 7.1). */
		memset(&seq, 0, sizeof seq);
		seq.type = YAML_TREE_SEQ;
		seq.file = label;
		items[0] = &n;
		seq.items = items;
		seq.n = 1;
		rc = cfg_set(ctx, r, ctx->cfg, &seq, path);
	} else if (kind == 'l') {
		/* Comma-separated, spaces trimmed (Datadog syntax). */
		copy = xstrdup(value);
		memset(&seq, 0, sizeof seq);
		seq.type = YAML_TREE_SEQ;
		seq.file = label;
		seq.items = items;
		for (p = copy; (tok = strsep(&p, ",")) != NULL;) {
			char *end;

			while (*tok == ' ' || *tok == '\t')
				tok++;
			end = tok + strlen(tok);
			while (end > tok && (end[-1] == ' ' ||
			    end[-1] == '\t'))
				*--end = '\0';
			if (*tok == '\0' || ni == TS_NITEMS(items))
				continue;
			cfg_env_node(&parts[ni], label, tok);
			items[ni] = &parts[ni];
			ni++;
		}
		seq.n = ni;
		rc = cfg_set(ctx, r, ctx->cfg, &seq, path);
		free(copy);
	} else
		rc = cfg_set(ctx, r, ctx->cfg, &n, path);
	ctx->in_env = false;
	return rc;
}

/* Apply the DD_* / OTEL_* overrides; the environment wins. */
static void
cfg_apply_env(struct cfg_ctx *ctx, char *const *env)
{
	static const struct {
		const char *name, *path;
		int kind;	/* 's' scalar, 'b' bool, 'l' comma list,
				 * 'y' style list */
	} simple[] = {
		{ "DD_SERVICE", "tracing.service", 's' },
		{ "DD_ENV", "tracing.env", 's' },
		{ "DD_VERSION", "tracing.version", 's' },
		{ "DD_TRACE_AGENT_URL", "exporter.datadog_url", 's' },
		{ "DD_TRACE_PROPAGATION_STYLE_EXTRACT", "propagation.extract",
		  'y' },
		{ "DD_TRACE_PROPAGATION_STYLE_INJECT", "propagation.inject",
		  'y' },
		{ "DD_TRACE_PROPAGATION_EXTRACT_FIRST",
		  "propagation.extract_first", 'b' },
		{ "DD_TRACE_PROPAGATION_BEHAVIOR_EXTRACT",
		  "propagation.behavior", 's' },
		{ "DD_TRACE_SAMPLE_RATE", "tracing.sample_rate", 's' },
		{ "DD_TRACE_RATE_LIMIT", "tracing.rate_limit", 's' },
		{ "DD_TRACE_X_DATADOG_TAGS_MAX_LENGTH",
		  "propagation.tags_max_length", 's' },
		{ "DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED",
		  "tracing.trace_id_128bit", 'b' },
		{ "DD_TRACE_BAGGAGE_TAG_KEYS", "tracing.baggage_tag_keys", 'l' },
		{ "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "exporter.otlp_endpoint",
		  's' },
	};
	struct config *cfg = ctx->cfg;
	struct yaml_tree_node n;
	const char *v, *host, *port;
	char *url, label[64];
	uint64_t pn;
	size_t i, l;

	/* Lowest precedence first: combined forms, then specific ones. */
	host = cfg_getenv(env, "DD_AGENT_HOST");
	port = cfg_getenv(env, "DD_TRACE_AGENT_PORT");
	if ((host != NULL && *host != '\0') || (port != NULL && *port != '\0')) {
		if (host == NULL || *host == '\0')
			host = "localhost";
		if (port != NULL && *port != '\0' &&
		    (util_parse_u64(port, strlen(port), &pn) != 0 ||
		    pn < 1 || pn > 65535)) {
			cfg_env_node(&n, "env:DD_TRACE_AGENT_PORT", port);
			cfg_error(ctx, &n, "exporter.datadog_url", "expected a "
			    "port from 1 to 65535, got \"%s\"", port);
		} else {
			xasprintf(&url, "http://%s%s%s:%s",
			    strchr(host, ':') ? "[" : "", host,
			    strchr(host, ':') ? "]" : "",
			    port != NULL && *port != '\0' ? port : "8126");
			(void)cfg_env_set(ctx, "DD_AGENT_HOST", url,
			    "exporter.datadog_url", 's');
			free(url);
		}
	}
	v = cfg_getenv(env, "DD_TRACE_PROPAGATION_STYLE");
	if (v != NULL && *v != '\0' && cfg_env_set(ctx,
	    "DD_TRACE_PROPAGATION_STYLE", v, "propagation.extract", 'y') == 0)
		(void)cfg_env_set(ctx, "DD_TRACE_PROPAGATION_STYLE", v,
		    "propagation.inject", 'y');
	v = cfg_getenv(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
	if (v != NULL && *v != '\0') {
		l = strlen(v);
		while (l > 0 && v[l - 1] == '/')
			l--;
		xasprintf(&url, "%.*s/v1/traces", (int)l, v);
		(void)cfg_env_set(ctx, "OTEL_EXPORTER_OTLP_ENDPOINT", url,
		    "exporter.otlp_endpoint", 's');
		free(url);
	}
	for (i = 0; i < TS_NITEMS(simple); i++) {
		v = cfg_getenv(env, simple[i].name);
		/* Empty is unset, except for the baggage keys (none). */
		if (v == NULL || (*v == '\0' && strcmp(simple[i].name,
		    "DD_TRACE_BAGGAGE_TAG_KEYS") != 0))
			continue;
		(void)cfg_env_set(ctx, simple[i].name, v, simple[i].path,
		    simple[i].kind);
	}

	v = cfg_getenv(env, "DD_TRACE_SAMPLING_RULES");
	if (v != NULL && *v != '\0') {
		char *cause = NULL;
		json_error_t jerr;
		json_t *j = json_loads(v, JSON_REJECT_DUPLICATES, &jerr);

		snprintf(label, sizeof label, "env:DD_TRACE_SAMPLING_RULES");
		cfg_env_node(&n, label, v);
		if (j == NULL)
			cfg_error(ctx, &n, "tracing.sampling_rules", "expected "
			    "a JSON array, got invalid JSON (%s at column %d)",
			    jerr.text, jerr.column);
		else if (!json_is_array(j))
			cfg_error(ctx, &n, "tracing.sampling_rules", "expected "
			    "a JSON array of rules, got a JSON %s",
			    json_is_object(j) ? "object" : "scalar");
		else if (config_rules_check != NULL &&
		    config_rules_check(v, &cause) != 0) {
			cfg_error(ctx, &n, "tracing.sampling_rules", "%s", cause);
			free(cause);
		} else {
			free(cfg->tracing.sampling_rules);
			cfg->tracing.sampling_rules = xstrdup(v);
		}
		json_decref(j);
	}
}

/* True when list contains "*". */
static bool
cfg_has_wildcard(const struct config_strv *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++) {
		if (strcmp(sv->v[i], "*") == 0)
			return true;
	}
	return false;
}

/* "*" with credentials, reported at whichever key this block gave. */
static void
cfg_check_wildcard(struct cfg_ctx *ctx, const struct config_cors *c,
    const struct yaml_tree_node *const *seen, const char *prefix)
{
	const struct cfg_row *ro = cfg_find_row("cors.allowed_origins");
	const struct cfg_row *rc = cfg_find_row("cors.allow_credentials");
	const struct yaml_tree_node *at;
	char *p;

	if (!c->allow_credentials || !cfg_has_wildcard(&c->allowed_origins))
		return;
	if ((at = seen[rc - cfg_schema]) != NULL) {
		p = cfg_join(prefix, "allow_credentials");
		cfg_error(ctx, at, p, "expected false because "
		    "allowed_origins contains \"*\", got true");
	} else if ((at = seen[ro - cfg_schema]) != NULL) {
		p = cfg_join(prefix, "allowed_origins");
		cfg_error(ctx, at, p, "expected no \"*\" because "
		    "allow_credentials is true, got \"*\"");
	} else
		return;
	free(p);
}

/* Resolve the effective CORS policy of every route. */
static void
cfg_resolve_cors(struct cfg_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	struct cfg_target t;
	char *dpath;
	size_t i;

	for (i = 0; i < cfg->n_routes; i++) {
		struct config_route *route = &cfg->routes[i];
		struct cfg_route_scratch *rs = &ctx->rs[i];

		route->cors = NULL;
		if (rs->cors_off)
			continue;
		if (rs->cors == NULL) {
			if (cfg->has_cors)
				route->cors = &cfg->cors;
			continue;
		}
		route->cors_own = xcalloc(1, sizeof *route->cors_own);
		if (cfg->has_cors)
			cfg_cors_copy(route->cors_own, &cfg->cors);
		else
			cfg_defaults(ctx, CB_CORS, route->cors_own);
		xasprintf(&dpath, "routes[%zu].cors", i);
		t.route = route;
		t.cors = route->cors_own;
		t.seen = rs->seen_cors;
		cfg_walk_map(ctx, rs->cors, "cors", dpath, &t);
		cfg_check_wildcard(ctx, route->cors_own, rs->seen_cors, dpath);
		free(dpath);
		route->cors = route->cors_own;
	}
}

/* A host that binds every address of its family ("0.0.0.0", "::"). */
static bool
cfg_host_any(const char *h)
{
	return *h == '\0' || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0;
}

/*
 * Two listen addresses that would take the same port: equal hosts, or a
 * wildcard and any host of its family ("::" is dual-stack on Linux, so it
 * takes the IPv4 addresses too).  Port 0 picks a free port each time.
 */
static bool
cfg_addr_clash(const struct config_addr *a, const struct config_addr *b)
{
	bool v6a = strchr(a->host, ':') != NULL;
	bool v6b = strchr(b->host, ':') != NULL;

	if (a->port == 0 || a->port != b->port)
		return false;
	if (util_strcaseeq(a->host, b->host))
		return true;
	if (strcmp(a->host, "::") == 0 || strcmp(b->host, "::") == 0)
		return true;
	return v6a == v6b && (cfg_host_any(a->host) || cfg_host_any(b->host));
}

/* The node of server.listen[i] (the list's item, or the scalar). */
static const struct yaml_tree_node *
cfg_listen_node(const struct cfg_ctx *ctx, size_t i)
{
	const struct yaml_tree_node *v;

	v = ctx->seen[cfg_find_row("server.listen") - cfg_schema];
	if (v != NULL && v->type == YAML_TREE_SEQ && i < v->n)
		return v->items[i];
	return v;
}

/*
 * server.listen without duplicates, admin.listen apart from all of them:
 * two listeners on one address would split its connections between
 * them (SO_REUSEPORT), or the second bind fails.
 */
static void
cfg_check_listen(struct cfg_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	const struct yaml_tree_node *at;
	char path[48];
	size_t i, j;

	for (i = 0; i < cfg->n_listen; i++) {
		for (j = 0; j < i; j++) {
			if (!cfg_addr_clash(&cfg->listen[j], &cfg->listen[i]))
				continue;
			snprintf(path, sizeof path, "server.listen[%zu]", i);
			cfg_error(ctx, cfg_listen_node(ctx, i), path,
			    "\"%s\" takes the address of server.listen[%zu] "
			    "(\"%s\") again; list each address once",
			    cfg->listen[i].text, j, cfg->listen[j].text);
			break;
		}
	}
	if (!cfg->has_admin)
		return;
	at = ctx->seen[cfg_find_row("admin.listen") - cfg_schema];
	for (i = 0; i < cfg->n_listen; i++) {
		if (!cfg_addr_clash(&cfg->admin_listen, &cfg->listen[i]))
			continue;
		cfg_error(ctx, at, "admin.listen", "\"%s\" takes the address "
		    "of server.listen[%zu] (\"%s\"); the admin listener "
		    "needs its own port", cfg->admin_listen.text, i,
		    cfg->listen[i].text);
		break;
	}
}

/* Checks across keys, after every key was checked alone. */
static void
cfg_cross_checks(struct cfg_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	const struct yaml_tree_node *at;
	size_t i, j;

	cfg_check_listen(ctx);

	if (cfg->tls.cert != NULL && cfg->tls.key == NULL)
		cfg_error(ctx, ctx->seen[cfg_find_row("server.tls.cert") -
		    cfg_schema], "server.tls.cert", "a certificate needs "
		    "server.tls.key too");
	if (cfg->tls.key != NULL && cfg->tls.cert == NULL)
		cfg_error(ctx, ctx->seen[cfg_find_row("server.tls.key") -
		    cfg_schema], "server.tls.key", "a key needs "
		    "server.tls.cert too");
	cfg_check_wildcard(ctx, &cfg->cors, ctx->seen, "cors");

	if (cfg->n_routes == 0) {
		at = ctx->routes_node;
		cfg_error(ctx, at, "routes", "at least one route is required");
		return;
	}
	for (i = 0; i < cfg->n_routes; i++) {
		struct config_route *r = &cfg->routes[i];
		struct cfg_route_scratch *rs = &ctx->rs[i];
		char path[64];

		if (rs->node->type != YAML_TREE_MAP)
			continue;
		if (r->name == NULL)
			xasprintf(&r->name, "route%zu", i);
		if (r->upstream.url == NULL &&
		    rs->seen[cfg_find_row("routes[].upstream.url") -
		    cfg_schema] == NULL) {
			at = yaml_tree_map_find(rs->node, "upstream");
			snprintf(path, sizeof path, "routes[%zu].upstream.url",
			    i);
			cfg_error(ctx, at != NULL && at->type ==
			    YAML_TREE_MAP ? at : rs->node, path,
			    "required key is missing");
		}
		r->path_prefix_len = strlen(r->path_prefix);
		for (j = 0; j < i; j++) {
			if (cfg->routes[j].name == NULL ||
			    strcmp(cfg->routes[j].name, r->name) != 0)
				continue;
			at = rs->seen[cfg_find_row("routes[].name") -
			    cfg_schema];
			snprintf(path, sizeof path, "routes[%zu].name", i);
			cfg_error(ctx, at != NULL ? at : rs->node, path,
			    "duplicate route name \"%s\" (first used by "
			    "routes[%zu])", r->name, j);
			break;
		}
	}
}

/* Load from memory (see config.h). */
int
config_load_string(const char *name, const char *text, size_t len,
    char *const *env, struct config **out, char **errors)
{
	struct cfg_ctx ctx;
	struct yaml_tree *tree;
	struct cfg_target t;
	struct config *cfg;
	char *cause, buf[80];

	*out = NULL;
	*errors = NULL;
	memset(&ctx, 0, sizeof ctx);
	cfg = ctx.cfg = xcalloc(1, sizeof *cfg);
	cfg->refs = 1;
	cfg->path = xstrdup(name);
	ctx.fallback.type = YAML_TREE_SCALAR;
	ctx.fallback.file = cfg->path;
	ctx.fallback.line = 1;
	ctx.fallback.col = 1;
	ctx.fallback.str = (char *)(uintptr_t)"";

	tree = yaml_tree_parse(name, text, len, &cause);
	if (tree == NULL) {
		cfg_error_lines(&ctx, cause);
		free(cause);
		goto fail;
	}
	cfg_defaults(&ctx, CB_CONFIG, cfg);
	cfg_defaults(&ctx, CB_CORS, &cfg->cors);
	if (tree->root != NULL && !yaml_tree_is_null(tree->root)) {
		if (tree->root->type != YAML_TREE_MAP)
			cfg_error(&ctx, tree->root, "yaml", "expected a map at "
			    "the top of the file, got %s",
			    yaml_tree_describe(tree->root, buf, sizeof buf));
		else {
			t.route = NULL;
			t.cors = &cfg->cors;
			t.seen = ctx.seen;
			cfg_walk_map(&ctx, tree->root, "", "", &t);
		}
	}
	cfg_apply_env(&ctx, env);
	cfg_resolve_cors(&ctx);
	cfg_cross_checks(&ctx);
	yaml_tree_free(tree);

	if (ctx.nerrors == 0) {
		free(ctx.rs);
		*out = cfg;
		return 0;
	}
fail:
	free(ctx.rs);
	cfg_free_contents(cfg);
	free(cfg);
	*errors = ctx.errors;
	return -1;
}

/* Load a file (see config.h). */
int
config_load(const char *path, char *const *env, struct config **out,
    char **errors)
{
	struct stat st;
	char *text;
	ssize_t n;
	size_t got = 0;
	int fd, rc;

	*out = NULL;
	*errors = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		xasprintf(errors, "%s: cannot open: %s\n", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > CFG_MAX_FILE) {
		xasprintf(errors, "%s: not a regular file of at most %d "
		    "bytes\n", path, CFG_MAX_FILE);
		close(fd);
		return -1;
	}
	text = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		n = read(fd, text + got, (size_t)st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got != (size_t)st.st_size) {
		xasprintf(errors, "%s: cannot read: %s\n", path,
		    strerror(errno));
		close(fd);
		free(text);
		return -1;
	}
	close(fd);
	text[got] = '\0';
	rc = config_load_string(path, text, got, env, out, errors);
	free(text);
	return rc;
}

/* Free everything a config owns, not the struct. */
static void
cfg_free_contents(struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->n_listen; i++)
		cfg_addr_clear(&cfg->listen[i]);
	free(cfg->listen);
	free(cfg->tls.cert);
	free(cfg->tls.key);
	cfg_addr_clear(&cfg->admin_listen);
	for (i = 0; i < cfg->n_routes; i++) {
		struct config_route *r = &cfg->routes[i];

		free(r->name);
		free(r->host);
		free(r->path_prefix);
		cfg_upstream_clear(&r->upstream);
		if (r->cors_own != NULL) {
			cfg_cors_clear(r->cors_own);
			free(r->cors_own);
		}
	}
	free(cfg->routes);
	cfg_cors_clear(&cfg->cors);
	free(cfg->tracing.service);
	free(cfg->tracing.env);
	free(cfg->tracing.version);
	free(cfg->tracing.span_name);
	free(cfg->tracing.sampling_rules);
	cfg_strv_clear(&cfg->tracing.baggage_tag_keys);
	for (i = 0; i < cfg->tracing.n_tags; i++) {
		free(cfg->tracing.tags[i].key);
		free(cfg->tracing.tags[i].value);
	}
	free(cfg->tracing.tags);
	free(cfg->exporter.datadog_url);
	free(cfg->exporter.otlp_endpoint);
	free(cfg->logging.access_log);
	free(cfg->logging.format);
	for (i = 0; i < cfg->n_pos; i++) {
		free(cfg->pos[i].key);
		free(cfg->pos[i].file);
	}
	free(cfg->pos);
	free(cfg->path);
}

/* Take a reference. */
struct config *
config_ref(struct config *cfg)
{
	if (cfg != NULL)
		__atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
	return cfg;
}

/* Drop a reference; the last one frees the config. */
void
config_unref(struct config *cfg)
{
	if (cfg == NULL)
		return;
	if (__atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	cfg_free_contents(cfg);
	free(cfg);
}

/*
 * Report the keys that cannot change on reload: every CF_NORELOAD row of
 * the schema, compared by its type's cfg_types[].eq, listed in table
 * order.  A route or cors row compares the routes of the same index and
 * the top-level cors block.
 */
int
config_check_reload(const struct config *old, const struct config *new,
    char **cause)
{
	const struct cfg_row *r;
	char *list = NULL, *p, path[128];
	size_t i, j, n;
	bool same;

	*cause = NULL;
	for (i = 0; i < CFG_NROWS; i++) {
		r = &cfg_schema[i];
		if (~r->flags & CF_NORELOAD)
			continue;
		same = true;
		snprintf(path, sizeof path, "%s", r->path);
		switch (r->base) {
		case CB_CONFIG:
			same = cfg_row_eq(r, old, new);
			break;
		case CB_CORS:
			same = cfg_row_eq(r, &old->cors, &new->cors);
			break;
		case CB_ROUTE:
			n = TS_MIN(old->n_routes, new->n_routes);
			for (j = 0; same && j < n; j++) {
				same = cfg_row_eq(r, &old->routes[j],
				    &new->routes[j]);
				if (!same)
					snprintf(path, sizeof path,
					    "routes[%zu]%s", j, r->path + 8);
			}
			break;
		}
		if (same)
			continue;
		xasprintf(&p, "%s%s%s", list != NULL ? list : "",
		    list != NULL ? ", " : "", path);
		free(list);
		list = p;
	}
	if (list == NULL)
		return 0;
	xasprintf(cause, "%s: cannot change on reload (restart instead)",
	    list);
	free(list);
	return -1;
}

/* The YAML / DD_* name of a style, from the style table. */
const char *
config_style_name(enum config_style s)
{
	return styles_name(s);
}

static const char *cfg_key_paths[CFG_NROWS];
static pthread_once_t cfg_key_once = PTHREAD_ONCE_INIT;

/* Fill cfg_key_paths once. */
static void
cfg_key_init(void)
{
	size_t i;

	for (i = 0; i < CFG_NROWS; i++)
		cfg_key_paths[i] = cfg_schema[i].path;
}

/* Every schema path, in table order. */
size_t
config_schema_keys(const char *const **paths)
{
	pthread_once(&cfg_key_once, cfg_key_init);
	*paths = cfg_key_paths;
	return CFG_NROWS;
}

/* Whether a reload may change path (config.h). */
int
config_schema_reloads(const char *path)
{
	const struct cfg_row *r = cfg_find_row(path);

	if (r == NULL)
		return -1;
	return (r->flags & CF_NORELOAD) ? 0 : 1;
}

/* The position of key itself (config.h). */
int
config_key_pos(const struct config *cfg, const char *key,
    const struct config_pos **out)
{
	size_t i;

	/* The last entry wins: an environment override after the file. */
	for (i = cfg->n_pos; i > 0; i--) {
		if (strcmp(cfg->pos[i - 1].key, key) == 0) {
			*out = &cfg->pos[i - 1];
			return 0;
		}
	}
	*out = NULL;
	return -1;
}

/* Start collecting refusals for cfg. */
void
config_errors_init(struct config_errors *ce, const struct config *cfg)
{
	memset(ce, 0, sizeof *ce);
	ce->cfg = cfg;
}

/* Free the collected text. */
void
config_errors_clear(struct config_errors *ce)
{
	free(ce->errors);
	free(ce->warnings);
	memset(ce, 0, sizeof *ce);
}

/* True when text holds line (which ends in '\n') as a whole line. */
static bool
cfg_has_line(const char *text, const char *line)
{
	const char *p;
	size_t l = strlen(line);

	for (p = text; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, line, l) == 0)
			return true;
	}
	return false;
}

/* Format one positioned line for key (see config_error_at). */
static char *
cfg_errors_line(const struct config *cfg, const char *key,
    const char *kind, const char *fmt, va_list ap)
{
	const struct config_pos *pos = NULL;
	char *msg, *line, *alt = NULL, *k;
	const char *shown = key, *file;
	size_t n;

	if (vasprintf(&msg, fmt, ap) == -1)
		abort();
	if (config_key_pos(cfg, key, &pos) != 0 &&
	    strncmp(key, "routes[", 7) == 0 &&
	    (k = strstr(key, "].cors.")) != NULL) {
		/* Inherited from the top-level block: point there. */
		xasprintf(&alt, "cors.%s", k + 7);
		if (config_key_pos(cfg, alt, &pos) == 0)
			shown = alt;
	}
	if (pos == NULL) {
		/* The closest parent written in the file. */
		k = xstrdup(key);
		while ((n = strlen(k)) > 0) {
			while (n > 0 && k[n - 1] != '.' && k[n - 1] != '[')
				n--;
			if (n == 0)
				break;
			k[n - 1] = '\0';
			if (config_key_pos(cfg, k, &pos) == 0)
				break;
		}
		free(k);
	}
	file = pos != NULL && pos->file != NULL ? pos->file : cfg->path;
	if (pos != NULL && pos->line == 0)
		xasprintf(&line, "%s: %s: %s%s\n", file, shown, kind, msg);
	else
		xasprintf(&line, "%s:%u:%u: %s: %s%s\n", file,
		    pos != NULL ? pos->line : 1, pos != NULL ? pos->col : 1,
		    shown, kind, msg);
	free(alt);
	free(msg);
	return line;
}

/* Append line to a text buffer unless it is already there. */
static bool
cfg_errors_add(char **text, size_t *len, char *line)
{
	size_t n = strlen(line);

	if (*text != NULL && cfg_has_line(*text, line)) {
		free(line);
		return false;
	}
	*text = xrealloc(*text, *len + n + 1);
	memcpy(*text + *len, line, n + 1);
	*len += n;
	free(line);
	return true;
}

/* Add a refusal (config.h). */
void
config_error_at(struct config_errors *ce, const char *key, const char *fmt,
    ...)
{
	va_list ap;
	char *line;

	va_start(ap, fmt);
	line = cfg_errors_line(ce->cfg, key, "", fmt, ap);
	va_end(ap);
	if (cfg_errors_add(&ce->errors, &ce->errlen, line))
		ce->nerrors++;
}

/* Add a warning (config.h). */
void
config_warn_at(struct config_errors *ce, const char *key, const char *fmt,
    ...)
{
	va_list ap;
	char *line;

	va_start(ap, fmt);
	line = cfg_errors_line(ce->cfg, key, "warning: ", fmt, ap);
	va_end(ap);
	if (cfg_errors_add(&ce->warnings, &ce->warnlen, line))
		ce->nwarnings++;
}
