"""
SMTP replies as values: policy returns a L{Reply}, the protocol renders it.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence


@dataclasses.dataclass(frozen=True)
class Reply:
    """
    One SMTP reply: a 3-digit code, an RFC 3463 enhanced status code (or L{None}
    for greetings, 334 challenges and 354), and one or more text lines.
    """
    code: int
    status: str | None
    text: str | Sequence[str]  # a list of str for a multi-line reply

    def lines(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)

    def toBytes(self) -> bytes:
        lines = self.lines() or [""]
        out = []
        for i, line in enumerate(lines):
            separator = " " if i == len(lines) - 1 else "-"
            prefix = "%03d%s" % (self.code, separator)
            # RFC 2034: the enhanced code starts every line of the reply.
            if self.status:
                prefix += self.status + " "
            out.append(prefix + line + "\r\n")
        return "".join(out).encode("utf-8", "replace")

    @property
    def isPositive(self) -> bool:
        return self.code < 400
