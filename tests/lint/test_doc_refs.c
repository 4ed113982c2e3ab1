/*
 * test_doc_refs.c -- every document a source file cites exists.
 *
 * Comments cite the design specifications by name and section
 * ("PROPAGATION.md 3", "STYLE.md 4.5") and the user documentation by path
 * ("docs/cors.md").  This walks src/, tests/ and docs/ under
 * TS_SOURCE_ROOT and checks that each upper-case NAME.md cited is
 * docs/design/NAME.md and each docs/name.md cited exists.
 */
#include <ctype.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_test.h"

static char root[4096];
static size_t files_read, refs_checked;
static char missing[8192];

static bool
exists(const char *rel)
{
	char path[8192];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", root, rel);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void
note_missing(const char *file, const char *ref)
{
	size_t len = strlen(missing);

	snprintf(missing + len, sizeof missing - len, "%s cites %s\n", file,
	    ref);
}

/* Check the references in one file's text. */
static void
scan(const char *file, const char *text)
{
	const char *p, *s;
	char ref[256], rel[512];
	size_t len;

	for (p = text; (p = strstr(p, ".md")) != NULL; p += 3) {
		/* The name before ".md": letters, digits, '_', '-', '/'. */
		for (s = p; s > text && (isalnum((unsigned char)s[-1]) ||
		    s[-1] == '_' || s[-1] == '-' || s[-1] == '/'); s--)
			;
		len = (size_t)(p - s);
		if (len == 0 || len >= sizeof ref - 4 ||
		    isalnum((unsigned char)p[3]))
			continue;
		memcpy(ref, s, len);
		memcpy(ref + len, ".md", 4);
		if (strncmp(ref, "docs/", 5) == 0) {
			refs_checked++;
			if (!exists(ref))
				note_missing(file, ref);
			continue;
		}
		if (strchr(ref, '/') != NULL)
			continue;
		/* An all-upper-case name is a design specification. */
		for (s = ref; *s != '.' && (isupper((unsigned char)*s) ||
		    *s == '_'); s++)
			;
		if (*s != '.' || strcmp(ref, "README.md") == 0)
			continue;
		refs_checked++;
		snprintf(rel, sizeof rel, "docs/design/%s", ref);
		if (!exists(rel))
			note_missing(file, ref);
	}
}

static int
visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *base = path + ftw->base;
	size_t n = strlen(path);
	char *buf;
	FILE *f;

	if (type == FTW_D && (strcmp(base, "node_modules") == 0 ||
	    strcmp(base, "corpus") == 0 || base[0] == '.'))
		return FTW_SKIP_SUBTREE;
	if (type != FTW_F || st->st_size > (1 << 22))
		return FTW_CONTINUE;
	if (!(n > 2 && (strcmp(path + n - 2, ".c") == 0 ||
	    strcmp(path + n - 2, ".h") == 0)) &&
	    !(n > 3 && strcmp(path + n - 3, ".md") == 0) &&
	    !(n > 3 && strcmp(path + n - 3, ".sh") == 0) &&
	    !(n > 4 && strcmp(path + n - 4, ".mjs") == 0) &&
	    strcmp(base, "meson.build") != 0)
		return FTW_CONTINUE;
	if ((f = fopen(path, "r")) == NULL)
		return FTW_CONTINUE;
	buf = malloc((size_t)st->st_size + 1);
	ck_assert_ptr_nonnull(buf);
	buf[fread(buf, 1, (size_t)st->st_size, f)] = '\0';
	fclose(f);
	/* The design folder's own files cite each other, and this file
	 * names made-up documents: skip both. */
	if (strstr(path, "/docs/design/") == NULL &&
	    strcmp(base, "test_doc_refs.c") != 0)
		scan(path + strlen(root) + 1, buf);
	free(buf);
	files_read++;
	return FTW_CONTINUE;
}

START_TEST(cited_documents_exist)
{
	static const char *const dirs[] = {"src", "tests", "docs"};
	const char *r = getenv("TS_SOURCE_ROOT");
	char path[8192];
	size_t i;

	ck_assert_msg(r != NULL, "TS_SOURCE_ROOT is not set");
	snprintf(root, sizeof root, "%s", r);
	for (i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
		ck_assert_int_eq(nftw(path, visit, 16, FTW_PHYS |
		    FTW_ACTIONRETVAL), 0);
	}
	/* The walk saw the tree: a wrong root fails instead of passing. */
	ck_assert_uint_ge(files_read, 100);
	ck_assert_uint_ge(refs_checked, 50);
	ck_assert_msg(missing[0] == '\0', "cited documents missing:\n%s",
	    missing);
}
END_TEST

/* The checker itself: a missing spec and a missing page are caught. */
START_TEST(checker_catches_missing)
{
	const char *r = getenv("TS_SOURCE_ROOT");

	ck_assert_ptr_nonnull(r);
	snprintf(root, sizeof root, "%s", r);
	missing[0] = '\0';
	scan("x.c", "/* NOSUCHSPEC.md 3, docs/nosuch.md, README.md, "
	    "PROPAGATION.md 2, docs/cors.md */");
	ck_assert_msg(strstr(missing, "NOSUCHSPEC.md") != NULL, "%s", missing);
	ck_assert_msg(strstr(missing, "docs/nosuch.md") != NULL, "%s",
	    missing);
	ck_assert_msg(strstr(missing, "PROPAGATION.md") == NULL, "%s",
	    missing);
	ck_assert_msg(strstr(missing, "cors.md") == NULL, "%s", missing);
	missing[0] = '\0';
}
END_TEST

static Suite *
doc_refs_suite(void)
{
	Suite *s = suite_create("doc_refs");
	TCase *tc = tcase_create("refs");

	tcase_add_test(tc, checker_catches_missing);
	tcase_add_test(tc, cited_documents_exist);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(doc_refs_suite)
