/*
 * exchange.c -- the shared vocabulary of the exchange door (exchange.h):
 * the standard reason phrases, so that every front-end writes the same
 * status line for a status.
 */
#include "exchange.h"

/* RFC 9110 15: the phrases of the statuses the gateway itself uses. */
const char *
exchange_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 417:
		return "Expectation Failed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

const char *
exchange_protocol_name(enum exchange_protocol p)
{
	return p == EXCHANGE_P_H2 ? "h2" : "http/1.1";
}
