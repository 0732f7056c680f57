"""
Sans-IO line framing for the line-based protocols (SMTP commands, POP3, IMAP
command lines): bytes in, lines out, no transport.

A line ends at LF; a CR just before it is removed, so CRLF and a bare LF
(netcat, telnet on some systems) both end a line. A line longer than the limit
(counting its line end) is reported once, as L{TOO_LONG}, and discarded whole up
to its LF, however it arrives: the rest of it is never taken as commands.
Framing costs linear time in the octets received: lines are taken by position
and the buffer is compacted once per L{LineFramer.feed}, not once per line
(cutting the buffer per line made a large pipelined write quadratic).

IMAP also needs the edges of an over-long line: its start (for the tag of the
BAD) and its end (a C{{n+}} literal announced there is dropped with it). A
framer made with C{reportEnds=True} keeps L{LineFramer.head} when it reports
L{TOO_LONG} and, once the line's LF has arrived, gives L{LONG_LINE_END} with
the line's last octets in L{LineFramer.tail}. Readers with their own framing
(an SMTP DATA body, an IMAP literal) take raw octets with C{peek}/C{consume}.
"""

from typing import Optional, Union

__all__ = ["LONG_LINE_END", "LineFramer", "TOO_LONG"]

HEAD_SIZE = 64  # octets of an over-long line kept in LineFramer.head
TAIL_SIZE = 32  # and of its end, in LineFramer.tail


class _TooLong:
    """The type of L{TOO_LONG}."""

    def __repr__(self) -> str:
        return "TOO_LONG"


#: What L{LineFramer.nextLine} gives, once, for a line over the limit.
TOO_LONG = _TooLong()


class _LongLineEnd:
    """The type of L{LONG_LINE_END}."""

    def __repr__(self) -> str:
        return "LONG_LINE_END"


#: With C{reportEnds}: the over-long line last reported has ended.
LONG_LINE_END = _LongLineEnd()


class LineFramer:
    """
    Splits received octets into lines.

    @ivar maxLine: the longest line taken, with its line end (CRLF counts 2).
    @ivar head: the first octets of the over-long line last reported.
    @ivar tail: with C{reportEnds}, its last octets (no line end), once ended.
    @ivar endPending: with C{reportEnds}, L{LONG_LINE_END} is due.
    """

    def __init__(self, maxLine: int, reportEnds: bool = False) -> None:
        self.maxLine = maxLine
        self.reportEnds = reportEnds
        self.head = b""
        self.tail = b""
        self.endPending = False
        self._buffer = bytearray()
        self._position = 0
        self._discarding = False  # inside an over-long line already reported

    def feed(self, data: bytes) -> None:
        """Add received octets."""
        if self._position:
            del self._buffer[:self._position]
            self._position = 0
        if self._discarding:
            # Only the end of the over-long line matters: keep nothing before it.
            end = data.find(b"\n")
            if end < 0:
                if self.reportEnds:
                    # One octet more than kept: it may be the CR of the line end.
                    self.tail = (self.tail + data)[-TAIL_SIZE - 1:]
                return
            self._discarding = False
            if self.reportEnds:
                self.tail = _strip((self.tail + data[:end])[-TAIL_SIZE - 1:])
                self.endPending = True
            data = data[end + 1:]
        self._buffer += data

    def pending(self) -> int:
        """How many octets were received and not yet taken."""
        return len(self._buffer) - self._position

    def nextLine(self, maxLine: Optional[int] = None) -> Union[bytes, _TooLong, _LongLineEnd, None]:
        """
        Take the next line.

        @param maxLine: a limit for this line instead of L{maxLine} (SMTP takes
            longer SASL responses than commands).
        @return: the line without its line end; L{TOO_LONG} once for a line
            over the limit (its octets are dropped up to its LF, also those not
            received yet); with C{reportEnds}, L{LONG_LINE_END} once that line
            has ended; or L{None} when no complete line is buffered.
        """
        if self.endPending:
            self.endPending = False
            return LONG_LINE_END
        limit = self.maxLine if maxLine is None else maxLine
        start = self._position
        end = self._buffer.find(b"\n", start)
        if end < 0:
            if len(self._buffer) - start >= limit:
                # No line end within the limit: report now, drop what comes.
                self.head = bytes(self._buffer[start:start + HEAD_SIZE])
                self.tail = bytes(self._buffer[-TAIL_SIZE - 1:])
                self._position = len(self._buffer)
                self._discarding = True
                return TOO_LONG
            return None
        self._position = end + 1
        if end + 1 - start > limit:
            self.head = bytes(self._buffer[start:start + HEAD_SIZE])
            if self.reportEnds:
                self.tail = _strip(bytes(self._buffer[max(start, end - TAIL_SIZE - 1):end]))
                self.endPending = True
            return TOO_LONG
        if end > start and self._buffer[end - 1] == 0x0D:
            end -= 1
        return bytes(self._buffer[start:end])

    def peek(self, size: Optional[int] = None) -> bytes:
        """
        The octets not yet taken, or at most C{size} of them (for readers with
        their own framing: an SMTP DATA body, an IMAP literal).
        """
        end = len(self._buffer) if size is None else self._position + size
        return bytes(self._buffer[self._position:end])

    def consume(self, count: int) -> None:
        """Mark C{count} octets of L{peek} as taken."""
        self._position = min(self._position + count, len(self._buffer))

    def drop(self) -> int:
        """
        Forget every octet not yet taken (after STARTTLS/STLS: what was
        pipelined in plaintext must not run after the handshake).

        @return: how many octets were dropped.
        """
        dropped = self.pending()
        self._buffer = bytearray()
        self._position = 0
        self._discarding = False
        self.endPending = False
        return dropped


def _strip(line: bytes) -> bytes:
    """C{line} without a CR at its end, and at most L{TAIL_SIZE} octets of it."""
    if line.endswith(b"\r"):
        line = line[:-1]
    return line[-TAIL_SIZE:]
