/*
 * fake_agent.c -- a fake Datadog Agent and OTLP collector for the
 * integration and cross-check tests.  Accepts PUT/POST /v0.4/traces and
 * POST /v1/traces (any target, really), decodes msgpack bodies with
 * msgpack-c and JSON bodies with jansson, and records every request as
 * one JSON line: {"method", "path", "headers": {...}, "body": <decoded>,
 * "types": <the same shape with each leaf replaced by its msgpack type:
 * uint, int, float32, float64, str, bin, bool, nil>}.  It answers with a
 * configurable rate_by_service JSON, or per -m: 500, garbage (not HTTP),
 * stall (accept, never answer), slow (answer after -d ms).
 * Unsigned integers above INT64_MAX are written as decimal strings (JSON
 * numbers are signed 64-bit in jansson); every other uint is a number.
 *
 * Control requests (not recorded, answered 200 "{}"): PUT /control/answer
 * with the new 200 body (e.g. another rate_by_service), PUT
 * /control/mode?normal|500|garbage|stall|slow.  Tests use them to change
 * the agent's behaviour without restarting it.
 *
 * usage: fake_agent [-p port] [-u unix_path] [-m mode] [-r json] [-d ms]
 *                   [-o file] [-q]
 * -q (benchmarks): no headers, body or types, only "spans": the number of
 * spans in a msgpack body.  To keep the agent's CPU (which shares a core
 * with the load generator) from slowing the run, only every 64th payload
 * is decoded; the others are counted from X-Datadog-Trace-Count, which is
 * the span count for the gateway's one-span traces.  A decoded payload
 * whose span count differs from its header is reported on stderr and in
 * the line ("count_mismatch"), so the shortcut cannot hide a bad count.
 * With -p 0 (the default) it prints "fake agent listening on
 * http://127.0.0.1:PORT" on stdout once it listens.
 */
#include <inttypes.h>
#include <signal.h>

#include <event2/event.h>
#include <jansson.h>
#include <msgpack.h>

#include "fake_agent_core.h"

static FILE *out;
static bool quiet;	/* -q: one {"method","path","spans"} line each */

/* Spans in a decoded v0.4 body (array of arrays), else 0. */
static size_t
mp_spans(const msgpack_object *o)
{
	size_t n = 0;
	uint32_t i;

	if (o->type != MSGPACK_OBJECT_ARRAY)
		return 0;
	for (i = 0; i < o->via.array.size; i++)
		if (o->via.array.ptr[i].type == MSGPACK_OBJECT_ARRAY)
			n += o->via.array.ptr[i].via.array.size;
	return n;
}

static json_t *
mp_json(const msgpack_object *o, bool types)
{
	json_t *v;
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (types)
			return json_string("uint");
		/*
		 * JSON numbers here are signed 64-bit (jansson): a uint64
		 * above INT64_MAX (a 64-bit id with the top bit set) is
		 * written as its decimal string instead, so it never comes
		 * out negative.  "types" still says "uint".
		 */
		if (o->via.u64 > (uint64_t)INT64_MAX) {
			char num[24];

			snprintf(num, sizeof num, "%" PRIu64, o->via.u64);
			return json_string(num);
		}
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return types ? json_string("int") :
		    json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
		return types ? json_string("float32") : json_real(o->via.f64);
	case MSGPACK_OBJECT_FLOAT64:
		return types ? json_string("float64") : json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return types ? json_string("str") :
		    json_stringn(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return types ? json_string("bin") :
		    json_integer((json_int_t)o->via.bin.size);
	case MSGPACK_OBJECT_BOOLEAN:
		return types ? json_string("bool") :
		    json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_ARRAY:
		v = json_array();
		for (i = 0; i < o->via.array.size; i++)
			json_array_append_new(v, mp_json(&o->via.array.ptr[i],
			    types));
		return v;
	case MSGPACK_OBJECT_MAP:
		v = json_object();
		for (i = 0; i < o->via.map.size; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;
			char key[256];
			size_t n;

			if (k->type != MSGPACK_OBJECT_STR)
				continue;
			n = k->via.str.size < sizeof key - 1 ?
			    k->via.str.size : sizeof key - 1;
			memcpy(key, k->via.str.ptr, n);
			key[n] = '\0';
			json_object_set_new(v, key,
			    mp_json(&o->via.map.ptr[i].val, types));
		}
		return v;
	default:
		return types ? json_string("nil") : json_null();
	}
}

static json_t *
headers_json(const char *head)
{
	json_t *h = json_object();
	const char *p = head;

	while (*p != '\0' && !(p[0] == '\r' && p[1] == '\n')) {
		const char *eol = strstr(p, "\r\n"), *colon, *v;
		char name[128];
		size_t n;

		if (eol == NULL)
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL) {
			n = (size_t)(colon - p) < sizeof name - 1 ?
			    (size_t)(colon - p) : sizeof name - 1;
			for (size_t i = 0; i < n; i++)
				name[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ?
				    p[i] + 32 : p[i]);
			name[n] = '\0';
			for (v = colon + 1; *v == ' '; v++)
				;
			json_object_set_new(h, name,
			    json_stringn(v, (size_t)(eol - v)));
		}
		p = eol + 2;
	}
	return h;
}

static enum fa_mode parse_mode(const char *);

/* A /control/ request: change the answer or the mode of later requests. */
static void
control(struct fa_agent *fa, const struct fa_request *r)
{
	const char *q;

	if (strcmp(r->target, "/control/answer") == 0) {
		pthread_mutex_lock(&fa->mu);
		free(fa->answer);
		fa->answer = strdup(r->body);
		pthread_mutex_unlock(&fa->mu);
	} else if (strncmp(r->target, "/control/mode?", 14) == 0) {
		q = r->target + 14;
		pthread_mutex_lock(&fa->mu);
		fa->mode = parse_mode(q);
		pthread_mutex_unlock(&fa->mu);
	}
}

static void
on_request(struct fa_agent *fa, const struct fa_request *r)
{
	static unsigned quiet_n;
	json_t *line, *body = NULL, *types = NULL;
	char ct[128], tc[32];
	char *s;
	bool have_tc;

	if (strncmp(r->target, "/control/", 9) == 0) {
		control(fa, r);
		return;
	}
	line = json_object();
	json_object_set_new(line, "method", json_string(r->method));
	json_object_set_new(line, "path", json_string(r->target));
	if (!quiet)
		json_object_set_new(line, "headers", headers_json(r->head));
	have_tc = fa_header(r->head, "X-Datadog-Trace-Count", tc,
	    sizeof tc) != NULL;
	if (quiet && have_tc && quiet_n++ % 64 != 0) {
		json_object_set_new(line, "spans",
		    json_integer((json_int_t)strtoll(tc, NULL, 10)));
	} else if (fa_header(r->head, "Content-Type", ct, sizeof ct) != NULL &&
	    strstr(ct, "msgpack") != NULL) {
		msgpack_zone z;
		msgpack_object o;
		size_t off = 0;

		msgpack_zone_init(&z, 4096);
		if (msgpack_unpack(r->body, r->body_len, &off, &z, &o) ==
		    MSGPACK_UNPACK_SUCCESS) {
			if (quiet) {
				size_t n = mp_spans(&o);

				json_object_set_new(line, "spans",
				    json_integer((json_int_t)n));
				if (have_tc && strtoull(tc, NULL, 10) != n) {
					fprintf(stderr, "fake agent: %zu spans "
					    "but X-Datadog-Trace-Count %s\n", n,
					    tc);
					json_object_set_new(line,
					    "count_mismatch", json_true());
				}
			} else {
				body = mp_json(&o, false);
				types = mp_json(&o, true);
			}
		}
		msgpack_zone_destroy(&z);
	} else if (r->body_len > 0 && !quiet)
		body = json_loadb(r->body, r->body_len, 0, NULL);
	if (!quiet)
		json_object_set_new(line, "body", body != NULL ? body :
		    json_null());
	if (types != NULL)
		json_object_set_new(line, "types", types);
	if ((s = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS)) != NULL) {
		fprintf(out, "%s\n", s);
		fflush(out);
		free(s);
	}
	json_decref(line);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

static enum fa_mode
parse_mode(const char *m)
{
	static const char *const names[] = {
		"normal", "500", "garbage", "stall", "slow",
	};
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(m, names[i]) == 0)
			return (enum fa_mode)i;
	fprintf(stderr, "fake_agent: unknown mode %s\n", m);
	exit(2);
}

int
main(int argc, char **argv)
{
	struct fa_agent fa;
	struct event *sigterm, *sigint;
	const char *unix_path = NULL, *rates = NULL, *outpath = NULL;
	enum fa_mode mode = FA_NORMAL;
	unsigned delay = 500;
	int c, port = 0;

	while ((c = getopt(argc, argv, "p:u:m:r:d:o:q")) != -1) {
		switch (c) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'u':
			unix_path = optarg;
			break;
		case 'm':
			mode = parse_mode(optarg);
			break;
		case 'r':
			rates = optarg;
			break;
		case 'd':
			delay = (unsigned)atoi(optarg);
			break;
		case 'o':
			outpath = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		default:
			fprintf(stderr, "usage: fake_agent [-p port] "
			    "[-u unix_path] [-m normal|500|garbage|stall|slow] "
			    "[-r json] [-d ms] [-o file] [-q]\n");
			return 2;
		}
	}
	out = stdout;
	if (outpath != NULL && (out = fopen(outpath, "a")) == NULL) {
		perror(outpath);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (fa_init(&fa, port, unix_path) != 0) {
		fprintf(stderr, "fake_agent: cannot listen\n");
		return 1;
	}
	fa_set(&fa, mode, rates);
	fa.delay_ms = delay;
	fa.on_request = on_request;
	/* -q: a bench's hours of payloads are not kept in memory. */
	fa.discard_bodies = quiet;
	if (unix_path != NULL)
		printf("fake agent listening on unix://%s\n", unix_path);
	else
		printf("fake agent listening on http://127.0.0.1:%d\n", fa.port);
	fflush(stdout);
	sigterm = evsignal_new(fa.base, SIGTERM, on_signal, fa.base);
	sigint = evsignal_new(fa.base, SIGINT, on_signal, fa.base);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	event_base_dispatch(fa.base);
	event_free(sigterm);
	event_free(sigint);
	fa_fini(&fa);
	if (out != stdout)
		fclose(out);
	return 0;
}
