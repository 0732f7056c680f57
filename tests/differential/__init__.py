"""
The differential IMAP harness (issue 15, "prove it against Dovecot, not
against ourselves"): a corpus of hard messages (L{corpus}) delivered into two
Maildirs, one served by mailstack and one by a private Dovecot
(L{tests.interop.Dovecot}); the same IMAP session scripts (L{sessions}) run
against both over real sockets by a raw client (L{client}), and the answers
compared after the few normalisations L{normalise} lists (L{runner}).

tests/e2e/test_differential.py runs a representative slice in `make test`;
`make interop` runs every script over the larger generated corpus.
"""
