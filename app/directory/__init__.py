"""The user directory: Hubkeeper's copy of the hub's users and servers, for lists.

`store.UserDirectory` keeps and indexes the copy (`index`, `rows`); `sync` holds the loops
that keep it current from the hub. Decisions about one user or server ask the hub now; the
copy is for lists. Below the capabilities: the console, recorder, lockdown, jobs, metrics and
logs all read it.
"""

from hubkeeper.directory.store import UserDirectory

__all__ = ["UserDirectory"]
