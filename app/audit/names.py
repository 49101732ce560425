"""Readable names of audit actions, for pages. The codes stay what the API, the CSV and
filters use (`server.stop`); pages show "Stopped a server" with the code beside it."""

from __future__ import annotations

from hubkeeper.web.templating import templates

ACTION_NAMES = {
    "auth.login": "Signed in",
    "auth.logout": "Signed out",
    "server.start": "Started a server",
    "server.stop": "Stopped a server",
    "server.access": "Opened a user's server",
    "servers.stop_all": "Stopped all servers",
    "server.cull": "Culled a server",
    "kernel.cull": "Culled a kernel",
    "user.cull": "Deleted an idle user",
    "culler.run": "Ran the culler",
    "culler.settings": "Changed the culler settings",
    "culler.exempt": "Exempted from culling",
    "culler.unexempt": "Ended an exemption",
    "culler.keep": "Kept a server running",
    "lockdown.on": "Locked the hub",
    "lockdown.off": "Lifted the lockdown",
    "logs.view": "Read a server's log",
    "logs.stream": "Followed a server's log",
}
# actions whose target is a user (`name` or `name/server`)
USER_TARGETS = ("server.", "kernel.", "user.", "logs.")


def action_name(code: str) -> str:
    """The readable name of an action code; an unknown code is shown as it is."""
    return ACTION_NAMES.get(code, code)


def target_user(action: str, target: str) -> str | None:
    """The user an audit event is about, when its target is a user's server (else None)."""
    if action in ("culler.exempt", "culler.unexempt") and target.startswith("user:"):
        return target[len("user:") :] or None
    if action == "culler.keep" and target:
        return target.split("/", 1)[0]
    if not action.startswith(USER_TARGETS) or not target or target == "*":
        return None
    return target.split("/", 1)[0]  # hub user names never hold "/"


templates.env.filters["action_name"] = action_name
templates.env.globals["target_user"] = target_user
