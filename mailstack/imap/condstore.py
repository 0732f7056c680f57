"""
CONDSTORE and QRESYNC (RFC 7162) for the IMAP server, as a mixin of
L{mailstack.imap.server.IMAPServer}: ENABLE, the session's CONDSTORE/QRESYNC
state, and the responses these extensions add to SELECT, FETCH, STORE,
EXPUNGE and SEARCH (the commands themselves are in
L{mailstack.imap.commands}).

Mod-sequences come from the store (L{IMessageInfo.modseq},
L{IMailboxStore.highestModseq}, L{IMailboxStore.vanishedSince}).

A session is "CONDSTORE-aware" once it used a CONDSTORE-enabling command
(ENABLE CONDSTORE or QRESYNC, SELECT/EXAMINE (CONDSTORE), FETCH MODSEQ or
CHANGEDSINCE, STORE UNCHANGEDSINCE, SEARCH MODSEQ, STATUS HIGHESTMODSEQ):
from then on SELECT reports HIGHESTMODSEQ and flag updates carry MODSEQ.
With QRESYNC enabled, expunges are reported as VANISHED (UIDs, not sequence
numbers) and flag updates carry the UID.
"""

from mailstack.imap.response import Refusal, formatFlags, formatSequenceSet


class CondstoreCommands:
    """
    The session's CONDSTORE/QRESYNC state and responses (a mixin).
    """

    condstore = False
    qresync = False

    def do_ENABLE(self, tag, names):
        enabled = []
        for name in names:
            if name == "CONDSTORE" and self.extensionEnabled("CONDSTORE"):
                self.condstore = True
                enabled.append(name)
            elif name == "QRESYNC" and self._qresyncOffered():
                self.condstore = self.qresync = True
                enabled.append(name)
            elif (shown := self.revision.enable(name, self.extensionEnabled)) is not None:
                enabled.append(shown)  # IMAP4rev2, UTF8=ACCEPT: imap/revision.py
        self.untagged(b" ".join([b"ENABLED"] + [n.encode("ascii") for n in enabled]))
        return ("OK", None, "ENABLE completed")

    def _qresyncOffered(self):
        return self.extensionEnabled("QRESYNC") and self.extensionEnabled("CONDSTORE")

    def enableCondstore(self):
        """A CONDSTORE-enabling command ran: refuse if CONDSTORE is off, else enable it."""
        if not self.extensionEnabled("CONDSTORE"):
            raise Refusal("CONDSTORE is not available", status="BAD")
        if not self.condstore:
            self.condstore = True
            if self.view is not None:
                self._highestModseqLine()

    def _highestModseqLine(self):
        self.untagged(b"OK [HIGHESTMODSEQ %d] Highest" % (self.view.store.highestModseq,))

    # -- SELECT --------------------------------------------------------------

    def checkSelectParameters(self, params):
        """Before SELECT/EXAMINE: refuse parameters that are not available."""
        if "CONDSTORE" in params:
            if not self.extensionEnabled("CONDSTORE"):
                raise Refusal("CONDSTORE is not available", status="BAD")
            self.condstore = True  # SELECT itself reports HIGHESTMODSEQ
        if "QRESYNC" in params:
            if not self.qresync:
                raise Refusal("QRESYNC must be enabled first (ENABLE QRESYNC)", status="BAD")

    def selectResponses(self, params):
        """After SELECT's usual responses: HIGHESTMODSEQ, and QRESYNC's catch-up."""
        if not self.condstore:
            return
        self._highestModseqLine()
        resync = params.get("QRESYNC")
        view = self.view
        if resync is None or resync.uidValidity != view.store.uidValidity:
            return
        known = resync.knownUIDs
        star = view.store.uidNext - 1

        def wanted(uid):
            return known is None or known.containsUID(uid, star)
        self.vanishedEarlier([uid for uid in view.store.vanishedSince(resync.modseq)
                              if wanted(uid)])
        infos = view.messageInfos()
        for number, uid in enumerate(view.uids, 1):
            info = infos.get(uid)
            if info is not None and info.modseq > resync.modseq and wanted(uid):
                self.untagged(b"%d FETCH (UID %d FLAGS %s MODSEQ (%d))" % (
                    number, uid, formatFlags(view.flagsOf(info)), info.modseq))

    def vanishedEarlier(self, uids):
        if uids:
            self.untagged(b"VANISHED (EARLIER) " + formatSequenceSet(uids))

    def closedResponse(self):
        """
        A SELECT or EXAMINE that replaces a selected mailbox says so first:
        QRESYNC (RFC 7162 3.2.11) and IMAP4rev2 (RFC 9051 7.1) require it, and
        it goes to IMAP4rev1 sessions too, as Dovecot sends it (RFC 3501 7.1:
        a client ignores a response code it does not know).
        """
        if self.view is not None:
            self.untagged(b"OK [CLOSED] Previous mailbox closed")

    # -- FETCH ---------------------------------------------------------------

    def checkFetchModifiers(self, attributes, modifiers, byUID):
        """
        @return: the UIDs to fetch are limited to those changed since this
            modseq (None: no limit).
        """
        if "VANISHED" in modifiers:
            if not byUID:
                raise Refusal("VANISHED is for UID FETCH", status="BAD")
            if not self.qresync:
                raise Refusal("QRESYNC must be enabled first (ENABLE QRESYNC)", status="BAD")
        if "CHANGEDSINCE" in modifiers or any(a.name == "MODSEQ" for a in attributes):
            self.enableCondstore()
        return modifiers.get("CHANGEDSINCE")

    def fetchVanished(self, messages, modseq):
        """UID FETCH (CHANGEDSINCE n VANISHED): what vanished since, within the set."""
        star = self.view.store.uidNext - 1
        self.vanishedEarlier([uid for uid in self.view.store.vanishedSince(modseq)
                              if messages.containsUID(uid, star)])

    # -- STORE and EXPUNGE ---------------------------------------------------

    def storeResponse(self, number, info, silent, changed, byUID):
        """The untagged FETCH after STORE changed (or kept) a message's flags."""
        items = []
        if not silent:
            for line in self.view.owedFlagLines(info):
                self.write(line + b"\r\n")
            items.append(b"FLAGS " + formatFlags(self.view.flagsOf(info)))
        if byUID or (self.qresync and not silent):
            items.append(b"UID %d" % (info.uid,))
        if self.condstore and (changed or not silent):
            items.append(b"MODSEQ (%d)" % (info.modseq,))
        if silent and not (self.condstore and changed):
            return
        self.write(b"* %d FETCH (%s)\r\n" % (number, b" ".join(items)))

    def modifiedResult(self, modified):
        """STORE's tagged reply when UNCHANGEDSINCE refused some messages."""
        return ("OK", b"MODIFIED " + formatSequenceSet(sorted(modified)),
                "Conditional STORE failed for some messages")

    def expungeResult(self):
        if self.qresync:
            return ("OK", "HIGHESTMODSEQ %d" % (self.view.store.highestModseq,),
                    "EXPUNGE completed")
        return ("OK", None, "EXPUNGE completed")
