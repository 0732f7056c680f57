"""
End to end: client autoconfiguration served by the console's listener in the
server's process, fetched over real HTTP on 127.0.0.1 with urllib, describing
the listeners on the ports they were really bound to.
"""

import plistlib
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

from twisted.trial import unittest

from mailstack.web import autoconfig
from tests.helpers import E2EMixin, listenerTOML

OUTLOOK = "{%s}" % (autoconfig.OUTLOOK_RESPONSE_SCHEMA,)
RESPONSE = "{%s}" % (autoconfig.AUTODISCOVER_RESPONSE_NS,)

LISTENERS = "".join([
    listenerTOML("submission", tls="starttls", name="submission"),
    listenerTOML("submission", tls="implicit", name="submissions"),
    listenerTOML("imap", tls="starttls", name="imap"),
    listenerTOML("imap", tls="implicit", name="imaps"),
    # Plaintext without TLS refused: never advertised.
    listenerTOML("pop3", tls="none", name="pop3"),
]) + '\n[web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'


def fetch(url, body=None, contentType="text/xml"):
    """@return: (status, headers, body bytes), HTTP errors included."""
    request = urllib.request.Request(url, body)
    if body is not None:
        request.add_header("Content-Type", contentType)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class AutoconfigTests(E2EMixin, unittest.TestCase):
    listeners = LISTENERS

    def url(self, path):
        port = self.server.getServiceNamed("web").port.getHost().port
        return "http://127.0.0.1:%d%s" % (port, path)

    def expected(self):
        """(kind, port, socketType) of each advertised listener, best first, as bound."""
        return [("imap", self.port("imaps"), "SSL"), ("imap", self.port("imap"), "STARTTLS"),
                ("smtp", self.port("submissions"), "SSL"),
                ("smtp", self.port("submission"), "STARTTLS")]

    def test_mozilla(self):
        """Both Mozilla paths answer the XML listing each listener on its bound port."""
        def check(results):
            for status, headers, body in results:
                self.assertEqual(status, 200)
                self.assertEqual(headers["Content-Type"], "application/xml; charset=utf-8")
                provider = ET.fromstring(body).find("emailProvider")
                self.assertEqual(provider.get("id"), "lab.test")
                self.assertEqual(
                    [(s.get("type"), int(s.findtext("port")), s.findtext("socketType"))
                     for s in provider if s.tag.endswith("Server")], self.expected())
                self.assertEqual({s.findtext("hostname") for s in provider.iter("incomingServer")},
                                 {"mail.lab.test"})

        def both():
            return [fetch(self.url(path + "?emailaddress=demo%40lab.test"))
                    for path in ("/.well-known/autoconfig/mail/config-v1.1.xml",
                                 "/mail/config-v1.1.xml")]
        return self.inThread(both).addCallback(check)

    def test_autodiscover(self):
        """A POX request POSTed gets a Protocol per listener; a bad body gets 400."""
        request = (
            '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="%s"><Request>'
            '<EMailAddress>demo@lab.test</EMailAddress><AcceptableResponseSchema>%s'
            '</AcceptableResponseSchema></Request></Autodiscover>'
            % (autoconfig.AUTODISCOVER_REQUEST_NS, autoconfig.OUTLOOK_RESPONSE_SCHEMA)
        ).encode("utf-8")

        def check(results):
            (status, _, body), (badStatus, _, badBody) = results
            self.assertEqual(status, 200)
            protocols = ET.fromstring(body).iter(OUTLOOK + "Protocol")
            self.assertEqual(
                [(p.findtext(OUTLOOK + "Type"), int(p.findtext(OUTLOOK + "Port")),
                  p.findtext(OUTLOOK + "Encryption"), p.findtext(OUTLOOK + "LoginName"))
                 for p in protocols],
                [(kind.upper(), port, {"SSL": "SSL", "STARTTLS": "TLS"}[socket], "demo@lab.test")
                 for kind, port, socket in self.expected()])
            self.assertEqual(badStatus, 400)
            self.assertEqual(ET.fromstring(badBody).findtext(
                RESPONSE + "Response/" + RESPONSE + "Error/" + RESPONSE + "ErrorCode"), "600")
        return self.inThread(lambda: [
            fetch(self.url("/autodiscover/autodiscover.xml"), request),
            fetch(self.url("/Autodiscover/Autodiscover.xml"), b"<Autodiscover>")
        ]).addCallback(check)

    def test_mobileconfig(self):
        """The profile downloads as an attachment holding the IMAPS and submissions ports."""
        def check(result):
            status, headers, body = result
            self.assertEqual(status, 200)
            self.assertEqual(headers["Content-Type"], "application/x-apple-aspen-config")
            self.assertEqual(headers["Content-Disposition"],
                             'attachment; filename="demo@lab.test.mobileconfig"')
            [mail] = plistlib.loads(body)["PayloadContent"]
            self.assertEqual((mail["IncomingMailServerPortNumber"],
                              mail["OutgoingMailServerPortNumber"], mail["EmailAddress"]),
                             (self.port("imaps"), self.port("submissions"), "demo@lab.test"))
        return self.inThread(fetch, self.url("/mobileconfig?emailaddress=demo@lab.test")
                             ).addCallback(check)
