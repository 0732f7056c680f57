"""
Configuration: a TOML file read with tomllib into frozen dataclasses.

Every problem is a L{ConfigError} whose text is one line, C{FILE: KEY: reason}, so
twistd can exit at start with something a student can act on. Unknown keys, wrong
types, bad endpoint strings, duplicate ports and missing certificate files are all
refused here, before any listener starts.

Relative paths in the file are relative to the directory holding the file.
"""

import dataclasses
import ipaddress
import os.path
import socket
import tomllib
from pathlib import Path

from mailstack.auth.backends import DEFAULT_BACKEND, backendNamed, backendNames, locationKey
from mailstack.storage import backends as storebackends
from mailstack.storage import keep as storekeep

PROTOCOLS = ("smtp", "submission", "pop3", "imap")
TLS_MODES = ("none", "starttls", "implicit")
TLS_VERSIONS = ("1.2", "1.3")
PASSWORD_SCHEMES = ("PLAIN", "BLF-CRYPT")
# listener.challenge_auth: when CRAM-MD5 and APOP are offered (docs/lab.md).
CHALLENGE_AUTH = ("auto", "always")
ENDPOINT_TYPES = ("tcp", "tcp6", "unix")


class ConfigError(Exception):
    """
    A configuration problem; C{str()} is one line naming the file, key and reason.
    """

    def __init__(self, path, key, reason):
        self.path = path
        self.key = key
        self.reason = reason
        Exception.__init__(self, "%s: %s: %s" % (path, key, reason))


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    hostname: str
    data_dir: Path
    domains: tuple
    default_domain: str | None
    # Processes sharing every listener (mailstack.workers); 1: this one alone.
    workers: int = 1
    # Which of them this process is (not a config key: 1 for the one twistd
    # started, 2.. for the workers it starts, which set it with --worker).
    worker: int = 1


@dataclasses.dataclass(frozen=True)
class TLSConfig:
    cert: Path
    key: Path
    generate_self_signed: bool
    min_version: str


@dataclasses.dataclass(frozen=True)
class ListenerConfig:
    name: str
    protocol: str
    endpoint: str
    tls: str
    allow_plaintext_auth: bool
    disabled: tuple
    challenge_auth: str = "auto"
    max_connections: int = 500

    @property
    def address(self):
        """
        C{(interface, port)} of a TCP endpoint (interface '' means all), or L{None}.
        """
        return _endpointAddress(self.endpoint)


@dataclasses.dataclass(frozen=True)
class LimitsConfig:
    message_size: int
    line_length: int
    smtp_line_length: int
    text_line_length: int
    literal_size: int
    recipients_per_message: int
    connections_per_ip: int
    commands_per_session: int
    bad_commands: int
    auth_failures_delay: int
    auth_failures_disconnect: int
    auth_failure_delay_seconds: float
    idle_timeout: int
    command_timeout: int
    bcrypt_rounds: int
    auth_failure_delay_max_seconds: float = 15.0
    auth_penalty_seconds: int = 300
    auth_penalty_addresses: int = 10000
    command_line_timeout: int = 60


@dataclasses.dataclass(frozen=True)
class MagicRecipientConfig:
    """
    One C{[[lab.magic]]} table: a recipient that answers as C{action} says
    (L{MAGIC_ACTIONS}), for teaching error handling. It matches the whole
    C{address}, or C{local_part} at any domain (lower case; the other is
    L{None}). C{seconds}: the wait of C{slow}, C{greylist} and C{bounce}
    (L{None} for the others).
    """

    action: str
    address: str | None = None
    local_part: str | None = None
    seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class LabConfig:
    demo_account: bool
    demo_address: str
    demo_password: str
    demo_scheme: str
    transcripts: bool
    capture: bool = False  # keep mail for other domains instead of relaying it
    magic: tuple = ()  # MagicRecipientConfig, in file order


@dataclasses.dataclass(frozen=True)
class RelayConfig:
    smarthost: tuple | None
    require_tls: bool
    queue_lifetime: int
    retry_schedule: tuple


@dataclasses.dataclass(frozen=True)
class SMTPConfig:
    bare_newline: str


@dataclasses.dataclass(frozen=True)
class UsersConfig:
    """
    C{[users]}: the backend, and where its users are: C{path} for a file
    backend, C{dsn} for a database server (the other one is L{None}).
    """

    backend: str
    path: Path | None
    dsn: str | None = None

    @property
    def locationKey(self):
        """The key that says where the users are (C{path} or C{dsn}), for messages."""
        return "path" if self.dsn is None else "dsn"

    @property
    def location(self):
        """What the backend opens: the path, or the DSN."""
        return self.path if self.dsn is None else self.dsn


@dataclasses.dataclass(frozen=True)
class POP3Config:
    lock: str  # "wait" (one session per maildrop, others wait) or "snapshot"
    lock_wait: float  # seconds a login waits for a busy maildrop


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    backend: str
    cached_mailboxes: int = storekeep.DEFAULT_SIZE  # unused mailboxes kept in memory


@dataclasses.dataclass(frozen=True)
class WebConfig:
    """
    C{[web]}: the console and its API, served by the mail server's process.
    C{tls}: served over TLS with the server's certificate (required off
    loopback). C{session_timeout}: seconds a console login lasts unused.
    """

    endpoint: str
    tls: bool
    session_timeout: int

    @property
    def address(self):
        """C{(interface, port)} of a TCP endpoint, or L{None} (a UNIX socket)."""
        return _endpointAddress(self.endpoint)


@dataclasses.dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig
    tls: TLSConfig
    listeners: tuple
    limits: LimitsConfig
    lab: LabConfig
    relay: RelayConfig
    smtp: SMTPConfig
    users: UsersConfig
    storage: StorageConfig = StorageConfig(backend=storebackends.DEFAULT_BACKEND)
    web: WebConfig | None = None  # no [web] section: no console
    pop3: POP3Config = POP3Config(lock="wait", lock_wait=5.0)

    @property
    def users_file(self):
        """
        Where the users are: the passwd-file or the database file (C{[users]
        path}); L{None} for a database server (C{[users] dsn}).
        """
        return self.users.path

    @property
    def mail_dir(self):
        """The root of every user's Maildir."""
        return self.server.data_dir / "mail"

    @property
    def transcript_dir(self):
        """Where per-session transcripts are written."""
        return self.server.data_dir / "transcripts"

    @property
    def queue_dir(self):
        """
        Where outbound mail waits for the smarthost: each worker process
        (C{[server] workers}) has its own, which its successor recovers.
        """
        if self.server.worker > 1:
            return self.server.data_dir / "queue" / ("worker-%d" % (self.server.worker,))
        return self.server.data_dir / "queue"

    @property
    def needs_tls(self):
        """True if any listener (or the web console) offers TLS."""
        return (any(listener.tls != "none" for listener in self.listeners)
                or (self.web is not None and self.web.tls))


# Each section: key -> (type or tuple of types, default). A default of _REQUIRED
# means the key must be present.
_REQUIRED = object()

_SERVER = {
    "hostname": (str, None),
    "data_dir": (str, "var"),
    "domains": (list, _REQUIRED),
    "default_domain": (str, None),
    "workers": (int, 1),
}
# [server] workers: the most processes one server may run (every endpoint
# kind a listener may have, tcp, tcp6 and unix, can be handed to them).
MAX_WORKERS = 64
_TLS = {
    "cert": (str, "var/tls/cert.pem"),
    "key": (str, "var/tls/key.pem"),
    "generate_self_signed": (bool, False),
    "min_version": (str, "1.2"),
}
_LISTENER = {
    "name": (str, None),
    "protocol": (str, _REQUIRED),
    "endpoint": (str, _REQUIRED),
    "tls": (str, "none"),
    "allow_plaintext_auth": (bool, False),
    "disabled": (list, []),
    "challenge_auth": (str, "auto"),
    "max_connections": (int, 500),
}
_LIMITS = {
    "message_size": (int, 25 * 1024 * 1024),
    "line_length": (int, 65536),
    "smtp_line_length": (int, 512),
    "text_line_length": (int, 1000),
    "literal_size": (int, 25 * 1024 * 1024),
    "recipients_per_message": (int, 100),
    "connections_per_ip": (int, 20),
    "commands_per_session": (int, 100000),
    "bad_commands": (int, 20),
    "auth_failures_delay": (int, 2),
    "auth_failures_disconnect": (int, 10),
    "auth_failure_delay_seconds": ((int, float), 2.0),
    "auth_failure_delay_max_seconds": ((int, float), 15.0),
    "auth_penalty_seconds": (int, 300),
    "auth_penalty_addresses": (int, 10000),
    "idle_timeout": (int, 1800),
    "command_timeout": (int, 600),
    "command_line_timeout": (int, 60),
    "bcrypt_rounds": (int, 10),
}
_LIMIT_MINIMUMS = {
    "message_size": 1024,
    "line_length": 512,
    "smtp_line_length": 512,
    "text_line_length": 1000,
    "literal_size": 1024,
    "recipients_per_message": 1,
    "connections_per_ip": 0,
    "commands_per_session": 1,
    "bad_commands": 1,
    "auth_failures_delay": 1,
    "auth_failures_disconnect": 1,
    "auth_failure_delay_seconds": 0,
    "auth_failure_delay_max_seconds": 0,
    "auth_penalty_seconds": 1,
    "auth_penalty_addresses": 1,
    "idle_timeout": 1,
    "command_timeout": 1,
    "command_line_timeout": 1,
    "bcrypt_rounds": 4,
}
_LAB = {
    "demo_account": (bool, False),
    "demo_address": (str, "demo@lab.test"),
    "demo_password": (str, "demo"),
    "demo_scheme": (str, "PLAIN"),
    "transcripts": (bool, False),
    "capture": (bool, False),
    "magic": (list, []),
}
_MAGIC = {
    "address": (str, None),
    "local_part": (str, None),
    "action": (str, _REQUIRED),
    "seconds": ((int, float), None),
}
# lab.magic action -> the default of its seconds (None: it takes none).
MAGIC_ACTIONS = {"tempfail": None, "reject": None, "slow": 10, "greylist": 60,
                 "bounce": 5}
MAGIC_MAX_SECONDS = 86400
_RELAY = {
    "smarthost": (str, ""),
    "require_tls": (bool, False),
    "queue_lifetime": (int, 5 * 24 * 3600),
    "retry_schedule": (list, [60, 300, 900, 1800, 3600]),
}
_SMTP = {
    "bare_newline": (str, "normalize"),
}
BARE_NEWLINE_POLICIES = ("normalize", "reject")
_POP3 = {
    "lock": (str, "wait"),
    "lock_wait": ((int, float), 5),
}
POP3_LOCKS = ("wait", "snapshot")
_USERS = {
    "backend": (str, DEFAULT_BACKEND),
    # Default: the backend's own file name in data_dir.
    "path": (str, None),
    # For a database server (postgresql): a libpq connection string or URI.
    "dsn": (str, None),
}
_STORAGE = {
    "backend": (str, storebackends.DEFAULT_BACKEND),
    "cached_mailboxes": (int, storekeep.DEFAULT_SIZE),
}
_WEB = {
    "endpoint": (str, _REQUIRED),
    "tls": (bool, False),
    "session_timeout": (int, 8 * 3600),
}
_TOP = ("server", "tls", "listener", "limits", "lab", "relay", "smtp", "users",
        "storage", "web", "pop3")

_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer",
               list: "a list", float: "a number"}


def loadConfig(path, checkFiles=True):
    """
    Read and validate a configuration file.

    @param path: the TOML file (str or Path).
    @param checkFiles: require the certificate files to exist when a listener
        needs them; the admin CLI passes C{False} so that C{cert generate} and
        user management work before any certificate is installed.
    @return: a L{Config}.
    @raise ConfigError: on any problem, naming file, key and reason.
    """
    path = Path(path)
    shown = str(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(shown, "-", "file not found")
    except OSError as e:
        raise ConfigError(shown, "-", "cannot read file: %s" % (e.strerror,))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(shown, "-", "not valid TOML: %s" % (e,))
    return _Loader(shown, path.resolve().parent, checkFiles).build(raw)


class _Loader:
    """
    Turns the parsed TOML dict into a L{Config}, raising on the first problem.
    """

    def __init__(self, shown, base, checkFiles=True):
        self.shown = shown
        self.base = base
        self.checkFiles = checkFiles

    def error(self, key, reason):
        return ConfigError(self.shown, key, reason)

    def section(self, raw, name, schema, prefix=None):
        """
        Check one table against its schema; return a dict with defaults filled in.
        """
        prefix = prefix or name
        if not isinstance(raw, dict):
            raise self.error(prefix, "must be a table")
        for key in raw:
            if key not in schema:
                raise self.error("%s.%s" % (prefix, key), "unknown key (allowed: %s)" % (
                    ", ".join(sorted(schema)),))
        values = {}
        for key, (kind, default) in schema.items():
            full = "%s.%s" % (prefix, key)
            if key not in raw:
                if default is _REQUIRED:
                    raise self.error(full, "required key is missing")
                values[key] = default
                continue
            value = raw[key]
            kinds = kind if isinstance(kind, tuple) else (kind,)
            # bool is an int in Python; never accept it where a number is wanted.
            if not isinstance(value, kinds) or (
                    isinstance(value, bool) and bool not in kinds):
                raise self.error(full, "must be %s, not %r" % (
                    " or ".join(_TYPE_NAMES[k] for k in kinds), value))
            values[key] = value
        return values

    def path(self, value):
        p = Path(value).expanduser()
        if not p.is_absolute():
            p = self.base / p
        return Path(os.path.normpath(str(p)))

    def build(self, raw):
        for key in raw:
            if key not in _TOP:
                raise self.error(key, "unknown section (allowed: %s)" % (
                    ", ".join(_TOP),))
        if "server" not in raw:
            raise self.error("server", "required section is missing")
        server = self.buildServer(raw["server"])
        listeners = self.buildListeners(raw.get("listener", []))
        web = self.buildWeb(raw["web"], listeners) if "web" in raw else None
        tls = self.buildTLS(raw.get("tls", {}), listeners, web)
        limits = self.buildLimits(raw.get("limits", {}))
        lab = self.buildLab(raw.get("lab", {}), server)
        relay = self.buildRelay(raw.get("relay", {}))
        smtp = self.buildSMTP(raw.get("smtp", {}))
        pop3 = self.buildPOP3(raw.get("pop3", {}))
        users = self.buildUsers(raw.get("users", {}), server)
        storage = self.buildStorage(raw.get("storage", {}))
        return Config(path=Path(self.shown), server=server, tls=tls,
                      listeners=listeners, limits=limits, lab=lab, relay=relay,
                      smtp=smtp, users=users, storage=storage, web=web,
                      pop3=pop3)

    def buildServer(self, raw):
        values = self.section(raw, "server", _SERVER)
        domains = []
        for i, domain in enumerate(values["domains"]):
            key = "server.domains[%d]" % (i,)
            if not isinstance(domain, str) or not _isDomain(domain):
                raise self.error(key, "not a domain name: %r" % (domain,))
            if domain.lower() in domains:
                raise self.error(key, "domain listed twice: %r" % (domain,))
            domains.append(domain.lower())
        if not domains:
            raise self.error("server.domains", "at least one local domain is needed")
        default = values["default_domain"]
        if default is not None:
            default = default.lower()
            if default not in domains:
                raise self.error("server.default_domain",
                                 "%r is not one of server.domains" % (default,))
        hostname = values["hostname"] or socket.getfqdn()
        if not _isDomain(hostname):
            raise self.error("server.hostname", "not a host name: %r" % (hostname,))
        if not 1 <= values["workers"] <= MAX_WORKERS:
            raise self.error("server.workers", "must be from 1 to %d, not %r" % (
                MAX_WORKERS, values["workers"]))
        return ServerConfig(hostname=hostname, data_dir=self.path(values["data_dir"]),
                            domains=tuple(domains), default_domain=default,
                            workers=values["workers"])

    def buildListeners(self, raw):
        if not isinstance(raw, list):
            raise self.error("listener", "must be an array of tables ([[listener]])")
        listeners = []
        names = set()
        for i, item in enumerate(raw):
            prefix = "listener[%d]" % (i,)
            values = self.section(item, prefix, _LISTENER)
            if values["protocol"] not in PROTOCOLS:
                raise self.error(prefix + ".protocol", "must be one of %s, not %r" % (
                    ", ".join(PROTOCOLS), values["protocol"]))
            if values["tls"] not in TLS_MODES:
                raise self.error(prefix + ".tls", "must be one of %s, not %r" % (
                    ", ".join(TLS_MODES), values["tls"]))
            if values["challenge_auth"] not in CHALLENGE_AUTH:
                raise self.error(prefix + ".challenge_auth", "must be one of %s, not %r" % (
                    ", ".join(CHALLENGE_AUTH), values["challenge_auth"]))
            if values["max_connections"] < 0:
                raise self.error(prefix + ".max_connections",
                                 "must be at least 0, not %r" % (values["max_connections"],))
            reason = _checkEndpoint(values["endpoint"])
            if reason:
                raise self.error(prefix + ".endpoint", reason)
            for j, capability in enumerate(values["disabled"]):
                if not isinstance(capability, str) or not capability:
                    raise self.error("%s.disabled[%d]" % (prefix, j),
                                     "must be a capability name")
            name = values["name"] or values["protocol"]
            if name in names:
                raise self.error(prefix + ".name", "listener name %r used twice" % (name,))
            names.add(name)
            listener = ListenerConfig(
                name=name, protocol=values["protocol"], endpoint=values["endpoint"],
                tls=values["tls"], allow_plaintext_auth=values["allow_plaintext_auth"],
                disabled=tuple(c.upper() for c in values["disabled"]),
                challenge_auth=values["challenge_auth"],
                max_connections=values["max_connections"])
            for j, other in enumerate(listeners):
                if _conflicts(listener.address, other.address):
                    raise self.error(prefix + ".endpoint",
                                     "port %d is already used by listener[%d] (%s)" % (
                                         listener.address[1], j, other.name))
            listeners.append(listener)
        return tuple(listeners)

    def buildTLS(self, raw, listeners, web=None):
        values = self.section(raw, "tls", _TLS)
        if values["min_version"] not in TLS_VERSIONS:
            raise self.error("tls.min_version", "must be one of %s, not %r" % (
                ", ".join(TLS_VERSIONS), values["min_version"]))
        tls = TLSConfig(cert=self.path(values["cert"]), key=self.path(values["key"]),
                        generate_self_signed=values["generate_self_signed"],
                        min_version=values["min_version"])
        if (self.checkFiles and not tls.generate_self_signed
                and (any(l.tls != "none" for l in listeners)
                     or (web is not None and web.tls))):
            for key in ("cert", "key"):
                p = getattr(tls, key)
                if not p.is_file():
                    raise self.error("tls." + key, "file not found: %s" % (p,))
        return tls

    def buildWeb(self, raw, listeners):
        values = self.section(raw, "web", _WEB)
        reason = _checkEndpoint(values["endpoint"])
        if reason:
            raise self.error("web.endpoint", reason)
        web = WebConfig(**values)
        if not values["tls"] and not _isLoopback(web.address):
            raise self.error("web.tls", "must be true: %r is not on loopback (the console "
                                        "takes passwords)" % (values["endpoint"],))
        if values["session_timeout"] < 60:
            raise self.error("web.session_timeout", "must be at least 60, not %r" % (
                values["session_timeout"],))
        for j, other in enumerate(listeners):
            if _conflicts(web.address, other.address):
                raise self.error("web.endpoint", "port %d is already used by listener[%d] (%s)"
                                 % (web.address[1], j, other.name))
        return web

    def buildLimits(self, raw):
        values = self.section(raw, "limits", _LIMITS)
        for key, minimum in _LIMIT_MINIMUMS.items():
            if values[key] < minimum:
                raise self.error("limits." + key, "must be at least %s, not %r" % (
                    minimum, values[key]))
        for key in ("auth_failure_delay_seconds", "auth_failure_delay_max_seconds"):
            values[key] = float(values[key])
        return LimitsConfig(**values)

    def buildLab(self, raw, server):
        values = self.section(raw, "lab", _LAB)
        if values["demo_scheme"] not in PASSWORD_SCHEMES:
            raise self.error("lab.demo_scheme", "must be one of %s, not %r" % (
                ", ".join(PASSWORD_SCHEMES), values["demo_scheme"]))
        address = values["demo_address"].lower()
        if values["demo_account"]:
            local, _, domain = address.partition("@")
            if not local or domain not in server.domains:
                raise self.error("lab.demo_address",
                                 "must be an address in one of server.domains, not %r"
                                 % (values["demo_address"],))
            if not values["demo_password"]:
                raise self.error("lab.demo_password", "must not be empty")
        values["demo_address"] = address
        values["magic"] = self.buildMagic(values["magic"])
        return LabConfig(**values)

    def buildMagic(self, raw):
        """The C{[[lab.magic]]} tables -> a tuple of L{MagicRecipientConfig}."""
        magic, seen = [], {}
        for i, table in enumerate(raw):
            prefix = "lab.magic[%d]" % (i,)
            values = self.section(table, prefix, _MAGIC)
            action = values["action"]
            if action not in MAGIC_ACTIONS:
                raise self.error(prefix + ".action", "must be one of %s, not %r" % (
                    ", ".join(MAGIC_ACTIONS), action))
            address, localPart = values["address"], values["local_part"]
            if (address is None) == (localPart is None):
                raise self.error(prefix, "needs address or local_part (one of them)")
            if address is not None:
                key, value = "address", address.lower()
                local, at, domain = value.rpartition("@")
                if not local or not at or not _isDomain(domain) or any(
                        c.isspace() or c in "<>" for c in value):
                    raise self.error(prefix + ".address", "not an address: %r" % (address,))
            else:
                key, value = "local_part", localPart.lower()
                if not value or any(c.isspace() or c in "@<>" for c in value):
                    raise self.error(prefix + ".local_part", "not a local part: %r" % (
                        localPart,))
            if (key, value) in seen:
                raise self.error("%s.%s" % (prefix, key), "%r is already lab.magic[%d]" % (
                    value, seen[key, value]))
            seen[key, value] = i
            seconds = values["seconds"]
            if MAGIC_ACTIONS[action] is None:
                if seconds is not None:
                    raise self.error(prefix + ".seconds", "not used by action %r" % (action,))
            else:
                if seconds is None:
                    seconds = MAGIC_ACTIONS[action]
                if not 0 < seconds <= MAGIC_MAX_SECONDS:
                    raise self.error(prefix + ".seconds", "must be over 0 and at most %d, "
                                     "not %r" % (MAGIC_MAX_SECONDS, seconds))
                seconds = float(seconds)
            magic.append(MagicRecipientConfig(action=action, seconds=seconds, **{key: value}))
        return tuple(magic)

    def buildRelay(self, raw):
        values = self.section(raw, "relay", _RELAY)
        smarthost = None
        if values["smarthost"]:
            smarthost = _parseHostPort(values["smarthost"])
            if smarthost is None:
                raise self.error("relay.smarthost", "must be \"host:port\", not %r" % (
                    values["smarthost"],))
        schedule = values["retry_schedule"]
        if not schedule or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                for v in schedule):
            raise self.error("relay.retry_schedule",
                             "must be a non-empty list of positive seconds")
        if values["queue_lifetime"] < 60:
            raise self.error("relay.queue_lifetime", "must be at least 60 seconds")
        return RelayConfig(smarthost=smarthost, require_tls=values["require_tls"],
                           queue_lifetime=values["queue_lifetime"],
                           retry_schedule=tuple(schedule))

    def buildSMTP(self, raw):
        values = self.section(raw, "smtp", _SMTP)
        if values["bare_newline"] not in BARE_NEWLINE_POLICIES:
            raise self.error("smtp.bare_newline", "must be one of %s, not %r" % (
                ", ".join(BARE_NEWLINE_POLICIES), values["bare_newline"]))
        return SMTPConfig(**values)

    def buildPOP3(self, raw):
        values = self.section(raw, "pop3", _POP3)
        if values["lock"] not in POP3_LOCKS:
            raise self.error("pop3.lock", "must be one of %s, not %r" % (
                ", ".join(POP3_LOCKS), values["lock"]))
        if not 0 <= values["lock_wait"] <= 300:
            raise self.error("pop3.lock_wait", "must be 0 to 300 seconds, not %r" % (
                values["lock_wait"],))
        return POP3Config(lock=values["lock"], lock_wait=float(values["lock_wait"]))

    def buildStorage(self, raw):
        values = self.section(raw, "storage", _STORAGE)
        name = values["backend"]
        names = storebackends.backendNames()
        if name not in names:
            raise self.error("storage.backend", "must be one of %s, not %r" % (
                ", ".join(names), name))
        try:
            storebackends.backendNamed(name)
        except KeyError:
            raise self.error("storage.backend", "%r is not a store (no IStoreBackend)" % (name,))
        except ImportError as e:
            raise self.error("storage.backend", "the %s store cannot be loaded: %s" % (name, e))
        if not 0 <= values["cached_mailboxes"] <= 1000000:
            raise self.error("storage.cached_mailboxes", "must be 0 to 1000000, not %r" % (
                values["cached_mailboxes"],))
        return StorageConfig(backend=name, cached_mailboxes=values["cached_mailboxes"])

    def buildUsers(self, raw, server):
        values = self.section(raw, "users", _USERS)
        backend = values["backend"]
        names = backendNames()
        if backend not in names:
            raise self.error("users.backend", "must be one of %s, not %r" % (
                ", ".join(names), backend))
        try:
            plugin = backendNamed(backend)
        except KeyError:
            raise self.error("users.backend", "%r is not a user backend plug-in" % (backend,))
        except ImportError as e:
            raise self.error("users.backend", "the %s backend cannot be loaded: %s" % (
                backend, e))
        if locationKey(plugin) == "dsn":
            return UsersConfig(backend=backend, path=None,
                               dsn=self.buildDSN(values, backend, plugin))
        if values["dsn"] is not None:
            raise self.error("users.dsn", "only a database server backend takes a dsn "
                                          "(backend = %r uses users.path)" % (backend,))
        if values["path"] == "":
            raise self.error("users.path", "must not be empty")
        path = (self.path(values["path"]) if values["path"] is not None
                else server.data_dir / plugin.defaultPath)
        return UsersConfig(backend=backend, path=path)

    def buildDSN(self, values, backend, plugin):
        """The checked C{users.dsn} of a database server backend."""
        if values["path"] is not None:
            raise self.error("users.path", "not used by backend = %r: it connects to "
                                           "users.dsn" % (backend,))
        dsn = values["dsn"]
        if dsn is None:
            raise self.error("users.dsn", "required with backend = %r (a libpq connection "
                                          "string or URI)" % (backend,))
        if not dsn.strip():
            raise self.error("users.dsn", "must not be empty")
        try:
            plugin.checkDSN(dsn)
        except ValueError as e:
            raise self.error("users.dsn", str(e))
        return dsn


def _parseHostPort(value):
    """
    C{"host:port"} or C{"[v6]:port"} -> C{(host, port)}, or L{None} if malformed.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c.isspace() for c in host):
        return None
    return (host, int(port))


def _isDomain(name):
    """
    A plausible DNS name (letters, digits, hyphens, dots), no trailing dot.
    """
    if not name or len(name) > 253 or name.endswith("."):
        return False
    for label in name.split("."):
        if not (1 <= len(label) <= 63):
            return False
        if label.startswith("-") or label.endswith("-"):
            return False
        if not all(c.isascii() and (c.isalnum() or c == "-") for c in label):
            return False
    return True


def _splitEndpoint(description):
    """
    Split a Twisted endpoint string on unescaped colons (backslash escapes), the
    way L{twisted.internet.endpoints.serverFromString} does.
    """
    parts, current, escaped = [], [], False
    for c in description:
        if escaped:
            current.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    parts.append("".join(current))
    args, kwargs = [], {}
    for part in parts[1:]:
        if "=" in part:
            key, _, value = part.partition("=")
            kwargs[key] = value
        else:
            args.append(part)
    return parts[0], args, kwargs


def _checkEndpoint(description):
    """
    @return: L{None} if C{description} is a usable server endpoint, else the reason.

    TLS is configured by the listener's C{tls} key, not by an C{ssl:} endpoint,
    so that one certificate and one TLS policy serve every listener.
    """
    from twisted.internet import endpoints, reactor
    kind, args, kwargs = _splitEndpoint(description)
    if kind not in ENDPOINT_TYPES:
        if kind == "ssl":
            return ("use endpoint 'tcp:PORT:interface=...' with tls = \"implicit\" "
                    "instead of an ssl: endpoint")
        return "endpoint type must be one of %s, not %r" % (
            ", ".join(ENDPOINT_TYPES), kind)
    if kind in ("tcp", "tcp6"):
        port = kwargs.get("port", args[0] if args else None)
        if port is None or not port.isdigit() or not 0 <= int(port) <= 65535:
            return "%r: port must be a number from 0 to 65535" % (description,)
    try:
        endpoints.serverFromString(reactor, description)
    except (ValueError, TypeError, KeyError) as e:
        return "%r: not a valid endpoint (%s)" % (description, e)
    return None


def _endpointAddress(description):
    kind, args, kwargs = _splitEndpoint(description)
    if kind not in ("tcp", "tcp6"):
        return None
    port = int(kwargs.get("port", args[0] if args else 0))
    interface = kwargs.get("interface", args[2] if len(args) > 2 else "")
    return (interface, port)


def _isLoopback(address):
    """
    C{True} if a C{(interface, port)} listens only on loopback (a UNIX
    socket, L{None}, is local too); all interfaces (C{''}) is not.
    """
    if address is None:
        return True
    interface = address[0]
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def _conflicts(a, b):
    """
    Two TCP addresses collide if they share a non-zero port and either listens on
    all interfaces or both name the same interface.
    """
    if a is None or b is None or a[1] == 0 or a[1] != b[1]:
        return False
    return a[0] in ("", "0.0.0.0", "::") or b[0] in ("", "0.0.0.0", "::") or a[0] == b[0]
