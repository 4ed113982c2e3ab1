/*
 * styles.c -- the table of propagation styles (styles.h): names, the RUM
 * propagator names and the request header names, read by configuration,
 * propagation, CORS, metrics and diagnose.
 */
#include <pthread.h>
#include <string.h>

#include "styles.h"
#include "util.h"

/*
 * Rows in the order "expected a propagation style (...)" lists them.
 * Header names: PROPAGATION.md 2-5; RUM's subset: the Browser SDK's
 * tracer (PROPAGATION.md, "RUM"), which sends no x-datadog-tags and only
 * three of the b3 multi headers.
 */
static const struct style_desc styles_table[] = {
	{
		.style = CONFIG_STYLE_DATADOG,
		.name = "datadog",
		.rum_name = "datadog",
		.headers = { "x-datadog-trace-id", "x-datadog-parent-id",
		    "x-datadog-origin", "x-datadog-sampling-priority",
		    "x-datadog-tags" },
		.rum_headers = { "x-datadog-origin", "x-datadog-parent-id",
		    "x-datadog-sampling-priority", "x-datadog-trace-id" },
		.prefix = "x-datadog-",
	},
	{
		.style = CONFIG_STYLE_TRACECONTEXT,
		.name = "tracecontext",
		.rum_name = "tracecontext",
		.headers = { "traceparent", "tracestate" },
		.rum_headers = { "traceparent", "tracestate" },
	},
	{
		.style = CONFIG_STYLE_B3,
		.name = "b3",
		/* What other Datadog tracers call it [cpp-cfg]. */
		.alias = "b3 single header",
		.rum_name = "b3",
		.headers = { "b3" },
		.rum_headers = { "b3" },
	},
	{
		.style = CONFIG_STYLE_B3MULTI,
		.name = "b3multi",
		.rum_name = "b3multi",
		.headers = { "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
		    "x-b3-sampled", "x-b3-flags" },
		.rum_headers = { "x-b3-sampled", "x-b3-spanid",
		    "x-b3-traceid" },
		.prefix = "x-b3-",
	},
	{
		/* RUM has no propagatorTypes entry: propagateTraceBaggage. */
		.style = CONFIG_STYLE_BAGGAGE,
		.name = "baggage",
		.headers = { "baggage" },
		.rum_headers = { "baggage" },
	},
	{
		.style = CONFIG_STYLE_NONE,
		.name = "none",
	},
};

/* A name and its length, for the per-request header check. */
struct styles_name {
	const char	*s;
	size_t		 len;
};

/* Row index by enum value, the metric labels and, for
 * styles_is_header, the prefixes and the names no prefix covers; filled
 * once. */
static const struct style_desc *styles_by_enum[CONFIG_STYLE_NONE + 1];
static const char *styles_labels[STYLES_MAX_LABELS];
static size_t styles_nlabels;
static struct styles_name styles_prefixes[TS_NITEMS(styles_table)];
static size_t styles_nprefixes;
static struct styles_name styles_exact[STYLES_MAX_LABELS];
static size_t styles_nexact;
/* The first bytes (both cases) of every prefix and exact name: most
 * request header lines (Host, Accept, Origin...) are told apart by it. */
static bool styles_first[256];
static pthread_once_t styles_once = PTHREAD_ONCE_INIT;

/* Mark name's first byte, both cases, in styles_first. */
static void
styles_mark_first(const char *name)
{
	unsigned char c = (unsigned char)name[0];

	styles_first[c] = true;
	if (c >= 'a' && c <= 'z')
		styles_first[c - 32] = true;
	else if (c >= 'A' && c <= 'Z')
		styles_first[c + 32] = true;
}

/* Index the rows and list the metric labels, in enum order. */
static void
styles_init(void)
{
	const struct style_desc *d;
	size_t i, j;

	for (i = 0; i < TS_NITEMS(styles_table); i++) {
		d = &styles_table[i];
		styles_by_enum[d->style] = d;
		if (d->prefix != NULL) {
			styles_mark_first(d->prefix);
			styles_prefixes[styles_nprefixes].s = d->prefix;
			styles_prefixes[styles_nprefixes++].len =
			    strlen(d->prefix);
		}
	}
	for (i = 0; i < TS_NITEMS(styles_table); i++) {
		d = &styles_table[i];
		for (j = 0; j < STYLES_MAX_HEADERS && d->headers[j] != NULL;
		    j++) {
			if (d->prefix != NULL && strncmp(d->headers[j],
			    d->prefix, strlen(d->prefix)) == 0)
				continue;
			if (styles_nexact < TS_NITEMS(styles_exact)) {
				styles_mark_first(d->headers[j]);
				styles_exact[styles_nexact].s = d->headers[j];
				styles_exact[styles_nexact++].len =
				    strlen(d->headers[j]);
			}
		}
	}
	styles_labels[styles_nlabels++] = "";
	styles_labels[styles_nlabels++] = "other";
	for (i = 0; i <= CONFIG_STYLE_NONE; i++) {
		d = styles_by_enum[i];
		for (j = 0; d != NULL && j < STYLES_MAX_HEADERS &&
		    d->headers[j] != NULL; j++) {
			if (styles_nlabels < STYLES_MAX_LABELS)
				styles_labels[styles_nlabels++] =
				    d->headers[j];
		}
	}
}

/* Every row, in message order. */
size_t
styles_all(const struct style_desc **rows)
{
	*rows = styles_table;
	return TS_NITEMS(styles_table);
}

/* The row of a style. */
const struct style_desc *
styles_get(enum config_style s)
{
	if ((unsigned)s > CONFIG_STYLE_NONE)
		return NULL;
	pthread_once(&styles_once, styles_init);
	return styles_by_enum[s];
}

/* The configuration name of a style. */
const char *
styles_name(enum config_style s)
{
	const struct style_desc *d = styles_get(s);

	return d != NULL ? d->name : "unknown";
}

/* A style by its name, without case. */
int
styles_lookup(const char *s, size_t len, enum config_style *out)
{
	size_t i;

	for (i = 0; i < TS_NITEMS(styles_table); i++) {
		if (strlen(styles_table[i].name) == len &&
		    util_strncaseeq(s, styles_table[i].name, len)) {
			*out = styles_table[i].style;
			return 0;
		}
	}
	return -1;
}

/* The request headers of a style. */
size_t
styles_headers(enum config_style s, const char *const **names)
{
	const struct style_desc *d = styles_get(s);
	size_t n = 0;

	*names = NULL;
	if (d == NULL)
		return 0;
	while (n < STYLES_MAX_HEADERS && d->headers[n] != NULL)
		n++;
	if (n > 0)
		*names = d->headers;
	return n;
}

/* The style listing header name. */
const struct style_desc *
styles_of_header(const char *name, size_t len)
{
	const struct style_desc *d;
	size_t i, j;

	for (i = 0; i < TS_NITEMS(styles_table); i++) {
		d = &styles_table[i];
		for (j = 0; j < STYLES_MAX_HEADERS && d->headers[j] != NULL;
		    j++) {
			if (strlen(d->headers[j]) == len &&
			    util_strncaseeq(name, d->headers[j], len))
				return d;
		}
	}
	return NULL;
}

/*
 * A header of some style: under a style's prefix, or listed.  Runs for
 * every request header (proxy_trace.c), so the lengths are computed once.
 */
bool
styles_is_header(const char *name, size_t len)
{
	const struct styles_name *n;
	size_t i;

	pthread_once(&styles_once, styles_init);
	if (len == 0 || !styles_first[(unsigned char)name[0]])
		return false;
	for (i = 0; i < styles_nprefixes; i++) {
		n = &styles_prefixes[i];
		if (len >= n->len && util_memcaseeq(name, n->s, n->len))
			return true;
	}
	for (i = 0; i < styles_nexact; i++) {
		n = &styles_exact[i];
		if (len == n->len && util_memcaseeq(name, n->s, len))
			return true;
	}
	return false;
}

/* Number of "header" label values. */
size_t
styles_label_count(void)
{
	pthread_once(&styles_once, styles_init);
	return styles_nlabels;
}

/* Label value i ("" past the end). */
const char *
styles_label(size_t i)
{
	pthread_once(&styles_once, styles_init);
	return i < styles_nlabels ? styles_labels[i] : "";
}

/* The label of a header name: the table's spelling, or "other". */
const char *
styles_header_class(const char *name, size_t len)
{
	const struct style_desc *d = styles_of_header(name, len);
	size_t j;

	for (j = 0; d != NULL && d->headers[j] != NULL; j++) {
		if (strlen(d->headers[j]) == len &&
		    util_strncaseeq(name, d->headers[j], len))
			return d->headers[j];
	}
	return "other";
}
