"""
The server's metrics on prometheus_client: L{PrometheusMetrics} implements
the hooks of L{mailstack.instruments} with counters and gauges in a
C{CollectorRegistry} of its own (never the library's global one, so two
servers in one process, and tests, keep separate numbers), read by the web
console's C{/metrics} (L{exposition}).

Every metric is named C{mailstack_...}; docs/operations.md lists them with
their labels. Label values come from the configuration (listener names,
protocols) and from fixed sets (commands the engines know, SASL mechanisms,
the constants of L{mailstack.instruments}), never from what a client sends,
so the number of series stays bounded.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from zope.interface import implementer

from mailstack.instruments import INTERNAL_ERROR, STORAGE_ERROR, IListenerMetrics, IMetrics

__all__ = ["PrometheusMetrics", "exposition"]

LISTENER = ("listener", "protocol")

# The label value of a command the engine did not name (IListenerMetrics.command).
OTHER_COMMAND = "other"


@implementer(IMetrics)
class PrometheusMetrics:
    """
    One server's metrics.

    @ivar registry: the C{CollectorRegistry} holding them, this server's only.
    """

    def __init__(self):
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.connectionsAccepted = Counter(
            "mailstack_connections_accepted", "Connections let in (sessions started).",
            LISTENER, registry=registry)
        self.connectionsRefused = Counter(
            "mailstack_connections_refused",
            "Connections turned away by a limit (reason: per_ip or max_connections).",
            LISTENER + ("reason",), registry=registry)
        self.sessionsOpen = Gauge(
            "mailstack_sessions_open", "Sessions open now.", LISTENER, registry=registry)
        self.commands = Counter(
            "mailstack_commands", "Command lines taken, by verb (other: not a known command).",
            LISTENER + ("command",), registry=registry)
        self.logins = Counter(
            "mailstack_auth_attempts",
            "Logins checked, by mechanism and result (success or failure).",
            LISTENER + ("mechanism", "result"), registry=registry)
        self.handshakes = Counter(
            "mailstack_tls_handshakes",
            "TLS handshakes ended, by mode (starttls, implicit) and result "
            "(success or failure).",
            LISTENER + ("mode", "result"), registry=registry)
        self.errors = Counter(
            "mailstack_errors",
            "Failures that are not the client's doing (kind: internal, storage).",
            LISTENER + ("kind",), registry=registry)
        self.deliveredMessages = Counter(
            "mailstack_delivered_messages",
            "Messages accepted and kept, by destination (local, relayed, captured).",
            ("destination",), registry=registry)
        self.deliveredRecipients = Counter(
            "mailstack_delivered_recipients",
            "Recipients of the messages accepted, by destination.",
            ("destination",), registry=registry)
        self.deliveredBytes = Counter(
            "mailstack_delivered_bytes", "Octets of the messages accepted, by destination.",
            ("destination",), registry=registry)
        self.queues = {}
        registry.register(_QueueCollector(self.queues))
        self.listeners = {}

    def forListener(self, name, protocol):
        """
        The reporter of one listener; its series start at zero, so a scrape
        shows every listener before it is used.
        """
        listener = self.listeners.get(name)
        if listener is None:
            listener = self.listeners[name] = _ListenerMetrics(self, name, protocol)
        return listener

    def delivered(self, destination, recipients, octets):
        self.deliveredMessages.labels(destination).inc()
        self.deliveredRecipients.labels(destination).inc(recipients)
        self.deliveredBytes.labels(destination).inc(octets)

    def watchQueue(self, name, length):
        self.queues[name] = length


@implementer(IListenerMetrics)
class _ListenerMetrics:
    """One listener's view of L{PrometheusMetrics}: its two labels bound."""

    def __init__(self, metrics, name, protocol):
        self.metrics = metrics
        self.labels = (name, protocol)
        self.accepted = metrics.connectionsAccepted.labels(*self.labels)
        self.open = metrics.sessionsOpen.labels(*self.labels)
        self._commands = {}
        for kind in (INTERNAL_ERROR, STORAGE_ERROR):
            metrics.errors.labels(*self.labels, kind)

    def connectionAccepted(self):
        self.accepted.inc()

    def connectionRefused(self, reason):
        self.metrics.connectionsRefused.labels(*self.labels, reason).inc()

    def sessionOpened(self):
        self.open.inc()

    def sessionClosed(self):
        self.open.dec()

    def command(self, name):
        # The labelled child, looked up once per command name: labels() cost
        # more than the count itself on the SMTP hot path (bench/README).
        child = self._commands.get(name)
        if child is None:
            child = self._commands[name] = self.metrics.commands.labels(
                *self.labels, name or OTHER_COMMAND)
        child.inc()

    def authSucceeded(self, mechanism):
        self.metrics.logins.labels(*self.labels, mechanism, "success").inc()

    def authFailed(self, mechanism):
        self.metrics.logins.labels(*self.labels, mechanism, "failure").inc()

    def tlsHandshake(self, mode, succeeded):
        self.metrics.handshakes.labels(
            *self.labels, mode, "success" if succeeded else "failure").inc()

    def error(self, kind):
        self.metrics.errors.labels(*self.labels, kind).inc()


class _QueueCollector:
    """
    C{mailstack_queue_messages{queue}}: each watched queue's length, asked
    at scrape time (a gauge kept up to date by hand would drift from the
    queue's own count).
    """

    def __init__(self, queues):
        self.queues = queues

    def describe(self):
        return [GaugeMetricFamily("mailstack_queue_messages", "Messages waiting in a queue.",
                                  labels=("queue",))]

    def collect(self):
        family = GaugeMetricFamily("mailstack_queue_messages", "Messages waiting in a queue.",
                                   labels=("queue",))
        for name, length in sorted(self.queues.items()):
            family.add_metric((name,), length())
        yield family


def exposition(metrics, accept=None):
    """
    The metrics as a scrape answer: the Prometheus text format (or
    OpenMetrics when the C{Accept} header asks for it).

    @param metrics: a L{PrometheusMetrics}.
    @param accept: the request's C{Accept} header (str), or L{None}.
    @return: C{(body bytes, content type str)}.
    """
    encoder, contentType = choose_encoder(accept or "")
    return encoder(metrics.registry), contentType
