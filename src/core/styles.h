/*
 * styles.h -- the propagation styles: the one table of their names and
 * header names (PROPAGATION.md 7.1, issue #10 item 4).
 *
 * Configuration (config_styles_next, config_style_name), propagation
 * (propagation_is_known_header, span link names), CORS presets
 * (cors_style_headers), the metrics "header" label and diagnose all read
 * this table, so adding a style is one row here and its codec in trace/.
 * Everything returned is static.
 */
#ifndef TS_STYLES_H
#define TS_STYLES_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

/* Propagation styles, in the names the YAML and DD_* variables use. */
enum config_style {
	CONFIG_STYLE_DATADOG = 0,
	CONFIG_STYLE_TRACECONTEXT,
	CONFIG_STYLE_BAGGAGE,
	CONFIG_STYLE_B3,		/* single header */
	CONFIG_STYLE_B3MULTI,
	CONFIG_STYLE_NONE,		/* "none": the list is empty */
};

/* Header names one style may list (the table's arrays are this long). */
#define STYLES_MAX_HEADERS 8

struct style_desc {
	enum config_style	 style;
	/* The configuration and span link name (lower-case). */
	const char		*name;
	/* An older name of the same style, words separated by one blank
	 * ("b3 single header"), or NULL. */
	const char		*alias;
	/* The Browser RUM SDK's propagatorTypes entry, or NULL. */
	const char		*rum_name;
	/*
	 * The request headers the style reads and writes (lower-case,
	 * NULL-terminated).  A CORS preflight must allow every one (the
	 * preset of cors_policy_new), and each is its own value of the
	 * metrics "header" label.
	 */
	const char		*headers[STYLES_MAX_HEADERS];
	/* The subset RUM sends for this propagator (NULL-terminated). */
	const char		*rum_headers[STYLES_MAX_HEADERS];
	/* Every header with this prefix belongs to the style (lower-case;
	 * extraction removes them all before forwarding), or NULL. */
	const char		*prefix;
};

/*
 * Every row, in the order error messages list the names; *rows is
 * static.  "none" is the last row: a name without headers.
 */
size_t styles_all(const struct style_desc **rows);
/* The row of a style, or NULL for a value outside the enum. */
const struct style_desc *styles_get(enum config_style);
/* The name of a style, "unknown" outside the enum. */
const char *styles_name(enum config_style);
/* The style named s[0..len) (case-insensitive, not the alias): 0 or -1. */
int styles_lookup(const char *s, size_t len, enum config_style *out)
    TS_MUSTCHECK;
/* The request headers of a style; their number (0 for none). */
size_t styles_headers(enum config_style, const char *const **names);
/* True for every header some style reads or writes (case-insensitive). */
bool styles_is_header(const char *name, size_t len);
/* The style whose headers list name (case-insensitive), or NULL. */
const struct style_desc *styles_of_header(const char *name, size_t len);

/*
 * The values of the metrics "header" label: "", "other", then every
 * style's headers in table order.  styles_label_count() of them;
 * STYLES_MAX_LABELS bounds it for arrays sized at compile time.
 */
#define STYLES_MAX_LABELS 24
size_t styles_label_count(void);
const char *styles_label(size_t);
/* The label of a request header name: its static lower-case name when a
 * style lists it, or "other". */
const char *styles_header_class(const char *name, size_t len);

#endif /* TS_STYLES_H */
