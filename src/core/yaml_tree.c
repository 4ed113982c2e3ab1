/*
 * yaml_tree.c -- libyaml events to a small positioned node tree.
 *
 * The event loop keeps an explicit stack of open maps and sequences.
 * Every finished node is attached to the container on top of the stack:
 * appended to a sequence, or alternately taken as key and value of a map.
 * Positions come from the events' start marks, which libyaml counts from
 * 0; we add 1 so that errors read like a compiler's (h2o reports YAML
 * errors the same way).  Anchors, aliases and duplicate keys are errors
 * that do not stop parsing, so one run reports all of them; a syntax error
 * stops it (libyaml cannot resume after one).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "util.h"
#include "yaml_tree.h"

#define YAML_TREE_MAX_DEPTH 64

struct yaml_tree_frame {
	struct yaml_tree_node *node;
	struct yaml_tree_node *key;	/* map: key waiting for its value */
};

struct yaml_tree_builder {
	struct yaml_tree *tree;
	struct yaml_tree_frame stack[YAML_TREE_MAX_DEPTH];
	size_t depth;
	char *errors;
	size_t errlen;
	unsigned nerrors;
};

static void yaml_tree_node_free(struct yaml_tree_node *);

/* Append one error line "file:line:col: path: message". */
static void TS_PRINTFLIKE(5, 6)
yaml_tree_error(struct yaml_tree_builder *b, unsigned line, unsigned col,
    const char *path, const char *fmt, ...)
{
	va_list ap;
	char *msg, *l;
	size_t n;

	if (b->nerrors++ >= YAML_TREE_MAX_ERRORS)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		abort();
	va_end(ap);
	xasprintf(&l, "%s:%u:%u: %s: %s\n", b->tree->file, line, col, path,
	    msg);
	free(msg);
	n = strlen(l);
	b->errors = xrealloc(b->errors, b->errlen + n + 1);
	memcpy(b->errors + b->errlen, l, n + 1);
	b->errlen += n;
	free(l);
}

/* A new node at the event's start mark. */
static struct yaml_tree_node *
yaml_tree_node_new(struct yaml_tree_builder *b, enum yaml_tree_type type,
    const yaml_event_t *ev)
{
	struct yaml_tree_node *n;

	n = xcalloc(1, sizeof *n);
	n->type = type;
	n->file = b->tree->file;
	n->line = (unsigned)ev->start_mark.line + 1;
	n->col = (unsigned)ev->start_mark.column + 1;
	return n;
}

/* Free a node and its children. */
static void
yaml_tree_node_free(struct yaml_tree_node *n)
{
	size_t i;

	if (n == NULL)
		return;
	switch (n->type) {
	case YAML_TREE_SCALAR:
		free(n->str);
		break;
	case YAML_TREE_MAP:
		for (i = 0; i < n->n; i++) {
			yaml_tree_node_free(n->pairs[i].key);
			yaml_tree_node_free(n->pairs[i].value);
		}
		free(n->pairs);
		break;
	case YAML_TREE_SEQ:
		for (i = 0; i < n->n; i++)
			yaml_tree_node_free(n->items[i]);
		free(n->items);
		break;
	}
	free(n);
}

/*
 * The dotted path of the place being filled on top of the stack, with
 * last (a new key) appended when not NULL: "server.listen", "routes[0]".
 */
static char *
yaml_tree_path(const struct yaml_tree_builder *b, const char *last)
{
	char *path = xstrdup(""), *next;
	size_t i;

	for (i = 0; i < b->depth; i++) {
		const struct yaml_tree_frame *f = &b->stack[i];
		bool top = i + 1 == b->depth;

		if (f->node->type == YAML_TREE_SEQ) {
			xasprintf(&next, "%s[%zu]", path, f->node->n);
		} else if (top && last != NULL) {
			xasprintf(&next, "%s%s%s", path, *path ? "." : "",
			    last);
		} else if (f->key != NULL) {
			xasprintf(&next, "%s%s%s", path, *path ? "." : "",
			    f->key->str);
		} else
			continue;
		free(path);
		path = next;
	}
	if (*path == '\0') {
		free(path);
		path = xstrdup("yaml");
	}
	return path;
}

/* Attach a finished node to the container on top of the stack. */
static void
yaml_tree_attach(struct yaml_tree_builder *b, struct yaml_tree_node *n)
{
	struct yaml_tree_frame *f;
	struct yaml_tree_node *c, *k;
	size_t i;
	char *path;

	if (b->depth == 0) {
		if (b->tree->root == NULL)
			b->tree->root = n;
		else
			yaml_tree_node_free(n);
		return;
	}
	f = &b->stack[b->depth - 1];
	c = f->node;
	if (c->type == YAML_TREE_SEQ) {
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 4;
			c->items = xrealloc(c->items, c->cap * sizeof *c->items);
		}
		c->items[c->n++] = n;
		return;
	}

	if (f->key == NULL) {
		if (n->type != YAML_TREE_SCALAR) {
			path = yaml_tree_path(b, NULL);
			yaml_tree_error(b, n->line, n->col, path,
			    "map keys must be plain strings, got %s",
			    n->type == YAML_TREE_MAP ? "a map" : "a list");
			free(path);
			/* Keep the structure: stand in an empty key. */
			k = xcalloc(1, sizeof *k);
			k->type = YAML_TREE_SCALAR;
			k->file = n->file;
			k->line = n->line;
			k->col = n->col;
			k->str = xstrdup("");
			yaml_tree_node_free(n);
			n = k;
		}
		for (i = 0; i < c->n; i++) {
			if (strcmp(c->pairs[i].key->str, n->str) != 0)
				continue;
			path = yaml_tree_path(b, n->str);
			yaml_tree_error(b, n->line, n->col, path,
			    "duplicate key (first given at line %u)",
			    c->pairs[i].key->line);
			free(path);
			break;
		}
		f->key = n;
		return;
	}
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4;
		c->pairs = xrealloc(c->pairs, c->cap * sizeof *c->pairs);
	}
	c->pairs[c->n].key = f->key;
	c->pairs[c->n].value = n;
	c->n++;
	f->key = NULL;
}

/* Report an anchor on a node; the node itself is kept. */
static void
yaml_tree_check_anchor(struct yaml_tree_builder *b, const yaml_event_t *ev,
    const yaml_char_t *anchor)
{
	char *path;

	if (anchor == NULL)
		return;
	path = yaml_tree_path(b, NULL);
	yaml_tree_error(b, (unsigned)ev->start_mark.line + 1,
	    (unsigned)ev->start_mark.column + 1, path,
	    "anchors are not supported (&%s)", (const char *)anchor);
	free(path);
}

/* Handle one event; returns 1 at the end of the stream. */
static int
yaml_tree_event(struct yaml_tree_builder *b, const yaml_event_t *ev,
    bool *seen_doc)
{
	struct yaml_tree_node *n;
	char *path;

	switch (ev->type) {
	case YAML_STREAM_END_EVENT:
		return 1;
	case YAML_DOCUMENT_START_EVENT:
		if (*seen_doc) {
			yaml_tree_error(b, (unsigned)ev->start_mark.line + 1,
			    (unsigned)ev->start_mark.column + 1, "yaml",
			    "only one document is supported");
			return 1;
		}
		*seen_doc = true;
		break;
	case YAML_SCALAR_EVENT:
		yaml_tree_check_anchor(b, ev, ev->data.scalar.anchor);
		n = yaml_tree_node_new(b, YAML_TREE_SCALAR, ev);
		n->len = ev->data.scalar.length;
		n->str = xstrndup((const char *)ev->data.scalar.value, n->len);
		n->quoted = !ev->data.scalar.plain_implicit;
		if (strlen(n->str) != n->len) {
			path = yaml_tree_path(b, NULL);
			yaml_tree_error(b, n->line, n->col, path,
			    "NUL characters are not allowed");
			free(path);
			n->len = strlen(n->str);
		}
		yaml_tree_attach(b, n);
		break;
	case YAML_ALIAS_EVENT:
		path = yaml_tree_path(b, NULL);
		yaml_tree_error(b, (unsigned)ev->start_mark.line + 1,
		    (unsigned)ev->start_mark.column + 1, path,
		    "aliases are not supported (*%s)",
		    (const char *)ev->data.alias.anchor);
		free(path);
		n = yaml_tree_node_new(b, YAML_TREE_SCALAR, ev);
		n->str = xstrdup("");
		yaml_tree_attach(b, n);
		break;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		yaml_tree_check_anchor(b, ev,
		    ev->type == YAML_SEQUENCE_START_EVENT ?
		    ev->data.sequence_start.anchor :
		    ev->data.mapping_start.anchor);
		n = yaml_tree_node_new(b, ev->type == YAML_SEQUENCE_START_EVENT ?
		    YAML_TREE_SEQ : YAML_TREE_MAP, ev);
		if (b->depth == YAML_TREE_MAX_DEPTH) {
			yaml_tree_error(b, n->line, n->col, "yaml",
			    "nesting deeper than %d levels",
			    YAML_TREE_MAX_DEPTH);
			yaml_tree_node_free(n);
			return 1;
		}
		b->stack[b->depth].node = n;
		b->stack[b->depth].key = NULL;
		b->depth++;
		break;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (b->depth == 0)
			break;
		b->depth--;
		n = b->stack[b->depth].node;
		yaml_tree_node_free(b->stack[b->depth].key);
		yaml_tree_attach(b, n);
		break;
	default:
		break;
	}
	return 0;
}

/* Parse a document into a tree (see yaml_tree.h). */
struct yaml_tree *
yaml_tree_parse(const char *name, const char *text, size_t len, char **cause)
{
	struct yaml_tree_builder b;
	yaml_parser_t parser;
	yaml_event_t ev;
	bool seen_doc = false;
	int done = 0;

	memset(&b, 0, sizeof b);
	b.tree = xcalloc(1, sizeof *b.tree);
	b.tree->file = xstrdup(name);
	*cause = NULL;

	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			const yaml_mark_t *m = parser.error ==
			    YAML_READER_ERROR ? &parser.mark :
			    &parser.problem_mark;

			yaml_tree_error(&b, (unsigned)m->line + 1,
			    (unsigned)m->column + 1, "yaml", "%s",
			    parser.problem != NULL ? parser.problem :
			    "syntax error");
			break;
		}
		done = yaml_tree_event(&b, &ev, &seen_doc);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);

	/* Unwind containers left open by an error. */
	while (b.depth > 0) {
		b.depth--;
		yaml_tree_node_free(b.stack[b.depth].key);
		yaml_tree_node_free(b.stack[b.depth].node);
	}
	if (b.nerrors > 0) {
		yaml_tree_free(b.tree);
		*cause = b.errors;
		return NULL;
	}
	return b.tree;
}

/* Free a tree (see yaml_tree.h). */
void
yaml_tree_free(struct yaml_tree *t)
{
	if (t == NULL)
		return;
	yaml_tree_node_free(t->root);
	free(t->file);
	free(t);
}

/* True for a plain null scalar. */
bool
yaml_tree_is_null(const struct yaml_tree_node *n)
{
	if (n == NULL || n->type != YAML_TREE_SCALAR || n->quoted)
		return false;
	return n->str[0] == '\0' || strcmp(n->str, "~") == 0 ||
	    strcmp(n->str, "null") == 0 || strcmp(n->str, "Null") == 0 ||
	    strcmp(n->str, "NULL") == 0;
}

/* Look up a key in a map. */
const struct yaml_tree_node *
yaml_tree_map_find(const struct yaml_tree_node *n, const char *key)
{
	size_t i;

	if (n == NULL || n->type != YAML_TREE_MAP)
		return NULL;
	for (i = 0; i < n->n; i++) {
		if (strcmp(n->pairs[i].key->str, key) == 0)
			return n->pairs[i].value;
	}
	return NULL;
}

/* Describe a node for "got ..." in error messages. */
const char *
yaml_tree_describe(const struct yaml_tree_node *n, char *buf, size_t size)
{
	if (n == NULL || yaml_tree_is_null(n))
		return "null";
	if (n->type == YAML_TREE_MAP)
		return "a map";
	if (n->type == YAML_TREE_SEQ)
		return "a list";
	if (n->len > 60)
		snprintf(buf, size, "\"%.57s...\"", n->str);
	else
		snprintf(buf, size, "\"%s\"", n->str);
	return buf;
}
