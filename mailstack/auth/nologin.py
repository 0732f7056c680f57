"""
Users who may not log in here: Dovecot's passdb extra fields C{nologin},
C{reason}, C{host}, C{port} and C{destuser}, read from a passwd-file line's
extra fields (its eighth field, space-separated C{key=value} words).

C{nologin} refuses a login whose password is right; with C{host} the
refusal names the server the user should use instead (an IMAP login
referral, RFC 2221, as Dovecot answers it). Without C{nologin}, C{host}
and the rest mean nothing here (Dovecot would proxy), as in Dovecot.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from twisted.cred.error import UnauthorizedLogin


@dataclasses.dataclass(frozen=True)
class NoLogin:
    """
    Why and where else: C{reason} (the refusal's text) or L{None}, C{host}
    (the server to use instead) or L{None}, C{port} (int) or L{None}, and
    C{destuser} (the name to use there) or L{None} for the user's own.
    """

    reason: str | None = None
    host: str | None = None
    port: int | None = None
    destuser: str | None = None


def fromExtraFields(words: Iterable[str]) -> NoLogin | None:
    """
    The L{NoLogin} of a passwd-file line's extra fields (C{key=value} words,
    or a bare C{nologin}), or L{None} when they do not say C{nologin}. A
    C{port} that is not a number from 1 to 65535 is left out.
    """
    fields: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        fields.setdefault(key.lower(), value if sep else "")
    if "nologin" not in fields or fields["nologin"].lower() in ("no", "n", "0", "false"):
        return None
    text = fields.get("port", "")
    port = int(text) if text.isdigit() and 0 < int(text) < 65536 else None
    return NoLogin(reason=fields.get("reason") or None, host=fields.get("host") or None,
                   port=port, destuser=fields.get("destuser") or None)


def toExtraFields(noLogin: NoLogin | None) -> list[str]:
    """
    The extra-field words that L{fromExtraFields} reads back as C{noLogin}
    (none for L{None}), for copying a user to another passwd-file. A value
    holding white space cannot be one word and is left out, as a line could
    not have carried it.
    """
    if noLogin is None:
        return []
    words = ["nologin"]
    for key in ("reason", "host", "port", "destuser"):
        value = getattr(noLogin, key)
        if value is not None and str(value) and not any(c.isspace() for c in str(value)):
            words.append("%s=%s" % (key, value))
    return words


class LoginDisabled(UnauthorizedLogin):
    """
    The password was right but the user may not log in here: a failed
    login to every protocol, which IMAP answers with its reason (and a
    referral when there is a host).

    @ivar noLogin: the user's L{NoLogin}.
    @ivar address: the user's address.
    """

    def __init__(self, noLogin: NoLogin, address: str) -> None:
        UnauthorizedLogin.__init__(self, noLogin.reason or "Login disabled")
        self.noLogin = noLogin
        self.address = address
