"""Logging set-up for the server and the CLI: text lines, or one JSON object per line
(`HUBKEEPER_LOG_FORMAT=json`) for log collectors."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else was passed with `extra=` and is kept.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (ISO 8601 UTC), level, logger, message, replica,
    exc_info (the formatted traceback) and any `extra=` fields. Never raises on odd values."""

    def __init__(self, replica: str = "") -> None:
        super().__init__()
        self.replica = replica

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.replica:
            entry["replica"] = self.replica
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "info", fmt: str = "text", replica: str = "") -> None:
    """Set the root handler (stderr) once for the process; uvicorn's loggers propagate to it
    when it is started with `log_config=None`."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter(replica) if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # Python warnings (deprecations of libraries) become records too: no stray text lines
    logging.captureWarnings(fmt == "json")
    # httpx logs every request at INFO: one line per hub call drowns everything else.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
