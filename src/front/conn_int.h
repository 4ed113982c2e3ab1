/*
 * conn_int.h -- test-only entry points of conn.c (not for other modules).
 *
 * Every allocation conn.c makes for a request (the input buffer, the
 * index of a head's fields, the copy kept while its body comes) goes
 * through one function, so a test can make a chosen one fail and see the
 * connection answer 503 instead of aborting or closing without a word.
 */
#ifndef TS_CONN_INT_H
#define TS_CONN_INT_H

#include <stddef.h>

/* what: "ibuf", "fields" or "kept fields"; returns malloc()'s result. */
typedef void *conn_alloc_fn(const char *what, size_t size);

/* Use fn for the request-path allocations; NULL: malloc(). */
void conn_set_alloc(conn_alloc_fn *fn);

#endif /* TS_CONN_INT_H */
