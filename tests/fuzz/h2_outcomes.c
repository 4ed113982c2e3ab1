/*
 * h2_outcomes.c -- what the HTTP/2 front-end answers to each seed of
 * tests/fuzz/corpus/h2, against tests/fuzz/h2_outcomes.tsv (the claims
 * of docs/http2.md about refusals and defences, seed by seed).
 *
 * Linked with fuzz_h2.c (the same gateway, fake upstream and output
 * checks as the fuzz target) instead of replay.c.  Each row of the TSV
 * is "seed<TAB>outcome<TAB>why", outcome as fuzz_h2_outcome() writes it
 * ("status=400 rst=1 goaway=- up=0", "status=- rst=0 goaway=11 up=0",
 * "http1=400 up=0", "... cookie=a=1; b=2");
 * lines starting with # are comments.  Fails when a seed's outcome
 * differs, when a row names a seed that is not in the corpus or comes
 * twice, or when a seed-* file of the corpus has no row (so the rows are
 * exactly the seeds: every seed's outcome is pinned).
 *
 * Usage: h2_outcomes TSV CORPUS-DIR
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);
const char *fuzz_h2_outcome(void);
const char *fuzz_h2_settings(void);

/*
 * The SETTINGS the gateway sends first with fuzz_h2.c's configuration
 * (the defaults): MAX_CONCURRENT_STREAMS (3) server.http2_max_concurrent_
 * streams, INITIAL_WINDOW_SIZE (4) server.http2_stream_window,
 * MAX_HEADER_LIST_SIZE (6) server.limits.max_header_bytes, ENABLE_PUSH
 * (2) 0.  Checked after seed-get.
 */
#define H2_SETTINGS "3:100,4:65535,6:16384,2:0"

static int
read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0, got;

	if (f == NULL)
		return -1;
	do {
		if (n == cap) {
			uint8_t *nb;

			cap = cap == 0 ? 65536 : cap * 2;
			if ((nb = realloc(buf, cap)) == NULL) {
				free(buf);
				fclose(f);
				return -1;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	*out = buf;
	*len = n;
	return 0;
}

int
main(int argc, char **argv)
{
	char line[1024], path[4096];
	FILE *tsv;
	DIR *d;
	struct dirent *de;
	unsigned rows = 0, bad = 0, seeds = 0, i;
	char *names[1024];

	if (argc != 3) {
		fprintf(stderr, "usage: %s TSV CORPUS-DIR\n", argv[0]);
		return 2;
	}
	if ((tsv = fopen(argv[1], "r")) == NULL) {
		perror(argv[1]);
		return 1;
	}
	while (fgets(line, sizeof line, tsv) != NULL) {
		char *name, *want, *save = NULL;
		uint8_t *data;
		size_t len;
		const char *got;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		name = strtok_r(line, "\t", &save);
		want = strtok_r(NULL, "\t", &save);
		if (name == NULL || want == NULL) {
			fprintf(stderr, "h2_outcomes: bad row: %s\n", line);
			bad++;
			continue;
		}
		for (i = 0; i < rows; i++)
			if (strcmp(names[i], name) == 0)
				break;
		if (i < rows || rows == sizeof names / sizeof names[0] ||
		    (names[rows] = strdup(name)) == NULL) {
			fprintf(stderr, "h2_outcomes: %s: a second row (or too "
			    "many rows)\n", name);
			bad++;
			continue;
		}
		rows++;
		snprintf(path, sizeof path, "%s/%s", argv[2], name);
		if (read_file(path, &data, &len) != 0) {
			fprintf(stderr, "h2_outcomes: %s: no such seed\n", name);
			bad++;
			continue;
		}
		(void)LLVMFuzzerTestOneInput(data, len);
		free(data);
		got = fuzz_h2_outcome();
		if (strcmp(name, "seed-get") == 0 &&
		    strcmp(fuzz_h2_settings(), H2_SETTINGS) != 0) {
			fprintf(stderr, "h2_outcomes: the gateway's SETTINGS "
			    "are \"%s\", want \"%s\"\n", fuzz_h2_settings(),
			    H2_SETTINGS);
			bad++;
		}
		if (strcmp(got, want) != 0) {
			fprintf(stderr, "h2_outcomes: %s: got \"%s\", want "
			    "\"%s\"\n", name, got, want);
			bad++;
		}
	}
	fclose(tsv);
	if ((d = opendir(argv[2])) == NULL) {
		perror(argv[2]);
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "seed-", 5) != 0)
			continue;
		seeds++;
		for (i = 0; i < rows; i++)
			if (strcmp(names[i], de->d_name) == 0)
				break;
		if (i == rows) {
			fprintf(stderr, "h2_outcomes: %s has no row\n",
			    de->d_name);
			bad++;
		}
	}
	closedir(d);
	for (i = 0; i < rows; i++)
		free(names[i]);
	printf("h2_outcomes: %u rows, %u seeds in the corpus, %u wrong\n",
	    rows, seeds, bad);
	if (rows == 0 || rows != seeds) {
		fprintf(stderr, "h2_outcomes: every seed needs one row\n");
		return 1;
	}
	return bad == 0 ? 0 : 1;
}
