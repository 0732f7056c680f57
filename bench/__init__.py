"""
Benchmark harness: mailstack side by side with a peer (Dovecot for IMAP and
POP3, aiosmtpd for SMTP) on the same data. Prints figures and ratios, never
passes or fails on time. Entry point: C{python -m bench.run} (see bench/README.md).
"""
