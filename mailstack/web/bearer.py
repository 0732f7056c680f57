"""
Who an API token presented as C{Authorization: Bearer} acts for: the one
check the API and C{/metrics} share (the client address's failed-login
penalty first, the token store read in a worker thread, the token's user
looked up in the directory).
"""

from twisted.internet import defer, task
from twisted.logger import Logger

log = Logger()


def tokenUser(context, tokens, ip, presented, what):
    """
    @param context: the L{mailstack.web.context.WebContext}.
    @param tokens: its L{mailstack.web.tokens.TokenStore}.
    @param ip: the client's address (the penalty's key).
    @param presented: the token text.
    @param what: who asks, for the log line ("API", "metrics").
    @return: a Deferred firing with the token's user (an C{IUser}), or
        L{None} for a wrong, revoked or orphaned token, which counts as a
        failed login of C{ip}; it fails with
        L{mailstack.web.tokens.TokenError} if the token file cannot be read.
    """
    penalty = context.authPenalty
    delay = penalty.admit(ip) if penalty is not None else 0
    d = task.deferLater(context.reactor, delay, lambda: None) if delay else defer.succeed(None)
    d.addCallback(lambda _: context.runInThread(tokens.verify, presented))

    def verified(token):
        if token is None:
            return None
        return context.directory.lookup(token.address)

    def found(user):
        if user is None:
            if penalty is not None:
                penalty.failed(ip)
            log.info("{what}: a wrong token from {ip}", what=what, ip=ip)
            return None
        if penalty is not None:
            penalty.succeeded(ip)
        return user
    return d.addCallback(verified).addCallback(found)
