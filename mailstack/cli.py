"""
The C{mailstack} admin command: users, the TLS certificate and the DNS records
clients use to find the server.

    mailstack user add ADDRESS [--password-stdin] [--scheme S] [--admin]
    mailstack user passwd ADDRESS [--password-stdin] [--scheme S]
    mailstack user del ADDRESS
    mailstack user admin ADDRESS on|off
    mailstack user list
    mailstack user import FILE.csv [--update]
    mailstack user migrate --to BACKEND [--to-path P | --to-dsn DSN]
                           [--from BACKEND] [--from-path P | --from-dsn DSN]
    mailstack cert generate [--force]
    mailstack dns
    mailstack token create ADDRESS [--name N]
    mailstack token list [ADDRESS]
    mailstack token revoke ID

C{--config FILE} (default C{etc/mailstack.toml}) may come before the command or
anywhere after it.

It edits the users of the configured backend (C{[users] backend}: the
passwd-file, the SQLite database or the PostgreSQL database the server reads;
a running server sees user changes at once). Success prints one line on stdout; any failure prints one line
C{mailstack: reason} on stderr and exits with status 1.
"""

import argparse
import contextlib
import functools
import os
import sys
from getpass import getpass

from mailstack.auth.backends import backendNamed, backendNames, locationKey
from mailstack.auth.interfaces import UserDirectoryUnavailable
from mailstack.auth.passwords import SCHEMES, CSVImportError, UserError, UserExists
from mailstack.config import ConfigError, loadConfig

DEFAULT_CONFIG = "etc/mailstack.toml"


class CommandError(Exception):
    """A failure to report as one line on stderr."""


class _Exit(Exception):
    """argparse wanted to exit (help, usage error) with this status."""

    def __init__(self, status):
        Exception.__init__(self, status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """
    An argparse parser that writes to the streams given to L{main} and never
    calls C{sys.exit}, so tests (and callers) keep control.
    """

    def __init__(self, *args, streams, **kwargs):
        argparse.ArgumentParser.__init__(self, *args, **kwargs)
        self.streams = streams

    def subcommands(self, **kwargs):
        """C{add_subparsers} whose parsers write to the same streams."""
        return self.add_subparsers(
            parser_class=functools.partial(_Parser, streams=self.streams), **kwargs)

    def _print_message(self, message, file=None):
        if message:
            out, err = self.streams
            (out if file is sys.stdout else err).write(message)

    def exit(self, status=0, message=None):
        if message:
            self.streams[1].write(message)
        raise _Exit(status)



def _addGlobalOptions(parser, default):
    """The options every (sub)command takes: C{--config FILE}."""
    parser.add_argument("--config", default=default, metavar="FILE",
                        help="configuration file (default: %s)" % (DEFAULT_CONFIG,))


def _addCommand(commands, name, **kwargs):
    """
    A (sub)command parser that takes the global options too, so that
    C{mailstack user list --config FILE} works as well as
    C{mailstack --config FILE user list}. Their default is suppressed here:
    only a value actually given after the command replaces the one given (or
    defaulted) before it.
    """
    sub = commands.add_parser(name, **kwargs)
    _addGlobalOptions(sub, default=argparse.SUPPRESS)
    return sub


def buildParser(stdout, stderr):
    """
    The argument parser of the C{mailstack} command.
    """
    parser = _Parser(prog="mailstack", description="Administer a mailstack server.",
                     streams=(stdout, stderr))
    _addGlobalOptions(parser, default=DEFAULT_CONFIG)
    commands = parser.subcommands(dest="command", metavar="COMMAND", required=True)

    user = _addCommand(commands, "user", help="manage users")
    userCommands = user.subcommands(dest="action", metavar="ACTION", required=True)
    for name, helpText in (("add", "add a user"), ("passwd", "change a user's password")):
        sub = _addCommand(userCommands, name, help=helpText)
        sub.add_argument("address", metavar="ADDRESS",
                         help="address, or a bare name in the default domain")
        sub.add_argument("--password-stdin", action="store_true",
                         help="read the password from the first line of stdin")
        sub.add_argument("--scheme", type=str.upper, choices=SCHEMES,
                         default="BLF-CRYPT" if name == "add" else None,
                         help="password scheme (PLAIN lets APOP and CRAM-MD5 work)")
        if name == "add":
            sub.add_argument("--admin", action="store_true",
                             help="an admin of the web console (sees every account)")
    sub = _addCommand(userCommands, "del", help="remove a user (mail is kept)")
    sub.add_argument("address", metavar="ADDRESS")
    sub = _addCommand(userCommands, "admin", help="make a user an admin of the web "
                                                  "console, or not")
    sub.add_argument("address", metavar="ADDRESS")
    sub.add_argument("state", choices=("on", "off"), metavar="on|off")
    _addCommand(userCommands, "list", help="list users and their password schemes")
    sub = _addCommand(
        userCommands, "import", help="add a class of users from a CSV file",
        description="Add the users of a CSV file with rows address,password[,scheme] "
                    "(an optional header row 'address,password[,scheme]'; scheme is "
                    "one of --scheme's, BLF-CRYPT by default for new users). The whole file is "
                    "checked first: if any line is bad, every bad line is reported and "
                    "nothing is imported. Users that already exist are skipped and keep "
                    "their password, so the same class file can be run again after adding "
                    "students; the summary says how many were added, updated and skipped, "
                    "and names skipped users whose password in the file differs.")
    sub.add_argument("csvFile", metavar="FILE.csv")
    sub.add_argument("--update", action="store_true",
                     help="reset existing users whose password (or given scheme) in the "
                          "file differs to the file's; unchanged ones are still skipped")

    sub = _addCommand(
        userCommands, "migrate", help="copy every user to another backend",
        description="Copy every user, with their password hash as it is, from the "
                    "configured backend (or --from) to another one. Users already in the "
                    "target are skipped, so it can be run again. The config is not "
                    "changed: set [users] backend (and path or dsn) to use the copy.")
    names = backendNames()
    sub.add_argument("--to", required=True, choices=names, dest="toBackend",
                     help="the backend to copy to")
    sub.add_argument("--to-path", dest="toPath", metavar="PATH",
                     help="its file (default: its usual name in data_dir)")
    sub.add_argument("--to-dsn", dest="toDSN", metavar="DSN",
                     help="its database, for postgresql: a libpq connection string or URI "
                          "(default: users.dsn if postgresql is the configured backend)")
    sub.add_argument("--from", choices=names, dest="fromBackend",
                     help="the backend to copy from (default: the configured one)")
    sub.add_argument("--from-path", dest="fromPath", metavar="PATH",
                     help="its file (default: the configured path for the configured "
                          "backend, else its usual name in data_dir)")
    sub.add_argument("--from-dsn", dest="fromDSN", metavar="DSN",
                     help="its database, for postgresql (default: users.dsn if "
                          "postgresql is the configured backend)")

    cert = _addCommand(commands, "cert", help="manage the TLS certificate")
    certCommands = cert.subcommands(dest="action", metavar="ACTION", required=True)
    sub = _addCommand(certCommands, "generate", help="write a self-signed certificate")
    sub.add_argument("--force", action="store_true", help="replace existing files")

    token = _addCommand(commands, "token", help="manage API tokens (for scripts)",
                        description="API tokens let scripts (a grading script) call the "
                                    "console's API as a user: Authorization: Bearer TOKEN. "
                                    "Only a hash is kept; the token is printed once, when "
                                    "it is made. See docs/api.md.")
    tokenCommands = token.subcommands(dest="action", metavar="ACTION", required=True)
    sub = _addCommand(tokenCommands, "create", help="make a token for a user and print it")
    sub.add_argument("address", metavar="ADDRESS")
    sub.add_argument("--name", default="cli", help="what the token is for (default: cli)")
    sub = _addCommand(tokenCommands, "list", help="list tokens (never the tokens themselves)")
    sub.add_argument("address", metavar="ADDRESS", nargs="?", help="only this user's")
    sub = _addCommand(tokenCommands, "revoke", help="revoke a token by its id")
    sub.add_argument("tokenID", metavar="ID")

    _addCommand(commands, "dns", help="print the DNS records mail clients use to find "
                                      "the listeners",
                description="Print, in zone file syntax, the RFC 6186/8314 SRV records "
                            "of the configured IMAP, POP3 and submission listeners for "
                            "each local domain (target \".\" where a service is not "
                            "offered), and the autoconfig/autodiscover names to point at "
                            "the web console. See docs/autoconfig.md.")
    return parser


def main(argv=None, stdin=None, stdout=None, stderr=None):
    """
    Run the command.

    @param argv: the arguments (without the program name); C{sys.argv[1:]} by default.
    @return: the exit status: 0 on success, 1 on failure, 2 on a usage error.
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    parser = buildParser(stdout, stderr)
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except _Exit as e:
        return e.status
    try:
        config = loadConfig(args.config, checkFiles=False)
        if args.command == "user":
            message = _userCommand(config, args, stdin, stderr)
        elif args.command == "token":
            message = _tokenCommand(config, args)
        elif args.command == "dns":
            from mailstack.web.dnszone import zoneLines
            message = "\n".join(zoneLines(config))
        else:
            message = _certCommand(config, args)
    except CSVImportError as e:
        for line in str(e).split("\n"):
            stderr.write("mailstack: %s\n" % (line,))
        if e.line is not None:
            count = len(e.problems)
            stderr.write("mailstack: %s: %d bad line%s, nothing imported\n" % (
                e.filename, count, "" if count == 1 else "s"))
        return 1
    except (CommandError, ConfigError, UserError, UserDirectoryUnavailable) as e:
        stderr.write("mailstack: %s\n" % (e,))
        return 1
    except OSError as e:
        where = " %s" % (e.filename,) if e.filename else ""
        stderr.write("mailstack: cannot access%s: %s\n" % (where, e.strerror or e))
        return 1
    except KeyboardInterrupt:
        stderr.write("\nmailstack: interrupted\n")
        return 1
    if message:
        stdout.write(message + "\n")
    return 0


def _openUsers(config, opened, backend=None, path=None, dsn=None, domains=True, side="to"):
    """
    A user backend, opened: the configured one, or C{backend} at C{path}
    (a file backend; default: the configured path if it is the configured
    backend, else its usual name in data_dir) or C{dsn} (a database server;
    default: the configured dsn if it is the configured backend).

    @param opened: an C{ExitStack} that closes the backend (its database
        connections) when the command is done.
    @param domains: C{True}: new users must be in C{server.domains}; else any.
    @param side: C{to} or C{from}: which of C{migrate}'s options gave C{path}
        and C{dsn}, for messages.
    """
    backend = backend or config.users.backend
    try:
        plugin = backendNamed(backend)
    except KeyError:
        raise CommandError("%r is not a user backend" % (backend,))
    except ImportError as e:
        raise CommandError("the %s backend cannot be loaded: %s" % (backend, e))
    configured = backend == config.users.backend
    if locationKey(plugin) == "dsn":
        if path is not None:
            raise CommandError("--%s-path: the %s backend takes --%s-dsn" % (side, backend, side))
        if dsn is None:
            if not configured:
                raise CommandError("--%s-dsn is needed: %s is not the configured backend" % (
                    side, backend))
            dsn = config.users.dsn
        try:
            plugin.checkDSN(dsn)
        except ValueError as e:
            raise CommandError("--%s-dsn: %s" % (side, e))
        location = dsn
    else:
        if dsn is not None:
            raise CommandError("--%s-dsn: the %s backend takes --%s-path" % (side, backend, side))
        location = path
        if location is None:
            location = (config.users.path if configured
                        else config.server.data_dir / plugin.defaultPath)
    users = plugin.open(
        location, defaultDomain=config.server.default_domain,
        bcryptRounds=config.limits.bcrypt_rounds,
        domains=config.server.domains if domains else None)
    close = getattr(users, "close", None)
    if close is not None:
        opened.callback(close)
    return users


def _userCommand(config, args, stdin, stderr):
    with contextlib.ExitStack() as opened:
        if args.action == "migrate":
            return _migrate(config, args, opened)
        users = _openUsers(config, opened)
        message = _editUsers(users, args, stdin, stderr)
        if args.action == "del":
            message += _revokeTokensOf(config, users.normalize(args.address) or args.address)
        return message


def _revokeTokensOf(config, address):
    """
    Revoke a removed user's API tokens (a user added later under the same
    address must not inherit them). @return: what to add to the message.
    """
    from mailstack.web.tokens import TokenError, TokenStore
    try:
        count = TokenStore.inDataDirectory(config.server.data_dir).revokeAll(address)
    except TokenError as e:
        raise CommandError("%s; its API tokens were not revoked: %s" % (address, e))
    if not count:
        return ""
    return "; %d API token%s revoked" % (count, "" if count == 1 else "s")


def _editUsers(users, args, stdin, stderr):
    if args.action == "add":
        # Check the address before asking for a password nobody can use.
        address = users.checkNewAddress(args.address)
        password = _readPassword(address, args.password_stdin, stdin, stderr)
        users.addUser(address, password, scheme=args.scheme)
        if args.admin:
            users.setAdmin(address, True)
        return "added %s (%s%s)" % (address, args.scheme, ", admin" if args.admin else "")
    if args.action == "passwd":
        user = users.lookup(args.address)
        if user is None:
            raise CommandError("no such user: %s" % (
                users.normalize(args.address) or args.address,))
        password = _readPassword(user.address, args.password_stdin, stdin, stderr)
        scheme = users.setPassword(user.address, password, scheme=args.scheme)
        return "changed password of %s (%s)" % (user.address, scheme)
    if args.action == "del":
        address = users.normalize(args.address) or args.address
        users.removeUser(args.address)
        return "removed %s (its mail is kept)" % (address,)
    if args.action == "admin":
        address = users.normalize(args.address) or args.address
        users.setAdmin(args.address, args.state == "on")
        return "%s is %s" % (address, "an admin" if args.state == "on" else "not an admin")
    if args.action == "list":
        listed = users.listUsers()
        width = max((len(user.address) for user in listed), default=0)
        return "\n".join(("%s  %s  admin" if user.admin else "%s  %s") % (
            user.address.ljust(width), user.scheme or "(none)") for user in listed)
    result = users.importCSV(args.csvFile, update=args.update)
    summary = "%s: added %d, updated %d, skipped %d" % (
        args.csvFile, len(result.added), len(result.updated), len(result.skipped))
    if result.differing:
        count = len(result.differing)
        summary += " (%d with another password in the file: %s; --update resets %s)" % (
            count, ", ".join(result.differing), "it" if count == 1 else "them")
    return summary


def _migrate(config, args, opened):
    """Copy every user (hashes as they are) from one backend to another."""
    source = _openUsers(config, opened, args.fromBackend, args.fromPath, args.fromDSN,
                        domains=False, side="from")
    target = _openUsers(config, opened, args.toBackend, args.toPath, args.toDSN,
                        domains=False, side="to")
    if locationKey(backendNamed(args.toBackend)) == "dsn":
        # The databases' parameters (host, port, dbname, user).
        same = source.path == target.path
    else:
        same = os.path.realpath(source.path) == os.path.realpath(target.path)
    if (args.fromBackend or config.users.backend) == args.toBackend and same:
        raise CommandError("%s: source and target are the same" % (source.path,))
    copied, skipped, refused = 0, 0, []
    for user in source.listUsers():
        if user.noLogin is not None and not target.keepsNoLogin:
            # Copied without its nologin, such a user could log in there.
            refused.append(user.address)
            continue
        try:
            target.addStoredUser(user)
        except UserExists:
            skipped += 1
        else:
            copied += 1
    message = "copied %d user%s from %s to %s" % (
        copied, "" if copied == 1 else "s", source.path, target.path)
    if skipped:
        message += " (skipped %d already there)" % (skipped,)
    if refused:
        message += "; left behind %d marked nologin, which %s cannot mark: %s" % (
            len(refused), args.toBackend, ", ".join(refused))
    return message


def _readPassword(address, fromStdin, stdin, stderr):
    """
    One line from stdin, or typed twice at a prompt that does not echo.
    """
    if fromStdin:
        line = stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise CommandError("no password on standard input")
        return password
    try:
        password = getpass("Password for %s: " % (address,), stream=stderr)
        if not password:
            raise CommandError("empty password")
        again = getpass("Retype password: ", stream=stderr)
    except EOFError:
        raise CommandError("no password given")
    if password != again:
        raise CommandError("passwords do not match")
    return password


def _tokenCommand(config, args):
    """C{mailstack token ...}: API tokens in data_dir (L{mailstack.web.tokens})."""
    from mailstack.web.tokens import TokenError, TokenStore
    from mailstack.web.api import isoTime
    tokens = TokenStore.inDataDirectory(config.server.data_dir)
    try:
        if args.action == "create":
            with contextlib.ExitStack() as opened:
                user = _openUsers(config, opened).lookup(args.address)
            if user is None:
                raise CommandError("no such user: %s" % (args.address,))
            return tokens.create(user.address, args.name)[1]
        if args.action == "list":
            address = None
            if args.address is not None:
                with contextlib.ExitStack() as opened:
                    address = _openUsers(config, opened).normalize(args.address) or args.address
            return "\n".join("%s  %s  %s  %s" % (t.id, t.address, isoTime(t.created), t.name)
                             for t in tokens.list(address))
        token = tokens.revoke(args.tokenID)
        return "revoked token %s of %s" % (token.id, token.address)
    except TokenError as e:
        raise CommandError(str(e))


def _certCommand(config, args):
    from mailstack import tls
    hostnames = [config.server.hostname]
    if "localhost" not in hostnames:
        hostnames.append("localhost")
    cert, key = config.tls.cert, config.tls.key
    try:
        created = tls.ensureCertificate(cert, key, hostnames, force=args.force)
    except tls.TLSConfigError as e:
        raise CommandError(str(e))
    if not created:
        return "certificate exists: %s (use --force to replace)" % (cert,)
    return "wrote %s and %s for %s" % (cert, key, ", ".join(hostnames))


if __name__ == "__main__":
    raise SystemExit(main())
