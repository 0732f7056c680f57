"""
Shared builders for tests: config files in temporary directories.
"""

import os
import textwrap

BASE_CONFIG = """
[server]
hostname = "mail.lab.test"
data_dir = "var"
domains = ["lab.test", "example.test"]
default_domain = "lab.test"

[tls]
cert = "var/tls/cert.pem"
key = "var/tls/key.pem"
generate_self_signed = true

[limits]
bcrypt_rounds = 4

[lab]
demo_account = true
transcripts = true
"""


def writeConfig(testCase, text=BASE_CONFIG, extra="", name="mailstack.toml"):
    """
    Write a config file into a fresh temporary directory of C{testCase}.

    @return: the path of the file (str); relative paths in it resolve to that
        directory.
    """
    directory = testCase.mktemp()
    os.makedirs(directory)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text) + textwrap.dedent(extra))
    return path


def listenerTOML(protocol, endpoint="tcp:0:interface=127.0.0.1", tls="none",
                 name=None, **extra):
    """
    One C{[[listener]]} table as TOML text.
    """
    lines = ["[[listener]]", 'protocol = "%s"' % (protocol,),
             'endpoint = "%s"' % (endpoint,), 'tls = "%s"' % (tls,)]
    if name:
        lines.append('name = "%s"' % (name,))
    for key, value in extra.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, str):
            value = '"%s"' % (value,)
        elif isinstance(value, (list, tuple)):
            value = "[%s]" % (", ".join('"%s"' % (v,) for v in value),)
        lines.append("%s = %s" % (key, value))
    return "\n" + "\n".join(lines) + "\n"


def startServer(testCase, extra, text=BASE_CONFIG, reactor=None):
    """
    Build and start the real service from a config with C{extra} appended, on
    loopback; stopped when the test ends.

    @return: C{(service, directory)}: the running L{mailstack.service.MailService}
        (C{service.listenerPort(name)} gives a bound port) and the config's
        directory (its C{var/} holds mail, users, certificate, transcripts).
    """
    from mailstack.config import loadConfig
    from mailstack.service import buildService
    if reactor is None:
        from twisted.internet import reactor
    path = writeConfig(testCase, text, extra)
    top = buildService(loadConfig(path), reactor)
    top.startService()
    testCase.addCleanup(top.stopService)
    return top, os.path.dirname(os.path.abspath(path))
