/*
 * fake_dns.c -- a DNS server for the integration tests, on libevent's
 * evdns server side (no DNS codec of our own): it answers A queries from
 * a map file it reads again for every query, so a test changes what a
 * name resolves to by rewriting the file.
 *
 * Map file lines: "NAME IPV4 [IPV4...] [ttl=SECONDS]" answers those
 * addresses with that TTL (default 3600: a test that wants the gateway
 * to look again soon says so);
 * "NAME SERVFAIL" answers SERVFAIL; a name not in the file is NXDOMAIN.
 * AAAA queries of a known name get an empty answer (NOERROR), so that
 * a resolver asking both families uses the A records.
 *
 * Usage: fake_dns -f MAPFILE [-p PORT]; prints
 * "fake dns listening on udp 127.0.0.1:PORT" once it listens.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>

#define FD_MAX_ADDRS 16

static const char *fd_map;

/* Look name up in the map: 1 with addrs, 0 SERVFAIL, -1 unknown. */
static int
fd_lookup(const char *name, struct in_addr *addrs, int *n, int *ttl)
{
	char line[512], *save, *tok;
	FILE *fp;
	int rc = -1;

	*n = 0;
	*ttl = 3600;
	if ((fp = fopen(fd_map, "r")) == NULL)
		return -1;
	while (rc == -1 && fgets(line, sizeof line, fp) != NULL) {
		tok = strtok_r(line, " \t\r\n", &save);
		if (tok == NULL || strcasecmp(tok, name) != 0)
			continue;
		rc = 1;
		while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
			if (strcmp(tok, "SERVFAIL") == 0) {
				rc = 0;
				break;
			}
			if (strncmp(tok, "ttl=", 4) == 0) {
				*ttl = atoi(tok + 4);
				continue;
			}
			if (*n < FD_MAX_ADDRS &&
			    inet_pton(AF_INET, tok, &addrs[*n]) == 1)
				(*n)++;
		}
	}
	fclose(fp);
	return rc;
}

static void
fd_request_cb(struct evdns_server_request *req, void *arg)
{
	struct in_addr addrs[FD_MAX_ADDRS];
	int i, n, ttl, rc, err = 0;

	(void)arg;
	for (i = 0; i < req->nquestions; i++) {
		const struct evdns_server_question *q = req->questions[i];

		rc = fd_lookup(q->name, addrs, &n, &ttl);
		if (rc < 0)
			err = DNS_ERR_NOTEXIST;
		else if (rc == 0)
			err = DNS_ERR_SERVERFAILED;
		else if (q->type == EVDNS_TYPE_A && n > 0)
			evdns_server_request_add_a_reply(req, q->name, n,
			    addrs, ttl);
		printf("query %s type %d: %s\n", q->name, q->type,
		    rc < 0 ? "nxdomain" : rc == 0 ? "servfail" : "answer");
		fflush(stdout);
	}
	evdns_server_request_respond(req, err);
}

static void
fd_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	struct event_base *base;
	struct evdns_server_port *port;
	struct event *ev_term;
	long p = 0;
	int c, fd;

	while ((c = getopt(argc, argv, "f:p:")) != -1) {
		switch (c) {
		case 'f':
			fd_map = optarg;
			break;
		case 'p':
			p = strtol(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: fake_dns -f MAPFILE [-p PORT]\n");
			return 2;
		}
	}
	if (fd_map == NULL || p < 0 || p > 65535) {
		fprintf(stderr, "usage: fake_dns -f MAPFILE [-p PORT]\n");
		return 2;
	}
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)p);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) == -1) {
		perror("fake_dns: bind");
		return 1;
	}
	evutil_make_socket_nonblocking(fd);
	base = event_base_new();
	port = evdns_add_server_port_with_base(base, fd, 0, fd_request_cb,
	    NULL);
	ev_term = evsignal_new(base, SIGTERM, fd_signal_cb, base);
	event_add(ev_term, NULL);
	printf("fake dns listening on udp 127.0.0.1:%u\n",
	    (unsigned)ntohs(sin.sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	evdns_close_server_port(port);
	event_free(ev_term);
	event_base_free(base);
	close(fd);
	return 0;
}
