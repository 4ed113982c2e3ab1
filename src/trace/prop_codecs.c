/*
 * prop_codecs.c -- the codec of each propagation style (prop_codec.h):
 * the trace half of the style table, whose other half (names, headers)
 * is styles_table in core.
 */
#include "prop_codec.h"
#include "util.h"

static const struct prop_codec *const prop_codecs[] = {
	&prop_datadog_codec,
	&prop_w3c_codec,
	&prop_baggage_codec,
	&prop_b3_codec,
	&prop_b3multi_codec,
};

const struct prop_codec *
prop_codec_get(enum config_style s)
{
	size_t i;

	for (i = 0; i < TS_NITEMS(prop_codecs); i++)
		if (prop_codecs[i]->style == s)
			return prop_codecs[i];
	return NULL;
}
