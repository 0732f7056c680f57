"""
Logging in to IMAP: LOGIN and AUTHENTICATE (RFC 3501 6.2) with the SASL
mechanisms PLAIN (RFC 4616), LOGIN and CRAM-MD5 (RFC 2195), initial responses
(RFC 4959 SASL-IR), and the answers to failures (L{mailstack.throttle}
decides when to delay them and when to disconnect). A mixin of
L{mailstack.imap.server.IMAPServer}.

Plaintext mechanisms (LOGIN, PLAIN) are offered only under TLS unless the
listener allows plaintext auth; otherwise CAPABILITY says LOGINDISABLED and
they are answered C{NO [PRIVACYREQUIRED]}. CRAM-MD5 needs the secret itself,
so it is offered only when every user's secret is stored in plaintext (or the
listener says C{challenge_auth = "always"}): clients pick the strongest
mechanism advertised and do not fall back when it fails.

A right password of a user who may not log in here (Dovecot's C{nologin})
is answered by L{mailstack.imap.referral}: a login referral (RFC 2221) to
the user's other server, or C{NO [CONTACTADMIN]}.
"""

import base64

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger

from mailstack.auth.interfaces import UserDirectoryUnavailable
from mailstack.auth.nologin import LoginDisabled
from mailstack.imap import referral
from mailstack.imap.mailbox import IIMAPAccount
from mailstack.protocol import sasl

log = Logger()


class AuthenticationCommands:
    """LOGIN, AUTHENTICATE and the SASL exchanges (uses the server's state)."""

    def everyUserPlain(self):
        return self.cramAvailable()

    def mechanismEnabled(self, mechanism):
        return self.extensionEnabled("AUTH") and self.extensionEnabled("AUTH=" + mechanism)

    def do_LOGIN(self, tag, user, password):
        if not self.plaintextAllowed():
            return ("NO", "PRIVACYREQUIRED",
                    "Plaintext authentication is disallowed without TLS (use STARTTLS)")
        return self._login(tag, UsernamePassword(user, password), b"", "login")

    def do_AUTHENTICATE(self, tag, mechanism, initial):
        if initial is not None and not self.extensionEnabled("SASL-IR"):
            return ("BAD", None, "Initial response not allowed (SASL-IR is off)")
        status = self.mechanismStatus(mechanism)
        if status == sasl.NEEDS_TLS:
            return ("NO", "PRIVACYREQUIRED",
                    "Plaintext authentication is disallowed without TLS (use STARTTLS)")
        if status != sasl.OFFERED:
            return ("NO", "CANNOT", "Unsupported authentication mechanism")
        d = defer.Deferred()
        exchange = sasl.newExchange(mechanism, self.settings.hostname, self.clock)
        self._saslStep(tag, d, exchange, exchange.start(initial))
        return d

    def _saslStep(self, tag, d, exchange, outcome):
        """IMAP's words for one step of a SASL exchange (mailstack.protocol.sasl)."""
        if isinstance(outcome, sasl.Challenge):
            self.write(b"+ " + base64.b64encode(outcome.data) + b"\r\n")

            def received(line):
                self._lineHandler = None
                if line is None:
                    self.countBad()
                    return d.callback(("BAD", None, "Line too long"))
                self._saslStep(tag, d, exchange, exchange.receive(line))
            self._lineHandler = received
        elif isinstance(outcome, sasl.Credentials):
            self._chain(d, self._login(tag, outcome.credentials, outcome.authzid,
                                       exchange.mechanism.name))
        elif isinstance(outcome, sasl.Cancelled):
            d.callback(("BAD", None, "Authentication cancelled"))
        else:
            self.countBad()
            if outcome.problem == sasl.INVALID_BASE64:
                d.callback(("BAD", None, "Invalid base64 in SASL response"))
            elif outcome.problem == sasl.UNEXPECTED_INITIAL_RESPONSE:
                d.callback(("BAD", None, "%s takes no initial response" % (outcome.mechanism,)))
            else:
                d.callback(("BAD", None, "Malformed %s response" % (outcome.mechanism,)))

    @staticmethod
    def _chain(d, result):
        if isinstance(result, defer.Deferred):
            result.chainDeferred(d)
        else:
            d.callback(result)

    def _login(self, tag, credentials, authzid, mechanism):
        """
        Check the credentials (the session core: the address's penalty
        first); a failure is answered NO [AUTHENTICATIONFAILED], at the limit
        followed by BYE (the core's authFailed, in IMAPWording's words).
        """
        d = self.checkLogin(self.portal, credentials, authzid, IIMAPAccount, mechanism)

        def ok(result):
            _, avatar, logout = result
            if self._closing:
                logout()
                return None
            self.account = avatar
            self.keepAvatar(logout)
            self.state = "authenticated"
            self.setTimeout(self.settings.idleTimeout)
            log.info("imap {peer}: logged in as {user}", peer=self.peerText(),
                     user=avatar.address)
            return ("OK", b"CAPABILITY " + self._capabilityText(), "Logged in")

        def failed(failure):
            if failure.check(UserDirectoryUnavailable):
                return self.authUnavailable(failure, tag)
            if failure.check(LoginDisabled):
                # The password was right: no failure counted, as Dovecot.
                log.info("imap {peer}: {user} may not log in here", peer=self.peerText(),
                         user=failure.value.address)
                return referral.refusal(failure.value.noLogin, failure.value.address,
                                        "PLAIN" if mechanism == "login" else mechanism,
                                        self.extensionEnabled("LOGIN-REFERRALS"))
            failure.trap(UnauthorizedLogin)
            self.authFailed(tag)
        return d.addCallbacks(ok, failed)
