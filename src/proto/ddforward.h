/*
 * ddforward.h -- the strict decoder of the Browser SDK's `ddforward`
 * query parameter (docs/rum-relay.md), a pure function over bytes.
 *
 * With its `proxy` initialization option (Browser SDK >= 4.34.0) the SDK
 * posts every batch to the proxy URL with the intake path and its
 * parameters in one parameter:
 *
 *   POST /rum-intake?ddforward=%2Fapi%2Fv2%2Frum%3Fddsource%3Dbrowser%26...
 *
 * built as `${proxy}?ddforward=${encodeURIComponent(`${path}?${params}`)}`
 * where path is `/api/v2/${trackType}` (@datadog/browser-core,
 * src/domain/configuration/endpointBuilder.ts, createEndpointUrlWith-
 * ParametersBuilder).  The relay sends the decoded value to its own
 * configured intake origin.  The value is decoded exactly once and must
 * be one of the intake paths of ddforward_tracks, byte for byte, with a
 * query of plain URI characters: everything else is refused with a
 * reason, because anything a second decoding, a path normalisation or a
 * URL parser could read differently is a way to steer the request
 * somewhere the table does not say.  The host is never taken from the
 * value (there is no host in it to take).
 */
#ifndef TS_DDFORWARD_H
#define TS_DDFORWARD_H

#include <stddef.h>

#include "common.h"

/* Our bound on the decoded value; the SDK's are about 300 bytes. */
#define DDFORWARD_MAX		2048
/* And on the value as sent (every byte may be percent-encoded). */
#define DDFORWARD_MAX_RAW	(3 * DDFORWARD_MAX)

/* One intake track: its label (metrics) and its intake path. */
struct ddforward_track {
	const char *name;		/* "rum" */
	const char *path;		/* "/api/v2/rum" */
};

/* The tracks the relay accepts, in one table (ddforward.c). */
extern const struct ddforward_track ddforward_tracks[];
#define DDFORWARD_NTRACKS	6

/* Why a value was refused: one class per kind of trick. */
enum ddforward_reason {
	DDF_OK = 0,
	DDF_MISSING,		/* no ddforward parameter */
	DDF_DUPLICATE,		/* a second ddforward parameter */
	DDF_NAME,		/* a name that only decodes to ddforward */
	DDF_EMPTY,
	DDF_OVERLONG,
	DDF_PERCENT,		/* '%' without two hex digits */
	DDF_PLUS,		/* '+': a space or a plus, ambiguous */
	DDF_CONTROL,		/* a control byte, raw or decoded */
	DDF_NON_ASCII,		/* a byte >= 0x80, raw or decoded */
	DDF_BACKSLASH,
	DDF_ABSOLUTE,		/* scheme:... */
	DDF_SCHEME_RELATIVE,	/* //host/... */
	DDF_NOT_PATH,		/* does not start with '/' */
	DDF_ENCODED_PATH,	/* '%' left in the path after decoding */
	DDF_DOT_SEGMENT,	/* "." or ".." segment */
	DDF_USERINFO,		/* '@' in the path */
	DDF_UNKNOWN_PATH,	/* not an intake path of the table */
	DDF_BAD_CHAR,		/* a byte no URI may hold (space, '#', ...) */
	DDF_NESTED,		/* ddforward inside the forwarded query */
	DDF_NREASONS,
};

struct ddforward {
	enum ddforward_reason reason;
	int track;			/* index in ddforward_tracks, or -1 */
	size_t target_len;
	/* The decoded value: "/api/v2/rum?..." (NUL-terminated). */
	char target[DDFORWARD_MAX + 1];
};

/*
 * Find and check the ddforward parameter in query (the bytes after '?'
 * of the request target, len of them).  Returns 0 with out->target and
 * out->track set, or -1 with out->reason set (out->track may name the
 * track the path asked for).
 */
int ddforward_parse(const char *query, size_t len, struct ddforward *out)
    TS_MUSTCHECK;

/* The reason of a refusal, a sentence for the 400 body ("" for DDF_OK). */
const char *ddforward_reason_text(enum ddforward_reason);
/* Its short name ("dot_segment"), for tests and logs. */
const char *ddforward_reason_name(enum ddforward_reason);

#endif /* TS_DDFORWARD_H */
