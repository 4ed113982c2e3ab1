/*
 * admin.h -- the admin listener: /healthz, /readyz, /metrics and
 * /debug/propagation, served by evhttp (its only user: the client
 * listeners have their own HTTP/1.1 server side, front/conn.c).
 *
 * The worker (server.c) binds the socket and owns the process state; it
 * hands admin_new() the descriptor and a table of hooks that read that
 * state and hear about accept() failures, so admin/ calls nothing in the
 * worker.  Everything runs on the main thread's event base.
 */
#ifndef TS_ADMIN_H
#define TS_ADMIN_H

#include <stdbool.h>

#include <event2/event.h>

#include "config.h"

struct admin;

struct admin_hooks {
	bool (*draining)(void *arg);	/* /readyz: 503 "draining" */
	bool (*ready)(void *arg);	/* /readyz: 503 "starting" until */
	/* The configuration /debug/propagation explains (the current). */
	const struct config *(*config)(void *arg);
	/* A connection was accepted (a later failure backs off afresh). */
	void (*accepted)(void *arg);
	/*
	 * accept() failed with something libevent does not retry itself
	 * (EMFILE, ENFILE, ENOBUFS, ENOMEM): accepting is paused; the hook
	 * schedules admin_resume().  err is the errno.
	 */
	void (*accept_error)(void *arg, int err);
	/*
	 * /readyz: the name of a route that has no healthy upstream server
	 * when server.readyz_requires_upstreams is on (503 "no_upstream"),
	 * else NULL.  May be NULL itself.
	 */
	const char *(*unready)(void *arg);
};

/*
 * Serve the admin endpoints on the listening socket fd (taken over: freed
 * with the admin).  NULL with *cause (caller frees) when libevent cannot.
 */
struct admin *admin_new(struct event_base *, int fd,
    const struct admin_hooks *, void *arg, char **cause);
/* Accept again after an accept_error pause. */
void admin_resume(struct admin *);
/* Stop serving and close the socket.  NULL-safe. */
void admin_free(struct admin *);

#endif /* TS_ADMIN_H */
