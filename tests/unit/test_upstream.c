/*
 * test_upstream.c -- the strict response parser and the exchange machinery,
 * both driven by tables under tests/data/upstream/:
 *
 *   responses.tsv  parser vectors, fed whole, byte by byte and split at
 *                  every position;
 *   exchanges.tsv  whole exchanges: a raw TCP stub server on 127.0.0.1:0
 *                  answers one GET or HEAD with the row's bytes (in
 *                  separate writes where the row says so), the row states
 *                  what the callbacks see and whether the connection goes
 *                  back to the pool; a second exchange then proves it.
 *
 * What is not table-shaped stays code: pool reuse and limits, retries,
 * timing, cancel, back-pressure, request bodies.  Every table must be
 * read with at least its known number of rows (test_tables_read), so a
 * missing or truncated file fails instead of looping over nothing.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "ts_test.h"
#include "upstream/upstream.h"
#include "util.h"

/*
 * Tables.
 */

/* Rows each table holds today: fewer means a lost file or lost rows. */
#define RESPONSES_MIN_ROWS 133
#define EXCHANGES_MIN_ROWS 65

/* The first problem met while loading a table; test_tables_read fails
 * with it (loading runs before any test, outside Check's asserts). */
static char table_error[512];

static void TS_PRINTFLIKE(3, 4)
table_fail(const char *file, int lineno, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (table_error[0] != '\0')
		return;
	n = snprintf(table_error, sizeof table_error, "%s:%d: ", file,
	    lineno);
	va_start(ap, fmt);
	vsnprintf(table_error + n, sizeof table_error - (size_t)n, fmt, ap);
	va_end(ap);
}

/*
 * Decode \r \n \t \\ \xHH and \{N}c into a malloc'ed buffer.  \| marks a
 * cut: its offset is stored in cuts (at most *ncuts of them; *ncuts is set
 * to the number found).  cuts NULL: no cut allowed.  -1 on a bad escape.
 */
static int
unescape(const char *s, char **out_buf, size_t *out_len, size_t *cuts,
    size_t *ncuts)
{
	size_t cap = strlen(s) + 1, n = 0, maxcuts = 0, nc = 0;
	char *out = xmalloc(cap), *end;

	if (ncuts != NULL) {
		maxcuts = *ncuts;
		*ncuts = 0;
	}
	while (*s != '\0') {
		char c = *s++;
		size_t rep = 1;

		if (c == '\\') {
			c = *s++;
			switch (c) {
			case 'r':
				c = '\r';
				break;
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case '\\':
				break;
			case 'x': {
				char hex[3] = { s[0], s[0] != '\0' ? s[1] :
				    '\0', '\0' };

				c = (char)strtoul(hex, &end, 16);
				if (end != hex + 2)
					goto bad;
				s += 2;
				break;
			}
			case '{':
				rep = strtoul(s, &end, 10);
				if (end == s || *end != '}' || end[1] == '\0')
					goto bad;
				s = end + 1;
				c = *s++;
				break;
			case '|':
				if (cuts == NULL || nc == maxcuts)
					goto bad;
				cuts[nc++] = n;
				continue;
			default:
				goto bad;
			}
		}
		if (n + rep + 1 > cap) {
			cap = (n + rep + 1) * 2;
			out = xrealloc(out, cap);
		}
		memset(out + n, c, rep);
		n += rep;
	}
	out[n] = '\0';
	*out_buf = out;
	*out_len = n;
	if (ncuts != NULL)
		*ncuts = nc;
	return 0;
bad:
	free(out);
	return -1;
}

/*
 * Read tests/data/upstream/<name>: '#' lines and empty lines are comments,
 * every other line has nfields TAB-separated fields, the last one taking
 * the rest of the line (a response may hold TABs).  row() gets each; a
 * short line or a row() refusal is a table error.  Returns the rows read.
 */
static int
table_load(const char *name, int nfields,
    int (*row)(char **f, const char *file, int lineno))
{
	char rel[128], *line = NULL, *f[16], *p;
	size_t cap = 0;
	int lineno = 0, nrows = 0, i;
	FILE *fp;

	snprintf(rel, sizeof rel, "upstream/%s", name);
	if ((fp = fopen(ts_data_path(rel), "r")) == NULL) {
		table_fail(rel, 0, "cannot open %s", ts_data_path(rel));
		return 0;
	}
	while (getline(&line, &cap, fp) > 0) {
		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\n")] = '\0';
		p = line;
		for (i = 0; i < nfields && p != NULL; i++) {
			f[i] = p;
			if (i < nfields - 1 && (p = strchr(p, '\t')) != NULL)
				*p++ = '\0';
		}
		if (i < nfields || p == NULL) {
			table_fail(rel, lineno, "%d fields expected", nfields);
			continue;
		}
		if (row(f, rel, lineno) == 0)
			nrows++;
	}
	free(line);
	fclose(fp);
	return nrows;
}

/* Parse "ok", "<kind>:<errstr>" or a bare "<kind>". */
static void
parse_expect(const char *s, char *kind, size_t ksize, char *errstr,
    size_t esize)
{
	const char *colon = strchr(s, ':');

	if (colon == NULL) {
		snprintf(kind, ksize, "%s", s);
		errstr[0] = '\0';
		return;
	}
	snprintf(kind, ksize, "%.*s", (int)(colon - s), s);
	snprintf(errstr, esize, "%s", colon + 1);
}

static const char *
body_type_name(enum upstream_body b)
{
	switch (b) {
	case UPSTREAM_BODY_NONE:
		return "none";
	case UPSTREAM_BODY_LENGTH:
		return "length";
	case UPSTREAM_BODY_CHUNKED:
		return "chunked";
	case UPSTREAM_BODY_CLOSE:
		return "close";
	}
	return "?";
}

static void
join_headers(const struct evkeyvalq *h, char *out, size_t size)
{
	const struct evkeyval *kv;
	size_t n = 0;

	out[0] = '\0';
	TAILQ_FOREACH(kv, h, next) {
		if (n >= size)
			break;
		n += (size_t)snprintf(out + n, size - n, "%s%s=%s",
		    n == 0 ? "" : "|", kv->key, kv->value);
	}
}

/*
 * Parser vectors (responses.tsv).
 */

enum vec_expect {
	VEC_OK = 0,
	VEC_PROTOCOL,
	VEC_RESET,
};

struct vec {
	char name[64];
	bool is_head;
	enum vec_expect expect;
	char errstr[128];
	int status;
	char body_type[16];
	int keepalive;
	char *body;
	size_t body_len;
	char *headers;		/* "Name=value|..." or "*" */
	char *input;
	size_t input_len;
};

static struct vec *vecs;
static int n_vecs;

/* One responses.tsv row: name is_head expect status body keepalive
 * body-bytes headers input. */
static int
vec_row(char **f, const char *file, int lineno)
{
	struct vec v;
	char kind[32];
	size_t len;

	memset(&v, 0, sizeof v);
	snprintf(v.name, sizeof v.name, "%s", f[0]);
	v.is_head = strcmp(f[1], "1") == 0;
	parse_expect(f[2], kind, sizeof kind, v.errstr, sizeof v.errstr);
	if (strcmp(kind, "ok") == 0)
		v.expect = VEC_OK;
	else if (strcmp(kind, "reset") == 0)
		v.expect = VEC_RESET;
	else if (strcmp(kind, "protocol") == 0 && v.errstr[0] != '\0')
		v.expect = VEC_PROTOCOL;
	else {
		table_fail(file, lineno, "%s: bad expect \"%s\"", v.name,
		    f[2]);
		return -1;
	}
	v.status = atoi(f[3]);
	snprintf(v.body_type, sizeof v.body_type, "%s", f[4]);
	v.keepalive = atoi(f[5]);
	if (unescape(f[6], &v.body, &v.body_len, NULL, NULL) != 0 ||
	    unescape(f[7], &v.headers, &len, NULL, NULL) != 0 ||
	    unescape(f[8], &v.input, &v.input_len, NULL, NULL) != 0) {
		table_fail(file, lineno, "%s: bad escape", v.name);
		return -1;
	}
	vecs = xrealloc(vecs, (size_t)(n_vecs + 1) * sizeof *vecs);
	vecs[n_vecs++] = v;
	return 0;
}

/*
 * Feed v->input cut at the given offsets and check the outcome against
 * the vector.  cuts are increasing offsets inside the input.
 */
static void
run_vector(const struct vec *v, const size_t *cuts, size_t ncuts)
{
	struct upstream_parser *p = upstream_parser_new(v->is_head);
	struct evbuffer *in = evbuffer_new(), *body = evbuffer_new();
	enum upstream_parse rc = UPSTREAM_PARSE_MORE;
	const char *errstr = NULL;
	size_t start = 0, i, end;
	int heads = 0;
	bool done = false, error = false, by_eof = false;
	static char hdrs[70000];

	for (i = 0; i <= ncuts && !done && !error; i++) {
		end = i < ncuts ? cuts[i] : v->input_len;
		evbuffer_add(in, v->input + start, end - start);
		start = end;
		for (;;) {
			rc = upstream_parser_feed(p, in, body, &errstr);
			if (rc == UPSTREAM_PARSE_HEAD) {
				heads++;
				continue;
			}
			break;
		}
		if (rc == UPSTREAM_PARSE_DONE)
			done = true;
		else if (rc == UPSTREAM_PARSE_ERROR)
			error = true;
	}
	if (!done && !error) {
		if (upstream_parser_eof(p, &errstr) == 0)
			done = by_eof = true;
	}
	switch (v->expect) {
	case VEC_PROTOCOL:
		ck_assert_msg(error, "%s: expected error \"%s\"", v->name,
		    v->errstr);
		ck_assert_str_eq(errstr, v->errstr);
		break;
	case VEC_RESET:
		ck_assert_msg(!error && !done, "%s: should be premature EOF",
		    v->name);
		ck_assert_str_eq(errstr, "upstream closed the connection "
		    "before the response was complete");
		break;
	case VEC_OK: {
		const struct upstream_response *r;

		ck_assert_msg(done && !error, "%s: failed: %s", v->name,
		    errstr != NULL ? errstr : "(incomplete)");
		ck_assert_int_eq(heads, 1);
		r = upstream_parser_response(p);
		ck_assert_int_eq(r->status, v->status);
		ck_assert_str_eq(body_type_name(r->body), v->body_type);
		ck_assert_int_eq(by_eof, r->body == UPSTREAM_BODY_CLOSE);
		ck_assert_int_eq(upstream_parser_keepalive(p), v->keepalive);
		ck_assert_uint_eq(evbuffer_get_length(body), v->body_len);
		if (v->body_len > 0)
			ck_assert_mem_eq(evbuffer_pullup(body, -1), v->body,
			    v->body_len);
		if (strcmp(v->headers, "*") != 0) {
			join_headers(r->headers, hdrs, sizeof hdrs);
			ck_assert_str_eq(hdrs, v->headers);
		}
		/* Nothing after the response was consumed. */
		ck_assert_uint_eq(evbuffer_get_length(in), 0);
		break;
	}
	}
	upstream_parser_free(p);
	evbuffer_free(in);
	evbuffer_free(body);
}

START_TEST(test_parser_whole)
{
	run_vector(&vecs[_i], NULL, 0);
}
END_TEST

START_TEST(test_parser_bytewise)
{
	const struct vec *v = &vecs[_i];
	size_t *cuts = xmalloc((v->input_len + 1) * sizeof *cuts), i;

	for (i = 1; i < v->input_len; i++)
		cuts[i - 1] = i;
	run_vector(v, cuts, v->input_len > 1 ? v->input_len - 1 : 0);
	free(cuts);
}
END_TEST

START_TEST(test_parser_split)
{
	const struct vec *v = &vecs[_i];
	size_t k, step;

	/* Every cut for small inputs, a sample of cuts for the big ones. */
	step = v->input_len > 2048 ? v->input_len / 64 : 1;
	for (k = 1; k < v->input_len; k += step)
		run_vector(v, &k, 1);
}
END_TEST

/* Header entries can be moved out and freed with free(). */
START_TEST(test_parser_move_headers)
{
	const char *raw = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n"
	    "Content-Length: 0\r\n\r\n";
	struct upstream_parser *p = upstream_parser_new(false);
	struct evbuffer *in = evbuffer_new(), *body = evbuffer_new();
	const struct upstream_response *r;
	struct evkeyval *kv;
	const char *errstr;

	evbuffer_add(in, raw, strlen(raw));
	ck_assert_int_eq(upstream_parser_feed(p, in, body, &errstr),
	    UPSTREAM_PARSE_HEAD);
	r = upstream_parser_response(p);
	ck_assert_str_eq(r->reason, "OK");
	ck_assert_int_eq(r->minor, 1);
	kv = TAILQ_FIRST(r->headers);
	ck_assert_str_eq(kv->key, "A");
	TAILQ_REMOVE(r->headers, kv, next);
	free(kv->key);
	free(kv->value);
	free(kv);
	ck_assert_int_eq(upstream_parser_feed(p, in, body, &errstr),
	    UPSTREAM_PARSE_DONE);
	ck_assert_int_eq(upstream_parser_feed(p, in, body, &errstr),
	    UPSTREAM_PARSE_DONE);
	upstream_parser_free(p);
	evbuffer_free(in);
	evbuffer_free(body);
}
END_TEST


/*
 * Raw TCP stub server.
 */

enum stub_after {
	STUB_KEEP = 0,		/* reply, keep the connection */
	STUB_CLOSE,		/* reply, close once it is written */
	STUB_CLOSE_NOW,		/* close without replying */
	STUB_STALL,		/* reply (may be empty), then silence */
};

struct stub_action {
	const char *reply;
	size_t len;		/* 0: strlen(reply) */
	enum stub_after after;
};

struct stub {
	struct event_base *base;
	struct evconnlistener *lev;
	uint16_t port;
	const struct stub_action *actions;
	size_t nactions;
	const size_t *cuts;	/* the first reply goes out in parts, */
	size_t ncuts;		/* 20 ms apart, split at these offsets */
	int nconns;
	int nreqs;
	int ncloses;
	struct evbuffer *seen;
	TAILQ_HEAD(, stub_conn) conns;
};

struct stub_conn {
	struct stub *s;
	TAILQ_ENTRY(stub_conn) entry;
	struct bufferevent *bev;
	struct event *later_ev;
	const struct stub_action *cur;	/* the reply being sent */
	const size_t *cuts;	/* and where it is split */
	size_t ncuts;
	size_t part;		/* its next part */
	size_t body_left;	/* request body bytes still to skip */
	bool closing;
};

static struct event_base *base;
static struct stub stub;

static void stub_send_part(struct stub_conn *);

static void
stub_conn_free(struct stub_conn *sc)
{
	sc->s->ncloses++;
	TAILQ_REMOVE(&sc->s->conns, sc, entry);
	if (sc->later_ev != NULL)
		event_free(sc->later_ev);
	bufferevent_free(sc->bev);
	free(sc);
}

static void
stub_later_cb(evutil_socket_t fd, short what, void *arg)
{
	stub_send_part(arg);
}

/*
 * Send bytes straight to the socket when nothing is queued: the part is
 * then in the client's socket before the timer of the next part can fire
 * (libevent runs the I/O events a poll found before the timers it
 * expired), so a cut really is a separate read however slow the loop.
 */
static void
stub_write(struct stub_conn *sc, const char *p, size_t n)
{
	ssize_t w = 0;

	if (evbuffer_get_length(bufferevent_get_output(sc->bev)) == 0 &&
	    (w = send(bufferevent_getfd(sc->bev), p, n, MSG_NOSIGNAL)) < 0)
		w = 0;
	if ((size_t)w < n)
		bufferevent_write(sc->bev, p + w, n - (size_t)w);
}

/*
 * Write the next part of the current reply.  The parts are 20 ms apart so
 * that each arrives in its own read; after the last one the action's
 * "after" applies.  May free sc.
 */
static void
stub_send_part(struct stub_conn *sc)
{
	const struct stub_action *a = sc->cur;
	size_t len, start, end;

	len = a->reply == NULL ? 0 : a->len != 0 ? a->len : strlen(a->reply);
	start = sc->part == 0 ? 0 : sc->cuts[sc->part - 1];
	end = sc->part < sc->ncuts ? sc->cuts[sc->part] : len;
	if (end > start)
		stub_write(sc, a->reply + start, end - start);
	if (sc->part++ < sc->ncuts) {
		struct timeval tv = { 0, 20000 };

		if (sc->later_ev == NULL)
			sc->later_ev = evtimer_new(sc->s->base, stub_later_cb,
			    sc);
		evtimer_add(sc->later_ev, &tv);
		return;
	}
	if (a->after == STUB_CLOSE) {
		sc->closing = true;
		if (evbuffer_get_length(bufferevent_get_output(sc->bev)) == 0)
			stub_conn_free(sc);
	}
}

static void
stub_request(struct stub_conn *sc)
{
	struct stub *s = sc->s;
	size_t idx = (size_t)s->nreqs++;

	sc->cur = &s->actions[idx < s->nactions ? idx : s->nactions - 1];
	sc->cuts = idx == 0 ? s->cuts : NULL;
	sc->ncuts = idx == 0 ? s->ncuts : 0;
	sc->part = 0;
	if (sc->cur->after == STUB_CLOSE_NOW) {
		stub_conn_free(sc);
		return;
	}
	stub_send_part(sc);
}

static void
stub_read_cb(struct bufferevent *bev, void *arg)
{
	struct stub_conn *sc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr p;
	size_t n;

	for (;;) {
		if (sc->body_left > 0) {
			n = evbuffer_get_length(in);
			if (n > sc->body_left)
				n = sc->body_left;
			evbuffer_remove_buffer(in, sc->s->seen, n);
			sc->body_left -= n;
			if (sc->body_left > 0)
				return;
			/* The body came over several reads. */
			stub_request(sc);
			return;
		}
		p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (p.pos < 0)
			return;
		{
			char *head = xmalloc((size_t)p.pos + 5);
			const char *cl;

			evbuffer_remove(in, head, (size_t)p.pos + 4);
			head[p.pos + 4] = '\0';
			evbuffer_add(sc->s->seen, head, (size_t)p.pos + 4);
			if ((cl = strcasestr(head, "\r\nContent-Length: ")) !=
			    NULL)
				sc->body_left = strtoul(cl + 18, NULL, 10);
			free(head);
		}
		if (sc->body_left == 0 ||
		    evbuffer_get_length(in) >= sc->body_left) {
			if (sc->body_left > 0) {
				evbuffer_remove_buffer(in, sc->s->seen,
				    sc->body_left);
				sc->body_left = 0;
			}
			stub_request(sc);
			return;	/* sc may be gone; one at a time */
		}
	}
}

static void
stub_write_cb(struct bufferevent *bev, void *arg)
{
	struct stub_conn *sc = arg;

	if (sc->closing)
		stub_conn_free(sc);
}

static void
stub_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		stub_conn_free(arg);
}

static void
stub_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct stub *s = arg;
	struct stub_conn *sc = xcalloc(1, sizeof *sc);

	sc->s = s;
	sc->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(sc->bev, stub_read_cb, stub_write_cb, stub_event_cb,
	    sc);
	bufferevent_enable(sc->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&s->conns, sc, entry);
	s->nconns++;
}

static uint16_t
listener_port(struct evconnlistener *l)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;

	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &len);
	return ntohs(sin.sin_port);
}

static struct evconnlistener *
listen_local(evconnlistener_cb cb, void *arg)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return evconnlistener_new_bind(base, cb, arg,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof sin);
}

static void
stub_start(const struct stub_action *actions, size_t n)
{
	stub.base = base;
	stub.actions = actions;
	stub.nactions = n;
	stub.lev = listen_local(stub_accept_cb, &stub);
	ck_assert_ptr_nonnull(stub.lev);
	stub.port = listener_port(stub.lev);
}

static void
setup(void)
{
	base = event_base_new();
	memset(&stub, 0, sizeof stub);
	stub.seen = evbuffer_new();
	TAILQ_INIT(&stub.conns);
}

static void
teardown(void)
{
	if (stub.lev != NULL)
		evconnlistener_free(stub.lev);
	while (!TAILQ_EMPTY(&stub.conns))
		stub_conn_free(TAILQ_FIRST(&stub.conns));
	evbuffer_free(stub.seen);
	event_base_free(base);
}

/*
 * Client side.
 */

struct result {
	bool done;
	enum upstream_err err;
	const char *errstr;
	bool head_sent;
	bool reused;		/* upstream_req_reused(), read in done() */
	int status;
	enum upstream_body body_type;
	struct evbuffer *body;
	int heads;
	int bodies;
	/* Behaviour knobs. */
	bool cancel_in_head;
	bool fail_in_head;
	bool pause_in_head;
	bool cancel_in_body;
	bool pause_in_body;
	bool take_first_header;	/* move the first entry out, free it */
	char *first_key;	/* first header of the head, copied */
	char *first_value;
	char *headers;		/* the head's fields, as join_headers() */
	int nheaders;
	bool paused;
	bool cancelled;
	struct event *resume_ev;
	struct upstream_req *req;
};

static struct config_upstream conf;

static void
conf_init(uint16_t port)
{
	memset(&conf, 0, sizeof conf);
	conf.url = (char *)"http://127.0.0.1";
	conf.scheme = CONFIG_SCHEME_HTTP;
	conf.host = (char *)"127.0.0.1";
	conf.port = port;
	conf.authority = (char *)"127.0.0.1";
	conf.base_path = (char *)"";
	conf.connect_timeout_ms = 1000;
	conf.timeout_ms = 2000;
	conf.keepalive = 4;
}

static int
res_head_cb(struct upstream_req *req, const struct upstream_response *r,
    void *arg)
{
	struct result *res = arg;

	res->heads++;
	res->status = r->status;
	res->body_type = r->body;
	{
		static char joined[8192];
		struct evkeyval *kv;

		join_headers(r->headers, joined, sizeof joined);
		free(res->headers);
		res->headers = xstrdup(joined);
		TAILQ_FOREACH(kv, r->headers, next)
			res->nheaders++;
		if ((kv = TAILQ_FIRST(r->headers)) != NULL) {
			free(res->first_key);
			free(res->first_value);
			res->first_key = xstrdup(kv->key);
			res->first_value = xstrdup(kv->value);
			if (res->take_first_header) {
				/* As evhttp frees an entry it was given. */
				TAILQ_REMOVE(r->headers, kv, next);
				free(kv->key);
				free(kv->value);
				free(kv);
			}
		}
	}
	if (res->cancel_in_head) {
		res->cancelled = true;
		upstream_req_cancel(req);
		return 0;
	}
	if (res->pause_in_head) {
		struct timeval tv = { 0, 20000 };

		res->paused = true;
		upstream_req_pause(req);
		evtimer_add(res->resume_ev, &tv);
	}
	return res->fail_in_head ? -1 : 0;
}

static void
res_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct result *res = arg;

	res->paused = false;
	upstream_req_resume(res->req);
}

static void
res_body_cb(struct upstream_req *req, struct evbuffer *buf, void *arg)
{
	struct result *res = arg;
	struct timeval tv = { 0, 20000 };

	ck_assert_msg(!res->paused, "body() while paused");
	res->bodies++;
	evbuffer_add_buffer(res->body, buf);
	if (res->cancel_in_body) {
		res->cancelled = true;
		upstream_req_cancel(req);
		/* Cancelling twice is harmless. */
		upstream_req_cancel(req);
		return;
	}
	if (res->pause_in_body && res->bodies <= 3) {
		res->paused = true;
		upstream_req_pause(req);
		evtimer_add(res->resume_ev, &tv);
	}
}

static void
res_done_cb(struct upstream_req *req, enum upstream_err err,
    const char *errstr, bool head_sent, void *arg)
{
	struct result *res = arg;

	ck_assert_msg(!res->done, "done() twice");
	ck_assert_msg(!res->cancelled, "done() after cancel");
	res->done = true;
	res->err = err;
	res->errstr = errstr;
	res->head_sent = head_sent;
	/* req is recycled once done() returns: read it here. */
	res->reused = upstream_req_reused(req);
	ck_assert_uint_ge(upstream_req_first_byte_ns(req) == 0 ? UINT64_MAX :
	    upstream_req_first_byte_ns(req), upstream_req_sent_ns(req));
	/* Cancelling from done() is a no-op. */
	upstream_req_cancel(req);
}

static const struct upstream_cbs res_cbs = {
	res_head_cb, res_body_cb, res_done_cb,
};

static void
res_init(struct result *res)
{
	memset(res, 0, sizeof *res);
	res->body = evbuffer_new();
	res->resume_ev = evtimer_new(base, res_resume_cb, res);
}

static void
res_clear(struct result *res)
{
	evbuffer_free(res->body);
	event_free(res->resume_ev);
	free(res->first_key);
	free(res->first_value);
	free(res->headers);
}

static bool guard_fired;

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	guard_fired = true;
}

/* Run the loop until *flag (or the int at iflag reaches want). */
static void
run_until(const bool *flag, const int *iflag, int want)
{
	struct event *guard = evtimer_new(base, guard_cb, NULL);
	struct timeval tv = { 5, 0 };

	guard_fired = false;
	evtimer_add(guard, &tv);
	while (!guard_fired && !(flag != NULL && *flag) &&
	    !(iflag != NULL && *iflag >= want))
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
	ck_assert_msg(!guard_fired, "timed out waiting");
}

static struct upstream_req *
send_req(struct upstream_pool *pool, const char *method, bool retryable,
    struct result *res)
{
	struct evbuffer *rq = evbuffer_new();
	struct upstream_req *req;

	evbuffer_add_printf(rq, "%s / HTTP/1.1\r\nHost: t\r\n\r\n", method);
	req = upstream_request(pool, rq, strcmp(method, "HEAD") == 0,
	    retryable, &res_cbs, res);
	ck_assert_ptr_nonnull(req);
	ck_assert_uint_eq(evbuffer_get_length(rq), 0);
	evbuffer_free(rq);
	/* Never a callback from inside upstream_request(). */
	ck_assert(!res->done && res->heads == 0);
	res->req = req;
	return req;
}

/*
 * The one place that creates a pool from conf (its signature is about to
 * change: keep every pool of this file coming from here).
 */
static struct upstream_pool *
pool_try_new(char **cause)
{
	struct upstream_pool *pool;
	struct upstream_addr *addrs = NULL;
	size_t n = 0;

	/* As server_gen_new does on the main thread: resolve, then hand the
	 * addresses to the pool. */
	if (upstream_resolve(&conf, &addrs, &n, cause) != 0)
		return NULL;
	pool = upstream_pool_new(base, &conf, addrs, n, NULL, cause);
	free(addrs);
	return pool;
}

static struct upstream_pool *
pool_new(void)
{
	struct upstream_pool *pool;
	char *cause = NULL;

	pool = pool_try_new(&cause);
	ck_assert_msg(pool != NULL, "%s", cause);
	return pool;
}

/* Run the loop until the pool keeps n idle connections. */
static void
run_until_idle(struct upstream_pool *pool, unsigned n)
{
	struct event *guard = evtimer_new(base, guard_cb, NULL);
	struct timeval tv = { 5, 0 };

	guard_fired = false;
	evtimer_add(guard, &tv);
	while (!guard_fired && upstream_pool_idle(pool) < n)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
	ck_assert_uint_ge(upstream_pool_idle(pool), n);
}

/* One GET against a stub, returns the finished result. */
static void
get_one(struct upstream_pool *pool, struct result *res)
{
	res_init(res);
	send_req(pool, "GET", true, res);
	run_until(&res->done, NULL, 0);
}

static void
assert_body(struct result *res, const char *want)
{
	size_t n = strlen(want);

	ck_assert_uint_eq(evbuffer_get_length(res->body), n);
	ck_assert_mem_eq(evbuffer_pullup(res->body, -1), want, n);
}

#define OK_HELLO "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

/*
 * Exchange vectors (exchanges.tsv).
 */

#define XVEC_MAX_CUTS 8

struct xvec {
	char name[64];
	bool is_head;		/* the request is HEAD, else GET */
	enum stub_after after;	/* what the stub does once it replied */
	char kind[16];		/* upstream_err_name() of the outcome */
	char errstr[128];	/* "": not checked */
	int head_sent;
	int status;		/* 0: not checked */
	char body_type[16];	/* "-": not checked */
	bool pooled;		/* the connection goes back to the pool */
	char *body;		/* exactly what body() delivered */
	size_t body_len;
	char *headers;		/* "Name=value|..." or "*" */
	char *response;		/* the stub's reply */
	size_t response_len;
	size_t cuts[XVEC_MAX_CUTS];	/* \| in the reply: a 20 ms pause */
	size_t ncuts;
};

static struct xvec *xvecs;
static int n_xvecs;

/* One exchanges.tsv row: name method after expect head_sent status
 * body_type conn body headers response. */
static int
xvec_row(char **f, const char *file, int lineno)
{
	static const char *const kinds[] = { "ok", "connect", "timeout",
	    "reset", "protocol", "tls", "nomem" };
	struct xvec x;
	size_t len, i;

	memset(&x, 0, sizeof x);
	snprintf(x.name, sizeof x.name, "%s", f[0]);
	x.is_head = strcmp(f[1], "HEAD") == 0;
	if (!x.is_head && strcmp(f[1], "GET") != 0)
		goto bad;
	if (strcmp(f[2], "keep") == 0)
		x.after = STUB_KEEP;
	else if (strcmp(f[2], "close") == 0)
		x.after = STUB_CLOSE;
	else if (strcmp(f[2], "stall") == 0)
		x.after = STUB_STALL;
	else
		goto bad;
	parse_expect(f[3], x.kind, sizeof x.kind, x.errstr, sizeof x.errstr);
	for (i = 0; i < TS_NITEMS(kinds); i++)
		if (strcmp(x.kind, kinds[i]) == 0)
			break;
	if (i == TS_NITEMS(kinds))
		goto bad;
	if (strcmp(f[4], "0") != 0 && strcmp(f[4], "1") != 0)
		goto bad;
	x.head_sent = atoi(f[4]);
	x.status = strcmp(f[5], "-") == 0 ? 0 : atoi(f[5]);
	snprintf(x.body_type, sizeof x.body_type, "%s", f[6]);
	x.pooled = strcmp(f[7], "pooled") == 0;
	if (!x.pooled && strcmp(f[7], "closed") != 0)
		goto bad;
	/* Only a whole response can leave a connection to reuse. */
	if (x.pooled && strcmp(x.kind, "ok") != 0)
		goto bad;
	x.ncuts = XVEC_MAX_CUTS;
	if (unescape(f[8], &x.body, &x.body_len, NULL, NULL) != 0 ||
	    unescape(f[9], &x.headers, &len, NULL, NULL) != 0 ||
	    unescape(f[10], &x.response, &x.response_len, x.cuts,
	    &x.ncuts) != 0) {
		table_fail(file, lineno, "%s: bad escape", x.name);
		return -1;
	}
	xvecs = xrealloc(xvecs, (size_t)(n_xvecs + 1) * sizeof *xvecs);
	xvecs[n_xvecs++] = x;
	return 0;
bad:
	table_fail(file, lineno, "%s: bad field", x.name);
	return -1;
}

/*
 * One exchange against the stub: the row's reply, then a probe GET that
 * the stub answers with OK_HELLO.  A pooled row's probe runs on the same
 * connection (so the row's response ended exactly where the client
 * thought); a closed row's connection must really close (whichever side
 * closes it) and the probe opens a new one.
 */
START_TEST(test_exchange_table)
{
	const struct xvec *x = &xvecs[_i];
	struct stub_action a[2] = {
		{ x->response, x->response_len, x->after },
		{ OK_HELLO, 0, STUB_KEEP },
	};
	struct upstream_pool *pool;
	struct result res;

	if (x->response_len == 0)
		a[0].reply = NULL;
	stub_start(a, 2);
	stub.cuts = x->cuts;
	stub.ncuts = x->ncuts;
	conf_init(stub.port);
	if (x->after == STUB_STALL)
		conf.timeout_ms = 100;
	pool = pool_new();
	res_init(&res);
	send_req(pool, x->is_head ? "HEAD" : "GET", true, &res);
	run_until(&res.done, NULL, 0);

	ck_assert_msg(strcmp(upstream_err_name(res.err), x->kind) == 0,
	    "%s: %s (%s), expected %s", x->name, upstream_err_name(res.err),
	    res.errstr != NULL ? res.errstr : "", x->kind);
	if (x->errstr[0] != '\0')
		ck_assert_msg(res.errstr != NULL &&
		    strcmp(res.errstr, x->errstr) == 0, "%s: errstr \"%s\"",
		    x->name, res.errstr != NULL ? res.errstr : "(null)");
	ck_assert_msg(res.head_sent == (bool)x->head_sent &&
	    res.heads == x->head_sent, "%s: head_sent %d, %d heads", x->name,
	    res.head_sent, res.heads);
	if (x->status != 0)
		ck_assert_msg(res.status == x->status, "%s: status %d",
		    x->name, res.status);
	if (strcmp(x->body_type, "-") != 0)
		ck_assert_msg(strcmp(body_type_name(res.body_type),
		    x->body_type) == 0, "%s: body %s", x->name,
		    body_type_name(res.body_type));
	if (strcmp(x->headers, "*") != 0)
		ck_assert_msg(res.headers != NULL &&
		    strcmp(res.headers, x->headers) == 0, "%s: headers \"%s\"",
		    x->name, res.headers != NULL ? res.headers : "(none)");
	ck_assert_msg(evbuffer_get_length(res.body) == x->body_len &&
	    (x->body_len == 0 || memcmp(evbuffer_pullup(res.body, -1),
	    x->body, x->body_len) == 0), "%s: body of %zu bytes differs",
	    x->name, evbuffer_get_length(res.body));
	ck_assert_msg(upstream_pool_idle(pool) == (x->pooled ? 1U : 0U),
	    "%s: %u idle connections", x->name, upstream_pool_idle(pool));
	res_clear(&res);

	if (!x->pooled)
		run_until(NULL, &stub.ncloses, 1);
	get_one(pool, &res);
	ck_assert_msg(res.err == UPSTREAM_OK, "%s: probe failed: %s", x->name,
	    res.errstr != NULL ? res.errstr : "?");
	assert_body(&res, "hello");
	ck_assert_msg(res.reused == x->pooled, "%s: probe %s", x->name,
	    res.reused ? "reused the connection" : "on a new connection");
	ck_assert_uint_eq(upstream_pool_connects(pool), x->pooled ? 1 : 2);
	ck_assert_int_eq(stub.nconns, x->pooled ? 1 : 2);
	ck_assert_int_eq(stub.nreqs, 2);
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

START_TEST(test_keepalive_reuse)
{
	static const struct stub_action a[] = { { OK_HELLO, 0, STUB_KEEP } };
	struct upstream_pool *pool;
	struct result res;
	int i;

	stub_start(a, 1);
	conf_init(stub.port);
	pool = pool_new();
	for (i = 0; i < 10; i++) {
		get_one(pool, &res);
		ck_assert_int_eq(res.err, UPSTREAM_OK);
		assert_body(&res, "hello");
		res_clear(&res);
	}
	ck_assert_uint_eq(upstream_pool_connects(pool), 1);
	ck_assert_int_eq(stub.nconns, 1);
	ck_assert_int_eq(stub.nreqs, 10);
	upstream_pool_free(pool);
	/* Freeing the pool closes the idle connection. */
	run_until(NULL, &stub.ncloses, 1);
}
END_TEST

/* The stub reads the second request on the reused connection and
 * closes: the exchange is resent once on a new connection. */
START_TEST(test_retry_stale)
{
	static const struct stub_action a[] = {
		{ OK_HELLO, 0, STUB_KEEP },
		{ NULL, 0, STUB_CLOSE_NOW },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain", 0,
		    STUB_KEEP },
	};
	struct upstream_pool *pool;
	struct result res;

	stub_start(a, TS_NITEMS(a));
	conf_init(stub.port);
	pool = pool_new();
	get_one(pool, &res);
	res_clear(&res);
	get_one(pool, &res);
	ck_assert_int_eq(res.err, UPSTREAM_OK);
	assert_body(&res, "again");
	res_clear(&res);
	ck_assert_uint_eq(upstream_pool_connects(pool), 2);
	ck_assert_int_eq(stub.nreqs, 3);
	upstream_pool_free(pool);
}
END_TEST

START_TEST(test_no_retry_when_not_retryable)
{
	static const struct stub_action a[] = {
		{ OK_HELLO, 0, STUB_KEEP },
		{ NULL, 0, STUB_CLOSE_NOW },
	};
	struct upstream_pool *pool;
	struct result res;

	stub_start(a, TS_NITEMS(a));
	conf_init(stub.port);
	pool = pool_new();
	get_one(pool, &res);
	res_clear(&res);
	res_init(&res);
	send_req(pool, "POST", false, &res);
	run_until(&res.done, NULL, 0);
	ck_assert_int_eq(res.err, UPSTREAM_ERR_RESET);
	ck_assert(!res.head_sent);
	ck_assert_uint_eq(upstream_pool_connects(pool), 1);
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

START_TEST(test_refused)
{
	struct evconnlistener *l = listen_local(stub_accept_cb, &stub);
	struct upstream_pool *pool;
	struct result res;
	uint16_t port = listener_port(l);

	evconnlistener_free(l);
	conf_init(port);
	pool = pool_new();
	get_one(pool, &res);
	ck_assert_int_eq(res.err, UPSTREAM_ERR_CONNECT);
	ck_assert_str_eq(res.errstr, "upstream connection refused");
	ck_assert(!res.head_sent);
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

START_TEST(test_resolve_failure)
{
	struct upstream_addr *addrs;
	char *cause = NULL;
	size_t n;

	conf_init(80);
	conf.host = (char *)"no-such-host.invalid";
	ck_assert_int_eq(upstream_resolve(&conf, &addrs, &n, &cause), -1);
	ck_assert_ptr_null(addrs);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_nonnull(strstr(cause, "cannot resolve upstream host "
	    "no-such-host.invalid: "));
	free(cause);
	/* No address, no pool (the route answers 502). */
	cause = NULL;
	ck_assert_ptr_null(upstream_pool_new(base, &conf, NULL, 0, NULL,
	    &cause));
	ck_assert_str_eq(cause, "upstream no-such-host.invalid: no address");
	free(cause);
}
END_TEST

/* Literal addresses need no lookup; a name gives every address. */
START_TEST(test_resolve_addresses)
{
	const struct sockaddr_in6 *sin6;
	const struct sockaddr_in *sin;
	struct upstream_addr *addrs;
	char *cause = NULL;
	size_t n, i;

	conf_init(8081);
	ck_assert_int_eq(upstream_resolve(&conf, &addrs, &n, &cause), 0);
	ck_assert_uint_eq(n, 1);
	sin = (const struct sockaddr_in *)&addrs[0].ss;
	ck_assert_int_eq(sin->sin_family, AF_INET);
	ck_assert_uint_eq(addrs[0].len, sizeof *sin);
	ck_assert_uint_eq(ntohs(sin->sin_port), 8081);
	ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	free(addrs);

	conf.host = (char *)"::1";
	ck_assert_int_eq(upstream_resolve(&conf, &addrs, &n, &cause), 0);
	ck_assert_uint_eq(n, 1);
	sin6 = (const struct sockaddr_in6 *)&addrs[0].ss;
	ck_assert_int_eq(sin6->sin6_family, AF_INET6);
	ck_assert_uint_eq(ntohs(sin6->sin6_port), 8081);
	ck_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	free(addrs);

	/* /etc/hosts has localhost; each address carries the port. */
	conf.host = (char *)"localhost";
	ck_assert_msg(upstream_resolve(&conf, &addrs, &n, &cause) == 0, "%s",
	    cause);
	ck_assert_uint_ge(n, 1);
	for (i = 0; i < n; i++) {
		sin = (const struct sockaddr_in *)&addrs[i].ss;
		ck_assert_uint_eq(ntohs(sin->sin_port), 8081);
		ck_assert_uint_gt(addrs[i].len, 0);
	}
	free(addrs);
}
END_TEST

/*
 * The pool connects to the addresses it is given and never resolves:
 * under a host name that cannot resolve (RFC 6761 .invalid) it reaches
 * the stub at the address the main thread would have resolved.
 */
START_TEST(test_pool_uses_given_addresses)
{
	static const struct stub_action a[] = { { OK_HELLO, 0, STUB_KEEP } };
	struct upstream_addr addr[2];
	struct sockaddr_in *sin;
	struct upstream_pool *pool;
	struct result res;
	char *cause = NULL;

	stub_start(a, 1);
	conf_init(stub.port);
	conf.host = (char *)"backend.invalid";
	memset(addr, 0, sizeof addr);
	sin = (struct sockaddr_in *)&addr[0].ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(stub.port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr[0].len = sizeof *sin;
	addr[1] = addr[0];	/* kept for the next issue; [0] is used */
	pool = upstream_pool_new(base, &conf, addr, 2, NULL, &cause);
	ck_assert_msg(pool != NULL, "%s", cause);
	/* A copy: the caller's array may go (the generation's, freed). */
	memset(addr, 0, sizeof addr);
	get_one(pool, &res);
	ck_assert_msg(res.err == UPSTREAM_OK, "%s", res.errstr);
	ck_assert_int_eq(res.status, 200);
	assert_body(&res, "hello");
	ck_assert_uint_eq(upstream_pool_connects(pool), 1);
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

/*
 * A listener with a full accept queue drops further SYNs, so a connect
 * to it hangs: the connect timeout fires.
 */
START_TEST(test_connect_timeout)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	struct upstream_pool *pool;
	struct result res;
	int lfd, fill[4], i;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(listen(lfd, 0), 0);
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	for (i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		(void)connect(fill[i], (struct sockaddr *)&sin, sizeof sin);
	}
	conf_init(ntohs(sin.sin_port));
	conf.connect_timeout_ms = 100;
	conf.timeout_ms = 100;
	pool = pool_new();
	get_one(pool, &res);
	ck_assert_int_eq(res.err, UPSTREAM_ERR_TIMEOUT);
	ck_assert_str_eq(res.errstr, "upstream connect timed out");
	res_clear(&res);
	upstream_pool_free(pool);
	for (i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
}
END_TEST

START_TEST(test_response_timeout)
{
	static const struct stub_action a[] = { { NULL, 0, STUB_STALL } };
	struct upstream_pool *pool;
	struct result res;
	uint64_t t0;

	stub_start(a, 1);
	conf_init(stub.port);
	conf.timeout_ms = 100;
	pool = pool_new();
	t0 = util_mono_ns();
	get_one(pool, &res);
	ck_assert_int_eq(res.err, UPSTREAM_ERR_TIMEOUT);
	ck_assert_str_eq(res.errstr, "upstream response timed out");
	ck_assert(!res.head_sent);
	ck_assert_uint_ge(util_mono_ns() - t0, 90 * 1000000ULL);
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

#define BIG_LEN (512 * 1024)

START_TEST(test_pause_resume)
{
	static char big[BIG_LEN + 64];
	struct stub_action a[1];
	struct upstream_pool *pool;
	struct result res;
	int n;

	n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nContent-Length: "
	    "%d\r\n\r\n", BIG_LEN - 64);
	memset(big + n, 'x', (size_t)(BIG_LEN - 64));
	a[0].reply = big;
	a[0].len = (size_t)n + BIG_LEN - 64;
	a[0].after = STUB_KEEP;
	stub_start(a, 1);
	conf_init(stub.port);
	pool = pool_new();
	res_init(&res);
	res.pause_in_body = true;
	send_req(pool, "GET", true, &res);
	run_until(&res.done, NULL, 0);
	ck_assert_int_eq(res.err, UPSTREAM_OK);
	ck_assert_uint_eq(evbuffer_get_length(res.body), BIG_LEN - 64);
	ck_assert_int_ge(res.bodies, 4);
	ck_assert_uint_eq(upstream_pool_idle(pool), 1);
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

/* Paused in head(): the body and the EOF that arrived meanwhile are
 * handled after resume (close-delimited body). */
START_TEST(test_pause_in_head_with_eof)
{
	static const struct stub_action a[] = { {
	    "HTTP/1.1 200 OK\r\n\r\nall of it", 0, STUB_CLOSE } };
	struct upstream_pool *pool;
	struct result res;

	stub_start(a, 1);
	conf_init(stub.port);
	pool = pool_new();
	res_init(&res);
	res.pause_in_head = true;
	send_req(pool, "GET", true, &res);
	run_until(&res.done, NULL, 0);
	ck_assert_int_eq(res.err, UPSTREAM_OK);
	assert_body(&res, "all of it");
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

/* Cancelling from head() or body(), or head() returning -1: no more
 * callbacks and the connection is closed. */
START_TEST(test_cancel_in_callback)
{
	static const struct stub_action a[] = { {
	    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0,
	    STUB_STALL } };
	struct upstream_pool *pool;
	struct result res;

	stub_start(a, 1);
	conf_init(stub.port);
	pool = pool_new();
	res_init(&res);
	if (_i == 0)
		res.cancel_in_head = true;
	else if (_i == 1)
		res.cancel_in_body = true;
	else
		res.fail_in_head = true;
	send_req(pool, "GET", true, &res);
	run_until(NULL, &stub.ncloses, 1);
	ck_assert(!res.done);
	ck_assert_int_eq(res.heads, 1);
	ck_assert_uint_eq(upstream_pool_idle(pool), 0);
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

START_TEST(test_cancel_early)
{
	static const struct stub_action a[] = { { OK_HELLO, 0, STUB_KEEP } };
	struct upstream_pool *pool;
	struct upstream_req *req;
	struct result res;

	stub_start(a, 1);
	conf_init(stub.port);
	pool = pool_new();
	/* Cancel while connecting. */
	res_init(&res);
	req = send_req(pool, "GET", true, &res);
	upstream_req_cancel(req);
	run_until(NULL, &stub.ncloses, 1);
	res_clear(&res);
	/*
	 * Cancel on a reused connection once the request is out, before the
	 * response: no callback, but the response is still read and the
	 * connection goes back to the pool (it was closed).
	 */
	get_one(pool, &res);
	res_clear(&res);
	res_init(&res);
	req = send_req(pool, "GET", true, &res);
	upstream_req_cancel(req);
	ck_assert_uint_eq(upstream_pool_idle(pool), 0);
	run_until_idle(pool, 1);
	ck_assert(!res.done);
	ck_assert_int_eq(res.heads, 0);
	ck_assert_int_eq(stub.ncloses, 1);
	ck_assert_uint_eq(upstream_pool_connects(pool), 2);
	res_clear(&res);
	/* And it serves the next exchange. */
	get_one(pool, &res);
	ck_assert(res.reused);
	res_clear(&res);
	ck_assert_uint_eq(upstream_pool_connects(pool), 2);
	upstream_pool_free(pool);
}
END_TEST

/* A cancelled exchange whose response never comes: closed after 1 s. */
START_TEST(test_cancel_orphan_stalled)
{
	static const struct stub_action a[] = {
		{ OK_HELLO, 0, STUB_KEEP },
		{ NULL, 0, STUB_STALL },
	};
	struct upstream_pool *pool;
	struct upstream_req *req;
	struct result res;
	uint64_t t0;

	stub_start(a, 2);
	conf_init(stub.port);
	conf.timeout_ms = 30000;	/* the orphan's gap is shorter */
	pool = pool_new();
	get_one(pool, &res);
	res_clear(&res);
	res_init(&res);
	req = send_req(pool, "GET", true, &res);
	upstream_req_cancel(req);
	t0 = util_mono_ns();
	run_until(NULL, &stub.ncloses, 1);
	ck_assert_uint_ge(util_mono_ns() - t0, 900000000ULL);
	ck_assert(!res.done);
	ck_assert_uint_eq(upstream_pool_idle(pool), 0);
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

/* A large response is not read for a departed client: closed at once. */
START_TEST(test_cancel_orphan_large)
{
	static char big[200000];
	static struct stub_action a[] = {
		{ OK_HELLO, 0, STUB_KEEP },
		{ big, 0, STUB_KEEP },
	};
	struct upstream_pool *pool;
	struct upstream_req *req;
	struct result res;
	int n;

	n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\n"
	    "Content-Length: %zu\r\n\r\n", sizeof big - 200);
	memset(big + n, 'x', sizeof big - 1 - (size_t)n);
	stub_start(a, 2);
	conf_init(stub.port);
	pool = pool_new();
	get_one(pool, &res);
	res_clear(&res);
	res_init(&res);
	req = send_req(pool, "GET", true, &res);
	upstream_req_cancel(req);
	run_until(NULL, &stub.ncloses, 1);
	ck_assert(!res.done);
	ck_assert_uint_eq(upstream_pool_idle(pool), 0);
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

/* Freeing the pool ends its orphans (nothing leaks, the socket closes). */
START_TEST(test_cancel_orphan_pool_freed)
{
	static const struct stub_action a[] = {
		{ OK_HELLO, 0, STUB_KEEP },
		{ NULL, 0, STUB_STALL },
	};
	struct upstream_pool *pool;
	struct upstream_req *req;
	struct result res;

	stub_start(a, 2);
	conf_init(stub.port);
	pool = pool_new();
	get_one(pool, &res);
	res_clear(&res);
	res_init(&res);
	req = send_req(pool, "GET", true, &res);
	upstream_req_cancel(req);
	upstream_pool_free(pool);
	run_until(NULL, &stub.ncloses, 1);
	ck_assert(!res.done);
	res_clear(&res);
}
END_TEST

/* An idle connection the upstream closes leaves the pool at once. */
START_TEST(test_idle_closed_by_peer)
{
	static const struct stub_action a[] = { { OK_HELLO, 0, STUB_CLOSE } };
	struct upstream_pool *pool;
	struct result res;
	bool idle_gone = false;

	stub_start(a, 1);
	conf_init(stub.port);
	pool = pool_new();
	get_one(pool, &res);
	ck_assert_int_eq(res.err, UPSTREAM_OK);
	res_clear(&res);
	for (int i = 0; i < 1000 && !idle_gone; i++) {
		event_base_loop(base, EVLOOP_ONCE);
		idle_gone = upstream_pool_idle(pool) == 0;
	}
	ck_assert(idle_gone);
	get_one(pool, &res);
	ck_assert_int_eq(res.err, UPSTREAM_OK);
	ck_assert(!res.reused);
	res_clear(&res);
	ck_assert_uint_eq(upstream_pool_connects(pool), 2);
	upstream_pool_free(pool);
}
END_TEST

START_TEST(test_idle_timeout)
{
	static const struct stub_action a[] = { { OK_HELLO, 0, STUB_KEEP } };
	struct upstream_pool *pool;
	struct result res;

	stub_start(a, 1);
	conf_init(stub.port);
	pool = pool_new();
	upstream_pool_set_idle_timeout(pool, 50);
	get_one(pool, &res);
	res_clear(&res);
	ck_assert_uint_eq(upstream_pool_idle(pool), 1);
	run_until(NULL, &stub.ncloses, 1);
	ck_assert_uint_eq(upstream_pool_idle(pool), 0);
	upstream_pool_free(pool);
}
END_TEST

/* Parallel exchanges: one connection each, at most keepalive kept. */
START_TEST(test_parallel_and_limit)
{
	static const struct stub_action a[] = { { OK_HELLO, 0, STUB_KEEP } };
	struct upstream_pool *pool;
	struct result res[4];
	int i, done = 0;

	stub_start(a, 1);
	conf_init(stub.port);
	conf.keepalive = 2;
	pool = pool_new();
	for (i = 0; i < 4; i++) {
		res_init(&res[i]);
		send_req(pool, "GET", true, &res[i]);
	}
	for (i = 0; i < 4; i++) {
		run_until(&res[i].done, NULL, 0);
		ck_assert_int_eq(res[i].err, UPSTREAM_OK);
		done++;
	}
	ck_assert_int_eq(done, 4);
	ck_assert_uint_eq(upstream_pool_connects(pool), 4);
	ck_assert_uint_eq(upstream_pool_idle(pool), 2);
	for (i = 0; i < 4; i++)
		res_clear(&res[i]);
	upstream_pool_free(pool);
}
END_TEST

/* The pool may be freed with an exchange in flight. */
START_TEST(test_pool_free_in_flight)
{
	static const struct stub_action a[] = { { OK_HELLO, 0, STUB_KEEP } };
	struct upstream_pool *pool;
	struct result res;

	stub_start(a, 1);
	conf_init(stub.port);
	pool = pool_new();
	res_init(&res);
	send_req(pool, "GET", true, &res);
	upstream_pool_free(pool);
	run_until(&res.done, NULL, 0);
	ck_assert_int_eq(res.err, UPSTREAM_OK);
	assert_body(&res, "hello");
	res_clear(&res);
	run_until(NULL, &stub.ncloses, 1);
}
END_TEST

/* The request body goes out as given. */
START_TEST(test_request_body)
{
	static const struct stub_action a[] = { { OK_HELLO, 0, STUB_KEEP } };
	const char *rq = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
	    "\r\nbody";
	struct upstream_pool *pool;
	struct evbuffer *b;
	struct result res;

	stub_start(a, 1);
	conf_init(stub.port);
	pool = pool_new();
	res_init(&res);
	b = evbuffer_new();
	evbuffer_add(b, rq, strlen(rq));
	res.req = upstream_request(pool, b, false, false, &res_cbs, &res);
	evbuffer_free(b);
	run_until(&res.done, NULL, 0);
	ck_assert_int_eq(res.err, UPSTREAM_OK);
	ck_assert_uint_eq(evbuffer_get_length(stub.seen), strlen(rq));
	ck_assert_mem_eq(evbuffer_pullup(stub.seen, -1), rq, strlen(rq));
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

/* Header entries are recycled across exchanges: longer values the second
 * time, fewer headers the third, an entry taken by the caller. */
START_TEST(test_header_entries_recycled)
{
	static const struct stub_action a[] = {
		{ "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n"
		    "Content-Length: 0\r\n\r\n", 0, STUB_KEEP },
		{ "HTTP/1.1 200 OK\r\nA-Much-Longer-Header-Name-Than-Before-"
		    "Here: 0123456789012345678901234567890123456789012345678901"
		    "23456789012345678901234567890123456789\r\nB: 2\r\n"
		    "Content-Length: 0\r\n\r\n", 0, STUB_KEEP },
		{ "HTTP/1.1 204 No Content\r\nZ: z\r\n\r\n", 0, STUB_KEEP },
	};
	struct upstream_pool *pool;
	struct result res;
	int i;

	stub_start(a, 3);
	conf_init(stub.port);
	pool = pool_new();
	for (i = 0; i < 6; i++) {
		res_init(&res);
		res.take_first_header = i % 2 == 1;
		send_req(pool, "GET", true, &res);
		run_until(&res.done, NULL, 0);
		ck_assert_int_eq(res.err, UPSTREAM_OK);
		switch (i) {
		case 0:
			ck_assert_int_eq(res.nheaders, 4);
			ck_assert_str_eq(res.first_key, "A");
			ck_assert_str_eq(res.first_value, "1");
			break;
		case 1:
			ck_assert_int_eq(res.nheaders, 3);
			ck_assert_str_eq(res.first_key, "A-Much-Longer-Header-"
			    "Name-Than-Before-Here");
			ck_assert_uint_eq(strlen(res.first_value), 90);
			break;
		default:
			ck_assert_int_eq(res.status, 204);
			ck_assert_int_eq(res.nheaders, 1);
			ck_assert_str_eq(res.first_key, "Z");
			ck_assert_str_eq(res.first_value, "z");
			break;
		}
		res_clear(&res);
	}
	ck_assert_uint_eq(upstream_pool_connects(pool), 1);
	upstream_pool_free(pool);
}
END_TEST

#define HUGE_BODY (8 * 1024 * 1024)

/* A request larger than the socket buffer goes out over several writes
 * (the write event is armed on the short write). */
START_TEST(test_large_request)
{
	static const struct stub_action a[] = { { OK_HELLO, 0, STUB_KEEP } };
	struct upstream_pool *pool;
	struct evbuffer *b;
	struct result res;
	char *body;

	stub_start(a, 1);
	conf_init(stub.port);
	pool = pool_new();
	res_init(&res);
	b = evbuffer_new();
	evbuffer_add_printf(b, "POST /x HTTP/1.1\r\nHost: t\r\n"
	    "Content-Length: %d\r\n\r\n", HUGE_BODY);
	body = xmalloc(HUGE_BODY);
	memset(body, 'b', HUGE_BODY);
	evbuffer_add(b, body, HUGE_BODY);
	free(body);
	res.req = upstream_request(pool, b, false, false, &res_cbs, &res);
	evbuffer_free(b);
	run_until(&res.done, NULL, 0);
	ck_assert_int_eq(res.err, UPSTREAM_OK);
	assert_body(&res, "hello");
	ck_assert_uint_gt(evbuffer_get_length(stub.seen), HUGE_BODY);
	ck_assert_uint_eq(upstream_pool_idle(pool), 1);
	res_clear(&res);
	upstream_pool_free(pool);
}
END_TEST

/* Both tables were read whole: a missing file, a short line or a lost row
 * fails here rather than leaving a loop test with nothing to run. */
START_TEST(test_tables_read)
{
	ck_assert_msg(table_error[0] == '\0', "%s", table_error);
	ck_assert_int_ge(n_vecs, RESPONSES_MIN_ROWS);
	ck_assert_int_ge(n_xvecs, EXCHANGES_MIN_ROWS);
}
END_TEST

static Suite *
upstream_suite(void)
{
	Suite *s = suite_create("upstream");
	TCase *tc;

	n_vecs = table_load("responses.tsv", 9, vec_row);
	n_xvecs = table_load("exchanges.tsv", 11, xvec_row);

	tc = tcase_create("tables");
	tcase_add_test(tc, test_tables_read);
	suite_add_tcase(s, tc);

	tc = tcase_create("parser");
	tcase_add_test(tc, test_parser_move_headers);
	tcase_add_loop_test(tc, test_parser_whole, 0, n_vecs);
	tcase_add_loop_test(tc, test_parser_bytewise, 0, n_vecs);
	tcase_add_loop_test(tc, test_parser_split, 0, n_vecs);
	suite_add_tcase(s, tc);

	tc = tcase_create("exchange");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_exchange_table, 0, n_xvecs);
	tcase_add_test(tc, test_request_body);
	tcase_add_test(tc, test_large_request);
	suite_add_tcase(s, tc);

	tc = tcase_create("keepalive");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_keepalive_reuse);
	tcase_add_test(tc, test_retry_stale);
	tcase_add_test(tc, test_no_retry_when_not_retryable);
	tcase_add_test(tc, test_idle_closed_by_peer);
	tcase_add_test(tc, test_cancel_orphan_stalled);
	tcase_add_test(tc, test_cancel_orphan_large);
	tcase_add_test(tc, test_cancel_orphan_pool_freed);
	tcase_add_test(tc, test_idle_timeout);
	tcase_add_test(tc, test_parallel_and_limit);
	tcase_add_test(tc, test_pool_free_in_flight);
	tcase_add_test(tc, test_header_entries_recycled);
	suite_add_tcase(s, tc);

	tc = tcase_create("failures");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_resolve_failure);
	tcase_add_test(tc, test_resolve_addresses);
	tcase_add_test(tc, test_pool_uses_given_addresses);
	tcase_add_test(tc, test_connect_timeout);
	tcase_add_test(tc, test_response_timeout);
	suite_add_tcase(s, tc);

	tc = tcase_create("control");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_pause_resume);
	tcase_add_test(tc, test_pause_in_head_with_eof);
	tcase_add_loop_test(tc, test_cancel_in_callback, 0, 3);
	tcase_add_test(tc, test_cancel_early);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(upstream_suite)
