/*
 * fuzz_config.c -- libFuzzer harness for the YAML and config path:
 * libyaml through yaml_tree.c into the schema validation of config.c
 * (config_load_string), plus the DD_* / OTEL_* environment overrides.
 *
 * Input: a YAML document.  If it holds a line "#ENV", the lines after it
 * are the environment ("NAME=value", at most FUZZ_MAX_ENV) and only the
 * part before it is the document, so the override parsers are fuzzed
 * too.  The loader must never crash, leak (ASan's leak check) or read
 * past the given length, and its result must be consistent: 0 with a
 * config and no errors, or -1 with no config and a non-empty,
 * newline-terminated error list.  A loaded config must reload against
 * itself (config_check_reload) and survive a ref/unref pair.
 * Seeds: tests/data/config/good and bad (tests/fuzz/make-seeds.sh);
 * dictionary config.dict.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

#define FUZZ_MAX_ENV 16

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Find "\n#ENV\n" (or a leading "#ENV\n"); NULL if absent. */
static const char *
fuzz_env_mark(const char *s, size_t size, size_t *doclen)
{
	const char *p;

	if (size >= 5 && memcmp(s, "#ENV\n", 5) == 0) {
		*doclen = 0;
		return s + 5;
	}
	p = memmem(s, size, "\n#ENV\n", 6);
	if (p == NULL)
		return NULL;
	*doclen = (size_t)(p - s) + 1;
	return p + 6;
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *envp, *end, *nl;
	char *env[FUZZ_MAX_ENV + 1];
	size_t doclen = size, n = 0, i, len;
	struct config *cfg = NULL;
	char *errors = NULL, *cause = NULL;
	int rc;

	if ((envp = fuzz_env_mark(s, size, &doclen)) != NULL) {
		end = s + size;
		while (envp < end && n < FUZZ_MAX_ENV) {
			if ((nl = memchr(envp, '\n', (size_t)(end - envp))) ==
			    NULL)
				nl = end;
			/* NUL-terminated copies: environ strings are C strings. */
			if (memchr(envp, '=', (size_t)(nl - envp)) != NULL)
				env[n++] = strndup(envp, (size_t)(nl - envp));
			envp = nl + 1;
		}
	}
	env[n] = NULL;
	rc = config_load_string("fuzz.yaml", s, doclen, env, &cfg, &errors);
	if (rc == 0) {
		if (cfg == NULL || errors != NULL)
			abort();
		if (config_check_reload(cfg, cfg, &cause) != 0)
			abort();
		config_ref(cfg);
		config_unref(cfg);
		config_unref(cfg);
	} else {
		if (rc != -1 || cfg != NULL || errors == NULL)
			abort();
		len = strlen(errors);
		if (len == 0 || errors[len - 1] != '\n')
			abort();
		free(errors);
	}
	for (i = 0; i < n; i++)
		free(env[i]);
	return 0;
}
