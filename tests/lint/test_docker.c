/*
 * test_docker.c -- keeps docker/Dockerfile and docker/compose.yaml true to
 * the build and the configuration.
 *
 * No Docker engine runs in CI, so the files are read as text and YAML:
 * the Dockerfile's build stage must install every package that the
 * dependency() calls of the meson.build files need (pkg-config name ->
 * Debian package table below) and the -dev packages of the Makefile's
 * DEB_PACKAGES, and run meson setup and ninja; the runtime stage must be
 * debian:bookworm-slim, install no -dev package, run as a non-root user
 * and health-check /healthz.  compose.yaml must define the gateway, the
 * demo backend and the Datadog Agent; the ports it publishes must be the
 * listen and admin ports of the configuration file it mounts (which must
 * exist and listen beyond loopback), every upstream and the exporter must
 * name compose services, and the Agent must take DD_API_KEY from the
 * environment with APM enabled.  Files are found through TS_SOURCE_ROOT.
 */
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "config.h"
#include "ts_test.h"
#include "util.h"

#define DF_MAX_STAGES	8
#define MAX_PORTS	16
#define CONFIG_TARGET	"/etc/tracestitch/tracestitch.yaml"

/* One FROM ... [AS alias] section of the Dockerfile. */
struct df_stage {
	char image[128];
	char alias[64];
	char *run;		/* every RUN of the stage, joined by newlines */
	char *copy;		/* every COPY/ADD line (arguments only) */
	char user[64];		/* last USER, "" if none */
	char healthcheck[512];	/* last HEALTHCHECK arguments */
	char entrypoint[256];
	char expose[128];
};

struct dockerfile {
	struct df_stage stages[DF_MAX_STAGES];
	size_t n;
};

/* A YAML file loaded with libyaml's document API. */
struct ydoc {
	yaml_document_t doc;
	bool loaded;
};

/* pkg-config name in meson.build -> Debian package ("" = part of libc). */
static const struct {
	const char *pc;
	const char *deb;
} pc_to_deb[] = {
	{ "libevent", "libevent-dev" },
	{ "libevent_core", "libevent-dev" },
	{ "libevent_extra", "libevent-dev" },
	{ "libevent_openssl", "libevent-dev" },
	{ "libevent_pthreads", "libevent-dev" },
	{ "openssl", "libssl-dev" },
	{ "libssl", "libssl-dev" },
	{ "libcrypto", "libssl-dev" },
	{ "yaml-0.1", "libyaml-dev" },
	{ "msgpack", "libmsgpack-dev" },
	{ "msgpack-c", "libmsgpack-dev" },
	{ "jansson", "libjansson-dev" },
	{ "libpsl", "libpsl-dev" },
	{ "check", "check" },
	{ "threads", "" },
	{ "libbsd-overlay", "libbsd-dev" },
	{ "zlib", "zlib1g-dev" },
	{ "libpsl", "libpsl-dev" },
	{ "libnghttp2", "libnghttp2-dev" },
};

/* The meson.build files whose dependency() calls are read: every one in
 * the tree (meson_walk), so a new folder cannot be missed. */
#define MESON_MAX_FILES 64
static char meson_files[MESON_MAX_FILES][512];
static size_t n_meson_files;

/* Shared libraries the runtime stage needs (Debian 12 names). */
static const char *runtime_libs[] = {
	"libevent-2.1-7", "libevent-openssl-2.1-7", "libevent-pthreads-2.1-7",
	"libssl3", "libyaml-0-2", "libmsgpackc2", "libjansson4", "libpsl5",
	"publicsuffix", "libnghttp2-14",
	"ca-certificates", "curl",
};

static struct dockerfile df;
static char *dockerfile_text;

/* Path of rel under the source root (static buffer). */
static const char *
src_path(const char *rel)
{
	static char buf[4096];
	const char *root = getenv("TS_SOURCE_ROOT");

	snprintf(buf, sizeof buf, "%s/%s", root != NULL ? root : ".", rel);
	return buf;
}

/* Whole file as a NUL-terminated string, NULL if it cannot be read. */
static char *
slurp(const char *path)
{
	FILE *f;
	char *buf;
	size_t len = 0, size = 4096, n;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	buf = malloc(size);
	ck_assert_ptr_nonnull(buf);
	while ((n = fread(buf + len, 1, size - len - 1, f)) > 0) {
		len += n;
		if (size - len - 1 == 0) {
			size *= 2;
			buf = realloc(buf, size);
			ck_assert_ptr_nonnull(buf);
		}
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Like slurp() on a repository file, failing the test when it is missing. */
static char *
slurp_repo(const char *rel)
{
	char *text = slurp(src_path(rel));

	ck_assert_msg(text != NULL, "cannot read %s: %s", src_path(rel),
	    strerror(errno));
	return text;
}

static bool
repo_file_exists(const char *rel)
{
	struct stat st;

	return stat(src_path(rel), &st) == 0;
}

/* True if word occurs in text delimited by whitespace, quotes or ends. */
static bool
has_word(const char *text, const char *word)
{
	const char *p = text;
	size_t len = strlen(word);

	if (len == 0)
		return true;
	while ((p = strstr(p, word)) != NULL) {
		bool left = p == text || isspace((unsigned char)p[-1]) ||
		    p[-1] == '"' || p[-1] == '\'';
		bool right = p[len] == '\0' ||
		    isspace((unsigned char)p[len]) || p[len] == '"' ||
		    p[len] == '\'';

		if (left && right)
			return true;
		p += len;
	}
	return false;
}

/* Appends line to *acc (newline-separated). */
static void
append_line(char **acc, const char *line)
{
	size_t old = *acc != NULL ? strlen(*acc) : 0;
	size_t add = strlen(line);

	*acc = realloc(*acc, old + add + 2);
	ck_assert_ptr_nonnull(*acc);
	memcpy(*acc + old, line, add);
	(*acc)[old + add] = '\n';
	(*acc)[old + add + 1] = '\0';
}

/* Handles one logical Dockerfile line (continuations already joined). */
static void
df_instruction(struct dockerfile *d, char *line)
{
	char *args, *word;
	struct df_stage *st;

	while (isspace((unsigned char)*line))
		line++;
	if (*line == '\0' || *line == '#')
		return;
	args = line;
	while (*args != '\0' && !isspace((unsigned char)*args)) {
		*args = (char)toupper((unsigned char)*args);
		args++;
	}
	if (*args != '\0')
		*args++ = '\0';
	while (isspace((unsigned char)*args))
		args++;

	if (strcmp(line, "FROM") == 0) {
		ck_assert_msg(d->n < DF_MAX_STAGES, "too many stages");
		st = &d->stages[d->n++];
		memset(st, 0, sizeof *st);
		word = strtok(args, " \t");
		while (word != NULL && strncmp(word, "--", 2) == 0)
			word = strtok(NULL, " \t");	/* --platform=... */
		ck_assert_ptr_nonnull(word);
		snprintf(st->image, sizeof st->image, "%s", word);
		word = strtok(NULL, " \t");
		if (word != NULL && util_strcaseeq(word, "AS")) {
			word = strtok(NULL, " \t");
			if (word != NULL)
				snprintf(st->alias, sizeof st->alias, "%s",
				    word);
		}
		return;
	}
	ck_assert_msg(d->n > 0, "Dockerfile: %s before FROM", line);
	st = &d->stages[d->n - 1];
	if (strcmp(line, "RUN") == 0)
		append_line(&st->run, args);
	else if (strcmp(line, "COPY") == 0 || strcmp(line, "ADD") == 0)
		append_line(&st->copy, args);
	else if (strcmp(line, "USER") == 0)
		snprintf(st->user, sizeof st->user, "%s", args);
	else if (strcmp(line, "HEALTHCHECK") == 0)
		snprintf(st->healthcheck, sizeof st->healthcheck, "%s", args);
	else if (strcmp(line, "ENTRYPOINT") == 0)
		snprintf(st->entrypoint, sizeof st->entrypoint, "%s", args);
	else if (strcmp(line, "EXPOSE") == 0)
		snprintf(st->expose, sizeof st->expose, "%s", args);
}

/*
 * Splits the Dockerfile into logical lines: a trailing backslash joins
 * the next line, and comment lines inside a continuation are dropped
 * (Dockerfile reference, "Parser directives" / line continuation).
 */
static void
df_parse(struct dockerfile *d, const char *text)
{
	char *copy = xstrdup(text), *save = NULL, *line, *logical = NULL;
	size_t len;

	memset(d, 0, sizeof *d);
	for (line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		const char *p = line;
		bool cont;

		while (isspace((unsigned char)*p))
			p++;
		if (*p == '#' && logical != NULL)
			continue;
		len = strlen(line);
		while (len > 0 && isspace((unsigned char)line[len - 1]))
			line[--len] = '\0';
		cont = len > 0 && line[len - 1] == '\\';
		if (cont)
			line[--len] = '\0';
		if (logical == NULL) {
			logical = xstrdup(line);
		} else {
			char *joined;

			(void)xasprintf(&joined, "%s %s", logical, line);
			free(logical);
			logical = joined;
		}
		if (!cont) {
			df_instruction(d, logical);
			free(logical);
			logical = NULL;
		}
	}
	if (logical != NULL) {
		df_instruction(d, logical);
		free(logical);
	}
	free(copy);
}

static const struct df_stage *
df_stage_named(const struct dockerfile *d, const char *alias)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		if (strcmp(d->stages[i].alias, alias) == 0)
			return &d->stages[i];
	}
	return NULL;
}

/* The stage that compiles: the one named "build", else the first. */
static const struct df_stage *
df_build_stage(const struct dockerfile *d)
{
	const struct df_stage *st = df_stage_named(d, "build");

	ck_assert_uint_gt(d->n, 0);
	return st != NULL ? st : &d->stages[0];
}

static void
df_setup(void)
{
	dockerfile_text = slurp_repo("docker/Dockerfile");
	df_parse(&df, dockerfile_text);
}

static void
df_teardown(void)
{
	size_t i;

	for (i = 0; i < df.n; i++) {
		free(df.stages[i].run);
		free(df.stages[i].copy);
	}
	memset(&df, 0, sizeof df);
	free(dockerfile_text);
	dockerfile_text = NULL;
}

/* Debian package for a pkg-config name, NULL if the table lacks it. */
static const char *
deb_for_pc(const char *pc)
{
	size_t i;

	for (i = 0; i < TS_NITEMS(pc_to_deb); i++) {
		if (strcmp(pc_to_deb[i].pc, pc) == 0)
			return pc_to_deb[i].deb;
	}
	return NULL;
}

static int
meson_visit(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	const char *base = path + ftw->base;
	size_t root_len = strlen(src_path(""));

	(void)st;
	if (type == FTW_D && ftw->level > 0 && (base[0] == '.' ||
	    strncmp(base, "build", 5) == 0 ||
	    strcmp(base, "node_modules") == 0))
		return FTW_SKIP_SUBTREE;
	if (type == FTW_F && strcmp(base, "meson.build") == 0) {
		ck_assert_uint_lt(n_meson_files, MESON_MAX_FILES);
		snprintf(meson_files[n_meson_files++], sizeof meson_files[0],
		    "%s", path + root_len);
	}
	return FTW_CONTINUE;
}

/* Every meson.build under the source root, build directories excepted. */
static void
meson_find(void)
{
	char root[4096];

	if (n_meson_files > 0)
		return;
	snprintf(root, sizeof root, "%s", src_path(""));
	ck_assert_int_eq(nftw(root, meson_visit, 16, FTW_PHYS |
	    FTW_ACTIONRETVAL), 0);
	/* The top, src/ and its eleven folders, tests/ and its own. */
	ck_assert_uint_ge(n_meson_files, 18);
}

/*
 * Collects the names of dependency('NAME' ...) calls of every meson.build
 * in meson_files into names (at most max).  Returns how many were found.
 */
static size_t
meson_dependencies(char names[][64], size_t max)
{
	size_t i, n = 0, k;

	meson_find();
	for (i = 0; i < n_meson_files; i++) {
		char *text = slurp_repo(meson_files[i]);
		const char *p;

		for (p = text; (p = strstr(p, "dependency(")) != NULL; p++) {
			const char *q, *end;
			bool dup = false;

			/* Skip declare_dependency( and the like. */
			if (p > text && (isalnum((unsigned char)p[-1]) ||
			    p[-1] == '_'))
				continue;
			q = p + strlen("dependency(");
			while (isspace((unsigned char)*q))
				q++;
			if (*q != '\'')
				continue;
			end = strchr(++q, '\'');
			if (end == NULL || end - q >= 64)
				continue;
			for (k = 0; k < n; k++) {
				if (strncmp(names[k], q, (size_t)(end - q)) ==
				    0 && names[k][end - q] == '\0')
					dup = true;
			}
			if (dup || n == max)
				continue;
			memcpy(names[n], q, (size_t)(end - q));
			names[n][end - q] = '\0';
			n++;
		}
		free(text);
	}
	return n;
}

/*
 * The packages of the Makefile's DEB_PACKAGES variable, as one
 * space-separated string (continuation lines joined).
 */
static char *
makefile_packages(void)
{
	char *text = slurp_repo("Makefile"), *p, *out = NULL, *o;

	p = strstr(text, "\nDEB_PACKAGES");
	ck_assert_msg(p != NULL, "Makefile has no DEB_PACKAGES");
	p = strchr(p, '=');
	ck_assert_ptr_nonnull(p);
	p++;
	out = xmalloc(strlen(p) + 1);
	o = out;
	for (; *p != '\0'; p++) {
		if (*p == '\\' && p[1] == '\n') {
			*o++ = ' ';
			p++;
			continue;
		}
		if (*p == '\n')
			break;
		*o++ = *p == '\t' ? ' ' : *p;
	}
	*o = '\0';
	free(text);
	return out;
}

START_TEST(dockerfile_stages)
{
	size_t i, slim = 0;

	for (i = 0; i < df.n; i++) {
		if (strcmp(df.stages[i].image, "debian:bookworm-slim") == 0)
			slim++;
	}
	ck_assert_msg(slim >= 2, "FROM debian:bookworm-slim %zu times, "
	    "want build and runtime stages", slim);
	ck_assert_str_eq(df.stages[df.n - 1].image, "debian:bookworm-slim");
	ck_assert_ptr_nonnull(df_stage_named(&df, "build"));
	ck_assert_str_eq(df_build_stage(&df)->image, "debian:bookworm-slim");
}
END_TEST

START_TEST(build_stage_installs_meson_dependencies)
{
	char names[32][64];
	size_t n, i;
	const struct df_stage *st = df_build_stage(&df);
	const char *deb;

	ck_assert_ptr_nonnull(st->run);
	ck_assert_msg(strstr(st->run, "apt-get install") != NULL,
	    "build stage installs nothing");
	n = meson_dependencies(names, TS_NITEMS(names));
	/* libevent, openssl, yaml, msgpack, jansson at the very least. */
	ck_assert_uint_ge(n, 5);
	for (i = 0; i < n; i++) {
		deb = deb_for_pc(names[i]);
		ck_assert_msg(deb != NULL, "meson dependency('%s') has no "
		    "Debian package in test_docker.c's pc_to_deb table",
		    names[i]);
		if (*deb == '\0')
			continue;
		ck_assert_msg(has_word(st->run, deb), "dependency('%s') needs "
		    "%s, which the Dockerfile build stage does not install",
		    names[i], deb);
	}
}
END_TEST

START_TEST(build_stage_runs_the_makefile_commands)
{
	static const char *tools[] = { "meson", "ninja-build", "pkg-config",
	    "gcc" };
	const struct df_stage *st = df_build_stage(&df);
	size_t i;

	ck_assert_ptr_nonnull(st->run);
	for (i = 0; i < TS_NITEMS(tools); i++)
		ck_assert_msg(has_word(st->run, tools[i]),
		    "build stage does not install %s", tools[i]);
	ck_assert_msg(strstr(st->run, "meson setup build") != NULL,
	    "build stage does not run meson setup");
	ck_assert_msg(strstr(st->run, "ninja -C build") != NULL,
	    "build stage does not run ninja");
	ck_assert_msg(strstr(st->run, "buildtype=release") != NULL,
	    "the image is not a release build");
}
END_TEST

START_TEST(build_stage_matches_makefile_deps)
{
	char *pkgs = makefile_packages(), *save = NULL, *p;
	const struct df_stage *st = df_build_stage(&df);
	size_t ndev = 0, len;

	for (p = strtok_r(pkgs, " ", &save); p != NULL;
	    p = strtok_r(NULL, " ", &save)) {
		len = strlen(p);
		if (strcmp(p, "check") != 0 &&
		    (len < 4 || strcmp(p + len - 4, "-dev") != 0))
			continue;
		ndev++;
		ck_assert_msg(has_word(st->run, p), "Makefile DEB_PACKAGES "
		    "has %s but the Dockerfile build stage does not install "
		    "it", p);
	}
	ck_assert_uint_ge(ndev, 5);
	free(pkgs);
}
END_TEST

START_TEST(runtime_stage)
{
	const struct df_stage *st = &df.stages[df.n - 1];
	size_t i;

	ck_assert_ptr_nonnull(st->run);
	ck_assert_msg(strstr(st->run, "-dev ") == NULL &&
	    strstr(st->run, "-dev\n") == NULL,
	    "runtime stage installs a -dev package: %s", st->run);
	for (i = 0; i < TS_NITEMS(runtime_libs); i++)
		ck_assert_msg(has_word(st->run, runtime_libs[i]),
		    "runtime stage does not install %s", runtime_libs[i]);
	ck_assert_msg(st->user[0] != '\0', "runtime stage runs as root");
	ck_assert_str_ne(st->user, "root");
	ck_assert_msg(strcmp(st->user, "0") != 0 &&
	    strncmp(st->user, "0:", 2) != 0, "USER %s is root", st->user);
	ck_assert_msg(strstr(st->run, st->user) != NULL,
	    "USER %s is never created", st->user);
	ck_assert_msg(strstr(st->healthcheck, "curl") != NULL &&
	    strstr(st->healthcheck, ":9901/healthz") != NULL,
	    "HEALTHCHECK is '%s', want curl on :9901/healthz",
	    st->healthcheck);
	ck_assert_msg(strstr(st->entrypoint, "tracestitch") != NULL,
	    "ENTRYPOINT is '%s'", st->entrypoint);
	ck_assert_msg(has_word(st->expose, "8080") &&
	    has_word(st->expose, "9901"), "EXPOSE is '%s'", st->expose);
	ck_assert_ptr_nonnull(st->copy);
	ck_assert_msg(strstr(st->copy, "--from=build") != NULL,
	    "runtime stage does not take the binary from the build stage");
}
END_TEST

/* Every COPY source outside --from= must exist in the repository. */
START_TEST(copy_sources_exist)
{
	size_t i, checked = 0;

	for (i = 0; i < df.n; i++) {
		char *lines, *save = NULL, *line;

		if (df.stages[i].copy == NULL)
			continue;
		lines = xstrdup(df.stages[i].copy);
		for (line = strtok_r(lines, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save)) {
			char *words[16], *s2 = NULL, *w;
			size_t n = 0, k;

			if (strstr(line, "--from=") != NULL)
				continue;
			for (w = strtok_r(line, " \t", &s2); w != NULL &&
			    n < TS_NITEMS(words); w = strtok_r(NULL, " \t",
			    &s2)) {
				if (strncmp(w, "--", 2) != 0)
					words[n++] = w;
			}
			/* The last word is the destination. */
			for (k = 0; k + 1 < n; k++) {
				checked++;
				ck_assert_msg(strcmp(words[k], ".") == 0 ||
				    repo_file_exists(words[k]),
				    "Dockerfile copies %s, which the "
				    "repository does not have", words[k]);
			}
		}
		free(lines);
	}
	ck_assert_uint_gt(checked, 0);
}
END_TEST

/* Loads a YAML repository file; failure fails the test. */
static void
ydoc_load(struct ydoc *y, const char *rel)
{
	yaml_parser_t parser;
	char *text = slurp_repo(rel);
	int ok;

	ck_assert(yaml_parser_initialize(&parser));
	yaml_parser_set_input_string(&parser, (const unsigned char *)text,
	    strlen(text));
	ok = yaml_parser_load(&parser, &y->doc);
	ck_assert_msg(ok, "%s:%zu:%zu: %s", rel, parser.problem_mark.line + 1,
	    parser.problem_mark.column + 1,
	    parser.problem != NULL ? parser.problem : "YAML error");
	yaml_parser_delete(&parser);
	free(text);
	y->loaded = true;
	ck_assert_msg(yaml_document_get_root_node(&y->doc) != NULL,
	    "%s is empty", rel);
}

static void
ydoc_free(struct ydoc *y)
{
	if (y->loaded)
		yaml_document_delete(&y->doc);
	y->loaded = false;
}

static const char *
yscalar(const yaml_node_t *node)
{
	if (node == NULL || node->type != YAML_SCALAR_NODE)
		return NULL;
	return (const char *)node->data.scalar.value;
}

/* Value of key in a mapping node, NULL if absent or not a mapping. */
static yaml_node_t *
ymap_get(struct ydoc *y, const yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *pair;

	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (pair = map->data.mapping.pairs.start;
	    pair < map->data.mapping.pairs.top; pair++) {
		const char *k = yscalar(yaml_document_get_node(&y->doc,
		    pair->key));

		if (k != NULL && strcmp(k, key) == 0)
			return yaml_document_get_node(&y->doc, pair->value);
	}
	return NULL;
}

/* Node at a dotted path from the root ("services.backend.build"). */
static yaml_node_t *
ypath(struct ydoc *y, const char *path)
{
	char *copy = xstrdup(path), *save = NULL, *part;
	yaml_node_t *node = yaml_document_get_root_node(&y->doc);

	for (part = strtok_r(copy, ".", &save); part != NULL && node != NULL;
	    part = strtok_r(NULL, ".", &save))
		node = ymap_get(y, node, part);
	free(copy);
	return node;
}

static size_t
yseq_len(const yaml_node_t *node)
{
	if (node == NULL || node->type != YAML_SEQUENCE_NODE)
		return 0;
	return (size_t)(node->data.sequence.items.top -
	    node->data.sequence.items.start);
}

static yaml_node_t *
yseq_at(struct ydoc *y, const yaml_node_t *node, size_t i)
{
	return yaml_document_get_node(&y->doc,
	    node->data.sequence.items.start[i]);
}

/*
 * Environment value of a compose service: "environment" as a mapping
 * or as a list of KEY=VALUE.  Returns a static copy or NULL.
 */
static const char *
compose_env(struct ydoc *y, const char *service, const char *key)
{
	static char buf[256];
	char path[128];
	yaml_node_t *env;
	size_t i, klen = strlen(key);

	snprintf(path, sizeof path, "services.%s.environment", service);
	env = ypath(y, path);
	if (env == NULL)
		return NULL;
	if (env->type == YAML_MAPPING_NODE) {
		const char *v = yscalar(ymap_get(y, env, key));

		if (v == NULL)
			return NULL;
		snprintf(buf, sizeof buf, "%s", v);
		return buf;
	}
	for (i = 0; i < yseq_len(env); i++) {
		const char *item = yscalar(yseq_at(y, env, i));

		if (item != NULL && strncmp(item, key, klen) == 0 &&
		    item[klen] == '=') {
			snprintf(buf, sizeof buf, "%s", item + klen + 1);
			return buf;
		}
	}
	return NULL;
}

/* Port of "host:port" or "[v6]:port"; -1 if none. */
static long
addr_port(const char *addr)
{
	const char *colon = strrchr(addr, ':');
	char *end;
	long port;

	if (colon == NULL)
		return -1;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port <= 0 || port > 65535)
		return -1;
	return port;
}

/*
 * Container-side ports a service publishes ("ports"), short syntax
 * "[IP:][HOST:]CONTAINER[/proto]" or long syntax with "target".
 */
static size_t
compose_published(struct ydoc *y, const char *service, long *ports,
    size_t max)
{
	char path[128];
	yaml_node_t *seq, *item;
	size_t i, n = 0;

	snprintf(path, sizeof path, "services.%s.ports", service);
	seq = ypath(y, path);
	for (i = 0; i < yseq_len(seq) && n < max; i++) {
		const char *s;
		char buf[128], *slash, *last;

		item = yseq_at(y, seq, i);
		if (item->type == YAML_MAPPING_NODE) {
			s = yscalar(ymap_get(y, item, "target"));
			ck_assert_ptr_nonnull(s);
			ports[n++] = strtol(s, NULL, 10);
			continue;
		}
		s = yscalar(item);
		ck_assert_ptr_nonnull(s);
		snprintf(buf, sizeof buf, "%s", s);
		if ((slash = strchr(buf, '/')) != NULL)
			*slash = '\0';
		last = strrchr(buf, ':');
		ports[n++] = strtol(last != NULL ? last + 1 : buf, NULL, 10);
	}
	return n;
}

static bool
port_in(long port, const long *ports, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (ports[i] == port)
			return true;
	}
	return false;
}

/*
 * Repository path (relative to the root) of the file that the gateway
 * service mounts at CONFIG_TARGET; compose resolves a relative source
 * against the compose file's folder, docker/.
 */
static char *
compose_config_source(struct ydoc *y)
{
	yaml_node_t *vols = ypath(y, "services.tracestitch.volumes");
	char *out;
	size_t i;

	for (i = 0; i < yseq_len(vols); i++) {
		yaml_node_t *item = yseq_at(y, vols, i);
		const char *src = NULL, *dst = NULL, *s;
		char buf[512], *colon;

		if (item->type == YAML_MAPPING_NODE) {
			src = yscalar(ymap_get(y, item, "source"));
			dst = yscalar(ymap_get(y, item, "target"));
			if (src == NULL || dst == NULL)
				continue;
			snprintf(buf, sizeof buf, "%s", src);
		} else if ((s = yscalar(item)) != NULL) {
			snprintf(buf, sizeof buf, "%s", s);
			if ((colon = strchr(buf, ':')) == NULL)
				continue;
			*colon = '\0';
			dst = colon + 1;
		} else
			continue;
		if (strncmp(dst, CONFIG_TARGET, strlen(CONFIG_TARGET)) != 0)
			continue;
		if (strncmp(buf, "../", 3) == 0)
			return xstrdup(buf + 3);
		ck_assert_msg(buf[0] != '/', "config source %s is absolute",
		    buf);
		(void)xasprintf(&out, "docker/%s",
		    strncmp(buf, "./", 2) == 0 ? buf + 2 : buf);
		return out;
	}
	return NULL;
}

/* Host part of http://HOST:PORT/...; static buffer. */
static const char *
url_host(const char *url, long *port)
{
	static char host[256];
	const char *p = strstr(url, "://"), *end;
	size_t len;

	*port = -1;
	if (p == NULL)
		return NULL;
	p += 3;
	end = p + strcspn(p, ":/");
	len = (size_t)(end - p);
	if (len >= sizeof host)
		return NULL;
	memcpy(host, p, len);
	host[len] = '\0';
	if (*end == ':')
		*port = strtol(end + 1, NULL, 10);
	return host;
}

START_TEST(compose_services)
{
	static const char *services[] = { "tracestitch", "backend",
	    "datadog-agent" };
	struct ydoc y = { 0 };
	const char *ctx, *file, *target;
	char path[320], rel[256];
	size_t i;

	ydoc_load(&y, "docker/compose.yaml");
	for (i = 0; i < TS_NITEMS(services); i++) {
		snprintf(path, sizeof path, "services.%s", services[i]);
		ck_assert_msg(ypath(&y, path) != NULL, "compose has no "
		    "service %s", services[i]);
	}
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "services.%s.build.context",
		    services[i]);
		ctx = yscalar(ypath(&y, path));
		ck_assert_msg(ctx != NULL && strcmp(ctx, "..") == 0,
		    "%s: build context must be the repository root",
		    services[i]);
		snprintf(path, sizeof path, "services.%s.build.dockerfile",
		    services[i]);
		file = yscalar(ypath(&y, path));
		ck_assert_ptr_nonnull(file);
		ck_assert_str_eq(file, "docker/Dockerfile");
		snprintf(rel, sizeof rel, "%s", file);
		ck_assert(repo_file_exists(rel));
		snprintf(path, sizeof path, "services.%s.build.target",
		    services[i]);
		target = yscalar(ypath(&y, path));
		if (target != NULL)
			ck_assert_msg(df_stage_named(&df, target) != NULL,
			    "%s: build target %s is not a Dockerfile stage",
			    services[i], target);
	}
	/* The backend is the demo backend, built from the build stage. */
	target = yscalar(ypath(&y, "services.backend.build.target"));
	ck_assert_ptr_nonnull(target);
	ck_assert_msg(strstr(df_stage_named(&df, target)->entrypoint,
	    "demo_backend") != NULL, "stage %s does not run demo_backend",
	    target);
	ydoc_free(&y);
}
END_TEST

START_TEST(compose_ports_match_mounted_config)
{
	struct ydoc y = { 0 }, conf = { 0 };
	yaml_node_t *listen;
	const char *addr;
	char *rel;
	long published[MAX_PORTS], want[MAX_PORTS], port;
	size_t npub, nwant = 0, i;

	ydoc_load(&y, "docker/compose.yaml");
	rel = compose_config_source(&y);
	ck_assert_msg(rel != NULL, "tracestitch service mounts nothing at "
	    CONFIG_TARGET);
	ck_assert_msg(repo_file_exists(rel), "mounted config %s is not in "
	    "the repository", rel);
	ydoc_load(&conf, rel);

	listen = ypath(&conf, "server.listen");
	ck_assert_msg(listen != NULL, "%s has no server.listen", rel);
	for (i = 0; i < (listen->type == YAML_SCALAR_NODE ? 1 :
	    yseq_len(listen)); i++) {
		addr = listen->type == YAML_SCALAR_NODE ? yscalar(listen) :
		    yscalar(yseq_at(&conf, listen, i));
		ck_assert_ptr_nonnull(addr);
		ck_assert_msg(strncmp(addr, "127.", 4) != 0 &&
		    strncmp(addr, "localhost:", 10) != 0 &&
		    strncmp(addr, "[::1]", 5) != 0, "%s: server.listen %s "
		    "is loopback: a published port cannot reach it", rel,
		    addr);
		port = addr_port(addr);
		ck_assert_msg(port > 0, "%s: bad listen address %s", rel,
		    addr);
		want[nwant++] = port;
	}
	addr = yscalar(ypath(&conf, "admin.listen"));
	if (addr != NULL) {
		ck_assert_msg(strncmp(addr, "127.", 4) != 0, "%s: "
		    "admin.listen %s is loopback but compose publishes it",
		    rel, addr);
		want[nwant++] = addr_port(addr);
	}

	npub = compose_published(&y, "tracestitch", published, MAX_PORTS);
	ck_assert_uint_eq(npub, nwant);
	for (i = 0; i < nwant; i++)
		ck_assert_msg(port_in(want[i], published, npub), "port %ld of "
		    "%s is not published by compose", want[i], rel);
	for (i = 0; i < npub; i++)
		ck_assert_msg(port_in(published[i], want, nwant), "compose "
		    "publishes %ld, which %s does not listen on",
		    published[i], rel);
	free(rel);
	ydoc_free(&conf);
	ydoc_free(&y);
}
END_TEST

START_TEST(compose_upstreams_are_services)
{
	struct ydoc y = { 0 }, conf = { 0 };
	yaml_node_t *routes;
	const char *url, *host, *cmd;
	char *rel, path[128];
	long port, agent_ports[MAX_PORTS];
	size_t i, nagent;

	ydoc_load(&y, "docker/compose.yaml");
	rel = compose_config_source(&y);
	ck_assert_ptr_nonnull(rel);
	ydoc_load(&conf, rel);

	routes = ypath(&conf, "routes");
	ck_assert_uint_gt(yseq_len(routes), 0);
	for (i = 0; i < yseq_len(routes); i++) {
		yaml_node_t *up = ymap_get(&conf, yseq_at(&conf, routes, i),
		    "upstream");

		url = yscalar(ymap_get(&conf, up, "url"));
		ck_assert_ptr_nonnull(url);
		host = url_host(url, &port);
		ck_assert_ptr_nonnull(host);
		ck_assert_int_lt(snprintf(path, sizeof path, "services.%s",
		    host), (int)sizeof path);
		ck_assert_msg(ypath(&y, path) != NULL, "%s: upstream %s is "
		    "not a compose service", rel, url);
		if (strcmp(host, "backend") == 0) {
			/* The demo backend must listen where we send. */
			yaml_node_t *c = ypath(&y, "services.backend.command");
			char want[16];
			bool found = false;
			size_t k;

			snprintf(want, sizeof want, "%ld", port);
			for (k = 0; k < yseq_len(c); k++) {
				cmd = yscalar(yseq_at(&y, c, k));
				if (cmd != NULL && strcmp(cmd, want) == 0)
					found = true;
			}
			ck_assert_msg(found, "backend command does not listen "
			    "on port %ld", port);
		}
	}

	url = yscalar(ypath(&conf, "exporter.datadog_url"));
	ck_assert_ptr_nonnull(url);
	host = url_host(url, &port);
	ck_assert_ptr_nonnull(host);
	ck_assert_str_eq(host, "datadog-agent");
	ck_assert_int_eq(port, 8126);
	nagent = compose_published(&y, "datadog-agent", agent_ports,
	    MAX_PORTS);
	ck_assert_msg(port_in(8126, agent_ports, nagent),
	    "the Agent does not publish 8126");
	free(rel);
	ydoc_free(&conf);
	ydoc_free(&y);
}
END_TEST

START_TEST(compose_agent)
{
	struct ydoc y = { 0 };
	const char *image, *v;

	ydoc_load(&y, "docker/compose.yaml");
	image = yscalar(ypath(&y, "services.datadog-agent.image"));
	ck_assert_ptr_nonnull(image);
	ck_assert_msg(strstr(image, "datadog/agent:") != NULL,
	    "agent image is %s", image);
	v = compose_env(&y, "datadog-agent", "DD_API_KEY");
	ck_assert_msg(v != NULL && strcmp(v, "${DD_API_KEY}") == 0,
	    "DD_API_KEY must come from the environment, is %s",
	    v != NULL ? v : "(unset)");
	v = compose_env(&y, "datadog-agent", "DD_APM_ENABLED");
	ck_assert_msg(v != NULL && strcmp(v, "true") == 0,
	    "DD_APM_ENABLED is %s", v != NULL ? v : "(unset)");
	v = compose_env(&y, "datadog-agent", "DD_APM_NON_LOCAL_TRAFFIC");
	ck_assert_msg(v != NULL && strcmp(v, "true") == 0,
	    "DD_APM_NON_LOCAL_TRAFFIC is %s: the gateway container could "
	    "not send spans", v != NULL ? v : "(unset)");
	ydoc_free(&y);
}
END_TEST

/*
 * The image's built-in configuration and the compose one load with the
 * real loader (what `tracestitch -n` checks), and the image's health check
 * and EXPOSE match the built-in one's admin and listen ports.
 */
START_TEST(configs_load)
{
	static const char *files[] = { "docker/tracestitch.yaml",
	    "conf/tracestitch.yaml" };
	static char *const noenv[] = { NULL };
	const struct df_stage *st = &df.stages[df.n - 1];
	struct config *cfg;
	char *errors = NULL, port[16], want[32];
	size_t i, k;

	for (i = 0; i < TS_NITEMS(files); i++) {
		cfg = NULL;
		errors = NULL;
		ck_assert_msg(config_load(src_path(files[i]), noenv, &cfg,
		    &errors) == 0, "%s does not load:\n%s", files[i],
		    errors != NULL ? errors : "");
		ck_assert_ptr_nonnull(cfg);
		ck_assert_uint_gt(cfg->n_routes, 0);
		ck_assert_uint_gt(cfg->n_listen, 0);
		if (strcmp(files[i], "conf/tracestitch.yaml") == 0) {
			/* The image runs this one: HEALTHCHECK and EXPOSE. */
			ck_assert_msg(cfg->has_admin, "%s has no admin "
			    "listener for the HEALTHCHECK", files[i]);
			snprintf(want, sizeof want, ":%u/healthz",
			    (unsigned)cfg->admin_listen.port);
			ck_assert_msg(strstr(st->healthcheck, want) != NULL,
			    "HEALTHCHECK '%s' does not probe %s",
			    st->healthcheck, want);
			for (k = 0; k < cfg->n_listen; k++) {
				snprintf(port, sizeof port, "%u",
				    (unsigned)cfg->listen[k].port);
				ck_assert_msg(has_word(st->expose, port),
				    "EXPOSE '%s' lacks listen port %s",
				    st->expose, port);
			}
		}
		config_unref(cfg);
		free(errors);
	}
}
END_TEST

/* The parser itself: continuations, comments inside them, stages. */
START_TEST(dockerfile_parser)
{
	struct dockerfile d;
	const char *text =
	    "# comment\n"
	    "from debian:bookworm-slim as build\n"
	    "RUN apt-get install -y \\\n"
	    "    # a comment inside a continuation\n"
	    "    libfoo-dev \\\n"
	    "    check\n"
	    "FROM --platform=linux/amd64 debian:bookworm-slim\n"
	    "USER nobody\n"
	    "HEALTHCHECK CMD curl -f http://127.0.0.1:9901/healthz\n";

	df_parse(&d, text);
	ck_assert_uint_eq(d.n, 2);
	ck_assert_str_eq(d.stages[0].alias, "build");
	ck_assert_str_eq(d.stages[1].image, "debian:bookworm-slim");
	ck_assert_str_eq(d.stages[1].alias, "");
	ck_assert(has_word(d.stages[0].run, "libfoo-dev"));
	ck_assert(has_word(d.stages[0].run, "check"));
	ck_assert(!has_word(d.stages[0].run, "libfoo"));
	ck_assert(strstr(d.stages[0].run, "comment") == NULL);
	ck_assert_str_eq(d.stages[1].user, "nobody");
	ck_assert_ptr_nonnull(strstr(d.stages[1].healthcheck, "/healthz"));
	free(d.stages[0].run);
}
END_TEST

static Suite *
docker_suite(void)
{
	Suite *s = suite_create("docker");
	TCase *tc;

	tc = tcase_create("dockerfile");
	tcase_add_checked_fixture(tc, df_setup, df_teardown);
	tcase_add_test(tc, dockerfile_parser);
	tcase_add_test(tc, dockerfile_stages);
	tcase_add_test(tc, build_stage_installs_meson_dependencies);
	tcase_add_test(tc, build_stage_runs_the_makefile_commands);
	tcase_add_test(tc, build_stage_matches_makefile_deps);
	tcase_add_test(tc, runtime_stage);
	tcase_add_test(tc, copy_sources_exist);
	suite_add_tcase(s, tc);

	tc = tcase_create("compose");
	tcase_add_checked_fixture(tc, df_setup, df_teardown);
	tcase_add_test(tc, compose_services);
	tcase_add_test(tc, compose_ports_match_mounted_config);
	tcase_add_test(tc, compose_upstreams_are_services);
	tcase_add_test(tc, compose_agent);
	tcase_add_test(tc, configs_load);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(docker_suite)
