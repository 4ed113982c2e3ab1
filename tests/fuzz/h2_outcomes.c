/*
 * h2_outcomes.c -- what the HTTP/2 front-end answers to each seed of
 * tests/fuzz/corpus/h2, against tests/fuzz/h2_outcomes.tsv (the claims
 * of docs/http2.md about refusals and defences, seed by seed).
 *
 * Linked with fuzz_h2.c (the same gateway, fake upstream and output
 * checks as the fuzz target) instead of replay.c.  Each row of the TSV
 * is "seed<TAB>outcome<TAB>why", outcome as fuzz_h2_outcome() writes it
 * ("status=400 rst=1 goaway=- up=0", "status=- rst=0 goaway=11 up=0",
 * "http1=400 up=0", "... cookie=a=1; b=2"), then what the input added to
 * tracestitch_http2_refused_total and tracestitch_http2_defences_total
 * (" refused=field_value:1", " defence=ping_flood:1");
 * lines starting with # are comments.  Fails when a seed's outcome
 * differs, when a row names a seed that is not in the corpus or comes
 * twice, or when a seed-* file of the corpus has no row (so the rows are
 * exactly the seeds: every seed's outcome is pinned).
 *
 * Usage: h2_outcomes TSV CORPUS-DIR
 *        h2_outcomes -p CORPUS-DIR   (print every seed's outcome, to
 *                                     update the TSV after a deliberate
 *                                     change of the front-end)
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

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

#define MAX_LABELS 64

/* The samples of the two HTTP/2 counter families, by label. */
struct h2_counts {
	char label[MAX_LABELS][64];
	int refused[MAX_LABELS];	/* 1: refused_total, 0: defences */
	unsigned long long v[MAX_LABELS];
	size_t n;
};

/* Read tracestitch_http2_refused_total and _defences_total from
 * metrics_render() (the process's counters: fuzz_h2.c's worker). */
static void
h2_counts(struct h2_counts *c)
{
	static const struct {
		const char *prefix;
		int refused;
	} fam[] = {
		{ "tracestitch_http2_refused_total{reason=\"", 1 },
		{ "tracestitch_http2_defences_total{defence=\"", 0 },
	};
	char *text = metrics_render(), *line, *save = NULL;
	size_t i;

	c->n = 0;
	if (text == NULL)
		abort();
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		for (i = 0; i < 2; i++) {
			size_t pl = strlen(fam[i].prefix);
			char *q;

			if (strncmp(line, fam[i].prefix, pl) != 0 ||
			    (q = strchr(line + pl, '"')) == NULL ||
			    c->n == MAX_LABELS)
				continue;
			snprintf(c->label[c->n], sizeof c->label[c->n], "%.*s",
			    (int)(q - line - pl), line + pl);
			c->refused[c->n] = fam[i].refused;
			c->v[c->n] = strtoull(q + 3, NULL, 10);	/* "} N" */
			c->n++;
		}
	free(text);
}

/* Append " refused=label:N,..." and " defence=label:N,..." for the
 * counters that grew from a to b. */
static void
h2_counts_delta(const struct h2_counts *a, const struct h2_counts *b,
    char *out, size_t cap)
{
	int fam;
	size_t i, j, l;

	for (fam = 1; fam >= 0; fam--) {
		bool any = false;

		for (i = 0; i < b->n; i++) {
			unsigned long long was = 0;

			if (b->refused[i] != fam)
				continue;
			for (j = 0; j < a->n; j++)
				if (a->refused[j] == fam &&
				    strcmp(a->label[j], b->label[i]) == 0)
					was = a->v[j];
			if (b->v[i] <= was)
				continue;
			l = strlen(out);
			snprintf(out + l, cap - l, "%s%s:%llu",
			    any ? "," : (fam ? " refused=" : " defence="),
			    b->label[i], b->v[i] - was);
			any = true;
		}
	}
}

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

/* One seed's outcome with the counters it moved, into buf. */
static int
outcome_of(const char *dir, const char *name, char *buf, size_t cap)
{
	static struct h2_counts before, after;
	char path[4096];
	uint8_t *data;
	size_t len;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (read_file(path, &data, &len) != 0)
		return -1;
	h2_counts(&before);
	(void)LLVMFuzzerTestOneInput(data, len);
	free(data);
	h2_counts(&after);
	snprintf(buf, cap, "%s", fuzz_h2_outcome());
	h2_counts_delta(&before, &after, buf, cap);
	return 0;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* -p: "seed<TAB>outcome" for every seed of dir, in name order (what a
 * changed row of the TSV should say). */
static int
print_all(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *names[1024], buf[1024];
	size_t n = 0, i;

	if (d == NULL) {
		perror(dir);
		return 1;
	}
	while ((de = readdir(d)) != NULL && n < 1024)
		if (strncmp(de->d_name, "seed-", 5) == 0 &&
		    (names[n] = strdup(de->d_name)) != NULL)
			n++;
	closedir(d);
	qsort(names, n, sizeof names[0], cmp_names);
	for (i = 0; i < n; i++) {
		if (outcome_of(dir, names[i], buf, sizeof buf) == 0)
			printf("%s\t%s\n", names[i], buf);
		free(names[i]);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	char line[1024];
	FILE *tsv;
	DIR *d;
	struct dirent *de;
	unsigned rows = 0, bad = 0, seeds = 0, i;
	char gotbuf[1024];
	char *names[1024];

	if (argc == 3 && strcmp(argv[1], "-p") == 0)
		return print_all(argv[2]);
	if (argc != 3) {
		fprintf(stderr, "usage: %s TSV CORPUS-DIR | -p CORPUS-DIR\n",
		    argv[0]);
		return 2;
	}
	if ((tsv = fopen(argv[1], "r")) == NULL) {
		perror(argv[1]);
		return 1;
	}
	while (fgets(line, sizeof line, tsv) != NULL) {
		char *name, *want, *save = NULL;
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
		if (outcome_of(argv[2], name, gotbuf, sizeof gotbuf) != 0) {
			fprintf(stderr, "h2_outcomes: %s: no such seed\n", name);
			bad++;
			continue;
		}
		got = gotbuf;
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
