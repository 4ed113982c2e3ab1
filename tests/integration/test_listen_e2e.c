/*
 * test_listen_e2e.c -- listening sockets through the real binary (issue
 * #9 items 2 and 7).
 *
 * One owner per address: a second gateway, or any other socket, on an
 * address the gateway listens on (server.listen or admin.listen) makes
 * the start fail with the address named, while the first gateway goes on
 * serving; our own workers share the socket (both accept).  server.backlog
 * is the listen queue the kernel reports (ss's Send-Q of a listener).
 * Descriptor exhaustion: with RLIMIT_NOFILE lowered to 64 and more
 * connections than that, the gateway neither spins nor floods its log,
 * counts the failures in tracestitch_accept_errors_total{reason="emfile"}
 * and serves again once the connections are gone.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

static struct itest_proc *be;

static void
setup(void)
{
	be = itest_backend_start("one");
}

static void
teardown(void)
{
	itest_teardown();
	be = NULL;
}

/* A gateway config: listen on listen, admin on admin, extra under server:. */
static char *
config_on(const char *listen, const char *admin, const char *server_extra)
{
	return itest_strf(
	    "server:\n"
	    "  listen: [\"%s\"]\n"
	    "  workers: 2\n"
	    "%s"
	    "admin: {listen: \"%s\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    path_prefix: /\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "exporter: {type: none}\n"
	    "logging: {level: info}\n",
	    listen, server_extra != NULL ? server_extra : "", admin,
	    be->port);
}

/*
 * Run a gateway on cfg that must refuse to start: exit status not 0,
 * stderr holding want.
 */
static void
assert_start_refused(const char *yaml, const char *want)
{
	const char *args[] = { "-c", NULL, NULL };
	char *err = NULL;
	int rc;

	args[1] = itest_write_temp(yaml, ".yaml");
	rc = itest_gateway_run(args, NULL, &err, ITEST_TIMEOUT_MS);
	ck_assert_msg(rc == 1, "second gateway exit status %d (want 1); "
	    "stderr:\n%s", rc, err);
	ck_assert_msg(strstr(err, want) != NULL, "stderr lacks \"%s\":\n%s",
	    want, err);
	ck_assert_msg(strstr(err, "info: ready") == NULL,
	    "the refused gateway said ready:\n%s", err);
	free(err);
}

/* The gateway on port still proxies a request. */
static void
assert_serves(uint16_t port)
{
	struct itest_resp r;

	ck_assert_msg(itest_get(port, "/echo/still", &r) == 0, "%s",
	    itest_error());
	ck_assert_int_eq(r.status, 200);
	itest_resp_clear(&r);
}

START_TEST(second_gateway_on_the_same_port_fails)
{
	struct itest_proc *a;
	char *yaml, *addr, *want;
	uint64_t before;

	yaml = config_on("127.0.0.1:0", "127.0.0.1:0", NULL);
	a = itest_gateway_start(yaml);
	free(yaml);

	addr = itest_strf("127.0.0.1:%u", a->port);
	yaml = config_on(addr, "127.0.0.1:0", NULL);
	want = itest_strf("listen %s: address already in use (another "
	    "process owns it)", addr);
	assert_start_refused(yaml, want);
	free(yaml);
	free(want);

	/* B's admin port collides with A's admin listener. */
	free(addr);
	addr = itest_strf("127.0.0.1:%u", a->admin_port);
	yaml = config_on("127.0.0.1:0", addr, NULL);
	want = itest_strf("admin.listen %s: address already in use (another "
	    "process owns it)", addr);
	assert_start_refused(yaml, want);
	free(yaml);
	free(want);
	free(addr);

	/* A still has all the traffic. */
	before = itest_backend_requests(be);
	assert_serves(a->port);
	assert_serves(a->port);
	ck_assert_uint_eq(itest_backend_requests(be), before + 2);
}
END_TEST

/*
 * A listening socket on 127.0.0.1:0 of this (foreign) process; with
 * reuseport it sets SO_REUSEPORT, which must not let us in either.
 */
static int
foreign_listener(bool reuseport, uint16_t *port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(fd, -1);
	if (reuseport)
		ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
		    sizeof one), 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

START_TEST(foreign_socket_on_the_port_fails)
{
	char *yaml, *addr, *want;
	uint16_t port;
	int fd, reuse;

	for (reuse = 0; reuse <= 1; reuse++) {
		fd = foreign_listener(reuse, &port);
		addr = itest_strf("127.0.0.1:%u", port);
		yaml = config_on(addr, "127.0.0.1:0", NULL);
		want = itest_strf("listen %s: address already in use "
		    "(another process owns it)", addr);
		assert_start_refused(yaml, want);
		free(yaml);
		free(want);

		yaml = config_on("127.0.0.1:0", addr, NULL);
		want = itest_strf("admin.listen %s: address already in use "
		    "(another process owns it)", addr);
		assert_start_refused(yaml, want);
		free(yaml);
		free(want);
		free(addr);
		close(fd);
	}
}
END_TEST

/*
 * workers: 2 and max_connections: 2 give each worker a share of one
 * connection.  The worker holding the first keep-alive connection stops
 * accepting; the second connection is served only if the other worker
 * accepts on the same socket.  (With one socket per worker, the kernel
 * put it on the full worker's socket half the time, where it waited.)
 */
START_TEST(both_workers_accept_on_the_shared_socket)
{
	struct itest_proc *gw;
	struct itest_conn *c[2];
	struct itest_resp r;
	char *yaml, *text;
	int round, i;

	yaml = config_on("127.0.0.1:0", "127.0.0.1:0",
	    "  limits: {max_connections: 2}\n");
	gw = itest_gateway_start(yaml);
	free(yaml);
	/* A few rounds: each pair starts from two free workers. */
	for (round = 0; round < 4; round++) {
		for (i = 0; i < 2; i++) {
			c[i] = itest_connect(gw->port);
			ck_assert_int_eq(itest_sendf(c[i], "GET /echo/%d "
			    "HTTP/1.1\r\nHost: x\r\n\r\n", i), 0);
			ck_assert_msg(itest_read_response(c[i], &r, 0, 3000) ==
			    0, "round %d connection %d not served: %s", round,
			    i, itest_error());
			ck_assert_int_eq(r.status, 200);
			itest_resp_clear(&r);
		}
		for (i = 0; i < 2; i++)
			itest_conn_free(c[i]);
		/* Wait until the gateway saw both close. */
		for (;;) {
			ck_assert_int_eq(itest_get(gw->admin_port, "/metrics",
			    &r), 0);
			text = r.body;
			if (itest_metric(text,
			    "tracestitch_open_connections", NULL) == 0)
				break;
			itest_resp_clear(&r);
			poll(NULL, 0, 5);
		}
		itest_resp_clear(&r);
	}
}
END_TEST

/* The Send-Q (listen queue maximum) ss reports for a listener on port. */
static long
listen_queue_max(uint16_t port)
{
	char cmd[128], line[512];
	long recvq = -1, sendq = -1;
	FILE *fp;

	snprintf(cmd, sizeof cmd, "ss -ltnH 'sport = :%u' 2>&1", port);
	fp = popen(cmd, "r");
	ck_assert_msg(fp != NULL, "popen ss: %s", strerror(errno));
	if (fgets(line, sizeof line, fp) != NULL)
		(void)sscanf(line, "LISTEN %ld %ld", &recvq, &sendq);
	ck_assert_msg(pclose(fp) == 0 && sendq >= 0, "ss (iproute2) failed "
	    "or found no listener on %u: %s", port, line);
	return sendq;
}

/* The system's cap on listen queues. */
static long
somaxconn(void)
{
	FILE *fp = fopen("/proc/sys/net/core/somaxconn", "r");
	long v = -1;

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fscanf(fp, "%ld", &v), 1);
	fclose(fp);
	return v;
}

START_TEST(backlog_is_the_listen_queue)
{
	struct itest_proc *gw;
	long want, cap = somaxconn();
	char *yaml, *log, *line, *addr;
	size_t from;

	yaml = config_on("127.0.0.1:0", "127.0.0.1:0",
	    "  backlog: 77\n");
	gw = itest_gateway_start(yaml);
	free(yaml);
	ck_assert_int_eq(listen_queue_max(gw->port), 77);
	ck_assert_int_eq(listen_queue_max(gw->admin_port), 77);
	assert_serves(gw->port);

	/* It cannot change on reload; the sockets stay as they are. */
	addr = itest_strf("127.0.0.1:%u", gw->port);
	yaml = config_on(addr, "127.0.0.1:0", "  backlog: 78\n");
	free(addr);
	itest_rewrite(gw->cfg_path, yaml);
	free(yaml);
	from = itest_log_size(gw, ITEST_STDERR);
	itest_proc_signal(gw, SIGHUP);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR, "server.backlog: "
	    "cannot change on reload", from, ITEST_TIMEOUT_MS) != -1,
	    "reload changing server.backlog was not refused");
	ck_assert_int_eq(listen_queue_max(gw->port), 77);
	assert_serves(gw->port);
	itest_proc_stop(gw, SIGTERM, ITEST_TIMEOUT_MS);

	/* Above net.core.somaxconn: the kernel's cap, and a line says so. */
	if (cap < 65535) {
		yaml = config_on("127.0.0.1:0", "127.0.0.1:0",
		    "  backlog: 65535\n");
		gw = itest_gateway_start(yaml);
		free(yaml);
		ck_assert_int_eq(listen_queue_max(gw->port), cap);
		log = itest_log_read(gw, ITEST_STDERR);
		line = itest_strf("info: server.backlog 65535: the kernel caps "
		    "listen queues at net.core.somaxconn = %ld", cap);
		ck_assert_msg(strstr(log, line) != NULL, "no \"%s\" in:\n%s",
		    line, log);
		free(line);
		free(log);
		itest_proc_stop(gw, SIGTERM, ITEST_TIMEOUT_MS);
	}

	/* The default, 1024, as far as the kernel allows. */
	yaml = config_on("127.0.0.1:0", "127.0.0.1:0", NULL);
	gw = itest_gateway_start(yaml);
	free(yaml);
	want = cap < 1024 ? cap : 1024;
	ck_assert_int_eq(listen_queue_max(gw->port), want);
}
END_TEST

/* utime + stime of pid in clock ticks. */
static long
cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	ssize_t n;
	FILE *fp;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fp = fopen(path, "r");
	ck_assert_ptr_nonnull(fp);
	n = (ssize_t)fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	/* Fields after "(comm)": state is field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %lu %lu", &ut, &st), 2);
	return (long)(ut + st);
}

#define EXHAUST_NOFILE	64	/* the gateway's descriptor limit */
#define EXHAUST_CONNS	150	/* more connections than that */
#define EXHAUST_WINDOW_MS 1500

START_TEST(fd_exhaustion_pauses_accepting)
{
	struct itest_proc *gw;
	struct itest_resp r;
	struct rlimit rl = { EXHAUST_NOFILE, EXHAUST_NOFILE }, mine;
	int fds[EXHAUST_CONNS], admin_fd, i;
	long t0, t1, ticks, hz = sysconf(_SC_CLK_TCK);
	int64_t w0, w1, deadline, closed;
	size_t from, lines, bytes0, bytes1;
	double emfile;
	char *yaml, *line;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &mine), 0);
	if (mine.rlim_cur < EXHAUST_CONNS + 64) {
		mine.rlim_cur = EXHAUST_CONNS + 64;
		ck_assert_msg(setrlimit(RLIMIT_NOFILE, &mine) == 0,
		    "this test needs %d descriptors", EXHAUST_CONNS + 64);
	}
	yaml = config_on("127.0.0.1:0", "127.0.0.1:0", NULL);
	gw = itest_gateway_start(yaml);
	free(yaml);
	/* The gateway raises its soft limit to the hard one at start, so
	 * lower both once it runs (as `ulimit -n 64` before it would). */
	ck_assert_msg(prlimit(gw->pid, RLIMIT_NOFILE, &rl, NULL) == 0,
	    "prlimit: %s", strerror(errno));
	assert_serves(gw->port);

	from = itest_log_size(gw, ITEST_STDERR);
	for (i = 0; i < EXHAUST_CONNS; i++) {
		fds[i] = itest_connect_fd(gw->port);
		ck_assert_msg(fds[i] != -1, "connect %d: %s", i,
		    strerror(errno));
	}
	/* One waiting on the admin listener too (the main thread). */
	admin_fd = itest_connect_fd(gw->admin_port);
	ck_assert_int_ne(admin_fd, -1);
	line = itest_strf(": accept on 127.0.0.1:%u: Too many open files: "
	    "not accepting for ", gw->port);
	ck_assert_msg(itest_log_wait(gw, ITEST_STDERR, line, from,
	    ITEST_TIMEOUT_MS) != -1, "no \"%s\" logged", line);
	free(line);

	/* Out of descriptors with connections still queued: measure. */
	bytes0 = itest_log_size(gw, ITEST_STDERR);
	w0 = itest_now_ms();
	t0 = cpu_ticks(gw->pid);
	poll(NULL, 0, EXHAUST_WINDOW_MS);
	t1 = cpu_ticks(gw->pid);
	w1 = itest_now_ms();
	bytes1 = itest_log_size(gw, ITEST_STDERR);
	ticks = t1 - t0;
	ck_assert_msg(ticks * 1000 / hz < (w1 - w0) / 5,
	    "gateway used %ld ms of CPU in %lld ms while out of descriptors",
	    ticks * 1000 / hz, (long long)(w1 - w0));
	lines = itest_log_count(gw, ITEST_STDERR, "\n", bytes0);
	/* At most one line a second per worker and for the admin
	 * listener: 3 listeners x (up to 3 seconds touched) = 9. */
	ck_assert_msg(lines <= 9 && bytes1 - bytes0 < 2048,
	    "%zu log lines, %zu bytes in %lld ms", lines, bytes1 - bytes0,
	    (long long)(w1 - w0));
	ck_assert_msg(itest_log_count(gw, ITEST_STDERR, "libevent", from) ==
	    0, "libevent logged accept errors itself");

	/*
	 * Recovery: the descriptors come back, requests are served.  The
	 * pauses so far were 10, 20, ... 640 ms (1270 ms) and then 1 s, so
	 * the armed timer has some 700 ms left: a request served well
	 * before that means the closing connections resumed accepting.
	 */
	closed = itest_now_ms();
	for (i = 0; i < EXHAUST_CONNS; i++)
		close(fds[i]);
	close(admin_fd);
	deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	for (;;) {
		if (itest_get(gw->port, "/echo/again", &r) == 0 &&
		    r.status == 200)
			break;
		itest_resp_clear(&r);
		ck_assert_msg(itest_now_ms() < deadline,
		    "no request served after the connections closed");
		poll(NULL, 0, 10);
	}
	itest_resp_clear(&r);
	ck_assert_msg(itest_now_ms() - closed < 400, "first request served "
	    "%lld ms after the connections closed",
	    (long long)(itest_now_ms() - closed));
	ck_assert_int_eq(itest_get(gw->admin_port, "/metrics", &r), 0);
	emfile = itest_metric(r.body, "tracestitch_accept_errors_total",
	    "reason=\"emfile\"");
	ck_assert_msg(emfile >= 1, "accept_errors_total{emfile} = %g", emfile);
	ck_assert_double_eq(itest_metric(r.body,
	    "tracestitch_accept_errors_total", "reason=\"other\""), 0);
	itest_resp_clear(&r);
}
END_TEST

static Suite *
listen_suite(void)
{
	Suite *s = suite_create("listen");
	TCase *tc = tcase_create("listen");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, second_gateway_on_the_same_port_fails);
	tcase_add_test(tc, foreign_socket_on_the_port_fails);
	tcase_add_test(tc, both_workers_accept_on_the_shared_socket);
	tcase_add_test(tc, backlog_is_the_listen_queue);
	tcase_add_test(tc, fd_exhaustion_pauses_accepting);
	suite_add_tcase(s, tc);
	return s;
}

ITEST_MAIN(listen_suite, true)
