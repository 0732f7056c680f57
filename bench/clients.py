"""
Load generators: minimal blocking IMAP and POP3 clients over raw sockets (so
the client's own parsing costs little and the same for both servers) and a
threaded SMTP load on smtplib.
"""

import re
import smtplib
import socket
import statistics
import threading
import time

TIMEOUT = 120
_LITERAL = re.compile(rb"\{(\d+)\+?\}$")


class ProtocolError(Exception):
    pass


class _Conn:
    def __init__(self, port, host="127.0.0.1", timeout=TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def _more(self):
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ProtocolError("connection closed; got %r" % (bytes(self.buf[-200:]),))
        self.buf += chunk

    def readLine(self):
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 2]
                return line
            self._more()

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class IMAP(_Conn):
    """A blocking IMAP client that reads whole responses, literals included."""

    def __init__(self, port, **kw):
        super().__init__(port, **kw)
        self.counter = 0
        greeting = self.readLine()
        if not greeting.startswith(b"* OK"):
            raise ProtocolError("IMAP greeting: %r" % (greeting,))

    def _tag(self):
        self.counter += 1
        return b"b%04d" % (self.counter,)

    def _response(self, tag):
        """Read up to and including the tagged line; return everything read."""
        pos = 0
        prefix = tag + b" "
        while True:
            end = self.buf.find(b"\r\n", pos)
            if end < 0:
                self._more()
                continue
            m = _LITERAL.search(self.buf, pos, end)
            if m is not None:
                need = end + 2 + int(m.group(1))
                while len(self.buf) < need:
                    self._more()
                pos = need
                continue
            if self.buf.startswith(prefix, pos):
                data = bytes(self.buf[:end + 2])
                line = bytes(self.buf[pos:end])
                del self.buf[:end + 2]
                if not line.startswith(prefix + b"OK"):
                    raise ProtocolError("IMAP: %r" % (line[:300],))
                return data
            pos = end + 2

    def command(self, text):
        tag = self._tag()
        self.send(tag + b" " + text + b"\r\n")
        return self._response(tag)

    def login(self, user, password):
        return self.command(b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))

    def append(self, mailbox, message):
        """APPEND with a synchronizing literal; the tagged response."""
        tag = self._tag()
        self.send(tag + b" APPEND " + mailbox + b" {%d}\r\n" % (len(message),))
        line = self.readLine()
        if not line.startswith(b"+"):
            raise ProtocolError("IMAP APPEND: %r" % (line[:300],))
        self.send(message + b"\r\n")
        return self._response(tag)

    def idle(self):
        tag = self._tag()
        self.send(tag + b" IDLE\r\n")
        while True:
            line = self.readLine()
            if line.startswith(b"+"):
                return tag
            if line.startswith(tag):
                raise ProtocolError("IDLE refused: %r" % (line,))

    def done(self, tag):
        self.send(b"DONE\r\n")
        return self._response(tag)

    def logout(self):
        try:
            self.command(b"LOGOUT")
        except (ProtocolError, OSError):
            pass
        self.close()


class POP3(_Conn):
    def __init__(self, port, **kw):
        super().__init__(port, **kw)
        greeting = self.readLine()
        if not greeting.startswith(b"+OK"):
            raise ProtocolError("POP3 greeting: %r" % (greeting,))

    def command(self, text):
        self.send(text + b"\r\n")
        line = self.readLine()
        if not line.startswith(b"+OK"):
            raise ProtocolError("POP3 %r: %r" % (text.split()[0], line))
        return line

    def multi(self, text):
        """A multi-line command; returns the data after the +OK line, dot-stuffed."""
        self.command(text)
        while True:
            if self.buf.startswith(b".\r\n"):
                end = 0
            else:
                end = self.buf.find(b"\r\n.\r\n")
                if end >= 0:
                    end += 2
            if end >= 0:
                data = bytes(self.buf[:end])
                del self.buf[:end + 3]
                return data
            self._more()

    def login(self, user, password):
        self.command(b"USER " + user.encode())
        return self.command(b"PASS " + password.encode())

    def quit(self):
        try:
            self.command(b"QUIT")
        except (ProtocolError, OSError):
            pass
        self.close()


def timed(function, *args):
    t0 = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - t0, result


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, int(-(-p * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values):
    return statistics.median(values)


def pop3Busy(port, clients, seconds, user, password):
    """
    C{clients} threads poll one maildrop at once for C{seconds}, each in a loop:
    connect, USER/PASS, STAT, RETR of every message, QUIT (a class whose
    phones and laptops all check one account).

    @return: dict with sessions completed, elapsed seconds, rate (sessions/s)
        and errors (the -ERR replies or failures, e.g. [IN-USE]).
    """
    done = []
    errors = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    state = {"deadline": None}

    def worker():
        ready.wait()
        while time.perf_counter() < state["deadline"]:
            try:
                p = POP3(port)
                p.login(user, password)
                count = int(p.command(b"STAT").split()[1])
                for n in range(1, count + 1):
                    p.multi(b"RETR %d" % (n,))
                p.command(b"QUIT")
                p.close()
                with lock:
                    done.append(1)
            except Exception as e:  # noqa: reported below
                with lock:
                    errors.append(repr(e))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    state["deadline"] = start + seconds
    ready.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"sessions": len(done), "elapsed": elapsed,
            "rate": len(done) / elapsed if elapsed else 0.0, "errors": errors}


_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


def imapBusy(port, clients, seconds, user, password, message, firstUIDs):
    """
    C{clients} threads share one IMAP account for C{seconds}, each in a loop:
    connect, LOGIN, SELECT INBOX, FETCH 1:* (FLAGS RFC822.SIZE), UID STORE
    +FLAGS.SILENT (\\Deleted) of one message of its own, EXPUNGE, APPEND of
    C{message}, LOGOUT (a class whose phones and laptops all work on one
    account). Client i first deletes UID C{firstUIDs[i]}, then each time the
    message its previous session appended (APPENDUID), so the mailbox keeps
    its size.

    @return: dict with sessions completed, elapsed seconds, rate (sessions/s)
        and errors (the NO/BAD replies or failures).
    """
    done = []
    errors = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    state = {"deadline": None}

    def worker(mine):
        ready.wait()
        while time.perf_counter() < state["deadline"]:
            c = None
            try:
                c = IMAP(port)
                c.login(user, password)
                c.command(b"SELECT INBOX")
                c.command(b"FETCH 1:* (FLAGS RFC822.SIZE)")
                c.command(b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % (mine,))
                c.command(b"EXPUNGE")
                reply = c.append(b"INBOX", message)
                found = _APPENDUID.search(reply)
                if found is None:
                    raise ProtocolError("APPEND: no APPENDUID in %r" % (reply[-200:],))
                mine = int(found.group(1))
                c.command(b"LOGOUT")
                c.close()
                with lock:
                    done.append(1)
            except Exception as e:  # noqa: reported below
                if c is not None:
                    c.close()
                with lock:
                    errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(firstUIDs[i],), daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    state["deadline"] = start + seconds
    ready.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"sessions": len(done), "elapsed": elapsed,
            "rate": len(done) / elapsed if elapsed else 0.0, "errors": errors}


def smtpLoad(port, clients, seconds, message, sender, recipient):
    """
    C{clients} threads, each with one SMTP session, deliver C{message}
    back to back (MAIL, RCPT, DATA per message) for C{seconds}.

    @return: dict with messages, elapsed seconds, rate (messages/s), latencies
        (seconds per transaction, MAIL FROM to the 250 after DATA), errors.
    """
    latencies = []
    errors = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    state = {"deadline": None}

    def worker():
        mine = []
        try:
            s = smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT)
            s.ehlo("loadgen.example.net")
        except Exception as e:  # noqa: reported below
            errors.append(repr(e))
            ready.wait()
            return
        ready.wait()
        try:
            while time.perf_counter() < state["deadline"]:
                t0 = time.perf_counter()
                refused = s.sendmail(sender, [recipient], message)
                mine.append(time.perf_counter() - t0)
                if refused:
                    errors.append(repr(refused))
                    break
            s.quit()
        except Exception as e:  # noqa: reported below
            errors.append(repr(e))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    state["deadline"] = start + seconds    # read by the workers after the barrier
    ready.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"messages": len(latencies), "elapsed": elapsed,
            "rate": len(latencies) / elapsed if elapsed else 0.0,
            "latencies": latencies, "errors": errors}
