/*
 * test_config.c -- the configuration loader: defaults, a file with every
 * key, the bad fixtures (tests/data/config/bad/NAME.yaml against the
 * exact lines of NAME.err), environment overrides, per-route CORS
 * resolution, the shipped conf/ files, refcounting and reload checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ts_test.h"
#include "trace/sampler.h"
#include "util.h"
#include "yaml_tree.h"

static char *const no_env[] = { NULL };

/* Rows of tests/data/config/env/variables.tsv (comments left out). */
#define ENV_TABLE_ROWS 66

/* Read a whole file into a NUL-terminated buffer (caller frees). */
static char *
read_file(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = xmalloc((size_t)n + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (lenp != NULL)
		*lenp = (size_t)n;
	return buf;
}

/* What -T prints for cfg (config_dump), as a string to free. */
static char *
dump_of(const struct config *cfg)
{
	char *d = NULL;
	size_t len = 0;
	FILE *f;

	ck_assert_ptr_nonnull(f = open_memstream(&d, &len));
	config_dump(cfg, f);
	fclose(f);
	return d;
}

/* Load a document that must be valid. */
static struct config *
load_ok(const char *text, char *const *env)
{
	struct config *cfg;
	char *errors;

	if (config_load_string("t.yaml", text, strlen(text), env, &cfg,
	    &errors) != 0)
		ck_abort_msg("unexpected errors:\n%s", errors);
	ck_assert_ptr_null(errors);
	return cfg;
}

/* Load a document that must fail; returns the errors. */
static char *
load_bad(const char *text, char *const *env)
{
	struct config *cfg;
	char *errors;

	ck_assert_int_eq(config_load_string("t.yaml", text, strlen(text), env,
	    &cfg, &errors), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(errors);
	return errors;
}

/*
 * -T's dump of a route's backends reads back as they were: several
 * servers (or one with a weight) as servers, one of weight 1 as url; a
 * dump naming both was refused when read back.
 */
START_TEST(test_dump_servers_round_trip)
{
	static const char text[] =
	    "routes:\n"
	    "  - path_prefix: /a\n"
	    "    upstream:\n"
	    "      servers: [{url: \"http://127.0.0.1:9\", weight: 3},\n"
	    "        \"http://127.0.0.1:10\"]\n"
	    "  - path_prefix: /\n"
	    "    upstream: {url: \"http://127.0.0.1:11\"}\n";
	char *const env[] = { NULL };
	struct config *a, *b;
	char *d1, *d2;

	a = load_ok(text, env);
	d1 = dump_of(a);
	ck_assert_ptr_nonnull(strstr(d1, "servers: [{url: "
	    "\"http://127.0.0.1:9\", weight: 3}, {url: "
	    "\"http://127.0.0.1:10\", weight: 1}]"));
	ck_assert_ptr_nonnull(strstr(d1, "url: \"http://127.0.0.1:11\""));
	b = load_ok(d1, env);
	ck_assert_uint_eq(b->routes[0].upstream.n_servers, 2);
	ck_assert_uint_eq(b->routes[0].upstream.servers[0].weight, 3);
	d2 = dump_of(b);
	ck_assert_str_eq(d1, d2);
	free(d1);
	free(d2);
	config_unref(a);
	config_unref(b);
}
END_TEST

/*
 * server.listen items with options (issue 14 item 5): the short form and
 * {address, proxy_protocol} side by side; -T dumps a listener with the
 * PROXY protocol as a map and the others as strings, and the dump reads
 * back to the same listeners (config_dump round trip).  With server.tls
 * the PROXY protocol is no longer refused.
 */
START_TEST(test_listen_options_round_trip)
{
	static const char text[] =
	    "server:\n"
	    "  listen:\n"
	    "    - \"127.0.0.1:8080\"\n"
	    "    - {address: \"127.0.0.1:8443\", proxy_protocol: true}\n"
	    "    - {address: \"[::1]:8081\", proxy_protocol: false}\n"
	    "  tls: {cert: /etc/ssl/a.pem, key: /etc/ssl/a.key}\n"
	    "routes:\n"
	    "  - upstream: {url: \"http://127.0.0.1:9\"}\n";
	char *const env[] = { NULL };
	struct config *a, *b;
	char *d1, *d2;

	a = load_ok(text, env);
	ck_assert_uint_eq(a->n_listen, 3);
	ck_assert(!a->listen[0].proxy_protocol);
	ck_assert(a->listen[1].proxy_protocol);
	ck_assert_uint_eq(a->listen[1].port, 8443);
	ck_assert(!a->listen[2].proxy_protocol);
	ck_assert_str_eq(a->listen[2].host, "::1");
	ck_assert(!a->proxy_protocol);
	d1 = dump_of(a);
	ck_assert_msg(strstr(d1, "listen: [\"127.0.0.1:8080\", {address: "
	    "\"127.0.0.1:8443\", proxy_protocol: true}, \"[::1]:8081\"]") !=
	    NULL, "dump: %s", d1);
	b = load_ok(d1, env);
	ck_assert_uint_eq(b->n_listen, 3);
	ck_assert(b->listen[1].proxy_protocol);
	d2 = dump_of(b);
	ck_assert_str_eq(d1, d2);
	free(d1);
	free(d2);
	config_unref(a);
	config_unref(b);
}
END_TEST

/*
 * A relay route dumps as rum_intake without an upstream block (its
 * upstream is derived; the loader refuses both), and reads back the same.
 */
START_TEST(test_dump_rum_intake_round_trip)
{
	static const char text[] =
	    "routes:\n"
	    "  - path_prefix: /rum\n"
	    "    rum_intake: {site: us5.datadoghq.com, trace: true}\n"
	    "  - path_prefix: /rum2\n"
	    "    rum_intake: {intake_url: \"https://127.0.0.1:9/x\"}\n"
	    "  - path_prefix: /\n"
	    "    upstream: {url: \"http://127.0.0.1:11\"}\n";
	char *const env[] = { NULL };
	struct config *a, *b;
	char *d1, *d2;

	a = load_ok(text, env);
	d1 = dump_of(a);
	ck_assert_ptr_nonnull(strstr(d1, "site: us5.datadoghq.com"));
	ck_assert_ptr_null(strstr(d1, "browser-intake"));
	b = load_ok(d1, env);
	ck_assert(b->routes[0].rum.enabled && b->routes[0].rum.trace);
	ck_assert_str_eq(b->routes[0].upstream.url,
	    "https://browser-intake-us5-datadoghq.com");
	ck_assert_str_eq(b->routes[1].upstream.url, "https://127.0.0.1:9/x");
	ck_assert(!b->routes[2].rum.enabled);
	d2 = dump_of(b);
	ck_assert_str_eq(d1, d2);
	free(d1);
	free(d2);
	config_unref(a);
	config_unref(b);
}
END_TEST

static const char minimal[] =
    "routes:\n  - upstream: {url: \"http://127.0.0.1:9000\"}\n";

START_TEST(test_defaults)
{
	struct config *cfg;
	struct config_route *r;

	cfg = load_ok(minimal, no_env);
	ck_assert_int_eq(cfg->refs, 1);
	ck_assert_str_eq(cfg->path, "t.yaml");
	ck_assert_uint_eq(cfg->n_listen, 1);
	ck_assert_str_eq(cfg->listen[0].host, "0.0.0.0");
	ck_assert_uint_eq(cfg->listen[0].port, 8080);
	ck_assert_str_eq(cfg->listen[0].text, "0.0.0.0:8080");
	ck_assert_ptr_null(cfg->tls.cert);
	ck_assert_ptr_null(cfg->tls.key);
	ck_assert_uint_eq(cfg->workers, (unsigned)TS_MIN(util_ncpu(), 256));
	ck_assert_uint_eq(cfg->limits.max_header_bytes, 16384);
	ck_assert_uint_eq(cfg->limits.max_body_bytes, 10485760);
	ck_assert_uint_eq(cfg->limits.header_timeout_ms, 10000);
	ck_assert_uint_eq(cfg->limits.body_timeout_ms, 30000);
	ck_assert_uint_eq(cfg->limits.idle_timeout_ms, 60000);
	ck_assert_uint_eq(cfg->limits.max_connections, 10000);
	ck_assert(!cfg->has_admin);
	ck_assert(!cfg->admin_debug);

	ck_assert_uint_eq(cfg->n_routes, 1);
	r = &cfg->routes[0];
	ck_assert_str_eq(r->name, "route0");
	ck_assert_ptr_null(r->host);
	ck_assert_str_eq(r->path_prefix, "/");
	ck_assert_uint_eq(r->path_prefix_len, 1);
	ck_assert_str_eq(r->upstream.url, "http://127.0.0.1:9000");
	ck_assert_int_eq(r->upstream.scheme, CONFIG_SCHEME_HTTP);
	ck_assert_str_eq(r->upstream.host, "127.0.0.1");
	ck_assert_uint_eq(r->upstream.port, 9000);
	ck_assert_str_eq(r->upstream.authority, "127.0.0.1:9000");
	ck_assert_str_eq(r->upstream.base_path, "");
	ck_assert_uint_eq(r->upstream.connect_timeout_ms, 2000);
	ck_assert_uint_eq(r->upstream.timeout_ms, 30000);
	ck_assert_uint_eq(r->upstream.keepalive, 64);
	ck_assert(r->upstream.tls_verify);
	ck_assert_ptr_null(r->upstream.tls_ca_file);
	ck_assert_ptr_null(r->upstream.tls_server_name);
	ck_assert_ptr_null(r->cors);
	ck_assert_ptr_null(r->cors_own);
	ck_assert(!r->has_behavior);

	ck_assert(!cfg->has_cors);
	ck_assert_uint_eq(cfg->cors.allowed_origins.n, 0);
	ck_assert_uint_eq(cfg->cors.allowed_methods.n, 6);
	ck_assert_str_eq(cfg->cors.allowed_methods.v[0], "GET");
	ck_assert_str_eq(cfg->cors.allowed_methods.v[5], "DELETE");
	ck_assert_uint_eq(cfg->cors.allowed_headers.n, 2);
	ck_assert_str_eq(cfg->cors.allowed_headers.v[0], "Content-Type");
	ck_assert_str_eq(cfg->cors.allowed_headers.v[1], "Authorization");
	ck_assert_uint_eq(cfg->cors.exposed_headers.n, 0);
	ck_assert(!cfg->cors.allow_credentials);
	ck_assert_uint_eq(cfg->cors.max_age, 600);
	ck_assert(!cfg->cors.allow_private_network);
	ck_assert(cfg->cors.timing_allow_origin);
	ck_assert_int_eq(cfg->cors.on_disallowed, CONFIG_CORS_REJECT);

	ck_assert_uint_eq(cfg->propagation.n_extract, 3);
	ck_assert_int_eq(cfg->propagation.extract[0], CONFIG_STYLE_DATADOG);
	ck_assert_int_eq(cfg->propagation.extract[1],
	    CONFIG_STYLE_TRACECONTEXT);
	ck_assert_int_eq(cfg->propagation.extract[2], CONFIG_STYLE_BAGGAGE);
	ck_assert_uint_eq(cfg->propagation.n_inject, 3);
	ck_assert_int_eq(cfg->propagation.inject[0], CONFIG_STYLE_DATADOG);
	ck_assert_int_eq(cfg->propagation.inject[1],
	    CONFIG_STYLE_TRACECONTEXT);
	ck_assert_int_eq(cfg->propagation.inject[2], CONFIG_STYLE_BAGGAGE);
	ck_assert(!cfg->propagation.extract_first);
	ck_assert_int_eq(cfg->propagation.behavior, CONFIG_BEHAVIOR_CONTINUE);
	ck_assert_uint_eq(cfg->propagation.tags_max_length, 512);

	ck_assert_str_eq(cfg->tracing.service, "tracestitch");
	ck_assert_str_eq(cfg->tracing.env, "");
	ck_assert_str_eq(cfg->tracing.version, "");
	ck_assert_str_eq(cfg->tracing.span_name, "tracestitch.request");
	ck_assert(!cfg->tracing.has_sample_rate);
	ck_assert_ptr_null(cfg->tracing.sampling_rules);
	ck_assert(cfg->tracing.rate_limit == 100.0);
	ck_assert(!cfg->tracing.trace_preflights);
	ck_assert(cfg->tracing.trace_id_128bit);
	ck_assert(cfg->tracing.redact_query);
	ck_assert_uint_eq(cfg->tracing.baggage_tag_keys.n, 3);
	ck_assert_str_eq(cfg->tracing.baggage_tag_keys.v[0], "user.id");
	ck_assert_str_eq(cfg->tracing.baggage_tag_keys.v[1], "session.id");
	ck_assert_str_eq(cfg->tracing.baggage_tag_keys.v[2], "account.id");
	ck_assert_uint_eq(cfg->tracing.n_tags, 0);

	ck_assert_int_eq(cfg->exporter.type, CONFIG_EXPORTER_DATADOG);
	ck_assert_str_eq(cfg->exporter.datadog_url, "http://localhost:8126");
	ck_assert_str_eq(cfg->exporter.otlp_endpoint,
	    "http://localhost:4318/v1/traces");
	ck_assert_uint_eq(cfg->exporter.flush_interval_ms, 1000);
	ck_assert_uint_eq(cfg->exporter.max_queue_spans, 100000);

	ck_assert_int_eq(cfg->logging.level, LOG_LEVEL_INFO);
	ck_assert_str_eq(cfg->logging.access_log, "stdout");
	ck_assert_str_eq(cfg->logging.format, "json");
	config_unref(cfg);
}
END_TEST

START_TEST(test_full)
{
	struct config *cfg;
	struct config_route *r;
	char *errors;

	if (config_load(ts_data_path("config/good/full.yaml"), no_env, &cfg,
	    &errors) != 0)
		ck_abort_msg("%s", errors);
	ck_assert_uint_eq(cfg->n_listen, 2);
	ck_assert_str_eq(cfg->listen[0].host, "127.0.0.1");
	ck_assert_uint_eq(cfg->listen[0].port, 0);
	ck_assert_str_eq(cfg->listen[1].host, "::1");
	ck_assert_uint_eq(cfg->listen[1].port, 8443);
	ck_assert_str_eq(cfg->listen[1].text, "[::1]:8443");
	ck_assert_str_eq(cfg->tls.cert, "/etc/ts/cert.pem");
	ck_assert_str_eq(cfg->tls.key, "/etc/ts/key.pem");
	ck_assert_uint_eq(cfg->workers, 3);
	ck_assert_uint_eq(cfg->limits.max_header_bytes, 32 * 1024);
	ck_assert_uint_eq(cfg->limits.max_body_bytes, 1024 * 1024);
	ck_assert_uint_eq(cfg->limits.header_timeout_ms, 250);
	ck_assert_uint_eq(cfg->limits.body_timeout_ms, 120000);
	ck_assert_uint_eq(cfg->limits.idle_timeout_ms, 5000);
	ck_assert_uint_eq(cfg->limits.max_connections, 500);
	ck_assert(cfg->has_admin);
	ck_assert_str_eq(cfg->admin_listen.host, "::1");
	ck_assert_uint_eq(cfg->admin_listen.port, 0);
	ck_assert(cfg->admin_debug);

	ck_assert_uint_eq(cfg->n_routes, 3);
	r = &cfg->routes[0];
	ck_assert_str_eq(r->name, "api");
	ck_assert_str_eq(r->host, "api.example.com");
	ck_assert_str_eq(r->path_prefix, "/api/");
	ck_assert_uint_eq(r->path_prefix_len, 5);
	ck_assert_int_eq(r->upstream.scheme, CONFIG_SCHEME_HTTPS);
	ck_assert_str_eq(r->upstream.host, "backend.internal");
	ck_assert_uint_eq(r->upstream.port, 8443);
	ck_assert_str_eq(r->upstream.authority, "backend.internal:8443");
	ck_assert_str_eq(r->upstream.base_path, "/base");
	ck_assert_uint_eq(r->upstream.connect_timeout_ms, 500);
	ck_assert_uint_eq(r->upstream.timeout_ms, 60000);
	ck_assert_uint_eq(r->upstream.keepalive, 0);
	ck_assert(!r->upstream.tls_verify);
	ck_assert_str_eq(r->upstream.tls_ca_file, "/etc/ts/ca.pem");
	ck_assert_str_eq(r->upstream.tls_server_name, "backend.example.com");
	ck_assert(r->has_behavior);
	ck_assert_int_eq(r->behavior, CONFIG_BEHAVIOR_RESTART);
	/* Merged: the override's keys, the rest from the global block. */
	ck_assert_ptr_nonnull(r->cors);
	ck_assert_ptr_eq(r->cors, r->cors_own);
	ck_assert_uint_eq(r->cors->allowed_origins.n, 1);
	ck_assert_str_eq(r->cors->allowed_origins.v[0],
	    "https://other.example");
	ck_assert_uint_eq(r->cors->max_age, 5);
	ck_assert_uint_eq(r->cors->allowed_methods.n, 2);
	ck_assert(r->cors->allow_credentials);
	ck_assert_int_eq(r->cors->on_disallowed, CONFIG_CORS_PASS);

	r = &cfg->routes[1];
	ck_assert_str_eq(r->name, "route1");
	ck_assert_str_eq(r->upstream.host, "::1");
	ck_assert_uint_eq(r->upstream.port, 9000);
	ck_assert_str_eq(r->upstream.authority, "[::1]:9000");
	ck_assert_ptr_null(r->cors);
	ck_assert(!r->has_behavior);

	r = &cfg->routes[2];
	ck_assert_str_eq(r->upstream.host, "Backend");
	ck_assert_uint_eq(r->upstream.port, 80);
	ck_assert_str_eq(r->upstream.authority, "Backend");
	ck_assert_ptr_eq(r->cors, &cfg->cors);
	ck_assert_ptr_null(r->cors_own);

	ck_assert(cfg->has_cors);
	ck_assert_uint_eq(cfg->cors.allowed_origins.n, 3);
	ck_assert_str_eq(cfg->cors.allowed_origins.v[1],
	    "https://*.example.com");
	ck_assert_str_eq(cfg->cors.allowed_headers.v[0], "X-Custom");
	ck_assert_uint_eq(cfg->cors.exposed_headers.n, 2);
	ck_assert(cfg->cors.allow_credentials);
	ck_assert_uint_eq(cfg->cors.max_age, 7200);
	ck_assert(cfg->cors.allow_private_network);
	ck_assert(!cfg->cors.timing_allow_origin);
	ck_assert_int_eq(cfg->cors.on_disallowed, CONFIG_CORS_PASS);

	/* Duplicates removed, "B3 single header" is b3. */
	ck_assert_uint_eq(cfg->propagation.n_extract, 4);
	ck_assert_int_eq(cfg->propagation.extract[0],
	    CONFIG_STYLE_TRACECONTEXT);
	ck_assert_int_eq(cfg->propagation.extract[1], CONFIG_STYLE_B3);
	ck_assert_int_eq(cfg->propagation.extract[2], CONFIG_STYLE_B3MULTI);
	ck_assert_int_eq(cfg->propagation.extract[3], CONFIG_STYLE_DATADOG);
	ck_assert_uint_eq(cfg->propagation.n_inject, 0);
	ck_assert(cfg->propagation.extract_first);
	ck_assert_int_eq(cfg->propagation.behavior, CONFIG_BEHAVIOR_IGNORE);
	ck_assert_uint_eq(cfg->propagation.tags_max_length, 0);

	ck_assert_str_eq(cfg->tracing.service, "gateway");
	ck_assert_str_eq(cfg->tracing.env, "prod");
	ck_assert_str_eq(cfg->tracing.version, "1.2");
	ck_assert_str_eq(cfg->tracing.span_name, "http.proxy");
	ck_assert(cfg->tracing.has_sample_rate);
	ck_assert(cfg->tracing.sample_rate == 0.25);
	ck_assert(cfg->tracing.rate_limit == 12.5);
	ck_assert(cfg->tracing.trace_preflights);
	ck_assert(!cfg->tracing.trace_id_128bit);
	ck_assert(!cfg->tracing.redact_query);
	ck_assert_uint_eq(cfg->tracing.baggage_tag_keys.n, 1);
	ck_assert_str_eq(cfg->tracing.baggage_tag_keys.v[0], "*");
	ck_assert_uint_eq(cfg->tracing.n_tags, 3);
	ck_assert_str_eq(cfg->tracing.tags[0].key, "team");
	ck_assert_str_eq(cfg->tracing.tags[0].value, "edge");
	ck_assert_str_eq(cfg->tracing.tags[1].key, "null");
	ck_assert_str_eq(cfg->tracing.tags[1].value, "null");
	ck_assert_str_eq(cfg->tracing.tags[2].value, "1");

	ck_assert_int_eq(cfg->exporter.type, CONFIG_EXPORTER_OTLP);
	ck_assert_str_eq(cfg->exporter.datadog_url,
	    "unix:///var/run/datadog/apm.socket");
	ck_assert_str_eq(cfg->exporter.otlp_endpoint,
	    "https://collector:4318/v1/traces");
	ck_assert_uint_eq(cfg->exporter.flush_interval_ms, 100);
	ck_assert_uint_eq(cfg->exporter.max_queue_spans, 10);
	ck_assert_int_eq(cfg->logging.level, LOG_LEVEL_DEBUG);
	ck_assert_str_eq(cfg->logging.access_log, "/var/log/ts/access.log");
	config_unref(cfg);
}
END_TEST

/* tests/data/config/bad/NAME.yaml, errors exactly as in NAME.err. */
static const char *const bad_fixtures[] = {
	"anchor_alias", "bad_bool", "bad_duration", "bad_enum",
	"bad_exporter_url", "bad_int", "bad_level", "bad_listen",
	"bad_origin", "bad_size", "bad_style", "bad_url", "bad_workers",
	"cert_without_key", "duplicate_key", "duplicate_route_name",
	"duration_range", "duration_units", "empty_file", "empty_listen",
	"empty_routes", "int_range", "key_without_cert", "listen_port_range",
	"multi_document", "no_routes", "none_with_others", "null_values",
	"path_prefix", "route_cors_bad", "route_wildcard_credentials",
	"sample_rate", "servers_bad", "size_range", "tag_values", "top_level_list",
	"unknown_nested", "unknown_route_key", "unknown_top", "url_missing",
	"trusted_proxies", "listen_options", "rum_intake",
	"url_port", "wildcard_credentials", "workers_word", "wrong_types",
	"yaml_syntax", "yaml_tab",
};

START_TEST(test_bad_fixture)
{
	const char *name = bad_fixtures[_i];
	char rel[128], label[128], *text, *want, *errors;
	struct config *cfg;
	size_t len;

	snprintf(rel, sizeof rel, "config/bad/%s.yaml", name);
	text = read_file(ts_data_path(rel), &len);
	snprintf(rel, sizeof rel, "config/bad/%s.err", name);
	want = read_file(ts_data_path(rel), NULL);
	ck_assert_msg(want[0] != '\0', "%s.err is empty", name);
	snprintf(label, sizeof label, "bad/%s.yaml", name);
	ck_assert_int_eq(config_load_string(label, text, len, no_env, &cfg,
	    &errors), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(errors);
	ck_assert_str_eq(errors, want);
	free(errors);
	free(want);
	free(text);
}
END_TEST

/*
 * routes[].rum_intake: each Datadog site's browser intake (as the Browser
 * SDK's buildEndpointHost derives it) becomes the route's one https
 * server; intake_url overrides it, with the block's timeouts and CA.
 */
START_TEST(test_rum_intake_sites)
{
	static const char *const sites[][2] = {
		{ "datadoghq.com", "https://browser-intake-datadoghq.com" },
		{ "datadoghq.eu", "https://browser-intake-datadoghq.eu" },
		{ "us3.datadoghq.com",
		    "https://browser-intake-us3-datadoghq.com" },
		{ "us5.datadoghq.com",
		    "https://browser-intake-us5-datadoghq.com" },
		{ "ap1.datadoghq.com",
		    "https://browser-intake-ap1-datadoghq.com" },
		{ "ap2.datadoghq.com",
		    "https://browser-intake-ap2-datadoghq.com" },
		{ "ddog-gov.com", "https://browser-intake-ddog-gov.com" },
	};
	const struct config_route *r;
	struct config *cfg;
	char *text;
	size_t i;

	for (i = 0; i < TS_NITEMS(sites); i++) {
		xasprintf(&text, "routes:\n  - path_prefix: /rum\n"
		    "    rum_intake: {site: %s}\n", sites[i][0]);
		cfg = load_ok(text, no_env);
		r = &cfg->routes[0];
		ck_assert(r->rum.enabled);
		ck_assert_str_eq(r->upstream.url, sites[i][1]);
		ck_assert_int_eq(r->upstream.scheme, CONFIG_SCHEME_HTTPS);
		ck_assert_uint_eq(r->upstream.port, 443);
		ck_assert_uint_eq(r->upstream.n_servers, 1);
		ck_assert(r->upstream.tls_verify);
		ck_assert_uint_eq(r->upstream.timeout_ms, 10000);
		ck_assert_uint_eq(r->upstream.connect_timeout_ms, 2000);
		ck_assert(!r->rum.trace);
		config_unref(cfg);
		free(text);
	}
	cfg = load_ok("routes:\n  - path_prefix: /rum\n    rum_intake:\n"
	    "      site: datadoghq.eu\n"
	    "      intake_url: \"http://127.0.0.1:8443/base\"\n"
	    "      timeout: 3s\n      connect_timeout: 1s\n"
	    "      tls_ca_file: /etc/ca.pem\n      trace: true\n"
	    "      max_body_bytes: 64k\n"
	    "  - path_prefix: /\n    upstream: {url: \"http://b:1\"}\n",
	    no_env);
	r = &cfg->routes[0];
	ck_assert_str_eq(r->upstream.url, "http://127.0.0.1:8443/base");
	ck_assert_str_eq(r->upstream.authority, "127.0.0.1:8443");
	ck_assert_str_eq(r->upstream.base_path, "/base");
	ck_assert_uint_eq(r->upstream.timeout_ms, 3000);
	ck_assert_uint_eq(r->upstream.connect_timeout_ms, 1000);
	ck_assert_str_eq(r->upstream.tls_ca_file, "/etc/ca.pem");
	ck_assert_str_eq(r->upstream.servers[0].up.tls_ca_file,
	    "/etc/ca.pem");
	ck_assert_uint_eq(r->rum.max_body_bytes, 65536);
	ck_assert(r->rum.trace);
	ck_assert(!cfg->routes[1].rum.enabled);
	config_unref(cfg);
}
END_TEST

START_TEST(test_error_cap)
{
	char *text = xstrdup(minimal), *next, *errors;
	size_t lines = 0;
	const char *p;
	int i;

	for (i = 0; i < 80; i++) {
		xasprintf(&next, "%sunknown%d: 1\n", text, i);
		free(text);
		text = next;
	}
	errors = load_bad(text, no_env);
	for (p = errors; *p != '\0'; p++)
		lines += *p == '\n';
	ck_assert_uint_eq(lines, 50);
	ck_assert_ptr_nonnull(strstr(errors,
	    "t.yaml:3:1: unknown0: unknown key\n"));
	free(errors);
	free(text);
}
END_TEST

START_TEST(test_missing_file)
{
	struct config *cfg;
	char *errors;

	ck_assert_int_eq(config_load("/nonexistent/ts.yaml", no_env, &cfg,
	    &errors), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(errors,
	    "/nonexistent/ts.yaml: cannot open: No such file or directory\n");
	free(errors);
}
END_TEST

START_TEST(test_env_overrides)
{
	char *env[] = {
		"PATH=/bin",
		"DD_SERVICE=svc", "DD_ENV=staging", "DD_VERSION=9",
		"DD_AGENT_HOST=agent", "DD_TRACE_AGENT_PORT=9126",
		"DD_TRACE_PROPAGATION_STYLE=b3multi",
		"DD_TRACE_PROPAGATION_STYLE_INJECT= Datadog , B3 single header,"
		    "TRACECONTEXT",
		"DD_TRACE_PROPAGATION_EXTRACT_FIRST=1",
		"DD_TRACE_PROPAGATION_BEHAVIOR_EXTRACT=restart",
		"DD_TRACE_SAMPLE_RATE=0.5", "DD_TRACE_RATE_LIMIT=7",
		"DD_TRACE_SAMPLING_RULES=[{\"sample_rate\":0.1}]",
		"DD_TRACE_X_DATADOG_TAGS_MAX_LENGTH=128",
		"DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED=false",
		"DD_TRACE_BAGGAGE_TAG_KEYS=a, b,,c",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://otel:4318/",
		NULL,
	};
	static const char text[] =
	    "routes:\n  - upstream: {url: \"http://127.0.0.1:9000\"}\n"
	    "tracing: {service: file, env: fileenv, sample_rate: 1}\n"
	    "propagation: {extract: [datadog], tags_max_length: 1}\n";
	struct config *cfg = load_ok(text, env);

	ck_assert_str_eq(cfg->tracing.service, "svc");
	ck_assert_str_eq(cfg->tracing.env, "staging");
	ck_assert_str_eq(cfg->tracing.version, "9");
	ck_assert_str_eq(cfg->exporter.datadog_url, "http://agent:9126");
	ck_assert_uint_eq(cfg->propagation.n_extract, 1);
	ck_assert_int_eq(cfg->propagation.extract[0], CONFIG_STYLE_B3MULTI);
	ck_assert_uint_eq(cfg->propagation.n_inject, 3);
	ck_assert_int_eq(cfg->propagation.inject[0], CONFIG_STYLE_DATADOG);
	ck_assert_int_eq(cfg->propagation.inject[1], CONFIG_STYLE_B3);
	ck_assert_int_eq(cfg->propagation.inject[2],
	    CONFIG_STYLE_TRACECONTEXT);
	ck_assert(cfg->propagation.extract_first);
	ck_assert_int_eq(cfg->propagation.behavior, CONFIG_BEHAVIOR_RESTART);
	ck_assert(cfg->tracing.has_sample_rate);
	ck_assert(cfg->tracing.sample_rate == 0.5);
	ck_assert(cfg->tracing.rate_limit == 7.0);
	ck_assert_str_eq(cfg->tracing.sampling_rules,
	    "[{\"sample_rate\":0.1}]");
	ck_assert_uint_eq(cfg->propagation.tags_max_length, 128);
	ck_assert(!cfg->tracing.trace_id_128bit);
	ck_assert_uint_eq(cfg->tracing.baggage_tag_keys.n, 3);
	ck_assert_str_eq(cfg->tracing.baggage_tag_keys.v[2], "c");
	ck_assert_str_eq(cfg->exporter.otlp_endpoint,
	    "http://otel:4318/v1/traces");
	config_unref(cfg);
}
END_TEST

START_TEST(test_env_precedence)
{
	char *env[] = {
		"DD_AGENT_HOST=ignored",
		"DD_TRACE_AGENT_URL=unix:///run/apm.sock",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://generic:4318",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://specific:4318/t",
		"DD_TRACE_PROPAGATION_STYLE=none",
		"DD_TRACE_PROPAGATION_STYLE_EXTRACT=tracecontext",
		"DD_TRACE_BAGGAGE_TAG_KEYS=",
		"DD_SERVICE=",
		NULL,
	};
	char *env2[] = { "DD_TRACE_AGENT_PORT=1234", NULL };
	struct config *cfg = load_ok(minimal, env);

	ck_assert_str_eq(cfg->exporter.datadog_url, "unix:///run/apm.sock");
	ck_assert_str_eq(cfg->exporter.otlp_endpoint,
	    "http://specific:4318/t");
	ck_assert_uint_eq(cfg->propagation.n_inject, 0);
	ck_assert_uint_eq(cfg->propagation.n_extract, 1);
	ck_assert_int_eq(cfg->propagation.extract[0],
	    CONFIG_STYLE_TRACECONTEXT);
	ck_assert_uint_eq(cfg->tracing.baggage_tag_keys.n, 0);
	/* Empty is unset. */
	ck_assert_str_eq(cfg->tracing.service, "tracestitch");
	config_unref(cfg);

	cfg = load_ok(minimal, env2);
	ck_assert_str_eq(cfg->exporter.datadog_url, "http://localhost:1234");
	config_unref(cfg);
	cfg = load_ok(minimal, NULL);
	ck_assert_str_eq(cfg->exporter.datadog_url, "http://localhost:8126");
	config_unref(cfg);
}
END_TEST

static const struct {
	const char *var;
	const char *want;
} bad_env[] = {
	{ "DD_TRACE_SAMPLE_RATE=often", "env:DD_TRACE_SAMPLE_RATE: "
	  "tracing.sample_rate: expected a number from 0 to 1 or null, got "
	  "\"often\"\n" },
	{ "DD_TRACE_SAMPLE_RATE=1.01", "env:DD_TRACE_SAMPLE_RATE: "
	  "tracing.sample_rate: expected a number from 0 to 1 or null, got "
	  "\"1.01\"\n" },
	{ "DD_TRACE_RATE_LIMIT=-1", "env:DD_TRACE_RATE_LIMIT: "
	  "tracing.rate_limit: expected a number from 0 to 1000000, got "
	  "\"-1\"\n" },
	{ "DD_TRACE_PROPAGATION_STYLE=datadog,w3c", "env:DD_TRACE_PROPAGATION_"
	  "STYLE: propagation.extract: expected a propagation style (datadog, "
	  "tracecontext, b3, b3multi, baggage or none), got \"w3c\"\n" },
	{ "DD_TRACE_PROPAGATION_STYLE_INJECT=none,b3", "env:DD_TRACE_"
	  "PROPAGATION_STYLE_INJECT: propagation.inject: expected \"none\" "
	  "alone, got it with other styles\n" },
	{ "DD_TRACE_PROPAGATION_EXTRACT_FIRST=yes", "env:DD_TRACE_PROPAGATION_"
	  "EXTRACT_FIRST: propagation.extract_first: expected true, false, 1 "
	  "or 0, got \"yes\"\n" },
	{ "DD_TRACE_PROPAGATION_BEHAVIOR_EXTRACT=drop", "env:DD_TRACE_"
	  "PROPAGATION_BEHAVIOR_EXTRACT: propagation.behavior: expected "
	  "continue, restart or ignore, got \"drop\"\n" },
	{ "DD_TRACE_SAMPLING_RULES={\"sample_rate\":1}", "env:DD_TRACE_"
	  "SAMPLING_RULES: tracing.sampling_rules: expected a JSON array of "
	  "rules, got a JSON object\n" },
	{ "DD_TRACE_SAMPLING_RULES=[{\"resource\":\"GET /h*\",\"sample_rate\":"
	  "1.5}]", "env:DD_TRACE_SAMPLING_RULES: tracing.sampling_rules: rule 0: "
	  "sample_rate: expected a number from 0 to 1\n" },
	{ "DD_TRACE_SAMPLING_RULES=[{\"sample_rate\":0.5,\"max_per_second\":1}]",
	  "env:DD_TRACE_SAMPLING_RULES: tracing.sampling_rules: rule 0: unknown "
	  "key \"max_per_second\" (expected service, name, resource, tags, "
	  "sample_rate)\n" },
	{ "DD_TRACE_SAMPLING_RULES=[{", "env:DD_TRACE_SAMPLING_RULES: "
	  "tracing.sampling_rules: expected a JSON array, got invalid JSON "
	  "(string or '}' expected near end of file at column 2)\n" },
	{ "DD_TRACE_X_DATADOG_TAGS_MAX_LENGTH=big", "env:DD_TRACE_X_DATADOG_"
	  "TAGS_MAX_LENGTH: propagation.tags_max_length: expected an integer "
	  "from 0 to 65536, got \"big\"\n" },
	{ "DD_TRACE_128_BIT_TRACEID_GENERATION_ENABLED=2", "env:DD_TRACE_128_"
	  "BIT_TRACEID_GENERATION_ENABLED: tracing.trace_id_128bit: expected "
	  "true, false, 1 or 0, got \"2\"\n" },
	{ "DD_TRACE_AGENT_URL=agent:8126", "env:DD_TRACE_AGENT_URL: "
	  "exporter.datadog_url: expected an http://host:port or unix:///path "
	  "URL, got \"agent:8126\"\n" },
	{ "DD_TRACE_AGENT_PORT=99999", "env:DD_TRACE_AGENT_PORT: "
	  "exporter.datadog_url: expected a port from 1 to 65535, got "
	  "\"99999\"\n" },
	{ "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=collector:4318",
	  "env:OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: exporter.otlp_endpoint: "
	  "expected an http:// or https:// URL, got \"collector:4318\"\n" },
};

/*
 * tests/data/config/env/variables.tsv: every DD_* / OTEL_* variable, its
 * precedence and its errors, read back through config_dump (-T), so the
 * dump is checked as YAML on the way.
 */

/* A node of the dump as the table writes it. */
static void
env_render(const struct yaml_tree_node *v, char *buf, size_t size)
{
	size_t i, l;

	buf[0] = '\0';
	if (v->type == YAML_TREE_SCALAR) {
		snprintf(buf, size, "%s", v->str);
		return;
	}
	snprintf(buf, size, "%c", v->type == YAML_TREE_SEQ ? '[' : '{');
	for (i = 0; i < v->n; i++) {
		l = strlen(buf);
		if (v->type == YAML_TREE_SEQ)
			snprintf(buf + l, size - l, "%s%s", i ? ", " : "",
			    v->items[i]->str);
		else
			snprintf(buf + l, size - l, "%s%s: %s", i ? ", " : "",
			    v->pairs[i].key->str, v->pairs[i].value->str);
	}
	l = strlen(buf);
	snprintf(buf + l, size - l, "%c", v->type == YAML_TREE_SEQ ? ']' : '}');
}

/* Check one row of the table; the caller counts them. */
static void
env_row(char *line, unsigned lineno)
{
	char *cols[3], *p = line, *envv[16], *sep, *dump = NULL, *errors;
	char *cause, buf[512], *seg, *path;
	const struct yaml_tree_node *v;
	struct yaml_tree *tree;
	struct config *cfg;
	size_t n = 0, c, len;
	FILE *f;
	int rc;

	for (c = 0; c < 3; c++)
		cols[c] = strsep(&p, "\t");
	ck_assert_msg(cols[2] != NULL && p == NULL, "line %u: expected 3 "
	    "columns", lineno);
	for (p = cols[0]; p != NULL; p = sep) {
		if ((sep = strstr(p, " | ")) != NULL) {
			*sep = '\0';
			sep += 3;
		}
		ck_assert_uint_lt(n, TS_NITEMS(envv) - 1);
		envv[n++] = p;
	}
	envv[n] = NULL;
	rc = config_load(ts_data_path("config/env/base.yaml"), envv, &cfg,
	    &errors);
	if (strcmp(cols[1], "error") == 0) {
		ck_assert_msg(rc == -1, "line %u: loaded", lineno);
		ck_assert_ptr_nonnull(errors);
		ck_assert_msg(strncmp(errors, cols[2], strlen(cols[2])) == 0 &&
		    errors[strlen(cols[2])] == '\n',
		    "line %u: expected\n%s\ngot\n%s", lineno, cols[2], errors);
		free(errors);
		return;
	}
	ck_assert_msg(rc == 0, "line %u: %s", lineno, errors);
	if (strcmp(cols[1], "warning") == 0) {
		snprintf(buf, sizeof buf, "%s\n", cols[2]);
		ck_assert_msg(cfg->env_warnings != NULL &&
		    strstr(cfg->env_warnings, buf) != NULL,
		    "line %u: no warning \"%s\" in:\n%s", lineno, cols[2],
		    cfg->env_warnings != NULL ? cfg->env_warnings : "");
		config_unref(cfg);
		return;
	}
	f = open_memstream(&dump, &len);
	ck_assert_ptr_nonnull(f);
	config_dump(cfg, f);
	fclose(f);
	tree = yaml_tree_parse("dump", dump, len, &cause);
	ck_assert_msg(tree != NULL, "line %u: dump: %s", lineno, cause);
	v = tree->root;
	path = xstrdup(cols[1]);
	/* exporter.otlp.protocol: the segments, as written in the table. */
	for (p = path; v != NULL && (seg = strsep(&p, ".")) != NULL;)
		v = yaml_tree_map_find(v, seg);
	ck_assert_msg(v != NULL, "line %u: no %s in the dump:\n%s", lineno,
	    cols[1], dump);
	env_render(v, buf, sizeof buf);
	ck_assert_msg(strcmp(buf, cols[2]) == 0, "line %u: %s: expected "
	    "\"%s\", got \"%s\"", lineno, cols[1], cols[2], buf);
	free(path);
	yaml_tree_free(tree);
	free(dump);
	config_unref(cfg);
}

START_TEST(test_env_table)
{
	char *text, *line, *next;
	unsigned lineno = 0, rows = 0;

	text = read_file(ts_data_path("config/env/variables.tsv"), NULL);
	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		ck_assert_ptr_nonnull(next);
		*next++ = '\0';
		lineno++;
		if (*line == '#' || *line == '\0')
			continue;
		env_row(line, lineno);
		rows++;
	}
	free(text);
	/* Every row was read (a truncated file must not pass). */
	ck_assert_uint_eq(rows, ENV_TABLE_ROWS);
}
END_TEST

/* Every supported variable is in the table, so each has a test. */
START_TEST(test_env_table_covers_every_variable)
{
	const char *const *k;
	char *text = read_file(ts_data_path("config/env/variables.tsv"),
	    NULL);
	char want[96];

	for (k = config_env_names; *k != NULL; k++) {
		/* DD_TRACE_SAMPLING_RULES, BAGGAGE_TAG_KEYS, ...: test_env_*. */
		if (strcmp(*k, "DD_TRACE_SAMPLING_RULES") == 0 ||
		    strcmp(*k, "DD_TRACE_BAGGAGE_TAG_KEYS") == 0 ||
		    strcmp(*k, "DD_TRACE_X_DATADOG_TAGS_MAX_LENGTH") == 0 ||
		    strcmp(*k, "DD_TRACE_PROPAGATION_EXTRACT_FIRST") == 0 ||
		    strcmp(*k, "DD_TRACE_PROPAGATION_BEHAVIOR_EXTRACT") == 0)
			continue;
		snprintf(want, sizeof want, "%s=", *k);
		ck_assert_msg(strstr(text, want) != NULL, "%s has no row in "
		    "variables.tsv", *k);
	}
	free(text);
}
END_TEST

START_TEST(test_env_bad)
{
	char *env[2] = { (char *)(uintptr_t)bad_env[_i].var, NULL };
	char *errors = load_bad(minimal, env);

	ck_assert_str_eq(errors, bad_env[_i].want);
	free(errors);
}
END_TEST

/*
 * Style lists (PROPAGATION.md 7.1), each row read three ways by the one
 * parser: config_styles_parse, DD_TRACE_PROPAGATION_STYLE_EXTRACT, and a
 * one-item YAML list.  want: the styles by name, ',' between; NULL when
 * err is the message.
 */
#define STYLE_UNKNOWN "expected a propagation style (datadog, tracecontext, " \
	"b3, b3multi, baggage or none), got "
static const struct {
	const char *value, *want, *err;
} style_rows[] = {
	/* separators: commas and/or blanks, repeated, around */
	{ "datadog,tracecontext", "datadog,tracecontext", NULL },
	{ "datadog tracecontext", "datadog,tracecontext", NULL },
	{ "datadog, tracecontext,baggage", "datadog,tracecontext,baggage",
	  NULL },
	{ " datadog ,\ttracecontext\t b3multi , ",
	  "datadog,tracecontext,b3multi", NULL },
	{ "datadog,,tracecontext", "datadog,tracecontext", NULL },
	{ "b3", "b3", NULL },
	{ "b3multi b3", "b3multi,b3", NULL },
	/* case */
	{ "DATADOG TraceContext B3MULTI", "datadog,tracecontext,b3multi",
	  NULL },
	/* the old name of b3, blanks between its words */
	{ "B3 single header", "b3", NULL },
	{ "b3  single\theader,b3multi", "b3,b3multi", NULL },
	{ "b3multi b3 single header", "b3multi,b3", NULL },
	/* none */
	{ "none", "", NULL },
	{ " NONE ", "", NULL },
	{ "none,datadog", NULL, "expected \"none\" alone, got it with other "
	  "styles" },
	/* duplicates */
	{ "datadog,datadog", NULL, "expected each style once, got datadog "
	  "twice" },
	{ "datadog tracecontext DATADOG", NULL, "expected each style once, "
	  "got datadog twice" },
	{ "b3,b3 single header", NULL, "expected each style once, got b3 "
	  "twice" },
	{ "none none", NULL, "expected each style once, got none twice" },
	/* unknown names */
	{ "w3c", NULL, STYLE_UNKNOWN "\"w3c\"" },
	{ "datadog,jaeger", NULL, STYLE_UNKNOWN "\"jaeger\"" },
	{ "b3 single", NULL, STYLE_UNKNOWN "\"single\"" },
	{ "b3-multi", NULL, STYLE_UNKNOWN "\"b3-multi\"" },
	{ "datadog;tracecontext", NULL, STYLE_UNKNOWN
	  "\"datadog;tracecontext\"" },
	/* empty */
	{ ",", NULL, STYLE_UNKNOWN "\",\"" },
	{ " , ", NULL, STYLE_UNKNOWN "\" , \"" },
};

/* The styles of a list as "a,b". */
static void
style_names(const enum config_style *v, size_t n, char *buf, size_t size)
{
	size_t i, len = 0;

	buf[0] = '\0';
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s",
		    i > 0 ? "," : "", config_style_name(v[i]));
}

START_TEST(test_style_rows)
{
	const char *value = style_rows[_i].value;
	const char *want = style_rows[_i].want, *err = style_rows[_i].err;
	char got[128], msg[256], var[128], *env[2], *text, *line, *errors;
	struct config_styles l;
	struct config *cfg;
	size_t i;

	/* 1. The parser itself. */
	if (want != NULL) {
		ck_assert_msg(config_styles_parse(value, &l, msg, sizeof msg) ==
		    0, "\"%s\": %s", value, msg);
		style_names(l.v, l.n, got, sizeof got);
		ck_assert_str_eq(got, want);
	} else {
		ck_assert_int_eq(config_styles_parse(value, &l, msg,
		    sizeof msg), -1);
		ck_assert_str_eq(msg, err);
	}

	/* 2. The environment, labelled with the variable. */
	snprintf(var, sizeof var, "DD_TRACE_PROPAGATION_STYLE_EXTRACT=%s",
	    value);
	env[0] = var;
	env[1] = NULL;
	/* 3. A YAML list of one item: the error points at the item. */
	xasprintf(&text, "%spropagation:\n  extract: [\"", minimal);
	for (i = 0; value[i] != '\0'; i++) {
		xasprintf(&line, "%s%s", text, value[i] == '\t' ? "\\t" :
		    (char[2]){ value[i], '\0' });
		free(text);
		text = line;
	}
	xasprintf(&line, "%s\"]\n", text);
	free(text);
	text = line;
	if (want != NULL) {
		cfg = load_ok(minimal, env);
		style_names(cfg->propagation.extract,
		    cfg->propagation.n_extract, got, sizeof got);
		ck_assert_str_eq(got, want);
		config_unref(cfg);
		cfg = load_ok(text, no_env);
		style_names(cfg->propagation.extract,
		    cfg->propagation.n_extract, got, sizeof got);
		ck_assert_str_eq(got, want);
		config_unref(cfg);
	} else {
		errors = load_bad(minimal, env);
		xasprintf(&line, "env:DD_TRACE_PROPAGATION_STYLE_EXTRACT: "
		    "propagation.extract: %s\n", err);
		ck_assert_str_eq(errors, line);
		free(line);
		free(errors);
		errors = load_bad(text, no_env);
		/* "none" with others is the list's fault, not an item's. */
		if (strstr(err, "\"none\" alone") != NULL)
			xasprintf(&line, "t.yaml:4:12: propagation.extract: "
			    "%s\n", err);
		else
			xasprintf(&line, "t.yaml:4:13: propagation.extract[0]: "
			    "%s\n", err);
		ck_assert_str_eq(errors, line);
		free(line);
		free(errors);
	}
	free(text);
}
END_TEST

/* YAML lists: a duplicate across items, every bad item reported. */
START_TEST(test_style_yaml_items)
{
	static const struct {
		const char *list, *want;
	} rows[] = {
		{ "[datadog, Datadog]", "t.yaml:4:22: propagation.extract[1]: "
		  "expected each style once, got datadog twice\n" },
		{ "[\"datadog b3\", b3multi, \"B3 single header\"]",
		  "t.yaml:4:36: propagation.extract[2]: expected each style "
		  "once, got b3 twice\n" },
		{ "[w3c, \"b3 jaeger, none\", \"\"]", "t.yaml:4:13: "
		  "propagation.extract[0]: " STYLE_UNKNOWN "\"w3c\"\n"
		  "t.yaml:4:18: propagation.extract[1]: " STYLE_UNKNOWN
		  "\"jaeger\"\nt.yaml:4:37: propagation.extract[2]: "
		  STYLE_UNKNOWN "\"\"\n" },
		{ "[none, none]", "t.yaml:4:19: propagation.extract[1]: "
		  "expected each style once, got none twice\n" },
	};
	char *empty[] = { "DD_TRACE_PROPAGATION_STYLE_EXTRACT=", NULL };
	char *text, *errors;
	struct config *cfg;
	size_t i;

	/* An empty variable is an unset one: the default list. */
	cfg = load_ok(minimal, empty);
	ck_assert_uint_eq(cfg->propagation.n_extract, 3);
	config_unref(cfg);
	for (i = 0; i < TS_NITEMS(rows); i++) {
		xasprintf(&text, "%spropagation:\n  extract: %s\n", minimal,
		    rows[i].list);
		errors = load_bad(text, no_env);
		ck_assert_str_eq(errors, rows[i].want);
		free(errors);
		free(text);
	}
}
END_TEST

START_TEST(test_route_cors)
{
	static const char only_route[] =
	    "routes:\n"
	    "  - upstream: {url: \"http://a:1\"}\n"
	    "    cors: {allowed_origins: [\"https://x.example\"]}\n"
	    "  - upstream: {url: \"http://a:1\"}\n"
	    "  - upstream: {url: \"http://a:1\"}\n"
	    "    cors: true\n";
	static const char with_global[] =
	    "cors: {allowed_origins: [\"*\"], max_age: 30}\n"
	    "routes:\n"
	    "  - upstream: {url: \"http://a:1\"}\n"
	    "    cors: {}\n"
	    "  - upstream: {url: \"http://a:1\"}\n"
	    "    cors: false\n"
	    "  - upstream: {url: \"http://a:1\"}\n"
	    "    cors: {allow_credentials: true, allowed_origins: "
	    "[\"https://y.example\"]}\n";
	struct config *cfg;

	/* No global block: only the route with its own map has CORS. */
	cfg = load_ok(only_route, no_env);
	ck_assert(!cfg->has_cors);
	ck_assert_ptr_nonnull(cfg->routes[0].cors);
	ck_assert_str_eq(cfg->routes[0].cors->allowed_origins.v[0],
	    "https://x.example");
	ck_assert_uint_eq(cfg->routes[0].cors->max_age, 600);
	ck_assert_uint_eq(cfg->routes[0].cors->allowed_methods.n, 6);
	ck_assert_ptr_null(cfg->routes[1].cors);
	ck_assert_ptr_null(cfg->routes[2].cors);
	config_unref(cfg);

	cfg = load_ok(with_global, no_env);
	ck_assert(cfg->has_cors);
	ck_assert_ptr_nonnull(cfg->routes[0].cors);
	ck_assert_ptr_ne(cfg->routes[0].cors, &cfg->cors);
	ck_assert_str_eq(cfg->routes[0].cors->allowed_origins.v[0], "*");
	ck_assert_uint_eq(cfg->routes[0].cors->max_age, 30);
	ck_assert_ptr_null(cfg->routes[1].cors);
	ck_assert(cfg->routes[2].cors->allow_credentials);
	ck_assert_uint_eq(cfg->routes[2].cors->max_age, 30);
	ck_assert(!cfg->cors.allow_credentials);
	config_unref(cfg);
}
END_TEST

START_TEST(test_yaml_nulls_and_quotes)
{
	static const char text[] =
	    "routes:\n  - upstream: {url: \"http://a:1\"}\n"
	    "    host: ~\n"
	    "    name: \"null\"\n"
	    "tracing: {sample_rate: ~, env: 'null', tags: {k: \"\"}}\n";
	struct config *cfg = load_ok(text, no_env);

	ck_assert_ptr_null(cfg->routes[0].host);
	ck_assert_str_eq(cfg->routes[0].name, "null");
	ck_assert(!cfg->tracing.has_sample_rate);
	ck_assert_str_eq(cfg->tracing.env, "null");
	ck_assert_str_eq(cfg->tracing.tags[0].value, "");
	config_unref(cfg);
}
END_TEST

/*
 * Does the schema path exist in a tree?  "a[].b" looks in every item of
 * a (routes[].upstream.url and .servers cannot be in the same route).
 */
static bool
tree_has_path(const struct yaml_tree_node *n, const char *path)
{
	char comp[64];
	size_t l, i;

	while (*path != '\0') {
		l = strcspn(path, ".[");
		ck_assert_uint_lt(l, sizeof comp);
		memcpy(comp, path, l);
		comp[l] = '\0';
		n = yaml_tree_map_find(n, comp);
		if (n == NULL)
			return false;
		path += l;
		if (strncmp(path, "[]", 2) == 0) {
			if (n->type != YAML_TREE_SEQ || n->n == 0)
				return false;
			path += 2;
			if (*path == '.')
				path++;
			for (i = 0; i < n->n; i++) {
				if (tree_has_path(n->items[i], path))
					return true;
			}
			return false;
		}
		if (*path == '.')
			path++;
	}
	return true;
}

/* routes[].upstream.servers and the one-server form of url. */
START_TEST(test_servers)
{
	static const char doc[] =
	    "routes:\n"
	    "  - name: one\n"
	    "    upstream: {url: \"http://127.0.0.1:9000/base/\", "
	    "keepalive: 7}\n"
	    "  - name: three\n"
	    "    upstream:\n"
	    "      servers:\n"
	    "        - {url: \"http://a.example:81/x\", weight: 3}\n"
	    "        - url: \"http://b.example\"\n"
	    "        - \"http://[::1]:83\"\n"
	    "      balance: hash\n"
	    "      hash_on: \"cookie:sid\"\n"
	    "      timeout: 5s\n"
	    "      max_fails: 2\n"
	    "      health_check: {path: /hc, interval: 1s}\n";
	struct config *cfg = load_ok(doc, no_env);
	const struct config_upstream *u = &cfg->routes[0].upstream;

	ck_assert_uint_eq(u->n_servers, 1);
	ck_assert_str_eq(u->servers[0].up.url, "http://127.0.0.1:9000/base/");
	ck_assert_str_eq(u->servers[0].up.host, "127.0.0.1");
	ck_assert_str_eq(u->servers[0].up.base_path, "/base");
	ck_assert_uint_eq(u->servers[0].up.keepalive, 7);
	ck_assert_uint_eq(u->servers[0].weight, 1);
	ck_assert_int_eq(u->balance, CONFIG_BALANCE_ROUND_ROBIN);
	ck_assert_str_eq(u->hash_on, "client_address");
	ck_assert_uint_eq(u->max_fails, 5);
	ck_assert_uint_eq(u->eject_base_ms, 10000);
	ck_assert_uint_eq(u->eject_max_ms, 300000);
	ck_assert_ptr_null(u->health_check.path);

	u = &cfg->routes[1].upstream;
	ck_assert_uint_eq(u->n_servers, 3);
	/* The route's URL parts are the first server's. */
	ck_assert_str_eq(u->url, "http://a.example:81/x");
	ck_assert_str_eq(u->authority, "a.example:81");
	ck_assert_uint_eq(u->servers[0].weight, 3);
	ck_assert_str_eq(u->servers[0].up.base_path, "/x");
	ck_assert_str_eq(u->servers[1].up.authority, "b.example");
	ck_assert_uint_eq(u->servers[1].up.port, 80);
	ck_assert_uint_eq(u->servers[1].weight, 1);
	ck_assert_str_eq(u->servers[2].up.host, "::1");
	ck_assert_uint_eq(u->servers[2].up.port, 83);
	/* Each server has the route's settings. */
	ck_assert_uint_eq(u->servers[2].up.timeout_ms, 5000);
	ck_assert_int_eq(u->balance, CONFIG_BALANCE_HASH);
	ck_assert_str_eq(u->hash_on, "cookie:sid");
	ck_assert_uint_eq(u->max_fails, 2);
	ck_assert_str_eq(u->health_check.path, "/hc");
	ck_assert_uint_eq(u->health_check.interval_ms, 1000);
	ck_assert_uint_eq(u->health_check.timeout_ms, 2000);
	ck_assert_uint_eq(u->health_check.healthy_threshold, 2);
	ck_assert_uint_eq(u->health_check.unhealthy_threshold, 3);
	ck_assert(!cfg->readyz_requires_upstreams);
	config_unref(cfg);
}
END_TEST

START_TEST(test_reference_documents_every_key)
{
	const char *root = getenv("TS_SOURCE_ROOT"), *const *keys;
	struct yaml_tree *tree;
	char path[4096], *text, *cause;
	size_t n, i, len;

	ck_assert_ptr_nonnull(root);
	snprintf(path, sizeof path, "%s/conf/tracestitch.yaml", root);
	text = read_file(path, &len);
	tree = yaml_tree_parse(path, text, len, &cause);
	ck_assert_msg(tree != NULL, "%s", cause);
	n = config_schema_keys(&keys);
	ck_assert_uint_gt(n, 50);
	for (i = 0; i < n; i++)
		ck_assert_msg(tree_has_path(tree->root, keys[i]),
		    "conf/tracestitch.yaml does not document %s", keys[i]);
	yaml_tree_free(tree);
	free(text);
}
END_TEST

/* Trim blanks and one pair of backticks from a table cell, in place. */
static char *
doc_cell(char *c)
{
	size_t l;

	while (*c == ' ')
		c++;
	l = strlen(c);
	while (l > 0 && c[l - 1] == ' ')
		c[--l] = '\0';
	if (l >= 2 && c[0] == '`' && c[l - 1] == '`') {
		c[l - 1] = '\0';
		c++;
	}
	return c;
}

/*
 * The "reload" column of the key table in docs/configuration.md says what
 * the schema table says (config_schema_reloads, the flag
 * config_check_reload reads), for every key, each listed once.
 */
START_TEST(test_doc_reload_column)
{
	static const char head[] =
	    "| key | type | default | environment | reload | meaning |\n";
	const char *root = getenv("TS_SOURCE_ROOT"), *const *keys;
	char path[4096], *text, *line, *next, *cell[6], *key, *rl;
	size_t n, i, len, rows = 0, c;
	bool *seen;
	int want;

	ck_assert_ptr_nonnull(root);
	snprintf(path, sizeof path, "%s/docs/configuration.md", root);
	text = read_file(path, &len);
	n = config_schema_keys(&keys);
	seen = calloc(n, sizeof *seen);
	ck_assert_ptr_nonnull(seen);
	line = strstr(text, head);
	ck_assert_msg(line != NULL, "no key table in %s", path);
	line += sizeof head - 1;
	line = strchr(line, '\n') + 1;		/* |---|---| */
	for (; *line == '|'; line = next) {
		next = strchr(line, '\n');
		ck_assert_ptr_nonnull(next);
		*next++ = '\0';
		line++;
		for (c = 0; c < 6; c++)
			cell[c] = doc_cell(strsep(&line, "|"));
		ck_assert_msg(line != NULL, "short row for %s", cell[0]);
		key = cell[0];
		rl = cell[4];
		want = config_schema_reloads(key);
		ck_assert_msg(want != -1, "documented key %s is not in the "
		    "schema", key);
		for (i = 0; strcmp(keys[i], key) != 0; i++)
			;
		ck_assert_msg(!seen[i], "%s documented twice", key);
		seen[i] = true;
		ck_assert_msg(strcmp(rl, want ? "yes" : "**no**") == 0,
		    "%s: docs say reload \"%s\", the schema says %s", key, rl,
		    want ? "yes" : "no");
		rows++;
	}
	/* Every key has its row: none is missing from the table. */
	ck_assert_uint_eq(rows, n);
	ck_assert_uint_gt(rows, 50);
	free(seen);
	free(text);
}
END_TEST

static const char *const conf_files[] = { "tracestitch.yaml", "demo.yaml" };

START_TEST(test_conf_files_load)
{
	const char *root = getenv("TS_SOURCE_ROOT");
	struct config *cfg;
	char path[4096], *errors;

	ck_assert_ptr_nonnull(root);
	snprintf(path, sizeof path, "%s/conf/%s", root, conf_files[_i]);
	if (config_load(path, no_env, &cfg, &errors) != 0)
		ck_abort_msg("%s", errors);
	ck_assert_uint_ge(cfg->n_routes, 1);
	if (strcmp(conf_files[_i], "demo.yaml") == 0) {
		ck_assert_str_eq(cfg->listen[0].text, "127.0.0.1:8080");
		ck_assert(cfg->has_admin);
		ck_assert_str_eq(cfg->admin_listen.text, "127.0.0.1:9901");
		ck_assert_str_eq(cfg->routes[0].name, "demo");
		ck_assert_str_eq(cfg->routes[0].upstream.authority,
		    "127.0.0.1:9000");
		ck_assert_int_eq(cfg->exporter.type, CONFIG_EXPORTER_STDOUT);
		ck_assert_ptr_eq(cfg->routes[0].cors, &cfg->cors);
		ck_assert_str_eq(cfg->cors.allowed_origins.v[0], "*");
		ck_assert(!cfg->cors.allow_credentials);
	} else {
		/* The reference file is at the defaults (but the examples). */
		ck_assert_uint_eq(cfg->limits.max_header_bytes, 16384);
		/* routes[0] is the RUM relay: its upstream is the site's
		 * intake (docs/rum-relay.md); routes[1] the backend. */
		ck_assert(cfg->routes[0].rum.enabled);
		ck_assert_str_eq(cfg->routes[0].upstream.url,
		    "https://browser-intake-datadoghq.com");
		ck_assert(cfg->routes[0].upstream.tls_verify);
		ck_assert_uint_eq(cfg->routes[0].rum.max_body_bytes, 1048576);
		ck_assert(!cfg->routes[0].rum.trace);
		ck_assert_str_eq(cfg->routes[1].upstream.url,
		    "http://127.0.0.1:9000");
		ck_assert(!cfg->routes[1].rum.enabled);
		ck_assert_uint_eq(cfg->cors.allowed_origins.n, 2);
	}
	config_unref(cfg);
}
END_TEST

START_TEST(test_refcount)
{
	struct config *cfg = load_ok(minimal, no_env);

	ck_assert_ptr_eq(config_ref(cfg), cfg);
	ck_assert_int_eq(cfg->refs, 2);
	config_unref(cfg);
	ck_assert_int_eq(cfg->refs, 1);
	config_unref(cfg);
	config_unref(NULL);
	ck_assert_ptr_null(config_ref(NULL));
}
END_TEST

START_TEST(test_reload_check)
{
	static const char changed[] =
	    "server: {listen: [\"0.0.0.0:8081\"], workers: 7}\n"
	    "admin: {listen: \"127.0.0.1:9902\"}\n"
	    "routes:\n  - upstream: {url: \"http://127.0.0.1:9001\"}\n";
	static const char reloadable[] =
	    "routes:\n  - upstream: {url: \"http://127.0.0.1:9001\"}\n"
	    "cors: {allowed_origins: [\"*\"]}\n"
	    "tracing: {service: other}\n";
	struct config *a = load_ok(minimal, no_env), *b, *c;
	char *cause;

	b = load_ok(changed, no_env);
	c = load_ok(reloadable, no_env);
	ck_assert_int_eq(config_check_reload(a, c, &cause), 0);
	ck_assert_ptr_null(cause);
	ck_assert_int_eq(config_check_reload(a, a, &cause), 0);
	ck_assert_int_eq(config_check_reload(a, b, &cause), -1);
	if (a->workers == 7)
		ck_assert_str_eq(cause, "server.listen, admin.listen: cannot "
		    "change on reload (restart instead)");
	else
		ck_assert_str_eq(cause, "server.listen, server.workers, "
		    "admin.listen: cannot change on reload (restart instead)");
	free(cause);
	config_unref(a);
	config_unref(b);
	config_unref(c);
}
END_TEST

/*
 * Each non-reloadable key alone, changed from the minimal config (and
 * back: the check is symmetric); NULL: the change reloads.
 */
static const struct {
	const char *yaml;	/* added to minimal */
	const char *keys;	/* the keys named, or NULL */
} reload_rows[] = {
	{ "server: {listen: [\"127.0.0.1:8080\"]}\n", "server.listen" },
	{ "server: {tls: {cert: a.pem, key: a.key}}\n",
	  "server.tls.cert, server.tls.key" },
	{ "server: {backlog: 77}\n", "server.backlog" },
	/* The admin block added at its default address. */
	{ "admin: {}\n", "admin.listen" },
	{ "admin: {listen: \"127.0.0.1:9902\"}\n", "admin.listen" },
	/* The exporter and the access log reload (issue 14 item 7). */
	{ "exporter: {type: none}\n", NULL },
	{ "exporter: {datadog_url: \"http://agent:8126\"}\n", NULL },
	{ "exporter: {otlp_endpoint: \"http://c:4318/v1/traces\"}\n", NULL },
	{ "exporter: {flush_interval: 2s}\n", NULL },
	{ "exporter: {max_queue_spans: 5}\n", NULL },
	{ "logging: {access_log: \"off\"}\n", NULL },
	{ "exporter: {type: none, max_queue_spans: 5}\n"
	  "logging: {access_log: stderr}\n"
	  "server: {backlog: 77}\n", "server.backlog" },
	{ "server: {limits: {max_connections: 5}}\n", NULL },
	{ "cors: {max_age: 5}\n", NULL },
	{ "logging: {level: debug}\n", NULL },
	{ "propagation: {extract: [b3]}\n", NULL },
	{ "tracing: {tags: {a: b}}\n", NULL },
};

START_TEST(test_reload_rows)
{
	struct config *a = load_ok(minimal, no_env), *b;
	char *text, *cause, *want = NULL;

	xasprintf(&text, "%s%s", minimal, reload_rows[_i].yaml);
	b = load_ok(text, no_env);
	if (reload_rows[_i].keys != NULL)
		xasprintf(&want, "%s: cannot change on reload (restart "
		    "instead)", reload_rows[_i].keys);
	ck_assert_int_eq(config_check_reload(a, b, &cause),
	    (want != NULL ? -1 : 0));
	if (want != NULL)
		ck_assert_str_eq(cause, want);
	else
		ck_assert_ptr_null(cause);
	free(cause);
	ck_assert_int_eq(config_check_reload(b, a, &cause),
	    (want != NULL ? -1 : 0));
	if (want != NULL)
		ck_assert_str_eq(cause, want);
	free(cause);
	free(want);
	free(text);
	config_unref(a);
	config_unref(b);
}
END_TEST

START_TEST(test_style_names)
{
	ck_assert_str_eq(config_style_name(CONFIG_STYLE_DATADOG), "datadog");
	ck_assert_str_eq(config_style_name(CONFIG_STYLE_TRACECONTEXT),
	    "tracecontext");
	ck_assert_str_eq(config_style_name(CONFIG_STYLE_BAGGAGE), "baggage");
	ck_assert_str_eq(config_style_name(CONFIG_STYLE_B3), "b3");
	ck_assert_str_eq(config_style_name(CONFIG_STYLE_B3MULTI), "b3multi");
	ck_assert_str_eq(config_style_name(CONFIG_STYLE_NONE), "none");
	ck_assert_str_eq(config_style_name((enum config_style)42), "unknown");
}
END_TEST

/* Listen addresses that take the same port are errors; others are not. */
static const struct {
	const char *listen;	/* the server.listen list */
	const char *admin;	/* admin.listen, or NULL */
	const char *want;	/* the error lines, "" for none */
} listen_rows[] = {
	{ "[\"127.0.0.1:8080\", \"127.0.0.1:8080\"]", NULL,
	  "t.yaml:1:37: server.listen[1]: \"127.0.0.1:8080\" takes the "
	  "address of server.listen[0] (\"127.0.0.1:8080\") again; list each "
	  "address once\n" },
	{ "[\"0.0.0.0:8080\", \"127.0.0.1:8080\"]", NULL,
	  "t.yaml:1:35: server.listen[1]: \"127.0.0.1:8080\" takes the "
	  "address of server.listen[0] (\"0.0.0.0:8080\") again; list each "
	  "address once\n" },
	{ "[\"[::]:8080\", \"127.0.0.1:8080\"]", NULL,
	  "t.yaml:1:32: server.listen[1]: \"127.0.0.1:8080\" takes the "
	  "address of server.listen[0] (\"[::]:8080\") again; list each "
	  "address once\n" },
	{ "[\"LOCALHOST:8080\", \"localhost:8080\"]", NULL,
	  "t.yaml:1:37: server.listen[1]: \"localhost:8080\" takes the "
	  "address of server.listen[0] (\"LOCALHOST:8080\") again; list each "
	  "address once\n" },
	{ "[\"127.0.0.1:8080\"]", "127.0.0.1:8080",
	  "t.yaml:2:17: admin.listen: \"127.0.0.1:8080\" takes the address of "
	  "server.listen[0] (\"127.0.0.1:8080\"); the admin listener needs its "
	  "own port\n" },
	{ "[\"127.0.0.1:8080\"]", "0.0.0.0:8080",
	  "t.yaml:2:17: admin.listen: \"0.0.0.0:8080\" takes the address of "
	  "server.listen[0] (\"127.0.0.1:8080\"); the admin listener needs its "
	  "own port\n" },
	/* Not clashes: port 0 picks a new port, families, other ports. */
	{ "[\"127.0.0.1:0\", \"127.0.0.1:0\"]", "127.0.0.1:0", "" },
	{ "[\"0.0.0.0:8080\", \"[::1]:8080\"]", NULL, "" },
	{ "[\"127.0.0.1:8080\", \"127.0.0.2:8080\"]", "127.0.0.1:9901", "" },
	{ "[\"127.0.0.1:8080\", \"127.0.0.1:8081\"]", NULL, "" },
};

START_TEST(test_listen_clash)
{
	char *doc, *errors;
	struct config *cfg;

	doc = NULL;
	xasprintf(&doc, "server: {listen: %s}\n%s%s%s"
	    "routes:\n  - upstream: {url: \"http://127.0.0.1:9000\"}\n",
	    listen_rows[_i].listen, listen_rows[_i].admin != NULL ?
	    "admin: {listen: \"" : "", listen_rows[_i].admin != NULL ?
	    listen_rows[_i].admin : "", listen_rows[_i].admin != NULL ?
	    "\"}\n" : "");
	if (listen_rows[_i].want[0] == '\0') {
		cfg = load_ok(doc, no_env);
		config_unref(cfg);
	} else {
		errors = load_bad(doc, no_env);
		ck_assert_str_eq(errors, listen_rows[_i].want);
		free(errors);
	}
	free(doc);
}
END_TEST

/*
 * Refusals after loading are positioned through the key map: the key
 * itself, an entry inherited from the top-level cors block where it is
 * written, the closest written parent, the environment's label, the file
 * start when nothing was written; the same line is added once.
 */
START_TEST(test_error_at)
{
	static const char doc[] =
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "cors:\n"
	    "  allowed_origins: [\"https://a.example.com\", \"https://*.com\"]\n"
	    "routes:\n"
	    "  - upstream: {url: \"https://127.0.0.1:9000\"}\n"
	    "    cors: {max_age: 5, allowed_headers: [\"X A\"]}\n";
	char *const env[] = { "DD_TRACE_AGENT_URL=https://agent:8126", NULL };
	const struct config_pos *pos;
	struct config_errors ce;
	struct config *cfg;

	cfg = load_ok(doc, env);
	ck_assert_int_eq(config_key_pos(cfg, "cors.allowed_origins[1]", &pos),
	    0);
	ck_assert_ptr_null(pos->file);
	ck_assert_uint_eq(pos->line, 4);
	ck_assert_uint_eq(pos->col, 46);
	ck_assert_int_eq(config_key_pos(cfg,
	    "routes[0].cors.allowed_origins[1]", &pos), -1);
	ck_assert_ptr_null(pos);
	ck_assert_int_eq(config_key_pos(cfg, "tracing.service", &pos), -1);

	config_errors_init(&ce, cfg);
	config_error_at(&ce, "cors.allowed_origins[1]", "bad %d", 1);
	/* Inherited by the route: reported where it is written, once. */
	config_error_at(&ce, "routes[0].cors.allowed_origins[1]", "bad %d", 1);
	config_error_at(&ce, "routes[0].cors.allowed_headers[0]", "no");
	config_error_at(&ce, "routes[0].upstream.tls_ca_file", "parent");
	config_error_at(&ce, "exporter.datadog_url", "from env");
	config_error_at(&ce, "tracing.service", "nowhere");
	config_warn_at(&ce, "cors.allowed_origins[0]", "careful");
	ck_assert_uint_eq(ce.nerrors, 5);
	ck_assert_uint_eq(ce.nwarnings, 1);
	ck_assert_str_eq(ce.errors,
	    "t.yaml:4:46: cors.allowed_origins[1]: bad 1\n"
	    "t.yaml:7:42: routes[0].cors.allowed_headers[0]: no\n"
	    "t.yaml:6:15: routes[0].upstream.tls_ca_file: parent\n"
	    "env:DD_TRACE_AGENT_URL: exporter.datadog_url: from env\n"
	    "t.yaml:1:1: tracing.service: nowhere\n");
	ck_assert_str_eq(ce.warnings,
	    "t.yaml:4:21: cors.allowed_origins[0]: warning: careful\n");
	config_errors_clear(&ce);
	ck_assert_ptr_null(ce.errors);
	config_unref(cfg);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("load");
	tcase_add_test(tc, test_servers);
	tcase_add_test(tc, test_dump_servers_round_trip);
	tcase_add_test(tc, test_listen_options_round_trip);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_yaml_nulls_and_quotes);
	tcase_add_test(tc, test_route_cors);
	tcase_add_test(tc, test_missing_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_bad_fixture, 0,
	    (int)TS_NITEMS(bad_fixtures));
	tcase_add_test(tc, test_error_cap);
	tcase_add_test(tc, test_rum_intake_sites);
	tcase_add_test(tc, test_dump_rum_intake_round_trip);
	tcase_add_loop_test(tc, test_listen_clash, 0,
	    (int)TS_NITEMS(listen_rows));
	tcase_add_test(tc, test_error_at);
	suite_add_tcase(s, tc);

	tc = tcase_create("env");
	/* As main.c does: the sampler checks the rules' fields. */
	config_set_rules_check(sampler_rules_check);
	tcase_add_test(tc, test_env_overrides);
	tcase_add_test(tc, test_env_precedence);
	tcase_add_loop_test(tc, test_style_rows, 0, (int)TS_NITEMS(style_rows));
	tcase_add_test(tc, test_style_yaml_items);
	tcase_add_loop_test(tc, test_env_bad, 0, (int)TS_NITEMS(bad_env));
	tcase_add_test(tc, test_env_table);
	tcase_add_test(tc, test_env_table_covers_every_variable);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_test(tc, test_reference_documents_every_key);
	tcase_add_loop_test(tc, test_conf_files_load, 0,
	    (int)TS_NITEMS(conf_files));
	suite_add_tcase(s, tc);

	tc = tcase_create("lifetime");
	tcase_add_test(tc, test_refcount);
	tcase_add_test(tc, test_reload_check);
	tcase_add_test(tc, test_doc_reload_column);
	tcase_add_loop_test(tc, test_reload_rows, 0, TS_NITEMS(reload_rows));
	tcase_add_test(tc, test_style_names);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(config_suite)
