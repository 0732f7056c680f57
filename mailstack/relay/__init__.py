"""
The outbound relay: mail the SMTP server accepted for non-local recipients,
on its way to the configured smarthost.

 - L{mailstack.relay.queue}: the durable queue (C{var/queue/}), its retry
   schedule and the bounces it sends when a recipient fails for good.
 - L{mailstack.relay.client}: one delivery attempt, an SMTP client session
   with the smarthost.
 - L{mailstack.relay.dsn}: RFC 3464 delivery status notifications (bounces).

Nothing here imports the SMTP server: C{mailstack.smtp} builds a
L{mailstack.relay.queue.RelayQueue} and hands it the local delivery for bounces.
"""
