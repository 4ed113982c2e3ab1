/*
 * tunnel.h -- the two-way byte tunnel of a switched connection (a
 * WebSocket after its 101, RFC 6455), and the check of a request that asks
 * to switch protocols.
 *
 * A tunnel joins two bufferevents that it owns from tunnel_new() on: the
 * client's (from the front-end's upgrade(), exchange.h) and the backend's
 * (from upstream_req_detach(), upstream.h).  What one side sends is
 * written to the other as it arrives, without looking at it.
 *
 * Back-pressure: when the bytes waiting for one side pass TUNNEL_HIGH_WATER
 * the other side is no longer read until they are down to half of it, so
 * a slow reader holds at most that much (plus one read) per direction.
 * Half-close: an EOF from one side is passed on as a shutdown of writing
 * toward the other (TCP), once what was queued for it has left; the
 * tunnel ends when both sides have finished.  A TLS side cannot be half
 * closed (a close_notify ends the whole connection for most peers): the
 * tunnel ends once the bytes for it have left.  Idle: when no byte was
 * read from nor written to either side for idle_ms the tunnel ends.
 *
 * done() runs once, from the tunnel's own event callbacks (never from
 * tunnel_new), with why ("closed", "idle timeout", "client reset", ...)
 * and error set for a reset or a failure; the owner then calls
 * tunnel_free() (it may from inside done()), which closes both sides.
 */
#ifndef TS_TUNNEL_H
#define TS_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "exchange.h"

/* Bytes queued toward one side before the other stops being read. */
#define TUNNEL_HIGH_WATER	(256 * 1024)

struct tunnel;

typedef void tunnel_done_fn(struct tunnel *, void *arg, const char *why,
    bool error);

/*
 * Join client and upstream (both on the same event base, disabled); bytes
 * already in either input are passed on at once.  NULL when out of memory
 * (the bufferevents stay the caller's).
 */
struct tunnel *tunnel_new(struct bufferevent *client,
    struct bufferevent *upstream, uint64_t idle_ms, tunnel_done_fn *done,
    void *arg);
/* Close both sides and free the tunnel.  NULL-safe. */
void tunnel_free(struct tunnel *);
/* Bytes passed client -> upstream and upstream -> client so far. */
uint64_t tunnel_bytes_up(const struct tunnel *);
uint64_t tunnel_bytes_down(const struct tunnel *);

/* What a request asks for: tunnel_upgrade_check(). */
enum tunnel_upgrade {
	TUNNEL_UPGRADE_NONE = 0,	/* no upgrade: an ordinary request */
	TUNNEL_UPGRADE_WEBSOCKET,	/* a WebSocket opening handshake */
	TUNNEL_UPGRADE_REFUSED,		/* answer *status with *why */
};

/*
 * Read the request's Upgrade and Connection fields (RFC 9110 7.8) and the
 * WebSocket handshake fields (RFC 6455 4.1): NONE without an Upgrade
 * field, without the "upgrade" Connection option, or on HTTP/1.0 (whose
 * Upgrade is ignored); WEBSOCKET for a GET
 * that lists "websocket" in Upgrade and "upgrade" in Connection, with
 * Sec-WebSocket-Key and Sec-WebSocket-Version; else REFUSED with a status
 * (400: a malformed handshake; 501: another protocol, h2c included) and a
 * static reason.  Pure.
 */
enum tunnel_upgrade tunnel_upgrade_check(const struct exchange *req,
    int *status, const char **why);

#endif /* TS_TUNNEL_H */
