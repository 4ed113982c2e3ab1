/* tls.c: not written yet. */
