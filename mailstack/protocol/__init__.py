"""
The kit every protocol engine shares: sans-IO line framing (L{framing}), SASL
and the session machinery, written once for SMTP, POP3 and IMAP.
"""
