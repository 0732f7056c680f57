"""
TLS for every listener: one server context (TLS 1.2 or newer) loaded from PEM
files, self-signed certificate generation for the lab, and the one-line
description of a TLS connection used in Received headers (RFC 3848 style).

STARTTLS/STLS listeners hand the context to C{transport.startTLS}; implicit TLS
listeners wrap their factory in a L{twisted.protocols.tls.TLSMemoryBIOFactory}.
Both use the same L{serverContextFactory} result.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.logger import Logger

from mailstack.storage.files import atomicWrite, makeDirectories

log = Logger()

# config value -> lowest protocol version the server accepts
MINIMUM_VERSIONS = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


class TLSConfigError(Exception):
    """
    The certificate or key cannot be used; the text is one line naming the file.
    """


# -- certificate generation --------------------------------------------------

def _subjectAlternativeNames(hostnames):
    """
    SAN entries for C{hostnames} (IP literals become IPAddress entries), plus
    the loopback addresses, without duplicates.
    """
    names, seen = [], set()

    def add(entry):
        if entry not in seen:
            seen.add(entry)
            names.append(entry)

    for hostname in hostnames:
        try:
            add(x509.IPAddress(ipaddress.ip_address(hostname)))
        except ValueError:
            add(x509.DNSName(hostname.encode("idna").decode("ascii")
                             if not hostname.isascii() else hostname))
    add(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    add(x509.IPAddress(ipaddress.ip_address("::1")))
    return names


def generateSelfSigned(hostnames, days=825):
    """
    Make a self-signed server certificate for the lab: EC P-256 key, CN the
    first host name, every host name (and 127.0.0.1, ::1) in subjectAltName,
    not a CA, serverAuth only. 825 days is the longest validity Apple clients
    accept for a server certificate.

    @param hostnames: non-empty list of host names (or IP address literals).
    @return: C{(certPEM, keyPEM)} as bytes; the key is unencrypted PKCS#8.
    """
    hostnames = [h for h in hostnames if h]
    if not hostnames:
        raise ValueError("at least one host name is needed")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    publicKey = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(publicKey)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_subjectAlternativeNames(hostnames)),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(publicKey),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(publicKey),
                       critical=False)
    )
    certificate = builder.sign(key, hashes.SHA256())
    certPEM = certificate.public_bytes(serialization.Encoding.PEM)
    keyPEM = key.private_bytes(serialization.Encoding.PEM,
                               serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    return certPEM, keyPEM


def ensureCertificate(certPath, keyPath, hostnames, force=False):
    """
    Create a self-signed certificate and key unless both files exist. Both are
    C{0600}, and a directory made for them C{0700}: private, like everything
    under the data directory (the server, running as their owner, reads them).

    @param force: replace existing files (the admin's C{cert generate}).
    @return: True if new files were written, False if the existing ones are kept.
    """
    certPath, keyPath = os.fspath(certPath), os.fspath(keyPath)
    if not force and os.path.exists(certPath) and os.path.exists(keyPath):
        return False
    certPEM, keyPEM = generateSelfSigned(hostnames)
    for path in (certPath, keyPath):
        makeDirectories(os.path.dirname(os.path.abspath(path)))
    # key first: a cert without its key is useless, a key without its cert is
    # regenerated on the next start anyway
    # through a temporary file and a rename, so a reader never sees half a
    # file; 0600 from the start (the key is never readable by others); no
    # directory fsync: a certificate lost in a crash is made again
    atomicWrite(keyPath, keyPEM, 0o600, syncDirectory=False)
    atomicWrite(certPath, certPEM, 0o600, syncDirectory=False)
    return True


# -- the server context ------------------------------------------------------

def _readPEM(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise TLSConfigError("cannot load certificate %s: file not found" % (path,))
    except OSError as e:
        raise TLSConfigError("cannot load certificate %s: %s" % (path, e.strerror or e))


def _publicKeyBytes(key):
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def serverContextFactory(certPath, keyPath, minVersion="1.2"):
    """
    Load the PEM certificate (followed by its chain, if the file holds several)
    and the private key into a server context accepting TLS C{minVersion} or
    newer.

    @param minVersion: C{"1.2"} or C{"1.3"}.
    @raise TLSConfigError: a file is missing, unreadable, not PEM, or the key
        does not belong to the certificate.
    """
    certPath, keyPath = os.fspath(certPath), os.fspath(keyPath)
    if minVersion not in MINIMUM_VERSIONS:
        raise TLSConfigError("unknown minimum TLS version %r (use %s)" % (
            minVersion, " or ".join(sorted(MINIMUM_VERSIONS))))

    certData = _readPEM(certPath)
    try:
        certificates = x509.load_pem_x509_certificates(certData)
    except ValueError:
        raise TLSConfigError("cannot load certificate %s: not a PEM certificate"
                             % (certPath,))
    if not certificates:
        raise TLSConfigError("cannot load certificate %s: no certificate in the file"
                             % (certPath,))

    keyData = _readPEM(keyPath)
    try:
        key = serialization.load_pem_private_key(keyData, password=None)
    except TypeError:
        raise TLSConfigError("cannot load certificate %s: the key is encrypted "
                             "with a passphrase" % (keyPath,))
    except Exception as e:
        # cryptography raises ValueError for garbage and UnsupportedAlgorithm
        # for unknown key types; both mean the same thing to the admin
        raise TLSConfigError("cannot load certificate %s: not a PEM private key (%s)"
                             % (keyPath, str(e).splitlines()[0] if str(e) else
                                type(e).__name__))

    leaf = certificates[0]
    if _publicKeyBytes(leaf.public_key()) != _publicKeyBytes(key.public_key()):
        raise TLSConfigError("cannot load certificate %s: the key in %s does not "
                             "match it" % (certPath, keyPath))

    now = datetime.datetime.now(datetime.timezone.utc)
    if leaf.not_valid_after_utc < now:
        log.warn("TLS certificate {path} expired on {date}", path=certPath,
                 date=leaf.not_valid_after_utc.isoformat())

    try:
        options = ssl.CertificateOptions(
            # pyOpenSSL takes cryptography objects directly (its own X509
            # and PKey wrappers are deprecated for this use)
            privateKey=key,
            certificate=leaf,
            extraCertChain=list(certificates[1:]),
            raiseMinimumTo=MINIMUM_VERSIONS[minVersion],
        )
        # build the context now, so a problem shows at start-up, not at the
        # first handshake
        options.getContext()
    except (SSL.Error, crypto.Error, TypeError, ValueError) as e:
        raise TLSConfigError("cannot load certificate %s: %s" % (
            certPath, str(e) or type(e).__name__))
    return options


# -- describing a connection -------------------------------------------------

def _findTLSConnection(transport, depth=8):
    """
    The L{OpenSSL.SSL.Connection} behind C{transport}, looking through
    protocol wrappers (their C{transport} / C{wrappedProtocol}); or None.
    """
    pending, seen = [transport], set()
    while pending and depth > 0:
        depth -= 1
        candidates, pending = pending, []
        for obj in candidates:
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            getHandle = getattr(obj, "getHandle", None)
            if getHandle is not None:
                try:
                    handle = getHandle()
                except Exception:
                    handle = None
                if isinstance(handle, SSL.Connection):
                    return handle
            for attribute in ("transport", "wrappedProtocol"):
                inner = getattr(obj, "__dict__", {}).get(attribute)
                if inner is not None:
                    pending.append(inner)
    return None


def describeConnection(transport):
    """
    Describe the TLS session of C{transport} the way Postfix does in Received
    headers, e.g. C{"TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"}.

    @return: the text, or None if the transport is not TLS or the handshake has
        not finished.
    """
    connection = _findTLSConnection(transport)
    if connection is None:
        return None
    try:
        version = connection.get_protocol_version_name()
        cipher = connection.get_cipher_name()
        bits = connection.get_cipher_bits()
    except SSL.Error:
        return None
    if not cipher or not version or version == "Unknown":
        return None
    # pyOpenSSL exposes only the secret bits; for every cipher TLS 1.2+ can
    # negotiate the algorithm bits are the same number
    return "%s with cipher %s (%d/%d bits)" % (version, cipher, bits, bits)
