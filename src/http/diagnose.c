/*
 * diagnose.c -- `tracestitch diagnose`: send the preflight a browser
 * running Datadog RUM would send (OPTIONS with Origin, Access-Control-
 * Request-Method and the RUM tracing headers in Access-Control-Request-
 * Headers) to any http or https URL, and report what a browser would do
 * with the answer: origin, method, each requested header, credentials,
 * Vary and max-age, then a verdict and an exit code.
 *
 * The evaluation (diagnose_evaluate) is pure and follows WHATWG Fetch:
 * "CORS check" (ACAO must be "*" or byte-equal to the origin; "*" never
 * passes a credentialed request, which also needs ACAC "true") and
 * "CORS-preflight fetch" (ok status; method listed, "*" or safelisted;
 * each requested header listed case-insensitively, or "*" for
 * non-credentialed requests except Authorization).  The network part
 * uses blocking sockets with timeouts, getaddrinfo and OpenSSL with SNI
 * and certificate verification.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cors/cors.h"
#include "http/diagnose.h"
#include "ts_config.h"
#include "util.h"

#define DIAGNOSE_RESPONSE_MAX 65536
#define DIAGNOSE_TIMEOUT_MS 5000

/* A parsed http(s) URL. */
struct diagnose_url {
	bool https;
	char host[256];		/* without brackets */
	char port[8];
	char authority[300];	/* Host header value */
	char path[2048];	/* path and query, at least "/" */
	bool ip_literal;
};

/* RUM's request headers per propagator (PROPAGATION.md, RUM tracer). */
static const char *const diagnose_rum_datadog[] = { "x-datadog-origin",
	"x-datadog-parent-id", "x-datadog-sampling-priority",
	"x-datadog-trace-id" };
static const char *const diagnose_rum_tracecontext[] = { "traceparent",
	"tracestate" };
static const char *const diagnose_rum_baggage[] = { "baggage" };
static const char *const diagnose_rum_b3[] = { "b3" };
static const char *const diagnose_rum_b3multi[] = { "x-b3-sampled",
	"x-b3-spanid", "x-b3-traceid" };

static const struct {
	const char *name;
	enum config_style style;
} diagnose_styles[] = {
	{ "datadog", CONFIG_STYLE_DATADOG },
	{ "tracecontext", CONFIG_STYLE_TRACECONTEXT },
	{ "baggage", CONFIG_STYLE_BAGGAGE },
	{ "b3", CONFIG_STYLE_B3 },
	{ "b3multi", CONFIG_STYLE_B3MULTI },
};

/* Find the only value of a response header; *count gets the number. */
static const char *
diagnose_find(const struct diagnose_input *in, const char *name,
    size_t *count)
{
	const char *v = NULL;
	size_t i, c = 0;

	for (i = 0; i < in->n_headers; i++) {
		if (util_strcaseeq(in->headers[i].name, name)) {
			if (v == NULL)
				v = in->headers[i].value;
			c++;
		}
	}
	if (count != NULL)
		*count = c;
	return v;
}

/* Does a comma list contain item (exact or case-insensitive)? */
static bool
diagnose_list_has(const char *list, const char *item, bool nocase)
{
	const char *p = list, *s, *e;
	size_t len = strlen(item);

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		s = p;
		while (*p != '\0' && *p != ',')
			p++;
		e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == len && (nocase ?
		    util_strncaseeq(s, item, len) : memcmp(s, item, len) == 0))
			return true;
	}
	return false;
}

/* Add a warning (static text) to a report. */
static void
diagnose_warn(struct diagnose_report *r, const char *text)
{
	if (r->n_warnings < DIAGNOSE_MAX_WARNINGS)
		r->warnings[r->n_warnings++] = text;
}

/* Evaluate the origin part (Fetch "CORS check"). */
static void
diagnose_check_origin(const struct diagnose_input *in,
    struct diagnose_report *r)
{
	size_t n;

	r->acao = diagnose_find(in, "Access-Control-Allow-Origin", &n);
	r->origin_note = "";
	if (r->acao == NULL) {
		r->origin_note = "no Access-Control-Allow-Origin";
		return;
	}
	if (n > 1 || strchr(r->acao, ',') != NULL) {
		r->origin_note = "several Access-Control-Allow-Origin values";
		return;
	}
	if (strcmp(r->acao, "*") == 0) {
		if (in->credentials) {
			r->origin_note = "\"*\" is refused for credentialed "
			    "requests";
			return;
		}
		r->origin_ok = true;
		return;
	}
	if (strcmp(r->acao, in->origin) != 0) {
		r->origin_note = util_strcaseeq(r->acao, in->origin) ?
		    "Access-Control-Allow-Origin differs in case (the "
		    "comparison is byte-exact)" :
		    "Access-Control-Allow-Origin names another origin";
		return;
	}
	r->origin_ok = true;
}

/* Format the verdict line. */
static void
diagnose_verdict_line(struct diagnose_report *r,
    const struct diagnose_input *in)
{
	char list[384];
	size_t i, off = 0;

	list[0] = '\0';
	for (i = 0; i < r->n_headers; i++) {
		if (r->headers[i].allowed)
			continue;
		off += (size_t)snprintf(list + off, off < sizeof list ?
		    sizeof list - off : 0, "%s%s", off ? ", " : "",
		    r->headers[i].name);
		if (off >= sizeof list)
			break;
	}
	if (r->exit_code == DIAGNOSE_EXIT_OK)
		snprintf(r->verdict, sizeof r->verdict, "OK: a browser at %s "
		    "would pass this preflight; every tracing header would be "
		    "sent", in->origin);
	else if (!r->status_ok)
		snprintf(r->verdict, sizeof r->verdict, "FAIL: the preflight "
		    "was answered %d; browsers need a 2xx status", in->status);
	else if (!r->origin_ok)
		snprintf(r->verdict, sizeof r->verdict, "FAIL: origin %s is "
		    "refused (%s)", in->origin, r->origin_note);
	else if (!r->credentials_ok)
		snprintf(r->verdict, sizeof r->verdict, "FAIL: credentialed "
		    "requests need Access-Control-Allow-Credentials: true");
	else if (!r->method_ok)
		snprintf(r->verdict, sizeof r->verdict, "FAIL: method %s is "
		    "refused", in->method);
	else
		snprintf(r->verdict, sizeof r->verdict, "FAIL: %s refused: %s "
		    "(the browser blocks the whole request%s)",
		    r->n_refused > 1 ? "headers" : "header", list,
		    r->n_tracing_refused > 0 ? "; RUM traces will not link "
		    "to APM" : "");
}

/* Evaluate a preflight answer the way a browser would. */
int
diagnose_evaluate(const struct diagnose_input *in, struct diagnose_report *r)
{
	const char *acac, *ma;
	bool star_h, star_m;
	size_t i;

	memset(r, 0, sizeof *r);
	if (in->n_requested > DIAGNOSE_MAX_HEADERS)
		return -1;
	r->status_ok = in->status >= 200 && in->status <= 299;
	diagnose_check_origin(in, r);

	acac = diagnose_find(in, "Access-Control-Allow-Credentials", NULL);
	r->acac = acac != NULL && strcmp(acac, "true") == 0;
	r->credentials_ok = !in->credentials || r->acac;
	if (r->acao != NULL && strcmp(r->acao, "*") == 0 && r->acac &&
	    !in->credentials)
		diagnose_warn(r, "Access-Control-Allow-Origin \"*\" with "
		    "credentials: credentialed requests (fetch credentials: "
		    "include, XHR withCredentials) would be refused");

	/* Fetch CORS-preflight fetch: methods. */
	r->acam = diagnose_find(in, "Access-Control-Allow-Methods", NULL);
	star_m = r->acam != NULL && !in->credentials &&
	    diagnose_list_has(r->acam, "*", false);
	r->method_ok = strcmp(in->method, "GET") == 0 ||
	    strcmp(in->method, "HEAD") == 0 ||
	    strcmp(in->method, "POST") == 0 || star_m ||
	    (r->acam != NULL && diagnose_list_has(r->acam, in->method,
	    false));

	/* Headers: case-insensitive; "*" never covers Authorization. */
	r->acah = diagnose_find(in, "Access-Control-Allow-Headers", NULL);
	star_h = r->acah != NULL && !in->credentials &&
	    diagnose_list_has(r->acah, "*", false);
	for (i = 0; i < in->n_requested; i++) {
		struct diagnose_verdict *v = &r->headers[r->n_headers++];
		const char *name = in->requested[i];

		v->name = name;
		v->tracing = strcmp(cors_header_class(name, strlen(name)),
		    "other") != 0;
		v->allowed = (r->acah != NULL && diagnose_list_has(r->acah,
		    name, true)) || (star_h &&
		    !util_strcaseeq(name, "authorization"));
		if (!v->allowed) {
			r->n_refused++;
			if (v->tracing)
				r->n_tracing_refused++;
		}
	}

	r->vary = diagnose_find(in, "Vary", NULL);
	r->vary_has_origin = r->vary != NULL &&
	    (diagnose_list_has(r->vary, "Origin", true) ||
	    diagnose_list_has(r->vary, "*", false));
	if (!r->vary_has_origin && r->acao != NULL &&
	    strcmp(r->acao, "*") != 0)
		diagnose_warn(r, "Vary lacks Origin: a shared cache may serve "
		    "this answer to another origin");

	ma = diagnose_find(in, "Access-Control-Max-Age", NULL);
	if (ma != NULL && util_parse_u64(ma, strlen(ma), &r->max_age) == 0)
		r->has_max_age = true;
	else if (ma != NULL)
		diagnose_warn(r, "Access-Control-Max-Age is not a number");
	if (!r->has_max_age && r->status_ok)
		diagnose_warn(r, "no Access-Control-Max-Age: browsers cache "
		    "the preflight for 5 seconds only");
	else if (r->has_max_age && r->max_age > 7200)
		diagnose_warn(r, "Chromium caps Access-Control-Max-Age at "
		    "7200 seconds");

	r->exit_code = r->status_ok && r->origin_ok && r->credentials_ok &&
	    r->method_ok && r->n_refused == 0 ? DIAGNOSE_EXIT_OK :
	    DIAGNOSE_EXIT_REFUSED;
	diagnose_verdict_line(r, in);
	return 0;
}

/* Parse a comma-separated propagator list. */
int
diagnose_parse_styles(const char *list, enum config_style *out, size_t max,
    size_t *n, const char **errstr)
{
	const char *p = list, *s;
	size_t i, len;

	*n = 0;
	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		s = p;
		while (*p != '\0' && *p != ',' && *p != ' ')
			p++;
		len = (size_t)(p - s);
		if (len == 0)
			continue;
		for (i = 0; i < TS_NITEMS(diagnose_styles); i++) {
			if (strlen(diagnose_styles[i].name) == len &&
			    util_strncaseeq(diagnose_styles[i].name, s, len))
				break;
		}
		if (i == TS_NITEMS(diagnose_styles)) {
			*errstr = "unknown propagator (use datadog, "
			    "tracecontext, baggage, b3, b3multi)";
			return -1;
		}
		if (*n == max) {
			*errstr = "too many propagators";
			return -1;
		}
		out[(*n)++] = diagnose_styles[i].style;
	}
	if (*n == 0) {
		*errstr = "empty propagator list";
		return -1;
	}
	return 0;
}

/* qsort comparator for strings. */
static int
diagnose_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add a lower-case copy of name unless present. */
static void
diagnose_add_name(char ***v, size_t *n, const char *name)
{
	char *l;
	size_t i;

	for (i = 0; i < *n; i++) {
		if (util_strcaseeq((*v)[i], name))
			return;
	}
	l = xstrdup(name);
	for (i = 0; l[i] != '\0'; i++) {
		if (l[i] >= 'A' && l[i] <= 'Z')
			l[i] = (char)(l[i] - 'A' + 'a');
	}
	*v = xrealloc(*v, (*n + 1) * sizeof **v);
	(*v)[(*n)++] = l;
}

/* The request headers RUM adds for these propagators, Chromium order. */
void
diagnose_rum_headers(const enum config_style *styles, size_t n_styles,
    const char *const *extra, size_t n_extra, char ***out, size_t *n_out)
{
	const char *const *names;
	size_t i, j, n;

	*out = NULL;
	*n_out = 0;
	for (i = 0; i < n_styles; i++) {
		switch (styles[i]) {
		case CONFIG_STYLE_DATADOG:
			names = diagnose_rum_datadog;
			n = TS_NITEMS(diagnose_rum_datadog);
			break;
		case CONFIG_STYLE_TRACECONTEXT:
			names = diagnose_rum_tracecontext;
			n = TS_NITEMS(diagnose_rum_tracecontext);
			break;
		case CONFIG_STYLE_BAGGAGE:
			names = diagnose_rum_baggage;
			n = TS_NITEMS(diagnose_rum_baggage);
			break;
		case CONFIG_STYLE_B3:
			names = diagnose_rum_b3;
			n = TS_NITEMS(diagnose_rum_b3);
			break;
		case CONFIG_STYLE_B3MULTI:
			names = diagnose_rum_b3multi;
			n = TS_NITEMS(diagnose_rum_b3multi);
			break;
		default:
			names = NULL;
			n = 0;
			break;
		}
		for (j = 0; j < n; j++)
			diagnose_add_name(out, n_out, names[j]);
	}
	for (i = 0; i < n_extra; i++)
		diagnose_add_name(out, n_out, extra[i]);
	if (*n_out > 1)
		qsort(*out, *n_out, sizeof **out, diagnose_strcmp);
}

/* Free an array from diagnose_rum_headers. */
void
diagnose_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Parse a response head in place. */
int
diagnose_parse_response(char *buf, size_t len, int *status,
    struct diagnose_header *headers, size_t max, size_t *n,
    const char **errstr)
{
	char *p = buf, *end = buf + len, *eol, *colon, *v, *e;

	*n = 0;
	for (;;) {
		/* status line: HTTP/1.x SP 3DIGIT [SP reason] */
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL || eol - p < 12 || strncmp(p, "HTTP/1.", 7) ||
		    p[8] != ' ' || p[9] < '1' || p[9] > '5' ||
		    p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9') {
			*errstr = "malformed status line";
			return -1;
		}
		*status = (p[9] - '0') * 100 + (p[10] - '0') * 10 +
		    (p[11] - '0');
		p = eol + 1;
		*n = 0;
		for (;;) {
			eol = memchr(p, '\n', (size_t)(end - p));
			if (eol == NULL) {
				*errstr = "truncated response head";
				return -1;
			}
			e = eol;
			if (e > p && e[-1] == '\r')
				e--;
			if (e == p) {
				p = eol + 1;
				break;
			}
			*e = '\0';
			colon = strchr(p, ':');
			if (colon == NULL || colon == p) {
				*errstr = "malformed header line";
				return -1;
			}
			*colon = '\0';
			v = colon + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
				*--e = '\0';
			if (*n < max) {
				headers[*n].name = p;
				headers[*n].value = v;
				(*n)++;
			}
			p = eol + 1;
		}
		/* interim responses (100 Continue, 103 Early Hints) */
		if (*status >= 100 && *status < 200 && *status != 101)
			continue;
		return 0;
	}
}

/* ---- network ---------------------------------------------------------- */

/* Parse an http(s) URL; -1 with *errstr. */
static int
diagnose_url_parse(const char *url, struct diagnose_url *u,
    const char **errstr)
{
	const char *p, *hs, *he, *ps = NULL, *pe;
	size_t hl;

	memset(u, 0, sizeof *u);
	*errstr = "URL must be http://host[:port][/path] or https://...";
	if (strncasecmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0) {
		u->https = true;
		p = url + 8;
	} else
		return -1;
	hs = p;
	if (*p == '[') {
		he = strchr(p, ']');
		if (he == NULL)
			return -1;
		hs = p + 1;
		p = he + 1;
		u->ip_literal = true;
	} else {
		while (*p != '\0' && *p != ':' && *p != '/' && *p != '?' &&
		    *p != '#' && *p != '@')
			p++;
		he = p;
	}
	if (*p == '@')
		return -1;	/* no userinfo */
	hl = (size_t)(he - hs);
	if (hl == 0 || hl >= sizeof u->host)
		return -1;
	memcpy(u->host, hs, hl);
	if (*p == ':') {
		ps = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == ps || p - ps > 5)
			return -1;
	}
	pe = p;
	if (*p != '\0' && *p != '/' && *p != '?' && *p != '#')
		return -1;
	if (ps != NULL)
		snprintf(u->port, sizeof u->port, "%.*s", (int)(pe - ps), ps);
	else
		snprintf(u->port, sizeof u->port, "%s", u->https ? "443" :
		    "80");
	if (!u->ip_literal) {
		struct in_addr a4;

		u->ip_literal = inet_pton(AF_INET, u->host, &a4) == 1;
	}
	/* Host: the authority as written, brackets kept (RFC 9110 7.2) */
	snprintf(u->authority, sizeof u->authority, "%.*s",
	    (int)(pe - (url + (u->https ? 8 : 7))), url + (u->https ? 8 : 7));
	if (ps != NULL && strcmp(u->port, u->https ? "443" : "80") == 0)
		snprintf(u->authority, sizeof u->authority, "%.*s",
		    (int)(ps - 1 - (url + (u->https ? 8 : 7))),
		    url + (u->https ? 8 : 7));
	if (*p == '#' || *p == '\0')
		snprintf(u->path, sizeof u->path, "/");
	else {
		size_t l = strcspn(p, "#");

		if (l >= sizeof u->path)
			return -1;
		snprintf(u->path, sizeof u->path, "%s%.*s", *p == '?' ? "/" :
		    "", (int)l, p);
	}
	*errstr = NULL;
	return 0;
}

/* Connect with a timeout; returns the fd or -1 with *cause. */
static int
diagnose_connect(const struct diagnose_url *u, int timeout_ms, char **cause)
{
	struct addrinfo hints, *res, *ai;
	struct timeval tv;
	struct pollfd pfd;
	socklen_t sl;
	int fd = -1, rc, err, flags;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(u->host, u->port, &hints, &res);
	if (rc != 0) {
		xasprintf(cause, "%s: %s", u->host, gai_strerror(rc));
		return -1;
	}
	err = ETIMEDOUT;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1) {
			err = errno;
			continue;
		}
		flags = fcntl(fd, F_GETFL);
		(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			goto connected;
		if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			rc = poll(&pfd, 1, timeout_ms);
			sl = sizeof err;
			if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
			    &sl) == 0 && err == 0)
				goto connected;
			if (rc == 0)
				err = ETIMEDOUT;
		} else
			err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	xasprintf(cause, "connect to %s port %s: %s", u->host, u->port,
	    strerror(err));
	return -1;

connected:
	freeaddrinfo(res);
	(void)fcntl(fd, F_SETFL, flags);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

/*
 * True when buf holds a final response head: heads end at an empty line;
 * interim 1xx heads (except 101) are followed by another one.
 */
static bool
diagnose_head_complete(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *q;

	while (end - p >= 12) {
		for (q = p; q < end - 1; q++) {
			if (q[0] == '\n' && (q[1] == '\n' || (q[1] == '\r' &&
			    q + 2 < end && q[2] == '\n')))
				break;
		}
		if (q >= end - 1)
			return false;
		if (p[9] != '1' || strncmp(p + 9, "101", 3) == 0)
			return true;
		p = q + (q[1] == '\n' ? 2 : 3);
	}
	return false;
}

/* The first OpenSSL error as text. */
static const char *
diagnose_ssl_error(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "TLS handshake failed";
	ERR_error_string_n(e, buf, size);
	return buf;
}

/*
 * Send req and read the response head (up to the blank line, EOF or
 * DIAGNOSE_RESPONSE_MAX bytes).  Returns the length or -1 with *cause.
 */
static ssize_t
diagnose_exchange(const struct diagnose_url *u, bool insecure,
    int timeout_ms, const char *req, char *buf, size_t size, char **cause)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	char ebuf[256];
	ssize_t n, total = -1;
	size_t len = 0, reqlen = strlen(req);
	int fd;
	long vr;

	if ((fd = diagnose_connect(u, timeout_ms, cause)) == -1)
		return -1;
	if (u->https) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (ctx == NULL) {
			xasprintf(cause, "TLS: %s", diagnose_ssl_error(ebuf,
			    sizeof ebuf));
			goto out;
		}
		(void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		if (!insecure) {
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
			if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
				xasprintf(cause, "TLS: no CA certificates");
				goto out;
			}
		}
		ssl = SSL_new(ctx);
		if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
			xasprintf(cause, "TLS: %s", diagnose_ssl_error(ebuf,
			    sizeof ebuf));
			goto out;
		}
		/* SNI is for names only (RFC 6066 section 3). */
		if (!u->ip_literal)
			(void)SSL_set_tlsext_host_name(ssl, u->host);
		if (!insecure) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

			X509_VERIFY_PARAM_set_hostflags(vp,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if ((u->ip_literal ? X509_VERIFY_PARAM_set1_ip_asc(vp,
			    u->host) : X509_VERIFY_PARAM_set1_host(vp, u->host,
			    0)) != 1) {
				xasprintf(cause, "TLS: cannot verify %s",
				    u->host);
				goto out;
			}
		}
		if (SSL_connect(ssl) != 1) {
			vr = SSL_get_verify_result(ssl);
			xasprintf(cause, "TLS handshake with %s: %s", u->host,
			    vr != X509_V_OK ? X509_verify_cert_error_string(vr) :
			    diagnose_ssl_error(ebuf, sizeof ebuf));
			goto out;
		}
	}

	while (len < reqlen) {
		n = ssl != NULL ? SSL_write(ssl, req + len, (int)(reqlen - len)) :
		    write(fd, req + len, reqlen - len);
		if (n <= 0) {
			xasprintf(cause, "send: %s", errno == EAGAIN ?
			    "timeout" : strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	len = 0;
	while (len < size - 1 && !diagnose_head_complete(buf, len)) {
		errno = 0;
		n = ssl != NULL ? SSL_read(ssl, buf + len, (int)(size - 1 -
		    len)) : read(fd, buf + len, size - 1 - len);
		if (n == 0 || (n < 0 && len > 0))
			break;	/* EOF (or a TLS close without close_notify) */
		if (n < 0) {
			xasprintf(cause, "receive: %s", errno == EAGAIN ||
			    errno == EWOULDBLOCK ? "timeout" : errno != 0 ?
			    strerror(errno) : diagnose_ssl_error(ebuf,
			    sizeof ebuf));
			goto out;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (len == 0) {
		xasprintf(cause, "the server closed the connection without "
		    "an answer");
		goto out;
	}
	total = (ssize_t)len;
out:
	if (ssl != NULL) {
		(void)SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	SSL_CTX_free(ctx);
	close(fd);
	return total;
}

/* ---- output ----------------------------------------------------------- */

/* Print the human-readable report. */
static void
diagnose_print(FILE *f, const struct diagnose_input *in,
    const struct diagnose_report *r, const char *url, const char *acrh)
{
	size_t i;

	fprintf(f, "preflight  OPTIONS %s\n", url);
	fprintf(f, "  Origin: %s\n", in->origin);
	fprintf(f, "  Access-Control-Request-Method: %s\n", in->method);
	fprintf(f, "  Access-Control-Request-Headers: %s\n\n", acrh);
	fprintf(f, "%-30s %-8s %d\n", "status", r->status_ok ? "ok" : "FAIL",
	    in->status);
	fprintf(f, "%-30s %-8s Access-Control-Allow-Origin: %s%s%s\n",
	    "origin", r->origin_ok ? "allowed" : "REFUSED",
	    r->acao ? r->acao : "(none)", r->origin_ok ? "" : " -- ",
	    r->origin_note);
	fprintf(f, "%-30s %-8s Access-Control-Allow-Methods: %s\n",
	    in->method, r->method_ok ? "allowed" : "REFUSED",
	    r->acam ? r->acam : "(none)");
	for (i = 0; i < r->n_headers; i++)
		fprintf(f, "%-30s %-8s %s\n", r->headers[i].name,
		    r->headers[i].allowed ? "allowed" : "REFUSED",
		    r->headers[i].tracing ? "tracing header" : "");
	fprintf(f, "%-30s %-8s Access-Control-Allow-Credentials: %s%s\n",
	    "credentials", r->credentials_ok ? (r->acac ? "yes" : "no") :
	    "REFUSED", r->acac ? "true" : "(absent)",
	    in->credentials ? " (credentialed request)" : "");
	fprintf(f, "%-30s %-8s %s\n", "vary", r->vary_has_origin ? "ok" :
	    "WARN", r->vary ? r->vary : "(none)");
	if (r->has_max_age)
		fprintf(f, "%-30s %-8llu seconds\n", "max-age",
		    (unsigned long long)r->max_age);
	else
		fprintf(f, "%-30s %-8s\n", "max-age", "(none)");
	for (i = 0; i < r->n_warnings; i++)
		fprintf(f, "warning: %s\n", r->warnings[i]);
	fprintf(f, "\n%s\n", r->verdict);
}

/* Print the JSON report. */
static void
diagnose_print_json(FILE *f, const struct diagnose_input *in,
    const struct diagnose_report *r, const char *url, const char *error)
{
	json_t *o = json_object(), *h = json_array(), *w = json_array();
	char *s;
	size_t i;

	json_object_set_new(o, "url", json_string(url));
	json_object_set_new(o, "origin", json_string(in->origin));
	json_object_set_new(o, "method", json_string(in->method));
	if (error != NULL) {
		json_object_set_new(o, "error", json_string(error));
		json_object_set_new(o, "exit_code",
		    json_integer(DIAGNOSE_EXIT_ERROR));
		goto print;
	}
	json_object_set_new(o, "status", json_integer(in->status));
	json_object_set_new(o, "status_ok", json_boolean(r->status_ok));
	json_object_set_new(o, "origin_allowed", json_boolean(r->origin_ok));
	json_object_set_new(o, "origin_note", json_string(r->origin_note));
	json_object_set_new(o, "allow_origin",
	    r->acao ? json_string(r->acao) : json_null());
	json_object_set_new(o, "method_allowed", json_boolean(r->method_ok));
	json_object_set_new(o, "allow_credentials", json_boolean(r->acac));
	json_object_set_new(o, "credentials_ok",
	    json_boolean(r->credentials_ok));
	for (i = 0; i < r->n_headers; i++)
		json_array_append_new(h, json_pack("{s:s,s:b,s:b}", "name",
		    r->headers[i].name, "tracing", r->headers[i].tracing,
		    "allowed", r->headers[i].allowed));
	json_object_set(o, "headers", h);
	json_object_set_new(o, "vary", r->vary ? json_string(r->vary) :
	    json_null());
	json_object_set_new(o, "vary_has_origin",
	    json_boolean(r->vary_has_origin));
	json_object_set_new(o, "max_age", r->has_max_age ?
	    json_integer((json_int_t)r->max_age) : json_null());
	for (i = 0; i < r->n_warnings; i++)
		json_array_append_new(w, json_string(r->warnings[i]));
	json_object_set(o, "warnings", w);
	json_object_set_new(o, "verdict", json_string(r->verdict));
	json_object_set_new(o, "exit_code", json_integer(r->exit_code));
print:
	s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (s != NULL)
		fprintf(f, "%s\n", s);
	free(s);
	json_decref(h);
	json_decref(w);
	json_decref(o);
}

/* Usage text. */
static void
diagnose_usage(FILE *f)
{
	fprintf(f, "usage: tracestitch diagnose --origin ORIGIN --url URL "
	    "[--propagators LIST]\n"
	    "           [--method M] [--header NAME ...] [--credentials] "
	    "[--insecure]\n"
	    "           [--timeout MS] [--json]\n"
	    "  --propagators  datadog,tracecontext,baggage,b3,b3multi "
	    "(default datadog,tracecontext,baggage)\n"
	    "  exit status: 0 all tracing headers pass, 1 the browser would "
	    "block, 2 usage or network error\n");
}

/* `tracestitch diagnose ...`. */
int
diagnose_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "origin", required_argument, NULL, 'o' },
		{ "url", required_argument, NULL, 'u' },
		{ "propagators", required_argument, NULL, 'p' },
		{ "method", required_argument, NULL, 'm' },
		{ "header", required_argument, NULL, 'H' },
		{ "credentials", no_argument, NULL, 'c' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum config_style styles[CONFIG_MAX_STYLES];
	struct diagnose_header hdrs[DIAGNOSE_MAX_RESPONSE_HEADERS];
	struct diagnose_input in;
	struct diagnose_report rep;
	struct diagnose_url u;
	const char *origin = NULL, *url = NULL, *method = "GET";
	const char *props = "datadog,tracecontext,baggage", *errstr;
	const char *extra[DIAGNOSE_MAX_HEADERS];
	char **names = NULL, *acrh = NULL, *req = NULL, *cause = NULL;
	char *buf = NULL;
	size_t n_styles, n_extra = 0, n_names = 0, i, off;
	uint64_t timeout = DIAGNOSE_TIMEOUT_MS;
	bool insecure = false, json = false, credentials = false;
	ssize_t len;
	int ch, rc = DIAGNOSE_EXIT_ERROR, status = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "o:u:p:m:H:ckt:jh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'o':
			origin = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 'p':
			props = optarg;
			break;
		case 'm':
			method = optarg;
			break;
		case 'H':
			if (n_extra == TS_NITEMS(extra) ||
			    !cors_is_token(optarg, strlen(optarg))) {
				fprintf(stderr, "diagnose: bad --header %s\n",
				    optarg);
				return DIAGNOSE_EXIT_ERROR;
			}
			extra[n_extra++] = optarg;
			break;
		case 'c':
			credentials = true;
			break;
		case 'k':
			insecure = true;
			break;
		case 't':
			if (util_parse_u64(optarg, strlen(optarg), &timeout) !=
			    0 || timeout == 0 || timeout > 600000) {
				fprintf(stderr, "diagnose: bad --timeout\n");
				return DIAGNOSE_EXIT_ERROR;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			diagnose_usage(stdout);
			return DIAGNOSE_EXIT_OK;
		default:
			diagnose_usage(stderr);
			return DIAGNOSE_EXIT_ERROR;
		}
	}
	if (origin == NULL || url == NULL || optind != argc) {
		diagnose_usage(stderr);
		return DIAGNOSE_EXIT_ERROR;
	}
	if (!cors_is_token(method, strlen(method)) ||
	    strpbrk(origin, "\r\n") != NULL) {
		fprintf(stderr, "diagnose: bad --method or --origin\n");
		return DIAGNOSE_EXIT_ERROR;
	}
	if (diagnose_parse_styles(props, styles, TS_NITEMS(styles), &n_styles,
	    &errstr) != 0) {
		fprintf(stderr, "diagnose: --propagators %s: %s\n", props,
		    errstr);
		return DIAGNOSE_EXIT_ERROR;
	}
	if (diagnose_url_parse(url, &u, &errstr) != 0) {
		fprintf(stderr, "diagnose: --url %s: %s\n", url, errstr);
		return DIAGNOSE_EXIT_ERROR;
	}

	diagnose_rum_headers(styles, n_styles, extra, n_extra, &names,
	    &n_names);
	acrh = xcalloc(1, 1);
	for (i = 0, off = 0; i < n_names; i++) {
		size_t l = strlen(names[i]);

		acrh = xrealloc(acrh, off + l + 2);
		if (i > 0)
			acrh[off++] = ',';	/* Chromium joins with "," */
		memcpy(acrh + off, names[i], l + 1);
		off += l;
	}
	xasprintf(&req, "OPTIONS %s HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: tracestitch-diagnose/%s\r\nAccept: */*\r\n"
	    "Origin: %s\r\nAccess-Control-Request-Method: %s\r\n"
	    "%s%s%s"
	    "Connection: close\r\n\r\n", u.path, u.authority, TS_VERSION,
	    origin, method, n_names ? "Access-Control-Request-Headers: " : "",
	    acrh, n_names ? "\r\n" : "");

	memset(&in, 0, sizeof in);
	in.origin = origin;
	in.method = method;
	in.credentials = credentials;
	in.requested = (const char *const *)names;
	in.n_requested = n_names;

	buf = xmalloc(DIAGNOSE_RESPONSE_MAX);
	len = diagnose_exchange(&u, insecure, (int)timeout, req, buf,
	    DIAGNOSE_RESPONSE_MAX, &cause);
	if (len >= 0 && diagnose_parse_response(buf, (size_t)len, &status,
	    hdrs, TS_NITEMS(hdrs), &in.n_headers, &errstr) != 0)
		xasprintf(&cause, "bad response: %s", errstr);
	if (cause != NULL) {
		if (json)
			diagnose_print_json(stdout, &in, &rep, url, cause);
		else
			fprintf(stderr, "diagnose: %s\n", cause);
		goto out;
	}
	in.status = status;
	in.headers = hdrs;
	if (diagnose_evaluate(&in, &rep) != 0) {
		fprintf(stderr, "diagnose: too many headers\n");
		goto out;
	}
	if (json)
		diagnose_print_json(stdout, &in, &rep, url, NULL);
	else
		diagnose_print(stdout, &in, &rep, url, acrh);
	rc = rep.exit_code;
out:
	free(cause);
	free(buf);
	free(req);
	free(acrh);
	diagnose_strv_free(names, n_names);
	return rc;
}
