"""
C{/status/}: the server at a glance: its listeners (ports as bound, TLS
modes), the console's own, sessions per protocol (open now, since start,
refused by a limit) from the L{mailstack.sessions.SessionCounter}, uptime,
and which store and user backend it runs on. Everyone signed in sees it; where
the users are (a file path or a database) only admins.
"""

import dataclasses

from mailstack.web.page import Answer, Page


@dataclasses.dataclass(frozen=True)
class ListenerRow:
    name: str
    protocol: str
    address: str
    tls: str
    plaintextAuth: bool


def boundAddress(port, endpoint):
    """C{host:port} a listener is bound to, else its endpoint string."""
    host = getattr(port, "getHost", None)
    if host is None:
        return endpoint
    address = host()
    if getattr(address, "port", None) is None:
        return str(getattr(address, "name", endpoint))
    where = address.host if ":" not in address.host else "[%s]" % (address.host,)
    return "%s:%d" % (where, address.port)


def formatUptime(seconds):
    """C{3 d 4 h 5 min} from seconds (whole minutes, seconds under one)."""
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return "%d s" % (seconds,)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [("%d d" % days) if days else "", ("%d h" % hours) if hours else "",
             ("%d min" % minutes) if minutes else ""]
    return " ".join(p for p in parts if p)


class StatusPage(Page):
    """C{/status/}."""

    title = "Server status"

    def get(self, request, principal):
        context = self.context
        config = context.config
        rows = []
        for service in context.listeners:
            listener = service.listener
            rows.append(ListenerRow(listener.name, listener.protocol,
                                    boundAddress(service.port, listener.endpoint),
                                    listener.tls, listener.allow_plaintext_auth))
        snapshot = context.counter.snapshot() if context.counter is not None else {}
        protocols = sorted({row.protocol for row in rows} | set(snapshot.get("total", {})))
        sessions = [(protocol, snapshot.get("open", {}).get(protocol, 0),
                     snapshot.get("total", {}).get(protocol, 0),
                     snapshot.get("refused", {}).get(protocol, 0)) for protocol in protocols]
        uptime = None
        if context.started is not None:
            uptime = formatUptime(context.reactor.seconds() - context.started)
        web = config.web
        return Answer("status.html", listeners=rows, sessions=sessions, uptime=uptime,
                      hostname=config.server.hostname, domains=config.server.domains,
                      store=config.storage.backend, users=config.users.backend,
                      usersLocation=(str(config.users.path) if config.users.dsn is None
                                     else "the database of users.dsn"),
                      web=web, webTLS="TLS" if web is not None and web.tls else "plain HTTP")
