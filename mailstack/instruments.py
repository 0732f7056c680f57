"""
The hooks the server's code calls to be measured: L{IMetrics} (the whole
server: deliveries, queues) and L{IListenerMetrics} (one listener:
connections, sessions, commands, logins, TLS handshakes, errors).

The engines, the session core and the connection limits call these and
nothing else, so they never import a metrics library; L{NO_METRICS}, the
default, counts nothing. L{mailstack.metrics.PrometheusMetrics} is the
implementation the server runs.
"""

from zope.interface import Interface, implementer

__all__ = ["IMetrics", "IListenerMetrics", "NO_METRICS", "NO_LISTENER_METRICS",
           "REFUSED_PER_IP", "REFUSED_MAX_CONNECTIONS", "STARTTLS", "IMPLICIT",
           "INTERNAL_ERROR", "STORAGE_ERROR", "LOCAL", "RELAYED", "CAPTURED"]

# Why a connection was refused (L{IListenerMetrics.connectionRefused}).
REFUSED_PER_IP = "per_ip"
REFUSED_MAX_CONNECTIONS = "max_connections"

# How TLS started (L{IListenerMetrics.tlsHandshake}).
STARTTLS = "starttls"
IMPLICIT = "implicit"

# Kinds of error (L{IListenerMetrics.error}).
INTERNAL_ERROR = "internal"
STORAGE_ERROR = "storage"

# Where accepted mail went (L{IMetrics.delivered}).
LOCAL = "local"
RELAYED = "relayed"
CAPTURED = "captured"


class IListenerMetrics(Interface):
    """
    What one listener reports. Every method is called in the reactor
    thread and returns nothing.
    """

    def connectionAccepted():
        """A client connected and was let in (a session begins)."""

    def connectionRefused(reason):
        """
        A client was turned away by a limit: C{reason} is L{REFUSED_PER_IP}
        or L{REFUSED_MAX_CONNECTIONS}.
        """

    def sessionOpened():
        """A session started (counted open until L{sessionClosed})."""

    def sessionClosed():
        """A session opened by L{sessionOpened} ended."""

    def command(name):
        """
        A command line was taken: C{name} is the command's verb (upper case,
        C{"UID FETCH"} for IMAP's UID forms) when the engine knows it, or
        L{None} for anything else (counted as C{other}, so what clients type
        cannot grow the set of names).
        """

    def authSucceeded(mechanism):
        """
        A login succeeded. C{mechanism}: the SASL mechanism (C{PLAIN},
        C{LOGIN}, C{CRAM-MD5}) or the protocol's own command in lower case
        (C{user} for POP3 USER/PASS, C{apop}, C{login} for IMAP LOGIN).
        """

    def authFailed(mechanism):
        """A login was refused (wrong credentials); C{mechanism} as above."""

    def tlsHandshake(mode, succeeded):
        """
        A TLS handshake ended: C{mode} is L{STARTTLS} or L{IMPLICIT};
        C{succeeded} false when it failed with a TLS error.
        """

    def error(kind):
        """
        Something failed that is not the client's doing: C{kind} is
        L{INTERNAL_ERROR} (a bug: a handler raised) or L{STORAGE_ERROR} (the
        store could not do what was asked).
        """


class IMetrics(Interface):
    """
    What the whole server reports, and the listeners' own reporters.
    """

    def forListener(name, protocol):
        """
        @return: the L{IListenerMetrics} of the listener C{name} serving
            C{protocol}; the same one each time for the same name.
        """

    def delivered(destination, recipients, octets):
        """
        A message was accepted and kept: C{destination} is L{LOCAL} (written
        to local mailboxes), L{RELAYED} (queued for the smarthost) or
        L{CAPTURED} (kept by the lab's capture mode); C{recipients} how many
        of its recipients went there, C{octets} its size as stored.
        """

    def watchQueue(name, length):
        """
        Report the queue C{name} (C{relay}): C{length()} returns how many
        messages it holds, asked whenever the metrics are read.
        """


@implementer(IListenerMetrics)
class _NoListenerMetrics:
    """Counts nothing."""

    def connectionAccepted(self):
        pass

    def connectionRefused(self, reason):
        pass

    def sessionOpened(self):
        pass

    def sessionClosed(self):
        pass

    def command(self, name):
        pass

    def authSucceeded(self, mechanism):
        pass

    def authFailed(self, mechanism):
        pass

    def tlsHandshake(self, mode, succeeded):
        pass

    def error(self, kind):
        pass


NO_LISTENER_METRICS = _NoListenerMetrics()


@implementer(IMetrics)
class _NoMetrics:
    """Counts nothing: the default wherever no metrics are given."""

    def forListener(self, name, protocol):
        return NO_LISTENER_METRICS

    def delivered(self, destination, recipients, octets):
        pass

    def watchQueue(self, name, length):
        pass


NO_METRICS = _NoMetrics()
