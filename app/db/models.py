"""Every table Hubkeeper keeps. Alembic's autogenerate reads this module's metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, LargeBinary, Text, text
from sqlmodel import Field, SQLModel

from hubkeeper.kit.clock import utcnow


def UTCDateTime(**kw: object) -> Column:  # noqa: N802 - reads like a type in models
    return Column(DateTime(timezone=True), **kw)  # type: ignore[arg-type]


class AuditEvent(SQLModel, table=True):
    """An action a person (or the system) took, whether it worked or not."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False, index=True))
    actor: str = Field(index=True, max_length=255)
    action: str = Field(index=True, max_length=64)
    target: str = Field(default="", index=True, max_length=512)
    outcome: str = Field(default="ok", max_length=16)  # ok | failed | pending
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    via: str = Field(default="web", max_length=16)  # web | api | cli | system
    # Set for every event written since 0008: a record replayed from the local spool
    # (hubkeeper.actions.spool) is inserted only if its event_id is not there yet.
    event_id: str | None = Field(default=None, unique=True, index=True, max_length=32)


class StoredSecret(SQLModel, table=True):
    """A secret every replica sharing the database must agree on (the generated cookie
    secret, name "cookie_secret"), created once by whichever replica comes first."""

    __tablename__ = "stored_secret"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))


class WebSession(SQLModel, table=True):
    """A browser sign-in. The cookie carries only the signed id; everything else stays here."""

    __tablename__ = "web_session"

    id: str = Field(primary_key=True, max_length=64)
    user: str = Field(index=True, max_length=255)
    role: str = Field(max_length=16)
    access_token: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))
    checked_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))


class Lockdown(SQLModel, table=True):
    """A period during which the hub refuses to start servers; `ended_at` is null while active."""

    __tablename__ = "lockdown"
    # At most one active lockdown, enforced by the database: two locks at the same instant
    # (two admins, two replicas) cannot both insert; the loser gets an IntegrityError → 409.
    __table_args__ = (
        # On the constant `ended_at IS NULL`, not on `ended_at`: unique indexes treat NULLs
        # as distinct (SQLite and PostgreSQL), so an index on the column itself allows many.
        Index(
            "uq_lockdown_active",
            text("(ended_at IS NULL)"),
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    started_at: datetime = Field(
        default_factory=utcnow, sa_column=UTCDateTime(nullable=False, index=True)
    )
    started_by: str = Field(max_length=255)
    stop_servers: bool = Field(default=True)
    ended_at: datetime | None = Field(default=None, sa_column=UTCDateTime(nullable=True))
    ended_by: str | None = Field(default=None, max_length=255)


class ServerSession(SQLModel, table=True):
    """One run of one server, from ready to stopped; `stopped_at` is null while it runs."""

    __tablename__ = "server_session"
    # At most one open session per server, whoever writes (a reconcile and a transition seen
    # at the same time, two replicas): the database refuses the second. And the usage window
    # scan (hubkeeper.history.usage): a range on started_at that also covers stopped_at and
    # user, so SQLite answers from the index alone.
    __table_args__ = (
        Index(
            "uq_server_session_open",
            "user",
            "server",
            unique=True,
            sqlite_where=text("stopped_at IS NULL"),
            postgresql_where=text("stopped_at IS NULL"),
        ),
        Index("ix_server_session_window", "started_at", "stopped_at", "user"),
        # The few sessions over a day long or without a duration (usage_db.LONG), by stop: a
        # window finds those reaching into it without scanning months of starts.
        Index(
            "ix_server_session_long",
            "stopped_at",
            "started_at",
            "user",
            sqlite_where=text("(duration_s > 86400 OR duration_s IS NULL)"),
            postgresql_where=text("(duration_s > 86400 OR duration_s IS NULL)"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    user: str = Field(index=True, max_length=255)
    server: str = Field(default="", max_length=255)  # "" = the default server
    started_at: datetime = Field(sa_column=UTCDateTime(nullable=False, index=True))
    stopped_at: datetime | None = Field(
        default=None, sa_column=UTCDateTime(nullable=True, index=True)
    )
    duration_s: float | None = Field(default=None, index=True)  # set when it stops
    stop_reason: str | None = Field(default=None, max_length=16)  # admin|culled|lockdown|unknown
    stopped_by: str | None = Field(default=None, max_length=255)
    # The last active sync that saw it running (kept while open, every minute): when it
    # ended while Hubkeeper was down and the hub no longer knows when, it ended after this.
    seen_at: datetime | None = Field(default=None, sa_column=UTCDateTime(nullable=True))
    # The user's hub groups when the session started, a JSON list (usage by group at the
    # time); null for sessions recorded before Hubkeeper kept them (then: current groups).
    groups: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The server's profile (`user_options["profile"]`, KubeSpawner's slug) when it started:
    # what `HUBKEEPER_PRICES` prices it by. Null or "": the default profile ("*").
    profile: str | None = Field(default=None, max_length=255)
    # What jupyter-resource-usage said while it ran (hubkeeper.resources; null when never
    # sampled): the highest memory (rss, bytes), the mean CPU (% of one core, a running mean
    # over `cpu_samples` samples) and the memory limit it reported (bytes).
    peak_memory_bytes: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    mean_cpu_percent: float | None = Field(default=None)
    cpu_samples: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    memory_limit_bytes: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True)
    )


class Job(SQLModel, table=True):
    """A long action (stop-all, a lockdown's stops) shared by every replica.

    The replica that runs it writes progress and a heartbeat; any replica reads it. A running
    job whose heartbeat is older than `hubkeeper.jobs.store.LOST_AFTER` seconds is finished by
    whoever reads it, with the servers not yet handled reported failed ("replica lost").
    """

    __tablename__ = "job"

    id: str = Field(primary_key=True, max_length=32)
    kind: str = Field(max_length=32)  # stop_all
    actor: str = Field(max_length=255)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    state: str = Field(default="running", max_length=16, index=True)  # running | done
    total: int = Field(default=0)
    done: int = Field(default=0)  # handled so far, failures included
    stopped: int = Field(default=0)
    failed: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    targets: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    replica: str = Field(default="", max_length=64)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=UTCDateTime(nullable=False, index=True)
    )
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=UTCDateTime(nullable=True))


class StopIntent(SQLModel, table=True):
    """Who asked for a server to stop and why, written just before the hub is asked, so the
    replica that records the stop (whichever it is) closes the session with that reason."""

    __tablename__ = "stop_intent"

    id: int | None = Field(default=None, primary_key=True)
    user: str = Field(max_length=255)
    server: str = Field(default="", max_length=255)
    reason: str = Field(max_length=16)  # admin | culled | lockdown
    by: str = Field(max_length=255)
    at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False, index=True))


class UsageDay(SQLModel, table=True):
    """Usage of one closed UTC day (before today): sessions (pieces: a session counts in each
    day it touches), server-seconds, distinct users. A cache of `server_session`, kept by
    `hubkeeper.history.rollup`; rebuilt from any day it finds changed."""

    __tablename__ = "usage_day"

    day: str = Field(primary_key=True, max_length=10)  # YYYY-MM-DD (UTC)
    sessions: int = Field(default=0)
    seconds: float = Field(default=0.0)
    users: int = Field(default=0)


class UsageUserDay(SQLModel, table=True):
    """Usage of one user, with the groups they had at the session's start, on one closed UTC
    day: pieces (sessions touching the day), starts (sessions that started that day) and
    server-seconds. A cache of `server_session`, kept with `usage_day` by
    `hubkeeper.history.rollup`; by=user and by=group read it for the whole days of a window.
    `groups` is the session's JSON list, or '' where it was not recorded."""

    __tablename__ = "usage_user_day"

    id: int | None = Field(default=None, primary_key=True)
    day: str = Field(index=True, max_length=10)  # YYYY-MM-DD (UTC)
    user: str = Field(max_length=255)
    groups: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    profile: str = Field(default="", max_length=255)  # the sessions' profile ('' = default)
    pieces: int = Field(default=0)
    starts: int = Field(default=0)
    seconds: float = Field(default=0.0)


class UsageUserMonth(SQLModel, table=True):
    """`usage_user_day` summed over one closed UTC month (starts and server-seconds), so that
    a year by user or by group reads twelve rows per user instead of 365."""

    __tablename__ = "usage_user_month"

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(index=True, max_length=7)  # YYYY-MM (UTC)
    user: str = Field(max_length=255)
    groups: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    profile: str = Field(default="", max_length=255)  # the sessions' profile ('' = default)
    starts: int = Field(default=0)
    seconds: float = Field(default=0.0)


class UsageDayProfile(SQLModel, table=True):
    """Server-seconds of one closed UTC day per server profile ('' = default): what by=day's
    cost is priced from (prices apply at read time). Kept with `usage_day`."""

    __tablename__ = "usage_day_profile"

    day: str = Field(primary_key=True, max_length=10)  # YYYY-MM-DD (UTC)
    profile: str = Field(primary_key=True, max_length=255)
    seconds: float = Field(default=0.0)


class UsageRollupState(SQLModel, table=True):
    """What `usage_day` was built from (one row): the days before `sealed_until` are in it, as
    of session id `max_id`, with `open_ids` (JSON list) still open then."""

    __tablename__ = "usage_rollup_state"

    id: int = Field(default=1, primary_key=True)
    max_id: int = Field(default=0)
    sealed_until: datetime = Field(sa_column=UTCDateTime(nullable=False))
    open_ids: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))


class CullEvent(SQLModel, table=True):
    """One server or kernel the culler stopped (or tried to), with why and the settings then."""

    __tablename__ = "cull_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False, index=True))
    kind: str = Field(index=True, max_length=16)  # server | kernel
    user: str = Field(index=True, max_length=255)
    server: str = Field(default="", max_length=255)  # "" = the default server
    kernel_id: str | None = Field(default=None, max_length=64)
    reason: str = Field(max_length=16)  # idle | max_age
    inactive_s: float | None = Field(default=None)  # seconds idle when decided (None: unknown)
    age_s: float | None = Field(default=None)  # seconds since the server started
    outcome: str = Field(default="ok", max_length=16)  # ok | error
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    settings: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    actor: str = Field(default="culler", max_length=255)  # culler, or the admin who ran it
    # how it was decided when not the usual way, e.g. "the server could not be asked (...):
    # the hub's activity decided" (keep_busy / idle_source kernels could not look inside)
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class CullExemption(SQLModel, table=True):
    """A user or a group the culler leaves alone, until `until` (None: until deleted)."""

    __tablename__ = "cull_exemption"

    id: int | None = Field(default=None, primary_key=True)
    user: str | None = Field(default=None, index=True, max_length=255)
    group: str | None = Field(default=None, index=True, max_length=255)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    until: datetime | None = Field(default=None, sa_column=UTCDateTime(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))
    created_by: str = Field(max_length=255)
    deleted_at: datetime | None = Field(default=None, sa_column=UTCDateTime(nullable=True))


class CullKeep(SQLModel, table=True):
    """One "keep running" of a server: idle culling postponed until `until` (UTC). Counted per
    server start (`started`, the hub's start time as ISO text): `n` is this keep's number in
    that start (1, 2, ...), unique, so two replicas cannot both give the last keep."""

    __tablename__ = "cull_keep"
    __table_args__ = (Index("ix_cull_keep_start_n", "user", "server", "started", "n", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    user: str = Field(index=True, max_length=255)
    server: str = Field(default="", max_length=255)  # "" = the default server
    started: str = Field(max_length=64)  # the server's start (ISO 8601, UTC): the count's key
    n: int = Field(default=1)
    at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))
    until: datetime = Field(sa_column=UTCDateTime(nullable=False, index=True))
    actor: str = Field(max_length=255)  # the owner, or the admin who kept it


class CullerConfig(SQLModel, table=True):
    """The culler settings saved from the page or the API (one row; absent = env defaults)."""

    __tablename__ = "culler_config"

    id: int | None = Field(default=None, primary_key=True)
    settings: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))
    updated_by: str = Field(max_length=255)


class CullRun(SQLModel, table=True):
    """One culler pass (servers or kernels): when, how long, what it did; `last_run` reads it."""

    __tablename__ = "cull_run"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # servers | kernels
    started_at: datetime = Field(sa_column=UTCDateTime(nullable=False, index=True))
    finished_at: datetime = Field(sa_column=UTCDateTime(nullable=False))
    duration_s: float = Field(default=0.0)
    actor: str = Field(default="culler", max_length=255)
    dry_run: bool = Field(default=False)
    culled: int = Field(default=0)
    errors: int = Field(default=0)
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class DirectoryUser(SQLModel, table=True):
    """The user directory as the replica leading `directory-sync` last saw each user, for the
    other replicas (directory/shared.py): only one replica asks the hub. `seq` grows with
    every write, so a follower reads only what changed since it last looked; a user the hub
    no longer has stays as a row with `removed` set."""

    __tablename__ = "directory_user"

    name: str = Field(primary_key=True, max_length=255)
    data: str = Field(sa_column=Column(Text, nullable=False))  # the hub's user model, JSON
    seq: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    removed: bool = False


class DirectoryState(SQLModel, table=True):
    """One row (id 1): what the leading replica's directory says about itself (sync times,
    the hub's user count, the last `seq` written)."""

    __tablename__ = "directory_state"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    synced_at: datetime | None = Field(default=None, sa_column=UTCDateTime(nullable=True))
    full_synced_at: datetime | None = Field(default=None, sa_column=UTCDateTime(nullable=True))
    hub_total: int | None = None
    replica: str = Field(default="", max_length=255)


class QuotaConfig(SQLModel, table=True):
    """The server-hour quotas saved from the API (one row; absent = no quotas)."""

    __tablename__ = "quota_config"

    id: int | None = Field(default=None, primary_key=True)
    settings: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))
    updated_by: str = Field(max_length=255)


class ServerActivity(SQLModel, table=True):
    """When one server was used on one UTC day, in 5-minute buckets (hubkeeper.db.activity):
    a bitmap per source, bit i = the bucket starting i * 300 s after midnight UTC, stored
    little-endian with trailing zero bytes dropped (at most 36 bytes). Read by the culler's
    backtest; written by the session recorder (hub/route activity) and the kernel pass."""

    __tablename__ = "server_activity"
    # SQLite: the rows live in the primary key's b-tree (no rowid, no second copy of the key):
    # about half the size on disk
    __table_args__ = {"sqlite_with_rowid": False}

    user: str = Field(primary_key=True, max_length=255)
    server: str = Field(primary_key=True, max_length=255)  # "" = the default server
    day: int = Field(primary_key=True, index=True)  # days since 1970-01-01 (UTC)
    hub: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    kernels: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))


class Notification(SQLModel, table=True):
    """One event for the webhooks (hubkeeper.outbox): written once, whatever the number of
    replicas, because `key` is unique (the event and what it is about, e.g.
    `cull.warning:ann/:2026-12-05T10:00:00+00:00`)."""

    __tablename__ = "notification"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=512)
    event: str = Field(index=True, max_length=64)
    at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False, index=True))
    user: str | None = Field(default=None, index=True, max_length=255)
    server: str | None = Field(default=None, max_length=255)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    text: str = Field(sa_column=Column(Text, nullable=False))
    link: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class NotificationDelivery(SQLModel, table=True):
    """One notification to one webhook URL: `retrying` until it is sent or given up on."""

    __tablename__ = "notification_delivery"
    __table_args__ = (Index("ix_notification_delivery_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id", index=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="retrying", max_length=16)  # retrying | sent | failed
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))
    last_attempt_at: datetime | None = Field(default=None, sa_column=UTCDateTime(nullable=True))
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class ServerResource(SQLModel, table=True):
    """The last figures jupyter-resource-usage gave for one running server (one row per
    server sampled in the last pass; hubkeeper.resources). Written by the sampling replica,
    read by every replica."""

    __tablename__ = "server_resource"

    user: str = Field(primary_key=True, max_length=255)
    server: str = Field(primary_key=True, max_length=255)  # "" = the default server
    memory_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    memory_limit_bytes: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True)
    )
    cpu_percent: float | None = Field(default=None)
    at: datetime = Field(sa_column=UTCDateTime(nullable=False))


class BacktestKey(SQLModel, table=True):
    """What the backtest's summary rows count under (hubkeeper.culler.backtest_summary): a
    user, the groups at the session's start (JSON, null: unknown) and the profile."""

    __tablename__ = "backtest_key"

    id: int | None = Field(default=None, primary_key=True)
    user: str = Field(max_length=255)
    groups: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    profile: str | None = Field(default=None, max_length=255)


class BacktestSession(SQLModel, table=True):
    """One closed session summarised for the backtest: its times as the replay reads them
    (s since the epoch, `start_us` exact for the window). Rebuilt from `server_session`."""

    __tablename__ = "backtest_session"
    # the totals per key over a window: from this index alone, in key order
    __table_args__ = (Index("ix_backtest_session_kid", "kid", "start_us", "start_s", "stop_s"),)

    session_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    kid: int
    start_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    start_s: float
    stop_s: float


class BacktestGap(SQLModel, table=True):
    """One record gap of a summarised session that some timeout T cuts at
    (hubkeeper.culler.backtest_gaps): `lo <= T < hi` cuts at `f + T` and saves `a - T` s;
    `rb`: T from which the same server's return is a regret; `ret` (`ret_us`): the one
    start of the user's that can be a regret, or with `many` see `backtest_return`."""

    __tablename__ = "backtest_gap"
    # SQLite: rows in the primary key's b-tree, read in key order (an aggregate per key
    # without a sort)
    __table_args__ = {"sqlite_with_rowid": False}

    source: str = Field(primary_key=True, max_length=16)
    kid: int = Field(primary_key=True)
    session_id: int = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    start_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    f: float
    lo: float
    hi: float
    a: float
    rb: float | None = None
    ret: float | None = None
    ret_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    many: bool = False


class BacktestReturn(SQLModel, table=True):
    """The starts of a user's sessions that can make a cut of session `session_id` a regret,
    kept only when a record gap has more than one (`BacktestGap.many`)."""

    __tablename__ = "backtest_return"

    session_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at_us: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at: float


class BacktestSummaryState(SQLModel, table=True):
    """How far the backtest summary is built (one row, id 1): every session with an id up to
    `done_id` is summarised or in `waiting` (JSON ids: open, or closed too recently);
    `max_seen`: the highest session id when it last looked (later ones arrived since)."""

    __tablename__ = "backtest_summary_state"

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    done_id: int = 0
    max_seen: int = 0
    waiting: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    version: int = 0  # one more at every build step


class BacktestStale(SQLModel, table=True):
    """A bucket of a server's activity recorded late (hubkeeper.db.activity.LATE_MARK): the
    backtest summary of a closed session holding it is built again, and meanwhile not used."""

    __tablename__ = "backtest_stale"

    user: str = Field(primary_key=True, max_length=255)
    server: str = Field(primary_key=True, max_length=255)
    bucket: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))


class ServerToken(SQLModel, table=True):
    """A token opening one user's server (`access:servers!server=<user>/<server>`), sealed
    with the cookie secret (hubkeeper.kit.sealed): kept so a restart or a new leader reuses
    the tokens minted before instead of minting every running server's again (about half an
    hour of paced mints at 5,000 servers). Times are UTC."""

    __tablename__ = "server_token"

    user: str = Field(primary_key=True, max_length=255)
    server: str = Field(primary_key=True, max_length=255)
    sealed: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime = Field(sa_column=UTCDateTime(nullable=False, index=True))
    renew_at: datetime = Field(sa_column=UTCDateTime(nullable=False))
