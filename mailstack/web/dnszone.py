"""
The DNS records that let mail clients find the server by themselves, for
C{mailstack dns}: RFC 6186 SRV records (C{_imap}, C{_imaps}, C{_pop3},
C{_pop3s}, C{_submission}) and RFC 8314's C{_submissions} for
implicit-TLS submission, one set per local domain, in zone file syntax.

Each advertised listener (L{mailstack.web.autoconfig.advertisedServices})
gets a record; a service with none gets the RFC 2782 "not available here"
record (target C{.}), so clients do not guess. Priorities make clients prefer
implicit TLS (0) to STARTTLS (10) to plaintext (20), as RFC 8314 section 5.1
asks; RFC 6186 section 3.4 compares priorities across C{_imap} and
C{_imaps} (and C{_pop3}/C{_pop3s}, C{_submission}/C{_submissions}).
"""

from mailstack.web.autoconfig import advertisedServices

__all__ = ["zoneLines", "TTL"]

TTL = 3600
_PRIORITY = {"SSL": 0, "STARTTLS": 10, "plain": 20}
# (SRV service label, advertised kind, implicit TLS?) in RFC 6186's order,
# the implicit-TLS one of each pair first.
_SERVICES = (
    ("_submissions", "smtp", True),
    ("_submission", "smtp", False),
    ("_imaps", "imap", True),
    ("_imap", "imap", False),
    ("_pop3s", "pop3", True),
    ("_pop3", "pop3", False),
)


def _fqdn(name):
    return name if name.endswith(".") else name + "."


def zoneLines(config, source=None):
    """
    The zone file lines for every domain of C{server.domains}.

    @param config: the L{mailstack.config.Config}.
    @param source: what to name as the records' origin in the first comment
        (the config file); C{config.path} by default.
    @return: a list of lines (without line ends).
    """
    services = advertisedServices(config)
    target = _fqdn(config.server.hostname)
    lines = ["; Mail client service records (RFC 6186, RFC 8314) for the listeners of %s."
             % (source or config.path,),
             "; Priority 0 is implicit TLS, 10 STARTTLS, 20 plaintext: clients try the lowest.",
             "; Target \".\" means the service is not offered (RFC 2782)."]
    if config.server.hostname == "localhost" or "." not in config.server.hostname:
        lines.append("; server.hostname is %s: only clients on this machine can use these."
                     % (config.server.hostname,))
    for domain in config.server.domains:
        lines.append("")
        lines.append("; %s" % (domain,))
        for label, kind, implicit in _SERVICES:
            owner = "%s._tcp.%s" % (label, _fqdn(domain))
            matching = [s for s in services
                        if s.kind == kind and (s.socketType == "SSL") == implicit]
            if not matching:
                lines.append("%s %d IN SRV 0 0 0 ." % (owner, TTL))
            for service in matching:
                lines.append("%s %d IN SRV %d 1 %d %s" % (
                    owner, TTL, _PRIORITY[service.socketType], service.port, target))
        lines.append("; Autoconfig (Thunderbird) and Autodiscover (Outlook) are fetched over "
                     "HTTP(S) from these names;")
        lines.append("; point them at the host serving mailstack's web console "
                     "(a CNAME, or A/AAAA records):")
        for name in ("autoconfig", "autodiscover"):
            lines.append(";   %s.%s %d IN CNAME %s" % (name, _fqdn(domain), TTL, target))
    return lines
