"""
How the session core tells a recording transport who logged in, so the live
transcript of a session (L{mailstack.transcripthub}) can be shown to that
user. Like L{mailstack.protocol.secrets}, it is a transport interface: the
recording wrapper (L{mailstack.transcript.TranscriptProtocol}) provides it,
and without one L{loggedIn} does nothing.
"""

from zope.interface import Interface

__all__ = ["ILoginRecorder", "loggedIn"]


class ILoginRecorder(Interface):
    """Offered to the protocol by a transport that records the session."""

    def loggedIn(address: str) -> None:
        """A login as C{address} (the avatar's normalised address) succeeded."""


def loggedIn(transport: object, address: str) -> None:
    """L{ILoginRecorder.loggedIn} on C{transport}, if it records."""
    recorder = ILoginRecorder(transport, None)
    if recorder is not None:
        recorder.loggedIn(address)
