/*
 * itest.c -- process, socket and log helpers for the integration suites.
 *
 * See itest.h.  Children are started with fork + execv, their stdout and
 * stderr redirected to temp files; a registry lets itest_cleanup_all() stop
 * every one of them by PID.  The raw client is a small blocking-with-poll
 * HTTP/1.1 reader (RFC 9112 section 6.3 message body length rules: no body
 * for HEAD, 1xx, 204, 304; chunked; Content-Length; else until close).
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "itest.h"

#define ITEST_MAX_PROCS		16
#define ITEST_MAX_TEMPS		32

static struct itest_proc *itest_procs[ITEST_MAX_PROCS];
static char *itest_temps[ITEST_MAX_TEMPS];
static char itest_errbuf[512];
static bool itest_atexit_set;
static char itest_sanitizer_report[1024];	/* first report seen */

static void itest_fail_set(const char *, ...)
    __attribute__((format(printf, 1, 2)));

/* Record why a helper failed. */
static void
itest_fail_set(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(itest_errbuf, sizeof itest_errbuf, fmt, ap);
	va_end(ap);
}

/* Description of the last failure. */
const char *
itest_error(void)
{
	return itest_errbuf;
}

/* Monotonic milliseconds. */
int64_t
itest_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
itest_remaining(int64_t deadline)
{
	int64_t left = deadline - itest_now_ms();

	return left < 0 ? 0 : (int)left;
}

/* A short pause between polls of a file (10 ms). */
static void
itest_tick(void)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

/* printf into a new string. */
char *
itest_strf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		ck_abort_msg("vasprintf failed");
	return s;
}

static const char *
itest_tmpdir(void)
{
	const char *d = getenv("TMPDIR");

	return d != NULL && *d != '\0' ? d : "/tmp";
}

static void
itest_atexit(void)
{
	itest_cleanup_all();
}

static void
itest_register_atexit(void)
{
	if (!itest_atexit_set) {
		atexit(itest_atexit);
		itest_atexit_set = true;
	}
}

/* Create an empty temp file and register it; returns its path. */
static char *
itest_temp_path(const char *suffix)
{
	char *path;
	size_t i;
	int fd;

	itest_register_atexit();
	path = itest_strf("%s/itest-XXXXXX%s", itest_tmpdir(),
	    suffix != NULL ? suffix : "");
	fd = mkstemps(path, suffix != NULL ? (int)strlen(suffix) : 0);
	if (fd == -1)
		ck_abort_msg("mkstemps %s: %s", path, strerror(errno));
	close(fd);
	for (i = 0; i < ITEST_MAX_TEMPS; i++) {
		if (itest_temps[i] == NULL) {
			itest_temps[i] = path;
			return path;
		}
	}
	ck_abort_msg("too many temp files");
	return NULL;
}

static void
itest_write_all_fd(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			ck_abort_msg("write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* Write content to a new temp file. */
char *
itest_write_temp(const char *content, const char *suffix)
{
	char *path = itest_temp_path(suffix);
	int fd;

	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd == -1)
		ck_abort_msg("open %s: %s", path, strerror(errno));
	itest_write_all_fd(fd, content, strlen(content));
	close(fd);
	return path;
}

/* Replace a file's content atomically. */
void
itest_rewrite(const char *path, const char *content)
{
	char *tmp = itest_strf("%s.new", path);
	int fd;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1)
		ck_abort_msg("open %s: %s", tmp, strerror(errno));
	itest_write_all_fd(fd, content, strlen(content));
	close(fd);
	if (rename(tmp, path) == -1)
		ck_abort_msg("rename %s: %s", tmp, strerror(errno));
	free(tmp);
}

/* Path of the gateway binary. */
const char *
itest_gateway_path(void)
{
	static char buf[4096];
	const char *root = getenv("TS_BUILD_ROOT");

	snprintf(buf, sizeof buf, "%s/src/tracestitch",
	    root != NULL ? root : ".");
	return buf;
}

/* Path of the fake backend. */
const char *
itest_backend_path(void)
{
	static char buf[4096];
	const char *p = getenv("TS_FAKE_BACKEND");
	const char *root = getenv("TS_BUILD_ROOT");

	if (p != NULL && *p != '\0')
		return p;
	snprintf(buf, sizeof buf, "%s/tests/support/fake_backend",
	    root != NULL ? root : ".");
	return buf;
}

/* An unlinked temp file (close-on-exec), so nothing is left behind. */
static int
itest_temp_fd(void)
{
	char *path;
	int fd;

	path = itest_strf("%s/itest-XXXXXX", itest_tmpdir());
	fd = mkostemp(path, O_CLOEXEC | O_APPEND);
	if (fd == -1)
		ck_abort_msg("mkostemp %s: %s", path, strerror(errno));
	unlink(path);
	free(path);
	return fd;
}

/*
 * Child environment: under AddressSanitizer freed memory sits in a 256 MB
 * quarantine, which would make the streaming RSS bound meaningless; keep
 * it small (ignored by uninstrumented binaries).
 */
static void
itest_child_env(void)
{
	const char *old = getenv("ASAN_OPTIONS");
	char *v;

	v = itest_strf("%s%squarantine_size_mb=4", old != NULL ? old : "",
	    old != NULL && *old != '\0' ? ":" : "");
	setenv("ASAN_OPTIONS", v, 1);
	free(v);
}

/* fork + exec argv with stdout/stderr to the given files. */
static pid_t
itest_spawn(const char *const *argv, int out_fd, int err_fd)
{
	pid_t parent = getpid(), pid;
	int fd;

	pid = fork();
	if (pid == -1)
		ck_abort_msg("fork: %s", strerror(errno));
	if (pid > 0)
		return pid;

	/* Child: die with the test process, whatever kills it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	fd = open("/dev/null", O_RDONLY);
	if (fd != -1) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	dup2(out_fd, STDOUT_FILENO);
	dup2(err_fd, STDERR_FILENO);
	signal(SIGPIPE, SIG_DFL);
	itest_child_env();
	execv(argv[0], (char *const *)argv);
	fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static struct itest_proc *
itest_proc_new(const char *name)
{
	struct itest_proc *p;
	size_t i;

	itest_register_atexit();
	p = calloc(1, sizeof *p);
	p->name = strdup(name);
	p->out_fd = itest_temp_fd();
	p->err_fd = itest_temp_fd();
	for (i = 0; i < ITEST_MAX_PROCS; i++) {
		if (itest_procs[i] == NULL) {
			itest_procs[i] = p;
			return p;
		}
	}
	ck_abort_msg("too many processes");
	return NULL;
}

/* Reap without blocking; true once exited. */
static bool
itest_proc_poll(struct itest_proc *p)
{
	pid_t r;

	if (p->reaped)
		return true;
	r = waitpid(p->pid, &p->status, WNOHANG);
	if (r == p->pid) {
		p->reaped = true;
		return true;
	}
	return false;
}

/* Whole content of an open file (caller frees), "" if unreadable. */
static char *
itest_slurp_fd(int fd, size_t *lenp)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	for (;;) {
		if (cap - len < 4096) {
			cap = cap == 0 ? 8192 : cap * 2;
			buf = realloc(buf, cap);
		}
		if (fd == -1)
			break;
		n = pread(fd, buf + len, cap - len - 1, (off_t)len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

/* Whole content of a file by path. */
static char *
itest_slurp(const char *path, size_t *lenp)
{
	char *buf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	buf = itest_slurp_fd(fd, lenp);
	if (fd != -1)
		close(fd);
	return buf;
}

/* Size of a captured stream. */
size_t
itest_log_size(struct itest_proc *p, enum itest_stream s)
{
	struct stat st;

	if (fstat(s == ITEST_STDOUT ? p->out_fd : p->err_fd, &st) == -1)
		return 0;
	return (size_t)st.st_size;
}

/* All of a captured stream. */
char *
itest_log_read(struct itest_proc *p, enum itest_stream s)
{
	return itest_slurp_fd(s == ITEST_STDOUT ? p->out_fd : p->err_fd,
	    NULL);
}

/* Wait for needle in a stream after offset from. */
long
itest_log_wait(struct itest_proc *p, enum itest_stream s, const char *needle,
    size_t from, int timeout_ms)
{
	int64_t deadline = itest_now_ms() + timeout_ms;
	char *text, *hit;
	size_t len;
	long off;

	for (;;) {
		text = itest_slurp_fd(s == ITEST_STDOUT ? p->out_fd :
		    p->err_fd, &len);
		hit = from < len ? strstr(text + from, needle) : NULL;
		if (hit != NULL) {
			off = (long)(hit - text) + (long)strlen(needle);
			free(text);
			return off;
		}
		free(text);
		if (itest_now_ms() >= deadline)
			return -1;
		itest_tick();
	}
}

/* Occurrences of needle from offset from. */
size_t
itest_log_count(struct itest_proc *p, enum itest_stream s, const char *needle,
    size_t from)
{
	char *text, *q;
	size_t len, n = 0;

	text = itest_log_read(p, s);
	len = strlen(text);
	for (q = from < len ? text + from : text + len;
	    (q = strstr(q, needle)) != NULL; q += strlen(needle))
		n++;
	free(text);
	return n;
}

/* Port number after the last ':' of the URL that starts at p. */
static uint16_t
itest_url_port(const char *p)
{
	const char *eol = strchr(p, '\n'), *colon = NULL, *q;

	if (eol == NULL)
		eol = p + strlen(p);
	for (q = p; q < eol; q++)
		if (*q == ':')
			colon = q;
	if (colon == NULL)
		return 0;
	return (uint16_t)strtoul(colon + 1, NULL, 10);
}

/* Start the fake backend. */
struct itest_proc *
itest_backend_start(const char *name)
{
	return itest_backend_start_idle(name, 0);
}

/* Start the fake backend with an idle keep-alive timeout. */
struct itest_proc *
itest_backend_start_idle(const char *name, unsigned idle_ms)
{
	return itest_backend_start_at(name, "127.0.0.1", 0, idle_ms);
}

/* Start the fake backend on a given loopback address and port (0: any). */
struct itest_proc *
itest_backend_start_at(const char *name, const char *addr, uint16_t port,
    unsigned idle_ms)
{
	const char *argv[10];
	struct itest_proc *p;
	char *text, idle[32], pbuf[8], needle[64];
	long off;

	p = itest_proc_new(name);
	snprintf(idle, sizeof idle, "%u", idle_ms);
	snprintf(pbuf, sizeof pbuf, "%u", (unsigned)port);
	snprintf(needle, sizeof needle, "listening on http://%s:", addr);
	argv[0] = itest_backend_path();
	argv[1] = "-a";
	argv[2] = addr;
	argv[3] = "-p";
	argv[4] = pbuf;
	argv[5] = "-n";
	argv[6] = name;
	argv[7] = "-i";
	argv[8] = idle;
	argv[9] = NULL;
	p->pid = itest_spawn(argv, p->out_fd, p->err_fd);
	off = itest_log_wait(p, ITEST_STDOUT, needle, 0, ITEST_TIMEOUT_MS);
	if (off < 0) {
		text = itest_log_read(p, ITEST_STDERR);
		ck_abort_msg("fake backend %s did not start: %s", name, text);
	}
	text = itest_log_read(p, ITEST_STDOUT);
	p->port = (uint16_t)strtoul(text + off, NULL, 10);
	free(text);
	p->ports[0] = p->port;
	p->n_ports = 1;
	return p;
}

/* Parse the gateway's startup lines in text. */
static void
itest_gateway_parse(struct itest_proc *p, const char *text)
{
	const char *q;

	for (q = text; (q = strstr(q, "listening on http")) != NULL; q++) {
		bool admin = q - text >= 6 && strncmp(q - 6, "admin ", 6) == 0;
		uint16_t port = itest_url_port(q);

		if (admin)
			p->admin_port = port;
		else if (p->n_ports < ITEST_MAX_PORTS) {
			p->ports[p->n_ports++] = port;
			if (strncmp(q, "listening on https://", 21) == 0)
				p->https = true;
		}
	}
	p->port = p->n_ports > 0 ? p->ports[0] : 0;
}

/* Start the gateway with an existing config file. */
struct itest_proc *
itest_gateway_start_file(const char *path)
{
	const char *argv[4];
	struct itest_proc *p;
	int64_t deadline = itest_now_ms() + ITEST_TIMEOUT_MS;
	char *text;

	p = itest_proc_new("tracestitch");
	p->cfg_path = strdup(path);
	argv[0] = itest_gateway_path();
	argv[1] = "-c";
	argv[2] = path;
	argv[3] = NULL;
	p->pid = itest_spawn(argv, p->out_fd, p->err_fd);
	for (;;) {
		text = itest_log_read(p, ITEST_STDERR);
		if (strstr(text, "info: ready") != NULL)
			break;
		if (itest_proc_poll(p) || itest_now_ms() >= deadline) {
			ck_abort_msg("gateway did not become ready (%s); "
			    "stderr:\n%s",
			    p->reaped ? "it exited" : "timeout", text);
		}
		free(text);
		itest_tick();
	}
	itest_gateway_parse(p, text);
	free(text);
	ck_assert_msg(p->port != 0, "no listening port in the gateway log");
	return p;
}

/* Start the gateway with this YAML. */
struct itest_proc *
itest_gateway_start(const char *yaml)
{
	return itest_gateway_start_file(itest_write_temp(yaml, ".yaml"));
}

/* A one-route config. */
char *
itest_config_simple(uint16_t backend_port, const char *server_extra,
    const char *upstream_extra)
{
	return itest_strf(
	    "server:\n"
	    "  listen: [\"127.0.0.1:0\"]\n"
	    "  workers: 2\n"
	    "%s"
	    "admin: {listen: \"127.0.0.1:0\"}\n"
	    "routes:\n"
	    "  - name: api\n"
	    "    path_prefix: /\n"
	    "    upstream:\n"
	    "      url: http://127.0.0.1:%u\n"
	    "%s"
	    "exporter: {type: none}\n"
	    "logging: {level: info, access_log: stdout}\n",
	    server_extra != NULL ? server_extra : "", backend_port,
	    upstream_extra != NULL ? upstream_extra : "");
}

/* Run the gateway to completion. */
int
itest_gateway_run(const char *const *args, char **out, char **err,
    int timeout_ms)
{
	const char *argv[16];
	struct itest_proc *p;
	size_t i;
	int st;

	p = itest_proc_new("tracestitch-run");
	argv[0] = itest_gateway_path();
	for (i = 0; args[i] != NULL && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	p->pid = itest_spawn(argv, p->out_fd, p->err_fd);
	st = itest_proc_wait(p, timeout_ms);
	if (out != NULL)
		*out = itest_log_read(p, ITEST_STDOUT);
	if (err != NULL)
		*err = itest_log_read(p, ITEST_STDERR);
	itest_proc_free(p);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Send a signal to a running process. */
void
itest_proc_signal(struct itest_proc *p, int sig)
{
	ck_assert_msg(!itest_proc_poll(p), "%s (pid %d) already exited",
	    p->name, (int)p->pid);
	if (kill(p->pid, sig) == -1)
		ck_abort_msg("kill %d: %s", (int)p->pid, strerror(errno));
}

/* Wait for exit with a deadline. */
int
itest_proc_wait(struct itest_proc *p, int timeout_ms)
{
	int64_t deadline = itest_now_ms() + timeout_ms;

	while (!itest_proc_poll(p)) {
		if (itest_now_ms() >= deadline)
			return -1;
		itest_tick();
	}
	return p->status;
}

/* Signal, wait, SIGKILL after the deadline. */
int
itest_proc_stop(struct itest_proc *p, int sig, int timeout_ms)
{
	if (itest_proc_poll(p))
		return p->status;
	kill(p->pid, sig);
	if (itest_proc_wait(p, timeout_ms) != -1)
		return p->status;
	kill(p->pid, SIGKILL);
	while (waitpid(p->pid, &p->status, 0) == -1 && errno == EINTR)
		;
	p->reaped = true;
	return p->status;
}

/* Stop if running and free. */
void
itest_proc_free(struct itest_proc *p)
{
	size_t i;

	if (p == NULL)
		return;
	if (p->pid > 0 && !p->reaped)
		itest_proc_stop(p, SIGTERM, 5000);
	if (p->cfg_path != NULL && itest_sanitizer_report[0] == '\0') {
		char *err = itest_log_read(p, ITEST_STDERR), *hit;

		if ((hit = strstr(err, "runtime error:")) != NULL ||
		    (hit = strstr(err, "ERROR: AddressSanitizer")) != NULL ||
		    (hit = strstr(err, "ERROR: LeakSanitizer")) != NULL)
			snprintf(itest_sanitizer_report,
			    sizeof itest_sanitizer_report, "%s", hit);
		free(err);
	}
	for (i = 0; i < ITEST_MAX_PROCS; i++)
		if (itest_procs[i] == p)
			itest_procs[i] = NULL;
	close(p->out_fd);
	close(p->err_fd);
	free(p->name);
	free(p->cfg_path);
	free(p);
}

/* Stop every process and remove every temp file. */
void
itest_cleanup_all(void)
{
	size_t i;

	for (i = 0; i < ITEST_MAX_PROCS; i++)
		if (itest_procs[i] != NULL)
			itest_proc_free(itest_procs[i]);
	for (i = 0; i < ITEST_MAX_TEMPS; i++) {
		if (itest_temps[i] != NULL) {
			unlink(itest_temps[i]);
			free(itest_temps[i]);
			itest_temps[i] = NULL;
		}
	}
}

/* Teardown fixture: clean up, then report sanitizer findings. */
void
itest_teardown(void)
{
	itest_cleanup_all();
	if (itest_sanitizer_report[0] != '\0') {
		char report[sizeof itest_sanitizer_report];

		memcpy(report, itest_sanitizer_report, sizeof report);
		itest_sanitizer_report[0] = '\0';
		ck_abort_msg("gateway sanitizer report: %s", report);
	}
}

/* VmRSS in KiB. */
long
itest_rss_kb(pid_t pid)
{
	char path[64], *text, *q;
	long kb = -1;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	text = itest_slurp(path, NULL);
	q = strstr(text, "VmRSS:");
	if (q != NULL)
		kb = strtol(q + 6, NULL, 10);
	free(text);
	return kb;
}

/* Connect to 127.0.0.1:port. */
int
itest_connect_fd(uint16_t port)
{
	struct sockaddr_in sin;
	int fd, one = 1, e;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Connect or fail. */
struct itest_conn *
itest_connect(uint16_t port)
{
	struct itest_conn *c;
	int fd;

	fd = itest_connect_fd(port);
	if (fd == -1)
		ck_abort_msg("connect 127.0.0.1:%u: %s", port,
		    strerror(errno));
	c = calloc(1, sizeof *c);
	c->fd = fd;
	return c;
}

/* Close and free a client connection (NULL-safe). */
void
itest_conn_free(struct itest_conn *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c->buf);
	free(c);
}

/* Send all bytes. */
int
itest_send(struct itest_conn *c, const void *data, size_t len,
    int timeout_ms)
{
	int64_t deadline = itest_now_ms() + timeout_ms;
	const char *p = data;
	struct pollfd pfd;
	ssize_t n;

	while (len > 0) {
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno != EAGAIN) {
			itest_fail_set("send: %s", strerror(errno));
			return -1;
		}
		pfd.fd = c->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, itest_remaining(deadline)) <= 0) {
			itest_fail_set("send: timeout");
			return -1;
		}
	}
	return 0;
}

/* printf and send. */
int
itest_sendf(struct itest_conn *c, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n, r;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	r = itest_send(c, s, (size_t)n, ITEST_TIMEOUT_MS);
	free(s);
	return r;
}

/*
 * Read more bytes into the buffer before the deadline.  Returns bytes
 * read, 0 on EOF, -1 on error or timeout.
 */
static ssize_t
itest_fill(struct itest_conn *c, int64_t deadline)
{
	struct pollfd pfd;
	ssize_t n;
	int r;

	if (c->eof)
		return 0;
	if (c->off > 0 && c->off == c->len)
		c->off = c->len = 0;
	if (c->off > 65536) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->cap - c->len < 16384) {
		c->cap = c->cap == 0 ? 65536 : c->cap * 2;
		c->buf = realloc(c->buf, c->cap + 1);
	}
	for (;;) {
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n > 0) {
			c->len += (size_t)n;
			return n;
		}
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET) {
			c->eof = true;
			itest_fail_set("connection reset by peer");
			return -1;
		}
		if (errno != EAGAIN) {
			itest_fail_set("recv: %s", strerror(errno));
			return -1;
		}
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		r = poll(&pfd, 1, itest_remaining(deadline));
		if (r == 0) {
			itest_fail_set("timeout waiting for data");
			return -1;
		}
	}
}

/* True if data or EOF is waiting. */
bool
itest_readable(struct itest_conn *c, int timeout_ms)
{
	struct pollfd pfd;

	if (c->len > c->off || c->eof)
		return true;
	pfd.fd = c->fd;
	pfd.events = POLLIN;
	return poll(&pfd, 1, timeout_ms) > 0;
}

/* Wait for the peer to close. */
bool
itest_wait_closed(struct itest_conn *c, int timeout_ms)
{
	int64_t deadline = itest_now_ms() + timeout_ms;
	ssize_t n;

	for (;;) {
		n = itest_fill(c, deadline);
		if (n == 0 || c->eof)
			return true;
		if (n < 0)
			return false;
	}
}

/* Position of CRLF at or after the read offset, or -1. */
static long
itest_find_crlf(struct itest_conn *c, size_t from)
{
	size_t i;

	for (i = c->off + from; i + 1 < c->len; i++)
		if (c->buf[i] == '\r' && c->buf[i + 1] == '\n')
			return (long)(i - c->off);
	return -1;
}

/* Read one CRLF-terminated line (without CRLF); caller frees. */
static char *
itest_read_line(struct itest_conn *c, int64_t deadline)
{
	char *line;
	long pos;
	ssize_t n;

	while ((pos = itest_find_crlf(c, 0)) < 0) {
		n = itest_fill(c, deadline);
		if (n <= 0) {
			if (n == 0)
				itest_fail_set("EOF in a line");
			return NULL;
		}
	}
	line = strndup(c->buf + c->off, (size_t)pos);
	c->off += (size_t)pos + 2;
	return line;
}

/* Free the parts of a response. */
void
itest_resp_clear(struct itest_resp *r)
{
	size_t i;

	for (i = 0; i < r->n_hdrs; i++) {
		free(r->hdrs[i].name);
		free(r->hdrs[i].value);
	}
	free(r->hdrs);
	free(r->head);
	free(r->version);
	free(r->reason);
	free(r->body);
	memset(r, 0, sizeof *r);
}

/* Parse a complete head of len bytes at p into r. */
static int
itest_parse_head(struct itest_resp *r, const char *p, size_t len)
{
	char *copy, *line, *next, *sp, *colon, *v, *e;

	r->head = strndup(p, len);
	copy = strndup(p, len);
	next = strstr(copy, "\r\n");
	*next = '\0';
	sp = strchr(copy, ' ');
	if (sp == NULL || strncmp(copy, "HTTP/", 5) != 0) {
		itest_fail_set("bad status line: %s", copy);
		free(copy);
		return -1;
	}
	r->version = strndup(copy, (size_t)(sp - copy));
	r->status = atoi(sp + 1);
	v = strchr(sp + 1, ' ');
	r->reason = strdup(v != NULL ? v + 1 : "");
	for (line = next + 2; (next = strstr(line, "\r\n")) != NULL &&
	    next != line; line = next + 2) {
		*next = '\0';
		colon = strchr(line, ':');
		if (colon == NULL) {
			itest_fail_set("bad header line: %s", line);
			free(copy);
			return -1;
		}
		v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		e = v + strlen(v);
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		r->hdrs = realloc(r->hdrs, (r->n_hdrs + 1) * sizeof *r->hdrs);
		r->hdrs[r->n_hdrs].name = strndup(line, (size_t)(colon - line));
		r->hdrs[r->n_hdrs].value = strndup(v, (size_t)(e - v));
		r->n_hdrs++;
	}
	free(copy);
	return 0;
}

struct itest_sink {
	itest_body_fn fn;
	void *arg;
	struct itest_resp *r;
	size_t cap;
};

/* Hand body bytes to the callback or the stored body. */
static int
itest_sink_put(struct itest_sink *s, const char *data, size_t len)
{
	if (s->fn != NULL) {
		s->r->body_len += len;
		return s->fn(data, len, s->arg);
	}
	if (s->r->body_len + len + 1 > s->cap) {
		while (s->r->body_len + len + 1 > s->cap)
			s->cap = s->cap == 0 ? 4096 : s->cap * 2;
		s->r->body = realloc(s->r->body, s->cap);
	}
	memcpy(s->r->body + s->r->body_len, data, len);
	s->r->body_len += len;
	s->r->body[s->r->body_len] = '\0';
	return 0;
}

/* Move n body bytes (or until EOF when n is -1) to the sink. */
static int
itest_body_bytes(struct itest_conn *c, struct itest_sink *s, int64_t n,
    int64_t deadline)
{
	size_t avail, take;
	ssize_t got;

	while (n != 0) {
		avail = c->len - c->off;
		if (avail == 0) {
			got = itest_fill(c, deadline);
			if (got < 0)
				return -1;
			if (got == 0) {
				if (n < 0)
					return 0;
				itest_fail_set("EOF with %lld body bytes "
				    "missing", (long long)n);
				return -1;
			}
			continue;
		}
		take = n < 0 || (uint64_t)n > avail ? avail : (size_t)n;
		if (itest_sink_put(s, c->buf + c->off, take) == -1) {
			itest_fail_set("body consumer aborted");
			return -1;
		}
		c->off += take;
		if (n > 0)
			n -= (int64_t)take;
	}
	return 0;
}

/* Read one response, body to a callback or stored. */
int
itest_read_response_cb(struct itest_conn *c, struct itest_resp *r, int flags,
    int timeout_ms, itest_body_fn fn, void *arg)
{
	int64_t deadline = itest_now_ms() + timeout_ms;
	struct itest_sink sink = { fn, arg, r, 0 };
	const char *te, *cl, *conn;
	char *line, *end;
	long pos;
	ssize_t n;
	uint64_t size;

	memset(r, 0, sizeof *r);
	for (;;) {
		/* Find the end of the head. */
		for (;;) {
			pos = -1;
			if (c->len - c->off >= 4) {
				size_t i;

				for (i = c->off; i + 3 < c->len; i++) {
					if (memcmp(c->buf + i, "\r\n\r\n",
					    4) == 0) {
						pos = (long)(i - c->off);
						break;
					}
				}
			}
			if (pos >= 0)
				break;
			n = itest_fill(c, deadline);
			if (n < 0)
				return -1;
			if (n == 0) {
				itest_fail_set(c->len == c->off ?
				    "connection closed before a response" :
				    "EOF inside the response head");
				r->closed = true;
				return -1;
			}
		}
		if (itest_parse_head(r, c->buf + c->off, (size_t)pos + 4) == -1)
			return -1;
		c->off += (size_t)pos + 4;
		if (r->status >= 100 && r->status < 200 && r->status != 101) {
			itest_resp_clear(r);
			continue;
		}
		break;
	}

	conn = itest_resp_header(r, "Connection");
	te = itest_resp_header(r, "Transfer-Encoding");
	cl = itest_resp_header(r, "Content-Length");
	if ((flags & ITEST_HEAD_REQUEST) || r->status == 204 ||
	    r->status == 304 || (r->status >= 100 && r->status < 200)) {
		/* no body */
	} else if (te != NULL) {
		r->chunked = true;
		for (;;) {
			line = itest_read_line(c, deadline);
			if (line == NULL)
				return -1;
			errno = 0;
			size = strtoull(line, &end, 16);
			if (end == line || (*end != '\0' && *end != ';')) {
				itest_fail_set("bad chunk size line: %s", line);
				free(line);
				return -1;
			}
			free(line);
			if (size == 0)
				break;
			if (itest_body_bytes(c, &sink, (int64_t)size,
			    deadline) == -1)
				return -1;
			line = itest_read_line(c, deadline);
			if (line == NULL)
				return -1;
			if (*line != '\0') {
				itest_fail_set("no CRLF after chunk data");
				free(line);
				return -1;
			}
			free(line);
		}
		/* Trailer section up to the empty line. */
		for (;;) {
			line = itest_read_line(c, deadline);
			if (line == NULL)
				return -1;
			if (*line == '\0') {
				free(line);
				break;
			}
			free(line);
		}
	} else if (cl != NULL) {
		if (itest_body_bytes(c, &sink, (int64_t)strtoull(cl, NULL, 10),
		    deadline) == -1)
			return -1;
	} else {
		if (itest_body_bytes(c, &sink, -1, deadline) == -1)
			return -1;
		r->closed = true;
	}
	if (fn == NULL && r->body == NULL)
		r->body = strdup("");
	if (conn != NULL && strcasestr(conn, "close") != NULL)
		r->closed = true;
	return 0;
}

/* Read one response, body stored. */
int
itest_read_response(struct itest_conn *c, struct itest_resp *r, int flags,
    int timeout_ms)
{
	return itest_read_response_cb(c, r, flags, timeout_ms, NULL, NULL);
}

/* First value of a header. */
const char *
itest_resp_header(const struct itest_resp *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->n_hdrs; i++)
		if (strcasecmp(r->hdrs[i].name, name) == 0)
			return r->hdrs[i].value;
	return NULL;
}

/* Number of header lines called name. */
size_t
itest_resp_count(const struct itest_resp *r, const char *name)
{
	size_t i, n = 0;

	for (i = 0; i < r->n_hdrs; i++)
		if (strcasecmp(r->hdrs[i].name, name) == 0)
			n++;
	return n;
}

/* Parse the body as JSON. */
json_t *
itest_resp_json(const struct itest_resp *r)
{
	json_error_t err;
	json_t *j;

	j = json_loadb(r->body != NULL ? r->body : "", r->body_len, 0, &err);
	if (j == NULL)
		ck_abort_msg("response body is not JSON (%s): %.*s", err.text,
		    (int)(r->body_len > 400 ? 400 : r->body_len),
		    r->body != NULL ? r->body : "");
	return j;
}

const char *
itest_echo_header(json_t *echo, const char *name, size_t nth)
{
	json_t *h = json_object_get(echo, "headers"), *pair;
	size_t i;

	json_array_foreach(h, i, pair) {
		if (strcasecmp(json_string_value(json_array_get(pair, 0)),
		    name) == 0 && nth-- == 0)
			return json_string_value(json_array_get(pair, 1));
	}
	return NULL;
}

/* Assert a gateway error response. */
void
itest_assert_error(const struct itest_resp *r, int status, const char *code)
{
	const char *ct = itest_resp_header(r, "Content-Type");
	const char *e, *m, *id;
	json_t *j;

	ck_assert_msg(r->status == status, "status %d, expected %d; body: %s",
	    r->status, status, r->body != NULL ? r->body : "");
	ck_assert_msg(ct != NULL && strncasecmp(ct, "application/json",
	    16) == 0, "Content-Type %s", ct != NULL ? ct : "(none)");
	j = itest_resp_json(r);
	e = json_string_value(json_object_get(j, "error"));
	m = json_string_value(json_object_get(j, "message"));
	id = json_string_value(json_object_get(j, "request_id"));
	ck_assert_msg(e != NULL && strcmp(e, code) == 0,
	    "error code %s, expected %s", e != NULL ? e : "(none)", code);
	ck_assert_msg(m != NULL && *m != '\0', "no message in %s", r->body);
	ck_assert_msg(id != NULL && *id != '\0', "no request_id in %s",
	    r->body);
	json_decref(j);
}

/* One-shot request. */
int
itest_request(uint16_t port, const char *raw, size_t len,
    struct itest_resp *r, int flags, int timeout_ms)
{
	struct itest_conn *c;
	int rv;

	memset(r, 0, sizeof *r);
	c = itest_connect(port);
	rv = itest_send(c, raw, len, timeout_ms);
	if (rv == 0)
		rv = itest_read_response(c, r, flags, timeout_ms);
	itest_conn_free(c);
	return rv;
}

/* One-shot GET. */
int
itest_get(uint16_t port, const char *path, struct itest_resp *r)
{
	char *raw;
	int rv;

	raw = itest_strf("GET %s HTTP/1.1\r\nHost: itest.test\r\n"
	    "Connection: close\r\n\r\n", path);
	rv = itest_request(port, raw, strlen(raw), r, 0, ITEST_TIMEOUT_MS);
	free(raw);
	return rv;
}

/* One counter of the fake backend's /stats. */
uint64_t
itest_backend_stat(struct itest_proc *b, const char *key)
{
	struct itest_resp r;
	json_t *j;
	uint64_t v;

	if (itest_get(b->port, "/stats", &r) == -1)
		ck_abort_msg("backend /stats: %s", itest_error());
	j = itest_resp_json(&r);
	v = (uint64_t)json_integer_value(json_object_get(j, key));
	json_decref(j);
	itest_resp_clear(&r);
	return v;
}

/* Requests the backend served (other than /stats). */
uint64_t
itest_backend_requests(struct itest_proc *b)
{
	return itest_backend_stat(b, "requests");
}

/* Connections that carried such requests. */
uint64_t
itest_backend_connections(struct itest_proc *b)
{
	return itest_backend_stat(b, "connections");
}

/* True if every `k="v"` of want is in the label set [p, e). */
static bool
itest_labels_match(const char *p, const char *e, const char *want)
{
	const char *w = want, *comma;
	char item[256];
	size_t n;

	while (w != NULL && *w != '\0') {
		comma = strstr(w, "\",");
		n = comma != NULL ? (size_t)(comma - w) + 1 : strlen(w);
		if (n >= sizeof item)
			return false;
		memcpy(item, w, n);
		item[n] = '\0';
		if (memmem(p, (size_t)(e - p), item, n) == NULL)
			return false;
		w = comma != NULL ? comma + 2 : NULL;
	}
	return true;
}

/* Sum of the matching Prometheus samples. */
double
itest_metric(const char *text, const char *name, const char *labels)
{
	size_t nl = strlen(name);
	const char *line, *next, *p, *lb, *le;
	double sum = 0;
	bool found = false;

	for (line = text; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			next++;
		if (*line == '#' || strncmp(line, name, nl) != 0)
			continue;
		p = line + nl;
		lb = le = p;
		if (*p == '{') {
			lb = p + 1;
			le = strchr(lb, '}');
			if (le == NULL)
				continue;
			p = le + 1;
		} else if (*p != ' ')
			continue;
		if (labels != NULL && !itest_labels_match(lb, le, labels))
			continue;
		sum += strtod(p, NULL);
		found = true;
	}
	return found ? sum : -1;
}

/* sha256 hex. */
void
itest_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

/* Run a suite; 77 (skip) if it needs a gateway binary that is missing. */
int
itest_main(Suite *(*suite_fn)(void), bool needs_gateway)
{
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);
	if (needs_gateway && access(itest_gateway_path(), X_OK) == -1) {
		fprintf(stderr, "%s: %s\n", itest_gateway_path(),
		    strerror(errno));
		return 77;
	}
	sr = srunner_create(suite_fn());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Path of the fake agent. */
const char *
itest_agent_path(void)
{
	static char buf[4096];
	const char *p = getenv("TS_FAKE_AGENT");
	const char *root = getenv("TS_BUILD_ROOT");

	if (p != NULL && *p != '\0')
		return p;
	snprintf(buf, sizeof buf, "%s/tests/support/fake_agent",
	    root != NULL ? root : ".");
	return buf;
}

/* Start the fake agent on an ephemeral port. */
struct itest_proc *
itest_agent_start(const char *mode, const char *rates)
{
	const char *argv[9];
	const char *needle = "fake agent listening on http://127.0.0.1:";
	struct itest_proc *p;
	char *text;
	size_t n = 0;
	long off;

	p = itest_proc_new("fake_agent");
	argv[n++] = itest_agent_path();
	argv[n++] = "-p";
	argv[n++] = "0";
	argv[n++] = "-m";
	argv[n++] = mode != NULL ? mode : "normal";
	if (rates != NULL) {
		argv[n++] = "-r";
		argv[n++] = rates;
	}
	argv[n] = NULL;
	p->pid = itest_spawn(argv, p->out_fd, p->err_fd);
	off = itest_log_wait(p, ITEST_STDOUT, needle, 0, ITEST_TIMEOUT_MS);
	if (off < 0) {
		text = itest_log_read(p, ITEST_STDERR);
		ck_abort_msg("fake agent did not start: %s", text);
	}
	text = itest_log_read(p, ITEST_STDOUT);
	p->port = (uint16_t)strtoul(text + off, NULL, 10);
	free(text);
	p->ports[0] = p->port;
	p->n_ports = 1;
	return p;
}

/* Every recorded request (one JSON object per stdout line). */
json_t *
itest_agent_requests(struct itest_proc *p)
{
	json_t *all = json_array(), *j;
	char *text, *line, *save = NULL;

	text = itest_log_read(p, ITEST_STDOUT);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (line[0] != '{')
			continue;
		/* A line still being written fails to parse: skip it. */
		if ((j = json_loads(line, 0, NULL)) != NULL)
			json_array_append_new(all, j);
	}
	free(text);
	return all;
}

/* Spans in the recorded requests. */
size_t
itest_agent_span_count(json_t *requests)
{
	size_t i, j, k, n = 0;
	json_t *req, *body, *t, *rs, *ss;

	json_array_foreach(requests, i, req) {
		body = json_object_get(req, "body");
		if (json_is_array(body)) {
			json_array_foreach(body, j, t)
				n += json_array_size(t);
		} else if (json_is_object(body)) {
			json_array_foreach(json_object_get(body,
			    "resourceSpans"), j, rs)
				json_array_foreach(json_object_get(rs,
				    "scopeSpans"), k, ss)
					n += json_array_size(
					    json_object_get(ss, "spans"));
		}
	}
	return n;
}

/* Wait for n recorded spans. */
json_t *
itest_agent_wait_spans(struct itest_proc *p, size_t n, int timeout_ms)
{
	int64_t deadline = itest_now_ms() + timeout_ms;
	json_t *reqs;
	size_t have;

	for (;;) {
		reqs = itest_agent_requests(p);
		have = itest_agent_span_count(reqs);
		if (have >= n)
			return reqs;
		json_decref(reqs);
		if (itest_now_ms() >= deadline) {
			itest_fail_set("fake agent: %zu of %zu spans after "
			    "%d ms", have, n, timeout_ms);
			return NULL;
		}
		itest_tick();
	}
}

/* PUT a control request to the fake agent. */
int
itest_agent_control(struct itest_proc *p, const char *target,
    const char *body)
{
	struct itest_resp r;
	char *raw;
	int rv;

	raw = itest_strf("PUT %s HTTP/1.1\r\nHost: agent\r\nContent-Length: "
	    "%zu\r\nConnection: close\r\n\r\n%s", target, strlen(body), body);
	rv = itest_request(p->port, raw, strlen(raw), &r, 0,
	    ITEST_TIMEOUT_MS);
	free(raw);
	if (rv == 0 && r.status != 200) {
		itest_fail_set("fake agent control %s: status %d", target,
		    r.status);
		rv = -1;
	}
	itest_resp_clear(&r);
	return rv;
}

/* A uint64 as fake_agent writes it. */
uint64_t
itest_json_u64(const json_t *j)
{
	if (json_is_integer(j))
		return (uint64_t)json_integer_value(j);
	if (json_is_string(j))
		return strtoull(json_string_value(j), NULL, 10);
	return 0;
}

/*
 * Helpers added for the CORS, propagation and TLS suites.
 */

/* Start the gateway with extra environment variables. */
struct itest_proc *
itest_gateway_start_env(const char *yaml, const char *const *env)
{
	char *names[16], *olds[16];
	struct itest_proc *p;
	const char *eq, *old;
	size_t i, n = 0;

	for (i = 0; env != NULL && env[i] != NULL && n < 16; i++) {
		eq = strchr(env[i], '=');
		ck_assert_msg(eq != NULL, "environment entry %s has no =",
		    env[i]);
		names[n] = strndup(env[i], (size_t)(eq - env[i]));
		old = getenv(names[n]);
		olds[n] = old != NULL ? strdup(old) : NULL;
		setenv(names[n], eq + 1, 1);
		n++;
	}
	p = itest_gateway_start(yaml);
	for (i = 0; i < n; i++) {
		if (olds[i] != NULL)
			setenv(names[i], olds[i], 1);
		else
			unsetenv(names[i]);
		free(names[i]);
		free(olds[i]);
	}
	return p;
}

/* Length of a Content-Length body announced in head, or 0. */
static size_t
itest_head_content_length(const char *head)
{
	const char *q = head;

	while ((q = strchr(q, '\n')) != NULL) {
		q++;
		if (strncasecmp(q, "content-length:", 15) == 0)
			return (size_t)strtoull(q + 15, NULL, 10);
	}
	return 0;
}

/* The canned server's child: one connection at a time, then close. */
static void __attribute__((noreturn))
itest_canned_serve(int lfd, const char *response, SSL_CTX *ctx)
{
	struct timeval tv = { 5, 0 };
	char buf[65536], *end;
	size_t len, want;
	ssize_t n;
	SSL *ssl;
	int fd;

	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd == -1) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		ssl = NULL;
		if (ctx != NULL) {
			ssl = SSL_new(ctx);
			SSL_set_fd(ssl, fd);
			if (SSL_accept(ssl) != 1) {
				SSL_free(ssl);
				close(fd);
				continue;
			}
		}
		len = 0;
		end = NULL;
		want = 0;
		for (;;) {
			if (len == sizeof buf - 1)
				break;
			n = ssl != NULL ? SSL_read(ssl, buf + len,
			    (int)(sizeof buf - 1 - len)) :
			    recv(fd, buf + len, sizeof buf - 1 - len, 0);
			if (n <= 0)
				break;
			len += (size_t)n;
			buf[len] = '\0';
			if (end == NULL && (end = strstr(buf, "\r\n\r\n")) !=
			    NULL)
				want = (size_t)(end - buf) + 4 +
				    itest_head_content_length(buf);
			if (end != NULL && len >= want)
				break;
		}
		if (end != NULL) {
			if (ssl != NULL)
				(void)SSL_write(ssl, response,
				    (int)strlen(response));
			else
				(void)send(fd, response, strlen(response),
				    MSG_NOSIGNAL);
		}
		if (ssl != NULL) {
			(void)SSL_shutdown(ssl);
			SSL_free(ssl);
		}
		close(fd);
	}
}

/* Start a canned upstream (TLS with cert and key). */
struct itest_proc *
itest_canned_start(const char *response, const char *cert, const char *key)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	struct itest_proc *p;
	SSL_CTX *ctx = NULL;
	pid_t parent = getpid(), pid;
	int lfd, one = 1;

	if (cert != NULL) {
		ctx = SSL_CTX_new(TLS_server_method());
		if (ctx == NULL ||
		    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM)
		    != 1)
			ck_abort_msg("canned TLS server: cannot load %s / %s",
			    cert, key);
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(lfd, -1);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(lfd, 64) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &slen) == -1)
		ck_abort_msg("canned server: %s", strerror(errno));
	p = itest_proc_new(ctx != NULL ? "canned-tls" : "canned");
	pid = fork();
	if (pid == -1)
		ck_abort_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_IGN);
		itest_canned_serve(lfd, response, ctx);
	}
	close(lfd);
	SSL_CTX_free(ctx);
	p->pid = pid;
	p->port = ntohs(sin.sin_port);
	p->ports[0] = p->port;
	p->n_ports = 1;
	return p;
}

/* Parse a complete response held in memory. */
int
itest_resp_parse(const char *raw, size_t len, struct itest_resp *r)
{
	const char *end, *body, *te, *cl, *p, *e;
	size_t blen, size;
	char *stop;

	memset(r, 0, sizeof *r);
	end = memmem(raw, len, "\r\n\r\n", 4);
	if (end == NULL) {
		itest_fail_set("no complete response head in %zu bytes", len);
		return -1;
	}
	if (itest_parse_head(r, raw, (size_t)(end - raw) + 4) == -1)
		return -1;
	body = end + 4;
	blen = len - (size_t)(body - raw);
	te = itest_resp_header(r, "Transfer-Encoding");
	cl = itest_resp_header(r, "Content-Length");
	r->body = malloc(blen + 1);
	if (te != NULL) {
		r->chunked = true;
		for (p = body, e = body + blen; p < e;) {
			size = strtoull(p, &stop, 16);
			p = memmem(p, (size_t)(e - p), "\r\n", 2);
			if (p == NULL || (size_t)(e - p) < size + 2) {
				itest_fail_set("truncated chunked body");
				return -1;
			}
			p += 2;
			if (size == 0)
				break;
			memcpy(r->body + r->body_len, p, size);
			r->body_len += size;
			p += size + 2;
		}
	} else if (cl != NULL) {
		size = (size_t)strtoull(cl, NULL, 10);
		if (size > blen) {
			itest_fail_set("body: %zu of %zu bytes", blen, size);
			return -1;
		}
		memcpy(r->body, body, size);
		r->body_len = size;
	} else {
		memcpy(r->body, body, blen);
		r->body_len = blen;
		r->closed = true;
	}
	r->body[r->body_len] = '\0';
	return 0;
}

/* JSON object lines of a stream having member key. */
json_t *
itest_json_lines(struct itest_proc *p, enum itest_stream s, const char *key)
{
	json_t *arr = json_array(), *j;
	char *text, *line, *nl;

	text = itest_log_read(p, s);
	for (line = text; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl == NULL)
			break;	/* a line still being written */
		if (*line != '{')
			continue;
		j = json_loadb(line, (size_t)(nl - line), 0, NULL);
		if (j != NULL && json_object_get(j, key) != NULL)
			json_array_append(arr, j);
		json_decref(j);
	}
	free(text);
	return arr;
}

/* Wait for a JSON line with key whose field equals value. */
json_t *
itest_json_line_wait(struct itest_proc *p, enum itest_stream s,
    const char *key, const char *field, const char *value, int timeout_ms)
{
	int64_t deadline = itest_now_ms() + timeout_ms;
	json_t *arr, *j, *hit;
	const char *v;
	size_t i;

	for (;;) {
		hit = NULL;
		arr = itest_json_lines(p, s, key);
		json_array_foreach(arr, i, j) {
			v = json_string_value(json_object_get(j, field));
			if (v != NULL && strcmp(v, value) == 0) {
				hit = json_incref(j);
				break;
			}
		}
		json_decref(arr);
		if (hit != NULL || itest_now_ms() >= deadline)
			return hit;
		itest_tick();
	}
}

/*
 * One request over TLS to 127.0.0.1:port, verified against ca_file with
 * SNI and host name "localhost"; the answer is read until the server
 * closes (send "Connection: close").  0, or -1 (see itest_error()).
 */
int
itest_tls_request(uint16_t port, const char *ca_file, const char *raw,
    size_t len, struct itest_resp *r)
{
	struct timeval tv = { ITEST_TIMEOUT_MS / 1000, 0 };
	SSL_CTX *ctx;
	SSL *ssl = NULL;
	char *buf = NULL;
	size_t blen = 0, cap = 0;
	int fd = -1, n, rv = -1;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		ck_abort_msg("SSL_CTX_new failed");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
		ck_abort_msg("cannot load the CA file %s", ca_file);
	if ((fd = itest_connect_fd(port)) == -1) {
		itest_fail_set("connect to %u: %s", (unsigned)port,
		    strerror(errno));
		goto out;
	}
	/* A blocking socket with deadlines: SSL_connect/read simply wait. */
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	SSL_set1_host(ssl, "localhost");
	if (SSL_connect(ssl) != 1 || SSL_get_verify_result(ssl) != X509_V_OK) {
		itest_fail_set("TLS handshake with port %u failed (verify "
		    "%ld)", (unsigned)port, SSL_get_verify_result(ssl));
		ERR_clear_error();
		goto out;
	}
	if (SSL_write(ssl, raw, (int)len) != (int)len) {
		itest_fail_set("TLS write failed");
		goto out;
	}
	for (;;) {
		if (cap - blen < 4096) {
			cap = cap == 0 ? 65536 : cap * 2;
			if ((buf = realloc(buf, cap)) == NULL)
				ck_abort_msg("out of memory");
		}
		if ((n = SSL_read(ssl, buf + blen, (int)(cap - blen))) <= 0)
			break;
		blen += (size_t)n;
	}
	ERR_clear_error();
	rv = itest_resp_parse(buf != NULL ? buf : "", blen, r);
out:
	if (ssl != NULL)
		SSL_free(ssl);
	if (fd != -1)
		close(fd);
	SSL_CTX_free(ctx);
	free(buf);
	return rv;
}

/* Path of the fake DNS server ($TS_FAKE_DNS, else the build tree's). */
const char *
itest_dns_path(void)
{
	static char buf[4096];
	const char *p = getenv("TS_FAKE_DNS");
	const char *root = getenv("TS_BUILD_ROOT");

	if (p != NULL && *p != '\0')
		return p;
	snprintf(buf, sizeof buf, "%s/tests/support/fake_dns",
	    root != NULL ? root : ".");
	return buf;
}

/* Start the fake DNS server on 127.0.0.1 (UDP), answering from map. */
struct itest_proc *
itest_dns_start(const char *map)
{
	const char *argv[4];
	const char *needle = "fake dns listening on udp 127.0.0.1:";
	struct itest_proc *p;
	char *text;
	long off;

	p = itest_proc_new("fake_dns");
	argv[0] = itest_dns_path();
	argv[1] = "-f";
	argv[2] = map;
	argv[3] = NULL;
	p->pid = itest_spawn(argv, p->out_fd, p->err_fd);
	off = itest_log_wait(p, ITEST_STDOUT, needle, 0, ITEST_TIMEOUT_MS);
	if (off < 0) {
		text = itest_log_read(p, ITEST_STDERR);
		ck_abort_msg("fake dns did not start: %s", text);
	}
	text = itest_log_read(p, ITEST_STDOUT);
	p->port = (uint16_t)strtoul(text + off, NULL, 10);
	free(text);
	p->ports[0] = p->port;
	p->n_ports = 1;
	return p;
}
