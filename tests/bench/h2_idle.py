#!/usr/bin/python3
# h2_idle.py HOST PORT N PATH -- hold N idle HTTP/2 (h2c, prior knowledge)
# connections open, for run.sh's memory per idle h2 connection.
#
# Each connection sends the preface and SETTINGS (python3-h2 does the
# framing), one GET of PATH, and reads until that stream ended and the
# server acknowledged our SETTINGS: a connection a browser has used once
# and keeps for later, with whatever the server kept after its first
# exchange.  Then it prints "ready N" on stdout and waits until stdin
# closes (or a line arrives), closes every connection and exits 0.  Exits
# 1, saying why on stderr, when a connection fails or a stream does not
# end in 200 within the deadline.
import resource
import select
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events

DEADLINE_S = 30


def open_one(host, port, path, deadline):
    s = socket.create_connection((host, port), timeout=DEADLINE_S)
    c = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding=None))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":scheme", "http"),
                       (":authority", "%s:%d" % (host, port)),
                       (":path", path)], end_stream=True)
    s.sendall(c.data_to_send())
    status, ended, acked = None, False, False
    while not (ended and acked):
        if time.monotonic() > deadline:
            raise RuntimeError("no answer before the deadline")
        data = s.recv(65536)
        if not data:
            raise RuntimeError("the server closed the connection")
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers).get(b":status")
            elif isinstance(ev, h2.events.StreamEnded):
                ended = True
            elif isinstance(ev, h2.events.SettingsAcknowledged):
                acked = True
            elif isinstance(ev, h2.events.DataReceived):
                c.acknowledge_received_data(ev.flow_controlled_length,
                                            ev.stream_id)
            elif isinstance(ev, (h2.events.ConnectionTerminated,
                                 h2.events.StreamReset)):
                raise RuntimeError("refused: %r" % ev)
        out = c.data_to_send()
        if out:
            s.sendall(out)
    if status != b"200":
        raise RuntimeError("status %r" % status)
    return s


def main(argv):
    if len(argv) != 5:
        print("usage: h2_idle.py HOST PORT N PATH", file=sys.stderr)
        return 2
    host, port, n, path = argv[1], int(argv[2]), int(argv[3]), argv[4]
    # One descriptor per connection: the soft limit (often 1024) up to
    # the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (
            hard if hard == resource.RLIM_INFINITY else min(hard, n + 64),
            hard))
    deadline = time.monotonic() + DEADLINE_S
    socks = []
    try:
        for i in range(n):
            socks.append(open_one(host, port, path, deadline))
    except (OSError, RuntimeError) as e:
        print("h2_idle: connection %d of %d: %s" % (len(socks) + 1, n, e),
              file=sys.stderr)
        return 1
    print("ready %d" % len(socks), flush=True)
    # Idle until told to go (stdin closes or a line arrives).
    select.select([sys.stdin], [], [])
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
