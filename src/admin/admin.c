/*
 * admin.c -- the admin listener's endpoints on evhttp (admin.h).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "admin.h"
#include "debug.h"
#include "metrics.h"
#include "util.h"

struct admin {
	struct evhttp *http;
	struct evconnlistener *lev;	/* freed with http */
	const struct admin_hooks *hooks;
	void *arg;
};

/*
 * The admin of the process, for the listener's error callback: libevent
 * hands that callback the listener's own argument, which
 * evhttp_bind_listener() sets to the evhttp.  One admin listener per
 * process, on the main thread.
 */
static struct admin *admin_current;

/* A JSON string body for s: \ and " escaped, controls as \u00XX. */
static void
admin_json_str(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			evbuffer_add_printf(b, "\\%c", c);
		else if (c < 0x20)
			evbuffer_add_printf(b, "\\u%04x", c);
		else
			evbuffer_add(b, s, 1);
	}
}

/* One request on the admin listener. */
static void
admin_cb(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *body;
	size_t plen = strcspn(uri, "?");
	const char *route;
	int code = 200;

	a->hooks->accepted(a->arg);
	if ((body = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 503, NULL);
		return;
	}
	if (plen == 8 && strncmp(uri, "/healthz", 8) == 0) {
		evhttp_add_header(out, "Content-Type", "application/json");
		evbuffer_add_printf(body, "{\"status\":\"ok\"}\n");
	} else if (plen == 7 && strncmp(uri, "/readyz", 7) == 0) {
		evhttp_add_header(out, "Content-Type", "application/json");
		if (a->hooks->draining(a->arg)) {
			code = 503;
			evbuffer_add_printf(body, "{\"status\":\"draining\"}\n");
		} else if (!a->hooks->ready(a->arg)) {
			code = 503;
			evbuffer_add_printf(body, "{\"status\":\"starting\"}\n");
		} else if (a->hooks->unready != NULL &&
		    (route = a->hooks->unready(a->arg)) != NULL) {
			code = 503;
			evbuffer_add_printf(body, "{\"status\":\"no_upstream\","
			    "\"route\":\"");
			admin_json_str(body, route);
			evbuffer_add_printf(body, "\",\"message\":\"the route "
			    "has no healthy upstream server\"}\n");
		} else
			evbuffer_add_printf(body, "{\"status\":\"ready\"}\n");
	} else if (plen == 8 && strncmp(uri, "/metrics", 8) == 0) {
		const char *accept = evhttp_find_header(
		    evhttp_request_get_input_headers(req), "Accept");
		/* Prometheus asks for OpenMetrics first when it can read it. */
		bool om = accept != NULL &&
		    strstr(accept, "application/openmetrics-text") != NULL;
		char *text = om ? metrics_render_openmetrics() :
		    metrics_render();

		evhttp_add_header(out, "Content-Type", om ?
		    METRICS_CTYPE_OPENMETRICS : METRICS_CTYPE_TEXT);
		if (text != NULL) {
			evbuffer_add(body, text, strlen(text));
			free(text);
		}
	} else if (plen == 18 && strncmp(uri, "/debug/propagation", 18) == 0) {
		/* Answers 404 itself unless admin.debug is on. */
		evbuffer_free(body);
		debug_propagation_reply(req, a->hooks->config(a->arg));
		return;
	} else {
		code = 404;
		evhttp_add_header(out, "Content-Type", "application/json");
		evbuffer_add_printf(body, "{\"error\":\"not_found\"}\n");
	}
	evhttp_send_reply(req, code, code == 200 ? "OK" : code == 404 ?
	    "Not Found" : "Service Unavailable", body);
	evbuffer_free(body);
}

/*
 * accept() failed with something other than EAGAIN/EINTR/ECONNABORTED
 * (libevent retries those itself): without this callback libevent logs
 * and is woken again at once, forever, for the same queued connection.
 */
static void
admin_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct admin *a = admin_current;
	int err = EVUTIL_SOCKET_ERROR();

	(void)arg;
	evconnlistener_disable(l);
	a->hooks->accept_error(a->arg, err);
}

struct admin *
admin_new(struct event_base *base, int fd, const struct admin_hooks *hooks,
    void *arg, char **cause)
{
	struct admin *a;

	if ((a = calloc(1, sizeof *a)) == NULL) {
		xasprintf(cause, "admin: out of memory");
		close(fd);
		return NULL;
	}
	a->hooks = hooks;
	a->arg = arg;
	/* What evhttp_accept_socket_with_handle() does, plus an error
	 * callback; backlog 0: libevent leaves our listen() alone. */
	if ((a->http = evhttp_new(base)) == NULL ||
	    (a->lev = evconnlistener_new(base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd)) == NULL) {
		xasprintf(cause, "admin: cannot listen");
		close(fd);
		admin_free(a);
		return NULL;
	}
	evconnlistener_set_error_cb(a->lev, admin_accept_error_cb);
	if (evhttp_bind_listener(a->http, a->lev) == NULL) {
		xasprintf(cause, "admin: cannot listen");
		evconnlistener_free(a->lev);
		a->lev = NULL;
		admin_free(a);
		return NULL;
	}
	evhttp_set_gencb(a->http, admin_cb, a);
	admin_current = a;
	return a;
}

void
admin_resume(struct admin *a)
{
	evconnlistener_enable(a->lev);
}

void
admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	if (admin_current == a)
		admin_current = NULL;
	if (a->http != NULL)
		evhttp_free(a->http);	/* and the bound listener */
	free(a);
}
