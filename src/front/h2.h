/*
 * h2.h -- the HTTP/2 client front-end (RFC 9113) on nghttp2's server
 * session: the second front-end of the exchange door (exchange.h), next
 * to conn.c's HTTP/1.1.  Each stream is one struct exchange; the design
 * (lifetimes, who frees what, back-pressure) is the comment at the top of
 * h2.c.
 *
 * A connection becomes HTTP/2 in conn.c: a TLS handshake that selected
 * ALPN "h2" (server.http2), or, on a plaintext listener with
 * server.http2_cleartext, the 24-byte client preface as the first bytes
 * (h2c with prior knowledge, RFC 9113 3.3; no Upgrade).  conn.c then
 * hands the socket (and the TLS bufferevent) with the bytes it already
 * read to h2_conn_new() and forgets the connection; h2.c owns it from
 * there and tells the worker through f->events->closed() when it ends,
 * as conn.c does.
 *
 * For the fuzz target: h2_conn_new() on one end of a socketpair(2), with
 * a struct conn_front set up by conn_front_init() (any pipeline table,
 * e.g. the real proxy_exchange or a fake), runs the whole front-end over
 * an in-memory byte stream: write frames to the other end, run the
 * base's loop, read the answers.  pre/npre may be NULL/0 (the preface
 * then comes through the socket).
 */
#ifndef TS_H2_H
#define TS_H2_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>

#include "conn.h"

/* The client connection preface (RFC 9113 3.4), 24 bytes. */
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

/*
 * Take over a client connection: fd (plaintext, tls_bev NULL) or the TLS
 * bufferevent tls_bev (its fd), the client's "ip:port" and ip, and the
 * first npre bytes it sent (read by conn.c; may hold the preface).
 * Returns 0, or -1 (nothing taken: the caller closes).
 */
int h2_conn_new(struct conn_front *, int fd, struct bufferevent *tls_bev,
    const char *client, const char *client_ip, const void *pre, size_t npre);

/*
 * GOAWAY (NO_ERROR) on every HTTP/2 connection of f: streams already
 * begun are finished, new ones refused, and each connection closes once
 * its last stream ended.  Drain and reload both call it (a reload: so
 * that clients reconnect under the new generation's settings).
 */
void h2_front_goaway(struct conn_front *);
/*
 * Whether a new generation (configuration cur, after old) should send
 * GOAWAY to the HTTP/2 clients: a reload does (its SETTINGS may differ,
 * its certificates were read again), a generation of the same
 * configuration does not (the resolver's: only upstream addresses
 * changed, which no client connection depends on).
 */
bool h2_front_gen_goaway(const struct config *old, const struct config *cur);
/* Close every HTTP/2 connection of f now (worker exit). */
void h2_front_close_all(struct conn_front *);
/* Open HTTP/2 connections of f. */
size_t h2_front_count(const struct conn_front *);

#endif /* TS_H2_H */
