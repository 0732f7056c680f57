"""
IMAP4rev1 (RFC 3501) for mailstack, with the extensions real clients use.

 - L{mailstack.imap.grammar}: the command grammar, pure (tokens, literals,
   sequence sets, FETCH attributes, SEARCH keys, each command's arguments).
 - L{mailstack.imap.response}: response formatting, pure.
 - L{mailstack.imap.server}: the Twisted protocol (framing, states, commands).
 - L{mailstack.imap.mailbox}: the account and selected-mailbox views over the store.
 - L{mailstack.imap.fetch}: message structure (MIME offsets), ENVELOPE,
   BODYSTRUCTURE and BODY[section] ranges.
 - L{mailstack.imap.search}: SEARCH evaluation.
 - L{mailstack.imap.output}: the streaming writer of large responses.
"""
