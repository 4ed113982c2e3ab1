/*
 * demo_backend.c -- a tiny HTTP backend for `make run` and the docs.
 *
 * Answers every request with 200 and a JSON object describing what it
 * received: method, path, query, every header line in order (repeats
 * kept) and the body size.  It lets a user see exactly what the gateway
 * forwarded (trace headers injected, hop-by-hop headers removed,
 * X-Forwarded-* added).  libevent evhttp, single-threaded.
 *
 * Usage: demo_backend [-a ADDR] [-p PORT]   (default 127.0.0.1:9000;
 * -p 0 picks a free port and prints it).
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

static const char *
method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "UNKNOWN";
}

/* Build the JSON description of one request and send it. */
static void
demo_handle(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	struct evbuffer *out;
	json_t *obj, *hdrs;
	const char *path, *query;
	char *text;

	(void)arg;
	path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;

	hdrs = json_array();
	TAILQ_FOREACH(kv, in, next)
		json_array_append_new(hdrs, json_pack("[ss]", kv->key,
		    kv->value));
	obj = json_pack("{s:s, s:s, s:s?, s:o, s:I}",
	    "method", method_name(evhttp_request_get_command(req)),
	    "path", path != NULL && *path != '\0' ? path : "/",
	    "query", query,
	    "headers", hdrs,
	    "body_bytes", (json_int_t)evbuffer_get_length(
	    evhttp_request_get_input_buffer(req)));
	text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);

	out = evbuffer_new();
	if (text != NULL) {
		evbuffer_add(out, text, strlen(text));
		evbuffer_add(out, "\n", 1);
	}
	free(text);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

/* Stop the loop on SIGINT/SIGTERM. */
static void
demo_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

static void
usage(void)
{
	fprintf(stderr, "usage: demo_backend [-a ADDR] [-p PORT]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct event *ev_int, *ev_term;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	const char *addr = "127.0.0.1";
	char *end;
	long port = 9000;
	int ch;

	while ((ch = getopt(argc, argv, "a:p:h")) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			errno = 0;
			port = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || port < 0 ||
			    port > 65535)
				usage();
			break;
		default:
			usage();
		}
	}
	signal(SIGPIPE, SIG_IGN);

	base = event_base_new();
	http = evhttp_new(base);
	if (base == NULL || http == NULL) {
		fprintf(stderr, "demo_backend: libevent setup failed\n");
		return 1;
	}
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, demo_handle, NULL);
	bound = evhttp_bind_socket_with_handle(http, addr, (uint16_t)port);
	if (bound == NULL) {
		fprintf(stderr, "demo_backend: cannot listen on %s:%ld: %s\n",
		    addr, port, strerror(errno));
		return 1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bound),
	    (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	if (strchr(addr, ':') != NULL)
		printf("demo backend listening on http://[%s]:%ld\n", addr,
		    port);
	else
		printf("demo backend listening on http://%s:%ld\n", addr,
		    port);
	fflush(stdout);

	ev_int = evsignal_new(base, SIGINT, demo_signal, base);
	ev_term = evsignal_new(base, SIGTERM, demo_signal, base);
	event_add(ev_int, NULL);
	event_add(ev_term, NULL);
	event_base_dispatch(base);

	event_free(ev_int);
	event_free(ev_term);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}
