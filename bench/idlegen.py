"""
The load generator of the idle-sessions benchmark (bench/scale.py), run as a
process of its own so the server under test is the only process holding its
sessions' sockets (ulimit -n bounds each process: 20000 here):

    python -m bench.idlegen PORT USER PASSWORD SESSIONS [INFLIGHT]

One selectors loop opens SESSIONS IMAP sessions to 127.0.0.1:PORT, at most
INFLIGHT (default 64) between connect and IDLE at a time, each doing LOGIN,
SELECT INBOX, IDLE. It prints one JSON line when they are all idling (or
when no more could be opened: the error is in it), then waits for the
untagged EXISTS each session is sent when a message is delivered, and
prints a second JSON line with when (time.monotonic(), a clock shared by
the processes of one machine) the first and the last session saw it. It
ends when every session has seen it or after TIMEOUT seconds without one.
"""

import errno
import json
import selectors
import socket
import sys
import time

TIMEOUT = 60.0


class Session:
    """One IMAP session's socket and how far it has come."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.step = "greeting"
        self.newsAt = None


def main(argv):
    port, user, password, count = int(argv[0]), argv[1], argv[2], int(argv[3])
    inflight = int(argv[4]) if len(argv) > 4 else 64
    login = b"a LOGIN %s %s\r\n" % (user.encode(), password.encode())
    selector = selectors.DefaultSelector()
    sessions = []
    opening = 0
    idling = 0
    error = None
    t0 = time.monotonic()

    def open_():
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect_ex(("127.0.0.1", port))
        except OSError:
            sock.close()
            raise
        session = Session(sock)
        sessions.append(session)
        selector.register(sock, selectors.EVENT_READ, session)

    def advance(session, data):
        nonlocal opening, idling
        session.buffer += data
        if session.step == "idle":
            if b" EXISTS\r\n" in session.buffer and session.newsAt is None:
                session.newsAt = time.monotonic()
            session.buffer = session.buffer[-64:]
            return
        while b"\r\n" in session.buffer:
            line, _, session.buffer = session.buffer.partition(b"\r\n")
            if session.step == "greeting":
                session.sock.sendall(login)
                session.step = "login"
            elif session.step == "login" and line.startswith(b"a "):
                if not line.startswith(b"a OK"):
                    raise RuntimeError("LOGIN: %r" % (line,))
                session.sock.sendall(b"b SELECT INBOX\r\n")
                session.step = "select"
            elif session.step == "select" and line.startswith(b"b "):
                if not line.startswith(b"b OK"):
                    raise RuntimeError("SELECT: %r" % (line,))
                session.sock.sendall(b"c IDLE\r\n")
                session.step = "idling"
            elif session.step == "idling" and line.startswith(b"+"):
                session.step = "idle"
                opening -= 1
                idling += 1
                return

    # Phase 1: open every session, INFLIGHT at a time.
    while idling < count and error is None:
        while opening < inflight and len(sessions) < count:
            try:
                open_()
            except OSError as e:
                error = "session %d: %s" % (len(sessions) + 1, e)
                break
            opening += 1
        for key, _ in selector.select(timeout=10.0):
            session = key.data
            try:
                data = session.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                error = "session %d: %s" % (sessions.index(session) + 1, e)
                break
            if not data:
                error = "session %d closed by the server at %s" % (
                    sessions.index(session) + 1, session.step)
                break
            try:
                advance(session, data)
            except (OSError, RuntimeError) as e:
                error = str(e)
                break
        if time.monotonic() - t0 > 30 * 60:
            error = "not all sessions were idling after 30 minutes"
    print(json.dumps({"idling": idling, "seconds": time.monotonic() - t0, "error": error}),
          flush=True)

    # Phase 2: wait for the delivery's news.
    last = time.monotonic()
    seen = 0
    while seen < idling and time.monotonic() - last < TIMEOUT:
        for key, _ in selector.select(timeout=1.0):
            session = key.data
            try:
                data = session.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                if e.errno not in (errno.ECONNRESET,):
                    raise
                data = b""
            if not data:
                selector.unregister(session.sock)
                continue
            before = session.newsAt
            advance(session, data)
            if before is None and session.newsAt is not None:
                seen += 1
                last = session.newsAt
    times = [s.newsAt for s in sessions if s.newsAt is not None]
    print(json.dumps({"seen": len(times), "first": min(times) if times else None,
                      "last": max(times) if times else None}), flush=True)
    for session in sessions:
        session.sock.close()


if __name__ == "__main__":
    main(sys.argv[1:])
