/*
 * rum_intake.h -- the RUM intake relay (docs/rum-relay.md): a route with
 * routes[].rum_intake takes the Browser SDK's batches (its `proxy`
 * option: POST <route>?ddforward=<intake path and query>) and sends each
 * to the configured intake origin, the route's one upstream server.
 *
 * proxy.c drives it (its proxy_rum_start, proxy_req_close): the checks
 * and the intake request are here, as functions that call nothing in
 * proxy.c; the request then goes through the upstream client and back
 * like any proxied one, with the route's CORS headers.
 */
#ifndef TS_RUM_INTAKE_H
#define TS_RUM_INTAKE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "config.h"
#include "ddforward.h"
#include "exchange.h"

/*
 * Check a relay request (uri: its origin-form target): POST only, the
 * ddforward parameter (ddforward_parse into *d), the route's body bound.
 * Returns 0 to forward, else the status to answer (405, 400, 413) with
 * *why, a static sentence.
 */
int rum_intake_check(const struct config_route *, const struct exchange *,
    const char *uri, struct ddforward *d, const char **why);

/*
 * The intake request into out: POST, the intake's base path and the
 * decoded ddforward target, Host the intake's, the client's end-to-end
 * fields but Cookie, Authorization, Proxy-Authorization, the tracing
 * headers, Forwarded, X-Forwarded-* and X-Real-IP; X-Forwarded-For
 * client_ip (server.trusted_proxies already applied); our
 * Content-Length; the body, moved out of the exchange byte for byte.
 */
void rum_intake_request(const struct config_upstream *intake,
    const struct exchange *, const struct ddforward *d,
    const char *client_ip, struct evbuffer *out);

/* How a relay request ended, for rum_intake_count. */
enum rum_intake_result {
	RUM_INTAKE_FORWARDED = 0,	/* the intake answered 2xx */
	RUM_INTAKE_REJECTED,		/* it answered something else */
	RUM_INTAKE_REFUSED,		/* the relay refused it (4xx) */
	RUM_INTAKE_FAILED,		/* no answer (connect, timeout, ...) */
	RUM_INTAKE_NRESULTS,
};

/*
 * Count a finished relay request (any thread): track (-1: not known),
 * result, body bytes sent to the intake, duration.  The families
 * (tracestitch_rum_intake_*) are rendered once registered (every
 * pipeline does), their series once rum_intake_metrics_on() was called
 * (a generation with a relay route): no 28 zeros without a relay.
 */
void rum_intake_count(int track, enum rum_intake_result, uint64_t bytes,
    uint64_t duration_us);
void rum_intake_metrics_register(void);
void rum_intake_metrics_on(void);

#endif /* TS_RUM_INTAKE_H */
