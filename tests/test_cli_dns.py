"""
Tests for C{mailstack dns}: the RFC 6186/8314 SRV records of the configured
listeners, printed as zone file lines.
"""

import io

from twisted.trial import unittest

from mailstack import cli
from tests.helpers import BASE_CONFIG, listenerTOML, writeConfig


class DNSCommandTests(unittest.TestCase):
    def mailstack(self, listeners, text=BASE_CONFIG):
        self.config = writeConfig(self, text, listeners)
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(["dns", "--config", self.config], stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def test_records(self):
        """Each IMAP, POP3 and submission listener gets its SRV record, implicit TLS preferred; absent services get target '.'."""
        status, out, err = self.mailstack("".join([
            listenerTOML("smtp", "tcp:25", "starttls"),
            listenerTOML("submission", "tcp:587", "starttls", name="submission"),
            listenerTOML("submission", "tcp:465", "implicit", name="submissions"),
            listenerTOML("imap", "tcp:143", "starttls", name="imap"),
            listenerTOML("imap", "tcp:993", "implicit", name="imaps"),
            listenerTOML("pop3", "tcp:110", "none", name="pop3"),
        ]))
        records = []
        for domain in ("lab.test", "example.test"):
            records += [
                "",
                "; %s" % (domain,),
                "_submissions._tcp.%s. 3600 IN SRV 0 1 465 mail.lab.test." % (domain,),
                "_submission._tcp.%s. 3600 IN SRV 10 1 587 mail.lab.test." % (domain,),
                "_imaps._tcp.%s. 3600 IN SRV 0 1 993 mail.lab.test." % (domain,),
                "_imap._tcp.%s. 3600 IN SRV 10 1 143 mail.lab.test." % (domain,),
                "_pop3s._tcp.%s. 3600 IN SRV 0 0 0 ." % (domain,),
                "_pop3._tcp.%s. 3600 IN SRV 0 0 0 ." % (domain,),
                "; Autoconfig (Thunderbird) and Autodiscover (Outlook) are fetched over "
                "HTTP(S) from these names;",
                "; point them at the host serving mailstack's web console (a CNAME, or A/AAAA "
                "records):",
                ";   autoconfig.%s. 3600 IN CNAME mail.lab.test." % (domain,),
                ";   autodiscover.%s. 3600 IN CNAME mail.lab.test." % (domain,),
            ]
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, "\n".join([
            "; Mail client service records (RFC 6186, RFC 8314) for the listeners of %s."
            % (self.config,),
            "; Priority 0 is implicit TLS, 10 STARTTLS, 20 plaintext: clients try the lowest.",
            "; Target \".\" means the service is not offered (RFC 2782).",
        ] + records) + "\n")

    def test_plaintextListener(self):
        """A plaintext listener that allows passwords gets priority 20; on localhost a warning comment."""
        text = BASE_CONFIG.replace('hostname = "mail.lab.test"', 'hostname = "localhost"')
        status, out, err = self.mailstack(listenerTOML(
            "pop3", "tcp:3110:interface=127.0.0.1", "none", allow_plaintext_auth=True), text)
        lines = out.splitlines()
        self.assertEqual(status, 0)
        self.assertIn("; server.hostname is localhost: only clients on this machine can use "
                      "these.", lines)
        self.assertIn("_pop3._tcp.lab.test. 3600 IN SRV 20 1 3110 localhost.", lines)
        self.assertIn("_imap._tcp.lab.test. 3600 IN SRV 0 0 0 .", lines)

    def test_badConfig(self):
        """A config error is one line on stderr and status 1."""
        status, out, err = self.mailstack("[[listener]]\nprotocol = \"imap\"\n")
        self.assertEqual((status, out), (1, ""))
        self.assertIn("listener[0].endpoint: required key is missing", err)


class DocumentedOutputTests(unittest.TestCase):
    def test_docsShowTheRealOutput(self):
        """docs/autoconfig.md shows exactly what `mailstack dns` prints for the production config."""
        import os
        import re
        checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(checkout, "docs", "autoconfig.md"), encoding="utf-8") as f:
            text = f.read()
        documented = re.search(r"mailstack dns --config etc/mailstack-production.toml\n```\n\n"
                               r"```\n(.*?)```", text, re.S).group(1)
        config = os.path.join(checkout, "etc", "mailstack-production.toml")
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(cli.main(["dns", "--config", config], stdout=out, stderr=err), 0)
        self.assertEqual(out.getvalue().replace(config, "etc/mailstack-production.toml"),
                         documented)
