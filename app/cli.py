"""The `hubkeeper` command line (see the contract's "Command line")."""

from __future__ import annotations

import argparse
import os
import sys

from pydantic import ValidationError

from hubkeeper.config import MissingSetting, Settings


def cmd_serve(args: argparse.Namespace) -> int:
    settings = Settings()
    settings.require_hub()  # before the imports below log anything: one clean line, exit 2

    from hubkeeper.main import create_app, serve

    try:
        app = create_app(settings)
    except MissingSetting as exc:
        print(f"hubkeeper: {exc}", file=sys.stderr)
        return 2
    serve(
        app,
        host=args.host or settings.bind_host,
        port=args.port or settings.bind_port,
        log_level=settings.log_level,
        json_logs=settings.log_format == "json",
    )
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from hubkeeper.db.engine import migrate

    settings = Settings()
    migrate(settings.database_url, args.revision)
    print(f"hubkeeper: database at {settings.database_url.split('@')[-1]} is at {args.revision}")
    return 0


def cmd_stop_all(args: argparse.Namespace) -> int:
    import asyncio

    from hubkeeper.console.cli import stop_all

    settings = Settings()
    settings.require_hub()
    return asyncio.run(stop_all(settings, reason=args.reason, assume_yes=args.yes))


def cmd_lockdown(args: argparse.Namespace) -> int:
    import asyncio

    from hubkeeper.lockdown.cli import lockdown

    settings = Settings()
    if args.lockdown_command == "on" and not args.keep_servers:
        settings.require_hub()  # it stops the running servers unless --keep-servers
    return asyncio.run(
        lockdown(
            settings,
            args.lockdown_command,
            reason=getattr(args, "reason", ""),
            keep=getattr(args, "keep_servers", False),
        )
    )


def cmd_cull(args: argparse.Namespace) -> int:
    import asyncio

    from hubkeeper.culler.cli import cull

    settings = Settings()
    settings.require_hub()
    return asyncio.run(cull(settings, dry_run=args.dry_run))


def cmd_report(args: argparse.Namespace) -> int:
    settings = Settings()  # a bad setting stops it before the imports below log anything

    from hubkeeper.history.cli import report

    return report(settings, since=args.since, until=args.until, by=args.by, as_csv=args.csv)


def cmd_demo(args: argparse.Namespace) -> int:
    from hubkeeper.demo.run import run_demo

    return run_demo(args)


def cmd_hub_plugin(args: argparse.Namespace) -> int:
    """Print the hub plugin's source: one file for the hub (z2jh `hub.extraFiles`)."""
    from importlib.resources import files

    sys.stdout.write(files("hubkeeper").joinpath("hub_plugin.py").read_text(encoding="utf-8"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hubkeeper", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service (settings from the environment)")
    serve.add_argument(
        "--host", default=None, help="bind address (default: from JUPYTERHUB_SERVICE_URL)"
    )
    serve.add_argument(
        "--port", type=int, default=None, help="port (default: from JUPYTERHUB_SERVICE_URL)"
    )
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply migrations")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=cmd_db_upgrade)

    stop = sub.add_parser("stop-all", help="stop every running server (audited)")
    stop.add_argument(
        "--reason", default="stop-all from the command line", help="kept in the audit trail"
    )
    stop.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    stop.set_defaults(func=cmd_stop_all)

    lock = sub.add_parser("lockdown", help="lock the hub (no server may start), lift it, or ask")
    lock_sub = lock.add_subparsers(dest="lockdown_command", required=True)
    lock_on = lock_sub.add_parser("on", help="lock the hub and stop every running server")
    lock_on.add_argument("--reason", required=True, help="shown to users; kept in the audit")
    lock_on.add_argument("--keep-servers", action="store_true", help="leave running servers alone")
    lock_sub.add_parser("off", help="lift the lockdown")
    lock_sub.add_parser("status", help="is the hub locked?")
    lock.set_defaults(func=cmd_lockdown)

    cull = sub.add_parser("cull", help="one culler pass now (servers and kernels), audited")
    cull.add_argument(
        "--dry-run", action="store_true", help="print what would be culled; change nothing"
    )
    cull.set_defaults(func=cmd_cull)

    rep = sub.add_parser(
        "report", help="server usage and cost per day, user, group or profile (from the database)"
    )
    rep.add_argument("--since", default="", help="ISO date or date-time (default: 30 days ago)")
    rep.add_argument("--until", default="", help="ISO date or date-time, exclusive (default: now)")
    rep.add_argument("--by", choices=("day", "user", "group", "profile"), default="day")
    rep.add_argument("--csv", action="store_true", help="CSV on stdout instead of a table")
    rep.set_defaults(func=cmd_report)

    plugin = sub.add_parser(
        "hub-plugin",
        help="print the hub plugin (hubkeeper.hub_plugin) as one file, for z2jh hub.extraFiles",
    )
    plugin.set_defaults(func=cmd_hub_plugin)

    demo = sub.add_parser("demo", help="a local JupyterHub with Hubkeeper and demo users")
    demo.add_argument("--dir", default=".demo", help="state folder (default: .demo)")
    demo.add_argument("--port", type=int, default=8000, help="hub port (0 = a free one)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from hubkeeper.ops.logs import configure_logging

    configure_logging(
        os.environ.get("HUBKEEPER_LOG_LEVEL", "info"),
        os.environ.get("HUBKEEPER_LOG_FORMAT", "text"),
        os.environ.get("HUBKEEPER_REPLICA_ID", ""),
    )
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MissingSetting as exc:
        print(f"hubkeeper: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a setting with a bad value: one line each, no traceback
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            print(f"hubkeeper: invalid setting {where}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
