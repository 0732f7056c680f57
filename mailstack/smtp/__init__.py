"""SMTP: the server protocol, recipient policy and the relay queue."""
