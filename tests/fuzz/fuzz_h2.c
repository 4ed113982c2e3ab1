/*
 * fuzz_h2.c -- libFuzzer harness for the HTTP/2 front-end (issue 12 item
 * 5): a client's bytes through conn.c's preface detection, h2.c (nghttp2)
 * and the real pipeline (proxy.c: routes, CORS, propagation, spans, the
 * gateway's own error replies) to a fake upstream in the same loop.
 *
 * Input: the bytes a client sends on one h2c connection, starting with
 * the connection preface (RFC 9113 3.4); tests/fuzz/make-h2-seeds.py
 * writes the seeds with python3-h2.  The input is written to one end of
 * a socketpair in pieces whose sizes come from the input, the worker's
 * loop turning between them (so frames arrive cut anywhere), then the
 * loop runs until the gateway closed the connection, or no more output
 * comes (4 turns with nothing in flight, 16 with an exchange waiting), or
 * a bound of turns passed; what is left is closed as a worker exit does.
 *
 * Behind the gateway (server.http2_cleartext: true, request bodies up to
 * 64 KiB (server.limits.max_body_bytes, so that a seed can pass it), CORS
 * for http://localhost:3000, datadog + tracecontext + baggage both ways,
 * every request sampled, exporter none):
 *   /dead...  a port with nothing listening (502);
 *   anything else: the fake upstream, which reads a request head and
 *             answers by its path and closes: "/big" 100 KB (flow
 *             control, the pause of upstream reads), "/chunked" a
 *             chunked body, "/204" no body, else 200 with 5 bytes and
 *             the hop-by-hop fields an HTTP/1.1 backend sends
 *             (Connection, Keep-Alive, Transfer-Encoding must not reach
 *             an h2 client).
 *
 * Properties (abort() when broken).  An input that does not start with
 * the whole preface stays HTTP/1.1: the answer, if any, starts with
 * "HTTP/1.1 ".  Otherwise every byte the gateway wrote back is read as
 * HTTP/2 frames: the first frame is the server's
 * SETTINGS on stream 0; every frame header is whole and no frame is
 * larger than the largest SETTINGS_MAX_FRAME_SIZE the client announced
 * (16384 if none, RFC 9113 4.2); every frame is on stream 0 or on a
 * client stream (odd id: the gateway never pushes); after a GOAWAY no
 * HEADERS opens a stream above its last-stream-id; the header blocks,
 * decoded with nghttp2's HPACK inflater, are responses with exactly one
 * :status first (three digits, 1xx..5xx), no other pseudo-field, no
 * upper-case name, no connection-specific field (RFC 9113 8.2.2), no CR,
 * LF or NUL in a value.  ASan/UBSan/LSan catch the rest; the harness
 * also checks that the front-end counts no connection and no exchange in
 * flight after each input (nothing leaked or left behind).
 *
 * Build: as the other harnesses (tests/fuzz/README.md), with nghttp2.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "config.h"
#include "conn.h"
#include "cors.h"
#include "group.h"
#include "h2.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "propagation.h"
#include "proxy.h"
#include "server.h"
#include "upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_TURNS	300		/* loop turns in all (bounds an input) */
#define FUZZ_OUT_MAX	(4u << 20)	/* what the gateway may write back */
#define FUZZ_UP_CONNS	64

static char *const no_env[] = { NULL };

/* The gateway side, set up once per process. */
static struct {
	bool ready;
	struct config *cfg;
	struct server_gen gen;
	struct worker_gen wgen;
	struct worker_route routes[2];
	struct upstream_target targets[2];
	struct propagation_conf props[2];
	struct event_base *base;
	struct metrics *metrics;
	struct proxy_pipeline *pl;
	struct conn_front front;
	unsigned nconns;
} g;

/* The fake upstream: a listener and its connections, in g.base. */
struct up_conn {
	int fd;
	struct event *ev;
	char buf[8192];
	size_t len;
	bool answered;
};
static int up_fd = -1;
static struct event *up_ev;
static struct up_conn up[FUZZ_UP_CONNS];
/* Request heads the fake upstream got for the current input, and the
 * value of the last Cookie field among them (for h2_outcomes). */
static unsigned up_requests;
static char up_cookie[256];

static void
fuzz_request_done(void *owner)
{
	(void)owner;
}

static void
fuzz_closed(void *owner)
{
	(void)owner;
	g.nconns--;
}

static const struct conn_events fuzz_events = {
	fuzz_request_done,
	fuzz_closed,
};

static int
listen_local(unsigned *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		abort();
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		abort();
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
up_close(struct up_conn *u)
{
	event_free(u->ev);
	close(u->fd);
	u->fd = -1;
	u->ev = NULL;
}

/* The answer of the fake upstream to the head in u->buf. */
static void
up_answer(struct up_conn *u)
{
	static char big[100 * 1024 + 128];
	const char *path = strchr(u->buf, ' ');
	const char *r;
	size_t n;

	if (path != NULL && strncmp(path, " /big", 5) == 0) {
		if (big[0] == '\0') {
			n = (size_t)snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\n"
			    "Content-Length: %u\r\nConnection: close\r\n\r\n",
			    100 * 1024);
			memset(big + n, 'b', 100 * 1024);
			big[n + 100 * 1024] = '\0';
		}
		r = big;
	} else if (path != NULL && strncmp(path, " /chunked", 9) == 0) {
		r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		    "Connection: close\r\nTrailer: x-sum\r\n\r\n"
		    "5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 1\r\n\r\n";
	} else if (path != NULL && strncmp(path, " /204", 5) == 0) {
		r = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
	} else {
		r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
		    "Connection: keep-alive, close\r\nKeep-Alive: timeout=5\r\n"
		    "Vary: Accept\r\nX-Backend: fake\r\n\r\nhello";
	}
	/* Blocking is fine: the loopback buffer takes it, or the gateway
	 * reads it on the next turn; a short write just ends the reply. */
	n = strlen(r);
	(void)!write(u->fd, r, n);
	u->answered = true;
	up_requests++;
	if ((path = strcasestr(u->buf, "\r\ncookie: ")) != NULL) {
		path += 10;
		n = strcspn(path, "\r");
		snprintf(up_cookie, sizeof up_cookie, "%.*s", (int)n, path);
	}
	shutdown(u->fd, SHUT_WR);
}

static void
up_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_conn *u = arg;
	ssize_t n;

	(void)fd;
	(void)what;
	n = read(u->fd, u->buf + u->len, sizeof u->buf - 1 - u->len);
	if (n <= 0) {
		up_close(u);
		return;
	}
	u->len += (size_t)n;
	u->buf[u->len] = '\0';
	if (!u->answered && strstr(u->buf, "\r\n\r\n") != NULL)
		up_answer(u);
	if (u->len == sizeof u->buf - 1)
		u->len = 0;		/* a body we do not read */
}

static void
up_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	int c;
	size_t i;

	(void)what;
	(void)arg;
	if ((c = accept(fd, NULL, NULL)) == -1)
		return;
	for (i = 0; i < FUZZ_UP_CONNS && up[i].fd != -1; i++)
		;
	if (i == FUZZ_UP_CONNS) {
		close(c);		/* the gateway sees a reset: 502 */
		return;
	}
	(void)fcntl(c, F_SETFL, O_NONBLOCK);
	memset(&up[i], 0, sizeof up[i]);
	up[i].fd = c;
	up[i].ev = event_new(g.base, c, EV_READ | EV_PERSIST, up_read_cb,
	    &up[i]);
	event_add(up[i].ev, NULL);
}

static void
fuzz_init(void)
{
	char yaml[2048], *errors = NULL, *cause = NULL;
	enum config_style styles[16];
	unsigned port, dead;
	size_t i, n_styles = 0, n_addrs;
	struct upstream_addr *addrs;
	int dfd;

	/* Refusals log warnings: keep the fuzzer's output for findings. */
	log_set_level(LOG_LEVEL_ERROR);
	/* As the gateway's main(): a write to a closed peer is an error
	 * return, not a signal (the fake upstream writes too). */
	signal(SIGPIPE, SIG_IGN);
	g.base = event_base_new();
	if (g.base == NULL)
		abort();
	for (i = 0; i < FUZZ_UP_CONNS; i++)
		up[i].fd = -1;
	up_fd = listen_local(&port);
	up_ev = event_new(g.base, up_fd, EV_READ | EV_PERSIST, up_accept_cb,
	    NULL);
	event_add(up_ev, NULL);
	dfd = listen_local(&dead);
	close(dfd);
	snprintf(yaml, sizeof yaml,
	    "server:\n"
	    "  http2_cleartext: true\n"
	    "  limits: {max_body_bytes: 64k}\n"
	    "routes:\n"
	    "  - name: dead\n"
	    "    path_prefix: /dead\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\"}\n"
	    "  - name: api\n"
	    "    path_prefix: /\n"
	    "    upstream: {url: \"http://127.0.0.1:%u\", timeout: 2s}\n"
	    "cors:\n"
	    "  allowed_origins: [\"http://localhost:3000\"]\n"
	    "  allowed_methods: [GET, HEAD, POST]\n"
	    "propagation:\n"
	    "  extract: [datadog, tracecontext, baggage]\n"
	    "  inject: [datadog, tracecontext, baggage]\n"
	    "tracing: {sample_rate: 1}\n"
	    "exporter: {type: none}\n", dead, port);
	if (config_load_string("fuzz_h2.yaml", yaml, strlen(yaml), no_env,
	    &g.cfg, &errors) != 0) {
		fprintf(stderr, "fuzz_h2: %s\n", errors);
		abort();
	}
	for (i = 0; i < g.cfg->propagation.n_extract; i++)
		styles[n_styles++] = g.cfg->propagation.extract[i];
	for (i = 0; i < g.cfg->propagation.n_inject; i++)
		styles[n_styles++] = g.cfg->propagation.inject[i];
	g.gen.cfg = g.cfg;
	g.gen.busy_timeout_ms = 5000;
	g.gen.default_cors = cors_policy_new(&g.cfg->cors, styles, n_styles,
	    NULL, NULL);
	if (g.gen.default_cors == NULL)
		abort();
	g.wgen.refs = 1;		/* the harness's: never freed */
	g.wgen.gen = &g.gen;
	g.wgen.cfg = g.cfg;
	g.wgen.default_cors = g.gen.default_cors;
	g.wgen.routes = g.routes;
	g.wgen.n_routes = g.cfg->n_routes;
	for (i = 0; i < g.cfg->n_routes; i++) {
		propagation_conf_init(&g.props[i], g.cfg);
		g.routes[i].conf = &g.cfg->routes[i];
		g.routes[i].prop = &g.props[i];
		g.routes[i].cors = g.gen.default_cors;
		if (upstream_resolve(&g.cfg->routes[i].upstream, &addrs,
		    &n_addrs, &cause) != 0)
			abort();
		/* One target: the route's one server, its first address
		 * (as server_gen_new builds a group). */
		memset(&g.targets[i], 0, sizeof g.targets[i]);
		g.targets[i].addr = addrs[0];
		g.targets[i].conf = &g.cfg->routes[i].upstream.servers[0].up;
		g.targets[i].weight = 1;
		upstream_addr_name(&addrs[0], g.targets[i].name,
		    sizeof g.targets[i].name);
		g.targets[i].server = health_server_get(g.cfg->routes[i].name,
		    g.targets[i].name);
		g.routes[i].group = upstream_group_new(g.base,
		    &g.cfg->routes[i].upstream, &g.targets[i], 1, NULL, 1,
		    &cause);
		free(addrs);
		if (g.routes[i].group == NULL)
			abort();
	}
	g.metrics = metrics_new("fuzz");
	if (log_access_open("off", &cause) != 0)
		abort();
	g.pl = proxy_pipeline_new(0, g.metrics, NULL, NULL);
	proxy_pipeline_set_gen(g.pl, &g.wgen);
	conn_front_init(&g.front, g.base, g.metrics, &proxy_exchange, g.pl,
	    &fuzz_events, &g);
	conn_front_set_gen(&g.front, g.cfg, 5000);
	g.ready = true;
}

/* ---- The checks on what the gateway wrote back. ---- */

/* What the last input got back (TS_FUZZ_VERBOSE=1 prints it). */
static struct {
	size_t frames, heads, trailers, goaways, rsts;
	uint32_t goaway_error;		/* of the last GOAWAY */
	char goaway_debug[128];		/* its debug data */
	char settings[128];		/* the gateway's first SETTINGS, "id:value,..." */
	int http1_status;		/* the HTTP/1.1 answer's status */
	char statuses[256];
	size_t slen;
} seen;

static uint32_t
get24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static uint32_t
get31(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3]) & 0x7fffffffu;
}

/* The largest SETTINGS_MAX_FRAME_SIZE in the client's SETTINGS frames
 * (the client bytes after the preface, walked as frames while they
 * parse). */
static uint32_t
client_max_frame(const uint8_t *d, size_t n)
{
	uint32_t max = 16384;
	size_t off = H2_PREFACE_LEN;

	while (n - off >= 9) {
		uint32_t len = get24(d + off);
		size_t i;

		if (len > n - off - 9)
			break;
		if (d[off + 3] == NGHTTP2_SETTINGS)
			for (i = 0; i + 6 <= len; i += 6) {
				const uint8_t *s = d + off + 9 + i;
				uint32_t v = (uint32_t)s[2] << 24 |
				    (uint32_t)s[3] << 16 | (uint32_t)s[4] << 8 |
				    s[5];

				if ((s[0] << 8 | s[1]) ==
				    NGHTTP2_SETTINGS_MAX_FRAME_SIZE && v > max &&
				    v <= 16777215)
					max = v;
			}
		off += 9 + len;
	}
	return max;
}

static bool
connection_specific(const uint8_t *name, size_t len)
{
	static const char *const names[] = {
		"connection", "keep-alive", "proxy-connection",
		"transfer-encoding", "upgrade",
	};
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
			return true;
	return false;
}

/* One decoded header block of a response (or trailers when !first). */
static void
check_block(nghttp2_hd_inflater *inf, const uint8_t *blk, size_t len,
    bool trailers)
{
	bool seen_status = false, seen_regular = false;

	for (;;) {
		nghttp2_nv nv;
		int flags = 0;
		ssize_t rv;
		size_t i;

		rv = nghttp2_hd_inflate_hd2(inf, &nv, &flags, blk, len, 1);
		if (rv < 0)
			abort();	/* the gateway's HPACK did not decode */
		blk += rv;
		len -= (size_t)rv;
		if (flags & NGHTTP2_HD_INFLATE_EMIT) {
			if (nv.namelen > 0 && nv.name[0] == ':') {
				if (trailers || seen_regular || seen_status ||
				    nv.namelen != 7 ||
				    memcmp(nv.name, ":status", 7) != 0 ||
				    nv.valuelen != 3 || nv.value[0] < '1' ||
				    nv.value[0] > '5')
					abort();
				for (i = 0; i < 3; i++)
					if (nv.value[i] < '0' || nv.value[i] > '9')
						abort();
				seen_status = true;
				if (seen.slen + 4 < sizeof seen.statuses) {
					memcpy(seen.statuses + seen.slen,
					    nv.value, 3);
					seen.statuses[seen.slen + 3] = ' ';
					seen.slen += 4;
				}
			} else {
				if (!trailers && !seen_status)
					abort();	/* a field before :status */
				seen_regular = true;
				if (nv.namelen == 0 ||
				    connection_specific(nv.name, nv.namelen))
					abort();
				for (i = 0; i < nv.namelen; i++)
					if (nv.name[i] >= 'A' && nv.name[i] <= 'Z')
						abort();
				for (i = 0; i < nv.valuelen; i++)
					if (nv.value[i] == '\r' ||
					    nv.value[i] == '\n' || nv.value[i] == '\0')
						abort();
			}
		}
		if (flags & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(inf);
			break;
		}
		if (len == 0 && rv == 0)
			abort();	/* the block ended inside a field */
	}
	if (!trailers && !seen_status)
		abort();
	if (trailers)
		seen.trailers++;
	else
		seen.heads++;
}

/* Walk what the gateway wrote back as HTTP/2 frames. */
static void
check_output(const uint8_t *o, size_t n, uint32_t max_frame)
{
	nghttp2_hd_inflater *inf;
	uint8_t *blk = NULL;
	size_t blk_len = 0, off = 0;
	uint32_t blk_stream = 0, goaway_last = 0x7fffffffu;
	bool in_block = false, first = true;
	/* The streams a response head went out on (ids are sparse). */
	static uint32_t *headed;
	static size_t headed_cap;
	size_t nheaded = 0;

	if (n == 0)
		return;
	if (nghttp2_hd_inflate_new(&inf) != 0)
		abort();
	/* Whatever table size the client allowed, the decoder accepts it. */
	nghttp2_hd_inflate_change_table_size(inf, UINT32_MAX);
	while (off < n) {
		uint32_t len, sid;
		uint8_t type, flags;
		const uint8_t *p;
		size_t pad = 0, skip = 0;

		if (n - off < 9)
			break;		/* cut by the close: allowed */
		len = get24(o + off);
		type = o[off + 3];
		flags = o[off + 4];
		sid = get31(o + off + 5);
		if (len > max_frame)
			abort();
		seen.frames++;
		if (type == NGHTTP2_RST_STREAM)
			seen.rsts++;
		if (type == NGHTTP2_GOAWAY)
			seen.goaways++;
		if (first && (type != NGHTTP2_SETTINGS || sid != 0 ||
		    (flags & NGHTTP2_FLAG_ACK)))
			abort();	/* the server preface is SETTINGS */
		if (first && n - off - 9 >= len) {
			size_t k, sl = 0;

			for (k = 0; k + 6 <= len && sl + 24 < sizeof seen.settings;
			    k += 6) {
				const uint8_t *e = o + off + 9 + k;

				sl += (size_t)snprintf(seen.settings + sl,
				    sizeof seen.settings - sl, "%s%u:%lu",
				    sl > 0 ? "," : "", (unsigned)(e[0] << 8 | e[1]),
				    (unsigned long)e[2] << 24 |
				    (unsigned long)e[3] << 16 |
				    (unsigned long)e[4] << 8 | e[5]);
			}
		}
		first = false;
		if (sid != 0 && sid % 2 == 0)
			abort();	/* we never push */
		if (n - off - 9 < len)
			break;
		p = o + off + 9;
		if (in_block && (type != NGHTTP2_CONTINUATION || sid != blk_stream))
			abort();	/* a header block is contiguous */
		switch (type) {
		case NGHTTP2_HEADERS:
			if (sid == 0)
				abort();
			if (flags & NGHTTP2_FLAG_PADDED) {
				if (len < 1)
					abort();
				pad = p[0];
				skip = 1;
			}
			if (flags & NGHTTP2_FLAG_PRIORITY)
				skip += 5;
			if (skip + pad > len)
				abort();
			if (sid > goaway_last) {
				/* No new stream after our GOAWAY: a stream
				 * above it was never accepted. */
				abort();
			}
			free(blk);
			blk_len = len - skip - pad;
			if ((blk = malloc(blk_len + 1)) == NULL)
				abort();
			memcpy(blk, p + skip, blk_len);
			blk_stream = sid;
			in_block = !(flags & NGHTTP2_FLAG_END_HEADERS);
			break;
		case NGHTTP2_CONTINUATION: {
			uint8_t *nb;

			if (!in_block)
				abort();
			if ((nb = realloc(blk, blk_len + len + 1)) == NULL)
				abort();
			blk = nb;
			memcpy(blk + blk_len, p, len);
			blk_len += len;
			in_block = !(flags & NGHTTP2_FLAG_END_HEADERS);
			break;
		}
		case NGHTTP2_GOAWAY:
			if (sid != 0 || len < 8)
				abort();
			if (get31(p) > goaway_last)
				abort();	/* last-stream-id never grows */
			goaway_last = get31(p);
			seen.goaway_error = (uint32_t)p[4] << 24 |
			    (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
			snprintf(seen.goaway_debug, sizeof seen.goaway_debug,
			    "%.*s", (int)(len - 8), (const char *)p + 8);
			break;
		case NGHTTP2_PUSH_PROMISE:
			abort();
		default:
			break;
		}
		if ((type == NGHTTP2_HEADERS || type == NGHTTP2_CONTINUATION) &&
		    !in_block) {
			bool trailers = false;
			size_t k;

			for (k = 0; k < nheaded && !trailers; k++)
				trailers = headed[k] == blk_stream;
			check_block(inf, blk, blk_len, trailers);
			if (!trailers) {
				if (nheaded == headed_cap) {
					size_t cap = headed_cap ? headed_cap * 2 : 64;
					uint32_t *nh = realloc(headed,
					    cap * sizeof *nh);

					if (nh == NULL)
						abort();
					headed = nh;
					headed_cap = cap;
				}
				headed[nheaded++] = blk_stream;
			}
		}
		off += 9 + len;
	}
	free(blk);
	nghttp2_hd_inflate_del(inf);
}

/*
 * What the last input got back, for tests/fuzz/h2_outcomes.c:
 * "http1=S up=U" (no preface: the HTTP/1.1 side answered with status S),
 * or "status=S,S... rst=N goaway=E up=U" (the response statuses in order
 * or "-", the RST_STREAM frames, the error code of the last GOAWAY or
 * "-"); U: the requests the fake upstream received; then " cookie=V"
 * when one of them had a Cookie field (V: the last such value).
 */
static char outcome[320];
static bool outcome_http1;

const char *fuzz_h2_outcome(void);

const char *
fuzz_h2_outcome(void)
{
	size_t i;
	char st[256];

	if (outcome_http1) {
		snprintf(outcome, sizeof outcome, "http1=%d up=%u",
		    seen.http1_status, up_requests);
		return outcome;
	}
	snprintf(st, sizeof st, "%.*s", (int)seen.slen, seen.statuses);
	/* "200 431 " -> "200,431" */
	for (i = 0; st[i] != '\0'; i++)
		if (st[i] == ' ')
			st[i] = st[i + 1] == '\0' ? '\0' : ',';
	if (seen.goaways > 0)
		snprintf(outcome, sizeof outcome, "status=%s rst=%zu goaway=%u "
		    "up=%u", st[0] != '\0' ? st : "-", seen.rsts,
		    seen.goaway_error, up_requests);
	else
		snprintf(outcome, sizeof outcome, "status=%s rst=%zu goaway=- "
		    "up=%u", st[0] != '\0' ? st : "-", seen.rsts, up_requests);
	if (up_cookie[0] != '\0') {
		size_t l = strlen(outcome);

		snprintf(outcome + l, sizeof outcome - l, " cookie=%s",
		    up_cookie);
	}
	return outcome;
}

/* The gateway's first SETTINGS of the last h2 input ("3:100,4:65535"). */
const char *fuzz_h2_settings(void);

const char *
fuzz_h2_settings(void)
{
	return seen.settings;
}

/* ---- One input. ---- */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *out;
	size_t out_len = 0, off = 0;
	struct sockaddr_storage ss;
	struct server_conn *c;
	bool peer_open = true;
	int sv[2], i, quiet = 0;

	if (!g.ready)
		fuzz_init();
	up_requests = 0;
	up_cookie[0] = '\0';
	if (out == NULL && (out = malloc(FUZZ_OUT_MAX)) == NULL)
		abort();
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0 ||
	    fcntl(sv[1], F_SETFL, O_NONBLOCK) != 0)
		abort();
	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX;
	g.nconns++;
	if (conn_new(&g.front, sv[0], (struct sockaddr *)&ss, sizeof ss,
	    NULL, false) == NULL)
		abort();
	for (i = 0; i < FUZZ_TURNS; i++) {
		size_t before = out_len;

		/* Pieces of 1..64 KiB from the input's own bytes. */
		if (off < size) {
			size_t piece = 1 + ((size_t)data[off] * 257) % 65536;
			ssize_t w;

			if (piece > size - off)
				piece = size - off;
			if ((w = send(sv[1], data + off, piece,
			    MSG_NOSIGNAL)) > 0)
				off += (size_t)w;
			else if (w < 0 && errno != EAGAIN)
				off = size;	/* the gateway closed */
		}
		event_base_loop(g.base, EVLOOP_NONBLOCK);
		for (;;) {
			ssize_t r = read(sv[1], out + out_len,
			    FUZZ_OUT_MAX - out_len);

			if (r > 0) {
				out_len += (size_t)r;
				if (out_len == FUZZ_OUT_MAX)
					abort();	/* unbounded output */
				continue;
			}
			if (r == 0)
				peer_open = false;	/* the gateway closed */
			break;
		}
		if (off < size)
			continue;
		/*
		 * All sent.  The client does not half-close (the front-end
		 * may take EOF for a client gone): done once the gateway
		 * closed, or once nothing is in flight and a few turns
		 * brought no output.
		 */
		if (!peer_open || g.nconns == 0)
			break;
		quiet = out_len == before ? quiet + 1 : 0;
		/*
		 * The fake upstream runs in this loop and loopback is
		 * synchronous, so an exchange in flight that produced nothing
		 * for 16 turns waits on the client (a closed window, a body
		 * to come): stop there rather than wait out FUZZ_TURNS.
		 */
		if (quiet >= (g.front.inflight == 0 ? 4 : 16))
			break;
		if (g.front.inflight > 0 && out_len == before) {
			/* Waiting on the upstream: let it answer. */
			struct pollfd pfd = { .fd = sv[1], .events = POLLIN };

			(void)poll(&pfd, 1, 1);
		}
	}
	/* What is left is closed as a worker exit closes it. */
	h2_front_close_all(&g.front);
	while ((c = TAILQ_FIRST(&g.front.conns)) != NULL)
		conn_close(c);
	close(sv[1]);
	for (i = 0; i < 16; i++)
		event_base_loop(g.base, EVLOOP_NONBLOCK);
	if (g.nconns != 0 || g.front.inflight != 0)
		abort();
	/*
	 * Without the whole preface first the connection stayed HTTP/1.1
	 * (conn.c's guard answered): its answer is HTTP/1.1 text.
	 */
	memset(&seen, 0, sizeof seen);
	outcome_http1 = size < H2_PREFACE_LEN || memcmp(data, H2_PREFACE,
	    H2_PREFACE_LEN) != 0;
	if (outcome_http1) {
		if (out_len > 0 && (out_len < 12 ||
		    memcmp(out, "HTTP/1.1 ", 9) != 0))
			abort();
		if (out_len > 0)
			seen.http1_status = (out[9] - '0') * 100 +
			    (out[10] - '0') * 10 + (out[11] - '0');
		return 0;
	}
	check_output(out, out_len, client_max_frame(data, size));
	if (getenv("TS_FUZZ_VERBOSE") != NULL)
		fprintf(stderr, "fuzz_h2: %zu bytes back: %zu frames, %zu "
		    "responses (%.*s), %zu trailers, %zu RST_STREAM, %zu "
		    "GOAWAY (last: error %u, \"%s\")\n", out_len,
		    seen.frames, seen.heads, (int)seen.slen, seen.statuses,
		    seen.trailers, seen.rsts, seen.goaways, seen.goaway_error,
		    seen.goaway_debug);
	return 0;
}
