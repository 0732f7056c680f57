"""
Tests for L{mailstack.web.autoconfig}: the Mozilla autoconfig document, the
Autodiscover (POX) exchange and the Apple profile, each parsed back the way a
client reads it, and their twisted.web resources.
"""

import io
import plistlib
import xml.etree.ElementTree as ET

from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from mailstack.config import loadConfig
from mailstack.web import autoconfig
from mailstack.web.context import WebContext
from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig

# A production-like set of listeners, and some that must not be advertised.
LISTENERS = "".join([
    listenerTOML("smtp", "tcp:25", "starttls", name="mx"),
    listenerTOML("submission", "tcp:587", "starttls", name="submission"),
    listenerTOML("submission", "tcp:465", "implicit", name="submissions"),
    listenerTOML("pop3", "tcp:110", "none", name="pop3-plain"),
    listenerTOML("pop3", "tcp:995", "implicit", name="pop3s"),
    listenerTOML("imap", "tcp:143", "starttls", name="imap"),
    listenerTOML("imap", "tcp:993", "implicit", name="imaps"),
    listenerTOML("imap", "tcp:1143", "none", name="imap-cram", challenge_auth="always"),
    listenerTOML("imap", "tcp:2143", "starttls", name="imap-nostarttls",
                 disabled=["STARTTLS"]),
    listenerTOML("imap", "tcp:0:interface=127.0.0.1", "implicit", name="imap-port0"),
    listenerTOML("pop3", "unix:address=pop3.sock", "none", name="pop3-unix",
                 allow_plaintext_auth=True),
])

# (listener, kind, port, socketType, authentication) in the order advertised.
EXPECTED = [
    ("imaps", "imap", 993, "SSL", "password-cleartext"),
    ("imap", "imap", 143, "STARTTLS", "password-cleartext"),
    ("imap-cram", "imap", 1143, "plain", "password-encrypted"),
    ("pop3s", "pop3", 995, "SSL", "password-cleartext"),
    ("submissions", "smtp", 465, "SSL", "password-cleartext"),
    ("submission", "smtp", 587, "STARTTLS", "password-cleartext"),
]

OUTLOOK = "{%s}" % (autoconfig.OUTLOOK_RESPONSE_SCHEMA,)
RESPONSE = "{%s}" % (autoconfig.AUTODISCOVER_RESPONSE_NS,)


def poxRequest(address, schema=autoconfig.OUTLOOK_RESPONSE_SCHEMA):
    """A POX Autodiscover request body as Outlook sends it."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<Autodiscover xmlns="%s"><Request>'
        '<EMailAddress>%s</EMailAddress>'
        '<AcceptableResponseSchema>%s</AcceptableResponseSchema>'
        '</Request></Autodiscover>' % (autoconfig.AUTODISCOVER_REQUEST_NS, address, schema)
    ).encode("utf-8")


class ConfigMixin:
    def loadConfig(self, listeners=LISTENERS):
        return loadConfig(writeConfig(self, BASE_CONFIG, listeners), checkFiles=False)

    def setUp(self):
        self.config = self.loadConfig()
        self.services = autoconfig.advertisedServices(self.config)


def described(services):
    return [(s.listener, s.kind, s.port, s.socketType, s.authentication) for s in services]


class AdvertisedServicesTests(ConfigMixin, unittest.TestCase):
    def test_bestFirst(self):
        """IMAP before POP3 before submission, implicit TLS before STARTTLS before plain."""
        self.assertEqual(described(self.services), EXPECTED)
        self.assertEqual({s.hostname for s in self.services}, {"mail.lab.test"})

    def test_plainWithoutPlaintextAuthLeftOut(self):
        """A listener with no TLS that refuses plaintext passwords is never advertised as plain."""
        names = [s.listener for s in self.services]
        self.assertNotIn("pop3-plain", names)
        self.assertFalse([s for s in self.services
                          if s.socketType == "plain" and s.authentication == "password-cleartext"])

    def test_startTLSDisabled(self):
        """A STARTTLS listener whose STARTTLS is disabled is plain; allowed plaintext makes it advertised so."""
        config = self.loadConfig(listenerTOML("imap", "tcp:2143", "starttls", name="i",
                                              disabled=["STARTTLS"], allow_plaintext_auth=True))
        self.assertEqual(described(autoconfig.advertisedServices(config)),
                         [("i", "imap", 2143, "plain", "password-cleartext")])

    def test_boundPort(self):
        """A listener on port 0 is advertised on the port it was bound to, once known."""
        services = autoconfig.advertisedServices(self.config, {"imap-port0": 4993})
        self.assertIn(("imap-port0", "imap", 4993, "SSL", "password-cleartext"),
                      described(services))

    def test_submissionCramNotAdvertised(self):
        """SMTP offers no AUTH before TLS where plaintext is refused, so challenge_auth does not advertise it."""
        config = self.loadConfig(listenerTOML("submission", "tcp:587", "none",
                                              challenge_auth="always"))
        self.assertEqual(autoconfig.advertisedServices(config), [])


class MozillaTests(ConfigMixin, unittest.TestCase):
    def parse(self, domain=None):
        return ET.fromstring(autoconfig.mozillaConfig(self.config, self.services, domain))

    def test_everyListener(self):
        """Every advertised listener is a server element with its hostname, port, socketType and authentication."""
        root = self.parse()
        self.assertEqual((root.tag, root.get("version")), ("clientConfig", "1.1"))
        provider = root.find("emailProvider")
        servers = [(server.get("type"), int(server.findtext("port")),
                    server.findtext("socketType"), server.findtext("authentication"))
                   for server in provider if server.tag in ("incomingServer", "outgoingServer")]
        self.assertEqual(servers, [(kind, port, socket, auth)
                                   for _, kind, port, socket, auth in EXPECTED])
        self.assertEqual([s.tag for s in provider.findall("outgoingServer")], ["outgoingServer"] * 2)
        for server in provider.iter("incomingServer"):
            self.assertEqual(server.findtext("hostname"), "mail.lab.test")
            self.assertEqual(server.findtext("username"), "%EMAILADDRESS%")

    def test_domains(self):
        """The provider is the asked domain; every local domain is listed, the asked one first."""
        provider = self.parse("example.test").find("emailProvider")
        self.assertEqual(provider.get("id"), "example.test")
        self.assertEqual([d.text for d in provider.findall("domain")],
                         ["example.test", "lab.test"])
        self.assertEqual(self.parse().find("emailProvider").get("id"), "lab.test")


class AutodiscoverTests(ConfigMixin, unittest.TestCase):
    def test_parseRequest(self):
        """The address and response schema are read from an Outlook request."""
        self.assertEqual(autoconfig.parseAutodiscoverRequest(poxRequest("Ann@lab.test")),
                         ("Ann@lab.test", autoconfig.OUTLOOK_RESPONSE_SCHEMA))

    def test_badRequests(self):
        """Malformed XML, another root, no address, a DTD and an oversized body are refused."""
        bodies = [b"<Autodiscover", b"<Other/>",
                  ('<Autodiscover xmlns="%s"><Request/></Autodiscover>'
                   % (autoconfig.AUTODISCOVER_REQUEST_NS,)).encode(),
                  b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + poxRequest("&a;@lab.test")[38:],
                  poxRequest("a@lab.test") + b" " * autoconfig.MAX_REQUEST_BODY]
        for body in bodies:
            self.assertRaises(autoconfig.AutodiscoverRequestError,
                              autoconfig.parseAutodiscoverRequest, body)

    def test_response(self):
        """Each advertised listener is a Protocol with Type, Server, Port, SSL, Encryption and the login name."""
        root = ET.fromstring(autoconfig.autodiscoverResponse(
            self.config, self.services, "ann@lab.test"))
        self.assertEqual(root.tag, RESPONSE + "Autodiscover")
        account = root.find(OUTLOOK + "Response/" + OUTLOOK + "Account")
        self.assertEqual(account.findtext(OUTLOOK + "Action"), "settings")
        found = [tuple(protocol.findtext(OUTLOOK + name) for name in
                       ("Type", "Server", "Port", "SSL", "Encryption", "LoginName", "SPA"))
                 for protocol in account.findall(OUTLOOK + "Protocol")]
        encryption = {"SSL": ("on", "SSL"), "STARTTLS": ("off", "TLS"), "plain": ("off", "None")}
        self.assertEqual(found, [
            ({"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}[kind], "mail.lab.test", str(port))
            + encryption[socket] + ("ann@lab.test", "off")
            for _, kind, port, socket, _ in EXPECTED])

    def test_escaping(self):
        """An address with XML metacharacters comes back as the same text."""
        address = "o'neil&co@lab.test"
        root = ET.fromstring(autoconfig.autodiscoverResponse(self.config, self.services, address))
        self.assertEqual({e.text for e in root.iter(OUTLOOK + "LoginName")}, {address})

    def test_error(self):
        """An error document carries its code and message."""
        root = ET.fromstring(autoconfig.autodiscoverError(600, "Invalid Request", "01:02:03"))
        error = root.find(RESPONSE + "Response/" + RESPONSE + "Error")
        self.assertEqual((error.get("Time"), error.findtext(RESPONSE + "ErrorCode"),
                          error.findtext(RESPONSE + "Message")),
                         ("01:02:03", "600", "Invalid Request"))


class MobileconfigTests(ConfigMixin, unittest.TestCase):
    def profile(self, address="ann@lab.test", services=None):
        return plistlib.loads(autoconfig.mobileconfig(
            self.config, self.services if services is None else services, address))

    def test_payload(self):
        """The profile holds one mail payload: the best IMAP and submission listeners, the address as user name."""
        profile = self.profile()
        self.assertEqual((profile["PayloadType"], profile["PayloadVersion"]), ("Configuration", 1))
        [mail] = profile["PayloadContent"]
        self.assertEqual(mail["PayloadType"], "com.apple.mail.managed")
        self.assertEqual({key: value for key, value in mail.items()
                          if key.startswith(("Incoming", "Outgoing", "Email"))}, {
            "EmailAccountType": "EmailTypeIMAP",
            "EmailAccountDescription": "mailstack on mail.lab.test",
            "EmailAddress": "ann@lab.test",
            "IncomingMailServerHostName": "mail.lab.test",
            "IncomingMailServerPortNumber": 993,
            "IncomingMailServerUseSSL": True,
            "IncomingMailServerAuthentication": "EmailAuthPassword",
            "IncomingMailServerUsername": "ann@lab.test",
            "OutgoingMailServerHostName": "mail.lab.test",
            "OutgoingMailServerPortNumber": 465,
            "OutgoingMailServerUseSSL": True,
            "OutgoingMailServerAuthentication": "EmailAuthPassword",
            "OutgoingMailServerUsername": "ann@lab.test",
            "OutgoingPasswordSameAsIncomingPassword": True,
        })

    def test_startTLSAndPOP(self):
        """A STARTTLS-only POP3 server is a POP account with UseSSL false."""
        pop = [s for s in self.services if s.listener in ("submission",)]
        pop.insert(0, autoconfig.AdvertisedService("p", "pop3", "mail.lab.test", 110,
                                                   "STARTTLS", "password-cleartext"))
        [mail] = self.profile(services=pop)["PayloadContent"]
        self.assertEqual((mail["EmailAccountType"], mail["IncomingMailServerPortNumber"],
                          mail["IncomingMailServerUseSSL"], mail["OutgoingMailServerUseSSL"]),
                         ("EmailTypePOP", 110, False, False))

    def test_identity(self):
        """The same address gets the same identifiers (a new download replaces it); another address others."""
        first, again, other = self.profile(), self.profile(), self.profile("bob@lab.test")
        ids = lambda p: (p["PayloadIdentifier"], p["PayloadUUID"],
                         p["PayloadContent"][0]["PayloadUUID"])
        self.assertEqual(ids(first), ids(again))
        self.assertFalse(set(ids(first)) & set(ids(other)))

    def test_noAddress(self):
        """Without an address the profile names no user (the device asks)."""
        [mail] = self.profile(None)["PayloadContent"]
        self.assertNotIn("EmailAddress", mail)
        self.assertNotIn("IncomingMailServerUsername", mail)

    def test_noIncoming(self):
        """With no IMAP or POP3 listener to advertise there is no profile."""
        self.assertRaises(LookupError, autoconfig.mobileconfig, self.config,
                          [s for s in self.services if s.kind == "smtp"])


class ResourceTests(ConfigMixin, unittest.TestCase):
    def setUp(self):
        ConfigMixin.setUp(self)
        clock = Clock()
        clock.advance(3 * 3600 + 4 * 60 + 5)
        self.context = WebContext(config=self.config, store=None, directory=None, users=None,
                                  authPenalty=None, reactor=clock)
        self.resources = autoconfig.autoconfigResources(self.context)

    def get(self, path, address=None):
        request = DummyRequest([])
        if address is not None:
            request.addArg(b"emailaddress", address)
        body = self.resources[path].render(request)
        return request, body

    def post(self, body, path=(b"autodiscover", b"autodiscover.xml")):
        request = DummyRequest([])
        request.method = b"POST"
        request.content = io.BytesIO(body)
        return request, self.resources[path].render(request)

    def test_paths(self):
        """Both Mozilla paths, both Autodiscover spellings and the profile are mounted."""
        self.assertEqual(set(self.resources), {
            (b".well-known", b"autoconfig", b"mail", b"config-v1.1.xml"),
            (b"mail", b"config-v1.1.xml"),
            (b"autodiscover", b"autodiscover.xml"),
            (b"Autodiscover", b"Autodiscover.xml"),
            (b"mobileconfig",)})

    def test_mozilla(self):
        """GET with the address answers the XML for its domain."""
        request, body = self.get((b"mail", b"config-v1.1.xml"), b"ann@example.test")
        self.assertEqual(request.responseCode, None)  # 200
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"),
                         [autoconfig.XML_TYPE])
        self.assertEqual(ET.fromstring(body).find("emailProvider").get("id"), "example.test")

    def test_mozillaRefusals(self):
        """An address of another domain gets 404, a malformed one 400."""
        path = (b".well-known", b"autoconfig", b"mail", b"config-v1.1.xml")
        self.assertEqual(self.get(path, b"ann@elsewhere.test")[0].responseCode, 404)
        self.assertEqual(self.get(path, b"not-an-address")[0].responseCode, 400)

    def test_boundPorts(self):
        """Listeners configured on port 0 are advertised on the port the context says they are bound to."""
        self.context.listeners = [(listener, 4993 if listener.name == "imap-port0" else None)
                                  for listener in self.config.listeners]
        _, body = self.get((b"mail", b"config-v1.1.xml"))
        self.assertIn("4993", [p.text for p in ET.fromstring(body).iter("port")])

    def test_boundListenerServices(self):
        """The server's listener services (with .listener and a bound .port) give the ports too."""
        class Bound:
            def __init__(self, listener, port):
                self.listener = listener
                self.port = None if port is None else type(
                    "Port", (), {"getHost": lambda self: type("Host", (), {"port": port})()})()
        self.context.listeners = [Bound(listener, 5993 if listener.name == "imap-port0" else None)
                                  for listener in self.config.listeners]
        _, body = self.get((b"mail", b"config-v1.1.xml"))
        self.assertIn("5993", [p.text for p in ET.fromstring(body).iter("port")])

    def test_autodiscover(self):
        """POST of an Outlook request answers the settings for the lower-cased address."""
        request, body = self.post(poxRequest("Ann@LAB.test"))
        self.assertEqual(request.responseCode, None)
        root = ET.fromstring(body)
        self.assertEqual({e.text for e in root.iter(OUTLOOK + "LoginName")}, {"ann@lab.test"})
        self.assertEqual(len(list(root.iter(OUTLOOK + "Protocol"))), len(EXPECTED))

    def test_autodiscoverRefusals(self):
        """A bad body gets 400 with error 600; another domain error 500; ActiveSync's schema error 601."""
        for body, status, code in [
                (b"<nonsense", 400, "600"),
                (poxRequest("ann@elsewhere.test"), None, "500"),
                (poxRequest("ann@lab.test", "http://schemas.microsoft.com/exchange/autodiscover/"
                                            "mobilesync/responseschema/2006"), None, "601")]:
            request, answer = self.post(body, (b"Autodiscover", b"Autodiscover.xml"))
            self.assertEqual(request.responseCode, status)
            error = ET.fromstring(answer).find(RESPONSE + "Response/" + RESPONSE + "Error")
            self.assertEqual(error.findtext(RESPONSE + "ErrorCode"), code)
            self.assertEqual(error.get("Time"), "03:04:05")

    def test_mobileconfig(self):
        """The profile is served as an Apple configuration download named after the address."""
        request, body = self.get((b"mobileconfig",), b"ann@lab.test")
        headers = request.responseHeaders
        self.assertEqual(headers.getRawHeaders(b"content-type"),
                         [b"application/x-apple-aspen-config"])
        self.assertEqual(headers.getRawHeaders(b"content-disposition"),
                         [b'attachment; filename="ann@lab.test.mobileconfig"'])
        self.assertEqual(plistlib.loads(body)["PayloadContent"][0]["EmailAddress"],
                         "ann@lab.test")

    def test_mobileconfigRefusals(self):
        """A foreign address gets 404; a server with nothing to advertise 404."""
        self.assertEqual(self.get((b"mobileconfig",), b"a@elsewhere.test")[0].responseCode, 404)
        self.context.config = self.loadConfig(listenerTOML("submission", "tcp:465", "implicit"))
        self.assertEqual(self.get((b"mobileconfig",))[0].responseCode, 404)
