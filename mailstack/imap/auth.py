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
"""

import base64
import binascii
import secrets
import time

from twisted.cred.credentials import CramMD5Credentials, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger

from mailstack.imap.mailbox import IIMAPAccount

log = Logger()


class AuthenticationCommands:
    """LOGIN, AUTHENTICATE and the SASL exchanges (uses the server's state)."""

    def _plaintextAllowed(self):
        return self.tls or self.settings.allowPlaintextAuth

    def _mechanisms(self):
        mechanisms = []
        if self._plaintextAllowed():
            mechanisms += ["PLAIN", "LOGIN"]
        if self.settings.offersChallengeAuth(self.cramAvailable):
            mechanisms.append("CRAM-MD5")
        if not self.extensionEnabled("AUTH"):
            return []
        return [m for m in mechanisms if self.extensionEnabled("AUTH=" + m)]

    def do_LOGIN(self, tag, user, password):
        if not self._plaintextAllowed():
            return ("NO", "PRIVACYREQUIRED",
                    "Plaintext authentication is disallowed without TLS (use STARTTLS)")
        return self._login(UsernamePassword(user, password))

    def do_AUTHENTICATE(self, tag, mechanism, initial):
        if initial is not None and not self.extensionEnabled("SASL-IR"):
            return ("BAD", None, "Initial response not allowed (SASL-IR is off)")
        if mechanism not in self._mechanisms():
            if mechanism in ("PLAIN", "LOGIN") and not self._plaintextAllowed():
                return ("NO", "PRIVACYREQUIRED",
                        "Plaintext authentication is disallowed without TLS (use STARTTLS)")
            return ("NO", "CANNOT", "Unsupported authentication mechanism")
        d = defer.Deferred()
        getattr(self, "_sasl_" + mechanism.replace("-", "_"))(d, initial)
        return d

    def _challenge(self, d, data, then):
        """Send a SASL challenge; hand the decoded response to C{then}."""
        self.write(b"+ " + base64.b64encode(data) + b"\r\n")

        def received(line):
            self._lineHandler = None
            self._saslResponse(d, line, then)
        self._lineHandler = received

    def _saslResponse(self, d, line, then):
        if line is None:
            self._countBad()
            return d.callback(("BAD", None, "Line too long"))
        if line.strip() == b"*":
            return d.callback(("BAD", None, "Authentication cancelled"))
        try:
            decoded = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            self._countBad()
            return d.callback(("BAD", None, "Invalid base64 in SASL response"))
        then(decoded)

    def _initial(self, d, initial, then, prompt=b""):
        """Use the initial response if given (C{=} means empty), else ask for it."""
        if initial is None:
            return self._challenge(d, prompt, then)
        self._saslResponse(d, initial or b"", then)

    def _sasl_PLAIN(self, d, initial):
        def got(decoded):
            parts = decoded.split(b"\0")
            if len(parts) != 3 or not parts[1]:
                return d.callback(("BAD", None, "Malformed PLAIN response"))
            authzid, authcid, password = parts
            if authzid and authzid != authcid:
                return self._chain(d, self._authFailed())
            self._chain(d, self._login(UsernamePassword(authcid, password)))
        self._initial(d, initial, got)

    def _sasl_LOGIN(self, d, initial):
        def gotUser(user):
            def gotPassword(password):
                self._chain(d, self._login(UsernamePassword(user, password)))
            self._challenge(d, b"Password:", gotPassword)
        self._initial(d, initial, gotUser, b"Username:")

    def _sasl_CRAM_MD5(self, d, initial):
        # The server speaks first; an empty initial response ("=") is
        # accepted as Dovecot does (it is no data), any other is refused.
        if initial:
            return d.callback(("BAD", None, "CRAM-MD5 takes no initial response"))
        credentials = CramMD5Credentials(self.settings.hostname)
        credentials.challenge = ("<%d.%s@%s>" % (
            time.time() * 1000, secrets.token_hex(8), self.settings.hostname)).encode("ascii")

        def got(response):
            try:
                credentials.setResponse(response)
            except ValueError:
                return d.callback(("BAD", None, "Malformed CRAM-MD5 response"))
            self._chain(d, self._login(credentials))
        self._challenge(d, credentials.challenge, got)

    @staticmethod
    def _chain(d, result):
        if isinstance(result, defer.Deferred):
            result.chainDeferred(d)
        else:
            d.callback(result)

    def _login(self, credentials):
        d = self.portal.login(credentials, None, IIMAPAccount)

        def ok(result):
            _, avatar, logout = result
            if self._closing:
                logout()
                return None
            self.account = avatar
            self._logout = logout
            self.state = "authenticated"
            self.setTimeout(self.settings.idleTimeout)
            log.info("imap {peer}: logged in as {user}", peer=self.peerText(),
                     user=avatar.address)
            return ("OK", b"CAPABILITY " + self._capabilityText(), "Logged in")

        def failed(failure):
            failure.trap(UnauthorizedLogin)
            return self._authFailed()
        return d.addCallbacks(ok, failed)

    def _authFailed(self):
        verdict = self._authThrottle.record()
        log.info("imap {peer}: authentication failed ({n})", peer=self.peerText(),
                 n=verdict.count)
        result = ("NO", "AUTHENTICATIONFAILED", "Authentication failed")
        if verdict.disconnect:
            self.bye(b"Too many authentication failures")
            return None
        if verdict.delayed:
            return self._authThrottle.delay(result)
        return result
