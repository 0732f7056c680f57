"""
mailstack: an SMTP, POP3 and IMAP server on Twisted over a Dovecot-compatible Maildir.
"""

__version__ = "0.1.0"
