/* server.c: not written yet. */
