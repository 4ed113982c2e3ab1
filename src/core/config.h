/*
 * config.h -- the typed, validated configuration.
 *
 * config_load() reads a YAML file through yaml_tree.c, validates it
 * against the schema table in config.c (every key: type, range, default,
 * reloadable flag, help text), applies the DD_* / OTEL_* environment
 * overrides (the environment wins over the file) and returns an immutable,
 * reference-counted snapshot.  Errors are collected, never half-applied:
 * every problem is one line "file:line:col: key.path: message".
 *
 * Ownership: config_load returns a config with one reference; every
 * holder takes config_ref() and drops config_unref(); the last unref frees
 * it.  All strings and arrays inside are owned by the config.  Nothing in
 * a loaded config is ever modified (SIGHUP builds a new one and swaps).
 */
#ifndef TS_CONFIG_H
#define TS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "cidr.h"
#include "styles.h"

/* A list of strings, in file order. */
struct config_strv {
	char **v;
	size_t n;
};

/* A "host:port" listen address, split. */
struct config_addr {
	char *host;		/* "0.0.0.0", "127.0.0.1", "::1" (no brackets) */
	uint16_t port;		/* 0: pick a free port (tests) */
	char *text;		/* as written in the file */
	bool proxy_protocol;	/* server.listen[i].proxy_protocol */
};

enum config_scheme {
	CONFIG_SCHEME_HTTP = 0,
	CONFIG_SCHEME_HTTPS,
};

enum config_balance {
	CONFIG_BALANCE_ROUND_ROBIN = 0,	/* smooth weighted (nginx) */
	CONFIG_BALANCE_LEAST_REQUEST,	/* power of two choices */
	CONFIG_BALANCE_HASH,		/* consistent hash (hash_on) */
};

struct config_server;

/* routes[].upstream.health_check: off while path is NULL. */
struct config_health_check {
	char *path;			/* GET path, NULL: no active checks */
	uint64_t interval_ms;
	uint64_t timeout_ms;
	unsigned healthy_threshold;	/* passes in a row to come back */
	unsigned unhealthy_threshold;	/* failures in a row to go out */
};

/*
 * routes[].upstream.retry (docs/upstreams.md, "Retries"): which failures
 * send a request to another server, how many times, and the budget that
 * bounds retries against a sick backend (Envoy's retry_policy and retry
 * budget, nginx's proxy_next_upstream).
 */
#define CONFIG_RETRY_CONNECT	0x01	/* connect_failure */
#define CONFIG_RETRY_RESET	0x02	/* reset */
#define CONFIG_RETRY_TIMEOUT	0x04	/* timeout */
#define CONFIG_RETRY_502	0x08
#define CONFIG_RETRY_503	0x10
#define CONFIG_RETRY_504	0x20
struct config_retry {
	struct config_strv on;		/* as written */
	unsigned on_mask;		/* CONFIG_RETRY_*, from on */
	unsigned tries;			/* attempts in all, 1: no retry */
	uint64_t per_try_timeout_ms;	/* 0: the route's timeout only */
	unsigned budget_percent;	/* of the route's requests */
	unsigned budget_min_per_second;	/* on top, per process */
};

struct config_upstream {
	char *url;		/* as written; servers: the first one's */
	enum config_scheme scheme;
	char *host;		/* host part of the URL (no brackets) */
	uint16_t port;		/* explicit or 80/443 */
	char *authority;	/* "host[:port]" as sent in Host by default */
	char *base_path;	/* path part of the URL without trailing '/', may be "" */
	uint64_t connect_timeout_ms;
	uint64_t timeout_ms;	/* whole response head + idle gaps in the body */
	unsigned keepalive;	/* idle connections kept per worker */
	uint64_t idle_timeout_ms; /* an idle kept connection is closed */
	bool tls_verify;	/* https: verify certificate and host name */
	char *tls_ca_file;	/* https: CA bundle, NULL: system default */
	char *tls_server_name;	/* https: SNI/verify name, NULL: host */
	/*
	 * The servers: routes[].upstream.servers, or the one of url.  Each
	 * is a copy of this block with its own URL parts (servers NULL in
	 * the copies), so a pool is made from a server alone.  Always at
	 * least one after loading; every server has the route's scheme.
	 */
	struct config_server *servers;
	size_t n_servers;
	enum config_balance balance;
	char *hash_on;		/* "client_address", "header:N", "cookie:N" */
	uint64_t resolve_interval_ms;	/* names are looked up again */
	unsigned max_fails;	/* failures in a row that eject a server */
	uint64_t eject_base_ms;	/* first ejection; doubled in a row */
	uint64_t eject_max_ms;
	struct config_health_check health_check;
	struct config_retry retry;	/* the route's block only */
};

/* One server of a route: its URL parts in up, and its weight. */
struct config_server {
	struct config_upstream up;
	unsigned weight;
};

enum config_on_disallowed {
	CONFIG_CORS_REJECT = 0,
	CONFIG_CORS_PASS,
};

struct config_cors {
	struct config_strv allowed_origins;
	struct config_strv allowed_methods;
	struct config_strv allowed_headers;
	struct config_strv exposed_headers;
	bool allow_credentials;
	uint64_t max_age;		/* seconds */
	bool allow_private_network;
	bool timing_allow_origin;
	enum config_on_disallowed on_disallowed;
};

/* enum config_style and the names of the styles: styles.h. */
#define CONFIG_MAX_STYLES 8

enum config_behavior {
	CONFIG_BEHAVIOR_CONTINUE = 0,
	CONFIG_BEHAVIOR_RESTART,
	CONFIG_BEHAVIOR_IGNORE,
};

struct config_propagation {
	enum config_style extract[CONFIG_MAX_STYLES];
	size_t n_extract;
	enum config_style inject[CONFIG_MAX_STYLES];
	size_t n_inject;
	bool extract_first;
	enum config_behavior behavior;
	uint64_t tags_max_length;	/* x-datadog-tags limit, 0 disables */
};

struct config_kv {
	char *key;
	char *value;
};

struct config_tracing {
	char *service;
	char *env;		/* "" when unset */
	char *version;		/* "" when unset */
	char *span_name;
	bool has_sample_rate;	/* false: null */
	double sample_rate;	/* 0..1 when has_sample_rate */
	char *sampling_rules;	/* DD_TRACE_SAMPLING_RULES JSON, NULL if unset */
	double rate_limit;	/* traces per second kept by sample_rate/rules */
	bool trace_preflights;
	bool trace_id_128bit;
	bool redact_query;
	struct config_strv baggage_tag_keys;
	struct config_kv *tags;	/* extra span tags */
	size_t n_tags;
	bool client_ip;		/* http.client_ip on the span
				   (DD_TRACE_CLIENT_IP_ENABLED) */
};

enum config_exporter_type {
	CONFIG_EXPORTER_DATADOG = 0,
	CONFIG_EXPORTER_OTLP,
	CONFIG_EXPORTER_STDOUT,
	CONFIG_EXPORTER_NONE,
};

enum config_otlp_protocol {
	CONFIG_OTLP_PROTOBUF = 0,	/* http/protobuf, the SDKs' default */
	CONFIG_OTLP_JSON,		/* http/json */
};

enum config_compression {
	CONFIG_COMPRESSION_NONE = 0,
	CONFIG_COMPRESSION_GZIP,
};

struct config_exporter {
	enum config_exporter_type type;
	char *datadog_url;	/* http://host:port or unix:///path */
	char *otlp_endpoint;	/* full URL of /v1/traces */
	enum config_otlp_protocol otlp_protocol;
	struct config_kv *headers;	/* extra request headers (API keys) */
	size_t n_headers;
	enum config_compression compression;	/* of OTLP bodies */
	char *tls_ca_file;	/* https: CA bundle, NULL the system's */
	uint64_t timeout_ms;	/* per export request */
	uint64_t flush_interval_ms;
	uint64_t max_queue_spans;
	uint64_t thread_nice;	/* added to the exporter thread's nice */
};

enum config_access_format {
	CONFIG_ACCESS_JSON = 0,	/* Datadog's standard attributes */
	CONFIG_ACCESS_COMBINED,	/* nginx's combined format */
};

struct config_logging {
	int level;		/* enum log_level */
	char *access_log;	/* "stdout", "stderr", "off" or a path */
	char *format;		/* "json" */
	int access_log_format;	/* enum config_access_format */
};

struct config_route {
	char *name;
	char *host;		/* NULL: any host; compared case-insensitively */
	char *path_prefix;	/* default "/" */
	size_t path_prefix_len;
	struct config_upstream upstream;
	/*
	 * Effective CORS policy of this route: the global block merged with
	 * the route's own "cors" override (keys given there win).  NULL when
	 * neither the global block nor the route has CORS, or the route
	 * says "cors: false".
	 */
	const struct config_cors *cors;
	struct config_cors *cors_own;	/* storage when merged; else NULL */
	bool has_behavior;		/* route overrides propagation.behavior */
	enum config_behavior behavior;
	bool websocket;			/* routes[].websocket.enabled */
	uint64_t websocket_idle_ms;	/* a tunnel with no byte either way */
	/*
	 * routes[].rum_intake (docs/rum-relay.md): the route relays the
	 * Browser SDK's batches (its `proxy` option) to the intake, which
	 * is then the route's upstream (url and parts filled in from site
	 * or intake_url when loading; upstream is refused on such a route).
	 */
	struct {
		bool enabled;		/* the block is present */
		bool has_site;
		int site;		/* index in the site table (config.c) */
		char *intake_url;	/* NULL: the site's intake origin */
		uint64_t max_body_bytes;	/* 413 above */
		uint64_t timeout_ms;		/* upstream.timeout_ms */
		uint64_t connect_timeout_ms;
		char *tls_ca_file;	/* upstream.tls_ca_file */
		bool trace;		/* a gateway span per relay request */
	} rum;
};

struct config_tls {
	char *cert;		/* NULL: plain HTTP */
	char *key;
};

struct config_limits {
	uint64_t max_header_bytes;
	uint64_t max_header_fields;	/* 431 above */
	uint64_t max_body_bytes;
	uint64_t header_timeout_ms;
	uint64_t body_timeout_ms;	/* gap allowed between body reads */
	uint64_t body_min_rate;		/* bytes/s after body_timeout, 0: off */
	uint64_t idle_timeout_ms;
	uint64_t max_connections;	/* per process */
	uint64_t max_buffered_body_bytes; /* per process, 0: no budget */
};

/* server.http2*: the HTTP/2 front-end (h2.c, docs/configuration.md). */
struct config_http2 {
	bool enabled;			/* server.http2: ALPN h2 on TLS */
	bool cleartext;			/* server.http2_cleartext: h2c prior
					 * knowledge on plaintext listeners */
	uint64_t max_concurrent_streams;
	uint64_t stream_window;		/* initial receive window, bytes */
	uint64_t flood_interval_ms;	/* the window of the caps below */
	uint64_t max_resets;		/* RST_STREAM from the client */
	uint64_t max_control_frames;	/* SETTINGS and PING */
	uint64_t max_empty_frames;	/* empty DATA/HEADERS/CONTINUATION */
	uint64_t max_continuations;	/* CONTINUATION frames per block */
};

/*
 * Where a key was written, for errors found after loading: "routes[0].
 * cors.allowed_origins[2]", "server.tls.cert".  file is NULL for the
 * config's own file, else the label of an override ("env:DD_ENV", line
 * and col 0).  Keys left at their default have no entry.
 */
struct config_pos {
	char *key;
	char *file;
	unsigned line, col;
};

struct config {
	int refs;			/* atomic */
	char *path;			/* file it was loaded from */
	struct config_pos *pos;		/* key -> position, in load order */
	size_t n_pos;

	struct config_addr *listen;	/* server.listen */
	size_t n_listen;
	struct config_tls tls;		/* server.tls */
	unsigned workers;		/* resolved: "auto" -> cores */
	uint64_t backlog;		/* server.backlog: listen() queue */
	uint64_t drain_timeout_ms;	/* server.drain_timeout */
	struct config_limits limits;	/* server.limits */
	/*
	 * server.trusted_proxies as written, and parsed (cidr.h): a peer in
	 * one of them has its X-Forwarded-* kept (docs/deployment.md).
	 */
	struct config_strv trusted_proxies;
	struct cidr *trusted;
	size_t n_trusted;
	bool proxy_protocol;		/* server.proxy_protocol */
	struct config_http2 http2;	/* server.http2* */

	bool has_admin;
	struct config_addr admin_listen;
	bool admin_debug;		/* admin.debug: /debug/propagation */
	bool admin_debug_listeners;	/* admin.debug_listeners: also on
					 * the proxy listeners (h1 and h2) */
	bool readyz_requires_upstreams;	/* /readyz: a healthy server each */
	struct config_strv resolvers;	/* server.resolvers: DNS servers */

	struct config_route *routes;
	size_t n_routes;

	bool has_cors;			/* the top-level block is present */
	struct config_cors cors;
	struct config_propagation propagation;
	struct config_tracing tracing;
	struct config_exporter exporter;
	struct config_logging logging;

	/*
	 * "env:NAME: ..." lines, one per DD_* / OTEL_* variable that is set
	 * but not supported; NULL when none.  main prints them once at
	 * startup (and -n / -T to stderr); a reload does not repeat them.
	 */
	char *env_warnings;
};

/*
 * Load and validate path.  On success *out holds a config with one
 * reference and 0 is returned.  On failure -1 is returned and *errors
 * holds every error, one per line ("file:line:col: key.path: message"),
 * newline-terminated; the caller frees it.  env is consulted for the
 * DD_* / OTEL_* overrides (pass environ; tests pass their own array).
 */
int config_load(const char *path, char *const *env, struct config **out,
    char **errors) TS_MUSTCHECK;
/* Same, from an in-memory document; name is used in error positions. */
int config_load_string(const char *name, const char *text, size_t len,
    char *const *env, struct config **out, char **errors) TS_MUSTCHECK;

struct config *config_ref(struct config *);
void config_unref(struct config *);

/*
 * Keys that differ between old and new and cannot change on reload (the
 * schema rows flagged so, config_schema_reloads): returns 0 if none, else
 * -1 with *cause "key, key: cannot change on reload (restart instead)",
 * keys in schema order (caller frees).
 */
int config_check_reload(const struct config *old, const struct config *new,
    char **cause) TS_MUSTCHECK;

/*
 * The refusals of what is built from a loaded config before it serves
 * (CORS policies, TLS contexts, the exporter, the access log, listen
 * addresses: server.c and main.c), collected all at once and positioned
 * like load errors, "file:line:col: key.path: message", through the
 * config's key map.  Warnings are lines "file:line:col: key.path:
 * warning: message" and do not refuse.  A line already collected is not
 * added twice (a global cors block shared by several routes).
 * Storage is the caller's; config_errors_clear frees the text.
 */
struct config_errors {
	const struct config *cfg;	/* borrowed */
	char *errors;			/* NUL-terminated lines, or NULL */
	size_t errlen;
	unsigned nerrors;
	char *warnings;			/* NUL-terminated lines, or NULL */
	size_t warnlen;
	unsigned nwarnings;
};
void config_errors_init(struct config_errors *, const struct config *);
void config_errors_clear(struct config_errors *);
/*
 * Add a refusal at key (a full path as in config_pos).  A key with no
 * entry of its own is found as it is written: "routes[N].cors.x" that
 * the route inherited from the top-level block is reported as "cors.x";
 * else the position of its closest written parent is used, else
 * "file:1:1".
 */
void config_error_at(struct config_errors *, const char *key,
    const char *fmt, ...) TS_PRINTFLIKE(3, 4);
void config_warn_at(struct config_errors *, const char *key,
    const char *fmt, ...) TS_PRINTFLIKE(3, 4);
/* The position of key itself (no fallback): 0, or -1 when not written. */
int config_key_pos(const struct config *, const char *key,
    const struct config_pos **out) TS_MUSTCHECK;

/* The CONFIG_RETRY_* bit of a routes[].upstream.retry.on name, 0: none. */
unsigned config_retry_bit(const char *);
/* The name of an exporter type ("datadog", "otlp", "stdout", "none"). */
const char *config_exporter_name(enum config_exporter_type);
/* The name of a style (styles_name: "datadog", "b3multi", ...). */
const char *config_style_name(enum config_style);

/*
 * A propagation style list being read (PROPAGATION.md 7.1).  One parser
 * reads the YAML lists (each item), the DD_TRACE_PROPAGATION_STYLE*
 * variables (the whole value) and the test vectors' configurations:
 * names separated by commas and/or blanks, case-insensitive, each name
 * at most once; "b3 single header" (blanks between the words) is the old
 * name of b3; "none" must be alone and leaves the list empty.
 */
struct config_styles {
	enum config_style	 v[CONFIG_MAX_STYLES];
	size_t			 n;		/* styles in v */
	size_t			 names;		/* names read, "none" too */
	bool			 none;		/* "none" was listed */
};

/* An empty list, before the first name. */
void config_styles_init(struct config_styles *);
/*
 * Read the next name of s[*pos, len) into the list.  Returns 1 when a
 * name was added, 0 at the end of s, and -1 when the name is unknown or
 * already listed: msg (size bytes) then holds the whole message
 * ("expected a propagation style (...), got \"w3c\"") and *pos is past
 * that name, so a caller can go on and report every problem.
 */
int config_styles_next(struct config_styles *, const char *s, size_t len,
    size_t *pos, char *msg, size_t size);
/* After the last name: 0, or -1 with msg when "none" is not alone. */
int config_styles_finish(const struct config_styles *, char *msg,
    size_t size) TS_MUSTCHECK;
/* A whole list at once (a DD_* value); -1 with msg at the first problem,
 * also when s lists no name at all. */
int config_styles_parse(const char *s, struct config_styles *, char *msg,
    size_t size) TS_MUSTCHECK;

/*
 * The schema, for documentation and the test that checks that
 * conf/tracestitch.yaml documents every key.  Paths use "routes[].x" for
 * list items.  Returns the number of keys; *paths is a static array.
 */
size_t config_schema_keys(const char *const **paths);
/*
 * Whether a reload may change the schema key path (its row's CF_NORELOAD
 * flag, the only source config_check_reload reads): 1 it may, 0 it may
 * not, -1 no such key.
 */
int config_schema_reloads(const char *path);

/*
 * The effective configuration as YAML (tracestitch -T): every key of the
 * schema in table order, defaults filled in, the environment applied,
 * secrets (exporter.headers values) masked as "<redacted>".  What it
 * writes loads again to the same configuration (a test checks), except
 * DD_TRACE_SAMPLING_RULES (no file key), written as a comment.
 */
void config_dump(const struct config *, FILE *);

/*
 * The DD_* / OTEL_* variables config_load reads (docs/configuration.md,
 * "Environment"), NULL-terminated; any other DD_* / OTEL_* variable that
 * is set gets a line in config.env_warnings.
 */
extern const char *const config_env_names[];

/*
 * A checker for DD_TRACE_SAMPLING_RULES beyond "a JSON array": 0, or -1
 * with *cause (freed by config.c).  main.c installs the sampler's
 * (trace/ depends on core/, not the other way round); NULL: none.
 */
typedef int config_rules_check_fn(const char *json, char **cause);
void config_set_rules_check(config_rules_check_fn *);

#endif /* TS_CONFIG_H */
