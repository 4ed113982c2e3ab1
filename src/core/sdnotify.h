/*
 * sdnotify.h -- the service manager's readiness protocol (sd_notify(3)),
 * written here: one datagram of "VAR=value" lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET.
 */
#ifndef TS_SDNOTIFY_H
#define TS_SDNOTIFY_H

#include "common.h"

/*
 * Send state ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...",
 * lines separated by '\n') to $NOTIFY_SOCKET.  0 when sent or when the
 * variable is unset (not run by systemd: nothing to do); -1 with *cause
 * (caller frees) when it is set but unusable.
 */
int sdnotify(const char *state, char **cause);

#endif /* TS_SDNOTIFY_H */
