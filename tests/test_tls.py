"""
Tests for L{mailstack.tls}: certificate generation, loading the server context,
and real TLS handshakes on loopback.
"""

import datetime
import ipaddress
import os
import socket
import ssl
import stat
import warnings

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.internet import defer, endpoints, protocol, reactor, threads
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest

from mailstack import tls


def writeCertificate(testCase, hostnames=("localhost",)):
    """
    A fresh self-signed certificate and key in a temporary directory.

    @return: C{(certPath, keyPath)}.
    """
    directory = testCase.mktemp()
    certPath = os.path.join(directory, "cert.pem")
    keyPath = os.path.join(directory, "key.pem")
    tls.ensureCertificate(certPath, keyPath, list(hostnames))
    return certPath, keyPath


class GenerateSelfSignedTests(unittest.TestCase):
    """
    L{tls.generateSelfSigned} makes a usable lab server certificate.
    """

    def setUp(self):
        certPEM, self.keyPEM = tls.generateSelfSigned(
            ["mail.lab.test", "localhost", "192.0.2.7"], days=30)
        self.cert = x509.load_pem_x509_certificate(certPEM)

    def test_commonName(self):
        """The CN is the first host name."""
        cn = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self.assertEqual([a.value for a in cn], ["mail.lab.test"])
        self.assertEqual(self.cert.issuer, self.cert.subject)

    def test_subjectAlternativeNames(self):
        """Every host name and both loopback addresses are in the SAN."""
        san = self.cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName),
                         ["mail.lab.test", "localhost"])
        self.assertEqual(san.get_values_for_type(x509.IPAddress), [
            ipaddress.ip_address("192.0.2.7"), ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("::1")])

    def test_serverCertificateNotCA(self):
        """The certificate is no CA and is for TLS servers only."""
        constraints = self.cert.extensions.get_extension_for_class(
            x509.BasicConstraints)
        self.assertFalse(constraints.value.ca)
        eku = self.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        self.assertEqual(list(eku.value), [ExtendedKeyUsageOID.SERVER_AUTH])

    def test_validity(self):
        """Valid from yesterday for the given number of days."""
        now = datetime.datetime.now(datetime.timezone.utc)
        before = now - self.cert.not_valid_before_utc
        after = self.cert.not_valid_after_utc - now
        self.assertTrue(datetime.timedelta(hours=23) < before < datetime.timedelta(days=2))
        self.assertTrue(datetime.timedelta(days=29) < after <= datetime.timedelta(days=30))

    def test_keyIsPEM(self):
        """The key is an unencrypted PEM private key."""
        self.assertTrue(self.keyPEM.startswith(b"-----BEGIN PRIVATE KEY-----"))

    def test_noHostnames(self):
        """At least one host name is required."""
        self.assertRaises(ValueError, tls.generateSelfSigned, [])


class EnsureCertificateTests(unittest.TestCase):
    """
    L{tls.ensureCertificate} creates files once, and again when forced.
    """

    def setUp(self):
        directory = self.mktemp()
        self.certPath = os.path.join(directory, "tls", "cert.pem")
        self.keyPath = os.path.join(directory, "tls", "key.pem")

    def read(self):
        with open(self.certPath, "rb") as c, open(self.keyPath, "rb") as k:
            return c.read(), k.read()

    def test_creates(self):
        """Missing files are created, parent directories too; the key is 0600."""
        self.assertTrue(tls.ensureCertificate(self.certPath, self.keyPath, ["localhost"]))
        self.assertEqual(stat.S_IMODE(os.stat(self.keyPath).st_mode), 0o600)
        tls.serverContextFactory(self.certPath, self.keyPath)
        self.assertEqual(sorted(os.listdir(os.path.dirname(self.certPath))),
                         ["cert.pem", "key.pem"])

    def test_privateModes(self):
        """Under umask 022 the new certificate folder is 0700, the key and certificate 0600."""
        from tests.test_files import modes, useUmask
        useUmask(self)
        top = self.mktemp()
        tls.ensureCertificate(os.path.join(top, "tls", "cert.pem"),
                              os.path.join(top, "tls", "key.pem"), ["localhost"])
        self.assertEqual(modes(top), {".": 0o700, "tls": 0o700, "tls/cert.pem": 0o600,
                                      "tls/key.pem": 0o600})

    def test_idempotent(self):
        """Existing files are kept."""
        tls.ensureCertificate(self.certPath, self.keyPath, ["localhost"])
        before = self.read()
        self.assertFalse(tls.ensureCertificate(self.certPath, self.keyPath, ["localhost"]))
        self.assertEqual(self.read(), before)

    def test_force(self):
        """force=True replaces existing files."""
        tls.ensureCertificate(self.certPath, self.keyPath, ["localhost"])
        before = self.read()
        self.assertTrue(tls.ensureCertificate(self.certPath, self.keyPath,
                                              ["localhost"], force=True))
        after = self.read()
        self.assertNotEqual(after[0], before[0])
        self.assertNotEqual(after[1], before[1])

    def test_missingKey(self):
        """A certificate without its key is replaced by a new pair."""
        tls.ensureCertificate(self.certPath, self.keyPath, ["localhost"])
        os.unlink(self.keyPath)
        self.assertTrue(tls.ensureCertificate(self.certPath, self.keyPath, ["localhost"]))
        tls.serverContextFactory(self.certPath, self.keyPath)


class ServerContextFactoryTests(unittest.TestCase):
    """
    L{tls.serverContextFactory} loads good files and names the bad one.
    """

    def setUp(self):
        self.certPath, self.keyPath = writeCertificate(self)

    def assertConfigError(self, certPath, keyPath, path, reason):
        error = self.assertRaises(tls.TLSConfigError, tls.serverContextFactory,
                                  certPath, keyPath)
        text = str(error)
        self.assertIn("cannot load certificate %s" % (path,), text)
        self.assertIn(reason, text)
        self.assertNotIn("\n", text)

    def test_loads(self):
        """Good files give a context that presents the certificate from the file."""
        options = tls.serverContextFactory(self.certPath, self.keyPath, "1.3")
        served = SSL.Connection(options.getContext(), None).get_certificate()
        with open(self.certPath, "rb") as f:
            onDisk = x509.load_pem_x509_certificate(f.read())
        self.assertEqual(served.to_cryptography(), onDisk)
        self.assertEqual(options.extraCertChain, [])

    def test_chain(self):
        """A file holding the certificate and its chain loads."""
        chainPath = self.certPath + ".chain"
        otherCert, _ = tls.generateSelfSigned(["ca.lab.test"])
        with open(self.certPath, "rb") as f, open(chainPath, "wb") as out:
            out.write(f.read() + otherCert)
        options = tls.serverContextFactory(chainPath, self.keyPath)
        self.assertEqual(len(options.extraCertChain), 1)

    def test_missingFile(self):
        """A missing certificate is named."""
        missing = self.certPath + ".missing"
        self.assertConfigError(missing, self.keyPath, missing, "file not found")

    def test_missingKey(self):
        """A missing key is named."""
        missing = self.keyPath + ".missing"
        self.assertConfigError(self.certPath, missing, missing, "file not found")

    def test_garbageCertificate(self):
        """A file that is not a PEM certificate is named."""
        garbage = self.certPath + ".garbage"
        with open(garbage, "wb") as f:
            f.write(b"this is not a certificate\n")
        self.assertConfigError(garbage, self.keyPath, garbage, "not a PEM certificate")

    def test_garbageKey(self):
        """A file that is not a PEM key is named."""
        with open(self.keyPath, "wb") as f:
            f.write(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
        self.assertConfigError(self.certPath, self.keyPath, self.keyPath,
                               "not a PEM private key")

    def test_keyMismatch(self):
        """A key of another certificate is refused."""
        _, otherKey = writeCertificate(self)
        self.assertConfigError(self.certPath, otherKey, self.certPath,
                               "does not match")

    def test_unknownVersion(self):
        """Only 1.2 and 1.3 are minimum versions."""
        error = self.assertRaises(tls.TLSConfigError, tls.serverContextFactory,
                                  self.certPath, self.keyPath, "1.1")
        self.assertIn("1.1", str(error))


class DescribingServer(protocol.Protocol):
    """
    Answers the first bytes with the description of its own transport.
    """

    def dataReceived(self, data):
        description = tls.describeConnection(self.transport)
        self.transport.write(repr(description).encode("ascii"))
        self.transport.loseConnection()


def talk(port, cafile, maximum=None, minimum=None):
    """
    A blocking stdlib TLS client (run in a thread): verify the server as
    localhost, send a line, return everything the server sends.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile)
    if minimum is not None:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname="localhost") as conn:
            conn.sendall(b"hello\r\n")
            received = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return received
                received += chunk


class HandshakeTests(unittest.TestCase):
    """
    Real TLS on loopback with the generated certificate.
    """

    def setUp(self):
        self.certPath, self.keyPath = writeCertificate(self)

    @defer.inlineCallbacks
    def listen(self, minVersion="1.2", wrap=False):
        factory = protocol.Factory.forProtocol(DescribingServer)
        if wrap:
            factory = WrappingFactory(factory)
        context = tls.serverContextFactory(self.certPath, self.keyPath, minVersion)
        endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = yield endpoint.listen(TLSMemoryBIOFactory(context, False, factory))
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @defer.inlineCallbacks
    def test_describeTLS13(self):
        """A default client gets TLS 1.3, described RFC 3848 style."""
        port = yield self.listen()
        answer = yield threads.deferToThread(talk, port, self.certPath)
        self.assertEqual(answer, repr(
            "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)").encode())

    @defer.inlineCallbacks
    def test_describeThroughWrappers(self):
        """A transport that is a protocol wrapper is looked through."""
        port = yield self.listen(wrap=True)
        answer = yield threads.deferToThread(talk, port, self.certPath)
        self.assertIn(b"TLSv1.3 with cipher ", answer)

    @defer.inlineCallbacks
    def test_tls12Accepted(self):
        """A client limited to TLS 1.2 is served with TLS 1.2."""
        port = yield self.listen()
        answer = yield threads.deferToThread(talk, port, self.certPath,
                                             maximum=ssl.TLSVersion.TLSv1_2)
        self.assertTrue(answer.startswith(b"'TLSv1.2 with cipher "), answer)

    @defer.inlineCallbacks
    def test_tls11Refused(self):
        """A client limited to TLS 1.1 cannot connect."""
        port = yield self.listen()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            version = ssl.TLSVersion.TLSv1_1
        d = threads.deferToThread(talk, port, self.certPath,
                                  minimum=version, maximum=version)
        error = yield self.assertFailure(d, ssl.SSLError)
        # the server's protocol_version alert, not a client-side refusal
        self.assertIn("PROTOCOL_VERSION", str(error).upper())

    @defer.inlineCallbacks
    def test_minimum13(self):
        """With minVersion 1.3 a TLS 1.2 client is refused."""
        port = yield self.listen(minVersion="1.3")
        d = threads.deferToThread(talk, port, self.certPath,
                                  maximum=ssl.TLSVersion.TLSv1_2)
        error = yield self.assertFailure(d, ssl.SSLError)
        self.assertIn("PROTOCOL_VERSION", str(error).upper())

    def test_notTLS(self):
        """A plain transport has no description."""
        self.assertIsNone(tls.describeConnection(StringTransport()))
        self.assertIsNone(tls.describeConnection(None))
