"""
POP3 (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), SASL (RFC 5034) and
extended response codes (RFC 2449, RFC 3206).

 - L{mailstack.pop3.server}: the protocol engine, its settings and the builder
   the service calls.
 - L{mailstack.pop3.mailbox}: the maildrop (the avatar a POP3 login gets): a
   snapshot of INBOX, deletion marks, the exclusive lock.
 - L{mailstack.pop3.stream}: sending a message (RETR, TOP) from the store in
   chunks, byte-stuffed, through a pull producer.
"""
