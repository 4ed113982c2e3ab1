/*
 * itest.h -- helpers for the integration suites: run the real gateway
 * binary and the fake backend as child processes, talk raw HTTP/1.1 to
 * them, and read their logs, metrics and memory use.
 *
 * Every process started here is registered; itest_cleanup_all() (used as
 * the teardown fixture and run at exit) stops each one by its PID
 * (SIGTERM, waitpid with a deadline, SIGKILL fallback), and each child also
 * gets PR_SET_PDEATHSIG so nothing outlives a test killed by a timeout.
 * Children write stdout and stderr to temporary files under $TMPDIR, so
 * they never block on a full pipe; tests poll those files with deadlines.
 *
 * Helpers that cannot go on (a process that does not start, a socket that
 * cannot connect) fail the current test with ck_abort_msg; helpers whose
 * failure is a legitimate test outcome return -1 and leave a description
 * in itest_error().
 */
#ifndef TS_ITEST_H
#define TS_ITEST_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <check.h>
#include <jansson.h>

#define ITEST_MAX_PORTS		8
#define ITEST_NITEMS(a)		(sizeof (a) / sizeof (a)[0])
/* A string literal and its length, for itest_send and itest_request. */
#define ITEST_LIT(s)		(s), (sizeof (s) - 1)
#define ITEST_TIMEOUT_MS	10000	/* default deadline for one step */

enum itest_stream {
	ITEST_STDOUT = 1,
	ITEST_STDERR = 2,
};

struct itest_proc {
	pid_t pid;
	bool reaped;
	int status;		/* waitpid status once reaped */
	char *name;
	int out_fd;		/* captured stdout (unlinked temp file) */
	int err_fd;		/* captured stderr (unlinked temp file) */
	char *cfg_path;		/* gateway: its config file, else NULL */
	uint16_t port;		/* first listen port (backend: its port) */
	uint16_t ports[ITEST_MAX_PORTS];
	size_t n_ports;
	uint16_t admin_port;	/* gateway admin listener, 0 if none */
	bool https;		/* gateway said https:// */
};

struct itest_header {
	char *name;
	char *value;
};

struct itest_resp {
	char *head;		/* raw status line + headers (final CRLF CRLF) */
	int status;
	char *version;
	char *reason;
	struct itest_header *hdrs;
	size_t n_hdrs;
	char *body;		/* NUL-terminated; NULL when streamed */
	size_t body_len;
	bool chunked;
	bool closed;		/* the peer closed the connection at the end */
};

struct itest_conn {
	int fd;
	char *buf;
	size_t off, len, cap;	/* unread bytes are buf[off..len) */
	bool eof;
};

/* Flags of itest_read_response. */
#define ITEST_HEAD_REQUEST	0x1	/* the request was HEAD: no body */

/* Body consumer for streamed reads; return 0 to go on, -1 to abort. */
typedef int (*itest_body_fn)(const char *data, size_t len, void *arg);

/* Description of the last failure of a returning helper. */
const char *itest_error(void);

/* Path of the gateway binary and of the fake backend. */
const char *itest_gateway_path(void);
const char *itest_backend_path(void);

/* printf into a new string (aborts on failure); caller frees. */
char *itest_strf(const char *, ...) __attribute__((format(printf, 1, 2)));
/* Write content to a new temp file (registered for removal). */
char *itest_write_temp(const char *content, const char *suffix);
/* Replace a file's content atomically (write + rename). */
void itest_rewrite(const char *path, const char *content);

/* Start the fake backend; waits until it listens. */
struct itest_proc *itest_backend_start(const char *name);
/* Same, closing keep-alive connections idle for idle_ms (fake_backend -i). */
struct itest_proc *itest_backend_start_idle(const char *name,
    unsigned idle_ms);
/*
 * Same on a loopback address ("127.0.0.1", or "127.0.0.2" to give a DNS
 * name two addresses on one port) and port (0: any; the port a stopped
 * backend had, to start it again).
 */
struct itest_proc *itest_backend_start_at(const char *name,
    const char *addr, uint16_t port, unsigned idle_ms);
/*
 * Start the gateway with this YAML; waits (deadline) for "ready" and
 * parses the listen and admin ports.  Fails the test if it does not come
 * up, showing its stderr.
 */
struct itest_proc *itest_gateway_start(const char *yaml);
/* Same with an already written config file. */
struct itest_proc *itest_gateway_start_file(const char *path);
/*
 * A ready-made config: one route "api" to 127.0.0.1:backend_port.
 * server_extra lines go under server: (indent 2), upstream_extra under
 * routes[0].upstream: (indent 6); either may be NULL.
 */
char *itest_config_simple(uint16_t backend_port, const char *server_extra,
    const char *upstream_extra);

/*
 * Run the gateway with args to completion (deadline timeout_ms); stdout
 * and stderr are returned (caller frees).  Returns the exit status, or -1
 * if it was killed or did not finish.
 */
int itest_gateway_run(const char *const *args, char **out, char **err,
    int timeout_ms);

/* Send a signal to a still-running process. */
void itest_proc_signal(struct itest_proc *, int sig);
/* Wait for exit; returns the waitpid status or -1 on timeout. */
int itest_proc_wait(struct itest_proc *, int timeout_ms);
/* Signal and wait; SIGKILL after the deadline.  Returns waitpid status. */
int itest_proc_stop(struct itest_proc *, int sig, int timeout_ms);
/* Stop if running, remove its files, free it. */
void itest_proc_free(struct itest_proc *);
/* Stop and free every process and temp file this test created. */
void itest_cleanup_all(void);
/*
 * Teardown fixture: itest_cleanup_all(), then fail the test if a stopped
 * gateway printed a sanitizer report (ASan/UBSan/LSan builds).
 */
void itest_teardown(void);

/* Size of a captured stream / all of it (caller frees). */
size_t itest_log_size(struct itest_proc *, enum itest_stream);
char *itest_log_read(struct itest_proc *, enum itest_stream);
/*
 * Wait until needle appears in the stream at or after offset from.
 * Returns the offset just past the match, or -1 on timeout.
 */
long itest_log_wait(struct itest_proc *, enum itest_stream, const char *needle,
    size_t from, int timeout_ms);
/* Occurrences of needle in the stream from offset from. */
size_t itest_log_count(struct itest_proc *, enum itest_stream,
    const char *needle, size_t from);

/* VmRSS of a process in KiB, or -1. */
long itest_rss_kb(pid_t);

/* Connect to 127.0.0.1:port; -1 with errno on failure. */
int itest_connect_fd(uint16_t port);
/* Connect or fail the test. */
struct itest_conn *itest_connect(uint16_t port);
void itest_conn_free(struct itest_conn *);
/* Send all bytes before the deadline; -1 on error (EPIPE, reset...). */
int itest_send(struct itest_conn *, const void *, size_t, int timeout_ms);
int itest_sendf(struct itest_conn *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
/* True if readable data or EOF is waiting within timeout_ms. */
bool itest_readable(struct itest_conn *, int timeout_ms);
/* Wait for the peer to close (EOF or reset); data read meanwhile kept. */
bool itest_wait_closed(struct itest_conn *, int timeout_ms);

/*
 * Read one response (1xx skipped): head, then the body as framed by
 * Content-Length, chunked or close.  With body_fn the body is handed over
 * in pieces and not stored.  Returns 0 or -1 (see itest_error()).
 */
int itest_read_response(struct itest_conn *, struct itest_resp *, int flags,
    int timeout_ms);
int itest_read_response_cb(struct itest_conn *, struct itest_resp *,
    int flags, int timeout_ms, itest_body_fn body_fn, void *arg);
void itest_resp_clear(struct itest_resp *);
/* First value of header name (case-insensitive), or NULL. */
const char *itest_resp_header(const struct itest_resp *, const char *name);
size_t itest_resp_count(const struct itest_resp *, const char *name);
/* Parse the body as JSON or fail the test. */
json_t *itest_resp_json(const struct itest_resp *);
/*
 * The value of the nth (0-based) header called name (any case) that the
 * fake backend's echo says it received, or NULL.
 */
const char *itest_echo_header(json_t *echo, const char *name, size_t nth);

/*
 * Assert a gateway-generated error: status, Content-Type application/json
 * and a body {"error": code, "message": "...", "request_id": "..."}.
 */
void itest_assert_error(const struct itest_resp *, int status,
    const char *code);

/* One-shot: connect, send raw, read one response, close.  0 or -1. */
int itest_request(uint16_t port, const char *raw, size_t len,
    struct itest_resp *, int flags, int timeout_ms);
/* One-shot GET path with Host: itest.test and Connection: close. */
int itest_get(uint16_t port, const char *path, struct itest_resp *);

/* The fake backend's /stats counters (asked directly). */
uint64_t itest_backend_stat(struct itest_proc *, const char *key);
uint64_t itest_backend_requests(struct itest_proc *);
uint64_t itest_backend_connections(struct itest_proc *);

/*
 * Sum of the Prometheus samples of metric name whose labels include all
 * of labels, given as `k="v",k2="v2"` (any order; NULL matches every
 * sample).  Returns -1 if no sample matches.
 */
double itest_metric(const char *text, const char *name, const char *labels);

/* sha256 of a buffer as lower-case hex (65 bytes). */
void itest_sha256_hex(const void *, size_t, char out[65]);
/* Monotonic milliseconds. */
int64_t itest_now_ms(void);

/*
 * The one-line main of each suite (the integration tests do not link the
 * gateway library, so there is no log hook as in ts_test.h).  Exit 77
 * (skip) when the gateway binary is missing and the suite needs it.
 */
int itest_main(Suite *(*suite_fn)(void), bool needs_gateway);
#define ITEST_MAIN(suite_fn, needs_gateway)				\
	int								\
	main(void)							\
	{								\
		return itest_main(suite_fn, needs_gateway);		\
	}

/*
 * The fake Datadog Agent / OTLP collector (tests/support/fake_agent):
 * one JSON line per request on its stdout, see fake_agent.c.
 */

/* Path of the fake agent ($TS_FAKE_AGENT, else the build tree's). */
const char *itest_agent_path(void);
/*
 * Start it on 127.0.0.1:0 with mode ("normal", "500", "garbage",
 * "stall", "slow") and the 200 answer body rates (NULL: its default);
 * waits until it listens.
 */
struct itest_proc *itest_agent_start(const char *mode, const char *rates);
/* Every request it recorded so far, as a JSON array (caller decrefs). */
json_t *itest_agent_requests(struct itest_proc *);
/* Spans in recorded requests: v0.4 traces, or OTLP resourceSpans. */
size_t itest_agent_span_count(json_t *requests);
/*
 * Wait until at least n spans were recorded; the requests (caller
 * decrefs), or NULL on timeout (see itest_error()).
 */
json_t *itest_agent_wait_spans(struct itest_proc *, size_t n,
    int timeout_ms);
/* PUT target (e.g. /control/answer) with body to the agent; 0 or -1. */
int itest_agent_control(struct itest_proc *, const char *target,
    const char *body);
/*
 * A decoded uint64: a JSON integer, or the decimal string fake_agent
 * writes for values above INT64_MAX.  0 for anything else.
 */
uint64_t itest_json_u64(const json_t *);

/*
 * Helpers added for the CORS, propagation and TLS suites.
 */

/* Start the gateway with this YAML and extra "NAME=value" environment. */
struct itest_proc *itest_gateway_start_env(const char *yaml,
    const char *const *env);

/*
 * A canned upstream: a child process answering every request (head read
 * up to CRLF CRLF, a Content-Length body drained) with exactly response,
 * then closing the connection.  With cert and key it speaks TLS.  Its
 * port is in ->port; it is registered and stopped by PID like the rest.
 */
struct itest_proc *itest_canned_start(const char *response,
    const char *cert, const char *key);

/*
 * Parse a complete response (head, then a Content-Length body or the
 * rest) held in raw.  0 or -1 (see itest_error()).
 */
int itest_resp_parse(const char *raw, size_t len, struct itest_resp *);

/*
 * Every JSON object line of the stream that has member key (e.g.
 * "span_id" for stdout-exporter spans, "request_id" for access-log lines)
 * as a new array (caller decrefs).
 */
json_t *itest_json_lines(struct itest_proc *, enum itest_stream,
    const char *key);
/*
 * Wait until a line with member key has member field equal to value;
 * returns a new reference to it, or NULL on timeout.
 */
json_t *itest_json_line_wait(struct itest_proc *, enum itest_stream,
    const char *key, const char *field, const char *value, int timeout_ms);

/*
 * One request over TLS to 127.0.0.1:port, verified against ca_file (SNI
 * and name "localhost"), read until the server closes: send
 * "Connection: close".  0 or -1 (see itest_error()).
 */
int itest_tls_request(uint16_t port, const char *ca_file, const char *raw,
    size_t len, struct itest_resp *);

/*
 * The fake DNS server (tests/support/fake_dns, $TS_FAKE_DNS): A records
 * from the map file ("NAME IP [IP...]", "NAME SERVFAIL"), read again for
 * every query.  Its UDP port is in ->port.
 */
const char *itest_dns_path(void);
struct itest_proc *itest_dns_start(const char *map);

#endif /* TS_ITEST_H */
