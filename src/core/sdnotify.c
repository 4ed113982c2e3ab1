/*
 * sdnotify.c -- sd_notify(3) without libsystemd.
 *
 * The protocol (systemd's sd_notify(3) and "Notify socket" in
 * systemd.exec(5)): $NOTIFY_SOCKET names an AF_UNIX datagram socket,
 * either a file system path ("/run/systemd/notify") or, when it starts
 * with '@', a name in the abstract namespace (the '@' stands for the
 * leading NUL byte, and the name is not NUL-terminated: its length is the
 * address length).  Each notification is one datagram of newline
 * separated assignments such as "READY=1".  Type=notify units wait for
 * READY=1; RELOADING=1 ... READY=1 brackets a reload and STOPPING=1
 * announces the shutdown.  Other schemes ("vsock:") are refused.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sdnotify.h"
#include "util.h"

int
sdnotify(const char *state, char **cause)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t alen;
	size_t l;
	ssize_t n;
	int fd;

	if (name == NULL || *name == '\0')
		return 0;
	l = strlen(name);
	if ((name[0] != '/' && name[0] != '@') || l >= sizeof sun.sun_path) {
		xasprintf(cause, "NOTIFY_SOCKET \"%s\": expected an absolute "
		    "path or an @abstract name of at most %zu bytes", name,
		    sizeof sun.sun_path - 1);
		return -1;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, name, l);
	if (name[0] == '@') {
		sun.sun_path[0] = '\0';
		alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l);
	} else
		alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		    l + 1);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		xasprintf(cause, "NOTIFY_SOCKET: socket: %s", strerror(errno));
		return -1;
	}
	n = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, alen);
	if (n == -1)
		xasprintf(cause, "NOTIFY_SOCKET \"%s\": %s", name,
		    strerror(errno));
	close(fd);
	return n == -1 ? -1 : 0;
}
