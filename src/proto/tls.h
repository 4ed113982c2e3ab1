/*
 * tls.h -- OpenSSL contexts for the listeners (server side) and for https
 * upstreams (client side), and the bufferevents that wrap them.
 *
 * Contexts are built once per configuration generation and never changed
 * afterwards (a reload builds new ones).  Errors drain the whole OpenSSL
 * error queue into *cause ("what failed: file: reason; reason"), which the
 * caller frees.
 */
#ifndef TS_TLS_H
#define TS_TLS_H

#include <stdbool.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "common.h"

/* Server context from a PEM certificate chain and key. */
SSL_CTX *tls_server_ctx_new(const char *cert, const char *key, char **cause);
/*
 * Same; on failure *which (static) is "cert" or "key", the file refused
 * (a key that does not match the certificate is the key's fault).
 */
SSL_CTX *tls_server_ctx_load(const char *cert, const char *key,
    const char **which, char **cause);
/*
 * Offer h2 before http/1.1 through ALPN on a server context (true), or
 * http/1.1 only (false, the default of a new context).
 */
void tls_server_ctx_set_h2(SSL_CTX *, bool h2);
/* True when the handshake of a tls_server_bev() selected "h2". */
bool tls_alpn_is_h2(struct bufferevent *);
/* Client context: verify peers against ca_file (NULL: system store) unless
 * verify is false. */
SSL_CTX *tls_client_ctx_new(bool verify, const char *ca_file, char **cause);
/* Accepting bufferevent for fd on base (BEV_OPT_CLOSE_ON_FREE). */
struct bufferevent *tls_server_bev(struct event_base *, SSL_CTX *, int fd);
/* Connecting bufferevent with SNI and, when verify, host name checking. */
struct bufferevent *tls_client_bev(struct event_base *, SSL_CTX *, int fd,
    const char *server_name, bool verify);
/* Drain the OpenSSL error queue into one "; "-joined string (caller
 * frees). */
char *tls_errors(void);

#endif /* TS_TLS_H */
