/*
 * replay.c -- run a libFuzzer harness over a seed corpus without libFuzzer.
 *
 * Linked with one tests/fuzz/fuzz_*.c in every normal build (STYLE.md 4.9)
 * so the suite 'fuzz' replays the committed corpus with gcc, valgrind or
 * the sanitizers and no libFuzzer runtime.  Each argument is a corpus
 * directory (every regular file in it is one input, in name order) or a
 * single input file.  A harness reports a bad input by crashing or
 * calling abort(), which fails the test; an argument that cannot be read,
 * or no inputs at all, fails it too (a corpus that went missing must not
 * pass silently).  The input that made the harness abort is named on
 * stderr; set TS_FUZZ_VERBOSE=1 to print every input's name.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int verbose;
static const char *current;	/* the input being run, for replay_abort */

/* SIGABRT from a harness check: say which input, then die as before. */
static void
replay_abort(int sig)
{
	static const char msg[] = "replay: abort on input ";

	if (current != NULL) {
		(void)!write(STDERR_FILENO, msg, sizeof msg - 1);
		(void)!write(STDERR_FILENO, current, strlen(current));
		(void)!write(STDERR_FILENO, "\n", 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Read a whole file into a fresh buffer; -1 on error. */
static int
replay_read(const char *path, uint8_t **out, size_t *len)
{
	FILE *f;
	uint8_t *buf = NULL, *nbuf;
	size_t n = 0, cap = 0, got;

	if ((f = fopen(path, "rb")) == NULL)
		return -1;
	for (;;) {
		if (n == cap) {
			cap = cap == 0 ? 4096 : cap * 2;
			if ((nbuf = realloc(buf, cap)) == NULL) {
				free(buf);
				fclose(f);
				return -1;
			}
			buf = nbuf;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	*out = buf;
	*len = n;
	return 0;
}

/* Run one input file through the harness; -1 if it cannot be read. */
static int
replay_file(const char *path)
{
	uint8_t *buf, *copy;
	size_t len;

	if (replay_read(path, &buf, &len) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (verbose)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	/* An exact-size copy, so ASan or valgrind sees reads past the end. */
	if ((copy = malloc(len == 0 ? 1 : len)) == NULL) {
		free(buf);
		return -1;
	}
	memcpy(copy, buf, len);
	free(buf);
	current = path;
	(void)LLVMFuzzerTestOneInput(copy, len);
	current = NULL;
	free(copy);
	return 0;
}

/* Order directory entries by name, for a reproducible run. */
static int
replay_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every regular file of a directory; returns the count or -1. */
static long
replay_dir(const char *dir)
{
	DIR *d;
	struct dirent *de;
	struct stat sb;
	char **names = NULL, **nnames, *path;
	size_t n = 0, cap = 0, i;
	long count = 0;
	int rc = 0;

	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			nnames = realloc(names, cap * sizeof *names);
			if (nnames == NULL) {
				rc = -1;
				break;
			}
			names = nnames;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			rc = -1;
			break;
		}
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof *names, replay_cmp);
	for (i = 0; i < n; i++) {
		if (rc == 0) {
			if (asprintf(&path, "%s/%s", dir, names[i]) == -1)
				rc = -1;
			else {
				if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
					if (replay_file(path) != 0)
						rc = -1;
					else
						count++;
				}
				free(path);
			}
		}
		free(names[i]);
	}
	free(names);
	return rc == 0 ? count : -1;
}

/* Replay every corpus directory or file named on the command line. */
int
main(int argc, char **argv)
{
	struct stat sb;
	long total = 0, n;
	int i;

	verbose = getenv("TS_FUZZ_VERBOSE") != NULL;
	signal(SIGABRT, replay_abort);
	if (argc < 2) {
		fprintf(stderr, "usage: %s corpus-dir|file ...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &sb) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
			    strerror(errno));
			return 1;
		}
		if (S_ISDIR(sb.st_mode))
			n = replay_dir(argv[i]);
		else
			n = replay_file(argv[i]) == 0 ? 1 : -1;
		if (n < 0)
			return 1;
		total += n;
	}
	if (total == 0) {
		fprintf(stderr, "replay: no inputs\n");
		return 1;
	}
	printf("replay: %ld inputs, no failure\n", total);
	return 0;
}
