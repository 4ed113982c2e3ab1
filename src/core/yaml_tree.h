/*
 * yaml_tree.h -- stage 1 of configuration loading: a YAML document read
 * through libyaml into a small tree of maps, sequences and scalars, each
 * node carrying the file name, line and column (1-based) it came from.
 *
 * The tree is deliberately plain: no anchors or aliases (rejected), no
 * duplicate map keys (rejected), map keys are scalars.  A scalar remembers
 * whether it was written plain or not (quoted, literal, folded or tagged),
 * so "null" in quotes stays a string while a plain null, ~ or empty value
 * is null.
 *
 * Ownership: yaml_tree_parse returns a tree the caller frees with
 * yaml_tree_free; every node and string inside (including the file name
 * the nodes point to) is owned by the tree.  Nothing is borrowed from the
 * input text after yaml_tree_parse returns.
 */
#ifndef TS_YAML_TREE_H
#define TS_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

enum yaml_tree_type {
	YAML_TREE_SCALAR = 0,
	YAML_TREE_MAP,
	YAML_TREE_SEQ,
};

struct yaml_tree_pair;

struct yaml_tree_node {
	enum yaml_tree_type type;
	const char *file;		/* owned by the tree */
	unsigned line;			/* 1-based */
	unsigned col;			/* 1-based */

	/* YAML_TREE_SCALAR */
	char *str;			/* NUL-terminated, never NULL */
	size_t len;
	bool quoted;			/* not a plain, untagged scalar */

	/* YAML_TREE_MAP: pairs in file order; keys are scalars */
	struct yaml_tree_pair *pairs;
	/* YAML_TREE_SEQ: items in file order */
	struct yaml_tree_node **items;
	size_t n;			/* number of pairs or items */
	size_t cap;
};

struct yaml_tree_pair {
	struct yaml_tree_node *key;
	struct yaml_tree_node *value;
};

struct yaml_tree {
	char *file;
	struct yaml_tree_node *root;	/* NULL for an empty document */
};

/* Most errors yaml_tree_parse reports before it gives up. */
#define YAML_TREE_MAX_ERRORS 50

/*
 * Parse len bytes of text; name is used in node positions and errors.
 * Returns the tree, or NULL with *cause set to every error, one per
 * newline-terminated line "name:line:col: path: message" (syntax errors
 * use "yaml" as the path); the caller frees *cause.
 */
struct yaml_tree *yaml_tree_parse(const char *name, const char *text,
    size_t len, char **cause) TS_MUSTCHECK;
/* Free a tree and everything in it; NULL does nothing. */
void yaml_tree_free(struct yaml_tree *);

/* True for a plain scalar "", "~", "null", "Null" or "NULL". */
bool yaml_tree_is_null(const struct yaml_tree_node *);
/* The value of key in a map (borrowed), or NULL. */
const struct yaml_tree_node *yaml_tree_map_find(const struct yaml_tree_node *,
    const char *key);
/* "a map", "a list", "null" or the quoted scalar, for error messages. */
const char *yaml_tree_describe(const struct yaml_tree_node *, char *buf,
    size_t size);

#endif /* TS_YAML_TREE_H */
