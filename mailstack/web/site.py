"""
L{buildSite}: the console's root as a twisted.web site, over TLS (the mail
listeners' certificate) when C{[web] tls} is on.
"""

from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web import server

from mailstack.web.app import buildRoot


def buildSite(context, tlsContext=None):
    """
    @param context: the L{mailstack.web.context.WebContext}.
    @param tlsContext: the server's TLS context factory; used when the
        config's C{[web] tls} is on.
    @return: the protocol factory to listen with.
    """
    site = server.Site(buildRoot(context), reactor=context.reactor)
    site.displayTracebacks = False
    site.noisy = False
    if context.config.web.tls:
        factory = TLSMemoryBIOFactory(tlsContext, False, site, clock=context.reactor)
        factory.noisy = False
        return factory
    return site
