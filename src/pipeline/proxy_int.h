/*
 * proxy_int.h -- what proxy.c and proxy_trace.c share: the per-worker
 * pipeline context, the per-request struct, the header-capture struct and
 * the small head buffer.  Not for other modules (they use proxy.h).
 */
#ifndef TS_PROXY_INT_H
#define TS_PROXY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "cors.h"
#include "exchange.h"
#include "ids.h"
#include "propagation.h"
#include "proxy.h"
#include "upstream.h"
#include "group.h"

struct span;
struct exporter;
struct exporter_queue;
struct tunnel;

/* The pipeline's per-worker context (proxy.h). */
struct proxy_pipeline {
	unsigned id;			/* the worker's, for request ids */
	struct metrics *metrics;	/* the worker's counters */
	struct worker_gen *wgen;	/* current (proxy_pipeline_set_gen) */
	struct exporter *exporter;	/* agent rates; NULL: none */
	struct exporter_queue *xq;	/* finished spans; NULL: none */
	uint64_t req_counter;		/* for request ids */
	uint32_t id_salt;
	int64_t cors_log_sec;		/* rate limit of CORS refusal logs */
	unsigned cors_log_n;
	struct ids_rng rng;		/* span and trace ids */
	struct trace_extract *extract;	/* reused by every request */
	struct proxy_req *req_pool;	/* free requests (pool_next) */
	size_t req_pool_n;
	struct span *span_pool;		/* free spans (linked via arena) */
	size_t span_pool_n;
	int64_t wall_offset_ns;		/* wall = monotonic + offset */
	struct evbuffer *ubuf;		/* scratch for upstream requests */
	proxy_debug_fn debug;		/* /debug/propagation; NULL: none */
	struct exchange_field *hfields;	/* scratch: a response head */
	size_t hfields_cap;
	char date[64];			/* cached IMF-fixdate */
	int64_t date_sec;
	/* The access log's time stamps, per second (no strftime per line). */
	int64_t log_sec;
	char log_iso[24];		/* 2006-01-02T15:04:05 */
	char log_clf[32];		/* 02/Jan/2006:15:04:05 +0000 */
};

/* The most attempts of a request (routes[].upstream.retry.tries). */
#define PROXY_MAX_TRIES 10

enum proxy_state {
	PROXY_ST_RECV = 0,	/* request received, building */
	PROXY_ST_UPSTREAM,	/* waiting for the response head */
	PROXY_ST_RELAY,		/* streaming the response body */
	PROXY_ST_TUNNEL,	/* switched (101): the tunnel runs */
	PROXY_ST_DONE,		/* reply finished or abandoned */
};

struct proxy_req {
	struct proxy_req *pool_next;	/* while in pl->req_pool */
	enum proxy_state state;
	struct proxy_pipeline *pl;
	struct exchange *x;		/* NULL once the exchange is over */
	struct worker_gen *wgen;	/* reference */
	const struct worker_route *route;
	const char *action;		/* nginx-style: what we were doing */
	char id[24];
	uint64_t start_ns;
	uint64_t start_us;
	int status;
	uint64_t bytes_out;		/* body bytes sent to the client */
	uint64_t bytes_in;		/* head and body bytes received */
	int up_status;			/* the upstream's status, 0: none */
	unsigned up_attempts;		/* times the request was sent */
	bool peer_trusted;		/* in server.trusted_proxies */
	/*
	 * Bit i: request field i (i < 64) is a tracing header, as
	 * proxy_trace_start classified it; building the upstream request
	 * reads the bit instead of classifying the name again, for the
	 * fields proxy_trace_start looked at (the first trace_classified).
	 */
	uint64_t trace_fields;
	size_t trace_classified;
	bool up_used;			/* an upstream exchange was started */
	bool up_timed;			/* its times are in the histograms */
	uint64_t up_start_ns;		/* monotonic, when it was started */
	enum exchange_protocol protocol;	/* the client's */
	int http_minor;			/* HTTP/1.x: x (the access log) */

	struct {
		const struct exchange *req;	/* in start() only */
		enum exchange_method method;
		const char *method_name;	/* static, or method_other */
		char path[512];			/* without query, truncated */
		bool head_sent;
		bool paused_upstream;
		bool replied;			/* front->end() called */
		bool upgrade;			/* a WebSocket handshake */
		char method_other[16];		/* an extension method */
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
		/* The server of the route's group the request went to,
		 * while has_target (proxy_upstream_release ends it). */
		int target;
		bool has_target;
		bool picked;			/* target is valid (logs) */
		uint64_t sent_ns;		/* monotonic, at the pick */
		/* Retries (docs/upstreams.md "Retries"). */
		uint64_t hash;			/* the balancer's key */
		uint64_t tried;			/* targets tried (bits < 64) */
		unsigned n_att;			/* attempts recorded in pr_att */
		unsigned sends;			/* sends of earlier attempts */
		bool idempotent;		/* RFC 9110 9.2.2 */
		struct evbuffer *copy;		/* the request, for a retry
						 * after a 5xx; NULL: none */
	} pr_upstream;

	struct tunnel *tunnel;		/* after a 101, until it ends */

	/* A request of a routes[].rum_intake route (rum_intake.h). */
	struct {
		bool on;
		bool refused;			/* answered 4xx by the relay */
		int track;			/* ddforward_tracks, or -1 */
		uint64_t bytes;			/* body bytes sent */
	} pr_rum;

	/*
	 * Last, and not zeroed on allocation (1.7 KB): valid only while
	 * has_cors_ans is set, and always filled by cors_* before that.
	 */
	struct cors_answer cors_ans;

	/*
	 * The attempts of the request on its servers (pr_upstream.n_att of
	 * them); not zeroed either.
	 */
	struct proxy_attempt {
		int target;
		int status;		/* the answer's, 0: none */
		const char *outcome;	/* static: a retry reason or error */
		uint64_t dur_ns;
	} pr_att[PROXY_MAX_TRIES];

	/*
	 * What the access log needs past start() (the head is gone by
	 * then), set by start() for every request; not zeroed either.
	 */
	struct {
		char client_ip[48];
		char url[1024];		/* origin-form target, truncated */
		char ua[256];		/* User-Agent, truncated; "" none */
		char referer[256];	/* Referer, likewise */
	} pr_log;
};

/* The request headers the pipeline looks at, found in one pass. */
struct proxy_hdrs {
	const char *host;
	const char *origin;
	const char *acrm;		/* Access-Control-Request-Method */
	const char *acrh;		/* Access-Control-Request-Headers */
	const char *acrpn;		/* -Request-Private-Network */
	const char *ua;			/* User-Agent (the access log) */
	const char *referer;
};

/* A small write-combining buffer in front of an evbuffer. */
struct proxy_hbuf {
	struct evbuffer *out;
	size_t len;
	char buf[8192];
};

/*
 * The buffer's functions and proxy_origin_form() are inline: proxy.c and
 * proxy_trace.c both use them on the hot path, and neither calls the
 * other for them (no call loop between the two files).
 */
/* Append what is buffered to the evbuffer. */
static inline void
proxy_hbuf_flush(struct proxy_hbuf *hb)
{
	if (hb->len > 0) {
		evbuffer_add(hb->out, hb->buf, hb->len);
		hb->len = 0;
	}
}

/* Append len bytes. */
static inline void
proxy_hbuf_add(struct proxy_hbuf *hb, const char *s, size_t len)
{
	if (hb->len + len > sizeof hb->buf) {
		proxy_hbuf_flush(hb);
		if (len > sizeof hb->buf) {
			evbuffer_add(hb->out, s, len);
			return;
		}
	}
	memcpy(hb->buf + hb->len, s, len);
	hb->len += len;
}

/* Append a C string. */
static inline void
proxy_hbuf_str(struct proxy_hbuf *hb, const char *s)
{
	proxy_hbuf_add(hb, s, strlen(s));
}

/* Origin-form of a request target ("/p?q"); absolute-form is reduced. */
static inline const char *
proxy_origin_form(const char *uri)
{
	const char *p;

	if (uri[0] == '/' || strcmp(uri, "*") == 0)
		return uri;
	if ((p = strstr(uri, "://")) != NULL) {
		p = strchr(p + 3, '/');
		return p != NULL ? p : "/";
	}
	return uri;
}

/* proxy_trace.c: start, inject and finish the gateway span of pr. */
void proxy_trace_start(struct proxy_req *, const struct proxy_hdrs *,
    bool preflight);
void proxy_trace_inject(struct proxy_req *, struct proxy_hbuf *);
void proxy_trace_finish(struct proxy_req *);
/* Free the pipeline's pooled spans (pipeline teardown). */
void proxy_trace_pool_free(struct proxy_pipeline *);

/* The pipeline's cached Date value (refreshed per second). */
const char *proxy_date(struct proxy_pipeline *);

#endif /* TS_PROXY_INT_H */
