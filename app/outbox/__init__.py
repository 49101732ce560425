"""Notifications: events recorded once in the database, POSTed to the webhooks by one replica.

`Outbox.emit` records an event (never raises: a notification is never worth failing the work
that caused it); `WebhookSender` (a leader loop) delivers what is due, retrying with backoff.
A receiver that is slow or down delays only its own deliveries.
"""
