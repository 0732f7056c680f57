"""
How a protocol engine tells the transcript which client input is secret.

The engine's state machine knows what it reads: a password after C{PASS}, the
arguments of an IMAP C{LOGIN} (literals included), every line of a SASL
exchange, a line it could not take as a command before login. So the engine
marks; the transcript does not parse the protocol a second time (and so cannot
disagree with the engine about what a line was).

Marks are about the input the engine has I{taken}: a transport wrapper that
records the session (L{mailstack.transcript.TranscriptProtocol}) provides
L{ISecretInput} and holds each client line until the engine has taken it, so
a mark always reaches the line it is about, pipelined or not. The engine says
how much it has taken by providing L{IPendingInput}.

Engines call the module functions (L{secretLine}, L{secretFrom},
L{secretEnd}) with their transport: without a recording wrapper they do
nothing.
"""

from zope.interface import Interface

__all__ = ["ISecretInput", "IPendingInput", "secretLine", "secretFrom", "secretEnd"]


class ISecretInput(Interface):
    """
    Offered to the protocol by a transport that records client input. "The
    last line taken" is the client line holding the last octet the protocol
    has taken (L{IPendingInput}); C{keep} counts octets from its start.
    """

    def secretLine(keep: int = 0) -> None:
        """The last line taken is secret after its first C{keep} octets."""

    def secretFrom(keep: int = 0) -> None:
        """
        Input is secret from octet C{keep} of the last line taken on, until
        L{secretEnd}: everything the protocol takes meanwhile (SASL lines, a
        literal) is secret too.
        """

    def secretEnd() -> None:
        """Input from the start of the last line taken on is not secret."""


class IPendingInput(Interface):
    """
    A protocol that buffers input: it says how much it has not taken yet.
    """

    def pendingInput() -> int:
        """
        @return: how many octets received (passed to C{dataReceived}) the
            protocol has not taken yet (lines not read, a literal not read).
        """


def secretLine(transport: object, keep: int = 0) -> None:
    """L{ISecretInput.secretLine} on C{transport}, if it records."""
    recorder = ISecretInput(transport, None)
    if recorder is not None:
        recorder.secretLine(keep)


def secretFrom(transport: object, keep: int = 0) -> None:
    """L{ISecretInput.secretFrom} on C{transport}, if it records."""
    recorder = ISecretInput(transport, None)
    if recorder is not None:
        recorder.secretFrom(keep)


def secretEnd(transport: object) -> None:
    """L{ISecretInput.secretEnd} on C{transport}, if it records."""
    recorder = ISecretInput(transport, None)
    if recorder is not None:
        recorder.secretEnd()
