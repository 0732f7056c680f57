"""
IMAP4rev1 (RFC 3501) for mailstack, with the extensions real clients use.

 - L{mailstack.imap.parser}: the wire format, pure (commands, literals, sequence
   sets, FETCH attributes, SEARCH keys, response formatting).
 - L{mailstack.imap.server}: the Twisted protocol (framing, states, commands).
 - L{mailstack.imap.mailbox}: the account and selected-mailbox views over the store.
 - L{mailstack.imap.fetch}: message structure (MIME offsets), ENVELOPE,
   BODYSTRUCTURE and BODY[section] ranges.
 - L{mailstack.imap.search}: SEARCH evaluation.
 - L{mailstack.imap.output}: the streaming writer of large responses.
"""
