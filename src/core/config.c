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

#include <arpa/inet.h>
#include <sys/socket.h>

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
	CT_SERVERS,		/* struct config_server *, count at .cnt */
	CT_NTYPES
};

enum cfg_base {
	CB_CONFIG,		/* struct config */
	CB_ROUTE,		/* struct config_route */
	CB_CORS,		/* struct config_cors (top level or route) */
};

#define CF_NORELOAD	0x1	/* cannot change on SIGHUP */
#define CF_NULLABLE	0x2	/* null is a value: NULL / has = false */
#define CF_SECRET	0x4	/* values masked by config_dump (-T) */

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
	const char *(*check)(const char *);	/* CT_MAP: of each key */
	const char *(*check_value)(const char *);	/* CT_MAP: of each
							 * value */
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
static const char *const cfg_otlp_protocol_names[] = {
	"http/protobuf", "http/json", NULL
};
static const char *const cfg_compression_names[] = {
	"none", "gzip", NULL
};
static const char *const cfg_balance_names[] = {
	"round_robin", "least_request", "hash", NULL
};
static const char *const cfg_level_names[] = {
	"error", "warn", "info", "debug", NULL
};
static const char *const cfg_access_format_names[] = {
	"json", "combined", NULL
};
/*
 * routes[].rum_intake.site: Datadog's sites and their browser intake,
 * as the Browser SDK derives it (@datadog/browser-core,
 * endpointBuilder.ts buildEndpointHost: "browser-intake-" and the site's
 * labels but the last joined by '-', then the last label).
 */
static const char *const cfg_rum_site_names[] = {
	"datadoghq.com", "datadoghq.eu", "us3.datadoghq.com",
	"us5.datadoghq.com", "ap1.datadoghq.com", "ap2.datadoghq.com",
	"ddog-gov.com", NULL
};
static const char *const cfg_rum_site_origins[] = {
	"https://browser-intake-datadoghq.com",
	"https://browser-intake-datadoghq.eu",
	"https://browser-intake-us3-datadoghq.com",
	"https://browser-intake-us5-datadoghq.com",
	"https://browser-intake-ap1-datadoghq.com",
	"https://browser-intake-ap2-datadoghq.com",
	"https://browser-intake-ddog-gov.com",
};
static const char *cfg_check_origin(const char *);
static const char *cfg_check_path_prefix(const char *);
static const char *cfg_check_agent_url(const char *);
static const char *cfg_check_http_url(const char *);
static const char *cfg_check_format(const char *);
static const char *cfg_check_cidr(const char *);
static const char *cfg_check_hash_on(const char *);
static const char *cfg_check_hc_path(const char *);
static const char *cfg_check_retry_on(const char *);
static const char *cfg_check_resolver(const char *);
static const char *cfg_check_header_name(const char *);
static const char *cfg_check_header_value(const char *);

#define C(f) .base = CB_CONFIG, .off = offsetof(struct config, f)
#define CN(f, n) C(f), .cnt = offsetof(struct config, n)
#define R(f) .base = CB_ROUTE, .off = offsetof(struct config_route, f)
#define K(f) .base = CB_CORS, .off = offsetof(struct config_cors, f)
#define MAXU UINT64_MAX

static const struct cfg_row cfg_schema[] = {
	{ "server.listen", CT_ADDRV, CN(listen, n_listen),
	  .flags = CF_NORELOAD, .def = "[\"0.0.0.0:8080\"]",
	  .help = "addresses to accept requests on, \"host:port\" or "
	  "\"[v6]:port\", or {address: ..., proxy_protocol: true} for one "
	  "that a balancer sends the PROXY protocol to" },
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
	{ "server.drain_timeout", CT_DURATION, C(drain_timeout_ms),
	  .min = 1, .max = 3600000, .def = "30s",
	  .help = "on SIGTERM/SIGINT, time in-flight requests and open "
	  "WebSocket tunnels get to finish before they are closed" },
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
	  .def = "10000", .help = "client connections the process keeps open "
	  "at once; one more is closed as soon as it is accepted" },
	{ "server.limits.max_buffered_body_bytes", CT_SIZE,
	  C(limits.max_buffered_body_bytes), .min = 0,
	  .max = (uint64_t)1 << 40, .def = "0",
	  .help = "request-body bytes the process holds at once while HTTP/1.1 "
	  "bodies are collected before going upstream; a body that would "
	  "pass it is answered 503 and its connection closed; 0: no budget" },
	{ "server.trusted_proxies", CT_STRV, C(trusted_proxies), .def = "[]",
	  .check = cfg_check_cidr,
	  .help = "addresses or CIDR blocks of the load balancers in front: "
	  "their X-Forwarded-For/-Proto/-Host are kept and the client is "
	  "the right-most untrusted X-Forwarded-For address" },
	{ "server.proxy_protocol", CT_BOOL, C(proxy_protocol), .def = "false",
	  .help = "every client connection, on every listen address, starts "
	  "with a PROXY protocol v1 or v2 header (AWS NLB, HAProxy "
	  "send-proxy), whose source becomes the client address; a "
	  "connection without one is closed (read before the TLS "
	  "handshake on HTTPS); one address: its proxy_protocol" },
	{ "server.resolvers", CT_STRV, C(resolvers), .def = "[]",
	  .flags = CF_NORELOAD, .check = cfg_check_resolver,
	  .help = "DNS servers (\"ip\" or \"ip:port\") for looking upstream "
	  "names up again; []: those of /etc/resolv.conf" },
	{ "server.readyz_requires_upstreams", CT_BOOL,
	  C(readyz_requires_upstreams), .def = "false",
	  .help = "/readyz answers 503 while a route has no healthy upstream "
	  "server" },
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
	{ "admin.debug_listeners", CT_BOOL, C(admin_debug_listeners),
	  .def = "false",
	  .help = "with admin.debug, answer GET and POST /debug/propagation "
	  "on the proxy listeners too, over HTTP/1.1 and HTTP/2 alike (for "
	  "the headers a browser sends over h2)" },

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
	  .help = "backend base URL, http:// or https://: the one-server "
	  "form of servers (one of the two is required)" },
	{ "routes[].upstream.servers", CT_SERVERS,
	  R(upstream.servers), .cnt = offsetof(struct config_route,
	  upstream.n_servers),
	  .help = "the backends: a list of {url, weight} (weight 1-1000, "
	  "default 1) or of URLs; every address of a name is a server" },
	{ "routes[].upstream.balance", CT_ENUM, R(upstream.balance),
	  .def = "round_robin", .choices = cfg_balance_names,
	  .help = "round_robin: smooth weighted; least_request: the less "
	  "busy of two random servers; hash: consistent hash on hash_on" },
	{ "routes[].upstream.hash_on", CT_STRING, R(upstream.hash_on),
	  .min = 1, .def = "client_address", .check = cfg_check_hash_on,
	  .help = "balance hash: client_address, header:<name> or "
	  "cookie:<name>" },
	{ "routes[].upstream.resolve_interval", CT_DURATION,
	  R(upstream.resolve_interval_ms), .min = 100, .max = 86400000,
	  .def = "30s", .help = "the longest time before the main thread "
	  "looks a server host name up again, without blocking: sooner at "
	  "the answer's TTL (at least 1 s), after a failed lookup, and at "
	  "once when a server fails" },
	{ "routes[].upstream.max_fails", CT_UNSIGNED, R(upstream.max_fails),
	  .min = 0, .max = 1000, .def = "5",
	  .help = "connect failures, timeouts, resets or 5xx in a row that "
	  "eject a server; 0: never eject" },
	{ "routes[].upstream.ejection_time", CT_DURATION,
	  R(upstream.eject_base_ms), .min = 1, .max = 3600000, .def = "10s",
	  .help = "how long the first ejection lasts; doubled for each "
	  "ejection in a row" },
	{ "routes[].upstream.max_ejection_time", CT_DURATION,
	  R(upstream.eject_max_ms), .min = 1, .max = 86400000, .def = "5m",
	  .help = "the longest ejection" },
	{ "routes[].upstream.health_check.path", CT_STRING,
	  R(upstream.health_check.path), .flags = CF_NULLABLE, .min = 1,
	  .check = cfg_check_hc_path,
	  .help = "active checks: GET this path on every server from the "
	  "main thread; null: off" },
	{ "routes[].upstream.health_check.interval", CT_DURATION,
	  R(upstream.health_check.interval_ms), .min = 10, .max = 3600000,
	  .def = "5s", .help = "time between two checks of a server" },
	{ "routes[].upstream.health_check.timeout", CT_DURATION,
	  R(upstream.health_check.timeout_ms), .min = 1, .max = 600000,
	  .def = "2s", .help = "time a check may take (connect and answer)" },
	{ "routes[].upstream.health_check.healthy_threshold", CT_UNSIGNED,
	  R(upstream.health_check.healthy_threshold), .min = 1, .max = 100,
	  .def = "2", .help = "2xx/3xx answers in a row that bring a server "
	  "back" },
	{ "routes[].upstream.health_check.unhealthy_threshold", CT_UNSIGNED,
	  R(upstream.health_check.unhealthy_threshold), .min = 1, .max = 100,
	  .def = "3", .help = "failed checks in a row that take a server "
	  "out" },
	{ "routes[].upstream.retry.on", CT_STRV, R(upstream.retry.on),
	  .def = "[connect_failure, reset, timeout]",
	  .check = cfg_check_retry_on,
	  .help = "failures that send the request to another server: "
	  "connect_failure, reset, timeout, 502, 503, 504 (non-idempotent "
	  "requests: connect_failure only)" },
	{ "routes[].upstream.retry.tries", CT_UNSIGNED,
	  R(upstream.retry.tries), .min = 1, .max = 10, .def = "2",
	  .help = "attempts of a request in all, the first included; 1: no "
	  "retry" },
	{ "routes[].upstream.retry.per_try_timeout", CT_DURATION,
	  R(upstream.retry.per_try_timeout_ms), .min = 0, .max = 3600000,
	  .def = "0", .help = "time an attempt may wait for the response "
	  "head before the next one (a timeout); 0: only timeout applies" },
	{ "routes[].upstream.retry.budget_percent", CT_UNSIGNED,
	  R(upstream.retry.budget_percent), .min = 0, .max = 100,
	  .def = "20", .help = "retries allowed as a share of the route's "
	  "requests over the last second" },
	{ "routes[].upstream.retry.budget_min_per_second", CT_UNSIGNED,
	  R(upstream.retry.budget_min_per_second), .min = 0, .max = 100000,
	  .def = "3", .help = "retries per second allowed on top of "
	  "budget_percent (for routes with little traffic)" },
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
	{ "routes[].websocket.enabled", CT_BOOL, R(websocket),
	  .def = "true", .help = "forward WebSocket opening handshakes "
	  "(Upgrade: websocket) and tunnel the connection after the 101; "
	  "false: refuse them (403)" },
	{ "routes[].websocket.idle_timeout", CT_DURATION,
	  R(websocket_idle_ms), .min = 1, .max = 86400000, .def = "60s",
	  .help = "a WebSocket tunnel with no byte either way for this long "
	  "is closed" },
	{ "routes[].rum_intake.site", CT_ENUM, R(rum.site),
	  .has = offsetof(struct config_route, rum.has_site) + 1,
	  .choices = cfg_rum_site_names,
	  .help = "relay the RUM Browser SDK's batches (its proxy option) to "
	  "this Datadog site's intake; the route then has no upstream" },
	{ "routes[].rum_intake.intake_url", CT_STRING, R(rum.intake_url),
	  .flags = CF_NULLABLE, .min = 1, .check = cfg_check_http_url,
	  .help = "the intake origin instead of the site's, http:// or "
	  "https:// (tests, private links)" },
	{ "routes[].rum_intake.max_body_bytes", CT_SIZE,
	  R(rum.max_body_bytes), .min = 1, .max = 64 * 1024 * 1024,
	  .def = "1048576", .help = "largest batch relayed (413 above; "
	  "server.limits.max_body_bytes still applies first)" },
	{ "routes[].rum_intake.timeout", CT_DURATION, R(rum.timeout_ms),
	  .min = 1, .max = 600000, .def = "10s",
	  .help = "time allowed for the intake's answer (504 above)" },
	{ "routes[].rum_intake.connect_timeout", CT_DURATION,
	  R(rum.connect_timeout_ms), .min = 1, .max = 600000, .def = "2s",
	  .help = "time allowed to connect to the intake (502 above)" },
	{ "routes[].rum_intake.tls_ca_file", CT_STRING, R(rum.tls_ca_file),
	  .flags = CF_NULLABLE, .min = 1,
	  .help = "https: CA bundle the intake is verified with; null: the "
	  "system's (the certificate is always verified)" },
	{ "routes[].rum_intake.trace", CT_BOOL, R(rum.trace), .def = "false",
	  .help = "make a gateway span for each relayed batch" },
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
	  .def = "{}", .env = "DD_TAGS, OTEL_RESOURCE_ATTRIBUTES",
	  .help = "extra tags on every gateway span" },
	{ "tracing.client_ip", CT_BOOL, C(tracing.client_ip), .def = "false",
	  .env = "DD_TRACE_CLIENT_IP_ENABLED",
	  .help = "tag the gateway span with http.client_ip" },

	{ "exporter.type", CT_ENUM, C(exporter.type), .def = "datadog",
	  .choices = cfg_exporter_names,
	  .help = "datadog: Agent msgpack; otlp: OTLP/HTTP (otlp_protocol); "
	  "stdout: one JSON line per span; none" },
	{ "exporter.datadog_url", CT_STRING, C(exporter.datadog_url),
	  .def = "http://localhost:8126", .check = cfg_check_agent_url,
	  .env = "DD_TRACE_AGENT_URL, DD_AGENT_HOST + DD_TRACE_AGENT_PORT",
	  .help = "Datadog Agent, http://host:port, https://host:port or "
	  "unix:///path" },
	{ "exporter.otlp_endpoint", CT_STRING, C(exporter.otlp_endpoint),
	  .def = "http://localhost:4318/v1/traces", .check = cfg_check_http_url,
	  .env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "
	  "OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces)",
	  .help = "full OTLP/HTTP traces URL, http:// or https://" },
	/* The OTLP transport keys (issue 14 item 2): export_http.c. */
	{ "exporter.otlp_protocol", CT_ENUM, C(exporter.otlp_protocol),
	  .def = "http/protobuf", .choices = cfg_otlp_protocol_names,
	  .env = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "
	  "OTEL_EXPORTER_OTLP_PROTOCOL",
	  .help = "OTLP body: http/protobuf (the SDKs' default) or http/json" },
	{ "exporter.headers", CT_MAP, CN(exporter.headers, exporter.n_headers),
	  .def = "{}", .flags = CF_SECRET, .check = cfg_check_header_name,
	  .check_value = cfg_check_header_value,
	  .env = "OTEL_EXPORTER_OTLP_TRACES_HEADERS, "
	  "OTEL_EXPORTER_OTLP_HEADERS",
	  .help = "extra request headers of every export request (an API "
	  "key); values are masked in logs" },
	{ "exporter.compression", CT_ENUM, C(exporter.compression),
	  .def = "none", .choices = cfg_compression_names,
	  .env = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, "
	  "OTEL_EXPORTER_OTLP_COMPRESSION",
	  .help = "otlp: gzip the body (Content-Encoding: gzip) or none" },
	{ "exporter.tls_ca_file", CT_STRING, C(exporter.tls_ca_file),
	  .flags = CF_NULLABLE, .min = 1,
	  .env = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE, "
	  "OTEL_EXPORTER_OTLP_CERTIFICATE",
	  .help = "https: CA bundle the backend's certificate is verified "
	  "with; null: the system store" },
	{ "exporter.timeout", CT_DURATION, C(exporter.timeout_ms), .min = 1,
	  .max = 600000, .def = "2s",
	  .env = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, "
	  "OTEL_EXPORTER_OTLP_TIMEOUT (milliseconds)",
	  .help = "time allowed for one export request (connect, send, "
	  "answer)" },
	{ "exporter.flush_interval", CT_DURATION,
	  C(exporter.flush_interval_ms), .min = 10, .max = 60000, .def = "1s",
	  .help = "how often batched spans are sent" },
	{ "exporter.max_queue_spans", CT_UINT, C(exporter.max_queue_spans),
	  .min = 1, .max = 10000000, .def = "100000",
	  .help = "spans queued for export before new ones are dropped" },
	{ "exporter.thread_nice", CT_UINT, C(exporter.thread_nice),
	  .min = 0, .max = 19, .def = "10",
	  .help = "added to the exporter thread's nice value, so that the "
	  "workers preempt it at once" },

	{ "logging.level", CT_ENUM, C(logging.level), .def = "info",
	  .choices = cfg_level_names, .help = "error log level" },
	{ "logging.access_log", CT_STRING, C(logging.access_log), .min = 1,
	  .def = "stdout",
	  .help = "stdout, stderr, off or a file path" },
	{ "logging.format", CT_STRING, C(logging.format), .def = "json",
	  .check = cfg_check_format, .help = "access log format (json)" },
	{ "logging.access_log_format", CT_ENUM, C(logging.access_log_format),
	  .def = "json", .choices = cfg_access_format_names,
	  .help = "json: Datadog's standard attributes; combined: nginx's "
	  "combined format" },
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
	struct yaml_tree_node fallback_item;	/* a position from pos */
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

static void cfg_servers_free(struct config_server *, size_t);
static void cfg_strv_clear(struct config_strv *);
static char *cfg_join(const char *, const char *);

/* Free the parts of an upstream URL. */
static void
cfg_upstream_clear(struct config_upstream *u)
{
	cfg_servers_free(u->servers, u->n_servers);
	free(u->hash_on);
	free(u->health_check.path);
	cfg_strv_clear(&u->retry.on);
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

/* An address or CIDR block (server.trusted_proxies). */
static const char *
cfg_check_cidr(const char *s)
{
	struct cidr c;
	const char *err = NULL;

	return cidr_parse(s, &c, &err) == 0 ? NULL : err;
}

/* The source of the hash of balance: hash. */
static const char *
cfg_check_hash_on(const char *s)
{
	size_t len = strlen(s);

	if (strcmp(s, "client_address") == 0)
		return NULL;
	if (len > 7 && (strncmp(s, "header:", 7) == 0 ||
	    strncmp(s, "cookie:", 7) == 0) && util_is_token(s + 7, len - 7))
		return NULL;
	return "expected client_address, header:<name> or cookie:<name>";
}

/* A DNS server: an IPv4 or [IPv6] literal, an optional port. */
static const char *
cfg_check_resolver(const char *s)
{
	static const char msg[] = "expected a DNS server address such as "
	    "\"10.0.0.2\", \"10.0.0.2:53\" or \"[::1]:53\"";
	unsigned char buf[16];
	char host[64];
	const char *p, *port = NULL;
	uint64_t u;
	size_t l;

	if (s[0] == '[') {
		if ((p = strchr(s, ']')) == NULL || (l = (size_t)(p - s - 1)) >=
		    sizeof host)
			return msg;
		memcpy(host, s + 1, l);
		host[l] = '\0';
		if (inet_pton(AF_INET6, host, buf) != 1)
			return msg;
		if (p[1] == ':')
			port = p + 2;
		else if (p[1] != '\0')
			return msg;
	} else {
		l = strcspn(s, ":");
		if (l >= sizeof host)
			return msg;
		memcpy(host, s, l);
		host[l] = '\0';
		if (inet_pton(AF_INET, host, buf) != 1)
			return msg;
		if (s[l] == ':')
			port = s + l + 1;
	}
	if (port != NULL && (util_parse_u64(port, strlen(port), &u) != 0 ||
	    u < 1 || u > 65535))
		return msg;
	return NULL;
}

/* An origin-form path for the health check request line. */
static const char *
cfg_check_hc_path(const char *s)
{
	const char *p;

	if (s[0] != '/')
		return "expected a path starting with \"/\"";
	for (p = s; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "expected a path without blanks or controls";
	}
	return NULL;
}

/* One failure of routes[].upstream.retry.on. */
static const char *
cfg_check_retry_on(const char *s)
{
	return config_retry_bit(s) != 0 ? NULL : "expected connect_failure, "
	    "reset, timeout, 502, 503 or 504";
}

unsigned
config_retry_bit(const char *s)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {
		{ "connect_failure", CONFIG_RETRY_CONNECT },
		{ "reset", CONFIG_RETRY_RESET },
		{ "timeout", CONFIG_RETRY_TIMEOUT },
		{ "502", CONFIG_RETRY_502 },
		{ "503", CONFIG_RETRY_503 },
		{ "504", CONFIG_RETRY_504 },
	};
	size_t i;

	for (i = 0; i < TS_NITEMS(names); i++) {
		if (strcmp(s, names[i].name) == 0)
			return names[i].bit;
	}
	return 0;
}

/* The access log format. */
static const char *
cfg_check_format(const char *s)
{
	return strcmp(s, "json") == 0 ? NULL : "expected json";
}

/* An exporter.headers name: an RFC 9110 token. */
static const char *
cfg_check_header_name(const char *s)
{
	const char *p;

	if (*s == '\0')
		return "expected a header name";
	for (p = s; *p != '\0'; p++)
		if (!util_is_tchar((unsigned char)*p))
			return "expected a header name (an RFC 9110 token: no "
			    "spaces, no separators)";
	return NULL;
}

/* An exporter.headers value: visible characters, spaces and tabs. */
static const char *
cfg_check_header_value(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return "a header value may not hold control characters";
	return NULL;
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
	const char *e;
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
		else if (r->check != NULL &&
		    (e = r->check(v->pairs[i].key->str)) != NULL) {
			cfg_error(ctx, v->pairs[i].key, ipath, "%s", e);
			rc = -1;
		} else if (r->check_value != NULL &&
		    (e = r->check_value(v->pairs[i].value->str)) != NULL) {
			cfg_error(ctx, v->pairs[i].value, ipath, "%s", e);
			rc = -1;
		} else {
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
/*
 * A server.listen item with options: {address: "host:port",
 * proxy_protocol: bool} (nginx's "listen ... proxy_protocol").  Sets
 * *addr to the address node (NULL when missing: reported).
 */
static int
cfg_listen_opts(struct cfg_ctx *ctx, const struct yaml_tree_node *v,
    const char *ipath, const struct yaml_tree_node **addr,
    struct config_addr *a)
{
	static const struct cfg_row pp_row = { "proxy_protocol", CT_BOOL,
	    .base = CB_CONFIG, .off = offsetof(struct config_addr,
	    proxy_protocol) };
	char *kp;
	size_t i;
	int rc = 0;

	*addr = NULL;
	for (i = 0; i < v->n; i++) {
		const struct yaml_tree_node *k = v->pairs[i].key;
		const struct yaml_tree_node *val = v->pairs[i].value;

		kp = cfg_join(ipath, k->str);
		cfg_pos_add(ctx, kp, val);
		if (strcmp(k->str, "address") == 0)
			*addr = val;
		else if (strcmp(k->str, "proxy_protocol") == 0) {
			if (cfg_set_bool(ctx, &pp_row, a, val, kp) != 0)
				rc = -1;
		} else {
			cfg_error(ctx, k, kp, "unknown key (a listen address "
			    "has address and proxy_protocol)");
			rc = -1;
		}
		free(kp);
	}
	if (*addr == NULL) {
		kp = cfg_join(ipath, "address");
		cfg_error(ctx, v, kp, "required key is missing");
		free(kp);
		return -1;
	}
	return rc;
}

static int
cfg_parse_addrs(struct cfg_ctx *ctx, struct yaml_tree_node *const *items,
    size_t n, bool list, const char *dpath, bool opts,
    struct config_addr **out)
{
	struct config_addr *av;
	const struct yaml_tree_node *node;
	char *ipath, *apath, buf[80];
	const char *e;
	size_t i;
	int rc = 0;
	bool pp;

	av = xcalloc(n, sizeof *av);
	for (i = 0; i < n; i++) {
		ipath = list ? cfg_item_path(ctx, dpath, i) : xstrdup(dpath);
		cfg_pos_add(ctx, ipath, items[i]);
		node = items[i];
		apath = ipath;
		pp = false;
		if (opts && node->type == YAML_TREE_MAP) {
			if (cfg_listen_opts(ctx, node, ipath, &node,
			    &av[i]) != 0) {
				rc = -1;
				if (node == NULL) {
					free(ipath);
					continue;
				}
			}
			pp = av[i].proxy_protocol;
			apath = cfg_join(ipath, "address");
		}
		if (cfg_scalar(ctx, node, apath, opts ? "an address "
		    "\"host:port\" or a map with address and proxy_protocol" :
		    "an address \"host:port\"") != 0)
			rc = -1;
		else if ((e = cfg_parse_addr(node->str, &av[i])) != NULL) {
			cfg_error(ctx, node, apath, *e == 'p' ?
			    "expected a port from 0 to 65535, got %s" :
			    "expected \"host:port\" or \"[v6]:port\", got %s",
			    yaml_tree_describe(node, buf, sizeof buf));
			rc = -1;
		}
		av[i].proxy_protocol = pp;
		if (apath != ipath)
			free(apath);
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
	    dpath, false, &av) != 0)
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
	if (cfg_parse_addrs(ctx, items, n, list, dpath, true, &av) != 0)
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

/* Free a list of servers. */
static void
cfg_servers_free(struct config_server *sv, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		cfg_upstream_clear(&sv[i].up);
	free(sv);
}

/* One item of routes[].upstream.servers: a URL or {url, weight}. */
static int
cfg_server_item(struct cfg_ctx *ctx, const struct yaml_tree_node *v,
    const char *ipath, struct config_server *sv)
{
	const struct yaml_tree_node *url = NULL, *weight = NULL;
	const char *e;
	char *kp, buf[80];
	uint64_t w = 1;
	size_t i;
	int rc = 0;

	if (v->type == YAML_TREE_SCALAR && !yaml_tree_is_null(v))
		url = v;
	else if (v->type == YAML_TREE_MAP) {
		for (i = 0; i < v->n; i++) {
			const struct yaml_tree_node *k = v->pairs[i].key;

			kp = cfg_join(ipath, k->str);
			if (strcmp(k->str, "url") == 0)
				url = v->pairs[i].value;
			else if (strcmp(k->str, "weight") == 0)
				weight = v->pairs[i].value;
			else {
				cfg_error(ctx, k, kp, "unknown key (a server "
				    "has url and weight)");
				rc = -1;
			}
			cfg_pos_add(ctx, kp, v->pairs[i].value);
			free(kp);
		}
		if (url == NULL) {
			kp = cfg_join(ipath, "url");
			cfg_error(ctx, v, kp, "required key is missing");
			free(kp);
			return -1;
		}
	} else {
		cfg_error(ctx, v, ipath, "expected a URL or a map with url "
		    "and weight, got %s", yaml_tree_describe(v, buf,
		    sizeof buf));
		return -1;
	}
	kp = url == v ? xstrdup(ipath) : cfg_join(ipath, "url");
	if (cfg_scalar(ctx, url, kp, "an http:// or https:// URL") != 0)
		rc = -1;
	else if ((e = cfg_parse_url(url->str, &sv->up)) != NULL) {
		cfg_error(ctx, url, kp, "%s, got %s", e,
		    yaml_tree_describe(url, buf, sizeof buf));
		rc = -1;
	} else
		sv->up.url = xstrdup(url->str);
	free(kp);
	if (weight != NULL) {
		kp = cfg_join(ipath, "weight");
		if (weight->type != YAML_TREE_SCALAR ||
		    util_parse_u64(weight->str, weight->len, &w) != 0 ||
		    w < 1 || w > 1000) {
			cfg_error(ctx, weight, kp, "expected an integer from 1 "
			    "to 1000, got %s", yaml_tree_describe(weight, buf,
			    sizeof buf));
			rc = -1;
		}
		free(kp);
	}
	sv->weight = (unsigned)w;
	return rc;
}

/* routes[].upstream.servers: a non-empty list; all or nothing. */
static int
cfg_set_servers(struct cfg_ctx *ctx, const struct cfg_row *r, void *base,
    const struct yaml_tree_node *v, const char *dpath)
{
	struct config_server **field = CFG_FIELD(r, base,
	    struct config_server *), *sv;
	size_t *np = (size_t *)(void *)((char *)base + r->cnt), i;
	char *ipath, buf[80];
	int rc = 0;

	if (v->type != YAML_TREE_SEQ || v->n == 0) {
		cfg_error(ctx, v, dpath, "expected a non-empty list of "
		    "servers, got %s", yaml_tree_describe(v, buf, sizeof buf));
		return -1;
	}
	sv = xcalloc(v->n, sizeof *sv);
	for (i = 0; i < v->n; i++) {
		xasprintf(&ipath, "%s[%zu]", dpath, i);
		cfg_pos_add(ctx, ipath, v->items[i]);
		if (cfg_server_item(ctx, v->items[i], ipath, &sv[i]) != 0)
			rc = -1;
		free(ipath);
	}
	if (rc != 0) {
		cfg_servers_free(sv, v->n);
		return -1;
	}
	cfg_servers_free(*field, *np);
	*field = sv;
	*np = v->n;
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
		if (!cfg_streq(x[i].text, y[i].text) ||
		    x[i].proxy_protocol != y[i].proxy_protocol)
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

/* Servers compare by URL and weight. */
static bool
cfg_eq_servers(const struct cfg_row *r, const void *a, const void *b)
{
	const struct config_server *x = *CFG_CFIELD(r, a,
	    struct config_server *);
	const struct config_server *y = *CFG_CFIELD(r, b,
	    struct config_server *);
	size_t i, n = CFG_COUNT(r, a);

	if (n != CFG_COUNT(r, b))
		return false;
	for (i = 0; i < n; i++) {
		if (!cfg_streq(x[i].up.url, y[i].up.url) ||
		    x[i].weight != y[i].weight)
			return false;
	}
	return true;
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
	[CT_SERVERS] = { cfg_set_servers, cfg_eq_servers, 0 },
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

/*
 * The rest of the DD_* / OTEL_* variables (issue 14 item 1), beside
 * cfg_apply_env's own: the OpenTelemetry SDK family first, then the
 * Datadog one, so that Datadog's wins where both name one concept.  That
 * is Datadog's documented rule ("If both Datadog and OpenTelemetry
 * environment variables are set, Datadog takes precedence", OpenTelemetry
 * Environment Variables Interoperability,
 * https://docs.datadoghq.com/opentelemetry/config/environment_variable_support/);
 * an OTEL_* variable so overruled is not read at all (its errors would
 * not matter) and gets a warning naming the DD_* one.
 */

/* Every variable config_load reads, for the unsupported-name warning. */
const char *const config_env_names[] = {
	"DD_SERVICE", "DD_ENV", "DD_VERSION", "DD_TAGS", "DD_TRACE_ENABLED",
	"DD_AGENT_HOST", "DD_TRACE_AGENT_PORT", "DD_TRACE_AGENT_URL",
	"DD_TRACE_PROPAGATION_STYLE", "DD_TRACE_PROPAGATION_STYLE_EXTRACT",
	"DD_TRACE_PROPAGATION_STYLE_INJECT",
	"DD_TRACE_PROPAGATION_EXTRACT_FIRST",
	"DD_TRACE_PROPAGATION_BEHAVIOR_EXTRACT", "DD_TRACE_SAMPLE_RATE",
	"DD_TRACE_RATE_LIMIT", "DD_TRACE_SAMPLING_RULES",
	"DD_TRACE_X_DATADOG_TAGS_MAX_LENGTH",
	"DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED",
	"DD_TRACE_BAGGAGE_TAG_KEYS", "DD_TRACE_CLIENT_IP_ENABLED",
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_PROPAGATORS",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED",
	"OTEL_TRACES_EXPORTER",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
	"OTEL_EXPORTER_OTLP_COMPRESSION",
	"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
	"OTEL_EXPORTER_OTLP_CERTIFICATE",
	"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
	NULL
};

/* A set variable: present and not empty (empty is unset, as above). */
static const char *
cfg_getenv_set(char *const *env, const char *name)
{
	const char *v = cfg_getenv(env, name);

	return v != NULL && *v != '\0' ? v : NULL;
}

/* Append one "env:NAME: message" warning line to cfg->env_warnings. */
static void TS_PRINTFLIKE(3, 4)
cfg_env_warn(struct cfg_ctx *ctx, const char *name, const char *fmt, ...)
{
	struct config *cfg = ctx->cfg;
	va_list ap;
	char *msg, *line;
	size_t have = cfg->env_warnings != NULL ?
	    strlen(cfg->env_warnings) : 0, n;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		abort();
	va_end(ap);
	xasprintf(&line, "env:%s: %s\n", name, msg);
	n = strlen(line);
	cfg->env_warnings = xrealloc(cfg->env_warnings, have + n + 1);
	memcpy(cfg->env_warnings + have, line, n + 1);
	free(line);
	free(msg);
}

/*
 * An OTEL_* variable that Datadog's rule gives way to dd (NULL-terminated
 * list of DD_* names): its value, or NULL when unset or overruled.
 */
static const char *
cfg_otel_getenv(struct cfg_ctx *ctx, char *const *env, const char *name,
    const char *const *dd)
{
	const char *v = cfg_getenv_set(env, name);

	if (v == NULL)
		return NULL;
	for (; dd != NULL && *dd != NULL; dd++) {
		if (cfg_getenv_set(env, *dd) != NULL) {
			cfg_env_warn(ctx, name, "ignored: %s is set and wins "
			    "(Datadog's precedence)", *dd);
			return NULL;
		}
	}
	return v;
}

/* Value of hex digit c, or -1. */
static int
cfg_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode %XX escapes in place (W3C Baggage values); others stay. */
static void
cfg_pct_decode(char *s)
{
	char *w = s;
	int hi, lo;

	for (; *s != '\0'; s++) {
		if (s[0] == '%' && (hi = cfg_hexval(s[1])) >= 0 &&
		    (lo = cfg_hexval(s[2])) >= 0) {
			*w++ = (char)(hi << 4 | lo);
			s += 2;
		} else
			*w++ = *s;
	}
	*w = '\0';
}

/* Trim blanks around s in place; returns the new start. */
static char *
cfg_trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

/* Pairs split out of one variable, owned by the copy of its value. */
struct cfg_env_pairs {
	char *copy;
	char *key[64];
	char *value[64];
	size_t n;
};

/*
 * Split value into pairs: sep between pairs (a set of characters), kv
 * between key and value (the first one), values percent-decoded when
 * pct.  0, or -1 after an error at path.
 */
static int
cfg_env_split(struct cfg_ctx *ctx, const char *name, const char *value,
    const char *seps, int kv, bool pct, const char *path,
    struct cfg_env_pairs *pp)
{
	struct yaml_tree_node n;
	char label[96], *p, *tok, *eq;

	memset(pp, 0, sizeof *pp);
	pp->copy = xstrdup(value);
	snprintf(label, sizeof label, "env:%s", name);
	cfg_env_node(&n, label, value);
	for (p = pp->copy; (tok = strsep(&p, seps)) != NULL;) {
		tok = cfg_trim(tok);
		if (*tok == '\0')
			continue;
		if ((eq = strchr(tok, kv)) == NULL || eq == tok) {
			cfg_error(ctx, &n, path, "expected key%cvalue pairs, "
			    "got \"%s\"", kv, tok);
			return -1;
		}
		if (pp->n == TS_NITEMS(pp->key)) {
			cfg_error(ctx, &n, path, "expected at most %zu pairs",
			    TS_NITEMS(pp->key));
			return -1;
		}
		*eq = '\0';
		pp->key[pp->n] = cfg_trim(tok);
		pp->value[pp->n] = cfg_trim(eq + 1);
		if (pct)
			cfg_pct_decode(pp->value[pp->n]);
		pp->n++;
	}
	return 0;
}

/* Set the map row path to keys[i] of pp whose keep[i] is true. */
static void
cfg_env_set_map(struct cfg_ctx *ctx, const char *name,
    const struct cfg_env_pairs *pp, const bool *keep, const char *path)
{
	const struct cfg_row *r = cfg_find_row(path);
	struct yaml_tree_node map, keys[64], vals[64];
	struct yaml_tree_pair pairs[64];
	char label[96];
	size_t i;

	snprintf(label, sizeof label, "env:%s", name);
	memset(&map, 0, sizeof map);
	map.type = YAML_TREE_MAP;
	map.file = label;
	map.pairs = pairs;
	for (i = 0; i < pp->n; i++) {
		if (keep != NULL && !keep[i])
			continue;
		cfg_env_node(&keys[map.n], label, pp->key[i]);
		cfg_env_node(&vals[map.n], label, pp->value[i]);
		pairs[map.n].key = &keys[map.n];
		pairs[map.n].value = &vals[map.n];
		map.n++;
	}
	cfg_pos_add(ctx, path, &map);
	ctx->in_env = true;
	(void)cfg_set(ctx, r, ctx->cfg, &map, path);
	ctx->in_env = false;
}

/*
 * OTEL_RESOURCE_ATTRIBUTES: "key=value,..." (W3C Baggage syntax, values
 * percent-encoded: OpenTelemetry Resource SDK).  service.name,
 * service.version and deployment.environment[.name] are the service,
 * version and env (Datadog maps them so); the rest are span tags.  Each
 * gives way to its DD_* variable, and service.name to OTEL_SERVICE_NAME.
 */
static void
cfg_otel_resource(struct cfg_ctx *ctx, char *const *env)
{
	static const char *const no_tags[] = { "DD_TAGS", NULL };
	const char *name = "OTEL_RESOURCE_ATTRIBUTES";
	const char *v = cfg_getenv_set(env, name);
	struct cfg_env_pairs pp;
	bool keep[64], tags = false;
	size_t i;

	if (v == NULL || cfg_env_split(ctx, name, v, ",", '=', true,
	    "tracing.tags", &pp) != 0) {
		if (v != NULL)
			free(pp.copy);
		return;
	}
	for (i = 0; i < pp.n; i++) {
		const char *k = pp.key[i], *path = NULL, *dd = NULL;

		keep[i] = false;
		if (strcmp(k, "service.name") == 0) {
			path = "tracing.service";
			dd = cfg_getenv_set(env, "DD_SERVICE") != NULL ?
			    "DD_SERVICE" : cfg_getenv_set(env,
			    "OTEL_SERVICE_NAME") != NULL ?
			    "OTEL_SERVICE_NAME" : NULL;
		} else if (strcmp(k, "service.version") == 0) {
			path = "tracing.version";
			dd = cfg_getenv_set(env, "DD_VERSION") != NULL ?
			    "DD_VERSION" : NULL;
		} else if (strcmp(k, "deployment.environment") == 0 ||
		    strcmp(k, "deployment.environment.name") == 0) {
			path = "tracing.env";
			dd = cfg_getenv_set(env, "DD_ENV") != NULL ?
			    "DD_ENV" : NULL;
		} else {
			keep[i] = tags = true;
			continue;
		}
		if (dd != NULL)
			cfg_env_warn(ctx, name, "%s ignored: %s is set and "
			    "wins", k, dd);
		else
			(void)cfg_env_set(ctx, name, pp.value[i], path, 's');
	}
	if (tags && cfg_otel_getenv(ctx, env, name, no_tags) != NULL)
		cfg_env_set_map(ctx, name, &pp, keep, "tracing.tags");
	free(pp.copy);
}

/* OTEL_TRACES_SAMPLER (+ _ARG) as tracing.sample_rate (Datadog's map). */
static void
cfg_otel_sampler(struct cfg_ctx *ctx, char *const *env)
{
	static const char *const dd[] = { "DD_TRACE_SAMPLE_RATE", NULL };
	struct yaml_tree_node n;
	const char *v, *arg, *rate = NULL;

	if ((v = cfg_otel_getenv(ctx, env, "OTEL_TRACES_SAMPLER", dd)) == NULL)
		return;
	arg = cfg_getenv_set(env, "OTEL_TRACES_SAMPLER_ARG");
	/*
	 * The gateway honours the caller's decision whatever the rate
	 * (docs/propagation.md, "Sampling"), so the plain samplers act as
	 * their parentbased_ forms, as in the Datadog SDKs.  The ratio
	 * defaults to 1.0 (OpenTelemetry SDK environment variables).
	 */
	if (strcmp(v, "always_on") == 0 ||
	    strcmp(v, "parentbased_always_on") == 0)
		rate = "1";
	else if (strcmp(v, "always_off") == 0 ||
	    strcmp(v, "parentbased_always_off") == 0)
		rate = "0";
	else if (strcmp(v, "traceidratio") == 0 ||
	    strcmp(v, "parentbased_traceidratio") == 0) {
		if (arg != NULL) {
			(void)cfg_env_set(ctx, "OTEL_TRACES_SAMPLER_ARG", arg,
			    "tracing.sample_rate", 's');
			return;
		}
		rate = "1";
	} else {
		cfg_env_node(&n, "env:OTEL_TRACES_SAMPLER", v);
		cfg_error(ctx, &n, "tracing.sample_rate", "expected always_on, "
		    "always_off, traceidratio, parentbased_always_on, "
		    "parentbased_always_off or parentbased_traceidratio, got "
		    "\"%s\"", v);
		return;
	}
	(void)cfg_env_set(ctx, "OTEL_TRACES_SAMPLER", rate,
	    "tracing.sample_rate", 's');
}

/*
 * OTEL_TRACES_EXPORTER and OTEL_SDK_DISABLED as exporter.type; both give
 * way to DD_TRACE_ENABLED (Datadog maps OTEL_TRACES_EXPORTER=none to
 * DD_TRACE_ENABLED=false).  The gateway still propagates context when
 * disabled: it is a proxy, the headers are its callers'.
 */
static void
cfg_otel_exporter(struct cfg_ctx *ctx, char *const *env)
{
	static const char *const dd[] = { "DD_TRACE_ENABLED", NULL };
	struct yaml_tree_node n;
	const char *v;

	if ((v = cfg_otel_getenv(ctx, env, "OTEL_TRACES_EXPORTER",
	    dd)) != NULL) {
		const char *type = strcmp(v, "otlp") == 0 ? "otlp" :
		    strcmp(v, "console") == 0 ? "stdout" :
		    strcmp(v, "none") == 0 ? "none" : NULL;

		if (type != NULL)
			(void)cfg_env_set(ctx, "OTEL_TRACES_EXPORTER", type,
			    "exporter.type", 's');
		else {
			cfg_env_node(&n, "env:OTEL_TRACES_EXPORTER", v);
			cfg_error(ctx, &n, "exporter.type", "expected otlp, "
			    "console or none, got \"%s\"", v);
		}
	}
	if ((v = cfg_otel_getenv(ctx, env, "OTEL_SDK_DISABLED", dd)) != NULL) {
		/* OpenTelemetry booleans: "true", case-insensitively. */
		if (util_strcaseeq(v, "true"))
			(void)cfg_env_set(ctx, "OTEL_SDK_DISABLED", "none",
			    "exporter.type", 's');
		else if (!util_strcaseeq(v, "false")) {
			cfg_env_node(&n, "env:OTEL_SDK_DISABLED", v);
			cfg_error(ctx, &n, "exporter.type", "expected true or "
			    "false, got \"%s\"", v);
		}
	}
}

/*
 * OTEL_EXPORTER_OTLP_{HEADERS,PROTOCOL,TIMEOUT,COMPRESSION,CERTIFICATE}
 * and their _TRACES_ forms, which win (OpenTelemetry Protocol Exporter
 * configuration).  Headers are "key=value,..." with percent-encoded
 * values, like the resource attributes.
 */
static void
cfg_otel_otlp(struct cfg_ctx *ctx, char *const *env)
{
	static const struct {
		const char *suffix, *path;
		int kind;	/* 's' scalar, 'h' header pairs, 't' ms */
	} vars[] = {
		{ "HEADERS", "exporter.headers", 'h' },
		{ "PROTOCOL", "exporter.otlp_protocol", 's' },
		{ "TIMEOUT", "exporter.timeout", 't' },
		{ "COMPRESSION", "exporter.compression", 's' },
		{ "CERTIFICATE", "exporter.tls_ca_file", 's' },
	};
	struct cfg_env_pairs pp;
	char name[64];
	const char *v;
	size_t i;
	int pass;

	for (i = 0; i < TS_NITEMS(vars); i++) {
		for (pass = 0; pass < 2; pass++) {
			snprintf(name, sizeof name, "OTEL_EXPORTER_OTLP_%s%s",
			    pass == 0 ? "" : "TRACES_", vars[i].suffix);
			if ((v = cfg_getenv_set(env, name)) == NULL)
				continue;
			if (vars[i].kind == 't' &&
			    strspn(v, "0123456789") == strlen(v)) {
				/* Milliseconds, where a bare number of the
				 * file is seconds. */
				char *ms;

				xasprintf(&ms, "%sms", v);
				(void)cfg_env_set(ctx, name, ms, vars[i].path,
				    's');
				free(ms);
				continue;
			}
			if (vars[i].kind != 'h') {
				(void)cfg_env_set(ctx, name, v, vars[i].path,
				    's');
				continue;
			}
			if (cfg_env_split(ctx, name, v, ",", '=', true,
			    vars[i].path, &pp) == 0)
				cfg_env_set_map(ctx, name, &pp, NULL,
				    vars[i].path);
			free(pp.copy);
		}
	}
}

/* The OpenTelemetry family: before every DD_* variable. */
static void
cfg_apply_otel_env(struct cfg_ctx *ctx, char *const *env)
{
	static const char *const dd_service[] = { "DD_SERVICE", NULL };
	static const char *const dd_styles[] = {
		"DD_TRACE_PROPAGATION_STYLE", NULL
	};
	const char *v;

	cfg_otel_resource(ctx, env);
	if ((v = cfg_otel_getenv(ctx, env, "OTEL_SERVICE_NAME",
	    dd_service)) != NULL)
		(void)cfg_env_set(ctx, "OTEL_SERVICE_NAME", v,
		    "tracing.service", 's');
	/*
	 * OTEL_PROPAGATORS: the same names as our styles ("b3" is the single
	 * header in both); DD_TRACE_PROPAGATION_STYLE_EXTRACT / _INJECT win
	 * over it for their half below.
	 */
	if ((v = cfg_otel_getenv(ctx, env, "OTEL_PROPAGATORS",
	    dd_styles)) != NULL && cfg_env_set(ctx, "OTEL_PROPAGATORS", v,
	    "propagation.extract", 'y') == 0)
		(void)cfg_env_set(ctx, "OTEL_PROPAGATORS", v,
		    "propagation.inject", 'y');
	cfg_otel_sampler(ctx, env);
	cfg_otel_exporter(ctx, env);
	cfg_otel_otlp(ctx, env);
}

/* The Datadog variables added with the OpenTelemetry ones. */
static void
cfg_apply_dd_more_env(struct cfg_ctx *ctx, char *const *env)
{
	struct cfg_env_pairs pp;
	struct yaml_tree_node n;
	const char *v;

	/* "key:value" separated by commas or blanks (Datadog DD_TAGS). */
	if ((v = cfg_getenv_set(env, "DD_TAGS")) != NULL) {
		if (cfg_env_split(ctx, "DD_TAGS", v, ", \t", ':', false,
		    "tracing.tags", &pp) == 0)
			cfg_env_set_map(ctx, "DD_TAGS", &pp, NULL,
			    "tracing.tags");
		free(pp.copy);
	}
	if ((v = cfg_getenv_set(env, "DD_TRACE_ENABLED")) != NULL) {
		if (util_strcaseeq(v, "false") || strcmp(v, "0") == 0)
			(void)cfg_env_set(ctx, "DD_TRACE_ENABLED", "none",
			    "exporter.type", 's');
		else if (!util_strcaseeq(v, "true") && strcmp(v, "1") != 0) {
			cfg_env_node(&n, "env:DD_TRACE_ENABLED", v);
			cfg_error(ctx, &n, "exporter.type", "expected true, "
			    "false, 1 or 0, got \"%s\"", v);
		}
	}
	if ((v = cfg_getenv_set(env, "DD_TRACE_CLIENT_IP_ENABLED")) != NULL)
		(void)cfg_env_set(ctx, "DD_TRACE_CLIENT_IP_ENABLED", v,
		    "tracing.client_ip", 'b');
}

/* One warning per DD_* / OTEL_* variable set but not read. */
static void
cfg_env_unsupported(struct cfg_ctx *ctx, char *const *env)
{
	const char *const *k;
	const char *eq;
	char name[128];
	size_t l;

	for (; env != NULL && *env != NULL; env++) {
		if (strncmp(*env, "DD_", 3) != 0 &&
		    strncmp(*env, "OTEL_", 5) != 0)
			continue;
		if ((eq = strchr(*env, '=')) == NULL || eq[1] == '\0')
			continue;
		l = (size_t)(eq - *env);
		for (k = config_env_names; *k != NULL; k++) {
			if (strlen(*k) == l && strncmp(*k, *env, l) == 0)
				break;
		}
		if (*k == NULL) {
			snprintf(name, sizeof name, "%.*s", (int)l, *env);
			cfg_env_warn(ctx, name, "not supported by tracestitch, "
			    "ignored");
		}
	}
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

	/* OpenTelemetry's first: Datadog's win (cfg_apply_otel_env). */
	cfg_apply_otel_env(ctx, env);
	cfg_apply_dd_more_env(ctx, env);
	cfg_env_unsupported(ctx, env);
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
/*
 * A server's copy of the route's settings (timeouts, keep-alive, TLS,
 * balancing and health keys); its URL parts are its own.
 */
static void
cfg_server_fill(struct config_upstream *su, const struct config_upstream *u)
{
	su->connect_timeout_ms = u->connect_timeout_ms;
	su->timeout_ms = u->timeout_ms;
	su->keepalive = u->keepalive;
	su->idle_timeout_ms = u->idle_timeout_ms;
	su->tls_verify = u->tls_verify;
	su->tls_ca_file = u->tls_ca_file != NULL ? xstrdup(u->tls_ca_file) :
	    NULL;
	su->tls_server_name = u->tls_server_name != NULL ?
	    xstrdup(u->tls_server_name) : NULL;
	su->balance = u->balance;
	su->resolve_interval_ms = u->resolve_interval_ms;
	su->max_fails = u->max_fails;
	su->eject_base_ms = u->eject_base_ms;
	su->eject_max_ms = u->eject_max_ms;
}

/*
 * routes[].upstream.servers given: every server has the route's scheme
 * (one TLS context per route), and the route's URL parts are the first
 * server's (its url names the route's upstream in logs).
 */
static void
cfg_servers_finish(struct cfg_ctx *ctx, struct config_route *r,
    struct cfg_route_scratch *rs, size_t idx)
{
	struct config_upstream *u = &r->upstream;
	const struct yaml_tree_node *at;
	char path[80];
	size_t k;

	(void)rs;
	for (k = 0; k < u->n_servers; k++) {
		if (u->servers[k].up.scheme == u->servers[0].up.scheme) {
			cfg_server_fill(&u->servers[k].up, u);
			continue;
		}
		snprintf(path, sizeof path, "routes[%zu].upstream.servers[%zu]",
		    idx, k);
		at = NULL;
		for (size_t p = 0; p < ctx->cfg->n_pos; p++) {
			if (strcmp(ctx->cfg->pos[p].key, path) == 0 &&
			    ctx->cfg->pos[p].file == NULL) {
				ctx->fallback_item.type = YAML_TREE_SCALAR;
				ctx->fallback_item.file = ctx->cfg->path;
				ctx->fallback_item.line = ctx->cfg->pos[p].line;
				ctx->fallback_item.col = ctx->cfg->pos[p].col;
				ctx->fallback_item.str =
				    (char *)(uintptr_t)"";
				at = &ctx->fallback_item;
			}
		}
		cfg_error(ctx, at, path, "every server of a route has the "
		    "same scheme (the TLS settings are the route's)");
		return;
	}
	u->scheme = u->servers[0].up.scheme;
	u->port = u->servers[0].up.port;
	free(u->url);
	free(u->host);
	free(u->authority);
	free(u->base_path);
	u->url = xstrdup(u->servers[0].up.url);
	u->host = xstrdup(u->servers[0].up.host);
	u->authority = xstrdup(u->servers[0].up.authority);
	u->base_path = xstrdup(u->servers[0].up.base_path);
}

/*
 * routes[].rum_intake given: the intake origin (intake_url, else the
 * site's) becomes the route's one upstream server, with the block's
 * timeouts and CA, always verified; an upstream of its own is refused.
 */
static void
cfg_rum_finish(struct cfg_ctx *ctx, struct config_route *r,
    struct cfg_route_scratch *rs, size_t idx)
{
	const struct yaml_tree_node *rum, *up;
	struct config_upstream *u = &r->upstream;
	const char *origin, *e;
	char path[64];

	if ((rum = yaml_tree_map_find(rs->node, "rum_intake")) == NULL ||
	    rum->type != YAML_TREE_MAP)
		return;
	up = yaml_tree_map_find(rs->node, "upstream");
	if (r->rum.intake_url == NULL && !r->rum.has_site) {
		/* The block without either key is what -T writes for a
		 * proxied route; on its own it is a relay with no intake. */
		if (up != NULL)
			return;
		r->rum.enabled = true;	/* no "upstream.url is missing" */
		/* Given but refused: its row said why. */
		if (rs->seen[cfg_find_row("routes[].rum_intake.site") -
		    cfg_schema] != NULL || rs->seen[cfg_find_row(
		    "routes[].rum_intake.intake_url") - cfg_schema] != NULL)
			return;
		snprintf(path, sizeof path, "routes[%zu].rum_intake", idx);
		cfg_error(ctx, rum, path, "give site (a Datadog site) or "
		    "intake_url");
		return;
	}
	r->rum.enabled = true;
	if (up != NULL) {
		snprintf(path, sizeof path, "routes[%zu].upstream", idx);
		cfg_error(ctx, up, path, "a rum_intake route has no upstream: "
		    "it sends to rum_intake.site or rum_intake.intake_url");
		return;
	}
	origin = r->rum.intake_url != NULL ? r->rum.intake_url :
	    cfg_rum_site_origins[r->rum.site];
	if ((e = cfg_parse_url(origin, u)) != NULL)
		return;		/* intake_url's row reported it */
	free(u->url);
	u->url = xstrdup(origin);
	u->timeout_ms = r->rum.timeout_ms;
	u->connect_timeout_ms = r->rum.connect_timeout_ms;
	u->tls_verify = true;
	free(u->tls_ca_file);
	u->tls_ca_file = r->rum.tls_ca_file != NULL ?
	    xstrdup(r->rum.tls_ca_file) : NULL;
}

static void
cfg_cross_checks(struct cfg_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	const struct yaml_tree_node *at;
	size_t i, j;

	cfg_check_listen(ctx);

	/* Checked item by item: parsed once here for the request path. */
	cfg->trusted = xcalloc(cfg->trusted_proxies.n + 1, sizeof *cfg->trusted);
	for (i = 0; i < cfg->trusted_proxies.n; i++) {
		const char *err;

		if (cidr_parse(cfg->trusted_proxies.v[i],
		    &cfg->trusted[cfg->n_trusted], &err) == 0)
			cfg->n_trusted++;
	}
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
		r->upstream.retry.on_mask = 0;
		for (size_t k = 0; k < r->upstream.retry.on.n; k++)
			r->upstream.retry.on_mask |= config_retry_bit(
			    r->upstream.retry.on.v[k]);
		cfg_rum_finish(ctx, r, rs, i);
		if (r->upstream.n_servers > 0 && (r->upstream.url != NULL ||
		    rs->seen[cfg_find_row("routes[].upstream.url") -
		    cfg_schema] != NULL)) {
			snprintf(path, sizeof path,
			    "routes[%zu].upstream.servers", i);
			cfg_error(ctx, rs->seen[cfg_find_row(
			    "routes[].upstream.servers") - cfg_schema], path,
			    "give url (one server) or servers, not both");
		} else if (r->upstream.n_servers > 0)
			cfg_servers_finish(ctx, r, rs, i);
		else if (r->upstream.url == NULL && !r->rum.enabled &&
		    rs->seen[cfg_find_row("routes[].upstream.url") -
		    cfg_schema] == NULL && rs->seen[cfg_find_row(
		    "routes[].upstream.servers") - cfg_schema] == NULL) {
			at = yaml_tree_map_find(rs->node, "upstream");
			snprintf(path, sizeof path, "routes[%zu].upstream.url",
			    i);
			cfg_error(ctx, at != NULL && at->type ==
			    YAML_TREE_MAP ? at : rs->node, path,
			    "required key is missing");
		}
		if (r->upstream.url != NULL && r->upstream.n_servers == 0) {
			/* url: the one-server short form. */
			r->upstream.servers = xcalloc(1,
			    sizeof *r->upstream.servers);
			r->upstream.n_servers = 1;
			r->upstream.servers[0].weight = 1;
			r->upstream.servers[0].up.url =
			    xstrdup(r->upstream.url);
			cfg_server_fill(&r->upstream.servers[0].up,
			    &r->upstream);
			r->upstream.servers[0].up.scheme = r->upstream.scheme;
			r->upstream.servers[0].up.host =
			    xstrdup(r->upstream.host);
			r->upstream.servers[0].up.port = r->upstream.port;
			r->upstream.servers[0].up.authority =
			    xstrdup(r->upstream.authority);
			r->upstream.servers[0].up.base_path =
			    xstrdup(r->upstream.base_path);
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
	cfg_strv_clear(&cfg->resolvers);
	for (i = 0; i < cfg->n_routes; i++) {
		struct config_route *r = &cfg->routes[i];

		free(r->name);
		free(r->host);
		free(r->path_prefix);
		free(r->rum.intake_url);
		free(r->rum.tls_ca_file);
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
	for (i = 0; i < cfg->exporter.n_headers; i++) {
		free(cfg->exporter.headers[i].key);
		free(cfg->exporter.headers[i].value);
	}
	free(cfg->exporter.headers);
	free(cfg->exporter.tls_ca_file);
	free(cfg->env_warnings);
	free(cfg->logging.access_log);
	free(cfg->logging.format);
	cfg_strv_clear(&cfg->trusted_proxies);
	free(cfg->trusted);
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

/* The name of an exporter type, as exporter.type spells it. */
const char *
config_exporter_name(enum config_exporter_type t)
{
	return (size_t)t < TS_NITEMS(cfg_exporter_names) - 1 ?
	    cfg_exporter_names[t] : "unknown";
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

/*
 * config_dump (tracestitch -T): YAML from the schema table, so that a new
 * row is dumped without a line here.  Block style for the sections, flow
 * style for lists and maps, strings double-quoted.
 */

/* s as a YAML double-quoted scalar (YAML 1.2, 5.7 escapes). */
static void
cfg_dump_str(FILE *f, const char *s)
{
	const unsigned char *p;

	if (s == NULL) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* The value of row r stored at base, on the rest of the line. */
static void
cfg_dump_value(FILE *f, const struct cfg_row *r, const void *base)
{
	const void *fp = (const char *)base + r->off;
	size_t cnt = r->cnt != 0 ?
	    *(const size_t *)(const void *)((const char *)base + r->cnt) : 0;
	char buf[32];
	size_t i;

	switch (r->type) {
	case CT_UINT:
		fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)fp);
		break;
	case CT_UNSIGNED:
	case CT_WORKERS:
		fprintf(f, "%u", *(const unsigned *)fp);
		break;
	case CT_DURATION:
		cfg_fmt_duration(*(const uint64_t *)fp, buf, sizeof buf);
		fputs(buf, f);
		break;
	case CT_SIZE:
		cfg_fmt_size(*(const uint64_t *)fp, buf, sizeof buf);
		fputs(buf, f);
		break;
	case CT_BOOL:
		fputs(*(const bool *)fp ? "true" : "false", f);
		break;
	case CT_FLOAT:
		if (r->has != 0 &&
		    !*(const bool *)(const void *)((const char *)base +
		    r->has - 1))
			fputs("null", f);
		else {
			/* The shortest of the two that reads back equal. */
			double dv = *(const double *)fp;

			snprintf(buf, sizeof buf, "%.15g", dv);
			if (strtod(buf, NULL) != dv)
				snprintf(buf, sizeof buf, "%.17g", dv);
			fputs(buf, f);
		}
		break;
	case CT_STRING:
		cfg_dump_str(f, *(char *const *)fp);
		break;
	case CT_ENUM:
		fputs(r->choices[*(const int *)fp], f);
		break;
	case CT_STRV: {
		const struct config_strv *sv = fp;

		fputc('[', f);
		for (i = 0; i < sv->n; i++) {
			fputs(i == 0 ? "" : ", ", f);
			cfg_dump_str(f, sv->v[i]);
		}
		fputc(']', f);
		break;
	}
	case CT_STYLES: {
		const enum config_style *st = fp;

		/* An empty list is "none" (the style list rules). */
		fputc('[', f);
		for (i = 0; i < cnt; i++)
			fprintf(f, "%s%s", i == 0 ? "" : ", ",
			    config_style_name(st[i]));
		fputs(cnt == 0 ? "none]" : "]", f);
		break;
	}
	case CT_MAP: {
		const struct config_kv *kv = *(struct config_kv *const *)fp;

		fputc('{', f);
		for (i = 0; i < cnt; i++) {
			fputs(i == 0 ? "" : ", ", f);
			cfg_dump_str(f, kv[i].key);
			fputs(": ", f);
			cfg_dump_str(f, (r->flags & CF_SECRET) ?
			    "<redacted>" : kv[i].value);
		}
		fputc('}', f);
		break;
	}
	case CT_ADDR:
		cfg_dump_str(f, ((const struct config_addr *)fp)->text);
		break;
	case CT_ADDRV: {
		const struct config_addr *av =
		    *(struct config_addr *const *)fp;

		fputc('[', f);
		for (i = 0; i < cnt; i++) {
			fputs(i == 0 ? "" : ", ", f);
			if (av[i].proxy_protocol)
				fputs("{address: ", f);
			cfg_dump_str(f, av[i].text);
			if (av[i].proxy_protocol)
				fputs(", proxy_protocol: true}", f);
		}
		fputc(']', f);
		break;
	}
	case CT_URL:
		cfg_dump_str(f, ((const struct config_upstream *)fp)->url);
		break;
	case CT_SERVERS: {
		const struct config_server *sv =
		    *(const struct config_server *const *)fp;

		fputc('[', f);
		for (i = 0; i < cnt; i++) {
			fputs(i > 0 ? ", {url: " : "{url: ", f);
			cfg_dump_str(f, sv[i].up.url);
			fprintf(f, ", weight: %u}", sv[i].weight);
		}
		fputc(']', f);
		break;
	}
	default:
		fputs("null", f);
		break;
	}
}

/* Whether u is dumped as servers (else as its one-server url). */
static bool
cfg_servers_form(const struct config_upstream *u)
{
	return u->n_servers > 1 ||
	    (u->n_servers == 1 && u->servers[0].weight != 1);
}

/* Where the dump is: the sections open and how to start a line. */
struct cfg_dump {
	FILE *f;
	char open[4][48];	/* section names open, outermost first */
	size_t nopen;
	unsigned indent;	/* of the outermost level */
	bool dash;		/* the next line starts a list item */
};

/* Write "key:" for path (relative), opening the sections it needs. */
static void
cfg_dump_key(struct cfg_dump *d, const char *path)
{
	char seg[4][48];
	size_t n = 0, i, keep;
	const char *p = path, *dot;

	while ((dot = strchr(p, '.')) != NULL && n < 3) {
		snprintf(seg[n++], sizeof seg[0], "%.*s", (int)(dot - p), p);
		p = dot + 1;
	}
	for (keep = 0; keep < n && keep < d->nopen &&
	    strcmp(seg[keep], d->open[keep]) == 0; keep++)
		;
	d->nopen = keep;
	for (i = keep; i <= n; i++) {
		unsigned ind = d->indent + 2 * (unsigned)i;

		if (d->dash) {
			fprintf(d->f, "%*s- ", ind >= 2 ? (int)ind - 2 : 0, "");
			d->dash = false;
		} else
			fprintf(d->f, "%*s", (int)ind, "");
		if (i < n) {
			fprintf(d->f, "%s:\n", seg[i]);
			snprintf(d->open[d->nopen++], sizeof d->open[0], "%s",
			    seg[i]);
		} else
			fprintf(d->f, "%s:", p);
	}
}

/*
 * Rows of one base whose path starts with prefix, at base; the prefix is
 * left out of the keys when strip (list items, route overrides).
 */
static void
cfg_dump_rows(struct cfg_dump *d, const struct config *cfg,
    enum cfg_base kind, const char *prefix, bool strip, const void *base)
{
	size_t i, l = strlen(prefix), sl = strip ? l : 0;

	for (i = 0; i < CFG_NROWS; i++) {
		const struct cfg_row *r = &cfg_schema[i];
		const struct config_route *route = base;

		if (r->base != kind || strncmp(r->path, prefix, l) != 0)
			continue;
		/* A per-route override given or not: only when given. */
		if (r->has != 0 && !(r->flags & CF_NULLABLE) &&
		    !*(const bool *)(const void *)((const char *)base +
		    r->has - 1))
			continue;
		/* A relay's upstream is its intake, written as rum_intake. */
		if (kind == CB_ROUTE && route->rum.enabled &&
		    strncmp(r->path, "routes[].upstream.", 18) == 0)
			continue;
		if (r->type == CT_ROUTE_CORS) {
			if (route->cors == &cfg->cors)
				continue;	/* the top-level block */
			cfg_dump_key(d, r->path + sl);
			if (route->cors == NULL) {
				fputs(" false\n", d->f);
				continue;
			}
			fputs("\n", d->f);
			{
				struct cfg_dump sub;

				memset(&sub, 0, sizeof sub);
				sub.f = d->f;
				sub.indent = d->indent + 2;
				cfg_dump_rows(&sub, cfg, CB_CORS, "cors.",
				    true, route->cors);
			}
			continue;
		}
		/* A route's backends in the form they can be read back in:
		 * one server of weight 1 as url, else servers (not both). */
		if ((r->type == CT_URL || r->type == CT_SERVERS) &&
		    kind == CB_ROUTE && (r->type == CT_SERVERS) !=
		    cfg_servers_form(&route->upstream))
			continue;
		if (r->base == CB_CONFIG && r->on != 0 &&
		    !*(const bool *)(const void *)((const char *)base +
		    r->on - 1))
			continue;
		cfg_dump_key(d, r->path + sl);
		fputc(' ', d->f);
		cfg_dump_value(d->f, r, base);
		fputc('\n', d->f);
	}
}

/* tracestitch -T (config.h). */
void
config_dump(const struct config *cfg, FILE *f)
{
	struct cfg_dump d;
	char sect[64];
	size_t i, j, r;

	memset(&d, 0, sizeof d);
	d.f = f;
	fprintf(f, "# tracestitch effective configuration: %s with the "
	    "environment,\n# defaults filled in, secrets redacted\n",
	    cfg->path);
	/*
	 * The sections in table order, each once, as its first row comes:
	 * a section added to the schema is dumped without a line here.
	 */
	for (r = 0; r < CFG_NROWS; r++) {
		const struct cfg_row *row = &cfg_schema[r];
		size_t l = strcspn(row->path, ".[");

		for (j = 0; j < r; j++) {
			if (strncmp(cfg_schema[j].path, row->path, l) == 0 &&
			    strcspn(cfg_schema[j].path, ".[") == l)
				break;
		}
		if (j < r)
			continue;	/* section done */
		snprintf(sect, sizeof sect, "%.*s.", (int)l, row->path);
		if (row->base == CB_ROUTE) {
			fputs("routes:\n", f);
			for (i = 0; i < cfg->n_routes; i++) {
				struct cfg_dump rd;

				memset(&rd, 0, sizeof rd);
				rd.f = f;
				rd.indent = 4;
				rd.dash = true;
				cfg_dump_rows(&rd, cfg, CB_ROUTE, "routes[].",
				    true, &cfg->routes[i]);
			}
		} else if (row->base == CB_CORS) {
			if (cfg->has_cors)
				cfg_dump_rows(&d, cfg, CB_CORS, "", false,
				    &cfg->cors);
		} else if (strcmp(sect, "admin.") != 0 || cfg->has_admin)
			cfg_dump_rows(&d, cfg, CB_CONFIG, sect, false, cfg);
		d.nopen = 0;
		if (strcmp(sect, "tracing.") == 0 &&
		    cfg->tracing.sampling_rules != NULL) {
			fputs("# tracing sampling rules (DD_TRACE_SAMPLING_RULES): ",
			    f);
			fputs(cfg->tracing.sampling_rules, f);
			fputc('\n', f);
		}
	}
}
