"""When Hubkeeper's own database does not answer: which errors mean that, and what to say.

SQLAlchemy wraps the driver's connection-level failures (psycopg's `OperationalError` for a
refused or dropped connection, `InterfaceError` for a closed one, SQLite's "unable to open" or
"database is locked") as `OperationalError`/`InterfaceError`, marks any other error that lost
the connection `connection_invalidated`, and raises its own `TimeoutError` when the pool has
no connection to give. All of these are the database being unavailable, never the client's
fault and never a bug to trace back: the API answers 503 `database_unavailable`.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from hubkeeper.errors import DatabaseUnavailable

UNREACHABLE = (
    "Hubkeeper's database is unreachable; nothing that needs it can be done now. Try again "
    "in a moment (the hub and users' servers are not affected)"
)


def is_unavailable(error: BaseException) -> bool:
    """Is this the database not answering (as opposed to a bad value or a bug)?"""
    if isinstance(error, DatabaseUnavailable | sa_exc.TimeoutError):
        return True
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    return isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated


def summary(error: BaseException) -> str:
    """One line for the log: the driver's first line, without SQL or parameters."""
    if isinstance(error, DatabaseUnavailable):
        return error.detail
    cause = getattr(error, "orig", None) or error
    first = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {first[0] if first else ''}"[:300]


def unavailable(detail: str = UNREACHABLE) -> DatabaseUnavailable:
    return DatabaseUnavailable(detail)
