/*
 * test_check.c -- `tracestitch -n` is the server's own check, run through
 * the real binary as one table, and a reload the server refuses keeps the
 * running generation.
 *
 * The table is every fixture under tests/data/config: bad/NAME.yaml with
 * the exact lines of bad/NAME.err (what config_load refuses), and
 * refusals/NAME.yaml with its expectations in trailing comments (what the
 * preparation refuses after loading: CORS policies, TLS files, exporter
 * URLs, the access log, listen addresses):
 *
 *   # expect: @FILE@:7:21: cors.allowed_origins[0]: ...   (refused)
 *   # expect: ok                                           (accepted)
 *   # warn: @FILE@:7:48: cors.allowed_origins[1]: warning: ...
 *   # env: NAME=value                                      (set for the run)
 *
 * @FILE@ stands for the path given to -c, relative to tests/data/config,
 * the working directory of every run (fixtures name the TLS files as
 * ../tls/...).  Each refused row must be refused by -n with exactly those
 * lines on stderr and exit 1, and by a real start with the same lines and
 * exit 1.  Each accepted row must pass -n (exit 0, the warnings exactly)
 * and then start, answer /healthz on its admin listener, print the same
 * warnings, and stop cleanly by its PID.
 *
 * The reload cases send SIGHUP with a file the preparation refuses
 * (a certificate that became unreadable, a missing tls_ca_file, a CORS
 * error): the gateway logs the positioned lines and goes on serving from
 * the old generation.  Before server_gen_new took its own reference, the
 * refused generation's config was released twice (ASan: use after free).
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

/* Fixtures of the table, as counted when this was written. */
#define CHECK_BAD_ROWS		49
#define CHECK_REFUSAL_ROWS	34

struct row {
	char *rel;		/* "bad/x.yaml", relative to data/config */
	char *err;		/* bad/: the .err file, else NULL */
};

static struct row rows[256];
static size_t n_rows, n_bad, n_refusals;

/* tests/data/config, absolute. */
static const char *
config_dir(void)
{
	static char buf[4096];
	const char *d = getenv("TS_TEST_DATA");

	snprintf(buf, sizeof buf, "%s/config", d != NULL ? d : "tests/data");
	return buf;
}

/* A file of tests/data, absolute (static buffer, one at a time). */
static const char *
data_path(const char *rel)
{
	static char buf[4096];
	const char *d = getenv("TS_TEST_DATA");

	snprintf(buf, sizeof buf, "%s/%s", d != NULL ? d : "tests/data", rel);
	return buf;
}

/* Read a whole file (caller frees); NULL if it cannot be read. */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, len = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (cap - len < 4096) {
			cap = cap == 0 ? 8192 : cap * 2;
			if ((buf = realloc(buf, cap)) == NULL)
				abort();
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

static int
row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct row *)a)->rel,
	    ((const struct row *)b)->rel);
}

/* Add every NAME.yaml of dir (sorted); bad/ rows name their .err. */
static size_t
scan(const char *sub)
{
	char *path = itest_strf("%s/%s", config_dir(), sub);
	struct dirent *de;
	size_t n = 0, l, first = n_rows;
	DIR *d;

	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "test_check: cannot open %s\n", path);
		exit(1);
	}
	while ((de = readdir(d)) != NULL) {
		l = strlen(de->d_name);
		if (l < 6 || strcmp(de->d_name + l - 5, ".yaml") != 0)
			continue;
		if (n_rows == ITEST_NITEMS(rows)) {
			fprintf(stderr, "test_check: too many fixtures\n");
			exit(1);
		}
		rows[n_rows].rel = itest_strf("%s/%s", sub, de->d_name);
		rows[n_rows].err = strcmp(sub, "bad") == 0 ? itest_strf(
		    "%s/%.*s.err", path, (int)(l - 5), de->d_name) : NULL;
		n_rows++;
		n++;
	}
	closedir(d);
	free(path);
	qsort(rows + first, n, sizeof rows[0], row_cmp);
	return n;
}

/* What one fixture expects. */
struct expect {
	bool ok;		/* accepted */
	char *lines;		/* refused: the exact stderr of -n */
	char *warnings;		/* accepted: the exact stderr of -n */
	char *env[8];		/* "NAME=value" set for the runs */
	size_t n_env;
	size_t n_lines;		/* expect lines read (both kinds) */
};

/* Append s and a newline to *buf. */
static void
append_line(char **buf, const char *s, size_t len)
{
	size_t old = *buf != NULL ? strlen(*buf) : 0;

	if ((*buf = realloc(*buf, old + len + 2)) == NULL)
		abort();
	memcpy(*buf + old, s, len);
	(*buf)[old + len] = '\n';
	(*buf)[old + len + 1] = '\0';
}

/* Append line with @FILE@ replaced by rel. */
static void
append_subst(char **buf, const char *line, size_t len, const char *rel)
{
	char *tmp = NULL;
	const char *at;

	if (len >= 6 && (at = strstr(line, "@FILE@")) != NULL &&
	    at < line + len) {
		tmp = itest_strf("%.*s%s%.*s", (int)(at - line), line, rel,
		    (int)(line + len - at - 6), at + 6);
		append_line(buf, tmp, strlen(tmp));
		free(tmp);
	} else
		append_line(buf, line, len);
}

/* Parse a row's expectations. */
static void
expect_load(const struct row *row, struct expect *e)
{
	char *text, *path;
	const char *p, *nl;
	size_t len;

	memset(e, 0, sizeof e[0]);
	if (row->err != NULL) {
		e->lines = slurp(row->err);
		ck_assert_msg(e->lines != NULL && e->lines[0] != '\0',
		    "%s: empty or missing", row->err);
		for (p = e->lines; *p != '\0'; p++)
			e->n_lines += *p == '\n';
		return;
	}
	path = itest_strf("%s/%s", config_dir(), row->rel);
	text = slurp(path);
	ck_assert_msg(text != NULL, "cannot read %s", path);
	for (p = text; *p != '\0'; p = *nl != '\0' ? nl + 1 : nl) {
		nl = p + strcspn(p, "\n");
		len = (size_t)(nl - p);
		if (len >= 10 && strncmp(p, "# expect: ", 10) == 0) {
			if (len == 12 && strncmp(p + 10, "ok", 2) == 0)
				e->ok = true;
			else
				append_subst(&e->lines, p + 10, len - 10,
				    row->rel);
			e->n_lines++;
		} else if (len >= 8 && strncmp(p, "# warn: ", 8) == 0) {
			append_subst(&e->warnings, p + 8, len - 8, row->rel);
			e->n_lines++;
		} else if (len >= 7 && strncmp(p, "# env: ", 7) == 0 &&
		    e->n_env < ITEST_NITEMS(e->env))
			e->env[e->n_env++] = strndup(p + 7, len - 7);
	}
	free(text);
	free(path);
	ck_assert_msg(e->ok != (e->lines != NULL), "%s: needs \"# expect: "
	    "ok\" or refusal lines, not both", row->rel);
}

static void
expect_clear(struct expect *e)
{
	size_t i;

	free(e->lines);
	free(e->warnings);
	for (i = 0; i < e->n_env; i++)
		free(e->env[i]);
}

/* Set or unset the row's environment. */
static void
expect_env(const struct expect *e, bool set)
{
	char *name;
	size_t i;

	for (i = 0; i < e->n_env; i++) {
		name = strndup(e->env[i], strcspn(e->env[i], "="));
		if (set)
			ck_assert_int_eq(setenv(name, e->env[i] +
			    strlen(name) + 1, 1), 0);
		else
			unsetenv(name);
		free(name);
	}
}

/* True when text has line (ending in '\n') as one of its lines. */
static bool
has_line(const char *text, const char *line, size_t len)
{
	const char *p = text;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, line, len) == 0)
			return true;
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return false;
}

static void
setup(void)
{
	ck_assert_msg(chdir(config_dir()) == 0, "chdir %s", config_dir());
}

/* The table read what it should: update the counts with the fixtures. */
START_TEST(table_rows_read)
{
	ck_assert_uint_eq(n_bad, CHECK_BAD_ROWS);
	ck_assert_uint_eq(n_refusals, CHECK_REFUSAL_ROWS);
	ck_assert_uint_eq(n_rows, CHECK_BAD_ROWS + CHECK_REFUSAL_ROWS);
}
END_TEST

/* One row: -n, then the real start, say the same. */
START_TEST(table_row)
{
	const struct row *row = &rows[_i];
	const char *check[] = { "-n", "-c", row->rel, NULL };
	const char *start[] = { "-c", row->rel, NULL };
	const char *p, *nl;
	struct itest_proc *gw;
	struct itest_resp r;
	struct expect e;
	char *out, *err;
	int rc, st;

	expect_load(row, &e);
	ck_assert_uint_gt(e.n_lines, 0);
	expect_env(&e, true);

	rc = itest_gateway_run(check, &out, &err, ITEST_TIMEOUT_MS);
	if (!e.ok) {
		ck_assert_msg(rc == 1, "%s: -n exited %d; stderr:\n%s",
		    row->rel, rc, err);
		ck_assert_msg(strcmp(err, e.lines) == 0, "%s: -n said:\n%s\n"
		    "expected:\n%s", row->rel, err, e.lines);
		ck_assert_str_eq(out, "");
		free(out);
		free(err);

		/* The real start refuses it with the same lines. */
		rc = itest_gateway_run(start, &out, &err, ITEST_TIMEOUT_MS);
		ck_assert_msg(rc == 1, "%s: start exited %d; stderr:\n%s",
		    row->rel, rc, err);
		for (p = e.lines; *p != '\0'; p = nl + 1) {
			nl = strchr(p, '\n');
			ck_assert_msg(has_line(err, p, (size_t)(nl - p + 1)),
			    "%s: start did not say\n%.*s\nit said:\n%s",
			    row->rel, (int)(nl - p), p, err);
		}
		ck_assert_msg(strstr(err, "info: ready") == NULL, "%s",
		    err);
		free(out);
		free(err);
		expect_env(&e, false);
		expect_clear(&e);
		return;
	}

	ck_assert_msg(rc == 0, "%s: -n exited %d; stderr:\n%s", row->rel, rc,
	    err);
	ck_assert_str_eq(out, "configuration OK\n");
	ck_assert_msg(strcmp(err, e.warnings != NULL ? e.warnings : "") == 0,
	    "%s: -n said:\n%s\nexpected:\n%s", row->rel, err,
	    e.warnings != NULL ? e.warnings : "(nothing)");
	free(out);
	free(err);

	/* Accepted by -n: it starts, serves, warns the same, stops. */
	gw = itest_gateway_start_file(row->rel);
	ck_assert_msg(gw->admin_port != 0, "%s: fixtures of accepted files "
	    "need an admin listener", row->rel);
	ck_assert_msg(itest_get(gw->admin_port, "/healthz", &r) == 0, "%s",
	    itest_error());
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
	err = itest_log_read(gw, ITEST_STDERR);
	for (p = e.warnings; p != NULL && *p != '\0'; p = nl + 1) {
		char *want;

		nl = strchr(p, '\n');
		want = itest_strf("warn: %.*s\n", (int)(nl - p), p);
		ck_assert_msg(strstr(err, want) != NULL, "%s: start did not "
		    "warn\n%sit said:\n%s", row->rel, want, err);
		free(want);
	}
	free(err);
	st = itest_proc_stop(gw, SIGTERM, ITEST_TIMEOUT_MS);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: stopped "
	    "with status %d", row->rel, st);
	expect_env(&e, false);
	expect_clear(&e);
}
END_TEST

/*
 * -n binds nothing: it accepts a file whose port another socket holds
 * (without SO_REUSEPORT, so a bind would fail), and it creates no access
 * log; the start does.
 */
START_TEST(check_binds_and_creates_nothing)
{
	const char *args[] = { "-n", "-c", NULL, NULL };
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	char *yaml, *path, *logf, *out, *err;
	struct itest_proc *gw;
	int fd, rc;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(fd, -1);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);

	logf = itest_strf("%s.access.log", itest_write_temp("", ".dir"));
	yaml = itest_strf(
	    "server: {listen: [\"127.0.0.1:%u\"], workers: 1}\n"
	    "routes:\n  - upstream: {url: \"http://127.0.0.1:9\"}\n"
	    "exporter: {type: none}\n"
	    "logging: {access_log: \"%s\"}\n", ntohs(sin.sin_port), logf);
	path = itest_write_temp(yaml, ".yaml");
	free(yaml);
	args[2] = path;
	rc = itest_gateway_run(args, &out, &err, ITEST_TIMEOUT_MS);
	ck_assert_msg(rc == 0, "-n exited %d: %s", rc, err);
	ck_assert_str_eq(out, "configuration OK\n");
	ck_assert_str_eq(err, "");
	ck_assert_msg(access(logf, F_OK) == -1 && errno == ENOENT,
	    "-n created %s", logf);
	free(out);
	free(err);
	close(fd);

	/* The port is free now: the start creates the log and serves. */
	yaml = itest_strf(
	    "server: {listen: [\"127.0.0.1:0\"], workers: 1}\n"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n  - upstream: {url: \"http://127.0.0.1:9\"}\n"
	    "exporter: {type: none}\n"
	    "logging: {access_log: \"%s\"}\n", logf);
	gw = itest_gateway_start(yaml);
	free(yaml);
	ck_assert_int_eq(access(logf, W_OK), 0);
	ck_assert_int_eq(itest_proc_stop(gw, SIGTERM, ITEST_TIMEOUT_MS), 0);
	unlink(logf);
	free(logf);
}
END_TEST

/*
 * A listen host that does not resolve (RFC 6761: .invalid never does).
 * Outside the table because the resolver's words vary (no such name, or
 * a temporary failure without DNS): the position, key and host are
 * exact, the reason only present.
 */
START_TEST(check_listen_host_unknown)
{
	const char *args[] = { "-n", "-c", NULL, NULL };
	char *path, *out, *err, *want;
	int rc;

	path = itest_write_temp(
	    "server: {listen: [\"127.0.0.1:0\", \"no-such-host.invalid:0\"]}\n"
	    "routes:\n  - upstream: {url: \"http://127.0.0.1:9\"}\n"
	    "exporter: {type: none}\n", ".yaml");
	args[2] = path;
	rc = itest_gateway_run(args, &out, &err, 3 * ITEST_TIMEOUT_MS);
	ck_assert_msg(rc == 1, "-n exited %d: %s", rc, err);
	want = itest_strf("%s:1:34: server.listen[1]: cannot use host "
	    "\"no-such-host.invalid\": ", path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0 &&
	    strchr(err, '\n') == err + strlen(err) - 1 &&
	    strlen(err) > strlen(want) + 1, "-n said:\n%s", err);
	ck_assert_str_eq(out, "");
	free(want);
	free(out);
	free(err);
}
END_TEST

/* ---- reload: a refused generation keeps the running one ------------- */

/*
 * The end of a gateway's stderr for a failure message (Check refuses
 * messages above a few KB; a sanitizer report alone can be longer).
 */
static char *
log_tail(struct itest_proc *gw)
{
	char *text = itest_log_read(gw, ITEST_STDERR), *tail;
	size_t len = strlen(text);

	tail = strdup(len > 2000 ? text + len - 2000 : text);
	free(text);
	return tail;
}

/* The name of the backend that answered (fake backend's echo). */
static char *
answer_name(const struct itest_resp *r)
{
	json_t *j = itest_resp_json(r);
	const char *n = json_string_value(json_object_get(j, "name"));
	char *name;

	ck_assert_msg(n != NULL, "no name in %s", r->body);
	name = strdup(n);
	json_decref(j);
	return name;
}

/* GET /echo/who over plain HTTP or TLS; the backend's name. */
static char *
who(struct itest_proc *gw, bool tls)
{
	static const char raw[] = "GET /echo/who HTTP/1.1\r\nHost: localhost"
	    "\r\nConnection: close\r\n\r\n";
	struct itest_resp r;
	char *name;

	if (tls)
		ck_assert_msg(itest_tls_request(gw->port,
		    data_path("tls/ca.pem"), ITEST_LIT(raw), &r) == 0, "%s",
		    itest_error());
	else
		ck_assert_msg(itest_request(gw->port, ITEST_LIT(raw), &r, 0,
		    ITEST_TIMEOUT_MS) == 0, "%s", itest_error());
	ck_assert_msg(r.status == 200, "status %d: %s", r.status, r.body);
	name = answer_name(&r);
	itest_resp_clear(&r);
	return name;
}

/* A config routing / to port, with extra server and route lines. */
static char *
reload_config(uint16_t port, const char *server, const char *extra)
{
	return itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  workers: 2\n"
	    "%s"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "%s"
	    "exporter: {type: none}\n"
	    "logging: {access_log: \"off\"}\n",
	    server, (unsigned)port, extra);
}

/*
 * The faults: the route moves to backend "two" and something the
 * preparation refuses comes with it; want is the refusal after the
 * config's path and position (the line:col is checked too).
 */
enum fault { FAULT_CERT, FAULT_CA, FAULT_CORS };

static void
reload_refused(enum fault fault)
{
	struct itest_proc *one, *two, *gw;
	char *yaml, *name, *want, *server = NULL, *cert = NULL, *good_extra;
	char *bad_extra, *log;
	bool tls = fault == FAULT_CERT;
	size_t from;
	long off;

	one = itest_backend_start("one");
	two = itest_backend_start("two");
	if (tls) {
		/* A copy of the certificate that the reload finds broken. */
		char *pem = NULL;

		ck_assert_ptr_nonnull(pem = slurp(data_path("tls/server.pem")));
		cert = itest_write_temp(pem, ".pem");
		free(pem);
		server = itest_strf("  tls: {cert: \"%s\", key: \"%s\"}\n",
		    cert, data_path("tls/server.key"));
	}
	/* A second route over https with a CA file that exists. */
	good_extra = itest_strf(
	    "  - name: secure\n"
	    "    path_prefix: /secure\n"
	    "    upstream:\n"
	    "      url: \"https://127.0.0.1:%u\"\n"
	    "      tls_ca_file: \"%s\"\n"
	    "    cors: {allowed_origins: [\"https://app.example.com\"]}\n",
	    two->port, data_path("tls/ca.pem"));
	yaml = reload_config(one->port, server != NULL ? server : "",
	    good_extra);
	gw = itest_gateway_start(yaml);
	free(yaml);
	name = who(gw, tls);
	ck_assert_str_eq(name, "one");
	free(name);

	switch (fault) {
	case FAULT_CERT:
		/* Same config; the file under it is no certificate now. */
		itest_rewrite(cert, "not a certificate\n");
		bad_extra = strdup(good_extra);
		want = itest_strf(":4:15: server.tls.cert: cannot load "
		    "certificate chain: %s: no start line", cert);
		break;
	case FAULT_CA:
		bad_extra = itest_strf(
		    "  - name: secure\n"
		    "    path_prefix: /secure\n"
		    "    upstream:\n"
		    "      url: \"https://127.0.0.1:%u\"\n"
		    "      tls_ca_file: /nonexistent/ca.pem\n", two->port);
		want = strdup(":12:20: routes[1].upstream.tls_ca_file: "
		    "cannot load CA file: /nonexistent/ca.pem: No such file "
		    "or directory");
		break;
	case FAULT_CORS:
	default:
		bad_extra = itest_strf(
		    "  - name: secure\n"
		    "    path_prefix: /secure\n"
		    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
		    "    cors: {allowed_origins: [\"https://*.co.uk\"], "
		    "allowed_headers: [\"X Bad\"]}\n", two->port);
		want = strdup(":11:30: routes[1].cors.allowed_origins[0]: "
		    "\"https://*.co.uk\" allows every site under the public "
		    "suffix \"co.uk\"");
		break;
	}
	/* Route / to "two": applied only if the reload were accepted. */
	yaml = reload_config(two->port, server != NULL ? server : "",
	    bad_extra);
	itest_rewrite(gw->cfg_path, yaml);
	free(yaml);
	from = itest_log_size(gw, ITEST_STDERR);
	itest_proc_signal(gw, SIGHUP);
	off = itest_log_wait(gw, ITEST_STDERR, "configuration reload failed",
	    from, ITEST_TIMEOUT_MS);
	log = log_tail(gw);
	ck_assert_msg(off > 0, "no \"configuration reload failed\" in:\n%s",
	    log);
	free(log);
	name = itest_strf("warn: %s%s", gw->cfg_path, want);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR, name, from,
	    ITEST_TIMEOUT_MS) > 0, "no \"%s\" in:\n%s", name,
	    log_tail(gw));
	free(name);
	if (fault == FAULT_CORS)
		ck_assert(itest_log_wait(gw, ITEST_STDERR,
		    "routes[1].cors.allowed_headers[0]: expected a header name",
		    from, ITEST_TIMEOUT_MS) > 0);

	/* Still serving, from the old generation, more than once. */
	name = who(gw, tls);
	ck_assert_str_eq(name, "one");
	free(name);
	name = who(gw, tls);
	ck_assert_str_eq(name, "one");
	free(name);
	ck_assert_uint_eq(itest_log_count(gw, ITEST_STDERR,
	    "configuration reloaded", from), 0);

	/* A good file again: the reload applies (the old one was intact). */
	if (fault == FAULT_CERT) {
		char *pem = slurp(data_path("tls/server.pem"));

		itest_rewrite(cert, pem);
		free(pem);
	}
	yaml = reload_config(two->port, server != NULL ? server : "",
	    good_extra);
	itest_rewrite(gw->cfg_path, yaml);
	free(yaml);
	from = itest_log_size(gw, ITEST_STDERR);
	itest_proc_signal(gw, SIGHUP);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR, "configuration "
	    "reloaded", from, ITEST_TIMEOUT_MS) > 0, "%s",
	    log_tail(gw));
	name = who(gw, tls);
	ck_assert_str_eq(name, "two");
	free(name);
	/* A clean stop: nothing freed twice on the way out either. */
	ck_assert_int_eq(itest_proc_stop(gw, SIGTERM, ITEST_TIMEOUT_MS), 0);
	free(want);
	free(bad_extra);
	free(good_extra);
	free(server);
}

START_TEST(reload_refused_cert)
{
	reload_refused(FAULT_CERT);
}
END_TEST

START_TEST(reload_refused_ca_file)
{
	reload_refused(FAULT_CA);
}
END_TEST

START_TEST(reload_refused_cors)
{
	reload_refused(FAULT_CORS);
}
END_TEST

static Suite *
check_suite(void)
{
	Suite *s = suite_create("check");
	TCase *table = tcase_create("table");
	TCase *reload = tcase_create("reload");

	n_bad = scan("bad");
	n_refusals = scan("refusals");
	tcase_add_checked_fixture(table, setup, itest_teardown);
	tcase_set_timeout(table, 60);
	tcase_add_test(table, table_rows_read);
	tcase_add_loop_test(table, table_row, 0, (int)n_rows);
	tcase_add_test(table, check_binds_and_creates_nothing);
	tcase_add_test(table, check_listen_host_unknown);
	suite_add_tcase(s, table);

	tcase_add_checked_fixture(reload, NULL, itest_teardown);
	tcase_set_timeout(reload, 60);
	tcase_add_test(reload, reload_refused_cert);
	tcase_add_test(reload, reload_refused_ca_file);
	tcase_add_test(reload, reload_refused_cors);
	suite_add_tcase(s, reload);
	return s;
}

ITEST_MAIN(check_suite, true)
