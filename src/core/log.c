/*
 * log.c -- error log and access log.
 *
 * Error messages go to stderr as "time level: message", one write(2) each
 * so lines from several worker threads never interleave.  The access log
 * is a file descriptor that receives complete lines built by the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/*
 * The level is set by the main thread (start, SIGHUP reload) while worker
 * threads read it on every message: an atomic int, so the read is never
 * torn and not a data race (C11 5.1.2.4).  Relaxed order is enough: no
 * other data is published with it, and a worker seeing the new level one
 * message late is fine.
 */
static int log_level = LOG_LEVEL_INFO;
static const char *log_progname = "tracestitch";
static log_hook_fn log_hook;
static void *log_hook_arg;
static int log_access_fd = STDOUT_FILENO;

static const char *const log_level_names[] = {
	"error", "warn", "info", "debug",
};


/* Set the level and the program name printed on each line. */
void
log_init(enum log_level level, const char *progname)
{
	__atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
	if (progname != NULL)
		log_progname = progname;
}

void
log_set_level(enum log_level level)
{
	__atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void
log_set_hook(log_hook_fn fn, void *arg)
{
	log_hook = fn;
	log_hook_arg = arg;
}

int
log_level_parse(const char *s)
{
	size_t i;

	for (i = 0; i < TS_NITEMS(log_level_names); i++) {
		if (strcmp(s, log_level_names[i]) == 0)
			return (int)i;
	}
	if (strcmp(s, "warning") == 0)
		return LOG_LEVEL_WARN;
	return -1;
}

/* Format and write one line; the hook sees the bare message. */
void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char msg[4096], line[4200], ts[32];
	struct timespec now;
	struct tm tm;
	int n;

	if ((int)level > __atomic_load_n(&log_level, __ATOMIC_RELAXED))
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (log_hook != NULL) {
		log_hook(level, msg, log_hook_arg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof line, "%s.%03ldZ %s %s: %s\n", ts,
	    now.tv_nsec / 1000000, log_progname, log_level_names[level], msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line) {
		n = sizeof line - 1;
		line[n - 1] = '\n';
	}
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

/* Write msg as one line at level (used by the printf-style front ends). */
static void
log_plain(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

/* Format, then append ": strerror(errno)". */
static void
log_with_errno(enum log_level level, const char *fmt, va_list ap)
{
	char buf[3800];
	int saved = errno;

	vsnprintf(buf, sizeof buf, fmt, ap);
	log_plain(level, "%s: %s", buf, strerror(saved));
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_with_errno(LOG_LEVEL_WARN, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_WARN, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (__atomic_load_n(&log_level, __ATOMIC_RELAXED) < LOG_LEVEL_DEBUG)
		return;
	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_DEBUG, fmt, ap);
	va_end(ap);
}

/* Log with strerror(errno) and exit(1): startup only. */
void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_with_errno(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

/* Log and exit(1): startup only. */
void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

/* The message of an access log that cannot be opened. */
static void
log_access_fail(const char *where, int err, char **cause)
{
	xasprintf(cause, "cannot open \"%s\" for appending: %s", where,
	    strerror(err));
}

/* Check the access log without creating it (log.h). */
int
log_access_check(const char *where, char **cause)
{
	char *dir, *slash;
	int fd, err;

	if (where == NULL || strcmp(where, "stdout") == 0 ||
	    strcmp(where, "stderr") == 0 || strcmp(where, "off") == 0)
		return 0;
	/* O_NONBLOCK: a FIFO without a reader must not hang the check. */
	fd = open(where, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK);
	if (fd != -1) {
		close(fd);
		return 0;
	}
	if (errno != ENOENT) {
		log_access_fail(where, errno, cause);
		return -1;
	}
	/* Missing: its directory must exist and let us create it. */
	dir = xstrdup(where);
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	err = access(dir, W_OK | X_OK) == 0 ? 0 : errno;
	free(dir);
	if (err != 0) {
		log_access_fail(where, err, cause);
		return -1;
	}
	return 0;
}

/*
 * The access log's descriptor changes under the workers (SIGHUP with a
 * new path, SIGUSR1): they load log_access_fd on every line, so a number
 * they loaded must never name another file or a socket afterwards.  A
 * file replacing a file is dup2(2)'d onto the same number (atomic: a line
 * goes wholly to the old or the new file); a file that is left for
 * stdout, stderr or off gets /dev/null dup2'd onto it and stays open, so
 * that the number is not reused by accept().  One descriptor per such
 * change is the price.
 */
static char *log_access_path;		/* the file, NULL: stdout/stderr/off */

/* Retire fd (a file of ours no longer written): see above. */
static void
log_access_retire(int fd)
{
	int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (nul != -1) {
		(void)dup2(nul, fd);
		close(nul);
	}
}

int
log_access_open(const char *where, char **cause)
{
	int fd, old = __atomic_load_n(&log_access_fd, __ATOMIC_RELAXED);

	if (where == NULL || strcmp(where, "stdout") == 0)
		fd = STDOUT_FILENO;
	else if (strcmp(where, "stderr") == 0)
		fd = STDERR_FILENO;
	else if (strcmp(where, "off") == 0)
		fd = -1;
	else {
		fd = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0640);
		if (fd == -1) {
			log_access_fail(where, errno, cause);
			return -1;
		}
		if (old > STDERR_FILENO) {
			/* File for file: same number, new file. */
			if (dup2(fd, old) == -1) {
				log_access_fail(where, errno, cause);
				close(fd);
				return -1;
			}
			close(fd);
			fd = old;
		}
	}
	__atomic_store_n(&log_access_fd, fd, __ATOMIC_RELEASE);
	if (old > STDERR_FILENO && fd != old)
		log_access_retire(old);
	free(log_access_path);
	log_access_path = fd > STDERR_FILENO ? xstrdup(where) : NULL;
	return 0;
}

/* SIGUSR1 (log.h): the same path again, for logrotate. */
int
log_access_reopen(char **cause)
{
	char *path;
	int rc;

	if (log_access_path == NULL)
		return 0;
	path = xstrdup(log_access_path);
	rc = log_access_open(path, cause);
	free(path);
	return rc;
}

void
log_access_write(const char *line, size_t len)
{
	int fd = __atomic_load_n(&log_access_fd, __ATOMIC_ACQUIRE);

	if (fd >= 0)
		(void)!write(fd, line, len);
}

int
log_access_enabled(void)
{
	return __atomic_load_n(&log_access_fd, __ATOMIC_RELAXED) >= 0;
}
