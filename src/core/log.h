/*
 * log.h -- the error log (stderr, one line per message) and the access log
 * (one JSON object per line, to stdout, stderr or a file).
 *
 * Shape follows relayd/tmux log.c: log_warn appends strerror(errno),
 * log_warnx does not; fatal/fatalx are for startup and broken invariants.
 * A hook lets tests see (and fail on) unexpected warnings.  All functions
 * are thread-safe: each message is written with a single write(2).
 */
#ifndef TS_LOG_H
#define TS_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "common.h"

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* Called for every message at or above the current level (tests). */
typedef void (*log_hook_fn)(enum log_level, const char *msg, void *arg);

void log_init(enum log_level level, const char *progname);
void log_set_level(enum log_level);
enum log_level log_get_level(void);
void log_set_hook(log_hook_fn, void *);
/* Parse "error|warn|info|debug"; -1 if unknown. */
int log_level_parse(const char *);

void log_warn(const char *, ...) TS_PRINTFLIKE(1, 2);
void log_warnx(const char *, ...) TS_PRINTFLIKE(1, 2);
void log_info(const char *, ...) TS_PRINTFLIKE(1, 2);
void log_debug(const char *, ...) TS_PRINTFLIKE(1, 2);
void log_vmsg(enum log_level, const char *, va_list) TS_PRINTFLIKE(2, 0);
void fatal(const char *, ...) TS_PRINTFLIKE(1, 2) TS_NORETURN;
void fatalx(const char *, ...) TS_PRINTFLIKE(1, 2) TS_NORETURN;

/*
 * Access log: "stdout", "stderr", "off" or a file path (opened for
 * append).  Returns 0, or -1 with *cause set (caller frees).
 */
int log_access_open(const char *where, char **cause) TS_MUSTCHECK;
/*
 * What log_access_open would say, without opening for good or creating
 * anything (tracestitch -n): an existing file is opened for append and
 * closed, a missing one needs a writable directory.  Same messages.
 */
int log_access_check(const char *where, char **cause) TS_MUSTCHECK;
/*
 * Reopen the access log file at its path (SIGUSR1, after logrotate has
 * renamed it): 0, or -1 with *cause and the old file kept.  Nothing to do
 * for stdout, stderr or off.
 */
int log_access_reopen(char **cause) TS_MUSTCHECK;
/* Write one complete line (the caller includes the trailing newline). */
void log_access_write(const char *line, size_t len);
/* True when access logging is enabled. */
int log_access_enabled(void);

#endif /* TS_LOG_H */
