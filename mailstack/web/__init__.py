"""
The lab console and its HTTP API, served by the mail server's own process
(C{[web]} in the config): L{mailstack.web.app.buildRoot} builds the site.
"""
