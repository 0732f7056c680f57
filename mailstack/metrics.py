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

With C{[server] workers = N} the first process's metrics are the whole
server's: each worker sends its samples (L{PrometheusMetrics.samples}, by
L{mailstack.workerlink}) and the scrape adds them to the first process's own,
without a per-process label (as prometheus_client's multiprocess mode sums
counters: a pid label would start new series at every restart). A worker
that ends takes its gauges with it (its sessions ended) but leaves its
counters' last values, so no counter goes down.
"""

import collections

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.samples import Sample
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
        self._delivered = {}  # destination -> its three labelled children
        self.queues = {}
        registry.register(_QueueCollector(self.queues))
        self.listeners = {}
        self._workers = {}  # a running worker -> {sample key: (family type, value)}
        self._retired = collections.Counter()  # sample key -> ended workers' counts

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
        # The labelled children, looked up once per destination (as commands').
        children = self._delivered.get(destination)
        if children is None:
            children = self._delivered[destination] = (
                self.deliveredMessages.labels(destination),
                self.deliveredRecipients.labels(destination),
                self.deliveredBytes.labels(destination))
        messages, recipientCount, octetCount = children
        messages.inc()
        recipientCount.inc(recipients)
        octetCount.inc(octets)

    def watchQueue(self, name, length):
        self.queues[name] = length

    # -- [server] workers ----------------------------------------------------

    def samples(self):
        """
        This process's samples as JSON-ready values, for the first process:
        C{[[family, type, sample name, [[label, value], ...], value], ...]}
        (no C{_created} samples: the first process's own are shown).
        """
        return [[family.name, family.type, sample.name, sorted(sample.labels.items()),
                 sample.value]
                for family in self.registry.collect() for sample in family.samples
                if not sample.name.endswith("_created")]

    def workerReported(self, worker, samples):
        """The latest L{samples} of the running C{worker} (any hashable)."""
        self._workers[worker] = {
            (family, name, tuple((str(k), str(v)) for k, v in labels)): (kind, float(value))
            for family, kind, name, labels, value in samples}

    def workerEnded(self, worker):
        """C{worker} exited: its counters' last values are kept, its gauges dropped."""
        for key, (kind, value) in self._workers.pop(worker, {}).items():
            if kind == "counter":
                self._retired[key] += value

    def collect(self):
        """
        The metric families of the whole server: this process's, each
        sample plus the workers' (running ones', and ended ones' counters).
        """
        extra = collections.Counter(self._retired)
        for reported in self._workers.values():
            for key, (_, value) in reported.items():
                extra[key] += value
        for family in self.registry.collect():
            if not extra:
                yield family
                continue
            samples, seen = [], set()
            for sample in family.samples:
                key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                seen.add(key)
                if key in extra:
                    sample = Sample(sample.name, sample.labels, sample.value + extra[key],
                                    sample.timestamp, sample.exemplar)
                samples.append(sample)
            samples.extend(Sample(name, dict(labels), value)
                           for (name0, name, labels), value in sorted(extra.items())
                           if name0 == family.name and (name0, name, labels) not in seen)
            family.samples = samples
            yield family


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

    @param metrics: a L{PrometheusMetrics} (its L{PrometheusMetrics.collect}:
        the workers' samples included).
    @param accept: the request's C{Accept} header (str), or L{None}.
    @return: C{(body bytes, content type str)}.
    """
    encoder, contentType = choose_encoder(accept or "")
    return encoder(metrics), contentType
