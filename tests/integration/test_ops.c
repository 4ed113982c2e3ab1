/*
 * test_ops.c -- operating the gateway: command line, admin endpoints,
 * metrics, SIGHUP reload and SIGTERM/SIGINT drain.
 *
 * The config-check cases use tests/data/integration/{good,bad}.yaml and
 * bad.expected (the positions and key paths every error must carry).
 * Reload and drain are observed through the gateway's stderr log lines
 * ("configuration reloaded", "configuration reload failed") and through
 * which fake backend answers.
 */
#include <sys/wait.h>

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

static const char *
data_path(const char *rel)
{
	static char buf[4096];
	const char *dir = getenv("TS_TEST_DATA");

	snprintf(buf, sizeof buf, "%s/integration/%s",
	    dir != NULL ? dir : "tests/data", rel);
	return buf;
}

static void
teardown(void)
{
	itest_teardown();
}

static const char *
jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

/* Name of the backend that answered GET path on c (keep-alive). */
static char *
who_on(struct itest_conn *c, const char *path)
{
	struct itest_resp r;
	char *name;
	json_t *j;

	ck_assert_int_eq(itest_sendf(c, "GET %s HTTP/1.1\r\nHost: itest.test"
	    "\r\n\r\n", path), 0);
	ck_assert_msg(itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS) == 0,
	    "%s", itest_error());
	ck_assert_msg(r.status == 200, "status %d: %s", r.status, r.body);
	j = itest_resp_json(&r);
	name = strdup(jstr(j, "name"));
	json_decref(j);
	itest_resp_clear(&r);
	return name;
}

static char *
who(uint16_t port)
{
	struct itest_conn *c = itest_connect(port);
	char *name = who_on(c, "/echo/who");

	itest_conn_free(c);
	return name;
}

START_TEST(cli_version_and_help)
{
	const char *v[] = { "--version", NULL };
	const char *h[] = { "--help", NULL };
	char *out, *err;
	const char *p;

	ck_assert_int_eq(itest_gateway_run(v, &out, &err, ITEST_TIMEOUT_MS),
	    0);
	ck_assert_msg(strncmp(out, "tracestitch ", 12) == 0, "--version: %s",
	    out);
	p = out + 12;
	ck_assert_msg(isdigit((unsigned char)*p) && strchr(p, '.') != NULL,
	    "--version: %s", out);
	free(out);
	free(err);

	ck_assert_int_eq(itest_gateway_run(h, &out, &err, ITEST_TIMEOUT_MS),
	    0);
	ck_assert_msg(strcasestr(out, "usage") != NULL, "--help: %s", out);
	ck_assert_msg(strstr(out, "-c") != NULL && strstr(out, "-n") != NULL,
	    "--help does not mention -c and -n: %s", out);
	free(out);
	free(err);
}
END_TEST

START_TEST(check_good_config)
{
	const char *args[] = { "-n", "-c", NULL, NULL };
	char *out, *err;

	args[2] = data_path("good.yaml");
	ck_assert_int_eq(itest_gateway_run(args, &out, &err,
	    ITEST_TIMEOUT_MS), 0);
	ck_assert_msg(strstr(out, "configuration OK") != NULL,
	    "stdout: %s\nstderr: %s", out, err);
	free(out);
	free(err);
}
END_TEST

START_TEST(check_bad_config_reports_every_error)
{
	const char *args[] = { "-n", "-c", NULL, NULL };
	char *out, *err, *want, *file, *line, *save, *hit, buf[512];
	FILE *f;
	int rv;

	file = strdup(data_path("bad.yaml"));
	args[2] = file;
	rv = itest_gateway_run(args, &out, &err, ITEST_TIMEOUT_MS);
	ck_assert_msg(rv == 1, "exit %d; stderr: %s", rv, err);
	ck_assert_msg(strstr(out, "configuration OK") == NULL, "%s", out);

	f = fopen(data_path("bad.expected"), "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(buf, sizeof buf, f) != NULL) {
		if (buf[0] == '#' || buf[0] == '\n')
			continue;
		line = strtok_r(buf, "\n", &save);
		want = itest_strf("%s:%s: ", file, line);
		hit = strstr(err, want);
		ck_assert_msg(hit != NULL && (hit == err || hit[-1] == '\n'),
		    "no error line starting with \"%s\" in:\n%s", want, err);
		free(want);
	}
	fclose(f);
	free(file);
	free(out);
	free(err);
}
END_TEST

START_TEST(check_missing_file_fails)
{
	const char *args[] = { "-n", "-c", "/nonexistent/tracestitch.yaml",
	    NULL };
	char *out, *err;

	ck_assert_int_eq(itest_gateway_run(args, &out, &err,
	    ITEST_TIMEOUT_MS), 1);
	ck_assert_msg(strstr(err, "/nonexistent/tracestitch.yaml") != NULL,
	    "stderr: %s", err);
	free(out);
	free(err);
}
END_TEST

/* GET path from the admin listener. */
static void
admin_get(struct itest_proc *gw, const char *path, struct itest_resp *r)
{
	ck_assert_msg(gw->admin_port != 0, "no admin port in the log");
	ck_assert_msg(itest_get(gw->admin_port, path, r) == 0, "admin %s: %s",
	    path, itest_error());
}

/* Poll /metrics until sample >= want; returns the last value. */
static double
metric_wait(struct itest_proc *gw, const char *name, const char *labels,
    double want, char **text_out)
{
	int64_t deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	struct itest_resp r;
	double v;

	for (;;) {
		admin_get(gw, "/metrics", &r);
		v = itest_metric(r.body, name, labels);
		if (v >= want || itest_now_ms() >= deadline) {
			if (text_out != NULL)
				*text_out = strdup(r.body);
			itest_resp_clear(&r);
			return v;
		}
		itest_resp_clear(&r);
		poll(NULL, 0, 20);
	}
}

START_TEST(admin_endpoints_and_metrics)
{
	struct itest_proc *be, *gw;
	struct itest_resp r;
	char *yaml, *text;
	double v;
	json_t *j;
	int i;

	be = itest_backend_start("one");
	yaml = itest_config_simple(be->port, NULL, NULL);
	gw = itest_gateway_start(yaml);
	free(yaml);

	admin_get(gw, "/healthz", &r);
	ck_assert_int_eq(r.status, 200);
	j = itest_resp_json(&r);
	ck_assert_str_eq(jstr(j, "status"), "ok");
	json_decref(j);
	itest_resp_clear(&r);

	admin_get(gw, "/readyz", &r);
	ck_assert_int_eq(r.status, 200);
	j = itest_resp_json(&r);
	ck_assert_str_eq(jstr(j, "status"), "ready");
	json_decref(j);
	itest_resp_clear(&r);

	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(itest_get(gw->port, "/echo/m", &r), 0);
		ck_assert_int_eq(r.status, 200);
		itest_resp_clear(&r);
	}
	ck_assert_int_eq(itest_get(gw->port, "/status/503", &r), 0);
	ck_assert_int_eq(r.status, 503);
	itest_resp_clear(&r);
	ck_assert_int_eq(itest_get(gw->port, "/close", &r), 0);
	ck_assert_int_eq(r.status, 502);
	itest_resp_clear(&r);
	ck_assert_int_eq(itest_request(gw->port, ITEST_LIT("GET / HTTP/1.1\r\n"
	    "Host: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
	    &r, 0, ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 400);
	itest_resp_clear(&r);

	v = metric_wait(gw, "tracestitch_requests_total",
	    "route=\"api\",code=\"2xx\"", 3, NULL);
	ck_assert_msg(v == 3, "2xx under route api: %g", v);
	v = metric_wait(gw, "tracestitch_requests_total",
	    "route=\"api\",code=\"5xx\"", 2, NULL);
	ck_assert_msg(v == 2, "5xx under route api: %g", v);
	v = metric_wait(gw, "tracestitch_upstream_errors_total",
	    "route=\"api\"", 1, NULL);
	ck_assert_msg(v >= 1, "upstream errors under route api: %g", v);
	v = metric_wait(gw, "tracestitch_framing_rejected_total", NULL, 1,
	    &text);
	ck_assert_msg(v >= 1, "framing rejections: %g\n%s", v, text);
	ck_assert_msg(itest_metric(text, "tracestitch_open_connections",
	    NULL) >= 0, "no tracestitch_open_connections:\n%s", text);
	ck_assert_msg(itest_metric(text,
	    "tracestitch_request_duration_seconds_count", NULL) >= 1,
	    "no duration histogram count:\n%s", text);
	ck_assert_msg(itest_metric(text,
	    "tracestitch_request_duration_seconds_sum", NULL) >= 0,
	    "no duration histogram sum:\n%s", text);
	ck_assert_msg(strstr(text, "tracestitch_request_duration_seconds_bucket"
	    "{") != NULL && strstr(text, "le=\"+Inf\"") != NULL,
	    "no duration buckets:\n%s", text);
	free(text);

	admin_get(gw, "/metrics", &r);
	ck_assert_msg(itest_resp_header(&r, "Content-Type") != NULL &&
	    strncmp(itest_resp_header(&r, "Content-Type"), "text/plain", 10)
	    == 0, "metrics Content-Type %s",
	    itest_resp_header(&r, "Content-Type"));
	itest_resp_clear(&r);
}
END_TEST

/* The text of FILE under the source root; NULL when unreadable. */
static char *
source_file(const char *rel)
{
	const char *root = getenv("TS_SOURCE_ROOT");
	char path[4096], *buf;
	size_t n, cap = 1 << 16, len = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", root != NULL ? root : ".", rel);
	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (len + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/*
 * docs/metrics.md lists every family /metrics renders, and renders every
 * family it lists: the families are read from "# TYPE name" lines of a
 * live rendering (exporter on), and from the "| `name` |" rows of the page.
 */
START_TEST(metrics_families_documented)
{
	struct itest_proc *be, *gw;
	struct itest_resp r;
	char *yaml, *doc, *p, *q, name[128], key[160];
	size_t n_rendered = 0, n_documented = 0, len;

	doc = source_file("docs/metrics.md");
	ck_assert_msg(doc != NULL, "docs/metrics.md not readable");
	be = itest_backend_start("one");
	q = itest_config_simple(be->port, NULL, NULL);
	p = strstr(q, "exporter: {type: none}");
	ck_assert_ptr_nonnull(p);
	yaml = itest_strf("%.*sexporter: {type: stdout}%s", (int)(p - q), q,
	    p + strlen("exporter: {type: none}"));
	free(q);
	gw = itest_gateway_start(yaml);
	free(yaml);
	admin_get(gw, "/metrics", &r);
	ck_assert_int_eq(r.status, 200);

	for (p = r.body; (p = strstr(p, "# TYPE ")) != NULL; p = q) {
		p += 7;
		q = strchr(p, ' ');
		ck_assert_ptr_nonnull(q);
		len = (size_t)(q - p);
		ck_assert_uint_lt(len, sizeof name);
		memcpy(name, p, len);
		name[len] = '\0';
		snprintf(key, sizeof key, "| `%s` |", name);
		ck_assert_msg(strstr(doc, key) != NULL,
		    "/metrics renders %s, docs/metrics.md does not list it",
		    name);
		n_rendered++;
	}
	for (p = doc; (p = strstr(p, "| `")) != NULL; p = q) {
		if (strncmp(p + 3, "tracestitch_", 12) != 0 &&
		    strncmp(p + 3, "process_", 8) != 0) {
			q = p + 3;
			continue;
		}
		p += 3;
		q = strchr(p, '`');
		ck_assert_ptr_nonnull(q);
		len = (size_t)(q - p);
		ck_assert_uint_lt(len, sizeof name);
		memcpy(name, p, len);
		name[len] = '\0';
		snprintf(key, sizeof key, "# TYPE %s ", name);
		ck_assert_msg(strstr(r.body, key) != NULL,
		    "docs/metrics.md lists %s, /metrics does not render it:\n%s",
		    name, r.body);
		n_documented++;
	}
	/* Both sides were read: a renamed page or an empty answer fails. */
	ck_assert_uint_ge(n_rendered, 20);
	ck_assert_uint_eq(n_rendered, n_documented);
	itest_resp_clear(&r);
	free(doc);
}
END_TEST

/* Run cmd through the shell; its stdout (caller frees) and exit code. */
static char *
run_capture(const char *cmd, int *code)
{
	char buf[4096];
	size_t len = 0, n;
	FILE *p;
	int st;

	p = popen(cmd, "r");
	ck_assert_msg(p != NULL, "popen %s", cmd);
	while (len < sizeof buf - 1 &&
	    (n = fread(buf + len, 1, sizeof buf - 1 - len, p)) > 0)
		len += n;
	buf[len] = '\0';
	st = pclose(p);
	*code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return strdup(buf);
}

/* GET /metrics from the admin listener with accept (NULL: none). */
static void
metrics_get(struct itest_proc *gw, const char *accept, struct itest_resp *r)
{
	char *raw;

	raw = itest_strf("GET /metrics HTTP/1.1\r\nHost: admin\r\n%s%s%s"
	    "Connection: close\r\n\r\n", accept != NULL ? "Accept: " : "",
	    accept != NULL ? accept : "", accept != NULL ? "\r\n" : "");
	ck_assert_msg(itest_request(gw->admin_port, raw, strlen(raw), r, 0,
	    ITEST_TIMEOUT_MS) == 0, "%s", itest_error());
	free(raw);
	ck_assert_int_eq(r->status, 200);
}

/*
 * Both renderings of a live /metrics pass an independent check: promtool
 * (Debian prometheus) for the text format, prometheus_client's
 * OpenMetrics parser for application/openmetrics-text, which must carry
 * the trace id of a traced request as an exemplar (issue 14 item 6).
 * promtool check metrics of Prometheus 2.42 reads the text format only,
 * so the text rendering also goes through prometheus_client's parser.
 */
START_TEST(metrics_formats_pass_promtool_and_openmetrics)
{
	static const char tid[] = "4bf92f3577b34da6a3ce929d0e0e4736";
	struct itest_proc *be, *gw;
	struct itest_resp r;
	char *yaml, *path, *cmd, *out, *script, *p, *q;	/* path: the harness's */
	const char *ct;
	int code;

	ck_assert_msg(access("/usr/bin/promtool", X_OK) == 0,
	    "promtool missing: apt-get install prometheus (make deps)");
	be = itest_backend_start("one");
	q = itest_config_simple(be->port, NULL, NULL);
	/* The stdout exporter: its section is in both renderings too. */
	p = strstr(q, "exporter: {type: none}");
	ck_assert_ptr_nonnull(p);
	yaml = itest_strf("%.*sexporter: {type: stdout}%s", (int)(p - q), q,
	    p + strlen("exporter: {type: none}"));
	free(q);
	gw = itest_gateway_start(yaml);
	free(yaml);
	ck_assert_int_eq(itest_request(gw->port, ITEST_LIT("GET /echo/m "
	    "HTTP/1.1\r\nHost: x\r\ntraceparent: 00-"
	    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
	    "Connection: close\r\n\r\n"), &r, 0, ITEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
	/* The request is counted once its reply left: await it. */
	ck_assert_double_ge(metric_wait(gw, "tracestitch_requests_total",
	    "route=\"api\",code=\"2xx\"", 1, NULL), 1);

	script = itest_strf("%s/metrics/check_openmetrics.py",
	    getenv("TS_TEST_DATA") != NULL ? getenv("TS_TEST_DATA") :
	    "tests/data");

	metrics_get(gw, NULL, &r);
	ct = itest_resp_header(&r, "Content-Type");
	ck_assert_msg(ct != NULL && strncmp(ct, "text/plain; version=0.0.4",
	    25) == 0, "Content-Type %s", ct);
	ck_assert(strstr(r.body, " # {") == NULL);
	ck_assert(strstr(r.body, "# TYPE tracestitch_export_spans_total "
	    "counter\n") != NULL);
	ck_assert(strstr(r.body, "\ntracestitch_build_info{version=\"")
	    != NULL);
	/* The traced request in the new families (issue 14 item 6). */
	ck_assert_double_eq(itest_metric(r.body,
	    "tracestitch_propagation_extracted_total",
	    "style=\"tracecontext\",result=\"valid\""), 1);
	ck_assert_double_eq(itest_metric(r.body,
	    "tracestitch_propagation_traces_total", "outcome=\"continued\""),
	    1);
	ck_assert_double_eq(itest_metric(r.body,
	    "tracestitch_request_duration_seconds_count", "route=\"api\""), 1);
	ck_assert_double_eq(itest_metric(r.body,
	    "tracestitch_upstream_connect_duration_seconds_count",
	    "route=\"api\""), 1);
	ck_assert_double_eq(itest_metric(r.body,
	    "tracestitch_upstream_response_duration_seconds_count",
	    "route=\"api\""), 1);
	ck_assert_double_gt(itest_metric(r.body, "process_open_fds", NULL), 3);
	ck_assert_double_gt(itest_metric(r.body,
	    "process_resident_memory_bytes", NULL), 1 << 20);
	ck_assert_double_gt(itest_metric(r.body, "process_start_time_seconds",
	    NULL), (double)time(NULL) - 600);
	path = itest_write_temp(r.body, ".prom");
	itest_resp_clear(&r);
	cmd = itest_strf("/usr/bin/promtool check metrics < %s 2>&1", path);
	out = run_capture(cmd, &code);
	ck_assert_msg(code == 0, "promtool check metrics: exit %d: %s", code,
	    out);
	free(out);
	free(cmd);
	cmd = itest_strf("/usr/bin/python3 %s text %s", script, path);
	out = run_capture(cmd, &code);
	ck_assert_msg(code == 0 && strstr(out, "exemplars=0") != NULL,
	    "text: %s", out);
	free(out);
	free(cmd);

	metrics_get(gw, "application/openmetrics-text; version=1.0.0,"
	    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", &r);
	ct = itest_resp_header(&r, "Content-Type");
	ck_assert_msg(ct != NULL && strncmp(ct, "application/openmetrics-text; "
	    "version=1.0.0", 43) == 0, "Content-Type %s", ct);
	ck_assert(strlen(r.body) > 6 &&
	    strcmp(r.body + strlen(r.body) - 6, "# EOF\n") == 0);
	path = itest_write_temp(r.body, ".om");
	itest_resp_clear(&r);
	cmd = itest_strf("/usr/bin/python3 %s openmetrics %s %s", script,
	    path, tid);
	out = run_capture(cmd, &code);
	ck_assert_msg(code == 0 && strstr(out, "trace=yes") != NULL,
	    "openmetrics: exit %d: %s", code, out);
	free(out);
	free(cmd);
	/* The checker is not lenient: the text rendering is no OpenMetrics. */
	metrics_get(gw, NULL, &r);
	path = itest_write_temp(r.body, ".prom");
	itest_resp_clear(&r);
	cmd = itest_strf("/usr/bin/python3 %s openmetrics %s", script, path);
	out = run_capture(cmd, &code);
	ck_assert_msg(code == 1 && strstr(out, "parse error") != NULL,
	    "text accepted as OpenMetrics: %s", out);
	free(out);
	free(cmd);
	free(script);
}
END_TEST

/* Config routing everything to one backend port. */
static char *
route_to(uint16_t port)
{
	return itest_config_simple(port, NULL, "      keepalive: 4\n");
}

START_TEST(reload_switches_upstream)
{
	struct itest_proc *one, *two, *gw;
	struct itest_conn *c;
	char *yaml, *name;
	size_t from;

	one = itest_backend_start("one");
	two = itest_backend_start("two");
	yaml = route_to(one->port);
	gw = itest_gateway_start(yaml);
	free(yaml);

	c = itest_connect(gw->port);
	name = who_on(c, "/echo/before");
	ck_assert_str_eq(name, "one");
	free(name);

	yaml = route_to(two->port);
	itest_rewrite(gw->cfg_path, yaml);
	free(yaml);
	from = itest_log_size(gw, ITEST_STDERR);
	itest_proc_signal(gw, SIGHUP);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR,
	    "configuration reloaded", from, ITEST_TIMEOUT_MS) > 0,
	    "no \"configuration reloaded\" in:\n%s",
	    itest_log_read(gw, ITEST_STDERR));

	name = who(gw->port);
	ck_assert_str_eq(name, "two");
	free(name);
	/* An existing client connection follows the new config too. */
	name = who_on(c, "/echo/after");
	ck_assert_msg(strcmp(name, "two") == 0, "keep-alive client "
	    "connection still routed to %s after reload", name);
	free(name);
	itest_conn_free(c);
}
END_TEST

START_TEST(reload_bad_config_keeps_old)
{
	struct itest_proc *one, *two, *gw;
	char *yaml, *name, *want;
	size_t from;
	long off;

	one = itest_backend_start("one");
	two = itest_backend_start("two");
	yaml = route_to(one->port);
	gw = itest_gateway_start(yaml);
	free(yaml);

	/* Route to two, but with an unknown key on line 3 column 3. */
	yaml = itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  no_such_key: true\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "exporter: {type: none}\n", two->port);
	itest_rewrite(gw->cfg_path, yaml);
	free(yaml);
	from = itest_log_size(gw, ITEST_STDERR);
	itest_proc_signal(gw, SIGHUP);
	off = itest_log_wait(gw, ITEST_STDERR, "configuration reload failed",
	    from, ITEST_TIMEOUT_MS);
	ck_assert_msg(off > 0, "no \"configuration reload failed\" in:\n%s",
	    itest_log_read(gw, ITEST_STDERR));
	want = itest_strf("%s:3:3: server.no_such_key: ", gw->cfg_path);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR, want, from,
	    ITEST_TIMEOUT_MS) > 0, "no \"%s\" error line in:\n%s", want,
	    itest_log_read(gw, ITEST_STDERR));
	free(want);

	name = who(gw->port);
	ck_assert_str_eq(name, "one");
	free(name);

	/* Fixing the file and reloading again applies it. */
	yaml = route_to(two->port);
	itest_rewrite(gw->cfg_path, yaml);
	free(yaml);
	from = itest_log_size(gw, ITEST_STDERR);
	itest_proc_signal(gw, SIGHUP);
	ck_assert(itest_log_wait(gw, ITEST_STDERR, "configuration reloaded",
	    from, ITEST_TIMEOUT_MS) > 0);
	name = who(gw->port);
	ck_assert_str_eq(name, "two");
	free(name);
}
END_TEST

/*
 * Two routes, "gone" (under /echo/gone) to url, the rest to the backend
 * on port.
 */
static char *
gone_route_to(const char *url, uint16_t port)
{
	return itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 2}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - {name: gone, path_prefix: /echo/gone, upstream: {url: \"%s\"}}\n"
	    "  - {name: api, upstream: {url: \"http://127.0.0.1:%u\"}}\n"
	    "exporter: {type: none}\n", url, port);
}

/*
 * The main thread resolves upstream hosts once per generation.  A host
 * that does not resolve (RFC 6761: .invalid never does) is no refusal,
 * not even for -n: each worker warns with the main thread's cause and the
 * route answers 502 while the others serve; a reload resolves anew.
 */
START_TEST(unresolved_upstream_answers_502_until_reload)
{
	const char *args[] = { "-n", "-c", NULL, NULL };
	static const char warn[] = "route gone: upstream "
	    "http://no-such-host.invalid:9: cannot resolve upstream host "
	    "no-such-host.invalid: ";
	struct itest_proc *one, *gw;
	struct itest_resp r;
	char *yaml, *name, *out, *err;
	size_t from;

	one = itest_backend_start("one");
	yaml = gone_route_to("http://no-such-host.invalid:9", one->port);
	gw = itest_gateway_start(yaml);
	free(yaml);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR, warn, 0,
	    ITEST_TIMEOUT_MS) > 0, "no \"%s\" warning in:\n%s", warn,
	    itest_log_read(gw, ITEST_STDERR));

	ck_assert_int_eq(itest_get(gw->port, "/echo/gone/x", &r), 0);
	itest_assert_error(&r, 502, "bad_gateway");
	ck_assert_ptr_nonnull(strstr(r.body, "could not be resolved"));
	itest_resp_clear(&r);
	name = who(gw->port);
	ck_assert_str_eq(name, "one");
	free(name);

	args[2] = gw->cfg_path;
	ck_assert_int_eq(itest_gateway_run(args, &out, &err,
	    ITEST_TIMEOUT_MS), 0);
	ck_assert_msg(strstr(out, "configuration OK") != NULL, "-n: %s%s",
	    out, err);
	free(out);
	free(err);

	yaml = itest_strf("http://127.0.0.1:%u", one->port);
	name = gone_route_to(yaml, one->port);
	free(yaml);
	itest_rewrite(gw->cfg_path, name);
	free(name);
	from = itest_log_size(gw, ITEST_STDERR);
	itest_proc_signal(gw, SIGHUP);
	ck_assert(itest_log_wait(gw, ITEST_STDERR, "configuration reloaded",
	    from, ITEST_TIMEOUT_MS) > 0);
	ck_assert_int_eq(itest_get(gw->port, "/echo/gone/x", &r), 0);
	ck_assert_msg(r.status == 200, "status %d: %s", r.status, r.body);
	itest_resp_clear(&r);
	ck_assert_uint_eq(itest_log_count(gw, ITEST_STDERR, "cannot resolve",
	    from), 0);
	itest_proc_stop(gw, SIGTERM, ITEST_TIMEOUT_MS);
}
END_TEST

START_TEST(reload_under_traffic_loses_nothing)
{
	struct itest_proc *one, *two, *gw;
	struct itest_conn *c;
	struct itest_resp r;
	int i, failures = 0, reloads = 0, reconnects = 0;
	size_t from = 0, seen;
	char *yaml, first_error[600] = "";

	one = itest_backend_start("one");
	two = itest_backend_start("two");
	yaml = route_to(one->port);
	gw = itest_gateway_start(yaml);
	free(yaml);
	seen = itest_log_count(gw, ITEST_STDERR, "configuration reloaded", 0);

	c = itest_connect(gw->port);
	for (i = 0; i < 400 || reloads < 3; i++) {
		ck_assert_msg(i < 5000, "reloads did not complete");
		if (i == 50 || i == 150 || i == 250) {
			yaml = route_to(i == 150 ? one->port : two->port);
			itest_rewrite(gw->cfg_path, yaml);
			free(yaml);
			from = itest_log_size(gw, ITEST_STDERR);
			itest_proc_signal(gw, SIGHUP);
		}
		if (i % 10 == 0 && reloads < 3 && itest_log_count(gw,
		    ITEST_STDERR, "configuration reloaded", 0) > seen) {
			seen++;
			reloads++;
		}
		/*
		 * An idle keep-alive connection the server closed before we
		 * sent is not a lost request (RFC 9112 section 9.3.1):
		 * reconnect.  Anything else is a failure.
		 */
		if (itest_readable(c, 0)) {
			itest_conn_free(c);
			c = itest_connect(gw->port);
			reconnects++;
		}
		if (itest_sendf(c, "GET /echo/loop/%d HTTP/1.1\r\n"
		    "Host: itest.test\r\n\r\n", i) == -1 ||
		    itest_read_response(c, &r, 0, ITEST_TIMEOUT_MS) == -1) {
			if (failures++ == 0)
				snprintf(first_error, sizeof first_error,
				    "request %d: %s", i, itest_error());
			itest_conn_free(c);
			c = itest_connect(gw->port);
			continue;
		}
		if (r.status != 200 && failures++ == 0)
			snprintf(first_error, sizeof first_error,
			    "request %d: status %d %s", i, r.status,
			    r.body != NULL ? r.body : "");
		if (r.closed) {
			itest_conn_free(c);
			c = itest_connect(gw->port);
			reconnects++;
		}
		itest_resp_clear(&r);
	}
	(void)from;
	itest_conn_free(c);
	ck_assert_msg(failures == 0, "%d failed requests during reloads; "
	    "first: %s", failures, first_error);
	ck_assert_int_eq(reloads, 3);
	ck_assert_msg(reconnects <= 3, "%d client connections were closed "
	    "by reloads", reconnects);
}
END_TEST

START_TEST(sigterm_drains_in_flight_requests)
{
	struct itest_proc *be, *gw;
	struct itest_conn *slow;
	struct itest_resp r;
	uint64_t before;
	int64_t deadline;
	bool saw_draining = false, refused = false;
	char *yaml;
	json_t *j;
	int st, fd;

	be = itest_backend_start("one");
	yaml = itest_config_simple(be->port, NULL, "      timeout: 10s\n");
	gw = itest_gateway_start(yaml);
	free(yaml);

	/* Start a slow request and wait until it reached the backend. */
	before = itest_backend_requests(be);
	slow = itest_connect(gw->port);
	ck_assert_int_eq(itest_sendf(slow, "GET /slow?ms=500 HTTP/1.1\r\n"
	    "Host: itest.test\r\n\r\n"), 0);
	deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	while (itest_backend_requests(be) == before) {
		ck_assert_msg(itest_now_ms() < deadline,
		    "slow request never reached the backend");
		poll(NULL, 0, 5);
	}

	itest_proc_signal(gw, SIGTERM);

	/* /readyz turns 503 draining while the request is in flight. */
	deadline = itest_now_ms() + 2000;
	while (!saw_draining && itest_now_ms() < deadline) {
		if (itest_get(gw->admin_port, "/readyz", &r) == 0 &&
		    r.status == 503) {
			j = itest_resp_json(&r);
			ck_assert_str_eq(jstr(j, "status"), "draining");
			json_decref(j);
			saw_draining = true;
		}
		itest_resp_clear(&r);
	}

	/* The listener is closed: new connections are refused. */
	deadline = itest_now_ms() + 2000;
	while (!refused && itest_now_ms() < deadline) {
		fd = itest_connect_fd(gw->port);
		if (fd == -1 && errno == ECONNREFUSED)
			refused = true;
		else if (fd != -1)
			close(fd);
		poll(NULL, 0, 5);
	}

	/* The in-flight request still completes. */
	ck_assert_msg(itest_read_response(slow, &r, 0, ITEST_TIMEOUT_MS) == 0,
	    "in-flight request lost on SIGTERM: %s", itest_error());
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
	itest_conn_free(slow);

	st = itest_proc_wait(gw, ITEST_TIMEOUT_MS);
	ck_assert_msg(st != -1, "gateway did not exit after draining");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "gateway exit status %#x", st);
	ck_assert_msg(saw_draining, "/readyz never answered 503 draining");
	ck_assert_msg(refused, "new connections still accepted while "
	    "draining");
}
END_TEST

START_TEST(sigint_idle_exits_zero)
{
	struct itest_proc *be, *gw;
	char *yaml;
	int st;

	be = itest_backend_start("one");
	yaml = itest_config_simple(be->port, NULL, NULL);
	gw = itest_gateway_start(yaml);
	free(yaml);
	itest_proc_signal(gw, SIGINT);
	st = itest_proc_wait(gw, ITEST_TIMEOUT_MS);
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "exit status %#x", st);
}
END_TEST

static Suite *
ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *cli = tcase_create("cli");
	TCase *run = tcase_create("running");

	tcase_add_checked_fixture(cli, NULL, teardown);
	tcase_set_timeout(cli, 60);
	tcase_add_test(cli, cli_version_and_help);
	tcase_add_test(cli, check_good_config);
	tcase_add_test(cli, check_bad_config_reports_every_error);
	tcase_add_test(cli, check_missing_file_fails);
	suite_add_tcase(s, cli);

	tcase_add_checked_fixture(run, NULL, teardown);
	tcase_set_timeout(run, 120);
	tcase_add_test(run, admin_endpoints_and_metrics);
	tcase_add_test(run, metrics_families_documented);
	tcase_add_test(run, metrics_formats_pass_promtool_and_openmetrics);
	tcase_add_test(run, reload_switches_upstream);
	tcase_add_test(run, reload_bad_config_keeps_old);
	tcase_add_test(run, unresolved_upstream_answers_502_until_reload);
	tcase_add_test(run, reload_under_traffic_loses_nothing);
	tcase_add_test(run, sigterm_drains_in_flight_requests);
	tcase_add_test(run, sigint_idle_exits_zero);
	suite_add_tcase(s, run);
	return s;
}

ITEST_MAIN(ops_suite, true)
