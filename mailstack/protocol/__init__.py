"""
The kit every protocol engine shares, written once for SMTP, POP3 and IMAP:
sans-IO line framing (L{framing}), sans-IO SASL (L{sasl}: responses,
mechanisms, the mechanism offer and the authzid rule), how an engine tells the
transcript which client input is secret (L{secrets}), and the session
machinery.
"""
