/*
 * export_int.h -- what the exporter core shares with its backends
 * (export_datadog.c, export_otlp.c, export_stdout.c) and the small
 * HTTP/1.1 client they use (export_http.c).  Not for other modules.
 */
#ifndef TS_EXPORT_INT_H
#define TS_EXPORT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <msgpack.h>

#include "common.h"

struct evbuffer;

/* One drained record: a msgpack v0.4 span map. */
struct export_rec {
	const char	*data;
	size_t		 len;
};

/*
 * A batch of records owned by the exporter core.  They lie back to back
 * in one buffer that starts with EXPORT_BATCH_RESERVE spare bytes, each
 * record after one spare byte (export_datadog_frame writes there).
 */
#define EXPORT_BATCH_RESERVE	5
struct export_batch {
	struct export_rec	*recs;
	size_t			 n;
};

/* Process-wide facts a backend puts into its payload. */
struct export_proc {
	const char	*service;
	const char	*env;		/* "" unset */
	const char	*version;	/* "" unset */
	const char	*runtime_id;
	const char	*container_id;	/* NULL unknown */
	int		 pid;
};

/* Result of a backend's HTTP exchange, reported to the core. */
enum export_result {
	EXPORT_OK = 0,		/* accepted */
	EXPORT_RETRY,		/* transient: connect, timeout, 5xx, garbage */
	EXPORT_FAIL,		/* permanent: 4xx, payload refused */
};

/* Parsed target: http(s)://host:port/path or unix:///path. */
struct export_url {
	bool	 unix_socket;
	bool	 tls;		/* https */
	char	*host;		/* or the socket path */
	char	*port;
	char	*path;		/* request target, starts with '/' */
	char	*host_header;
};

int export_url_parse(const char *url, const char *default_path,
    struct export_url *, char **cause) TS_MUSTCHECK;
void export_url_clear(struct export_url *);

/* Response of one exchange. */
struct export_http_resp {
	int		 status;	/* 0: no valid response */
	char		*body;		/* NUL-terminated, may be NULL */
	size_t		 body_len;
	char		*error;		/* why status is 0 */
};

/* Called once when the exchange ends (resp freed after the call). */
typedef void (*export_http_cb)(const struct export_http_resp *, void *arg);

struct export_http;
struct export_client;
struct config_kv;

/* How a client talks to its target. */
struct export_client_opts {
	const struct config_kv	*headers;	/* extra header lines */
	size_t			 n_headers;
	bool			 gzip;		/* Content-Encoding: gzip */
	const char		*ca_file;	/* https: NULL system store */
};

/*
 * The client of one target (u, kept by reference): it keeps one
 * keep-alive connection, reused from exchange to exchange and opened
 * again when the peer closed it; https verifies the peer against
 * o->ca_file or the system store (proto/tls.c).  NULL + *cause when the
 * TLS context cannot be made (a CA file that does not load).
 */
struct export_client *export_client_new(struct event_base *,
    const struct export_url *u, const struct export_client_opts *o,
    char **cause);
/* What export_client_new would refuse (the https CA file); 0 or -1. */
int export_client_check(const struct export_url *, const char *ca_file,
    char **cause) TS_MUSTCHECK;
/* Close the connection, free the client (NULL-safe); no exchange may run. */
void export_client_free(struct export_client *);
/* Connections the client opened so far. */
uint64_t export_client_connects(const struct export_client *);

/*
 * Start one request on the client's connection (a new one when it has
 * none); headers holds extra header lines ("Name: value\r\n" ...) before
 * the configured ones.  body is sent by reference (unless gzipped): it
 * must stay unchanged until the callback has run or the exchange is
 * cancelled.  The callback runs exactly once, later, from the loop.  A
 * kept connection that turns out closed before any byte of the answer
 * (the peer's idle close crossed the request) is replaced once, within
 * the same exchange.  NULL only if c is NULL or busy.
 */
struct export_http *export_http_start(struct export_client *,
    const char *method, const char *headers, const char *body,
    size_t body_len, uint64_t timeout_ms, export_http_cb, void *arg);
/* Abort an exchange without calling back (NULL-safe). */
void export_http_cancel(struct export_http *);
/*
 * Between two pieces of the body (64 KiB each), give the core away with
 * export_give_way() (the exporter thread: issue 11's tail); default off.
 */
void export_http_set_yield(struct export_http *, bool);
/* Sleep a few tens of microseconds: the core is the workers' meanwhile. */
void export_give_way(void);

/*
 * Parse a whole or partial HTTP/1.1 response in buf.  1: complete (resp
 * filled, caller frees with export_http_resp_clear), 0: need more, -1:
 * malformed (resp->error set).  eof: the peer closed.
 */
int export_http_parse(const char *buf, size_t len, bool eof,
    struct export_http_resp *);
void export_http_resp_clear(struct export_http_resp *);

/* Decoding a record: unpack into zone; -1 when it is not a map. */
int export_rec_unpack(const struct export_rec *, msgpack_zone *,
    msgpack_object *);
/* Value of key in a msgpack map, or NULL. */
const msgpack_object *export_map_get(const msgpack_object *,
    const char *key);
/* A str object as a NUL-terminated copy in buf (truncated); "" if not str. */
const char *export_obj_str(const msgpack_object *, char *buf, size_t cap);
/* Unsigned integer value (0 if not an integer). */
uint64_t export_obj_u64(const msgpack_object *);
/* High 64 bits of the trace id (meta _dd.p.tid), 0 when absent. */
uint64_t export_rec_tid_high(const msgpack_object *span);
/* Sampling priority of a record; true when present. */
bool export_rec_priority(const msgpack_object *, double *);

/*
 * The Datadog backend: frame the batch in its own buffer buf (laid out as
 * struct export_batch says) into the /v0.4/traces payload; returns its
 * start inside buf and *len.
 */
const char *export_datadog_frame(char *buf, const struct export_batch *,
    size_t *len);
char *export_datadog_headers(size_t ntraces, const struct export_proc *);

/*
 * The OTLP backend: the ExportTraceServiceRequest of the sampled records
 * in http/protobuf (protobuf true) or http/json, *len bytes (caller
 * frees); counts sent and unsampled.
 */
char *export_otlp_body(const struct export_batch *, const struct export_proc *,
    bool protobuf, size_t *len, size_t *n_sent, size_t *n_unsampled);
/*
 * The partial_success of a collector's 2xx answer (in the request's
 * encoding): true with the rejected span count and the message when it
 * reports one.
 */
bool export_otlp_partial(const char *body, size_t len, bool protobuf,
    int64_t *rejected, char *msg, size_t cap);

/* The stdout backend: one JSON line per record on fd; spans written. */
size_t export_stdout_write(int fd, const struct export_batch *);
/* One record as a JSON object line (no newline); caller frees. */
char *export_stdout_line(const struct export_rec *);

#endif /* TS_EXPORT_INT_H */
