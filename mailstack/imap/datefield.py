"""
The Date: header field read as Dovecot 2.3 reads it (its message-date
parser), so that SORT's DATE (L{mailstack.imap.sort}) and SEARCH's SENTBEFORE,
SENTON and SENTSINCE (L{mailstack.imap.search}) find the same date in a field
and refuse the same odd ones: RFC 822 atoms with white space and comments
between them, a three-letter weekday with its comma or none, a two-digit
year read as 1970-2069, obsolete zone names, and nothing else.
"""

import datetime

# RFC 5322 atext (8-bit octets taken too, as Dovecot's tokenizer takes them).
ATEXT = frozenset(b"!#$%&'*+-/=?^_`{|}~") | frozenset(range(0x30, 0x3a)) | frozenset(
    range(0x41, 0x5b)) | frozenset(range(0x61, 0x7b)) | frozenset(range(0x80, 0x100))
_MONTHS = (b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT",
           b"NOV", b"DEC")
_ZONES = {b"E": -5 * 60, b"C": -6 * 60, b"M": -7 * 60, b"P": -8 * 60}


class Tokens:
    """RFC 822 atoms with white space and comments between them, as Dovecot reads dates."""

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.skipSpace()

    def skipSpace(self):
        data = self.data
        while self.pos < len(data):
            c = data[self.pos]
            if c in b" \t\r\n":
                self.pos += 1
            elif c == 0x28:  # a comment, nested, with quoted pairs
                depth = 0
                while self.pos < len(data):
                    c = data[self.pos]
                    self.pos += 1
                    if c == 0x5c:
                        self.pos += 1
                    elif c == 0x28:
                        depth += 1
                    elif c == 0x29:
                        depth -= 1
                        if not depth:
                            break
            else:
                return

    def next(self):
        """The next atom; b"" at the end; None where something else stands."""
        if self.pos >= len(self.data):
            return b""
        start = self.pos
        while self.pos < len(self.data) and self.data[self.pos] in ATEXT:
            self.pos += 1
        if self.pos == start:
            return None
        atom = self.data[start:self.pos]
        self.skipSpace()
        return atom

    def separator(self, chars):
        if self.pos < len(self.data) and self.data[self.pos] in chars:
            self.pos += 1
            self.skipSpace()
            return True
        return False


def zoneMinutes(zone):
    """A zone's offset east of UTC in minutes; an unknown zone is UTC (Dovecot's rules)."""
    upper = zone.upper()
    if len(zone) == 5 and zone[:1] in b"+-" and zone[1:].isdigit():
        minutes = int(zone[1:3]) * 60 + int(zone[3:5])
        return minutes if zone[:1] == b"+" else -minutes
    if len(zone) == 1:
        # Military zones: compared upper-cased, computed from the octet as
        # sent (so a lower-case letter is far off, as in Dovecot).
        letter, raw = upper[0], zone[0]
        if letter < 0x4a:
            return (raw - 0x40) * 60
        if letter == 0x4a:
            return 0
        if letter <= 0x4d:
            return (raw - 0x41) * 60
        if letter < 0x5a:
            return (0x4d - raw) * 60
        return 0
    if len(zone) == 3 and zone[2:] == b"T" and upper[:1] in _ZONES:
        offset = _ZONES[upper[:1]]
        if upper[1:2] == b"D":
            return offset + 60
        if upper[1:2] == b"S":
            return offset
    return 0


def read(value):
    """
    C{[weekday ","] day month year hh:mm[:ss] [zone]} -> C{(moment, zone)}:
    the date and time as written (a UTC C{datetime}, the zone not applied)
    and the zone's minutes east of UTC; or None. Dovecot's reading: a
    three-letter weekday only, a two-digit year after 1969, a date that is
    not on the calendar refused, a leap second taken as :59.
    """
    tokens = Tokens(value)
    token = tokens.next()
    if not token:
        return None
    if len(token) == 3:
        if not tokens.separator(b","):
            return None
        token = tokens.next()
        if not token:
            return None
    if not (1 <= len(token) <= 2 and token.isdigit()):
        return None
    day = int(token)
    token = tokens.next()
    if not token or len(token) < 3 or token[:3].upper() not in _MONTHS:
        return None
    month = _MONTHS.index(token[:3].upper()) + 1
    token = tokens.next()
    if not token or len(token) not in (2, 4) or not token.isdigit():
        return None
    year = int(token)
    if len(token) == 2:
        year += 2000 if year < 70 else 1900
    elif year < 1900:
        return None
    token = tokens.next()
    if not token or not (1 <= len(token) <= 2 and token.isdigit()):
        return None
    hour = int(token)
    if not tokens.separator(b":."):
        return None
    token = tokens.next()
    if not token or len(token) != 2 or not token.isdigit():
        return None
    minute = int(token)
    second = 0
    if tokens.separator(b":."):
        token = tokens.next()
        if not token or len(token) != 2 or not token.isdigit():
            return None
        second = min(int(token), 59) if int(token) == 60 else int(token)
    zone = tokens.next()
    if zone is None:
        return None
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second,
                                   tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return moment, zoneMinutes(zone) if zone else 0


def utcSeconds(value):
    """A Date: value (bytes) -> the UTC seconds it names, or None if unreadable."""
    parsed = read(value)
    if parsed is None:
        return None
    moment, zone = parsed
    return int(moment.timestamp()) - zone * 60


def writtenDay(value):
    """
    A Date: value (bytes) -> the day written in it (time and zone
    disregarded, as SENTBEFORE, SENTON and SENTSINCE compare it), or None.
    """
    parsed = read(value)
    return None if parsed is None else parsed[0].date()


