"""
The SMTP peer of the benchmark: aiosmtpd with a handler that delivers each
message into the recipient's Maildir the way mailstack does, so that the two
do the same durable work before answering 250:

    write tmp/<unique name>, fsync the file, rename into new/, fsync new/

The blocking file work runs in the event loop's default thread pool
(mailstack runs it in the reactor's thread pool). Recipients must be in a local
domain and have a Maildir (mailstack checks its users file); a Received:
header is prepended as an MTA would.

Run by bench/run.py with the Python that has aiosmtpd (bench/.venv, made by
`make bench`); it imports only the standard library and aiosmtpd.

    python smtp_peer.py --port PORT --data-dir DIR --domain bench.test
"""

import argparse
import asyncio
import email.utils
import itertools
import logging
import os
import signal
import socket
import sys
import time

from aiosmtpd.smtp import SMTP

HOST = socket.gethostname()
_seq = itertools.count()


def _fsyncDirectory(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def deliver(maildir, data):
    """Maildir delivery: tmp/, fsync, rename into new/, fsync new/."""
    now = time.time()
    unique = "%d.M%dP%dQ%d.%s" % (now, int((now % 1) * 1e6), os.getpid(), next(_seq), HOST)
    name = "%s,S=%d" % (unique, len(data))
    tmp = os.path.join(maildir, "tmp", name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(maildir, "new", name))
    _fsyncDirectory(os.path.join(maildir, "new"))


class MaildirHandler:
    def __init__(self, dataDir, domains):
        self.mailRoot = os.path.join(dataDir, "mail")
        self.domains = {d.lower() for d in domains}

    def maildir(self, address):
        local, _, domain = address.rpartition("@")
        return os.path.join(self.mailRoot, domain.lower(), local.lower())

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        domain = address.rpartition("@")[2].lower()
        if domain not in self.domains:
            return "550 5.7.1 relaying denied"
        if not os.path.isdir(os.path.join(self.maildir(address), "new")):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        received = ("Return-Path: <%s>\r\nReceived: from %s ([%s])\r\n\tby %s (aiosmtpd);"
                    " %s\r\n" % (envelope.mail_from, session.host_name,
                                 session.peer[0], HOST,
                                 email.utils.formatdate(localtime=True))).encode()
        data = received + envelope.original_content
        loop = asyncio.get_running_loop()
        for rcpt in envelope.rcpt_tos:
            await loop.run_in_executor(None, deliver, self.maildir(rcpt), data)
        return "250 2.0.0 OK delivered"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--domain", action="append", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    handler = MaildirHandler(args.data_dir, args.domain)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, hostname=HOST, loop=loop), args.host, args.port))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
