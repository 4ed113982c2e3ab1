/*
 * tls.c -- OpenSSL contexts and TLS bufferevents.
 *
 * Server contexts carry the listener's certificate chain and key; client
 * contexts verify https upstreams against a CA file or the system store.
 * Both refuse anything older than TLS 1.2 and offer "http/1.1" through
 * ALPN (RFC 7301), the only protocol evhttp and upstream.c speak.  The
 * bufferevents allow dirty shutdowns: many HTTP peers close without
 * close_notify, and HTTP framing (RFC 9112 9.8) tells truncation apart.
 *
 * Contexts are built once per configuration generation and only read
 * afterwards, so worker threads share them without locks.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"
#include "util.h"

/* ALPN protocol list in wire format: length-prefixed names. */
static const unsigned char tls_alpn[] = "\x08http/1.1";
/*
 * A listener with HTTP/2 (server.http2): h2 first, the server's
 * preference (RFC 7301 3.2: the server selects; RFC 9113 3.2).
 */
static const unsigned char tls_alpn_h2[] = "\x02h2\x08http/1.1";

static int	tls_alpn_select_cb(SSL *, const unsigned char **,
		    unsigned char *, const unsigned char *, unsigned int,
		    void *);

/* Drain the OpenSSL error queue into one "; "-joined string. */
char *
tls_errors(void)
{
	char *out = NULL, *tmp, buf[256];
	const char *reason;
	unsigned long e;

	while ((e = ERR_get_error()) != 0) {
		reason = ERR_reason_error_string(e);
		if (reason == NULL) {
			ERR_error_string_n(e, buf, sizeof buf);
			reason = buf;
		}
		if (out == NULL)
			out = xstrdup(reason);
		else {
			xasprintf(&tmp, "%s; %s", out, reason);
			free(out);
			out = tmp;
		}
	}
	return out != NULL ? out : xstrdup("no details from OpenSSL");
}

static void
tls_fail(char **cause, const char *what, const char *file)
{
	char *errs = tls_errors();

	if (file != NULL)
		xasprintf(cause, "%s: %s: %s", what, file, errs);
	else
		xasprintf(cause, "%s: %s", what, errs);
	free(errs);
}

/*
 * Can file be opened for reading?  Checked before OpenSSL so that a
 * missing or unreadable file is said plainly ("what: file: No such file
 * or directory") instead of through OpenSSL's error queue.
 */
static int
tls_readable(const char *file, const char *what, char **cause)
{
	FILE *f;

	if ((f = fopen(file, "r")) == NULL) {
		xasprintf(cause, "%s: %s: %s", what, file, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

static SSL_CTX *
tls_ctx_common(const SSL_METHOD *method, char **cause)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(method)) == NULL) {
		tls_fail(cause, "cannot create a TLS context", NULL);
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		tls_fail(cause, "cannot require TLS 1.2", NULL);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

/*
 * Pick the first of our protocols the client offers (arg non-NULL: h2
 * too), else negotiate nothing: a client without ALPN speaks HTTP/1.1.
 */
static int
tls_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	const unsigned char *ours = arg != NULL ? tls_alpn_h2 : tls_alpn;
	unsigned int ours_len = arg != NULL ? sizeof tls_alpn_h2 - 1 :
	    sizeof tls_alpn - 1;
	unsigned char *sel;

	if (SSL_select_next_proto(&sel, outlen, ours, ours_len, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

void
tls_server_ctx_set_h2(SSL_CTX *ctx, bool h2)
{
	/* The argument is only tested for NULL. */
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select_cb,
	    h2 ? (void *)tls_alpn_h2 : NULL);
}

bool
tls_alpn_is_h2(struct bufferevent *bev)
{
	const unsigned char *p = NULL;
	unsigned int len = 0;
	SSL *ssl;

	if ((ssl = bufferevent_openssl_get_ssl(bev)) == NULL)
		return false;
	SSL_get0_alpn_selected(ssl, &p, &len);
	return len == 2 && p[0] == 'h' && p[1] == '2';
}

/* Server context from a PEM certificate chain and key. */
SSL_CTX *
tls_server_ctx_new(const char *cert, const char *key, char **cause)
{
	return tls_server_ctx_load(cert, key, NULL, cause);
}

/* Same; *which says which file was refused ("cert" or "key"). */
SSL_CTX *
tls_server_ctx_load(const char *cert, const char *key, const char **which,
    char **cause)
{
	SSL_CTX *ctx;

	if (which != NULL)
		*which = "cert";
	if ((ctx = tls_ctx_common(TLS_server_method(), cause)) == NULL)
		return NULL;
	if (tls_readable(cert, "cannot load certificate chain", cause) != 0)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_fail(cause, "cannot load certificate chain", cert);
		goto fail;
	}
	if (which != NULL)
		*which = "key";
	if (tls_readable(key, "cannot load private key", cause) != 0)
		goto fail;
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_fail(cause, "cannot load private key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_fail(cause, "private key does not match the certificate",
		    key);
		goto fail;
	}
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select_cb, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Client context verifying peers against ca_file or the system store. */
SSL_CTX *
tls_client_ctx_new(bool verify, const char *ca_file, char **cause)
{
	SSL_CTX *ctx;

	if ((ctx = tls_ctx_common(TLS_client_method(), cause)) == NULL)
		return NULL;
	if (verify) {
		if (ca_file != NULL) {
			if (tls_readable(ca_file, "cannot load CA file",
			    cause) != 0)
				goto fail;
			if (SSL_CTX_load_verify_locations(ctx, ca_file,
			    NULL) != 1) {
				tls_fail(cause, "cannot load CA file",
				    ca_file);
				goto fail;
			}
		} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			tls_fail(cause, "cannot load the system CA store",
			    NULL);
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_set_alpn_protos(ctx, tls_alpn, sizeof tls_alpn - 1) != 0) {
		tls_fail(cause, "cannot set ALPN", NULL);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Accepting bufferevent for fd (may be -1: evhttp sets it later). */
struct bufferevent *
tls_server_bev(struct event_base *base, SSL_CTX *ctx, int fd)
{
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static bool
tls_is_ip(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, buf) == 1 ||
	    inet_pton(AF_INET6, name, buf) == 1;
}

/*
 * Connecting bufferevent on a connected (or connecting) fd.  SNI is not
 * sent for IP literals (RFC 6066 3); verification checks the DNS name or
 * the IP address against the certificate (RFC 6125).  On failure NULL is
 * returned and fd is left open.
 */
struct bufferevent *
tls_client_bev(struct event_base *base, SSL_CTX *ctx, int fd,
    const char *server_name, bool verify)
{
	struct bufferevent *bev;
	X509_VERIFY_PARAM *param;
	bool ip;
	SSL *ssl;

	if ((ssl = SSL_new(ctx)) == NULL)
		return NULL;
	if (server_name != NULL && server_name[0] != '\0') {
		ip = tls_is_ip(server_name);
		if (!ip && SSL_set_tlsext_host_name(ssl, server_name) != 1)
			goto fail;
		if (verify) {
			param = SSL_get0_param(ssl);
			X509_VERIFY_PARAM_set_hostflags(param,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (ip ? X509_VERIFY_PARAM_set1_ip_asc(param,
			    server_name) != 1 : SSL_set1_host(ssl,
			    server_name) != 1)
				goto fail;
		}
	}
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		goto fail;
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
fail:
	log_debug("tls: cannot set up a client connection for %s",
	    server_name != NULL ? server_name : "(none)");
	SSL_free(ssl);
	return NULL;
}
