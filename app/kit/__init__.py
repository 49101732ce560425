"""Small pieces every capability shares: the clock, time windows, actors, server-sent events.

Capabilities (console, history, lockdown, logs, culler, ...) import from here, from `hub/`,
`db/`, `web/` and `audit.service`, never from each other's internals. Nothing in `kit`
imports a capability.
"""
