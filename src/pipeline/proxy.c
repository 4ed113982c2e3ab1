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

#include "cors.h"
#include "exchange.h"
#include "exporter.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "proxy_int.h"
#include "propagation.h"
#include "span.h"
#include "upstream.h"
#include "util.h"

static const char *const proxy_state_names[] = {
	"recv", "upstream", "relay", "done",
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
proxy_hop_by_hop(const char *name, const char (*tokens)[40], size_t ntokens)
{
	size_t i;

	switch (name[0] | 0x20) {
	case 'c':
		if (util_strcaseeq(name, "connection"))
			return true;
		break;
	case 'k':
		if (util_strcaseeq(name, "keep-alive"))
			return true;
		break;
	case 'p':
		if (util_strncaseeq(name, "proxy-", 6))
			return true;
		break;
	case 't':
		if (util_strcaseeq(name, "te") ||
		    util_strcaseeq(name, "trailer") ||
		    util_strcaseeq(name, "transfer-encoding"))
			return true;
		break;
	case 'u':
		if (util_strcaseeq(name, "upgrade"))
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
 * Serialize the upstream request of pr into out: request line, headers
 * minus hop-by-hop, X-Forwarded-*, Content-Length, body (moved).
 */
static void
proxy_build_upstream_request(struct proxy_req *pr, struct evbuffer *out)
{
	const struct exchange *req = pr->pr_client.req;
	struct evbuffer *body = req->body;
	const struct config_upstream *up = &pr->route->conf->upstream;
	char tokens[16][40], num[32];
	struct proxy_hbuf *hb, hbs;
	const char *host = NULL, *xff = NULL;
	size_t ntokens, blen, i;
	bool xff_multi = false;

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

		if (proxy_hop_by_hop(k, (const char (*)[40])tokens, ntokens))
			continue;
		/* Known tracing headers are replaced by ours, never kept. */
		if (pr->span != NULL && propagation_is_known_header(k,
		    f->name_len))
			continue;
		switch (k[0] | 0x20) {
		case 'c':
			if (util_strcaseeq(k, "content-length"))
				continue;
			break;
		case 'e':
			/* The front-end answered 100-continue; the body is here. */
			if (util_strcaseeq(k, "expect"))
				continue;
			break;
		case 'h':
			if (host == NULL && util_strcaseeq(k, "host"))
				host = f->value;
			break;
		case 'x':
			if (util_strcaseeq(k, "x-forwarded-for")) {
				if (xff != NULL)
					xff_multi = true;
				else
					xff = f->value;
				continue;
			}
			if (util_strcaseeq(k, "x-forwarded-proto") ||
			    util_strcaseeq(k, "x-forwarded-host"))
				continue;
			break;
		default:
			break;
		}
		proxy_hbuf_add(hb, k, f->name_len);
		proxy_hbuf_add(hb, ": ", 2);
		proxy_hbuf_add(hb, f->value, f->value_len);
		proxy_hbuf_add(hb, "\r\n", 2);
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
	proxy_hbuf_add(hb, "\r\nX-Forwarded-Proto: ", 21);
	proxy_hbuf_str(hb, req->tls ? "https" : "http");
	if (host != NULL) {
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
		int n = snprintf(num, sizeof num, "Content-Length: %zu\r\n",
		    blen);

		proxy_hbuf_add(hb, num, (size_t)n);
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

		switch (k[0] | 0x20) {
		case 'h':
			if (h->host == NULL && util_strcaseeq(k, "host"))
				h->host = kv->value;
			break;
		case 'o':
			if (h->origin == NULL && util_strcaseeq(k, "origin"))
				h->origin = kv->value;
			break;
		case 'a':
			if (!util_strncaseeq(k, "access-control-request-", 23))
				break;
			if (util_strcaseeq(k + 23, "method"))
				h->acrm = kv->value;
			else if (util_strcaseeq(k + 23, "headers"))
				h->acrh = kv->value;
			else if (util_strcaseeq(k + 23, "private-network"))
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

	if ((pr = malloc(sizeof *pr)) != NULL)
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
	pr->route = proxy_route_find(pr->wgen, h.host, pr->pr_client.path);
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
	if (!preflight || pr->wgen->cfg->tracing.trace_preflights)
		proxy_trace_start(pr, &h, preflight);
	if (proxy_cors(pr, &h))
		return;
	if (pr->pr_client.method == EXCHANGE_M_CONNECT ||
	    pr->pr_client.method == EXCHANGE_M_TRACE) {
		proxy_send_error(pr, 405, "method not allowed by the gateway");
		return;
	}

	if (pr->route->pool == NULL) {
		proxy_send_error(pr, 502, "the upstream address could not be "
		    "resolved");
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
	proxy_req_set_state(pr, PROXY_ST_UPSTREAM);
	pr->pr_upstream.ureq = upstream_request(pr->route->pool, ubuf,
	    pr->pr_client.method == EXCHANGE_M_HEAD, idempotent,
	    &proxy_upstream_cbs, pr);
	evbuffer_drain(ubuf, evbuffer_get_length(ubuf));
	if (pr->pr_upstream.ureq == NULL) {
		proxy_send_error(pr, 503, "out of memory");
		return;
	}
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

		if (proxy_hop_by_hop(kv->key, (const char (*)[40])tokens,
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

/* The exchange is over (complete or failed). */
static void
proxy_upstream_done_cb(struct upstream_req *ureq, enum upstream_err err,
    const char *errstr, bool head_sent, void *arg)
{
	struct proxy_req *pr = arg;
	struct exchange *x = pr->x;
	enum metrics_upstream_err kind;

	pr->pr_upstream.ureq = NULL;
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
	pr->up_sent_ns = upstream_req_sent_ns(ureq);
	pr->up_first_ns = upstream_req_first_byte_ns(ureq);
	pr->error_type = err == UPSTREAM_ERR_TIMEOUT ? "upstream.timeout" :
	    err == UPSTREAM_ERR_RESET ? "upstream.reset" :
	    err == UPSTREAM_ERR_PROTOCOL ? "upstream.protocol" :
	    err == UPSTREAM_ERR_TLS ? "upstream.tls" :
	    err == UPSTREAM_ERR_NOMEM ? "gateway.nomem" : "upstream.connect";
	snprintf(pr->error_msg, sizeof pr->error_msg, "%s",
	    errstr != NULL ? errstr : upstream_err_name(err));
	proxy_rlog_warnx(pr, "upstream %s: %s", pr->route->conf->upstream.url,
	    errstr != NULL ? errstr : upstream_err_name(err));

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

/* Write the JSON access-log line of pr. */
static void
proxy_access_log(struct proxy_req *pr, uint64_t dur_us)
{
	const struct config_tracing *t = &pr->wgen->cfg->tracing;
	char line[3072], path[768], ts[40], corr[768];
	struct tm tm;
	time_t sec = (time_t)(pr->start_us / 1000000);
	int n;

	if (!log_access_enabled())
		return;
	gmtime_r(&sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	proxy_json_escape(path, sizeof path, pr->pr_client.path);
	corr[0] = '\0';
	if (pr->span != NULL) {
		/*
		 * Datadog log correlation: dd.trace_id is the low 64 bits in
		 * decimal, dd.span_id the span id in decimal; the 128-bit id
		 * in hex for OpenTelemetry-style tooling.
		 */
		char esc[3][160];

		proxy_json_escape(esc[0], sizeof esc[0], t->service);
		proxy_json_escape(esc[1], sizeof esc[1], t->env);
		proxy_json_escape(esc[2], sizeof esc[2], t->version);
		snprintf(corr, sizeof corr,
		    ",\"dd.trace_id\":\"%" PRIu64 "\",\"dd.span_id\":\"%"
		    PRIu64 "\",\"trace_id\":\"%016" PRIx64 "%016" PRIx64 "\","
		    "\"dd.service\":\"%s\",\"dd.env\":\"%s\","
		    "\"dd.version\":\"%s\"",
		    pr->span->trace_id.low, pr->span->span_id,
		    pr->span->trace_id.high, pr->span->trace_id.low, esc[0],
		    esc[1], esc[2]);
	}
	n = snprintf(line, sizeof line,
	    "{\"time\":\"%s.%03uZ\",\"method\":\"%s\",\"path\":\"%s\","
	    "\"status\":%d,\"bytes\":%" PRIu64 ",\"duration_ms\":%.3f,"
	    "\"upstream\":\"%s\",\"client\":\"%s\",\"request_id\":\"%s\","
	    "\"route\":\"%s\",\"protocol\":\"%s\"%s}\n",
	    ts, (unsigned)(pr->start_us / 1000 % 1000),
	    pr->pr_client.method_name, path, pr->status, pr->bytes_out,
	    (double)dur_us / 1000.0,
	    pr->route != NULL ? pr->route->conf->upstream.url : "",
	    pr->x != NULL ? pr->x->client : "", pr->id,
	    pr->route != NULL ? pr->route->conf->name : "",
	    exchange_protocol_name(pr->protocol), corr);
	if (n > 0)
		log_access_write(line, (size_t)n < sizeof line ? (size_t)n :
		    sizeof line - 1);
}

/*
 * The one teardown: log, count, release.  Called exactly once per
 * request; pr is freed on return.
 */
static void
proxy_req_close(struct proxy_req *pr, const char *reason)
{
	struct proxy_pipeline *pl = pr->pl;
	uint64_t dur_us = (util_mono_ns() - pr->start_ns) / 1000;

	log_debug("%s: request %s: %s", __func__, pr->id, reason);
	proxy_req_set_state(pr, PROXY_ST_DONE);
	if (pr->pr_upstream.ureq != NULL) {
		upstream_req_cancel(pr->pr_upstream.ureq);
		pr->pr_upstream.ureq = NULL;
	}
	metrics_request(pl->metrics, pr->route != NULL ?
	    pr->route->slot : 0, pr->status, dur_us, pr->bytes_out);
	metrics_add(pl->metrics, pr->protocol == EXCHANGE_P_H2 ?
	    METRICS_REQ_H2 : METRICS_REQ_H1, 1);
	proxy_access_log(pr, dur_us);
	proxy_trace_finish(pr);
	/* Nothing is called back: the front-end accounts for the exchange. */
	worker_gen_unref(pr->wgen);
	free(pr);
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
	return pl;
}

void
proxy_pipeline_set_gen(struct proxy_pipeline *pl, struct worker_gen *wg)
{
	pl->wgen = wg;
}

void
proxy_pipeline_free(struct proxy_pipeline *pl)
{
	if (pl == NULL)
		return;
	proxy_trace_pool_free(pl);
	free(pl->extract);
	evbuffer_free(pl->ubuf);
	free(pl->hfields);
	free(pl);
}
