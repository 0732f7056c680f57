"""SMTP: the server protocol and the recipient policy (the relay queue is L{mailstack.relay})."""
