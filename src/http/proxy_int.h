/*
 * proxy_int.h -- what proxy.c and proxy_trace.c share: the per-request
 * struct, the header-capture struct and the small head buffer.  Not for
 * other modules (they use proxy.h).
 */
#ifndef TS_PROXY_INT_H
#define TS_PROXY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "conn.h"
#include "cors.h"
#include "server.h"
#include "upstream.h"

enum proxy_state {
	PROXY_ST_RECV = 0,	/* request received, building */
	PROXY_ST_UPSTREAM,	/* waiting for the response head */
	PROXY_ST_RELAY,		/* streaming the response body */
	PROXY_ST_DONE,		/* reply finished or abandoned */
};

/* What the client's Connection header(s) asked for. */
#define PROXY_CONN_CLOSE	0x1
#define PROXY_CONN_KEEPALIVE	0x2

struct proxy_req {
	enum proxy_state state;
	struct worker *worker;
	struct server_conn *conn;
	struct worker_gen *wgen;	/* reference */
	const struct worker_route *route;
	const char *action;		/* nginx-style: what we were doing */
	char id[24];
	uint64_t start_ns;
	uint64_t start_us;
	int status;
	uint64_t bytes_out;		/* body bytes sent to the client */

	struct {
		const struct conn_request *req;	/* in proxy_handle() only */
		enum conn_method method;
		const char *method_name;	/* static, or method_other */
		char path[512];			/* without query, truncated */
		bool head_sent;
		bool chunking;			/* we chunk the body we send */
		bool paused_upstream;
		bool replied;			/* conn_reply_end() called */
		char method_other[16];		/* an extension method */
		int minor;
		unsigned conn_flags;		/* PROXY_CONN_* of the request */
	} pr_client;

	/* The gateway span (NULL: this request is not traced). */
	struct span *span;
	const char *error_type;		/* static, for the span */
	char error_msg[160];
	uint64_t up_sent_ns;		/* monotonic */
	uint64_t up_first_ns;

	/* CORS of the route (NULL: none); the answer is below. */
	const struct cors_policy *cors;
	bool has_cors_ans;

	struct {
		struct upstream_req *ureq;	/* NULL when not running */
	} pr_upstream;

	/*
	 * Last, and not zeroed on allocation (1.7 KB): valid only while
	 * has_cors_ans is set, and always filled by cors_* before that.
	 */
	struct cors_answer cors_ans;
};

/* The request headers the pipeline looks at, found in one pass. */
struct proxy_hdrs {
	const char *host;
	const char *origin;
	const char *acrm;		/* Access-Control-Request-Method */
	const char *acrh;		/* Access-Control-Request-Headers */
	const char *acrpn;		/* -Request-Private-Network */
	unsigned conn_flags;		/* PROXY_CONN_* of Connection */
};

/* A small write-combining buffer in front of an evbuffer. */
struct proxy_hbuf {
	struct evbuffer *out;
	size_t len;
	char buf[8192];
};

void proxy_hbuf_flush(struct proxy_hbuf *);
void proxy_hbuf_add(struct proxy_hbuf *, const char *, size_t);
void proxy_hbuf_str(struct proxy_hbuf *, const char *);

/* Origin-form of a request target (borrowed pointer into uri). */
const char *proxy_origin_form(const char *uri);

/* proxy_trace.c: start, inject and finish the gateway span of pr. */
void proxy_trace_start(struct proxy_req *, const struct proxy_hdrs *,
    bool preflight);
void proxy_trace_inject(struct proxy_req *, struct proxy_hbuf *);
void proxy_trace_finish(struct proxy_req *);

#endif /* TS_PROXY_INT_H */
