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
"""

from typing import Optional, Union

__all__ = ["LineFramer", "TOO_LONG"]


class _TooLong:
    """The type of L{TOO_LONG}."""

    def __repr__(self) -> str:
        return "TOO_LONG"


#: What L{LineFramer.nextLine} gives, once, for a line over the limit.
TOO_LONG = _TooLong()


class LineFramer:
    """
    Splits received octets into lines.

    @ivar maxLine: the longest line taken, with its line end (CRLF counts 2).
    """

    def __init__(self, maxLine: int) -> None:
        self.maxLine = maxLine
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
                return
            self._discarding = False
            data = data[end + 1:]
        self._buffer += data

    def pending(self) -> int:
        """How many octets were received and not yet taken."""
        return len(self._buffer) - self._position

    def nextLine(self, maxLine: Optional[int] = None) -> Union[bytes, _TooLong, None]:
        """
        Take the next line.

        @param maxLine: a limit for this line instead of L{maxLine} (SMTP takes
            longer SASL responses than commands).
        @return: the line without its line end; L{TOO_LONG} once for a line
            over the limit (its octets are dropped up to its LF, also those not
            received yet); or L{None} when no complete line is buffered.
        """
        limit = self.maxLine if maxLine is None else maxLine
        start = self._position
        end = self._buffer.find(b"\n", start)
        if end < 0:
            if len(self._buffer) - start >= limit:
                # No line end within the limit: report now, drop what comes.
                self._position = len(self._buffer)
                self._discarding = True
                return TOO_LONG
            return None
        self._position = end + 1
        if end + 1 - start > limit:
            return TOO_LONG
        if end > start and self._buffer[end - 1] == 0x0D:
            end -= 1
        return bytes(self._buffer[start:end])

    def peek(self) -> bytes:
        """The octets not yet taken (for readers with their own framing: DATA)."""
        return bytes(self._buffer[self._position:])

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
        return dropped
