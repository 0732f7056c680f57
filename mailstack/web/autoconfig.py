"""
Client autoconfiguration: the documents mail clients fetch to set up an
account by themselves, built from the configured listeners.

  - Mozilla autoconfig (Thunderbird, K-9/Thunderbird for Android, Evolution,
    KMail): C{config-v1.1.xml}, fetched with C{GET} from
    C{/.well-known/autoconfig/mail/config-v1.1.xml} of the address's domain or
    C{/mail/config-v1.1.xml} of C{autoconfig.DOMAIN}, with C{?emailaddress=};
  - Microsoft Autodiscover, the "plain old XML" (POX) form Outlook and many
    other clients use: a C{POST} of an XML request naming the address to
    C{/autodiscover/autodiscover.xml} (or C{/Autodiscover/Autodiscover.xml});
  - an Apple configuration profile (C{.mobileconfig}, a property list with
    one C{com.apple.mail.managed} payload) for iOS and macOS Mail, downloaded
    from C{/mobileconfig?emailaddress=}. It is not signed: the device says
    "Unverified" when it is installed.

What is advertised is L{advertisedServices}: the IMAP, POP3 and submission
listeners a client can log in to, best first (implicit TLS, then STARTTLS,
then plaintext; IMAP before POP3). A listener is left out when a password
could not be used on it: no TLS of any kind and C{allow_plaintext_auth =
false} (a production listener is never offered as "password over a plain
connection"), unless it offers CRAM-MD5 to everyone (C{challenge_auth =
"always"}, IMAP and POP3), which is advertised as an encrypted password.
The C{smtp} listeners (port 25, mail from other servers) are not offered to
clients; mail is submitted on the C{submission} listeners.

The document builders are pure functions of the config and the asked address;
L{autoconfigResources} serves them with C{twisted.web}.
"""

import dataclasses
import plistlib
import uuid
import xml.etree.ElementTree as ET

from twisted.web.resource import Resource

__all__ = ["AdvertisedService", "advertisedServices", "mozillaConfig", "autodiscoverResponse",
           "autodiscoverError", "parseAutodiscoverRequest", "AutodiscoverRequestError",
           "mobileconfig", "autoconfigResources"]

#: socketType values of the Mozilla format, by the listener's C{tls} mode.
SOCKET_TYPES = {"implicit": "SSL", "starttls": "STARTTLS", "none": "plain"}
#: Mozilla authentication values.
CLEARTEXT = "password-cleartext"
ENCRYPTED = "password-encrypted"

#: The command that starts TLS on each protocol (a listener's C{disabled} list
#: may hold it, and then the listener offers no STARTTLS).
_START_TLS = {"imap": "STARTTLS", "pop3": "STLS", "submission": "STARTTLS"}
#: What each advertised protocol is called in the documents.
_KINDS = {"imap": "imap", "pop3": "pop3", "submission": "smtp"}
_TLS_ORDER = {"SSL": 0, "STARTTLS": 1, "plain": 2}
_KIND_ORDER = {"imap": 0, "pop3": 1, "smtp": 2}

# Autodiscover (POX) namespaces, MS-OXDSCLI.
AUTODISCOVER_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
AUTODISCOVER_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_RESPONSE_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
#: The largest Autodiscover request body read (a real one is a few hundred octets).
MAX_REQUEST_BODY = 16384

MOBILECONFIG_TYPE = b"application/x-apple-aspen-config"
XML_TYPE = b"application/xml; charset=utf-8"

# A fixed namespace for the profile's UUIDs: the same server and address give
# the same profile, so downloading it again replaces the installed one.
_PROFILE_NAMESPACE = uuid.UUID("6c1f0d8e-7a0b-5b7e-9a53-0d6f5c0a6d21")


@dataclasses.dataclass(frozen=True)
class AdvertisedService:
    """
    One listener as clients are told about it.

    @ivar listener: the listener's name.
    @ivar kind: C{imap}, C{pop3} or C{smtp} (a submission listener).
    @ivar hostname: where clients connect (C{server.hostname}).
    @ivar port: the listener's port.
    @ivar socketType: C{SSL} (implicit TLS), C{STARTTLS} or C{plain}.
    @ivar authentication: L{CLEARTEXT} or L{ENCRYPTED} (CRAM-MD5).
    """
    listener: str
    kind: str
    hostname: str
    port: int
    socketType: str
    authentication: str


def advertisedServices(config, ports=None):
    """
    The listeners clients are told about, best first.

    @param config: the L{mailstack.config.Config}.
    @param ports: C{{listener name: bound port}} for listeners configured
        on port 0 (known only once bound); a listener on port 0 with no
        bound port, or on a UNIX socket, is not advertised.
    @return: a list of L{AdvertisedService}.
    """
    ports = ports or {}
    found = []
    for index, listener in enumerate(config.listeners):
        if listener.protocol not in _KINDS or listener.address is None:
            continue
        port = listener.address[1] or ports.get(listener.name)
        if not port:
            continue
        tls = listener.tls
        if tls == "starttls" and _START_TLS[listener.protocol] in listener.disabled:
            tls = "none"
        if tls != "none" or listener.allow_plaintext_auth:
            authentication = CLEARTEXT
        elif (listener.protocol != "submission" and listener.challenge_auth == "always"
              and "CRAM-MD5" not in listener.disabled):
            # SMTP offers no AUTH at all before TLS where plaintext is refused.
            authentication = ENCRYPTED
        else:
            continue
        service = AdvertisedService(
            listener=listener.name, kind=_KINDS[listener.protocol],
            hostname=config.server.hostname, port=port,
            socketType=SOCKET_TYPES[tls], authentication=authentication)
        found.append((_KIND_ORDER[service.kind], _TLS_ORDER[service.socketType], index,
                      service))
    return [service for *_, service in sorted(found, key=lambda item: item[:3])]


def splitAddress(config, address):
    """
    Check an address a client asks about.

    @return: C{(address, domain)}, both lower case, or L{None} if C{address}
        is malformed or not in one of C{server.domains}.
    """
    address = address.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or domain not in config.server.domains:
        return None
    if any(c.isspace() or c in "<>\"" or ord(c) < 32 for c in local):
        return None
    return address, domain


def _sub(parent, tag, text=None, **attributes):
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _xml(root):
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def mozillaConfig(config, services, domain=None):
    """
    The Mozilla autoconfig document (C{config-v1.1.xml}).

    @param services: from L{advertisedServices}.
    @param domain: the domain of the address asked about (the provider's id);
        C{server.domains}' first when none was given.
    @return: the document, UTF-8 XML bytes.
    """
    domain = domain or config.server.domains[0]
    root = ET.Element("clientConfig", version="1.1")
    provider = _sub(root, "emailProvider", id=domain)
    for name in [domain] + [d for d in config.server.domains if d != domain]:
        _sub(provider, "domain", name)
    _sub(provider, "displayName", "mailstack on %s" % (config.server.hostname,))
    _sub(provider, "displayShortName", "mailstack")
    for service in services:
        if service.kind == "smtp":
            server = _sub(provider, "outgoingServer", type="smtp")
        else:
            server = _sub(provider, "incomingServer", type=service.kind)
        _sub(server, "hostname", service.hostname)
        _sub(server, "port", str(service.port))
        _sub(server, "socketType", service.socketType)
        _sub(server, "authentication", service.authentication)
        # The client puts the address typed in here itself.
        _sub(server, "username", "%EMAILADDRESS%")
    return _xml(root)


class AutodiscoverRequestError(ValueError):
    """An Autodiscover request body that is not one (its text says why)."""


def parseAutodiscoverRequest(body):
    """
    Read the POX request: C{Autodiscover/Request/EMailAddress} and
    C{AcceptableResponseSchema}.

    A document type declaration is refused (entity expansion is the only
    thing a DTD could add here).

    @param body: the request body (bytes).
    @return: C{(address, acceptableResponseSchema or None)}.
    @raise AutodiscoverRequestError: when the body is not such a request.
    """
    if len(body) > MAX_REQUEST_BODY:
        raise AutodiscoverRequestError("request body over %d octets" % (MAX_REQUEST_BODY,))
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise AutodiscoverRequestError("document type declarations are not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise AutodiscoverRequestError("not well-formed XML: %s" % (e,))
    ns = "{%s}" % (AUTODISCOVER_REQUEST_NS,)
    if root.tag != ns + "Autodiscover":
        raise AutodiscoverRequestError("the root element is not an Autodiscover request")
    request = root.find(ns + "Request")
    address = request.find(ns + "EMailAddress") if request is not None else None
    if address is None or not (address.text or "").strip():
        raise AutodiscoverRequestError("no Request/EMailAddress")
    schema = request.find(ns + "AcceptableResponseSchema")
    return address.text.strip(), (schema.text or "").strip() if schema is not None else None


_POX_TYPES = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}
# Encryption (overrides SSL where understood): SSL is implicit TLS, TLS is STARTTLS.
_POX_ENCRYPTION = {"SSL": "SSL", "STARTTLS": "TLS", "plain": "None"}


def autodiscoverResponse(config, services, address):
    """
    The POX Autodiscover response (the Outlook 2006a response schema) for
    C{address}: one C{Protocol} per advertised listener, best first.

    @return: the document, UTF-8 XML bytes.
    """
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE_NS)
    response = _sub(root, "Response", xmlns=OUTLOOK_RESPONSE_SCHEMA)
    user = _sub(response, "User")
    _sub(user, "DisplayName", address)
    _sub(user, "AutoDiscoverSMTPAddress", address)
    account = _sub(response, "Account")
    _sub(account, "AccountType", "email")
    _sub(account, "Action", "settings")
    for service in services:
        protocol = _sub(account, "Protocol")
        _sub(protocol, "Type", _POX_TYPES[service.kind])
        _sub(protocol, "Server", service.hostname)
        _sub(protocol, "Port", str(service.port))
        _sub(protocol, "LoginName", address)
        _sub(protocol, "DomainRequired", "off")
        # SPA is Microsoft's NTLM, which mailstack does not offer.
        _sub(protocol, "SPA", "off")
        _sub(protocol, "SSL", "on" if service.socketType == "SSL" else "off")
        _sub(protocol, "Encryption", _POX_ENCRYPTION[service.socketType])
        _sub(protocol, "AuthRequired", "on")
        if service.kind == "smtp":
            _sub(protocol, "UsePOPAuth", "on")
    return _xml(root)


def autodiscoverError(code, message, when="00:00:00"):
    """
    A POX Autodiscover error response (MS-OXDSCLI error codes: 500 address
    not found, 600 invalid request, 601 the requested response schema is not
    available).

    @param when: the C{Time} attribute (the server's time of day).
    @return: the document, UTF-8 XML bytes.
    """
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE_NS)
    response = _sub(root, "Response")
    error = _sub(response, "Error", Time=when, Id="0")
    _sub(error, "ErrorCode", str(code))
    _sub(error, "Message", message)
    _sub(error, "DebugData")
    return _xml(root)


def _reverseName(hostname):
    return ".".join(reversed(hostname.split(".")))


def mobileconfig(config, services, address=None):
    """
    An unsigned Apple configuration profile with one mail account payload
    (C{com.apple.mail.managed}): the best advertised incoming listener and
    the best submission listener. Apple's profile says only whether each
    server uses TLS from the start (C{UseSSL}); Mail uses STARTTLS where the
    server offers it.

    @param address: the account's address (the user is asked for it when
        L{None}).
    @return: the profile, XML property list bytes.
    @raise LookupError: when no incoming listener is advertised.
    """
    incoming = [s for s in services if s.kind in ("imap", "pop3")]
    outgoing = [s for s in services if s.kind == "smtp"]
    if not incoming:
        raise LookupError("no IMAP or POP3 listener can be advertised")
    hostname = config.server.hostname
    seed = "%s %s" % (hostname, address or "")
    # One identifier per server and address: installing the profile again
    # replaces it, another student's on the same device stays.
    identifier = "%s.mailstack.%s" % (_reverseName(hostname),
                                      uuid.uuid5(_PROFILE_NAMESPACE, seed).hex[:12])
    account = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier + ".mail",
        "PayloadUUID": str(uuid.uuid5(_PROFILE_NAMESPACE, "mail " + seed)).upper(),
        "PayloadDisplayName": "Mail (%s)" % (hostname,),
        "EmailAccountDescription": "mailstack on %s" % (hostname,),
        "EmailAccountType": "EmailTypeIMAP" if incoming[0].kind == "imap" else "EmailTypePOP",
    }
    account.update(_applyServer("Incoming", incoming[0], address))
    if outgoing:
        account.update(_applyServer("Outgoing", outgoing[0], address))
        account["OutgoingPasswordSameAsIncomingPassword"] = True
    if address:
        account["EmailAddress"] = address
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid5(_PROFILE_NAMESPACE, "profile " + seed)).upper(),
        "PayloadDisplayName": "mailstack mail (%s)" % (address or hostname,),
        "PayloadDescription": "Sets up the mail account on %s (unsigned)." % (hostname,),
        "PayloadOrganization": "mailstack",
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


def _applyServer(direction, service, address):
    """The C{Incoming...}/C{Outgoing...} keys of one server."""
    keys = {
        "MailServerHostName": service.hostname,
        "MailServerPortNumber": service.port,
        "MailServerUseSSL": service.socketType == "SSL",
        "MailServerAuthentication": ("EmailAuthPassword" if service.authentication == CLEARTEXT
                                     else "EmailAuthCRAMMD5"),
    }
    if address:
        keys["MailServerUsername"] = address
    return {direction + key: value for key, value in keys.items()}


# -- twisted.web ------------------------------------------------------------

def _boundPorts(context):
    """
    C{{listener name: port}} of the listeners the context knows bound:
    C{context.listeners} holds C{(ListenerConfig, port or None)} pairs or
    the server's listener services (C{.listener}, and C{.port} once bound).
    """
    ports = {}
    for item in context.listeners or ():
        if hasattr(item, "listener"):
            listener, port = item.listener, getattr(item, "port", None)
            port = port.getHost().port if port is not None else None
        else:
            listener, port = item
        if port:
            ports[listener.name] = port
    return ports


class _AutoconfigResource(Resource):
    """Base: the context, and the advertised services as they are now."""

    isLeaf = True

    def __init__(self, context):
        Resource.__init__(self)
        self.context = context

    def services(self):
        return advertisedServices(self.context.config, _boundPorts(self.context))

    def askedAddress(self, request):
        """The C{emailaddress} query argument, decoded, or L{None}."""
        values = request.args.get(b"emailaddress")
        if not values:
            return None
        try:
            return values[0].decode("utf-8")
        except UnicodeDecodeError:
            return ""

    def plainError(self, request, code, text):
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return (text + "\n").encode("utf-8")


class MozillaAutoconfig(_AutoconfigResource):
    """
    C{GET config-v1.1.xml[?emailaddress=ADDRESS]}: the Mozilla document; 404
    for an address outside C{server.domains}, 400 for a malformed one.
    """

    def render_GET(self, request):
        address = self.askedAddress(request)
        domain = None
        if address is not None:
            checked = splitAddress(self.context.config, address)
            if checked is None:
                if "@" not in address:
                    return self.plainError(request, 400, "emailaddress is not an address")
                return self.plainError(request, 404, "not a domain of this server")
            domain = checked[1]
        request.setHeader(b"content-type", XML_TYPE)
        request.setHeader(b"cache-control", b"no-cache")
        return mozillaConfig(self.context.config, self.services(), domain)

    render_HEAD = render_GET


class Autodiscover(_AutoconfigResource):
    """
    C{POST autodiscover.xml} with a POX request: the POX response; 400 and
    an error document (code 600) for a body that is not a request, an error
    document for an address outside C{server.domains} (500) or another
    response schema than Outlook's (601: ActiveSync's is not served).
    """

    def render_POST(self, request):
        request.setHeader(b"content-type", XML_TYPE)
        when = self.timeOfDay()
        body = request.content.read(MAX_REQUEST_BODY + 1)
        try:
            address, schema = parseAutodiscoverRequest(body)
        except AutodiscoverRequestError:
            request.setResponseCode(400)
            return autodiscoverError(600, "Invalid Request", when)
        if schema and schema != OUTLOOK_RESPONSE_SCHEMA:
            return autodiscoverError(601, "Provider is not available", when)
        checked = splitAddress(self.context.config, address)
        if checked is None:
            return autodiscoverError(500, "The e-mail address cannot be found.", when)
        return autodiscoverResponse(self.context.config, self.services(), checked[0])

    def render_GET(self, request):
        # Clients POST; a browser's GET gets the error Exchange gives it.
        request.setHeader(b"content-type", XML_TYPE)
        return autodiscoverError(600, "Invalid Request", self.timeOfDay())

    def timeOfDay(self):
        seconds = self.context.reactor.seconds() % 86400
        return "%02d:%02d:%02d" % (seconds // 3600, seconds % 3600 // 60, seconds % 60)


class MobileConfig(_AutoconfigResource):
    """
    C{GET /mobileconfig[?emailaddress=ADDRESS]}: the profile as a download
    named after the address (or the server).
    """

    def render_GET(self, request):
        address = self.askedAddress(request)
        if address is not None:
            checked = splitAddress(self.context.config, address)
            if checked is None:
                return self.plainError(request, 400 if "@" not in address else 404,
                                       "emailaddress is not an address of this server")
            address = checked[0]
        try:
            profile = mobileconfig(self.context.config, self.services(), address)
        except LookupError as e:
            return self.plainError(request, 404, str(e))
        name = "%s.mobileconfig" % (_safeFileName(address or self.context.config.server.hostname),)
        request.setHeader(b"content-type", MOBILECONFIG_TYPE)
        request.setHeader(b"content-disposition",
                          ('attachment; filename="%s"' % (name,)).encode("ascii"))
        return profile


def _safeFileName(text):
    return "".join(c if c.isascii() and (c.isalnum() or c in ".-_@") else "_" for c in text)


def autoconfigResources(context):
    """
    The autoconfiguration resources, keyed by their path segments, for the
    web app to mount (L{mailstack.web.app.buildRoot}).

    @param context: the L{mailstack.web.context.WebContext}.
    @return: C{{(segment, ...): resource}}.
    """
    mozilla = MozillaAutoconfig(context)
    autodiscover = Autodiscover(context)
    return {
        (b".well-known", b"autoconfig", b"mail", b"config-v1.1.xml"): mozilla,
        (b"mail", b"config-v1.1.xml"): mozilla,
        (b"autodiscover", b"autodiscover.xml"): autodiscover,
        (b"Autodiscover", b"Autodiscover.xml"): autodiscover,
        (b"mobileconfig",): MobileConfig(context),
    }
