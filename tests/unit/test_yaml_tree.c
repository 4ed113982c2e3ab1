/*
 * test_yaml_tree.c -- the positioned YAML node tree: node types and
 * 1-based positions, plain versus quoted scalars and null, block and
 * flow styles, and the errors (syntax, anchors, aliases, duplicate keys,
 * several documents) with their exact text.
 */
#include <stdlib.h>
#include <string.h>

#include "ts_test.h"
#include "yaml_tree.h"

/* Parse text that must be valid. */
static struct yaml_tree *
parse_ok(const char *text)
{
	struct yaml_tree *t;
	char *cause;

	t = yaml_tree_parse("t.yaml", text, strlen(text), &cause);
	if (t == NULL)
		ck_abort_msg("unexpected errors:\n%s", cause);
	ck_assert_ptr_null(cause);
	return t;
}

START_TEST(test_positions)
{
	static const char text[] =
	    "a: 1\n"
	    "b:\n"
	    "  - x\n"
	    "  - {k: v}\n"
	    "c: [1, 2]\n";
	struct yaml_tree *t = parse_ok(text);
	const struct yaml_tree_node *r = t->root, *b, *n;

	ck_assert_int_eq(r->type, YAML_TREE_MAP);
	ck_assert_uint_eq(r->n, 3);
	ck_assert_str_eq(r->file, "t.yaml");
	ck_assert_uint_eq(r->line, 1);
	ck_assert_uint_eq(r->col, 1);
	ck_assert_str_eq(r->pairs[0].key->str, "a");
	n = r->pairs[0].value;
	ck_assert_int_eq(n->type, YAML_TREE_SCALAR);
	ck_assert_str_eq(n->str, "1");
	ck_assert_uint_eq(n->len, 1);
	ck_assert_uint_eq(n->line, 1);
	ck_assert_uint_eq(n->col, 4);

	b = yaml_tree_map_find(r, "b");
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(b->type, YAML_TREE_SEQ);
	ck_assert_uint_eq(b->n, 2);
	ck_assert_uint_eq(b->items[0]->line, 3);
	ck_assert_uint_eq(b->items[0]->col, 5);
	n = b->items[1];
	ck_assert_int_eq(n->type, YAML_TREE_MAP);
	ck_assert_uint_eq(n->line, 4);
	ck_assert_uint_eq(n->col, 5);
	ck_assert_str_eq(yaml_tree_map_find(n, "k")->str, "v");
	ck_assert_uint_eq(n->pairs[0].key->col, 6);

	n = yaml_tree_map_find(r, "c");
	ck_assert_int_eq(n->type, YAML_TREE_SEQ);
	ck_assert_uint_eq(n->items[1]->line, 5);
	ck_assert_uint_eq(n->items[1]->col, 8);
	ck_assert_ptr_null(yaml_tree_map_find(r, "zz"));
	ck_assert_ptr_null(yaml_tree_map_find(b, "x"));
	yaml_tree_free(t);
}
END_TEST

static const struct {
	const char *text;
	bool null;
	bool quoted;
	const char *str;
} scalars[] = {
	{ "v: null\n", true, false, "null" },
	{ "v: ~\n", true, false, "~" },
	{ "v:\n", true, false, "" },
	{ "v: NULL\n", true, false, "NULL" },
	{ "v: \"null\"\n", false, true, "null" },
	{ "v: 'null'\n", false, true, "null" },
	{ "v: \"\"\n", false, true, "" },
	{ "v: nul\n", false, false, "nul" },
	{ "v: !!str null\n", false, true, "null" },
	{ "v: |\n  line1\n  line2\n", false, true, "line1\nline2\n" },
	{ "v: >\n  folded\n  text\n", false, true, "folded text\n" },
	{ "v: \"a\\tb\"\n", false, true, "a\tb" },
};

START_TEST(test_scalars)
{
	struct yaml_tree *t = parse_ok(scalars[_i].text);
	const struct yaml_tree_node *v = yaml_tree_map_find(t->root, "v");

	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(v->type, YAML_TREE_SCALAR);
	ck_assert_int_eq(yaml_tree_is_null(v), scalars[_i].null);
	ck_assert_int_eq(v->quoted, scalars[_i].quoted);
	ck_assert_str_eq(v->str, scalars[_i].str);
	ck_assert_uint_eq(v->len, strlen(scalars[_i].str));
	yaml_tree_free(t);
}
END_TEST

START_TEST(test_empty)
{
	struct yaml_tree *t = parse_ok("");

	ck_assert_ptr_null(t->root);
	yaml_tree_free(t);
	t = parse_ok("# only a comment\n");
	ck_assert_ptr_null(t->root);
	yaml_tree_free(t);
	yaml_tree_free(NULL);
	ck_assert(!yaml_tree_is_null(NULL));
}
END_TEST

START_TEST(test_describe)
{
	struct yaml_tree *t = parse_ok("a: {}\nb: []\nc: ~\nd: x\n");
	char buf[80];

	ck_assert_str_eq(yaml_tree_describe(yaml_tree_map_find(t->root, "a"),
	    buf, sizeof buf), "a map");
	ck_assert_str_eq(yaml_tree_describe(yaml_tree_map_find(t->root, "b"),
	    buf, sizeof buf), "a list");
	ck_assert_str_eq(yaml_tree_describe(yaml_tree_map_find(t->root, "c"),
	    buf, sizeof buf), "null");
	ck_assert_str_eq(yaml_tree_describe(yaml_tree_map_find(t->root, "d"),
	    buf, sizeof buf), "\"x\"");
	yaml_tree_free(t);
}
END_TEST

static const struct {
	const char *text;
	const char *errors;
} bad[] = {
	{ "a: [1, 2\nb: 3\n",
	  "t.yaml:2:2: yaml: did not find expected ',' or ']'\n" },
	{ "a: b: c\n",
	  "t.yaml:1:5: yaml: mapping values are not allowed in this context\n" },
	{ "a: 1\n\tb: 2\n",
	  "t.yaml:2:1: yaml: found a tab character that violates "
	  "indentation\n" },
	{ "a: \"open\n",
	  "t.yaml:2:1: yaml: found unexpected end of stream\n" },
	{ "a: &x 1\nb: *x\n",
	  "t.yaml:1:4: a: anchors are not supported (&x)\n"
	  "t.yaml:2:4: b: aliases are not supported (*x)\n" },
	{ "s:\n  l:\n    - k: 1\n      k: 2\n  l2: 1\n  l2: 2\n",
	  "t.yaml:4:7: s.l[0].k: duplicate key (first given at line 3)\n"
	  "t.yaml:6:3: s.l2: duplicate key (first given at line 5)\n" },
	{ "? [a]\n: 1\n",
	  "t.yaml:1:3: yaml: map keys must be plain strings, got a list\n" },
	{ "a: 1\n---\nb: 2\n",
	  "t.yaml:2:1: yaml: only one document is supported\n" },
	{ "a: \"x\\0y\"\n",
	  "t.yaml:1:4: a: NUL characters are not allowed\n" },
};

START_TEST(test_errors)
{
	struct yaml_tree *t;
	char *cause;

	t = yaml_tree_parse("t.yaml", bad[_i].text, strlen(bad[_i].text),
	    &cause);
	ck_assert_ptr_null(t);
	ck_assert_ptr_nonnull(cause);
	ck_assert_str_eq(cause, bad[_i].errors);
	free(cause);
}
END_TEST

START_TEST(test_deep_nesting)
{
	char text[300], *cause;
	struct yaml_tree *t;
	size_t i;

	for (i = 0; i < 100; i++)
		text[i] = '[';
	text[i] = '\0';
	t = yaml_tree_parse("t.yaml", text, strlen(text), &cause);
	ck_assert_ptr_null(t);
	ck_assert_str_eq(cause, "t.yaml:1:65: yaml: nesting deeper than 64 "
	    "levels\n");
	free(cause);
}
END_TEST

static Suite *
yaml_tree_suite(void)
{
	Suite *s = suite_create("yaml_tree");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, test_positions);
	tcase_add_loop_test(tc, test_scalars, 0, (int)TS_NITEMS(scalars));
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_describe);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_errors, 0, (int)TS_NITEMS(bad));
	tcase_add_test(tc, test_deep_nesting);
	suite_add_tcase(s, tc);
	return s;
}

TS_TEST_MAIN(yaml_tree_suite)
