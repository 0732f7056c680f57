"""
twistd plugin: C{twistd mailstack --config FILE}. The real work is in mailstack.service.
"""

from twisted.application.service import ServiceMaker

mailstack = ServiceMaker(
    "mailstack",
    "mailstack.service",
    "SMTP, POP3 and IMAP server over a Dovecot-compatible Maildir",
    "mailstack",
)
