"""
The IMAP grammar (RFC 3501 and the extensions mailstack serves), pure: no I/O,
no Twisted. The server frames a command into parts and hands them to these
modules; they return plain values or raise L{reader.ParseError}.

 - L{reader}: the token reader over a framed command (atoms, strings,
   literals, flags, dates), command tags and literal announcements.
 - L{sequence}: sequence sets, resolved to message indices.
 - L{fetchspec}: FETCH data items (C{BODY[section]<partial>} and the rest).
 - L{searchspec}: SEARCH keys, as nested tuples.
 - L{arguments}: each command's arguments (the C{args_*} functions the
   server's command table names), extended forms included.
"""
