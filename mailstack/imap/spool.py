"""
One temporary file for the APPEND literals of one command that do not fit in
its share of memory (imap/server.py), each read back as a file of its own.

A MULTIAPPEND (RFC 3502) may carry any number of messages: with a file per
literal, some tens of thousands of one-octet literals (a few hundred kB on
the wire) would hold as many descriptors, until the process runs out and
every session's opens fail. With one file per command, a command holds one.
"""

import io
import os
import tempfile


class LiteralSpool:
    """
    A temporary file that literals are written to one after another, each
    through the L{SpooledLiteral} that L{literal} starts. The file is closed
    when every literal of it is.
    """

    def __init__(self):
        self.file = tempfile.TemporaryFile(buffering=0)
        self.end = 0
        self._open = 0

    def literal(self):
        """The next literal, to be written to its end before another starts."""
        self._open += 1
        return SpooledLiteral(self, self.end)

    def release(self):
        """One of the literals was closed."""
        self._open -= 1
        if self._open == 0:
            self.file.close()


class SpooledLiteral(io.RawIOBase):
    """
    One literal of a L{LiteralSpool}: written once, in order, then read like
    a file of its own. Reads and writes name their offset (pread, pwrite), so
    literals of one spool read in different threads do not disturb each other.
    """

    def __init__(self, spool, start):
        super().__init__()
        self.spool = spool
        self.start = start
        self.size = 0
        self.position = 0

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def write(self, data):
        data = memoryview(data)
        fd = self.spool.file.fileno()
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], self.start + self.size + written)
        self.size += written
        self.spool.end = self.start + self.size
        return written

    def readinto(self, buffer):
        count = max(0, min(len(buffer), self.size - self.position))
        data = os.pread(self.spool.file.fileno(), count, self.start + self.position)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position %d" % (base + offset,))
        self.position = base + offset
        return self.position

    def tell(self):
        return self.position

    def close(self):
        if not self.closed:
            super().close()
            self.spool.release()
