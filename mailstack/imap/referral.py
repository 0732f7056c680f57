"""
Login referrals (RFC 2221, LOGIN-REFERRALS): the answer to a login whose
password was right for a user who may not log in here (Dovecot's C{nologin}
extra field, L{mailstack.auth.nologin}), as Dovecot 2.3 words it. With a
C{host}, C{NO [REFERRAL imap://user;AUTH=mechanism@host[:port]/]} (RFC 2192
URL; the user is C{destuser} or the login's address); without one, or with
the listener's LOGIN-REFERRALS switched off, C{NO [CONTACTADMIN]}.
"""

from __future__ import annotations

from mailstack.auth.nologin import NoLogin

# Octets written as they are in the URL's user and host (RFC 3986's
# unreserved and sub-delimiters but ";"); any other octet of the UTF-8 is
# %xx, in lower case as Dovecot writes it.
_KEPT = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=")

DEFAULT_PORT = 143
REFERRAL_TEXT = "Try this server instead."
DISABLED_TEXT = "Login disabled for this user"


def escape(text: str) -> str:
    """C{text}'s UTF-8 with every octet outside L{_KEPT} written C{%xx}."""
    return "".join(chr(octet) if octet in _KEPT else "%%%02x" % (octet,)
                   for octet in text.encode("utf-8", "surrogateescape"))


def referralURL(noLogin: NoLogin, address: str, mechanism: str) -> str:
    """
    The IMAP URL of the server a user should use instead: C{noLogin}'s
    host, port (left out when 143) and C{destuser} (else C{address}), with
    the SASL C{mechanism} the login used (LOGIN is PLAIN, as in Dovecot).
    """
    url = "imap://%s;AUTH=%s@%s" % (escape(noLogin.destuser or address), mechanism,
                                     escape(noLogin.host or ""))
    if noLogin.port is not None and noLogin.port != DEFAULT_PORT:
        url += ":%d" % (noLogin.port,)
    return url + "/"


def refusal(noLogin: NoLogin, address: str, mechanism: str,
            referrals: bool = True) -> tuple[str, str | bytes, str]:
    """
    The tagged reply C{(status, code, text)} to a login refused by
    C{noLogin}; C{referrals}: whether the listener offers LOGIN-REFERRALS.
    """
    if noLogin.host and referrals:
        url = referralURL(noLogin, address, mechanism)
        return ("NO", b"REFERRAL " + url.encode("ascii"), noLogin.reason or REFERRAL_TEXT)
    return ("NO", "CONTACTADMIN", noLogin.reason or DISABLED_TEXT)
