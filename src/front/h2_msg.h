/*
 * h2_msg.h -- the strict translation of an HTTP/2 request head into the
 * HTTP/1.1 request our pipeline sends upstream (RFC 9113 8.2-8.3), as
 * pure functions: no nghttp2, no libevent, no allocation.
 *
 * h2.c runs nghttp2 with its HTTP messaging checks turned off
 * (nghttp2_option_set_no_http_messaging) and applies these rules itself,
 * so that each refusal has its own reason (logged, counted by class in
 * tracestitch_http2_refused_total{reason}) and, where the stream can
 * still be answered, a 400 with the gateway's JSON body and CORS headers
 * instead of a bare RST_STREAM.
 *
 * Use: h2_msg_init() per request head, h2_msg_field() for every decoded
 * field in order (the head's fields are kept by the caller when the
 * verdict is H2_MSG_OK, with kind telling which pseudo-header or special
 * field it was), then h2_msg_end() once the head is complete, and
 * h2_msg_data() / h2_msg_data_end() for the body's DATA lengths.
 */
#ifndef TS_H2_MSG_H
#define TS_H2_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Verdicts; every value but OK is a refusal of the stream. */
enum h2_msg_verdict {
	H2_MSG_OK = 0,
	H2_MSG_NAME_EMPTY,		/* a field with an empty name */
	H2_MSG_NAME_UPPER,		/* upper case in a field name */
	H2_MSG_NAME_CHAR,		/* a name byte outside tchar */
	H2_MSG_VALUE_CRLFNUL,		/* CR, LF or NUL in a value */
	H2_MSG_VALUE_CTL,		/* another control byte in a value */
	H2_MSG_VALUE_WS,		/* leading or trailing SP/HTAB */
	H2_MSG_PSEUDO_AFTER,		/* a pseudo-header after a field */
	H2_MSG_PSEUDO_DUP,		/* a pseudo-header twice */
	H2_MSG_PSEUDO_UNKNOWN,		/* not :method/:scheme/:authority/:path */
	H2_MSG_PSEUDO_MISSING,		/* :method, :scheme or :path absent */
	H2_MSG_PSEUDO_EMPTY,		/* an empty :path, :method, :scheme */
	H2_MSG_METHOD,			/* :method not a token */
	H2_MSG_SCHEME,			/* :scheme not http or https */
	H2_MSG_PATH,			/* :path not origin-form (or * for
					 * OPTIONS), or a byte outside VCHAR */
	H2_MSG_AUTHORITY,		/* :authority with userinfo or a byte
					 * a host[:port] cannot have */
	H2_MSG_NO_AUTHORITY,		/* neither :authority nor Host */
	H2_MSG_HOST_MISMATCH,		/* :authority disagrees with Host */
	H2_MSG_HOST_DUP,		/* two Host fields */
	H2_MSG_CONNECTION,		/* a connection-specific field */
	H2_MSG_TE,			/* TE other than "trailers" */
	H2_MSG_CL_INVALID,		/* content-length not digits, or two
					 * that disagree */
	H2_MSG_CL_MISMATCH,		/* DATA sum != content-length */
	H2_MSG_CONNECT,			/* CONNECT: not proxied here */
	H2_MSG_METHOD_NS,		/* a method the HTTP/1.1 side refuses
					 * too (framing.c: 501) */
	H2_MSG_TRAILER_PSEUDO,		/* a pseudo-header in a trailer
					 * section */
	H2_MSG_TRAILER_NO_END,		/* a trailer section without
					 * END_STREAM */
	H2_MSG_NVERDICTS,
};

/* What a field that passed is, for the caller that keeps it. */
enum h2_msg_kind {
	H2_MSG_K_FIELD = 0,		/* a regular field: forward it */
	H2_MSG_K_METHOD,
	H2_MSG_K_SCHEME,
	H2_MSG_K_AUTHORITY,
	H2_MSG_K_PATH,
	H2_MSG_K_HOST,			/* forwarded as Host */
	H2_MSG_K_COOKIE,		/* a crumb: joined with "; " */
	H2_MSG_K_TE,			/* "trailers": not forwarded (h1
					 * upstream requests carry none) */
	H2_MSG_K_CONTENT_LENGTH,	/* checked here; the pipeline sets
					 * its own */
};

/* The state of one request head and body. */
struct h2_msg {
	unsigned seen;			/* 1 << kind of each pseudo seen */
	bool regular_seen;		/* a regular field came */
	bool is_connect;
	bool is_options;
	bool has_cl;
	uint64_t cl;			/* content-length, when has_cl */
	uint64_t data;			/* DATA bytes so far */
	/*
	 * :authority, Host and :path as sent, for the checks at the end:
	 * h2_msg_field() points them at the bytes it was given, which the
	 * caller re-points at its own copies before h2_msg_end().
	 */
	const char *authority, *host, *path;
	size_t authority_len, host_len, path_len;
};

void h2_msg_init(struct h2_msg *);
/* One decoded field; *kind says what it is when the verdict is OK. */
enum h2_msg_verdict h2_msg_field(struct h2_msg *, const uint8_t *name,
    size_t name_len, const uint8_t *value, size_t value_len,
    enum h2_msg_kind *kind);
/* The head is complete (end_stream: no body follows). */
enum h2_msg_verdict h2_msg_end(struct h2_msg *, bool end_stream);
/* n body bytes arrived; refused as soon as they pass content-length. */
enum h2_msg_verdict h2_msg_data(struct h2_msg *, size_t n);
/* The body ended (END_STREAM). */
enum h2_msg_verdict h2_msg_data_end(const struct h2_msg *);
/*
 * One field of a request's trailer section (RFC 9113 8.1: no
 * pseudo-header; the 8.2 field rules as for the head).  Stateless: a
 * trailer section does not touch the head's state.
 */
enum h2_msg_verdict h2_msg_trailer_field(const uint8_t *name,
    size_t name_len, const uint8_t *value, size_t value_len);

/* The reason, for logs and 400 bodies ("upper-case field name"). */
const char *h2_msg_reason(enum h2_msg_verdict);
/* The class of a refusal, the metric's reason label ("field_name"). */
const char *h2_msg_class(enum h2_msg_verdict);
/* The status a refusal answers: 400, or 501 for CONNECT and a method
 * the gateway does not proxy. */
int h2_msg_status(enum h2_msg_verdict);

#endif /* TS_H2_MSG_H */
