"""Notifications for admins: the webhook deliveries the outbox recorded (`GET notifications`
and the Notifications page)."""
