/*
 * test_opsenv_e2e.c -- operator conventions through the real binary
 * (issue 14 items 1, 7 and 8): the DD_* / OTEL_* environment and -T, the
 * default config path, the start summary line, SIGUSR1 reopening the
 * access log, SIGHUP swapping the access log and the exporter (no span
 * lost: counted at two fake agents), and the sd_notify protocol
 * (READY=1, RELOADING=1 + READY=1, STOPPING=1) on a datagram socket the
 * test binds, by path and in the abstract namespace.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

static void
teardown(void)
{
	itest_teardown();
}

/* A config with one route to port and this exporter / access log. */
static char *
config(uint16_t port, const char *exporter, const char *access_log)
{
	return itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  workers: 2\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    path_prefix: /\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "exporter: %s\n"
	    "logging: {level: info, access_log: \"%s\"}\n",
	    (unsigned)port, exporter, access_log);
}

/* GET path through the gateway; the status. */
static int
get(struct itest_proc *gw, const char *path)
{
	struct itest_resp r;
	char *raw;
	int rv, status;

	raw = itest_strf("GET %s HTTP/1.1\r\nHost: itest.test\r\n"
	    "Connection: close\r\n\r\n", path);
	rv = itest_request(gw->port, raw, strlen(raw), &r, 0,
	    ITEST_TIMEOUT_MS);
	free(raw);
	ck_assert_msg(rv == 0, "GET %s: %s", path, itest_error());
	status = r.status;
	itest_resp_clear(&r);
	return status;
}

/* SIGHUP and wait for the outcome line; fails the test otherwise. */
static void
reload(struct itest_proc *gw, const char *yaml)
{
	size_t from = itest_log_size(gw, ITEST_STDERR);

	itest_rewrite(gw->cfg_path, yaml);
	itest_proc_signal(gw, SIGHUP);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR,
	    "configuration reloaded", from, ITEST_TIMEOUT_MS) > 0,
	    "no \"configuration reloaded\" in:\n%s",
	    itest_log_read(gw, ITEST_STDERR));
}

/* Poll /metrics until name >= want (deadline); the last value or -1. */
static double
metric_wait(struct itest_proc *gw, const char *name, double want)
{
	int64_t deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	struct itest_resp r;
	double v = -1;

	for (;;) {
		if (itest_get(gw->admin_port, "/metrics", &r) == 0) {
			v = itest_metric(r.body, name, NULL);
			itest_resp_clear(&r);
		}
		if (v >= want || itest_now_ms() >= deadline)
			return v;
		poll(NULL, 0, 20);
	}
}

/* A private directory for log files; removed by rmdir_all. */
static char *
tmp_dir(void)
{
	const char *t = getenv("TMPDIR");
	char *d = itest_strf("%s/ts-opsenv-XXXXXX", t != NULL ? t : "/tmp");

	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

/* Lines in a file (0 when it does not exist). */
static size_t
file_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int c;

	if (f == NULL)
		return 0;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Wait until path has at least n lines; the count. */
static size_t
file_lines_wait(const char *path, size_t n)
{
	int64_t deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	size_t have;

	while ((have = file_lines(path)) < n && itest_now_ms() < deadline)
		poll(NULL, 0, 20);
	return have;
}

/* Remove the files of d, then d. */
static void
rmdir_all(char *d, const char *const *names)
{
	char *p;

	for (; *names != NULL; names++) {
		p = itest_strf("%s/%s", d, *names);
		(void)unlink(p);
		free(p);
	}
	(void)rmdir(d);
	free(d);
}

/*
 * -T: the file plus the environment, defaults filled in, secrets masked,
 * warnings on stderr; what it prints loads again (-n) to the same dump.
 */
START_TEST(dump_with_environment)
{
	const char *args[] = { "-T", "-c", NULL, NULL };
	const char *args2[] = { "-T", "-c", NULL, NULL };
	char *yaml, *path, *out, *err, *out2, *err2, *dumped;
	int rv;

	yaml = config(9, "{type: datadog}", "off");
	path = itest_write_temp(yaml, ".yaml");
	free(yaml);
	setenv("DD_SERVICE", "dd-svc", 1);
	setenv("OTEL_SERVICE_NAME", "otel-svc", 1);
	setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=stage,"
	    "team=a%20b", 1);
	setenv("OTEL_PROPAGATORS", "tracecontext,baggage", 1);
	setenv("OTEL_EXPORTER_OTLP_HEADERS", "dd-api-key=s3cr3t", 1);
	setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio", 1);
	setenv("OTEL_TRACES_SAMPLER_ARG", "0.25", 1);
	setenv("DD_TRACE_AGENT_URL", "http://agent.example:8126", 1);
	setenv("DD_TRACE_DEBUG", "true", 1);
	args[2] = path;
	rv = itest_gateway_run(args, &out, &err, ITEST_TIMEOUT_MS);
	ck_assert_msg(rv == 0, "exit %d: %s", rv, err);
	ck_assert_msg(strstr(out, "\n  service: \"dd-svc\"\n") != NULL, "%s",
	    out);
	ck_assert_msg(strstr(out, "\n  env: \"stage\"\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "\n  tags: {\"team\": \"a b\"}\n") != NULL,
	    "%s", out);
	ck_assert_msg(strstr(out, "\n  extract: [tracecontext, baggage]\n") !=
	    NULL, "%s", out);
	ck_assert_msg(strstr(out, "\n  sample_rate: 0.25\n") != NULL, "%s",
	    out);
	ck_assert_msg(strstr(out, "\n  datadog_url: "
	    "\"http://agent.example:8126\"\n") != NULL, "%s", out);
	/* Defaults are filled in. */
	ck_assert_msg(strstr(out, "\n    max_header_bytes: 16k\n") != NULL,
	    "%s", out);
	/* The API key is masked. */
	ck_assert_msg(strstr(out, "s3cr3t") == NULL, "%s", out);
	ck_assert_msg(strstr(out, "\"dd-api-key\": \"<redacted>\"") != NULL,
	    "%s", out);
	/* One warning per unsupported variable, one for the overruled one. */
	ck_assert_msg(strstr(err, "env:DD_TRACE_DEBUG: not supported by "
	    "tracestitch, ignored\n") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "env:OTEL_SERVICE_NAME: ignored: DD_SERVICE "
	    "is set and wins") != NULL, "%s", err);

	/* The dump is a configuration: the same dump again, without env. */
	unsetenv("DD_SERVICE");
	unsetenv("OTEL_SERVICE_NAME");
	unsetenv("OTEL_RESOURCE_ATTRIBUTES");
	unsetenv("OTEL_PROPAGATORS");
	unsetenv("OTEL_EXPORTER_OTLP_HEADERS");
	unsetenv("OTEL_TRACES_SAMPLER");
	unsetenv("OTEL_TRACES_SAMPLER_ARG");
	unsetenv("DD_TRACE_AGENT_URL");
	unsetenv("DD_TRACE_DEBUG");
	dumped = itest_write_temp(out, ".yaml");
	args2[2] = dumped;
	rv = itest_gateway_run(args2, &out2, &err2, ITEST_TIMEOUT_MS);
	ck_assert_msg(rv == 0, "exit %d: %s", rv, err2);
	/* Past the first line (it names the file). */
	ck_assert_str_eq(strchr(out2, '\n'), strchr(out, '\n'));
	free(out);
	free(err);
	free(out2);
	free(err2);
}
END_TEST

/* -T on a bad configuration: exit 1 with the errors of -n, no dump. */
START_TEST(dump_bad_config_fails_like_check)
{
	const char *args[] = { "-T", "-c", NULL, NULL };
	char *path, *out, *err;
	int rv;

	path = itest_write_temp("routes: []\nserver: {workers: 0}\n", ".yaml");
	setenv("OTEL_TRACES_SAMPLER", "jaeger_remote", 1);
	args[2] = path;
	rv = itest_gateway_run(args, &out, &err, ITEST_TIMEOUT_MS);
	ck_assert_msg(rv == 1, "exit %d: %s", rv, out);
	ck_assert_str_eq(out, "");
	ck_assert_msg(strstr(err, "server.workers") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "env:OTEL_TRACES_SAMPLER: "
	    "tracing.sample_rate: expected always_on") != NULL, "%s", err);
	free(out);
	free(err);
}
END_TEST

/* Without -c: sysconfdir/tracestitch/tracestitch.yaml of the build. */
START_TEST(default_config_path)
{
	const char *args[] = { "-n", NULL };
	char *out, *err, *want;
	struct stat st;
	int rv;

	want = itest_strf("%s/tracestitch/tracestitch.yaml",
	    TS_TEST_SYSCONFDIR);
	rv = itest_gateway_run(args, &out, &err, ITEST_TIMEOUT_MS);
	if (stat(want, &st) == 0)
		/* Installed on this machine: it is read. */
		ck_assert_msg(rv == 0 || strstr(err, want) != NULL,
		    "exit %d: %s", rv, err);
	else {
		ck_assert_msg(rv == 1, "exit %d: %s", rv, err);
		ck_assert_msg(strncmp(err, want, strlen(want)) == 0 &&
		    strstr(err, ": cannot open: ") != NULL, "expected %s: "
		    "cannot open, got: %s", want, err);
	}
	free(want);
	free(out);
	free(err);
}
END_TEST

/* At start: one info line with listeners, routes, styles, exporter. */
START_TEST(start_summary_line)
{
	struct itest_proc *be, *gw;
	char *yaml, *log, *want, *line, *nl;

	be = itest_backend_start("be");
	yaml = config(be->port, "{type: none}", "off");
	gw = itest_gateway_start(yaml);
	free(yaml);
	log = itest_log_read(gw, ITEST_STDERR);
	line = strstr(log, "info: serving: listeners http://127.0.0.1:");
	ck_assert_msg(line != NULL, "no summary line in:\n%s", log);
	nl = strchr(line, '\n');
	ck_assert_ptr_nonnull(nl);
	*nl = '\0';
	want = itest_strf("http://127.0.0.1:%u; routes api / -> "
	    "http://127.0.0.1:%u; extract datadog,tracecontext,baggage; "
	    "inject datadog,tracecontext,baggage; exporter none none",
	    (unsigned)gw->port, (unsigned)be->port);
	ck_assert_msg(strstr(line, want) != NULL, "summary: %s\nwant: %s",
	    line, want);
	/* One line, before "ready". */
	ck_assert_uint_eq(itest_log_count(gw, ITEST_STDERR, "serving: ", 0),
	    1);
	free(want);
	free(log);
}
END_TEST

/*
 * logrotate without copytruncate: rename the file, SIGUSR1, and the next
 * lines go to a new file at the configured path.
 */
START_TEST(sigusr1_reopens_access_log)
{
	static const char *const names[] = { "access.log", "access.log.1",
	    NULL };
	struct itest_proc *be, *gw;
	char *dir, *log, *rotated, *yaml;
	size_t from;

	dir = tmp_dir();
	log = itest_strf("%s/access.log", dir);
	rotated = itest_strf("%s/access.log.1", dir);
	be = itest_backend_start("be");
	yaml = config(be->port, "{type: none}", log);
	gw = itest_gateway_start(yaml);
	free(yaml);

	ck_assert_int_eq(get(gw, "/echo/one"), 200);
	ck_assert_uint_eq(file_lines_wait(log, 1), 1);
	ck_assert_int_eq(rename(log, rotated), 0);
	/* Before the signal the old (renamed) file still gets the lines. */
	ck_assert_int_eq(get(gw, "/echo/two"), 200);
	ck_assert_uint_eq(file_lines_wait(rotated, 2), 2);
	from = itest_log_size(gw, ITEST_STDERR);
	itest_proc_signal(gw, SIGUSR1);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR, "access log reopened",
	    from, ITEST_TIMEOUT_MS) > 0, "%s",
	    itest_log_read(gw, ITEST_STDERR));
	ck_assert_int_eq(get(gw, "/echo/three"), 200);
	ck_assert_uint_eq(file_lines_wait(log, 1), 1);
	ck_assert_uint_eq(file_lines(rotated), 2);
	ck_assert_int_eq(itest_proc_stop(gw, SIGTERM, ITEST_TIMEOUT_MS), 0);
	free(log);
	free(rotated);
	rmdir_all(dir, names);
}
END_TEST

/* SIGHUP with a new logging.access_log: the next lines go there. */
START_TEST(sighup_swaps_access_log)
{
	static const char *const names[] = { "a.log", "b.log", NULL };
	struct itest_proc *be, *gw;
	char *dir, *a, *b, *yaml;

	dir = tmp_dir();
	a = itest_strf("%s/a.log", dir);
	b = itest_strf("%s/b.log", dir);
	be = itest_backend_start("be");
	yaml = config(be->port, "{type: none}", a);
	gw = itest_gateway_start(yaml);
	free(yaml);
	ck_assert_int_eq(get(gw, "/echo/one"), 200);
	ck_assert_uint_eq(file_lines_wait(a, 1), 1);

	yaml = config(be->port, "{type: none}", b);
	reload(gw, yaml);
	free(yaml);
	ck_assert_msg(itest_log_count(gw, ITEST_STDERR, "access log: now ",
	    0) == 1, "%s", itest_log_read(gw, ITEST_STDERR));
	ck_assert_int_eq(get(gw, "/echo/two"), 200);
	ck_assert_int_eq(get(gw, "/echo/three"), 200);
	ck_assert_uint_eq(file_lines_wait(b, 2), 2);
	ck_assert_uint_eq(file_lines(a), 1);

	/* And to off: nothing more anywhere. */
	yaml = config(be->port, "{type: none}", "off");
	reload(gw, yaml);
	free(yaml);
	ck_assert_int_eq(get(gw, "/echo/four"), 200);
	ck_assert_int_eq(itest_proc_stop(gw, SIGTERM, ITEST_TIMEOUT_MS), 0);
	ck_assert_uint_eq(file_lines(a), 1);
	ck_assert_uint_eq(file_lines(b), 2);
	free(a);
	free(b);
	rmdir_all(dir, names);
}
END_TEST

/*
 * SIGHUP with a new exporter target: spans queued in the old exporter
 * (a long flush interval keeps them there) are sent by it, the next ones
 * by the new one; every span arrives exactly once.
 */
START_TEST(sighup_swaps_exporter_without_losing_spans)
{
	struct itest_proc *be, *agent_a, *agent_b, *gw;
	char *yaml, *ex;
	json_t *reqs;
	size_t i, na, nb;
	enum { BEFORE = 6, AFTER = 4 };

	be = itest_backend_start("be");
	agent_a = itest_agent_start("normal", NULL);
	agent_b = itest_agent_start("normal", NULL);
	/* A minute: nothing leaves A before the swap on its own. */
	ex = itest_strf("{type: datadog, datadog_url: \"http://127.0.0.1:%u\","
	    " flush_interval: 1m}", (unsigned)agent_a->port);
	yaml = config(be->port, ex, "off");
	free(ex);
	gw = itest_gateway_start(yaml);
	free(yaml);
	for (i = 0; i < BEFORE; i++)
		ck_assert_int_eq(get(gw, "/echo/a"), 200);
	reqs = itest_agent_requests(agent_a);
	ck_assert_uint_eq(itest_agent_span_count(reqs), 0);
	json_decref(reqs);

	ex = itest_strf("{type: datadog, datadog_url: \"http://127.0.0.1:%u\","
	    " flush_interval: 100ms}", (unsigned)agent_b->port);
	yaml = config(be->port, ex, "off");
	free(ex);
	reload(gw, yaml);
	free(yaml);
	ck_assert_msg(itest_log_count(gw, ITEST_STDERR, "exporter: now "
	    "datadog http://127.0.0.1:", 0) == 1, "%s",
	    itest_log_read(gw, ITEST_STDERR));
	/* The old exporter is retired: it sends its spans to A now. */
	reqs = itest_agent_wait_spans(agent_a, BEFORE, ITEST_TIMEOUT_MS);
	ck_assert_msg(reqs != NULL, "agent A: %s", itest_error());
	json_decref(reqs);
	for (i = 0; i < AFTER; i++)
		ck_assert_int_eq(get(gw, "/echo/b"), 200);
	reqs = itest_agent_wait_spans(agent_b, AFTER, ITEST_TIMEOUT_MS);
	ck_assert_msg(reqs != NULL, "agent B: %s", itest_error());
	json_decref(reqs);
	ck_assert_int_eq(itest_proc_stop(gw, SIGTERM, ITEST_TIMEOUT_MS), 0);
	/* Exactly once each: nothing duplicated, nothing crossed over. */
	reqs = itest_agent_requests(agent_a);
	na = itest_agent_span_count(reqs);
	json_decref(reqs);
	reqs = itest_agent_requests(agent_b);
	nb = itest_agent_span_count(reqs);
	json_decref(reqs);
	ck_assert_uint_eq(na, BEFORE);
	ck_assert_uint_eq(nb, AFTER);
}
END_TEST

/*
 * A reload whose access log cannot be opened fails as a whole: the old
 * access log keeps its lines, the old exporter its spans, and /metrics
 * still shows the old exporter's counters.
 */
START_TEST(sighup_failed_swap_keeps_exporter_and_access_log)
{
	static const char *const names[] = { "a.log", NULL };
	struct itest_proc *be, *agent_a, *agent_b, *gw;
	char *dir, *a, *yaml, *ex;
	json_t *reqs;
	size_t from;

	dir = tmp_dir();
	a = itest_strf("%s/a.log", dir);
	be = itest_backend_start("be");
	agent_a = itest_agent_start("normal", NULL);
	agent_b = itest_agent_start("normal", NULL);
	ex = itest_strf("{type: datadog, datadog_url: \"http://127.0.0.1:%u\","
	    " flush_interval: 100ms}", (unsigned)agent_a->port);
	yaml = config(be->port, ex, a);
	free(ex);
	gw = itest_gateway_start(yaml);
	free(yaml);

	ex = itest_strf("{type: datadog, datadog_url: \"http://127.0.0.1:%u\","
	    " flush_interval: 100ms}", (unsigned)agent_b->port);
	yaml = config(be->port, ex, "/nonexistent/dir/b.log");
	free(ex);
	itest_rewrite(gw->cfg_path, yaml);
	free(yaml);
	from = itest_log_size(gw, ITEST_STDERR);
	itest_proc_signal(gw, SIGHUP);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR, "configuration reload "
	    "failed: logging.access_log: ", from, ITEST_TIMEOUT_MS) > 0,
	    "%s", itest_log_read(gw, ITEST_STDERR));
	ck_assert_int_eq(get(gw, "/echo/one"), 200);
	ck_assert_int_eq(get(gw, "/echo/two"), 200);
	ck_assert_uint_eq(file_lines_wait(a, 2), 2);
	reqs = itest_agent_wait_spans(agent_a, 2, ITEST_TIMEOUT_MS);
	ck_assert_msg(reqs != NULL, "agent A: %s", itest_error());
	json_decref(reqs);
	ck_assert_msg(metric_wait(gw, "tracestitch_export_spans_total", 2) >= 2,
	    "the exporter's counters left /metrics");
	ck_assert_int_eq(itest_proc_stop(gw, SIGTERM, ITEST_TIMEOUT_MS), 0);
	reqs = itest_agent_requests(agent_b);
	ck_assert_uint_eq(itest_agent_span_count(reqs), 0);
	json_decref(reqs);
	free(a);
	rmdir_all(dir, names);
}
END_TEST

/* A bound datagram socket at name ('@': abstract); the fd. */
static int
notify_bind(const char *name)
{
	struct sockaddr_un sun;
	socklen_t len;
	size_t l = strlen(name);
	int fd;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	ck_assert_uint_lt(l, sizeof sun.sun_path);
	memcpy(sun.sun_path, name, l);
	if (name[0] == '@') {
		sun.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l);
	} else
		len = (socklen_t)sizeof sun;
	ck_assert_msg(bind(fd, (struct sockaddr *)&sun, len) == 0, "bind %s: "
	    "%s", name, strerror(errno));
	return fd;
}

/* The next datagram, NUL-terminated in buf, or fail after the deadline. */
static const char *
notify_recv(int fd, char *buf, size_t size)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	ck_assert_msg(poll(&p, 1, ITEST_TIMEOUT_MS) == 1, "no notification");
	n = recv(fd, buf, size - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	return buf;
}

/* READY=1 at start, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1. */
static void
notify_run(const char *name)
{
	struct itest_proc *be, *gw;
	char *yaml, buf[256];
	int fd;

	fd = notify_bind(name);
	setenv("NOTIFY_SOCKET", name, 1);
	be = itest_backend_start("be");
	yaml = config(be->port, "{type: none}", "off");
	gw = itest_gateway_start(yaml);
	ck_assert_str_eq(notify_recv(fd, buf, sizeof buf), "READY=1");
	reload(gw, yaml);
	free(yaml);
	notify_recv(fd, buf, sizeof buf);
	ck_assert_msg(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0,
	    "%s", buf);
	ck_assert_str_eq(notify_recv(fd, buf, sizeof buf), "READY=1");
	itest_proc_signal(gw, SIGTERM);
	ck_assert_str_eq(notify_recv(fd, buf, sizeof buf), "STOPPING=1");
	ck_assert_int_eq(itest_proc_wait(gw, ITEST_TIMEOUT_MS), 0);
	close(fd);
}

START_TEST(sd_notify_path_socket)
{
	const char *t = getenv("TMPDIR");
	char *dir = itest_strf("%s/ts-notify-XXXXXX", t != NULL ? t : "/tmp");
	char *name;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	name = itest_strf("%s/notify", dir);
	notify_run(name);
	(void)unlink(name);
	(void)rmdir(dir);
	free(name);
	free(dir);
}
END_TEST

START_TEST(sd_notify_abstract_socket)
{
	char *name = itest_strf("@tracestitch-itest-%ld", (long)getpid());

	notify_run(name);
	free(name);
}
END_TEST

/* DD_TRACE_CLIENT_IP_ENABLED: the span carries http.client_ip. */
START_TEST(client_ip_tag_from_environment)
{
	struct itest_proc *be, *gw;
	char *yaml, *out;

	setenv("DD_TRACE_CLIENT_IP_ENABLED", "true", 1);
	be = itest_backend_start("be");
	yaml = config(be->port, "{type: stdout, flush_interval: 10ms}", "off");
	gw = itest_gateway_start(yaml);
	free(yaml);
	ck_assert_int_eq(get(gw, "/echo/ip"), 200);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDOUT,
	    "\"http.client_ip\":\"127.0.0.1\"", 0, ITEST_TIMEOUT_MS) > 0,
	    "no http.client_ip in:\n%s", itest_log_read(gw, ITEST_STDOUT));
	unsetenv("DD_TRACE_CLIENT_IP_ENABLED");
	ck_assert_int_eq(itest_proc_stop(gw, SIGTERM, ITEST_TIMEOUT_MS), 0);
	out = itest_log_read(gw, ITEST_STDOUT);
	free(out);
}
END_TEST

/* Without the variable: no http.client_ip (the default is off). */
START_TEST(client_ip_tag_off_by_default)
{
	struct itest_proc *be, *gw;
	char *yaml;

	be = itest_backend_start("be");
	yaml = config(be->port, "{type: stdout, flush_interval: 10ms}", "off");
	gw = itest_gateway_start(yaml);
	free(yaml);
	ck_assert_int_eq(get(gw, "/echo/ip"), 200);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDOUT, "network.client.ip", 0,
	    ITEST_TIMEOUT_MS) > 0, "no span in:\n%s",
	    itest_log_read(gw, ITEST_STDOUT));
	ck_assert_uint_eq(itest_log_count(gw, ITEST_STDOUT, "http.client_ip",
	    0), 0);
}
END_TEST

static Suite *
opsenv_suite(void)
{
	Suite *s = suite_create("opsenv_e2e");
	TCase *cli = tcase_create("cli"), *run = tcase_create("run");

	tcase_add_checked_fixture(cli, NULL, teardown);
	tcase_set_timeout(cli, 60);
	tcase_add_test(cli, dump_with_environment);
	tcase_add_test(cli, dump_bad_config_fails_like_check);
	tcase_add_test(cli, default_config_path);
	suite_add_tcase(s, cli);

	tcase_add_checked_fixture(run, NULL, teardown);
	tcase_set_timeout(run, 120);
	tcase_add_test(run, start_summary_line);
	tcase_add_test(run, sigusr1_reopens_access_log);
	tcase_add_test(run, sighup_swaps_access_log);
	tcase_add_test(run, sighup_swaps_exporter_without_losing_spans);
	tcase_add_test(run, sighup_failed_swap_keeps_exporter_and_access_log);
	tcase_add_test(run, sd_notify_path_socket);
	tcase_add_test(run, sd_notify_abstract_socket);
	tcase_add_test(run, client_ip_tag_from_environment);
	tcase_add_test(run, client_ip_tag_off_by_default);
	suite_add_tcase(s, run);
	return s;
}

ITEST_MAIN(opsenv_suite, true)
