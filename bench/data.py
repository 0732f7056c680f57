"""
The benchmark's data: the same users and the same Maildir files, byte for
byte, for mailstack and for the peer.

Messages are made from a fixed seed: plain-text mail of 1.5-6 KB with LF line
ends (as an MDA such as Dovecot's or Postfix's writes them), stored in C{cur/}
with C{,S=} and C{,W=} sizes in the name and the \\Seen flag. No
C{dovecot-uidlist} or index is written: each server builds its own on first open.
"""

import dataclasses
import os
import random

DOMAIN = "bench.test"
PASSWORD = "bench"
BULK_USER = "bulk@" + DOMAIN        # the big mailbox (IMAP SELECT/FETCH, POP3)
SEARCH_USER = "search@" + DOMAIN    # the SEARCH TEXT mailbox
SINK_USER = "sink@" + DOMAIN        # receives the SMTP load
BUSY_USER = "busy@" + DOMAIN        # one maildrop a class of POP3 clients polls at once
BUSY_MESSAGES = 41                  # the size of that maildrop (issue 17's figure)
CLASS_USER = "class@" + DOMAIN      # one IMAP account a class of clients shares (issue 16)
HUGE_USER = "huge@" + DOMAIN        # the 100k-message folder (SELECT, issue 16)
SENDER = "loadgen@example.net"
NEEDLE = "xylophone"                 # in 1 of every NEEDLE_EVERY search messages
NEEDLE_EVERY = 50
SEED = 20240601


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each benchmark is."""
    bulk: int               # messages in the big mailbox
    search: int             # messages searched by SEARCH TEXT
    fetchBodies: int        # full bodies fetched by one FETCH
    idleSessions: int       # concurrent IDLE sessions (one user each)
    idleMessages: int       # messages in each IDLE user's INBOX
    retr: int               # messages RETRieved in the POP3 throughput run
    smtpClients: tuple      # concurrency levels of the SMTP load
    smtpSeconds: float      # how long each SMTP load runs
    smtpMessageSize: int    # octets per SMTP message
    repeats: int            # timed repetitions per IMAP/POP3 figure (median reported)
    smtpWarmup: float       # seconds of SMTP load before the measured runs
    settle: float           # seconds to wait before a memory reading
    retrBudget: float       # no further RETR run once the runs took this long
    busyClients: int = 10    # POP3 clients polling the busy maildrop at once
    busySeconds: float = 10.0  # how long they poll
    huge: int = 100000       # messages in the huge folder (small ones: SELECT only)
    loginRepeats: int = 20   # LOGIN latency samples


FULL = Sizes(bulk=10000, search=1000, fetchBodies=100, idleSessions=100,
             idleMessages=10, retr=1000, smtpClients=(1, 10), smtpSeconds=10.0,
             smtpMessageSize=10240, repeats=5, smtpWarmup=1.0, settle=1.0,
             retrBudget=5.0)
QUICK = Sizes(bulk=200, search=50, fetchBodies=10, idleSessions=4, idleMessages=2,
              retr=5, smtpClients=(1, 10), smtpSeconds=0.2, smtpMessageSize=10240,
              repeats=2, smtpWarmup=0.1, settle=0.2,
              retrBudget=0.2, busyClients=3, busySeconds=0.5, huge=300, loginRepeats=3)

_WORDS = (
    "the of and to in is that for it as was with be by on not he this are or "
    "his from at which but have an they you were her she there been one all "
    "would their we him has when who will more no if out so said what up its "
    "about into than them can only other new some could time these two may "
    "then do first any my now such like our over man me even most made after "
    "also did many before must through back years where much your way well "
    "down should because each just those people how too little state good "
    "very make world still own see men work long get here between both life "
    "being under never day same another know while last might us great old "
    "year off come since against go came right used take three mailbox server "
    "message folder invoice meeting report quarterly budget schedule project "
    "release review draft agenda minutes customer support ticket deadline"
).split()


def idleUser(n):
    return "idle%03d@%s" % (n, DOMAIN)


def allUsers(sizes):
    return ([BULK_USER, SEARCH_USER, SINK_USER, BUSY_USER, CLASS_USER, HUGE_USER]
            + [idleUser(n) for n in range(sizes.idleSessions)])


def _paragraphs(rng, count=400):
    out = []
    for _ in range(count):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(40, 120))]
        words[0] = words[0].capitalize()
        lines, line = [], []
        for w in words:
            if sum(len(x) + 1 for x in line) + len(w) > 72:
                lines.append(" ".join(line))
                line = []
            line.append(w)
        lines.append(" ".join(line) + ".")
        out.append("\n".join(lines))
    return out


class MessageMaker:
    """Deterministic plain-text messages (LF line ends, as bytes)."""

    def __init__(self, seed=SEED):
        self.rng = random.Random(seed)
        self.paragraphs = _paragraphs(self.rng)

    def make(self, n, to, needle=False):
        rng = self.rng
        target = rng.randint(1500, 6000)
        date = 1700000000 + n * 37
        head = ("Return-Path: <sender%d@example.net>\n"
                "From: Sender %d <sender%d@example.net>\n"
                "To: <%s>\n"
                "Subject: %s %s report #%d\n"
                "Date: %s\n"
                "Message-ID: <bench-%d-%d@example.net>\n"
                "MIME-Version: 1.0\n"
                "Content-Type: text/plain; charset=us-ascii\n\n") % (
                    n % 97, n % 97, n % 97, to, rng.choice(_WORDS).capitalize(),
                    rng.choice(_WORDS), n, _rfc2822(date), n, date)
        body = []
        size = len(head)
        if needle:
            line = "Remember the %s quartet on Friday.\n\n" % (NEEDLE,)
            body.append(line)
            size += len(line)
        while size < target:
            p = rng.choice(self.paragraphs) + "\n\n"
            body.append(p)
            size += len(p)
        return (head + "".join(body)).encode("ascii"), date


def _rfc2822(when):
    import email.utils
    return email.utils.formatdate(when, usegmt=True)


def smtpMessage(size, n=0):
    """One SMTP message of exactly C{size} octets (CRLF line ends)."""
    head = ("From: Load Generator <%s>\r\nTo: <%s>\r\nSubject: bench message %d\r\n"
            "Message-ID: <smtp-bench-%d@example.net>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            % (SENDER, SINK_USER, n, n)).encode("ascii")
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?\r\n"
    body = bytearray()
    while len(head) + len(body) + len(line) <= size:
        body += line
    pad = size - len(head) - len(body)
    if pad >= 2:
        body += b"x" * (pad - 2) + b"\r\n"
    elif pad:
        body += b"\r\n"[:pad]
    return head + bytes(body)


def usersFile(sizes):
    """The passwd-file (Dovecot's format, mailstack's var/users) text."""
    return "".join("%s:{PLAIN}%s:::::\n" % (u, PASSWORD) for u in allUsers(sizes))


def _maildir(root, user):
    local, _, domain = user.partition("@")
    top = os.path.join(root, "mail", domain, local)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(top, sub), exist_ok=True)
    return top


def mailboxes(sizes):
    """
    @return: C{{user: [(basename, bytes, mtime), ...]}}, the same for every call
        with the same sizes.
    """
    maker = MessageMaker()
    out = {}

    def box(user, count, needleEvery=0):
        items = []
        for n in range(count):
            data, date = maker.make(n, user, needle=bool(needleEvery) and n % needleEvery == 0)
            wire = len(data) + data.count(b"\n")
            name = "%d.M%dP1Q%d.bench,S=%d,W=%d:2,S" % (date, n, n, len(data), wire)
            items.append((name, data, date))
        out[user] = items

    box(BULK_USER, sizes.bulk)
    box(BUSY_USER, BUSY_MESSAGES if sizes.bulk else 0)
    box(CLASS_USER, BUSY_MESSAGES if sizes.bulk else 0)
    box(SEARCH_USER, sizes.search, NEEDLE_EVERY)
    for n in range(sizes.idleSessions):
        box(idleUser(n), sizes.idleMessages)
    out[SINK_USER] = []
    out[HUGE_USER] = hugeFolder(sizes.huge if sizes.bulk else 0)
    return out


def hugeFolder(count):
    """
    The huge folder's messages: small (about 200 octets) so that 100,000 of
    them are quick to write twice; only SELECT reads this folder.
    """
    items = []
    for n in range(count):
        date = 1600000000 + n * 11
        data = ("From: <s%d@example.net>\nTo: <%s>\nSubject: item %d\n"
                "Message-ID: <huge-%d@example.net>\n\nItem %d of the huge folder.\n"
                % (n % 89, HUGE_USER, n, n, n)).encode("ascii")
        wire = len(data) + data.count(b"\n")
        items.append(("%d.M%dP2Q%d.bench,S=%d,W=%d:2,S" % (date, n, n, len(data), wire),
                      data, date))
    return items


def populate(dataDirs, sizes):
    """
    Write the users file and every Maildir into each of C{dataDirs} (a
    mailstack C{data_dir} layout: C{users}, C{mail/<domain>/<localpart>/}).
    """
    boxes = mailboxes(sizes)
    users = usersFile(sizes)
    for root in dataDirs:
        os.makedirs(root, exist_ok=True)
        path = os.path.join(root, "users")
        with open(path, "w") as f:
            f.write(users)
        os.chmod(path, 0o600)
        for user, items in boxes.items():
            cur = os.path.join(_maildir(root, user), "cur")
            for name, data, date in items:
                p = os.path.join(cur, name)
                with open(p, "wb") as f:
                    f.write(data)
                os.utime(p, (date, date))
    return boxes
