"""
Sans-IO SASL for the SMTP (RFC 4954), POP3 (RFC 5034) and IMAP (RFC 3501,
RFC 4959) engines: the behaviour once, the words per protocol.

- L{decodeResponse}: one client response line (the initial response or a
  line answering a challenge) to octets. The same rule on every line: C{*}
  cancels, C{=} is an empty response, anything else is base64.
- The mechanisms PLAIN (RFC 4616), LOGIN and CRAM-MD5 (RFC 2195) as small
  step objects: each takes decoded responses and gives the next L{Challenge}
  or the L{Credentials} to check.
- L{Exchange} runs one mechanism over undecoded lines; each step's outcome is
  a value (L{Challenge}, L{Credentials}, L{Cancelled}, L{Malformed}) the
  engine words in its own protocol (C{334 }, C{+ }, its reply codes).
- L{mechanismStatus} / L{offeredMechanisms}: the one mechanism-offer policy;
  L{offersChallengeAuth}: whether CRAM-MD5 and APOP are offered.
- L{uniqueChallenge}: the C{<pid.seconds.random@host>} string CRAM-MD5 and
  APOP greet with, from the one clock an engine has.
- L{authorizationAllowed}: the authzid rule, checked once after login against
  the normalised avatar id (L{authorize}: the same as a callback on
  C{Portal.login}'s result).
"""

import base64
import binascii
import os
import secrets
from typing import Any, Callable, List, Optional, Protocol, Tuple, Union

from twisted.cred.credentials import CramMD5Credentials, UsernamePassword
from twisted.cred.error import UnauthorizedLogin

from mailstack.auth.passwords import normalizeLoginName

__all__ = [
    "Cancelled", "Challenge", "Credentials", "Malformed", "Exchange",
    "decodeResponse", "mechanismStatus", "offeredMechanisms", "offersChallengeAuth",
    "uniqueChallenge", "authorizationAllowed", "authorize", "newExchange",
    "INVALID_BASE64", "MALFORMED", "UNEXPECTED_INITIAL_RESPONSE",
    "OFFERED", "NEEDS_TLS", "UNSUPPORTED", "MECHANISMS"]

#: Every mechanism the engines know, in the order they are offered.
MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")
#: Mechanisms that send the password itself: only under TLS unless the
#: listener allows plaintext auth.
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})

# Why a response was refused (L{Malformed.problem}).
INVALID_BASE64 = "invalid-base64"
MALFORMED = "malformed"
UNEXPECTED_INITIAL_RESPONSE = "unexpected-initial-response"


# -- outcomes -----------------------------------------------------------------

class Challenge:
    """
    Send C{data} (undecoded; the engine base64-encodes it) and hand the
    client's next line to L{Exchange.receive}.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return "Challenge(%r)" % (self.data,)


class Credentials:
    """
    The exchange is over: log in with C{credentials} (a twisted.cred
    credentials object), then check C{authzid} with L{authorizationAllowed}.
    """

    def __init__(self, credentials: object, authzid: bytes = b"") -> None:
        self.credentials = credentials
        self.authzid = authzid

    def __repr__(self) -> str:
        return "Credentials(%r, authzid=%r)" % (type(self.credentials).__name__, self.authzid)


class Cancelled:
    """The client sent C{*}: the exchange is over, nothing was checked."""

    def __repr__(self) -> str:
        return "Cancelled()"


class Malformed:
    """
    The exchange is over: the client's response could not be used.

    @ivar problem: L{INVALID_BASE64}, L{MALFORMED} (not what the mechanism
        expects) or L{UNEXPECTED_INITIAL_RESPONSE} (CRAM-MD5 speaks first).
    @ivar mechanism: the mechanism's name, for the engine's words.
    """

    def __init__(self, problem: str, mechanism: str) -> None:
        self.problem = problem
        self.mechanism = mechanism

    def __repr__(self) -> str:
        return "Malformed(%r, %r)" % (self.problem, self.mechanism)


Outcome = Union[Challenge, Credentials, Cancelled, Malformed]


class Mechanism(Protocol):
    """What L{Exchange} needs of a mechanism (L{Plain}, L{Login}, L{CramMD5})."""

    name: str
    firstChallenge: bytes

    def initial(self, data: bytes) -> Outcome:
        """The decoded initial response."""

    def respond(self, data: bytes) -> Outcome:
        """A decoded response to a challenge."""


class Clock(Protocol):
    """The part of C{IReactorTime} the challenge builder uses."""

    def seconds(self) -> float:
        """Now, in seconds since the epoch."""


class OfferSettings(Protocol):
    """The listener settings the offer policy reads (L{ListenerSettings})."""

    allowPlaintextAuth: bool
    challengeAuth: str


LoginResult = Tuple[Any, Any, Callable[[], object]]


class _CancelledLine(Exception):
    """The line was C{*}."""


class _InvalidBase64(Exception):
    """The line was not base64."""


def decodeResponse(line: bytes) -> bytes:
    """
    Decode one SASL response line, initial or not: surrounding white space is
    ignored, C{=} is an empty response, anything else must be base64.

    @raise _CancelledLine: for C{*}.
    @raise _InvalidBase64: for anything else that is not base64.
    """
    line = line.strip()
    if line == b"*":
        raise _CancelledLine()
    if line == b"=":
        return b""
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise _InvalidBase64() from None


# -- mechanisms -----------------------------------------------------------------

class Plain:
    """
    PLAIN (RFC 4616): one message C{authzid NUL authcid NUL password}; the
    server's first challenge is empty.
    """

    name = "PLAIN"
    firstChallenge = b""

    def initial(self, data: bytes) -> Outcome:
        return self.respond(data)

    def respond(self, data: bytes) -> Outcome:
        parts = data.split(b"\0")
        if len(parts) != 3 or not parts[1]:
            return Malformed(MALFORMED, self.name)
        authzid, authcid, password = parts
        return Credentials(UsernamePassword(authcid, password), authzid)


class Login:
    """
    LOGIN (draft-murchison-sasl-login): C{Username:}, then C{Password:}. An
    initial response is the user name.
    """

    name = "LOGIN"
    firstChallenge = b"Username:"

    def __init__(self) -> None:
        self._user: Optional[bytes] = None

    def initial(self, data: bytes) -> Outcome:
        return self.respond(data)

    def respond(self, data: bytes) -> Outcome:
        if self._user is None:
            self._user = data
            return Challenge(b"Password:")
        return Credentials(UsernamePassword(self._user, data))


class CramMD5:
    """
    CRAM-MD5 (RFC 2195): the server speaks first with C{challenge}; the
    client answers C{user SP hex-digest}. An empty initial response (C{=}) is
    no data, accepted as Dovecot does; any other is refused.
    """

    name = "CRAM-MD5"

    def __init__(self, challenge: bytes, hostname: str = "") -> None:
        self.firstChallenge = challenge
        self._hostname = hostname

    def initial(self, data: bytes) -> Outcome:
        if data:
            return Malformed(UNEXPECTED_INITIAL_RESPONSE, self.name)
        return Challenge(self.firstChallenge)

    def respond(self, data: bytes) -> Outcome:
        credentials = CramMD5Credentials(self._hostname)
        credentials.challenge = self.firstChallenge
        try:
            credentials.setResponse(data)
        except ValueError:
            return Malformed(MALFORMED, self.name)
        if not credentials.username or not credentials.response:
            return Malformed(MALFORMED, self.name)
        return Credentials(credentials)


class Exchange:
    """
    One SASL exchange: undecoded lines in, outcomes out.

    @ivar open: a challenge was sent and the next client line is a response.
    """

    def __init__(self, mechanism: Mechanism) -> None:
        self.mechanism = mechanism
        self.open = False

    def start(self, initial: Optional[bytes]) -> Outcome:
        """
        Begin: C{initial} is the initial response as sent (C{=} for an empty
        one), or L{None} if there was none.
        """
        if initial is None:
            return self._outcome(Challenge(self.mechanism.firstChallenge))
        return self._step(initial, self.mechanism.initial)

    def receive(self, line: bytes) -> Outcome:
        """A line the client sent after a L{Challenge}."""
        return self._step(line, self.mechanism.respond)

    def _step(self, line: bytes, handler: Callable[[bytes], Outcome]) -> Outcome:
        try:
            data = decodeResponse(line)
        except _CancelledLine:
            return self._outcome(Cancelled())
        except _InvalidBase64:
            return self._outcome(Malformed(INVALID_BASE64, self.mechanism.name))
        return self._outcome(handler(data))

    def _outcome(self, outcome: Outcome) -> Outcome:
        self.open = isinstance(outcome, Challenge)
        return outcome


def newExchange(name: str, hostname: str, clock: Clock) -> Exchange:
    """
    An L{Exchange} of mechanism C{name} (one of L{MECHANISMS}).

    @param hostname: the server's name, in CRAM-MD5's challenge.
    @param clock: an C{IReactorTime}, for CRAM-MD5's challenge.
    """
    if name == "PLAIN":
        return Exchange(Plain())
    if name == "LOGIN":
        return Exchange(Login())
    if name == "CRAM-MD5":
        return Exchange(CramMD5(uniqueChallenge(hostname, clock), hostname))
    raise ValueError("unknown SASL mechanism %r" % (name,))


# -- the offer --------------------------------------------------------------------

OFFERED = "offered"
NEEDS_TLS = "needs-tls"
UNSUPPORTED = "unsupported"


def offersChallengeAuth(challengeAuth: str, everyUserPlain: Callable[[], object]) -> bool:
    """
    Whether CRAM-MD5 (and POP3's APOP) are offered: with C{challenge_auth =
    "always"}, or when they work for every account (C{everyUserPlain()},
    asked each time: the users file may have changed). Clients pick the
    strongest mechanism advertised and do not fall back, so offering one that
    fails for some users locks those users out.
    """
    return challengeAuth == "always" or bool(everyUserPlain())


def mechanismStatus(name: str, settings: OfferSettings, secure: bool,
                    everyUserPlain: Callable[[], object],
                    enabled: Callable[[str], bool],
                    challengeNeedsTLS: bool = False) -> str:
    """
    Whether mechanism C{name} is offered now.

    @param settings: the listener's L{mailstack.settings.ListenerSettings}
        (C{allowPlaintextAuth}, C{challengeAuth}).
    @param secure: the session runs over TLS.
    @param everyUserPlain: answers whether every user's secret is stored
        in plaintext (CRAM-MD5 works for everyone).
    @param enabled: C{enabled(name)}: the listener has not disabled the
        mechanism (nor SASL as a whole).
    @param challengeNeedsTLS: CRAM-MD5 too waits for TLS (SMTP: no AUTH at all
        before STARTTLS, like Postfix's C{smtpd_tls_auth_only}).
    @return: L{OFFERED}; L{NEEDS_TLS} (it would be offered under TLS: the
        engine answers "encryption required"); or L{UNSUPPORTED}.
    """
    if name not in MECHANISMS or not enabled(name):
        return UNSUPPORTED
    plaintextOK = secure or settings.allowPlaintextAuth
    if name in PLAINTEXT_MECHANISMS:
        return OFFERED if plaintextOK else NEEDS_TLS
    if not offersChallengeAuth(settings.challengeAuth, everyUserPlain):
        return UNSUPPORTED
    if challengeNeedsTLS and not plaintextOK:
        return NEEDS_TLS
    return OFFERED


def offeredMechanisms(settings: OfferSettings, secure: bool,
                      everyUserPlain: Callable[[], object],
                      enabled: Callable[[str], bool],
                      challengeNeedsTLS: bool = False) -> List[str]:
    """The mechanisms L{mechanismStatus} offers now, in L{MECHANISMS} order."""
    return [name for name in MECHANISMS
            if mechanismStatus(name, settings, secure, everyUserPlain, enabled,
                               challengeNeedsTLS) == OFFERED]


# -- challenges -------------------------------------------------------------------

def uniqueChallenge(hostname: str, clock: Clock, randomBytes: int = 8) -> bytes:
    """
    C{<pid.seconds.random@host>} (RFC 1939 section 7, RFC 2195): APOP's
    greeting timestamp and CRAM-MD5's challenge, unique per use.

    @param clock: an C{IReactorTime}: the one clock the engine runs on.
    """
    return ("<%d.%d.%s@%s>" % (
        os.getpid(), int(clock.seconds()), secrets.token_hex(randomBytes),
        hostname)).encode("ascii", "replace")


# -- authorization ----------------------------------------------------------------

def authorize(loginResult: LoginResult, authzid: Union[bytes, str, None],
              defaultDomain: Optional[str]) -> LoginResult:
    """
    The authzid rule as a callback on C{Portal.login}'s result
    C{(interface, avatar, logout)}: the result unchanged when C{authzid} may
    act as the avatar (its C{address}); otherwise the avatar is logged out and
    L{UnauthorizedLogin} raised, which the engine answers like any failed
    login (a client cannot tell a refused authzid from a wrong password).
    """
    _, avatar, logout = loginResult
    if not authorizationAllowed(authzid, avatar.address, defaultDomain):
        logout()
        raise UnauthorizedLogin("authorization identity refused")
    return loginResult


def authorizationAllowed(authzid: Union[bytes, str, None], avatarId: Union[bytes, str],
                         defaultDomain: Optional[str]) -> bool:
    """
    The authzid rule, the same in every protocol: an empty authzid, or one
    that names the user who logged in. C{authzid} is normalised as a login
    name is (case ignored, a bare name gets C{defaultDomain}) and compared
    with the normalised avatar id the realm got (no proxy authorization:
    nobody may act as another user).
    """
    if not authzid:
        return True
    if isinstance(avatarId, bytes):
        avatarId = avatarId.decode("utf-8", "replace")
    wanted = normalizeLoginName(authzid, defaultDomain)
    if wanted is None:
        return False
    have = normalizeLoginName(avatarId, defaultDomain)
    return have is not None and wanted == have
