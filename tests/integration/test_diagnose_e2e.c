/*
 * test_diagnose_e2e.c -- `tracestitch diagnose` (issue 9 items 3 and 4)
 * run as the real binary against three real servers:
 *
 *  - the gateway itself: its own 403 refusal (reason shown, what it did
 *    not evaluate marked so, the tracestitch key to change), and every
 *    row of tests/data/cors/origins.tsv that HTTP can carry, each asked
 *    of a live gateway route with that pattern, without and with
 *    credentials: diagnose's verdict must be the gateway's decision;
 *  - nginx (Debian nginx-light) with hand-written add_header lines: one
 *    tracing header missing from Access-Control-Allow-Headers, a
 *    location that reflects any Origin with credentials, and a static
 *    location that answers OPTIONS with 405;
 *  - a plain server (a canned upstream) answering 501 and 404, and one
 *    answering "Access-Control-Allow-Origin: *" with credentials.
 *
 * Each check asserts the printed reason or problem, "not evaluated",
 * the response header at fault, Chromium's console text and the fix.
 * nginx cannot bind port 0: a free port is picked with a probe socket
 * and the start is retried when another process took it meanwhile.
 * Without nginx the nginx tests fail when CI is set and are skipped
 * otherwise (as tests/bench/run.sh finds it: $NGINX, PATH, /usr/sbin).
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define ORIGIN "https://app.example.com"

static struct itest_proc *be;
static pid_t nginx_pid = -1;
static uint16_t nginx_port;
static char nginx_dir[256];

/* ---- running diagnose ------------------------------------------------- */

/*
 * Run `tracestitch diagnose` with args (NULL-terminated, after
 * "diagnose"); returns its exit status, the output and, when errp is
 * not NULL, the error output (caller frees).
 */
static int
diagnose_err(const char *const *args, char **out, char **errp)
{
	const char *argv[15];
	char *err = NULL;
	size_t i;
	int rc;

	argv[0] = "diagnose";
	for (i = 0; args[i] != NULL; i++) {
		ck_assert_uint_lt(i + 2, ITEST_NITEMS(argv));
		argv[i + 1] = args[i];
	}
	argv[i + 1] = NULL;
	rc = itest_gateway_run(argv, out, &err, ITEST_TIMEOUT_MS);
	ck_assert_msg(rc >= 0, "diagnose did not finish: %s", err);
	if (errp != NULL)
		*errp = err;
	else
		free(err);
	return rc;
}

/* The same, stderr dropped. */
static int
diagnose(const char *const *args, char **out)
{
	return diagnose_err(args, out, NULL);
}

/* Same with --json: the parsed report (caller decrefs). */
static json_t *
diagnose_json(const char *const *args, int *rc)
{
	const char *a[14];
	json_error_t jerr;
	json_t *j;
	char *out = NULL;
	size_t i;

	for (i = 0; args[i] != NULL; i++)
		a[i] = args[i];
	a[i++] = "--json";
	a[i] = NULL;
	*rc = diagnose(a, &out);
	j = json_loads(out, 0, &jerr);
	ck_assert_msg(j != NULL, "not JSON (%s): %s", jerr.text, out);
	free(out);
	return j;
}

/* Assert out contains needle. */
#define ASSERT_HAS(out, needle)						\
	ck_assert_msg(strstr((out), (needle)) != NULL,			\
	    "missing \"%s\" in:\n%s", (needle), (out))

/* The state of one requested header in a JSON report. */
static const char *
json_state(json_t *j, const char *name)
{
	json_t *h;
	size_t i;

	json_array_foreach(json_object_get(j, "headers"), i, h) {
		if (strcmp(json_string_value(json_object_get(h, "name")),
		    name) == 0)
			return json_string_value(json_object_get(h, "state"));
	}
	ck_abort_msg("no header %s in the report", name);
	return NULL;
}

/* ---- nginx -------------------------------------------------------------- */

/* Path of nginx, or NULL (as tests/bench/run.sh looks for it). */
static const char *
nginx_path(void)
{
	static const char *const dirs[] = { "/usr/sbin", "/usr/local/sbin",
		"/usr/bin", "/usr/local/bin" };
	static char buf[512];
	const char *env = getenv("NGINX");
	size_t i;

	if (env != NULL && access(env, X_OK) == 0)
		return env;
	for (i = 0; i < ITEST_NITEMS(dirs); i++) {
		snprintf(buf, sizeof buf, "%s/nginx", dirs[i]);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

/* A loopback port free right now (bound to 0, then closed). */
static uint16_t
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* nginx's configuration: every file it writes stays under dir. */
static char *
nginx_conf(const char *dir, uint16_t port)
{
	return itest_strf(
	    "worker_processes 1;\n"
	    "master_process off;\n"
	    "events { worker_connections 64; }\n"
	    "http {\n"
	    "  access_log off;\n"
	    "  client_body_temp_path %s/body;\n"
	    "  proxy_temp_path %s/proxy;\n"
	    "  fastcgi_temp_path %s/fastcgi;\n"
	    "  uwsgi_temp_path %s/uwsgi;\n"
	    "  scgi_temp_path %s/scgi;\n"
	    "  server {\n"
	    "    listen 127.0.0.1:%u;\n"
	    /* a hand-kept list that forgot tracestate */
	    "    location /api {\n"
	    "      if ($request_method = OPTIONS) {\n"
	    "        add_header Access-Control-Allow-Origin \"" ORIGIN "\" "
	    "always;\n"
	    "        add_header Access-Control-Allow-Methods \"GET, POST\" "
	    "always;\n"
	    "        add_header Access-Control-Allow-Headers \"Content-Type, "
	    "x-datadog-trace-id, x-datadog-parent-id, x-datadog-origin, "
	    "x-datadog-sampling-priority, traceparent, baggage\" always;\n"
	    "        add_header Access-Control-Max-Age 600 always;\n"
	    "        add_header Vary Origin always;\n"
	    "        return 204;\n"
	    "      }\n"
	    "      return 200 \"api\\n\";\n"
	    "    }\n"
	    /* any Origin echoed, with credentials */
	    "    location /reflect {\n"
	    "      if ($request_method = OPTIONS) {\n"
	    "        add_header Access-Control-Allow-Origin $http_origin "
	    "always;\n"
	    "        add_header Access-Control-Allow-Credentials true always;\n"
	    "        add_header Access-Control-Allow-Headers \"baggage, "
	    "traceparent, tracestate, x-datadog-origin, x-datadog-parent-id, "
	    "x-datadog-sampling-priority, x-datadog-trace-id\" always;\n"
	    "        add_header Access-Control-Max-Age 600 always;\n"
	    "        add_header Vary Origin always;\n"
	    "        return 204;\n"
	    "      }\n"
	    "      return 200 \"reflect\\n\";\n"
	    "    }\n"
	    /* static files: nginx answers OPTIONS 405 */
	    "    location /static { root %s; }\n"
	    "  }\n"
	    "}\n", dir, dir, dir, dir, dir, port, dir);
}

/* Connectable within the deadline, and nginx still running? */
static bool
nginx_wait_ready(pid_t pid, uint16_t port)
{
	int64_t deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	int fd, st;

	while (itest_now_ms() < deadline) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return false;
		if ((fd = itest_connect_fd(port)) >= 0) {
			close(fd);
			return true;
		}
		usleep(10000);
	}
	return false;
}

/*
 * Start nginx on a free port (retried when the port was taken between
 * the probe and nginx's bind).  Returns false when nginx is missing.
 */
static bool
nginx_start(void)
{
	const char *bin = nginx_path(), *tmp = getenv("TMPDIR");
	char *conf, *cpath, *gopt, *errpath;
	int attempt, fd, st;
	pid_t pid;

	if (bin == NULL) {
		ck_assert_msg(getenv("CI") == NULL || *getenv("CI") == '\0',
		    "nginx not found (make deps installs nginx-light)");
		fprintf(stderr, "test_diagnose_e2e: nginx not found, "
		    "skipping\n");
		return false;
	}
	snprintf(nginx_dir, sizeof nginx_dir, "%s/ts-diag-nginx.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(nginx_dir));
	cpath = itest_strf("%s/nginx.conf", nginx_dir);
	errpath = itest_strf("%s/stderr", nginx_dir);
	for (attempt = 0; attempt < 5; attempt++) {
		nginx_port = free_port();
		conf = nginx_conf(nginx_dir, nginx_port);
		fd = open(cpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, conf, strlen(conf)),
		    (ssize_t)strlen(conf));
		close(fd);
		free(conf);
		gopt = itest_strf("daemon off; pid %s/nginx.pid; error_log "
		    "stderr;", nginx_dir);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			execl(bin, bin, "-p", nginx_dir, "-c", cpath, "-g",
			    gopt, (char *)NULL);
			_exit(127);
		}
		free(gopt);
		nginx_pid = pid;
		if (nginx_wait_ready(pid, nginx_port))
			break;
		/* exited (EADDRINUSE?) or hung: stop it by its PID, retry */
		if (waitpid(pid, &st, WNOHANG) == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
		nginx_pid = -1;
	}
	free(cpath);
	free(errpath);
	ck_assert_msg(nginx_pid > 0, "nginx did not start (see %s/stderr)",
	    nginx_dir);
	return true;
}

/* nftw callback: remove one entry. */
static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(path);
}

/* Stop nginx by its PID (SIGTERM, then SIGKILL) and remove its files. */
static void
nginx_stop(void)
{
	int64_t deadline;
	int st;

	if (nginx_pid > 0) {
		kill(nginx_pid, SIGTERM);
		deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
		while (waitpid(nginx_pid, &st, WNOHANG) == 0) {
			if (itest_now_ms() >= deadline) {
				kill(nginx_pid, SIGKILL);
				waitpid(nginx_pid, &st, 0);
				break;
			}
			usleep(10000);
		}
		nginx_pid = -1;
	}
	if (nginx_dir[0] != '\0') {
		(void)nftw(nginx_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		nginx_dir[0] = '\0';
	}
}

static void
setup(void)
{
	be = itest_backend_start("diag");
}

static void
teardown(void)
{
	nginx_stop();
	itest_teardown();
	be = NULL;
}

/* ---- against tracestitch ---------------------------------------------- */

START_TEST(test_gateway_reason_not_evaluated)
{
	struct itest_proc *gw;
	char *yaml, *url, *out = NULL, *err = NULL;
	json_t *j, *ne;
	int rc;

	yaml = itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "cors:\n"
	    "  allowed_origins: [\"" ORIGIN "\"]\n"
	    "exporter: {type: none}\n", be->port);
	gw = itest_gateway_start(yaml);
	free(yaml);
	url = itest_strf("http://127.0.0.1:%u/v1/items", gw->port);

	rc = diagnose((const char *[]){ "--origin", ORIGIN, "--url", url,
	    "--header", "x-custom-thing", NULL }, &out);
	ck_assert_int_eq(rc, 1);
	ASSERT_HAS(out, "tracestitch (its own 403 refusal)");
	/* the gateway's own reason, once as the problem, once in the verdict */
	ASSERT_HAS(out, "problem: tracestitch refused the preflight (403): "
	    "header x-custom-thing is not allowed\n");
	ASSERT_HAS(out, "  fix (tracestitch): cors.allowed_headers: [..., "
	    "x-custom-thing]\n");
	/* the names sent before it passed; after it, never judged */
	ASSERT_HAS(out, "\ntracestate                     allowed       "
	    "tracing header\n");
	ASSERT_HAS(out, "\nx-custom-thing                 REFUSED       \n");
	ASSERT_HAS(out, "\nx-datadog-trace-id             not evaluated "
	    "tracing header\n");
	ASSERT_HAS(out, "not evaluated: the gateway stops at the first "
	    "refusal, so 4 items after it were not judged\n");
	ASSERT_HAS(out, "console (Chromium): Access to fetch at '");
	ASSERT_HAS(out, "' from origin '" ORIGIN "' has been blocked by CORS "
	    "policy: Response to preflight request doesn't pass access "
	    "control check: No 'Access-Control-Allow-Origin' header is "
	    "present on the requested resource.");
	ck_assert_msg(strstr(out, "REFUSED       tracing header") == NULL,
	    "a tracing header marked refused:\n%s", out);
	free(out);

	/* --json: the same verdicts */
	j = diagnose_json((const char *[]){ "--origin", ORIGIN, "--url", url,
	    "--header", "x-custom-thing", NULL }, &rc);
	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "answered_by")),
	    "tracestitch");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j,
	    "gateway"), "reason")), "header x-custom-thing is not allowed");
	ck_assert_str_eq(json_string_value(json_object_get(j,
	    "origin_state")), "allowed");
	ck_assert_str_eq(json_state(j, "x-custom-thing"), "refused");
	ck_assert_str_eq(json_state(j, "baggage"), "allowed");
	ck_assert_str_eq(json_state(j, "x-datadog-origin"), "not_evaluated");
	ne = json_object_get(j, "not_evaluated");
	ck_assert_uint_eq(json_array_size(ne), 4);
	ck_assert_str_eq(json_string_value(json_array_get(ne, 0)),
	    "x-datadog-origin");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(j, "findings"), 0), "fix_tracestitch")),
	    "cors.allowed_headers: [..., x-custom-thing]");
	json_decref(j);

	/* an origin refusal: the method and all 7 headers not evaluated */
	j = diagnose_json((const char *[]){ "--origin", "https://evil.com",
	    "--url", url, NULL }, &rc);
	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j,
	    "gateway"), "reason")), "origin https://evil.com is not allowed");
	ck_assert_str_eq(json_string_value(json_object_get(j,
	    "origin_state")), "refused");
	ck_assert_str_eq(json_string_value(json_object_get(j,
	    "method_state")), "not_evaluated");
	ck_assert_uint_eq(json_array_size(json_object_get(j,
	    "not_evaluated")), 8);
	json_decref(j);

	/* a value no browser sends: said so, and refused as malformed */
	rc = diagnose_err((const char *[]){ "--origin", ORIGIN "/", "--url",
	    url, NULL }, &out, &err);
	ck_assert_int_eq(rc, 1);
	ASSERT_HAS(err, "diagnose: warning: --origin " ORIGIN "/ is not a "
	    "serialized origin; a browser never sends it\n");
	ASSERT_HAS(out, "problem: tracestitch refused the preflight (403): "
	    "malformed origin \"" ORIGIN "/\" (a browser never sends such an "
	    "Origin)\n");
	ck_assert_msg(strstr(out, "fix (tracestitch)") == NULL, "%s", out);
	free(out);
	free(err);
	free(url);
}
END_TEST

/* ---- the origin table, live ------------------------------------------- */

struct row {
	char pattern[256];
	char origin[512];
	char expect[16];
	int line;
	bool sendable;
};

/* Decode \xHH escapes in place. */
static void
unescape(char *s)
{
	char *rd = s, *w = s;

	while (*rd != '\0') {
		if (rd[0] == '\\' && rd[1] == 'x' && rd[2] != '\0' &&
		    rd[3] != '\0') {
			char hex[3] = { rd[2], rd[3], '\0' };

			*w++ = (char)strtol(hex, NULL, 16);
			rd += 4;
		} else
			*w++ = *rd++;
	}
	*w = '\0';
}

/*
 * Can HTTP carry this Origin unchanged?  Not with a NUL (it ends the
 * argv string), CR or LF, or white space at either end (a field value
 * never has it: RFC 9110 5.5).
 */
static bool
sendable(const char *o, size_t raw_len)
{
	size_t len = strlen(o);

	return len == raw_len && strpbrk(o, "\r\n") == NULL && len > 0 &&
	    o[0] != ' ' && o[0] != '\t' && o[len - 1] != ' ' &&
	    o[len - 1] != '\t';
}

START_TEST(test_origin_table_live)
{
	static struct row rows[256];
	char line[1024], *t1, *t2, *nl, *yaml, *routes, *url, *raw;
	size_t n = 0, n_lines = 0, n_sent = 0, n_skipped = 0, n_star = 0, i;
	struct itest_proc *gw;
	struct itest_resp resp;
	const char *dir = getenv("TS_TEST_DATA");
	FILE *f;
	json_t *j, *body;
	int lineno = 0, rc, pass;

	t1 = itest_strf("%s/cors/origins.tsv", dir != NULL ? dir :
	    "tests/data");
	f = fopen(t1, "r");
	ck_assert_msg(f != NULL, "%s", t1);
	free(t1);
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		n_lines++;
		t1 = strchr(line, '\t');
		t2 = t1 != NULL ? strchr(t1 + 1, '\t') : NULL;
		ck_assert_msg(t2 != NULL, "line %d", lineno);
		ck_assert_uint_lt(n, ITEST_NITEMS(rows));
		*t1 = *t2 = '\0';
		snprintf(rows[n].pattern, sizeof rows[n].pattern, "%.255s",
		    line);
		snprintf(rows[n].origin, sizeof rows[n].origin, "%.511s",
		    t1 + 1);
		snprintf(rows[n].expect, sizeof rows[n].expect, "%.15s",
		    t2 + 1);
		rows[n].line = lineno;
		/* the escaped length: count bytes up to a decoded NUL */
		{
			char tmp[512];
			size_t raw_len = 0;
			const char *p;

			snprintf(tmp, sizeof tmp, "%s", rows[n].origin);
			for (p = tmp; *p != '\0'; raw_len++)
				p += p[0] == '\\' && p[1] == 'x' ? 4 : 1;
			unescape(rows[n].origin);
			rows[n].sendable = sendable(rows[n].origin, raw_len);
		}
		n++;
	}
	fclose(f);
	ck_assert_uint_eq(n, n_lines);
	ck_assert_uint_ge(n, 85);

	/* One route per row and credentials mode: /p<i> and /c<i>. */
	routes = itest_strf("%s", "");
	for (i = 0; i < n; i++) {
		for (pass = 0; pass < 2; pass++) {
			/* "*" with credentials is refused at load */
			if (pass == 1 && strcmp(rows[i].pattern, "*") == 0)
				continue;
			t1 = itest_strf("%s  - name: %c%zu\n"
			    "    path_prefix: /%c%zu/\n"
			    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
			    "    cors: {allowed_origins: [\"%s\"], "
			    "allow_credentials: %s}\n", routes,
			    pass ? 'c' : 'p', i, pass ? 'c' : 'p', i, be->port,
			    rows[i].pattern, pass ? "true" : "false");
			free(routes);
			routes = t1;
		}
	}
	yaml = itest_strf("server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "routes:\n%sexporter: {type: none}\n", routes);
	free(routes);
	gw = itest_gateway_start(yaml);
	free(yaml);

	for (i = 0; i < n; i++) {
		if (!rows[i].sendable) {
			n_skipped++;
			continue;
		}
		if (strcmp(rows[i].pattern, "*") == 0)
			n_star++;
		for (pass = 0; pass < 2; pass++) {
			if (pass == 1 && strcmp(rows[i].pattern, "*") == 0)
				continue;
			/* the gateway's decision, asked directly */
			raw = itest_strf("OPTIONS /%c%zu/x HTTP/1.1\r\n"
			    "Host: itest.test\r\nOrigin: %s\r\n"
			    "Access-Control-Request-Method: GET\r\n"
			    "Connection: close\r\n\r\n", pass ? 'c' : 'p', i,
			    rows[i].origin);
			ck_assert_int_eq(itest_request(gw->port, raw,
			    strlen(raw), &resp, 0, ITEST_TIMEOUT_MS), 0);
			free(raw);
			ck_assert_msg(resp.status == (strcmp(rows[i].expect,
			    "yes") == 0 ? 204 : 403), "line %d: %d",
			    rows[i].line, resp.status);
			/* diagnose's verdict on the same route */
			url = itest_strf("http://127.0.0.1:%u/%c%zu/x",
			    gw->port, pass ? 'c' : 'p', i);
			j = diagnose_json(pass ? (const char *[]){ "--origin",
			    rows[i].origin, "--url", url, "--credentials",
			    NULL } : (const char *[]){ "--origin",
			    rows[i].origin, "--url", url, NULL }, &rc);
			ck_assert_msg(rc == (resp.status == 204 ? 0 : 1),
			    "line %d (%s): gateway %d, diagnose exit %d: %s",
			    rows[i].line, pass ? "credentials" : "plain",
			    resp.status, rc, json_string_value(
			    json_object_get(j, "verdict")));
			if (resp.status == 403) {
				body = itest_resp_json(&resp);
				ck_assert_str_eq(json_string_value(
				    json_object_get(json_object_get(j,
				    "gateway"), "reason")), json_string_value(
				    json_object_get(body, "reason")));
				ck_assert_uint_eq(json_array_size(
				    json_object_get(j, "not_evaluated")), 8);
				json_decref(body);
			}
			json_decref(j);
			itest_resp_clear(&resp);
			free(url);
			n_sent++;
		}
	}
	/* 5 rows cannot travel: a NUL, CR LF, a space at either end (3) */
	ck_assert_uint_eq(n_skipped, 5);
	/* both modes, except "*" with credentials (6 sendable "*" rows) */
	ck_assert_uint_eq(n_star, 6);
	ck_assert_uint_eq(n_sent, 2 * (n - n_skipped) - n_star);
}
END_TEST

/* ---- against nginx ---------------------------------------------------- */

START_TEST(test_nginx_missing_header)
{
	char *url, *out = NULL;
	json_t *j, *fd;
	int rc;

	if (!nginx_start())
		return;
	url = itest_strf("http://127.0.0.1:%u/api/v1", nginx_port);
	rc = diagnose((const char *[]){ "--origin", ORIGIN, "--url", url,
	    NULL }, &out);
	ck_assert_int_eq(rc, 1);
	ASSERT_HAS(out, "answered by                    nginx/");
	ASSERT_HAS(out, "\ntracestate                     REFUSED       "
	    "tracing header\n");
	ASSERT_HAS(out, "\ntraceparent                    allowed       ");
	ASSERT_HAS(out, "problem: Access-Control-Allow-Headers (Content-Type, "
	    "x-datadog-trace-id, x-datadog-parent-id, x-datadog-origin, "
	    "x-datadog-sampling-priority, traceparent, baggage) does not list "
	    "tracestate\n");
	ASSERT_HAS(out, "console (Chromium): Access to fetch at '");
	ASSERT_HAS(out, "' from origin '" ORIGIN "' has been blocked by CORS "
	    "policy: Request header field tracestate is not allowed by "
	    "Access-Control-Allow-Headers in preflight response.\n");
	ASSERT_HAS(out, "  fix (nginx):       add_header Access-Control-Allow-"
	    "Headers \"Content-Type, x-datadog-trace-id, x-datadog-parent-id, "
	    "x-datadog-origin, x-datadog-sampling-priority, traceparent, "
	    "baggage, tracestate\" always;\n");
	ASSERT_HAS(out, "  fix (tracestitch): propagation.extract: [datadog, "
	    "tracecontext, baggage]\n");
	ck_assert_msg(strstr(out, "not evaluated") == NULL, "%s", out);
	free(out);

	j = diagnose_json((const char *[]){ "--origin", ORIGIN, "--url", url,
	    NULL }, &rc);
	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "answered_by")),
	    "other");
	ck_assert(json_is_null(json_object_get(j, "gateway")));
	ck_assert_str_eq(json_state(j, "tracestate"), "refused");
	ck_assert_uint_eq(json_array_size(json_object_get(j, "findings")), 1);
	fd = json_array_get(json_object_get(j, "findings"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(fd, "header")),
	    "Access-Control-Allow-Headers");
	ck_assert(strstr(json_string_value(json_object_get(fd, "fix_nginx")),
	    "baggage, tracestate\" always;") != NULL);
	ck_assert(strstr(json_string_value(json_object_get(j, "console")),
	    "Request header field tracestate is not allowed") != NULL);
	json_decref(j);
	free(url);
}
END_TEST

START_TEST(test_nginx_reflects_with_credentials)
{
	char *url, *out = NULL;
	int rc;

	if (!nginx_start())
		return;
	url = itest_strf("http://127.0.0.1:%u/reflect/", nginx_port);
	/* without credentials an echo of any origin is harmless */
	rc = diagnose((const char *[]){ "--origin", "https://evil.com",
	    "--url", url, NULL }, &out);
	ck_assert_int_eq(rc, 0);
	free(out);
	/* the browser passes; diagnose says what else passes */
	rc = diagnose((const char *[]){ "--origin", "https://evil.com",
	    "--url", url, "--credentials", NULL }, &out);
	ck_assert_int_eq(rc, 3);
	ASSERT_HAS(out, "UNSAFE: a browser at https://evil.com would pass "
	    "this credentialed preflight, and so would one at "
	    "https://tracestitch-diagnose-probe.invalid");
	ASSERT_HAS(out, "problem: Access-Control-Allow-Origin echoes "
	    "https://tracestitch-diagnose-probe.invalid with "
	    "Access-Control-Allow-Credentials: true\n");
	ASSERT_HAS(out, "  fix (nginx):       add_header Access-Control-Allow-"
	    "Origin \"https://evil.com\" always;  (a fixed origin, not "
	    "$http_origin)\n");
	ck_assert_msg(strstr(out, "console (Chromium)") == NULL, "%s", out);
	free(out);
	free(url);
}
END_TEST

START_TEST(test_nginx_static_405)
{
	char *url, *out = NULL;
	int rc;

	if (!nginx_start())
		return;
	url = itest_strf("http://127.0.0.1:%u/static/app.js", nginx_port);
	rc = diagnose((const char *[]){ "--origin", ORIGIN, "--url", url,
	    NULL }, &out);
	ck_assert_int_eq(rc, 1);
	ASSERT_HAS(out, "status                         FAIL          405\n");
	ASSERT_HAS(out, "problem: no Access-Control-Allow-Origin in the "
	    "answer\n");
	ASSERT_HAS(out, "problem: the preflight (OPTIONS) was answered 405; "
	    "a browser needs a 2xx status\n");
	ASSERT_HAS(out, "  fix (nginx):       if ($request_method = OPTIONS) "
	    "{ return 204; }");
	/* no ACAO comes first in Chromium's checks */
	ASSERT_HAS(out, "blocked by CORS policy: Response to preflight "
	    "request doesn't pass access control check: No 'Access-Control-"
	    "Allow-Origin' header is present on the requested resource.");
	free(out);
	free(url);
}
END_TEST

/* ---- against a plain server ------------------------------------------- */

START_TEST(test_plain_server)
{
	struct itest_proc *s501, *s404, *star;
	char *url, *out = NULL;
	int rc;

	s501 = itest_canned_start("HTTP/1.1 501 Not Implemented\r\n"
	    "Server: tiny\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	    NULL, NULL);
	s404 = itest_canned_start("HTTP/1.1 404 Not Found\r\n"
	    "Access-Control-Allow-Origin: " ORIGIN "\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 10\r\n"
	    "Connection: close\r\n\r\nnot found\n", NULL, NULL);
	star = itest_canned_start("HTTP/1.1 204 No Content\r\n"
	    "Access-Control-Allow-Origin: *\r\n"
	    "Access-Control-Allow-Credentials: true\r\n"
	    "Access-Control-Allow-Headers: *\r\nConnection: close\r\n\r\n",
	    NULL, NULL);

	url = itest_strf("http://127.0.0.1:%u/v1", s501->port);
	rc = diagnose((const char *[]){ "--origin", ORIGIN, "--url", url,
	    NULL }, &out);
	ck_assert_int_eq(rc, 1);
	ASSERT_HAS(out, "answered by                    tiny\n");
	ASSERT_HAS(out, "problem: no Access-Control-Allow-Origin in the "
	    "answer\n");
	ASSERT_HAS(out, "  fix (nginx):       add_header Access-Control-Allow-"
	    "Origin \"" ORIGIN "\" always;\n");
	ASSERT_HAS(out, "  fix (tracestitch): cors.allowed_origins: [..., \""
	    ORIGIN "\"]\n");
	ASSERT_HAS(out, "problem: the preflight (OPTIONS) was answered 501; "
	    "a browser needs a 2xx status\n");
	ASSERT_HAS(out, "problem: Access-Control-Allow-Headers (absent) does "
	    "not list baggage, traceparent, tracestate, x-datadog-origin, "
	    "x-datadog-parent-id, x-datadog-sampling-priority, "
	    "x-datadog-trace-id\n");
	ASSERT_HAS(out, "No 'Access-Control-Allow-Origin' header is present "
	    "on the requested resource.");
	free(out);
	free(url);

	/* ACAO present but 404: Chromium then names the status */
	url = itest_strf("http://127.0.0.1:%u/v1", s404->port);
	rc = diagnose((const char *[]){ "--origin", ORIGIN, "--url", url,
	    NULL }, &out);
	ck_assert_int_eq(rc, 1);
	ASSERT_HAS(out, "' from origin '" ORIGIN "' has been blocked by CORS "
	    "policy: Response to preflight request doesn't pass access "
	    "control check: It does not have HTTP ok status.\n");
	ASSERT_HAS(out, "problem: the preflight (OPTIONS) was answered 404; "
	    "a browser needs a 2xx status\n");
	ck_assert_msg(strstr(out, "problem: no Access-Control-Allow-Origin")
	    == NULL, "%s", out);
	free(out);
	free(url);

	/* "*" with credentials: what the browser does */
	url = itest_strf("http://127.0.0.1:%u/v1", star->port);
	rc = diagnose((const char *[]){ "--origin", ORIGIN, "--url", url,
	    NULL }, &out);
	ck_assert_int_eq(rc, 0);
	free(out);
	rc = diagnose((const char *[]){ "--origin", ORIGIN, "--url", url,
	    "--credentials", NULL }, &out);
	ck_assert_int_eq(rc, 1);
	ASSERT_HAS(out, "The value of the 'Access-Control-Allow-Origin' header "
	    "in the response must not be the wildcard '*' when the request's "
	    "credentials mode is 'include'.\n");
	ASSERT_HAS(out, "problem: Access-Control-Allow-Origin is \"*\", which "
	    "a browser never accepts for a credentialed request\n");
	free(out);
	free(url);
}
END_TEST

static Suite *
diagnose_e2e_suite(void)
{
	Suite *s = suite_create("diagnose_e2e");
	TCase *tc;

	tc = tcase_create("tracestitch");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_gateway_reason_not_evaluated);
	tcase_add_test(tc, test_origin_table_live);
	suite_add_tcase(s, tc);

	tc = tcase_create("nginx");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_nginx_missing_header);
	tcase_add_test(tc, test_nginx_reflects_with_credentials);
	tcase_add_test(tc, test_nginx_static_405);
	suite_add_tcase(s, tc);

	tc = tcase_create("plain");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_plain_server);
	suite_add_tcase(s, tc);
	return s;
}

ITEST_MAIN(diagnose_e2e_suite, true)
