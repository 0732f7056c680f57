"""
A raw, blocking IMAP client for the differential harness: it sends command
lines exactly as written and returns the server's responses as bytes, literals
included, so that two servers' answers can be compared octet for octet.
Blocking: run it in a thread (L{twisted.internet.threads.deferToThread}).
"""

import re
import socket

_LITERAL_AT_END = re.compile(rb"\{(\d+)\}\r\n$")


class ProtocolError(Exception):
    """The server's answer was not what IMAP allows here (or it closed)."""


class RawClient:
    """
    One IMAP connection. L{command} sends one command (tags are C{t1},
    C{t2}... per connection, the same for both servers) and returns every
    response line up to and including the tagged one.
    """

    def __init__(self, port, host="127.0.0.1", timeout=20):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.counter = 0
        self.greeting = self._response()

    def _line(self):
        line = self.file.readline(1 << 20)
        if not line:
            raise ProtocolError("connection closed")
        return line

    def _response(self):
        """One whole response: a line, and the literals and lines it announces."""
        data = self._line()
        while True:
            m = _LITERAL_AT_END.search(data)
            if not m:
                return data
            data += self.file.read(int(m.group(1)))
            data += self._line()

    def command(self, parts):
        """
        Send a command and read its answer.

        @param parts: the command's text after the tag (bytes), or a list of
            bytes in which a C{(literal,)} 1-tuple is sent as a synchronizing
            literal (the client waits for the server's C{+}), and a
            C{(literal, b"~")} 2-tuple as a literal8 (RFC 3516).
        @return: C{(tag, responses)}: the list of response lines (bytes, CRLF
            included), the tagged one last.
        """
        self.counter += 1
        tag = b"t%d" % (self.counter,)
        if isinstance(parts, bytes):
            parts = [parts]
        out = [tag + b" "]
        responses = []
        for part in parts:
            if isinstance(part, tuple):
                literal = part[0]
                out.append(b"%s{%d}\r\n" % (part[1] if len(part) > 1 else b"", len(literal)))
                self.sock.sendall(b"".join(out))
                out = []
                while True:
                    response = self._response()
                    if response.startswith(b"+"):
                        break
                    responses.append(response)
                    if response.startswith(tag + b" "):
                        return tag, responses
                out.append(literal)
            else:
                out.append(part)
        out.append(b"\r\n")
        self.sock.sendall(b"".join(out))
        while True:
            response = self._response()
            responses.append(response)
            if response.startswith(tag + b" "):
                return tag, responses
            if response.startswith(b"* BYE") and not parts[0].upper().startswith(b"LOGOUT"):
                raise ProtocolError("server said BYE: %r" % (response,))

    def close(self):
        try:
            self.sock.close()
        finally:
            self.file.close()
