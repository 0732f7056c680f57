"""
Pure parsing of SMTP command arguments (RFC 5321 section 4.1.2): the reverse- and
forward-path of MAIL FROM / RCPT TO and their ESMTP parameters.

Lenient where students type by hand (a space after the colon, a path without
angle brackets) and strict where it matters (no bytes outside ASCII, one mailbox).
"""

from __future__ import annotations

import ipaddress
import re

_PATH = re.compile(
    rb"^(?P<kind>FROM|TO):[ \t]*(?P<path><[^<>]*>|[^ \t<>]+)(?:[ \t]+(?P<params>.*))?$",
    re.IGNORECASE)
_ATEXT = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rb"^%s+(?:\.%s+)*$" % (_ATEXT, _ATEXT))
_QUOTED = re.compile(rb'^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"$')
_DOMAIN = re.compile(
    rb"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    rb"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_LITERAL = re.compile(rb"^\[(?:IPv6:[0-9A-Fa-f:.]+|[0-9]{1,3}(?:\.[0-9]{1,3}){3})\]$")
_PARAM = re.compile(rb"^(?P<key>[A-Za-z0-9][A-Za-z0-9-]*)(?:=(?P<value>[\x21-\x3c\x3e-\x7e]+))?$")


class PathSyntaxError(ValueError):
    """
    The argument is not a valid path; the text is fit for a 501 reply.
    """


def isDomain(value: bytes) -> bool:
    """
    C{True} if C{value} (bytes) is a domain name or a valid address literal
    (C{[192.0.2.1]} with octets up to 255, C{[IPv6:...]}).
    """
    if _DOMAIN.match(value):
        return True
    if not _LITERAL.match(value):
        return False
    text = value[1:-1].decode("ascii")
    try:
        if text[:5].upper() == "IPV6:":
            ipaddress.IPv6Address(text[5:])
        else:
            ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _unquote(local: bytes) -> bytes:
    """
    C{"john.doe"} -> C{john.doe}: a quoted local part that needs no quoting
    names the same mailbox as the plain one (RFC 5321 4.1.2), so use that.
    """
    if not local.startswith(b'"'):
        return local
    inner = re.sub(rb"\\(.)", rb"\1", local[1:-1])
    return inner if _DOT_ATOM.match(inner) else local


def parseMailbox(value: bytes) -> tuple[str, str]:
    """
    Split C{local@domain} (bytes) into C{(local, domain)} as str, domain lower-cased.

    @raise PathSyntaxError: if it is not a mailbox.
    """
    local, sep, domain = value.rpartition(b"@")
    if not sep or not local or not domain:
        raise PathSyntaxError("address must be local-part@domain")
    if not (_DOT_ATOM.match(local) or _QUOTED.match(local)):
        raise PathSyntaxError("bad local part in address")
    if not isDomain(domain):
        raise PathSyntaxError("bad domain in address")
    if len(local) > 64 or len(domain) > 255:
        raise PathSyntaxError("address too long")
    return _unquote(local).decode("ascii"), domain.decode("ascii").lower()


def parsePath(kind: bytes, argument: bytes) -> tuple[str, dict[str, str | None]]:
    """
    Parse the argument of MAIL (C{kind=b"FROM"}) or RCPT (C{kind=b"TO"}).

    @return: C{(address, params)}: C{address} is the str C{local@domain} (domain
        lower-cased), C{""} for the null reverse-path C{<>}, or C{"postmaster"} for
        RCPT TO:<postmaster>; C{params} is a dict of upper-cased keyword (str) to
        value (str or L{None}), in order.
    @raise PathSyntaxError: with a reason fit for a 501 reply.
    """
    try:
        argument.decode("ascii")
    except UnicodeDecodeError:
        raise PathSyntaxError("8-bit characters are not allowed here (no SMTPUTF8)")
    match = _PATH.match(argument.strip())
    if match is None or match.group("kind").upper() != kind:
        raise PathSyntaxError("syntax is %s:<address>" % (
            "MAIL FROM" if kind == b"FROM" else "RCPT TO",))
    path = match.group("path")
    if path.startswith(b"<"):
        path = path[1:-1]
    # Source routes (<@a,@b:user@c>) are obsolete; RFC 5321 C says ignore them.
    if path.startswith(b"@") and b":" in path:
        path = path.split(b":", 1)[1]
    params = parseParameters(match.group("params") or b"")
    if not path:
        if kind == b"TO":
            raise PathSyntaxError("a recipient address is required")
        return "", params
    if kind == b"TO" and path.lower() == b"postmaster":
        return "postmaster", params
    local, domain = parseMailbox(path)
    return "%s@%s" % (local, domain), params


def parseParameters(text: bytes) -> dict[str, str | None]:
    """
    Parse ESMTP parameters C{KEY[=VALUE] ...} into an ordered dict.

    @raise PathSyntaxError: on a malformed or repeated parameter.
    """
    params: dict[str, str | None] = {}
    for token in text.split():
        match = _PARAM.match(token)
        if match is None:
            raise PathSyntaxError("bad parameter %r" % (token.decode("ascii", "replace"),))
        key = match.group("key").decode("ascii").upper()
        if key in params:
            raise PathSyntaxError("parameter %s given twice" % (key,))
        value = match.group("value")
        params[key] = value.decode("ascii") if value is not None else None
    return params
