/*
 * proxy.c -- the request pipeline of one worker.
 *
 *   a front-end delivers an exchange (exchange.h; conn.c's framing guard
 *   has already vetted its bytes) -> route match (host, path prefix; first match wins) -> build
 *   the upstream request in one buffer: request line, every header but the
 *   hop-by-hop ones byte for byte and in order, X-Forwarded-*, our own
 *   Content-Length, the body moved (not copied) -> upstream.c exchange ->
 *   response head written by us from the upstream's header entries minus
 *   hop-by-hop -> body streamed with back-pressure -> teardown in
 *   proxy_req_close(): access log line, metrics, free.
 *
 * Lifetimes (STYLE.md 4.5): the request head handed to start() is valid
 * during that call only (it lives in the connection's input buffer);
 * everything kept is copied.  pr->x is the exchange until the front-end
 * says the reply left (complete) or the client went away (gone), or we
 * abort it; each of them ends pr.  The pipeline answers only through
 * x->front and never calls it from complete() or gone() (exchange.h).
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <inttypes.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "cidr.h"
#include "cors.h"
#include "exchange.h"
#include "exporter.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "proxy_int.h"
#include "propagation.h"
#include "rum_intake.h"
#include "span.h"
#include "tunnel.h"
#include "upstream.h"
#include "balancer.h"
#include "util.h"

static const char *const proxy_state_names[] = {
	"recv", "upstream", "relay", "tunnel", "done",
};

/* Fields of a head we write ourselves: Date, type, length, CORS. */
#define PROXY_OWN_FIELDS	(3 + CORS_MAX_HEADERS)

static void proxy_req_close(struct proxy_req *, const char *reason);
static int proxy_upstream_head_cb(struct upstream_req *,
    const struct upstream_response *, void *);
static void proxy_upstream_body_cb(struct upstream_req *, struct evbuffer *,
    void *);
static void proxy_upstream_done_cb(struct upstream_req *, enum upstream_err,
    const char *, bool, void *);
static void proxy_start(void *, struct exchange *);
static void proxy_client_drained(struct exchange *);
static void proxy_client_complete(struct exchange *);
static void proxy_client_gone(struct exchange *);
static void proxy_refuse(void *, struct exchange *, int, const char *);

static const struct upstream_cbs proxy_upstream_cbs = {
	proxy_upstream_head_cb,
	proxy_upstream_body_cb,
	proxy_upstream_done_cb,
};

const struct exchange_pipeline proxy_exchange = {
	proxy_start,
	NULL,			/* bodies come whole (body_end) today */
	proxy_client_drained,
	proxy_client_complete,
	proxy_client_gone,
	proxy_refuse,
};

/* Log a state transition at debug level (memcached conn_set_state). */
static void
proxy_req_set_state(struct proxy_req *pr, enum proxy_state st)
{
	if (log_get_level() >= LOG_LEVEL_DEBUG) {
		log_debug("%s: request %s: %s -> %s", __func__, pr->id,
		    proxy_state_names[pr->state], proxy_state_names[st]);
	}
	pr->state = st;
}

/* Request-context warning: "request ID client A route R: msg while X". */
static void TS_PRINTFLIKE(2, 3)
proxy_rlog_warnx(struct proxy_req *pr, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_warnx("request %s client %s route %s: %s%s%s", pr->id,
	    pr->x != NULL ? pr->x->client : "-",
	    pr->route != NULL ? pr->route->conf->name : "-", msg,
	    pr->action != NULL ? " while " : "",
	    pr->action != NULL ? pr->action : "");
}

const char *
proxy_error_code(int status)
{
	switch (status) {
	case 400:
		return "bad_request";
	case 403:
		return "forbidden";
	case 404:
		return "no_route";
	case 405:
		return "method_not_allowed";
	case 408:
		return "request_timeout";
	case 413:
		return "payload_too_large";
	case 414:
		return "uri_too_long";
	case 417:
		return "expectation_failed";
	case 431:
		return "header_too_large";
	case 500:
		return "internal_error";
	case 501:
		return "not_implemented";
	case 502:
		return "bad_gateway";
	case 503:
		return "unavailable";
	case 504:
		return "gateway_timeout";
	case 505:
		return "http_version_not_supported";
	default:
		return "error";
	}
}

/* Append s as a JSON string body (without quotes) to out, bounded. */
static size_t
proxy_json_escape(char *out, size_t size, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s != '\0' && n + 7 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			out[n++] = '\\';
			out[n++] = 'u';
			out[n++] = '0';
			out[n++] = '0';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 0xf];
		} else
			out[n++] = (char)c;
	}
	out[n] = '\0';
	return n;
}

/* Make a request id into buf (at least 17 bytes). */
static void
proxy_request_id(struct proxy_pipeline *pl, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t v;
	int i;

	pl->req_counter++;
	/* 16 hex digits: salt ^ worker, then the counter (no printf). */
	v = (uint64_t)(pl->id_salt ^ (uint32_t)(pl->id << 24)) << 32 |
	    (uint32_t)pl->req_counter;
	for (i = 15; i >= 0; i--, v >>= 4)
		buf[i] = hex[v & 0xf];
	buf[16] = '\0';
}

/* Length of the path part of a request target (up to '?' or '#'). */
static size_t
proxy_path_len(const char *uri)
{
	return strcspn(uri, "?#");
}

const struct worker_route *
proxy_route_find(const struct worker_gen *wg, const char *host,
    const char *path)
{
	size_t i, hlen = 0;

	if (host != NULL) {
		/* Compare the host without a port. */
		const char *colon = host[0] == '[' ? strchr(host, ']') : NULL;

		if (colon != NULL)
			hlen = (size_t)(colon - host) + 1;
		else
			hlen = strcspn(host, ":");
	}
	for (i = 0; i < wg->n_routes; i++) {
		const struct config_route *r = wg->routes[i].conf;

		if (r->host != NULL) {
			if (host == NULL || strlen(r->host) != hlen ||
			    !util_strncaseeq(r->host, host, hlen))
				continue;
		}
		if (strncmp(path, r->path_prefix, r->path_prefix_len) != 0)
			continue;
		return &wg->routes[i];
	}
	return NULL;
}

/* Build the JSON error body for status into buf; returns its length. */
static size_t
proxy_error_body(char *buf, size_t size, int status, const char *message,
    const char *request_id)
{
	char esc[512];
	int n;

	proxy_json_escape(esc, sizeof esc, message);
	n = snprintf(buf, size,
	    "{\"error\":\"%s\",\"message\":\"%s\",\"request_id\":\"%s\"}\n",
	    proxy_error_code(status), esc, request_id);
	if (n < 0)
		return 0;
	return (size_t)n >= size ? size - 1 : (size_t)n;
}

/*
 * Whether a gateway error ends the client connection: a request whose
 * framing we refused leaves the stream in an unknown state.
 */
static bool
proxy_error_closes(int status)
{
	return status == 400 || status == 413 || status == 431;
}

/*
 * A CORS answer as fields appended at f[*n] (NULL: none), Vary merged
 * with up_vary into merged (which must outlive the fields).
 */
static void
proxy_fields_cors(struct exchange_field *f, size_t *n,
    const struct cors_answer *a, const char *up_vary, size_t up_len,
    char *merged, size_t msize)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->n_headers; i++) {
		const struct cors_header *h = &a->headers[i];
		struct exchange_field *o = &f[(*n)++];
		char ours[256];
		int m;

		o->name = h->name;
		o->name_len = strlen(h->name);
		o->value = h->value;
		o->value_len = h->value_len;
		if (up_vary != NULL && h->value_len < sizeof ours &&
		    util_strcaseeq(h->name, "vary")) {
			memcpy(ours, h->value, h->value_len);
			ours[h->value_len] = '\0';
			m = cors_vary_merge(up_vary, up_len, ours, merged,
			    msize);
			if (m >= 0) {
				o->value = merged;
				o->value_len = (size_t)m;
			}
		}
	}
}

/*
 * The head of a gateway-generated response: status, Date, Content-Type,
 * Content-Length (not for 204/304), CORS headers, and its small body.
 * Shared by replies to requests and by the framing guard's refusals.
 * f has room for PROXY_OWN_FIELDS; num is room for the length's digits.
 */
static void
proxy_own_head(struct proxy_pipeline *pl, struct exchange_head *h,
    struct exchange_field *f, char *num, size_t nsize, int status,
    const char *reason, const char *ctype, const char *body, size_t blen,
    const struct cors_answer *cors)
{
	size_t n = 0;
	const char *date = proxy_date(pl);
	int len;

	memset(h, 0, sizeof *h);
	h->status = status;
	h->reason = reason;
	h->framed = true;
	h->no_body = blen == 0;
	h->body = body;
	h->body_len = blen;
	f[n].name = "Date";
	f[n].name_len = 4;
	f[n].value = date;
	f[n++].value_len = strlen(date);
	if (ctype != NULL) {
		f[n].name = "Content-Type";
		f[n].name_len = 12;
		f[n].value = ctype;
		f[n++].value_len = strlen(ctype);
	}
	if (status != 204 && status != 304) {
		len = snprintf(num, nsize, "%zu", blen);
		f[n].name = "Content-Length";
		f[n].name_len = 14;
		f[n].value = num;
		f[n++].value_len = len > 0 ? (size_t)len : 0;
	}
	proxy_fields_cors(f, &n, cors, NULL, 0, NULL, 0);
	h->fields = f;
	h->n_fields = n;
}

/*
 * Finish the reply of pr: the front-end writes what is left and then
 * calls complete() (never from inside this call).
 */
static void
proxy_reply_end(struct proxy_req *pr)
{
	if (pr->x == NULL || pr->pr_client.replied)
		return;
	pr->pr_client.replied = true;
	pr->x->front->end(pr->x);
}

/* A complete response of our own: head (CORS included) and body. */
static void
proxy_send_raw(struct proxy_req *pr, int status, const char *reason,
    const char *ctype, const char *body, size_t blen, bool force_close)
{
	struct exchange_field f[PROXY_OWN_FIELDS];
	struct exchange_head h;
	char num[24];

	if (pr->x == NULL)
		return;
	pr->status = status;
	pr->bytes_out = blen;
	pr->pr_client.head_sent = true;
	proxy_own_head(pr->pl, &h, f, num, sizeof num, status, reason, ctype,
	    body, blen, pr->has_cors_ans ? &pr->cors_ans : NULL);
	h.close = force_close;
	pr->x->front->head(pr->x, &h);
	proxy_reply_end(pr);
}

/* Send a gateway error as the complete reply of pr. */
static void
proxy_send_error(struct proxy_req *pr, int status, const char *message)
{
	char buf[1024];
	size_t len;

	if (pr->x == NULL || pr->pr_client.head_sent)
		return;
	len = proxy_error_body(buf, sizeof buf, status, message, pr->id);
	proxy_send_raw(pr, status, NULL, "application/json", buf, len,
	    proxy_error_closes(status));
}

/*
 * pipe->refuse(): the answer to a request the front-end refused before it
 * existed (the framing guard, a timeout, memory): the route's CORS
 * policy, or the top-level one (as for a 404), so that even a refused
 * request is readable by the page that sent it.  Nothing is kept.
 */
static void
proxy_refuse(void *arg, struct exchange *x, int status, const char *message)
{
	struct proxy_pipeline *pl = arg;
	struct worker_gen *wg = pl->wgen;
	const struct worker_route *route;
	const struct cors_policy *cors;
	const char *host = NULL, *origin = NULL;
	struct exchange_field f[PROXY_OWN_FIELDS];
	struct exchange_head h;
	struct cors_answer ans;
	char body[1024], id[24], num[24];
	size_t blen, i;
	bool has_cors;

	for (i = 0; i < x->n_fields; i++) {
		const struct http_field *kv = &x->fields[i];

		if (host == NULL && util_strcaseeq(kv->name, "host"))
			host = kv->value;
		else if (origin == NULL && util_strcaseeq(kv->name, "origin"))
			origin = kv->value;
	}
	route = proxy_route_find(wg, host, x->target);
	cors = route != NULL ? route->cors : wg->default_cors;
	proxy_request_id(pl, id);
	blen = proxy_error_body(body, sizeof body, status, message, id);
	has_cors = cors != NULL && cors_actual(cors, origin, origin != NULL ?
	    strlen(origin) : 0, &ans) == 0;
	proxy_own_head(pl, &h, f, num, sizeof num, status, NULL,
	    "application/json", body, blen, has_cors ? &ans : NULL);
	h.close = true;
	x->front->head(x, &h);
	x->front->end(x);
	metrics_request(pl->metrics, route != NULL ? route->slot : 0,
	    status, 0, 0);
	metrics_add(pl->metrics, x->protocol == EXCHANGE_P_H2 ?
	    METRICS_REQ_H2 : METRICS_REQ_H1, 1);
}

/* Join upstream Vary values into buf (", "-separated). */
static void
proxy_vary_collect(char *buf, size_t size, size_t *len, const char *v)
{
	size_t n = strlen(v);

	if (*len + n + 3 > size)
		return;
	if (*len > 0) {
		memcpy(buf + *len, ", ", 2);
		*len += 2;
	}
	memcpy(buf + *len, v, n);
	*len += n;
	buf[*len] = '\0';
}

/* Hop-by-hop header (RFC 9110 7.6.1) or one named by Connection. */
static bool
proxy_hop_by_hop(const char *name, size_t len, const char (*tokens)[40],
    size_t ntokens)
{
	size_t i;

	switch (name[0] | 0x20) {
	case 'c':
		if (UTIL_NAME_IS(name, len, "connection"))
			return true;
		break;
	case 'k':
		if (UTIL_NAME_IS(name, len, "keep-alive"))
			return true;
		break;
	case 'p':
		if (len >= 6 && util_strncaseeq(name, "proxy-", 6))
			return true;
		break;
	case 't':
		if (UTIL_NAME_IS(name, len, "te") ||
		    UTIL_NAME_IS(name, len, "trailer") ||
		    UTIL_NAME_IS(name, len, "transfer-encoding"))
			return true;
		break;
	case 'u':
		if (UTIL_NAME_IS(name, len, "upgrade"))
			return true;
		break;
	default:
		break;
	}
	for (i = 0; i < ntokens; i++) {
		if (util_strcaseeq(name, tokens[i]))
			return true;
	}
	return false;
}

/* Add the header names one Connection value lists to tokens[*n..max). */
static void
proxy_connection_add(const char *p, char (*tokens)[40], size_t *n,
    size_t max)
{
	const char *t, *end = p + strlen(p);
	size_t len;

	while (*n < max && util_list_next(&p, end, &t, &len)) {
		if (len == 0 || len >= sizeof tokens[0])
			continue;
		memcpy(tokens[*n], t, len);
		tokens[*n][len] = '\0';
		if (!util_strcaseeq(tokens[*n], "close") &&
		    !util_strcaseeq(tokens[*n], "keep-alive"))
			(*n)++;
	}
}

/* Is name "Connection"? */
static bool
proxy_is_connection(const char *name)
{
	return (name[0] | 0x20) == 'c' && util_strcaseeq(name, "connection");
}

/* The header names every Connection header of a response lists. */
static size_t
proxy_connection_tokens(struct evkeyvalq *h, char (*tokens)[40], size_t max)
{
	struct evkeyval *kv;
	size_t n = 0;

	TAILQ_FOREACH(kv, h, next) {
		if (proxy_is_connection(kv->key))
			proxy_connection_add(kv->value, tokens, &n, max);
	}
	return n;
}

/* The same for the fields of a request. */
static size_t
proxy_request_tokens(const struct exchange *req, char (*tokens)[40],
    size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < req->n_fields; i++) {
		if (proxy_is_connection(req->fields[i].name))
			proxy_connection_add(req->fields[i].value, tokens, &n,
			    max);
	}
	return n;
}

static const char *
proxy_method_name(enum exchange_method m)
{
	switch (m) {
	case EXCHANGE_M_GET:
		return "GET";
	case EXCHANGE_M_POST:
		return "POST";
	case EXCHANGE_M_HEAD:
		return "HEAD";
	case EXCHANGE_M_PUT:
		return "PUT";
	case EXCHANGE_M_DELETE:
		return "DELETE";
	case EXCHANGE_M_OPTIONS:
		return "OPTIONS";
	case EXCHANGE_M_TRACE:
		return "TRACE";
	case EXCHANGE_M_CONNECT:
		return "CONNECT";
	case EXCHANGE_M_PATCH:
		return "PATCH";
	default:
		return "UNKNOWN";
	}
}

/*
 * The key of balance: hash (routes[].upstream.hash_on) hashed: the
 * client's address, a header's first value or a cookie's value.  A
 * request without it gets a hash of its own (spread like round robin).
 */
static uint64_t
proxy_upstream_hash(struct proxy_req *pr, const struct exchange *req)
{
	const char *on = pr->route->conf->upstream.hash_on, *v, *p, *e;
	size_t i, nlen;

	/*
	 * The client's address as proxy_client_ip found it: behind a
	 * trusted proxy (server.trusted_proxies) its X-Forwarded-For
	 * client, not the proxy, or every client would share one server.
	 */
	if (on == NULL || strcmp(on, "client_address") == 0)
		return balancer_hash(pr->pr_log.client_ip,
		    strlen(pr->pr_log.client_ip));
	nlen = strlen(on + 7);
	for (i = 0; i < req->n_fields; i++) {
		const struct http_field *f = &req->fields[i];

		if (strncmp(on, "header:", 7) == 0) {
			if (f->name_len == nlen && util_strcaseeq(f->name,
			    on + 7))
				return balancer_hash(f->value, f->value_len);
			continue;
		}
		if (f->name_len != 6 || !util_strcaseeq(f->name, "cookie"))
			continue;
		/* RFC 6265 4.2.1: cookie-pair *( "; " cookie-pair ). */
		for (p = f->value; *p != '\0'; p = *e != '\0' ? e + 1 : e) {
			while (*p == ' ' || *p == '\t')
				p++;
			e = p + strcspn(p, ";");
			v = memchr(p, '=', (size_t)(e - p));
			if (v != NULL && (size_t)(v - p) == nlen &&
			    strncmp(p, on + 7, nlen) == 0)
				return balancer_hash(v + 1,
				    (size_t)(e - v - 1));
		}
	}
	return balancer_hash(pr->id, strlen(pr->id));
}

/* Choose the route's server for pr; false when none is healthy. */
static bool
proxy_upstream_pick(struct proxy_req *pr, const struct exchange *req)
{
	const struct upstream_target *t;
	/* The request's start, microseconds ago: no clock read of its own. */
	uint64_t hash = 0, now = pr->start_ns;
	int i;

	if (pr->route->conf->upstream.balance == CONFIG_BALANCE_HASH)
		hash = proxy_upstream_hash(pr, req);
	pr->pr_upstream.hash = hash;
	if ((i = upstream_group_pick(pr->route->group, hash, now)) < 0)
		return false;
	pr->pr_upstream.target = i;
	pr->pr_upstream.has_target = true;
	pr->pr_upstream.picked = true;
	pr->pr_upstream.sent_ns = now;
	/* The span named the route's first server: name the one chosen. */
	t = upstream_group_target(pr->route->group, i);
	if (pr->span != NULL && t->conf->url != pr->route->conf->upstream.url &&
	    strcmp(t->conf->url, pr->route->conf->upstream.url) != 0)
		(void)span_set_meta(pr->span, "upstream.address", t->conf->url);
	return true;
}

/*
 * The request on its server is over: outcome 1 (fine), 0 (a failure or
 * 5xx, for passive health) or -1 (unknown: the client left).  Once.
 */
static void
proxy_upstream_release(struct proxy_req *pr, int outcome)
{
	uint64_t now;

	if (!pr->pr_upstream.has_target)
		return;
	pr->pr_upstream.has_target = false;
	now = util_mono_ns();
	(void)upstream_group_done(pr->route->group, pr->pr_upstream.target,
	    outcome, (now - pr->pr_upstream.sent_ns) / 1000, now);
}

/* The URL and the address of pr's server, for logs. */
static const char *
proxy_upstream_url(const struct proxy_req *pr)
{
	const struct upstream_target *t = !pr->pr_upstream.picked ? NULL :
	    upstream_group_target(pr->route->group, pr->pr_upstream.target);

	return t != NULL ? t->conf->url : pr->route->conf->upstream.url;
}

static const char *
proxy_upstream_name(const struct proxy_req *pr)
{
	const struct upstream_target *t = !pr->pr_upstream.picked ? NULL :
	    upstream_group_target(pr->route->group, pr->pr_upstream.target);

	return t != NULL ? t->name : "";
}

/*
 * Retries (docs/upstreams.md "Retries").  An attempt that fails before a
 * byte of its answer reached the client is recorded (server, outcome,
 * duration: the access log and the span show them when there was more
 * than one); proxy_retry() decides whether the request goes to another
 * server.
 */

/* The end of pr's current attempt: status, or outcome when none. */
static void
proxy_attempt_record(struct proxy_req *pr, int status, const char *outcome)
{
	struct proxy_attempt *a;
	int t = pr->pr_upstream.target;

	if (!pr->pr_upstream.picked || pr->pr_upstream.n_att >= PROXY_MAX_TRIES)
		return;
	a = &pr->pr_att[pr->pr_upstream.n_att++];
	a->target = t;
	a->status = status;
	a->outcome = outcome;
	a->dur_ns = util_mono_ns() - pr->pr_upstream.sent_ns;
	if (t >= 0 && t < 64)
		pr->pr_upstream.tried |= (uint64_t)1 << t;
}

/* Append a copy of src to dst (src unchanged). */
static bool
proxy_buf_copy(struct evbuffer *dst, struct evbuffer *src)
{
	struct evbuffer_iovec v;
	size_t len = evbuffer_get_length(src);

	if (len == 0 || evbuffer_reserve_space(dst, (ev_ssize_t)len, &v,
	    1) != 1)
		return false;
	if (evbuffer_copyout(src, v.iov_base, len) != (ev_ssize_t)len)
		return false;
	v.iov_len = len;
	return evbuffer_commit_space(dst, &v, 1) == 0;
}

/* Start the exchange of the request in ubuf on pr's target. */
static bool
proxy_upstream_send(struct proxy_req *pr, struct evbuffer *ubuf)
{
	const struct config_upstream *up = &pr->route->conf->upstream;

	pr->pr_upstream.ureq = upstream_request(upstream_group_pool(
	    pr->route->group, pr->pr_upstream.target), ubuf,
	    pr->pr_client.method == EXCHANGE_M_HEAD, pr->pr_upstream.idempotent,
	    &proxy_upstream_cbs, pr);
	evbuffer_drain(ubuf, evbuffer_get_length(ubuf));
	if (pr->pr_upstream.ureq == NULL)
		return false;
	if (pr->pr_client.upgrade)
		upstream_req_expect_upgrade(pr->pr_upstream.ureq);
	if (up->retry.per_try_timeout_ms > 0)
		upstream_req_set_try_timeout(pr->pr_upstream.ureq,
		    up->retry.per_try_timeout_ms);
	return true;
}

/*
 * The attempt ureq of pr failed for reason bit (CONFIG_RETRY_*) before any
 * byte reached the client; sent: some of the request may have reached the
 * server.  Send it to a server it has not tried yet, when there is one and
 * the route's retry keys and budget allow: true when the
 * new attempt runs.  Only idempotent requests (RFC 9110 9.2.2) are sent
 * again once sent; any request is when it never left (a connect failure).
 */
static bool
proxy_retry(struct proxy_req *pr, struct upstream_req *ureq, unsigned bit,
    bool sent)
{
	const struct config_retry *rc = &pr->route->conf->upstream.retry;
	struct proxy_pipeline *pl = pr->pl;
	struct evbuffer *ubuf = pl->ubuf;
	const struct upstream_target *to;
	uint64_t now, min_milli;
	unsigned workers, n = pr->pr_upstream.n_att;
	int i;

	if (pr->x == NULL || pr->pr_client.head_sent ||
	    (rc->on_mask & bit) == 0 || n >= rc->tries || n == 0 ||
	    (sent && !pr->pr_upstream.idempotent))
		return false;
	/* The bytes of the request: our copy, or the exchange's. */
	if (pr->pr_upstream.copy != NULL ?
	    !proxy_buf_copy(ubuf, pr->pr_upstream.copy) :
	    !upstream_req_take_request(ureq, ubuf)) {
		evbuffer_drain(ubuf, evbuffer_get_length(ubuf));
		return false;
	}
	now = util_mono_ns();
	/* The floor is the process's: each worker has its share of it. */
	workers = pr->wgen->cfg->workers > 0 ? pr->wgen->cfg->workers : 1;
	min_milli = (uint64_t)rc->budget_min_per_second * 1000 / workers;
	if (!upstream_group_retry_budget(pr->route->group, rc->budget_percent,
	    min_milli, now)) {
		evbuffer_drain(ubuf, evbuffer_get_length(ubuf));
		metrics_retry_budget_exhausted(pl->metrics, pr->route->slot);
		log_debug("request %s: no retry: the route's retry budget is "
		    "spent", pr->id);
		return false;
	}
	/* A 5xx answer: the server's failure, before the next pick. */
	proxy_upstream_release(pr, 0);
	if ((i = upstream_group_pick_retry(pr->route->group,
	    pr->pr_upstream.hash, pr->pr_upstream.tried, now)) < 0) {
		evbuffer_drain(ubuf, evbuffer_get_length(ubuf));
		return false;
	}
	pr->pr_upstream.target = i;
	pr->pr_upstream.has_target = true;
	pr->pr_upstream.sent_ns = now;
	pr->pr_upstream.sends += upstream_req_attempts(ureq);
	pr->up_start_ns = now;
	metrics_upstream_retry(pl->metrics, pr->route->slot,
	    (unsigned)__builtin_ctz(bit));
	to = upstream_group_target(pr->route->group, i);
	log_info("request %s route %s: retrying on upstream %s (%s), "
	    "attempt %u of %u", pr->id, pr->route->conf->name, to->conf->url,
	    to->name, n + 1, rc->tries);
	if (pr->span != NULL)
		(void)span_set_meta(pr->span, "upstream.address",
		    to->conf->url);
	if (!proxy_upstream_send(pr, ubuf)) {
		proxy_upstream_release(pr, -1);
		return false;
	}
	/* The failure is the attempt's (the access log, the span tags). */
	pr->error_type = NULL;
	pr->error_msg[0] = '\0';
	return true;
}

/*
 * The attempts of a retried request as tags of the gateway span:
 * upstream.attempt.N.address / .outcome / .duration_ms (N from 1) and
 * upstream.attempt_count.
 */
static void
proxy_attempt_tags(struct proxy_req *pr)
{
	char key[48], val[16];
	unsigned k;

	(void)span_set_metric(pr->span, "upstream.attempt_count",
	    pr->pr_upstream.n_att);
	for (k = 0; k < pr->pr_upstream.n_att; k++) {
		const struct proxy_attempt *a = &pr->pr_att[k];
		const struct upstream_target *t = upstream_group_target(
		    pr->route->group, a->target);

		snprintf(key, sizeof key, "upstream.attempt.%u.address", k + 1);
		(void)span_set_meta(pr->span, key, t != NULL ? t->name : "");
		snprintf(key, sizeof key, "upstream.attempt.%u.outcome", k + 1);
		if (a->outcome == NULL)
			snprintf(val, sizeof val, "%d", a->status);
		(void)span_set_meta(pr->span, key, a->outcome != NULL ?
		    a->outcome : val);
		snprintf(key, sizeof key, "upstream.attempt.%u.duration_ms",
		    k + 1);
		(void)span_set_metric(pr->span, key, (double)a->dur_ns / 1e6);
	}
}

/*
 * Serialize the upstream request of pr into out: request line, headers
 * minus hop-by-hop, X-Forwarded-*, Content-Length, body (moved).
 */
static void
proxy_build_upstream_request(struct proxy_req *pr, struct evbuffer *out)
{
	const struct exchange *req = pr->pr_client.req;
	struct evbuffer *body = req->body;
	const struct config_upstream *up = upstream_group_target(
	    pr->route->group, pr->pr_upstream.target)->conf;
	char tokens[16][40], num[32];
	struct proxy_hbuf *hb, hbs;
	const char *host = NULL, *xff = NULL;
	size_t ntokens, blen, i;
	bool xff_multi = false, has_xfp = false, has_xfh = false;

	hb = &hbs;
	hb->out = out;
	hb->len = 0;
	ntokens = proxy_request_tokens(req, tokens, TS_NITEMS(tokens));

	proxy_hbuf_str(hb, pr->pr_client.method_name);
	proxy_hbuf_add(hb, " ", 1);
	proxy_hbuf_str(hb, up->base_path);
	proxy_hbuf_str(hb, proxy_origin_form(req->target));
	proxy_hbuf_add(hb, " HTTP/1.1\r\n", 11);

	for (i = 0; i < req->n_fields; i++) {
		const struct http_field *f = &req->fields[i];
		const char *k = f->name;

		if (proxy_hop_by_hop(k, f->name_len,
		    (const char (*)[40])tokens, ntokens))
			continue;
		/* Known tracing headers are replaced by ours, never kept. */
		if (pr->span != NULL && (i < 64 && i < pr->trace_classified ?
		    (pr->trace_fields >> i & 1) != 0 :
		    propagation_is_known_header(k, f->name_len)))
			continue;
		switch (k[0] | 0x20) {
		case 'c':
			if (UTIL_NAME_IS(k, f->name_len, "content-length"))
				continue;
			break;
		case 'e':
			/* The front-end answered 100-continue; the body is here. */
			if (UTIL_NAME_IS(k, f->name_len, "expect"))
				continue;
			break;
		case 'h':
			if (host == NULL && UTIL_NAME_IS(k, f->name_len, "host"))
				host = f->value;
			break;
		case 'x':
			if (UTIL_NAME_IS(k, f->name_len, "x-forwarded-for")) {
				if (xff != NULL)
					xff_multi = true;
				else
					xff = f->value;
				continue;
			}
			/* Kept from a trusted proxy, else ours replace them. */
			if (UTIL_NAME_IS(k, f->name_len, "x-forwarded-proto")) {
				if (!pr->peer_trusted)
					continue;
				has_xfp = true;
			} else if (UTIL_NAME_IS(k, f->name_len,
			    "x-forwarded-host")) {
				if (!pr->peer_trusted)
					continue;
				has_xfh = true;
			}
			break;
		default:
			break;
		}
		proxy_hbuf_add(hb, k, f->name_len);
		proxy_hbuf_add(hb, ": ", 2);
		proxy_hbuf_add(hb, f->value, f->value_len);
		proxy_hbuf_add(hb, "\r\n", 2);
	}
	if (pr->pr_client.upgrade) {
		/* RFC 6455 4.1: the handshake's own hop-by-hop fields. */
		proxy_hbuf_str(hb, "Connection: Upgrade\r\nUpgrade: websocket"
		    "\r\n");
	}
	if (host == NULL) {
		/* HTTP/1.0 without Host: name the upstream. */
		proxy_hbuf_add(hb, "Host: ", 6);
		proxy_hbuf_str(hb, up->authority);
		proxy_hbuf_add(hb, "\r\n", 2);
	}
	/* X-Forwarded-For: every incoming value, then the client. */
	proxy_hbuf_add(hb, "X-Forwarded-For: ", 17);
	if (xff != NULL) {
		for (i = 0; i < req->n_fields; i++) {
			const struct http_field *f = &req->fields[i];

			if (!util_strcaseeq(f->name, "x-forwarded-for"))
				continue;
			proxy_hbuf_add(hb, f->value, f->value_len);
			proxy_hbuf_add(hb, ", ", 2);
			if (!xff_multi)
				break;
		}
	}
	proxy_hbuf_str(hb, req->client_ip);
	if (!has_xfp) {
		proxy_hbuf_add(hb, "\r\nX-Forwarded-Proto: ", 21);
		proxy_hbuf_str(hb, req->tls ? "https" : "http");
	}
	if (host != NULL && !has_xfh) {
		proxy_hbuf_add(hb, "\r\nX-Forwarded-Host: ", 20);
		proxy_hbuf_str(hb, host);
	}
	proxy_hbuf_add(hb, "\r\n", 2);
	if (pr->span != NULL)
		proxy_trace_inject(pr, hb);

	blen = body != NULL ? evbuffer_get_length(body) : 0;
	if (blen > 0 || pr->pr_client.method == EXCHANGE_M_POST ||
	    pr->pr_client.method == EXCHANGE_M_PUT ||
	    pr->pr_client.method == EXCHANGE_M_PATCH) {
		size_t n = util_fmt_u64(blen, num);

		proxy_hbuf_add(hb, "Content-Length: ", 16);
		proxy_hbuf_add(hb, num, n);
		proxy_hbuf_add(hb, "\r\n", 2);
	}
	proxy_hbuf_add(hb, "\r\n", 2);
	proxy_hbuf_flush(hb);
	if (blen > 0)
		evbuffer_add_buffer(out, body);
}

/* One pass over the request headers for the ones we act on. */
static void
proxy_scan_headers(const struct exchange *req, struct proxy_hdrs *h)
{
	size_t i;

	memset(h, 0, sizeof *h);
	for (i = 0; i < req->n_fields; i++) {
		const struct http_field *kv = &req->fields[i];
		const char *k = kv->name;
		size_t n = kv->name_len;

		switch (k[0] | 0x20) {
		case 'h':
			if (h->host == NULL && UTIL_NAME_IS(k, n, "host"))
				h->host = kv->value;
			break;
		case 'o':
			if (h->origin == NULL && UTIL_NAME_IS(k, n, "origin"))
				h->origin = kv->value;
			break;
		case 'u':
			if (h->ua == NULL && UTIL_NAME_IS(k, n, "user-agent"))
				h->ua = kv->value;
			break;
		case 'r':
			if (h->referer == NULL && UTIL_NAME_IS(k, n, "referer"))
				h->referer = kv->value;
			break;
		case 'a':
			if (n <= 23 ||
			    !util_strncaseeq(k, "access-control-request-", 23))
				break;
			if (UTIL_NAME_IS(k + 23, n - 23, "method"))
				h->acrm = kv->value;
			else if (UTIL_NAME_IS(k + 23, n - 23, "headers"))
				h->acrh = kv->value;
			else if (UTIL_NAME_IS(k + 23, n - 23, "private-network"))
				h->acrpn = kv->value;
			break;
		default:
			break;
		}
	}
}

/* Count and (rate-limited) log a CORS refusal. */
static void
proxy_cors_refused(struct proxy_req *pr, bool preflight)
{
	struct proxy_pipeline *pl = pr->pl;
	const struct cors_answer *a = &pr->cors_ans;
	int64_t now = (int64_t)time(NULL);

	metrics_cors_refusal(pl->metrics, pr->route->slot, preflight,
	    cors_kind_name(a->kind), a->header_class);
	if (pl->cors_log_sec != now) {
		pl->cors_log_sec = now;
		pl->cors_log_n = 0;
	}
	if (pl->cors_log_n++ < 10) {
		log_info("request %s client %s route %s: CORS %s refused: %s",
		    pr->id, pr->x->client, pr->route->conf->name,
		    preflight ? "preflight" : "request", a->reason);
	}
}

/*
 * CORS step.  Returns true when the request was answered here (a
 * preflight), false to go on upstream (with pr->cors_ans set for the
 * response headers when the route has CORS).
 */
static bool
proxy_cors(struct proxy_req *pr, const struct proxy_hdrs *h)
{
	struct cors_answer *a = &pr->cors_ans;
	char json[1024];
	size_t len;

	if ((pr->cors = pr->route->cors) == NULL)
		return false;
	if (!cors_is_preflight(pr->pr_client.method_name, h->origin != NULL,
	    h->acrm != NULL)) {
		cors_actual(pr->cors, h->origin, h->origin != NULL ?
		    strlen(h->origin) : 0, a);
		pr->has_cors_ans = true;
		if (a->result == CORS_REFUSED)
			proxy_cors_refused(pr, false);
		return false;
	}
	cors_preflight(pr->cors, h->origin, strlen(h->origin), h->acrm,
	    strlen(h->acrm), h->acrh, h->acrh != NULL ? strlen(h->acrh) : 0,
	    h->acrpn != NULL && util_strcaseeq(h->acrpn, "true"), a);
	pr->has_cors_ans = true;
	if (a->result == CORS_ALLOWED) {
		metrics_cors_preflight(pr->pl->metrics, pr->route->slot,
		    true);
		proxy_send_raw(pr, 204, "No Content", NULL, NULL, 0, false);
		return true;
	}
	metrics_cors_preflight(pr->pl->metrics, pr->route->slot, false);
	proxy_cors_refused(pr, true);
	if (!cors_policy_rejects(pr->cors)) {
		/* on_disallowed: pass -- forward without CORS headers. */
		pr->has_cors_ans = false;
		return false;
	}
	len = cors_refusal_json(a, json, sizeof json);
	if (len >= sizeof json)
		len = sizeof json - 1;
	proxy_send_raw(pr, 403, "Forbidden", "application/json", json, len,
	    false);
	return true;
}

/*
 * Requests kept for reuse by a pipeline: a struct proxy_req is larger
 * than malloc's per-thread cache takes, so a malloc and a free per
 * request went to the arena (issue 11's profile).
 */
#define PROXY_REQ_POOL_MAX 256

static struct proxy_req *
proxy_req_get(struct proxy_pipeline *pl)
{
	struct proxy_req *pr = pl->req_pool;

	if (pr == NULL)
		return malloc(sizeof *pr);
	pl->req_pool = pr->pool_next;
	pl->req_pool_n--;
	return pr;
}

static void
proxy_req_put(struct proxy_pipeline *pl, struct proxy_req *pr)
{
	if (pl->req_pool_n >= PROXY_REQ_POOL_MAX) {
		free(pr);
		return;
	}
	pr->pool_next = pl->req_pool;
	pl->req_pool = pr;
	pl->req_pool_n++;
}

/* Copy n bytes of s (NUL-terminated) into dst of size, truncated. */
static void
proxy_copy_trunc(char *dst, size_t size, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n >= size)
		n = size - 1;
	memcpy(dst, s != NULL ? s : "", n);
	dst[n] = '\0';
}

/*
 * The client's address into pr->pr_log.client_ip: the peer's, or, when
 * the peer is one of server.trusted_proxies, the right-most address of
 * X-Forwarded-For (every field, in order) that is not trusted: each
 * trusted proxy appended the address it saw, and the first untrusted one
 * is the farthest we can believe (nginx's real_ip_recursive).  When all
 * are trusted, the left-most; an element that is no IP address ends the
 * walk at the address to its right.
 */
static void
proxy_client_ip(struct proxy_req *pr, const struct exchange *req)
{
	const struct config *cfg = pr->wgen->cfg;
	const char *ip = req->client_ip;
	size_t iplen = strlen(ip), i;

	pr->peer_trusted = cfg->n_trusted > 0 && cidr_match_text(cfg->trusted,
	    cfg->n_trusted, ip, iplen);
	for (i = req->n_fields; pr->peer_trusted && i-- > 0; ) {
		const struct http_field *f = &req->fields[i];
		const char *end = f->value + f->value_len, *p, *s, *e;

		if (f->name_len != 15 || !util_strcaseeq(f->name,
		    "x-forwarded-for"))
			continue;
		while (end > f->value) {
			uint8_t addr[16];
			int family;

			for (p = end; p > f->value && p[-1] != ','; p--)
				;
			for (s = p; s < end && (*s == ' ' || *s == '\t'); s++)
				;
			for (e = end; e > s && (e[-1] == ' ' ||
			    e[-1] == '\t'); e--)
				;
			end = p > f->value ? p - 1 : f->value;
			if (e == s)
				continue;	/* an empty element */
			if (cidr_addr(s, (size_t)(e - s), &family, addr) != 0)
				goto done;
			ip = s;
			iplen = (size_t)(e - s);
			if (!cidr_match(cfg->trusted, cfg->n_trusted, family,
			    addr))
				goto done;
		}
	}
done:
	if (iplen >= sizeof pr->pr_log.client_ip)
		iplen = sizeof pr->pr_log.client_ip - 1;
	memcpy(pr->pr_log.client_ip, ip, iplen);
	pr->pr_log.client_ip[iplen] = '\0';
}

/* Keep what the access log of pr needs from the request head. */
static void
proxy_log_keep(struct proxy_req *pr, const struct exchange *req,
    const char *uri, const struct proxy_hdrs *h)
{
	proxy_client_ip(pr, req);
	/* Only the access log reads these: no copies when it is off. */
	if (!log_access_enabled()) {
		pr->pr_log.url[0] = pr->pr_log.ua[0] = '\0';
		pr->pr_log.referer[0] = '\0';
	} else {
		proxy_copy_trunc(pr->pr_log.url, sizeof pr->pr_log.url, uri);
		proxy_copy_trunc(pr->pr_log.ua, sizeof pr->pr_log.ua, h->ua);
		proxy_copy_trunc(pr->pr_log.referer,
		    sizeof pr->pr_log.referer, h->referer);
	}
	pr->bytes_in = req->head_len + (req->body != NULL ?
	    evbuffer_get_length(req->body) : 0);
}

/*
 * A request that asks to switch protocols: a WebSocket handshake goes on
 * (pr_client.upgrade) where the route and the front-end allow it; every
 * other upgrade is refused with its reason (tunnel_upgrade_check).
 * True when answered here.
 */
static bool
proxy_upgrade_refused(struct proxy_req *pr, const struct exchange *req)
{
	const char *why = NULL;
	int status = 0;

	switch (tunnel_upgrade_check(req, &status, &why)) {
	case TUNNEL_UPGRADE_NONE:
		return false;
	case TUNNEL_UPGRADE_WEBSOCKET:
		if (!pr->route->conf->websocket) {
			status = 403;
			why = "WebSocket is disabled on this route";
		} else if (!req->upgrade || req->front->upgrade == NULL) {
			status = 501;
			why = "this connection cannot switch protocols";
		} else {
			pr->pr_client.upgrade = true;
			return false;
		}
		break;
	case TUNNEL_UPGRADE_REFUSED:
		break;
	}
	pr->error_type = "gateway.upgrade_refused";
	snprintf(pr->error_msg, sizeof pr->error_msg, "%s", why);
	proxy_send_error(pr, status, why);
	return true;
}

/*
 * The relay's refusal (400, 405, 413): the JSON error with the route's
 * CORS, Allow on a 405 (RFC 9110 15.5.6), and the connection kept: the
 * request was read whole, its framing is sound (proxy_send_error closes
 * after a 400 or 413, which there mean it was not).
 */
static void
proxy_rum_refuse(struct proxy_req *pr, int status, const char *why)
{
	struct exchange_field f[PROXY_OWN_FIELDS + 1];
	struct exchange_head h;
	char body[1024], num[24];
	size_t len;

	if (pr->x == NULL || pr->pr_client.head_sent)
		return;
	len = proxy_error_body(body, sizeof body, status, why, pr->id);
	pr->status = status;
	pr->bytes_out = len;
	pr->pr_client.head_sent = true;
	proxy_own_head(pr->pl, &h, f, num, sizeof num, status, NULL,
	    "application/json", body, len, pr->has_cors_ans ?
	    &pr->cors_ans : NULL);
	if (status == 405) {
		f[h.n_fields].name = "Allow";
		f[h.n_fields].name_len = 5;
		f[h.n_fields].value = "POST";
		f[h.n_fields++].value_len = 4;
	}
	pr->x->front->head(pr->x, &h);
	proxy_reply_end(pr);
}

/*
 * A request of a routes[].rum_intake route, after CORS (a preflight was
 * answered there): checked by rum_intake_check, then sent to the intake
 * (the route's one server) as rum_intake_request writes it; the answer
 * comes back through the usual callbacks.  POST: never retried.
 */
static void
proxy_rum_start(struct proxy_req *pr, const struct exchange *req,
    const char *uri)
{
	struct ddforward d;
	struct evbuffer *ubuf = pr->pl->ubuf;
	const char *why;
	int status;

	pr->pr_rum.on = true;
	pr->pr_rum.track = -1;
	status = rum_intake_check(pr->route->conf, req, uri, &d, &why);
	pr->pr_rum.track = d.track;
	if (status != 0) {
		pr->pr_rum.refused = true;
		pr->error_type = "gateway.rum_intake_refused";
		snprintf(pr->error_msg, sizeof pr->error_msg, "%s", why);
		proxy_rum_refuse(pr, status, why);
		return;
	}
	if (pr->route->group == NULL) {
		proxy_send_error(pr, 502, "the RUM intake address could not be "
		    "resolved");
		return;
	}
	if (!proxy_upstream_pick(pr, req)) {
		proxy_send_error(pr, 503, "the RUM intake is not available");
		return;
	}
	pr->action = "sending the batch to the RUM intake";
	pr->pr_rum.bytes = req->body != NULL ?
	    evbuffer_get_length(req->body) : 0;
	rum_intake_request(upstream_group_target(pr->route->group,
	    pr->pr_upstream.target)->conf, req, &d, pr->pr_log.client_ip,
	    ubuf);
	proxy_req_set_state(pr, PROXY_ST_UPSTREAM);
	pr->up_used = true;
	pr->up_attempts = 1;
	pr->up_start_ns = util_mono_ns();
	/* A POST, not idempotent: proxy_retry never sends it again. */
	pr->pr_upstream.idempotent = false;
	if (!proxy_upstream_send(pr, ubuf))
		proxy_send_error(pr, 503, "out of memory");
}

/* Count a finished relay request (proxy_req_close). */
static void
proxy_rum_count(struct proxy_req *pr, uint64_t dur_us)
{
	enum rum_intake_result r;

	if (pr->pr_rum.refused)
		r = RUM_INTAKE_REFUSED;
	else if (pr->up_status >= 200 && pr->up_status <= 299)
		r = RUM_INTAKE_FORWARDED;
	else if (pr->up_status != 0)
		r = RUM_INTAKE_REJECTED;
	else
		r = RUM_INTAKE_FAILED;
	rum_intake_count(pr->pr_rum.track, r, r == RUM_INTAKE_REFUSED ? 0 :
	    pr->pr_rum.bytes, dur_us);
}

/*
 * GET or POST /debug/propagation on a proxy listener (admin.debug and
 * admin.debug_listeners): what extraction makes of this request's
 * headers, as the admin listener's answer (docs/propagation.md), with the
 * route's behavior override and CORS headers, so that a page can fetch
 * it over the protocol it uses for its API (h2 from a browser).  No span,
 * no upstream.  False: not a debug request.
 */
static bool
proxy_debug(struct proxy_req *pr, struct exchange *req,
    const struct proxy_hdrs *h)
{
	struct trace_header th[128];
	const struct cors_policy *cors;
	const char *errstr = NULL;
	char *json = NULL;
	size_t i, n = 0;

	if (strcmp(pr->pr_client.path, "/debug/propagation") != 0 ||
	    (req->method != EXCHANGE_M_GET && req->method != EXCHANGE_M_POST))
		return false;
	cors = pr->route != NULL ? pr->route->cors : pr->wgen->default_cors;
	if (cors != NULL) {
		cors_actual(cors, h->origin, h->origin != NULL ?
		    strlen(h->origin) : 0, &pr->cors_ans);
		pr->has_cors_ans = true;
	}
	for (i = 0; i < req->n_fields && n < TS_NITEMS(th); i++) {
		th[n].name = req->fields[i].name;
		th[n].name_len = req->fields[i].name_len;
		th[n].value = req->fields[i].value;
		th[n++].value_len = req->fields[i].value_len;
	}
	if (pr->pl->debug(pr->wgen->cfg, pr->route != NULL ?
	    pr->route->conf->name : NULL, th, n, &json, &errstr) != 0) {
		proxy_send_error(pr, 503, errstr != NULL ? errstr :
		    "the debug answer failed");
		return true;
	}
	proxy_send_raw(pr, 200, NULL, "application/json", json, strlen(json),
	    false);
	free(json);
	return true;
}

/* pipe->start(): a request from a front-end (arg: the pipeline). */
static void
proxy_start(void *arg, struct exchange *req)
{
	struct proxy_pipeline *pl = arg;
	struct proxy_req *pr;
	struct evbuffer *ubuf;
	struct proxy_hdrs h;
	const char *uri;
	size_t plen;
	bool idempotent, preflight;

	if ((pr = proxy_req_get(pl)) != NULL)
		memset(pr, 0, offsetof(struct proxy_req, cors_ans));
	if (pr == NULL) {
		log_warnx("client %s: out of memory for a request", req->client);
		req->front->abort(req);
		return;
	}
	pr->pl = pl;
	pr->x = req;
	req->pipe = pr;
	pr->start_ns = util_mono_ns();
	pr->start_us = util_now_us();
	pr->wgen = worker_gen_ref(pl->wgen);
	pr->protocol = req->protocol;
	pr->http_minor = req->minor;
	pr->pr_client.req = req;
	pr->pr_client.method = req->method;
	pr->pr_client.method_name = proxy_method_name(req->method);
	if (req->method == EXCHANGE_M_OTHER) {
		/* WebDAV, PURGE, ...: the guard bounds the name. */
		snprintf(pr->pr_client.method_other,
		    sizeof pr->pr_client.method_other, "%s", req->method_name);
		pr->pr_client.method_name = pr->pr_client.method_other;
	}
	pr->state = PROXY_ST_RECV;
	proxy_request_id(pl, pr->id);

	uri = proxy_origin_form(req->target);
	plen = proxy_path_len(uri);
	if (plen >= sizeof pr->pr_client.path)
		plen = sizeof pr->pr_client.path - 1;
	memcpy(pr->pr_client.path, uri, plen);
	pr->pr_client.path[plen] = '\0';

	proxy_scan_headers(req, &h);
	proxy_log_keep(pr, req, uri, &h);
	pr->route = proxy_route_find(pr->wgen, h.host, pr->pr_client.path);
	if (pl->debug != NULL && pr->wgen->cfg->admin_debug &&
	    pr->wgen->cfg->admin_debug_listeners &&
	    proxy_debug(pr, req, &h))
		return;
	if (pr->route == NULL) {
		if (pr->wgen->default_cors != NULL) {
			cors_actual(pr->wgen->default_cors, h.origin,
			    h.origin != NULL ? strlen(h.origin) : 0,
			    &pr->cors_ans);
			pr->has_cors_ans = true;
		}
		proxy_send_error(pr, 404, "no route matches this request");
		return;
	}
	preflight = pr->route->cors != NULL && cors_is_preflight(
	    pr->pr_client.method_name, h.origin != NULL, h.acrm != NULL);
	/* A RUM relay route is traced only when it says so. */
	if ((!preflight || pr->wgen->cfg->tracing.trace_preflights) &&
	    (!pr->route->conf->rum.enabled || pr->route->conf->rum.trace))
		proxy_trace_start(pr, &h, preflight);
	if (proxy_cors(pr, &h))
		return;
	if (pr->route->conf->rum.enabled) {
		proxy_rum_start(pr, req, uri);
		return;
	}
	if (pr->pr_client.method == EXCHANGE_M_CONNECT ||
	    pr->pr_client.method == EXCHANGE_M_TRACE) {
		proxy_send_error(pr, 405, "method not allowed by the gateway");
		return;
	}
	if (proxy_upgrade_refused(pr, req))
		return;

	if (pr->route->group == NULL) {
		proxy_send_error(pr, 502, "the upstream address could not be "
		    "resolved");
		return;
	}
	if (!proxy_upstream_pick(pr, req)) {
		proxy_rlog_warnx(pr, "no healthy server for upstream %s",
		    pr->route->conf->upstream.url);
		proxy_send_error(pr, 503, "no healthy upstream server for this "
		    "route");
		return;
	}
	/* The worker's scratch buffer: upstream_request moves it all out. */
	ubuf = pl->ubuf;
	pr->action = "sending the request to the upstream";
	proxy_build_upstream_request(pr, ubuf);
	/* RFC 9110 9.2.2; an extension method is not retried. */
	idempotent = pr->pr_client.method != EXCHANGE_M_POST &&
	    pr->pr_client.method != EXCHANGE_M_PATCH &&
	    pr->pr_client.method != EXCHANGE_M_OTHER;
	pr->pr_upstream.idempotent = idempotent;
	/*
	 * A retry after a 5xx answer needs the request's bytes after the
	 * exchange has read a byte: only then is a copy kept.
	 */
	if (idempotent && pr->route->conf->upstream.retry.tries > 1 &&
	    (pr->route->conf->upstream.retry.on_mask & (CONFIG_RETRY_502 |
	    CONFIG_RETRY_503 | CONFIG_RETRY_504)) != 0 &&
	    (pr->pr_upstream.copy = evbuffer_new()) != NULL &&
	    !proxy_buf_copy(pr->pr_upstream.copy, ubuf)) {
		evbuffer_free(pr->pr_upstream.copy);
		pr->pr_upstream.copy = NULL;
	}
	proxy_req_set_state(pr, PROXY_ST_UPSTREAM);
	pr->up_used = true;
	pr->up_attempts = 1;
	pr->up_start_ns = util_mono_ns();
	if (!proxy_upstream_send(pr, ubuf))
		proxy_send_error(pr, 503, "out of memory");
}

/*
 * An observation of histogram h for pr that ended at monotonic at_ns,
 * with its trace as exemplar (its wall time from the request's start: no
 * clock read).
 */
static void
proxy_observe(struct proxy_req *pr, enum metrics_hist h, uint64_t us,
    uint64_t at_ns)
{
	struct metrics *m = pr->pl->metrics;
	unsigned slot = pr->route != NULL ? pr->route->slot : 0;

	metrics_observe(m, h, slot, us);
	if (pr->span != NULL)
		metrics_exemplar(m, h, slot, us, pr->span->trace_id.high,
		    pr->span->trace_id.low, (pr->start_us + (at_ns -
		    pr->start_ns) / 1000) / 1000);
}

/*
 * The upstream connect time (a new connection only: from the exchange's
 * start to the connection ready) and the time to the first response
 * byte, once per request, while ureq is still there.
 */
static void
proxy_upstream_times(struct proxy_req *pr, const struct upstream_req *ureq)
{
	uint64_t sent = upstream_req_sent_ns(ureq);
	uint64_t first = upstream_req_first_byte_ns(ureq);

	if (pr->up_timed || sent == 0)
		return;
	pr->up_timed = true;
	if (!upstream_req_reused(ureq) && sent >= pr->up_start_ns)
		proxy_observe(pr, METRICS_H_UPSTREAM_CONNECT,
		    (sent - pr->up_start_ns) / 1000, sent);
	if (first >= sent && first != 0)
		proxy_observe(pr, METRICS_H_UPSTREAM_RESPONSE,
		    (first - sent) / 1000, first);
}

/* Room for n response fields in the pipeline's scratch; false: none. */
static bool
proxy_hfields_room(struct proxy_pipeline *pl, size_t n)
{
	struct exchange_field *nf;
	size_t cap;

	if (n <= pl->hfields_cap)
		return true;
	/* Grows to the largest head seen, then stays (no malloc per request). */
	cap = pl->hfields_cap * 2 > n ? pl->hfields_cap * 2 : n;
	if ((nf = reallocarray(pl->hfields, cap, sizeof *nf)) == NULL)
		return false;
	pl->hfields = nf;
	pl->hfields_cap = cap;
	return true;
}

/*
 * The tunnel of pr ended (tunnel.h): count it, free it, and end the
 * exchange; the front-end's complete() then closes pr.
 */
static void
proxy_tunnel_done(struct tunnel *t, void *arg, const char *why, bool error)
{
	struct proxy_req *pr = arg;

	if (log_get_level() >= LOG_LEVEL_DEBUG)
		log_debug("request %s: tunnel %s (%s): %llu bytes up, %llu "
		    "down", pr->id, why, error ? "error" : "ok",
		    (unsigned long long)tunnel_bytes_up(t),
		    (unsigned long long)tunnel_bytes_down(t));
	pr->bytes_out = tunnel_bytes_down(t);
	metrics_tunnel(pr->pl->metrics, -1);
	tunnel_free(t);
	pr->tunnel = NULL;
	proxy_reply_end(pr);
}

/*
 * The upstream answered the WebSocket handshake of pr with a 101: it must
 * have switched to websocket (RFC 6455 4.1), then its connection and the
 * client's become one tunnel (tunnel.h).  The 101 goes to the client
 * with the upstream's end-to-end fields (Sec-WebSocket-Accept, -Protocol,
 * -Extensions) and our Upgrade / Connection.  The gateway span ends here,
 * tagged http.upgrade; the request (access log, metrics) when the tunnel
 * does.
 */
static int
proxy_switch(struct proxy_req *pr, struct upstream_req *ureq,
    const struct upstream_response *resp)
{
	struct proxy_pipeline *pl = pr->pl;
	struct exchange *x = pr->x;
	struct bufferevent *up, *cl;
	struct exchange_head h;
	struct exchange_field *f;
	struct evkeyval *kv;
	char tokens[16][40];
	size_t ntokens, n = 0, max = 3;
	bool websocket = false;

	pr->action = "switching protocols";
	TAILQ_FOREACH(kv, resp->headers, next) {
		max++;
		if (util_strcaseeq(kv->key, "upgrade") &&
		    util_strcaseeq(kv->value, "websocket"))
			websocket = true;
	}
	if (!websocket || !proxy_hfields_room(pl, max)) {
		pr->pr_upstream.ureq = NULL;	/* -1 cancels it */
		pr->error_type = websocket ? "gateway.nomem" :
		    "upstream.protocol";
		snprintf(pr->error_msg, sizeof pr->error_msg, "%s", websocket ?
		    "out of memory" : "the upstream's 101 does not switch to "
		    "websocket");
		proxy_rlog_warnx(pr, "%s", pr->error_msg);
		proxy_send_error(pr, websocket ? 503 : 502, pr->error_msg);
		return -1;
	}
	f = pl->hfields;
	ntokens = proxy_connection_tokens(resp->headers, tokens,
	    TS_NITEMS(tokens));
	TAILQ_FOREACH(kv, resp->headers, next) {
		size_t klen = strlen(kv->key);

		if (proxy_hop_by_hop(kv->key, klen, (const char (*)[40])tokens,
		    ntokens))
			continue;
		f[n].name = kv->key;
		f[n].name_len = klen;
		f[n].value = kv->value;
		f[n++].value_len = strlen(kv->value);
	}
	f[n].name = "Upgrade";
	f[n].name_len = 7;
	f[n].value = "websocket";
	f[n++].value_len = 9;
	f[n].name = "Connection";
	f[n].name_len = 10;
	f[n].value = "Upgrade";
	f[n++].value_len = 7;
	memset(&h, 0, sizeof h);
	h.status = 101;
	h.reason = resp->reason;
	h.no_body = true;
	h.framed = true;
	h.fields = f;
	h.n_fields = n;
	pr->up_sent_ns = upstream_req_sent_ns(ureq);
	pr->up_first_ns = upstream_req_first_byte_ns(ureq);
	pr->up_status = 101;
	pr->up_attempts = pr->pr_upstream.sends +
	    upstream_req_attempts(ureq);
	proxy_upstream_times(pr, ureq);
	pr->pr_upstream.ureq = NULL;	/* detached or cancelled: it ends */
	if ((up = upstream_req_detach(ureq)) == NULL) {
		proxy_send_error(pr, 503, "out of memory");
		return 0;
	}
	pr->status = 101;
	pr->pr_client.head_sent = true;
	if ((cl = x->front->upgrade(x, &h)) == NULL ||
	    (pr->tunnel = tunnel_new(cl, up, pr->route->conf->websocket_idle_ms,
	    proxy_tunnel_done, pr)) == NULL) {
		proxy_rlog_warnx(pr, "out of memory for a tunnel");
		bufferevent_free(up);
		if (cl != NULL)
			bufferevent_free(cl);
		x->front->abort(x);
		x->pipe = NULL;
		pr->x = NULL;
		proxy_req_close(pr, "no tunnel");
		return 0;
	}
	metrics_tunnel(pl->metrics, 1);
	proxy_req_set_state(pr, PROXY_ST_TUNNEL);
	pr->action = NULL;
	if (pr->span != NULL)
		(void)span_set_meta(pr->span, "http.upgrade", "websocket");
	proxy_trace_finish(pr);
	return 0;
}

/*
 * Response head from the upstream: hand its end-to-end fields to the
 * front-end, straight from the upstream's header entries (no copy of a
 * name or value), with our Date and CORS headers.
 */
static int
proxy_upstream_head_cb(struct upstream_req *ureq,
    const struct upstream_response *resp, void *arg)
{
	struct proxy_req *pr = arg;
	struct proxy_pipeline *pl = pr->pl;
	struct exchange_head h;
	struct exchange_field *f;
	struct evkeyval *kv;
	char tokens[16][40], vary[512], merged[768];
	size_t ntokens, vlen = 0, n = 0, max = 1 + PROXY_OWN_FIELDS;
	bool keep_cl, has_date = false;

	if (pr->x == NULL)
		return -1;
	if (resp->status == 101)
		return proxy_switch(pr, ureq, resp);
	if (pr->pr_upstream.n_att > 0 || (resp->status >= 502 &&
	    resp->status <= 504 && pr->pr_upstream.copy != NULL)) {
		proxy_attempt_record(pr, resp->status, NULL);
		/* -1 cancels this exchange: the new one goes on. */
		if (resp->status >= 502 && resp->status <= 504 &&
		    proxy_retry(pr, ureq, CONFIG_RETRY_502 <<
		    (resp->status - 502), true))
			return -1;
	}
	pr->action = "reading the upstream response";
	TAILQ_FOREACH(kv, resp->headers, next)
		max++;
	if (!proxy_hfields_room(pl, max)) {
		/* -1 cancels the exchange: no callback follows. */
		pr->pr_upstream.ureq = NULL;
		proxy_send_error(pr, 503, "out of memory");
		return -1;
	}
	f = pl->hfields;
	ntokens = proxy_connection_tokens(resp->headers, tokens,
	    TS_NITEMS(tokens));
	keep_cl = resp->body == UPSTREAM_BODY_LENGTH ||
	    resp->body == UPSTREAM_BODY_NONE;
	memset(&h, 0, sizeof h);
	h.status = resp->status;
	h.reason = resp->reason;
	h.framed = keep_cl;
	h.no_body = pr->pr_client.method == EXCHANGE_M_HEAD ||
	    resp->status == 204 || resp->status == 304 ||
	    resp->body == UPSTREAM_BODY_NONE;
	TAILQ_FOREACH(kv, resp->headers, next) {
		size_t klen = strlen(kv->key);

		if (proxy_hop_by_hop(kv->key, klen, (const char (*)[40])tokens,
		    ntokens))
			continue;
		if (!keep_cl && klen == 14 &&
		    util_strcaseeq(kv->key, "content-length"))
			continue;
		if (pr->has_cors_ans) {
			/* Ours replace the upstream's, never duplicate. */
			if (cors_is_cors_header(kv->key, klen))
				continue;
			if (klen == 4 && util_strcaseeq(kv->key, "vary")) {
				proxy_vary_collect(vary, sizeof vary, &vlen,
				    kv->value);
				continue;
			}
		}
		if (klen == 4 && util_strcaseeq(kv->key, "date"))
			has_date = true;
		f[n].name = kv->key;
		f[n].name_len = klen;
		f[n].value = kv->value;
		f[n++].value_len = strlen(kv->value);
	}
	if (!has_date) {
		f[n].name = "Date";
		f[n].name_len = 4;
		f[n].value = proxy_date(pl);
		f[n].value_len = strlen(f[n].value);
		n++;
	}
	proxy_fields_cors(f, &n, pr->has_cors_ans ? &pr->cors_ans : NULL,
	    vlen > 0 ? vary : NULL, vlen, merged, sizeof merged);
	h.fields = f;
	h.n_fields = n;
	pr->x->front->head(pr->x, &h);
	pr->status = resp->status;
	pr->up_status = resp->status;
	pr->up_attempts = pr->pr_upstream.sends +
	    upstream_req_attempts(ureq);
	proxy_upstream_times(pr, ureq);
	pr->pr_client.head_sent = true;
	pr->up_sent_ns = upstream_req_sent_ns(ureq);
	pr->up_first_ns = upstream_req_first_byte_ns(ureq);
	proxy_req_set_state(pr, PROXY_ST_RELAY);
	return 0;
}

/* Body bytes from the upstream: forward, pause when the client lags. */
static void
proxy_upstream_body_cb(struct upstream_req *ureq, struct evbuffer *buf,
    void *arg)
{
	struct proxy_req *pr = arg;
	size_t len = evbuffer_get_length(buf);

	if (pr->x == NULL || len == 0 || pr->pr_client.method ==
	    EXCHANGE_M_HEAD) {
		evbuffer_drain(buf, len);
		return;
	}
	pr->bytes_out += len;
	if (pr->x->front->body(pr->x, buf) &&
	    !pr->pr_client.paused_upstream) {
		/* The front-end's output is above its mark: wait. */
		pr->pr_client.paused_upstream = true;
		upstream_req_pause(ureq);
	}
}

/* pipe->drained(): the client's output drained: resume the upstream. */
static void
proxy_client_drained(struct exchange *x)
{
	struct proxy_req *pr = x->pipe;

	if (pr->pr_client.paused_upstream && pr->pr_upstream.ureq != NULL) {
		pr->pr_client.paused_upstream = false;
		upstream_req_resume(pr->pr_upstream.ureq);
	}
}

/*
 * The attempt ureq failed with err before its head: record it, and retry
 * when the route allows (true: a new attempt runs).  A connect failure, a
 * TLS handshake failure and a connect timeout sent nothing.
 */
static bool
proxy_retry_failed(struct proxy_req *pr, struct upstream_req *ureq,
    enum upstream_err err)
{
	bool sent = upstream_req_sent_ns(ureq) != 0;
	const char *outcome;
	unsigned bit;

	switch (err) {
	case UPSTREAM_ERR_CONNECT:
		bit = CONFIG_RETRY_CONNECT;
		outcome = "connect_failure";
		sent = false;
		break;
	case UPSTREAM_ERR_TLS:
		bit = CONFIG_RETRY_CONNECT;
		outcome = "tls";
		sent = false;
		break;
	case UPSTREAM_ERR_TIMEOUT:
		bit = CONFIG_RETRY_TIMEOUT;
		outcome = "timeout";
		break;
	case UPSTREAM_ERR_RESET:
		bit = CONFIG_RETRY_RESET;
		outcome = "reset";
		sent = true;
		break;
	default:
		bit = 0;
		outcome = "protocol";
		break;
	}
	proxy_attempt_record(pr, 0, outcome);
	return bit != 0 && proxy_retry(pr, ureq, bit, sent);
}

/* The exchange is over (complete or failed). */
static void
proxy_upstream_done_cb(struct upstream_req *ureq, enum upstream_err err,
    const char *errstr, bool head_sent, void *arg)
{
	struct proxy_req *pr = arg;
	struct exchange *x = pr->x;
	enum metrics_upstream_err kind;

	pr->pr_upstream.ureq = NULL;
	/* Health: a 5xx answer counts as a failure of the server. */
	proxy_upstream_release(pr, err == UPSTREAM_ERR_NOMEM ? -1 :
	    err == UPSTREAM_OK && pr->status < 500 ? 1 : 0);
	if (err == UPSTREAM_OK) {
		pr->action = NULL;
		if (x != NULL)
			proxy_reply_end(pr);
		/* proxy_client_complete() closes pr. */
		return;
	}

	switch (err) {
	case UPSTREAM_ERR_TIMEOUT:
		kind = METRICS_UPSTREAM_TIMEOUT;
		break;
	case UPSTREAM_ERR_RESET:
		kind = METRICS_UPSTREAM_RESET;
		break;
	case UPSTREAM_ERR_PROTOCOL:
		kind = METRICS_UPSTREAM_PROTOCOL;
		break;
	case UPSTREAM_ERR_TLS:
		kind = METRICS_UPSTREAM_TLS;
		break;
	default:
		kind = METRICS_UPSTREAM_CONNECT;
		break;
	}
	if (err != UPSTREAM_ERR_NOMEM)
		metrics_upstream_error(pr->pl->metrics, pr->route->slot,
		    kind);
	pr->up_attempts = pr->pr_upstream.sends +
	    upstream_req_attempts(ureq);
	proxy_upstream_times(pr, ureq);
	pr->up_sent_ns = upstream_req_sent_ns(ureq);
	pr->up_first_ns = upstream_req_first_byte_ns(ureq);
	pr->error_type = err == UPSTREAM_ERR_TIMEOUT ? "upstream.timeout" :
	    err == UPSTREAM_ERR_RESET ? "upstream.reset" :
	    err == UPSTREAM_ERR_PROTOCOL ? "upstream.protocol" :
	    err == UPSTREAM_ERR_TLS ? "upstream.tls" :
	    err == UPSTREAM_ERR_NOMEM ? "gateway.nomem" : "upstream.connect";
	snprintf(pr->error_msg, sizeof pr->error_msg, "%s",
	    errstr != NULL ? errstr : upstream_err_name(err));
	proxy_rlog_warnx(pr, "upstream %s (%s): %s", proxy_upstream_url(pr),
	    proxy_upstream_name(pr), errstr != NULL ? errstr :
	    upstream_err_name(err));
	if (x != NULL && !head_sent && !pr->pr_client.head_sent &&
	    err != UPSTREAM_ERR_NOMEM && proxy_retry_failed(pr, ureq, err))
		return;

	if (x == NULL) {
		proxy_req_close(pr, "client gone");
		return;
	}
	if (!head_sent && !pr->pr_client.head_sent) {
		int status = err == UPSTREAM_ERR_TIMEOUT ? 504 :
		    err == UPSTREAM_ERR_NOMEM ? 503 : 502;

		proxy_send_error(pr, status, status == 504 ?
		    "the upstream did not answer in time" :
		    "the upstream could not be reached or answered badly");
		return;
	}
	/*
	 * The head went out already: the only honest signal left is to
	 * cut the client connection so it sees a truncated response.
	 */
	x->front->abort(x);
	x->pipe = NULL;
	proxy_req_close(pr, "upstream failed mid-response");
	/* The access log has the client; the exchange is the front-end's. */
}

/* pipe->complete(): the reply of x has left: finish its request. */
static void
proxy_client_complete(struct exchange *x)
{
	struct proxy_req *pr = x->pipe;

	if (pr->pr_upstream.ureq != NULL) {
		upstream_req_cancel(pr->pr_upstream.ureq);
		pr->pr_upstream.ureq = NULL;
	}
	x->pipe = NULL;
	proxy_req_close(pr, "done");
}

/* pipe->gone(): the client of x went away before the reply was out. */
static void
proxy_client_gone(struct exchange *x)
{
	struct proxy_req *pr = x->pipe;

	if (pr->pr_upstream.ureq != NULL) {
		upstream_req_cancel(pr->pr_upstream.ureq);
		pr->pr_upstream.ureq = NULL;
	}
	if (pr->tunnel != NULL) {
		/* The front-end closed (worker exit): the tunnel goes too. */
		pr->bytes_out = tunnel_bytes_down(pr->tunnel);
		metrics_tunnel(pr->pl->metrics, -1);
		tunnel_free(pr->tunnel);
		pr->tunnel = NULL;
	}
	if (pr->status == 0)
		pr->status = 499;	/* nginx: client closed request */
	if (pr->error_type == NULL) {
		pr->error_type = "client.gone";
		snprintf(pr->error_msg, sizeof pr->error_msg,
		    "the client closed the connection before the response "
		    "was complete");
	}
	x->pipe = NULL;
	pr->x = NULL;
	proxy_req_close(pr, "client closed the connection");
}

/*
 * The access log is on the request path: a line is built by hand into a
 * stack buffer (no printf per field; issue 11 measures CPU per request),
 * with time stamps cached per second.  lb_* append, bounded by end;
 * string fields are bounded when kept (pr_log) so a line always fits.
 */
struct proxy_lbuf {
	char *p;
	char *end;
};

static inline void
lb_add(struct proxy_lbuf *b, const char *s, size_t n)
{
	if (n > (size_t)(b->end - b->p))
		n = (size_t)(b->end - b->p);
	memcpy(b->p, s, n);
	b->p += n;
}

#define LB_LIT(b, lit)	lb_add((b), (lit), sizeof(lit) - 1)

static inline void
lb_str(struct proxy_lbuf *b, const char *s)
{
	lb_add(b, s, strlen(s));
}

static inline void
lb_u64(struct proxy_lbuf *b, uint64_t v)
{
	char num[24];

	lb_add(b, num, util_fmt_u64(v, num));
}

/* s as the body of a JSON string (RFC 8259 7). */
static void
lb_json(struct proxy_lbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s != '\0' && b->end - b->p >= 6; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			*b->p++ = '\\';
			*b->p++ = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(b->p, "\\u00", 4);
			b->p[4] = hex[c >> 4];
			b->p[5] = hex[c & 0xf];
			b->p += 6;
		} else
			*b->p++ = (char)c;
	}
}

/*
 * s as nginx escapes a variable of its default log format: '"', '\' and
 * bytes outside 0x20..0x7e as \xHH; "-" for an empty value.
 */
static void
lb_clf(struct proxy_lbuf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	if (*s == '\0') {
		LB_LIT(b, "-");
		return;
	}
	for (; *s != '\0' && b->end - b->p >= 4; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\' || c < 0x20 || c > 0x7e) {
			b->p[0] = '\\';
			b->p[1] = 'x';
			b->p[2] = hex[c >> 4];
			b->p[3] = hex[c & 0xf];
			b->p += 4;
		} else
			*b->p++ = (char)c;
	}
}

/* Refresh the pipeline's log time stamps for second sec. */
static void
proxy_log_time(struct proxy_pipeline *pl, int64_t sec)
{
	time_t t = (time_t)sec;
	struct tm tm;

	if (pl->log_sec == sec)
		return;
	gmtime_r(&t, &tm);
	strftime(pl->log_iso, sizeof pl->log_iso, "%Y-%m-%dT%H:%M:%S", &tm);
	/* nginx's $time_local, in UTC (the process runs with TZ unset). */
	strftime(pl->log_clf, sizeof pl->log_clf, "%d/%b/%Y:%H:%M:%S +0000",
	    &tm);
	pl->log_sec = sec;
}

/*
 * Datadog's reserved "status" is the log level (not the HTTP code): 5xx
 * is an error, 4xx a warning (499 included), everything else info.
 */
static const char *
proxy_log_level(int status)
{
	return status >= 500 ? "error" : status >= 400 ? "warn" : "info";
}

/*
 * nginx's combined format: $remote_addr - $remote_user [$time_local]
 * "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent".
 */
static size_t
proxy_access_combined(struct proxy_req *pr, char *line, size_t size)
{
	struct proxy_lbuf b = { line, line + size - 1 };

	lb_str(&b, pr->pr_log.client_ip);
	LB_LIT(&b, " - - [");
	lb_str(&b, pr->pl->log_clf);
	LB_LIT(&b, "] \"");
	lb_clf(&b, pr->pr_client.method_name);
	LB_LIT(&b, " ");
	lb_clf(&b, pr->pr_log.url);
	/* nginx writes HTTP/2.0 for a request over HTTP/2. */
	if (pr->protocol == EXCHANGE_P_H2)
		LB_LIT(&b, " HTTP/2.0\" ");
	else {
		LB_LIT(&b, " HTTP/1.");
		lb_u64(&b, (uint64_t)pr->http_minor);
		LB_LIT(&b, "\" ");
	}
	lb_u64(&b, (uint64_t)pr->status);
	LB_LIT(&b, " ");
	lb_u64(&b, pr->bytes_out);
	LB_LIT(&b, " \"");
	lb_clf(&b, pr->pr_log.referer);
	LB_LIT(&b, "\" \"");
	lb_clf(&b, pr->pr_log.ua);
	LB_LIT(&b, "\"");
	*b.p++ = '\n';
	return (size_t)(b.p - line);
}

/*
 * A retried request's attempts, as nginx's $upstream_addr and
 * $upstream_status list them: "upstream.tries":[{"address":..,
 * "status":502 or "error":"connect_failure","duration":ns}, ...].
 */
static void
proxy_access_tries(struct proxy_req *pr, struct proxy_lbuf *b)
{
	unsigned k;

	LB_LIT(b, ",\"upstream.tries\":[");
	for (k = 0; k < pr->pr_upstream.n_att; k++) {
		const struct proxy_attempt *a = &pr->pr_att[k];
		const struct upstream_target *t = upstream_group_target(
		    pr->route->group, a->target);

		if (k > 0)
			LB_LIT(b, ",");
		LB_LIT(b, "{\"address\":\"");
		lb_json(b, t != NULL ? t->name : "");
		if (a->outcome != NULL) {
			LB_LIT(b, "\",\"error\":\"");
			lb_str(b, a->outcome);
			LB_LIT(b, "\"");
		} else {
			LB_LIT(b, "\",\"status\":");
			lb_u64(b, (uint64_t)a->status);
		}
		LB_LIT(b, ",\"duration\":");
		lb_u64(b, a->dur_ns);
		LB_LIT(b, "}");
	}
	LB_LIT(b, "]");
}

/*
 * The JSON line: Datadog's standard attributes as flat dotted keys
 * (docs/configuration.md, "Access log").  Log-trace correlation wants
 * dd.trace_id as the decimal string of the low 64 bits of the trace id
 * and dd.span_id in decimal ("Correlate Logs and Traces" and "Trace and
 * Span ID Formats" of Datadog's docs); the whole 128-bit id goes to
 * trace_id in hex for OpenTelemetry-style tooling.
 */
static size_t
proxy_access_json(struct proxy_req *pr, uint64_t dur_ns, char *line,
    size_t size)
{
	const struct config_tracing *t = &pr->wgen->cfg->tracing;
	struct proxy_lbuf b = { line, line + size - 3 };
	const char *level = proxy_log_level(pr->status);
	char num[24];
	size_t n;

	LB_LIT(&b, "{\"timestamp\":\"");
	lb_str(&b, pr->pl->log_iso);
	n = util_fmt_u64(pr->start_us / 1000 % 1000 + 1000, num);
	num[0] = '.';			/* ".mmm" from "1mmm" */
	lb_add(&b, num, n);
	LB_LIT(&b, "Z\",\"status\":\"");
	lb_str(&b, level);
	LB_LIT(&b, "\",\"level\":\"");
	lb_str(&b, level);
	LB_LIT(&b, "\",\"message\":\"");
	lb_json(&b, pr->pr_client.method_name);
	LB_LIT(&b, " ");
	lb_json(&b, pr->pr_client.path);
	LB_LIT(&b, " ");
	lb_u64(&b, (uint64_t)pr->status);
	LB_LIT(&b, "\",\"http.method\":\"");
	lb_json(&b, pr->pr_client.method_name);
	LB_LIT(&b, "\",\"http.url\":\"");
	lb_json(&b, pr->pr_log.url);
	LB_LIT(&b, "\",\"http.url_details.path\":\"");
	lb_json(&b, pr->pr_client.path);
	/* Datadog's http.version: "1.0", "1.1" or "2". */
	if (pr->protocol == EXCHANGE_P_H2)
		LB_LIT(&b, "\",\"http.version\":\"2");
	else {
		LB_LIT(&b, "\",\"http.version\":\"1.");
		lb_u64(&b, (uint64_t)pr->http_minor);
	}
	LB_LIT(&b, "\",\"http.status_code\":");
	lb_u64(&b, (uint64_t)pr->status);
	if (pr->pr_log.ua[0] != '\0') {
		LB_LIT(&b, ",\"http.useragent\":\"");
		lb_json(&b, pr->pr_log.ua);
		LB_LIT(&b, "\"");
	}
	if (pr->pr_log.referer[0] != '\0') {
		LB_LIT(&b, ",\"http.referer\":\"");
		lb_json(&b, pr->pr_log.referer);
		LB_LIT(&b, "\"");
	}
	LB_LIT(&b, ",\"network.client.ip\":\"");
	lb_json(&b, pr->pr_log.client_ip);
	LB_LIT(&b, "\",\"network.bytes_read\":");
	lb_u64(&b, pr->bytes_in);
	LB_LIT(&b, ",\"network.bytes_written\":");
	lb_u64(&b, pr->bytes_out);
	LB_LIT(&b, ",\"duration\":");
	lb_u64(&b, dur_ns);
	if (pr->up_used) {
		LB_LIT(&b, ",\"upstream.address\":\"");
		lb_json(&b, proxy_upstream_name(pr));
		LB_LIT(&b, "\",\"upstream.url\":\"");
		lb_json(&b, proxy_upstream_url(pr));
		LB_LIT(&b, "\"");
		if (pr->up_status != 0) {
			LB_LIT(&b, ",\"upstream.status\":");
			lb_u64(&b, (uint64_t)pr->up_status);
		}
		LB_LIT(&b, ",\"upstream.attempts\":");
		lb_u64(&b, pr->up_attempts);
		if (pr->pr_upstream.n_att > 1)
			proxy_access_tries(pr, &b);
	}
	LB_LIT(&b, ",\"request_id\":\"");
	lb_str(&b, pr->id);
	LB_LIT(&b, "\",\"route\":\"");
	if (pr->route != NULL)
		lb_json(&b, pr->route->conf->name);
	LB_LIT(&b, "\"");
	if (pr->span != NULL) {
		static const char hex[] = "0123456789abcdef";
		char tid[32];
		uint64_t hi = pr->span->trace_id.high;
		uint64_t lo = pr->span->trace_id.low;
		int i;

		LB_LIT(&b, ",\"dd.trace_id\":\"");
		lb_u64(&b, lo);
		LB_LIT(&b, "\",\"dd.span_id\":\"");
		lb_u64(&b, pr->span->span_id);
		for (i = 15; i >= 0; i--, hi >>= 4, lo >>= 4) {
			tid[i] = hex[hi & 0xf];
			tid[16 + i] = hex[lo & 0xf];
		}
		LB_LIT(&b, "\",\"trace_id\":\"");
		lb_add(&b, tid, sizeof tid);
		LB_LIT(&b, "\"");
	}
	LB_LIT(&b, ",\"dd.service\":\"");
	lb_json(&b, t->service != NULL ? t->service : "");
	LB_LIT(&b, "\",\"dd.env\":\"");
	lb_json(&b, t->env != NULL ? t->env : "");
	LB_LIT(&b, "\",\"dd.version\":\"");
	lb_json(&b, t->version != NULL ? t->version : "");
	/* The room kept at the end: the line always closes. */
	memcpy(b.p, "\"}\n", 3);
	return (size_t)(b.p + 3 - line);
}

/* Write the access-log line of pr in the configured format. */
static void
proxy_access_log(struct proxy_req *pr, uint64_t dur_ns)
{
	/* Fits the longest fields escaped (pr_log's bounds, 6 bytes each). */
	char line[12288];
	size_t n;

	if (!log_access_enabled())
		return;
	proxy_log_time(pr->pl, (int64_t)(pr->start_us / 1000000));
	if (pr->wgen->cfg->logging.access_log_format ==
	    CONFIG_ACCESS_COMBINED)
		n = proxy_access_combined(pr, line, sizeof line);
	else
		n = proxy_access_json(pr, dur_ns, line, sizeof line);
	log_access_write(line, n);
}

/*
 * The one teardown: log, count, release.  Called exactly once per
 * request; pr is freed on return.
 */
static void
proxy_req_close(struct proxy_req *pr, const char *reason)
{
	struct proxy_pipeline *pl = pr->pl;
	uint64_t dur_ns = util_mono_ns() - pr->start_ns;
	uint64_t dur_us = dur_ns / 1000;

	log_debug("%s: request %s: %s", __func__, pr->id, reason);
	proxy_req_set_state(pr, PROXY_ST_DONE);
	if (pr->pr_upstream.ureq != NULL) {
		upstream_req_cancel(pr->pr_upstream.ureq);
		pr->pr_upstream.ureq = NULL;
	}
	proxy_upstream_release(pr, -1);
	if (pr->pr_upstream.copy != NULL) {
		evbuffer_free(pr->pr_upstream.copy);
		pr->pr_upstream.copy = NULL;
	}
	if (pr->span != NULL && pr->pr_upstream.n_att > 1)
		proxy_attempt_tags(pr);
	metrics_request(pl->metrics, pr->route != NULL ?
	    pr->route->slot : 0, pr->status, dur_us, pr->bytes_out);
	if (pr->span != NULL)
		metrics_exemplar(pl->metrics, METRICS_H_REQUEST, pr->route !=
		    NULL ? pr->route->slot : 0, dur_us,
		    pr->span->trace_id.high, pr->span->trace_id.low,
		    (pr->start_us + dur_us) / 1000);
	metrics_add(pl->metrics, pr->protocol == EXCHANGE_P_H2 ?
	    METRICS_REQ_H2 : METRICS_REQ_H1, 1);
	if (pr->pr_rum.on)
		proxy_rum_count(pr, dur_us);
	proxy_access_log(pr, dur_ns);
	proxy_trace_finish(pr);
	/* Nothing is called back: the front-end accounts for the exchange. */
	worker_gen_unref(pr->wgen);
	proxy_req_put(pl, pr);
}

const char *
proxy_date(struct proxy_pipeline *pl)
{
	time_t now = time(NULL);

	if ((int64_t)now != pl->date_sec) {
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(pl->date, sizeof pl->date,
		    "%a, %d %b %Y %H:%M:%S GMT", &tm);
		pl->date_sec = (int64_t)now;
	}
	return pl->date;
}

struct proxy_pipeline *
proxy_pipeline_new(unsigned id, struct metrics *metrics,
    struct exporter *exporter, struct exporter_queue *xq)
{
	struct proxy_pipeline *pl;
	const char *errstr = NULL;
	struct timespec rt, mt;

	pl = xcalloc(1, sizeof *pl);
	pl->id = id;
	pl->metrics = metrics;
	/* The relay's families are always listed (docs/metrics.md). */
	rum_intake_metrics_register();
	pl->exporter = exporter;
	pl->xq = xq;
	pl->id_salt = (uint32_t)random();
	if (ids_rng_init(&pl->rng, &errstr) != 0)
		fatalx("worker %u: %s", id, errstr);
	pl->extract = xmalloc(sizeof *pl->extract);
	if ((pl->ubuf = evbuffer_new()) == NULL)
		fatalx("worker %u: out of memory", id);
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	pl->wall_offset_ns = ((int64_t)rt.tv_sec - (int64_t)mt.tv_sec) *
	    1000000000 + ((int64_t)rt.tv_nsec - (int64_t)mt.tv_nsec);
	pl->date_sec = -1;
	pl->log_sec = -1;
	return pl;
}

void
proxy_pipeline_set_gen(struct proxy_pipeline *pl, struct worker_gen *wg)
{
	size_t i;

	pl->wgen = wg;
	/* The relay's metrics families, once a generation has a relay. */
	for (i = 0; i < wg->n_routes; i++)
		if (wg->routes[i].conf->rum.enabled)
			rum_intake_metrics_on();
}

void
proxy_pipeline_set_exporter(struct proxy_pipeline *pl,
    struct exporter *exporter, struct exporter_queue *xq)
{
	pl->exporter = exporter;
	pl->xq = xq;
}

void
proxy_pipeline_set_debug(struct proxy_pipeline *pl, proxy_debug_fn fn)
{
	pl->debug = fn;
}

void
proxy_pipeline_free(struct proxy_pipeline *pl)
{
	if (pl == NULL)
		return;
	proxy_trace_pool_free(pl);
	while (pl->req_pool != NULL) {
		struct proxy_req *pr = pl->req_pool;

		pl->req_pool = pr->pool_next;
		free(pr);
	}
	free(pl->extract);
	evbuffer_free(pl->ubuf);
	free(pl->hfields);
	free(pl);
}
